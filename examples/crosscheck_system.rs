//! The valgrind cross-check's workload with the system allocator, to run
//! under `valgrind --tool=dhat` (see `scripts/valgrind-crosscheck`).
#[path = "crosscheck/workload.rs"]
mod workload;

fn main() {
    std::process::exit(if workload::run() > 0 { 0 } else { 1 });
}
