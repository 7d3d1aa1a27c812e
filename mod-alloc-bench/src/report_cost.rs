//! Report cost: the time a failing allocation test takes to produce its
//! report and its DHAT file, for 100, 1,000 and 10,000 distinct call sites.
//!
//! The sites are real call stacks: [`make_sites`] walks a path of four
//! digits through four levels of ten distinct non-inlined functions, so site
//! `i` allocates under a stack no other site has (the DHAT file's program
//! points). The report itself merges sites by their first user frame, as a
//! user would read it.
//!
//! Only the binary `modalloc-report` (mod-alloc with `dhat-compat`, in
//! `report/`) can measure it: it passes a [`Reporter`] in [`Options`]; every
//! other binary skips the section.
//!
//! [`Options`]: crate::Options

// Each site's block must be its own allocation: the `Box` is the point.
#![allow(clippy::vec_box)]

use crate::protocol::Record;
use std::hint::black_box;

/// The site counts measured.
pub const SITES: [u32; 3] = [100, 1_000, 10_000];

/// Measures one site count: returns (milliseconds, detail) or why not.
pub type Reporter = fn(sites: u32) -> Result<(f64, String), String>;

type Step = fn(&[u8], &mut Vec<Box<u64>>);

macro_rules! level {
    ($table:ident, $next:expr, $($name:ident = $k:expr),*) => {
        $(
            #[inline(never)]
            fn $name(path: &[u8], out: &mut Vec<Box<u64>>) {
                // A distinct constant per function, so none is merged with
                // another (identical functions would share an address).
                black_box($k);
                descend(path, out, $next);
                black_box(());
            }
        )*
        static $table: [Step; 10] = [$($name),*];
    };
}

level!(
    L3,
    None,
    c0 = 30,
    c1 = 31,
    c2 = 32,
    c3 = 33,
    c4 = 34,
    c5 = 35,
    c6 = 36,
    c7 = 37,
    c8 = 38,
    c9 = 39
);
level!(
    L2,
    Some(&L3),
    b0 = 20,
    b1 = 21,
    b2 = 22,
    b3 = 23,
    b4 = 24,
    b5 = 25,
    b6 = 26,
    b7 = 27,
    b8 = 28,
    b9 = 29
);
level!(
    L1,
    Some(&L2),
    a0 = 10,
    a1 = 11,
    a2 = 12,
    a3 = 13,
    a4 = 14,
    a5 = 15,
    a6 = 16,
    a7 = 17,
    a8 = 18,
    a9 = 19
);
level!(
    L0,
    Some(&L1),
    z0 = 0,
    z1 = 1,
    z2 = 2,
    z3 = 3,
    z4 = 4,
    z5 = 5,
    z6 = 6,
    z7 = 7,
    z8 = 8,
    z9 = 9
);

#[inline(always)]
fn descend(path: &[u8], out: &mut Vec<Box<u64>>, next: Option<&'static [Step; 10]>) {
    match (next, path.split_first()) {
        (Some(table), Some((&d, rest))) => table[usize::from(d % 10)](rest, out),
        _ => out.push(Box::new(black_box(path.len() as u64))),
    }
}

/// Allocates one block at each of `n` distinct call stacks (`n` ≤ 10,000);
/// the blocks are returned, live.
pub fn make_sites(n: u32) -> Vec<Box<u64>> {
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n.min(10_000) {
        let path = [
            (i / 1000 % 10) as u8,
            (i / 100 % 10) as u8,
            (i / 10 % 10) as u8,
            (i % 10) as u8,
        ];
        L0[usize::from(path[0])](&path[1..], &mut out);
    }
    out
}

/// One `time` record per site count, or `skip` records.
pub fn run(reporter: Option<Reporter>) -> Vec<Record> {
    SITES
        .iter()
        .map(|&n| {
            let workload = format!("report-{n}");
            match reporter.map(|r| r(n)) {
                Some(Ok((ms, detail))) => Record::Time {
                    workload,
                    ms,
                    detail,
                },
                Some(Err(reason)) => Record::Skip { workload, reason },
                None => Record::Skip {
                    workload,
                    reason: "measured by the modalloc-report binary only".into(),
                },
            }
        })
        .collect()
}
