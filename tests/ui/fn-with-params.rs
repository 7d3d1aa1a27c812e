#[mod_alloc::alloc_test(max_allocs = 1)]
fn takes_input(input: &str) {
    let _ = input;
}

fn main() {}
