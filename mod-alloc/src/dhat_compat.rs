//! A drop-in for [dhat-rs] 0.3: `use mod_alloc::dhat_compat as dhat;` is the
//! only line a program written for `dhat` changes.
//!
//! [dhat-rs]: https://docs.rs/dhat/0.3
//!
//! ```no_run
//! use mod_alloc::dhat_compat as dhat;
//!
//! #[global_allocator]
//! static ALLOC: dhat::Alloc = dhat::Alloc;
//!
//! fn main() {
//!     let _profiler = dhat::Profiler::new_heap();
//!     let v: Vec<u32> = (0..100).collect();
//!     drop(v);
//!     // On drop: prints `dhat: Total: ...` and writes `dhat-heap.json`.
//! }
//! ```
//!
//! # State
//!
//! One profiler per process, as in dhat-rs. The state lives in one `Mutex`
//! that the allocator hook never touches ([`Alloc`] forwards to a
//! [`ModAlloc`], whose counters are per thread):
//!
//! ```text
//!   Ready --build()--> Running --drop--> Ready
//!                         |                ^
//!            failed dhat::assert*          | drop
//!                         v                |
//!                     PostAssert ----------+
//! ```
//!
//! Invariants: no panic is raised while the lock is held (so it is never
//! poisoned by our own panics, and a caught panic does not break later
//! calls); assertion conditions are evaluated without the lock (so a
//! condition may call [`HeapStats::get`]); everything this module allocates
//! is untracked, so it never shows up in the figures it reports.
//!
//! # Heap mode
//!
//! Building a heap profiler starts a new process window
//! ([`ModAlloc::reset`]): the whole process is counted from then on, every
//! thread, as dhat-rs does. Blocks allocated before and freed within are
//! ignored; reallocated within, they count as new blocks (dhat-rs's rules).
//! [`HeapStats`] maps [`ModAlloc::snapshot`]; `max_blocks` (blocks live at
//! the global peak) is the sum of the per-site blocks live at the peak, exact
//! while one thread allocates at a time (see [`ModAlloc`]'s call-site docs).
//!
//! # Ad-hoc mode
//!
//! [`ad_hoc_event`] captures the caller's stack (frame pointers, as the
//! allocator does) and adds the event to a per-site map under the lock; the
//! allocator hook is not involved.
//!
//! # Differences from dhat-rs
//!
//! Listed in `MIGRATING_FROM_DHAT.md`: stacks come from frame pointers (build
//! with `-C force-frame-pointers=yes` for full stacks), and `trim_backtraces`
//! sets the capture depth, at most 32 frames (`None` means 32).

use crate::profile::AdHocFig;
use crate::ModAlloc;
use core::alloc::{GlobalAlloc, Layout};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// What [`Alloc`] forwards to: every `ModAlloc` shares one set of counters.
static INNER: ModAlloc = ModAlloc::new();

/// The profiler's state (module docs, "State").
static STATE: Mutex<Phase> = Mutex::new(Phase::Ready);

enum Phase {
    Ready,
    Running(Box<Run>),
    PostAssert,
}

/// A running profiler's settings and (ad-hoc mode) its events.
struct Run {
    file_name: PathBuf,
    testing: bool,
    eprint_json: bool,
    /// Profile clock at `build` (ad-hoc mode; heap mode uses the window's).
    start: u64,
    /// `None` in heap mode.
    ad_hoc: Option<AdHoc>,
}

#[derive(Default)]
struct AdHoc {
    total: AdHocFig,
    sites: HashMap<u32, AdHocFig>,
}

fn state() -> MutexGuard<'static, Phase> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A global allocator that counts allocations for the [`Profiler`]: install
/// it with `#[global_allocator] static ALLOC: dhat::Alloc = dhat::Alloc;`.
///
/// It forwards to a [`ModAlloc`] over the system allocator, so the rest of
/// mod-alloc ([`Profiler`](crate::Profiler) scopes, [`ModAlloc::snapshot`],
/// `#[alloc_test]`) works in the same program.
#[derive(Debug)]
pub struct Alloc;

// SAFETY: every method forwards unchanged to `INNER`, a `ModAlloc` (a sound
// `GlobalAlloc`); blocks are always given back to the same `INNER` that made
// them, since `Alloc` holds no state of its own.
unsafe impl GlobalAlloc for Alloc {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract of `GlobalAlloc::alloc`, passed on.
        unsafe { INNER.alloc(layout) }
    }

    #[inline(always)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract of `GlobalAlloc::alloc_zeroed`, passed on.
        unsafe { INNER.alloc_zeroed(layout) }
    }

    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `INNER` through this type (see the impl's
        // SAFETY comment); the caller's contract of `dealloc`, passed on.
        unsafe { INNER.dealloc(ptr, layout) }
    }

    #[inline(always)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; the caller's contract of `realloc`, passed on.
        unsafe { INNER.realloc(ptr, layout, new_size) }
    }
}

/// Profiling runs while a `Profiler` lives: on drop it prints a summary to
/// stderr and (outside testing mode) writes the profile, `dhat-heap.json` or
/// `dhat-ad-hoc.json` in the current directory unless
/// [`ProfilerBuilder::file_name`] says otherwise.
///
/// Only one `Profiler` can run at a time.
#[derive(Debug)]
pub struct Profiler {
    _private: (),
}

impl Profiler {
    /// Starts heap profiling.
    ///
    /// # Panics
    /// If another `Profiler` is running.
    pub fn new_heap() -> Profiler {
        Profiler::builder().build()
    }

    /// Starts ad-hoc profiling.
    ///
    /// # Panics
    /// If another `Profiler` is running.
    pub fn new_ad_hoc() -> Profiler {
        Profiler::builder().ad_hoc().build()
    }

    /// A builder, set to heap profiling, not testing, the default file name
    /// and `trim_backtraces(Some(10))`.
    pub fn builder() -> ProfilerBuilder {
        ProfilerBuilder {
            ad_hoc: false,
            testing: false,
            file_name: None,
            trim_backtraces: Some(10),
            eprint_json: false,
        }
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        let previous = std::mem::replace(&mut *state(), Phase::Ready);
        if let Phase::Running(run) = previous {
            if !run.testing {
                crate::thread::untracked(|| finish(&run));
            }
        }
    }
}

/// Settings for a [`Profiler`], from [`Profiler::builder`].
#[derive(Debug)]
pub struct ProfilerBuilder {
    ad_hoc: bool,
    testing: bool,
    file_name: Option<PathBuf>,
    trim_backtraces: Option<usize>,
    eprint_json: bool,
}

impl ProfilerBuilder {
    /// Ad-hoc profiling ([`ad_hoc_event`]) instead of heap profiling.
    pub fn ad_hoc(mut self) -> Self {
        self.ad_hoc = true;
        self
    }

    /// Testing mode: allows [`dhat::assert!`](crate::dhat_compat::assert) and
    /// its siblings, and writes the profile only when one of them fails
    /// (not on drop).
    pub fn testing(mut self) -> Self {
        self.testing = true;
        self
    }

    /// Where the profile is written (relative paths: to the current directory).
    pub fn file_name<P: AsRef<Path>>(mut self, file_name: P) -> Self {
        self.file_name = Some(file_name.as_ref().to_path_buf());
        self
    }

    /// How many frames each stack keeps, counted from the allocator (or from
    /// [`ad_hoc_event`]): `Some(n)` keeps `n` (4 at least, 32 at most),
    /// `None` keeps the most mod-alloc captures, 32. The default is `Some(10)`.
    /// Inlined frames do not count. This sets the capture depth of the whole
    /// process ([`ModAlloc::set_backtrace_depth`]).
    pub fn trim_backtraces(mut self, max_frames: Option<usize>) -> Self {
        self.trim_backtraces = max_frames.map(|n| n.max(4));
        self
    }

    #[doc(hidden)]
    /// Also prints the JSON to stderr when it is saved (dhat-rs's test aid).
    pub fn eprint_json(mut self) -> Self {
        self.eprint_json = true;
        self
    }

    /// Starts profiling.
    ///
    /// # Panics
    /// If another [`Profiler`] is running.
    pub fn build(self) -> Profiler {
        let started = crate::thread::untracked(|| {
            let mut phase = state();
            if !matches!(*phase, Phase::Ready) {
                return false;
            }
            let file_name = self.file_name.unwrap_or_else(|| {
                PathBuf::from(if self.ad_hoc {
                    "dhat-ad-hoc.json"
                } else {
                    "dhat-heap.json"
                })
            });
            INNER.set_backtrace_depth(self.trim_backtraces.unwrap_or(crate::sites::MAX_FRAMES));
            *phase = Phase::Running(Box::new(Run {
                file_name,
                testing: self.testing,
                eprint_json: self.eprint_json,
                start: crate::clock::ticks(),
                ad_hoc: self.ad_hoc.then(AdHoc::default),
            }));
            if !self.ad_hoc {
                INNER.reset();
            }
            true
        });
        if !started {
            panic!("dhat: creating a profiler while a profiler is already running");
        }
        Profiler { _private: () }
    }
}

/// Heap figures of the running profiler, as dhat-rs gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeapStats {
    /// Blocks allocated since the profiler started (each `realloc` is one).
    pub total_blocks: u64,
    /// Bytes allocated since the profiler started.
    pub total_bytes: u64,
    /// Blocks live now.
    pub curr_blocks: usize,
    /// Bytes live now.
    pub curr_bytes: usize,
    /// Blocks live at the global peak (when `curr_bytes` was highest).
    pub max_blocks: usize,
    /// Bytes live at the global peak.
    pub max_bytes: usize,
}

/// Ad-hoc figures of the running profiler.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdHocStats {
    /// Events recorded since the profiler started.
    pub total_events: u64,
    /// Sum of their weights.
    pub total_units: u64,
}

impl HeapStats {
    /// The figures now.
    ///
    /// # Panics
    /// If no [`Profiler`] is running, if it is doing ad-hoc profiling, or
    /// after one of its assertions failed.
    pub fn get() -> HeapStats {
        let message = match &*state() {
            Phase::Ready => "dhat: getting heap stats when no profiler is running",
            Phase::PostAssert => "dhat: getting heap stats after the profiler has asserted",
            Phase::Running(run) if run.ad_hoc.is_some() => {
                "dhat: getting heap stats while doing ad hoc profiling"
            }
            Phase::Running(_) => return heap_stats(),
        };
        panic!("{}", message)
    }
}

impl AdHocStats {
    /// The figures now.
    ///
    /// # Panics
    /// If no [`Profiler`] is running, if it is doing heap profiling, or after
    /// one of its assertions failed.
    pub fn get() -> AdHocStats {
        let message = match &*state() {
            Phase::Ready => "dhat: getting ad hoc stats when no profiler is running",
            Phase::PostAssert => "dhat: getting ad hoc stats after the profiler has asserted",
            Phase::Running(run) => match &run.ad_hoc {
                Some(a) => {
                    return AdHocStats {
                        total_events: a.total.events,
                        total_units: a.total.units,
                    }
                }
                None => "dhat: getting ad hoc stats while doing heap profiling",
            },
        };
        panic!("{}", message)
    }
}

/// Records one ad-hoc event of `weight` units at the caller's stack. Does
/// nothing unless an ad-hoc [`Profiler`] is running.
#[inline(never)]
pub fn ad_hoc_event(weight: usize) {
    let site = crate::sites::current();
    crate::thread::untracked(|| {
        if let Phase::Running(run) = &mut *state() {
            if let Some(a) = &mut run.ad_hoc {
                for fig in [&mut a.total, a.sites.entry(site).or_default()] {
                    fig.events += 1;
                    fig.units += weight as u64;
                }
            }
        }
    });
}

/// The process window's figures as [`HeapStats`].
fn heap_stats() -> HeapStats {
    let s = INNER.snapshot();
    let (figs, _) = crate::global::process_sites();
    let at_peak_blocks: u64 = figs
        .iter()
        .map(|(_, f)| crate::ledger::live_count(f.at_peak_blocks))
        .sum();
    HeapStats {
        total_blocks: s.alloc_count,
        total_bytes: s.total_bytes,
        curr_blocks: to_usize(s.current_blocks),
        curr_bytes: to_usize(s.current_bytes),
        max_blocks: to_usize(at_peak_blocks),
        max_bytes: to_usize(s.peak_bytes),
    }
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Prints the summary lines and writes the profile, as dhat-rs does when
/// its profiler stops. Runs untracked.
fn finish(run: &Run) {
    let end = crate::clock::ticks();
    let profile = match &run.ad_hoc {
        None => {
            let stats = heap_stats();
            let (figs, peak) = crate::global::process_sites();
            eprintln!(
                "dhat: Total:     {} bytes in {} blocks",
                commas(stats.total_bytes),
                commas(stats.total_blocks)
            );
            eprintln!(
                "dhat: At t-gmax: {} bytes in {} blocks",
                commas(stats.max_bytes as u64),
                commas(stats.max_blocks as u64)
            );
            eprintln!(
                "dhat: At t-end:  {} bytes in {} blocks",
                commas(stats.curr_bytes as u64),
                commas(stats.curr_blocks as u64)
            );
            crate::profile::heap(&crate::profile::Window {
                figs: &figs,
                start: crate::global::window_start(),
                end,
                peak_tick: peak.1,
            })
        }
        Some(a) => {
            eprintln!(
                "dhat: Total:     {} units in {} events",
                commas(a.total.units),
                commas(a.total.events)
            );
            let mut sites: Vec<(u32, AdHocFig)> = a.sites.iter().map(|(s, f)| (*s, *f)).collect();
            sites.sort_by_key(|(site, _)| *site);
            crate::profile::ad_hoc(&sites, run.start, end)
        }
    };
    let shown = run.file_name.to_string_lossy();
    match crate::dhat::write(&profile, &run.file_name) {
        Ok(()) => eprintln!(
            "dhat: The data has been saved to {shown}, and is viewable with dhat/dh_view.html"
        ),
        Err(e) => eprintln!("dhat: error: Writing to {shown} failed: {e}"),
    }
    if run.eprint_json {
        eprintln!("dhat: json = `{}`", crate::dhat::to_string(&profile));
    }
}

fn commas(v: u64) -> String {
    crate::stats::group_thousands(v)
}

/// Implementation detail of the assertion macros: `true` when the assertion
/// failed (the profile has then been written and the profiler stopped).
///
/// # Panics
/// Without a running profiler, outside testing mode, or after an assertion
/// of this profiler failed: with dhat-rs's messages.
#[doc(hidden)]
pub fn check_assert_condition<F: FnOnce() -> bool>(cond: F) -> bool {
    let misuse = match &*state() {
        Phase::Ready => Some("dhat: asserting when no profiler is running"),
        Phase::PostAssert => Some("dhat: asserting after the profiler has asserted"),
        Phase::Running(run) if !run.testing => Some("dhat: asserting while not in testing mode"),
        Phase::Running(_) => None,
    };
    if let Some(message) = misuse {
        panic!("{}", message);
    }
    if cond() {
        return false;
    }
    let previous = std::mem::replace(&mut *state(), Phase::PostAssert);
    if let Phase::Running(run) = previous {
        crate::thread::untracked(|| finish(&run));
    }
    true
}

/// Like [`std::assert!`], for testing mode: on failure it writes the profile,
/// then panics with `dhat: assertion failed: ...`.
///
/// # Panics
/// At once (writing nothing) without a running [`Profiler`] in testing mode,
/// or after an earlier dhat assertion of this profiler failed.
#[doc(hidden)]
#[macro_export]
macro_rules! __dhat_compat_assert {
    ($cond:expr $(,)?) => {{
        if $crate::dhat_compat::check_assert_condition(|| $cond) {
            ::core::panic!("dhat: assertion failed: {}", ::core::stringify!($cond));
        }
    }};
    ($cond:expr, $($arg:tt)+) => {{
        if $crate::dhat_compat::check_assert_condition(|| $cond) {
            ::core::panic!(
                "dhat: assertion failed: {}: {}",
                ::core::stringify!($cond),
                ::core::format_args!($($arg)+)
            );
        }
    }};
}

/// Like [`std::assert_eq!`], for testing mode: on failure it writes the
/// profile, then panics with dhat-rs's message.
///
/// # Panics
/// As [`assert!`](crate::dhat_compat::assert).
#[doc(hidden)]
#[macro_export]
macro_rules! __dhat_compat_assert_eq {
    ($left:expr, $right:expr $(,)?) => {{
        match (&$left, &$right) {
            (left, right) => {
                if $crate::dhat_compat::check_assert_condition(|| *left == *right) {
                    ::core::panic!(
                        "dhat: assertion failed: `(left == right)`\n  left: `{:?}`,\n right: `{:?}`",
                        left, right
                    );
                }
            }
        }
    }};
    ($left:expr, $right:expr, $($arg:tt)+) => {{
        match (&$left, &$right) {
            (left, right) => {
                if $crate::dhat_compat::check_assert_condition(|| *left == *right) {
                    ::core::panic!(
                        "dhat: assertion failed: `(left == right)`\n  left: `{:?}`,\n right: `{:?}`: {}",
                        left, right, ::core::format_args!($($arg)+)
                    );
                }
            }
        }
    }};
}

/// Like [`std::assert_ne!`], for testing mode: on failure it writes the
/// profile, then panics with dhat-rs's message.
///
/// # Panics
/// As [`assert!`](crate::dhat_compat::assert).
#[doc(hidden)]
#[macro_export]
macro_rules! __dhat_compat_assert_ne {
    ($left:expr, $right:expr $(,)?) => {{
        match (&$left, &$right) {
            (left, right) => {
                if $crate::dhat_compat::check_assert_condition(|| *left != *right) {
                    ::core::panic!(
                        "dhat: assertion failed: `(left != right)`\n  left: `{:?}`,\n right: `{:?}`",
                        left, right
                    );
                }
            }
        }
    }};
    ($left:expr, $right:expr, $($arg:tt)+) => {{
        match (&$left, &$right) {
            (left, right) => {
                if $crate::dhat_compat::check_assert_condition(|| *left != *right) {
                    ::core::panic!(
                        "dhat: assertion failed: `(left != right)`\n  left: `{:?}`,\n right: `{:?}`: {}",
                        left, right, ::core::format_args!($($arg)+)
                    );
                }
            }
        }
    }};
}

#[doc(inline)]
pub use crate::__dhat_compat_assert as assert;
#[doc(inline)]
pub use crate::__dhat_compat_assert_eq as assert_eq;
#[doc(inline)]
pub use crate::__dhat_compat_assert_ne as assert_ne;
