//! Fault injection: `ModAlloc` over an inner allocator that fails on demand
//! (every Nth call, realloc only, sizes above a limit). A failure must return
//! null, count nothing, and leave every figure consistent, so that the next
//! successful calls are exact, in scopes and in the process window.
//!
//! Its own binary without the libtest harness: failures are armed on the main
//! thread only (a thread-local switch), and process figures need a quiet
//! process.
// Tests drive the raw allocator API step by step, one SAFETY note per block.
#![allow(clippy::multiple_unsafe_ops_per_block)]

use mod_alloc::{AllocStats, ModAlloc, Profiler};
use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

/// When the inner allocator fails, on the thread that armed it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fail {
    Never,
    /// Every Nth call (alloc, alloc_zeroed or realloc) returns null.
    EveryNth(u32),
    /// Every realloc returns null.
    Realloc,
    /// Any request above this many bytes (header included) returns null.
    Above(usize),
}

thread_local! {
    static MODE: Cell<Fail> = const { Cell::new(Fail::Never) };
    static CALLS: Cell<u32> = const { Cell::new(0) };
    static INNER_CALLS: Cell<u64> = const { Cell::new(0) };
}

/// `System`, failing as the calling thread's [`MODE`] says.
struct FailingAlloc;

impl FailingAlloc {
    fn fails(is_realloc: bool, size: usize) -> bool {
        let _ = INNER_CALLS.try_with(|c| c.set(c.get() + 1));
        let mode = MODE.try_with(Cell::get).unwrap_or(Fail::Never);
        match mode {
            Fail::Never => false,
            Fail::EveryNth(n) => CALLS
                .try_with(|c| {
                    c.set(c.get() + 1);
                    c.get() % n == 0
                })
                .unwrap_or(false),
            Fail::Realloc => is_realloc,
            Fail::Above(limit) => size > limit,
        }
    }
}

// SAFETY: forwards to `System` with the caller's arguments, or returns null,
// which every `GlobalAlloc` method may do.
unsafe impl GlobalAlloc for FailingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::fails(false, layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: caller contract of `GlobalAlloc::alloc`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if Self::fails(false, layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: caller contract of `GlobalAlloc::alloc_zeroed`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: caller contract of `GlobalAlloc::dealloc`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if Self::fails(true, new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: caller contract of `GlobalAlloc::realloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: ModAlloc<FailingAlloc> = ModAlloc::with_allocator(FailingAlloc);

/// Runs `f` with the inner allocator failing as `mode` says on this thread.
fn armed<R>(mode: Fail, f: impl FnOnce() -> R) -> R {
    CALLS.with(|c| c.set(0));
    MODE.with(|m| m.set(mode));
    let r = f();
    MODE.with(|m| m.set(Fail::Never));
    r
}

fn main() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        std::process::exit(101);
    }));
    let tests: &[(&str, fn())] = &[
        (
            "every_nth_failure_counts_only_the_successes",
            every_nth_failure_counts_only_the_successes,
        ),
        (
            "failed_alloc_zeroed_counts_nothing",
            failed_alloc_zeroed_counts_nothing,
        ),
        (
            "failed_realloc_keeps_the_old_block_valid_and_counted",
            failed_realloc_keeps_the_old_block_valid_and_counted,
        ),
        (
            "huge_requests_fail_cleanly_and_the_next_calls_are_exact",
            huge_requests_fail_cleanly_and_the_next_calls_are_exact,
        ),
        (
            "sizes_that_overflow_with_the_header_never_reach_the_inner_allocator",
            sizes_that_overflow_with_the_header_never_reach_the_inner_allocator,
        ),
        (
            "failures_in_nested_scopes_leave_both_exact",
            failures_in_nested_scopes_leave_both_exact,
        ),
        (
            "a_threads_first_allocation_failing_leaves_it_working",
            a_threads_first_allocation_failing_leaves_it_working,
        ),
    ];
    for (name, test) in tests {
        test();
        println!("test {name} ... ok");
    }
    println!("test result: ok. {} passed; 0 failed", tests.len());
}

/// Figures from `before` to `after` of the process window.
fn delta(before: AllocStats, after: AllocStats) -> (u64, u64, u64) {
    (
        after.alloc_count - before.alloc_count,
        after.total_bytes - before.total_bytes,
        after.free_count - before.free_count,
    )
}

fn every_nth_failure_counts_only_the_successes() {
    const N: usize = 300;
    let mut ptrs = [std::ptr::null_mut::<u8>(); N];
    let layout = Layout::from_size_align(40, 8).unwrap();
    let before = GLOBAL.snapshot();
    let p = Profiler::start();
    armed(Fail::EveryNth(3), || {
        for slot in ptrs.iter_mut() {
            // SAFETY: non-zero size.
            *slot = black_box(unsafe { alloc(black_box(layout)) });
        }
    });
    let ok = ptrs.iter().filter(|p| !p.is_null()).count() as u64;
    assert_eq!(ok, N as u64 - N as u64 / 3, "one call in three failed");
    let s = p.stats();
    assert_eq!((s.alloc_count, s.total_bytes), (ok, ok * 40));
    assert_eq!((s.current_bytes, s.current_blocks), (ok * 40, ok));
    assert_eq!(s.peak_bytes, ok * 40);
    assert_eq!(delta(before, GLOBAL.snapshot()), (ok, ok * 40, 0));
    for ptr in ptrs.iter().filter(|p| !p.is_null()) {
        // SAFETY: a live block of `layout`.
        unsafe { dealloc(*ptr, layout) };
    }
    let s = p.stop();
    assert_eq!(
        (s.current_bytes, s.current_blocks, s.free_count),
        (0, 0, ok)
    );
    assert_eq!(delta(before, GLOBAL.snapshot()), (ok, ok * 40, ok));
}

fn failed_alloc_zeroed_counts_nothing() {
    let layout = Layout::from_size_align(64, 64).unwrap();
    let before = GLOBAL.snapshot();
    let p = Profiler::start();
    let failed = armed(Fail::EveryNth(1), || {
        // SAFETY: non-zero size; null expected.
        black_box(unsafe { alloc_zeroed(black_box(layout)) })
    });
    assert!(failed.is_null());
    assert_eq!(p.stats(), AllocStats::default());
    // SAFETY: non-zero size.
    let ok = black_box(unsafe { alloc_zeroed(black_box(layout)) });
    assert!(!ok.is_null());
    // SAFETY: 64 bytes, zeroed.
    assert!(unsafe { std::slice::from_raw_parts(ok, 64) }
        .iter()
        .all(|&b| b == 0));
    // SAFETY: a live block of `layout`.
    unsafe { dealloc(ok, layout) };
    let s = p.stop();
    assert_eq!(
        (s.alloc_count, s.total_bytes, s.peak_bytes, s.current_bytes),
        (1, 64, 64, 0)
    );
    assert_eq!(delta(before, GLOBAL.snapshot()), (1, 64, 1));
}

fn failed_realloc_keeps_the_old_block_valid_and_counted() {
    let layout = Layout::from_size_align(100, 16).unwrap();
    let before = GLOBAL.snapshot();
    let p = Profiler::start();
    // SAFETY: non-zero size.
    let ptr = black_box(unsafe { alloc(black_box(layout)) });
    assert!(!ptr.is_null());
    // SAFETY: a fresh block of 100 bytes.
    unsafe { ptr.write_bytes(0xA5, 100) };
    for new in [50, 100, 5000] {
        // SAFETY: `ptr` is live with `layout`; `new` is non-zero.
        let r = armed(Fail::Realloc, || unsafe { realloc(ptr, layout, new) });
        assert!(r.is_null(), "realloc to {new} should fail");
    }
    // SAFETY: the old block is still live and holds its bytes.
    assert!(unsafe { std::slice::from_raw_parts(ptr, 100) }
        .iter()
        .all(|&b| b == 0xA5));
    let s = p.stats();
    assert_eq!(
        (
            s.alloc_count,
            s.total_bytes,
            s.current_bytes,
            s.current_blocks
        ),
        (1, 100, 100, 1),
        "failed reallocs count nothing"
    );
    // SAFETY: `ptr` is live with `layout`.
    let grown = unsafe { realloc(ptr, layout, 300) };
    assert!(!grown.is_null());
    // SAFETY: the first 100 bytes were carried over.
    assert!(unsafe { std::slice::from_raw_parts(grown, 100) }
        .iter()
        .all(|&b| b == 0xA5));
    let s = p.stats();
    assert_eq!(
        (s.alloc_count, s.total_bytes, s.current_bytes, s.peak_bytes),
        (2, 400, 300, 300)
    );
    // SAFETY: `grown` is live with 300 bytes at `layout`'s alignment.
    unsafe { dealloc(grown, Layout::from_size_align(300, 16).unwrap()) };
    let s = p.stop();
    assert_eq!((s.current_bytes, s.current_blocks, s.free_count), (0, 0, 2));
    assert_eq!(delta(before, GLOBAL.snapshot()), (2, 400, 2));
}

fn huge_requests_fail_cleanly_and_the_next_calls_are_exact() {
    let huge = Layout::from_size_align(1 << 30, 8).unwrap();
    let small = Layout::from_size_align(24, 8).unwrap();
    let before = GLOBAL.snapshot();
    let p = Profiler::start();
    let (a, z, ptr, r) = armed(Fail::Above(1 << 20), || {
        // SAFETY: non-zero sizes; the huge ones are expected to fail.
        unsafe {
            let a = black_box(alloc(black_box(huge)));
            let z = black_box(alloc_zeroed(black_box(huge)));
            let ptr = black_box(alloc(black_box(small)));
            let r = black_box(realloc(ptr, small, black_box(1 << 30)));
            (a, z, ptr, r)
        }
    });
    assert!(a.is_null() && z.is_null() && r.is_null());
    assert!(!ptr.is_null());
    let s = p.stats();
    assert_eq!(
        (s.alloc_count, s.total_bytes, s.current_bytes, s.peak_bytes),
        (1, 24, 24, 24),
        "only the small block counts"
    );
    // SAFETY: `ptr` is live with `small`.
    unsafe { dealloc(ptr, small) };
    let v = std::hint::black_box(vec![7u8; 1000]);
    let s = p.stop();
    assert_eq!(
        (s.alloc_count, s.total_bytes, s.current_bytes, s.peak_bytes),
        (2, 1024, 1000, 1000)
    );
    assert_eq!(delta(before, GLOBAL.snapshot()), (2, 1024, 1));
    drop(v);
}

fn sizes_that_overflow_with_the_header_never_reach_the_inner_allocator() {
    let p = Profiler::start();
    let calls = INNER_CALLS.with(Cell::get);
    for (size, align) in [
        (isize::MAX as usize, 1),
        (isize::MAX as usize - 8, 8),
        (isize::MAX as usize - 4096, 4096),
    ] {
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: non-zero size; null expected.
        let a = black_box(unsafe { alloc(black_box(layout)) });
        assert!(a.is_null(), "{layout:?}");
        // SAFETY: as above.
        let z = black_box(unsafe { alloc_zeroed(black_box(layout)) });
        assert!(z.is_null(), "{layout:?}");
    }
    let small = Layout::from_size_align(8, 8).unwrap();
    // SAFETY: non-zero size.
    let ptr = black_box(unsafe { alloc(black_box(small)) });
    // SAFETY: `ptr` is live with `small`; the new size overflows with the
    // header but is a valid `Layout` size.
    let r = black_box(unsafe { realloc(ptr, small, black_box(isize::MAX as usize - 8)) });
    assert!(r.is_null());
    assert_eq!(
        INNER_CALLS.with(Cell::get) - calls,
        1,
        "only the small allocation reached the inner allocator"
    );
    // SAFETY: the failed realloc left `ptr` live with `small`.
    unsafe { dealloc(ptr, small) };
    let s = p.stop();
    assert_eq!((s.alloc_count, s.total_bytes, s.current_bytes), (1, 8, 0));
}

fn failures_in_nested_scopes_leave_both_exact() {
    let layout = Layout::from_size_align(10, 2).unwrap();
    let outer = Profiler::start();
    // SAFETY: non-zero size.
    let a = black_box(unsafe { alloc(black_box(layout)) });
    let inner = Profiler::start();
    let ptrs: Vec<*mut u8> = {
        let mut v = Vec::with_capacity(20);
        armed(Fail::EveryNth(2), || {
            for _ in 0..20 {
                // SAFETY: non-zero size.
                v.push(black_box(unsafe { alloc(black_box(layout)) }));
            }
        });
        v
    };
    let ok = ptrs.iter().filter(|p| !p.is_null()).count() as u64;
    assert_eq!(ok, 10);
    for ptr in ptrs.iter().filter(|p| !p.is_null()) {
        // SAFETY: a live block of `layout`.
        unsafe { dealloc(*ptr, layout) };
    }
    let si = inner.stop();
    // The Vec's buffer (20 pointers) and the successes.
    assert_eq!(si.alloc_count, 1 + ok);
    assert_eq!(si.total_bytes, 160 + ok * 10);
    assert_eq!(si.peak_bytes, 160 + ok * 10);
    assert_eq!(si.current_bytes, 160);
    drop(ptrs);
    // SAFETY: `a` is live with `layout`.
    unsafe { dealloc(a, layout) };
    let so = outer.stop();
    assert_eq!(so.alloc_count, 2 + ok);
    assert_eq!(so.total_bytes, 10 + 160 + ok * 10);
    assert_eq!(so.peak_bytes, 10 + 160 + ok * 10);
    assert_eq!((so.current_bytes, so.current_blocks), (0, 0));
}

fn a_threads_first_allocation_failing_leaves_it_working() {
    std::thread::spawn(|| {
        let layout = Layout::from_size_align(32, 8).unwrap();
        let failed = armed(Fail::EveryNth(1), || {
            // SAFETY: non-zero size; null expected.
            black_box(unsafe { alloc(black_box(layout)) })
        });
        assert!(failed.is_null());
        let p = Profiler::start();
        // SAFETY: non-zero size.
        let ptr = black_box(unsafe { alloc(black_box(layout)) });
        assert!(!ptr.is_null());
        // SAFETY: `ptr` is live with `layout`.
        unsafe { dealloc(ptr, layout) };
        let s = p.stop();
        assert_eq!(
            (s.alloc_count, s.total_bytes, s.peak_bytes, s.current_bytes),
            (1, 32, 32, 0)
        );
    })
    .join()
    .unwrap();
}
