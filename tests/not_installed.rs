//! Without `ModAlloc` as the global allocator nothing is counted, so a
//! budget would pass without measuring anything: it must fail instead.
//! (This binary deliberately has no `#[global_allocator]`.)

#[mod_alloc::alloc_test(max_allocs = 0)]
#[should_panic(expected = "mod_alloc::ModAlloc is not the #[global_allocator] of this binary")]
fn a_budget_without_mod_alloc_installed_fails() {}

#[test]
#[should_panic(expected = "allocation budget cannot be checked in assert_allocs!")]
fn a_block_without_mod_alloc_installed_fails() {
    mod_alloc::assert_allocs!(max_bytes = "1MB", { drop(vec![0u8; 10]) });
}
