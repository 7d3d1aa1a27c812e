//! Resolution tests against this very test binary (built with frame pointers and
//! debug info, see `.cargo/config.toml`; in release, with line tables).

use super::*;
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
    (return_address(), line!())
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

#[test]
fn return_address_resolves_to_caller_file_and_line() {
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
    // The call is the first expression in its tuple, at column 6.
    assert_eq!(frame.column, Some(6));
}

#[test]
fn function_start_resolves_to_its_name_and_definition_line() {
    let line = known_function();
    let frames = Symbolizer::new().resolve(known_function as usize + 1);
    let frame = frames.last().unwrap();
    assert_eq!(
        frame.function.as_deref(),
        Some("mod_alloc::symbolize::tests::known_function")
    );
    assert_this_file(frame);
    assert_eq!(frame.line, Some(line));
}

#[test]
fn inlined_call_is_expanded_innermost_first() {
    let (ret, inner_line, outer_line) = calls_inlined_capture();
    let frames = Symbolizer::new().resolve(ret);
    let functions: Vec<_> = frames.iter().map(|f| f.function.as_deref()).collect();
    assert_eq!(
        functions,
        [
            Some("mod_alloc::symbolize::tests::inlined_capture"),
            Some("mod_alloc::symbolize::tests::calls_inlined_capture"),
        ],
        "{frames:#?}"
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
        assert_eq!(symbolizer.resolve(addr), [Frame::unknown(addr)], "{addr:#x}");
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
    let addr = getpid as usize;
    let frames = Symbolizer::new().resolve(addr + 1);
    let name = frames.last().and_then(|f| f.function.as_deref()).unwrap_or_default();
    assert!(name.contains("getpid"), "{frames:#?}");
}

#[test]
fn main_program_has_dwarf_once_resolved() {
    let mut symbolizer = Symbolizer::new();
    assert_eq!(symbolizer.main_program_has_dwarf(), None);
    symbolizer.resolve(known_function as usize + 1);
    assert_eq!(symbolizer.main_program_has_dwarf(), Some(true));
}

#[test]
fn whole_stack_finds_the_first_user_frame() {
    let (ret, line) = calls_return_address();
    let mut symbolizer = Symbolizer::new();
    // A plumbing frame (inside std) under the user frame, as a real stack has.
    let std_addr = <Vec<u8>>::reserve as usize + 1;
    let frames = symbolizer.resolve_stack(&[std_addr, ret]);
    let user = first_user_frame(&frames).unwrap();
    assert_eq!(user.addr, ret);
    assert_eq!(user.line, Some(line));
}

/// Up to `n` return-address-like addresses spread over this binary's functions
/// (the middle of each), the worst case for lazy DWARF parsing.
fn spread_code_addresses(n: usize) -> Vec<usize> {
    use object::{Object, ObjectSymbol, SymbolKind};
    let main = &loaded::loaded_objects()[0];
    let data = std::fs::read("/proc/self/exe").unwrap();
    let file = object::File::parse(&*data).unwrap();
    let mut functions: Vec<(u64, u64)> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 8)
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

#[test]
fn thousand_distinct_addresses_resolve_and_report_timing() {
    let addrs = spread_code_addresses(1000);
    assert_eq!(addrs.len(), 1000);
    let start = Instant::now();
    let mut symbolizer = Symbolizer::new();
    let frames: Vec<Vec<Frame>> = addrs.iter().map(|&a| symbolizer.resolve(a)).collect();
    let elapsed = start.elapsed();
    let with_line = frames.iter().filter(|f| f[0].line.is_some()).count();
    let inlined = frames.iter().filter(|f| f.len() > 1).count();
    println!(
        "symbolized 1,000 distinct addresses in {:.1} ms (setup included): \
         {with_line} with file:line, {inlined} with inlined frames",
        elapsed.as_secs_f64() * 1e3
    );
    assert!(frames.iter().all(|f| f.last().unwrap().function.is_some()));
    let again = Instant::now();
    for &a in &addrs {
        symbolizer.resolve(a);
    }
    println!(
        "cached: 1,000 lookups in {:.2} ms",
        again.elapsed().as_secs_f64() * 1e3
    );
}
