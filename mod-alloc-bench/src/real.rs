//! Real-library workloads, timed end to end: serde_json parse + serialize of
//! about 1 MB generated in-process, and regex compile + match over 512 KiB.
//!
//! These cannot be run "on System directly" inside a binary whose global
//! allocator is another, so the in-process reference is an allocation-free
//! calibration kernel (a multiply-xorshift hash over a 256 KiB buffer, sized
//! to last about as long as the workload), interleaved with it on the same
//! thread. Each sample is workload time / kernel time, which removes the
//! speed of the process (CPU frequency, the other tenant's load); the driver
//! divides the median by the `system` binary's median from the same rounds.
//! Left in: layout effects specific to one binary (code alignment, cache
//! placement), which the kernel does not share.

use crate::measure::{self, Budget};
use crate::protocol::Record;
use crate::workloads::Rng;
use std::fmt::Write;
use std::hint::black_box;

/// About 1 MB of JSON: an array of records with strings, numbers, arrays and
/// nested objects. The same in every binary.
pub fn json_input() -> String {
    let mut rng = Rng::new(42);
    let mut s = String::with_capacity(1 << 20);
    s.push('[');
    for i in 0..5_000 {
        if i > 0 {
            s.push(',');
        }
        let tags: Vec<String> = (0..(rng.below(6) + 1))
            .map(|t| format!("\"tag-{}\"", rng.below(100) + t))
            .collect();
        let _ = write!(
            s,
            r#"{{"id":{i},"name":"user number {i}","email":"u{i}@example.org","score":{}.{},"active":{},"tags":[{}],"address":{{"street":"{} Main Street","zip":"{:05}","geo":[{}.5,{}.25]}}}}"#,
            rng.below(1000),
            rng.below(100),
            rng.below(2) == 0,
            tags.join(","),
            rng.below(9999),
            rng.below(99999),
            rng.below(180),
            rng.below(90),
        );
    }
    s.push(']');
    s
}

/// About 512 KiB of text with words, e-mail addresses and dates.
pub fn text_input() -> String {
    let words = [
        "alpha", "Beta", "gamma", "Delta", "epsilon", "Zeta", "eta", "Theta", "über", "naïve",
    ];
    let mut rng = Rng::new(7);
    let mut s = String::with_capacity(600 << 10);
    while s.len() < 512 << 10 {
        match rng.below(20) {
            0 => {
                let _ = write!(s, "user{}@host{}.com ", rng.below(1000), rng.below(50));
            }
            1 => {
                let _ = write!(
                    s,
                    "{}-{:02}-{:02} ",
                    1990 + rng.below(40),
                    rng.below(12) + 1,
                    rng.below(28) + 1
                );
            }
            _ => {
                s.push_str(words[rng.below(words.len() as u64) as usize]);
                s.push(' ');
            }
        }
    }
    s
}

/// Parse into `serde_json::Value`, serialize back; returns the output length.
pub fn json_round_trip(input: &str) -> usize {
    match serde_json::from_str::<serde_json::Value>(input) {
        Ok(v) => serde_json::to_string(&v).map(|s| s.len()).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Compile a few patterns and count their matches in `text`.
pub fn regex_compile_match(text: &str) -> usize {
    let patterns = [
        r"\b\w+@\w+\.(com|org|net)\b",
        r"\b(19|20)\d\d-\d\d-\d\d\b",
        r"\b\p{Lu}\p{Ll}+\b",
        r"(?i)\b(alpha|gamma|eta)\s+\w+",
    ];
    patterns
        .iter()
        .filter_map(|p| regex::Regex::new(p).ok())
        .map(|re| re.find_iter(text).count())
        .sum()
}

/// The allocation-free calibration kernel: `reps` hashes of `buf`.
pub fn kernel(buf: &[u64], reps: u64) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..reps {
        for &x in buf {
            h = (h ^ x).wrapping_mul(0x100_0000_01b3);
            h ^= h >> 29;
        }
    }
    black_box(h)
}

fn normalised(budget: Budget, name: &str, work: &mut dyn FnMut()) -> Vec<Record> {
    let buf: Vec<u64> = (0..32 * 1024u64)
        .map(|i| i.wrapping_mul(2654435761))
        .collect();
    // Size the kernel to last about as long as one run of the workload.
    let work_ns = measure::time_ns(&mut *work);
    let one = measure::time_ns(|| {
        kernel(&buf, 1);
    })
    .max(1.0);
    let reps = ((work_ns / one) as u64).max(1);
    measure::normalised(budget, work, &mut || {
        kernel(&buf, reps);
    })
    .into_iter()
    .map(|(norm, ns)| Record::Norm {
        workload: name.to_string(),
        norm,
        ns,
    })
    .collect()
}

/// serde_json parse + serialize.
pub fn serde(budget: Budget) -> Vec<Record> {
    let input = json_input();
    normalised(budget, "serde-json", &mut || {
        black_box(json_round_trip(&input));
    })
}

/// regex compile + match.
pub fn regex(budget: Budget) -> Vec<Record> {
    let text = text_input();
    normalised(budget, "regex", &mut || {
        black_box(regex_compile_match(&text));
    })
}
