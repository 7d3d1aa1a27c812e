//! The benchmark driver: builds every allocator binary, runs them in
//! interleaved rounds, prints one table of ratios to `System`.
//!
//! ```text
//! cargo run --release -p mod-alloc-bench --bin bench -- [--rounds N] [--budget-ms N]
//!     [--only WORKLOADS] [--allocators NAMES] [--no-build] [--update-readme]
//! ```
//!
//! How the figures are made (printed under the table too):
//! - Each round launches every binary once (`system` twice: every ratio is
//!   divided by its figures), in an order rotated each round (reversed every
//!   other round), so no binary always runs first or after the same
//!   neighbour.
//! - A binary normalises every sample in-process (see `mod_alloc_bench`):
//!   allocation workloads against the same operations calling `System`
//!   directly on the same thread; real-library workloads against an
//!   allocation-free kernel, then against the `system` binary's figure.
//! - A cell is the median over processes of each process's median; "±" is
//!   half the range of those per-process medians.
//!
//! Invariant: a binary that failed to build or crashed shows up in the
//! output with the reason; nothing is silently dropped.

mod build;
mod collect;
mod readme;
mod summary;

use std::path::PathBuf;
use std::time::Instant;

/// One allocator under test.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Allocator {
    /// Binary name.
    pub(crate) bin: &'static str,
    /// Column header.
    pub(crate) short: &'static str,
    /// What it is, for the legend.
    pub(crate) about: &'static str,
    /// The cargo package that builds it.
    pub(crate) package: &'static str,
    /// Workloads it runs (`None`: all, or the `--only` selection).
    pub(crate) only: Option<&'static str>,
}

const BENCH: &str = "mod-alloc-bench";
pub(crate) const BENCH_BT: &str = "mod-alloc-bench-backtraces";
pub(crate) const BENCH_REPORT: &str = "mod-alloc-bench-report";

/// The report-cost binary: not a column, its own section under the table.
pub(crate) const REPORTER: Allocator = Allocator {
    bin: "modalloc-report",
    short: "report",
    about: "mod-alloc with `dhat-compat`: a failing assert_allocs!'s report + DHAT file",
    package: BENCH_REPORT,
    only: Some("report-cost"),
};

/// Every allocator, in column order; `system` first (the baseline).
pub(crate) const ALLOCATORS: [Allocator; 9] = [
    Allocator {
        bin: "system",
        short: "System",
        about: "std::alloc::System (glibc malloc)",
        package: BENCH,
        only: None,
    },
    Allocator {
        bin: "modalloc-counters",
        short: "counters",
        about: "mod-alloc, default features (counters), no scope",
        package: BENCH,
        only: None,
    },
    Allocator {
        bin: "modalloc-counters-scope",
        short: "cnt+scope",
        about: "mod-alloc counters with a Profiler scope open on each thread",
        package: BENCH,
        only: None,
    },
    Allocator {
        bin: "modalloc-backtraces",
        short: "bt",
        about: "mod-alloc with feature `backtraces`, no scope",
        package: BENCH_BT,
        only: None,
    },
    Allocator {
        bin: "modalloc-backtraces-scope",
        short: "bt+scope",
        about: "mod-alloc `backtraces` with a Profiler scope open on each thread",
        package: BENCH_BT,
        only: None,
    },
    Allocator {
        bin: "upstream-mod-alloc",
        short: "upstream",
        about: "mod-alloc 1.0.1 from crates.io (global atomics)",
        package: BENCH,
        only: None,
    },
    Allocator {
        bin: "stats-alloc",
        short: "stats_alloc",
        about: "stats_alloc 0.1.10 (global atomics)",
        package: BENCH,
        only: None,
    },
    Allocator {
        bin: "allocation-counter",
        short: "alloc-cnt",
        about: "allocation-counter 0.8.1 (thread-local counters)",
        package: BENCH,
        only: None,
    },
    Allocator {
        bin: "dhat",
        short: "dhat",
        about: "dhat 0.3.3 heap profiler (dhat::Alloc + Profiler::new_heap)",
        package: BENCH,
        only: None,
    },
];

/// Command-line settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Rounds (processes per binary).
    pub(crate) rounds: usize,
    /// Milliseconds per workload per process.
    pub(crate) budget_ms: u64,
    /// Workloads to run (all when `None`).
    pub(crate) only: Option<String>,
    /// Allocators to run (all when `None`).
    pub(crate) allocators: Option<Vec<String>>,
    /// Skip `cargo build`.
    pub(crate) no_build: bool,
    /// Rewrite the README's results table.
    pub(crate) update_readme: bool,
}

fn settings() -> Result<Settings, String> {
    let mut s = Settings {
        rounds: 5,
        budget_ms: 100,
        only: None,
        allocators: None,
        no_build: false,
        update_readme: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--rounds" => s.rounds = value()?.parse().map_err(|_| "--rounds: a number")?,
            "--budget-ms" => s.budget_ms = value()?.parse().map_err(|_| "--budget-ms: a number")?,
            "--only" => s.only = Some(value()?),
            "--allocators" => {
                s.allocators = Some(value()?.split(',').map(str::to_string).collect())
            }
            "--no-build" => s.no_build = true,
            "--update-readme" => s.update_readme = true,
            _ => {
                return Err(format!(
                    "unknown argument {a:?}; expected --rounds N, --budget-ms N, --only WORKLOADS, \
                     --allocators NAMES, --no-build, --update-readme"
                ))
            }
        }
    }
    Ok(s)
}

/// The workspace root (this package's parent).
pub(crate) fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn main() {
    let settings = match settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let allocators: Vec<Allocator> = ALLOCATORS
        .iter()
        .filter(|a| {
            a.bin == "system"
                || settings
                    .allocators
                    .as_ref()
                    .is_none_or(|l| l.iter().any(|n| n == a.bin))
        })
        .copied()
        .collect();
    let bin_dir = match std::env::current_exe() {
        Ok(exe) => exe.parent().map(PathBuf::from).unwrap_or_default(),
        Err(e) => {
            eprintln!("bench: cannot find the binaries' directory: {e}");
            std::process::exit(1);
        }
    };
    let with_report = settings
        .only
        .as_ref()
        .is_none_or(|o| o.split(',').any(|w| w == "report-cost"));
    let mut binaries = allocators.clone();
    if with_report {
        binaries.push(REPORTER);
    }
    let build_errors = if settings.no_build {
        Vec::new()
    } else {
        build::build_all(&binaries)
    };
    let build_s = started.elapsed().as_secs_f64();
    let mut results = collect::run_rounds(&settings, &binaries, &bin_dir, &build_errors);
    let run_s = started.elapsed().as_secs_f64() - build_s;
    let report = if with_report { results.pop() } else { None };
    let mut table = summary::Table::new(&allocators, &results);
    table.set_report(report.as_ref());
    let text = table.render_text(&settings, build_s, run_s);
    println!("{text}");
    if let Err(e) = collect::write_tsv(&bin_dir, &table) {
        eprintln!("bench: could not write results.tsv: {e}");
    }
    if settings.update_readme {
        match readme::update(
            &workspace_root().join("README.md"),
            &table.render_markdown(&settings),
        ) {
            Ok(()) => println!("README.md results table updated."),
            Err(e) => {
                eprintln!("bench: README.md not updated: {e}");
                std::process::exit(1);
            }
        }
    }
}
