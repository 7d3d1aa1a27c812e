//! Call sites: which line allocated, per scope and per process.
#![cfg(feature = "backtraces")]
// The boxes are the allocations under test.
#![allow(clippy::vec_box)]

use mod_alloc::{ModAlloc, Profiler, SortBy};
use std::hint::black_box;

#[global_allocator]
static GLOBAL: ModAlloc = ModAlloc::new();

#[inline(never)]
fn make_small() -> Box<[u8; 16]> {
    black_box(Box::new([1u8; 16])) // LINE_SMALL
}

#[inline(never)]
fn make_vec(n: usize) -> Vec<u64> {
    black_box(vec![7u64; n]) // LINE_VEC
}

#[inline(never)]
fn make_string() -> String {
    black_box(String::from("a string that allocates")) // LINE_STRING
}

fn line_of(marker: &str) -> u32 {
    let src = include_str!("callsites.rs");
    let needle = format!("// {marker}");
    src.lines()
        .position(|l| l.contains(&needle) && !l.contains("format!"))
        .map(|i| i as u32 + 1)
        .expect("marker")
}

#[test]
fn three_helpers_give_three_sites_with_their_counts_and_lines() {
    let p = Profiler::start();
    let mut keep = Vec::new();
    for _ in 0..5 {
        keep.push(make_small());
    }
    for i in 0..3 {
        drop(make_vec(10 + i));
    }
    let s = make_string();
    let profile = p.stop_profile();
    drop((keep, s));
    let sites = profile.call_sites(SortBy::Allocations);
    let find = |name: &str| {
        sites
            .iter()
            .find(|c| c.function.ends_with(name))
            .unwrap_or_else(|| panic!("no site for {name} in {sites:#?}"))
    };
    let small = find("make_small");
    assert_eq!(
        (small.alloc_count, small.total_bytes, small.current_bytes),
        (5, 80, 80)
    );
    assert_eq!(small.line, Some(line_of("LINE_SMALL")));
    assert!(small
        .file
        .as_deref()
        .unwrap_or("")
        .ends_with("tests/callsites.rs"));
    let vec = find("make_vec");
    assert_eq!(
        (vec.alloc_count, vec.total_bytes, vec.current_bytes),
        (3, 8 * 33, 0)
    );
    assert_eq!(vec.line, Some(line_of("LINE_VEC")));
    let string = find("make_string");
    assert_eq!((string.alloc_count, string.total_bytes), (1, 23));
    assert_eq!(string.line, Some(line_of("LINE_STRING")));
    assert!(!profile.frames_missing());
}

#[inline(never)]
fn shared_line(n: usize) -> Vec<u8> {
    black_box(vec![0u8; n]) // LINE_SHARED
}

#[inline(never)]
fn caller_a() -> Vec<u8> {
    shared_line(10)
}

#[inline(never)]
fn caller_b() -> Vec<u8> {
    shared_line(20)
}

#[test]
fn one_line_called_from_two_callers_is_two_stacks_merged_at_that_line() {
    let p = Profiler::start();
    let a = caller_a();
    // One call site for both calls: `collect` may peel the first element into
    // a call of its own (then the two calls are two stacks, rightly), and a
    // known trip count may be unrolled into two.
    let mut b = Vec::with_capacity(2);
    for _ in 0..black_box(2) {
        b.push(caller_b());
    }
    let profile = p.stop_profile();
    drop((a, b));
    let raw = profile.raw_call_sites();
    // Two stacks reach `shared_line` (one per caller), and one allocates
    // the Vec of results.
    assert_eq!(raw.len(), 3, "distinct stacks: {raw:#?}");
    let rows = profile.call_sites(SortBy::Bytes);
    let shared = rows
        .iter()
        .find(|r| r.function.ends_with("shared_line"))
        .expect("the shared line");
    assert_eq!(
        (shared.alloc_count, shared.total_bytes, shared.stacks),
        (3, 50, 2)
    );
    assert_eq!(shared.line, Some(line_of("LINE_SHARED")));
}

#[test]
fn eight_threads_from_a_thousand_stacks_lose_no_event() {
    fn recurse(depth: usize, out: &mut Vec<Box<u64>>) {
        if depth == 0 {
            out.push(black_box(Box::new(1)));
        } else {
            recurse(depth - 1, out);
        }
    }
    let before = GLOBAL
        .call_sites()
        .iter()
        .map(|c| c.alloc_count)
        .sum::<u64>();
    let total: u64 = std::thread::scope(|t| {
        let joins: Vec<_> = (0..8)
            .map(|k| {
                t.spawn(move || {
                    let p = Profiler::start();
                    let mut out = Vec::with_capacity(1000);
                    for i in 0..1000 {
                        recurse((i + k) % 12, &mut out);
                    }
                    let profile = p.stop_profile();
                    let per_site: u64 =
                        profile.raw_call_sites().iter().map(|c| c.alloc_count).sum();
                    assert_eq!(per_site, profile.stats().alloc_count);
                    per_site
                })
            })
            .collect();
        joins.into_iter().map(|j| j.join().unwrap()).sum()
    });
    assert_eq!(total, 8 * 1001);
    let after = GLOBAL
        .call_sites()
        .iter()
        .map(|c| c.alloc_count)
        .sum::<u64>();
    assert!(after >= before + 8 * 1000);
}

#[inline(never)]
fn fresh_stack_at_depth(depth: usize) -> Box<[u8; 24]> {
    if depth == 0 {
        black_box(Box::new([0u8; 24]))
    } else {
        fresh_stack_at_depth(depth - 1)
    }
}

#[test]
fn without_memory_for_the_site_table_new_stacks_are_unknown_but_counted() {
    let p = Profiler::start();
    mod_alloc::__fail_own_memory(true);
    // Stacks never seen before (recursion depths 40..60 were not used above)
    // need new table entries, which cannot be had now.
    let kept: Vec<_> = (40..60).map(fresh_stack_at_depth).collect();
    mod_alloc::__fail_own_memory(false);
    let profile = p.stop_profile();
    assert_eq!(
        profile.stats().alloc_count,
        21,
        "20 boxes and the Vec: all counted"
    );
    let raw = profile.raw_call_sites();
    let per_site: u64 = raw.iter().map(|c| c.alloc_count).sum();
    assert_eq!(
        per_site, 21,
        "no event lost from the per-site figures either"
    );
    let unknown: u64 = raw
        .iter()
        .filter(|c| c.frames.is_empty())
        .map(|c| c.alloc_count)
        .sum();
    assert!(
        unknown >= 20,
        "the new stacks went to the unknown site: {raw:#?}"
    );
    drop(kept);
}

#[inline(never)]
fn one_big_block() -> Vec<u8> {
    black_box(Vec::with_capacity(3 << 20)) // LINE_ONE_BIG
}

#[inline(never)]
fn three_big_blocks() -> Vec<Vec<u8>> {
    let mut blocks = Vec::with_capacity(3);
    for _ in 0..3 {
        blocks.push(black_box(Vec::with_capacity(2 << 20))); // LINE_THREE_BIG
    }
    blocks
}

#[test]
fn process_report_counts_one_alloc_and_several_allocs() {
    drop(one_big_block());
    drop(three_big_blocks());
    let report = GLOBAL.symbolicated_report();
    // The blocks are the largest any test here allocates, so their sites head
    // the table by bytes.
    let by_bytes: Vec<&str> = report
        .lines()
        .skip_while(|l| !l.starts_with("call sites by bytes allocated"))
        .take_while(|l| !l.starts_with("call sites by bytes at peak"))
        .collect();
    let row = |marker: &str| {
        let at = format!("callsites.rs:{}", line_of(marker));
        by_bytes
            .iter()
            .find(|l| l.ends_with(&at))
            .copied()
            .unwrap_or_else(|| panic!("no row at {at} in\n{report}"))
    };
    assert!(
        row("LINE_ONE_BIG").contains(" 1 alloc  "),
        "one allocation reads `1 alloc`:\n{report}"
    );
    assert!(
        row("LINE_THREE_BIG").contains(" 3 allocs  "),
        "three read `3 allocs`:\n{report}"
    );
    assert!(!report.contains(" 1 allocs "), "{report}");
}

#[test]
fn memory_failing_on_one_thread_leaves_other_threads_new_stacks_known() {
    use std::sync::Barrier;
    let (armed, done) = (Barrier::new(2), Barrier::new(2));
    std::thread::scope(|t| {
        t.spawn(|| {
            mod_alloc::__fail_own_memory(true);
            armed.wait();
            done.wait();
            mod_alloc::__fail_own_memory(false);
        });
        armed.wait();
        let p = Profiler::start();
        // Depths no other test here uses: new stacks, new table entries.
        let kept: Vec<_> = (70..80).map(fresh_stack_at_depth).collect();
        let profile = p.stop_profile();
        done.wait();
        let unknown: u64 = profile
            .raw_call_sites()
            .iter()
            .filter(|c| c.frames.is_empty())
            .map(|c| c.alloc_count)
            .sum();
        assert_eq!(unknown, 0, "another thread's switch starved this one");
        drop(kept);
    });
}
