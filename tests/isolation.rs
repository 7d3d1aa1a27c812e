//! Budgets are exact under parallel tests: each budgeted test counts only
//! its own thread. The exact-budget tests below run next to noisy tests whose
//! threads allocate heavily, and each budget is tight (exact counts and
//! bytes), so one foreign allocation counted would fail it.
//!
//! Acceptance run: `cargo test --test isolation -- --test-threads=8`, 50 times
//! in a row, and once under `cargo nextest run --test isolation`.

use std::hint::black_box;
use std::sync::Barrier;

#[global_allocator]
static GLOBAL: mod_alloc::ModAlloc = mod_alloc::ModAlloc::new();

/// Allocates and frees `count` blocks of `size` bytes, one after the other:
/// `count` allocations, `count * size` bytes, a peak of `size`, no leak.
fn churn(count: usize, size: usize) {
    for _ in 0..count {
        drop(black_box(Vec::<u8>::with_capacity(size)));
    }
}

/// Tests with exact budgets: `name: count x size => total bytes`.
macro_rules! exact_budgets {
    ($($name:ident: $count:literal x $size:literal => $total:literal;)*) => {$(
        #[mod_alloc::alloc_test(max_allocs = $count, max_bytes = $total, max_peak = $size, max_leaked = 0)]
        fn $name() {
            churn($count, $size);
        }
    )*};
}

exact_budgets! {
    exact_01: 1 x 8 => 8;
    exact_02: 2 x 16 => 32;
    exact_03: 3 x 24 => 72;
    exact_04: 4 x 32 => 128;
    exact_05: 5 x 40 => 200;
    exact_06: 6 x 48 => 288;
    exact_07: 7 x 56 => 392;
    exact_08: 8 x 64 => 512;
    exact_09: 9 x 72 => 648;
    exact_10: 10 x 80 => 800;
    exact_11: 11 x 88 => 968;
    exact_12: 12 x 96 => 1152;
    exact_13: 13 x 104 => 1352;
    exact_14: 14 x 112 => 1568;
    exact_15: 15 x 120 => 1800;
    exact_16: 16 x 128 => 2048;
    exact_17: 17 x 136 => 2312;
    exact_18: 18 x 144 => 2592;
    exact_19: 19 x 152 => 2888;
    exact_20: 20 x 160 => 3200;
    exact_21: 100 x 1000 => 100000;
    exact_22: 200 x 1 => 200;
    exact_23: 1000 x 4096 => 4096000;
    exact_24: 50 x 65536 => 3276800;
}

/// Threads that allocate a lot, outside any budget, for the budgeted tests
/// running at the same time to ignore.
fn noise(threads: usize) {
    let start = Barrier::new(threads);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                start.wait();
                let mut kept = Vec::new();
                for round in 0..2_000 {
                    kept.push(vec![0u8; 64 + round % 512]);
                    if kept.len() > 16 {
                        kept.clear();
                    }
                }
            });
        }
    });
}

#[test]
fn noise_a() {
    noise(2);
}

#[test]
fn noise_b() {
    noise(3);
}

#[test]
fn noise_c() {
    noise(4);
}

#[mod_alloc::alloc_test(max_bytes = "64KB", max_leaked = 0)]
fn a_spawned_threads_own_allocations_are_not_counted() {
    // The child allocates ~1 MB; only the parent's bookkeeping for the
    // spawn (a few hundred bytes) is the parent's.
    std::thread::spawn(|| churn(1_000, 1_000)).join().unwrap();
}

#[mod_alloc::alloc_test(max_bytes = "16KB", max_leaked = 0)]
fn noisy_threads_running_during_the_body_are_not_counted() {
    // `join` (not `thread::scope`): it waits for the thread's exit, so the
    // blocks the spawn allocated here are freed (by the child's thread-local
    // teardown) before the budget is checked.
    let go = std::sync::Arc::new(Barrier::new(2));
    let child_go = std::sync::Arc::clone(&go);
    let child = std::thread::spawn(move || {
        child_go.wait();
        churn(10_000, 256);
    });
    go.wait();
    churn(3, 64);
    child.join().unwrap();
}
