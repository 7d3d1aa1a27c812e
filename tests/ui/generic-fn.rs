#[mod_alloc::alloc_test(max_allocs = 1)]
fn generic<T: Default>() {
    let _ = T::default();
}

fn main() {}
