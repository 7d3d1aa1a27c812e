//! Cross-thread free: a producer thread allocates 64-byte blocks and hands
//! them through a lock-free single-producer single-consumer ring to a
//! consumer thread, which frees them. Figures are per block, from the round's
//! start at a spinning barrier to the consumer's last free; the ring's cost
//! is in both sides (it dilutes the ratio a little, equally for every peer).

use super::pairs::pairs;
use super::{Direct, Global, Heap};
use crate::measure::{self, Budget, Pair, SpinBarrier};
use crate::protocol::Record;
use crate::run::Options;
use std::alloc::Layout;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::time::Instant;

const CAP: usize = 1024;

fn layout() -> Layout {
    Layout::from_size_align(64, 8).unwrap_or(Layout::new::<u64>())
}

/// A bounded single-producer single-consumer queue of block pointers.
struct Ring {
    slots: Vec<AtomicPtr<u8>>,
    head: AtomicUsize,
    tail: AtomicUsize,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            slots: (0..CAP)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
        }
    }

    /// Producer only.
    fn push(&self, p: *mut u8) {
        let tail = self.tail.load(Ordering::Relaxed);
        let mut spins = 0;
        while tail - self.head.load(Ordering::Acquire) == CAP {
            measure::backoff(&mut spins);
        }
        self.slots[tail % CAP].store(p, Ordering::Relaxed);
        self.tail.store(tail + 1, Ordering::Release);
    }

    /// Consumer only.
    fn pop(&self) -> *mut u8 {
        let head = self.head.load(Ordering::Relaxed);
        let mut spins = 0;
        while self.tail.load(Ordering::Acquire) == head {
            measure::backoff(&mut spins);
        }
        let p = self.slots[head % CAP].load(Ordering::Relaxed);
        self.head.store(head + 1, Ordering::Release);
        p
    }
}

fn produce<H: Heap>(h: H, ring: &Ring, n: u64) {
    for _ in 0..n {
        // SAFETY: non-zero size; the consumer frees the block with `layout()`.
        ring.push(unsafe { h.alloc(layout()) });
    }
}

fn consume<H: Heap>(h: H, ring: &Ring, n: u64) {
    for _ in 0..n {
        let p = ring.pop();
        if !p.is_null() {
            // SAFETY: `p` came from `h.alloc(layout())` in `produce`, sent once.
            unsafe { h.dealloc(p, layout()) };
        }
    }
}

/// Producer/consumer rounds, through the global allocator and on `System`.
pub fn run(budget: Budget, opts: &Options) -> Vec<Record> {
    // Batch sizes from the pairs' cost, so each side's batch lasts about
    // `budget.batch` even for a slow allocator (a block handed over costs
    // several pairs: the ring, the cache line moving between cores).
    let nm = (measure::calibrate(&mut |n| pairs(Global, n), budget.batch) / 8).max(256);
    let nr = (measure::calibrate(&mut |n| pairs(Direct, n), budget.batch) / 8).max(256);
    let rounds =
        ((budget.total.as_secs_f64() / (4.0 * budget.batch.as_secs_f64())) as usize).clamp(11, 201);
    let ring = Ring::new();
    let barrier = SpinBarrier::new(2);
    let epoch = Instant::now();
    let ns = || epoch.elapsed().as_nanos() as u64;
    // Each thread returns, per round, the (start, end) of the measured and
    // the reference batch.
    let side = |producer: bool| {
        let _scope = opts.scope.map(|open| open());
        let mut out = Vec::with_capacity(rounds);
        for r in 0..rounds {
            let mut times = [(0u64, 0u64); 2];
            for k in 0..2 {
                let measured = (r + k) % 2 == 0;
                barrier.wait();
                let start = ns();
                match (producer, measured) {
                    (true, true) => produce(Global, &ring, nm),
                    (true, false) => produce(Direct, &ring, nr),
                    (false, true) => consume(Global, &ring, nm),
                    (false, false) => consume(Direct, &ring, nr),
                }
                times[usize::from(!measured)] = (start, ns());
            }
            out.push(times);
        }
        out
    };
    let (p, c) = std::thread::scope(|s| {
        let p = s.spawn(|| side(true));
        let c = s.spawn(|| side(false));
        (p.join(), c.join())
    });
    let (Ok(p), Ok(c)) = (p, c) else {
        return vec![Record::Skip {
            workload: "cross-thread-free".into(),
            reason: "a thread panicked".into(),
        }];
    };
    p.iter()
        .zip(&c)
        .map(|(p, c)| {
            let span = |k: usize| (c[k].1.max(p[k].1) - c[k].0.min(p[k].0)) as f64;
            Pair {
                measured_ns: span(0) / nm as f64,
                reference_ns: span(1) / nr as f64,
            }
            .record("cross-thread-free")
        })
        .collect()
}
