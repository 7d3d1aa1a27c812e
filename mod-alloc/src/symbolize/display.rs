//! Short source paths for reports.
//!
//! - A file under the workspace root is shown relative to it (`src/config.rs`).
//! - The standard library's sources, recorded by the compiler as
//!   `/rustc/<commit>/library/alloc/src/vec/mod.rs` (or under a `rust-src`
//!   component, `…/lib/rustlib/src/rust/library/…`), are shown from the crate
//!   directory on (`alloc/src/vec/mod.rs`).
//! - Sources of registry dependencies
//!   (`~/.cargo/registry/src/<index>/serde-1.0.200/src/de.rs`, or `/rust/deps/…`
//!   for std's own dependencies) are shown from the package directory on
//!   (`serde-1.0.200/src/de.rs`).
//! - Anything else is shown as recorded.

use std::path::Path;

/// `file` shortened for a report (see the module docs); `workspace_root` is the
/// directory that user paths are shown relative to.
pub(crate) fn display_path(file: &str, workspace_root: Option<&Path>) -> String {
    if let Some(root) = workspace_root {
        if let Ok(relative) = Path::new(file).strip_prefix(root) {
            if !relative.as_os_str().is_empty() {
                return relative.display().to_string();
            }
        }
    }
    if let Some(rest) = file.strip_prefix("/rustc/") {
        if let Some((_commit, in_checkout)) = rest.split_once('/') {
            return in_checkout
                .strip_prefix("library/")
                .unwrap_or(in_checkout)
                .to_owned();
        }
    }
    if let Some(at) = file.find("/lib/rustlib/src/rust/library/") {
        return file[at + "/lib/rustlib/src/rust/library/".len()..].to_owned();
    }
    if let Some(at) = file.find("/registry/src/") {
        let in_index = &file[at + "/registry/src/".len()..];
        if let Some((_index, in_package)) = in_index.split_once('/') {
            return in_package.to_owned();
        }
    }
    if let Some(in_deps) = file.strip_prefix("/rust/deps/") {
        return in_deps.to_owned();
    }
    file.to_owned()
}

#[cfg(test)]
mod tests {
    use super::display_path;
    use std::path::Path;

    #[test]
    fn file_under_workspace_is_relative() {
        let root = Path::new("/home/me/proj");
        assert_eq!(
            display_path("/home/me/proj/src/config.rs", Some(root)),
            "src/config.rs"
        );
        assert_eq!(
            display_path(
                "/home/me/proj/crates/a/src/lib.rs",
                Some(Path::new("/home/me/proj/"))
            ),
            "crates/a/src/lib.rs"
        );
    }

    #[test]
    fn sibling_directory_with_common_prefix_is_not_relative() {
        let root = Path::new("/home/me/proj");
        assert_eq!(
            display_path("/home/me/project2/src/main.rs", Some(root)),
            "/home/me/project2/src/main.rs"
        );
    }

    #[test]
    fn std_paths_start_at_the_crate_directory() {
        assert_eq!(
            display_path(
                "/rustc/59807616e1e6a5e4e3e6a9b1c1f0f5c9e0a1b2c3/library/alloc/src/vec/mod.rs",
                None
            ),
            "alloc/src/vec/mod.rs"
        );
        assert_eq!(
            display_path(
                "/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/lib/rustlib/src/rust/library/core/src/fmt/mod.rs",
                Some(Path::new("/work/proj"))
            ),
            "core/src/fmt/mod.rs"
        );
    }

    #[test]
    fn registry_paths_start_at_the_package_directory() {
        assert_eq!(
            display_path(
                "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/serde-1.0.200/src/de.rs",
                None
            ),
            "serde-1.0.200/src/de.rs"
        );
        assert_eq!(
            display_path("/rust/deps/hashbrown-0.15.2/src/raw/mod.rs", None),
            "hashbrown-0.15.2/src/raw/mod.rs"
        );
    }

    #[test]
    fn other_paths_are_kept() {
        assert_eq!(
            display_path("/usr/src/glibc/malloc.c", None),
            "/usr/src/glibc/malloc.c"
        );
        assert_eq!(
            display_path("src/main.rs", Some(Path::new("/x"))),
            "src/main.rs"
        );
        assert_eq!(display_path("", None), "");
    }
}
