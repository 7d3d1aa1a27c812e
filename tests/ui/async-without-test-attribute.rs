#[mod_alloc::alloc_test(max_allocs = 1)]
async fn no_runtime_to_poll_it() {}

fn main() {}
