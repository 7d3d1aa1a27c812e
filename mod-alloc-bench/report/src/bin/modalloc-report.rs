//! Benchmark binary: report cost. mod-alloc with `dhat-compat` (call sites
//! and DHAT files); times what a failing `assert_allocs!` costs to build its
//! report and write its DHAT file, for 100, 1,000 and 10,000 call sites.
//!
//! Cost = (failing run) - (the same body under a budget it meets), in this
//! thread's CPU time (the file write included), each the fastest of 5 runs; the first failing run (which also loads the debug
//! info) is given beside it. The failing run's report goes to a silenced panic
//! hook; its DHAT file to a temporary `MOD_ALLOC_DIR`, checked to exist.
use mod_alloc::ModAlloc;
use mod_alloc_bench::measure::thread_cpu_ns;
use mod_alloc_bench::report_cost::make_sites;
use std::path::PathBuf;

#[global_allocator]
static GLOBAL: ModAlloc = ModAlloc::new();

const RUNS: usize = 5;

fn dir() -> PathBuf {
    std::env::temp_dir().join(format!("mod-alloc-report-bench-{}", std::process::id()))
}

/// (first, fastest) of `RUNS` runs, in milliseconds.
fn runs(mut f: impl FnMut() -> bool) -> Option<(f64, f64)> {
    let mut first = None;
    let mut best = f64::INFINITY;
    for _ in 0..RUNS {
        let t = thread_cpu_ns();
        if !f() {
            return None;
        }
        let ms = thread_cpu_ns().saturating_sub(t) as f64 / 1e6;
        first.get_or_insert(ms);
        best = best.min(ms);
    }
    Some((first.unwrap_or(best), best))
}

fn measure(sites: u32) -> Result<(f64, String), String> {
    let (_, passing) = runs(|| {
        let v = mod_alloc::assert_allocs!(max_allocs = 1_000_000, { make_sites(sites) });
        v.len() == sites as usize
    })
    .ok_or("the passing run allocated fewer sites")?;
    let mut report_bytes = 0usize;
    let (first, failing) = runs(|| {
        let r = std::panic::catch_unwind(|| {
            mod_alloc::assert_allocs!(max_allocs = 0, { make_sites(sites) })
        });
        match r {
            Err(payload) => {
                report_bytes = payload
                    .downcast_ref::<String>()
                    .map(String::len)
                    .unwrap_or_default();
                true
            }
            Ok(_) => false,
        }
    })
    .ok_or("the budget did not fail")?;
    let dhat_bytes: u64 = std::fs::read_dir(dir())
        .map_err(|e| format!("no DHAT file written: {e}"))?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .max()
        .ok_or("no DHAT file written")?;
    Ok((
        (failing - passing).max(0.0),
        format!(
            "report {} B, DHAT file {} KiB; first failure in the process {:.0} ms \
             (loads debug info; the symbolizer cache stays)",
            report_bytes,
            dhat_bytes / 1024,
            (first - passing).max(0.0)
        ),
    ))
}

fn main() {
    let dir = dir();
    std::env::set_var("MOD_ALLOC_DIR", &dir);
    std::panic::set_hook(Box::new(|_| {}));
    mod_alloc_bench::run(mod_alloc_bench::Options {
        report: Some(measure),
        ..Default::default()
    });
    let _ = std::fs::remove_dir_all(&dir);
}
