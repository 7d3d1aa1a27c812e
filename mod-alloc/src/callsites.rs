//! Call sites at report time: per-site figures (from the ledgers) become
//! symbolized rows, one per user location, ranked by a chosen figure.
//!
//! Each site's stack is symbolized (inlined frames expanded) and shown at its
//! first *user* frame (see `symbolize::first_user_frame`): sites that resolve
//! to the same function and `file:line` are merged, so a loop that allocates
//! through two different std paths is one row. One [`Symbolizer`] serves the
//! whole process (object files are read once).
//!
//! Invariants: never called from the allocator hook; callers suspend tracking
//! (everything here runs inside `thread::untracked`).

use crate::ledger::{live_count, Fig};
use crate::symbolize::{display_path, first_user_frame, Frame, Symbolizer};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// The process's symbolizer.
pub(crate) fn with_symbolizer<R>(f: impl FnOnce(&mut Symbolizer) -> R) -> R {
    static SYMBOLIZER: OnceLock<Mutex<Symbolizer>> = OnceLock::new();
    crate::thread::untracked(|| {
        let m = SYMBOLIZER.get_or_init(|| Mutex::new(Symbolizer::new()));
        let mut guard = match m.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    })
}

/// Which figure ranks call sites.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SortBy {
    /// Number of allocations.
    Allocations,
    /// Total bytes allocated.
    Bytes,
    /// Bytes live at the peak of the window.
    Peak,
    /// Bytes still live at the end of the window.
    Live,
}

/// One user location that allocates, with its figures summed over every
/// captured stack that reaches the allocator from there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSite {
    /// The first user frame's function (`myapp::parse::tokenize`), or `"???"`.
    pub function: String,
    /// Its source file, as the debug info records it.
    pub file: Option<String>,
    /// Its line.
    pub line: Option<u32>,
    /// Its column.
    pub column: Option<u32>,
    /// Allocations made from here.
    pub alloc_count: u64,
    /// Bytes allocated from here.
    pub total_bytes: u64,
    /// Bytes from here live at the peak of the window.
    pub bytes_at_peak: u64,
    /// Bytes from here still live at the end of the window.
    pub current_bytes: u64,
    /// Blocks from here still live at the end of the window.
    pub current_blocks: u64,
    /// How many distinct captured stacks were merged into this row.
    pub stacks: usize,
}

impl CallSite {
    /// The figure `by` ranks on.
    pub fn figure(&self, by: SortBy) -> u64 {
        match by {
            SortBy::Allocations => self.alloc_count,
            SortBy::Bytes => self.total_bytes,
            SortBy::Peak => self.bytes_at_peak,
            SortBy::Live => self.current_bytes,
        }
    }

    /// `file:line`, the path relative to `root` when under it.
    pub fn location(&self, root: Option<&Path>) -> String {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => format!("{}:{line}", display_path(file, root)),
            (Some(file), None) => display_path(file, root),
            _ => "(unknown location)".to_string(),
        }
    }
}

/// Per-site figures as raw captured stacks (no symbolization).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawCallSite {
    /// Return addresses of the captured stack, innermost first (the
    /// allocator's own frames included).
    pub frames: Vec<usize>,
    /// Allocations made with this stack.
    pub alloc_count: u64,
    /// Bytes allocated with this stack.
    pub total_bytes: u64,
    /// Bytes of this stack live at the peak of the window.
    pub bytes_at_peak: u64,
    /// Highest live bytes of this stack.
    pub max_bytes: u64,
    /// Bytes still live.
    pub current_bytes: u64,
    /// Blocks still live.
    pub current_blocks: u64,
}

/// Raw rows from ledger figures.
pub(crate) fn raw(figs: &[(u32, Fig)]) -> Vec<RawCallSite> {
    figs.iter()
        .map(|(site, f)| RawCallSite {
            frames: crate::sites::frames(*site).to_vec(),
            alloc_count: f.allocs,
            total_bytes: f.bytes,
            bytes_at_peak: live_count(f.at_peak),
            max_bytes: live_count(f.max),
            current_bytes: live_count(f.live),
            current_blocks: live_count(f.live_blocks),
        })
        .collect()
}

/// Call sites of `figs`, merged by user location, sorted by `by` (largest
/// first), and whether the stacks looked truncated (no user frame anywhere:
/// the program was probably built without frame pointers).
pub(crate) fn summarize(figs: &[(u32, Fig)], by: SortBy) -> (Vec<CallSite>, bool) {
    let mut rows: Vec<CallSite> = Vec::new();
    let mut index: HashMap<(String, Option<String>, Option<u32>), usize> = HashMap::new();
    let mut any_user = false;
    with_symbolizer(|sym| {
        for (site, f) in figs {
            if f.allocs == 0 && live_count(f.live) == 0 {
                continue;
            }
            let frames = sym.resolve_stack(crate::sites::frames(*site));
            let user = first_user_frame(&frames).map(|f| qualified(f, &frames));
            let user = user.as_ref();
            any_user |= user.is_some() || frames.len() > 3;
            let (function, file, line, column) = match user {
                Some(Frame {
                    function,
                    file,
                    line,
                    column,
                    ..
                }) => (
                    display_function(function.as_deref()),
                    file.clone(),
                    *line,
                    *column,
                ),
                // No user frame within the captured depth: show the outermost
                // frame that was captured, and say the stack was cut.
                None => match frames.iter().rev().find(|f| f.function.is_some()) {
                    Some(f) => (
                        format!(
                            "{} (stack cut; see ModAlloc::set_backtrace_depth)",
                            display_function(f.function.as_deref())
                        ),
                        f.file.clone(),
                        f.line,
                        f.column,
                    ),
                    None => ("???".to_string(), None, None, None),
                },
            };
            let key = (function.clone(), file.clone(), line);
            let i = *index.entry(key).or_insert_with(|| {
                rows.push(CallSite {
                    function,
                    file,
                    line,
                    column,
                    alloc_count: 0,
                    total_bytes: 0,
                    bytes_at_peak: 0,
                    current_bytes: 0,
                    current_blocks: 0,
                    stacks: 0,
                });
                rows.len() - 1
            });
            let r = &mut rows[i];
            r.alloc_count += f.allocs;
            r.total_bytes += f.bytes;
            r.bytes_at_peak += live_count(f.at_peak);
            r.current_bytes += live_count(f.live);
            r.current_blocks += live_count(f.live_blocks);
            r.stacks += 1;
        }
    });
    rows.sort_by(|a, b| {
        b.figure(by)
            .cmp(&a.figure(by))
            .then_with(|| b.alloc_count.cmp(&a.alloc_count))
            .then_with(|| a.function.cmp(&b.function))
    });
    let truncated = !rows.is_empty() && !any_user;
    (rows, truncated)
}

/// `frame` with a name that says whose code it is: line-tables-only debug
/// info names inlined frames without their path (`{closure#0}`,
/// `parse<u8>`), so such a name gets the next user function further out in
/// the stack: `{closure#0} in profile::main`.
fn qualified(frame: &Frame, stack: &[Frame]) -> Frame {
    let mut f = frame.clone();
    if let Some(name) = f.function.as_deref() {
        if !has_path(name) {
            let bare = name.split('<').next().unwrap_or(name);
            let at = stack
                .iter()
                .position(|o| std::ptr::eq(o, frame))
                .unwrap_or(0);
            let outer = stack[at..]
                .iter()
                .filter_map(|o| o.function.as_deref())
                .find(|o| has_path(o) && !crate::symbolize::is_allocation_plumbing(o));
            f.function = Some(match outer {
                Some(outer) => format!("{bare} in {}", display_function(Some(outer))),
                None => bare.to_string(),
            });
        }
    }
    f
}

/// Whether a demangled name carries its path (`krate::f`, `<T as Tr>::f`),
/// not only inside generic arguments (`{closure#0}<alloc::vec::Vec<u8>>`).
fn has_path(name: &str) -> bool {
    name.starts_with('<')
        || name
            .split('<')
            .next()
            .is_some_and(|head| head.contains("::"))
}

/// A function name as reports show it: `#[alloc_test]` moves a test's body
/// into an inner `__mod_alloc_body` fn, which is the test itself to the user.
fn display_function(function: Option<&str>) -> String {
    match function {
        Some(f) => f.replace("::__mod_alloc_body", ""),
        None => "???".to_string(),
    }
}

/// The hint shown when stacks stop inside the allocator.
pub(crate) const FRAME_POINTER_HINT: &str = "call sites need frame pointers: add \
     `-C force-frame-pointers=yes` to `rustflags` in .cargo/config.toml (see README)";

/// A plain-text table of the top `n` call sites of `figs` by `by`.
pub(crate) fn render(figs: &[(u32, Fig)], n: usize, by: SortBy, root: Option<&Path>) -> String {
    use crate::stats::{allocs_unit, group_thousands as g};
    use std::fmt::Write;
    let (rows, truncated) = summarize(figs, by);
    let rows: Vec<&CallSite> = rows.iter().filter(|r| r.figure(by) > 0).collect();
    let cells: Vec<(String, String)> = rows
        .iter()
        .take(n)
        .map(|r| match by {
            SortBy::Allocations => (
                format!("{} {}", g(r.alloc_count), allocs_unit(r.alloc_count)),
                format!("{} B", g(r.total_bytes)),
            ),
            _ => (
                format!("{} B", g(r.figure(by))),
                format!("{} {}", g(r.alloc_count), allocs_unit(r.alloc_count)),
            ),
        })
        .collect();
    let w0 = cells.iter().map(|c| c.0.len()).max().unwrap_or(0);
    let w1 = cells.iter().map(|c| c.1.len()).max().unwrap_or(0);
    let wf = rows
        .iter()
        .take(n)
        .map(|r| r.function.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(out, "call sites by {}:", label(by));
    for (r, (c0, c1)) in rows.iter().zip(&cells) {
        let _ = writeln!(
            out,
            "  {c0:>w0$}  {c1:>w1$}  {:<wf$}  {}",
            r.function,
            r.location(root)
        );
    }
    if rows.len() > n {
        let _ = writeln!(out, "  … and {} more", rows.len() - n);
    }
    if truncated {
        let _ = writeln!(out, "{FRAME_POINTER_HINT}");
    }
    if with_symbolizer(|sym| sym.main_program_has_dwarf()) == Some(false) {
        let _ = writeln!(out, "{LINE_TABLES_HINT}");
    }
    out
}

/// The hint shown when the executable has no line tables to give `file:line`.
pub(crate) const LINE_TABLES_HINT: &str = "no line tables in this executable, so no \
     file:line: build with `debug = \"line-tables-only\"` (or more) in its profile";

fn label(by: SortBy) -> &'static str {
    match by {
        SortBy::Allocations => "allocations",
        SortBy::Bytes => "bytes allocated",
        SortBy::Peak => "bytes at peak",
        SortBy::Live => "bytes still live",
    }
}
