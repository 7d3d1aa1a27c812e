//! mod-alloc: allocation profiling and allocation assertions (work in progress).
#![cfg_attr(not(feature = "std"), no_std)]

// ---- Test harness: #[alloc_test] and assert_allocs! (issue 4) ----
#[cfg(feature = "macros")]
pub use mod_alloc_macros::{alloc_test, assert_allocs};
#[cfg(feature = "macros")]
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
#[cfg(feature = "macros")]
mod artefact;
#[cfg(feature = "macros")]
mod budget;
#[cfg(feature = "macros")]
mod report;
