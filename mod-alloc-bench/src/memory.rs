//! Memory: extra resident bytes per live block. In one process, 200,000
//! blocks of 32 bytes are allocated on `System` directly, then 200,000
//! through the global allocator; the growth of the resident set (from
//! `/proc/self/statm`) of each batch is compared. Whatever the allocator
//! keeps per block (a header, a hash-map entry, a backtrace) shows up,
//! wherever it keeps it. Linux only. Runs first in the process: blocks freed by
//! earlier workloads would be reused without growing the resident set. The
//! `bench` driver runs it in a process of its own: the 400,000 blocks it frees
//! slowed the workloads after it.

use crate::protocol::Record;
use crate::workloads::{Direct, Global, Heap};
use std::alloc::Layout;

const BLOCKS: usize = 200_000;

fn resident_bytes() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096.0)
}

fn fill<H: Heap>(h: H, ptrs: &mut [*mut u8], layout: Layout) {
    for p in ptrs.iter_mut() {
        // SAFETY: non-zero size.
        *p = unsafe { h.alloc(layout) };
        if !p.is_null() {
            // SAFETY: the block is live and 32 bytes long: touch it, as a
            // program would.
            unsafe { p.write_bytes(1, layout.size()) };
        }
    }
}

fn free<H: Heap>(h: H, ptrs: &[*mut u8], layout: Layout) {
    for &p in ptrs {
        if !p.is_null() {
            // SAFETY: `p` came from `h.alloc(layout)` in `fill`, freed once.
            unsafe { h.dealloc(p, layout) };
        }
    }
}

/// One `bytes` record: (global growth - System growth) / blocks.
pub fn run() -> Vec<Record> {
    let layout = Layout::from_size_align(32, 8).unwrap_or(Layout::new::<u64>());
    let mut direct = vec![std::ptr::null_mut(); BLOCKS];
    let mut global = vec![std::ptr::null_mut(); BLOCKS];
    let r0 = resident_bytes();
    fill(Direct, &mut direct, layout);
    let r1 = resident_bytes();
    fill(Global, &mut global, layout);
    let r2 = resident_bytes();
    free(Global, &global, layout);
    free(Direct, &direct, layout);
    match (r0, r1, r2) {
        (Some(r0), Some(r1), Some(r2)) => vec![Record::Bytes {
            workload: "memory".into(),
            bytes: ((r2 - r1) - (r1 - r0)) / BLOCKS as f64,
        }],
        _ => vec![Record::Skip {
            workload: "memory".into(),
            reason: "no /proc/self/statm".into(),
        }],
    }
}
