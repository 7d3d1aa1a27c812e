//! The valgrind cross-check's workload with ModAlloc, writing its own DHAT
//! file to the path given as the first argument (see
//! `scripts/valgrind-crosscheck`).
#[path = "crosscheck/workload.rs"]
mod workload;

#[global_allocator]
static GLOBAL: mod_alloc::ModAlloc = mod_alloc::ModAlloc::new();

fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: crosscheck_mod_alloc OUT.json");
    GLOBAL.set_backtrace_depth(32);
    GLOBAL.reset();
    let n = workload::run();
    GLOBAL.write_dhat_json(&out).expect("write the DHAT file");
    std::process::exit(if n > 0 { 0 } else { 1 });
}
