#[mod_alloc::alloc_test(max_bytes = 18446744073709551616)]
fn integer_above_u64_max() {}

#[mod_alloc::alloc_test(max_bytes = "20000000000GB")]
fn unit_product_above_u64_max() {}

fn main() {}
