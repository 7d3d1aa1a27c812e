//! The objects mapped into this process (the executable, shared libraries, the
//! vDSO), listed with `dl_iterate_phdr`, each with its load bias and the runtime
//! address ranges of its executable `PT_LOAD` segments.
//!
//! Invariants:
//! - `bias` is what the dynamic loader added to the object's stated virtual
//!   addresses: `runtime address = bias + stated address`, so the address to look up
//!   in the object's DWARF and symbol tables is `runtime address - bias`.
//! - Only executable segments are listed: return addresses point into code, and a
//!   data address (a static, the heap, a stack) must not match any object.
//! - The main program is reported by glibc with an empty name; it is read back from
//!   `/proc/self/exe`. Other nameless entries have no file (`path` is `None`).
//!
//! The `dl_phdr_info` and `Elf64_Phdr` layouts are declared here (only the leading
//! fields that glibc has had since it introduced `dl_iterate_phdr`), so no `libc`
//! dependency is needed for one function. Report time only: this allocates.

use std::ops::Range;
use std::path::PathBuf;

/// One object mapped into the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LoadedObject {
    /// The file to read symbols from; `None` when the object has no file (vDSO).
    pub(super) path: Option<PathBuf>,
    /// Runtime address minus stated (ELF) virtual address.
    pub(super) bias: usize,
    /// Runtime address ranges of the executable segments.
    pub(super) code: Vec<Range<usize>>,
}

impl LoadedObject {
    /// Whether `addr` (a runtime address) lies in one of this object's code segments.
    pub(super) fn contains(&self, addr: usize) -> bool {
        self.code.iter().any(|r| r.contains(&addr))
    }
}

/// Lists the objects currently mapped into the process; empty where
/// `dl_iterate_phdr` is not available.
pub(super) fn loaded_objects() -> Vec<LoadedObject> {
    imp::loaded_objects()
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod imp {
    use super::LoadedObject;
    use std::ffi::{c_char, c_int, c_void, CStr, OsStr};
    use std::os::unix::ffi::OsStrExt;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::path::PathBuf;

    /// `PT_LOAD` from `<elf.h>`.
    const PT_LOAD: u32 = 1;
    /// `PF_X` from `<elf.h>`.
    const PF_X: u32 = 1;

    /// The leading fields of glibc's `struct dl_phdr_info` (`<link.h>`), 64-bit.
    /// Later fields (`dlpi_adds`, TLS data) are not read; the callback checks that the
    /// `size` glibc passes covers these.
    #[repr(C)]
    struct DlPhdrInfo {
        dlpi_addr: u64,
        dlpi_name: *const c_char,
        dlpi_phdr: *const Elf64Phdr,
        dlpi_phnum: u16,
    }

    /// `Elf64_Phdr` from `<elf.h>`.
    #[repr(C)]
    #[allow(dead_code)] // The layout needs every field; only some are read.
    struct Elf64Phdr {
        p_type: u32,
        p_flags: u32,
        p_offset: u64,
        p_vaddr: u64,
        p_paddr: u64,
        p_filesz: u64,
        p_memsz: u64,
        p_align: u64,
    }

    type Callback = unsafe extern "C" fn(*mut DlPhdrInfo, usize, *mut c_void) -> c_int;

    extern "C" {
        /// glibc, `<link.h>`: calls `callback` once per loaded object, under the
        /// loader's lock, with a `dl_phdr_info` valid for the duration of the call.
        fn dl_iterate_phdr(callback: Option<Callback>, data: *mut c_void) -> c_int;
    }

    pub(super) fn loaded_objects() -> Vec<LoadedObject> {
        let mut objects: Vec<LoadedObject> = Vec::new();
        let data: *mut Vec<LoadedObject> = &mut objects;
        // SAFETY: `collect` matches the callback type glibc expects and only reads the
        // `dl_phdr_info` it is handed during the call; `data` points to `objects`,
        // which outlives this call and is not touched elsewhere while it runs.
        unsafe { dl_iterate_phdr(Some(collect), data.cast()) };
        objects
    }

    /// Appends one object to the `Vec<LoadedObject>` behind `data`.
    ///
    /// # Safety
    ///
    /// Called by `dl_iterate_phdr` only: `info` points to a valid `dl_phdr_info` of
    /// `size` bytes and `data` is the `*mut Vec<LoadedObject>` given to
    /// `dl_iterate_phdr` by `loaded_objects`.
    unsafe extern "C" fn collect(info: *mut DlPhdrInfo, size: usize, data: *mut c_void) -> c_int {
        if info.is_null() || data.is_null() || size < core::mem::size_of::<DlPhdrInfo>() {
            return 0;
        }
        // SAFETY: `data` is the exclusive `*mut Vec<LoadedObject>` of
        // `loaded_objects` (this function's contract).
        let objects = unsafe { &mut *data.cast::<Vec<LoadedObject>>() };
        // SAFETY: `info` is valid and at least `size_of::<DlPhdrInfo>()` bytes long
        // (contract plus the check above); it is only read.
        let info = unsafe { &*info };
        // A panic must not unwind into glibc; nothing below is expected to panic,
        // but an allocation failure or a bug would otherwise be UB here.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let first = objects.is_empty();
            // SAFETY: glibc gives each object `dlpi_phnum` program headers at
            // `dlpi_phdr` (or a null name / no headers), valid during the callback.
            let object = unsafe { describe(info, first) };
            objects.push(object);
        }));
        0
    }

    /// Turns one `dl_phdr_info` into a [`LoadedObject`].
    ///
    /// # Safety
    ///
    /// `info.dlpi_name` is null or a NUL-terminated string, and `info.dlpi_phdr`
    /// points to `info.dlpi_phnum` program headers (or is null), all valid for the
    /// duration of the call.
    unsafe fn describe(info: &DlPhdrInfo, first: bool) -> LoadedObject {
        let name: &[u8] = if info.dlpi_name.is_null() {
            &[]
        } else {
            // SAFETY: non-null and NUL-terminated (contract).
            unsafe { CStr::from_ptr(info.dlpi_name) }.to_bytes()
        };
        let path = if !name.is_empty() {
            Some(PathBuf::from(OsStr::from_bytes(name)))
        } else if first {
            Some(PathBuf::from("/proc/self/exe"))
        } else {
            None
        };
        let headers: &[Elf64Phdr] = if info.dlpi_phdr.is_null() || info.dlpi_phnum == 0 {
            &[]
        } else {
            // SAFETY: `dlpi_phdr` points to `dlpi_phnum` initialised, aligned
            // program headers that stay valid during the call (contract).
            unsafe { core::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
        };
        let bias = info.dlpi_addr as usize;
        let code = headers
            .iter()
            .filter(|h| h.p_type == PT_LOAD && h.p_flags & PF_X != 0)
            .filter_map(|h| {
                let start = bias.checked_add(usize::try_from(h.p_vaddr).ok()?)?;
                let end = start.checked_add(usize::try_from(h.p_memsz).ok()?)?;
                Some(start..end)
            })
            .collect();
        LoadedObject { path, bias, code }
    }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod imp {
    use super::LoadedObject;

    pub(super) fn loaded_objects() -> Vec<LoadedObject> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn some_code() -> usize {
        some_code as fn() -> usize as usize
    }

    #[test]
    fn main_program_is_listed_first_as_proc_self_exe() {
        let objects = loaded_objects();
        assert_eq!(
            objects[0].path.as_deref(),
            Some(std::path::Path::new("/proc/self/exe"))
        );
    }

    #[test]
    fn code_address_of_this_binary_is_in_the_main_program() {
        let objects = loaded_objects();
        let addr = some_code();
        let owners: Vec<_> = objects.iter().filter(|o| o.contains(addr)).collect();
        assert_eq!(owners.len(), 1, "{objects:#?}");
        assert_eq!(owners[0], &objects[0]);
        assert!(objects[0].bias <= addr);
    }

    #[test]
    fn heap_and_stack_addresses_are_in_no_object() {
        let heap = Box::new(7u64);
        let on_heap = &*heap as *const u64 as usize;
        let local = 5u64;
        let on_stack = &local as *const u64 as usize;
        let objects = loaded_objects();
        assert!(!objects.iter().any(|o| o.contains(on_heap)));
        assert!(!objects.iter().any(|o| o.contains(on_stack)));
    }

    #[test]
    fn libc_is_listed_with_a_path() {
        let objects = loaded_objects();
        assert!(
            objects.iter().any(|o| o
                .path
                .as_deref()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libc.so"))),
            "{objects:#?}"
        );
    }
}
