//! Per-site figures of one accounting window: a table site id -> [`SiteFig`],
//! written by one thread only (its owner), readable by others.
//!
//! Every thread has one for its process window (in its registry slot), and
//! each open scope one for the scope. An allocation adds to the ledgers that
//! count its block, a free subtracts from them; what DHAT needs comes out of
//! them at report time: per site the blocks and bytes allocated (`tbk`, `tb`),
//! the live ones (`eb`, `ebk`), their maximum (`mb`, `mbk`), the live ones at
//! the ledger's peak (`gb`, `gbk`) and the summed lifetimes (`tl`).
//!
//! Invariants:
//! - only the owner writes (atomics with `Relaxed` load + store, so readers on
//!   other threads see whole values; never a read-modify-write);
//! - a site goes in the slot of its own id (ids are handed out in order, so a
//!   ledger's sites mostly sit in their own slots), or the next free one; the
//!   owner's lookups try the memo (the last site looked up), then the own slot
//!   through the current table's `entries` and `mask`, which the owner sets
//!   with the table;
//! - the table grows by copying into a new one twice as large; the old one is
//!   freed at once when no other thread reads the ledger (scopes), and kept
//!   (leaked, at most the size of the final table) when they may (process);
//! - `at_peak` is filled lazily, as dhat-rs does: reaching a new peak only
//!   marks it pending; the first free after it (or a report) copies every
//!   site's live figures. Between two peaks nothing is copied;
//! - without memory for the table, figures go to site 0 ("unknown") or, if
//!   even that is impossible, are skipped: the counters outside stay exact.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::alloc::System;

/// Figures of one site in one ledger. Live values may wrap below zero on a
/// thread that frees other threads' blocks; sums over ledgers are exact.
///
/// An allocation and a free touch different cells (live = in − out): a free
/// right after an allocation of the same site then does not wait for the
/// allocation's stores, as one counter that both change would make it.
#[derive(Default)]
pub(crate) struct SiteFig {
    // Allocations add to these.
    allocs: AtomicU64,
    bytes: AtomicU64,
    births: AtomicU64,
    // Frees add to these.
    frees: AtomicU64,
    freed: AtomicU64,
    freed_births: AtomicU64,
    lifetimes: AtomicU64,
    // Set at a new maximum, and at the ledger's peak.
    max: AtomicU64,
    max_blocks: AtomicU64,
    at_peak: AtomicU64,
    at_peak_blocks: AtomicU64,
}

impl SiteFig {
    const fn new() -> SiteFig {
        SiteFig {
            allocs: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            births: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            freed: AtomicU64::new(0),
            freed_births: AtomicU64::new(0),
            lifetimes: AtomicU64::new(0),
            max: AtomicU64::new(0),
            max_blocks: AtomicU64::new(0),
            at_peak: AtomicU64::new(0),
            at_peak_blocks: AtomicU64::new(0),
        }
    }

    fn fields(&self) -> [&AtomicU64; 11] {
        [
            &self.allocs,
            &self.bytes,
            &self.births,
            &self.frees,
            &self.freed,
            &self.freed_births,
            &self.lifetimes,
            &self.max,
            &self.max_blocks,
            &self.at_peak,
            &self.at_peak_blocks,
        ]
    }

    /// Live bytes.
    #[inline(always)]
    fn live(&self) -> u64 {
        self.bytes
            .load(Relaxed)
            .wrapping_sub(self.freed.load(Relaxed))
    }

    /// Live blocks.
    #[inline(always)]
    fn live_blocks(&self) -> u64 {
        self.allocs
            .load(Relaxed)
            .wrapping_sub(self.frees.load(Relaxed))
    }

    fn load(&self) -> Fig {
        Fig {
            allocs: self.allocs.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            live: self.live(),
            live_blocks: self.live_blocks(),
            max: self.max.load(Relaxed),
            max_blocks: self.max_blocks.load(Relaxed),
            at_peak: self.at_peak.load(Relaxed),
            at_peak_blocks: self.at_peak_blocks.load(Relaxed),
            lifetimes: self.lifetimes.load(Relaxed),
            births: self
                .births
                .load(Relaxed)
                .wrapping_sub(self.freed_births.load(Relaxed)),
        }
    }

    /// Adds `g` (the figures of the same site in another ledger).
    fn absorb(&self, g: &Fig) {
        add(&self.allocs, g.allocs);
        add(&self.bytes, g.bytes);
        add(&self.births, g.births);
        // What went out: what came in minus what is still live.
        add(&self.frees, g.allocs.wrapping_sub(g.live_blocks));
        add(&self.freed, g.bytes.wrapping_sub(g.live));
        add(&self.lifetimes, g.lifetimes);
        add(&self.max, g.max);
        add(&self.max_blocks, g.max_blocks);
        add(&self.at_peak, g.at_peak);
        add(&self.at_peak_blocks, g.at_peak_blocks);
    }

    fn copy_peak(&self) {
        self.at_peak.store(self.live(), Relaxed);
        self.at_peak_blocks.store(self.live_blocks(), Relaxed);
    }
}

/// A plain copy of a site's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fig {
    pub(crate) allocs: u64,
    pub(crate) bytes: u64,
    pub(crate) live: u64,
    pub(crate) live_blocks: u64,
    pub(crate) max: u64,
    pub(crate) max_blocks: u64,
    pub(crate) at_peak: u64,
    pub(crate) at_peak_blocks: u64,
    /// Summed lifetimes of freed blocks, in ticks.
    pub(crate) lifetimes: u64,
    /// Summed birth ticks of live blocks.
    pub(crate) births: u64,
}

impl Fig {
    /// Adds `other` (figures of the same site in another ledger).
    pub(crate) fn add(&mut self, o: &Fig) {
        self.allocs = self.allocs.wrapping_add(o.allocs);
        self.bytes = self.bytes.wrapping_add(o.bytes);
        self.live = self.live.wrapping_add(o.live);
        self.live_blocks = self.live_blocks.wrapping_add(o.live_blocks);
        self.max = self.max.wrapping_add(o.max);
        self.max_blocks = self.max_blocks.wrapping_add(o.max_blocks);
        self.at_peak = self.at_peak.wrapping_add(o.at_peak);
        self.at_peak_blocks = self.at_peak_blocks.wrapping_add(o.at_peak_blocks);
        self.lifetimes = self.lifetimes.wrapping_add(o.lifetimes);
        self.births = self.births.wrapping_add(o.births);
    }

    /// Summed lifetimes (ticks) of all blocks, the live ones counted up to `now`.
    #[cfg_attr(not(feature = "dhat-compat"), allow(dead_code))]
    pub(crate) fn total_lifetime(&self, now: u64) -> u64 {
        let live_blocks = live_count(self.live_blocks);
        self.lifetimes
            .wrapping_add(live_blocks.wrapping_mul(now))
            .wrapping_sub(if live_blocks == 0 { 0 } else { self.births })
    }
}

/// A live figure that may have wrapped below zero, read as a count (0 if negative).
pub(crate) fn live_count(v: u64) -> u64 {
    if (v as i64) < 0 {
        0
    } else {
        v
    }
}

struct Entry {
    /// Site id + 1 (0: empty slot).
    key: AtomicU32,
    fig: SiteFig,
}

struct Table {
    bits: u32,
    used: AtomicU32,
    entries: *mut Entry,
}

impl Table {
    fn entry(&self, i: usize) -> &Entry {
        let i = i & ((1usize << self.bits) - 1);
        // `entries` holds `1 << bits` zeroed entries (see `Table::new`), alive
        // as long as the table, and `i` is masked into range.
        let p = self.entries.wrapping_add(i);
        // SAFETY: (as above) `p` is entry `i` of the live array.
        unsafe { &*p }
    }

    fn entries_layout(bits: u32) -> Option<Layout> {
        Layout::array::<Entry>(1usize << bits).ok()
    }

    /// A zeroed table with `1 << bits` entries, from `System`.
    fn new(bits: u32) -> *mut Table {
        let Some(layout) = Self::entries_layout(bits) else {
            return ptr::null_mut();
        };
        if crate::sites::own_memory_fails() {
            return ptr::null_mut();
        }
        // SAFETY: non-zero size (bits >= 4).
        let entries = unsafe { System.alloc_zeroed(layout) }.cast::<Entry>();
        if entries.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: non-zero size.
        let t = unsafe { System.alloc(Layout::new::<Table>()) }.cast::<Table>();
        if t.is_null() {
            // SAFETY: just allocated with `layout`, never shared.
            unsafe { System.dealloc(entries.cast(), layout) };
            return ptr::null_mut();
        }
        // SAFETY: `t` is a fresh allocation for a Table; all-zero entries are valid.
        unsafe {
            t.write(Table {
                bits,
                used: AtomicU32::new(0),
                entries,
            })
        };
        t
    }

    /// Gives a table back.
    ///
    /// # Safety
    /// `t` came from [`Table::new`] and nobody reads it any more.
    unsafe fn free(t: *mut Table) {
        // SAFETY: caller contract: a live table from `new`.
        let table = unsafe { &*t };
        let (bits, entries) = (table.bits, table.entries);
        if let Some(layout) = Self::entries_layout(bits) {
            // SAFETY: allocated by `new` with this layout.
            unsafe { System.dealloc(entries.cast(), layout) };
        }
        // SAFETY: allocated by `new` with this layout.
        unsafe { System.dealloc(t.cast(), Layout::new::<Table>()) };
    }

    /// Where `site` goes: its id itself (masked by the caller). Ids are
    /// handed out one after the other, so the sites of a ledger mostly fill
    /// consecutive slots and a lookup finds its site at the first probe: a
    /// branch the processor predicts, however the sites take turns.
    #[inline(always)]
    fn slot_of(site: u32) -> usize {
        site as usize
    }

    /// The entry of `site`, if present.
    #[inline(always)]
    fn find(&self, site: u32) -> Option<&Entry> {
        // Read once: the loads below are `Acquire`, after which the compiler
        // would read these again on every probe.
        let (mask, entries) = ((1usize << self.bits) - 1, self.entries);
        let key = site.wrapping_add(1);
        let mut i = Table::slot_of(site);
        loop {
            // `entries` holds `mask + 1` entries, alive as long as the table
            // (see `Table::entry`), and `i & mask` is in range.
            let p = entries.wrapping_add(i & mask);
            // SAFETY: (as above) `p` is an entry of the live array.
            let e = unsafe { &*p };
            match e.key.load(Acquire) {
                0 => return None,
                k if k == key => return Some(e),
                _ => i = i.wrapping_add(1),
            }
        }
    }

    /// The entry of `site`, claiming an empty slot if absent (owner only; the
    /// table must be less than half full).
    fn claim(&self, site: u32) -> &Entry {
        let mut i = Table::slot_of(site);
        loop {
            let e = self.entry(i);
            match e.key.load(Relaxed) {
                0 => {
                    e.key.store(site.wrapping_add(1), Release);
                    self.used
                        .store(self.used.load(Relaxed).wrapping_add(1), Relaxed);
                    return e;
                }
                k if k == site.wrapping_add(1) => return e,
                _ => i = i.wrapping_add(1),
            }
        }
    }
}

/// Per-site figures of one window, plus the window's own live bytes and peak.
pub(crate) struct Ledger {
    table: AtomicPtr<Table>,
    /// The current table's entries (null: no table) and its mask, for the
    /// owner's lookups: two loads side by side, no table to follow.
    entries: AtomicPtr<Entry>,
    mask: AtomicUsize,
    /// Other threads may read this ledger: old tables are kept, not freed.
    shared: AtomicBool,
    /// The window's live bytes: `live_in - live_out` (allocations and frees
    /// touch different cells, as in [`SiteFig`]).
    live_in: AtomicU64,
    live_out: AtomicU64,
    peak: AtomicU64,
    peak_time: AtomicU64,
    pending: AtomicBool,
    /// Site 0 ("unknown") when the table cannot grow: figures that find no
    /// room go here, so none is lost.
    overflow: SiteFig,
    /// Owner-only memo of the last site looked up: its id + 1 (0: none) and its
    /// figures. An allocation and its free often name the same site, and a
    /// loop allocating from one place always does: then its figures are known
    /// at once (one load, not a walk through the table to an entry).
    last_site: AtomicU32,
    last_fig: AtomicPtr<SiteFig>,
}

#[allow(clippy::declare_interior_mutable_const)] // a template for statics and arrays
impl Ledger {
    /// An empty ledger; `shared` if other threads may read it.
    pub(crate) const fn new(shared: bool) -> Ledger {
        Ledger {
            table: AtomicPtr::new(ptr::null_mut()),
            entries: AtomicPtr::new(ptr::null_mut()),
            mask: AtomicUsize::new(0),
            shared: AtomicBool::new(shared),
            live_in: AtomicU64::new(0),
            live_out: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            peak_time: AtomicU64::new(0),
            pending: AtomicBool::new(false),
            overflow: SiteFig::new(),
            last_site: AtomicU32::new(0),
            last_fig: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Marks the ledger as read by other threads (old tables are kept).
    pub(crate) fn set_shared(&self) {
        self.shared.store(true, Relaxed);
    }

    fn table(&self) -> Option<&Table> {
        let t = self.table.load(Acquire);
        // SAFETY: a non-null table pointer is a live table from `Table::new`:
        // replaced ones are freed only when no other thread can read them.
        (!t.is_null()).then(|| unsafe { &*t })
    }

    /// The table, with room for one more site (grown if needed).
    fn table_for_insert(&self) -> Option<&Table> {
        let cur = self.table();
        let full = cur.map_or(true, |t| {
            t.used.load(Relaxed) as usize * 2 + 2 > 1usize << t.bits
        });
        if full {
            let fresh = Table::new(cur.map_or(5, |t| t.bits + 1));
            if fresh.is_null() {
                return cur;
            }
            // SAFETY: a fresh table from `Table::new`; only the owner writes it.
            let new = unsafe { &*fresh };
            if let Some(old) = cur {
                for i in 0..1usize << old.bits {
                    let e = old.entry(i);
                    let key = e.key.load(Relaxed);
                    if key != 0 {
                        copy_fig(&e.fig, &new.claim(key.wrapping_sub(1)).fig);
                    }
                }
            }
            self.forget_last();
            self.entries.store(new.entries, Relaxed);
            self.mask.store((1usize << new.bits) - 1, Relaxed);
            let replaced = self.table.swap(fresh, AcqRel);
            if !replaced.is_null() && !self.shared.load(Relaxed) {
                // SAFETY: replaced, and no other thread reads this ledger.
                unsafe { Table::free(replaced) };
            }
        }
        self.table()
    }

    /// The figures of `site`: its entry, a new one, or the overflow entry
    /// when the table has no room and cannot grow.
    /// Hook-safe: no allocation through the global allocator, no lock, no panic.
    #[inline(always)]
    fn fig(&self, site: u32) -> &SiteFig {
        match self.found(site) {
            Some(f) => f,
            None => self.fig_elsewhere(site),
        }
    }

    /// The figures of `site` if it is the memo's or sits in its own slot (then
    /// remembered); calls nothing. Owner only.
    /// Hook-safe: no allocation, no lock, no panic.
    #[inline(always)]
    fn found(&self, site: u32) -> Option<&SiteFig> {
        if let Some(f) = self.memo(site) {
            return Some(f);
        }
        let f = &self.own_slot(site)?.fig;
        self.remember(site, f);
        Some(f)
    }

    /// The figures of `site` if it is the memo's (the last site looked up).
    /// Hook-safe: no allocation, no lock, no panic.
    #[inline(always)]
    fn memo(&self, site: u32) -> Option<&SiteFig> {
        if self.last_site.load(Relaxed) != site.wrapping_add(1) {
            return None;
        }
        let f = self.last_fig.load(Relaxed);
        // SAFETY: the memo points into the current table or at `overflow`; it
        // is cleared whenever the table is replaced or released.
        Some(unsafe { &*f })
    }

    /// Makes `f`, the figures of `site`, the memo.
    /// Hook-safe: no allocation, no lock, no panic.
    #[inline(always)]
    fn remember(&self, site: u32, f: &SiteFig) {
        self.last_fig
            .store((f as *const SiteFig).cast_mut(), Relaxed);
        self.last_site.store(site.wrapping_add(1), Relaxed);
    }

    /// Forgets the memo (the table is about to change).
    fn forget_last(&self) {
        self.last_site.store(0, Relaxed);
    }

    /// The entry of `site` when it sits in its own slot (see
    /// [`Table::slot_of`]): almost always, and then a branch the processor
    /// predicts. Owner only.
    /// Hook-safe: no allocation, no lock, no panic.
    #[inline(always)]
    fn own_slot(&self, site: u32) -> Option<&Entry> {
        let entries = self.entries.load(Relaxed);
        if entries.is_null() {
            return None;
        }
        // `entries` and `mask` are the current table's (the owner, the only
        // writer, sets them with the table), so `site & mask` is in range.
        let p = entries.wrapping_add(self.slot_in_table(site));
        // SAFETY: (as above) an entry of the live table: tables the owner
        // replaces are freed only after `entries` stops pointing at them.
        let e = unsafe { &*p };
        (e.key.load(Relaxed) == site.wrapping_add(1)).then_some(e)
    }

    /// `site`'s own slot in the current table: [`Table::slot_of`] masked.
    #[inline(always)]
    fn slot_in_table(&self, site: u32) -> usize {
        Table::slot_of(site) & self.mask.load(Relaxed)
    }

    /// [`Ledger::fig`] when `site` is not in its own slot: further along, or new.
    #[inline(never)]
    fn fig_elsewhere(&self, site: u32) -> &SiteFig {
        let f = match self.table().and_then(|t| t.find(site)) {
            Some(e) => &e.fig,
            None => self.fig_new(site),
        };
        self.remember(site, f);
        f
    }

    /// The figures of a site new to this ledger: a claimed entry, or the
    /// overflow entry when the table has no room and cannot grow. Out of
    /// line: it is rare, and keeps the lookup above a leaf.
    #[cold]
    #[inline(never)]
    fn fig_new(&self, site: u32) -> &SiteFig {
        match self.table_for_insert() {
            Some(t) if (t.used.load(Relaxed) as usize + 1) * 2 <= 1usize << t.bits => {
                &t.claim(site).fig
            }
            _ => &self.overflow,
        }
    }

    /// Counts an allocation of `size` bytes from `site` at tick `now`.
    /// Hook-safe: no allocation through the global allocator, no lock, no panic.
    #[inline(always)]
    pub(crate) fn on_alloc(&self, site: u32, size: u64, now: u64) {
        let live = add(&self.live_in, size).wrapping_sub(self.live_out.load(Relaxed));
        if live as i64 > self.peak.load(Relaxed) as i64 {
            self.peak.store(live, Relaxed);
            self.peak_time.store(now, Relaxed);
            self.pending.store(true, Relaxed);
        }
        let f = self.fig(site);
        let allocs = add(&f.allocs, 1);
        let live = add(&f.bytes, size).wrapping_sub(f.freed.load(Relaxed));
        add(&f.births, now);
        if live as i64 > f.max.load(Relaxed) as i64 {
            f.max.store(live, Relaxed);
            f.max_blocks
                .store(allocs.wrapping_sub(f.frees.load(Relaxed)), Relaxed);
        }
    }

    /// Counts the free of a block of `size` bytes from `site`, born at tick
    /// `birth`, at tick `now`.
    /// Hook-safe: no allocation through the global allocator, no lock, no panic.
    #[inline(always)]
    pub(crate) fn on_free(&self, site: u32, size: u64, birth: u64, now: u64) {
        if self.pending.load(Relaxed) {
            self.copy_peak();
        }
        self.free_into(self.fig(site), size, birth, now);
    }

    /// The figures a free from `site` goes to, when [`Ledger::on_free`] is a
    /// few adds: no peak is pending and `site` is the memo's or in its own slot
    /// of the table (`None` otherwise, having changed nothing but the memo).
    /// Then [`Ledger::free_into`] completes the free. Calls nothing, so a
    /// caller can stay a leaf.
    /// Hook-safe: no allocation, no lock, no panic.
    #[inline(always)]
    pub(crate) fn fast_free_fig(&self, site: u32) -> Option<&SiteFig> {
        if self.pending.load(Relaxed) {
            return None;
        }
        self.found(site)
    }

    /// The adds of a free into `f`, the figures of its site (from [`Ledger::fig`],
    /// or [`Ledger::fast_free_fig`] when no peak is pending).
    /// Hook-safe: no allocation, no lock, no panic.
    #[inline(always)]
    pub(crate) fn free_into(&self, f: &SiteFig, size: u64, birth: u64, now: u64) {
        add(&self.live_out, size);
        add(&f.frees, 1);
        add(&f.freed, size);
        add(&f.freed_births, birth);
        add(&f.lifetimes, now.saturating_sub(birth));
    }

    /// Copies every site's live figures into its at-peak figures.
    fn copy_peak(&self) {
        self.pending.store(false, Relaxed);
        if let Some(t) = self.table() {
            for i in 0..1usize << t.bits {
                t.entry(i).fig.copy_peak();
            }
        }
        self.overflow.copy_peak();
    }

    /// Empties the ledger (a new window starts); owner only.
    pub(crate) fn clear(&self) {
        if let Some(t) = self.table() {
            for i in 0..1usize << t.bits {
                for a in t.entry(i).fig.fields() {
                    a.store(0, Relaxed);
                }
            }
        }
        for a in self.overflow.fields() {
            a.store(0, Relaxed);
        }
        for a in [&self.live_in, &self.live_out, &self.peak, &self.peak_time] {
            a.store(0, Relaxed);
        }
        self.pending.store(false, Relaxed);
    }

    /// Gives the table back (scope ledgers, when their scope closes); owner only.
    pub(crate) fn release(&self) {
        self.forget_last();
        self.entries.store(ptr::null_mut(), Relaxed);
        let t = self.table.swap(ptr::null_mut(), AcqRel);
        if !t.is_null() && !self.shared.load(Relaxed) {
            // SAFETY: detached, and no other thread reads this ledger.
            unsafe { Table::free(t) };
        }
        self.clear();
    }

    /// The ledger's peak live bytes and the tick it was reached.
    pub(crate) fn peak(&self) -> (u64, u64) {
        (self.peak.load(Relaxed), self.peak_time.load(Relaxed))
    }

    /// A copy of every site's figures. The at-peak figures are completed if a
    /// peak is pending and `owner` (the caller owns the ledger).
    pub(crate) fn figures(&self, owner: bool) -> Vec<(u32, Fig)> {
        if owner && self.pending.load(Relaxed) {
            self.copy_peak();
        }
        let pending = self.pending.load(Relaxed);
        let mut out = Vec::new();
        let mut push = |site: u32, f: &SiteFig| {
            let mut fig = f.load();
            if pending {
                // Another thread's ledger whose peak is now: live is at-peak.
                fig.at_peak = fig.live;
                fig.at_peak_blocks = fig.live_blocks;
            }
            out.push((site, fig));
        };
        if let Some(t) = self.table() {
            for i in 0..1usize << t.bits {
                let e = t.entry(i);
                let key = e.key.load(Acquire);
                if key != 0 {
                    push(key - 1, &e.fig);
                }
            }
        }
        if self.overflow.allocs.load(Relaxed) != 0 || self.overflow.frees.load(Relaxed) != 0 {
            push(0, &self.overflow);
        }
        out
    }

    /// Adds `figs` (another ledger's) into this one: owner only. Used to keep
    /// an exiting thread's figures.
    pub(crate) fn absorb(&self, figs: &[(u32, Fig)], peak: (u64, u64)) {
        for (site, g) in figs {
            self.fig(*site).absorb(g);
        }
        if peak.0 > self.peak.load(Relaxed) {
            self.peak.store(peak.0, Relaxed);
            self.peak_time.store(peak.1, Relaxed);
        }
    }
}

impl Default for Ledger {
    fn default() -> Ledger {
        Ledger::new(false)
    }
}

/// Owner-only add: load + store, returns the new value.
#[inline(always)]
fn add(a: &AtomicU64, v: u64) -> u64 {
    let n = a.load(Relaxed).wrapping_add(v);
    a.store(n, Relaxed);
    n
}

fn copy_fig(from: &SiteFig, to: &SiteFig) {
    for (a, b) in from.fields().into_iter().zip(to.fields()) {
        b.store(a.load(Relaxed), Relaxed);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap
    use super::*;

    fn fig_of(l: &Ledger, site: u32) -> Fig {
        l.figures(true)
            .into_iter()
            .find(|(s, _)| *s == site)
            .map(|(_, f)| f)
            .unwrap_or_default()
    }

    #[test]
    fn allocs_and_frees_add_up_per_site() {
        let l = Ledger::new(false);
        l.on_alloc(7, 100, 10);
        l.on_alloc(7, 50, 20);
        l.on_alloc(9, 8, 30);
        l.on_free(7, 100, 10, 40);
        let f = fig_of(&l, 7);
        assert_eq!(
            (
                f.allocs,
                f.bytes,
                f.live,
                f.live_blocks,
                f.max,
                f.max_blocks
            ),
            (2, 150, 50, 1, 150, 2)
        );
        assert_eq!(f.lifetimes, 30);
        assert_eq!(f.total_lifetime(100), 30 + (100 - 20));
        assert_eq!(fig_of(&l, 9).bytes, 8);
        l.release();
    }

    #[test]
    fn a_fast_free_does_what_a_free_does_when_it_is_offered() {
        let fast = Ledger::new(false);
        let slow = Ledger::new(false);
        for l in [&fast, &slow] {
            l.on_alloc(4, 100, 10);
            l.on_alloc(5, 30, 11);
        }
        // A peak is pending (reached by the allocations): no fast free.
        assert!(fast.fast_free_fig(5).is_none());
        for l in [&fast, &slow] {
            l.on_free(5, 30, 11, 12);
            l.on_alloc(5, 30, 13);
        }
        // Site 9 is in no table: no fast free.
        assert!(fast.fast_free_fig(9).is_none());
        // Site 5 is in the table, and no peak is pending: the same as `on_free`.
        let f = fast.fast_free_fig(5).unwrap();
        fast.free_into(f, 30, 13, 15);
        slow.on_free(5, 30, 13, 15);
        // And site 4, the other one.
        let f = fast.fast_free_fig(4).unwrap();
        fast.free_into(f, 100, 10, 16);
        slow.on_free(4, 100, 10, 16);
        assert_eq!(fast.figures(true), slow.figures(true));
        assert_eq!(fast.peak(), slow.peak());
        fast.release();
        slow.release();
    }

    #[test]
    fn at_peak_figures_are_those_of_the_moment_of_the_peak() {
        let l = Ledger::new(false);
        l.on_alloc(1, 100, 1);
        l.on_alloc(2, 300, 2);
        l.on_free(2, 300, 2, 3); // peak 400 was at tick 2
        l.on_alloc(1, 50, 4);
        assert_eq!(l.peak(), (400, 2));
        assert_eq!((fig_of(&l, 1).at_peak, fig_of(&l, 2).at_peak), (100, 300));
        l.release();
    }

    #[test]
    fn sites_that_share_a_slot_each_keep_their_own_figures() {
        // The first table has 32 slots: these ids all start at slot 1.
        let sites = [1u32, 33, 65, 97, 129];
        let l = Ledger::new(false);
        for round in 0..3u64 {
            for (i, &site) in sites.iter().enumerate() {
                l.on_alloc(site, 10 * (i as u64 + 1), round);
            }
        }
        for (i, &site) in sites.iter().enumerate().rev() {
            l.on_free(site, 10 * (i as u64 + 1), 0, 5);
        }
        // Only site 1 has its own slot (and it is the memo now): a free from
        // another takes the long way, which finds it further along.
        assert!(l.fast_free_fig(1).is_some());
        for &site in &sites[1..] {
            assert!(l.fast_free_fig(site).is_none(), "site {site}");
        }
        for (i, &site) in sites.iter().enumerate() {
            let f = fig_of(&l, site);
            let size = 10 * (i as u64 + 1);
            assert_eq!(
                (f.allocs, f.bytes, f.live_blocks),
                (3, 3 * size, 2),
                "site {site}"
            );
        }
        assert!(l.fast_free_fig(161).is_none());
        l.release();
    }

    #[test]
    fn the_table_grows_and_keeps_every_site() {
        let l = Ledger::new(false);
        for site in 0..5000u32 {
            l.on_alloc(site, u64::from(site) + 1, 0);
        }
        let figs = l.figures(true);
        assert_eq!(figs.len(), 5000);
        assert!(figs
            .iter()
            .all(|(s, f)| f.bytes == u64::from(*s) + 1 && f.allocs == 1));
        l.release();
    }

    #[test]
    fn a_free_of_another_threads_block_goes_negative_and_sums_back() {
        // Not shared: this test reads both from one thread, and gives the
        // tables back at the end (shared ledgers keep theirs for good).
        let a = Ledger::new(false);
        let b = Ledger::new(false);
        a.on_alloc(3, 64, 0);
        b.on_free(3, 64, 0, 5);
        let mut sum = fig_of(&a, 3);
        sum.add(&fig_of(&b, 3));
        assert_eq!((sum.live, sum.live_blocks, sum.allocs), (0, 0, 1));
        assert_eq!(live_count(fig_of(&b, 3).live), 0);
        a.release();
        b.release();
    }
}
