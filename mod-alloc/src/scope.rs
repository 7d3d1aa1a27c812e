//! Scopes: [`Profiler`] opens one on the calling thread, [`ScopeHandle`] lets
//! other threads join it.
//!
//! A thread's open scopes form a stack (the `entries` of its
//! [`ThreadSlot`]); the innermost one is counted in the thread's cells
//! ([`ThreadState`]), the others are saved in their entries. Every block's
//! header holds the serial of the scope it was allocated in and the registry id
//! of that scope's owner thread. Serials come from one process-wide counter, so
//! on any stack they grow from the outermost to the innermost entry.
//!
//! **Resolution.** The scope that a block counts in is the innermost *open*
//! entry of its owner's stack whose serial is `<=` the block's serial: the
//! block's own scope while it is open, else the nearest enclosing scope still
//! open (which absorbed the closed scope's live blocks), else none.
//!
//! **Peaks of nested scopes.** The common path updates only the innermost
//! scope's `live` and `wpeak` (its highest `live` since the last checkpoint).
//! Each outer scope's live bytes are its saved `excl` (its own blocks, and
//! those of its closed children, outside the scope above it) plus those of the
//! scopes above it, and `excl` changes only on rare events. Before any such
//! event, [`checkpoint`] folds `excl + ... + wpeak` into every level's peak, so
//! each peak is exact.
//!
//! **Other threads.** A block freed by another thread is subtracted with
//! atomics on the owning entry (`foreign_*`), under the owner's `inflight`
//! count so the owner never closes an entry under a foreign free: the owner
//! publishes the smaller depth, waits for `inflight == 0`, then drains. The
//! owner folds pending foreign frees before it records a new peak, so they are
//! never late for it. A scope with a [`ScopeHandle`] is *shared*: all its
//! figures move to atomics in a [`SharedScope`], used by the owner and by every
//! thread that joined it; its peak is exact in the order of those atomic
//! updates. Nested scopes inside a shared one fold their peak into it at
//! checkpoints (an upper bound while both change at once).
use crate::global::{self, ScopeEntry, ThreadSlot, MAX_DEPTH};
use crate::thread::{self, ThreadState};
use crate::AllocStats;
use core::marker::PhantomData;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};
use std::sync::Arc;

/// Source of scope serials (0 means "no scope").
static SERIAL: AtomicU64 = AtomicU64::new(0);

/// Figures of a scope that other threads can reach, all atomics.
pub(crate) struct SharedScope {
    serial: u64,
    owner: u32,
    allocs: AtomicU64,
    bytes: AtomicU64,
    live: AtomicU64,
    blocks: AtomicU64,
    peak: AtomicU64,
    /// The scope was stopped: later events are ignored.
    closed: AtomicBool,
    /// Threads currently inside through an [`EnterGuard`].
    joined: AtomicU32,
}

impl SharedScope {
    /// Hook-safe: no allocation, no lock, no panic.
    #[inline]
    pub(crate) fn on_alloc(&self, size: u64) {
        self.allocs.fetch_add(1, Relaxed);
        self.bytes.fetch_add(size, Relaxed);
        self.blocks.fetch_add(1, Relaxed);
        let live = self.live.fetch_add(size, Relaxed).wrapping_add(size);
        self.peak.fetch_max(live, Relaxed);
    }

    /// Hook-safe: no allocation, no lock, no panic.
    #[inline]
    pub(crate) fn on_free(&self, size: u64) {
        self.live.fetch_sub(size, Relaxed);
        self.blocks.fetch_sub(1, Relaxed);
    }

    fn stats(&self, extra_peak: u64) -> AllocStats {
        let alloc_count = self.allocs.load(Acquire);
        let current_blocks = self.blocks.load(Acquire);
        let current_bytes = self.live.load(Acquire);
        AllocStats {
            alloc_count,
            total_bytes: self.bytes.load(Acquire),
            peak_bytes: self.peak.load(Acquire).max(extra_peak).max(current_bytes),
            current_bytes,
            current_blocks,
            free_count: alloc_count.wrapping_sub(current_blocks),
        }
    }
}

/// Allocation in a shared scope (joined, or with a handle).
/// Hook-safe: no allocation, no lock, no panic.
#[cold]
#[inline(never)]
pub(crate) fn shared_alloc(shared: *const SharedScope, size: u64) {
    // SAFETY: a non-null `shared` in the thread's cells is kept alive by the
    // scope's entry (owner) or by the `EnterGuard` (joined thread) until it is
    // cleared from the cells.
    let sh = unsafe { &*shared };
    if sh.closed.load(Acquire) {
        // The scope was stopped (a handle entered after the stop, or a
        // joined thread still allocating): the block must not carry its
        // serial, or its free would be subtracted from the enclosing scope,
        // which never counted it. Leave the closed scope for the rest of
        // this level: the header is built from the cells after this call.
        let _ = thread::with_state(|s| {
            s.serial.set(0);
            s.set_owner(0);
            s.shared.set(ptr::null());
        });
        return;
    }
    sh.on_alloc(size);
}

/// Free of a block of the thread's innermost scope, which is shared.
/// Hook-safe: no allocation, no lock, no panic.
#[cold]
#[inline(never)]
pub(crate) fn shared_free(shared: *const SharedScope, size: u64) {
    // SAFETY: as in `shared_alloc`.
    unsafe { &*shared }.on_free(size);
}

/// The shared state stored in an entry, if any.
fn shared_of(entry: &ScopeEntry) -> Option<&SharedScope> {
    let p = entry.shared.load(Acquire);
    // SAFETY: a non-null pointer in an entry is an `Arc<SharedScope>` strong
    // reference owned by the entry (owner) or by the `EnterGuard` (proxy) until
    // the entry is popped; only the owner thread pops it, and foreign readers
    // are covered by `inflight`.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Folds the window peak (`wpeak`) of the innermost scope into the peak of
/// every open level of this thread, then starts a new window.
/// Hook-safe: no allocation, no lock, no panic.
pub(crate) fn checkpoint(s: &ThreadState, slot: &ThreadSlot) {
    let depth = slot.depth.load(Relaxed) as usize;
    let Some(top) = depth.checked_sub(1) else {
        return;
    };
    let mut acc = 0u64;
    for j in (0..=top).rev() {
        let e = &slot.entries[j];
        let proxy = e.proxy.load(Relaxed);
        match shared_of(e) {
            _ if proxy => acc = 0,
            Some(sh) => {
                let live = sh.live.load(Relaxed);
                if acc > 0 {
                    sh.peak.fetch_max(live.wrapping_add(acc), Relaxed);
                }
                acc = acc.wrapping_add(live);
            }
            None => {
                acc = if j == top {
                    s.wpeak.get()
                } else {
                    acc.wrapping_add(e.excl.load(Relaxed))
                };
                if acc > e.peak.load(Relaxed) {
                    e.peak.store(acc, Relaxed);
                }
            }
        }
    }
    s.wpeak.set(s.live());
}

/// The innermost local scope's `live` passed its window peak. Folds pending
/// foreign frees first, so that the peak is not overstated by frees another
/// thread already made.
/// Hook-safe: no allocation, no lock, no panic.
#[cold]
#[inline(never)]
pub(crate) fn new_high(s: &ThreadState, size: u64) {
    let Some(slot) = s.slot() else {
        return;
    };
    if slot.pending.load(Relaxed) {
        s.sub_live(size);
        drain_pending(s, slot);
        s.set_live(s.live().wrapping_add(size));
    }
    if s.live() > s.wpeak.get() {
        s.wpeak.set(s.live());
    }
}

/// Folds frees that other threads made of this thread's scopes' blocks.
/// Hook-safe: no allocation, no lock, no panic.
fn drain_pending(s: &ThreadState, slot: &ThreadSlot) {
    if !slot.pending.swap(false, Acquire) {
        return;
    }
    checkpoint(s, slot);
    let depth = slot.depth.load(Relaxed) as usize;
    for (j, e) in slot.entries.iter().enumerate().take(depth) {
        let bytes = e.foreign_bytes.swap(0, AcqRel);
        let blocks = e.foreign_blocks.swap(0, AcqRel);
        subtract_local(s, slot, j, bytes, blocks);
    }
    s.wpeak.set(s.live());
}

/// Subtracts freed blocks from level `j` of this thread's stack (a local level).
fn subtract_local(s: &ThreadState, slot: &ThreadSlot, j: usize, bytes: u64, blocks: u64) {
    if bytes == 0 && blocks == 0 {
        return;
    }
    let top = (slot.depth.load(Relaxed) as usize).wrapping_sub(1);
    let e = &slot.entries[j];
    if j == top {
        s.sub_live(bytes);
        s.sub_blocks(blocks);
    } else {
        e.excl
            .store(e.excl.load(Relaxed).wrapping_sub(bytes), Relaxed);
        e.excl_blocks
            .store(e.excl_blocks.load(Relaxed).wrapping_sub(blocks), Relaxed);
    }
}

/// Index of the innermost open, non-proxy-skipped level of `slot` whose serial
/// is `<= serial`, looking at the first `depth` levels.
/// Hook-safe: no allocation, no lock, no panic.
fn resolve(slot: &ThreadSlot, depth: usize, serial: u64) -> Option<usize> {
    (0..depth.min(MAX_DEPTH)).rev().find(|&j| {
        let s = slot.entries[j].serial.load(Acquire);
        s != 0 && s <= serial
    })
}

/// A free, on the owner thread of the block's scope, of a block that is not
/// the innermost scope's.
/// Hook-safe: no allocation, no lock, no panic.
#[cold]
#[inline(never)]
pub(crate) fn free_other(s: &ThreadState, h: &crate::header::Header, size: u64) {
    let Some(slot) = s.slot().filter(|slot| slot.id == h.owner) else {
        free_foreign(h, size);
        return;
    };
    let depth = slot.depth.load(Relaxed) as usize;
    let Some(j) = resolve(slot, depth, h.serial) else {
        return;
    };
    let e = &slot.entries[j];
    if let Some(sh) = shared_of(e) {
        sh.on_free(size);
    } else if j + 1 == depth {
        s.sub_live(size);
        s.sub_blocks(1);
    } else {
        checkpoint(s, slot);
        subtract_local(s, slot, j, size, 1);
    }
}

/// A free of a block whose scope belongs to another thread.
/// Hook-safe: no allocation, no lock, no panic.
#[cold]
#[inline(never)]
pub(crate) fn free_foreign(h: &crate::header::Header, size: u64) {
    let Some(owner) = global::slot_by_id(h.owner) else {
        return;
    };
    owner.inflight.fetch_add(1, SeqCst);
    let depth = owner.depth.load(SeqCst) as usize;
    if let Some(j) = resolve(owner, depth, h.serial) {
        let e = &owner.entries[j];
        if let Some(sh) = shared_of(e) {
            sh.on_free(size);
        } else {
            e.foreign_bytes.fetch_add(size, Relaxed);
            e.foreign_blocks.fetch_add(1, Relaxed);
            owner.pending.store(true, Release);
        }
    }
    owner.inflight.fetch_sub(1, Release);
}

/// Adds an allocation to the ledgers of the open local levels, from the
/// innermost down to the first joined (proxy) or shared one.
/// Hook-safe: no allocation through the global allocator, no lock, no panic.
#[cfg(feature = "backtraces")]
#[inline(always)]
pub(crate) fn ledgers_alloc(slot: &ThreadSlot, site: u32, size: u64, now: u64) {
    let depth = (slot.depth.load(Relaxed) as usize).min(MAX_DEPTH);
    for e in slot.entries[..depth].iter().rev() {
        if e.proxy.load(Relaxed) || !e.shared.load(Relaxed).is_null() {
            break;
        }
        e.ledger.on_alloc(site, size, now);
    }
}

/// Subtracts a freed block of this thread's scopes (of scope `serial`, from
/// `site`, born at `birth`) from the ledgers of the levels that include it:
/// the level it resolves to and those below it, down to the first joined or
/// shared one.
/// Hook-safe: no allocation through the global allocator, no lock, no panic.
#[cfg(feature = "backtraces")]
pub(crate) fn ledgers_free(
    slot: &ThreadSlot,
    serial: u64,
    site: u32,
    birth: u64,
    size: u64,
    now: u64,
) {
    let depth = (slot.depth.load(Relaxed) as usize).min(MAX_DEPTH);
    let Some(j) = resolve(slot, depth, serial) else {
        return;
    };
    for e in slot.entries[..=j].iter().rev() {
        if e.proxy.load(Relaxed) || !e.shared.load(Relaxed).is_null() {
            break;
        }
        e.ledger.on_free(site, size, birth, now);
    }
}

/// Per-site figures of a closed scope, for its report and DHAT profile.
#[cfg(feature = "backtraces")]
#[derive(Debug, Default)]
#[cfg_attr(not(feature = "dhat-compat"), allow(dead_code))] // times are for DHAT
pub(crate) struct ScopeSites {
    pub(crate) figs: Vec<(u32, crate::ledger::Fig)>,
    /// Profile clock at the scope's start and stop.
    pub(crate) start: u64,
    pub(crate) end: u64,
    /// The scope's peak (bytes, tick) as its ledger saw it.
    pub(crate) peak: (u64, u64),
}

/// Saves the innermost level's cells into its entry (a level is pushed above it).
fn save_innermost(s: &ThreadState, slot: &ThreadSlot, depth: usize) {
    if let Some(top) = depth.checked_sub(1) {
        let e = &slot.entries[top];
        if e.shared.load(Relaxed).is_null() {
            e.excl.store(s.live(), Relaxed);
            e.excl_blocks.store(s.blocks(), Relaxed);
        }
    }
}

/// Pushes a level; `proxy` is the shared scope joined by an `EnterGuard`.
fn push(proxy: Option<&Arc<SharedScope>>) -> Option<(u64, usize)> {
    // Before other threads can count foreign frees on this stack.
    global::watch_fork();
    thread::with_state(|s| {
        let slot = s.slot()?;
        let depth = slot.depth.load(Relaxed) as usize;
        assert!(
            depth < MAX_DEPTH,
            "mod_alloc: more than {MAX_DEPTH} nested scopes on one thread"
        );
        drain_pending(s, slot);
        checkpoint(s, slot);
        save_innermost(s, slot, depth);
        let serial = SERIAL.fetch_add(1, Relaxed).wrapping_add(1);
        let e = &slot.entries[depth];
        for field in [
            &e.foreign_bytes,
            &e.foreign_blocks,
            &e.peak,
            &e.excl,
            &e.excl_blocks,
            &e.adj_allocs,
            &e.adj_bytes,
        ] {
            field.store(0, Relaxed);
        }
        e.allocs0.store(s.c.allocs.load(Relaxed), Relaxed);
        e.bytes0.store(s.c.bytes.load(Relaxed), Relaxed);
        #[cfg(feature = "backtraces")]
        {
            e.ledger.release();
            let start = crate::clock::ticks();
            e.start_ticks.store(start, Relaxed);
            // The scope's blocks are born no earlier than the scope.
            s.set_ticks(start);
        }
        e.proxy.store(proxy.is_some(), Relaxed);
        let shared = proxy.map_or(ptr::null(), Arc::as_ptr);
        e.shared.store(shared.cast_mut(), Release);
        e.serial.store(serial, Release);
        slot.depth.store(depth as u32 + 1, SeqCst);
        s.clear_scope_cells();
        match proxy {
            Some(sh) => {
                s.serial.set(sh.serial);
                s.set_owner(sh.owner);
                s.shared.set(shared);
            }
            None => {
                s.serial.set(serial);
                s.set_owner(slot.id);
                s.shared.set(ptr::null());
            }
        }
        Some((serial, depth))
    })
    .flatten()
}

/// Pops level `level` (whose serial is `serial`), and any level still open
/// above it, and returns its figures. `None` if it is not open.
fn pop(serial: u64, level: usize) -> Option<AllocStats> {
    pop_with(serial, level, &mut None)
}

/// [`pop`], also taking the level's per-site figures when `sites` is `Some`.
fn pop_with(serial: u64, level: usize, sites: &mut Option<Sites>) -> Option<AllocStats> {
    thread::with_state(|s| {
        let slot = s.slot()?;
        let depth = slot.depth.load(Relaxed) as usize;
        if level >= depth || slot.entries[level].serial.load(Relaxed) != serial {
            return None;
        }
        // Close the levels above first (their Profilers were leaked or are
        // stopped out of order); each folds into its parent.
        for above in (level + 1..depth).rev() {
            pop_top(s, slot, above);
        }
        #[cfg(feature = "backtraces")]
        if let Some(out) = sites.as_mut() {
            let e = &slot.entries[level];
            *out = thread::untracked(|| ScopeSites {
                figs: e.ledger.figures(true),
                start: e.start_ticks.load(Relaxed),
                end: crate::clock::ticks(),
                peak: e.ledger.peak(),
            });
        }
        #[cfg(not(feature = "backtraces"))]
        let _ = sites;
        Some(pop_top(s, slot, level))
    })
    .flatten()
}

/// What `pop_with` can hand back besides the counts.
#[cfg(feature = "backtraces")]
type Sites = ScopeSites;
#[cfg(not(feature = "backtraces"))]
type Sites = ();

/// Figures of a level, as its parent sees them.
#[derive(Clone, Copy, Default)]
struct Fig {
    allocs: u64,
    bytes: u64,
    live: u64,
    blocks: u64,
    peak: u64,
}

impl Fig {
    fn stats(self) -> AllocStats {
        AllocStats {
            alloc_count: self.allocs,
            total_bytes: self.bytes,
            peak_bytes: self.peak.max(self.live),
            current_bytes: self.live,
            current_blocks: self.blocks,
            free_count: self.allocs.wrapping_sub(self.blocks),
        }
    }
}

/// The thread's cumulative allocations and bytes since level `e` was pushed.
fn span(s: &ThreadState, e: &ScopeEntry) -> (u64, u64) {
    (
        s.c.allocs
            .load(Relaxed)
            .wrapping_sub(e.allocs0.load(Relaxed)),
        s.c.bytes.load(Relaxed).wrapping_sub(e.bytes0.load(Relaxed)),
    )
}

/// Figures of levels `from..=top` folded as closing them would fold them:
/// returns level `from`'s figures and the thread's cumulative span over it.
///
/// A local level counts the thread's cumulative span, plus the adjustments its
/// closed children left (`adj_*`), plus its open child's figures minus that
/// child's span. A proxy level reports nothing (its blocks belong to the
/// joined scope). A shared level reports its atomics plus its open child.
fn figures(s: &ThreadState, slot: &ThreadSlot, from: usize, top: usize) -> (Fig, (u64, u64)) {
    let mut child: Option<(Fig, (u64, u64))> = None;
    for i in (from..=top).rev() {
        let e = &slot.entries[i];
        let span_i = span(s, e);
        let (cf, (ca, cb)) = child.unwrap_or_default();
        let fig = if e.proxy.load(Relaxed) {
            Fig::default()
        } else if let Some(sh) = shared_of(e) {
            let st = sh.stats(e.peak.load(Relaxed));
            Fig {
                allocs: st.alloc_count.wrapping_add(cf.allocs),
                bytes: st.total_bytes.wrapping_add(cf.bytes),
                live: st.current_bytes.wrapping_add(cf.live),
                blocks: st.current_blocks.wrapping_add(cf.blocks),
                peak: st.peak_bytes,
            }
        } else {
            let (live, blocks) = if i == top {
                (s.live(), s.blocks())
            } else {
                (e.excl.load(Relaxed), e.excl_blocks.load(Relaxed))
            };
            Fig {
                allocs: span_i
                    .0
                    .wrapping_add(e.adj_allocs.load(Relaxed))
                    .wrapping_add(cf.allocs)
                    .wrapping_sub(ca),
                bytes: span_i
                    .1
                    .wrapping_add(e.adj_bytes.load(Relaxed))
                    .wrapping_add(cf.bytes)
                    .wrapping_sub(cb),
                live: live.wrapping_add(cf.live),
                blocks: blocks.wrapping_add(cf.blocks),
                peak: e.peak.load(Relaxed),
            }
        };
        child = Some((fig, span_i));
    }
    child.unwrap_or_default()
}

/// Pops the innermost level `top` and returns its figures; folds them into
/// the level below.
fn pop_top(s: &ThreadState, slot: &ThreadSlot, top: usize) -> AllocStats {
    checkpoint(s, slot);
    let e = &slot.entries[top];
    // Foreign frees resolve against the smaller depth from now on; wait for
    // those already inside, then take what they left.
    slot.depth.store(top as u32, SeqCst);
    let mut spins = 0u32;
    while slot.inflight.load(SeqCst) != 0 {
        spins = spins.wrapping_add(1);
        if spins < 64 {
            core::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    if shared_of(e).is_none() {
        s.sub_live(e.foreign_bytes.swap(0, AcqRel));
        s.sub_blocks(e.foreign_blocks.swap(0, AcqRel));
    }
    let (fig, span_top) = figures(s, slot, top, top);
    let proxy = e.proxy.load(Relaxed);
    let shared = e.shared.swap(ptr::null_mut(), AcqRel);
    if !shared.is_null() && !proxy {
        // SAFETY: non-null `shared` in an entry is alive (see `shared_of`).
        unsafe { &*shared }.closed.store(true, Release);
        // SAFETY: an owner entry holds one strong count, taken by
        // `Arc::into_raw` in `Profiler::handle`; nobody reads this entry any
        // more (depth published, inflight drained).
        drop(thread::untracked(|| unsafe { Arc::from_raw(shared) }));
    }
    e.serial.store(0, Release);
    e.proxy.store(false, Relaxed);
    #[cfg(feature = "backtraces")]
    e.ledger.release();
    match top.checked_sub(1) {
        None => {
            s.serial.set(0);
            s.set_owner(0);
            s.shared.set(ptr::null());
            s.clear_scope_cells();
        }
        Some(below) => restore_innermost(s, slot, below, fig, span_top),
    }
    fig.stats()
}

/// Makes level `below` the innermost again, folding in its closed child's
/// figures `child` (zero for a proxy) and the thread's span over the child.
fn restore_innermost(
    s: &ThreadState,
    slot: &ThreadSlot,
    below: usize,
    child: Fig,
    span: (u64, u64),
) {
    let b = &slot.entries[below];
    match shared_of(b) {
        Some(sh) => {
            sh.allocs.fetch_add(child.allocs, Relaxed);
            sh.bytes.fetch_add(child.bytes, Relaxed);
            sh.blocks.fetch_add(child.blocks, Relaxed);
            let live = sh
                .live
                .fetch_add(child.live, Relaxed)
                .wrapping_add(child.live);
            sh.peak.fetch_max(live, Relaxed);
            let proxy = b.proxy.load(Relaxed);
            s.serial.set(if proxy {
                sh.serial
            } else {
                b.serial.load(Relaxed)
            });
            s.set_owner(if proxy { sh.owner } else { slot.id });
            s.shared.set(sh);
            s.clear_scope_cells();
        }
        None => {
            let adj = |field: &AtomicU64, add: u64, sub: u64| {
                field.store(
                    field.load(Relaxed).wrapping_add(add).wrapping_sub(sub),
                    Relaxed,
                );
            };
            adj(&b.adj_allocs, child.allocs, span.0);
            adj(&b.adj_bytes, child.bytes, span.1);
            s.serial.set(b.serial.load(Relaxed));
            s.set_owner(slot.id);
            s.shared.set(ptr::null());
            s.set_live(b.excl.load(Relaxed).wrapping_add(child.live));
            s.set_blocks(b.excl_blocks.load(Relaxed).wrapping_add(child.blocks));
            s.wpeak.set(s.live());
        }
    }
}

/// Closes every level of an exiting thread (their `Profiler`s can no longer
/// be stopped). Hook-safe: no allocation, no lock, no panic.
pub(crate) fn abandon_all(s: &ThreadState, slot: &ThreadSlot) {
    let depth = slot.depth.load(Relaxed) as usize;
    for top in (0..depth).rev() {
        let _ = pop_top(s, slot, top);
    }
}

/// Figures of level `level` so far, without closing anything.
fn peek(serial: u64, level: usize) -> Option<AllocStats> {
    thread::with_state(|s| {
        let slot = s.slot()?;
        let depth = slot.depth.load(Relaxed) as usize;
        if level >= depth || slot.entries[level].serial.load(Relaxed) != serial {
            return None;
        }
        drain_pending(s, slot);
        checkpoint(s, slot);
        Some(figures(s, slot, level, depth - 1).0.stats())
    })
    .flatten()
}

/// An allocation-counting scope on the current thread.
///
/// [`Profiler::start`] opens it; [`Profiler::stop`] closes it and returns the
/// figures of the blocks allocated in it. Scopes nest: an outer scope includes
/// its inner scopes' blocks. Dropping a `Profiler` without `stop` (for example
/// while unwinding) closes its scope too.
///
/// What a scope counts: allocations made on this thread while it is the
/// innermost open scope (or while an inner scope is), and allocations made by
/// threads that joined it through a [`ScopeHandle`]. A block allocated before
/// the scope and freed in it leaves the scope's figures alone; a block of the
/// scope freed by any thread is subtracted from it; a block of a closed inner
/// scope freed later is subtracted from the enclosing scope.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: mod_alloc::ModAlloc = mod_alloc::ModAlloc::new();
///
/// let p = mod_alloc::Profiler::start();
/// let v = vec![0u8; 100];
/// let stats = p.stop();
/// assert_eq!(stats.alloc_count, 1);
/// assert_eq!(stats.current_bytes, 100);
/// drop(v);
/// ```
///
/// A `Profiler` stays on the thread that started it (it is neither `Send` nor
/// `Sync`).
#[must_use = "a Profiler counts until it is stopped or dropped"]
pub struct Profiler {
    serial: u64,
    level: usize,
    closed: bool,
    _not_send: PhantomData<*const ()>,
}

impl Profiler {
    /// Opens a scope on the current thread.
    ///
    /// # Panics
    /// If the thread already has 32 open scopes.
    pub fn start() -> Profiler {
        let (serial, level) = push(None).unwrap_or((0, usize::MAX));
        Profiler {
            serial,
            level,
            closed: serial == 0,
            _not_send: PhantomData,
        }
    }

    /// Closes the scope (and any scope still open inside it) and returns its
    /// figures.
    pub fn stop(mut self) -> AllocStats {
        self.close().unwrap_or_default()
    }

    /// Closes the scope and returns its figures and its per-site figures
    /// (`None` if the scope was already closed).
    #[cfg(feature = "backtraces")]
    pub(crate) fn stop_with_sites(mut self) -> (AllocStats, Option<ScopeSites>) {
        if std::mem::replace(&mut self.closed, true) {
            return (AllocStats::default(), None);
        }
        let mut sites = Some(ScopeSites::default());
        let stats = pop_with(self.serial, self.level, &mut sites).unwrap_or_default();
        (stats, sites)
    }

    /// Closes the scope and returns its figures with its per-site figures
    /// ([`ScopeProfile`]): call sites, and with `dhat-compat` a DHAT profile.
    ///
    /// Per-site figures cover this thread's allocations in the scope (and in
    /// scopes nested in it); frees by other threads and joined threads'
    /// allocations are in the [`AllocStats`] but not per site.
    #[cfg(feature = "backtraces")]
    pub fn stop_profile(self) -> ScopeProfile {
        let (stats, sites) = self.stop_with_sites();
        ScopeProfile {
            stats,
            sites: sites.unwrap_or_default(),
        }
    }

    /// The scope's figures so far; the scope stays open.
    pub fn stats(&self) -> AllocStats {
        if self.closed {
            return AllocStats::default();
        }
        peek(self.serial, self.level).unwrap_or_default()
    }

    /// A handle through which other threads join this scope (see
    /// [`ScopeHandle::enter`]). From now on the scope's figures are kept in
    /// atomics shared with those threads.
    ///
    /// # Panics
    /// If a scope opened after this one is still open on this thread.
    pub fn handle(&self) -> ScopeHandle {
        let inner = thread::with_state(|s| {
            let slot = s.slot()?;
            let depth = slot.depth.load(Relaxed) as usize;
            assert!(
                !self.closed && self.level + 1 == depth,
                "mod_alloc: Profiler::handle must be called on the innermost open scope"
            );
            let e = &slot.entries[self.level];
            if let Some(sh) = shared_of(e) {
                let p: *const SharedScope = sh;
                // SAFETY: the entry owns a strong count of this Arc (below), so
                // adding one and rebuilding an Arc from the pointer is sound.
                unsafe { Arc::increment_strong_count(p) };
                // SAFETY: as above: one strong count now belongs to us.
                return Some(unsafe { Arc::from_raw(p) });
            }
            drain_pending(s, slot);
            checkpoint(s, slot);
            // From now on the level counts in atomics: move its figures there,
            // and start its span afresh so they are not counted twice.
            let (fig, _) = figures(s, slot, self.level, self.level);
            e.allocs0.store(s.c.allocs.load(Relaxed), Relaxed);
            e.bytes0.store(s.c.bytes.load(Relaxed), Relaxed);
            e.adj_allocs.store(0, Relaxed);
            e.adj_bytes.store(0, Relaxed);
            let sh = thread::untracked(|| {
                Arc::new(SharedScope {
                    serial: self.serial,
                    owner: slot.id,
                    allocs: AtomicU64::new(fig.allocs),
                    bytes: AtomicU64::new(fig.bytes),
                    live: AtomicU64::new(fig.live),
                    blocks: AtomicU64::new(fig.blocks),
                    peak: AtomicU64::new(fig.peak.max(fig.live)),
                    closed: AtomicBool::new(false),
                    joined: AtomicU32::new(0),
                })
            });
            let raw = Arc::into_raw(Arc::clone(&sh));
            e.shared.store(raw.cast_mut(), Release);
            s.shared.set(raw);
            Some(sh)
        })
        .flatten();
        match inner {
            Some(inner) => ScopeHandle { inner },
            None => panic!("mod_alloc: this thread's scope state is gone (thread exiting)"),
        }
    }

    fn close(&mut self) -> Option<AllocStats> {
        if std::mem::replace(&mut self.closed, true) {
            return None;
        }
        pop(self.serial, self.level)
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl core::fmt::Debug for Profiler {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Profiler")
            .field("serial", &self.serial)
            .field("level", &self.level)
            .field("closed", &self.closed)
            .finish()
    }
}

/// A closed scope's figures and per-site figures, from [`Profiler::stop_profile`].
#[cfg(feature = "backtraces")]
#[derive(Debug)]
pub struct ScopeProfile {
    stats: AllocStats,
    sites: ScopeSites,
}

#[cfg(feature = "backtraces")]
impl ScopeProfile {
    /// The scope's figures (as [`Profiler::stop`] returns them).
    pub fn stats(&self) -> AllocStats {
        self.stats
    }

    /// The scope's call sites, merged by user location, largest `by` first.
    pub fn call_sites(&self, by: crate::SortBy) -> Vec<crate::CallSite> {
        self.call_sites_checked(by).0
    }

    /// Whether the captured stacks stopped before any user frame (the program
    /// was built without frame pointers).
    pub fn frames_missing(&self) -> bool {
        self.call_sites_checked(crate::SortBy::Allocations).1
    }

    /// [`call_sites`](Self::call_sites) and
    /// [`frames_missing`](Self::frames_missing) from one symbolization.
    pub(crate) fn call_sites_checked(&self, by: crate::SortBy) -> (Vec<crate::CallSite>, bool) {
        crate::callsites::summarize(&self.sites.figs, by)
    }

    /// The scope's per-site figures as raw captured stacks.
    pub fn raw_call_sites(&self) -> Vec<crate::RawCallSite> {
        crate::callsites::raw(&self.sites.figs)
    }

    /// The scope as a DHAT heap profile (JSON), for the DHAT viewer.
    #[cfg(feature = "dhat-compat")]
    pub fn dhat_json_string(&self) -> String {
        crate::thread::untracked(|| crate::dhat::to_string(&self.dhat_profile()))
    }

    /// Writes [`dhat_json_string`](Self::dhat_json_string) to `path`.
    #[cfg(feature = "dhat-compat")]
    pub fn write_dhat_json(&self, path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
        crate::thread::untracked(|| crate::dhat::write(&self.dhat_profile(), path.as_ref()))
    }

    #[cfg(feature = "dhat-compat")]
    fn dhat_profile(&self) -> crate::dhat::Profile {
        crate::profile::heap(&crate::profile::Window {
            figs: &self.sites.figs,
            start: self.sites.start,
            end: self.sites.end,
            peak_tick: self.sites.peak.1,
        })
    }
}

/// Lets other threads count into a scope: `Send`, `Sync` and `Clone`.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: mod_alloc::ModAlloc = mod_alloc::ModAlloc::new();
///
/// let p = mod_alloc::Profiler::start();
/// let h = p.handle();
/// std::thread::scope(|t| {
///     for _ in 0..4 {
///         let h = h.clone();
///         t.spawn(move || h.run(|| drop(vec![0u8; 10])));
///     }
/// });
/// let stats = p.stop();
/// // The four vectors, plus what spawning the threads allocated here.
/// assert!(stats.alloc_count >= 4);
/// assert!(stats.total_bytes >= 40);
/// ```
///
/// Join threads before stopping the scope: what they allocate after `stop`
/// is not counted in it.
#[derive(Clone)]
pub struct ScopeHandle {
    inner: Arc<SharedScope>,
}

impl ScopeHandle {
    /// Joins the scope on the current thread until the guard is dropped: this
    /// thread's allocations count in the scope (and in the scopes enclosing
    /// it on its owner thread), not in this thread's own scopes.
    ///
    /// # Panics
    /// If this thread already has 32 open scopes.
    pub fn enter(&self) -> EnterGuard {
        let inner = Arc::clone(&self.inner);
        inner.joined.fetch_add(1, Relaxed);
        let (serial, level) = push(Some(&inner)).unwrap_or((0, usize::MAX));
        EnterGuard {
            inner,
            serial,
            level,
            _not_send: PhantomData,
        }
    }

    /// Runs `f` inside the scope on the current thread.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self.enter();
        f()
    }

    /// Whether the scope has been stopped.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Acquire)
    }
}

impl core::fmt::Debug for ScopeHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ScopeHandle")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// This thread's membership of a joined scope; dropping it leaves the scope.
#[must_use = "the thread leaves the scope when the guard is dropped"]
pub struct EnterGuard {
    inner: Arc<SharedScope>,
    serial: u64,
    level: usize,
    _not_send: PhantomData<*const ()>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        if self.serial != 0 {
            let _ = pop(self.serial, self.level);
        }
        self.inner.joined.fetch_sub(1, Relaxed);
    }
}

impl core::fmt::Debug for EnterGuard {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EnterGuard")
            .field("level", &self.level)
            .finish()
    }
}
