//! Object files read for symbolization, once per process and kept until it exits.
//!
//! The DWARF reader borrows sections and symbol names straight from these bytes
//! (`&'static [u8]`), which is what makes lookups fast in unoptimised builds, and
//! every `Symbolizer` of the process shares them.
//!
//! Invariants:
//! - A file is read at most once per process for a given (path, size, mtime):
//!   memory held is bounded by the sizes of the distinct object files that a
//!   report ever looked into (the test binary and the libraries on its stacks),
//!   as with the standard library's own backtrace cache.
//! - A file that changed on disk (another size or mtime) is read again; the old
//!   bytes stay valid for readers still borrowing them.
//! - A failed read is not cached (it returns `None` and may be retried).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

/// Identity of a file's contents as far as we can tell without reading it.
#[derive(PartialEq, Eq)]
struct Key {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

static FILES: Mutex<Vec<(Key, &'static [u8])>> = Mutex::new(Vec::new());

/// The bytes of the file at `path`, read on first use and kept for the process.
pub(super) fn read(path: &Path) -> Option<&'static [u8]> {
    let meta = std::fs::metadata(path).ok()?;
    let key = Key {
        path: path.to_owned(),
        len: meta.len(),
        modified: meta.modified().ok(),
    };
    // Holding the lock while reading keeps two threads from reading (and keeping)
    // the same file twice; this runs at report time only.
    let mut files = FILES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, bytes)) = files.iter().find(|(k, _)| *k == key) {
        return Some(bytes);
    }
    let bytes: &'static [u8] = Box::leak(std::fs::read(path).ok()?.into_boxed_slice());
    files.push((key, bytes));
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::read;
    use std::path::Path;

    #[test]
    fn same_file_is_read_once() {
        let first = read(Path::new("/proc/self/exe")).unwrap();
        let second = read(Path::new("/proc/self/exe")).unwrap();
        assert_eq!(first.as_ptr(), second.as_ptr());
        assert!(first.starts_with(b"\x7fELF"));
    }

    #[test]
    fn missing_file_gives_none() {
        assert!(read(Path::new("/nonexistent/mod-alloc/object.so")).is_none());
    }
}
