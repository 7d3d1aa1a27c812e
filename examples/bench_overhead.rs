//! Overhead per alloc+free pair: `ModAlloc` (counters) against `System`,
//! at 1 and 2 threads, measured side by side in one process.
//!
//! ```text
//! cargo run --release --example bench_overhead
//! ```
//!
//! Each round times a batch of pairs through the global allocator (`ModAlloc`)
//! and the same batch calling `System` directly, interleaved on the same
//! thread, and keeps their ratio; the report gives the median ratio. At 2
//! threads, both threads start each round at a spinning barrier, and a round is
//! kept only if the two threads' timed batches really overlapped.
// Each timed pair is one block: one SAFETY note for the alloc and its free.
#![allow(clippy::multiple_unsafe_ops_per_block)]

use mod_alloc::ModAlloc;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

#[global_allocator]
static GLOBAL: ModAlloc = ModAlloc::new();

const PAIRS: usize = 20_000;
const ROUNDS: usize = 201;

fn batch_global(layout: Layout) -> u64 {
    let t = Instant::now();
    for _ in 0..PAIRS {
        // SAFETY: non-zero layout; the block is freed right away with it.
        unsafe {
            let p = GLOBAL.alloc(layout);
            black_box(p);
            GLOBAL.dealloc(p, layout);
        }
    }
    t.elapsed().as_nanos() as u64
}

fn batch_system(layout: Layout) -> u64 {
    let t = Instant::now();
    for _ in 0..PAIRS {
        // SAFETY: non-zero layout; the block is freed right away with it.
        unsafe {
            let p = System.alloc(layout);
            black_box(p);
            System.dealloc(p, layout);
        }
    }
    t.elapsed().as_nanos() as u64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// One thread's rounds: (ratio, ns per pair of ModAlloc, ns per pair of System,
/// start, end) of each round.
fn rounds(barrier: &SpinBarrier, epoch: Instant) -> Vec<(f64, f64, f64, u64, u64)> {
    let layout = Layout::from_size_align(32, 8).unwrap();
    let mut out = Vec::with_capacity(ROUNDS);
    for r in 0..ROUNDS {
        barrier.wait();
        let start = epoch.elapsed().as_nanos() as u64;
        // Alternate which side goes first, so neither always gets a warm cache.
        let (m, s) = if r % 2 == 0 {
            let m = batch_global(layout);
            (m, batch_system(layout))
        } else {
            let s = batch_system(layout);
            (batch_global(layout), s)
        };
        let end = epoch.elapsed().as_nanos() as u64;
        out.push((
            m as f64 / s as f64,
            m as f64 / PAIRS as f64,
            s as f64 / PAIRS as f64,
            start,
            end,
        ));
    }
    out
}

struct SpinBarrier {
    n: usize,
    arrived: AtomicUsize,
}

impl SpinBarrier {
    fn wait(&self) {
        let ticket = self.arrived.fetch_add(1, Ordering::AcqRel);
        let target = (ticket / self.n + 1) * self.n;
        while self.arrived.load(Ordering::Acquire) < target {
            std::hint::spin_loop();
        }
    }
}

fn report(label: &str, rows: &mut [(f64, f64, f64)]) -> f64 {
    let mut ratios: Vec<f64> = rows.iter().map(|r| r.0).collect();
    let mut m: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let mut s: Vec<f64> = rows.iter().map(|r| r.2).collect();
    let ratio = median(&mut ratios);
    println!(
        "{label:<28} System {:>6.1} ns/pair   ModAlloc {:>6.1} ns/pair   ratio {:.3}x  ({} rounds)",
        median(&mut s),
        median(&mut m),
        ratio,
        rows.len()
    );
    ratio
}

fn main() {
    let epoch = Instant::now();
    let one = SpinBarrier {
        n: 1,
        arrived: AtomicUsize::new(0),
    };
    let mut rows: Vec<(f64, f64, f64)> = rounds(&one, epoch)
        .into_iter()
        .map(|r| (r.0, r.1, r.2))
        .collect();
    let r1 = report("1 thread", &mut rows);

    let two = SpinBarrier {
        n: 2,
        arrived: AtomicUsize::new(0),
    };
    let (a, b) = std::thread::scope(|t| {
        let a = t.spawn(|| rounds(&two, epoch));
        let b = t.spawn(|| rounds(&two, epoch));
        (a.join().unwrap(), b.join().unwrap())
    });
    // Keep the rounds where both threads' batches overlapped for most of
    // their length (else the scheduler ran them one after the other).
    let mut rows = Vec::new();
    for (x, y) in a.iter().zip(&b) {
        let overlap = x.4.min(y.4).saturating_sub(x.3.max(y.3)) as f64;
        let shorter = (x.4 - x.3).min(y.4 - y.3) as f64;
        if overlap >= 0.8 * shorter {
            rows.push((x.0, x.1, x.2));
            rows.push((y.0, y.1, y.2));
        }
    }
    if rows.is_empty() {
        println!("2 threads: no round overlapped (machine too busy); no figure");
        return;
    }
    let r2 = report("2 threads (per op, overlap)", &mut rows);
    println!(
        "ModAlloc (counters) ran {:.2}x the time of System at 1 thread and {:.2}x at 2 threads",
        r1, r2
    );
}
