//! Call-stack depth sweep: the pairs of [`super::pairs`], made after `d`
//! frames of real (non-inlined) recursion, for d = 4, 16 and 32.
//!
//! The recursion happens once per workload and all batches (both sides) run
//! at its bottom, so the figure is the allocator's cost at that depth (a
//! frame-pointer walk gets longer) and not the recursion's. The walk also
//! sees the frames below the recursion: `main`, the harness, std's runtime,
//! about 10 more.

use super::pairs::pairs;
use super::{Direct, Global};
use crate::measure::{self, Budget};
use crate::protocol::Record;
use std::hint::black_box;

/// Calls `f` under `depth` extra frames.
#[inline(never)]
pub fn at_depth<R>(depth: usize, f: &mut dyn FnMut() -> R) -> R {
    if depth == 0 {
        return f();
    }
    let r = at_depth(black_box(depth - 1), f);
    // Keeps this frame from becoming a tail call.
    black_box(depth);
    r
}

/// Pairs at `depth` against `System` pairs at the same depth.
pub fn run(budget: Budget, depth: usize) -> Vec<Record> {
    let name = format!("depth-{depth}");
    at_depth(depth, &mut || {
        measure::paired(budget, 1, &mut |n| pairs(Global, n), &mut |n| {
            pairs(Direct, n)
        })
    })
    .iter()
    .map(|p| p.record(&name))
    .collect()
}
