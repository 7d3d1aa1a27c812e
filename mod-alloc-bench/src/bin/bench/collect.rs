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
            let selection = allocators[i].only.or(settings.only.as_deref());
            for only in processes_for(selection) {
                let mut cmd = Command::new(bin_dir.join(allocators[i].bin));
                cmd.args(["--budget-ms", &settings.budget_ms.to_string()]);
                cmd.args(["--only", &only]);
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
    }
    runs
}

/// The `--only` lists of the processes that run `selection` (all workloads
/// when `None`): `memory` in a process of its own, the rest in another.
/// `memory` leaves 400,000 freed blocks behind in the heap; in the same
/// process, the 2-thread pairs that follow it were seen to run their
/// `System` reference up to 2.5 times slower (only with a scope open),
/// which made the scope columns read below 1.
pub(crate) fn processes_for(selection: Option<&str>) -> Vec<String> {
    let all: Vec<&str> = match selection {
        Some(list) => list.split(',').filter(|w| !w.is_empty()).collect(),
        None => mod_alloc_bench::run::WORKLOADS.to_vec(),
    };
    let (memory, rest): (Vec<&str>, Vec<&str>) = all.into_iter().partition(|w| *w == "memory");
    [memory, rest]
        .into_iter()
        .filter(|part| !part.is_empty())
        .map(|part| part.join(","))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::processes_for;

    #[test]
    fn memory_runs_in_a_process_of_its_own() {
        let all = processes_for(None);
        assert_eq!(all[0], "memory");
        assert_eq!(all.len(), 2);
        assert!(!all[1].split(',').any(|w| w == "memory"));
        assert_eq!(
            all[1].split(',').count() + 1,
            mod_alloc_bench::run::WORKLOADS.len()
        );
        assert_eq!(
            processes_for(Some("pair-1t,memory,regex")),
            ["memory", "pair-1t,regex"]
        );
        assert_eq!(processes_for(Some("pair-2t")), ["pair-2t"]);
        assert_eq!(processes_for(Some("memory")), ["memory"]);
    }
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
