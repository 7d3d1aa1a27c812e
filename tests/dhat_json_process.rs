//! The DHAT JSON of the process window (`ModAlloc::dhat_json`,
//! `dhat_json_string`, `write_dhat_json`): dhat-rs's fields, and totals equal
//! to `ModAlloc::snapshot`. `harness = false`: the process window counts
//! every thread, so this binary has only the main thread.
use mod_alloc::ModAlloc;
use serde_json::Value;
use std::hint::black_box;

#[global_allocator]
static GLOBAL: ModAlloc = ModAlloc::new();

#[allow(clippy::vec_box)] // one block per box, on purpose
#[inline(never)]
fn boxes(n: usize) -> Vec<Box<[u64; 4]>> {
    (0..n).map(|i| black_box(Box::new([i as u64; 4]))).collect()
}

#[inline(never)]
fn grow(n: u32) -> usize {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(black_box(i));
    }
    v.len()
}

fn sum(json: &Value, field: &str) -> u64 {
    json["pps"]
        .as_array()
        .expect("pps")
        .iter()
        .map(|pp| pp[field].as_u64().expect(field))
        .sum()
}

/// `v` without `te` and the program points' `tl`, which depend on when the
/// profile was taken.
fn without_times(mut v: Value) -> Value {
    v.as_object_mut().expect("object").remove("te");
    for pp in v["pps"].as_array_mut().expect("pps") {
        pp.as_object_mut().expect("pp").remove("tl");
    }
    v
}

fn main() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dhat_json_process.json");
    GLOBAL.reset();
    let kept = boxes(20);
    grow(1000);
    let stats = GLOBAL.snapshot();
    let json = GLOBAL.dhat_json();
    let text = GLOBAL.dhat_json_string();
    GLOBAL.write_dhat_json(&tmp).expect("write");

    // The value and the text and the file say the same (but for the times:
    // each is taken at its own end time).
    assert_eq!(
        without_times(serde_json::from_str::<Value>(&text).expect("valid JSON")),
        without_times(json.clone())
    );
    let file = std::fs::read_to_string(&tmp).expect("read back");
    assert_eq!(
        without_times(serde_json::from_str::<Value>(&file).expect("valid JSON")),
        without_times(json.clone())
    );

    for (field, expected) in [
        ("dhatFileVersion", Value::from(2)),
        ("mode", Value::from("rust-heap")),
        ("verb", Value::from("Allocated")),
        ("bklt", Value::from(true)),
        ("bkacc", Value::from(false)),
        ("tu", Value::from("µs")),
        ("Mtu", Value::from("s")),
        ("tuth", Value::from(10)),
    ] {
        assert_eq!(json[field], expected, "{field}");
    }
    for field in ["cmd", "pid", "tg", "te", "pps", "ftbl"] {
        assert!(json.get(field).is_some(), "{field} present");
    }
    assert_eq!(json["ftbl"][0], "[root]");

    // Totals equal the process figures of the same window.
    assert_eq!(sum(&json, "tbk"), stats.alloc_count);
    assert_eq!(sum(&json, "tb"), stats.total_bytes);
    assert_eq!(sum(&json, "eb"), stats.current_bytes);
    assert_eq!(sum(&json, "ebk"), stats.current_blocks);
    assert_eq!(sum(&json, "gb"), stats.peak_bytes);
    let ftbl = json["ftbl"].to_string();
    assert!(ftbl.contains("dhat_json_process::boxes"), "{ftbl}");
    assert!(ftbl.contains("dhat_json_process::grow"), "{ftbl}");
    drop(kept);
    println!("dhat_json_process: ok ({})", tmp.display());
}
