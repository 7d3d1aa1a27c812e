//! Many live blocks freed in random order: 10,000 blocks of 16 to 256 bytes
//! are allocated, then freed in a fixed shuffled order. Fragments the heap
//! and defeats LIFO reuse, unlike the pairs.

use super::{Direct, Global, Heap, Rng};
use crate::measure::{self, Budget};
use crate::protocol::Record;
use std::alloc::Layout;

/// Blocks alive at once.
pub const BLOCKS: usize = 10_000;

/// The sizes and the free order, the same in every binary.
#[derive(Debug)]
pub struct Plan {
    sizes: Vec<usize>,
    order: Vec<usize>,
    ptrs: Vec<*mut u8>,
}

impl Plan {
    /// The fixed plan (seeded generator).
    pub fn new() -> Plan {
        let mut rng = Rng::new(0x5eed);
        let sizes = (0..BLOCKS).map(|_| 16 + rng.below(241) as usize).collect();
        let mut order: Vec<usize> = (0..BLOCKS).collect();
        for i in (1..BLOCKS).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        Plan {
            sizes,
            order,
            ptrs: vec![std::ptr::null_mut(); BLOCKS],
        }
    }

    /// `n` times: allocate every block, then free them in the plan's order.
    #[inline(never)]
    pub fn run<H: Heap>(&mut self, h: H, n: u64) {
        for _ in 0..n {
            for (slot, &size) in self.ptrs.iter_mut().zip(&self.sizes) {
                let layout = layout(size);
                // SAFETY: non-zero size.
                *slot = unsafe { h.alloc(layout) };
            }
            for &i in &self.order {
                let p = self.ptrs[i];
                if !p.is_null() {
                    // SAFETY: `p` came from `h.alloc(layout(sizes[i]))` above
                    // and is freed once (each index appears once in `order`).
                    unsafe { h.dealloc(p, layout(self.sizes[i])) };
                }
            }
        }
    }
}

impl Default for Plan {
    fn default() -> Self {
        Plan::new()
    }
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap_or(Layout::new::<u64>())
}

/// The plan against the same plan on `System`; per block (alloc + free).
pub fn run(budget: Budget) -> Vec<Record> {
    let mut plan = Plan::new();
    let plan = std::cell::RefCell::new(&mut plan);
    measure::paired(
        budget,
        BLOCKS as u64,
        &mut |n| plan.borrow_mut().run(Global, n),
        &mut |n| plan.borrow_mut().run(Direct, n),
    )
    .iter()
    .map(|p| p.record("live-random-free"))
    .collect()
}
