#[mod_alloc::alloc_test(max_allocs = 1.5)]
fn fractional_count() {}

#[mod_alloc::alloc_test(max_peak = 1.5)]
fn fractional_bytes_without_a_unit() {}

fn main() {}
