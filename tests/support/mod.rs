//! Helpers shared by the integration tests (a module, not a test binary).

/// Leaks `v` on purpose (a block still live at the end of a budget), kept
/// reachable from a static so that `scripts/memcheck` sees no lost block.
/// Allocates nothing itself, so the budgets measure only `v`.
pub(crate) fn keep_forever(v: Vec<u8>) {
    use std::sync::atomic::{AtomicPtr, Ordering::Relaxed};
    #[allow(clippy::declare_interior_mutable_const)] // only to build KEPT
    const NULL: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
    static KEPT: [AtomicPtr<u8>; 16] = [NULL; 16];
    let mut v = std::mem::ManuallyDrop::new(v);
    let p = v.as_mut_ptr();
    // A free slot takes the pointer (16 is more than the tests leak).
    let _ = KEPT.iter().any(|s| {
        s.compare_exchange(std::ptr::null_mut(), p, Relaxed, Relaxed)
            .is_ok()
    });
}
