//! Benchmark binary: `stats_alloc` (global atomic counters over `System`).
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    mod_alloc_bench::run(mod_alloc_bench::Options::default());
}
