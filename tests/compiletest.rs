//! Compile errors of `#[alloc_test]` and `assert_allocs!`, checked against
//! the `.stderr` files next to each case in `tests/ui/` (one file per
//! mistake). The messages are pinned on this repository's toolchain; run
//! `TRYBUILD=overwrite cargo test --test compiletest` after a compiler
//! upgrade and review the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
