//! Benchmark binary: `allocation-counter` (thread-local counters). The crate
//! installs its own `#[global_allocator]` when linked; it counts on every
//! thread whether or not a `measure` call is active.
use allocation_counter as _;

fn main() {
    mod_alloc_bench::run(mod_alloc_bench::Options::default());
}
