//! Misuse of the dhat-rs drop-in panics with dhat-rs 0.3's messages: stats
//! without a running profiler or in the other mode, a second profiler,
//! asserting outside testing mode or after a failed assertion.
//!
//! `harness = false`: one profiler per process, so the cases run in order in
//! `main`, each caught with `catch_unwind`.
use mod_alloc::dhat_compat as dhat;
use std::panic::{catch_unwind, UnwindSafe};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn panic_message(f: impl FnOnce() + UnwindSafe) -> String {
    let payload = catch_unwind(f).expect_err("expected a panic");
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        panic!("panic payload is not a string")
    }
}

fn check(name: &str, f: impl FnOnce() + UnwindSafe, expected: &str) {
    std::assert_eq!(panic_message(f), expected, "{name}");
    println!("ok: {name}");
}

fn main() {
    std::panic::set_hook(Box::new(|_| {}));
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dhat-compat-misuse");
    std::fs::create_dir_all(&dir).expect("create the test's directory");

    check(
        "heap stats without a profiler",
        || {
            dhat::HeapStats::get();
        },
        "dhat: getting heap stats when no profiler is running",
    );
    check(
        "ad hoc stats without a profiler",
        || {
            dhat::AdHocStats::get();
        },
        "dhat: getting ad hoc stats when no profiler is running",
    );
    check(
        "asserting without a profiler",
        || dhat::assert!(true),
        "dhat: asserting when no profiler is running",
    );

    let heap = dhat::Profiler::builder()
        .file_name(dir.join("heap.json"))
        .build();
    check(
        "a second profiler",
        || drop(dhat::Profiler::new_ad_hoc()),
        "dhat: creating a profiler while a profiler is already running",
    );
    check(
        "ad hoc stats while heap profiling",
        || {
            dhat::AdHocStats::get();
        },
        "dhat: getting ad hoc stats while doing heap profiling",
    );
    check(
        "asserting outside testing mode",
        || dhat::assert_eq!(1, 1),
        "dhat: asserting while not in testing mode",
    );
    drop(heap);

    let ad_hoc = dhat::Profiler::builder()
        .ad_hoc()
        .file_name(dir.join("ad-hoc.json"))
        .build();
    check(
        "heap stats while ad hoc profiling",
        || {
            dhat::HeapStats::get();
        },
        "dhat: getting heap stats while doing ad hoc profiling",
    );
    drop(ad_hoc);

    let testing = dhat::Profiler::builder()
        .testing()
        .file_name(dir.join("asserted.json"))
        .build();
    check(
        "a failed assertion",
        || dhat::assert!(1 + 1 == 3),
        "dhat: assertion failed: 1 + 1 == 3",
    );
    check(
        "asserting after a failed assertion",
        || dhat::assert_ne!(1, 2),
        "dhat: asserting after the profiler has asserted",
    );
    check(
        "heap stats after a failed assertion",
        || {
            dhat::HeapStats::get();
        },
        "dhat: getting heap stats after the profiler has asserted",
    );
    drop(testing);

    // Dropped: a new profiler may start.
    drop(dhat::Profiler::builder().testing().build());
    println!("dhat_compat_misuse: ok");
}
