//! Symbolization of captured return addresses, at report time only.
//!
//! A [`Symbolizer`] turns the return addresses that the frame-pointer walk
//! captured in *this* process into [`Frame`]s: demangled function name, file, line
//! and column, with inlined calls expanded (innermost first). It finds the object
//! that holds each address (executable or shared library, see `loaded`), subtracts
//! that object's load bias (position-independent code), and looks up `ret - 1`, the
//! last byte of the call instruction, in the object's DWARF (see `debug_info`),
//! falling back to its ELF symbol table for the function name.
//!
//! `classify` picks the first *user* frame out of a stack (skipping the
//! allocator's and the standard library's allocation plumbing) and `display` turns
//! file paths into short ones for reports.
//!
//! Invariants:
//! - Never called from the allocator hook: everything here allocates, reads files
//!   and may take the dynamic loader's lock. Callers suspend allocation tracking
//!   on the reporting thread first.
//! - [`Symbolizer::resolve`] never panics and always returns at least one frame;
//!   what it cannot resolve (address 0, a heap address, an object without symbols)
//!   is a frame with `None` fields.
//! - Each object file is read once, on the first address that falls in it, and
//!   each return address is resolved once; both are cached in the `Symbolizer`.
//!   Keep one `Symbolizer` for all reports of a process to pay setup once.
//! - An address in no known object triggers one fresh listing of the loaded
//!   objects (a library may have been `dlopen`ed since), keeping what was cached.

mod classify;
mod debug_info;
mod demangle;
mod display;
mod file_cache;
mod loaded;

#[cfg(feature = "dhat-compat")]
pub(crate) use classify::is_mod_alloc_source;
pub(crate) use classify::{first_user_frame, is_allocation_plumbing};
pub(crate) use display::display_path;

use debug_info::DebugInfo;
use loaded::LoadedObject;
use std::collections::HashMap;

/// One source-level frame at a return address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The return address this frame was resolved from (as captured, not `- 1`).
    pub(crate) addr: usize,
    /// Demangled function name, without hash (`myapp::parse::tokenize`).
    pub(crate) function: Option<String>,
    /// Source file as recorded in the debug info (usually absolute).
    pub(crate) file: Option<String>,
    /// 1-based line.
    pub(crate) line: Option<u32>,
    /// 1-based column; `None` when unknown or when DWARF records 0 (left edge).
    pub(crate) column: Option<u32>,
}

impl Frame {
    /// A frame nothing is known about.
    pub(crate) fn unknown(addr: usize) -> Frame {
        Frame {
            addr,
            function: None,
            file: None,
            line: None,
            column: None,
        }
    }
}

/// Resolves return addresses of this process to source frames, caching per
/// object file and per address. See the module docs.
pub(crate) struct Symbolizer {
    objects: Vec<ObjectEntry>,
    resolved: HashMap<usize, Vec<Frame>>,
}

/// A loaded object and, once something was looked up in it, its debug info.
struct ObjectEntry {
    loaded: LoadedObject,
    debug: Debug,
}

/// Lazily read debug info of one object.
enum Debug {
    NotRead,
    /// No file, unreadable or not an object file.
    Missing,
    Read(Box<DebugInfo>),
}

impl Symbolizer {
    /// Lists the loaded objects; no object file is read yet.
    pub(crate) fn new() -> Symbolizer {
        let objects = loaded::loaded_objects()
            .into_iter()
            .map(|loaded| ObjectEntry {
                loaded,
                debug: Debug::NotRead,
            })
            .collect();
        Symbolizer {
            objects,
            resolved: HashMap::new(),
        }
    }

    /// Frames at return address `ret_addr`, innermost inlined frame first, the
    /// physical function last. Never empty; unknown parts are `None`.
    pub(crate) fn resolve(&mut self, ret_addr: usize) -> Vec<Frame> {
        if let Some(frames) = self.resolved.get(&ret_addr) {
            return frames.clone();
        }
        let frames = self.resolve_uncached(ret_addr);
        self.resolved.insert(ret_addr, frames.clone());
        frames
    }

    /// Frames of a whole captured stack (innermost return address first), each
    /// address expanded with [`Symbolizer::resolve`].
    pub(crate) fn resolve_stack(&mut self, ret_addrs: &[usize]) -> Vec<Frame> {
        ret_addrs
            .iter()
            .flat_map(|&ret| self.resolve(ret))
            .collect()
    }

    fn resolve_uncached(&mut self, ret_addr: usize) -> Vec<Frame> {
        // `ret - 1` is inside the call instruction; `ret` itself may already be
        // the next line, or the next function after a call that never returns.
        let Some(probe) = ret_addr.checked_sub(1) else {
            return vec![Frame::unknown(ret_addr)];
        };
        let index = match self.object_index(probe) {
            Some(index) => index,
            None => {
                self.refresh();
                match self.object_index(probe) {
                    Some(index) => index,
                    None => return vec![Frame::unknown(ret_addr)],
                }
            }
        };
        let entry = &mut self.objects[index];
        if let Debug::NotRead = entry.debug {
            entry.debug = match entry.loaded.path.as_deref().and_then(DebugInfo::load) {
                Some(info) => Debug::Read(Box::new(info)),
                None => Debug::Missing,
            };
        }
        match &mut entry.debug {
            Debug::Read(info) => {
                // `probe` lies in a segment that starts at `bias + vaddr`, so it is
                // at least `bias`.
                let stated = probe.wrapping_sub(entry.loaded.bias) as u64;
                info.frames(stated, ret_addr)
            }
            Debug::NotRead | Debug::Missing => vec![Frame::unknown(ret_addr)],
        }
    }

    fn object_index(&self, addr: usize) -> Option<usize> {
        self.objects
            .iter()
            .position(|entry| entry.loaded.contains(addr))
    }

    /// Lists the loaded objects again, keeping the debug info already read for
    /// objects that are still mapped at the same place.
    fn refresh(&mut self) {
        let mut old = std::mem::take(&mut self.objects);
        self.objects = loaded::loaded_objects()
            .into_iter()
            .map(|loaded| {
                let debug = match old.iter().position(|entry| entry.loaded == loaded) {
                    Some(i) => old.swap_remove(i).debug,
                    None => Debug::NotRead,
                };
                ObjectEntry { loaded, debug }
            })
            .collect();
    }

    /// Whether the main program has DWARF (`None` until something in it was
    /// resolved). Reports use it to explain missing `file:line`.
    pub(crate) fn main_program_has_dwarf(&self) -> Option<bool> {
        match &self.objects.first()?.debug {
            Debug::Read(info) => Some(info.has_dwarf()),
            Debug::Missing => Some(false),
            Debug::NotRead => None,
        }
    }
}

#[cfg(test)]
mod tests;
