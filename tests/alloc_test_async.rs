//! The async form: `#[alloc_test]` above `#[tokio::test]` measures the body
//! future across all its polls, and not the runtime's start-up.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};

use mod_alloc::alloc_test;

#[global_allocator]
static GLOBAL: mod_alloc::ModAlloc = mod_alloc::ModAlloc::new();

/// Returns `Pending` once (waking itself), so the body is polled again.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn allocate(size: usize) -> Vec<u8> {
    black_box(Vec::with_capacity(size))
}

#[alloc_test(max_allocs = 2, max_bytes = 96, max_leaked = 0)]
#[tokio::test]
async fn allocations_on_both_sides_of_an_await_are_counted() {
    let before = allocate(32);
    YieldOnce(false).await;
    let after = allocate(64);
    drop((before, after));
}

#[alloc_test(max_allocs = 1)]
#[tokio::test]
#[should_panic(
    expected = "allocation budget exceeded in an_allocation_after_an_await_can_fail_the_budget"
)]
async fn an_allocation_after_an_await_can_fail_the_budget() {
    drop(allocate(8));
    YieldOnce(false).await;
    drop(allocate(8));
}

#[alloc_test(max_allocs = 0)]
#[tokio::test]
async fn the_runtime_start_up_is_not_counted() {
    YieldOnce(false).await;
}

#[alloc_test(max_allocs = 2)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_multi_thread_flavor_works_too() {
    let block = allocate(16);
    YieldOnce(false).await;
    drop(block);
}

#[alloc_test(max_allocs = 0)]
#[tokio::test]
async fn an_async_test_can_return_a_result() -> Result<(), std::num::ParseIntError> {
    let n: u8 = "9".parse()?;
    YieldOnce(false).await;
    assert_eq!(n, 9);
    Ok(())
}

#[alloc_test(max_allocs = 10)]
#[tokio::test]
#[should_panic(expected = "the async body's own panic")]
async fn a_panic_in_an_async_body_is_the_tests_panic() {
    YieldOnce(false).await;
    panic!("the async body's own panic");
}
