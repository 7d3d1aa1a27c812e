//! Times writing a large process profile: 10,000 distinct call stacks and
//! 1,000,000 blocks, written as DHAT JSON by `ModAlloc::dhat_json_string`.
//!
//! ```text
//! cargo run --release --example large_profile --features dhat-compat
//! ```
//!
//! Distinct stacks come from the shape of a recursion: at each of 14 levels
//! the walk goes through `left` or `right` (two functions, so two return
//! addresses), and site `i` takes the path of `i`'s bits. Each site allocates
//! 100 blocks (16 to 1,600 bytes) and keeps the first. The DHAT file is
//! written next to the main example's (`$MOD_ALLOC_DIR` or
//! `target/mod-alloc/large_profile.json`) for the viewer check.
use mod_alloc::ModAlloc;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

#[global_allocator]
static GLOBAL: ModAlloc = ModAlloc::new();

const SITES: u32 = 10_000;
const BLOCKS_PER_SITE: usize = 100;
const LEVELS: u32 = 14;

#[inline(never)]
fn left(path: u32, level: u32, work: &mut Work) {
    step(path, level, work);
    black_box(());
}

#[inline(never)]
fn right(path: u32, level: u32, work: &mut Work) {
    step(path, level, work);
    black_box(());
}

#[inline(always)]
fn step(path: u32, level: u32, work: &mut Work) {
    if level == LEVELS {
        allocate(work);
    } else if path >> level & 1 == 0 {
        left(path, level + 1, work);
    } else {
        right(path, level + 1, work);
    }
}

/// One call of the allocator per site (the only allocation in the loop; the
/// vectors' capacities were reserved before the profile's window).
#[inline(never)]
fn allocate(work: &mut Work) {
    for i in 0..black_box(BLOCKS_PER_SITE) {
        work.scratch.push(block(16 * (i + 1)));
    }
    work.kept.push(work.scratch.swap_remove(0));
    work.scratch.clear();
}

#[inline(never)]
fn block(size: usize) -> Box<[u8]> {
    black_box(vec![0u8; size].into_boxed_slice())
}

struct Work {
    kept: Vec<Box<[u8]>>,
    scratch: Vec<Box<[u8]>>,
}

fn main() {
    GLOBAL.set_backtrace_depth(32);
    let mut work = Work {
        kept: Vec::with_capacity(SITES as usize),
        scratch: Vec::with_capacity(BLOCKS_PER_SITE),
    };
    GLOBAL.reset();
    let started = Instant::now();
    for path in 0..SITES {
        step(path, 0, &mut work);
    }
    let run = started.elapsed();
    let stats = GLOBAL.snapshot();

    let started = Instant::now();
    let json = GLOBAL.dhat_json_string();
    let write = started.elapsed();
    let stacks = GLOBAL.call_sites().len();
    let program_points = json.matches("\"fs\"").count();

    let dir = std::env::var_os("MOD_ALLOC_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("target/mod-alloc"), PathBuf::from);
    std::fs::create_dir_all(&dir).expect("create the output directory");
    let path = dir.join("large_profile.json");
    std::fs::write(&path, &json).expect("write the profile");

    println!(
        "workload: {} blocks, {} bytes from {stacks} captured stacks, in {:.2} s",
        stats.alloc_count,
        stats.total_bytes,
        run.as_secs_f64()
    );
    println!(
        "dhat_json_string(): {:.3} s for {program_points} program points, {:.1} MB of JSON",
        write.as_secs_f64(),
        json.len() as f64 / 1e6
    );
    println!("profile: {}", path.display());
    drop(black_box(work.kept));
}
