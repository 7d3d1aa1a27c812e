//! dhat-rs's heap usage testing example, ported: in testing mode
//! `dhat::assert!`, `assert_eq!` and `assert_ne!` check `HeapStats`; nothing is
//! written when they pass, and a failing one writes the profile, prints the
//! summary, then panics with dhat-rs's message.
//!
//! `harness = false`; the failing case runs in a child process (itself, with
//! `DHAT_COMPAT_CHILD=fail`), since a failed assertion ends the profiler.
use mod_alloc::dhat_compat as dhat;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const CHILD: &str = "DHAT_COMPAT_CHILD";

/// dhat-rs's documented test, with the swap.
fn passing_assertions_write_nothing(dir: &std::path::Path) {
    let file = dir.join("passing.json");
    let _ = std::fs::remove_file(&file);
    {
        let _profiler = dhat::Profiler::builder().testing().file_name(&file).build();

        let _v1 = black_box(vec![1u32, 2, 3, 4]);
        let v2 = black_box(vec![5u32, 6, 7, 8]);
        drop(v2);
        let v3 = black_box(vec![9u32, 10, 11, 12]);
        drop(v3);

        let stats = dhat::HeapStats::get();

        // Three allocations were done in total.
        dhat::assert_eq!(stats.total_blocks, 3);
        dhat::assert_eq!(stats.total_bytes, 48);

        // At the point of peak heap size, two allocations totalling 32 bytes existed.
        dhat::assert_eq!(stats.max_blocks, 2);
        dhat::assert_eq!(stats.max_bytes, 32);

        // Now a single allocation remains alive.
        dhat::assert_eq!(stats.curr_blocks, 1);
        dhat::assert_eq!(stats.curr_bytes, 16);

        dhat::assert!(stats.total_bytes > 0);
        dhat::assert!(stats.total_bytes > 0, "with a message {}", 1);
        dhat::assert_ne!(stats.curr_bytes, 0);
        dhat::assert_ne!(stats.curr_bytes, 0, "with a message {}", 2);
    }
    std::assert!(
        !file.exists(),
        "testing mode writes nothing when assertions pass"
    );
}

/// The child: a failing assertion (the profile is written, then it panics).
fn failing_assertion(file: &str) {
    let _profiler = dhat::Profiler::builder().testing().file_name(file).build();
    let _v = black_box(vec![0u8; 1000]);
    let stats = dhat::HeapStats::get();
    dhat::assert_eq!(stats.total_bytes, 999, "too many bytes");
}

fn main() {
    if let Ok(file) = std::env::var(CHILD) {
        failing_assertion(&file);
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dhat-compat-testing");
    std::fs::create_dir_all(&dir).expect("create the test's directory");
    passing_assertions_write_nothing(&dir);

    let file = dir.join("failing-assertion.json");
    let _ = std::fs::remove_file(&file);
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD, &file)
        .output()
        .expect("run the failing child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    std::assert!(!out.status.success(), "the failing assertion panics");
    let summary = format!(
        "dhat: Total:     1,000 bytes in 1 blocks\n\
         dhat: At t-gmax: 1,000 bytes in 1 blocks\n\
         dhat: At t-end:  1,000 bytes in 1 blocks\n\
         dhat: The data has been saved to {}, and is viewable with dhat/dh_view.html\n",
        file.display()
    );
    std::assert!(stderr.starts_with(&summary), "stderr:\n{stderr}");
    std::assert!(
        stderr.contains(
            "dhat: assertion failed: `(left == right)`\n  left: `1000`,\n right: `999`: too many bytes"
        ),
        "stderr:\n{stderr}"
    );
    let text = std::fs::read_to_string(&file).expect("the failing assertion wrote the profile");
    let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    std::assert_eq!(json["mode"], "rust-heap");
    let tb: u64 = json["pps"]
        .as_array()
        .expect("pps")
        .iter()
        .map(|pp| pp["tb"].as_u64().expect("tb"))
        .sum();
    std::assert_eq!(tb, 1000);
    println!("dhat_compat_testing: ok ({})", file.display());
}
