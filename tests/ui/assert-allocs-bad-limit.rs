fn main() {
    // Only the limit is reported: the value still has the block's type.
    let sizes: Vec<u8> = mod_alloc::assert_allocs!(max_alocs = 1, { Vec::new() });
    let missing: Vec<u8> = mod_alloc::assert_allocs!(max_allocs = 1);
    let _ = (sizes, missing);
}
