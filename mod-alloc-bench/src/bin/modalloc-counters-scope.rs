//! Benchmark binary: mod-alloc, counters only, with a `Profiler` scope open on
//! every thread that runs a workload (what `#[alloc_test]` does).
use mod_alloc::{ModAlloc, Profiler};

#[global_allocator]
static GLOBAL: ModAlloc = ModAlloc::new();

fn main() {
    mod_alloc_bench::run(mod_alloc_bench::Options {
        scope: Some(|| Box::new(Profiler::start())),
        ..Default::default()
    });
}
