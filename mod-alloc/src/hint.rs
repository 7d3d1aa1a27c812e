//! Block-layout hints for the hook's fast paths. Stable Rust has no
//! `likely`/`unlikely`; a call to a `#[cold]` function is what tells LLVM a
//! path is rare, and it lays rare blocks out of the straight line.
//!
//! Why it matters: without a hint LLVM guesses that `x != 0` is usually true,
//! so a test like "is a scope open?" put the scope's few adds in the straight
//! line and made the common case (no scope) jump over them. One taken branch
//! in each of `alloc` and `dealloc` cost about 5% of a `System` pair (counters
//! pair: 1.17× `System` with them, 1.12× without, interleaved runs).

/// Marks the path that calls it as rarely taken. Compiles to nothing.
#[inline]
#[cold]
pub(crate) fn cold_path() {}

/// `b`, with the hint that it is rarely true: the block under
/// `if unlikely(b)` is laid out of line, and the common case falls through.
#[inline(always)]
pub(crate) fn unlikely(b: bool) -> bool {
    if b {
        cold_path();
    }
    b
}
