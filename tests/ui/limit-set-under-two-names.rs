#[mod_alloc::alloc_test(max_peak = "4KB", max_live = "8KB")]
fn peak_and_its_alias() {}

#[mod_alloc::alloc_test(max_allocations = 3, max_allocs = 3)]
fn allocs_and_its_alias() {}

fn main() {}
