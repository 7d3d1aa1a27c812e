#[mod_alloc::alloc_test(max_peak = "4XB")]
fn unknown_unit() {}

#[mod_alloc::alloc_test(max_peak = "4kb")]
fn unit_in_the_wrong_case() {}

#[mod_alloc::alloc_test(max_peak = "4096")]
fn no_unit() {}

fn main() {}
