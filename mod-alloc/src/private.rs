//! What `#[alloc_test]` and `assert_allocs!` expand to. Not a public API:
//! hidden from the docs, and free to change in any release together with
//! `mod-alloc-macros` (which the facade pins with `=x.y.z`).
//!
//! One budgeted run is: open a [`Profiler`] scope on this thread, run the
//! body, stop the scope, check the [`Limits`] against its figures and, if one
//! is exceeded, panic with the report.
//!
//! Invariants:
//! - Only the body runs inside the scope: the harness's own work (output
//!   capture, thread spawning, the async runtime's start-up) happens before
//!   or after it and is never counted.
//! - A panic in the body propagates untouched: the scope is closed by the
//!   `Profiler`'s drop while unwinding and no budget is checked, so the test
//!   fails with its own message, once.
//! - The success path allocates nothing (the check is on the stack), so a
//!   budget inside a benchmark loop does not disturb outer counters. The one
//!   exception: the first body in the process that allocates nothing triggers
//!   a single probe allocation (see `ensure_installed`).
//! - The report (and the artefact) is built with tracking suspended on this
//!   thread, so it never counts toward any enclosing scope; building it never
//!   panics, so the budget panic is the only one.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll};

use crate::artefact::{self, Outcome};
use crate::budget::Verdict;
use crate::report::{Report, Sites};
use crate::{AllocStats, Profiler};

pub use crate::budget::{Limit, Limits};

/// Where a budget was declared, captured at the call site by the macros.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The test fn's name for `#[alloc_test]`; `None` for `assert_allocs!`.
    pub test_name: Option<&'static str>,
    /// `module_path!()` at the call site.
    pub module_path: &'static str,
    /// `file!()` at the call site.
    pub file: &'static str,
    /// `line!()` at the call site.
    pub line: u32,
    /// `column!()` at the call site.
    pub column: u32,
    /// `env!("CARGO_MANIFEST_DIR")` of the calling crate.
    pub manifest_dir: &'static str,
    /// `env!("CARGO_CRATE_NAME")` of the calling crate.
    pub crate_name: &'static str,
}

/// Runs a `#[alloc_test]` body under `limits`; returns its value.
///
/// Panics with the report if a limit is exceeded.
#[track_caller]
pub fn run_test<R>(origin: &Origin, limits: &Limits, body: impl FnOnce() -> R) -> R {
    measure(origin, limits, body)
}

/// Runs an `assert_allocs!` block under `limits`; returns its value.
///
/// Panics with the report if a limit is exceeded.
#[track_caller]
pub fn run_block<R>(origin: &Origin, limits: &Limits, body: impl FnOnce() -> R) -> R {
    measure(origin, limits, body)
}

/// Wraps an async `#[alloc_test]` body: the returned future measures `future`
/// from its first poll to its completion, then checks `limits`.
///
/// The scope is opened on the thread of the first poll and stays open until
/// the future completes, so everything that thread runs in between (the
/// body, and the tasks it spawned onto the same single-threaded runtime) is
/// counted; work on other runtime threads is not. `#[tokio::test]` polls
/// the body on the test thread (`block_on`), so this is the test's own work.
pub fn run_async<F: Future>(
    origin: &'static Origin,
    limits: &'static Limits,
    future: F,
) -> Budgeted<F> {
    Budgeted {
        future: Box::pin(future),
        origin,
        limits,
        profiler: None,
    }
}

/// Stands in for the value of an `assert_allocs!` call that failed to
/// compile: the expansion emits it right after its `compile_error!`, so it
/// never runs; it only keeps the surrounding code free of follow-on errors.
pub fn error_value<T>() -> T {
    unreachable!("assert_allocs! did not compile")
}

/// The future [`run_async`] returns.
///
/// Not `Send`: its scope belongs to the thread that first polled it.
#[must_use = "futures do nothing unless awaited"]
pub struct Budgeted<F: Future> {
    future: Pin<Box<F>>,
    origin: &'static Origin,
    limits: &'static Limits,
    profiler: Option<Profiler>,
}

impl<F: Future> Future for Budgeted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // `Budgeted` is `Unpin`: the body is behind its own `Pin<Box<_>>`.
        let this = self.get_mut();
        if this.profiler.is_none() {
            this.profiler = Some(Profiler::start());
        }
        let output = match this.future.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(output) => output,
        };
        if let Some(profiler) = this.profiler.take() {
            let (stats, captured) = finish(profiler);
            enforce(this.origin, this.limits, &stats, &captured);
        }
        Poll::Ready(output)
    }
}

#[track_caller]
fn measure<R>(origin: &Origin, limits: &Limits, body: impl FnOnce() -> R) -> R {
    let profiler = Profiler::start();
    let value = body();
    let (stats, captured) = finish(profiler);
    enforce(origin, limits, &stats, &captured);
    value
}

/// What a closed scope leaves for its report besides its figures: its
/// per-site figures when call sites are captured.
#[cfg(feature = "backtraces")]
type Captured = Option<crate::ScopeProfile>;
#[cfg(not(feature = "backtraces"))]
type Captured = ();

/// Closes the scope. On the success path nothing is allocated for the
/// report (the per-site figures stay in place until a report asks).
fn finish(profiler: Profiler) -> (AllocStats, Captured) {
    #[cfg(feature = "backtraces")]
    {
        let profile = profiler.stop_profile();
        (profile.stats(), Some(profile))
    }
    #[cfg(not(feature = "backtraces"))]
    {
        (profiler.stop(), ())
    }
}

/// Checks the figures; panics with the report when a limit is exceeded.
#[track_caller]
fn enforce(origin: &Origin, limits: &Limits, stats: &AllocStats, captured: &Captured) {
    ensure_installed(origin, stats);
    let verdict = Verdict::new(limits, stats);
    if !verdict.passed() {
        fail(origin, &verdict, stats, captured);
    }
}

/// Set once a probe showed that allocations are counted in this process.
static COUNTING_CONFIRMED: AtomicBool = AtomicBool::new(false);

/// Fails loudly when `ModAlloc` is not the global allocator: every figure
/// would be zero and every budget would pass without measuring anything.
///
/// A body that allocated anything counted proves it is installed. Otherwise
/// one probe allocation in a nested scope settles it, once per process (that
/// one block counts only in scopes enclosing this check).
#[track_caller]
fn ensure_installed(origin: &Origin, stats: &AllocStats) {
    if stats.alloc_count > 0 || COUNTING_CONFIRMED.load(Relaxed) {
        return;
    }
    let probe = Profiler::start();
    drop(std::hint::black_box(Box::new(0u8)));
    if probe.stop().alloc_count == 0 {
        not_installed(origin);
    }
    COUNTING_CONFIRMED.store(true, Relaxed);
}

#[cold]
#[inline(never)]
#[track_caller]
fn not_installed(origin: &Origin) -> ! {
    let name = origin.test_name.unwrap_or("assert_allocs!");
    panic!(
        "allocation budget cannot be checked in {name} ({}:{}): mod_alloc::ModAlloc is not the \
         #[global_allocator] of this binary, so nothing is counted; add\n  \
         #[global_allocator]\n  static GLOBAL: mod_alloc::ModAlloc = mod_alloc::ModAlloc::new();",
        origin.file, origin.line
    )
}

#[cold]
#[inline(never)]
#[track_caller]
fn fail(origin: &Origin, verdict: &Verdict, stats: &AllocStats, captured: &Captured) -> ! {
    let report = crate::thread::untracked(|| {
        let context = artefact::Context::from_env(origin);
        let artefact = save_artefact(origin, &context, captured);
        Report {
            origin,
            verdict,
            stats,
            sites: &call_sites(origin, verdict, captured),
            artefact: &artefact,
            current_dir: context.current_dir.clone(),
        }
        .render()
    });
    std::panic::panic_any(report)
}

/// How many call sites a report lists.
#[cfg(feature = "backtraces")]
const TOP_SITES: usize = 5;

/// The call-site section of the report: the top sites by the first violated
/// limit's figure.
#[cfg(feature = "backtraces")]
fn call_sites(origin: &Origin, verdict: &Verdict, captured: &Captured) -> Sites {
    use crate::budget::Metric;
    use crate::report::SiteRow;
    use crate::SortBy;
    let Some(profile) = captured else {
        return Sites::Unavailable("the scope was already closed");
    };
    let metric = verdict.first_violated().unwrap_or(Metric::Allocs);
    let by = match metric {
        Metric::Allocs => SortBy::Allocations,
        Metric::Bytes => SortBy::Bytes,
        Metric::Peak => SortBy::Peak,
        Metric::Leaked => SortBy::Live,
    };
    let (all, frames_missing) = profile.call_sites_checked(by);
    if frames_missing {
        return Sites::Unavailable(crate::callsites::FRAME_POINTER_HINT);
    }
    let root = std::path::Path::new(origin.manifest_dir);
    let rows: Vec<SiteRow> = all
        .iter()
        .filter(|c| c.figure(by) > 0)
        .take(TOP_SITES)
        .map(|c| SiteRow {
            count: c.alloc_count,
            bytes: match by {
                SortBy::Allocations => c.total_bytes,
                _ => c.figure(by),
            },
            function: c.function.clone(),
            location: c.location(Some(root)),
        })
        .collect();
    let shown = rows.len();
    Sites::Listed {
        metric,
        rows,
        more: all.iter().filter(|c| c.figure(by) > 0).count() - shown,
    }
}

/// The call-site section without call sites: how to turn them on.
#[cfg(not(feature = "backtraces"))]
fn call_sites(_origin: &Origin, _verdict: &Verdict, _captured: &Captured) -> Sites {
    Sites::Off
}

/// Writes the scope's DHAT profile, or says why not.
#[cfg(feature = "dhat-compat")]
fn save_artefact(origin: &Origin, context: &artefact::Context, captured: &Captured) -> Outcome {
    match captured {
        Some(profile) => artefact::save(origin, context, |path| profile.write_dhat_json(path)),
        None => Outcome::Disabled,
    }
}

/// Without `dhat-compat` there is no profile to write.
#[cfg(not(feature = "dhat-compat"))]
fn save_artefact(_origin: &Origin, _context: &artefact::Context, _captured: &Captured) -> Outcome {
    Outcome::Disabled
}
