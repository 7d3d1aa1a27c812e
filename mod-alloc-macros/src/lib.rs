//! Procedural macros of [mod-alloc](https://docs.rs/mod-alloc): `#[alloc_test]`
//! and `assert_allocs!`. Use them through `mod_alloc`, which re-exports them.
