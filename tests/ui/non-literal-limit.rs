const BUDGET: u64 = 10;

#[mod_alloc::alloc_test(max_allocs = BUDGET)]
fn limit_from_a_constant() {}

fn main() {}
