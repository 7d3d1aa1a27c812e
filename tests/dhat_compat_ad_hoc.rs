//! dhat-rs's ad-hoc-profiling example, ported: `dhat::ad_hoc_event` counts
//! weighted events per call stack; the profiler prints dhat-rs's summary and
//! writes `dhat-ad-hoc.json` (`mode: "rust-ad-hoc"`) when it drops.
//!
//! `harness = false`, with the profiled program run as a child process (see
//! `dhat_compat_heap.rs`).
use mod_alloc::dhat_compat as dhat;
use std::path::PathBuf;
use std::process::Command;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const CHILD: &str = "DHAT_COMPAT_CHILD";

// Each event function does something after its call, so an optimising build
// cannot turn the call into a tail jump that leaves no frame to find.
#[inline(never)]
fn small_event() {
    dhat::ad_hoc_event(1);
    std::hint::black_box(());
}

#[inline(never)]
fn large_event(weight: usize) {
    dhat::ad_hoc_event(weight);
    std::hint::black_box(());
}

/// 10 small events and 3 large ones: 13 events, 10 + 3 * 100 = 310 units.
fn profiled_main() {
    let _profiler = dhat::Profiler::new_ad_hoc();
    for _ in 0..10 {
        small_event();
    }
    for _ in 0..3 {
        large_event(100);
    }
    let stats = dhat::AdHocStats::get();
    std::assert_eq!(stats.total_events, 13);
    std::assert_eq!(stats.total_units, 310);
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        profiled_main();
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dhat-compat-ad-hoc");
    std::fs::create_dir_all(&dir).expect("create the test's directory");
    let file = dir.join("dhat-ad-hoc.json");
    let _ = std::fs::remove_file(&file);
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD, "1")
        .current_dir(&dir)
        .output()
        .expect("run the profiled child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    std::assert!(out.status.success(), "child failed:\n{stderr}");
    std::assert_eq!(
        stderr,
        "dhat: Total:     310 units in 13 events\n\
         dhat: The data has been saved to dhat-ad-hoc.json, and is viewable with dhat/dh_view.html\n"
    );

    let text = std::fs::read_to_string(&file).expect("dhat-ad-hoc.json written on drop");
    let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    std::assert_eq!(json["mode"], "rust-ad-hoc");
    std::assert_eq!(json["bklt"], false);
    std::assert_eq!(json["bu"], "unit");
    std::assert_eq!(json["bsu"], "units");
    std::assert_eq!(json["bksu"], "events");
    std::assert!(json.get("tg").is_none() && json.get("tuth").is_none());
    let ftbl: Vec<&str> = json["ftbl"]
        .as_array()
        .expect("ftbl")
        .iter()
        .map(|s| s.as_str().expect("frame string"))
        .collect();
    // Each event site is a program point whose innermost frame is its caller.
    let per_function = |name: &str| -> (u64, u64) {
        let mut sums = (0, 0);
        for pp in json["pps"].as_array().expect("pps") {
            let first = pp["fs"][0].as_u64().expect("fs") as usize;
            if ftbl[first].contains(name) {
                sums.0 += pp["tbk"].as_u64().expect("tbk");
                sums.1 += pp["tb"].as_u64().expect("tb");
            }
            std::assert!(pp.get("tl").is_none(), "no lifetimes in ad-hoc mode");
        }
        sums
    };
    std::assert_eq!(per_function("dhat_compat_ad_hoc::small_event"), (10, 10));
    std::assert_eq!(per_function("dhat_compat_ad_hoc::large_event"), (3, 300));
    std::assert!(
        !ftbl.iter().any(|f| f.contains("mod_alloc::")),
        "ad_hoc_event's own frame is trimmed: {ftbl:?}"
    );
    println!("dhat_compat_ad_hoc: ok ({})", file.display());
}
