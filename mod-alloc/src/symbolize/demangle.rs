//! Symbol names as people read them: Rust names (legacy and v0 mangling)
//! demangled without the hash suffix or crate disambiguators
//! (`alloc::raw_vec::RawVec<T,A>::grow_one`); anything else is kept as it is.

/// Demangles `name` if it is a mangled Rust symbol, else returns it unchanged.
pub(super) fn demangle(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        // `{:#}` leaves out the `::h0123…` hash (legacy) and `[abc]` crate
        // disambiguators (v0).
        Ok(demangled) => format!("{demangled:#}"),
        Err(_) => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::demangle;

    #[test]
    fn legacy_rust_name_loses_its_hash() {
        assert_eq!(
            demangle("_ZN5alloc7raw_vec19RawVec$LT$T$C$A$GT$8grow_one17h0123456789abcdefE"),
            "alloc::raw_vec::RawVec<T,A>::grow_one"
        );
    }

    #[test]
    fn v0_rust_name_loses_its_crate_disambiguator() {
        assert_eq!(
            demangle("_RNvNtCs1234_5myapp5parse8tokenize"),
            "myapp::parse::tokenize"
        );
    }

    #[test]
    fn c_name_is_kept() {
        assert_eq!(demangle("malloc"), "malloc");
        assert_eq!(demangle("__libc_start_main"), "__libc_start_main");
    }
}
