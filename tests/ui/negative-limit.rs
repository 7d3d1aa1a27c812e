#[mod_alloc::alloc_test(max_allocs = -1)]
fn negative_count() {}

#[mod_alloc::alloc_test(max_bytes = -4096)]
fn negative_size() {}

fn main() {}
