//! Runs the binaries in interleaved rounds and collects their records; writes
//! the machine-readable results.

use crate::summary::Table;
use crate::{Allocator, Settings};
use mod_alloc_bench::protocol::Record;
use std::path::Path;
use std::process::Command;

/// What one allocator produced over all rounds.
#[derive(Debug, Default)]
pub(crate) struct Runs {
    /// The records of each process that ran to the end.
    pub(crate) processes: Vec<Vec<Record>>,
    /// Why it could not run (build failure, crash), if it could not.
    pub(crate) failures: Vec<String>,
}

/// Launch order of round `r`: rotated by `r`, reversed every other round;
/// `system` (index 0) runs a second time half a round away from its first,
/// since every ratio is divided by its figures.
pub(crate) fn order(n: usize, r: usize) -> Vec<usize> {
    let mut o: Vec<usize> = (0..n).map(|i| (i + r) % n).collect();
    if r % 2 == 1 {
        o.reverse();
    }
    if n > 2 {
        let first = o.iter().position(|&i| i == 0).unwrap_or(0);
        o.insert((first + n / 2) % n + 1, 0);
    }
    o
}

/// Runs `settings.rounds` rounds; returns one [`Runs`] per allocator, in
/// the order of `allocators`.
pub(crate) fn run_rounds(
    settings: &Settings,
    allocators: &[Allocator],
    bin_dir: &Path,
    build_errors: &[(String, String)],
) -> Vec<Runs> {
    let mut runs: Vec<Runs> = allocators.iter().map(|_| Runs::default()).collect();
    for (i, a) in allocators.iter().enumerate() {
        if let Some((_, why)) = build_errors.iter().find(|(b, _)| b == a.bin) {
            runs[i].failures.push(why.clone());
        } else if !bin_dir.join(a.bin).exists() {
            runs[i].failures.push(format!(
                "not built: {} missing",
                bin_dir.join(a.bin).display()
            ));
        }
    }
    for r in 0..settings.rounds {
        eprintln!("bench: round {}/{}", r + 1, settings.rounds);
        for i in order(allocators.len(), r) {
            if runs[i].failures.iter().any(|f| !f.starts_with("crashed")) {
                continue;
            }
            let mut cmd = Command::new(bin_dir.join(allocators[i].bin));
            cmd.args(["--budget-ms", &settings.budget_ms.to_string()]);
            if let Some(only) = allocators[i].only {
                cmd.args(["--only", only]);
            } else if let Some(only) = &settings.only {
                cmd.args(["--only", only]);
            }
            match cmd.output() {
                Ok(o) if o.status.success() => {
                    let text = String::from_utf8_lossy(&o.stdout);
                    runs[i]
                        .processes
                        .push(text.lines().filter_map(Record::parse).collect());
                }
                Ok(o) => runs[i].failures.push(format!(
                    "crashed: {} ({})",
                    o.status,
                    String::from_utf8_lossy(&o.stderr)
                        .lines()
                        .last()
                        .unwrap_or("")
                )),
                Err(e) => runs[i].failures.push(format!("cannot run: {e}")),
            }
        }
    }
    runs
}

/// Writes `<bin dir>/../mod-alloc-bench/results.tsv`: one line per cell,
/// `allocator workload kind value spread processes`.
pub(crate) fn write_tsv(bin_dir: &Path, table: &Table) -> std::io::Result<()> {
    let dir = bin_dir.join("..").join("mod-alloc-bench");
    std::fs::create_dir_all(&dir)?;
    let mut s = String::from("allocator\tworkload\tkind\tvalue\tspread\tprocesses\n");
    for c in &table.cells {
        s.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            c.allocator, c.workload, c.kind, c.value, c.spread, c.processes
        ));
    }
    let path = dir.join("results.tsv");
    std::fs::write(&path, s)?;
    eprintln!("bench: wrote {}", path.display());
    Ok(())
}
