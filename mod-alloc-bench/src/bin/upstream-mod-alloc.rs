//! Benchmark binary: upstream `mod-alloc` 1.0.1 from crates.io (global atomic
//! counters), the crate this workspace re-imagines.
use upstream_mod_alloc::ModAlloc;

#[global_allocator]
static GLOBAL: ModAlloc = ModAlloc::new();

fn main() {
    mod_alloc_bench::run(mod_alloc_bench::Options::default());
}
