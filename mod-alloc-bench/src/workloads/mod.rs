//! The allocation workloads, each written once over [`Heap`] and run twice
//! per round: through the global allocator ([`Global`], the one under test)
//! and calling `System` directly ([`Direct`], the in-process reference).
//!
//! Invariant: the two sides run the same monomorphised code but for the
//! allocator calls, so their ratio is the allocator's cost and nothing else.

pub mod cross_thread;
pub mod depth;
pub mod growth;
pub mod live;
pub mod pairs;

use std::alloc::{GlobalAlloc, Layout, System};

/// Where a workload's blocks come from.
pub trait Heap: Copy + Send + Sync + 'static {
    /// Allocates a block of `layout`.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::alloc`]: `layout` has a non-zero size.
    unsafe fn alloc(self, layout: Layout) -> *mut u8;

    /// Frees a block.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::dealloc`]: `ptr` came from this heap with `layout`.
    unsafe fn dealloc(self, ptr: *mut u8, layout: Layout);

    /// Resizes a block.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::realloc`].
    unsafe fn realloc(self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8;
}

/// The global allocator: the allocator under test in this binary.
#[derive(Debug, Clone, Copy)]
pub struct Global;

/// `System`, called directly: the reference.
#[derive(Debug, Clone, Copy)]
pub struct Direct;

impl Heap for Global {
    #[inline(always)]
    unsafe fn alloc(self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `std::alloc::alloc`'s.
        unsafe { std::alloc::alloc(layout) }
    }
    #[inline(always)]
    unsafe fn dealloc(self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is `std::alloc::dealloc`'s.
        unsafe { std::alloc::dealloc(ptr, layout) }
    }
    #[inline(always)]
    unsafe fn realloc(self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is `std::alloc::realloc`'s.
        unsafe { std::alloc::realloc(ptr, layout, new_size) }
    }
}

// `Direct` calls `System` through a function that is never inlined, as a
// program's `Box::new` reaches the global allocator through the
// `__rust_alloc` symbol: so the reference pays the same call as the measured
// side, and the `system` binary's ratio is its sanity check (about 1.00).
impl Heap for Direct {
    #[inline(always)]
    unsafe fn alloc(self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `direct_alloc`'s.
        unsafe { direct_alloc(layout) }
    }
    #[inline(always)]
    unsafe fn dealloc(self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is `direct_dealloc`'s.
        unsafe { direct_dealloc(ptr, layout) }
    }
    #[inline(always)]
    unsafe fn realloc(self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is `direct_realloc`'s.
        unsafe { direct_realloc(ptr, layout, new_size) }
    }
}

/// `System.alloc`, out of line.
///
/// # Safety
///
/// As [`GlobalAlloc::alloc`].
#[inline(never)]
unsafe fn direct_alloc(layout: Layout) -> *mut u8 {
    // SAFETY: the caller's contract is `GlobalAlloc::alloc`'s.
    unsafe { System.alloc(layout) }
}

/// `System.dealloc`, out of line.
///
/// # Safety
///
/// As [`GlobalAlloc::dealloc`].
#[inline(never)]
unsafe fn direct_dealloc(ptr: *mut u8, layout: Layout) {
    // SAFETY: the caller's contract is `GlobalAlloc::dealloc`'s.
    unsafe { System.dealloc(ptr, layout) }
}

/// `System.realloc`, out of line.
///
/// # Safety
///
/// As [`GlobalAlloc::realloc`].
#[inline(never)]
unsafe fn direct_realloc(ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    // SAFETY: the caller's contract is `GlobalAlloc::realloc`'s.
    unsafe { System.realloc(ptr, layout, new_size) }
}

/// A small deterministic generator (xorshift64*), the same in every binary.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
