//! Timing: in-process references, interleaved rounds, medians.
//!
//! Every sample compares a measured batch with a reference batch timed on the
//! same thread in the same round, alternating which goes first (neither side
//! always gets the warm cache). A batch repeats its operation `n` times, `n`
//! chosen once per workload so a batch lasts about [`Budget::batch`]; the two
//! sides get their own `n`, so a slow allocator (dhat) does not shrink the
//! reference batch below the timer's resolution.
//!
//! Batches are timed in thread CPU time ([`thread_cpu_ns`]), so time spent
//! descheduled does not count; the two-thread overlap check uses wall time.
//!
//! Two-thread samples start both threads at a [`SpinBarrier`] and keep a
//! round only when the two threads' timed batches overlapped for most of
//! their length: otherwise the scheduler ran them one after the other and
//! contention is missing from the figure.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long to measure one workload in one process.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Target duration of one timed batch.
    pub batch: Duration,
    /// Stop taking rounds once this much time went by (after `min_rounds`).
    pub total: Duration,
    /// Rounds taken whatever the time.
    pub min_rounds: usize,
    /// Rounds never exceeded.
    pub max_rounds: usize,
}

impl Budget {
    /// A budget of `total_ms` milliseconds per workload.
    pub fn from_ms(total_ms: u64) -> Budget {
        Budget {
            batch: Duration::from_micros(1500),
            total: Duration::from_millis(total_ms),
            min_rounds: 3,
            max_rounds: 301,
        }
    }
}

/// A barrier that spins instead of parking, so the threads leave it within
/// nanoseconds of each other.
#[derive(Debug)]
pub struct SpinBarrier {
    n: usize,
    arrived: AtomicUsize,
}

impl SpinBarrier {
    /// A barrier for `n` threads, reusable round after round.
    pub fn new(n: usize) -> SpinBarrier {
        SpinBarrier {
            n,
            arrived: AtomicUsize::new(0),
        }
    }

    /// Waits until all `n` threads arrived in this round.
    pub fn wait(&self) {
        let ticket = self.arrived.fetch_add(1, Ordering::AcqRel);
        let target = (ticket / self.n + 1) * self.n;
        let mut spins = 0u32;
        while self.arrived.load(Ordering::Acquire) < target {
            backoff(&mut spins);
        }
    }
}

/// One step of a spin-wait: spin at first, then yield the CPU, so a waiting
/// thread does not burn the time slice of the thread it waits for when the
/// machine has fewer free cores than spinning threads.
pub fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 2_000 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// The median of `v` (the upper one for an even length); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// CPU time of the calling thread, in nanoseconds.
///
/// Batches are timed in thread CPU time, not wall time: on a shared machine
/// a thread is often descheduled in the middle of a batch, and wall time
/// would charge that pause to whichever side was running.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec`; the clock id is a
    // constant Linux supports for every thread.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Thread CPU nanoseconds `f` took (see [`thread_cpu_ns`]).
pub fn time_ns(f: impl FnOnce()) -> f64 {
    let t = thread_cpu_ns();
    f();
    black_box(());
    thread_cpu_ns().saturating_sub(t) as f64
}

/// The smallest power of two `n` for which `f(n)` lasts at least `target`.
pub fn calibrate(f: &mut dyn FnMut(u64), target: Duration) -> u64 {
    let mut n = 1u64;
    loop {
        let ns = time_ns(|| f(n));
        if ns >= target.as_nanos() as f64 || n >= 1 << 30 {
            return n;
        }
        n *= 2;
    }
}

/// One in-process sample: nanoseconds per operation of both sides.
#[derive(Debug, Clone, Copy)]
pub struct Pair {
    /// Through the global allocator.
    pub measured_ns: f64,
    /// Calling `System` directly.
    pub reference_ns: f64,
}

impl Pair {
    /// Measured over reference.
    pub fn ratio(&self) -> f64 {
        self.measured_ns / self.reference_ns
    }
}

/// Interleaved rounds of `measured(n)` and `reference(n)` on this thread.
/// Each call performs `n` repetitions of `ops_per_rep` operations.
pub fn paired(
    budget: Budget,
    ops_per_rep: u64,
    measured: &mut dyn FnMut(u64),
    reference: &mut dyn FnMut(u64),
) -> Vec<Pair> {
    let nm = calibrate(measured, budget.batch);
    let nr = calibrate(reference, budget.batch);
    let per = |ns: f64, n: u64| ns / (n * ops_per_rep) as f64;
    let started = Instant::now();
    let mut out = Vec::new();
    while out.len() < budget.min_rounds
        || (started.elapsed() < budget.total && out.len() < budget.max_rounds)
    {
        let (m, r) = if out.len() % 2 == 0 {
            let m = time_ns(|| measured(nm));
            (m, time_ns(|| reference(nr)))
        } else {
            let r = time_ns(|| reference(nr));
            (time_ns(|| measured(nm)), r)
        };
        out.push(Pair {
            measured_ns: per(m, nm),
            reference_ns: per(r, nr),
        });
    }
    out
}

/// One thread's round in a two-thread measurement.
#[derive(Debug, Clone, Copy)]
pub struct ThreadRound {
    /// The round's figures on this thread.
    pub pair: Pair,
    /// Start of the round, ns since the shared epoch.
    pub start: u64,
    /// End of the round, ns since the shared epoch.
    pub end: u64,
}

/// Runs `rounds` interleaved rounds on this thread, each started at
/// `barrier` (shared with the other thread, which runs the same rounds).
#[allow(clippy::too_many_arguments)]
pub fn paired_at_barrier(
    barrier: &SpinBarrier,
    epoch: Instant,
    rounds: usize,
    nm: u64,
    nr: u64,
    ops_per_rep: u64,
    measured: &mut dyn FnMut(u64),
    reference: &mut dyn FnMut(u64),
) -> Vec<ThreadRound> {
    let per = |ns: f64, n: u64| ns / (n * ops_per_rep) as f64;
    let mut out = Vec::with_capacity(rounds);
    for r in 0..rounds {
        barrier.wait();
        let start = epoch.elapsed().as_nanos() as u64;
        let (m, s) = if r % 2 == 0 {
            let m = time_ns(|| measured(nm));
            (m, time_ns(|| reference(nr)))
        } else {
            let s = time_ns(|| reference(nr));
            (time_ns(|| measured(nm)), s)
        };
        let end = epoch.elapsed().as_nanos() as u64;
        out.push(ThreadRound {
            pair: Pair {
                measured_ns: per(m, nm),
                reference_ns: per(s, nr),
            },
            start,
            end,
        });
    }
    out
}

/// The pairs of the rounds where both threads overlapped for at least 80%
/// of the shorter one's length (both threads' pairs of such a round).
pub fn overlapping(a: &[ThreadRound], b: &[ThreadRound]) -> Vec<Pair> {
    let mut out = Vec::new();
    for (x, y) in a.iter().zip(b) {
        let overlap = x.end.min(y.end).saturating_sub(x.start.max(y.start)) as f64;
        let shorter = (x.end - x.start).min(y.end - y.start) as f64;
        if overlap >= 0.8 * shorter {
            out.push(x.pair);
            out.push(y.pair);
        }
    }
    out
}

/// Interleaved rounds of an end-to-end `work()` and an allocation-free
/// `calibration()` on this thread. Returns (work ns, calibration ns) per
/// round.
pub fn normalised(
    budget: Budget,
    work: &mut dyn FnMut(),
    calibration: &mut dyn FnMut(),
) -> Vec<(f64, f64)> {
    // Warm up once (page faults of first use, lazy statics).
    work();
    calibration();
    // One run varies by up to ±30% from the next here, in CPU time and
    // without page faults: these workloads are memory-bound and share the
    // caches with the other tenant. Take at least 11, and count the budget
    // in this thread's CPU time so a busy machine does not cut it short.
    let min_rounds = budget.min_rounds.max(11);
    let started = thread_cpu_ns();
    let spent = || Duration::from_nanos(thread_cpu_ns().saturating_sub(started));
    let mut out = Vec::new();
    while out.len() < min_rounds || (spent() < budget.total && out.len() < budget.max_rounds) {
        let (w, c) = if out.len() % 2 == 0 {
            let w = time_ns(&mut *work);
            (w, time_ns(&mut *calibration))
        } else {
            let c = time_ns(&mut *calibration);
            (time_ns(&mut *work), c)
        };
        out.push((w, c));
    }
    out
}

impl Pair {
    /// The sample as a `ratio` record of `workload`.
    pub fn record(&self, workload: &str) -> crate::protocol::Record {
        crate::protocol::Record::Ratio {
            workload: workload.to_string(),
            ratio: self.ratio(),
            measured_ns: self.measured_ns,
            reference_ns: self.reference_ns,
        }
    }
}
