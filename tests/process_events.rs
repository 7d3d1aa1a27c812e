//! Process events around the allocator: thread-local destruction, thread
//! exit and slot reuse, `fork` in a multi-threaded program, `process::exit`
//! with live scopes, and `snapshot` / `reset` racing with allocating threads.
//!
//! Its own binary without the libtest harness: process figures need a quiet
//! process, and `fork` must not copy libtest's threads. Run with
//! `MOD_ALLOC_EVENT=<mode>` it is also the child process of some tests.
//! Knobs: `MOD_ALLOC_EVENTS_FORKS` (200), `MOD_ALLOC_EVENTS_THREADS` (4000),
//! `MOD_ALLOC_EVENTS_RESET_RACES` (5000), `MOD_ALLOC_EVENTS_SNAPSHOTS` (20000).
// Tests drive the raw allocator API step by step, one SAFETY note per block.
#![allow(clippy::multiple_unsafe_ops_per_block)]

#[path = "support/prng.rs"]
mod prng;

use mod_alloc::{AllocStats, ModAlloc, Profiler};
use prng::{knob, Prng};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering::*};
use std::sync::{mpsc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: ModAlloc = ModAlloc::new();

extern "C" {
    fn fork() -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
    fn _exit(code: i32) -> !;
}
const SIGKILL: i32 = 9;

fn main() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        std::process::exit(101);
    }));
    if let Ok(mode) = std::env::var("MOD_ALLOC_EVENT") {
        match mode.as_str() {
            "exit-with-live-scopes" => exit_with_live_scopes_child(),
            other => panic!("invalid value for env var 'MOD_ALLOC_EVENT': {other:?}"),
        }
    }
    let tests: &[(&str, fn())] = &[
        (
            "thread_local_destructors_allocate_and_free_other_threads_scope_blocks",
            thread_local_destructors_allocate_and_free_other_threads_scope_blocks,
        ),
        (
            "a_freed_block_of_an_exited_threads_scope_leaves_the_slots_next_owner_alone",
            a_freed_block_of_an_exited_threads_scope_leaves_the_slots_next_owner_alone,
        ),
        (
            "thousands_of_short_threads_recycle_slots_with_exact_totals",
            thousands_of_short_threads_recycle_slots_with_exact_totals,
        ),
        (
            "snapshot_while_eight_threads_allocate_is_sane_then_exact",
            snapshot_while_eight_threads_allocate_is_sane_then_exact,
        ),
        (
            "reset_while_threads_allocate_then_quiesce_is_exact",
            reset_while_threads_allocate_then_quiesce_is_exact,
        ),
        (
            "a_reset_racing_a_threads_slow_path_loses_none_of_its_later_events",
            a_reset_racing_a_threads_slow_path_loses_none_of_its_later_events,
        ),
        (
            "process_exit_with_live_scopes_exits_cleanly",
            process_exit_with_live_scopes_exits_cleanly,
        ),
        (
            "fork_while_threads_allocate_then_the_child_allocates_and_exits",
            fork_while_threads_allocate_then_the_child_allocates_and_exits,
        ),
        (
            "fork_while_other_threads_free_this_threads_scope_blocks_then_the_child_stops_it",
            fork_while_other_threads_free_this_threads_scope_blocks_then_the_child_stops_it,
        ),
        (
            "fork_while_other_threads_read_snapshots_then_a_child_thread_exits",
            fork_while_other_threads_read_snapshots_then_a_child_thread_exits,
        ),
    ];
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let mut ran = 0;
    for (name, test) in tests {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        test();
        ran += 1;
        println!("test {name} ... ok");
    }
    println!("test result: ok. {ran} passed; 0 failed");
}

/// Live bytes of the process window after `f` ran (and freed what it frees).
fn live_after(f: impl FnOnce()) -> u64 {
    GLOBAL.reset();
    f();
    GLOBAL.snapshot().current_bytes
}

/// A thread-local whose destructor allocates, frees the block it was given,
/// opens a scope, and leaks `leak` bytes.
struct Late {
    keep: Cell<Option<Vec<u8>>>,
    leak: Cell<usize>,
}

impl Drop for Late {
    fn drop(&mut self) {
        drop(black_box(vec![1u8; 50]));
        drop(self.keep.take());
        let p = Profiler::start();
        let v = black_box(vec![2u8; 10]);
        let s = p.stop();
        // With the thread's state torn down the scope may not open; if it
        // does, it is exact.
        assert!(
            s == AllocStats::default() || (s.alloc_count, s.total_bytes) == (1, 10),
            "scope in a thread-local destructor: {s:?}"
        );
        drop(v);
        if self.leak.get() > 0 {
            keep_forever(black_box(vec![3u8; self.leak.get()]));
        }
    }
}

/// Blocks leaked on purpose, held here so that memcheck sees them as
/// reachable rather than lost (storing needs no allocation).
static LEAKED: [AtomicPtr<u8>; 8] = [NULL; 8];
#[allow(clippy::declare_interior_mutable_const)] // only to build LEAKED
const NULL: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());

/// Leaks `v`, keeping a pointer to it in [`LEAKED`].
fn keep_forever(v: Vec<u8>) {
    let p = v.leak().as_mut_ptr();
    let slot = LEAKED.iter().find(|s| s.load(Relaxed).is_null()).unwrap();
    slot.store(p, Relaxed);
}

thread_local! {
    // Touched before the thread's first allocation: its destructor is
    // registered before mod-alloc's own and so (glibc runs them in reverse)
    // runs after the thread's accounting state was retired.
    static EARLY: Late = const { Late { keep: Cell::new(None), leak: Cell::new(0) } };
    // Touched after: runs before.
    static LATE: Late = const { Late { keep: Cell::new(None), leak: Cell::new(0) } };
}

/// Joined explicitly: `pthread_join` waits for the thread's thread-local
/// destructors, the end of `thread::scope` does not.
fn run_thread_with_late_destructors(a: Vec<u8>, b: Vec<u8>, leak: usize) {
    thread::spawn(move || {
        EARLY.with(|l| l.leak.set(leak));
        EARLY.with(|l| l.keep.set(Some(a)));
        LATE.with(|l| {
            l.keep.set(Some(b));
            l.leak.set(leak * 2);
        });
    })
    .join()
    .unwrap();
}

fn thread_local_destructors_allocate_and_free_other_threads_scope_blocks() {
    // A control thread with the same steps and nothing leaked measures what
    // spawning leaves live by itself (the first spawn initialises std's
    // lazy state, so it runs twice).
    let control =
        || run_thread_with_late_destructors(black_box(vec![0u8; 1]), black_box(vec![0u8; 1]), 0);
    live_after(control);
    let base = live_after(control);
    let live = live_after(|| {
        let p = Profiler::start();
        let (a, b) = (black_box(vec![0u8; 100]), black_box(vec![0u8; 200]));
        let sent = p.stats();
        assert_eq!((sent.current_bytes, sent.current_blocks), (300, 2));
        run_thread_with_late_destructors(a, b, 1000);
        let s = p.stop();
        assert_eq!(
            (s.current_bytes, s.current_blocks),
            (0, 0),
            "the destructors' frees were subtracted from this thread's scope: {s:?}"
        );
    });
    assert_eq!(
        live,
        base + 3000,
        "the destructors' leaks count in the process, and nothing else stays live"
    );
}

fn a_freed_block_of_an_exited_threads_scope_leaves_the_slots_next_owner_alone() {
    // The first thread exits with a scope open (abandoned at exit); its block
    // is freed after a second thread (which likely reuses the slot) opened
    // its own scope.
    let orphan = thread::spawn(|| {
        let p = Profiler::start();
        let v = black_box(vec![9u8; 4000]);
        std::mem::forget(p);
        v
    })
    .join()
    .unwrap();
    // Barriers, not channels: a blocking channel operation allocates.
    let opened = Barrier::new(2);
    let freed = Barrier::new(2);
    let s = thread::scope(|t| {
        let second = t.spawn(|| {
            let p = Profiler::start();
            let mine = black_box(vec![1u8; 64]);
            opened.wait();
            freed.wait();
            let s = p.stop();
            drop(mine);
            s
        });
        opened.wait();
        drop(orphan);
        freed.wait();
        second.join().unwrap()
    });
    assert_eq!(
        (
            s.alloc_count,
            s.total_bytes,
            s.current_bytes,
            s.current_blocks
        ),
        (1, 64, 64, 1),
        "{s:?}"
    );
}

fn thousands_of_short_threads_recycle_slots_with_exact_totals() {
    let total = knob("MOD_ALLOC_EVENTS_THREADS", 4000);
    let bytes = AtomicU64::new(0);
    let run = |n: u64| {
        for batch in 0..n.div_ceil(8) {
            // Joined explicitly (see `run_thread_with_late_destructors`).
            thread::scope(|t| {
                let handles: Vec<_> = (0..8)
                    .map(|k| {
                        let bytes = &bytes;
                        t.spawn(move || {
                            let size = 1 + ((batch * 8 + k) % 500) as usize;
                            let p = Profiler::start();
                            let kept = black_box(vec![5u8; size]);
                            drop(black_box(vec![6u8; 2 * size]));
                            let s = p.stop();
                            assert_eq!(
                                (s.alloc_count, s.total_bytes, s.peak_bytes, s.current_bytes),
                                (2, 3 * size as u64, 3 * size as u64, size as u64),
                                "thread {batch}/{k}"
                            );
                            bytes.fetch_add(3 * size as u64, Relaxed);
                            drop(kept);
                        })
                    })
                    .collect();
                for h in handles {
                    h.join().unwrap();
                }
            });
        }
    };
    let base = live_after(|| run(8));
    GLOBAL.reset();
    bytes.store(0, Relaxed);
    run(total);
    let s = GLOBAL.snapshot();
    assert_eq!(s.current_bytes, base, "{s:?}");
    assert!(s.total_bytes >= bytes.load(Relaxed), "{s:?}");
    assert_eq!(s.alloc_count - s.free_count, s.current_blocks, "{s:?}");
}

/// Threads that allocate and free same-sized blocks until told to stop,
/// tallying what they did; they park at `park` when `pause` is set.
struct Hammer {
    stop: AtomicBool,
    pause: AtomicBool,
    allocs: AtomicU64,
    bytes: AtomicU64,
    frees: AtomicU64,
    /// Allocations so far, published as they happen.
    progress: AtomicU64,
}

impl Hammer {
    const fn new() -> Hammer {
        Hammer {
            stop: AtomicBool::new(false),
            pause: AtomicBool::new(false),
            allocs: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            progress: AtomicU64::new(0),
        }
    }

    /// Waits until the threads made `n` more allocations.
    fn wait_progress(&self, n: u64) {
        let start = self.progress.load(Relaxed);
        while self.progress.load(Relaxed) - start < n {
            thread::yield_now();
        }
    }

    /// One thread's loop: keeps at most 16 blocks of at most `max` bytes.
    fn run(&self, seed: u64, max: usize, park: &Barrier) {
        let mut rng = Prng::new(seed);
        let mut keep: Vec<Vec<u8>> = Vec::with_capacity(16);
        let (mut allocs, mut bytes, mut frees) = (0, 0, 0);
        loop {
            if self.pause.load(Acquire) || self.stop.load(Acquire) {
                // Free every block (so none outlives a reset made while
                // parked), publish the tallies, then park (the main thread
                // reads them while everyone is parked).
                frees += keep.len() as u64;
                keep.clear();
                self.allocs.fetch_add(std::mem::take(&mut allocs), SeqCst);
                self.bytes.fetch_add(std::mem::take(&mut bytes), SeqCst);
                self.frees.fetch_add(std::mem::take(&mut frees), SeqCst);
                let stopping = self.stop.load(Acquire);
                park.wait();
                if stopping {
                    return;
                }
                park.wait();
                continue;
            }
            let size = rng.size(max);
            if keep.len() == 16 {
                let i = rng.below(16) as usize;
                drop(keep.swap_remove(i));
                frees += 1;
            }
            keep.push(black_box(vec![0u8; size]));
            allocs += 1;
            bytes += size as u64;
            self.progress.fetch_add(1, Relaxed);
            if allocs % 64 == 0 {
                // Let the main thread run (valgrind runs one thread at a time).
                thread::yield_now();
            }
        }
    }

    fn clear_tallies(&self) {
        self.allocs.store(0, SeqCst);
        self.bytes.store(0, SeqCst);
        self.frees.store(0, SeqCst);
    }

    fn tallies(&self) -> (u64, u64, u64) {
        (
            self.allocs.load(SeqCst),
            self.bytes.load(SeqCst),
            self.frees.load(SeqCst),
        )
    }

    /// Parks the `n` threads, runs `f`, resumes them.
    fn paused<R>(&self, park: &Barrier, f: impl FnOnce() -> R) -> R {
        self.pause.store(true, Release);
        park.wait();
        self.pause.store(false, Release);
        let r = f();
        park.wait();
        r
    }
}

fn snapshot_while_eight_threads_allocate_is_sane_then_exact() {
    // Read before the window starts: reading a set variable allocates.
    let snapshots = knob("MOD_ALLOC_EVENTS_SNAPSHOTS", 20_000);
    let h = Hammer::new();
    let park = Barrier::new(9);
    thread::scope(|t| {
        for i in 0..8 {
            let (h, park) = (&h, &park);
            t.spawn(move || h.run(i, 3000, park));
        }
        // Window starts with every thread parked and nothing of theirs live.
        h.paused(&park, || {
            GLOBAL.reset();
            h.clear_tallies();
        });
        let mut last = AllocStats::default();
        // At least `snapshots` of them, and until the threads have allocated
        // in the window: a runner that serialises threads (valgrind) may not
        // have run them yet when the snapshots are done.
        let deadline = Instant::now() + Duration::from_secs(60);
        for taken in 1.. {
            if taken > snapshots {
                if last.alloc_count > 0 {
                    break;
                }
                assert!(Instant::now() < deadline, "the threads never allocated");
                thread::yield_now();
            }
            let s = GLOBAL.snapshot();
            // Each thread holds at most 16 blocks of 3000 bytes.
            assert!(s.current_bytes <= 8 * 16 * 3000 + 4096, "{s:?}");
            assert!(s.alloc_count >= last.alloc_count, "{s:?} after {last:?}");
            assert!(s.total_bytes >= last.total_bytes, "{s:?} after {last:?}");
            // The process peak under concurrency is documented to be within
            // (threads - 1) x 64 KiB, so one snapshot (which reports at
            // least the live bytes it saw) may exceed a later one by that.
            assert!(
                s.peak_bytes + 7 * 64 * 1024 >= last.peak_bytes,
                "{s:?} after {last:?}"
            );
            assert!(s.peak_bytes >= s.current_bytes, "{s:?}");
            assert!(s.total_bytes <= s.alloc_count * 3000, "{s:?}");
            last = s;
        }
        h.paused(&park, || {
            let s = GLOBAL.snapshot();
            let (allocs, bytes, frees) = h.tallies();
            assert!(allocs > 0);
            assert_eq!(
                (s.alloc_count, s.total_bytes, s.free_count),
                (allocs, bytes, frees),
                "{s:?}"
            );
            assert_eq!(s.current_blocks, allocs - frees, "{s:?}");
        });
        h.stop.store(true, Release);
        park.wait();
    });
}

fn reset_while_threads_allocate_then_quiesce_is_exact() {
    let h = Hammer::new();
    let park = Barrier::new(5);
    thread::scope(|t| {
        for i in 0..4 {
            let (h, park) = (&h, &park);
            // Blocks of up to 100 KB take the slow path often (each thread
            // publishes its live bytes every 64 KiB of drift).
            t.spawn(move || h.run(100 + i, 100_000, park));
        }
        for _ in 0..2000 {
            GLOBAL.reset();
            let s = GLOBAL.snapshot();
            assert!(s.current_bytes <= 4 * 16 * 100_000 + 4096, "{s:?}");
        }
        GLOBAL.reset();
        // Every thread must roll into the last window by itself: what they
        // do from now on is counted exactly, whatever they did before.
        h.wait_progress(10_000);
        let before = h.paused(&park, || (GLOBAL.snapshot(), h.tallies()));
        h.wait_progress(10_000);
        let after = h.paused(&park, || (GLOBAL.snapshot(), h.tallies()));
        h.stop.store(true, Release);
        park.wait();
        let (s0, (a0, b0, _)) = before;
        let (s1, (a1, b1, _)) = after;
        assert!(a1 > a0);
        assert_eq!(
            (
                s1.alloc_count - s0.alloc_count,
                s1.total_bytes - s0.total_bytes
            ),
            (a1 - a0, b1 - b0),
            "what the threads did after the resets: {s0:?} then {s1:?}"
        );
    });
}

fn a_reset_racing_a_threads_slow_path_loses_none_of_its_later_events() {
    let rounds = knob("MOD_ALLOC_EVENTS_RESET_RACES", 5_000);
    let (go, parked, snapped, small_done) = (
        Barrier::new(2),
        Barrier::new(2),
        Barrier::new(2),
        Barrier::new(2),
    );
    let stop = AtomicBool::new(false);
    thread::scope(|t| {
        t.spawn(|| loop {
            go.wait();
            if stop.load(Acquire) {
                return;
            }
            // 100 KB blocks move the live bytes by more than the 64 KiB
            // slack: each event takes the slow path, racing the reset.
            drop(black_box(vec![0u8; 100_000]));
            parked.wait();
            snapped.wait();
            // A small block stays in the band (the fast path).
            drop(black_box(vec![0u8; 16]));
            small_done.wait();
        });
        let mut rng = Prng::new(7);
        for round in 0..rounds {
            go.wait();
            // Sweep the reset across the thread's two slow-path events.
            for _ in 0..rng.below(400) {
                std::hint::spin_loop();
            }
            GLOBAL.reset();
            parked.wait();
            let before = GLOBAL.snapshot();
            snapped.wait();
            small_done.wait();
            let after = GLOBAL.snapshot();
            assert_eq!(
                (
                    after.alloc_count - before.alloc_count,
                    after.total_bytes - before.total_bytes,
                ),
                (1, 16),
                "round {round}: the thread's allocation after the reset is missing \
                 from the window: {before:?} then {after:?}"
            );
        }
        stop.store(true, Release);
        go.wait();
    });
}

/// Child mode: live scopes on several threads (one joined through a handle,
/// one nested), threads allocating and reading snapshots, then
/// `process::exit(7)` from the main thread.
fn exit_with_live_scopes_child() -> ! {
    let outer = Profiler::start();
    let _kept = black_box(vec![1u8; 100]);
    let inner = Profiler::start();
    let h = inner.handle();
    let (tx, rx) = mpsc::channel::<()>();
    let ready = Barrier::new(4);
    let rx = Mutex::new(rx);
    thread::scope(|t| {
        let (h, ready, rx) = (&h, &ready, &rx);
        t.spawn(move || {
            let _g = h.enter();
            let _v = black_box(vec![2u8; 10]);
            ready.wait();
            let _ = rx.lock().unwrap().recv();
        });
        t.spawn(move || {
            let _p = Profiler::start();
            let _q = Profiler::start();
            ready.wait();
            loop {
                drop(black_box(vec![3u8; 33]));
            }
        });
        t.spawn(move || {
            ready.wait();
            loop {
                black_box(GLOBAL.snapshot());
            }
        });
        ready.wait();
        let _v = black_box(vec![4u8; 1000]);
        let _ = (&outer, &inner, &tx);
        std::process::exit(7);
    })
}

fn process_exit_with_live_scopes_exits_cleanly() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("MOD_ALLOC_EVENT", "exit-with-live-scopes")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "child: {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits for `pid` at most `limit`; kills it and returns `None` past that.
fn wait_child(pid: i32, limit: Duration) -> Option<i32> {
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let mut status = 0;
        // SAFETY: plain libc call on our own child.
        let r = unsafe { waitpid(pid, &mut status, 0) };
        tx.send((r, status)).ok();
    });
    let got = rx.recv_timeout(limit).ok();
    if got.is_none() {
        // SAFETY: plain libc call on our own child.
        unsafe { kill(pid, SIGKILL) };
    }
    waiter.join().unwrap();
    got.map(|(r, status)| {
        assert_eq!(r, pid);
        status
    })
}

/// What the other threads do while the main thread forks.
#[derive(Clone, Copy)]
struct Background {
    /// Threads freeing blocks of the main thread's open scope.
    freers: usize,
    /// Threads reading `snapshot` in a loop.
    readers: usize,
    /// Threads allocating in scopes.
    allocators: usize,
}

/// The child of a fork: stops the scope open at the fork, runs a scope,
/// reads a snapshot, starts and joins a thread (which retires its slot),
/// resets. Returns the exit code (0: all good).
fn after_fork_in_child(p: Profiler) -> i32 {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = p.stop();
        let q = Profiler::start();
        let v = black_box(vec![1u8; 100]);
        let s = q.stop();
        assert_eq!(
            (s.alloc_count, s.total_bytes, s.current_bytes),
            (1, 100, 100)
        );
        drop(v);
        black_box(GLOBAL.snapshot());
        thread::spawn(|| drop(black_box(vec![2u8; 10])))
            .join()
            .unwrap();
        GLOBAL.reset();
        drop(black_box(vec![3u8; 30]));
        let s = GLOBAL.snapshot();
        assert_eq!((s.alloc_count, s.total_bytes), (1, 30), "{s:?}");
    }));
    i32::from(r.is_err())
}

/// Forks `MOD_ALLOC_EVENTS_FORKS` times while `bg` runs; each child runs
/// [`after_fork_in_child`] and must exit with 0 within 20 s.
fn fork_repeatedly_while(bg: Background) {
    let forks = knob("MOD_ALLOC_EVENTS_FORKS", 200);
    let stop = AtomicBool::new(false);
    let queue: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
    thread::scope(|t| {
        for _ in 0..bg.freers {
            t.spawn(|| {
                while !stop.load(Relaxed) {
                    let batch = std::mem::take(&mut *queue.lock().unwrap());
                    for v in batch {
                        drop(black_box(v));
                    }
                    thread::yield_now();
                }
            });
        }
        for _ in 0..bg.readers {
            t.spawn(|| {
                while !stop.load(Relaxed) {
                    for _ in 0..100 {
                        black_box(GLOBAL.snapshot());
                    }
                    // Leave the forking thread some of the 2 cores.
                    thread::yield_now();
                }
            });
        }
        // They start no threads: std's own thread start takes a lock
        // (stack-overflow thread info) that a fork can leave held in the
        // child, where the child's thread start then waits forever; that is
        // std's limit, not mod-alloc's (seen once in ~1,000 forks).
        for _ in 0..bg.allocators {
            t.spawn(|| {
                let mut keep = Vec::with_capacity(8);
                while !stop.load(Relaxed) {
                    let p = Profiler::start();
                    keep.push(black_box(vec![0u8; 100]));
                    if keep.len() == 8 {
                        keep.clear();
                    }
                    black_box(p.stop());
                }
            });
        }
        let mut failure = None;
        for i in 0..forks {
            let p = Profiler::start();
            if bg.freers > 0 {
                let blocks: Vec<Vec<u8>> = (0..256).map(|_| black_box(vec![0u8; 64])).collect();
                queue.lock().unwrap().extend(blocks);
            }
            // SAFETY: plain libc call; the child only runs
            // `after_fork_in_child` and leaves with `_exit`.
            let pid = unsafe { fork() };
            if pid == 0 {
                let code = after_fork_in_child(p);
                // SAFETY: leaves the child without running the parent's
                // atexit handlers or touching its other threads' state.
                unsafe { _exit(code) };
            }
            assert!(pid > 0, "fork failed");
            drop(p);
            let status = wait_child(pid, Duration::from_secs(20));
            if status != Some(0) {
                failure = Some((i, status));
                break;
            }
        }
        stop.store(true, Relaxed);
        assert_eq!(
            failure, None,
            "(fork number, child status): None = the child hung, Some(s) = exit code s << 8"
        );
    });
}

fn fork_while_other_threads_read_snapshots_then_a_child_thread_exits() {
    fork_repeatedly_while(Background {
        freers: 0,
        readers: 2,
        allocators: 0,
    });
}

fn fork_while_other_threads_free_this_threads_scope_blocks_then_the_child_stops_it() {
    fork_repeatedly_while(Background {
        freers: 2,
        readers: 0,
        allocators: 0,
    });
}

fn fork_while_threads_allocate_then_the_child_allocates_and_exits() {
    fork_repeatedly_while(Background {
        freers: 0,
        readers: 0,
        allocators: 2,
    });
}
