//! The quick start: count what a piece of code allocates.
//!
//! ```text
//! cargo run --example basic
//! ```
use mod_alloc::{ModAlloc, Profiler};

#[global_allocator]
static GLOBAL: ModAlloc = ModAlloc::new();

fn main() {
    let p = Profiler::start();
    let v: Vec<u64> = (0..1000).collect();
    drop(v);
    let stats = p.stop();
    println!("Allocations: {}", stats.alloc_count);
    println!("Total bytes: {}", stats.total_bytes);
    println!("Peak bytes:  {}", stats.peak_bytes);
    println!("Live bytes:  {}", stats.current_bytes);

    let process = GLOBAL.snapshot();
    println!(
        "Whole process so far: {} allocations, {} bytes, peak {} bytes",
        process.alloc_count, process.total_bytes, process.peak_bytes
    );
}
