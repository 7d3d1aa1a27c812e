//! Per-block header: written at allocation, read back at free.
//!
//! ```text
//! [ padding | Header (16 B, 32 B with `backtraces`) | user bytes ... ]
//! ^ block from the inner allocator               ^ pointer we return
//! ```
//!
//! Invariants:
//! - the offset from the inner block to the user pointer depends only on the
//!   user's `Layout` (so `dealloc` and `realloc` find the block again), and is a
//!   multiple of the user's alignment;
//! - the header sits right before the user pointer, at the start of the block
//!   when `align <= HEADER_SIZE`, so `realloc` carries it along;
//! - header bytes are never counted;
//! - every block handed out carries a header, including blocks allocated on the
//!   reentrant path (marked [`UNTRACKED`]), so a free never reads garbage.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use core::alloc::Layout;

/// Flag in [`Header::flags`]: the block was allocated while tracking was off on
/// its thread (reentrant call, report building, thread teardown). Its
/// allocation was not counted, so its free is not counted either.
pub(crate) const UNTRACKED: u32 = 1 << 31;

/// What a block remembers about its allocation.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// Serial of the scope the block belongs to (0: no scope).
    pub(crate) serial: u64,
    /// Registry id of the thread that owns that scope (0: no scope).
    pub(crate) owner: u32,
    /// Process accounting window (see `ModAlloc::reset`) in the low 16 bits
    /// and flags ([`UNTRACKED`]) in the high bits.
    pub(crate) flags: u32,
    /// Call-site id (0: unknown).
    #[cfg(feature = "backtraces")]
    pub(crate) site: u32,
    #[cfg(feature = "backtraces")]
    pub(crate) _reserved: u32,
    /// Allocation time, in ticks of the profile clock.
    #[cfg(feature = "backtraces")]
    pub(crate) birth: u64,
}

/// Size of [`Header`]: 16 bytes, 32 with `backtraces`.
pub(crate) const HEADER_SIZE: usize = core::mem::size_of::<Header>();
/// The least alignment asked of the inner allocator. 16 rather than the
/// header's 8: it is what `malloc` gives anyway, and with one alignment for
/// every common layout the fast path needs no layout arithmetic (and
/// `System` can see at compile time that `malloc` will do).
const MIN_OUTER_ALIGN: usize = 16;
/// Layouts with at most this alignment (and at most [`FAST_MAX`] bytes) take
/// the fast path: header at the block's start, outer alignment
/// [`MIN_OUTER_ALIGN`].
const FAST_ALIGN: usize = 16;
/// Largest user size on the fast path: far below the point where adding the
/// header could overflow a `Layout`, and small enough to be an instruction's
/// immediate operand, so that the size test is one compare (larger blocks are
/// rare, and their cost is the inner allocator's).
const FAST_MAX: usize = i32::MAX as usize;
/// The header as stored: whole 64-bit words.
const WORDS: usize = HEADER_SIZE / 8;

impl Header {
    /// A header for a block that was not counted.
    /// Hook-safe: no allocation, no lock, no panic.
    #[inline]
    pub(crate) const fn untracked() -> Header {
        Header {
            serial: 0,
            owner: 0,
            flags: UNTRACKED,
            #[cfg(feature = "backtraces")]
            site: 0,
            #[cfg(feature = "backtraces")]
            _reserved: 0,
            #[cfg(feature = "backtraces")]
            birth: 0,
        }
    }

    /// Whether the block's allocation was counted.
    #[inline]
    pub(crate) const fn is_tracked(&self) -> bool {
        self.flags & UNTRACKED == 0
    }

    /// The second header word: `owner | flags << 32`.
    #[inline(always)]
    pub(crate) const fn tag(&self) -> u64 {
        self.owner as u64 | (self.flags as u64) << 32
    }

    /// The process accounting window the block was allocated in.
    #[inline]
    pub(crate) const fn epoch(&self) -> u16 {
        self.flags as u16
    }

    /// The epoch of a header whose [`tag`](Header::tag) is `tag`.
    #[cfg(feature = "backtraces")]
    #[inline(always)]
    pub(crate) const fn epoch_of_tag(tag: u64) -> u16 {
        (tag >> 32) as u16
    }

    /// The owner of a header whose [`tag`](Header::tag) is `tag`.
    #[cfg(feature = "backtraces")]
    #[inline(always)]
    pub(crate) const fn owner_of_tag(tag: u64) -> u32 {
        tag as u32
    }
}

/// Distance from the inner block's start to the user pointer for `layout`.
/// Hook-safe: no allocation, no lock, no panic.
#[inline]
pub(crate) const fn offset(layout: Layout) -> usize {
    if layout.align() > HEADER_SIZE {
        layout.align()
    } else {
        // HEADER_SIZE is a multiple of 8 and a power of two (16 or 32), so a
        // user alignment <= HEADER_SIZE divides it.
        HEADER_SIZE
    }
}

/// The layout asked of the inner allocator for a user `layout`, or `None` when
/// adding the header overflows (the caller then returns null).
/// Hook-safe: no allocation, no lock, no panic.
#[inline]
pub(crate) fn outer_layout(layout: Layout) -> Option<Layout> {
    outer_layout_for_size(layout, layout.size())
}

/// As [`outer_layout`], for a user block of `size` bytes with `layout`'s alignment.
/// Hook-safe: no allocation, no lock, no panic.
#[inline]
pub(crate) fn outer_layout_for_size(layout: Layout, size: usize) -> Option<Layout> {
    let align = if layout.align() > MIN_OUTER_ALIGN {
        layout.align()
    } else {
        MIN_OUTER_ALIGN
    };
    let total = size.checked_add(offset(layout))?;
    // The one rule of `Layout` that can fail here: the size, rounded up to the
    // alignment, must not exceed `isize::MAX`.
    if total > isize::MAX as usize - (align - 1) {
        return None;
    }
    // SAFETY: `align` is a power of two (a `Layout`'s alignment, or
    // MIN_OUTER_ALIGN), and `total` rounded up to it fits in `isize` (checked).
    Some(unsafe { Layout::from_size_align_unchecked(total, align) })
}

/// Whether `layout` takes the fast path: small alignment, sane size. For such
/// a layout, [`offset`] is [`HEADER_SIZE`] and [`outer_layout`] is
/// [`fast_outer`] of its size.
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
pub(crate) const fn is_fast(layout: Layout) -> bool {
    layout.align() <= FAST_ALIGN && layout.size() <= FAST_MAX
}

/// Whether a fast layout grown (or shrunk) to `size` bytes is still fast.
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
pub(crate) const fn is_fast_size(size: usize) -> bool {
    size <= FAST_MAX
}

/// Whether a block of `layout` that we handed out can be freed on the fast
/// path: its alignment is small. Its size needs no check, since the block
/// exists: `(size + HEADER_SIZE, 16)` was a valid layout when it was made.
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
pub(crate) const fn is_fast_block(layout: Layout) -> bool {
    layout.align() <= FAST_ALIGN
}

/// [`outer_layout`] of a layout of `size` bytes aligned to at most
/// `FAST_ALIGN`, without any check: `(size + HEADER_SIZE, 16)`.
/// Hook-safe: no allocation, no lock, no panic.
///
/// # Safety
/// That layout is valid: either `size <= FAST_MAX` (true of any layout for
/// which [`is_fast`] holds), or a block of `size` bytes with such a layout
/// (one for which [`is_fast_block`] holds) was allocated through
/// [`outer_layout`], which checked it.
#[inline(always)]
pub(crate) const unsafe fn fast_outer(size: usize) -> Layout {
    // SAFETY: MIN_OUTER_ALIGN is a power of two, and `size + HEADER_SIZE`
    // rounded up to it is at most `isize::MAX`: `size <= FAST_MAX` gives at
    // most `i32::MAX + 48`, and a block allocated through
    // `outer_layout` had this very layout, checked then (caller contract).
    // This is what `outer_layout` computes for an alignment <= FAST_ALIGN.
    unsafe { Layout::from_size_align_unchecked(size + HEADER_SIZE, MIN_OUTER_ALIGN) }
}

/// Writes `header` into the block at `base` and returns the user pointer.
/// Hook-safe: no allocation, no lock, no panic.
///
/// # Safety
/// `base` must be non-null and the start of a live block of at least
/// `outer_layout(layout)` bytes, aligned to its alignment.
#[inline]
pub(crate) unsafe fn write(base: *mut u8, layout: Layout, header: Header) -> *mut u8 {
    let off = offset(layout);
    // SAFETY: `off <= outer size` (outer_layout added it), so `base + off` stays
    // in (or one past) the block the caller vouches for.
    let user = unsafe { base.add(off) };
    // SAFETY: `off >= HEADER_SIZE`, so the header lies inside the block, before
    // `user`; `user` is aligned to `max(align, HEADER_SIZE)` or to `align >= 32`,
    // both multiples of the header's alignment (8), and so is `user - HEADER_SIZE`.
    let words = unsafe { user.sub(HEADER_SIZE) }.cast::<[u64; WORDS]>();
    // SAFETY: `words` is aligned, inside the block, and nothing else refers to
    // those bytes while we write them.
    let words = unsafe { &mut *words };
    // Store (and load, in `read`) whole words, one per word: a free that comes
    // right after the allocation then reads each word from one store (store
    // forwarding); a struct copy would read 16 bytes over three smaller
    // stores and stall (measured: 2.5x `System` per pair, against 1.5x).
    store(words, header);
    user
}

/// [`write`] for a layout that [`is_fast`]: the header at the block's start.
/// Hook-safe: no allocation, no lock, no panic.
///
/// # Safety
/// As for [`write`], with a fast layout (so `outer` is [`fast_outer`]).
#[inline(always)]
pub(crate) unsafe fn write_fast(base: *mut u8, header: Header) -> *mut u8 {
    // For a fast layout `offset` is HEADER_SIZE (its alignment is at most
    // 16 <= HEADER_SIZE): the header is the block's first words. Written
    // through `base`, then the user pointer: one add, no copy of `base`.
    // SAFETY: `base` starts a live block of at least HEADER_SIZE bytes aligned
    // to 16 (caller contract), and nothing else refers to those bytes.
    let words = unsafe { &mut *base.cast::<[u64; WORDS]>() };
    store(words, header);
    // SAFETY: HEADER_SIZE bytes into (or one past) the block.
    unsafe { base.add(HEADER_SIZE) }
}

/// Stores `header` as whole words (see [`write`]).
#[inline(always)]
fn store(words: &mut [u64; WORDS], header: Header) {
    words[0] = header.serial;
    words[1] = header.tag();
    #[cfg(feature = "backtraces")]
    {
        words[2] = u64::from(header.site);
        words[3] = header.birth;
    }
}

/// A fast layout: [`offset`] depends only on the alignment, so any fast
/// layout stands for all of them in [`write`] and [`base`].
const FAST_LAYOUT: Layout = Layout::new::<u8>();

/// [`base`] for a layout that [`is_fast`].
/// Hook-safe: no allocation, no lock, no panic.
///
/// # Safety
/// As for [`base`], with a fast layout.
#[inline(always)]
pub(crate) unsafe fn base_fast(user: *mut u8) -> *mut u8 {
    // SAFETY: as in `write_fast`: the same offset as the real layout's.
    unsafe { base(user, FAST_LAYOUT) }
}

/// Reads the header of the block whose user pointer is `user`.
/// Hook-safe: no allocation, no lock, no panic.
///
/// # Safety
/// `user` must have been returned by [`write`] for a block that is still live
/// (not yet given back to the inner allocator).
#[inline]
pub(crate) unsafe fn read(user: *mut u8) -> Header {
    // SAFETY: `write` put an aligned, initialised Header right before `user`,
    // inside the same live block (caller contract).
    let words = unsafe { user.sub(HEADER_SIZE) }.cast::<[u64; WORDS]>();
    // SAFETY: as above: aligned, initialised, inside the live block.
    let words = unsafe { &*words };
    let tag = words[1];
    Header {
        serial: words[0],
        owner: tag as u32,
        flags: (tag >> 32) as u32,
        #[cfg(feature = "backtraces")]
        site: words[2] as u32,
        #[cfg(feature = "backtraces")]
        _reserved: 0,
        #[cfg(feature = "backtraces")]
        birth: words[3],
    }
}

/// The inner block's start for a user pointer of `layout`.
/// Hook-safe: no allocation, no lock, no panic.
///
/// # Safety
/// `user` must have been returned by [`write`] with the same `layout`.
#[inline]
pub(crate) unsafe fn base(user: *mut u8, layout: Layout) -> *mut u8 {
    // SAFETY: `write` returned `base + offset(layout)` (caller contract).
    unsafe { user.sub(offset(layout)) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap
    use super::*;

    #[test]
    fn offset_keeps_user_alignment_for_every_power_of_two() {
        let mut align = 1;
        while align <= 1 << 16 {
            let layout = Layout::from_size_align(24, align).unwrap();
            let outer = outer_layout(layout).unwrap();
            assert_eq!(offset(layout) % align, 0, "align {align}");
            assert!(offset(layout) >= HEADER_SIZE);
            assert_eq!(outer.align() % align, 0);
            assert_eq!(outer.size(), 24 + offset(layout));
            align *= 2;
        }
    }

    #[test]
    fn the_fast_path_lays_blocks_out_as_the_general_one() {
        for align in [1, 2, 4, 8, 16] {
            for size in [0, 1, 7, 16, 24, 4096, FAST_MAX] {
                let layout = Layout::from_size_align(size, align).unwrap();
                assert!(is_fast(layout), "{size} {align}");
                // SAFETY: `size <= FAST_MAX`.
                let fast = unsafe { fast_outer(size) };
                assert_eq!(Some(fast), outer_layout(layout), "{size} {align}");
                assert_eq!(offset(layout), offset(FAST_LAYOUT));
            }
        }
        for (size, align) in [(8, 32), (8, 4096), (FAST_MAX + 1, 1)] {
            assert!(!is_fast(Layout::from_size_align(size, align).unwrap()));
        }
        // Blocks too large for the fast path still free through it.
        let big = Layout::from_size_align(FAST_MAX + 1, 16).unwrap();
        assert!(is_fast_block(big));
        // SAFETY: only computes the layout; `outer_layout(big)` is valid.
        assert_eq!(Some(unsafe { fast_outer(big.size()) }), outer_layout(big));
        assert!(!is_fast_block(Layout::from_size_align(8, 32).unwrap()));
    }

    #[test]
    fn header_that_overflows_the_size_gives_none() {
        let layout = Layout::from_size_align(isize::MAX as usize - 4, 1).unwrap();
        assert!(outer_layout(layout).is_none());
        let layout = Layout::from_size_align(8, 8).unwrap();
        assert!(outer_layout_for_size(layout, usize::MAX).is_none());
    }

    #[test]
    fn header_is_sixteen_bytes_without_backtraces() {
        #[cfg(not(feature = "backtraces"))]
        assert_eq!(HEADER_SIZE, 16);
        #[cfg(feature = "backtraces")]
        assert_eq!(HEADER_SIZE, 32);
        assert!(HEADER_SIZE.is_power_of_two());
    }

    #[test]
    fn a_header_written_into_a_block_reads_back_for_every_alignment() {
        use std::alloc::{GlobalAlloc, System};
        let mut align = 1;
        while align <= 4096 {
            let layout = Layout::from_size_align(3, align).unwrap();
            let outer = outer_layout(layout).unwrap();
            let h = Header {
                serial: 0x0123_4567_89AB_CDEF,
                owner: 77,
                flags: 0xBEEF,
                ..Header::untracked()
            };
            // SAFETY: `outer` has a non-zero size.
            let block = unsafe { System.alloc(outer) };
            assert!(!block.is_null());
            // SAFETY: `block` is a live block of `outer`, from `outer_layout(layout)`.
            let user = unsafe { write(block, layout, h) };
            assert_eq!(user as usize % align, 0, "align {align}");
            // SAFETY: three user bytes follow the header inside the block.
            unsafe { user.write_bytes(0xAA, 3) };
            // SAFETY: `user` came from `write` and the block is live.
            assert_eq!(unsafe { read(user) }, h);
            // SAFETY: `user` came from `write` with `layout`.
            let back = unsafe { base(user, layout) };
            assert_eq!(back, block);
            // SAFETY: `block` was allocated by `System` with `outer`.
            unsafe { System.dealloc(block, outer) };
            align *= 2;
        }
    }

    #[test]
    fn epoch_and_flags_share_a_word() {
        let h = Header {
            flags: 0xBEEF | UNTRACKED,
            ..Header::untracked()
        };
        assert_eq!(h.epoch(), 0xBEEF);
        assert!(!h.is_tracked());
    }
}
