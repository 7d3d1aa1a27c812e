#[mod_alloc::alloc_test(max_allocs = 1, max_allocs = 2)]
fn same_limit_twice() {}

fn main() {}
