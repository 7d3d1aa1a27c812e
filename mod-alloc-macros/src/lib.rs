//! Procedural macros of [mod-alloc](https://docs.rs/mod-alloc): `#[alloc_test]`
//! and `assert_allocs!`. Use them through `mod_alloc`, which re-exports them
//! (default feature `macros`); the expansion calls `::mod_alloc::__private`.
//!
//! This file holds only the two entry points. The work is done in
//! `parse` (tokens to entries, keeping spans) → `validate` (the rules, all
//! errors gathered) → `expand` (plain calls into `mod_alloc`); `size` turns
//! `"4KB"` into bytes at compile time.
//!
//! # Limits
//!
//! | limit        | aliases                      | measures                                   |
//! |--------------|------------------------------|--------------------------------------------|
//! | `max_allocs` | `max_allocations`            | number of allocations (a `realloc` is one) |
//! | `max_bytes`  | `max_total_bytes`            | total bytes allocated                      |
//! | `max_peak`   | `max_live`, `max_peak_bytes` | peak live bytes                            |
//! | `max_leaked` | `max_leaked_bytes`           | bytes still live when the body ends        |
//!
//! At least one limit is required; each may be set once, under one name.
//! `max_allocs` takes an integer. Sizes take an integer (bytes; `_`
//! separators and a `u64` suffix are fine) or a string: `"4KB"` = 4,000,
//! `"4KiB"` = 4,096, units `B`, `KB`, `MB`, `GB`, `KiB`, `MiB`, `GiB`
//! (case-sensitive). One space may separate number and unit (`"4 KB"`), and
//! decimals are allowed when the result is a whole number of bytes
//! (`"1.5KB"`, not `"1.5B"`).
//!
//! A limit that can never be the one to fail is rejected as a likely mix-up:
//! `max_peak` above `max_bytes`, or `max_leaked` above `max_peak` or
//! `max_bytes` (peak live bytes never exceed the total allocated, and what
//! is left at the end never exceeds the peak).
//!
//! Limits must be literals: they are checked when the code compiles, and a
//! mistake is an error on the offending token.

mod expand;
mod parse;
mod size;
mod validate;

use proc_macro::TokenStream;

/// Turns a function into a test that fails when its body allocates more
/// than the given limits allow.
///
/// ```ignore
/// #[mod_alloc::alloc_test(max_allocs = 10, max_peak = "4KB")]
/// fn parses_small_config() {
///     let config = parse("a = 1");
///     assert_eq!(config.len(), 1);
/// }
/// ```
///
/// Only the body is measured, on the test's own thread (plus threads it
/// joins into the scope); the test harness's own allocations are not. When
/// the body exceeds a limit, the test panics with a report whose first line
/// is `allocation budget exceeded in <test> (<file>:<line>)`; see the limits
/// table in the [crate docs](crate).
///
/// - Adds `#[test]` unless a test attribute is already there; keeps every
///   other attribute (`#[should_panic]`, `#[ignore]`, docs), the visibility
///   and the return type: a test returning `Result<(), E>` works, and its
///   value is returned as is (the budget is checked first, whatever it is).
/// - A panic in the body is the test's own panic: it propagates unchanged,
///   with no report on top. With `#[should_panic]`, a budget failure is a
///   panic too: use `expected = "..."` to tell them apart.
/// - Async tests: put `#[alloc_test]` **above** the async test attribute:
///
///   ```ignore
///   #[mod_alloc::alloc_test(max_allocs = 100)]
///   #[tokio::test]
///   async fn fetches() { /* ... */ }
///   ```
///
///   The body future is measured across all its polls on the thread that
///   polls it (`#[tokio::test]` polls it on the test thread; the future is
///   not `Send`); the runtime's start-up is not counted. (Below `#[tokio::test]`
///   the whole generated test, runtime included, would be measured.)
/// - The fn must take no parameters and not be generic, `const`, `unsafe`
///   or `extern`.
#[proc_macro_attribute]
pub fn alloc_test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::alloc_test(args.into(), item.into()).into()
}

/// Runs a block under allocation limits and evaluates to its value.
///
/// ```ignore
/// let buffer = mod_alloc::assert_allocs!(max_allocs = 1, max_bytes = "1KiB", {
///     Vec::<u8>::with_capacity(64)
/// });
/// ```
///
/// Takes the same limits as [`macro@alloc_test`], then the block, last. The
/// block is the body of a closure: `return` leaves the block (not the
/// enclosing function) and `?` needs the block's own type to be a
/// `Result`/`Option`. The block's value is still alive when the budget is
/// checked, so it counts toward `max_leaked`.
///
/// On success it allocates nothing itself, so it can sit inside a benchmark
/// loop (criterion, divan) to assert a per-iteration budget. On failure it
/// panics with the report described at [`macro@alloc_test`].
#[proc_macro]
pub fn assert_allocs(input: TokenStream) -> TokenStream {
    expand::assert_allocs(input.into()).into()
}
