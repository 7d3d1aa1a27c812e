//! Benchmark binary: `System` as the global allocator (the baseline).
use std::alloc::System;

#[global_allocator]
static GLOBAL: System = System;

fn main() {
    mod_alloc_bench::run(mod_alloc_bench::Options::default());
}
