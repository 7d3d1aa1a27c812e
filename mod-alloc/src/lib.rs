//! mod-alloc: allocation profiling and allocation assertions (work in progress).
#![cfg_attr(not(feature = "std"), no_std)]

#[cfg(feature = "dhat-compat")]
mod dhat;
#[cfg(feature = "dhat-compat")]
mod folded;
