//! The line format between the allocator binaries and the driver.
//!
//! One record per line, fields separated by tabs, first field the kind:
//!
//! ```text
//! ratio  <workload>  <measured/reference>  <measured ns/op>  <reference ns/op>
//! norm   <workload>  <workload time / calibration time>  <workload ns/op>
//! bytes  <workload>  <extra bytes per live block>
//! time   <workload>  <milliseconds>  <detail>
//! skip   <workload>  <reason>
//! ```
//!
//! `ratio` records are already normalised in the process (reference: the
//! same operations calling `System` directly). `norm` records are divided by
//! the `system` binary's median by the driver. Numbers use `.` and no
//! separators, so the driver parses them with `str::parse`.

use std::io::Write;

/// One record of a binary's output.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// An in-process ratio to `System` called directly.
    Ratio {
        /// Workload name.
        workload: String,
        /// Measured time over reference time, per operation.
        ratio: f64,
        /// Nanoseconds per operation through the global allocator.
        measured_ns: f64,
        /// Nanoseconds per operation calling `System` directly.
        reference_ns: f64,
    },
    /// A workload time divided by an allocation-free calibration time.
    Norm {
        /// Workload name.
        workload: String,
        /// Workload time over calibration time.
        norm: f64,
        /// Nanoseconds per run of the workload.
        ns: f64,
    },
    /// Extra bytes per live block, against `System` in the same process.
    Bytes {
        /// Workload name.
        workload: String,
        /// Extra resident bytes per live block.
        bytes: f64,
    },
    /// A duration (report cost), with a free-text detail.
    Time {
        /// Workload name.
        workload: String,
        /// Milliseconds.
        ms: f64,
        /// What was produced (sizes), for the output.
        detail: String,
    },
    /// A workload that could not be measured, and why.
    Skip {
        /// Workload name.
        workload: String,
        /// Why.
        reason: String,
    },
}

impl Record {
    /// The workload this record is about.
    pub fn workload(&self) -> &str {
        match self {
            Record::Ratio { workload, .. }
            | Record::Norm { workload, .. }
            | Record::Bytes { workload, .. }
            | Record::Time { workload, .. }
            | Record::Skip { workload, .. } => workload,
        }
    }

    /// The record as one line, without the newline.
    pub fn to_line(&self) -> String {
        match self {
            Record::Ratio {
                workload,
                ratio,
                measured_ns,
                reference_ns,
            } => format!("ratio\t{workload}\t{ratio}\t{measured_ns}\t{reference_ns}"),
            Record::Norm { workload, norm, ns } => format!("norm\t{workload}\t{norm}\t{ns}"),
            Record::Bytes { workload, bytes } => format!("bytes\t{workload}\t{bytes}"),
            Record::Time {
                workload,
                ms,
                detail,
            } => format!(
                "time\t{workload}\t{ms}\t{}",
                detail.replace(['\t', '\n'], " ")
            ),
            Record::Skip { workload, reason } => {
                format!("skip\t{workload}\t{}", reason.replace(['\t', '\n'], " "))
            }
        }
    }

    /// Parses a line written by [`Record::to_line`]; `None` for anything else.
    pub fn parse(line: &str) -> Option<Record> {
        let f: Vec<&str> = line.split('\t').collect();
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok());
        let workload = f.get(1)?.to_string();
        match *f.first()? {
            "ratio" => Some(Record::Ratio {
                workload,
                ratio: num(2)?,
                measured_ns: num(3)?,
                reference_ns: num(4)?,
            }),
            "norm" => Some(Record::Norm {
                workload,
                norm: num(2)?,
                ns: num(3)?,
            }),
            "bytes" => Some(Record::Bytes {
                workload,
                bytes: num(2)?,
            }),
            "time" => Some(Record::Time {
                workload,
                ms: num(2)?,
                detail: f.get(3).unwrap_or(&"").to_string(),
            }),
            "skip" => Some(Record::Skip {
                workload,
                reason: f.get(2).unwrap_or(&"").to_string(),
            }),
            _ => None,
        }
    }

    /// Prints the record on stdout (one line, flushed).
    pub fn emit(&self) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", self.to_line());
        let _ = out.flush();
    }
}
