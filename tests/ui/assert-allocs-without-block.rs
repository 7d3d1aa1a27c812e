fn main() {
    let _ = mod_alloc::assert_allocs!(max_allocs = 1);
    let _ = mod_alloc::assert_allocs!(max_allocs = 1, vec![1u8]);
}
