//! Process-wide figures: per-thread counters, summed on demand.
//!
//! Each thread keeps its process counters in its own thread-local
//! [`Counters`] (written only by the owner, `Relaxed` load + store, never a
//! read-modify-write) and has a heap [`ThreadSlot`] in the registry: a pointer
//! to those counters while the thread lives, and its scope stack (read by
//! other threads to attribute cross-thread frees). [`snapshot`] sums the
//! registered counters; a thread that exits folds its counters into
//! [`RETIRED`] and frees its slot for the next thread.
//!
//! Invariants:
//! - a slot is never deallocated: ids stay valid for foreign frees that read a
//!   block's header after its thread exited;
//! - other threads read a thread's `Counters` only between
//!   `READERS += 1` and `READERS -= 1`, after loading a non-null pointer;
//!   [`ThreadSlot::retire`] nulls the pointer and then waits for `READERS == 0`
//!   before the thread-local memory can go away;
//! - cumulative counters only grow; a window (see [`reset`]) is the difference
//!   to the `base_*` values the owner copies when it sees a new epoch;
//! - a child process made by `fork` starts with `READERS == 0` and every
//!   `inflight == 0` (see [`watch_fork`]): the threads that held them are
//!   gone;
//! - the process peak is exact for one allocating thread and otherwise within
//!   `(threads - 1) * PUBLISH_SLACK` bytes (see [`Counters::note_peak`]).
//!
//! Without `std` there are no threads to tell apart: [`NoStdCounters`] keeps
//! the process window in plain atomics.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::AllocStats;
use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::*};

/// Current process accounting window; bumped by [`reset`]. Headers keep its low
/// 16 bits.
pub(crate) static EPOCH: AtomicU32 = AtomicU32::new(0);

#[cfg(feature = "std")]
pub(crate) use with_std::*;

#[cfg(feature = "std")]
mod with_std {
    use super::*;
    use core::alloc::{GlobalAlloc, Layout};
    use core::ptr;
    use core::sync::atomic::{AtomicBool, AtomicPtr};
    use std::alloc::System;

    /// Deepest scope nesting on one thread ([`Profiler::start`](crate::Profiler::start)
    /// panics beyond it).
    pub(crate) const MAX_DEPTH: usize = 32;

    /// A thread's drift between its published live bytes and its real live bytes
    /// before it publishes again; bounds the error of the process peak.
    pub(crate) const PUBLISH_SLACK: i64 = 64 * 1024;

    /// Allocations of at least this many bytes move
    /// [`Counters::free_limit`] with them on the fast path; smaller ones leave
    /// it stale (see there). Below it, a renewal every `PUBLISH_SLACK / 2`
    /// bytes freed costs less per free than that store, which the free then
    /// has to wait for; above it, a block costs the inner allocator more
    /// than the store anyway (glibc's thread cache stops at 1032 bytes).
    pub(crate) const FREE_LIMIT_MOVES_FROM: u64 = 256;

    const CHUNK: usize = 256;
    const CHUNKS: usize = 256;
    /// Most threads alive at once that get a slot; later ones count into
    /// [`RETIRED`] directly (correct totals, no scopes).
    const MAX_THREADS: u32 = (CHUNK * CHUNKS) as u32;

    /// A thread's process counters. They live in the thread's thread-local
    /// state; other threads read them through [`ThreadSlot::counters`].
    ///
    /// Bytes allocated and bytes freed are two counters rather than one live
    /// count, so that an allocation and a free touch different memory: one
    /// `live` updated by both would chain every event to the previous one
    /// through a store and a load (measured: 2.25x `System` per pair with one
    /// `live`, against ~1.5x split).
    pub(crate) struct Counters {
        // Hot: written on every event by the owner. Cumulative over windows;
        // frees count only blocks of the window they happen in.
        pub(crate) allocs: AtomicU64,
        pub(crate) bytes: AtomicU64,
        pub(crate) frees: AtomicU64,
        pub(crate) freed: AtomicU64,
        /// An allocation that takes `bytes - freed` above `hi`, or a free
        /// that takes `freed` to `free_limit` or past it, takes the slow path
        /// ([`Counters::note_peak`]). Also used to force that path: first
        /// event (registration), [`reset`], thread exit.
        ///
        /// `free_limit` stands for the band's lower bound `lo` in the one
        /// counter a free writes: live bytes can only drop below `lo` by
        /// frees, and `bytes` only grows, so they cannot get there before
        /// `freed` reaches `bytes - lo` as it was when the limit was set. A
        /// free then tests one counter against one bound, and a small
        /// allocation writes nothing a free reads: a free that reads a
        /// counter the allocation just before stored waits for that store
        /// (reading `bytes` there cost 10 to 15% of a `System` pair). Small
        /// allocations since the limit was set make it stale, never wrong
        /// (it only gets lower than `bytes - lo`): a free that reaches it
        /// renews it ([`Counters::renew_free_limit`]). Allocations of at
        /// least [`FREE_LIMIT_MOVES_FROM`] bytes move it with them.
        pub(crate) hi: AtomicI64,
        pub(crate) free_limit: AtomicU64,
        /// The band's lower bound (raw live bytes); read on renewal only.
        lo: AtomicI64,
        // Cold.
        /// Window these figures belong to (`u32::MAX`: none yet).
        pub(crate) epoch: AtomicU32,
        base_allocs: AtomicU64,
        base_bytes: AtomicU64,
        base_frees: AtomicU64,
        base_freed: AtomicU64,
        /// Highest process live bytes this thread has seen (a peak candidate).
        peak: AtomicI64,
        /// Window live bytes as last added into [`G_LIVE`].
        published: AtomicI64,
        /// Highest window live bytes of this thread.
        own_high: AtomicI64,
    }

    impl Counters {
        /// Fresh counters: the first event takes the slow path.
        pub(crate) const fn new() -> Counters {
            Counters {
                allocs: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                frees: AtomicU64::new(0),
                freed: AtomicU64::new(0),
                hi: AtomicI64::new(i64::MIN),
                free_limit: AtomicU64::new(0),
                lo: AtomicI64::new(i64::MAX),
                epoch: AtomicU32::new(u32::MAX),
                base_allocs: AtomicU64::new(0),
                base_bytes: AtomicU64::new(0),
                base_frees: AtomicU64::new(0),
                base_freed: AtomicU64::new(0),
                peak: AtomicI64::new(0),
                published: AtomicI64::new(0),
                own_high: AtomicI64::new(0),
            }
        }

        /// Counts an allocation of `size` bytes that takes `bytes` to
        /// `bytes_after`, once the band was checked (owner only).
        /// Hook-safe: no allocation, no lock, no panic.
        #[inline(always)]
        pub(crate) fn count_alloc(&self, bytes_after: u64, size: u64) {
            self.allocs
                .store(self.allocs.load(Relaxed).wrapping_add(1), Relaxed);
            self.bytes.store(bytes_after, Relaxed);
            // Out of line: a large block costs the inner allocator far more.
            if crate::hint::unlikely(size >= FREE_LIMIT_MOVES_FROM) {
                self.free_limit
                    .store(self.free_limit.load(Relaxed).wrapping_add(size), Relaxed);
            }
        }

        /// Counts a free that takes `freed` to `freed_after`, once the band
        /// was checked (owner only).
        /// Hook-safe: no allocation, no lock, no panic.
        #[inline(always)]
        pub(crate) fn count_free(&self, freed_after: u64) {
            self.frees
                .store(self.frees.load(Relaxed).wrapping_add(1), Relaxed);
            self.freed.store(freed_after, Relaxed);
        }

        /// `bytes - freed` as the fast path compares it with `hi`.
        #[inline(always)]
        pub(crate) fn raw_live(bytes: u64, freed: u64) -> i64 {
            bytes.wrapping_sub(freed) as i64
        }

        /// Live bytes of the window.
        fn live(&self) -> i64 {
            let raw = Self::raw_live(self.bytes.load(Relaxed), self.freed.load(Relaxed));
            raw.wrapping_sub(self.base_raw())
        }

        fn base_raw(&self) -> i64 {
            Self::raw_live(self.base_bytes.load(Relaxed), self.base_freed.load(Relaxed))
        }

        /// Forces the owner's next event onto the slow path.
        pub(crate) fn force_slow_path(&self) {
            self.hi.store(i64::MIN, SeqCst);
            self.lo.store(i64::MAX, SeqCst);
            self.free_limit.store(0, SeqCst);
        }

        /// Starts window `e` (owner only).
        /// Hook-safe: no allocation, no lock, no panic.
        pub(crate) fn start_window(&self, e: u32) {
            self.base_allocs.store(self.allocs.load(Relaxed), Relaxed);
            self.base_bytes.store(self.bytes.load(Relaxed), Relaxed);
            self.base_frees.store(self.frees.load(Relaxed), Relaxed);
            self.base_freed.store(self.freed.load(Relaxed), Relaxed);
            self.peak.store(0, Relaxed);
            self.published.store(0, Relaxed);
            self.own_high.store(0, Relaxed);
            self.epoch.store(e, SeqCst);
            self.set_bounds(0, 0);
            self.keep_closed_if_reset(e);
        }

        /// After storing a band: if a reset happened meanwhile, its
        /// `force_slow_path` may have been overwritten by our store; close
        /// the band again so the next event rolls into the new window.
        ///
        /// The fence orders our band store before the `EPOCH` load (on x86
        /// a plain store may otherwise still sit in the store buffer while
        /// the load reads the old epoch): either the reset's bump of `EPOCH`
        /// is seen here, or its `force_slow_path` store comes after ours.
        /// Hook-safe: no allocation, no lock, no panic.
        fn keep_closed_if_reset(&self, e: u32) {
            core::sync::atomic::fence(SeqCst);
            if EPOCH.load(SeqCst) != e {
                self.force_slow_path();
            }
        }

        /// Sets the band `[lo, hi]` (window values) outside which the next
        /// event takes the slow path: a new high of this thread, or a drift
        /// of the slack from what it published (`lo`, kept for frees as
        /// [`free_limit`](Counters::free_limit)).
        fn set_bounds(&self, live: i64, published: i64) {
            let own = self.own_high.load(Relaxed).max(live);
            self.own_high.store(own, Relaxed);
            let hi = own.min(published.wrapping_add(PUBLISH_SLACK)).max(live);
            let lo = published.wrapping_sub(PUBLISH_SLACK).min(live);
            let base = self.base_raw();
            self.hi.store(hi.wrapping_add(base), Relaxed);
            self.lo.store(lo.wrapping_add(base), Relaxed);
            self.set_free_limit(lo.wrapping_add(base));
        }

        /// `free_limit` for the raw lower bound `raw_lo`: live bytes below it
        /// mean `bytes - freed < raw_lo`, so `freed > bytes - raw_lo >=
        /// bytes_now - raw_lo`. With `raw_lo` at most the live bytes now, the
        /// limit is at least `freed` now.
        fn set_free_limit(&self, raw_lo: i64) {
            let limit = self.bytes.load(Relaxed).wrapping_sub(raw_lo as u64);
            self.free_limit.store(limit, Relaxed);
        }

        /// A free takes `freed` to `freed_after`, at or past
        /// [`free_limit`](Counters::free_limit). If the live bytes are still
        /// in the band, at least half the slack above `lo` (the limit was
        /// stale: small allocations came since it was set), renews the limit
        /// and returns `true`: the free is a common one. Otherwise (the band
        /// was left or closed on purpose, or the live bytes are near `lo`)
        /// returns `false` having changed nothing, and the free takes the
        /// slow path, which publishes from half the slack down (see
        /// [`Counters::note_peak`]) and so leaves at least that much room
        /// before the next renewal: frees that keep the live bytes just above
        /// `lo` cannot renew on every call.
        /// Hook-safe: no allocation, no lock, no panic.
        #[cold]
        #[inline(never)]
        pub(crate) fn renew_free_limit(&self, freed_after: u64) -> bool {
            let lo = self.lo.load(Relaxed);
            let live = Self::raw_live(self.bytes.load(Relaxed), freed_after);
            // `live >= lo` first: the difference may then only wrap to a
            // negative value (never with real figures), which renews nothing.
            if live < lo || live.wrapping_sub(lo) < PUBLISH_SLACK / 2 {
                return false;
            }
            self.set_free_limit(lo);
            // A reset may have closed the band after `lo` was read.
            self.keep_closed_if_reset(self.epoch.load(Relaxed));
            true
        }

        /// Recomputes the band after it was closed on purpose (tracking
        /// resumed), keeping it closed if a reset happened meanwhile.
        pub(crate) fn refresh_bounds(&self) {
            let e = self.epoch.load(Relaxed);
            self.set_bounds(self.live(), self.published.load(Relaxed));
            self.keep_closed_if_reset(e);
        }

        /// Slow path of the process counters: live bytes left `[lo, hi]`.
        ///
        /// Publishes the thread's live bytes into [`G_LIVE`] when they drifted
        /// by [`PUBLISH_SLACK`] (downwards: by half of it), and records a peak
        /// candidate (the other threads' published live bytes plus this
        /// thread's exact ones) whenever they reach a new high. With one allocating thread the
        /// candidate is the exact process live, so the peak is exact.
        /// Hook-safe: no allocation, no lock, no panic.
        pub(crate) fn note_peak(&self) {
            let live = self.live();
            let mut published = self.published.load(Relaxed);
            let mut global = G_LIVE.load(Relaxed);
            let drift = live.wrapping_sub(published);
            // Downwards from half the slack: frees then find room for that
            // much before they renew their limit (see `renew_free_limit`).
            if drift >= PUBLISH_SLACK || drift <= -PUBLISH_SLACK / 2 {
                global = G_LIVE.fetch_add(drift, Relaxed).wrapping_add(drift);
                published = live;
                self.published.store(live, Relaxed);
            }
            let candidate = global.wrapping_sub(published).wrapping_add(live);
            if candidate > self.peak.load(Relaxed) {
                self.peak.store(candidate, Relaxed);
            }
            self.set_bounds(live, published);
            // A reset between the caller's epoch check and the store above
            // would otherwise leave this thread counting in the old window
            // until its live bytes next leave the band.
            self.keep_closed_if_reset(self.epoch.load(Relaxed));
        }

        /// This thread's figures of window `e`, if it has rolled into it.
        fn window(&self, e: u32) -> Option<Window> {
            if self.epoch.load(Acquire) != e {
                return None;
            }
            Some(Window {
                allocs: self
                    .allocs
                    .load(Relaxed)
                    .wrapping_sub(self.base_allocs.load(Relaxed)),
                bytes: self
                    .bytes
                    .load(Relaxed)
                    .wrapping_sub(self.base_bytes.load(Relaxed)),
                frees: self
                    .frees
                    .load(Relaxed)
                    .wrapping_sub(self.base_frees.load(Relaxed)),
                live: self.live(),
                peak: self.peak.load(Relaxed),
            })
        }
    }

    /// One thread's (or the retired threads') figures of a window.
    #[derive(Default)]
    struct Window {
        allocs: u64,
        bytes: u64,
        frees: u64,
        live: i64,
        peak: i64,
    }

    /// One nesting level of a thread's scope stack.
    ///
    /// `serial`, `shared` and the `foreign_*` fields are read or written by
    /// other threads; the rest is owner-private (atomics only so the slot can
    /// be `Sync`).
    #[derive(Default)]
    pub(crate) struct ScopeEntry {
        /// Serial of the level (0: free), process-unique and growing up the stack.
        pub(crate) serial: AtomicU64,
        /// Bytes and blocks of this level's blocks freed by other threads and
        /// not yet folded in by the owner.
        pub(crate) foreign_bytes: AtomicU64,
        pub(crate) foreign_blocks: AtomicU64,
        /// Shared state when the scope was opened to other threads, or the
        /// joined scope of a proxy level; null otherwise.
        pub(crate) shared: AtomicPtr<crate::scope::SharedScope>,
        /// This level is a proxy: the thread joined another thread's scope.
        pub(crate) proxy: AtomicBool,
        // Owner-private below.
        /// Live bytes / blocks of this level's subtree outside the level above
        /// (saved when a level is pushed above it).
        pub(crate) excl: AtomicU64,
        pub(crate) excl_blocks: AtomicU64,
        /// Highest live bytes folded in so far.
        pub(crate) peak: AtomicU64,
        /// The thread's cumulative allocations and bytes when the level was
        /// pushed, and adjustments from children counted elsewhere (proxies)
        /// or by other threads (shared children): the level's figures are
        /// `cumulative - base + adjust`.
        pub(crate) allocs0: AtomicU64,
        pub(crate) bytes0: AtomicU64,
        pub(crate) adj_allocs: AtomicU64,
        pub(crate) adj_bytes: AtomicU64,
        /// Per-site figures of the level (local levels only).
        #[cfg(feature = "backtraces")]
        pub(crate) ledger: crate::ledger::Ledger,
        /// Profile clock when the level was pushed.
        #[cfg(feature = "backtraces")]
        pub(crate) start_ticks: AtomicU64,
    }

    /// A thread's registry entry: where its counters are, and its scope stack.
    #[derive(Default)]
    pub(crate) struct ThreadSlot {
        /// Registry id (1-based; never 0).
        pub(crate) id: u32,
        in_use: AtomicBool,
        /// The owner's thread-local counters; null once it exits.
        counters: AtomicPtr<Counters>,
        /// Foreign threads inside this slot's scope stack right now.
        pub(crate) inflight: AtomicU32,
        /// Number of levels in `entries` in use.
        pub(crate) depth: AtomicU32,
        /// Set by foreign frees; the owner folds `foreign_*` when it sees it.
        pub(crate) pending: AtomicBool,
        pub(crate) entries: [ScopeEntry; MAX_DEPTH],
        /// Per-site figures of the owner's process window.
        #[cfg(feature = "backtraces")]
        pub(crate) ledger: crate::ledger::Ledger,
    }

    /// Sum of the threads' published live bytes (the process live bytes, each
    /// thread within [`PUBLISH_SLACK`]).
    static G_LIVE: AtomicI64 = AtomicI64::new(0);
    /// Threads reading other threads' counters right now.
    static READERS: AtomicU32 = AtomicU32::new(0);
    /// Registry: `CHUNKS` lazily allocated arrays of `CHUNK` slot pointers.
    static TABLE: [AtomicPtr<[AtomicPtr<ThreadSlot>; CHUNK]>; CHUNKS] = [NULL_CHUNK; CHUNKS];
    /// Ids handed out so far (slots 1..=NEXT_ID may exist).
    static NEXT_ID: AtomicU32 = AtomicU32::new(0);

    #[allow(clippy::declare_interior_mutable_const)] // only to build TABLE
    const NULL_CHUNK: AtomicPtr<[AtomicPtr<ThreadSlot>; CHUNK]> = AtomicPtr::new(ptr::null_mut());

    /// Process totals of threads that exited, and of events of threads that
    /// have no slot (exiting, or past `MAX_THREADS`).
    struct Retired {
        epoch: AtomicU32,
        allocs: AtomicU64,
        bytes: AtomicU64,
        frees: AtomicU64,
        live: AtomicI64,
        peak: AtomicI64,
    }

    static RETIRED: Retired = Retired {
        epoch: AtomicU32::new(0),
        allocs: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        frees: AtomicU64::new(0),
        live: AtomicI64::new(0),
        peak: AtomicI64::new(0),
    };

    impl Retired {
        /// Zeroes the retired totals if they belong to an older window.
        fn roll(&self, e: u32) {
            let old = self.epoch.load(Acquire);
            if old != e && self.epoch.compare_exchange(old, e, AcqRel, Relaxed).is_ok() {
                self.allocs.store(0, Relaxed);
                self.bytes.store(0, Relaxed);
                self.frees.store(0, Relaxed);
                self.live.store(0, Relaxed);
                self.peak.store(0, Relaxed);
            }
        }

        fn add(&self, w: &Window) {
            self.allocs.fetch_add(w.allocs, Relaxed);
            self.bytes.fetch_add(w.bytes, Relaxed);
            self.frees.fetch_add(w.frees, Relaxed);
            self.live.fetch_add(w.live, Relaxed);
            let g = G_LIVE.fetch_add(w.live, Relaxed).wrapping_add(w.live);
            self.peak.fetch_max(g.max(w.peak), Relaxed);
        }
    }

    /// Moves what a thread without a slot just counted in `c` into the retired
    /// totals, and keeps its next events on the slow path.
    /// Hook-safe: no allocation, no lock, no panic.
    pub(crate) fn flush_unslotted(c: &Counters) {
        let e = EPOCH.load(Acquire);
        RETIRED.roll(e);
        if let Some(w) = c.window(e) {
            RETIRED.add(&w);
        }
        c.start_window(e);
        c.force_slow_path();
    }

    /// The slot with registry id `id`, if it exists.
    /// Hook-safe: no allocation, no lock, no panic.
    #[inline]
    pub(crate) fn slot_by_id(id: u32) -> Option<&'static ThreadSlot> {
        let idx = id.checked_sub(1)? as usize;
        let chunk = TABLE.get(idx / CHUNK)?.load(Acquire);
        if chunk.is_null() {
            return None;
        }
        // SAFETY: non-null chunk pointers are only stored by `new_slot`, from a
        // zeroed allocation of the right layout that is never freed.
        let chunk = unsafe { &*chunk };
        let slot = chunk[idx % CHUNK].load(Acquire);
        // SAFETY: non-null slot pointers come from `new_slot` (never freed,
        // fully initialised before the Release store that published them).
        (!slot.is_null()).then(|| unsafe { &*slot })
    }

    /// Takes a free slot or makes one for the calling thread, whose counters
    /// are `c` (its thread-local, alive until it calls [`ThreadSlot::retire`]).
    /// Rare path: once per thread. Memory comes from `System`, never from the
    /// global allocator, so this does not reenter the hook.
    /// Hook-safe: no allocation through the global allocator, no lock, no panic.
    pub(crate) fn claim_slot(c: &Counters) -> Option<&'static ThreadSlot> {
        let slot = reuse_slot().or_else(new_slot)?;
        slot.depth.store(0, Relaxed);
        slot.pending.store(false, Relaxed);
        #[cfg(feature = "backtraces")]
        {
            slot.ledger.set_shared();
            let _ = WINDOW_START.compare_exchange(0, crate::clock::ticks(), Relaxed, Relaxed);
        }
        slot.counters
            .store((c as *const Counters).cast_mut(), SeqCst);
        Some(slot)
    }

    fn reuse_slot() -> Option<&'static ThreadSlot> {
        let n = NEXT_ID.load(Acquire).min(MAX_THREADS);
        (1..=n).filter_map(slot_by_id).find(|s| {
            s.in_use
                .compare_exchange(false, true, Acquire, Relaxed)
                .is_ok()
        })
    }

    fn new_slot() -> Option<&'static ThreadSlot> {
        let id = NEXT_ID.fetch_add(1, AcqRel).checked_add(1)?;
        if id > MAX_THREADS {
            return None;
        }
        let idx = (id - 1) as usize;
        let chunk_ptr = &TABLE[idx / CHUNK];
        let mut chunk = chunk_ptr.load(Acquire);
        if chunk.is_null() {
            let fresh = zeroed::<[AtomicPtr<ThreadSlot>; CHUNK]>()?;
            chunk = match chunk_ptr.compare_exchange(ptr::null_mut(), fresh, AcqRel, Acquire) {
                Ok(_) => fresh,
                Err(winner) => {
                    // SAFETY: `fresh` came from `zeroed` with this layout and was
                    // never published.
                    unsafe {
                        System.dealloc(
                            fresh.cast(),
                            Layout::new::<[AtomicPtr<ThreadSlot>; CHUNK]>(),
                        )
                    };
                    winner
                }
            };
        }
        let slot = zeroed::<ThreadSlot>()?;
        // SAFETY: `slot` is a fresh, zeroed, unpublished ThreadSlot (all-zero is
        // a valid value of every field: integers, atomics, null pointers).
        unsafe { (*slot).id = id };
        // SAFETY: as above; `in_use` is an atomic inside the fresh slot.
        unsafe { &(*slot).in_use }.store(true, Relaxed);
        // SAFETY: non-null chunk pointers are zeroed arrays that are never freed.
        let chunk = unsafe { &*chunk };
        chunk[idx % CHUNK].store(slot, Release);
        // SAFETY: just published; never freed.
        Some(unsafe { &*slot })
    }

    /// A zeroed `T` from `System`, or `None` when memory is short.
    fn zeroed<T>() -> Option<*mut T> {
        let layout = Layout::new::<T>();
        // SAFETY: `T` here is a slot or a chunk, both of non-zero size.
        let p = unsafe { System.alloc_zeroed(layout) };
        (!p.is_null()).then_some(p.cast())
    }

    impl ThreadSlot {
        /// Folds the owner's counters `c` into [`RETIRED`], detaches them and
        /// frees the slot (the owner thread is exiting; its scopes are closed).
        /// Waits for readers of `c` to finish: after this, `c` may go away.
        pub(crate) fn retire(&self, c: &Counters) {
            self.counters.store(ptr::null_mut(), SeqCst);
            let mut spins = 0u32;
            while READERS.load(SeqCst) != 0 {
                spins = spins.wrapping_add(1);
                if spins < 100 {
                    core::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            let e = EPOCH.load(Acquire);
            if let Some(mut w) = c.window(e) {
                RETIRED.roll(e);
                // Publish the rest of this thread's live bytes.
                w.live = w.live.wrapping_sub(c.published.load(Relaxed));
                RETIRED.add(&w);
                RETIRED.live.fetch_add(c.published.load(Relaxed), Relaxed);
            }
            #[cfg(feature = "backtraces")]
            if c.epoch.load(Relaxed) == e {
                retired_sites::absorb(&self.ledger, e);
            }
            #[cfg(feature = "backtraces")]
            self.ledger.clear();
            self.depth.store(0, Release);
            for entry in &self.entries {
                entry.serial.store(0, Release);
            }
            self.in_use.store(false, Release);
        }
    }

    /// Per-site figures of threads that exited, for the process window.
    #[cfg(feature = "backtraces")]
    pub(crate) mod retired_sites {
        use crate::ledger::{Fig, Ledger};
        use core::sync::atomic::{AtomicBool, AtomicU32, Ordering::*};

        static LEDGER: Ledger = Ledger::new(true);
        static WINDOW: AtomicU32 = AtomicU32::new(0);
        /// Guards LEDGER (writers and readers). Never taken in the allocation
        /// path: by exiting threads and by reports only.
        static BUSY: AtomicBool = AtomicBool::new(false);

        /// Runs `f` with the lock, or not at all if it cannot be had within
        /// a bounded wait (a `fork` child may inherit it taken).
        fn locked<R>(f: impl FnOnce() -> R) -> Option<R> {
            for spin in 0..1_000_000u32 {
                if BUSY
                    .compare_exchange_weak(false, true, Acquire, Relaxed)
                    .is_ok()
                {
                    let r = f();
                    BUSY.store(false, Release);
                    return Some(r);
                }
                if spin > 100 {
                    std::thread::yield_now();
                } else {
                    core::hint::spin_loop();
                }
            }
            None
        }

        fn roll(e: u32) {
            if WINDOW.load(Relaxed) != e {
                LEDGER.clear();
                WINDOW.store(e, Relaxed);
            }
        }

        /// Keeps an exiting thread's figures of window `e`.
        pub(crate) fn absorb(l: &Ledger, e: u32) {
            let figs = crate::thread::untracked(|| l.figures(true));
            let peak = l.peak();
            let _ = locked(|| {
                roll(e);
                crate::thread::untracked(|| LEDGER.absorb(&figs, peak));
            });
        }

        /// The figures of window `e`, and its peak (bytes, tick).
        pub(crate) fn figures(e: u32) -> (Vec<(u32, Fig)>, (u64, u64)) {
            locked(|| {
                roll(e);
                (LEDGER.figures(true), LEDGER.peak())
            })
            .unwrap_or_default()
        }
    }

    /// Per-site figures of the process window, summed over threads (per
    /// site), with the highest per-thread peak (bytes, tick). A report-side
    /// call: it allocates (untracked).
    #[cfg(feature = "backtraces")]
    pub(crate) fn process_sites() -> (Vec<(u32, crate::ledger::Fig)>, (u64, u64)) {
        crate::thread::untracked(|| {
            let e = EPOCH.load(Acquire);
            let (mut all, mut peak) = retired_sites::figures(e);
            READERS.fetch_add(1, SeqCst);
            let n = NEXT_ID.load(Acquire).min(MAX_THREADS);
            for slot in (1..=n).filter_map(slot_by_id) {
                let c = slot.counters.load(SeqCst);
                // SAFETY: as in `for_each_counters`.
                if c.is_null() || unsafe { &*c }.epoch.load(Acquire) != e {
                    continue;
                }
                let own = crate::thread::owns_slot(slot);
                all.extend(slot.ledger.figures(own));
                let p = slot.ledger.peak();
                if p.0 > peak.0 {
                    peak = p;
                }
            }
            READERS.fetch_sub(1, SeqCst);
            (merge_sites(all), peak)
        })
    }

    /// Sums figures of the same site.
    #[cfg(feature = "backtraces")]
    pub(crate) fn merge_sites(
        mut all: Vec<(u32, crate::ledger::Fig)>,
    ) -> Vec<(u32, crate::ledger::Fig)> {
        all.sort_by_key(|(site, _)| *site);
        let mut out: Vec<(u32, crate::ledger::Fig)> = Vec::with_capacity(all.len());
        for (site, fig) in all {
            match out.last_mut() {
                Some((s, f)) if *s == site => f.add(&fig),
                _ => out.push((site, fig)),
            }
        }
        out
    }

    /// Makes sure a child process made by `fork` starts with no reader and
    /// no foreign free in flight: the threads that were in the middle of one
    /// when another thread forked do not exist in the child, and the child's
    /// threads would otherwise wait for them forever (a thread exit in
    /// [`ThreadSlot::retire`], a scope stop in `scope::pop_top`).
    ///
    /// Called before this thread can raise [`READERS`] (in
    /// [`for_each_counters`]) or open a scope whose entries other threads
    /// raise `inflight` on (in `scope::push`), so the handler is in place
    /// before any count it clears can be non-zero. Not called from the hook.
    pub(crate) fn watch_fork() {
        #[cfg(unix)]
        {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                extern "C" {
                    fn pthread_atfork(
                        prepare: Option<unsafe extern "C" fn()>,
                        parent: Option<unsafe extern "C" fn()>,
                        child: Option<unsafe extern "C" fn()>,
                    ) -> i32;
                }
                // SAFETY: registers a handler that only stores to atomics
                // (async-signal-safe, as a child-side fork handler must be);
                // whatever libc allocates for the registration is untracked.
                let _ = crate::thread::untracked(|| unsafe {
                    pthread_atfork(None, None, Some(clear_counts_after_fork))
                });
            });
        }
    }

    /// Child-side fork handler: only the forking thread exists now, and it
    /// was neither reading counters nor freeing a foreign block (it was
    /// calling `fork`). Only atomic stores: async-signal-safe.
    #[cfg(unix)]
    unsafe extern "C" fn clear_counts_after_fork() {
        READERS.store(0, SeqCst);
        let n = NEXT_ID.load(Acquire).min(MAX_THREADS);
        for slot in (1..=n).filter_map(slot_by_id) {
            slot.inflight.store(0, SeqCst);
        }
    }

    /// Runs `f` on the counters of every registered thread (readers protocol).
    fn for_each_counters(mut f: impl FnMut(&Counters)) {
        watch_fork();
        READERS.fetch_add(1, SeqCst);
        let n = NEXT_ID.load(Acquire).min(MAX_THREADS);
        for slot in (1..=n).filter_map(slot_by_id) {
            let c = slot.counters.load(SeqCst);
            if !c.is_null() {
                // SAFETY: a non-null pointer is the owner's live thread-local;
                // `retire` nulls it and waits for READERS to drop to 0 before
                // the owner's thread-locals can be freed.
                f(unsafe { &*c });
            }
        }
        READERS.fetch_sub(1, SeqCst);
    }

    /// Profile clock at the start of the process window (the first
    /// registration, or the last reset).
    #[cfg(feature = "backtraces")]
    static WINDOW_START: AtomicU64 = AtomicU64::new(0);

    /// Profile clock at the start of the process window.
    #[cfg(feature = "dhat-compat")]
    pub(crate) fn window_start() -> u64 {
        WINDOW_START.load(Relaxed)
    }

    /// Sums the process window over all threads. Counts nothing itself.
    pub(crate) fn snapshot() -> AllocStats {
        let e = EPOCH.load(Acquire);
        let mut sum = Window::default();
        let mut add = |w: Window| {
            sum.allocs = sum.allocs.wrapping_add(w.allocs);
            sum.bytes = sum.bytes.wrapping_add(w.bytes);
            sum.frees = sum.frees.wrapping_add(w.frees);
            sum.live = sum.live.wrapping_add(w.live);
            sum.peak = sum.peak.max(w.peak);
        };
        if RETIRED.epoch.load(Acquire) == e {
            add(Window {
                allocs: RETIRED.allocs.load(Relaxed),
                bytes: RETIRED.bytes.load(Relaxed),
                frees: RETIRED.frees.load(Relaxed),
                live: RETIRED.live.load(Relaxed),
                peak: RETIRED.peak.load(Relaxed),
            });
        }
        for_each_counters(|c| {
            if let Some(w) = c.window(e) {
                add(w);
            }
        });
        let current = sum.live.max(0) as u64;
        AllocStats {
            alloc_count: sum.allocs,
            total_bytes: sum.bytes,
            peak_bytes: (sum.peak.max(0) as u64).max(current),
            current_bytes: current,
            current_blocks: sum.allocs.saturating_sub(sum.frees),
            free_count: sum.frees,
        }
    }

    /// Starts a new process window: every process figure restarts at zero, and
    /// blocks allocated before are ignored when they are freed. Each thread
    /// notices on its next event (forced onto its slow path).
    pub(crate) fn reset() {
        let e = EPOCH.fetch_add(1, SeqCst).wrapping_add(1);
        RETIRED.roll(e);
        G_LIVE.store(0, Relaxed);
        #[cfg(feature = "backtraces")]
        WINDOW_START.store(crate::clock::ticks(), Relaxed);
        for_each_counters(Counters::force_slow_path);
    }
}

/// The epoch as stored in a header.
#[inline]
pub(crate) fn epoch16(e: u32) -> u16 {
    e as u16
}

/// Process counters without `std`: one set of atomics (no thread-local storage
/// to keep them per thread). Read-modify-write on every event.
#[cfg(not(feature = "std"))]
pub(crate) struct NoStdCounters {
    allocs: AtomicU64,
    bytes: AtomicU64,
    frees: AtomicU64,
    live: AtomicI64,
    peak: AtomicI64,
}

#[cfg(not(feature = "std"))]
pub(crate) static COUNTERS: NoStdCounters = NoStdCounters {
    allocs: AtomicU64::new(0),
    bytes: AtomicU64::new(0),
    frees: AtomicU64::new(0),
    live: AtomicI64::new(0),
    peak: AtomicI64::new(0),
};

#[cfg(not(feature = "std"))]
impl NoStdCounters {
    /// Hook-safe: no allocation, no lock, no panic.
    #[inline]
    pub(crate) fn on_alloc(&self, size: u64) {
        self.allocs.fetch_add(1, Relaxed);
        self.bytes.fetch_add(size, Relaxed);
        let live = self
            .live
            .fetch_add(size as i64, Relaxed)
            .wrapping_add(size as i64);
        self.peak.fetch_max(live, Relaxed);
    }

    /// Hook-safe: no allocation, no lock, no panic.
    #[inline]
    pub(crate) fn on_free(&self, size: u64, epoch: u16) {
        if epoch == epoch16(EPOCH.load(Relaxed)) {
            self.frees.fetch_add(1, Relaxed);
            self.live.fetch_sub(size as i64, Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> AllocStats {
        let live = self.live.load(Relaxed).max(0) as u64;
        let allocs = self.allocs.load(Relaxed);
        let frees = self.frees.load(Relaxed);
        AllocStats {
            alloc_count: allocs,
            total_bytes: self.bytes.load(Relaxed),
            peak_bytes: (self.peak.load(Relaxed).max(0) as u64).max(live),
            current_bytes: live,
            current_blocks: allocs.saturating_sub(frees),
            free_count: frees,
        }
    }

    pub(crate) fn reset(&self) {
        EPOCH.fetch_add(1, AcqRel);
        self.allocs.store(0, Relaxed);
        self.bytes.store(0, Relaxed);
        self.frees.store(0, Relaxed);
        self.live.store(0, Relaxed);
        self.peak.store(0, Relaxed);
    }
}
