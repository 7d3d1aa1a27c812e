//! Which frames of an allocation's stack are *plumbing* (the allocator, its shims,
//! and the standard library code between a user's call and the allocator) and
//! which is the first *user* frame, the one a report shows.
//!
//! Rule: a frame is plumbing when the code it names belongs to a plumbing crate:
//! `mod_alloc` itself (except its `tests` modules), the allocator shims
//! (`__rust_alloc`, `__rdl_alloc`, `__rg_alloc`, … and the `__rustc` crate that
//! newer compilers put them in), `alloc`, `core`, `std`, `hashbrown` (std's map
//! implementation) and the other crates of the standard library's build.
//!
//! Whose code a name is:
//! - a plain path `krate::…` belongs to `krate`;
//! - `<Type as Trait>::f` belongs to the crate of `Type` when `Type` is a path
//!   (`<myapp::Config as core::clone::Clone>::clone` is the user's code, derived
//!   or written), else (a generic parameter, a slice, a reference, a tuple, a
//!   primitive) to the crate of `Trait` (`<T as alloc::string::ToString>::to_string`
//!   is std's blanket impl) — but a trait of a non-plumbing crate makes it user
//!   code even for a std type (`<alloc::vec::Vec<u8> as myapp::Encode>::encode`);
//! - `<Type>::f` (v0 inherent impls) belongs to the crate of `Type`, and to std
//!   for primitives, slices and references (`<[T]>::to_vec`).
//!
//! The first user frame is the innermost frame with a known, non-plumbing
//! function name; frames without a name say nothing about whose code they are
//! and are skipped. Everything std does on the way to the allocator is skipped
//! too, so an allocation inside `std::fs::read_to_string` is shown at the user's
//! call of `read_to_string`, and one inside a user closure called by
//! `Vec::retain` at the closure.

use super::Frame;

/// Crates whose frames are allocation plumbing (besides `mod_alloc`, see
/// [`is_plumbing_crate`]).
const PLUMBING_CRATES: &[&str] = &[
    "alloc",
    "core",
    "std",
    "hashbrown",
    "compiler_builtins",
    "std_detect",
    "panic_unwind",
    "panic_abort",
    "unwind",
    // Newer compilers mangle the allocator shims as `__rustc::__rust_alloc`.
    "__rustc",
];

/// Unmangled allocator shim names (older compilers, `#[global_allocator]` glue).
const SHIM_PREFIXES: &[&str] = &[
    "__rust_alloc",
    "__rust_realloc",
    "__rust_dealloc",
    "__rdl_",
    "__rg_",
];

/// Whether `function` (a demangled name, as in [`Frame::function`]) is allocation
/// plumbing to skip on the way to the first user frame.
pub(crate) fn is_allocation_plumbing(function: &str) -> bool {
    let name = function.trim();
    if let Some(last) = last_segment(name) {
        if SHIM_PREFIXES.iter().any(|prefix| last.starts_with(prefix)) {
            return true;
        }
    }
    if name.starts_with("mod_alloc::") && name.contains("::tests::") {
        // Our own unit tests are the "user" of mod_alloc.
        return false;
    }
    match owner(name) {
        Some(krate) => is_plumbing_crate(krate),
        None => false,
    }
}

/// The first frame of `frames` (a whole stack, innermost first, inlined frames
/// expanded) that has a function name and is not allocation plumbing.
///
/// Inlined frames from line-tables-only debug info have bare names (`grow_one`,
/// `push<u8, alloc::alloc::Global>`); those are judged by their file instead:
/// the standard library's sources and mod-alloc's own (outside its tests) are
/// plumbing.
pub(crate) fn first_user_frame(frames: &[Frame]) -> Option<&Frame> {
    frames.iter().find(|frame| {
        let Some(function) = frame.function.as_deref() else {
            return false;
        };
        if is_qualified(function) {
            return !is_allocation_plumbing(function);
        }
        let file = frame.file.as_deref().unwrap_or_default();
        !(is_allocation_plumbing(function) || is_std_source(file) || is_mod_alloc_source(file))
    })
}

/// Whether `name` carries a path (`krate::f`, `<T as Trait>::f`), as demangled
/// names do; bare DWARF names (`f`, `f<T>`) and C names (`malloc`) do not.
pub(super) fn is_qualified(name: &str) -> bool {
    let name = name.trim_start();
    name.starts_with('<') || path_crate(name).is_some()
}

/// Whether `file` is a source of the standard library or of one of its
/// dependencies, as the compiler records them.
fn is_std_source(file: &str) -> bool {
    file.starts_with("/rustc/")
        || file.starts_with("/rust/deps/")
        || file.contains("/lib/rustlib/src/rust/library/")
}

/// Whether `file` is one of mod-alloc's sources other than its tests.
/// Whether `file` is one of mod-alloc's own sources (outside its tests).
pub(crate) fn is_mod_alloc_source(file: &str) -> bool {
    let Some(in_crate) = file.strip_prefix(concat!(env!("CARGO_MANIFEST_DIR"), "/src/")) else {
        return false;
    };
    !(in_crate.ends_with("/tests.rs")
        || in_crate.starts_with("tests/")
        || in_crate.contains("/tests/"))
}

fn is_plumbing_crate(krate: &str) -> bool {
    krate == "mod_alloc" || PLUMBING_CRATES.contains(&krate)
}

/// The crate whose code `name` is (see the module docs); `None` for names
/// without a crate path (C functions, `main`).
fn owner(name: &str) -> Option<&str> {
    let Some(qualified) = name.strip_prefix('<') else {
        return path_crate(name);
    };
    let close = matching_close(qualified)?;
    let inside = &qualified[..close];
    let (self_type, trait_path) = match split_top_level_as(inside) {
        Some(at) => (&inside[..at], Some(&inside[at + " as ".len()..])),
        None => (inside, None),
    };
    let self_crate = type_crate(self_type);
    let trait_crate = trait_path.and_then(path_crate);
    match (self_crate, trait_crate) {
        // A user's trait implemented for anything is the user's code.
        (_, Some(t)) if !is_plumbing_crate(t) => Some(t),
        (Some(s), _) => Some(s),
        (None, Some(t)) => Some(t),
        // `<[T]>::to_vec`, `<str>::to_owned`: inherent impls on primitives are std's.
        (None, None) => Some("core"),
    }
}

/// The crate of a type as written in a demangled name; `None` for generic
/// parameters, primitives, slices, arrays, references, pointers and tuples.
fn type_crate(ty: &str) -> Option<&str> {
    let ty = ty.trim();
    let ty = ty.strip_prefix("dyn ").unwrap_or(ty);
    if ty.starts_with('<') {
        return owner(ty);
    }
    path_crate(ty)
}

/// The first segment of a path `krate::a::b<…>`, if it has at least two segments
/// and starts with an identifier.
fn path_crate(path: &str) -> Option<&str> {
    let path = path.trim();
    let end = path.find("::")?;
    let first = &path[..end];
    let is_ident = !first.is_empty()
        && first
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    is_ident.then_some(first)
}

/// The last path segment of `name` at nesting depth 0, without generic
/// arguments: `std::vec::Vec<T>::push` → `push`.
fn last_segment(name: &str) -> Option<&str> {
    let mut depth = 0usize;
    let mut start = 0;
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' => depth += 1,
            b'>' if i > 0 && bytes[i - 1] == b'-' => {}
            b'>' => depth = depth.saturating_sub(1),
            b':' if depth == 0 && bytes.get(i + 1) == Some(&b':') => {
                start = i + 2;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    let last = name.get(start..)?;
    let end = last.find('<').unwrap_or(last.len());
    last.get(..end)
}

/// Index in `s` (the text after an opening `<`) of the matching `>`; `->` in
/// function types does not count.
fn matching_close(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'<' => depth += 1,
            b'>' if i > 0 && bytes[i - 1] == b'-' => {}
            b'>' if depth == 0 => return Some(i),
            b'>' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Index of the ` as ` that separates type and trait at nesting depth 0.
fn split_top_level_as(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'<' | b'(' | b'[' => depth += 1,
            b'>' if i > 0 && bytes[i - 1] == b'-' => {}
            b'>' | b')' | b']' => depth = depth.saturating_sub(1),
            b' ' if depth == 0 && s[i..].starts_with(" as ") => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: Option<&str>, line: u32) -> Frame {
        Frame {
            addr: 0x1000 + line as usize,
            function: function.map(str::to_owned),
            file: Some("src/lib.rs".to_owned()),
            line: Some(line),
            column: None,
        }
    }

    #[test]
    fn allocator_shims_are_plumbing() {
        for name in [
            "__rust_alloc",
            "__rust_alloc_zeroed",
            "__rust_realloc",
            "__rust_dealloc",
            "__rdl_alloc",
            "__rdl_realloc",
            "__rg_alloc",
            "__rustc::__rust_alloc",
            "__rustc::__rdl_alloc",
        ] {
            assert!(is_allocation_plumbing(name), "{name}");
        }
    }

    #[test]
    fn mod_alloc_frames_are_plumbing() {
        for name in [
            "<mod_alloc::ModAlloc<A> as core::alloc::global::GlobalAlloc>::alloc",
            "mod_alloc::backtrace::capture",
            "mod_alloc::sites::SiteTable::intern",
        ] {
            assert!(is_allocation_plumbing(name), "{name}");
        }
    }

    #[test]
    fn mod_alloc_unit_tests_are_user_code() {
        assert!(!is_allocation_plumbing(
            "mod_alloc::sites::tests::three_sites"
        ));
        assert!(!is_allocation_plumbing(
            "mod_alloc::sites::tests::three_sites::{{closure}}"
        ));
    }

    #[test]
    fn std_allocation_plumbing_is_plumbing() {
        for name in [
            "alloc::alloc::alloc",
            "alloc::alloc::Global::alloc_impl",
            "<alloc::alloc::Global as core::alloc::Allocator>::allocate",
            "alloc::alloc::exchange_malloc",
            "alloc::raw_vec::RawVec<T,A>::grow_one",
            "alloc::raw_vec::RawVecInner<A>::reserve::do_reserve_and_handle",
            "alloc::raw_vec::finish_grow",
            "alloc::boxed::Box<T>::new",
            "alloc::vec::Vec<T,A>::push",
            "alloc::vec::Vec<T>::with_capacity",
            "alloc::vec::Vec<T,A>::reserve",
            "alloc::string::String::push_str",
            "alloc::string::String::push",
            "<alloc::vec::Vec<T> as alloc::vec::spec_from_iter::SpecFromIter<T,I>>::from_iter",
            "<alloc::vec::Vec<T> as alloc::vec::spec_from_iter_nested::SpecFromIterNested<T,I>>::from_iter",
            "<T as alloc::vec::spec_from_elem::SpecFromElem>::from_elem",
            "<[T] as alloc::slice::hack::ConvertVec>::to_vec",
            "alloc::slice::<impl [T]>::to_vec",
            "<T as alloc::string::ToString>::to_string",
            "<alloc::string::String as core::fmt::Write>::write_str",
            "alloc::fmt::format::format_inner",
            "alloc::fmt::format",
            "core::fmt::write",
            "core::ops::function::FnOnce::call_once",
            "<I as core::iter::traits::collect::FromIterator<T>>::from_iter",
            "core::iter::traits::iterator::Iterator::collect",
            "hashbrown::raw::RawTable<T,A>::reserve_rehash",
            "hashbrown::map::HashMap<K,V,S,A>::insert",
            "std::collections::hash::map::HashMap<K,V,S>::insert",
            "alloc::collections::btree::map::BTreeMap<K,V,A>::insert",
            "std::io::stdio::_print",
            "std::fs::read_to_string::inner",
            "std::thread::Builder::spawn_unchecked_::{{closure}}",
            "<alloc::vec::Vec<myapp::Token> as core::clone::Clone>::clone",
            "<&T as core::fmt::Display>::fmt",
            "<alloc::vec::Vec<u8>>::push",
            "<[myapp::Token]>::to_vec",
            "<str>::to_owned",
        ] {
            assert!(is_allocation_plumbing(name), "{name}");
        }
    }

    #[test]
    fn user_functions_are_not_plumbing() {
        for name in [
            "myapp::parse::tokenize",
            "myapp::main",
            "myapp::main::{{closure}}",
            "myapp::parse::tokenize::{closure#0}",
            "<myapp::Config as core::clone::Clone>::clone",
            "<myapp::Token as core::fmt::Display>::fmt",
            "<myapp::Lexer as core::iter::traits::iterator::Iterator>::next",
            "<alloc::vec::Vec<u8> as myapp::Encode>::encode",
            "<T as myapp::Encode>::encode",
            "<myapp::Config>::load",
            "<dyn myapp::Plugin>::boxed",
            "serde_json::de::from_str",
            "test::run_test",
            "main",
            "__libc_start_main",
        ] {
            assert!(!is_allocation_plumbing(name), "{name}");
        }
    }

    #[test]
    fn function_pointer_types_do_not_confuse_the_parser() {
        assert!(is_allocation_plumbing(
            "<fn() -> alloc::string::String as core::ops::function::FnOnce<()>>::call_once"
        ));
        assert!(!is_allocation_plumbing(
            "<fn(u8) -> u8 as myapp::Handler>::handle"
        ));
    }

    #[test]
    fn malformed_names_do_not_panic() {
        for name in [
            "", "<", ">", "<<<", "<a as", "::", "a::", "<> as <>", "->", "<->",
        ] {
            let _ = is_allocation_plumbing(name);
        }
    }

    #[test]
    fn first_user_frame_skips_plumbing_and_nameless_frames() {
        let stack = [
            frame(
                Some("<mod_alloc::ModAlloc<A> as core::alloc::global::GlobalAlloc>::alloc"),
                1,
            ),
            frame(Some("__rustc::__rust_alloc"), 2),
            frame(Some("alloc::raw_vec::RawVec<T,A>::grow_one"), 3),
            frame(None, 4),
            frame(Some("alloc::vec::Vec<T,A>::push"), 5),
            frame(Some("myapp::parse::tokenize"), 88),
            frame(Some("myapp::parse"), 61),
        ];
        assert_eq!(first_user_frame(&stack), Some(&stack[5]));
    }

    #[test]
    fn first_user_frame_is_none_for_plumbing_only_stacks() {
        let stack = [
            frame(Some("__rust_alloc"), 1),
            frame(None, 2),
            frame(Some("std::rt::lang_start_internal"), 3),
        ];
        assert_eq!(first_user_frame(&stack), None);
        assert_eq!(first_user_frame(&[]), None);
    }

    fn frame_in(function: &str, file: &str) -> Frame {
        Frame {
            file: Some(file.to_owned()),
            ..frame(Some(function), 1)
        }
    }

    #[test]
    fn bare_names_from_std_sources_are_plumbing() {
        let stack = [
            frame_in(
                "grow_one<u8, alloc::alloc::Global>",
                "/rustc/abc/library/alloc/src/raw_vec/mod.rs",
            ),
            frame_in("push<u8>", "/rust/deps/hashbrown-0.15.2/src/map.rs"),
            frame_in(
                "alloc_impl",
                concat!(env!("CARGO_MANIFEST_DIR"), "/src/alloc.rs"),
            ),
            frame_in("tokenize", "/home/me/proj/src/parse.rs"),
        ];
        assert_eq!(first_user_frame(&stack), Some(&stack[3]));
    }

    #[test]
    fn bare_names_in_mod_alloc_tests_are_user_code() {
        let stack = [frame_in(
            "inlined_capture",
            concat!(env!("CARGO_MANIFEST_DIR"), "/src/symbolize/tests.rs"),
        )];
        assert_eq!(first_user_frame(&stack), Some(&stack[0]));
    }

    #[test]
    fn qualified_names_are_told_from_bare_ones() {
        assert!(is_qualified("myapp::parse"));
        assert!(is_qualified("<T as alloc::string::ToString>::to_string"));
        assert!(!is_qualified("push<u8, alloc::alloc::Global>"));
        assert!(!is_qualified("{closure#0}"));
        assert!(!is_qualified("malloc"));
    }

    #[test]
    fn last_segment_ignores_generics() {
        assert_eq!(last_segment("alloc::vec::Vec<T,A>::push"), Some("push"));
        assert_eq!(last_segment("<a::B<c::D> as e::F>::g<h::I>"), Some("g"));
        assert_eq!(last_segment("main"), Some("main"));
    }
}
