#[mod_alloc::alloc_test(max_bytes = "1KB", max_peak = "2KB")]
fn peak_above_total() {}

#[mod_alloc::alloc_test(max_peak = 100, max_leaked = 200)]
fn leaked_above_peak() {}

fn main() {}
