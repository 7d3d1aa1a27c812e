//! DHAT profiles from per-site figures: the whole process window, or one
//! scope (what a failing test writes).
//!
//! Each site becomes a program point: its stack symbolized with inlined frames
//! expanded, then trimmed as dhat-rs trims: the allocator's own frames at the
//! top (mod_alloc, the `__rust_alloc`/`__rg_alloc` shims, `alloc::alloc`'s
//! entry points) and the runtime's at the bottom (`lang_start`, `call_once`,
//! `catch_unwind`, the test harness, thread start). The standard library's
//! frames between the allocator and the user's code (`Vec::push`, RawVec
//! growth) stay, so the viewer shows the whole path. Sites whose trimmed
//! frames are the same are merged by the writer.
//!
//! Times are microseconds from the window's start (`tu: "µs"`).

use crate::clock;
use crate::dhat::{FrameText, Mode, Profile, ProgramPoint};
use crate::ledger::{live_count, Fig};
use crate::symbolize::Frame;

/// A window's per-site figures and times, as ledgers give them.
pub(crate) struct Window<'a> {
    pub(crate) figs: &'a [(u32, Fig)],
    /// Profile clock at the window's start and end, and at its peak.
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) peak_tick: u64,
}

/// Builds the heap-mode profile of `w`.
pub(crate) fn heap(w: &Window<'_>) -> Profile {
    let pps = crate::callsites::with_symbolizer(|sym| {
        w.figs
            .iter()
            .filter(|(_, f)| f.allocs > 0)
            .map(|(site, f)| {
                let frames = trim(sym.resolve_stack(crate::sites::frames(*site)));
                program_point(frames, f, w.end)
            })
            .collect()
    });
    Profile {
        mode: Mode::Heap,
        cmd: command_line(),
        pid: std::process::id(),
        te: clock::micros(w.end.saturating_sub(w.start)),
        tg: clock::micros(w.peak_tick.saturating_sub(w.start)),
        pps,
    }
}

/// One ad-hoc program point: a captured stack and its event and unit counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AdHocFig {
    /// Number of events recorded at this stack.
    pub(crate) events: u64,
    /// Sum of their weights.
    pub(crate) units: u64,
}

/// Builds the ad-hoc-mode profile of per-site event counts (`tbk` = events,
/// `tb` = units), `start`..`end` in profile clock ticks.
pub(crate) fn ad_hoc(sites: &[(u32, AdHocFig)], start: u64, end: u64) -> Profile {
    let pps = crate::callsites::with_symbolizer(|sym| {
        sites
            .iter()
            .filter(|(_, f)| f.events > 0)
            .map(|(site, f)| {
                let frames = trim(sym.resolve_stack(crate::sites::frames(*site)));
                ProgramPoint {
                    frames: frames.into_iter().map(text).collect(),
                    tb: f.units,
                    tbk: f.events,
                    ..ProgramPoint::default()
                }
            })
            .collect()
    });
    Profile {
        mode: Mode::AdHoc,
        cmd: command_line(),
        pid: std::process::id(),
        te: clock::micros(end.saturating_sub(start)),
        tg: 0,
        pps,
    }
}

fn program_point(frames: Vec<Frame>, f: &Fig, end: u64) -> ProgramPoint {
    let eb = live_count(f.live);
    let ebk = live_count(f.live_blocks);
    let gb = live_count(f.at_peak);
    let gbk = live_count(f.at_peak_blocks);
    ProgramPoint {
        frames: frames.into_iter().map(text).collect(),
        tb: f.bytes,
        tbk: f.allocs,
        tl: clock::micros(f.total_lifetime(end)),
        mb: live_count(f.max).max(gb).max(eb),
        mbk: live_count(f.max_blocks).max(gbk).max(ebk),
        gb,
        gbk,
        eb,
        ebk,
    }
}

fn text(f: Frame) -> FrameText {
    FrameText {
        addr: f.addr,
        function: f.function,
        file: f.file,
        line: f.line,
        column: f.column,
    }
}

/// The program's command line, as DHAT's `cmd`.
fn command_line() -> String {
    crate::thread::untracked(|| std::env::args().collect::<Vec<_>>().join(" "))
}

/// Drops the allocator's frames at the top and the runtime's at the bottom.
///
/// Top: everything down to the outermost allocator entry (a `__rust_alloc`
/// style shim, or a frame of `alloc::alloc` / `std::alloc`, by name or, for
/// inlined frames that debug info names without a path, by source file), then
/// any allocator frames still leading. Bottom: everything from the runtime's
/// `__rust_begin_short_backtrace` down, then trailing runtime frames.
pub(crate) fn trim(mut frames: Vec<Frame>) -> Vec<Frame> {
    let entry = frames
        .iter()
        .rposition(is_allocator_entry)
        .map_or(0, |i| i + 1);
    frames.drain(..entry);
    // mod_alloc's own frames (the hook, `ad_hoc_event`), also when inlined
    // under a bare name that only its source file gives away.
    let ours = |f: &Frame| {
        f.function.as_deref().map_or(true, is_allocator_frame)
            || f.file
                .as_deref()
                .is_some_and(crate::symbolize::is_mod_alloc_source)
    };
    let top = frames.iter().position(|f| !ours(f)).unwrap_or(frames.len());
    frames.drain(..top);
    // Everything from the runtime's entry into `main`, a thread or a test
    // down is the runtime's, whatever it is called in this std version.
    if let Some(entry) = frames.iter().position(|f| {
        f.function
            .as_deref()
            .is_some_and(|name| name.contains("__rust_begin_short_backtrace"))
    }) {
        frames.truncate(entry);
    }
    while frames.last().is_some_and(is_runtime) {
        frames.pop();
    }
    frames
}

/// A frame of the global allocator's entry path: the `__rust_alloc` family of
/// shims, or a function of `alloc::alloc` / `std::alloc` (by name, or by its
/// source file when an inlined frame's name has no path). mod_alloc's own
/// frames are not entries: user code may run below them (the test harness).
fn is_allocator_entry(frame: &Frame) -> bool {
    /// Source files of `alloc::alloc`, `std::alloc` and `core::alloc`'s traits.
    const FILES: &[&str] = &[
        "alloc/src/alloc.rs",
        "std/src/alloc.rs",
        "core/src/alloc/global.rs",
        "core/src/alloc/mod.rs",
    ];
    let by_name = frame.function.as_deref().is_some_and(|name| {
        is_allocator_frame(name) && !name.trim_start_matches('<').starts_with("mod_alloc::")
    });
    let by_file = frame
        .file
        .as_deref()
        .is_some_and(|file| FILES.iter().any(|f| file.ends_with(f)));
    by_name || by_file
}

/// A frame of the runtime below `main`, a thread's closure or a test: by
/// name, or (for inlined frames named without a path, like
/// `call_once<fn(), ()>`) by std's source file of the runtime.
fn is_runtime(frame: &Frame) -> bool {
    /// Source files of the runtime's entry path.
    const FILES: &[&str] = &[
        "core/src/ops/function.rs",
        "core/src/panic/unwind_safe.rs",
        "std/src/rt.rs",
        "std/src/panicking.rs",
        "std/src/panic.rs",
        "std/src/sys/backtrace.rs",
    ];
    let Some(name) = frame.function.as_deref() else {
        return true;
    };
    is_runtime_frame(name)
        || frame
            .file
            .as_deref()
            .is_some_and(|file| FILES.iter().any(|f| file.ends_with(f)))
}

/// Frames of the allocator itself: mod_alloc (outside its own tests), the
/// global-allocator shims, and the `alloc::alloc` / `std::alloc` entry points.
fn is_allocator_frame(function: &str) -> bool {
    let f = function.trim_start_matches('<');
    (f.starts_with("mod_alloc::") && !f.contains("::tests::"))
        || f.contains("__rust_alloc")
        || f.contains("__rust_realloc")
        || f.contains("__rust_alloc_zeroed")
        || f.contains("__rg_")
        || f.contains("__rdl_")
        || f.starts_with("alloc::alloc::")
        || f.starts_with("std::alloc::")
        || f.starts_with("core::alloc::")
        || f.contains("as core::alloc::global::GlobalAlloc>")
        || f.contains("as core::alloc::Allocator>")
        || f.starts_with("__rustc::")
}

/// Frames of the runtime below `main` or a test function.
fn is_runtime_frame(function: &str) -> bool {
    /// Names that start with these are the runtime's.
    const STARTS: &[&str] = &[
        "std::rt::",
        "std::panicking::",
        "std::panic::catch_unwind",
        "std::thread::",
        "std::sys::",
        "core::ops::function::",
        "core::panic::unwind_safe",
        "test::",
        "__libc_start",
    ];
    /// C-level names of the process and thread entry.
    const EXACT: &[&str] = &[
        "main",
        "_start",
        "start_thread",
        "clone",
        "clone3",
        "__rust_try",
    ];
    /// Names that contain these anywhere (closures, generic wrappers) too.
    /// `<&dyn Fn() as FnOnce>::call_once` and the like: std calling `main`.
    const CONTAINS: &[&str] = &[
        "lang_start",
        "__rust_begin_short_backtrace",
        " as core::ops::function::FnOnce<",
    ];
    let f = function.trim_start_matches('<');
    STARTS.iter().any(|r| f.starts_with(r))
        || EXACT.contains(&f)
        || CONTAINS.iter().any(|r| f.contains(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str) -> Frame {
        Frame {
            addr: 1,
            function: Some(function.to_string()),
            file: None,
            line: None,
            column: None,
        }
    }

    #[test]
    fn trimming_keeps_std_frames_between_the_allocator_and_the_user() {
        let stack = vec![
            frame("mod_alloc::thread::track_alloc"),
            frame("__rustc::__rust_alloc"),
            frame("alloc::alloc::Global::alloc_impl"),
            frame("alloc::raw_vec::RawVec<T,A>::grow_one"),
            frame("alloc::vec::Vec<T,A>::push"),
            frame("myapp::parse::tokenize"),
            frame("myapp::main"),
            frame("core::ops::function::FnOnce::call_once"),
            frame("std::rt::lang_start::{{closure}}"),
            frame("std::rt::lang_start_internal"),
            frame("main"),
        ];
        let names: Vec<String> = trim(stack).into_iter().filter_map(|f| f.function).collect();
        assert_eq!(
            names,
            [
                "alloc::raw_vec::RawVec<T,A>::grow_one",
                "alloc::vec::Vec<T,A>::push",
                "myapp::parse::tokenize",
                "myapp::main"
            ]
        );
    }

    fn frame_in(function: &str, file: &str) -> Frame {
        Frame {
            file: Some(file.to_string()),
            ..frame(function)
        }
    }

    #[test]
    fn trimming_recognises_inlined_frames_named_without_a_path_by_their_file() {
        // A release build with line tables only: inlined frames carry short names.
        let stack = vec![
            frame_in("{closure#0}", "/src/mod-alloc/src/thread.rs"),
            frame_in("on_alloc", "/src/mod-alloc/src/thread.rs"),
            frame_in("alloc<std::alloc::System>", "/src/mod-alloc/src/alloc.rs"),
            frame_in("__rustc::__rust_alloc", "/src/app/src/main.rs"),
            frame_in("alloc", "/rustc/abc/library/alloc/src/alloc.rs"),
            frame_in("allocate", "/rustc/abc/library/alloc/src/alloc.rs"),
            frame_in(
                "grow_one<alloc::alloc::Global>",
                "/rustc/abc/library/alloc/src/raw_vec/mod.rs",
            ),
            frame_in("app::collect_ids", "/src/app/src/main.rs"),
            frame_in("app::main", "/src/app/src/main.rs"),
            frame_in(
                "call_once<fn(), ()>",
                "/rustc/abc/library/core/src/ops/function.rs",
            ),
        ];
        let names: Vec<String> = trim(stack).into_iter().filter_map(|f| f.function).collect();
        assert_eq!(
            names,
            [
                "grow_one<alloc::alloc::Global>",
                "app::collect_ids",
                "app::main"
            ]
        );
    }

    #[test]
    fn trimming_cuts_below_main_when_the_stack_was_cut_short() {
        let stack = vec![
            frame("__rustc::__rdl_alloc"),
            frame("myapp::main"),
            frame("core::ops::function::FnOnce::call_once"),
            frame("std::sys::backtrace::__rust_begin_short_backtrace"),
            frame("std::rt::lang_start::{{closure}}"),
            frame("<&dyn core::ops::function::Fn<(), Output = i32> + core::marker::Sync as core::ops::function::FnOnce<()>>::call_once"),
        ];
        let names: Vec<String> = trim(stack.clone())
            .into_iter()
            .filter_map(|f| f.function)
            .collect();
        assert_eq!(names, ["myapp::main"]);
        // Without the entry frame (the capture stopped above it) too.
        let mut short = stack;
        short.remove(3);
        let names: Vec<String> = trim(short).into_iter().filter_map(|f| f.function).collect();
        assert_eq!(names, ["myapp::main"]);
    }

    #[test]
    fn trimming_cuts_the_test_harness_below_a_test() {
        let stack = vec![
            frame("__rustc::__rdl_alloc"),
            frame("suite::my_test"),
            frame("suite::my_test::{{closure}}"),
            frame("core::ops::function::FnOnce::call_once"),
            frame("test::__rust_begin_short_backtrace"),
            frame("test::run_test::{{closure}}"),
            frame("std::thread::Builder::spawn_unchecked_::{{closure}}"),
            frame("start_thread"),
            frame("clone"),
        ];
        let names: Vec<String> = trim(stack).into_iter().filter_map(|f| f.function).collect();
        assert_eq!(names, ["suite::my_test", "suite::my_test::{{closure}}"]);
    }
}
