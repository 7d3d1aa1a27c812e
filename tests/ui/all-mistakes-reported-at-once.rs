#[mod_alloc::alloc_test(max_alloc = 1, max_bytes = -1, max_peak = "4XB", max_leaked)]
fn four_mistakes() {}

fn main() {}
