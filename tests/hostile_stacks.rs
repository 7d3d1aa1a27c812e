//! Call-site capture on hostile stacks: tiny thread stacks, deep recursion,
//! frames without frame pointers (`scripts/test-no-frame-pointers` also runs
//! this file built without them). Every case must count exactly and never
//! crash; the stacks may come out short.
#![cfg(feature = "backtraces")]

use mod_alloc::{ModAlloc, Profiler};
use std::hint::black_box;
use std::thread;

#[global_allocator]
static GLOBAL: ModAlloc = ModAlloc::new();

/// Allocates `n` boxes in a scope and checks the scope's figures, per site too.
fn count_in_scope(n: usize) {
    let p = Profiler::start();
    let kept: Vec<Box<[u8; 40]>> = (0..n).map(|_| black_box(Box::new([7u8; 40]))).collect();
    let profile = p.stop_profile();
    let stats = profile.stats();
    assert_eq!(stats.alloc_count, n as u64 + 1, "the boxes and the Vec");
    assert_eq!(stats.current_bytes, n as u64 * 40 + n as u64 * 8);
    let per_site: u64 = profile.raw_call_sites().iter().map(|c| c.alloc_count).sum();
    assert_eq!(per_site, stats.alloc_count, "no event lost per site");
    assert!(kept.iter().all(|b| b[39] == 7));
}

#[test]
fn a_thread_with_a_sixteen_kib_stack_captures_without_crashing() {
    thread::Builder::new()
        .stack_size(16 * 1024)
        .spawn(|| count_in_scope(100))
        .unwrap()
        .join()
        .unwrap();
}

#[inline(never)]
fn recurse_then_count(depth: usize) -> usize {
    if depth == 0 {
        count_in_scope(10);
        0
    } else {
        black_box(recurse_then_count(depth - 1)) + 1
    }
}

#[test]
fn deep_recursion_yields_a_capped_stack_and_exact_counts() {
    // 20,000 frames on a 64 MiB stack: far past the capture depth.
    let depth = thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| recurse_then_count(20_000))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(depth, 20_000);
}

#[test]
fn allocations_near_the_end_of_a_small_stack_are_counted() {
    // Recurse through most of a 256 KiB stack (about 150 KiB of frames of at
    // least 512 bytes each, debug or release), then allocate.
    fn eat(frames: usize) -> u64 {
        let pad = black_box([0u8; 512]);
        if frames == 0 {
            let p = Profiler::start();
            let v = black_box(vec![1u8; 100]);
            let s = p.stop();
            assert_eq!((s.alloc_count, s.total_bytes), (1, 100));
            u64::from(v[0]) + u64::from(pad[0])
        } else {
            eat(frames - 1) + u64::from(pad[frames % 512])
        }
    }
    let r = thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| eat(150))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(r, 1);
}

#[test]
fn many_threads_with_small_stacks_allocate_at_once() {
    let handles: Vec<_> = (0..16)
        .map(|_| {
            thread::Builder::new()
                .stack_size(32 * 1024)
                .spawn(|| count_in_scope(50))
                .unwrap()
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

mod signals {
    //! Allocation from a signal handler, raised synchronously on this thread
    //! (`raise` from code that is not inside the allocator, so the handler
    //! may allocate): the handler's frames sit on top of the interrupted
    //! ones, a hostile chain for the walk.
    use super::*;
    use std::ffi::c_int;
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

    extern "C" {
        fn signal(signum: c_int, handler: usize) -> usize;
        fn raise(sig: c_int) -> c_int;
    }
    const SIGUSR1: c_int = 10;

    static HANDLED: AtomicU64 = AtomicU64::new(0);

    extern "C" fn handler(_sig: c_int) {
        let v = black_box(vec![3u8; 333]);
        HANDLED.fetch_add(v.len() as u64, SeqCst);
    }

    #[test]
    fn a_signal_handler_that_allocates_is_counted_in_the_interrupted_scope() {
        // SAFETY: installs an `extern "C"` handler for SIGUSR1, which this
        // test alone raises.
        unsafe { signal(SIGUSR1, handler as extern "C" fn(c_int) as usize) };
        let p = Profiler::start();
        // SAFETY: raising a signal whose handler is installed above.
        assert_eq!(unsafe { raise(SIGUSR1) }, 0);
        let profile = p.stop_profile();
        assert_eq!(HANDLED.load(SeqCst), 333);
        let s = profile.stats();
        assert_eq!((s.alloc_count, s.total_bytes, s.current_bytes), (1, 333, 0));
        let per_site: u64 = profile.raw_call_sites().iter().map(|c| c.alloc_count).sum();
        assert_eq!(per_site, 1);
    }
}
