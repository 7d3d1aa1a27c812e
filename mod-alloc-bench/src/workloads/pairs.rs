//! Alloc+free pairs: small ones (32 bytes, as a `Box<[u8; 32]>`) on 1 thread
//! and on 2 threads at once, and large ones (64 KiB, past glibc's thread
//! cache) on 1 thread.

use super::{Direct, Global, Heap};
use crate::measure::{self, Budget, SpinBarrier};
use crate::protocol::Record;
use crate::run::Options;
use std::alloc::Layout;
use std::hint::black_box;
use std::time::Instant;

const LAYOUT: Layout = match Layout::from_size_align(32, 8) {
    Ok(l) => l,
    Err(_) => panic!("32/8 is a valid layout"),
};

const BIG: Layout = match Layout::from_size_align(64 * 1024, 8) {
    Ok(l) => l,
    Err(_) => panic!("64 KiB/8 is a valid layout"),
};

/// `n` alloc+free pairs of 32 bytes.
#[inline(never)]
pub fn pairs<H: Heap>(h: H, n: u64) {
    pairs_of(h, n, LAYOUT);
}

/// `n` alloc+free pairs of 64 KiB.
#[inline(never)]
pub fn big_pairs<H: Heap>(h: H, n: u64) {
    pairs_of(h, n, BIG);
}

#[inline(always)]
fn pairs_of<H: Heap>(h: H, n: u64, layout: Layout) {
    for _ in 0..n {
        // SAFETY: non-zero size; the block is freed right away with its layout.
        let p = unsafe { h.alloc(layout) };
        black_box(p);
        if !p.is_null() {
            // SAFETY: `p` came from `h.alloc(layout)` just above.
            unsafe { h.dealloc(p, layout) };
        }
    }
}

/// Pairs on this thread, against `System` pairs on this thread.
pub fn one_thread(budget: Budget) -> Vec<Record> {
    on_this_thread(
        budget,
        "pair-1t",
        |n| pairs(Global, n),
        |n| pairs(Direct, n),
    )
}

/// 64 KiB pairs on this thread, against `System` pairs on this thread. A free
/// of a large block is what moves a thread's live bytes the most.
pub fn big_one_thread(budget: Budget) -> Vec<Record> {
    on_this_thread(
        budget,
        "pair-64k",
        |n| big_pairs(Global, n),
        |n| big_pairs(Direct, n),
    )
}

/// Times `global` (through the global allocator) against `direct` (`System`
/// called directly), each given a pair count, interleaved on this thread;
/// the samples as records of `workload`.
fn on_this_thread(
    budget: Budget,
    workload: &str,
    mut global: impl FnMut(u64),
    mut direct: impl FnMut(u64),
) -> Vec<Record> {
    measure::paired(budget, 1, &mut global, &mut direct)
        .iter()
        .map(|p| p.record(workload))
        .collect()
}

/// Pairs on two threads at once (each against its own `System` pairs),
/// keeping the rounds where the two threads overlapped.
pub fn two_threads(budget: Budget, opts: &Options) -> Vec<Record> {
    let nm = measure::calibrate(&mut |n| pairs(Global, n), budget.batch);
    let nr = measure::calibrate(&mut |n| pairs(Direct, n), budget.batch);
    // A round is two batches; keep to the budget, with enough rounds to
    // survive the overlap filter.
    let round_ms = 2.0 * budget.batch.as_secs_f64() * 1e3;
    let rounds = ((budget.total.as_secs_f64() * 1e3 / round_ms) as usize).clamp(21, 301);
    let barrier = SpinBarrier::new(2);
    let epoch = Instant::now();
    let run = || {
        let _scope = opts.scope.map(|open| open());
        measure::paired_at_barrier(
            &barrier,
            epoch,
            rounds,
            nm,
            nr,
            1,
            &mut |n| pairs(Global, n),
            &mut |n| pairs(Direct, n),
        )
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(run);
        let b = s.spawn(run);
        (a.join(), b.join())
    });
    let (Ok(a), Ok(b)) = (a, b) else {
        return vec![Record::Skip {
            workload: "pair-2t".into(),
            reason: "a thread panicked".into(),
        }];
    };
    let kept = measure::overlapping(&a, &b);
    if kept.is_empty() {
        return vec![Record::Skip {
            workload: "pair-2t".into(),
            reason: "no round overlapped (machine too busy)".into(),
        }];
    }
    kept.iter().map(|p| p.record("pair-2t")).collect()
}
