//! Stress: many threads run random alloc / alloc_zeroed / realloc / free
//! sequences (sizes 1..=4096, alignments 1..=4096) and hand blocks to each
//! other to free, while each thread runs its own scopes (sometimes nested) and
//! checks their figures against a model of what it did. Afterwards the process
//! counters must balance exactly against the sum of what every thread did, and
//! every block's bytes must have survived each realloc and hand-over.
//!
//! Its own binary without the libtest harness: libtest's threads allocate too,
//! and would blur the process figures. Knobs (for `scripts/stress-long` and
//! `scripts/memcheck`): `MOD_ALLOC_STRESS_THREADS` (64), `MOD_ALLOC_STRESS_OPS`
//! (5000 per thread), `MOD_ALLOC_STRESS_ROUNDS` (1), `MOD_ALLOC_STRESS_SEED`.
// Tests drive the raw allocator API step by step, one SAFETY note per block.
#![allow(clippy::multiple_unsafe_ops_per_block)]

#[path = "support/prng.rs"]
mod prng;

use mod_alloc::{AllocStats, ModAlloc, Profiler};
use prng::{knob, Prng};
use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::Barrier;
use std::thread;

#[global_allocator]
static GLOBAL: ModAlloc = ModAlloc::new();

/// Most blocks a thread holds at once.
const MAX_LIVE: usize = 48;
/// Mailbox slots per thread.
const MAIL_SLOTS: usize = 16;
/// Largest size and alignment.
const MAX: usize = 4096;

fn main() {
    abort_on_panic();
    let threads = knob("MOD_ALLOC_STRESS_THREADS", 64) as usize;
    let ops = knob("MOD_ALLOC_STRESS_OPS", 5000);
    let rounds = knob("MOD_ALLOC_STRESS_ROUNDS", 1);
    let seed = knob("MOD_ALLOC_STRESS_SEED", 0x5eed);
    for round in 0..rounds {
        let seed = seed.wrapping_add(round);
        mixed_ops_across_threads_balance_process_and_scope_figures(threads, ops, seed);
        println!(
            "test mixed_ops_across_threads_balance_process_and_scope_figures \
             ({threads} threads x {ops} ops, seed {seed}) ... ok"
        );
    }
    println!("test result: ok. {rounds} passed; 0 failed");
}

/// A panic on any thread ends the process (the others would wait at a
/// barrier forever).
fn abort_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        std::process::exit(101);
    }));
}

/// A block this thread holds.
#[derive(Clone, Copy)]
struct Block {
    ptr: *mut u8,
    size: usize,
    align: usize,
    fill: u8,
    /// 0: not in the open scopes; 1: in the outer scope; 2: in the inner too.
    level: u8,
}

/// One mailbox slot: 0 empty, 1 being written, 2 full.
#[derive(Default)]
struct Mail {
    state: AtomicU8,
    ptr: AtomicPtr<u8>,
    /// size | align << 16 | fill << 32 | sender << 40 | counted << 63
    meta: AtomicU64,
}

/// What a thread did, for the process figures.
#[derive(Default)]
struct Tally {
    allocs: AtomicU64,
    bytes: AtomicU64,
    frees: AtomicU64,
}

/// Shared state of one run, allocated before the process window starts.
struct World {
    mail: Vec<Vec<Mail>>,
    tally: Vec<Tally>,
    /// Blocks of a thread's open scope handed to others and not yet freed.
    outstanding: Vec<AtomicU64>,
    finished: AtomicUsize,
    threads: usize,
}

/// Expected figures of one scope, updated op by op.
#[derive(Default, Clone, Copy)]
struct Model {
    allocs: u64,
    bytes: u64,
    blocks: u64,
    /// Live bytes if the blocks handed over were freed at once / at stop.
    live_low: u64,
    live_high: u64,
    peak_low: u64,
    peak_high: u64,
}

impl Model {
    fn alloc(&mut self, size: usize) {
        self.allocs += 1;
        self.bytes += size as u64;
        self.blocks += 1;
        self.grow(size as u64);
    }

    fn grow(&mut self, size: u64) {
        self.live_low += size;
        self.live_high += size;
        self.peak_low = self.peak_low.max(self.live_low);
        self.peak_high = self.peak_high.max(self.live_high);
    }

    fn free(&mut self, size: usize) {
        self.blocks -= 1;
        self.live_low -= size as u64;
        self.live_high -= size as u64;
    }

    /// Realloc of a block that was (`was_in`) or was not in this scope.
    fn realloc(&mut self, was_in: bool, old: usize, new: usize) {
        if was_in {
            self.live_low -= old as u64;
            self.live_high -= old as u64;
        } else {
            self.blocks += 1;
        }
        self.allocs += 1;
        self.bytes += new as u64;
        self.grow(new as u64);
    }

    /// The block left for another thread, which frees it before the stop.
    fn hand_over(&mut self, size: usize) {
        self.blocks -= 1;
        self.live_low -= size as u64;
    }

    /// Checks measured figures `s`; formats only on failure (a message built
    /// up front would allocate inside the enclosing scope).
    fn check(&self, s: &AllocStats, what: &str, thread: usize, seed: u64) {
        let ctx = || format!("{what} of thread {thread} (seed {seed}): measured {s:?}");
        assert_eq!(s.alloc_count, self.allocs, "alloc_count of {}", ctx());
        assert_eq!(s.total_bytes, self.bytes, "total_bytes of {}", ctx());
        assert_eq!(s.current_bytes, self.live_low, "current_bytes of {}", ctx());
        assert_eq!(s.current_blocks, self.blocks, "current_blocks of {}", ctx());
        assert_eq!(
            s.free_count,
            self.allocs - self.blocks,
            "free_count of {}",
            ctx()
        );
        assert!(
            (self.peak_low..=self.peak_high).contains(&s.peak_bytes),
            "peak_bytes of {} outside {}..={}",
            ctx(),
            self.peak_low,
            self.peak_high
        );
    }
}

fn fill_check(ptr: *mut u8, len: usize, fill: u8, reference: &mut [u8; MAX], what: &str) {
    reference[..len].fill(fill);
    // SAFETY: `ptr` is a live block of at least `len` initialised bytes (the
    // caller wrote them with `fill`).
    let got = unsafe { std::slice::from_raw_parts(ptr, len) };
    assert!(
        got == &reference[..len],
        "{what}: block bytes changed (expected all {fill:#04x})"
    );
}

struct Worker<'w> {
    id: usize,
    w: &'w World,
    rng: Prng,
    live: [Option<Block>; MAX_LIVE],
    reference: Box<[u8; MAX]>,
    outer: Model,
    inner: Option<Model>,
    seed: u64,
}

impl Worker<'_> {
    fn tally(&self, allocs: u64, bytes: u64, frees: u64) {
        let t = &self.w.tally[self.id];
        t.allocs.fetch_add(allocs, Relaxed);
        t.bytes.fetch_add(bytes, Relaxed);
        t.frees.fetch_add(frees, Relaxed);
    }

    fn depth(&self) -> u8 {
        if self.inner.is_some() {
            2
        } else {
            1
        }
    }

    fn op(&mut self, may_hand_over: bool) {
        let i = self.rng.below(MAX_LIVE as u64) as usize;
        match self.live[i] {
            None => self.alloc(i),
            Some(b) => match self.rng.below(8) {
                0..=3 => self.realloc(i, b),
                4 | 5 if may_hand_over => self.hand_over(i, b),
                _ => self.free(i, b),
            },
        }
    }

    fn alloc(&mut self, i: usize) {
        let size = self.rng.size(MAX);
        let align = self.rng.align(MAX);
        let layout = Layout::from_size_align(size, align).unwrap();
        let zeroed = self.rng.below(4) == 0;
        let ptr = if zeroed {
            // SAFETY: non-zero size.
            unsafe { alloc_zeroed(layout) }
        } else {
            // SAFETY: non-zero size.
            unsafe { alloc(layout) }
        };
        assert!(!ptr.is_null(), "allocation of {layout:?} failed");
        assert_eq!(ptr as usize % align, 0, "misaligned block for {layout:?}");
        if zeroed {
            fill_check(ptr, size, 0, &mut self.reference, "alloc_zeroed");
        }
        let fill = self.rng.next_u64() as u8;
        // SAFETY: `ptr` is a fresh block of `size` bytes.
        unsafe { ptr.write_bytes(fill, size) };
        self.tally(1, size as u64, 0);
        let level = self.depth();
        self.outer.alloc(size);
        if let Some(m) = &mut self.inner {
            m.alloc(size);
        }
        self.live[i] = Some(Block {
            ptr,
            size,
            align,
            fill,
            level,
        });
    }

    fn realloc(&mut self, i: usize, b: Block) {
        let new = self.rng.size(MAX);
        let layout = Layout::from_size_align(b.size, b.align).unwrap();
        // SAFETY: `b.ptr` is live, allocated with `layout`; `new` is non-zero.
        let ptr = unsafe { realloc(b.ptr, layout, new) };
        assert!(!ptr.is_null(), "realloc to {new} failed");
        assert_eq!(ptr as usize % b.align, 0, "realloc lost the alignment");
        fill_check(ptr, b.size.min(new), b.fill, &mut self.reference, "realloc");
        // SAFETY: `ptr` is a live block of `new` bytes.
        unsafe { ptr.write_bytes(b.fill, new) };
        self.tally(1, new as u64, 1);
        self.outer.realloc(b.level >= 1, b.size, new);
        if let Some(m) = &mut self.inner {
            m.realloc(b.level == 2, b.size, new);
        }
        self.live[i] = Some(Block {
            ptr,
            size: new,
            level: self.depth(),
            ..b
        });
    }

    fn free(&mut self, i: usize, b: Block) {
        fill_check(b.ptr, b.size, b.fill, &mut self.reference, "free");
        let layout = Layout::from_size_align(b.size, b.align).unwrap();
        // SAFETY: `b.ptr` is live, allocated with `layout`.
        unsafe { dealloc(b.ptr, layout) };
        self.tally(0, 0, 1);
        if b.level >= 1 {
            self.outer.free(b.size);
        }
        if b.level == 2 {
            if let Some(m) = &mut self.inner {
                m.free(b.size);
            }
        }
        self.live[i] = None;
    }

    /// Hands the block to a random other thread, which frees it; frees it
    /// here if that thread's mailbox is full.
    fn hand_over(&mut self, i: usize, b: Block) {
        let n = self.w.threads;
        let to = (self.id + 1 + self.rng.below(n as u64 - 1) as usize) % n;
        let counted = b.level >= 1;
        for m in &self.w.mail[to] {
            if m.state.compare_exchange(0, 1, Acquire, Relaxed).is_ok() {
                if counted {
                    self.w.outstanding[self.id].fetch_add(1, SeqCst);
                    self.outer.hand_over(b.size);
                }
                m.ptr.store(b.ptr, Relaxed);
                let meta = b.size as u64
                    | (b.align as u64) << 16
                    | u64::from(b.fill) << 32
                    | (self.id as u64) << 40
                    | u64::from(counted) << 63;
                m.meta.store(meta, Relaxed);
                m.state.store(2, Release);
                self.live[i] = None;
                return;
            }
        }
        self.free(i, b);
    }

    /// Frees the blocks other threads handed to this one.
    fn drain(&mut self) {
        for m in &self.w.mail[self.id] {
            if m.state.load(Acquire) != 2 {
                continue;
            }
            let ptr = m.ptr.load(Relaxed);
            let meta = m.meta.load(Relaxed);
            m.state.store(0, Release);
            let size = (meta & 0xffff) as usize;
            let align = ((meta >> 16) & 0xffff) as usize;
            let fill = (meta >> 32) as u8;
            let sender = ((meta >> 40) & 0xffff) as usize;
            fill_check(ptr, size, fill, &mut self.reference, "hand-over");
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: the sender handed over a live block of `layout`.
            unsafe { dealloc(ptr, layout) };
            self.tally(0, 0, 1);
            if meta >> 63 == 1 {
                self.w.outstanding[sender].fetch_sub(1, SeqCst);
            }
        }
    }

    /// One scope of `len` ops, maybe with an inner scope in the middle (which
    /// hands nothing over, so its figures are fully determined).
    fn round(&mut self, len: u64) {
        for b in self.live.iter_mut().flatten() {
            b.level = 0;
        }
        self.outer = Model::default();
        let may_hand_over = self.rng.below(2) == 0;
        let nest_at = if self.rng.below(3) == 0 {
            self.rng.below(len)
        } else {
            u64::MAX
        };
        let p = Profiler::start();
        for k in 0..len {
            if k == nest_at {
                let inner_len = 1 + self.rng.below(64);
                self.inner = Some(Model::default());
                let q = Profiler::start();
                for _ in 0..inner_len {
                    self.op(false);
                    self.drain();
                }
                let s = q.stop();
                let m = self.inner.take().unwrap();
                m.check(&s, "inner scope", self.id, self.seed);
                for b in self.live.iter_mut().flatten() {
                    b.level = b.level.min(1);
                }
            }
            self.op(may_hand_over);
            self.drain();
        }
        // Every block of this scope that went to another thread is freed
        // before the stop, so the figures are determined.
        while self.w.outstanding[self.id].load(SeqCst) != 0 {
            self.drain();
            thread::yield_now();
        }
        let s = p.stop();
        self.outer.check(&s, "outer scope", self.id, self.seed);
        if !may_hand_over {
            assert_eq!(
                s.peak_bytes, self.outer.peak_high,
                "exact peak of outer scope of thread {} (seed {})",
                self.id, self.seed
            );
        }
    }

    fn run(&mut self, ops: u64) {
        let mut done = 0;
        while done < ops {
            let len = (1 + self.rng.below(200)).min(ops - done);
            self.round(len);
            done += len;
        }
        for i in 0..MAX_LIVE {
            if let Some(b) = self.live[i] {
                self.free(i, b);
            }
        }
        self.w.finished.fetch_add(1, SeqCst);
        while self.w.finished.load(SeqCst) != self.w.threads {
            self.drain();
            thread::yield_now();
        }
        self.drain();
    }
}

fn mixed_ops_across_threads_balance_process_and_scope_figures(threads: usize, ops: u64, seed: u64) {
    assert!((2..1 << 16).contains(&threads), "2 to 65535 threads");
    let w = World {
        mail: (0..threads)
            .map(|_| (0..MAIL_SLOTS).map(|_| Mail::default()).collect())
            .collect(),
        tally: (0..threads).map(|_| Tally::default()).collect(),
        outstanding: (0..threads).map(|_| AtomicU64::new(0)).collect(),
        finished: AtomicUsize::new(0),
        threads,
    };
    let ready = Barrier::new(threads + 1);
    let start = Barrier::new(threads + 1);
    let end = Barrier::new(threads + 1);
    let leave = Barrier::new(threads + 1);
    thread::scope(|t| {
        for id in 0..threads {
            let (w, ready, start, end, leave) = (&w, &ready, &start, &end, &leave);
            t.spawn(move || {
                let mut worker = Worker {
                    id,
                    w,
                    rng: Prng::new(seed ^ (id as u64) << 20),
                    live: [None; MAX_LIVE],
                    reference: Box::new([0; MAX]),
                    outer: Model::default(),
                    inner: None,
                    seed,
                };
                ready.wait();
                start.wait();
                worker.run(ops);
                end.wait();
                leave.wait();
            });
        }
        // Every thread is spawned and parked: the window holds only their ops.
        ready.wait();
        GLOBAL.reset();
        start.wait();
        end.wait();
        let s = GLOBAL.snapshot();
        let sum = |f: fn(&Tally) -> &AtomicU64| w.tally.iter().map(|t| f(t).load(SeqCst)).sum();
        let allocs: u64 = sum(|t| &t.allocs);
        let bytes: u64 = sum(|t| &t.bytes);
        let frees: u64 = sum(|t| &t.frees);
        let ctx = format!("process figures (seed {seed}): {s:?}");
        assert_eq!(s.alloc_count, allocs, "{ctx}");
        assert_eq!(s.total_bytes, bytes, "{ctx}");
        assert_eq!(s.free_count, frees, "{ctx}");
        assert_eq!(allocs, frees, "every block was freed");
        assert!(allocs + frees >= threads as u64 * ops, "every op counted");
        assert_eq!(s.current_bytes, 0, "{ctx}");
        assert_eq!(s.current_blocks, 0, "{ctx}");
        assert!(s.peak_bytes > 0 && s.peak_bytes <= bytes, "{ctx}");
        leave.wait();
    });
}
