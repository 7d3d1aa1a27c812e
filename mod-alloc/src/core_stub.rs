//! TEMPORARY stand-in for the core (ModAlloc, Profiler, AllocStats,
//! thread::untracked), so the harness runs before the core lands. Crude: one
//! thread-local scope, frees of older blocks not told apart. Deleted on merge.
#![allow(
    missing_docs,
    unreachable_pub,
    dead_code,
    clippy::undocumented_unsafe_blocks
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AllocStats {
    pub alloc_count: u64,
    pub total_bytes: u64,
    pub peak_bytes: u64,
    pub current_bytes: u64,
    pub current_blocks: u64,
    pub free_count: u64,
}

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static BUSY: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static BLOCKS: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn is_installed() -> bool {
    INSTALLED.load(std::sync::atomic::Ordering::Relaxed)
}

fn on_alloc(size: usize) {
    INSTALLED.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = ACTIVE.try_with(|a| {
        if a.get() && !BUSY.with(Cell::get) {
            ALLOCS.with(|c| c.set(c.get() + 1));
            BYTES.with(|c| c.set(c.get() + size as u64));
            LIVE.with(|c| c.set(c.get() + size as i64));
            BLOCKS.with(|c| c.set(c.get() + 1));
            let live = LIVE.with(Cell::get);
            PEAK.with(|c| c.set(c.get().max(live)));
        }
    });
}

fn on_free(size: usize) {
    let _ = ACTIVE.try_with(|a| {
        if a.get() && !BUSY.with(Cell::get) {
            LIVE.with(|c| c.set(c.get() - size as i64));
            BLOCKS.with(|c| c.set(c.get() - 1));
        }
    });
}

pub struct ModAlloc;

#[allow(clippy::new_without_default)]
impl ModAlloc {
    pub const fn new() -> ModAlloc {
        ModAlloc
    }
}

unsafe impl GlobalAlloc for ModAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_free(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        on_free(layout.size());
        on_alloc(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

pub struct Profiler(core::marker::PhantomData<*const ()>);

impl Profiler {
    pub fn start() -> Profiler {
        ACTIVE.with(|a| a.set(true));
        for c in [&ALLOCS, &BYTES] {
            c.with(|c| c.set(0));
        }
        for c in [&LIVE, &BLOCKS, &PEAK] {
            c.with(|c| c.set(0));
        }
        Profiler(core::marker::PhantomData)
    }
    pub fn stop(self) -> AllocStats {
        ACTIVE.with(|a| a.set(false));
        AllocStats {
            alloc_count: ALLOCS.with(Cell::get),
            total_bytes: BYTES.with(Cell::get),
            peak_bytes: PEAK.with(Cell::get).max(0) as u64,
            current_bytes: LIVE.with(Cell::get).max(0) as u64,
            current_blocks: BLOCKS.with(Cell::get).max(0) as u64,
            free_count: 0,
        }
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(false));
    }
}

pub(crate) fn untracked<R>(f: impl FnOnce() -> R) -> R {
    let old = BUSY.with(|b| b.replace(true));
    let r = f();
    BUSY.with(|b| b.set(old));
    r
}
