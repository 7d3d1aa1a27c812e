//! The mod-alloc benchmark suite: shared workloads and the measuring protocol.
//!
//! A process has one global allocator, so each allocator under test is its own
//! binary (`src/bin/*.rs`, and `backtraces/` for the call-site builds). Every
//! binary calls [`run()`] and so runs the same workloads with the same code;
//! the driver (`src/bin/bench/`) launches them in interleaved rounds and
//! prints one table.
//!
//! Invariants:
//! - This library declares no `#[global_allocator]`; each binary does (or
//!   links a crate that does), so "the global allocator" in the workloads is
//!   the one under test.
//! - Every figure is normalised inside the process that measured it, against
//!   a reference timed on the same thread, interleaved with it (see
//!   [`measure`]): processes on this kind of machine differ by up to 1.5×
//!   between two identical runs, same-thread ratios by a few percent.
//! - Output is one tab-separated record per line ([`protocol`]), read by the
//!   driver; nothing else is printed to stdout.

pub mod measure;
pub mod memory;
pub mod protocol;
pub mod real;
pub mod report_cost;
pub mod run;
pub mod walk_floor;
pub mod workloads;

pub use crate::run::{run, Options, ScopeOpener};
