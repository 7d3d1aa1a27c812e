//! The failure report: the text of the panic when a budget is exceeded.
//!
//! ```text
//! allocation budget exceeded in parse_small_config (src/config.rs:42)
//!   max_allocs  10              measured 14        over by 4
//!   max_peak    4KB (4,000 B)   measured 3,072 B
//! top call sites by allocations:
//!        9 allocs    1,152 B  config::parse::tokenize  src/config.rs:88
//! DHAT profile: target/mod-alloc/my_crate__config__parse_small_config.json
//!   open it in dh_view.html (ships with valgrind) or https://nnethercote.github.io/dh_view/dh_view.html
//! ```
//!
//! Invariants:
//! - The first line always starts `allocation budget exceeded in `, so
//!   `#[should_panic(expected = "allocation budget exceeded")]` can match it.
//! - Violated limits come first and say by how much; `max_allocs = 0` reads
//!   "must not allocate, but allocated N blocks (B bytes)".
//! - Plain text: no ANSI colour, numbers with thousands separators, no
//!   trailing spaces, one line per item so it reads at a glance.
//! - A section whose data is missing says in one line how to get it (which
//!   feature to enable, or that frame pointers are needed), never nothing.
//! - Rendering is pure: it takes everything it prints as arguments.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::__private::Origin;
use crate::artefact::Outcome;
use crate::budget::{Check, Metric, Verdict};
use crate::AllocStats;

/// One call site's share of the scope's allocations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SiteRow {
    /// Allocations made there.
    pub(crate) count: u64,
    /// Bytes for the ranking metric (total, at peak, or leaked).
    pub(crate) bytes: u64,
    /// The first user frame's function.
    pub(crate) function: String,
    /// Its `file:line`.
    pub(crate) location: String,
}

/// The call-site section.
#[derive(Debug)]
pub(crate) enum Sites {
    /// Call sites are not captured in this build (`backtraces` is off).
    #[cfg_attr(feature = "backtraces", allow(dead_code))]
    Off,
    /// Call sites are captured, but not available for this report (the reason).
    #[cfg_attr(not(feature = "backtraces"), allow(dead_code))]
    Unavailable(&'static str),
    /// The top sites, ranked by `metric`, and how many more there are.
    #[cfg_attr(not(feature = "backtraces"), allow(dead_code))]
    Listed {
        metric: Metric,
        rows: Vec<SiteRow>,
        more: usize,
    },
}

/// Everything one report shows.
pub(crate) struct Report<'a> {
    pub(crate) origin: &'a Origin,
    pub(crate) verdict: &'a Verdict,
    pub(crate) stats: &'a AllocStats,
    pub(crate) sites: &'a Sites,
    pub(crate) artefact: &'a Outcome,
    /// For showing artefact paths relative to it.
    pub(crate) current_dir: Option<PathBuf>,
}

/// The online copy of DHAT's viewer (the one dhat-rs's docs link to).
const ONLINE_VIEWER: &str = "https://nnethercote.github.io/dh_view/dh_view.html";

impl Report<'_> {
    /// The report text, without a trailing newline.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.header(&mut out);
        self.limits(&mut out);
        self.sites(&mut out);
        self.artefact(&mut out);
        out.truncate(out.trim_end().len());
        out
    }

    fn header(&self, out: &mut String) {
        let o = self.origin;
        let _ = match o.test_name {
            Some(test) => writeln!(
                out,
                "allocation budget exceeded in {test} ({}:{})",
                o.file, o.line
            ),
            None => writeln!(
                out,
                "allocation budget exceeded in {} (assert_allocs! at {}:{}:{})",
                o.module_path, o.file, o.line, o.column
            ),
        };
    }

    fn limits(&self, out: &mut String) {
        let rows: Vec<[String; 3]> = self
            .verdict
            .in_report_order()
            .map(|check| limit_row(check, self.stats))
            .collect();
        let budget_width = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
        let measured_width = rows.iter().map(|r| r[1].len()).max().unwrap_or(0);
        for ([budget, measured, over], check) in rows.iter().zip(self.verdict.in_report_order()) {
            let line = format!(
                "  {:<11} {budget:<bw$}   {measured:<mw$}   {over}",
                check.metric.limit_name(),
                bw = budget_width,
                mw = measured_width,
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }

    fn sites(&self, out: &mut String) {
        match self.sites {
            Sites::Off => {
                out.push_str("call sites: not captured; enable mod-alloc's `backtraces` feature to list them\n");
            }
            Sites::Unavailable(why) => {
                let _ = writeln!(out, "call sites: {why}");
            }
            Sites::Listed { rows, .. } if rows.is_empty() => {
                out.push_str(
                    "call sites: none captured; they need frame pointers: \
                     add `-C force-frame-pointers=yes` (see README)\n",
                );
            }
            Sites::Listed { metric, rows, more } => {
                let _ = writeln!(out, "top call sites by {}:", site_metric_label(*metric));
                let counts: Vec<String> = rows.iter().map(|r| group_thousands(r.count)).collect();
                let bytes: Vec<String> = rows
                    .iter()
                    .map(|r| format!("{} B", group_thousands(r.bytes)))
                    .collect();
                let count_width = counts.iter().map(String::len).max().unwrap_or(0).max(6);
                let bytes_width = bytes.iter().map(String::len).max().unwrap_or(0);
                let function_width = rows.iter().map(|r| r.function.len()).max().unwrap_or(0);
                for ((row, count), bytes) in rows.iter().zip(&counts).zip(&bytes) {
                    let unit = crate::stats::allocs_unit(row.count);
                    let _ = writeln!(
                        out,
                        "  {count:>count_width$} {unit}  {bytes:>bytes_width$}  {:<function_width$}  {}",
                        row.function, row.location
                    );
                }
                if *more > 0 {
                    let _ = writeln!(out, "  … and {} more", group_thousands(*more as u64));
                }
            }
        }
    }

    fn artefact(&self, out: &mut String) {
        let shown = |path: &PathBuf| {
            crate::artefact::display_path(path, self.current_dir.as_deref())
                .display()
                .to_string()
        };
        let _ = match self.artefact {
            Outcome::Written(path) => writeln!(
                out,
                "DHAT profile: {}\n  open it in dh_view.html (ships with valgrind) or {ONLINE_VIEWER}",
                shown(path)
            ),
            Outcome::Failed { path: Some(path), why } => {
                writeln!(out, "DHAT profile: not written to {}: {why}", shown(path))
            }
            Outcome::Failed { path: None, why } => writeln!(out, "DHAT profile: not written: {why}"),
            Outcome::Disabled => writeln!(
                out,
                "DHAT profile: not saved; enable mod-alloc's `dhat-compat` feature to get one per failing test"
            ),
        };
    }
}

/// The three cells of a limit's row: budget, measurement, verdict.
fn limit_row(check: Check, stats: &AllocStats) -> [String; 3] {
    let metric = check.metric;
    let budget = match (metric.is_bytes(), check.limit.written) {
        (true, Some(written)) => format!("{written} ({} B)", group_thousands(check.limit.value)),
        (true, None) => format!("{} B", group_thousands(check.limit.value)),
        (false, _) => group_thousands(check.limit.value),
    };
    if metric == Metric::Allocs && check.limit.value == 0 && check.is_violated() {
        let must_not = format!(
            "must not allocate, but allocated {} ({} B)",
            blocks(stats.alloc_count),
            group_thousands(stats.total_bytes)
        );
        return [budget, must_not, String::new()];
    }
    let amount = |value: u64| match metric.is_bytes() {
        true => format!("{} B", group_thousands(value)),
        false => group_thousands(value),
    };
    let mut measured = format!("measured {}", amount(check.measured));
    if metric == Metric::Leaked && check.measured > 0 {
        let _ = write!(measured, " in {}", blocks(stats.current_blocks));
    }
    let over = match check.is_violated() {
        true => format!("over by {}", amount(check.excess())),
        false => String::new(),
    };
    [budget, measured, over]
}

/// `1 block` / `3 blocks`.
fn blocks(count: u64) -> String {
    match count {
        1 => "1 block".to_owned(),
        n => format!("{} blocks", group_thousands(n)),
    }
}

/// How the call-site header names the ranking.
fn site_metric_label(metric: Metric) -> &'static str {
    match metric {
        Metric::Allocs => "allocations",
        Metric::Bytes => "bytes allocated",
        Metric::Peak => "bytes live at the peak",
        Metric::Leaked => "bytes leaked",
    }
}

pub(crate) use crate::stats::group_thousands;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::{Limit, Limits};

    const TEST_ORIGIN: Origin = Origin {
        test_name: Some("parse_small_config"),
        module_path: "my_crate::config",
        file: "src/config.rs",
        line: 42,
        column: 1,
        manifest_dir: "/work/my_crate",
        crate_name: "my_crate",
    };

    fn render(limits: Limits, stats: AllocStats, sites: Sites, artefact: Outcome) -> String {
        let verdict = Verdict::new(&limits, &stats);
        Report {
            origin: &TEST_ORIGIN,
            verdict: &verdict,
            stats: &stats,
            sites: &sites,
            artefact: &artefact,
            current_dir: Some(PathBuf::from("/work/my_crate")),
        }
        .render()
    }

    fn stats(
        alloc_count: u64,
        total_bytes: u64,
        peak_bytes: u64,
        current_bytes: u64,
    ) -> AllocStats {
        AllocStats {
            alloc_count,
            total_bytes,
            peak_bytes,
            current_bytes,
            current_blocks: 2,
            ..AllocStats::default()
        }
    }

    #[test]
    fn thousands_are_grouped_by_three() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1_000), "1,000");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
        assert_eq!(group_thousands(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn the_full_report_reads_as_designed() {
        let limits = Limits {
            max_allocs: Some(Limit {
                value: 10,
                written: None,
            }),
            max_peak: Some(Limit {
                value: 4_000,
                written: Some("4KB"),
            }),
            ..Limits::default()
        };
        let sites = Sites::Listed {
            metric: Metric::Allocs,
            rows: vec![
                SiteRow {
                    count: 9,
                    bytes: 1_152,
                    function: "config::parse::tokenize".into(),
                    location: "src/config.rs:88".into(),
                },
                SiteRow {
                    count: 1,
                    bytes: 64,
                    function: "config::parse".into(),
                    location: "src/config.rs:61".into(),
                },
            ],
            more: 12,
        };
        let artefact = Outcome::Written(PathBuf::from("/work/my_crate/target/mod-alloc/x.json"));
        let text = render(limits, stats(14, 5_000, 3_072, 0), sites, artefact);
        let expected = "\
allocation budget exceeded in parse_small_config (src/config.rs:42)
  max_allocs  10              measured 14        over by 4
  max_peak    4KB (4,000 B)   measured 3,072 B
top call sites by allocations:
       9 allocs  1,152 B  config::parse::tokenize  src/config.rs:88
       1 alloc      64 B  config::parse            src/config.rs:61
  … and 12 more
DHAT profile: target/mod-alloc/x.json
  open it in dh_view.html (ships with valgrind) or https://nnethercote.github.io/dh_view/dh_view.html";
        assert_eq!(text, expected);
    }

    #[test]
    fn violated_rows_come_first() {
        let limits = Limits {
            max_allocs: Some(Limit {
                value: 100,
                written: None,
            }),
            max_bytes: Some(Limit {
                value: 10,
                written: None,
            }),
            ..Limits::default()
        };
        let text = render(limits, stats(1, 64, 64, 0), Sites::Off, Outcome::Disabled);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "  max_bytes   10 B   measured 64 B   over by 54 B"
        );
        assert_eq!(lines[2], "  max_allocs  100    measured 1");
    }

    #[test]
    fn must_not_allocate_is_said_plainly() {
        let limits = Limits {
            max_allocs: Some(Limit {
                value: 0,
                written: None,
            }),
            ..Limits::default()
        };
        let text = render(limits, stats(3, 96, 96, 0), Sites::Off, Outcome::Disabled);
        assert_eq!(
            text.lines().nth(1),
            Some("  max_allocs  0   must not allocate, but allocated 3 blocks (96 B)")
        );
    }

    #[test]
    fn leaks_say_how_many_blocks() {
        let limits = Limits {
            max_leaked: Some(Limit {
                value: 0,
                written: None,
            }),
            ..Limits::default()
        };
        let text = render(limits, stats(3, 96, 96, 80), Sites::Off, Outcome::Disabled);
        assert_eq!(
            text.lines().nth(1),
            Some("  max_leaked  0 B   measured 80 B in 2 blocks   over by 80 B")
        );
    }

    #[test]
    fn missing_features_say_how_to_turn_them_on() {
        let limits = Limits {
            max_allocs: Some(Limit {
                value: 1,
                written: None,
            }),
            ..Limits::default()
        };
        let text = render(limits, stats(3, 96, 96, 0), Sites::Off, Outcome::Disabled);
        assert!(
            text.contains("enable mod-alloc's `backtraces` feature"),
            "{text}"
        );
        assert!(
            text.contains("enable mod-alloc's `dhat-compat` feature"),
            "{text}"
        );
    }

    #[test]
    fn no_captured_sites_hint_at_frame_pointers() {
        let limits = Limits {
            max_allocs: Some(Limit {
                value: 1,
                written: None,
            }),
            ..Limits::default()
        };
        let sites = Sites::Listed {
            metric: Metric::Allocs,
            rows: Vec::new(),
            more: 0,
        };
        let text = render(limits, stats(3, 96, 96, 0), sites, Outcome::Disabled);
        assert!(text.contains("-C force-frame-pointers=yes"), "{text}");
    }

    #[test]
    fn a_failed_artefact_says_where_and_why() {
        let limits = Limits {
            max_allocs: Some(Limit {
                value: 1,
                written: None,
            }),
            ..Limits::default()
        };
        let artefact = Outcome::Failed {
            path: Some(PathBuf::from("/ro/my_crate__t.json")),
            why: "Permission denied (os error 13)".into(),
        };
        let text = render(limits, stats(3, 96, 96, 0), Sites::Off, artefact);
        assert!(
            text.ends_with("DHAT profile: not written to /ro/my_crate__t.json: Permission denied (os error 13)"),
            "{text}"
        );
    }

    #[test]
    fn a_block_names_its_module_and_call_site() {
        let origin = Origin {
            test_name: None,
            column: 9,
            ..TEST_ORIGIN
        };
        let limits = Limits {
            max_allocs: Some(Limit {
                value: 1,
                written: None,
            }),
            ..Limits::default()
        };
        let stats = stats(2, 2, 2, 0);
        let verdict = Verdict::new(&limits, &stats);
        let text = Report {
            origin: &origin,
            verdict: &verdict,
            stats: &stats,
            sites: &Sites::Off,
            artefact: &Outcome::Disabled,
            current_dir: None,
        }
        .render();
        assert!(
            text.starts_with("allocation budget exceeded in my_crate::config (assert_allocs! at src/config.rs:42:9)\n"),
            "{text}"
        );
    }
}
