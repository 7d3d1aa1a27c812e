//! `#[alloc_test]` on ordinary tests: every limit passing and failing, and
//! the attributes it must keep working with (`should_panic`, `Result`,
//! `ignore`, docs, visibility).

use std::hint::black_box;

use mod_alloc::alloc_test;

#[global_allocator]
static GLOBAL: mod_alloc::ModAlloc = mod_alloc::ModAlloc::new();

mod support;
use support::keep_forever;

/// Allocates `count` blocks of `size` bytes, one at a time, freeing each
/// before the next: `count` allocations, `count * size` bytes, peak `size`.
fn churn(count: usize, size: usize) {
    for _ in 0..count {
        drop(black_box(Vec::<u8>::with_capacity(size)));
    }
}

#[alloc_test(max_allocs = 0)]
fn code_that_does_not_allocate_passes_a_zero_budget() {
    black_box(1 + 1);
}

#[alloc_test(max_allocs = 3)]
fn allocations_up_to_the_limit_pass() {
    churn(3, 16);
}

#[alloc_test(max_allocs = 3)]
#[should_panic(expected = "allocation budget exceeded in one_allocation_over_the_limit_fails")]
fn one_allocation_over_the_limit_fails() {
    churn(4, 16);
}

#[alloc_test(max_allocs = 0)]
#[should_panic(expected = "max_allocs  0   must not allocate, but allocated 1 block (24 B)")]
fn a_zero_budget_says_the_code_must_not_allocate() {
    churn(1, 24);
}

#[alloc_test(max_bytes = "1KB")]
fn total_bytes_up_to_the_limit_pass() {
    churn(10, 100);
}

#[alloc_test(max_bytes = "1KB")]
#[should_panic(expected = "max_bytes   1KB (1,000 B)   measured 1,001 B   over by 1 B")]
fn one_byte_over_the_total_fails() {
    churn(10, 100);
    churn(1, 1);
}

#[alloc_test(max_peak = "1KiB")]
fn peak_counts_live_bytes_not_total() {
    churn(8, 1024);
}

#[alloc_test(max_peak = "1KiB")]
#[should_panic(expected = "max_peak    1KiB (1,024 B)   measured 1,025 B   over by 1 B")]
fn live_bytes_over_the_peak_fail() {
    let kept = black_box(Vec::<u8>::with_capacity(1024));
    churn(1, 1);
    drop(kept);
}

#[alloc_test(max_leaked = 0)]
fn freed_blocks_are_not_leaked() {
    churn(4, 64);
}

#[alloc_test(max_leaked = 100)]
#[should_panic(expected = "max_leaked  100 B   measured 128 B in 2 blocks   over by 28 B")]
fn blocks_alive_at_the_end_are_leaked() {
    keep_forever(black_box(Vec::<u8>::with_capacity(64)));
    keep_forever(black_box(Vec::<u8>::with_capacity(64)));
}

#[alloc_test(max_allocs = 2, max_bytes = 64, max_peak = 32, max_leaked = 0)]
fn all_limits_together_pass_when_each_holds() {
    churn(2, 32);
}

#[alloc_test(
    max_allocations = 2,
    max_total_bytes = 64,
    max_live = 32,
    max_leaked_bytes = 0
)]
fn aliases_work_like_the_canonical_names() {
    churn(2, 32);
}

#[alloc_test(max_allocs = 100)]
#[should_panic(expected = "the body's own message")]
fn a_panic_in_the_body_is_the_tests_panic() {
    panic!("the body's own message");
}

#[alloc_test(max_allocs = 5)]
fn a_result_test_can_use_the_question_mark() -> Result<(), std::num::ParseIntError> {
    let n: u32 = "42".parse()?;
    assert_eq!(n, 42);
    Ok(())
}

#[alloc_test(max_allocs = 5)]
fn a_result_test_can_return_early() -> Result<(), String> {
    if black_box(true) {
        return Ok(());
    }
    Err("unreachable".to_owned())
}

/// Doc comments and other attributes are kept.
#[alloc_test(max_allocs = 0)]
#[allow(clippy::eq_op)]
pub fn public_documented_tests_keep_their_attributes() {
    assert_eq!(black_box(2) - black_box(2), 0);
}

#[alloc_test(max_allocs = 0)]
#[test]
fn an_explicit_test_attribute_is_not_doubled() {}

#[alloc_test(max_allocs = 2, max_bytes = "1KB", max_peak = 64)]
#[ignore = "kept out of normal runs: `cargo test --test alloc_test -- --ignored` shows a full failure report"]
fn shows_a_full_failure_report() {
    let mut words = Vec::new();
    for word in "a deliberately failing budget".split(' ') {
        words.push(word.to_owned());
    }
    black_box(words);
}

mod nested {
    #[mod_alloc::alloc_test(max_allocs = 1)]
    #[should_panic(
        expected = "allocation budget exceeded in reports_its_own_name (tests/alloc_test.rs:"
    )]
    fn reports_its_own_name() {
        super::churn(2, 8);
    }
}
