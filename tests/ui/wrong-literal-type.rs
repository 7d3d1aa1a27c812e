#[mod_alloc::alloc_test(max_allocs = true)]
fn bool_count() {}

#[mod_alloc::alloc_test(max_bytes = 'k')]
fn char_size() {}

#[mod_alloc::alloc_test(max_peak = b"4KB")]
fn byte_string_size() {}

fn main() {}
