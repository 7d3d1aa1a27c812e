//! Benchmark binary: dhat-rs 0.3.3 heap profiler (`dhat::Alloc`), with
//! `Profiler::new_heap()` running for the whole process.
#[global_allocator]
static GLOBAL: dhat::Alloc = dhat::Alloc;

fn main() {
    let profiler = dhat::Profiler::new_heap();
    mod_alloc_bench::run(mod_alloc_bench::Options::default());
    // Dropping it would write dhat-heap.json into the working directory.
    std::mem::forget(profiler);
}
