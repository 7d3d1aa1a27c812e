//! The DHAT JSON of a scope profile: the fields dhat-rs writes, a well-formed
//! frame table, and totals equal to the scope's `AllocStats`.
//!
//! (The process profile has its own binary, `dhat_json_process.rs`, since
//! process figures count libtest's threads too.)
#![cfg(feature = "dhat-compat")]

use mod_alloc::{ModAlloc, Profiler};
use serde_json::Value;
use std::collections::HashSet;
use std::hint::black_box;

#[global_allocator]
static GLOBAL: ModAlloc = ModAlloc::new();

/// The top-level fields of a heap profile, in dhat-rs's order.
const HEAP_FIELDS: &[&str] = &[
    "dhatFileVersion",
    "mode",
    "verb",
    "bklt",
    "bkacc",
    "tu",
    "Mtu",
    "tuth",
    "cmd",
    "pid",
    "tg",
    "te",
    "pps",
    "ftbl",
];

/// Checks the structure every heap profile must have; returns the parsed JSON.
fn check_heap_structure(text: &str) -> Value {
    let json: Value = serde_json::from_str(text).expect("valid JSON");
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix('"'))
        .filter_map(|l| l.split_once("\":").map(|(k, _)| k))
        .filter(|k| HEAP_FIELDS.contains(k))
        .collect();
    assert_eq!(keys, HEAP_FIELDS, "top-level fields, in dhat-rs's order");
    assert_eq!(json["dhatFileVersion"], 2);
    assert_eq!(json["mode"], "rust-heap");
    assert_eq!(json["verb"], "Allocated");
    assert_eq!(json["bklt"], true);
    assert_eq!(json["bkacc"], false);
    assert_eq!(json["tu"], "µs");
    assert_eq!(json["Mtu"], "s");
    assert_eq!(json["tuth"], 10);
    assert_eq!(json["pid"], std::process::id());
    assert!(json["tg"].as_u64().expect("tg") <= json["te"].as_u64().expect("te"));
    for absent in ["bu", "bsu", "bksu"] {
        assert!(
            json.get(absent).is_none(),
            "{absent} is not written in heap mode"
        );
    }
    let ftbl: Vec<&str> = json["ftbl"]
        .as_array()
        .expect("ftbl")
        .iter()
        .map(|f| f.as_str().expect("ftbl holds strings"))
        .collect();
    assert_eq!(ftbl[0], "[root]");
    assert_eq!(
        ftbl.iter().collect::<HashSet<_>>().len(),
        ftbl.len(),
        "no string twice in ftbl"
    );
    for frame in &ftbl[1..] {
        assert!(frame.starts_with("0x") && frame.contains(": "), "{frame}");
        assert!(frame.ends_with(')'), "{frame}");
    }
    let mut stacks = HashSet::new();
    for pp in json["pps"].as_array().expect("pps") {
        for field in ["tb", "tbk", "tl", "mb", "mbk", "gb", "gbk", "eb", "ebk"] {
            assert!(pp[field].is_u64(), "{field} in {pp}");
        }
        assert!(pp["gb"].as_u64() <= pp["mb"].as_u64(), "gb <= mb in {pp}");
        assert!(pp["eb"].as_u64() <= pp["mb"].as_u64(), "eb <= mb in {pp}");
        assert!(pp["mb"].as_u64() <= pp["tb"].as_u64(), "mb <= tb in {pp}");
        // No block lives longer than the profile (times are whole µs).
        let te = json["te"].as_u64().expect("te");
        assert!(
            pp["tl"].as_u64().expect("tl") <= pp["tbk"].as_u64().expect("tbk") * (te + 1),
            "tl <= tbk * te in {pp}, te {te}"
        );
        let fs: Vec<u64> = pp["fs"]
            .as_array()
            .expect("fs")
            .iter()
            .map(|i| i.as_u64().expect("fs index"))
            .collect();
        assert!(!fs.is_empty());
        assert!(
            fs.iter().all(|&i| i >= 1 && (i as usize) < ftbl.len()),
            "fs indexes ftbl (not the root): {fs:?}"
        );
        assert!(stacks.insert(fs), "no two program points with the same fs");
    }
    json
}

fn sum(json: &Value, field: &str) -> u64 {
    json["pps"]
        .as_array()
        .expect("pps")
        .iter()
        .map(|pp| pp[field].as_u64().expect(field))
        .sum()
}

#[allow(clippy::vec_box)] // one block per box, on purpose
#[inline(never)]
fn boxes(n: usize) -> Vec<Box<[u64; 4]>> {
    (0..n).map(|i| black_box(Box::new([i as u64; 4]))).collect()
}

#[inline(never)]
fn strings(n: usize) -> usize {
    let v: Vec<String> = (0..n).map(|i| black_box(i.to_string())).collect();
    v.len()
}

#[test]
fn a_scope_profile_has_dhat_rs_fields_and_the_scope_totals() {
    let p = Profiler::start();
    let kept = boxes(10);
    strings(50);
    let profile = p.stop_profile();
    let stats = profile.stats();
    let json = check_heap_structure(&profile.dhat_json_string());

    assert_eq!(sum(&json, "tbk"), stats.alloc_count);
    assert_eq!(sum(&json, "tb"), stats.total_bytes);
    assert_eq!(sum(&json, "eb"), stats.current_bytes);
    assert_eq!(sum(&json, "ebk"), stats.current_blocks);
    assert_eq!(sum(&json, "gb"), stats.peak_bytes);
    drop(kept);
}

#[test]
fn a_scope_profile_names_its_call_sites_in_ftbl() {
    let p = Profiler::start();
    let kept = boxes(3);
    let profile = p.stop_profile();
    let json = check_heap_structure(&profile.dhat_json_string());
    let ftbl = json["ftbl"].to_string();
    assert!(ftbl.contains("dhat_json::boxes"), "{ftbl}");
    assert!(
        !ftbl.contains("mod_alloc::"),
        "the allocator's frames are trimmed: {ftbl}"
    );
    drop(kept);
}

#[test]
fn a_scope_profile_is_written_to_a_file_as_its_string() {
    let p = Profiler::start();
    let kept = boxes(2);
    let profile = p.stop_profile();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dhat_json_scope.json");
    profile.write_dhat_json(&path).expect("write");
    let written = std::fs::read_to_string(&path).expect("read back");
    assert_eq!(written, profile.dhat_json_string());
    drop(kept);
}

#[test]
fn the_first_blocks_of_a_new_thread_have_lifetimes_within_the_profile() {
    let json = std::thread::spawn(|| {
        let p = Profiler::start();
        drop(boxes(5));
        strings(20);
        p.stop_profile().dhat_json_string()
    })
    .join()
    .expect("thread");
    let json = check_heap_structure(&json);
    assert!(sum(&json, "tbk") >= 5 + 20);
}
