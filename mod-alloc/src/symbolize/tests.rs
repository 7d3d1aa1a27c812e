//! Resolution tests against this very test binary (built with frame pointers and
//! debug info, see `.cargo/config.toml`; in release, with line tables).

use super::*;
use std::hint::black_box;
use std::time::Instant;

/// Return address of the call to this function, read from its frame record.
///
/// Relies on frame pointers (forced for this workspace in `.cargo/config.toml`):
/// the frame pointer register points at `[saved frame pointer, return address]`.
#[inline(never)]
fn return_address() -> usize {
    let ret: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: with frame pointers forced, `rbp` is this function's frame base, set
    // by its prologue, and `[rbp + 8]` is its return address on its own stack.
    unsafe {
        core::arch::asm!("mov {}, [rbp + 8]", out(reg) ret, options(nostack, readonly, preserves_flags));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: with frame pointers forced, `x29` points at this function's frame
    // record `[previous x29, x30]`, on its own stack; `x30` is the return address.
    unsafe {
        core::arch::asm!("ldr {}, [x29, #8]", out(reg) ret, options(nostack, readonly, preserves_flags));
    }
    ret
}

#[inline(never)]
fn calls_return_address() -> (usize, u32) {
    // `black_box` keeps the call out of tail position: optimised builds would
    // otherwise jump to `return_address`, which then sees our caller's address.
    (black_box(return_address()), line!())
}

#[inline(always)]
fn inlined_capture() -> (usize, u32) {
    (return_address(), line!())
}

#[inline(never)]
fn calls_inlined_capture() -> (usize, u32, u32) {
    let ((ret, inner_line), outer_line) = (inlined_capture(), line!());
    (ret, inner_line, outer_line)
}

#[inline(never)]
#[rustfmt::skip]
fn known_function() -> u32 { line!() }

const THIS_FILE: &str = "mod-alloc/src/symbolize/tests.rs";

fn assert_this_file(frame: &Frame) {
    let file = frame.file.as_deref().unwrap_or_default();
    assert!(file.ends_with(THIS_FILE), "file {file:?} in {frame:?}");
    assert!(Path::new(file).is_absolute(), "{file:?}");
}

use std::path::Path;

/// Built with frame pointers (see `backtrace/tests.rs`): the tests that read
/// their own return address through the frame pointer need them.
const FRAME_POINTERS: bool = option_env!("MOD_ALLOC_TEST_NO_FRAME_POINTERS").is_none();

#[test]
fn return_address_resolves_to_caller_file_and_line() {
    if !FRAME_POINTERS {
        // The return address under test is read through the frame pointer.
        return;
    }
    let (ret, line) = calls_return_address();
    let frames = Symbolizer::new().resolve(ret);
    assert_eq!(frames.len(), 1, "{frames:#?}");
    let frame = &frames[0];
    assert_eq!(frame.addr, ret);
    assert_eq!(
        frame.function.as_deref(),
        Some("mod_alloc::symbolize::tests::calls_return_address")
    );
    assert_this_file(frame);
    assert_eq!(frame.line, Some(line));
    // The call is the argument of `black_box`, at column 16.
    assert_eq!(frame.column, Some(16));
}

#[test]
fn function_start_resolves_to_its_name_and_definition_line() {
    let line = known_function();
    let frames = Symbolizer::new().resolve(known_function as fn() -> u32 as usize + 1);
    let frame = frames.last().unwrap();
    assert_eq!(
        frame.function.as_deref(),
        Some("mod_alloc::symbolize::tests::known_function")
    );
    assert_this_file(frame);
    assert_eq!(frame.line, Some(line));
}

/// Whether `name` is `qualified`, or (line-tables-only debug info, which has no
/// namespaces for inlined functions) its last segment.
fn names(name: Option<&str>, qualified: &str) -> bool {
    let last = qualified.rsplit("::").next().unwrap();
    name == Some(qualified) || name == Some(last)
}

#[test]
fn inlined_call_is_expanded_innermost_first() {
    if !FRAME_POINTERS {
        // The return address under test is read through the frame pointer.
        return;
    }
    let (ret, inner_line, outer_line) = calls_inlined_capture();
    let frames = Symbolizer::new().resolve(ret);
    assert_eq!(frames.len(), 2, "{frames:#?}");
    assert!(
        names(
            frames[0].function.as_deref(),
            "mod_alloc::symbolize::tests::inlined_capture"
        ),
        "{frames:#?}"
    );
    // The physical function is named in full, from the symbol table if need be.
    assert_eq!(
        frames[1].function.as_deref(),
        Some("mod_alloc::symbolize::tests::calls_inlined_capture")
    );
    assert_eq!(frames[0].line, Some(inner_line));
    assert_eq!(frames[1].line, Some(outer_line));
    assert!(frames.iter().all(|f| f.addr == ret));
    frames.iter().for_each(assert_this_file);
}

#[test]
fn garbage_addresses_give_unknown_frames() {
    let heap = Box::new([0u8; 64]);
    let local = 0u64;
    let mut symbolizer = Symbolizer::new();
    for addr in [
        0,
        1,
        2,
        usize::MAX,
        usize::MAX - 1,
        heap.as_ptr() as usize,
        &local as *const u64 as usize,
        0x1000,
    ] {
        assert_eq!(
            symbolizer.resolve(addr),
            [Frame::unknown(addr)],
            "{addr:#x}"
        );
    }
}

#[test]
fn resolving_twice_gives_the_same_frames() {
    let (ret, _) = calls_return_address();
    let mut symbolizer = Symbolizer::new();
    let first = symbolizer.resolve(ret);
    assert_eq!(symbolizer.resolve(ret), first);
}

#[test]
fn shared_library_function_is_named_from_its_symbols() {
    extern "C" {
        fn getpid() -> i32;
    }
    let addr = getpid as unsafe extern "C" fn() -> i32 as usize;
    let frames = Symbolizer::new().resolve(addr + 1);
    let name = frames
        .last()
        .and_then(|f| f.function.as_deref())
        .unwrap_or_default();
    assert!(name.contains("getpid"), "{frames:#?}");
}

#[test]
fn main_program_has_dwarf_once_resolved() {
    let mut symbolizer = Symbolizer::new();
    assert_eq!(symbolizer.main_program_has_dwarf(), None);
    symbolizer.resolve(known_function as fn() -> u32 as usize + 1);
    assert_eq!(symbolizer.main_program_has_dwarf(), Some(true));
}

#[test]
fn whole_stack_finds_the_first_user_frame() {
    if !FRAME_POINTERS {
        // The return address under test is read through the frame pointer.
        return;
    }
    let (ret, line) = calls_return_address();
    let mut symbolizer = Symbolizer::new();
    // A plumbing frame (inside std) under the user frame, as a real stack has.
    let std_addr = <Vec<u8>>::reserve as fn(&mut Vec<u8>, usize) as usize + 1;
    let frames = symbolizer.resolve_stack(&[std_addr, ret]);
    let user = first_user_frame(&frames).unwrap();
    assert_eq!(user.addr, ret);
    assert_eq!(user.line, Some(line));
}

/// Up to `n` return-address-like addresses (the middle of a function) spread
/// evenly over this binary's functions whose demangled name `keep` accepts.
fn spread_code_addresses(n: usize, keep: impl Fn(&str) -> bool) -> Vec<usize> {
    use object::{Object, ObjectSymbol, SymbolKind};
    let main = &loaded::loaded_objects()[0];
    let data = std::fs::read("/proc/self/exe").unwrap();
    let file = object::File::parse(&*data).unwrap();
    let mut functions: Vec<(u64, u64)> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 8)
        .filter(|s| s.name().is_ok_and(|name| keep(&demangle::demangle(name))))
        .map(|s| (s.address(), s.size()))
        .collect();
    functions.sort_unstable();
    functions.dedup();
    let step = (functions.len() / n).max(1);
    functions
        .iter()
        .step_by(step)
        .take(n)
        .map(|&(address, size)| main.bias + (address + size / 2) as usize)
        .collect()
}

/// Resolves `addrs` with a fresh `Symbolizer` (setup included), prints the time.
fn time_resolution(what: &str, addrs: &[usize]) -> Vec<Vec<Frame>> {
    let start = Instant::now();
    let mut symbolizer = Symbolizer::new();
    let frames: Vec<Vec<Frame>> = addrs.iter().map(|&a| symbolizer.resolve(a)).collect();
    let elapsed = start.elapsed();
    let with_line = frames.iter().filter(|f| f[0].line.is_some()).count();
    let inlined = frames.iter().filter(|f| f.len() > 1).count();
    println!(
        "{what}: {} distinct addresses in {:.1} ms (setup included), \
         {with_line} with file:line, {inlined} with inlined frames",
        addrs.len(),
        elapsed.as_secs_f64() * 1e3
    );
    let again = Instant::now();
    for &a in addrs {
        symbolizer.resolve(a);
    }
    println!(
        "{what}: cached lookups of the same addresses in {:.2} ms",
        again.elapsed().as_secs_f64() * 1e3
    );
    frames
}

#[test]
fn thousand_addresses_over_the_whole_binary_resolve_with_names() {
    // Worst case: every compilation unit of the binary (gimli, object, ... with
    // full debug info) is parsed.
    let addrs = spread_code_addresses(1000, |_| true);
    assert_eq!(addrs.len(), 1000);
    let frames = time_resolution("whole binary", &addrs);
    assert!(frames.iter().all(|f| f.last().unwrap().function.is_some()));
}

#[test]
fn addresses_in_this_crate_resolve_to_this_crate_sources() {
    // The frames a report resolves: the user's crate (here, this one).
    let addrs = spread_code_addresses(1000, |name| name.starts_with("mod_alloc::"));
    assert!(addrs.len() >= 20, "{}", addrs.len());
    let frames = time_resolution("this crate", &addrs);
    for stack in &frames {
        let outer = stack.last().unwrap();
        assert!(
            outer
                .function
                .as_deref()
                .unwrap()
                .starts_with("mod_alloc::"),
            "{stack:#?}"
        );
    }
    // A mid-function address can land on compiler-generated code that the line
    // table attributes to inlined std code (line 0) outside any function entry;
    // the rest must name this crate's sources.
    let in_crate = frames
        .iter()
        .filter(|stack| {
            stack.iter().any(|f| {
                f.file
                    .as_deref()
                    .is_some_and(|file| file.contains("mod-alloc/src/"))
            })
        })
        .count();
    assert!(
        in_crate * 10 >= frames.len() * 9,
        "{in_crate} of {}",
        frames.len()
    );
}
