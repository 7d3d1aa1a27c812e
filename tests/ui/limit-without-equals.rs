#[mod_alloc::alloc_test(max_allocs)]
fn key_alone() {}

#[mod_alloc::alloc_test(max_allocs 10)]
fn key_and_value_without_equals() {}

#[mod_alloc::alloc_test(max_allocs: 10)]
fn colon_instead_of_equals() {}

fn main() {}
