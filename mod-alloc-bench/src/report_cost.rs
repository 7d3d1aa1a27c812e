//! Report cost: time to produce a failing test's report and its DHAT file
//! for 100, 1,000 and 10,000 distinct call sites.
//!
//! TODO(#7): not measurable yet. It needs mod-alloc's report APIs from the
//! public contract, `ModAlloc::symbolicated_report()`,
//! `ModAlloc::dhat_json_string()` and `ModAlloc::write_dhat_json(path)`,
//! which are not on main yet. Once they are: in the backtraces binaries,
//! create N sites (N distinct call paths, e.g. N monomorphised
//! `#[inline(never)]` allocating functions reached from a table), then time
//! `symbolicated_report()` + `write_dhat_json()`; other binaries print
//! `skip`. Until then every binary reports the section as not available.

use crate::protocol::Record;

/// The site counts the section will measure.
pub const SITES: [u32; 3] = [100, 1_000, 10_000];

/// `skip` records naming the missing APIs.
pub fn run() -> Vec<Record> {
    SITES
        .iter()
        .map(|n| Record::Skip {
            workload: format!("report-{n}"),
            reason: "not available yet: needs ModAlloc::symbolicated_report(), \
                     dhat_json_string(), write_dhat_json(path) (TODO #7)"
                .into(),
        })
        .collect()
}
