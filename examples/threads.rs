//! Scopes on several threads: each thread's scope counts only its own
//! allocations, and a scope can be joined by worker threads to budget work
//! spread over them.
//!
//! ```text
//! cargo run --example threads
//! ```
use mod_alloc::{ModAlloc, Profiler};
use std::sync::Barrier;
use std::thread;

#[global_allocator]
static GLOBAL: ModAlloc = ModAlloc::new();

fn work(n: usize) -> usize {
    let v: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    v.iter().map(String::len).sum()
}

fn main() {
    // Per-thread scopes: four threads, each measuring itself while the others
    // allocate at the same time.
    let start = Barrier::new(4);
    thread::scope(|t| {
        for id in 1..=4usize {
            let start = &start;
            t.spawn(move || {
                start.wait();
                let p = Profiler::start();
                let chars = work(id * 100);
                let s = p.stop();
                println!(
                    "thread {id}: {chars} chars, {} allocations, {} bytes, peak {} bytes",
                    s.alloc_count, s.total_bytes, s.peak_bytes
                );
            });
        }
    });

    // One scope joined by workers: the main thread's budget covers them.
    let workers: Vec<_> = {
        let p = Profiler::start();
        let h = p.handle();
        let results: Vec<usize> = thread::scope(|t| {
            let joins: Vec<_> = (0..3)
                .map(|_| {
                    let h = h.clone();
                    t.spawn(move || h.run(|| work(1000)))
                })
                .collect();
            joins.into_iter().map(|j| j.join().unwrap()).collect()
        });
        let s = p.stop();
        println!(
            "joined scope: {} allocations, {} bytes, peak {} bytes \
             (the 3 workers' work, and what spawning them allocated here)",
            s.alloc_count, s.total_bytes, s.peak_bytes
        );
        results
    };
    println!("workers counted {} chars", workers.iter().sum::<usize>());
}
