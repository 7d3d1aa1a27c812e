//! What one object file knows about its code: DWARF (through `addr2line`) for
//! function names, inlined frames and `file:line:column`, and the ELF symbol table
//! as the fallback for function names when there is no DWARF.
//!
//! Invariants:
//! - Addresses given here are *stated* virtual addresses (runtime minus load bias)
//!   of the byte to look up (`return address - 1`), never runtime addresses.
//! - Every lookup returns at least one frame; what cannot be resolved is `None`.
//! - Nothing here panics on malformed input: parse failures leave the object
//!   without DWARF (or without symbols); a panic inside the DWARF reader is caught
//!   and turns the DWARF off for that object.
//! - Object files are read by `file_cache`, once per process, and kept for the
//!   rest of it; sections and symbol names are borrowed from those bytes (no
//!   copies). `addr2line` parses units, line programs and function tables lazily,
//!   on the first lookup in each unit. Borrowed `EndianSlice` readers rather than
//!   reference-counted ones: at `opt-level = 0` (a user's debug tests, where the
//!   generic DWARF reader is instantiated in this crate) they made 1,000 lookups
//!   about 1.6x faster (300 ms -> 190 ms on the 2-core dev machine).
//!
//! Limits: compressed debug sections (`SHF_COMPRESSED`, `.zdebug_*`) and split
//! DWARF (`.dwo`, `.dwp`) are not read; such objects fall back to the symbol table.

use super::classify::is_qualified;
use super::demangle::demangle;
use super::file_cache;
use super::Frame;
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use std::cell::OnceCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// The DWARF reader, over file bytes that live for the rest of the process.
type Reader = gimli::EndianSlice<'static, gimli::RunTimeEndian>;

/// Symbols and DWARF of one object file.
pub(super) struct DebugInfo {
    file: object::File<'static>,
    dwarf: Option<addr2line::Context<Reader>>,
    /// Built on first use: DWARF usually names every frame.
    symbols: OnceCell<SymbolTable>,
}

impl DebugInfo {
    /// Reads the object file at `path`; `None` if it cannot be read or parsed.
    pub(super) fn load(path: &Path) -> Option<DebugInfo> {
        let data = file_cache::read(path)?;
        let file = object::File::parse(data).ok()?;
        let dwarf = catch_unwind(AssertUnwindSafe(|| load_dwarf(&file)))
            .ok()
            .flatten();
        Some(DebugInfo {
            file,
            dwarf,
            symbols: OnceCell::new(),
        })
    }

    /// Whether DWARF was found (and could be parsed) in this object.
    pub(super) fn has_dwarf(&self) -> bool {
        self.dwarf.is_some()
    }

    /// Frames at stated address `probe`, innermost inlined frame first; `addr` is
    /// copied into each frame. Never empty.
    pub(super) fn frames(&mut self, probe: u64, addr: usize) -> Vec<Frame> {
        let mut frames = Vec::new();
        if let Some(ctx) = &self.dwarf {
            match catch_unwind(AssertUnwindSafe(|| dwarf_frames(ctx, probe, addr))) {
                Ok(found) => frames = found,
                // The DWARF is malformed in a way the reader did not expect: stop
                // using it for this object rather than risk it again.
                Err(_) => self.dwarf = None,
            }
        }
        if frames.is_empty() {
            frames.push(Frame::unknown(addr));
        }
        // The outermost frame is the physical function: the symbol table names it
        // when DWARF has no name for it, or only a bare one (line-tables-only debug
        // info has `DW_AT_name` without namespaces, e.g. `tokenize`).
        if let Some(outer) = frames.last_mut() {
            let bare = outer
                .function
                .as_deref()
                .map_or(true, |name| !is_qualified(name));
            if bare {
                let symbols = self
                    .symbols
                    .get_or_init(|| SymbolTable::from_object(&self.file));
                if let Some(name) = symbols.lookup(probe) {
                    outer.function = Some(demangle(name));
                }
            }
        }
        frames
    }
}

/// Builds the `addr2line` context from the object's DWARF sections; `None` when the
/// object has no `.debug_info` or the unit headers cannot be parsed.
fn load_dwarf(file: &object::File<'static>) -> Option<addr2line::Context<Reader>> {
    let has_info = file
        .section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0);
    if !has_info {
        return None;
    }
    let endian = if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let load = |id: gimli::SectionId| -> Result<Reader, core::convert::Infallible> {
        // A compressed section would need a copy: it is left out (see module docs).
        let bytes: &'static [u8] = file
            .section_by_name(id.name())
            .filter(is_stored_plain)
            .and_then(|section| section.data().ok())
            .unwrap_or_default();
        Ok(Reader::new(bytes, endian))
    };
    let dwarf = match gimli::Dwarf::load(load) {
        Ok(dwarf) => dwarf,
        Err(never) => match never {},
    };
    addr2line::Context::from_dwarf(dwarf).ok()
}

/// Whether `section` is stored as it is (not `SHF_COMPRESSED` or `.zdebug_*`).
fn is_stored_plain(section: &object::Section<'static, '_>) -> bool {
    section
        .compressed_file_range()
        .is_ok_and(|range| range.format == object::CompressionFormat::None)
}

/// Frames DWARF gives for `probe`, innermost first; empty if it knows nothing.
fn dwarf_frames(ctx: &addr2line::Context<Reader>, probe: u64, addr: usize) -> Vec<Frame> {
    let mut frames = Vec::new();
    // Split DWARF is not loaded: `skip_all_loads` resolves from the main file only.
    if let Ok(mut iter) = ctx.find_frames(probe).skip_all_loads() {
        while let Ok(Some(found)) = iter.next() {
            let function = found
                .function
                .as_ref()
                .and_then(|name| name.raw_name().ok())
                .map(|name| demangle(&name));
            let (file, line, column) = match found.location {
                Some(loc) => (loc.file.map(str::to_owned), loc.line, loc.column),
                None => (None, None, None),
            };
            frames.push(Frame {
                addr,
                function,
                file,
                line,
                column,
            });
        }
    }
    if frames.is_empty() {
        // No function entry covers `probe` (e.g. code built with line tables
        // only for some units): the line table may still know the location.
        if let Ok(Some(loc)) = ctx.find_location(probe) {
            frames.push(Frame {
                addr,
                function: None,
                file: loc.file.map(str::to_owned),
                line: loc.line,
                column: loc.column,
            });
        }
    }
    frames
}

/// Function symbols of one object (`.symtab`, else `.dynsym`), sorted by address.
struct SymbolTable {
    /// `(stated address, size, raw name)`, sorted by address; names demangled on use.
    entries: Vec<(u64, u64, &'static str)>,
}

impl SymbolTable {
    fn from_object(file: &object::File<'static>) -> SymbolTable {
        let mut entries = collect_functions(file.symbols());
        if entries.is_empty() {
            entries = collect_functions(file.dynamic_symbols());
        }
        entries.sort_by_key(|entry| entry.0);
        SymbolTable { entries }
    }

    /// Name of the function symbol containing stated address `probe`.
    fn lookup(&self, probe: u64) -> Option<&str> {
        let after = self.entries.partition_point(|entry| entry.0 <= probe);
        let (start, size, name) = self.entries.get(after.checked_sub(1)?)?;
        let inside = *size == 0 || probe - start < *size;
        inside.then_some(*name)
    }
}

fn collect_functions<S: ObjectSymbol<'static>>(
    symbols: impl Iterator<Item = S>,
) -> Vec<(u64, u64, &'static str)> {
    symbols
        .filter(|sym| sym.kind() == SymbolKind::Text && sym.is_definition() && sym.address() != 0)
        .filter_map(|sym| Some((sym.address(), sym.size(), sym.name().ok()?)))
        .collect()
}
