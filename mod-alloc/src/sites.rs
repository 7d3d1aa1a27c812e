//! Call-site table: a captured stack (its return addresses) -> a site id.
//!
//! Shared by all threads, append-only, lock-free, and it grows instead of
//! dropping: a site id, once handed out, names the same stack for the life of
//! the process, and a stack never seen before always gets a new id (or, if
//! the table's own memory cannot be had, the id 0, "unknown site", and the
//! allocation is still counted).
//!
//! ```text
//! the walk's own memo (backtrace::Chains) hit: the stack's words are those of the
//!                                          last stack with the same first record
//!   -> per-thread cache (256 x hash -> id)   hit: compare the frames with the record
//!   -> index tables (2^12, 2^13, ... slots)  probe newest to oldest; insert in
//!                                            the newest one under half full
//!   -> records (chunks of 512): hash, id, frames
//! ```
//!
//! The walk's memo serves the common case for nothing but the compares the
//! walk makes anyway: an allocation from the same stack as the thread's
//! previous one (a loop) skips the hash, the cache and the table.
//!
//! Invariants:
//! - a record is written completely before its id is published (`Release`
//!   store into an index slot); records and tables are never freed or moved;
//! - identity is exact: a lookup compares all frames, never only the hash;
//! - two threads inserting the same new stack at once may get two ids for it
//!   (one per index table); both name the same frames and are merged when
//!   reports resolve them to locations. No event is lost either way.
//!
//! Memory comes from `System`, never from the global allocator.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::backtrace;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering::*};
use std::alloc::System;

/// Most frames kept per site.
pub(crate) const MAX_FRAMES: usize = 32;

// Every captured stack fits in the walk's chain, which hands it to `lookup`.
const _: () = assert!(MAX_FRAMES <= backtrace::CHAIN_LEN);

/// Frames captured per allocation ([`set_depth`]). Unoptimised builds inline
/// nothing, so the standard library's path from a user's call to the
/// allocator (`collect` -> `from_iter` -> ... -> `Box::new`) takes twice as
/// many frames: they get twice the depth.
static DEPTH: AtomicUsize = AtomicUsize::new(if cfg!(debug_assertions) {
    2 * backtrace::DEFAULT_DEPTH
} else {
    backtrace::DEFAULT_DEPTH
});

/// Sets how many frames each allocation captures (1 to [`MAX_FRAMES`]).
pub(crate) fn set_depth(depth: usize) {
    DEPTH.store(depth.clamp(1, MAX_FRAMES), Relaxed);
}

/// One captured stack, and its id.
struct Record {
    hash: u64,
    len: u32,
    id: u32,
    frames: [usize; MAX_FRAMES],
}

impl Record {
    /// The captured frames, innermost first.
    fn frames(&self) -> &[usize] {
        self.frames.get(..self.len as usize).unwrap_or(&[])
    }
}

const CHUNK: usize = 512;
const CHUNKS: usize = 8192;
/// Most sites the table can name (4 M); later stacks are "unknown".
const MAX_SITES: u32 = (CHUNK * CHUNKS) as u32;

type Chunk = [Record; CHUNK];

static RECORDS: [AtomicPtr<Chunk>; CHUNKS] = [NULL_CHUNK; CHUNKS];
#[allow(clippy::declare_interior_mutable_const)] // only to build RECORDS
const NULL_CHUNK: AtomicPtr<Chunk> = AtomicPtr::new(ptr::null_mut());
/// Ids handed out so far (1..=NEXT).
static NEXT: AtomicU32 = AtomicU32::new(0);

/// One open-addressing index: `1 << bits` slots of site ids (0: empty).
struct Index {
    bits: u32,
    used: AtomicU32,
    slots: *const AtomicU32,
}

const FIRST_BITS: u32 = 12;
const INDEXES: usize = 20;
static INDEX: [AtomicPtr<Index>; INDEXES] = [NULL_INDEX; INDEXES];
#[allow(clippy::declare_interior_mutable_const)] // only to build INDEX
const NULL_INDEX: AtomicPtr<Index> = AtomicPtr::new(ptr::null_mut());

impl Index {
    fn slot(&self, i: usize) -> &AtomicU32 {
        let i = i & ((1usize << self.bits) - 1);
        // `slots` points at `1 << bits` zeroed atomics that are never freed
        // (see `index`), and `i` is masked into range.
        let p = self.slots.wrapping_add(i);
        // SAFETY: (as above) `p` is slot `i` of the live array.
        unsafe { &*p }
    }

    fn is_full(&self) -> bool {
        self.used.load(Relaxed) as usize * 2 >= 1usize << self.bits
    }
}

std::thread_local! {
    /// Test switch (`__fail_own_memory`): on this thread, every allocation of
    /// the call-site machinery's own memory (site table, ledgers) fails, as
    /// when memory is exhausted. Per thread, so that tests running in
    /// parallel in the same process are not starved by it.
    static FAIL_OWN_MEMORY: Cell<bool> = const { Cell::new(false) };
}

/// Sets the test switch of the calling thread (see `FAIL_OWN_MEMORY`).
pub(crate) fn set_own_memory_fails(fail: bool) {
    let _ = FAIL_OWN_MEMORY.try_with(|f| f.set(fail));
}

/// Whether the call-site machinery's own allocations fail on this thread
/// (the test switch). Off the hot path: only when memory is needed.
/// Hook-safe: no allocation, no lock, no panic.
pub(crate) fn own_memory_fails() -> bool {
    FAIL_OWN_MEMORY.try_with(Cell::get).unwrap_or(false)
}

/// A zeroed allocation from `System` (null when memory is short).
fn zeroed(layout: Layout) -> *mut u8 {
    if own_memory_fails() {
        return ptr::null_mut();
    }
    // SAFETY: callers pass non-zero sizes.
    unsafe { System.alloc_zeroed(layout) }
}

/// Gives back an allocation of `zeroed` that was never published.
fn unpublished(p: *mut u8, layout: Layout) {
    // SAFETY: `p` came from `zeroed(layout)` and nobody else has seen it.
    unsafe { System.dealloc(p, layout) }
}

/// The index `k`, allocating it if needed.
fn index(k: usize) -> Option<&'static Index> {
    let p = INDEX.get(k)?.load(Acquire);
    if !p.is_null() {
        // SAFETY: published indexes are never freed.
        return Some(unsafe { &*p });
    }
    let bits = FIRST_BITS + k as u32;
    let slots_layout = Layout::array::<AtomicU32>(1usize << bits).ok()?;
    let slots = zeroed(slots_layout);
    if slots.is_null() {
        return None;
    }
    let header = Layout::new::<Index>();
    let fresh = zeroed(header).cast::<Index>();
    if fresh.is_null() {
        unpublished(slots, slots_layout);
        return None;
    }
    // SAFETY: `fresh` is a zeroed, aligned, unpublished allocation for an Index.
    unsafe {
        fresh.write(Index {
            bits,
            used: AtomicU32::new(0),
            slots: slots.cast(),
        })
    };
    match INDEX[k].compare_exchange(ptr::null_mut(), fresh, AcqRel, Acquire) {
        // SAFETY: just published; never freed.
        Ok(_) => Some(unsafe { &*fresh }),
        Err(winner) => {
            unpublished(fresh.cast(), header);
            unpublished(slots, slots_layout);
            // SAFETY: published indexes are never freed.
            Some(unsafe { &*winner })
        }
    }
}

/// The record of site `id` (1-based), if published.
fn record(id: u32) -> Option<&'static Record> {
    let i = id.checked_sub(1)? as usize;
    let chunk = RECORDS.get(i / CHUNK)?.load(Acquire);
    // SAFETY: published chunks are never freed; the record was written before
    // its id was published (Release/Acquire through the index slot or NEXT).
    (!chunk.is_null()).then(|| unsafe { &(*chunk)[i % CHUNK] })
}

/// The frames of site `id` (innermost first); empty for unknown ids.
pub(crate) fn frames(id: u32) -> &'static [usize] {
    record(id).map_or(&[], Record::frames)
}

/// The hash of a stack. The multiplies are independent of one another, and
/// the frames go to four lanes in turn, so the serial chain is one xor and one
/// rotate per four frames (a hash in one lane made a 16-frame lookup wait for
/// 32 dependent steps); the end mixes the lanes, and the high bits into the
/// low ones that pick cache and index slots.
fn hash(frames: &[usize]) -> u64 {
    #[inline(always)]
    fn step(h: u64, f: usize) -> u64 {
        (h ^ (f as u64).wrapping_mul(0xA076_1D64_78BD_642F)).rotate_left(23)
    }
    let mut lanes = [
        0x9E37_79B9_7F4A_7C15 ^ frames.len() as u64,
        0x243F_6A88_85A3_08D3,
        0x1319_8A2E_0370_7344,
        0xA409_3822_299F_31D0,
    ];
    let mut quads = frames.chunks_exact(4);
    for quad in &mut quads {
        for (lane, &f) in lanes.iter_mut().zip(quad) {
            *lane = step(*lane, f);
        }
    }
    for (lane, &f) in lanes.iter_mut().zip(quads.remainder()) {
        *lane = step(*lane, f);
    }
    let mut h =
        lanes[0] ^ lanes[1].rotate_left(16) ^ lanes[2].rotate_left(32) ^ lanes[3].rotate_left(48);
    h ^= h >> 32;
    h = h.wrapping_mul(0xE703_7ED1_A0B4_28DB);
    h ^ (h >> 29)
}

/// Whether two stacks are the same, frame for frame. Inline and branch-free
/// over the frames (no call to `memcmp` for a few words).
#[inline(always)]
fn same_frames(a: &[usize], b: &[usize]) -> bool {
    // The innermost frame first: it is the one most likely to differ.
    a.len() == b.len()
        && a.first() == b.first()
        && a.iter().zip(b).fold(0, |d, (x, y)| d | (x ^ y)) == 0
}

fn matches(id: u32, hash: u64, frames: &[usize]) -> bool {
    record(id).is_some_and(|r| r.hash == hash && same_frames(r.frames(), frames))
}

/// Finds `frames` in the indexes, newest first.
fn find(hash: u64, frames: &[usize]) -> Option<u32> {
    for k in (0..INDEXES).rev() {
        let p = INDEX[k].load(Acquire);
        if p.is_null() {
            continue;
        }
        // SAFETY: published indexes are never freed.
        let idx = unsafe { &*p };
        let mut i = hash as usize;
        loop {
            let id = idx.slot(i).load(Acquire);
            if id == 0 {
                break;
            }
            if matches(id, hash, frames) {
                return Some(id);
            }
            i = i.wrapping_add(1);
        }
    }
    None
}

/// Writes a new record and returns its id, or `None` without memory.
fn new_record(hash: u64, frames: &[usize]) -> Option<u32> {
    if own_memory_fails() {
        return None;
    }
    let id = NEXT
        .fetch_add(1, AcqRel)
        .checked_add(1)
        .filter(|&id| id <= MAX_SITES)?;
    let i = (id - 1) as usize;
    let slot = &RECORDS[i / CHUNK];
    let mut chunk = slot.load(Acquire);
    if chunk.is_null() {
        let layout = Layout::new::<Chunk>();
        let fresh = zeroed(layout).cast::<Chunk>();
        if fresh.is_null() {
            return None;
        }
        chunk = match slot.compare_exchange(ptr::null_mut(), fresh, AcqRel, Acquire) {
            Ok(_) => fresh,
            Err(winner) => {
                unpublished(fresh.cast(), layout);
                winner
            }
        };
    }
    // SAFETY: `chunk` is a published, never-freed chunk; record `i % CHUNK` is
    // ours alone (ids are handed out once) until its id is published below.
    let r = unsafe { &mut (*chunk)[i % CHUNK] };
    let len = frames.len().min(MAX_FRAMES);
    r.hash = hash;
    r.len = len as u32;
    r.id = id;
    r.frames[..len].copy_from_slice(&frames[..len]);
    Some(id)
}

/// The id of `frames`, inserting it if new; 0 when the table's memory is short.
fn intern(hash: u64, frames: &[usize]) -> u32 {
    if let Some(id) = find(hash, frames) {
        return id;
    }
    let Some(id) = new_record(hash, frames) else {
        return 0;
    };
    for k in 0..INDEXES {
        let Some(idx) = index(k) else {
            return 0;
        };
        if idx.is_full() {
            continue;
        }
        let mut i = hash as usize;
        loop {
            let slot = idx.slot(i);
            match slot.compare_exchange(0, id, AcqRel, Acquire) {
                Ok(_) => {
                    idx.used.fetch_add(1, Relaxed);
                    return id;
                }
                Err(other) if matches(other, hash, frames) => return other,
                Err(_) => i = i.wrapping_add(1),
            }
        }
    }
    0
}

/// Per-thread cache in front of the shared table.
const CACHE: usize = 256;

thread_local! {
    static LAST: [Cell<(u64, u32)>; CACHE] = const { [EMPTY; CACHE] };
}
#[allow(clippy::declare_interior_mutable_const)] // only to build LAST
const EMPTY: Cell<(u64, u32)> = Cell::new((0, 0));

/// Captures the current stack and returns its site id (0: unknown).
/// Hook-safe: no allocation through the global allocator, no lock, no panic.
#[inline(always)]
pub(crate) fn current() -> u32 {
    backtrace::capture_site(DEPTH.load(Relaxed).min(MAX_FRAMES), lookup)
}

/// The site id of `frames`: the thread's cache, then the table. (The stack of
/// the thread's previous lookup never gets here from [`current`]: the walk
/// recognises it and hands back its site.)
/// Hook-safe: no allocation through the global allocator, no lock, no panic.
#[inline(never)]
pub(crate) fn lookup(frames: &[usize]) -> u32 {
    let h = hash(frames);
    let slot = h as usize % CACHE;
    let (cached_hash, cached_id) = LAST.try_with(|c| c[slot].get()).unwrap_or((0, 0));
    if cached_hash == h && matches(cached_id, h, frames) {
        return cached_id;
    }
    let id = intern(h, frames);
    if id != 0 {
        let _ = LAST.try_with(|c| c[slot].set((h, id)));
    }
    id
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap
    use super::*;

    #[test]
    fn the_same_frames_get_the_same_id_and_others_a_new_one() {
        let a = lookup(&[0x1000, 0x2000, 0x3000]);
        let b = lookup(&[0x1000, 0x2000, 0x3000]);
        let c = lookup(&[0x1000, 0x2000, 0x3001]);
        let d = lookup(&[0x1000, 0x2000]);
        assert_ne!(a, 0);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(frames(a), &[0x1000, 0x2000, 0x3000]);
        assert_eq!(frames(d), &[0x1000, 0x2000]);
    }

    #[test]
    fn the_table_grows_past_its_first_index_without_losing_a_stack() {
        let ids: Vec<u32> = (0..20_000usize)
            .map(|i| lookup(&[0xdead_0000 + i, i]))
            .collect();
        assert!(ids.iter().all(|&id| id != 0));
        let again: Vec<u32> = (0..20_000usize)
            .map(|i| lookup(&[0xdead_0000 + i, i]))
            .collect();
        assert_eq!(ids, again);
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn threads_inserting_the_same_stacks_agree_on_their_frames() {
        let per_thread: Vec<Vec<u32>> = std::thread::scope(|t| {
            let joins: Vec<_> = (0..4)
                .map(|_| t.spawn(|| (0..2000usize).map(|i| lookup(&[0xbeef_0000 + i])).collect()))
                .collect();
            joins.into_iter().map(|j| j.join().unwrap()).collect()
        });
        for ids in &per_thread {
            for (i, &id) in ids.iter().enumerate() {
                assert_eq!(frames(id), &[0xbeef_0000 + i]);
            }
        }
    }

    #[test]
    fn the_last_stack_is_a_hit_only_when_every_frame_matches() {
        let base: Vec<usize> = (0..MAX_FRAMES).map(|i| 0x7a00_0000 + 16 * i).collect();
        let id = lookup(&base);
        assert_ne!(id, 0);
        for i in 0..MAX_FRAMES {
            // Right after `base`, so `base` is the memo each time.
            assert_eq!(lookup(&base), id);
            let mut other = base.clone();
            other[i] ^= 8;
            let other_id = lookup(&other);
            assert_ne!(other_id, id, "frame {i} differs");
            assert_eq!(frames(other_id), &other[..]);
            assert_eq!(lookup(&base), id);
            let prefix_id = lookup(&base[..i]);
            assert_ne!(prefix_id, id, "{i} frames of {MAX_FRAMES}");
            assert_eq!(frames(prefix_id), &base[..i]);
        }
    }

    #[test]
    fn a_hash_collision_in_the_cache_is_not_taken_for_a_hit() {
        let a = lookup(&[0xaaaa]);
        // Poison the cache slot of `b`'s hash with `a`'s id.
        let hb = hash(&[0xbbbb]);
        LAST.with(|c| c[hb as usize % CACHE].set((hb, a)));
        let b = lookup(&[0xbbbb]);
        assert_ne!(a, b);
        assert_eq!(frames(b), &[0xbbbb]);
    }
}
