//! [`AllocStats`]: the figures of one accounting window (a scope or the process).
//!
//! Counting rules, the same as DHAT's: `alloc` and `alloc_zeroed` are one
//! allocation of `layout.size()` bytes; a `realloc` is one allocation of the new
//! size plus one free of the old block, and live bytes move straight from the old
//! size to the new one; header bytes are never counted; a failed (null) call
//! counts nothing.

/// Allocation figures of one window: a [`Profiler`](crate::Profiler) scope, or
/// the whole process ([`ModAlloc::snapshot`](crate::ModAlloc::snapshot)).
///
/// For a scope, every figure is about the blocks allocated *in* the scope (and in
/// the scopes nested in it, and by threads that joined it): blocks allocated
/// before the scope and freed inside it leave it alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AllocStats {
    /// Number of allocations (`alloc`, `alloc_zeroed`, and each `realloc`).
    pub alloc_count: u64,
    /// Sum of the sizes of those allocations, in bytes.
    pub total_bytes: u64,
    /// Highest number of live bytes at any moment of the window.
    pub peak_bytes: u64,
    /// Bytes still live at the end of the window (for a test: what it leaked).
    pub current_bytes: u64,
    /// Number of blocks still live at the end of the window.
    pub current_blocks: u64,
    /// Number of frees of the window's blocks (each `realloc` frees one block).
    pub free_count: u64,
}

impl AllocStats {
    /// The window's figures minus an earlier reading of the same window, for
    /// the cumulative fields (`alloc_count`, `total_bytes`, `free_count`);
    /// `peak_bytes`, `current_bytes` and `current_blocks` are kept from `self`.
    #[must_use]
    pub fn since(&self, earlier: &AllocStats) -> AllocStats {
        AllocStats {
            alloc_count: self.alloc_count.saturating_sub(earlier.alloc_count),
            total_bytes: self.total_bytes.saturating_sub(earlier.total_bytes),
            free_count: self.free_count.saturating_sub(earlier.free_count),
            ..*self
        }
    }
}

/// `1234567` → `"1,234,567"`, as reports print numbers.
#[cfg(feature = "std")]
pub(crate) fn group_thousands(value: u64) -> std::string::String {
    let digits = value.to_string();
    let mut out = std::string::String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The unit after an allocation count in a table: `"alloc "` for one (padded,
/// so the columns after it stay aligned), `"allocs"` otherwise.
#[cfg(feature = "std")]
pub(crate) fn allocs_unit(count: u64) -> &'static str {
    if count == 1 {
        "alloc "
    } else {
        "allocs"
    }
}
