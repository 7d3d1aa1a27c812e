//! Vec-style growth through `realloc`: a buffer starting at 8 bytes doubles
//! up to 64 KiB (13 reallocs), one byte written at each size, then is freed.
//! What `Vec::push` does to its buffer, with the allocator calls spelled out
//! so the reference can make them on `System`.

use super::{Direct, Global, Heap};
use crate::measure::{self, Budget};
use crate::protocol::Record;
use std::hint::black_box;

const ALIGN: usize = 8;
const FIRST: usize = 8;
const LAST: usize = 64 * 1024;

/// `n` growths; each is 1 alloc, 13 reallocs and 1 free.
#[inline(never)]
pub fn grow<H: Heap>(h: H, n: u64) {
    for _ in 0..n {
        let mut layout = match std::alloc::Layout::from_size_align(FIRST, ALIGN) {
            Ok(l) => l,
            Err(_) => return,
        };
        // SAFETY: non-zero size.
        let mut p = unsafe { h.alloc(layout) };
        while !p.is_null() && layout.size() < LAST {
            let new_size = layout.size() * 2;
            // SAFETY: `p` is live with `layout`; `new_size` is non-zero and
            // does not overflow `isize` once rounded to the alignment.
            p = unsafe { h.realloc(p, layout, new_size) };
            if p.is_null() {
                return;
            }
            layout = match std::alloc::Layout::from_size_align(new_size, ALIGN) {
                Ok(l) => l,
                Err(_) => return,
            };
            // SAFETY: `p` is live and `new_size` bytes long, so the offset
            // `new_size - 1` stays inside the block.
            let last = unsafe { p.add(new_size - 1) };
            // SAFETY: `last` is inside the live block (above); a byte needs no
            // alignment.
            unsafe { last.write(1) };
            black_box(p);
        }
        if !p.is_null() {
            // SAFETY: `p` is live with `layout`.
            unsafe { h.dealloc(p, layout) };
        }
    }
}

/// Growths against the same growths on `System`; per growth.
pub fn run(budget: Budget) -> Vec<Record> {
    measure::paired(budget, 1, &mut |n| grow(Global, n), &mut |n| {
        grow(Direct, n)
    })
    .iter()
    .map(|p| p.record("vec-growth"))
    .collect()
}
