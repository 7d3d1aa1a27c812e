//! The profile clock: cheap ticks at allocation time, microseconds at report time.
//!
//! The hook reads the CPU's counter (`rdtsc` on x86_64, `cntvct_el0` on
//! aarch64): a few nanoseconds, no system call, no lock. Reports convert ticks
//! to microseconds (DHAT's `tu: "µs"`) with a rate measured against
//! `Instant` between the process's first tick and the report. Elsewhere the
//! ticks are nanoseconds from `Instant`, which is slower but portable.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Only DHAT output (`dhat-compat`) converts ticks to microseconds.
#![cfg_attr(not(feature = "dhat-compat"), allow(dead_code))]

use std::sync::OnceLock;
use std::time::Instant;

/// The tick count now.
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
pub(crate) fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `rdtsc` has no preconditions; it only reads the time-stamp counter.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(target_arch = "aarch64")]
    {
        let t: u64;
        // SAFETY: reads the virtual counter register, which user space may read
        // on Linux; no memory, stack or flags are touched.
        unsafe {
            core::arch::asm!("mrs {}, cntvct_el0", out(reg) t, options(nomem, nostack, preserves_flags))
        };
        t
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        origin().1.elapsed().as_nanos() as u64
    }
}

/// How many of a thread's events share one reading of the counter (see
/// `thread::ThreadState::now`): lifetimes are then exact to within 16 events.
pub(crate) const COARSE_EVERY: u64 = 16;

/// Ticks and `Instant` of the first call; the origin of every profile time.
fn origin() -> &'static (u64, Instant) {
    static ORIGIN: OnceLock<(u64, Instant)> = OnceLock::new();
    ORIGIN.get_or_init(|| (raw_ticks_for_origin(), Instant::now()))
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn raw_ticks_for_origin() -> u64 {
    ticks()
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn raw_ticks_for_origin() -> u64 {
    0
}

/// Ticks per microsecond, measured between the origin and now (at least 1 ms
/// apart, waiting if needed).
fn ticks_per_micro() -> f64 {
    let (t0, i0) = *origin();
    loop {
        let elapsed = i0.elapsed();
        let t1 = ticks();
        if elapsed.as_micros() >= 1000 {
            let rate = t1.wrapping_sub(t0) as f64 / elapsed.as_nanos() as f64 * 1000.0;
            return if rate.is_finite() && rate > 0.0 {
                rate
            } else {
                1000.0
            };
        }
        std::hint::spin_loop();
    }
}

/// Converts a tick count (a duration) to microseconds.
pub(crate) fn micros(ticks: u64) -> u64 {
    static RATE: OnceLock<f64> = OnceLock::new();
    let rate = *RATE.get_or_init(ticks_per_micro);
    (ticks as f64 / rate) as u64
}
