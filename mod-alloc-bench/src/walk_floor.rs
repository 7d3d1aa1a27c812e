//! The physical floor of call-site capture: a bare 16-frame frame-pointer
//! walk timed against a `System` 32-byte alloc+free pair on the same thread.
//!
//! A frame-pointer walk is a chain of dependent loads (each record's address
//! is the saved frame pointer loaded from the previous one), so its latency
//! cannot be hidden by the CPU. This times the least any walker can do: 16
//! loads of the chain plus the 16 return addresses, stored to a buffer, with
//! no validation at all (so only safe to run here, on our own well-formed
//! stack). Whatever mod-alloc's `backtraces` build adds to a pair at depth 16
//! is at least this, so `1 + walk / pair` bounds its ratio to `System` from
//! below (counters, site lookup and ledgers all excluded).
//!
//! Two figures: walks free to overlap one another out of order (throughput:
//! the floor if the CPU could hide the whole chain behind other work), and
//! chained walks, each starting after the previous one ended (latency: the
//! floor when nothing else is in flight). An allocator's walk sits between
//! the two: the surrounding `malloc`/`free` work does not depend on it, but
//! what comes after it (the site lookup) does.
//!
//! Run with `--walk-floor` on any bench binary (the `system` one is the
//! cleanest); it prints human-readable lines, not protocol records.

use crate::measure::{self, median, Budget};
use crate::workloads::depth::at_depth;
use crate::workloads::pairs::pairs;
use crate::workloads::Direct;
use std::hint::black_box;

/// Frames walked per capture: mod-alloc's default depth.
const FRAMES: usize = 16;

/// The current frame pointer, or 0 where this benchmark has no register read.
#[inline(always)]
fn frame_pointer() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let fp: usize;
        // SAFETY: copies `rbp` into a register; no memory, stack or flags touched.
        unsafe {
            std::arch::asm!("mov {}, rbp", out(reg) fp, options(nomem, nostack, preserves_flags))
        };
        fp
    }
    #[cfg(target_arch = "aarch64")]
    {
        let fp: usize;
        // SAFETY: copies `x29` into a register; no memory, stack or flags touched.
        unsafe {
            std::arch::asm!("mov {}, x29", out(reg) fp, options(nomem, nostack, preserves_flags))
        };
        fp
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        0
    }
}

/// `n` bare walks of up to [`FRAMES`] frames from this function's frame.
/// Stops at a null saved frame pointer; no other check. With `chained`, each
/// walk starts only once the previous one ended (its first address depends on
/// the previous walk's last load), so walks cannot overlap out of order: the
/// figure is the chain's latency rather than its throughput.
#[inline(always)]
fn walks(n: u64, chained: bool) {
    let mut out = [0usize; FRAMES];
    // Zero, unknown to the compiler: ties each walk to the one before.
    let zero = black_box(0usize);
    let mut carry = 0usize;
    for _ in 0..n {
        let mut fp = frame_pointer();
        if chained {
            fp |= carry & zero;
        }
        let mut len = 0;
        while len < FRAMES && fp != 0 {
            // SAFETY: this binary is built with frame pointers (the workspace's
            // `.cargo/config.toml`) and `walks` runs under `at_depth(FRAMES)`,
            // so the first FRAMES records of the chain are real, live frame
            // records of this thread's stack: `fp` and `fp + 8` are readable.
            let next = unsafe { std::ptr::read_volatile(fp as *const usize) };
            // SAFETY: as above.
            out[len] = unsafe { std::ptr::read_volatile((fp + 8) as *const usize) };
            len += 1;
            carry = fp;
            fp = next;
        }
        black_box((&out, len));
    }
}

/// [`walks`], free to overlap.
#[inline(never)]
fn overlapping_walks(n: u64) {
    walks(n, false);
}

/// [`walks`], one after the other.
#[inline(never)]
fn chained_walks(n: u64) {
    walks(n, true);
}

/// Times bare walks against `System` pairs at depth `FRAMES` (16) and prints the
/// medians and their ratio.
pub fn run(budget_ms: u64) {
    if frame_pointer() == 0 {
        println!("walk-floor: no frame-pointer read on this architecture");
        return;
    }
    let budget = Budget::from_ms(budget_ms);
    println!("walk-floor: bare {FRAMES}-frame walks against System 32 B pairs, at depth {FRAMES}");
    for (name, f) in [
        ("overlapping walks", overlapping_walks as fn(u64)),
        ("chained walks", chained_walks as fn(u64)),
    ] {
        let samples = at_depth(FRAMES, &mut || {
            measure::paired(budget, 1, &mut |n| f(n), &mut |n| pairs(Direct, n))
        });
        let walk: Vec<f64> = samples.iter().map(|p| p.measured_ns).collect();
        let pair: Vec<f64> = samples.iter().map(|p| p.reference_ns).collect();
        let ratio: Vec<f64> = samples.iter().map(|p| p.ratio()).collect();
        let (walk, pair, ratio) = (median(&walk), median(&pair), median(&ratio));
        println!(
            "  {name:<18} {walk:6.2} ns  pair {pair:5.2} ns  walk/pair {ratio:4.2}x  \
             floor of a capturing allocator: >= {:.2}x ({} rounds)",
            1.0 + ratio,
            samples.len()
        );
    }
}
