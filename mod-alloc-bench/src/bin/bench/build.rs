//! Builds the allocator binaries: one `cargo build --release` per package.
//!
//! Separate invocations on purpose: cargo unifies the features of a
//! dependency across the packages built together, so building
//! `mod-alloc-bench-backtraces` with `mod-alloc-bench` would give the
//! counters binaries mod-alloc's `backtraces` feature.

use crate::{workspace_root, Allocator, BENCH_BT, BENCH_REPORT};
use std::process::Command;

/// Builds each package once; returns (binary, reason) for the binaries that
/// could not be built.
pub(crate) fn build_all(allocators: &[Allocator]) -> Vec<(String, String)> {
    let mut packages: Vec<&str> = Vec::new();
    for a in allocators {
        if !packages.contains(&a.package) {
            packages.push(a.package);
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut failed = Vec::new();
    for p in packages {
        eprintln!("bench: building {p} (release)");
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(workspace_root())
            .args(["build", "--release", "--bins", "-p", p]);
        // The mod-alloc feature each package's binaries require (off by
        // default so `cargo test --workspace` does not unify it in).
        match p {
            BENCH_BT => cmd.args(["--features", "backtraces"]),
            BENCH_REPORT => cmd.args(["--features", "report"]),
            _ => &mut cmd,
        };
        let out = cmd.output();
        let reason = match out {
            Ok(o) if o.status.success() => continue,
            Ok(o) => String::from_utf8_lossy(&o.stderr)
                .lines()
                .find(|l| l.starts_with("error"))
                .unwrap_or("cargo build failed")
                .to_string(),
            Err(e) => format!("cannot run cargo: {e}"),
        };
        for a in allocators.iter().filter(|a| a.package == p) {
            failed.push((a.bin.to_string(), format!("build failed: {reason}")));
        }
    }
    failed
}
