//! Exact per-thread scope figures: counts, bytes, peaks, nesting, and blocks
//! that cross scope or thread boundaries.
// Tests drive the raw allocator API step by step, one SAFETY note per block.
#![allow(clippy::multiple_unsafe_ops_per_block)]

use mod_alloc::{AllocStats, ModAlloc, Profiler};
use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::hint::black_box;
use std::sync::{mpsc, Barrier};
use std::thread;

#[global_allocator]
static GLOBAL: ModAlloc = ModAlloc::new();

fn boxes(n: usize, size: usize) -> Vec<Box<[u8]>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(vec![1u8; size].into_boxed_slice());
    }
    out
}

#[test]
fn n_boxes_count_n_allocations_of_their_size() {
    let p = Profiler::start();
    let b: Vec<Box<[u8; 48]>> = (0..10).map(|_| Box::new([0u8; 48])).collect();
    let s = p.stop();
    // 10 boxes + the Vec's buffer (exact size: the iterator's length is known).
    assert_eq!(s.alloc_count, 11);
    assert_eq!(s.total_bytes, 10 * 48 + 10 * 8);
    assert_eq!(s.current_bytes, 10 * 48 + 10 * 8);
    assert_eq!(s.current_blocks, 11);
    drop(b);
}

#[test]
fn an_empty_scope_counts_nothing() {
    let p = Profiler::start();
    let s = p.stop();
    assert_eq!(s, AllocStats::default());
}

#[test]
fn freed_blocks_leave_the_peak_and_not_the_current() {
    let p = Profiler::start();
    let a = black_box(vec![0u8; 1000]);
    let b = black_box(vec![0u8; 500]);
    drop(a);
    let c = black_box(vec![0u8; 200]);
    drop(b);
    drop(c);
    let s = p.stop();
    assert_eq!(s.alloc_count, 3);
    assert_eq!(s.total_bytes, 1700);
    assert_eq!(s.peak_bytes, 1500);
    assert_eq!(s.current_bytes, 0);
    assert_eq!(s.free_count, 3);
}

#[test]
fn vec_growth_counts_each_realloc_as_one_allocation() {
    let p = Profiler::start();
    let mut v: Vec<u64> = Vec::new();
    for i in 0..17 {
        v.push(black_box(i));
    }
    let s = p.stop();
    // RawVec grows 4 -> 8 -> 16 -> 32 elements: one alloc and three reallocs.
    assert_eq!(s.alloc_count, 4);
    assert_eq!(s.total_bytes, (4 + 8 + 16 + 32) * 8);
    assert_eq!(
        s.peak_bytes,
        32 * 8,
        "live bytes move straight to the new size"
    );
    assert_eq!(s.current_bytes, 32 * 8);
    assert_eq!(s.free_count, 3);
    drop(v);
}

#[test]
fn realloc_grow_and_shrink_move_live_bytes() {
    let layout = Layout::from_size_align(100, 8).unwrap();
    let p = Profiler::start();
    // SAFETY: non-zero layout; every pointer is checked and given back below.
    unsafe {
        let a = alloc(layout);
        assert!(!a.is_null());
        a.write_bytes(7, 100);
        let b = realloc(a, layout, 300);
        assert!(!b.is_null());
        assert_eq!(*b.add(99), 7, "data survives the grow");
        let c = realloc(b, Layout::from_size_align(300, 8).unwrap(), 50);
        assert!(!c.is_null());
        assert_eq!(*c.add(49), 7, "data survives the shrink");
        let s = p.stats();
        assert_eq!(s.alloc_count, 3);
        assert_eq!(s.total_bytes, 450);
        assert_eq!(s.peak_bytes, 300);
        assert_eq!(s.current_bytes, 50);
        dealloc(c, Layout::from_size_align(50, 8).unwrap());
    }
    let s = p.stop();
    assert_eq!(s.current_bytes, 0);
    assert_eq!(s.free_count, 3);
}

#[test]
fn blocks_past_two_gib_count_and_move_like_small_ones() {
    // Past 2 GiB a block leaves the allocator's fast path (its size test is
    // one compare with a 32-bit bound) for the general one; both lay blocks
    // out alike, so either path can free or resize the other's. Zeroed, so
    // the pages are mapped lazily and cost nothing until touched.
    const BIG: usize = (1 << 31) + 4096;
    let big = Layout::from_size_align(BIG, 8).unwrap();
    let small = Layout::from_size_align(100, 8).unwrap();
    let p = Profiler::start();
    // SAFETY: non-zero layouts; every pointer is checked and given back with
    // the layout it has at that point.
    unsafe {
        let a = alloc_zeroed(big);
        assert!(!a.is_null());
        assert_eq!(*a.add(BIG - 1), 0);
        a.write_bytes(9, 100);
        // Big (general path) to small (fast path), and back.
        let b = realloc(a, big, 100);
        assert!(!b.is_null());
        assert_eq!(*b.add(99), 9, "data survives the shrink");
        let c = realloc(b, small, BIG);
        assert!(!c.is_null());
        assert_eq!(*c.add(99), 9, "data survives the grow");
        let s = p.stats();
        assert_eq!(s.alloc_count, 3);
        assert_eq!(s.total_bytes, (2 * BIG + 100) as u64);
        assert_eq!(s.peak_bytes, BIG as u64);
        assert_eq!(s.current_bytes, BIG as u64);
        dealloc(c, big);
    }
    let s = p.stop();
    assert_eq!(s.current_bytes, 0);
    assert_eq!(s.free_count, 3);
}

#[test]
fn alloc_zeroed_counts_once_and_zeroes() {
    let layout = Layout::from_size_align(64, 16).unwrap();
    let p = Profiler::start();
    // SAFETY: non-zero layout; freed below with the same layout.
    unsafe {
        // black_box: an optimising build may otherwise drop an allocation
        // whose contents it can predict, and the test would count nothing.
        let a = black_box(alloc_zeroed(black_box(layout)));
        assert!(!a.is_null());
        assert!((0..64).all(|i| *a.add(i) == 0));
        dealloc(a, layout);
    }
    let s = p.stop();
    assert_eq!((s.alloc_count, s.total_bytes, s.current_bytes), (1, 64, 0));
}

#[test]
fn every_alignment_up_to_4096_keeps_data_and_counts_only_user_bytes() {
    let p = Profiler::start();
    let mut align = 1;
    let mut expected = 0u64;
    while align <= 4096 {
        let layout = Layout::from_size_align(24, align).unwrap();
        // SAFETY: non-zero layout; freed below with the same layout.
        unsafe {
            let a = alloc(layout);
            assert!(!a.is_null());
            assert_eq!(a as usize % align, 0, "alignment {align}");
            a.write_bytes(0xAB, 24);
            let b = realloc(a, layout, 5000);
            assert_eq!(b as usize % align, 0, "alignment {align} after realloc");
            assert!((0..24).all(|i| *b.add(i) == 0xAB));
            dealloc(b, Layout::from_size_align(5000, align).unwrap());
        }
        expected += 24 + 5000;
        align *= 2;
    }
    let s = p.stop();
    assert_eq!(s.alloc_count, 26);
    assert_eq!(s.total_bytes, expected);
    assert_eq!(s.current_bytes, 0);
}

#[test]
fn failed_alloc_counts_nothing() {
    let p = Profiler::start();
    let huge = Layout::from_size_align(isize::MAX as usize - 8, 1).unwrap();
    // SAFETY: non-zero size; null is the expected result. black_box keeps an
    // optimising build from dropping the call and assuming success.
    assert!(black_box(unsafe { alloc(black_box(huge)) }).is_null());
    let s = p.stop();
    assert_eq!(s.alloc_count, 0);
}

#[test]
fn nested_scopes_include_inner_blocks_and_keep_the_outer_peak() {
    let outer = Profiler::start();
    let a = black_box(vec![0u8; 100]);
    let inner = Profiler::start();
    let b = black_box(vec![0u8; 300]);
    drop(b);
    let c = black_box(vec![0u8; 50]);
    let si = inner.stop();
    drop(a);
    let so = outer.stop();
    assert_eq!(
        (
            si.alloc_count,
            si.total_bytes,
            si.peak_bytes,
            si.current_bytes
        ),
        (2, 350, 300, 50)
    );
    assert_eq!(so.alloc_count, 3);
    assert_eq!(so.total_bytes, 450);
    assert_eq!(so.peak_bytes, 400, "100 of the outer + 300 of the inner");
    assert_eq!(so.current_bytes, 50);
    drop(c);
}

#[test]
fn freeing_an_older_block_inside_a_scope_leaves_it_alone() {
    let old = black_box(vec![0u8; 4096]);
    let p = Profiler::start();
    drop(old);
    let v = black_box(vec![0u8; 10]);
    let s = p.stop();
    assert_eq!(
        (s.alloc_count, s.total_bytes, s.peak_bytes, s.current_bytes),
        (1, 10, 10, 10)
    );
    drop(v);
}

#[test]
fn freeing_an_outer_block_inside_an_inner_scope_lowers_the_outer_only() {
    let outer = Profiler::start();
    let a = black_box(vec![0u8; 1000]);
    let inner = Profiler::start();
    drop(a);
    let b = black_box(vec![0u8; 600]);
    let si = inner.stop();
    let so = outer.stop();
    assert_eq!((si.peak_bytes, si.current_bytes), (600, 600));
    assert_eq!(so.peak_bytes, 1000, "1000 then 600: never both");
    assert_eq!(so.current_bytes, 600);
    drop(b);
}

#[test]
fn a_closed_inner_scopes_block_freed_later_is_subtracted_from_the_outer() {
    let outer = Profiler::start();
    let inner = Profiler::start();
    let b = black_box(vec![0u8; 700]);
    let si = inner.stop();
    assert_eq!(si.current_bytes, 700);
    drop(b);
    let so = outer.stop();
    assert_eq!(
        (so.alloc_count, so.peak_bytes, so.current_bytes),
        (1, 700, 0)
    );
}

#[test]
fn realloc_of_an_older_block_becomes_the_scopes() {
    let mut v: Vec<u8> = Vec::with_capacity(10);
    let p = Profiler::start();
    v.reserve_exact(100);
    let s = p.stop();
    assert_eq!(
        (s.alloc_count, s.total_bytes, s.current_bytes, s.free_count),
        (1, 100, 100, 0)
    );
    drop(v);
}

/// A thread started before the scope (spawning allocates on the spawning
/// thread) that drops whatever it is sent.
fn dropper() -> (mpsc::SyncSender<Vec<u8>>, thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(1);
    let t = thread::spawn(move || {
        for v in rx {
            drop(black_box(v));
        }
    });
    (tx, t)
}

#[test]
fn a_block_freed_by_another_thread_is_subtracted_from_its_scope() {
    let (tx, t) = dropper();
    let p = Profiler::start();
    let v = black_box(vec![0u8; 256]);
    tx.send(v).unwrap();
    // A zero-capacity round trip would allocate; instead wait for the drop by
    // closing the channel and joining outside the scope's arithmetic.
    let before_join = p.stats();
    drop(tx);
    t.join().unwrap();
    let s = p.stop();
    assert_eq!((before_join.alloc_count, before_join.total_bytes), (1, 256));
    assert_eq!(
        (
            s.alloc_count,
            s.peak_bytes,
            s.current_bytes,
            s.current_blocks
        ),
        (1, 256, 0, 0)
    );
}

#[test]
fn another_threads_block_freed_here_leaves_the_scope_alone() {
    let v = thread::spawn(|| black_box(vec![0u8; 512])).join().unwrap();
    let p = Profiler::start();
    drop(v);
    let s = p.stop();
    assert_eq!(s, AllocStats::default());
}

#[test]
fn a_scope_joined_from_four_threads_counts_them_all() {
    let slot: std::sync::Mutex<Option<mod_alloc::ScopeHandle>> = std::sync::Mutex::new(None);
    let go = Barrier::new(5);
    let done = Barrier::new(5);
    let stopped = Barrier::new(5);
    thread::scope(|t| {
        for _ in 0..4 {
            t.spawn(|| {
                go.wait();
                let h = slot.lock().unwrap().clone().unwrap();
                let kept = h.run(|| {
                    let keep = black_box(vec![0u8; 100]);
                    drop(black_box(vec![0u8; 1000]));
                    keep
                });
                done.wait();
                stopped.wait();
                drop(kept);
                drop(h);
            });
        }
        let p = Profiler::start();
        let h = p.handle();
        *slot.lock().unwrap() = Some(h);
        go.wait();
        done.wait();
        let s = p.stop();
        assert_eq!(s.alloc_count, 4 * 2);
        assert_eq!(s.total_bytes, 4 * 1100);
        assert!(s.peak_bytes >= 400 + 1000, "peak {}", s.peak_bytes);
        assert_eq!(s.current_bytes, 4 * 100, "each thread keeps its 100 bytes");
        assert_eq!(s.current_blocks, 4);
        stopped.wait();
    });
}

#[test]
fn a_panic_inside_a_scope_closes_it_and_the_next_scope_is_exact() {
    let r = std::panic::catch_unwind(|| {
        let _p = Profiler::start();
        let _v = black_box(vec![0u8; 64]);
        panic!("boom");
    });
    assert!(r.is_err());
    let p = Profiler::start();
    let v = black_box(vec![0u8; 8]);
    let s = p.stop();
    assert_eq!((s.alloc_count, s.total_bytes), (1, 8));
    drop(v);
}

#[test]
fn scope_figures_stay_exact_while_other_threads_allocate() {
    let stop = std::sync::atomic::AtomicBool::new(false);
    let start = Barrier::new(3);
    thread::scope(|t| {
        for _ in 0..2 {
            t.spawn(|| {
                start.wait();
                let mut keep = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    keep.push(black_box(vec![0u8; 33]));
                    if keep.len() > 100 {
                        keep.clear();
                    }
                }
            });
        }
        start.wait();
        for _ in 0..300 {
            let p = Profiler::start();
            let v = boxes(5, 40);
            drop(v);
            let w = black_box(vec![0u8; 7]);
            let s = p.stop();
            assert_eq!(s.alloc_count, 7);
            assert_eq!(s.total_bytes, 5 * 40 + 5 * 16 + 7);
            assert_eq!(s.peak_bytes, 5 * 40 + 5 * 16);
            assert_eq!(s.current_bytes, 7);
            drop(w);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

#[test]
fn blocks_sent_to_another_thread_and_freed_there_balance_the_scope() {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let consumer = thread::spawn(move || {
        let mut n = 0;
        for v in rx {
            n += v.len();
        }
        n
    });
    let p = Profiler::start();
    for i in 0..100 {
        tx.send(vec![0u8; 10 + i]).unwrap();
    }
    drop(tx);
    let n = consumer.join().unwrap();
    let s = p.stop();
    assert_eq!(n, 100 * 10 + 99 * 100 / 2);
    assert_eq!(s.current_bytes, 0, "every block was freed by the consumer");
    assert_eq!(s.current_blocks, 0);
}
