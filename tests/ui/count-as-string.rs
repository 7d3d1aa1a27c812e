#[mod_alloc::alloc_test(max_allocs = "10")]
fn quoted_count() {}

fn main() {}
