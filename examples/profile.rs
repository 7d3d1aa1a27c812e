//! Profile a small program's heap: where it allocates, how much, for how long.
//!
//! ```text
//! cargo run --release --example profile --features dhat-compat
//! ```
//!
//! The workload has a few call sites: a long-lived configuration table, short
//! strings parsed and thrown away, vectors that grow by reallocation, and four
//! worker threads building index chunks that the main thread keeps. After the
//! workers are joined it prints the process figures and the top call sites,
//! writes a DHAT profile (for valgrind's viewer `dh_view.html`) and folded
//! stacks (for `inferno-flamegraph`), and prints their paths.
//!
//! Files go to `$MOD_ALLOC_DIR`, else `<target>/mod-alloc/`. The totals
//! printed under "DHAT profile" are read back from the written file, so they
//! are exactly what the viewer shows. Its "At t-gmax" sums each thread's
//! blocks at that thread's own peak: here it exceeds the process peak by the
//! four thread-spawn packets the main thread allocated and the workers freed.
use mod_alloc::{FoldedWeight, ModAlloc};
use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::thread;

#[global_allocator]
static GLOBAL: ModAlloc = ModAlloc::new();

/// Long-lived: settings kept for the whole run.
#[inline(never)]
fn load_config() -> HashMap<String, String> {
    (0..64)
        .map(|i| (format!("key.{i}"), format!("value number {i}")))
        .collect()
}

/// Short-lived: each line is split into owned words, used, and dropped.
#[inline(never)]
fn parse_line(line: &str) -> usize {
    let words: Vec<String> = line.split(' ').map(str::to_owned).collect();
    black_box(&words);
    words.iter().map(String::len).sum()
}

/// Vec growth: pushes one at a time, so the buffer is reallocated as it grows.
/// The caller keeps the result.
#[inline(never)]
fn collect_ids(n: u64) -> Vec<u64> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(i * 7);
    }
    ids
}

/// One worker's share of the index: boxed entries (one block each, on
/// purpose), kept by the caller.
#[allow(clippy::vec_box)]
#[inline(never)]
fn build_index_chunk(worker: u64) -> Vec<Box<[u64; 8]>> {
    (0..200).map(|i| Box::new([worker * 1000 + i; 8])).collect()
}

/// Where the files go: `$MOD_ALLOC_DIR`, else `<target>/mod-alloc`.
fn output_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MOD_ALLOC_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            exe.ancestors()
                .find(|dir| dir.join("CACHEDIR.TAG").is_file())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("mod-alloc")
}

/// `1234567` -> `1,234,567`, as the viewer shows numbers.
fn commas(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

fn main() {
    // Count from here: what the runtime allocated before main is left out.
    GLOBAL.reset();

    let config = load_config();
    let mut words = 0;
    for i in 0..500 {
        words += parse_line(&format!("record {i} of the input with some words"));
    }
    // Workers run and are joined before the main thread reaches the peak, so
    // the peak (and every figure printed below) does not depend on how the
    // threads were scheduled.
    let index: Vec<Vec<Box<[u64; 8]>>> = thread::scope(|t| {
        let workers: Vec<_> = (0..4)
            .map(|w| t.spawn(move || build_index_chunk(w)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker panicked"))
            .collect()
    });
    // The peak: the last growth of `ids`. Then it shrinks (a smaller realloc).
    let mut ids = collect_ids(10_000);
    ids.truncate(100);
    ids.shrink_to_fit();

    // The figures and the profile, read back to back: nothing allocates in
    // between (the profile is built with tracking suspended).
    let process = GLOBAL.snapshot();
    let json = GLOBAL.dhat_json_string();
    let folded = GLOBAL.folded_stacks(FoldedWeight::Bytes);
    let report = GLOBAL.symbolicated_report();

    let dir = output_dir();
    std::fs::create_dir_all(&dir).expect("create the output directory");
    let dhat_path = dir.join("profile.json");
    let folded_path = dir.join("profile.folded");
    std::fs::write(&dhat_path, &json).expect("write the DHAT profile");
    std::fs::write(&folded_path, &folded).expect("write the folded stacks");

    let written: serde_json::Value = serde_json::from_str(&json).expect("the profile is JSON");
    let sum = |field: &str| -> u64 {
        written["pps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|pp| pp[field].as_u64())
            .sum()
    };

    println!(
        "workload: {} config entries, {words} words parsed, {} index chunks",
        config.len(),
        index.len()
    );
    println!();
    println!("process (since the reset at the start of main):");
    println!(
        "  {} allocations, {} bytes; peak {} bytes; {} bytes in {} blocks still live",
        commas(process.alloc_count),
        commas(process.total_bytes),
        commas(process.peak_bytes),
        commas(process.current_bytes),
        commas(process.current_blocks)
    );
    println!();
    print!("{report}");
    println!();
    println!("DHAT profile: {}", dhat_path.display());
    for (label, bytes, blocks) in [
        ("Total:    ", "tb", "tbk"),
        ("At t-gmax:", "gb", "gbk"),
        ("At t-end: ", "eb", "ebk"),
    ] {
        println!(
            "  {label} {} bytes in {} blocks",
            commas(sum(bytes)),
            commas(sum(blocks))
        );
    }
    println!("  open it in valgrind's viewer: /usr/libexec/valgrind/dh_view.html");
    println!("  (or https://nnethercote.github.io/dh_view/dh_view.html), then \"Load…\"");
    println!("folded stacks (bytes): {}", folded_path.display());
    println!(
        "  flame graph: inferno-flamegraph < {} > profile.svg   (cargo install inferno)",
        folded_path.display()
    );
    drop(black_box(ids));
    drop(black_box(index));
    drop(black_box(config));
}
