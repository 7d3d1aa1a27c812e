#[mod_alloc::alloc_test(max_bytes = "1.5B")]
fn half_a_byte() {}

fn main() {}
