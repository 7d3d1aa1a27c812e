#[mod_alloc::alloc_test(max_allocs =)]
fn nothing_after_equals() {}

fn main() {}
