//! Where failing budgets write their DHAT profiles, and what the report says
//! when they cannot. Its own binary without the libtest harness: the checks
//! set `MOD_ALLOC_DIR`, which is process-wide, so they run one after another.
use std::panic::{catch_unwind, AssertUnwindSafe};

#[global_allocator]
static GLOBAL: mod_alloc::ModAlloc = mod_alloc::ModAlloc::new();

fn main() {
    if !cfg!(feature = "dhat-compat") {
        println!("test result: ok. 0 passed; 0 failed (needs the dhat-compat feature)");
        return;
    }
    // The budgets here fail on purpose; their reports are checked, not printed.
    std::panic::set_hook(Box::new(|_| {}));
    let checks: &[(&str, fn())] = &[
        (
            "a_failing_budget_writes_its_profile_under_mod_alloc_dir",
            writes_under_mod_alloc_dir,
        ),
        (
            "an_unwritable_mod_alloc_dir_is_reported_not_a_second_panic",
            unwritable_dir_is_reported,
        ),
        (
            "a_passing_budget_writes_nothing",
            passing_budget_writes_nothing,
        ),
    ];
    for (name, check) in checks {
        check();
        println!("test {name} ... ok");
    }
    println!("test result: ok. {} passed; 0 failed", checks.len());
}

/// The panic message of a budget that fails (4 allocations, budget 1).
fn failing_report() -> String {
    let err = catch_unwind(AssertUnwindSafe(|| {
        mod_alloc::assert_allocs!(max_allocs = 1, {
            let v: Vec<Box<u32>> = (0..3).map(Box::new).collect();
            drop(v);
        });
    }))
    .expect_err("the budget must fail");
    match err.downcast::<String>() {
        Ok(s) => *s,
        Err(e) => e
            .downcast::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("mod-alloc-artefacts-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn writes_under_mod_alloc_dir() {
    let dir = temp_dir("ok");
    std::env::set_var("MOD_ALLOC_DIR", &dir);
    let report = failing_report();
    std::env::remove_var("MOD_ALLOC_DIR");
    let line = report
        .lines()
        .find(|l| l.starts_with("DHAT profile: "))
        .unwrap_or_else(|| panic!("no DHAT line in:\n{report}"));
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the dir was made")
        .flatten()
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let path = files[0].path();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("artefacts__assert_allocs_L"), "{name}");
    assert!(name.ends_with(".json"), "{name}");
    assert!(line.contains(&name), "{line}");
    let json = std::fs::read_to_string(&path).unwrap();
    assert!(json.contains("\"dhatFileVersion\": 2"), "{json}");
    assert!(json.contains("\"mode\": \"rust-heap\""), "{json}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn unwritable_dir_is_reported() {
    // A regular file where the directory should be: nothing can be created in it.
    let file = temp_dir("file");
    std::fs::write(&file, b"not a directory").unwrap();
    std::env::set_var("MOD_ALLOC_DIR", &file);
    let report = failing_report();
    std::env::remove_var("MOD_ALLOC_DIR");
    assert!(
        report.starts_with("allocation budget exceeded in "),
        "{report}"
    );
    assert!(report.contains("max_allocs  1"), "{report}");
    let line = report
        .lines()
        .find(|l| l.starts_with("DHAT profile: "))
        .unwrap_or_else(|| panic!("no DHAT line in:\n{report}"));
    assert!(line.contains("not written"), "{line}");
    assert!(
        line.contains("MOD_ALLOC_DIR"),
        "the report names the variable: {line}"
    );
    let _ = std::fs::remove_file(&file);
}

fn passing_budget_writes_nothing() {
    let dir = temp_dir("pass");
    std::env::set_var("MOD_ALLOC_DIR", &dir);
    let v = mod_alloc::assert_allocs!(max_allocs = 1, { vec![1u8; 10] });
    std::env::remove_var("MOD_ALLOC_DIR");
    assert_eq!(v.len(), 10);
    assert!(!dir.exists(), "a passing budget wrote {dir:?}");
}
