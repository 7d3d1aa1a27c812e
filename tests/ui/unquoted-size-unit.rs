#[mod_alloc::alloc_test(max_peak = 4 KB)]
fn unit_outside_a_string() {}

fn main() {}
