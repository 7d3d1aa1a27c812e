//! [`ModAlloc`]: the `GlobalAlloc` hook. Guard, account, forward; nothing else.
//!
//! Each call asks the inner allocator for the user's block plus a header
//! ([`crate::header`]), counts the event on the calling thread
//! ([`crate::thread`]) only once the inner call succeeded, and returns the
//! pointer past the header. A null from the inner allocator, or a size that
//! overflows once the header is added, returns null and counts nothing; a
//! failed `realloc` leaves the old block valid and counted.
//!
//! Two paths per method. The fast path serves layouts aligned to at most 16
//! bytes (`header::is_fast`): no layout arithmetic, the thread's common-case
//! event ([`crate::thread::on_alloc_fast`], `on_free_fast`), and no value kept
//! alive across a call, so `dealloc` is a leaf that tail-calls the inner
//! allocator. Anything else (a large alignment, an event that needs more than
//! a few adds) leaves, before anything was counted, for the `#[cold]`
//! general path, which handles every case.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::header;
#[cfg(not(feature = "std"))]
use crate::header::Header;
use crate::AllocStats;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr;

#[cfg(feature = "std")]
use crate::thread::{on_alloc, on_alloc_fast, on_free, on_free_fast};

/// A global allocator that counts every allocation, per thread and per scope.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: mod_alloc::ModAlloc = mod_alloc::ModAlloc::new();
///
/// let before = GLOBAL.snapshot();
/// let b = Box::new(7u64);
/// let after = GLOBAL.snapshot();
/// assert!(after.alloc_count > before.alloc_count);
/// drop(b);
/// ```
///
/// `ModAlloc` forwards to an inner allocator, [`System`](std::alloc::System) by
/// default, or any other with [`ModAlloc::with_allocator`]. Every block gets a
/// small header (16 bytes; 32 with `backtraces`; the alignment when it is
/// larger) that records which scope it belongs to.
#[cfg(feature = "std")]
pub struct ModAlloc<A = std::alloc::System> {
    inner: A,
}

/// A global allocator that counts every allocation (process-wide without `std`).
#[cfg(not(feature = "std"))]
pub struct ModAlloc<A> {
    inner: A,
}

#[cfg(feature = "std")]
impl ModAlloc<std::alloc::System> {
    /// A `ModAlloc` over the system allocator.
    pub const fn new() -> Self {
        ModAlloc {
            inner: std::alloc::System,
        }
    }
}

#[cfg(feature = "std")]
impl Default for ModAlloc<std::alloc::System> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A> ModAlloc<A> {
    /// A `ModAlloc` over `inner`.
    pub const fn with_allocator(inner: A) -> Self {
        ModAlloc { inner }
    }

    /// The inner allocator.
    pub const fn inner(&self) -> &A {
        &self.inner
    }

    /// Process-wide figures of the current window (since start or the last
    /// [`reset`](Self::reset)), summed over all threads. Allocates nothing.
    ///
    /// Exact whenever no thread is in the middle of an allocation call (for
    /// example all parked at a barrier): counts, bytes, live bytes and blocks.
    /// The peak is exact while one thread allocates at a time; with threads
    /// allocating at once it is within `(threads - 1) × 64 KiB` of the true
    /// peak (each thread publishes its live bytes to the others when they
    /// drift by 64 KiB, or sooner downwards; see the crate docs,
    /// "Process-wide figures").
    ///
    /// The figures are those of every `ModAlloc` in the process: there is one
    /// set of thread-local counters.
    pub fn snapshot(&self) -> AllocStats {
        #[cfg(feature = "std")]
        return crate::global::snapshot();
        #[cfg(not(feature = "std"))]
        return crate::global::COUNTERS.snapshot();
    }

    /// Starts a new process window: all process figures restart from zero.
    /// Blocks allocated before the reset and freed after it are not
    /// subtracted, so nothing wraps. Scopes are not affected.
    pub fn reset(&self) {
        #[cfg(feature = "std")]
        crate::global::reset();
        #[cfg(not(feature = "std"))]
        crate::global::COUNTERS.reset();
    }
}

/// Call sites (feature `backtraces`): the process window's figures per site.
///
/// Per-site figures are kept per thread and summed here: counts, bytes and
/// live bytes are exact; the "at peak" figures are each thread's at its own
/// peak, so with threads allocating at once their sum is an upper bound of
/// the process's (exact for one allocating thread).
#[cfg(feature = "backtraces")]
impl<A> ModAlloc<A> {
    /// Sets how many frames each allocation captures (at most 32; the default
    /// is 16, or 32 when mod-alloc is built without optimisation, where
    /// nothing is inlined and std's path to the allocator is twice as deep).
    /// Deeper stacks tell callers apart better and cost more per allocation.
    pub fn set_backtrace_depth(&self, depth: usize) {
        crate::sites::set_depth(depth);
    }

    /// Per-site figures of the process window as raw captured stacks (return
    /// addresses, not symbolized).
    pub fn call_sites(&self) -> std::vec::Vec<crate::RawCallSite> {
        crate::thread::untracked(|| crate::callsites::raw(&crate::global::process_sites().0))
    }

    /// The process window's call sites, merged by user location (first user
    /// frame), largest `by` first; at most `n`.
    pub fn top_call_sites(&self, n: usize, by: crate::SortBy) -> std::vec::Vec<crate::CallSite> {
        crate::thread::untracked(|| {
            let mut rows = crate::callsites::summarize(&crate::global::process_sites().0, by).0;
            rows.truncate(n);
            rows
        })
    }

    /// A text report of the process window's top call sites by allocations,
    /// by bytes and by bytes at the peak, with `function  file:line` of each.
    pub fn symbolicated_report(&self) -> std::string::String {
        crate::thread::untracked(|| {
            let (figs, _) = crate::global::process_sites();
            let root = std::env::current_dir().ok();
            let mut out = std::string::String::new();
            for by in [
                crate::SortBy::Allocations,
                crate::SortBy::Bytes,
                crate::SortBy::Peak,
            ] {
                out.push_str(&crate::callsites::render(&figs, 10, by, root.as_deref()));
            }
            out
        })
    }
}

/// DHAT output (feature `dhat-compat`): the process window as a DHAT heap
/// profile, for valgrind's viewer (`dh_view.html`).
#[cfg(feature = "dhat-compat")]
impl<A> ModAlloc<A> {
    /// The process window (since start or the last [`reset`](Self::reset)) as
    /// DHAT JSON. Other threads may keep allocating meanwhile.
    ///
    /// ```no_run
    /// #[global_allocator]
    /// static GLOBAL: mod_alloc::ModAlloc = mod_alloc::ModAlloc::new();
    ///
    /// let v: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    /// let json = GLOBAL.dhat_json_string();
    /// assert!(json.contains("\"dhatFileVersion\": 2"));
    /// # drop(v);
    /// ```
    pub fn dhat_json_string(&self) -> std::string::String {
        crate::thread::untracked(|| crate::dhat::to_string(&process_profile()))
    }

    /// The process window as a `serde_json::Value`.
    pub fn dhat_json(&self) -> serde_json::Value {
        crate::thread::untracked(|| crate::dhat::to_value(&process_profile()))
    }

    /// Writes [`dhat_json_string`](Self::dhat_json_string) to `path`.
    pub fn write_dhat_json(&self, path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
        crate::thread::untracked(|| crate::dhat::write(&process_profile(), path.as_ref()))
    }

    /// The process window as folded stacks (`frame;frame;frame weight` lines,
    /// outermost frame first), for `inferno-flamegraph` or `flamegraph.pl`.
    pub fn folded_stacks(&self, weight: crate::FoldedWeight) -> std::string::String {
        crate::thread::untracked(|| crate::folded::to_string(&process_profile(), weight))
    }
}

#[cfg(feature = "dhat-compat")]
fn process_profile() -> crate::dhat::Profile {
    let (figs, peak) = crate::global::process_sites();
    crate::profile::heap(&crate::profile::Window {
        figs: &figs,
        start: crate::global::window_start(),
        end: crate::clock::ticks(),
        peak_tick: peak.1,
    })
}

impl<A> core::fmt::Debug for ModAlloc<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ModAlloc").finish_non_exhaustive()
    }
}

#[cfg(not(feature = "std"))]
#[inline(always)]
fn on_alloc(size: usize) -> Header {
    crate::global::COUNTERS.on_alloc(size as u64);
    let e =
        crate::global::epoch16(crate::global::EPOCH.load(core::sync::atomic::Ordering::Relaxed));
    Header {
        flags: u32::from(e),
        ..Header::untracked()
    }
}

#[cfg(not(feature = "std"))]
#[inline(always)]
fn on_free(h: &Header, size: usize) {
    if h.is_tracked() {
        crate::global::COUNTERS.on_free(size as u64, h.epoch());
    }
}

/// Without `std` every event is one path.
#[cfg(not(feature = "std"))]
#[inline(always)]
fn on_alloc_fast(size: usize) -> Option<Header> {
    Some(on_alloc(size))
}

/// Without `std` every event is one path: always counted.
#[cfg(not(feature = "std"))]
#[inline(always)]
fn on_free_fast(h: &Header, size: usize) -> bool {
    on_free(h, size);
    true
}

/// The paths behind `GlobalAlloc`: the fast path that `alloc` and
/// `alloc_zeroed` share, and the general paths (any layout, and events the
/// fast paths hand over), cold and out of line, so that the fast paths keep
/// no value alive across a call and save no registers.
impl<A: GlobalAlloc> ModAlloc<A> {
    /// `alloc` or `alloc_zeroed` (`zeroed`, a constant once inlined): the
    /// fast path, or the general one for a layout it does not serve.
    ///
    /// # Safety
    /// The contract of `GlobalAlloc::alloc`.
    #[inline(always)]
    unsafe fn alloc_fast(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        if !header::is_fast(layout) {
            // SAFETY: our own contract, passed on.
            return unsafe { self.alloc_general(layout, zeroed) };
        }
        // SAFETY: the layout is fast, so its size is at most FAST_MAX.
        let outer = unsafe { header::fast_outer(layout.size()) };
        let base = if zeroed {
            // SAFETY: `outer` is a valid layout of non-zero size (it holds the header).
            unsafe { self.inner.alloc_zeroed(outer) }
        } else {
            // SAFETY: as above.
            unsafe { self.inner.alloc(outer) }
        };
        if base.is_null() {
            return base;
        }
        match on_alloc_fast(layout.size()) {
            // SAFETY: `base` is a live block of `fast_outer(size)`, which is
            // `outer_layout(layout)` for a fast layout.
            Some(h) => unsafe { header::write_fast(base, h) },
            // SAFETY: as above.
            None => unsafe { Self::count_alloc_fast(base, layout.size()) },
        }
    }

    /// `alloc` or `alloc_zeroed` for any layout.
    ///
    /// # Safety
    /// The contract of `GlobalAlloc::alloc`.
    #[cold]
    #[inline(never)]
    unsafe fn alloc_general(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        let Some(outer) = header::outer_layout(layout) else {
            return ptr::null_mut();
        };
        let base = if zeroed {
            // SAFETY: `outer` is a valid layout of non-zero size (it holds the header).
            unsafe { self.inner.alloc_zeroed(outer) }
        } else {
            // SAFETY: as above.
            unsafe { self.inner.alloc(outer) }
        };
        if base.is_null() {
            return base;
        }
        // SAFETY: `base` is a live block of `outer`, from `outer_layout(layout)`.
        unsafe { Self::count_alloc(base, layout) }
    }

    /// [`count_alloc`](Self::count_alloc) for a fast layout of `size` bytes:
    /// the fast path then keeps only `size` alive across the inner call.
    ///
    /// # Safety
    /// `base` is a live block of `fast_outer(size)`.
    #[cold]
    #[inline(never)]
    unsafe fn count_alloc_fast(base: *mut u8, size: usize) -> *mut u8 {
        let h = on_alloc(size);
        // SAFETY: `base` is a live block of `fast_outer(size)` (caller
        // contract), the outer layout of any fast layout of `size` bytes.
        unsafe { header::write_fast(base, h) }
    }

    /// Counts a new block that the fast path could not count, and writes its
    /// header; returns the user pointer.
    ///
    /// # Safety
    /// `base` is a live block of `outer_layout(layout)`.
    #[cold]
    #[inline(never)]
    unsafe fn count_alloc(base: *mut u8, layout: Layout) -> *mut u8 {
        let h = on_alloc(layout.size());
        // SAFETY: `base` is a live block of `outer_layout(layout)` (caller contract).
        unsafe { header::write(base, layout, h) }
    }

    /// `dealloc` for any layout and any event.
    ///
    /// # Safety
    /// The contract of `GlobalAlloc::dealloc`.
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_general(&self, ptr: *mut u8, layout: Layout) {
        let Some(outer) = header::outer_layout(layout) else {
            // Unreachable: `alloc` succeeded with this layout. Leak rather than
            // guess.
            return;
        };
        // SAFETY: `ptr` came from our `alloc*`/`realloc` with `layout` (caller
        // contract of `dealloc`), so its header was written by `header::write`.
        let h = unsafe { header::read(ptr) };
        on_free(&h, layout.size());
        // SAFETY: same contract: `base` is the inner block's start.
        let base = unsafe { header::base(ptr, layout) };
        // SAFETY: `base` was allocated by `inner` with `outer`.
        unsafe { self.inner.dealloc(base, outer) };
    }

    /// `realloc` for any layout.
    ///
    /// # Safety
    /// The contract of `GlobalAlloc::realloc`.
    #[cold]
    #[inline(never)]
    unsafe fn realloc_general(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (Some(old_outer), Some(new_outer)) = (
            header::outer_layout(layout),
            header::outer_layout_for_size(layout, new_size),
        ) else {
            return ptr::null_mut();
        };
        // SAFETY: `ptr` came from us with `layout` (caller contract of `realloc`).
        let old = unsafe { header::read(ptr) };
        // SAFETY: same contract.
        let base = unsafe { header::base(ptr, layout) };
        // SAFETY: `base` was allocated by `inner` with `old_outer`; the new
        // size is non-zero and, with the alignment, a valid layout (checked by
        // `outer_layout_for_size`).
        let new_base = unsafe { self.inner.realloc(base, old_outer, new_outer.size()) };
        if new_base.is_null() {
            return new_base;
        }
        // A realloc is a free of the old block and an allocation of the new one:
        // live bytes move straight from the old size to the new one.
        on_free(&old, layout.size());
        let h = on_alloc(new_size);
        // SAFETY: `new_base` is a live block of `new_outer`, whose offset is the
        // same as the old one's (it depends only on the alignment).
        unsafe { header::write(new_base, layout, h) }
    }
}

// SAFETY: every method forwards to `inner` with a layout that is valid for it
// (the user's layout grown by the header, checked by `outer_layout`), and
// returns a pointer inside the block it got, aligned to the user's alignment
// (`header::offset` is a multiple of it) with at least `layout.size()` bytes
// after it. Blocks are given back with the same outer layout they were made with.
unsafe impl<A: GlobalAlloc> GlobalAlloc for ModAlloc<A> {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: our own contract, passed on.
        unsafe { self.alloc_fast(layout, false) }
    }

    #[inline(always)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: our own contract, passed on.
        unsafe { self.alloc_fast(layout, true) }
    }

    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !header::is_fast_block(layout) {
            // SAFETY: our own contract, passed on.
            return unsafe { self.dealloc_general(ptr, layout) };
        }
        // SAFETY: `ptr` came from our `alloc*`/`realloc` with `layout` (caller
        // contract of `dealloc`), so its header was written by `header::write`.
        let h = unsafe { header::read(ptr) };
        if !on_free_fast(&h, layout.size()) {
            // SAFETY: our own contract, passed on; nothing was counted yet.
            return unsafe { self.dealloc_general(ptr, layout) };
        }
        // SAFETY: same contract, and the alignment is small: `base` is the
        // inner block's start.
        let base = unsafe { header::base_fast(ptr) };
        // SAFETY: the block was allocated by us with `layout`.
        let outer = unsafe { header::fast_outer(layout.size()) };
        // SAFETY: `base` was allocated by `inner` with `outer_layout(layout)`,
        // which is `outer` for a small alignment.
        unsafe { self.inner.dealloc(base, outer) };
    }

    #[inline(always)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !header::is_fast_block(layout) || !header::is_fast_size(new_size) {
            // SAFETY: our own contract, passed on.
            return unsafe { self.realloc_general(ptr, layout, new_size) };
        }
        // SAFETY: `ptr` came from us with `layout` (caller contract of `realloc`).
        let old = unsafe { header::read(ptr) };
        // SAFETY: same contract, and the alignment is small.
        let base = unsafe { header::base_fast(ptr) };
        // SAFETY: the block was allocated by us with `layout`.
        let old_outer = unsafe { header::fast_outer(layout.size()) };
        // SAFETY: `new_size <= FAST_MAX` (checked above).
        let new_outer = unsafe { header::fast_outer(new_size) };
        // SAFETY: `base` was allocated by `inner` with `old_outer` (the outer
        // layout of a fast layout); `new_outer` is a valid layout of non-zero
        // size with the same alignment.
        let new_base = unsafe { self.inner.realloc(base, old_outer, new_outer.size()) };
        if new_base.is_null() {
            return new_base;
        }
        // A free of the old block and an allocation of the new one, as in
        // `realloc_general`.
        if !on_free_fast(&old, layout.size()) {
            on_free(&old, layout.size());
        }
        match on_alloc_fast(new_size) {
            // SAFETY: `new_base` is a live block of `fast_outer(new_size)`,
            // the outer layout of `layout` grown to `new_size`.
            Some(h) => unsafe { header::write_fast(new_base, h) },
            // SAFETY: as above.
            None => unsafe { Self::count_alloc_fast(new_base, new_size) },
        }
    }
}
