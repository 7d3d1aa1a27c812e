//! Turns the collected records into cells (median over processes of each
//! process's median) and renders them: a text table with a summary for the
//! terminal, a Markdown table for the README.

use crate::collect::Runs;
use crate::{Allocator, Settings};
use mod_alloc_bench::measure::median;
use mod_alloc_bench::protocol::Record;

/// The rows of the table, in order: (workload, label).
pub(crate) const ROWS: [(&str, &str); 13] = [
    ("pair-1t", "32 B alloc+free pair, 1 thread"),
    ("pair-2t", "pair, 2 threads (per op, overlapped)"),
    ("pair-64k", "64 KiB alloc+free pair, 1 thread"),
    ("vec-growth", "Vec growth 8 B..64 KiB (realloc)"),
    ("live-random-free", "10k live blocks, random free order"),
    ("cross-thread-free", "cross-thread free (producer/consumer)"),
    ("depth-4", "pair under +4 frames"),
    ("depth-16", "pair under +16 frames"),
    ("depth-32", "pair under +32 frames"),
    ("serde-json", "serde_json parse+serialize 1 MB"),
    ("regex", "regex compile+match 512 KiB"),
    ("memory", "extra bytes per live 32 B block"),
    ("", ""),
];

/// What a cell holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Time ratio to `System` (same process, or the `system` binary).
    Ratio,
    /// Extra bytes per block.
    Bytes,
    /// Not measured: see the reason.
    Missing,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Ratio => "ratio",
            Kind::Bytes => "bytes",
            Kind::Missing => "missing",
        })
    }
}

/// One allocator's figure for one workload.
#[derive(Debug, Clone)]
pub(crate) struct Cell {
    /// Binary name.
    pub(crate) allocator: String,
    /// Workload name.
    pub(crate) workload: String,
    /// What `value` is.
    pub(crate) kind: Kind,
    /// Median over processes.
    pub(crate) value: f64,
    /// Half the range of the per-process medians.
    pub(crate) spread: f64,
    /// Processes that contributed.
    pub(crate) processes: usize,
    /// Why it is missing (for `Kind::Missing`).
    pub(crate) reason: String,
}

/// All cells, plus each workload's `System` speed for scale.
#[derive(Debug)]
pub(crate) struct Table {
    /// The allocators, in column order.
    pub(crate) allocators: Vec<Allocator>,
    /// Row-major cells (`ROWS` × allocators; rows without data skipped).
    pub(crate) cells: Vec<Cell>,
    /// Per workload: `System` ns per op (or per run), median over everything.
    pub(crate) scale: Vec<(String, f64)>,
    /// Per allocator: failures (build, crash).
    pub(crate) failures: Vec<(String, Vec<String>)>,
    /// Report cost per site count: (sites, median ms, half range, detail),
    /// or why it is missing.
    pub(crate) report: Result<Vec<(u32, f64, f64, String)>, String>,
}

fn spread(v: &[f64]) -> f64 {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if v.is_empty() {
        f64::NAN
    } else {
        (hi - lo) / 2.0
    }
}

/// Per process, the median of `pick` over the records of `workload`.
fn per_process(runs: &Runs, workload: &str, pick: fn(&Record) -> Option<f64>) -> Vec<f64> {
    runs.processes
        .iter()
        .filter_map(|p| {
            let v: Vec<f64> = p
                .iter()
                .filter(|r| r.workload() == workload)
                .filter_map(pick)
                .collect();
            (!v.is_empty()).then(|| median(&v))
        })
        .collect()
}

fn ratio(r: &Record) -> Option<f64> {
    match r {
        Record::Ratio { ratio, .. } => Some(*ratio),
        _ => None,
    }
}

fn norm(r: &Record) -> Option<f64> {
    match r {
        Record::Norm { norm, .. } => Some(*norm),
        _ => None,
    }
}

fn bytes(r: &Record) -> Option<f64> {
    match r {
        Record::Bytes { bytes, .. } => Some(*bytes),
        _ => None,
    }
}

fn reference_ns(r: &Record) -> Option<f64> {
    match r {
        Record::Ratio { reference_ns, .. } => Some(*reference_ns),
        Record::Norm { ns, .. } => Some(*ns),
        _ => None,
    }
}

impl Table {
    /// Builds the cells from the runs (`runs[i]` belongs to `allocators[i]`;
    /// `allocators[0]` is `system`).
    pub(crate) fn new(allocators: &[Allocator], runs: &[Runs]) -> Table {
        let mut cells = Vec::new();
        let mut scale = Vec::new();
        let system = &runs[0];
        for (w, _) in ROWS.iter().filter(|(w, _)| !w.is_empty()) {
            // Scale: System's own speed for this workload.
            let s = if system.processes.is_empty() {
                f64::NAN
            } else {
                median(&per_process(system, w, reference_ns))
            };
            scale.push((w.to_string(), s));
            let system_norm = median(&per_process(system, w, norm));
            // The harness's floor: System through the global-allocator path
            // (`__rust_alloc`) over System called directly, in the system
            // binary. Other binaries' in-process ratios are divided by it, so
            // every allocator is compared with System *as global allocator*.
            let system_ratio = median(&per_process(system, w, ratio));
            for (a, r) in allocators.iter().zip(runs) {
                let mut cell = Cell {
                    allocator: a.bin.to_string(),
                    workload: w.to_string(),
                    kind: Kind::Missing,
                    value: f64::NAN,
                    spread: f64::NAN,
                    processes: 0,
                    reason: String::new(),
                };
                let ratios: Vec<f64> = per_process(r, w, ratio)
                    .iter()
                    .map(|x| {
                        if a.bin == "system" {
                            *x
                        } else {
                            x / system_ratio
                        }
                    })
                    .collect();
                let norms: Vec<f64> = per_process(r, w, norm)
                    .iter()
                    .map(|n| n / system_norm)
                    .collect();
                let bytes = per_process(r, w, bytes);
                let (kind, v) = if !ratios.is_empty() {
                    (Kind::Ratio, ratios)
                } else if !norms.is_empty() && system_norm.is_finite() {
                    (Kind::Ratio, norms)
                } else if !bytes.is_empty() {
                    (Kind::Bytes, bytes)
                } else {
                    (Kind::Missing, Vec::new())
                };
                cell.kind = kind;
                cell.processes = v.len();
                if kind == Kind::Missing {
                    cell.reason = r
                        .processes
                        .iter()
                        .flatten()
                        .find_map(|rec| match rec {
                            Record::Skip { workload, reason } if workload == w => {
                                Some(reason.clone())
                            }
                            _ => None,
                        })
                        .or_else(|| r.failures.first().cloned())
                        .unwrap_or_else(|| "no data".into());
                } else {
                    cell.value = median(&v);
                    cell.spread = spread(&v);
                }
                cells.push(cell);
            }
        }
        let failures = allocators
            .iter()
            .zip(runs)
            .filter(|(_, r)| !r.failures.is_empty())
            .map(|(a, r)| (a.bin.to_string(), r.failures.clone()))
            .collect();
        Table {
            allocators: allocators.to_vec(),
            cells,
            scale,
            failures,
            report: Err("not run (--only without report-cost)".into()),
        }
    }

    /// Takes the report-cost binary's runs.
    pub(crate) fn set_report(&mut self, runs: Option<&Runs>) {
        let Some(runs) = runs else { return };
        let mut rows = Vec::new();
        for n in mod_alloc_bench::report_cost::SITES {
            let w = format!("report-{n}");
            let mut ms = Vec::new();
            let mut detail = String::new();
            let mut skipped = None;
            for rec in runs.processes.iter().flatten() {
                match rec {
                    Record::Time {
                        workload,
                        ms: m,
                        detail: d,
                    } if *workload == w => {
                        ms.push(*m);
                        detail = d.clone();
                    }
                    Record::Skip { workload, reason } if *workload == w => {
                        skipped = Some(reason.clone())
                    }
                    _ => {}
                }
            }
            if ms.is_empty() {
                self.report = Err(skipped
                    .or_else(|| runs.failures.first().cloned())
                    .unwrap_or_else(|| "no data".into()));
                return;
            }
            rows.push((n, median(&ms), spread(&ms), detail));
        }
        self.report = Ok(rows);
    }

    /// The report-cost section, one line per site count.
    fn render_report(&self) -> String {
        let mut out = String::from(
            "Report cost: a failing assert_allocs! building its report and writing its DHAT \
             file (mod-alloc `dhat-compat`; fastest of 5 in a process, median of processes):\n",
        );
        match &self.report {
            Ok(rows) => {
                for (n, ms, sp, detail) in rows {
                    out.push_str(&format!(
                        "  {:>6} sites  {:>8} ± {} ms   {detail}\n",
                        n,
                        fmt_num(*ms),
                        fmt_num(*sp)
                    ));
                }
            }
            Err(why) => out.push_str(&format!("  not measured: {why}\n")),
        }
        out
    }

    /// The cell of `allocator` × `workload`.
    pub(crate) fn cell(&self, allocator: &str, workload: &str) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.allocator == allocator && c.workload == workload)
    }

    /// The rows with something to show (data, or a reason for its absence).
    fn rows(&self) -> Vec<(&'static str, &'static str)> {
        ROWS.iter()
            .filter(|(w, _)| !w.is_empty())
            .filter(|(w, _)| {
                self.cells
                    .iter()
                    .any(|c| c.workload == *w && (c.processes > 0 || c.reason != "no data"))
            })
            .copied()
            .collect()
    }

    fn scale_of(&self, w: &str) -> String {
        let s = self
            .scale
            .iter()
            .find(|(x, _)| x == w)
            .map_or(f64::NAN, |(_, s)| *s);
        if !s.is_finite() {
            "".into()
        } else if w == "serde-json" || w == "regex" {
            format!("{:.1} ms", s / 1e6)
        } else if w == "memory" {
            "".into()
        } else {
            format!("{s:.1} ns")
        }
    }

    /// The terminal rendering: table, legend, summary, checks.
    pub(crate) fn render_text(&self, settings: &Settings, build_s: f64, run_s: f64) -> String {
        let mut out = String::new();
        let width = 12;
        out.push_str(&format!(
            "{:<38}{:>10}",
            "ratio to System (same run)", "System/op"
        ));
        for a in &self.allocators {
            out.push_str(&format!("{:>width$}", a.short));
        }
        out.push('\n');

        let mut notes: Vec<String> = Vec::new();
        for (w, label) in self.rows() {
            out.push_str(&format!("{label:<38}{:>10}", self.scale_of(w)));
            for a in &self.allocators {
                let text = match self.cell(a.bin, w) {
                    Some(c) if c.kind != Kind::Missing => fmt_cell(c),
                    Some(c) => {
                        if !notes.contains(&c.reason) {
                            notes.push(c.reason.clone());
                        }
                        let i = notes.iter().position(|n| n == &c.reason).unwrap_or(0);
                        format!("n/a[{}]", i + 1)
                    }
                    None => "".into(),
                };
                out.push_str(&format!("{text:>width$}"));
            }
            out.push('\n');
        }
        for (i, n) in notes.iter().enumerate() {
            out.push_str(&format!("[{}] {n}\n", i + 1));
        }
        out.push('\n');
        out.push_str(&self.render_report());
        out.push('\n');
        out.push_str(&legend());
        out.push_str("\nColumns:\n");
        for a in &self.allocators {
            out.push_str(&format!("  {:<12} {}\n", a.short, a.about));
        }
        for (bin, f) in &self.failures {
            out.push_str(&format!(
                "  NOT MEASURED (fully or partly): {bin}: {}\n",
                f.join("; ")
            ));
        }
        out.push('\n');
        out.push_str(&self.summary());
        out.push_str(&format!(
            "\n{} rounds x {} binaries, {} ms per workload per process; build {:.0} s, runs {:.0} s.\n",
            settings.rounds,
            self.allocators.len(),
            settings.budget_ms,
            build_s,
            run_s
        ));
        out
    }

    /// The hyperfine-like summary and the issue's figures.
    pub(crate) fn summary(&self) -> String {
        let mut out = String::from(
            "Summary, 32 B alloc+free pair on 1 thread (median of processes ± half range):\n",
        );
        let mut rows: Vec<&Cell> = self
            .cells
            .iter()
            .filter(|c| c.workload == "pair-1t" && c.kind == Kind::Ratio && c.allocator != "system")
            .collect();
        rows.sort_by(|a, b| a.value.total_cmp(&b.value));
        for c in rows {
            out.push_str(&format!(
                "  '{}' ran {} ± {} times as long as 'System'\n",
                c.allocator,
                fmt_num(c.value),
                fmt_num(c.spread)
            ));
        }
        out.push_str("\nFigures the issue asks for (ratios to System, same run):\n");
        let get = |a: &str, w: &str| {
            self.cell(a, w)
                .filter(|c| c.kind == Kind::Ratio)
                .map(|c| c.value)
        };
        let mut check = |what: &str, v: Option<f64>, limit: f64, at_most: bool| {
            let line = match v {
                None => format!("  {what:<52} not measured\n"),
                Some(v) => {
                    let ok = if at_most { v <= limit } else { v >= limit };
                    let by = if at_most {
                        v / limit - 1.0
                    } else {
                        1.0 - v / limit
                    };
                    format!(
                        "  {what:<52} {:>8}  {} {}{}\n",
                        fmt_num(v),
                        if at_most { "<=" } else { ">=" },
                        fmt_num(limit),
                        if ok {
                            "  holds".to_string()
                        } else {
                            format!("  MISSES by {:.0}%", by * 100.0)
                        }
                    )
                }
            };
            out.push_str(&line);
        };
        check(
            "counters, pair 1 thread",
            get("modalloc-counters", "pair-1t"),
            1.2,
            true,
        );
        check(
            "counters, pair 2 threads (per op)",
            get("modalloc-counters", "pair-2t"),
            1.2,
            true,
        );
        check(
            "backtraces, pair under +16 frames",
            get("modalloc-backtraces", "depth-16"),
            3.0,
            true,
        );
        let bt1 = get("modalloc-backtraces", "pair-1t");
        let bt2 = get("modalloc-backtraces", "pair-2t");
        check(
            "backtraces, 2 threads / 1 thread (no worse per op)",
            bt1.zip(bt2).map(|(a, b)| b / a),
            1.1,
            true,
        );
        check(
            "dhat / backtraces, pair 1 thread",
            get("dhat", "pair-1t").zip(bt1).map(|(d, b)| d / b),
            100.0,
            false,
        );
        for w in ["serde-json", "regex"] {
            check(
                &format!("counters, {w} end to end"),
                get("modalloc-counters", w),
                1.05,
                true,
            );
            check(
                &format!("backtraces, {w} end to end"),
                get("modalloc-backtraces", w),
                1.3,
                true,
            );
        }
        out
    }

    /// The README rendering: machine, date, command, table, legend.
    pub(crate) fn render_markdown(&self, settings: &Settings) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "Measured {} on {}, {}; `cargo run --release -p mod-alloc-bench --bin bench` \
             ({} rounds, {} ms per workload per process). Ratios to `System` in the same run \
             (1.00 = as fast as glibc malloc); ± is half the range over processes.\n\n",
            today(),
            machine(),
            rustc(),
            settings.rounds,
            settings.budget_ms
        ));
        out.push_str("| workload | System | ");
        out.push_str(
            &self
                .allocators
                .iter()
                .skip(1)
                .map(|a| a.short)
                .collect::<Vec<_>>()
                .join(" | "),
        );
        out.push_str(" |\n|---|---|");
        out.push_str(&"---|".repeat(self.allocators.len() - 1));
        out.push('\n');
        for (w, label) in self.rows() {
            out.push_str(&format!("| {label} | {} |", self.scale_of(w)));
            for a in self.allocators.iter().skip(1) {
                let t = match self.cell(a.bin, w) {
                    Some(c) if c.kind != Kind::Missing => fmt_cell(c),
                    _ => "n/a".into(),
                };
                out.push_str(&format!(" {t} |"));
            }
            out.push('\n');
        }
        out.push_str("\nColumns: ");
        out.push_str(
            &self
                .allocators
                .iter()
                .skip(1)
                .map(|a| format!("**{}** {}", a.short, a.about))
                .collect::<Vec<_>>()
                .join("; "),
        );
        out.push_str(".\n\n");
        out.push_str("```\n");
        out.push_str(&self.render_report());
        out.push('\n');
        out.push_str(&self.summary());
        out.push_str("```\n\n");
        out.push_str(&legend().replace('\n', " ").replace("  ", " "));
        out.push('\n');
        out
    }
}

fn legend() -> String {
    "How: every binary is one allocator, launched once per round in rotated order \
     (system twice). \
     Time rows: each process times its allocator (through the global-allocator path, \
     as Box and Vec do) against the same operations calling System directly, interleaved \
     on the same thread, in thread CPU time; that in-process ratio is divided by the \
     system binary's own (its System column: the cost of the global-allocator path over \
     a direct call, the harness's floor). System/op gives the scale. serde_json and regex are timed end to end against an \
     allocation-free kernel in the same process, then divided by the system binary's \
     figure. 2-thread rows keep only rounds where the threads overlapped. Memory: resident \
     bytes per extra live block, against System in the same process, which runs \
     nothing else (the blocks it frees would slow the workloads after it).\n"
        .to_string()
}

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        "?".into()
    } else if v.abs() < 10.0 {
        format!("{v:.2}")
    } else if v.abs() < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn fmt_cell(c: &Cell) -> String {
    match c.kind {
        // `+ 0.0` turns a rounded -0 into 0.
        Kind::Bytes => format!("{:.0} B", c.value.round() + 0.0),
        _ => format!("{}±{}", fmt_num(c.value), fmt_num(c.spread)),
    }
}

fn today() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "(date unknown)".into())
}

fn rustc() -> String {
    std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "rustc (version unknown)".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores of {cpu}, Linux, glibc malloc")
}
