//! Folded stacks: the same [`Profile`] the DHAT writer takes, written as the input of
//! `inferno-flamegraph` and `flamegraph.pl`, one line per distinct stack:
//!
//! ```text
//! demo::main;demo::parse;alloc::vec::Vec<T>::push 4096
//! ```
//!
//! Frames go outermost first (`main` on the left, the allocation point on the right)
//! and the line ends with a space and the weight ([`Weight`]). Invariants:
//!
//! - A frame is its function name, or `0x{addr:x}` when the name is unknown. Names
//!   never contain the separators: `;` becomes `,` (Rust array types such as
//!   `[u8; 4]` have one) and line breaks and tabs become spaces.
//! - Stacks that read the same after that are merged into one line (weights summed),
//!   so no line repeats a stack. A point without frames is written as `[unknown]`,
//!   the name perf and inferno use.
//! - Lines with weight 0 are left out; lines are sorted by stack, so output is
//!   deterministic (both tools sort their input anyway).
//!
//! Report-time code: it allocates and is never called from the allocator hook.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::dhat::{FrameText, Profile};

/// What a stack's width in the flame graph measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weight {
    /// Total bytes allocated (`tb`; units in ad-hoc mode).
    Bytes,
    /// Total blocks allocated (`tbk`; events in ad-hoc mode).
    Blocks,
}

/// The profile as folded-stack text, one `frame;frame;frame weight` line per stack.
pub(crate) fn to_string(profile: &Profile, weight: Weight) -> String {
    let mut out = String::new();
    for (stack, w) in fold(profile, weight) {
        out.push_str(&stack);
        out.push(' ');
        out.push_str(&w.to_string());
        out.push('\n');
    }
    out
}

/// Writes the folded stacks to `path` (created or truncated; the parent directory
/// must exist).
// No public entry point writes folded stacks to a file yet (`ModAlloc::folded_stacks`
// returns the text); kept for the one that will.
#[allow(dead_code)]
pub(crate) fn write(profile: &Profile, weight: Weight, path: &Path) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    for (stack, w) in fold(profile, weight) {
        writeln!(out, "{stack} {w}")?;
    }
    out.flush()
}

/// Stack text to summed weight, without zero weights.
fn fold(profile: &Profile, weight: Weight) -> BTreeMap<String, u64> {
    let mut stacks: BTreeMap<String, u64> = BTreeMap::new();
    for pp in &profile.pps {
        let w = match weight {
            Weight::Bytes => pp.tb,
            Weight::Blocks => pp.tbk,
        };
        if w == 0 {
            continue;
        }
        let mut stack = String::new();
        for (i, frame) in pp.frames.iter().rev().enumerate() {
            if i > 0 {
                stack.push(';');
            }
            push_frame_name(&mut stack, frame);
        }
        if stack.is_empty() {
            stack.push_str("[unknown]");
        }
        let sum = stacks.entry(stack).or_insert(0);
        *sum = sum.saturating_add(w);
    }
    stacks
}

/// Appends the frame's name with the separators replaced (see the module docs).
fn push_frame_name(out: &mut String, frame: &FrameText) {
    match frame.function.as_deref() {
        Some(name) if !name.is_empty() => out.extend(name.chars().map(|c| match c {
            ';' => ',',
            '\n' | '\r' | '\t' => ' ',
            c => c,
        })),
        _ => out.push_str(&format!("0x{:x}", frame.addr)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

    use super::*;
    use crate::dhat::tests::{artefact_dir, frame, synthetic};
    use crate::dhat::{Mode, ProgramPoint};

    fn point(frames: Vec<FrameText>, tb: u64, tbk: u64) -> ProgramPoint {
        ProgramPoint {
            frames,
            tb,
            tbk,
            ..ProgramPoint::default()
        }
    }

    fn profile(pps: Vec<ProgramPoint>) -> Profile {
        Profile {
            mode: Mode::Heap,
            cmd: "demo".into(),
            pid: 1,
            te: 10,
            tg: 5,
            pps,
        }
    }

    fn stack(names: &[&str]) -> Vec<FrameText> {
        // Innermost first, as profiles hold them.
        names
            .iter()
            .enumerate()
            .map(|(i, n)| frame(0x100 + i, n, "src/main.rs", 1))
            .collect()
    }

    #[test]
    fn frames_go_outermost_first_and_end_with_the_byte_weight() {
        let p = profile(vec![point(
            stack(&["alloc::vec::Vec<T>::push", "demo::parse", "demo::main"]),
            4096,
            3,
        )]);
        assert_eq!(
            to_string(&p, Weight::Bytes),
            "demo::main;demo::parse;alloc::vec::Vec<T>::push 4096\n"
        );
    }

    #[test]
    fn block_weight_counts_blocks() {
        let p = profile(vec![point(stack(&["demo::parse", "demo::main"]), 4096, 3)]);
        assert_eq!(to_string(&p, Weight::Blocks), "demo::main;demo::parse 3\n");
    }

    #[test]
    fn identical_stacks_are_merged_into_one_line() {
        let mut a = stack(&["demo::leaf", "demo::main"]);
        a[0].addr = 0x999; // another call site in the same function
        let p = profile(vec![
            point(stack(&["demo::leaf", "demo::main"]), 10, 1),
            point(a, 32, 2),
        ]);
        assert_eq!(to_string(&p, Weight::Bytes), "demo::main;demo::leaf 42\n");
    }

    #[test]
    fn separators_inside_names_are_replaced() {
        let p = profile(vec![point(
            stack(&["<[u8; 4] as demo::T>::f", "line\nbreak\tand\rreturn"]),
            1,
            1,
        )]);
        assert_eq!(
            to_string(&p, Weight::Bytes),
            "line break and return;<[u8, 4] as demo::T>::f 1\n"
        );
    }

    #[test]
    fn unknown_functions_are_named_by_address() {
        let p = profile(vec![point(
            vec![
                FrameText {
                    addr: 0xbeef,
                    ..FrameText::default()
                },
                frame(1, "demo::main", "m.rs", 1),
            ],
            8,
            1,
        )]);
        assert_eq!(to_string(&p, Weight::Bytes), "demo::main;0xbeef 8\n");
    }

    #[test]
    fn a_point_without_frames_is_unknown() {
        let p = profile(vec![point(vec![], 8, 1)]);
        assert_eq!(to_string(&p, Weight::Bytes), "[unknown] 8\n");
    }

    #[test]
    fn zero_weights_are_left_out() {
        let p = profile(vec![
            point(stack(&["demo::a"]), 0, 0),
            point(stack(&["demo::b"]), 5, 1),
        ]);
        assert_eq!(to_string(&p, Weight::Blocks), "demo::b 1\n");
    }

    #[test]
    fn every_line_has_a_stack_and_a_count_and_totals_match() {
        let p = synthetic(80, 6, 3_000, 31);
        for weight in [Weight::Bytes, Weight::Blocks] {
            let text = to_string(&p, weight);
            let mut total = 0;
            for line in text.lines() {
                let (stack, count) = line.rsplit_once(' ').unwrap();
                assert!(!stack.is_empty() && !stack.contains('\n'), "{line}");
                total += count.parse::<u64>().unwrap();
            }
            let want: u64 = p
                .pps
                .iter()
                .map(|pp| {
                    if weight == Weight::Bytes {
                        pp.tb
                    } else {
                        pp.tbk
                    }
                })
                .sum();
            assert_eq!(total, want);
        }
    }

    #[test]
    fn write_creates_a_file_with_the_same_text() {
        let p = synthetic(10, 4, 200, 3);
        let path =
            std::env::temp_dir().join(format!("mod-alloc-folded-{}.txt", std::process::id()));
        write(&p, Weight::Blocks, &path).unwrap();
        let back = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back, to_string(&p, Weight::Blocks));
    }

    #[test]
    fn writes_folded_samples_for_flame_graph_tools() {
        // Next to the DHAT samples, for `inferno-flamegraph` / `flamegraph.pl` by hand.
        let dir = artefact_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let p = synthetic(60, 8, 5_000, 21);
        for (name, weight) in [("bytes", Weight::Bytes), ("blocks", Weight::Blocks)] {
            let path = dir.join(format!("synthetic-heap.{name}.folded"));
            write(&p, weight, &path).unwrap();
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                to_string(&p, weight)
            );
        }
    }
}
