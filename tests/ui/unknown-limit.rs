#[mod_alloc::alloc_test(max_alloc = 1)]
fn typo_in_the_limit_name() {}

fn main() {}
