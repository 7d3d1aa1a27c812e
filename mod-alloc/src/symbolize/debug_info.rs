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
//! - The DWARF sections are copied out of the file into reference-counted buffers,
//!   so the object file's full contents are not kept; `addr2line` parses units,
//!   line programs and function tables lazily, on first lookup in each unit.
//!
//! Limits: compressed debug sections (`SHF_COMPRESSED`, `.zdebug_*`) and split
//! DWARF (`.dwo`, `.dwp`) are not read; such objects fall back to the symbol table.

use super::demangle::demangle;
use super::Frame;
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

/// The DWARF reader: sections owned through `Arc`, so the context has no lifetime
/// and the symbolizer can be kept and sent between threads.
type Reader = gimli::EndianArcSlice<gimli::RunTimeEndian>;

/// Symbols and DWARF of one object file.
pub(super) struct DebugInfo {
    dwarf: Option<addr2line::Context<Reader>>,
    symbols: SymbolTable,
}

impl DebugInfo {
    /// Reads the object file at `path`; `None` if it cannot be read or parsed.
    pub(super) fn load(path: &Path) -> Option<DebugInfo> {
        let data = std::fs::read(path).ok()?;
        let file = object::File::parse(&*data).ok()?;
        let symbols = SymbolTable::from_object(&file);
        let dwarf = catch_unwind(AssertUnwindSafe(|| load_dwarf(&file))).ok().flatten();
        Some(DebugInfo { dwarf, symbols })
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
        // when DWARF has no name (or no entry) for it.
        if let Some(outer) = frames.last_mut() {
            if outer.function.is_none() {
                outer.function = self.symbols.lookup(probe).map(demangle);
            }
        }
        frames
    }
}

/// Builds the `addr2line` context from the object's DWARF sections; `None` when the
/// object has no `.debug_info` or the unit headers cannot be parsed.
fn load_dwarf(file: &object::File<'_>) -> Option<addr2line::Context<Reader>> {
    let has_info = file
        .section_by_name(".debug_info")
        .map_or(false, |s| s.size() > 0);
    if !has_info {
        return None;
    }
    let endian = if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let load = |id: gimli::SectionId| -> Result<Reader, core::convert::Infallible> {
        let bytes: Arc<[u8]> = file
            .section_by_name(id.name())
            .and_then(|section| section.uncompressed_data().ok())
            .map_or_else(|| Arc::from(&[][..]), |data| Arc::from(&*data));
        Ok(Reader::new(bytes, endian))
    };
    let dwarf = match gimli::Dwarf::load(load) {
        Ok(dwarf) => dwarf,
        Err(never) => match never {},
    };
    addr2line::Context::from_dwarf(dwarf).ok()
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
    entries: Vec<(u64, u64, Box<str>)>,
}

impl SymbolTable {
    fn from_object(file: &object::File<'_>) -> SymbolTable {
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
        inside.then_some(&**name)
    }
}

fn collect_functions<'data, S: ObjectSymbol<'data>>(
    symbols: impl Iterator<Item = S>,
) -> Vec<(u64, u64, Box<str>)> {
    symbols
        .filter(|sym| sym.kind() == SymbolKind::Text && sym.is_definition() && sym.address() != 0)
        .filter_map(|sym| Some((sym.address(), sym.size(), Box::from(sym.name().ok()?))))
        .collect()
}
