#[mod_alloc::alloc_test(max_allocs = 10i32)]
fn signed_suffix() {}

fn main() {}
