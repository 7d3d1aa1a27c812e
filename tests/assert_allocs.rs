//! `assert_allocs!`: the value it evaluates to, each limit passing and
//! failing, the exact shape of the failure report, and how it behaves in a
//! loop (the benchmark use) and around panics.

use std::hint::black_box;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mod_alloc::{assert_allocs, Profiler};

#[global_allocator]
static GLOBAL: mod_alloc::ModAlloc = mod_alloc::ModAlloc::new();

mod support;
use support::keep_forever;

/// Allocates and frees `count` blocks of `size` bytes, one after the other.
fn churn(count: usize, size: usize) {
    for _ in 0..count {
        drop(black_box(Vec::<u8>::with_capacity(size)));
    }
}

/// The panic message of `f`, which must panic with a `String` or `&str`.
fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => payload
            .downcast::<&str>()
            .map(|text| (*text).to_owned())
            .expect("a text payload"),
    }
}

/// The report's lines after the limits, which depend on the features built.
fn feature_lines() -> String {
    if cfg!(feature = "backtraces") {
        // `churn` allocates on the line of its `with_capacity`.
        let line = include_str!("assert_allocs.rs")
            .lines()
            .position(|l| l.trim() == "drop(black_box(Vec::<u8>::with_capacity(size)));")
            .map_or(0, |i| i + 1);
        format!(
            "top call sites by allocations:\n       3 allocs  300 B  assert_allocs::churn  tests/assert_allocs.rs:{line}"
        )
    } else {
        "call sites: not captured; enable mod-alloc's `backtraces` feature to list them".to_string()
    }
}

#[test]
fn evaluates_to_the_blocks_value() {
    let buffer = assert_allocs!(max_allocs = 1, max_bytes = 64, {
        Vec::<u8>::with_capacity(64)
    });
    assert_eq!(buffer.capacity(), 64);
}

#[test]
fn the_block_is_a_closure_body_so_return_leaves_the_block() {
    let value = assert_allocs!(max_allocs = 0, {
        if black_box(true) {
            return 5;
        }
        6
    });
    assert_eq!(value, 5);
}

#[test]
fn question_mark_works_on_the_blocks_own_type() {
    let parsed: Result<u32, std::num::ParseIntError> = assert_allocs!(max_allocs = 0, {
        let n: u32 = "7".parse()?;
        Ok(n + 1)
    });
    assert_eq!(parsed, Ok(8));
}

#[test]
fn each_limit_passes_at_its_exact_value() {
    assert_allocs!(max_allocs = 4, { churn(4, 10) });
    assert_allocs!(max_bytes = 40, { churn(4, 10) });
    assert_allocs!(max_peak = 10, { churn(4, 10) });
    assert_allocs!(max_leaked = 0, { churn(4, 10) });
}

#[test]
fn the_returned_value_counts_as_leaked() {
    let message = panic_message(|| {
        drop(assert_allocs!(max_leaked = 0, {
            Vec::<u8>::with_capacity(32)
        }));
    });
    assert!(
        message.contains("max_leaked  0 B   measured 32 B in 1 block   over by 32 B"),
        "{message}"
    );
}

#[test]
fn a_count_over_budget_gives_the_full_report() {
    let (message, line, column) = (
        panic_message(|| assert_allocs!(max_allocs = 2, max_peak = "1KB", { churn(3, 100) })),
        line!() - 1,
        // Where `assert_allocs!` starts on that line.
        26,
    );
    let expected = format!(
        "allocation budget exceeded in assert_allocs (assert_allocs! at tests/assert_allocs.rs:{line}:{column})
  max_allocs  2               measured 3       over by 1
  max_peak    1KB (1,000 B)   measured 100 B
{}
DHAT profile: {}",
        feature_lines(),
        message.rsplit("DHAT profile: ").next().unwrap_or_default()
    );
    assert_eq!(message, expected);
    if !cfg!(feature = "dhat-compat") {
        assert!(message.ends_with(
            "DHAT profile: not saved; enable mod-alloc's `dhat-compat` feature to get one per failing test"
        ));
    }
}

#[test]
fn violated_limits_are_listed_first() {
    let message =
        panic_message(|| assert_allocs!(max_allocs = 10, max_bytes = 100, { churn(2, 64) }));
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(
        lines[1],
        "  max_bytes   100 B   measured 128 B   over by 28 B"
    );
    assert_eq!(lines[2], "  max_allocs  10      measured 2");
}

/// A report row, and a budget that fails with it.
type OneOver = (&'static str, Box<dyn Fn()>);

#[test]
fn each_limit_fails_one_over() {
    let cases: [OneOver; 4] = [
        (
            "max_allocs  3   measured 4   over by 1",
            Box::new(|| assert_allocs!(max_allocs = 3, { churn(4, 1) })),
        ),
        (
            "max_bytes   3 B   measured 4 B   over by 1 B",
            Box::new(|| assert_allocs!(max_bytes = 3, { churn(4, 1) })),
        ),
        (
            "max_peak    3 B   measured 4 B   over by 1 B",
            Box::new(|| assert_allocs!(max_peak = 3, { churn(1, 4) })),
        ),
        (
            "max_leaked  3 B   measured 4 B in 1 block   over by 1 B",
            Box::new(|| {
                assert_allocs!(max_leaked = 3, {
                    keep_forever(black_box(Vec::<u8>::with_capacity(4)))
                })
            }),
        ),
    ];
    for (row, run) in cases {
        let message = panic_message(run);
        assert_eq!(
            message.lines().nth(1),
            Some(format!("  {row}").as_str()),
            "{message}"
        );
    }
}

#[test]
fn a_panic_in_the_block_propagates_alone() {
    let message = panic_message(|| {
        assert_allocs!(max_allocs = 0, {
            churn(5, 8);
            panic!("the block's own panic");
        })
    });
    assert_eq!(message, "the block's own panic");
}

#[test]
fn a_passing_budget_allocates_nothing_itself_so_it_fits_in_a_bench_loop() {
    let outer = Profiler::start();
    for _ in 0..100 {
        assert_allocs!(max_allocs = 1, max_bytes = 8, { churn(1, 8) });
    }
    let stats = outer.stop();
    assert_eq!(stats.alloc_count, 100);
    assert_eq!(stats.total_bytes, 800);
}

macro_rules! budget_of {
    ($allocs:literal, $body:block) => {
        assert_allocs!(max_allocs = $allocs, $body)
    };
}

#[test]
fn limits_and_block_can_come_from_macro_fragments() {
    let value = budget_of!(1, { Box::new(3) });
    assert_eq!(*value, 3);
}
