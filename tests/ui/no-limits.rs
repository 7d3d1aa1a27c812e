#[mod_alloc::alloc_test]
fn no_arguments() {}

#[mod_alloc::alloc_test()]
fn empty_arguments() {}

fn main() {}
