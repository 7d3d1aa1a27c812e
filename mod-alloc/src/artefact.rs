//! Where a failing budget's artefact (its DHAT profile) goes, what it is
//! called, and what happened when we tried to write it.
//!
//! Location: `$MOD_ALLOC_DIR` if set, else `<target dir>/mod-alloc/`, where
//! the target dir is, in order:
//! 1. `CARGO_TARGET_DIR`, if absolute (a relative one is relative to where
//!    cargo ran, which the test process cannot know; it is used, against the
//!    working directory, only when step 2 finds nothing);
//! 2. the nearest ancestor of the running executable holding `CACHEDIR.TAG`
//!    (cargo writes one at the root of every target dir);
//! 3. `target/` in the nearest ancestor of the crate's manifest dir holding
//!    `target/CACHEDIR.TAG` (doctests run from a temporary directory).
//!
//! Name: `<crate>__<module path, :: as __>__<test>.json`, the module path
//! without its leading crate segment (`my_crate__config__tests__parses.json`);
//! for `assert_allocs!`, `<test>` is `assert_allocs_L<line>C<column>`.
//!
//! Invariants:
//! - Environment variables are read only when a report is being built
//!   (never in the allocator hook); an empty value counts as unset.
//! - Nothing here panics: every failure becomes [`Outcome::Failed`] with the
//!   reason, which the report prints; the test then fails with its budget
//!   report, never with a second panic.
//! - Successful tests never get here, so they write nothing.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::__private::Origin;

/// The variable that overrides the artefact directory.
pub(crate) const DIR_VAR: &str = "MOD_ALLOC_DIR";

/// What happened to a failing test's artefact.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Written at this path.
    Written(PathBuf),
    /// Not written; `path` is where it would have gone, if that was known.
    Failed { path: Option<PathBuf>, why: String },
    /// The feature that produces it is off.
    Disabled,
}

/// Why no artefact directory could be chosen.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DirError {
    /// `MOD_ALLOC_DIR` (or `CARGO_TARGET_DIR`) names an existing non-directory.
    NotADirectory { var: &'static str, path: PathBuf },
    /// No way to find the target directory.
    NoTargetDir,
}

impl fmt::Display for DirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirError::NotADirectory { var, path } => write!(
                f,
                "invalid value for env var {var}: `{}` is a file; expected a directory (created if missing)",
                path.display()
            ),
            DirError::NoTargetDir => write!(
                f,
                "cannot find cargo's target directory (no CACHEDIR.TAG above the test executable); \
                 set {DIR_VAR} or CARGO_TARGET_DIR"
            ),
        }
    }
}

/// The environment and paths the directory depends on, gathered at report
/// time so that [`directory_from`] is a pure function tests can drive.
pub(crate) struct Context {
    pub(crate) mod_alloc_dir: Option<OsString>,
    pub(crate) cargo_target_dir: Option<OsString>,
    pub(crate) current_exe: Option<PathBuf>,
    pub(crate) current_dir: Option<PathBuf>,
    pub(crate) manifest_dir: PathBuf,
}

impl Context {
    /// Reads the environment now.
    pub(crate) fn from_env(origin: &Origin) -> Context {
        Context {
            mod_alloc_dir: std::env::var_os(DIR_VAR),
            cargo_target_dir: std::env::var_os("CARGO_TARGET_DIR"),
            current_exe: std::env::current_exe().ok(),
            current_dir: std::env::current_dir().ok(),
            manifest_dir: PathBuf::from(origin.manifest_dir),
        }
    }
}

/// An env var's value as a path: `None` when unset or empty.
fn path_var(value: &Option<OsString>) -> Option<PathBuf> {
    value.as_ref().filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// `path` made absolute against `base` (when known).
fn absolute(path: PathBuf, base: Option<&Path>) -> PathBuf {
    match base {
        Some(base) if path.is_relative() => base.join(path),
        _ => path,
    }
}

/// Rejects a path that exists and is not a directory.
fn ensure_not_file(var: &'static str, path: PathBuf) -> Result<PathBuf, DirError> {
    if path.exists() && !path.is_dir() {
        return Err(DirError::NotADirectory { var, path });
    }
    Ok(path)
}

/// The artefact directory for this context (see the module docs for the order).
pub(crate) fn directory_from(context: &Context) -> Result<PathBuf, DirError> {
    let cwd = context.current_dir.as_deref();
    if let Some(dir) = path_var(&context.mod_alloc_dir) {
        return ensure_not_file(DIR_VAR, absolute(dir, cwd));
    }
    let target_var = path_var(&context.cargo_target_dir);
    let target = match target_var {
        Some(dir) if dir.is_absolute() => Some(dir),
        relative => tagged_ancestor(context.current_exe.as_deref())
            .or_else(|| relative.map(|dir| absolute(dir, cwd)))
            .or_else(|| target_near(&context.manifest_dir)),
    };
    match target {
        Some(target) => ensure_not_file("CARGO_TARGET_DIR", target).map(|t| t.join("mod-alloc")),
        None => Err(DirError::NoTargetDir),
    }
}

/// The nearest ancestor of `exe` that holds `CACHEDIR.TAG`.
fn tagged_ancestor(exe: Option<&Path>) -> Option<PathBuf> {
    exe?.ancestors()
        .skip(1)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
}

/// `<ancestor>/target` for the nearest ancestor of `manifest_dir` whose
/// `target/` holds `CACHEDIR.TAG`.
fn target_near(manifest_dir: &Path) -> Option<PathBuf> {
    manifest_dir
        .ancestors()
        .map(|dir| dir.join("target"))
        .find(|target| target.join("CACHEDIR.TAG").is_file())
}

/// The artefact's file name for a call (see the module docs).
pub(crate) fn file_name(origin: &Origin) -> String {
    let mut segments: Vec<&str> = origin.module_path.split("::").collect();
    if segments.first() == Some(&origin.crate_name) {
        segments.remove(0);
    }
    let test = match origin.test_name {
        Some(name) => name.to_owned(),
        None => format!("assert_allocs_L{}C{}", origin.line, origin.column),
    };
    let mut name = String::from(origin.crate_name);
    for part in segments.iter().copied().chain(Some(test.as_str())) {
        name.push_str("__");
        name.push_str(part);
    }
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    safe + ".json"
}

/// Chooses the path for `origin`'s artefact, creates its directory and runs
/// `write` on it. Never panics; every failure is in the returned outcome.
pub(crate) fn save(
    origin: &Origin,
    context: &Context,
    write: impl FnOnce(&Path) -> io::Result<()>,
) -> Outcome {
    let dir = match directory_from(context) {
        Ok(dir) => dir,
        Err(error) => {
            return Outcome::Failed {
                path: None,
                why: error.to_string(),
            }
        }
    };
    let path = dir.join(file_name(origin));
    let written = std::fs::create_dir_all(&dir).and_then(|()| write(&path));
    match written {
        Ok(()) => Outcome::Written(path),
        Err(error) => Outcome::Failed {
            path: Some(path),
            why: error.to_string(),
        },
    }
}

/// `path` relative to the working directory when it is inside it, for a
/// shorter report line; otherwise unchanged.
pub(crate) fn display_path(path: &Path, current_dir: Option<&Path>) -> PathBuf {
    current_dir
        .and_then(|cwd| path.strip_prefix(cwd).ok())
        .map_or_else(|| path.to_path_buf(), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(module_path: &'static str, test_name: Option<&'static str>) -> Origin {
        Origin {
            test_name,
            module_path,
            file: "src/lib.rs",
            line: 12,
            column: 5,
            manifest_dir: "/nonexistent/manifest",
            crate_name: "my_crate",
        }
    }

    fn context(
        mod_alloc_dir: Option<&str>,
        cargo_target_dir: Option<&str>,
        exe: Option<&Path>,
    ) -> Context {
        Context {
            mod_alloc_dir: mod_alloc_dir.map(OsString::from),
            cargo_target_dir: cargo_target_dir.map(OsString::from),
            current_exe: exe.map(Path::to_path_buf),
            current_dir: Some(PathBuf::from("/work/here")),
            manifest_dir: PathBuf::from("/nonexistent/manifest"),
        }
    }

    /// A fresh directory under the system temp dir, unique to this test.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mod-alloc-artefact-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn file_name_joins_crate_module_path_and_test() {
        let name = file_name(&origin("my_crate::config::tests", Some("parses")));
        assert_eq!(name, "my_crate__config__tests__parses.json");
    }

    #[test]
    fn file_name_at_the_crate_root_has_no_empty_segment() {
        assert_eq!(
            file_name(&origin("my_crate", Some("parses"))),
            "my_crate__parses.json"
        );
    }

    #[test]
    fn file_name_of_a_block_names_its_line_and_column() {
        let name = file_name(&origin("my_crate::bench", None));
        assert_eq!(name, "my_crate__bench__assert_allocs_L12C5.json");
    }

    #[test]
    fn mod_alloc_dir_wins_and_relative_is_against_the_working_dir() {
        let dir = directory_from(&context(Some("prof"), Some("/abs/target"), None));
        assert_eq!(dir, Ok(PathBuf::from("/work/here/prof")));
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let dir = directory_from(&context(Some(""), Some("/abs/target"), None));
        assert_eq!(dir, Ok(PathBuf::from("/abs/target/mod-alloc")));
    }

    #[test]
    fn a_file_as_mod_alloc_dir_is_named_in_the_error() {
        let root = scratch("file-as-dir");
        let file = root.join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let error = directory_from(&context(file.to_str(), None, None)).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid value for env var MOD_ALLOC_DIR: `"),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains("is a file; expected a directory"),
            "{error}"
        );
    }

    #[test]
    fn the_target_dir_is_the_nearest_tagged_ancestor_of_the_executable() {
        let root = scratch("tagged");
        let target = root.join("target");
        std::fs::create_dir_all(target.join("debug/deps")).unwrap();
        std::fs::write(
            target.join("CACHEDIR.TAG"),
            b"Signature: 8a477f597d28d172789f06886806bc55",
        )
        .unwrap();
        let exe = target.join("debug/deps/suite-1234");
        let dir = directory_from(&context(None, None, Some(&exe)));
        assert_eq!(dir, Ok(target.join("mod-alloc")));
    }

    #[test]
    fn a_relative_cargo_target_dir_yields_to_the_executables_target() {
        let root = scratch("relative-target");
        std::fs::create_dir_all(root.join("t/debug")).unwrap();
        std::fs::write(root.join("t/CACHEDIR.TAG"), b"tag").unwrap();
        let exe = root.join("t/debug/bin");
        let dir = directory_from(&context(None, Some("elsewhere"), Some(&exe)));
        assert_eq!(dir, Ok(root.join("t/mod-alloc")));
        let dir = directory_from(&context(None, Some("elsewhere"), None));
        assert_eq!(dir, Ok(PathBuf::from("/work/here/elsewhere/mod-alloc")));
    }

    #[test]
    fn no_target_dir_is_an_error_that_says_what_to_set() {
        let error =
            directory_from(&context(None, None, Some(Path::new("/nonexistent/bin")))).unwrap_err();
        assert_eq!(error, DirError::NoTargetDir);
        assert!(error
            .to_string()
            .contains("set MOD_ALLOC_DIR or CARGO_TARGET_DIR"));
    }

    #[test]
    fn save_creates_the_directory_and_reports_the_path() {
        let root = scratch("save");
        let dir = root.join("a/b");
        let outcome = save(
            &origin("my_crate", Some("t")),
            &context(dir.to_str(), None, None),
            |path| std::fs::write(path, b"{}"),
        );
        match outcome {
            Outcome::Written(path) => assert_eq!(std::fs::read(path).unwrap(), b"{}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failed_write_is_an_outcome_with_the_reason() {
        let root = scratch("fail");
        let outcome = save(
            &origin("my_crate", Some("t")),
            &context(root.to_str(), None, None),
            |_| Err(io::Error::other("disk full")),
        );
        match outcome {
            Outcome::Failed {
                path: Some(path),
                why,
            } => {
                assert_eq!(path, root.join("my_crate__t.json"));
                assert_eq!(why, "disk full");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn paths_inside_the_working_dir_are_shown_relative() {
        let cwd = Path::new("/work/here");
        assert_eq!(
            display_path(Path::new("/work/here/target/x.json"), Some(cwd)),
            PathBuf::from("target/x.json")
        );
        assert_eq!(
            display_path(Path::new("/elsewhere/x.json"), Some(cwd)),
            PathBuf::from("/elsewhere/x.json")
        );
    }
}
