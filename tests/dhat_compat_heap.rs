//! dhat-rs's heap-profiling example, ported: a program written for `dhat` 0.3
//! with the one-line swap gives dhat-rs's totals, prints its summary lines and
//! writes `dhat-heap.json` in the current directory when the profiler drops.
//!
//! `harness = false`: the profiler counts the whole process, so the test owns
//! it. The parent process runs the profiled program as a child (itself, with
//! `DHAT_COMPAT_CHILD` set) to read what it prints to stderr.
use mod_alloc::dhat_compat as dhat;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const CHILD: &str = "DHAT_COMPAT_CHILD";

/// The profiled program: 3 blocks, 48 bytes; peak 32 bytes in 2 blocks; 16
/// bytes in 1 block left at the end (dhat-rs's documented example).
fn profiled_main() {
    let _profiler = dhat::Profiler::new_heap();

    let v1 = black_box(vec![1u32, 2, 3, 4]);
    let v2 = black_box(vec![5u32, 6, 7, 8]);
    drop(v2);
    let v3 = black_box(vec![9u32, 10, 11, 12]);
    drop(v3);

    let stats = dhat::HeapStats::get();
    std::assert_eq!(stats.total_blocks, 3);
    std::assert_eq!(stats.total_bytes, 48);
    std::assert_eq!(stats.max_blocks, 2);
    std::assert_eq!(stats.max_bytes, 32);
    std::assert_eq!(stats.curr_blocks, 1);
    std::assert_eq!(stats.curr_bytes, 16);
    std::mem::forget(v1); // still live when the profiler drops
}

fn work_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dhat-compat-heap");
    std::fs::create_dir_all(&dir).expect("create the test's directory");
    dir
}

fn sum(json: &serde_json::Value, field: &str) -> u64 {
    json["pps"]
        .as_array()
        .expect("pps")
        .iter()
        .map(|pp| pp[field].as_u64().expect(field))
        .sum()
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        profiled_main();
        return;
    }
    let dir = work_dir();
    let file = dir.join("dhat-heap.json");
    let _ = std::fs::remove_file(&file);
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD, "1")
        .current_dir(&dir)
        .output()
        .expect("run the profiled child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    std::assert!(out.status.success(), "child failed:\n{stderr}");

    // dhat-rs's summary lines, with the same spacing.
    let expected = "dhat: Total:     48 bytes in 3 blocks\n\
                    dhat: At t-gmax: 32 bytes in 2 blocks\n\
                    dhat: At t-end:  16 bytes in 1 blocks\n\
                    dhat: The data has been saved to dhat-heap.json, and is viewable with dhat/dh_view.html\n";
    std::assert_eq!(stderr, expected);

    // The file: heap mode, and its totals are the ones printed.
    let text = std::fs::read_to_string(&file).expect("dhat-heap.json written on drop");
    let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    std::assert_eq!(json["mode"], "rust-heap");
    std::assert_eq!(json["bklt"], true);
    std::assert_eq!(json["ftbl"][0], "[root]");
    std::assert_eq!(sum(&json, "tb"), 48);
    std::assert_eq!(sum(&json, "tbk"), 3);
    std::assert_eq!(sum(&json, "gb"), 32);
    std::assert_eq!(sum(&json, "gbk"), 2);
    std::assert_eq!(sum(&json, "eb"), 16);
    std::assert_eq!(sum(&json, "ebk"), 1);
    println!("dhat_compat_heap: ok ({})", file.display());
}
