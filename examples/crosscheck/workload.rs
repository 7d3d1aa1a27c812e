//! The deterministic workload of `scripts/valgrind-crosscheck`, shared by
//! `crosscheck_system` (run under `valgrind --tool=dhat`) and
//! `crosscheck_mod_alloc` (ModAlloc writing its own DHAT file).
//!
//! Every function that allocates is `#[inline(never)]` and named here; the
//! script compares the blocks and bytes of each, and the peak. The peak is
//! the last growth of `peak_vec`, after every thread has been joined, so it
//! does not depend on scheduling: threads run one at a time (spawned, then
//! joined before the next) and hand their blocks back to the caller.
// Boxes in vectors on purpose: one block per element.
#![allow(clippy::vec_box)]

use std::hint::black_box;

/// Three box sites: 10 x 24 bytes, 5 x 128 bytes, 3 x 100-byte strings.
#[inline(never)]
pub(crate) fn boxes_a() -> Vec<Box<[u8; 24]>> {
    let mut out = Vec::with_capacity(10);
    for i in 0..10u8 {
        out.push(black_box(Box::new([i; 24])));
    }
    out
}

#[inline(never)]
pub(crate) fn boxes_b() {
    for i in 0..5u64 {
        drop(black_box(Box::new([i; 16])));
    }
}

#[inline(never)]
pub(crate) fn boxes_c() -> Vec<String> {
    (0..3)
        .map(|_| black_box(String::with_capacity(100)))
        .collect()
}

/// Vec growth: 1,000 pushes, the buffer reallocated as it doubles.
#[inline(never)]
pub(crate) fn grow_vec() -> usize {
    let mut v: Vec<u32> = Vec::new();
    for i in 0..1000 {
        v.push(black_box(i));
    }
    v.len()
}

/// 200 blocks of 64 bytes, each freed at once.
#[inline(never)]
pub(crate) fn short_lived() {
    for i in 0..200u64 {
        drop(black_box(Box::new([i; 8])));
    }
}

/// 20 blocks of 64 bytes, kept to the end.
#[inline(never)]
pub(crate) fn long_lived() -> Vec<Box<[u64; 8]>> {
    (0..20u64).map(|i| black_box(Box::new([i; 8]))).collect()
}

/// One worker thread's blocks: 50 x 32 bytes, handed back to the caller.
#[inline(never)]
pub(crate) fn worker(seed: u64) -> Vec<Box<[u64; 4]>> {
    (0..50u64)
        .map(|i| black_box(Box::new([seed + i; 4])))
        .collect()
}

/// The peak: 64 KiB grown by doubling, freed after the peak.
#[inline(never)]
pub(crate) fn peak_vec() -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..65536u32 {
        v.push(i as u8);
    }
    v
}

/// Runs everything; the blocks kept are live at the peak.
#[inline(never)]
pub(crate) fn run() -> usize {
    let a = boxes_a();
    boxes_b();
    let c = boxes_c();
    let grown = grow_vec();
    short_lived();
    let long = long_lived();
    let mut from_threads = Vec::new();
    for t in 0..4u64 {
        let h = std::thread::spawn(move || worker(t * 100));
        from_threads.push(h.join().expect("worker"));
    }
    let peak = peak_vec();
    let n = a.len() + c.len() + grown + long.len() + from_threads.len() + peak.len();
    drop(black_box(peak));
    drop(black_box(from_threads));
    drop(black_box((a, c, long)));
    n
}
