#[mod_alloc::alloc_test(max_allocs = 1)]
struct NotATest;

fn main() {}
