//! The entry point of every allocator binary: parse the arguments, run the
//! workloads in a fixed order, print one record per sample.
//!
//! Arguments: `--budget-ms N` (time per workload, default 150),
//! `--only NAME[,NAME..]` (workloads to run), `--list` (print the workload
//! names and exit), `--callgrind-pairs N` (no timing: N alloc+free pairs
//! through the global allocator, then N on `System` directly, in two
//! functions `scripts/callgrind-pairs` counts instructions of; after
//! `--depth D`, made under D extra frames of recursion), `--walk-floor`
//! (no records: a bare frame-pointer walk timed against a `System` pair, see
//! [`crate::walk_floor`]).

use crate::measure::Budget;
use crate::protocol::Record;
use crate::{memory, real, report_cost, workloads};
use std::any::Any;

/// Opens the binary's profiling scope on the current thread; the scope lasts
/// as long as the returned value.
pub type ScopeOpener = fn() -> Box<dyn Any>;

/// How a binary runs the workloads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// A scope to keep open on every thread that runs a workload.
    pub scope: Option<ScopeOpener>,
    /// Measures the report cost (only the `modalloc-report` binary).
    pub report: Option<crate::report_cost::Reporter>,
}

/// The workloads, in the order they run.
pub const WORKLOADS: [&str; 13] = [
    // First, while the heap has no free blocks to reuse (see `memory`).
    "memory",
    "pair-1t",
    "pair-2t",
    "vec-growth",
    "live-random-free",
    "cross-thread-free",
    "depth-4",
    "depth-16",
    "depth-32",
    "serde-json",
    "regex",
    // Late: run before "vec-growth", its large blocks left the heap laid out
    // so that the growth figures with call sites read 2.47 instead of 1.70.
    "pair-64k",
    "report-cost",
];

fn one(name: &str, budget: Budget, opts: &Options) -> Vec<Record> {
    if name == "report-cost" {
        // Not under the binary's scope: the reporter opens its own.
        return report_cost::run(opts.report);
    }
    let _scope = opts.scope.map(|open| open());
    match name {
        "pair-1t" => workloads::pairs::one_thread(budget),
        "pair-2t" => workloads::pairs::two_threads(budget, opts),
        "pair-64k" => workloads::pairs::big_one_thread(budget),
        "vec-growth" => workloads::growth::run(budget),
        "live-random-free" => workloads::live::run(budget),
        "cross-thread-free" => workloads::cross_thread::run(budget, opts),
        "depth-4" => workloads::depth::run(budget, 4),
        "depth-16" => workloads::depth::run(budget, 16),
        "depth-32" => workloads::depth::run(budget, 32),
        "serde-json" => real::serde(budget),
        "regex" => real::regex(budget),
        "memory" => memory::run(),
        _ => Vec::new(),
    }
}

/// Runs the workloads selected on the command line and prints their records.
pub fn run(opts: Options) {
    let mut budget_ms = 150u64;
    let mut only: Option<Vec<String>> = None;
    let mut depth = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--budget-ms" => budget_ms = args.next().and_then(|v| v.parse().ok()).unwrap_or(150),
            "--only" => {
                only = args
                    .next()
                    .map(|v| v.split(',').map(str::to_string).collect())
            }
            "--depth" => depth = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--callgrind-pairs" => {
                let n = args.next().and_then(|v| v.parse().ok()).unwrap_or(10_000);
                workloads::depth::at_depth(depth, &mut || {
                    callgrind_global_pairs(n);
                    callgrind_direct_pairs(n);
                });
                return;
            }
            "--walk-floor" => {
                crate::walk_floor::run(budget_ms);
                return;
            }
            "--list" => {
                for w in WORKLOADS {
                    println!("{w}");
                }
                return;
            }
            other => {
                eprintln!("unknown argument {other:?}; expected --budget-ms N, --only NAMES, --list, [--depth D] --callgrind-pairs N, --walk-floor");
                std::process::exit(2);
            }
        }
    }
    let budget = Budget::from_ms(budget_ms);
    for name in WORKLOADS {
        if let Some(only) = &only {
            if !only.iter().any(|o| o == name) {
                continue;
            }
        }
        for r in one(name, budget, &opts) {
            r.emit();
        }
    }
}

/// `n` pairs through the global allocator; the function callgrind counts.
#[inline(never)]
pub fn callgrind_global_pairs(n: u64) {
    workloads::pairs::pairs(workloads::Global, n);
}

/// `n` pairs on `System` directly; the function callgrind counts.
#[inline(never)]
pub fn callgrind_direct_pairs(n: u64) {
    workloads::pairs::pairs(workloads::Direct, n);
}
