//! Benchmark binary: mod-alloc with `backtraces` (call-site capture), no scope.
use mod_alloc::ModAlloc;

#[global_allocator]
static GLOBAL: ModAlloc = ModAlloc::new();

fn main() {
    mod_alloc_bench::run(mod_alloc_bench::Options::default());
}
