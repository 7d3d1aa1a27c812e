//! The calling thread's accounting state, in one `const`-initialised
//! thread-local: its process [`Counters`], the reentrancy flag, and the
//! figures of its innermost scope.
//!
//! The common path of every event is here: one thread-local access, a few plain
//! adds and one compare on the process counters, and, inside a scope, two adds
//! and one compare on the innermost scope's cells. No atomic read-modify-write,
//! no lock, no global load. Everything else leaves through `#[cold]` calls:
//! - [`slow`]: the process live bytes left the `[lo, hi]` band (`lo` kept as
//!   a limit of the bytes freed, see [`Counters`]). The band is
//!   also closed on purpose to route an event here: a thread's first event
//!   (registration), a [`reset`](crate::ModAlloc::reset) (the window rolls on
//!   the next event), and thread exit (later events go to the retired totals);
//! - [`crate::scope`]: a block of another scope or thread, a new scope peak
//!   while foreign frees are pending, a shared scope.
//!
//! Invariants:
//! - `STATE` has no destructor, so it stays usable during and after
//!   thread-local teardown; thread exit is noticed by `EXIT`'s destructor,
//!   which closes the thread's scopes and retires its slot;
//! - while `busy` is set, allocations are handed out untracked (header flag)
//!   and never counted; frees of tracked blocks are always counted;
//! - a free counts in the process window only if the block's header carries
//!   the window's epoch;
//! - all arithmetic here wraps: a global allocator must never panic.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::global::{self, Counters, ThreadSlot, EPOCH};
use crate::header::Header;
use crate::hint::unlikely;
use crate::scope::{self, SharedScope};
use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering::*};

/// Set once any thread has counted an event through a `ModAlloc`.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Whether a [`ModAlloc`](crate::ModAlloc) has counted any event in this
/// process, i.e. whether it is (very likely) the `#[global_allocator]`.
pub fn is_installed() -> bool {
    INSTALLED.load(Relaxed)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    /// No event yet: not registered.
    Fresh,
    /// Registered, with a slot.
    Active,
    /// No slot (thread exiting, or too many threads): events go straight to
    /// the retired totals.
    NoSlot,
}

/// Per-thread state. The `Cell`s are touched only by this thread; the
/// [`Counters`] are also read by [`snapshot`](crate::ModAlloc::snapshot).
pub(crate) struct ThreadState {
    pub(crate) c: Counters,
    /// Tracking suspended (reentrant call, report building, registration).
    pub(crate) busy: Cell<bool>,
    /// Low 16 bits of the window epoch the counters are in (for headers).
    epoch16: Cell<u16>,
    /// Innermost scope: its serial (0: none), the registry id of its owner
    /// thread, and its shared state (null: a local scope, counted in the
    /// cells below).
    pub(crate) serial: Cell<u64>,
    owner: Cell<u32>,
    pub(crate) shared: Cell<*const SharedScope>,
    /// Second header word for new blocks: `owner | epoch16 << 32`.
    tag: Cell<u64>,
    /// Innermost local scope's live bytes and blocks (own and closed
    /// children's), each kept as what came in minus what went out, so that an
    /// allocation and a free touch different cells (see [`Counters`]).
    bytes_in: Cell<u64>,
    bytes_out: Cell<u64>,
    blocks_in: Cell<u64>,
    blocks_out: Cell<u64>,
    /// Highest `live` since the last checkpoint (see `scope::checkpoint`).
    pub(crate) wpeak: Cell<u64>,
    /// Call sites: the last tick count read (see [`ThreadState::now`]; also
    /// read on every slow event, the thread's first one included).
    #[cfg(feature = "backtraces")]
    ticks: Cell<u64>,
    slot: Cell<*const ThreadSlot>,
    status: Cell<Status>,
}

thread_local! {
    static STATE: ThreadState = const { ThreadState::new() };
    static EXIT: ExitGuard = const { ExitGuard };
}

impl ThreadState {
    const fn new() -> ThreadState {
        ThreadState {
            c: Counters::new(),
            busy: Cell::new(false),
            epoch16: Cell::new(0),
            serial: Cell::new(0),
            owner: Cell::new(0),
            shared: Cell::new(ptr::null()),
            tag: Cell::new(0),
            bytes_in: Cell::new(0),
            bytes_out: Cell::new(0),
            blocks_in: Cell::new(0),
            blocks_out: Cell::new(0),
            wpeak: Cell::new(0),
            #[cfg(feature = "backtraces")]
            ticks: Cell::new(0),
            slot: Cell::new(ptr::null()),
            status: Cell::new(Status::Fresh),
        }
    }

    /// Call sites: the profile clock for the event being counted, reread every
    /// [`COARSE_EVERY`](crate::clock::COARSE_EVERY) events of the window (the
    /// counters, already up to date, say which): reading the processor's
    /// counter costs more than the rest of the event. Between readings it is
    /// a load, and the allocation and the free of a pair do not wait on each
    /// other's store, as a count of their own would make them.
    /// Hook-safe: no allocation, no lock, no panic.
    #[cfg(feature = "backtraces")]
    #[inline(always)]
    fn now(&self) -> u64 {
        let c = &self.c;
        let events = c.allocs.load(Relaxed).wrapping_add(c.frees.load(Relaxed));
        if events % crate::clock::COARSE_EVERY == 0 {
            let t = crate::clock::ticks();
            self.ticks.set(t);
            t
        } else {
            self.ticks.get()
        }
    }

    /// Call sites: makes `t`, just read, the clock's last reading.
    #[cfg(feature = "backtraces")]
    pub(crate) fn set_ticks(&self, t: u64) {
        self.ticks.set(t);
    }

    /// Sets the registry id of the innermost scope's owner thread.
    pub(crate) fn set_owner(&self, owner: u32) {
        self.owner.set(owner);
        self.tag
            .set(u64::from(owner) | u64::from(self.epoch16.get()) << 32);
    }

    fn set_epoch16(&self, e: u16) {
        self.epoch16.set(e);
        self.tag
            .set(u64::from(self.owner.get()) | u64::from(e) << 32);
    }

    /// The header of a block allocated now.
    /// Hook-safe: no allocation, no lock, no panic.
    #[inline(always)]
    #[allow(clippy::needless_update)] // the header has more fields with `backtraces`
    fn header(&self) -> Header {
        let tag = self.tag.get();
        Header {
            serial: self.serial.get(),
            owner: tag as u32,
            flags: (tag >> 32) as u32,
            ..Header::untracked()
        }
    }

    /// Suspends or resumes tracking. While suspended, the process band is
    /// closed so that every allocation takes the slow path, which hands it
    /// out untracked (the fast path has no `busy` test).
    pub(crate) fn set_busy(&self, busy: bool) {
        self.busy.set(busy);
        if busy {
            self.c.force_slow_path();
        } else if self.status.get() == Status::Active {
            self.c.refresh_bounds();
        }
    }

    /// Innermost local scope's live bytes.
    #[inline(always)]
    pub(crate) fn live(&self) -> u64 {
        self.bytes_in.get().wrapping_sub(self.bytes_out.get())
    }

    /// Innermost local scope's live blocks.
    #[inline(always)]
    pub(crate) fn blocks(&self) -> u64 {
        self.blocks_in.get().wrapping_sub(self.blocks_out.get())
    }

    pub(crate) fn set_live(&self, v: u64) {
        self.bytes_in.set(self.bytes_out.get().wrapping_add(v));
    }

    pub(crate) fn set_blocks(&self, v: u64) {
        self.blocks_in.set(self.blocks_out.get().wrapping_add(v));
    }

    #[inline(always)]
    pub(crate) fn sub_live(&self, v: u64) {
        self.bytes_out.set(self.bytes_out.get().wrapping_add(v));
    }

    #[inline(always)]
    pub(crate) fn sub_blocks(&self, v: u64) {
        self.blocks_out.set(self.blocks_out.get().wrapping_add(v));
    }

    pub(crate) fn clear_scope_cells(&self) {
        for cell in [
            &self.bytes_in,
            &self.bytes_out,
            &self.blocks_in,
            &self.blocks_out,
            &self.wpeak,
        ] {
            cell.set(0);
        }
    }

    /// The thread's slot, registering the thread on first use; `None` if it
    /// has none (exiting, or past the thread limit).
    /// Hook-safe: no allocation through the global allocator, no lock, no panic.
    pub(crate) fn slot(&self) -> Option<&'static ThreadSlot> {
        if self.status.get() == Status::Fresh {
            self.register();
        }
        let p = self.slot.get();
        // SAFETY: a non-null `slot` was stored by `register` from a
        // `&'static ThreadSlot` (slots are never freed).
        (!p.is_null()).then(|| unsafe { &*p })
    }

    /// The thread's slot if it is registered and active (never registers).
    /// Hook-safe: no allocation, no lock, no panic.
    #[cfg(feature = "backtraces")]
    #[inline]
    pub(crate) fn active_slot(&self) -> Option<&'static ThreadSlot> {
        let p = self.slot.get();
        // SAFETY: as in `slot`.
        (self.status.get() == Status::Active && !p.is_null()).then(|| unsafe { &*p })
    }

    #[cold]
    #[inline(never)]
    fn register(&self) {
        let was_busy = self.busy.get();
        self.set_busy(true);
        // Touching EXIT registers its destructor (on platforms where that
        // allocates, `busy` keeps the allocation untracked). A thread that is
        // already tearing down its thread-locals gets no slot.
        let slot = match EXIT.try_with(|_| ()) {
            Ok(()) => global::claim_slot(&self.c),
            Err(_) => None,
        };
        match slot {
            Some(slot) => {
                self.slot.set(slot);
                self.status.set(Status::Active);
            }
            None => self.status.set(Status::NoSlot),
        }
        self.c.force_slow_path();
        self.busy.set(was_busy);
    }

    /// The thread exits: close its scopes, retire its slot.
    fn retire(&self) {
        self.set_busy(true);
        if let Some(slot) = self.slot() {
            scope::abandon_all(self, slot);
            slot.retire(&self.c);
        }
        self.slot.set(ptr::null());
        self.status.set(Status::NoSlot);
        self.serial.set(0);
        self.set_owner(0);
        self.shared.set(ptr::null());
        self.busy.set(false);
        self.c.force_slow_path();
    }
}

/// Its destructor runs when the thread exits and retires the thread's slot.
struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let _ = STATE.try_with(ThreadState::retire);
    }
}

/// Runs `f` with `STATE`; `None` if thread-locals are gone (never for `STATE`,
/// which has no destructor, but the hook must not panic on any platform).
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
pub(crate) fn with_state<R>(f: impl FnOnce(&ThreadState) -> R) -> Option<R> {
    STATE.try_with(f).ok()
}

/// Counts an allocation of `size` bytes on this thread and returns the header
/// for the new block.
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
pub(crate) fn on_alloc(size: usize) -> Header {
    with_state(|s| {
        let size = size as u64;
        let c = &s.c;
        let bytes = c.bytes.load(Relaxed).wrapping_add(size);
        if Counters::raw_live(bytes, c.freed.load(Relaxed)) > c.hi.load(Relaxed) {
            return slow_alloc(s, size);
        }
        c.count_alloc(bytes, size);
        scope_alloc(s, size);
        new_block(s, size)
    })
    .unwrap_or_else(Header::untracked)
}

/// The common case of [`on_alloc`], for the allocator's fast path: counts an
/// allocation of `size` bytes and returns the new block's header, or returns
/// `None` having changed nothing when the event needs more than a few adds
/// (the process band left, a new high of the innermost scope, a shared
/// scope, tracking suspended); the caller then calls [`on_alloc`].
///
/// Every check comes before the first write, so the allocator can leave for
/// its cold path with nothing to undo, and its fast path keeps no value
/// alive across a call (no saved registers).
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
pub(crate) fn on_alloc_fast(size: usize) -> Option<Header> {
    with_state(|s| {
        let size = size as u64;
        let c = &s.c;
        let bytes = c.bytes.load(Relaxed).wrapping_add(size);
        if Counters::raw_live(bytes, c.freed.load(Relaxed)) > c.hi.load(Relaxed) {
            return None;
        }
        let serial = s.serial.get();
        if unlikely(serial != 0) {
            if !s.shared.get().is_null() {
                return None;
            }
            let bytes_in = s.bytes_in.get().wrapping_add(size);
            if bytes_in.wrapping_sub(s.bytes_out.get()) > s.wpeak.get() {
                return None;
            }
            s.bytes_in.set(bytes_in);
            s.blocks_in.set(s.blocks_in.get().wrapping_add(1));
        }
        c.count_alloc(bytes, size);
        Some(new_block(s, size))
    })
    .flatten()
}

/// The header of a block of `size` bytes counted now, with its call site
/// (feature `backtraces`: captured and added to the ledgers here).
/// Hook-safe: no allocation through the global allocator, no lock, no panic.
#[inline(always)]
fn new_block(s: &ThreadState, size: u64) -> Header {
    #[allow(unused_mut)] // call sites fill it in
    let mut h = s.header();
    #[cfg(feature = "backtraces")]
    {
        (h.site, h.birth) = track_alloc(s, size);
    }
    #[cfg(not(feature = "backtraces"))]
    let _ = size;
    h
}

/// Call sites: captures the stack and adds the block to the per-site
/// ledgers that count it (the thread's process window, and each open local
/// scope up to the first joined one); returns the block's site and birth
/// time for its header (in registers: the header is not built in memory).
/// Hook-safe: no allocation through the global allocator, no lock, no panic.
#[cfg(feature = "backtraces")]
#[inline(never)]
fn track_alloc(s: &ThreadState, size: u64) -> (u32, u64) {
    let site = crate::sites::current();
    let now = s.now();
    if let Some(slot) = s.active_slot() {
        slot.ledger.on_alloc(site, size, now);
        scope::ledgers_alloc(slot, site, size, now);
    }
    (site, now)
}

/// Call sites: subtracts a freed block, whose header is `h`, from the
/// per-site ledgers that counted it.
/// Hook-safe: no allocation through the global allocator, no lock, no panic.
#[cfg(feature = "backtraces")]
#[inline(always)]
fn track_free(s: &ThreadState, h: &Header, size: u64) {
    track_free_words(s, h.serial, h.tag(), h.site, h.birth, size);
}

/// [`track_free`] with the header's words as values: passed in registers,
/// where a `&Header` would make the caller build the header in memory. The
/// common case (a block of no scope, of this window, from a site the process
/// ledger has seen, no peak pending) is a few adds here, with no call and so
/// no saved register; anything else tail-calls [`track_free_general`].
/// Hook-safe: no allocation through the global allocator, no lock, no panic.
#[cfg(feature = "backtraces")]
#[inline(never)]
fn track_free_words(s: &ThreadState, serial: u64, tag: u64, site: u32, birth: u64, size: u64) {
    if !free_in_process_ledger(s, serial, tag, site, birth, size) {
        track_free_general(s, serial, tag, site, birth, size);
    }
}

/// The fast path of a free: a block of no scope and of this window, whose
/// figures [`fast_free_fig`](crate::ledger::Ledger::fast_free_fig) finds in the
/// thread's process ledger, is
/// counted there with a few adds. Returns `false` having changed nothing
/// otherwise.
/// Hook-safe: no allocation, no lock, no panic.
#[cfg(feature = "backtraces")]
#[inline(always)]
fn free_in_process_ledger(
    s: &ThreadState,
    serial: u64,
    tag: u64,
    site: u32,
    birth: u64,
    size: u64,
) -> bool {
    if serial != 0 || Header::epoch_of_tag(tag) != s.epoch16.get() {
        return false;
    }
    let Some(slot) = s.active_slot() else {
        return false;
    };
    let Some(f) = slot.ledger.fast_free_fig(site) else {
        return false;
    };
    slot.ledger.free_into(f, size, birth, s.now());
    true
}

/// [`track_free_words`] for any block.
/// Hook-safe: no allocation through the global allocator, no lock, no panic.
#[cfg(feature = "backtraces")]
#[inline(never)]
fn track_free_general(s: &ThreadState, serial: u64, tag: u64, site: u32, birth: u64, size: u64) {
    let Some(slot) = s.active_slot() else {
        return;
    };
    let now = s.now();
    if Header::epoch_of_tag(tag) == s.epoch16.get() {
        slot.ledger.on_free(site, size, birth, now);
    }
    if serial != 0 && Header::owner_of_tag(tag) == slot.id {
        scope::ledgers_free(slot, serial, site, birth, size, now);
    }
}

/// The innermost scope's part of an allocation.
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
fn scope_alloc(s: &ThreadState, size: u64) {
    if s.serial.get() == 0 {
        return;
    }
    let shared = s.shared.get();
    if shared.is_null() {
        s.blocks_in.set(s.blocks_in.get().wrapping_add(1));
        let bytes_in = s.bytes_in.get().wrapping_add(size);
        s.bytes_in.set(bytes_in);
        if bytes_in.wrapping_sub(s.bytes_out.get()) > s.wpeak.get() {
            scope::new_high(s, size);
        }
    } else {
        scope::shared_alloc(shared, size);
    }
}

/// An allocation that left the process band: tracking suspended,
/// registration, window roll, retired thread, or a process peak.
/// Hook-safe: no allocation through the global allocator, no lock, no panic.
#[cold]
#[inline(never)]
fn slow_alloc(s: &ThreadState, size: u64) -> Header {
    if s.busy.get() {
        return Header::untracked();
    }
    slow(s, Event::Alloc(size));
    scope_alloc(s, size);
    new_block(s, size)
}

/// Counts the free of a block of `size` bytes whose header is `h`.
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
pub(crate) fn on_free(h: &Header, size: usize) {
    if !h.is_tracked() {
        return;
    }
    let _ = with_state(|s| {
        let size = size as u64;
        let c = &s.c;
        let freed = c.freed.load(Relaxed).wrapping_add(size);
        if h.epoch() != s.epoch16.get()
            || (freed >= c.free_limit.load(Relaxed) && !c.renew_free_limit(freed))
        {
            slow(s, Event::Free(size, h.epoch()));
        } else {
            c.count_free(freed);
        }
        #[cfg(feature = "backtraces")]
        track_free(s, h, size);
        if h.serial == 0 {
            return;
        }
        if h.serial == s.serial.get() {
            let shared = s.shared.get();
            if shared.is_null() {
                s.sub_live(size);
                s.sub_blocks(1);
            } else {
                scope::shared_free(shared, size);
            }
        } else {
            scope::free_other(s, h, size);
        }
    });
}

/// The common case of [`on_free`], for the allocator's fast path: counts the
/// free of a block of `size` bytes whose header is `h` and returns `true`, or
/// returns `false` having changed nothing when the event needs more (the
/// process band left, a block of another window, scope or thread, a shared
/// scope, an untracked block); the caller then calls [`on_free`].
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
pub(crate) fn on_free_fast(h: &Header, size: usize) -> bool {
    with_state(|s| {
        let size = size as u64;
        let c = &s.c;
        let freed = c.freed.load(Relaxed).wrapping_add(size);
        // The block's header is what this thread would write now: it is
        // tracked, of this window, and of the innermost scope (or of none,
        // as now). Two word compares.
        let serial = s.serial.get();
        if h.serial != serial || h.tag() != s.tag.get() || freed >= c.free_limit.load(Relaxed) {
            return false;
        }
        if unlikely(serial != 0) {
            if !s.shared.get().is_null() {
                return false;
            }
            s.sub_live(size);
            s.sub_blocks(1);
        }
        c.count_free(freed);
        #[cfg(feature = "backtraces")]
        track_free(s, h, size);
        true
    })
    .unwrap_or(false)
}

/// An event that the slow path counts itself.
#[derive(Clone, Copy)]
enum Event {
    Alloc(u64),
    /// Size and the block's epoch.
    Free(u64, u16),
}

/// Slow path of the process counters: registration, window roll, retired
/// thread, or the process peak.
/// Hook-safe: no allocation through the global allocator, no lock, no panic.
#[cold]
#[inline(never)]
fn slow(s: &ThreadState, ev: Event) {
    let c = &s.c;
    if !INSTALLED.load(Relaxed) {
        INSTALLED.store(true, Relaxed);
    }
    if s.status.get() == Status::Fresh {
        s.register();
    }
    // Every slow event rereads the clock: a thread's first one among them, so
    // no event is ever stamped with the clock's initial 0.
    #[cfg(feature = "backtraces")]
    s.ticks.set(crate::clock::ticks());
    let e = EPOCH.load(SeqCst);
    if c.epoch.load(Relaxed) != e {
        c.start_window(e);
        s.set_epoch16(global::epoch16(e));
        #[cfg(feature = "backtraces")]
        if let Some(slot) = s.active_slot() {
            slot.ledger.clear();
        }
    }
    match ev {
        Event::Alloc(size) => {
            c.count_alloc(c.bytes.load(Relaxed).wrapping_add(size), size);
        }
        Event::Free(size, epoch) => {
            if epoch == s.epoch16.get() {
                c.count_free(c.freed.load(Relaxed).wrapping_add(size));
            }
        }
    }
    if s.status.get() == Status::NoSlot {
        global::flush_unslotted(c);
    } else {
        c.note_peak();
    }
    if s.busy.get() {
        c.force_slow_path();
    }
}

/// Whether `slot` is the calling thread's.
#[cfg(feature = "backtraces")]
pub(crate) fn owns_slot(slot: &ThreadSlot) -> bool {
    with_state(|s| ptr::eq(s.slot.get(), slot)).unwrap_or(false)
}

/// Runs `f` with allocation tracking suspended on this thread: what it
/// allocates is never counted (frees of counted blocks still are).
pub(crate) fn untracked<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = with_state(|s| s.set_busy(self.0));
        }
    }
    let was_busy = with_state(|s| {
        let was = s.busy.get();
        s.set_busy(true);
        was
    });
    let _restore = Restore(was_busy.unwrap_or(true));
    f()
}
