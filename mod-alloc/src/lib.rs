//! Allocation profiling and allocation *assertions* for Rust.
//!
//! Install [`ModAlloc`] as the global allocator, then measure what a piece of
//! code allocates, exactly, on its own thread, even while other threads (other
//! tests) allocate at the same time:
//!
// The example needs the default `std` feature (scopes); without it, it is
// left out, so that `cargo test --no-default-features` runs.
#![cfg_attr(
    feature = "std",
    doc = r#"
```
use mod_alloc::{ModAlloc, Profiler};

#[global_allocator]
static GLOBAL: ModAlloc = ModAlloc::new();

let p = Profiler::start();
let v: Vec<u64> = (0..1000).collect();
drop(v);
let stats = p.stop();
assert_eq!(stats.alloc_count, 1);
assert_eq!(stats.total_bytes, 8000);
assert_eq!(stats.peak_bytes, 8000);
assert_eq!(stats.current_bytes, 0);
```
"#
)]
//!
//! # Scopes and process-wide figures
//!
//! - A **scope** ([`Profiler::start`] / [`Profiler::stop`]) counts the blocks
//!   allocated on the current thread while it is open, and those of threads
//!   that joined it through a [`ScopeHandle`]. Its figures are exact, whatever
//!   other threads do. See [`Profiler`] for the rules.
//! - The **process** figures ([`ModAlloc::snapshot`], [`ModAlloc::reset`]) sum
//!   every thread's counters.
//!
//! Both follow DHAT's counting rules (see [`AllocStats`]).
//!
//! # Process-wide figures
//!
//! Each thread counts its own events in its own slot (no atomics shared
//! between threads on the common path). `snapshot` sums the slots; threads
//! that exited are folded into a retired total. The process *peak* needs the
//! sum of all threads' live bytes at one instant, which no thread can see
//! cheaply: each thread publishes its live bytes to a shared total whenever
//! they drift by 64 KiB from what it last published (sooner downwards), and
//! records a peak candidate (the others' published bytes plus its own exact
//! ones) whenever its own live bytes reach a new high. So the process peak is
//! exact while one thread allocates at a time, and otherwise within
//! `(threads - 1) × 64 KiB`.
//!
//! # Cost
//!
//! Every block carries a 16-byte header (32 bytes with `backtraces`, or the
//! alignment when larger). The common path of an allocation or a free is one
//! thread-local access and a few plain adds.
//!
//! # Testing allocations
//!
//! `#[alloc_test(max_allocs = 10, max_peak = "4KB")]` turns a function into a
//! test that fails when its body allocates more than that, and
//! `assert_allocs!(max_allocs = 0, { body })` does the same for any block
//! (feature `macros`, default). A failure panics with a report: budgets
//! against measured figures, the top call sites (feature `backtraces`) and
//! the path of the scope's DHAT profile (feature `dhat-compat`).
//!
//! # Environment
//!
//! Read when a report is built, never in the allocator:
//!
//! - `MOD_ALLOC_DIR`: where failing tests write their DHAT profiles (default
//!   `<target dir>/mod-alloc/`);
//! - `CARGO_TARGET_DIR`: the target dir; else the nearest ancestor of the
//!   running binary that holds `CACHEDIR.TAG`.
//!
//! # Features
//!
//! - `std` (default): per-thread scopes, [`Profiler`]. Without it the crate is
//!   `#![no_std]`: [`ModAlloc::with_allocator`] over your allocator, with
//!   process-wide [`snapshot`](ModAlloc::snapshot) and
//!   [`reset`](ModAlloc::reset) kept in atomics (no thread-local storage).
//! - `counters` (default): the counters (always on; kept for build matrices).
//! - `macros` (default): `#[alloc_test]` and `assert_allocs!`.
//! - `backtraces` (alias `symbolicate`): call sites.
//! - `dhat-compat`: DHAT JSON output and the [`dhat_compat`] drop-in for
//!   dhat-rs users (`use mod_alloc::dhat_compat as dhat;`).
#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Unit tests may use `std` whatever the features.
#[cfg(all(test, not(feature = "std")))]
extern crate std;

mod alloc;
#[cfg(feature = "backtraces")]
mod backtrace;
#[cfg(feature = "backtraces")]
mod callsites;
#[cfg(feature = "backtraces")]
mod clock;
#[cfg(feature = "dhat-compat")]
mod dhat;
#[cfg(feature = "dhat-compat")]
pub mod dhat_compat;
#[cfg(feature = "dhat-compat")]
mod folded;
mod global;
mod header;
#[cfg(feature = "std")]
mod hint;
#[cfg(feature = "backtraces")]
mod ledger;
#[cfg(feature = "dhat-compat")]
mod profile;
#[cfg(feature = "std")]
mod scope;
#[cfg(feature = "backtraces")]
mod sites;
mod stats;
#[cfg(feature = "backtraces")]
mod symbolize;
#[cfg(feature = "std")]
mod thread;

pub use crate::alloc::ModAlloc;
#[cfg(feature = "backtraces")]
pub use crate::callsites::{CallSite, RawCallSite, SortBy};
#[cfg(feature = "dhat-compat")]
pub use crate::folded::Weight as FoldedWeight;
#[cfg(feature = "backtraces")]
pub use crate::scope::ScopeProfile;
#[cfg(feature = "std")]
pub use crate::scope::{EnterGuard, Profiler, ScopeHandle};
pub use crate::stats::AllocStats;
#[cfg(feature = "std")]
pub use crate::thread::is_installed;

/// Test hook: on the calling thread, makes every allocation of the call-site
/// machinery's own memory (site table, per-site ledgers) fail, as when memory
/// is exhausted, so tests can check that counting goes on (new stacks become
/// "unknown site"). Other threads are not affected.
#[cfg(feature = "backtraces")]
#[doc(hidden)]
pub fn __fail_own_memory(fail: bool) {
    sites::set_own_memory_fails(fail);
}

// ---- Test harness: #[alloc_test] and assert_allocs! (issue 4) ----
#[cfg(feature = "macros")]
pub use mod_alloc_macros::{alloc_test, assert_allocs};
#[cfg(feature = "macros")]
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
#[cfg(feature = "macros")]
// Without `dhat-compat` there is no artefact to write, only its naming rules.
#[cfg_attr(not(feature = "dhat-compat"), allow(dead_code))]
mod artefact;
#[cfg(feature = "macros")]
mod budget;
#[cfg(feature = "macros")]
mod report;
