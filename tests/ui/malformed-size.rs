#[mod_alloc::alloc_test(max_peak = "4.KB")]
fn dot_without_decimals() {}

#[mod_alloc::alloc_test(max_peak = " 4KB")]
fn leading_space() {}

#[mod_alloc::alloc_test(max_peak = "KB")]
fn no_number() {}

fn main() {}
