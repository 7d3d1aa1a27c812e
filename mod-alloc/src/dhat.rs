//! DHAT JSON writer: turns a symbolized [`Profile`] into the file valgrind's viewer
//! (`dh_view.html`) reads, byte for byte in the layout dhat-rs 0.3 writes.
//!
//! This module owns the plain data model of a finished profile ([`Profile`],
//! [`ProgramPoint`], [`FrameText`]) and its serialisation. It never runs inside the
//! allocator hook: it allocates freely and is called at report time, with tracking
//! suspended for the writing thread by the caller.
//!
//! # Output
//!
//! ```text
//! {
//! "dhatFileVersion": 2,
//! "mode": "rust-heap",                       "rust-ad-hoc" in ad-hoc mode
//! "verb": "Allocated",
//! "bklt": true,                              false in ad-hoc mode
//! "bkacc": false,
//!                                            ad-hoc only: "bu": "unit", "bsu": "units", "bksu": "events"
//! "tu": "µs",
//! "Mtu": "s",
//! "tuth": 10,                                heap only
//! "cmd": "...", "pid": 42,
//! "tg": 123,                                 heap only
//! "te": 134,
//! "pps": [ { "tb", "tbk", heap only: "tl", "mb", "mbk", "gb", "gbk", "eb", "ebk", "fs" } ],
//! "ftbl": [ "[root]", "0x55a4...: dhatrs::main (dhatrs/src/main.rs:20:5)", ... ]
//! }
//! ```
//!
//! Fields, their order, the omitted ones and the formatter (serde_json's pretty
//! formatter with an empty indent: one value per line) are those of dhat-rs 0.3, so
//! files diff cleanly against dhat-rs output and every tool that reads dhat-rs files
//! reads ours. A frame is written as dhat-rs writes it:
//! `0x{addr:x}: {function} ({file}:{line}:{column})`, where `file` is shortened to its
//! last three path components and an unknown function or file is `???` and an unknown
//! line or column is `0`.
//!
//! # Invariants of the written file
//!
//! - `ftbl[0]` is `"[root]"` and no string appears twice in `ftbl`.
//! - Every `fs` index is in `1..ftbl.len()` (0 is the viewer's implicit root).
//! - No two program points have the same `fs`: points whose frames are written as the
//!   same strings are merged into one (the viewer rejects a repeated location). One
//!   index may repeat inside a single `fs`: that is recursion, and the viewer accepts it.
//! - Program points keep the order in which they first appear in [`Profile::pps`].
//!
//! # Merging program points
//!
//! `tb`, `tbk`, `tl`, `gb`, `gbk`, `eb` and `ebk` are sums over the merged points and
//! stay exact: totals and lifetimes add up, and `gb`/`eb` are all measured at the same
//! instants (the global peak, the end). `mb` (a point's own peak of live bytes) cannot
//! be recovered: the merged point's true peak lies between the largest of the merged
//! `mb`s and their sum. We write the sum, clamped to the global peak (`sum(gb)` over all
//! points, which no point's live bytes can exceed) and never below the merged `gb` or
//! `eb`. That is an upper bound that keeps what the viewer and `dhat-check --strict`
//! expect (`gb <= mb`, `eb <= mb`, `mb <= tb`, `mb <= sum(gb)`). `mbk` is the sum of the
//! merged `mbk`s, the block count that goes with that bound. A point that is not merged
//! is written exactly as given.

use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::ser::{Serialize, SerializeStruct, Serializer};

/// What the profile measured: heap blocks, or weighted ad-hoc events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Heap profiling: blocks with lifetimes (`mode: "rust-heap"`, `bklt: true`).
    Heap,
    /// Ad-hoc profiling: `tb` counts units and `tbk` events (`mode: "rust-ad-hoc"`).
    AdHoc,
}

/// One symbolized frame (an inlined function gets a frame of its own, with the same
/// `addr` as the frame it was inlined into).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct FrameText {
    /// The return address (or instruction pointer) of the frame.
    pub(crate) addr: usize,
    /// The demangled function name without its hash, e.g. `alloc::vec::from_elem`.
    pub(crate) function: Option<String>,
    /// The source path as the debug info gives it (the writer shortens it).
    pub(crate) file: Option<String>,
    /// 1-based source line.
    pub(crate) line: Option<u32>,
    /// 1-based source column.
    pub(crate) column: Option<u32>,
}

/// The figures of one call stack ("program point"). In ad-hoc mode only `tb` (units)
/// and `tbk` (events) are written; the other counts are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProgramPoint {
    /// Innermost frame first (the allocation point), outermost last.
    pub(crate) frames: Vec<FrameText>,
    /// Total bytes allocated here.
    pub(crate) tb: u64,
    /// Total blocks allocated here.
    pub(crate) tbk: u64,
    /// Sum of the lifetimes of those blocks, in µs (blocks live at the end count up
    /// to the end).
    pub(crate) tl: u64,
    /// Bytes live here at this point's own peak.
    pub(crate) mb: u64,
    /// Blocks live here at this point's own peak.
    pub(crate) mbk: u64,
    /// Bytes live here at the global peak (`tg`).
    pub(crate) gb: u64,
    /// Blocks live here at the global peak.
    pub(crate) gbk: u64,
    /// Bytes live here at the end (`te`).
    pub(crate) eb: u64,
    /// Blocks live here at the end.
    pub(crate) ebk: u64,
}

/// A finished, symbolized profile: everything the DHAT file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Profile {
    /// Heap or ad-hoc.
    pub(crate) mode: Mode,
    /// The command line, as shown in the viewer's header.
    pub(crate) cmd: String,
    /// The process id.
    pub(crate) pid: u32,
    /// End of the profile, µs since its start.
    pub(crate) te: u64,
    /// Time of the global peak of live bytes, µs since the start (heap mode only).
    pub(crate) tg: u64,
    /// The program points, in the order they should be written.
    pub(crate) pps: Vec<ProgramPoint>,
}

/// The profile as a JSON value (objects are key-sorted there; the text forms keep
/// dhat-rs's field order).
pub(crate) fn to_value(profile: &Profile) -> serde_json::Value {
    let table = Table::build(profile);
    serde_json::to_value(Document {
        profile,
        table: &table,
    })
    .expect("a DHAT document holds only strings, integers and booleans")
}

/// The profile as DHAT JSON text, laid out as dhat-rs writes `dhat-heap.json`.
pub(crate) fn to_string(profile: &Profile) -> String {
    let mut buf = Vec::new();
    write_to(profile, &mut buf).expect("writing JSON into a Vec cannot fail");
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}

/// Writes the profile as DHAT JSON to `path` (created or truncated; the parent
/// directory must exist).
pub(crate) fn write(profile: &Profile, path: &Path) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 16, File::create(path)?);
    write_to(profile, &mut out)?;
    out.flush()
}

/// Writes the profile as DHAT JSON into `out`.
pub(crate) fn write_to<W: Write>(profile: &Profile, out: W) -> io::Result<()> {
    let table = Table::build(profile);
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"");
    let mut ser = serde_json::Serializer::with_formatter(out, formatter);
    Document {
        profile,
        table: &table,
    }
    .serialize(&mut ser)?;
    Ok(())
}

/// A frame as dhat-rs writes it into `ftbl`, e.g.
/// `0x55a45732c98a: dhatrs::main (dhatrs/src/main.rs:19:38)`.
pub(crate) fn frame_string(frame: &FrameText) -> String {
    format!(
        "0x{:x}: {} ({}:{}:{})",
        frame.addr,
        frame.function.as_deref().unwrap_or("???"),
        frame.file.as_deref().map_or("???", short_path),
        frame.line.unwrap_or(0),
        frame.column.unwrap_or(0),
    )
}

/// The last three components of `path` (`/a/b/c/d.rs` becomes `b/c/d.rs`), the part of
/// a source path dhat-rs shows; shorter paths are returned unchanged.
fn short_path(path: &str) -> &str {
    const KEEP: usize = 3;
    let count = Path::new(path).components().count();
    if count <= KEEP {
        return path;
    }
    let mut rest = Path::new(path).components();
    for _ in 0..count - KEEP {
        rest.next();
    }
    // The rest of a `&str` path is a `&str` again.
    rest.as_path().to_str().unwrap_or(path)
}

/// The merged program points and the frame table, ready to serialise.
struct Table {
    pps: Vec<MergedPp>,
    ftbl: Vec<String>,
}

/// A written program point: the summed counts of every input point with this `fs`.
struct MergedPp {
    counts: ProgramPoint,
    fs: Vec<u32>,
    /// How many input points were merged into this one.
    merged: u32,
    /// The largest single `mb` merged here (the lower bound of the merged peak).
    mb_largest: u64,
}

impl Table {
    fn build(profile: &Profile) -> Table {
        let global_peak_bytes = profile
            .pps
            .iter()
            .fold(0u64, |sum, pp| sum.saturating_add(pp.gb));
        let mut ftbl = vec![String::from("[root]")];
        // Two maps: frames are compared first (cheap, and most repeat across stacks),
        // then the few new ones are formatted and compared as text, because distinct
        // frames can still print the same (e.g. paths that differ only in the part
        // that is cut off).
        // Sized for the worst case (every frame distinct) up to a point: growing
        // a table of 400,000 frames cost 8% of the write.
        let frames: usize = profile.pps.iter().map(|pp| pp.frames.len()).sum();
        let guess = frames.min(1 << 20);
        let mut by_frame: FastMap<&FrameText, u32> = FastMap::default();
        by_frame.reserve(guess);
        let mut by_text: FastMap<String, u32> = FastMap::default();
        by_text.reserve(guess);
        let mut by_fs: FastMap<Vec<u32>, usize> = FastMap::default();
        by_fs.reserve(profile.pps.len());
        let mut pps: Vec<MergedPp> = Vec::with_capacity(profile.pps.len());

        for pp in &profile.pps {
            let mut fs = Vec::with_capacity(pp.frames.len());
            for frame in &pp.frames {
                let index = *by_frame.entry(frame).or_insert_with(|| {
                    let text = frame_string(frame);
                    *by_text.entry(text).or_insert_with_key(|text| {
                        ftbl.push(text.clone());
                        // Frame tables beyond u32::MAX strings cannot be loaded anyway.
                        (ftbl.len() - 1) as u32
                    })
                });
                fs.push(index);
            }
            match by_fs.get(&fs) {
                Some(&at) => pps[at].add(pp),
                None => {
                    by_fs.insert(fs.clone(), pps.len());
                    pps.push(MergedPp::new(pp, fs));
                }
            }
        }
        for pp in &mut pps {
            pp.settle_peak(global_peak_bytes);
        }
        Table { pps, ftbl }
    }
}

impl MergedPp {
    fn new(pp: &ProgramPoint, fs: Vec<u32>) -> MergedPp {
        MergedPp {
            counts: pp.clone_counts(),
            fs,
            merged: 1,
            mb_largest: pp.mb,
        }
    }

    fn add(&mut self, pp: &ProgramPoint) {
        let c = &mut self.counts;
        c.tb = c.tb.saturating_add(pp.tb);
        c.tbk = c.tbk.saturating_add(pp.tbk);
        c.tl = c.tl.saturating_add(pp.tl);
        c.mb = c.mb.saturating_add(pp.mb);
        c.mbk = c.mbk.saturating_add(pp.mbk);
        c.gb = c.gb.saturating_add(pp.gb);
        c.gbk = c.gbk.saturating_add(pp.gbk);
        c.eb = c.eb.saturating_add(pp.eb);
        c.ebk = c.ebk.saturating_add(pp.ebk);
        self.merged += 1;
        self.mb_largest = self.mb_largest.max(pp.mb);
    }

    /// Turns the summed `mb` of a merged point into the bound described in the module
    /// docs; leaves a point that was not merged alone.
    fn settle_peak(&mut self, global_peak_bytes: u64) {
        if self.merged < 2 {
            return;
        }
        let c = &mut self.counts;
        c.mb =
            c.mb.min(global_peak_bytes)
                .max(self.mb_largest)
                .max(c.gb)
                .max(c.eb);
    }
}

impl ProgramPoint {
    /// The counts without the frames (cheap to copy).
    fn clone_counts(&self) -> ProgramPoint {
        ProgramPoint {
            frames: Vec::new(),
            tb: self.tb,
            tbk: self.tbk,
            tl: self.tl,
            mb: self.mb,
            mbk: self.mbk,
            gb: self.gb,
            gbk: self.gbk,
            eb: self.eb,
            ebk: self.ebk,
        }
    }
}

/// A hash map with [`FastHasher`]: the keys are the profile's own frames and strings,
/// so there is no untrusted input to defend against, and SipHash was 40% of the
/// write time of a 10,000-site profile.
type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// A multiply-rotate hasher over 8-byte words (the scheme of rustc's FxHasher).
#[derive(Default)]
struct FastHasher(u64);

impl FastHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The top-level JSON object, in dhat-rs's field order.
struct Document<'a> {
    profile: &'a Profile,
    table: &'a Table,
}

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.profile;
        let heap = p.mode == Mode::Heap;
        // 12 common fields; heap adds tuth and tg, ad-hoc adds bu, bsu and bksu.
        let mut o = s.serialize_struct("DhatJson", if heap { 14 } else { 15 })?;
        o.serialize_field("dhatFileVersion", &2u32)?;
        o.serialize_field("mode", if heap { "rust-heap" } else { "rust-ad-hoc" })?;
        o.serialize_field("verb", "Allocated")?;
        o.serialize_field("bklt", &heap)?;
        o.serialize_field("bkacc", &false)?;
        if !heap {
            o.serialize_field("bu", "unit")?;
            o.serialize_field("bsu", "units")?;
            o.serialize_field("bksu", "events")?;
        }
        o.serialize_field("tu", "µs")?;
        o.serialize_field("Mtu", "s")?;
        if heap {
            o.serialize_field("tuth", &10u32)?;
        }
        o.serialize_field("cmd", &p.cmd)?;
        o.serialize_field("pid", &p.pid)?;
        if heap {
            o.serialize_field("tg", &p.tg)?;
        }
        o.serialize_field("te", &p.te)?;
        o.serialize_field(
            "pps",
            &Pps {
                pps: &self.table.pps,
                heap,
            },
        )?;
        o.serialize_field("ftbl", &self.table.ftbl)?;
        o.end()
    }
}

/// The `pps` array.
struct Pps<'a> {
    pps: &'a [MergedPp],
    heap: bool,
}

impl Serialize for Pps<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let heap = self.heap;
        s.collect_seq(self.pps.iter().map(|pp| Pp { pp, heap }))
    }
}

/// One element of `pps`, in dhat-rs's field order.
struct Pp<'a> {
    pp: &'a MergedPp,
    heap: bool,
}

impl Serialize for Pp<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = &self.pp.counts;
        let mut o = s.serialize_struct("PpInfoJson", if self.heap { 10 } else { 3 })?;
        o.serialize_field("tb", &c.tb)?;
        o.serialize_field("tbk", &c.tbk)?;
        if self.heap {
            o.serialize_field("tl", &c.tl)?;
            o.serialize_field("mb", &c.mb)?;
            o.serialize_field("mbk", &c.mbk)?;
            o.serialize_field("gb", &c.gb)?;
            o.serialize_field("gbk", &c.gbk)?;
            o.serialize_field("eb", &c.eb)?;
            o.serialize_field("ebk", &c.ebk)?;
        }
        o.serialize_field("fs", &self.pp.fs)?;
        o.end()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Structural checks of the written JSON, and [`synthetic`], a profile generator
    //! shared with the folded-stacks tests.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

    use super::*;
    use serde_json::Value;
    use std::collections::HashSet;

    pub(crate) fn frame(addr: usize, function: &str, file: &str, line: u32) -> FrameText {
        FrameText {
            addr,
            function: Some(function.to_owned()),
            file: Some(file.to_owned()),
            line: Some(line),
            column: Some(5),
        }
    }

    fn pp(frames: Vec<FrameText>, tb: u64, tbk: u64) -> ProgramPoint {
        ProgramPoint {
            frames,
            tb,
            tbk,
            tl: 7 * tbk,
            mb: tb,
            mbk: tbk,
            gb: tb,
            gbk: tbk,
            eb: 0,
            ebk: 0,
        }
    }

    fn profile(mode: Mode, pps: Vec<ProgramPoint>) -> Profile {
        Profile {
            mode,
            cmd: "./target/debug/demo --flag".into(),
            pid: 4242,
            te: 900,
            tg: 300,
            pps,
        }
    }

    fn main_frame() -> FrameText {
        frame(0x5000, "demo::main", "/home/u/demo/src/main.rs", 20)
    }

    fn two_sites() -> Profile {
        let boxed = vec![
            frame(0x1000, "demo::boxed", "/home/u/demo/src/main.rs", 11),
            main_frame(),
        ];
        let strings = vec![
            frame(0x2000, "demo::strings", "/home/u/demo/src/main.rs", 6),
            main_frame(),
        ];
        profile(Mode::Heap, vec![pp(boxed, 256, 1), pp(strings, 50, 5)])
    }

    /// A deterministic xorshift generator (no dependency, same numbers on every run).
    pub(crate) struct Rng(u64);

    impl Rng {
        pub(crate) fn new(seed: u64) -> Rng {
            Rng(seed | 1)
        }
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// A consistent heap profile of `sites` program points, `depth` frames each, made
    /// by simulating `events` allocations and frees and counting them as dhat does
    /// (two passes: the first finds the global peak, the second records `gb` there).
    /// Stacks share their allocator frames and `main`, and differ in the middle.
    pub(crate) fn synthetic(sites: usize, depth: usize, events: usize, seed: u64) -> Profile {
        assert!(depth >= 3, "room for the shared frames and one site frame");
        let pps: Vec<ProgramPoint> = (0..sites)
            .map(|site| {
                let mut frames = vec![frame(
                    0x10,
                    "<alloc::alloc::Global as core::alloc::Allocator>::allocate",
                    "/rustc/1a2b/library/alloc/src/alloc.rs",
                    241,
                )];
                for level in 0..depth - 2 {
                    let addr = 0x10_0000 + site * 0x1000 + level * 0x10;
                    let name = format!("demo::layer{level}::site{site}");
                    frames.push(frame(
                        addr,
                        &name,
                        "/home/u/demo/src/work.rs",
                        level as u32 + 1,
                    ));
                }
                frames.push(main_frame());
                ProgramPoint {
                    frames,
                    ..ProgramPoint::default()
                }
            })
            .collect();
        let mut p = profile(Mode::Heap, pps);
        let peak_event = simulate(&mut p, events, seed, None);
        simulate(&mut p, events, seed, Some(peak_event));
        p
    }

    /// Replays the event stream; returns the index of the last event at which live
    /// bytes reached their maximum. With `peak` given, snapshots `gb`/`gbk` there.
    fn simulate(p: &mut Profile, events: usize, seed: u64, peak: Option<usize>) -> usize {
        let mut rng = Rng::new(seed);
        let n = p.pps.len() as u64;
        for pp in &mut p.pps {
            let frames = std::mem::take(&mut pp.frames);
            *pp = ProgramPoint {
                frames,
                ..ProgramPoint::default()
            };
        }
        let mut live: Vec<(usize, u64, u64)> = Vec::new(); // (site, size, born)
        let mut cur = vec![(0u64, 0u64); p.pps.len()];
        let (mut live_bytes, mut max_bytes, mut max_at) = (0u64, 0u64, 0usize);
        for t in 0..events {
            // Mostly allocating in the first half and mostly freeing in the second, so the
            // global peak falls in the middle and some blocks outlive the end.
            let allocating = if t < events / 2 {
                rng.below(3) != 0
            } else {
                rng.below(3) == 0
            };
            if live.is_empty() || allocating {
                let site = rng.below(n) as usize;
                let size = 1 + rng.below(512);
                live.push((site, size, t as u64));
                let pp = &mut p.pps[site];
                pp.tb += size;
                pp.tbk += 1;
                cur[site].0 += size;
                cur[site].1 += 1;
                if cur[site].0 >= pp.mb {
                    pp.mb = cur[site].0;
                    pp.mbk = cur[site].1;
                }
                live_bytes += size;
            } else {
                let (site, size, born) = live.swap_remove(rng.below(live.len() as u64) as usize);
                p.pps[site].tl += t as u64 - born;
                cur[site].0 -= size;
                cur[site].1 -= 1;
                live_bytes -= size;
            }
            if live_bytes >= max_bytes {
                max_bytes = live_bytes;
                max_at = t;
            }
            if peak == Some(t) {
                for (pp, c) in p.pps.iter_mut().zip(&cur) {
                    pp.gb = c.0;
                    pp.gbk = c.1;
                }
            }
        }
        for &(site, _, born) in &live {
            p.pps[site].tl += events as u64 - born;
        }
        for (pp, c) in p.pps.iter_mut().zip(&cur) {
            pp.eb = c.0;
            pp.ebk = c.1;
        }
        p.te = events as u64;
        p.tg = max_at as u64;
        max_at
    }

    fn fs_of(v: &Value, i: usize) -> Vec<u64> {
        v["pps"][i]["fs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    }

    fn frames_of(v: &Value, i: usize) -> Vec<String> {
        let ftbl = v["ftbl"].as_array().unwrap();
        fs_of(v, i)
            .iter()
            .map(|&x| ftbl[x as usize].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn heap_profile_has_every_top_level_field_dhat_rs_writes() {
        let v = to_value(&two_sites());
        let o = v.as_object().unwrap();
        let keys: HashSet<&str> = o.keys().map(String::as_str).collect();
        let want: HashSet<&str> = [
            "dhatFileVersion",
            "mode",
            "verb",
            "bklt",
            "bkacc",
            "tu",
            "Mtu",
            "tuth",
            "cmd",
            "pid",
            "tg",
            "te",
            "pps",
            "ftbl",
        ]
        .into_iter()
        .collect();
        assert_eq!(keys, want);
        assert_eq!(v["dhatFileVersion"], 2);
        assert_eq!(v["mode"], "rust-heap");
        assert_eq!(v["verb"], "Allocated");
        assert_eq!(v["bklt"], true);
        assert_eq!(v["bkacc"], false);
        assert_eq!(v["tu"], "µs");
        assert_eq!(v["Mtu"], "s");
        assert_eq!(v["tuth"], 10);
        assert_eq!(v["cmd"], "./target/debug/demo --flag");
        assert_eq!(v["pid"], 4242);
        assert_eq!(v["tg"], 300);
        assert_eq!(v["te"], 900);
    }

    #[test]
    fn heap_program_points_carry_lifetimes_and_peaks() {
        let v = to_value(&two_sites());
        let pp = v["pps"][1].as_object().unwrap();
        let keys: Vec<&str> = pp.keys().map(String::as_str).collect();
        let mut want = vec![
            "tb", "tbk", "tl", "mb", "mbk", "gb", "gbk", "eb", "ebk", "fs",
        ];
        want.sort_unstable();
        assert_eq!(keys, want); // serde_json's map is key-sorted
        assert_eq!(
            (&pp["tb"], &pp["tbk"], &pp["tl"]),
            (&Value::from(50), &Value::from(5), &Value::from(35))
        );
    }

    #[test]
    fn ad_hoc_profile_names_units_and_events_and_omits_heap_fields() {
        let mut p = two_sites();
        p.mode = Mode::AdHoc;
        let v = to_value(&p);
        assert_eq!(v["mode"], "rust-ad-hoc");
        assert_eq!(v["bklt"], false);
        assert_eq!(
            (&v["bu"], &v["bsu"], &v["bksu"]),
            (
                &Value::from("unit"),
                &Value::from("units"),
                &Value::from("events")
            )
        );
        for absent in ["tg", "tuth"] {
            assert!(
                v.get(absent).is_none(),
                "{absent} is written only in heap mode"
            );
        }
        for pp in v["pps"].as_array().unwrap() {
            let keys: Vec<&str> = pp.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, ["fs", "tb", "tbk"]);
        }
    }

    #[test]
    fn heap_profile_has_no_unit_names() {
        let v = to_value(&two_sites());
        for absent in ["bu", "bsu", "bksu"] {
            assert!(
                v.get(absent).is_none(),
                "{absent} is written only in ad-hoc mode"
            );
        }
    }

    #[test]
    fn text_keeps_dhat_rs_field_order_and_one_value_per_line() {
        let text = to_string(&two_sites());
        assert!(
            text.starts_with("{\n\"dhatFileVersion\": 2,\n\"mode\": \"rust-heap\",\n\"verb\": \"Allocated\",\n\"bklt\": true,\n\"bkacc\": false,\n\"tu\": \"µs\",\n\"Mtu\": \"s\",\n\"tuth\": 10,\n\"cmd\": \"./target/debug/demo --flag\",\n\"pid\": 4242,\n\"tg\": 300,\n\"te\": 900,\n\"pps\": [\n{\n\"tb\": 256,\n\"tbk\": 1,\n\"tl\": 7,\n\"mb\": 256,\n\"mbk\": 1,\n\"gb\": 256,\n\"gbk\": 1,\n\"eb\": 0,\n\"ebk\": 0,\n\"fs\": [\n1,\n2\n]\n},"),
            "{text}"
        );
        assert!(text.ends_with("\"ftbl\": [\n\"[root]\",\n\"0x1000: demo::boxed (demo/src/main.rs:11:5)\",\n\"0x5000: demo::main (demo/src/main.rs:20:5)\",\n\"0x2000: demo::strings (demo/src/main.rs:6:5)\"\n]\n}"), "{text}");
    }

    #[test]
    fn text_and_value_say_the_same() {
        let p = synthetic(40, 6, 2_000, 7);
        let parsed: Value = serde_json::from_str(&to_string(&p)).unwrap();
        assert_eq!(parsed, to_value(&p));
    }

    #[test]
    fn ad_hoc_text_puts_units_before_time_units() {
        let mut p = two_sites();
        p.mode = Mode::AdHoc;
        let text = to_string(&p);
        assert!(text.contains("\"bkacc\": false,\n\"bu\": \"unit\",\n\"bsu\": \"units\",\n\"bksu\": \"events\",\n\"tu\": \"µs\",\n\"Mtu\": \"s\",\n\"cmd\""), "{text}");
        assert!(text.contains("\"pid\": 4242,\n\"te\": 900,"), "{text}");
    }

    #[test]
    fn frame_string_has_dhat_rs_form_with_the_last_three_path_components() {
        let f = frame(
            0x55a4_5740_7478,
            "alloc::raw_vec::RawVecInner<A>::with_capacity_in",
            "/rustc/17067e9/library/alloc/src/raw_vec/mod.rs",
            433,
        );
        let f = FrameText {
            column: Some(15),
            ..f
        };
        assert_eq!(frame_string(&f), "0x55a457407478: alloc::raw_vec::RawVecInner<A>::with_capacity_in (src/raw_vec/mod.rs:433:15)");
    }

    #[test]
    fn frame_string_keeps_short_paths_whole() {
        assert_eq!(
            frame_string(&frame(0xab, "m::f", "dhatrs/src/main.rs", 2)),
            "0xab: m::f (dhatrs/src/main.rs:2:5)"
        );
        assert_eq!(
            frame_string(&frame(0xab, "m::f", "main.rs", 2)),
            "0xab: m::f (main.rs:2:5)"
        );
        // The root counts as a component, as in dhat-rs.
        assert_eq!(
            frame_string(&frame(0xab, "m::f", "/src/main.rs", 2)),
            "0xab: m::f (/src/main.rs:2:5)"
        );
    }

    #[test]
    fn unknown_frame_parts_are_written_as_dhat_rs_shows_them() {
        let f = FrameText {
            addr: 0x55a4_5746_344f,
            function: Some("<alloc::raw_vec::RawVecInner>::try_allocate_in".into()),
            ..FrameText::default()
        };
        assert_eq!(
            frame_string(&f),
            "0x55a45746344f: <alloc::raw_vec::RawVecInner>::try_allocate_in (???:0:0)"
        );
        assert_eq!(
            frame_string(&FrameText {
                addr: 0x10,
                ..FrameText::default()
            }),
            "0x10: ??? (???:0:0)"
        );
    }

    #[test]
    fn ftbl_starts_with_root_and_never_repeats_a_string() {
        let v = to_value(&synthetic(300, 12, 5_000, 3));
        let ftbl: Vec<&str> = v["ftbl"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(ftbl[0], "[root]");
        let unique: HashSet<&str> = ftbl.iter().copied().collect();
        assert_eq!(unique.len(), ftbl.len());
        // 300 sites x 10 own frames, plus the shared allocator frame, main and [root].
        assert_eq!(ftbl.len(), 300 * 10 + 3);
    }

    #[test]
    fn every_fs_index_points_into_ftbl_past_root() {
        let v = to_value(&synthetic(200, 8, 3_000, 5));
        let n = v["ftbl"].as_array().unwrap().len() as u64;
        for i in 0..v["pps"].as_array().unwrap().len() {
            assert!(
                fs_of(&v, i).iter().all(|&x| (1..n).contains(&x)),
                "pps[{i}]"
            );
        }
    }

    #[test]
    fn fs_lists_frames_innermost_first() {
        let v = to_value(&two_sites());
        assert_eq!(
            frames_of(&v, 0),
            [
                "0x1000: demo::boxed (demo/src/main.rs:11:5)",
                "0x5000: demo::main (demo/src/main.rs:20:5)"
            ]
        );
    }

    #[test]
    fn frames_that_print_alike_share_one_ftbl_entry() {
        // Same address and line; the paths differ only above the three kept components.
        let a = frame(0x77, "demo::f", "/home/a/demo/src/lib.rs", 3);
        let b = frame(0x77, "demo::f", "/home/b/demo/src/lib.rs", 3);
        let p = profile(
            Mode::Heap,
            vec![
                pp(vec![a, main_frame()], 8, 1),
                pp(vec![b, frame(0x99, "demo::g", "g.rs", 1)], 8, 1),
            ],
        );
        let v = to_value(&p);
        assert_eq!(v["ftbl"].as_array().unwrap().len(), 4);
        assert_eq!(fs_of(&v, 0)[0], fs_of(&v, 1)[0]);
    }

    #[test]
    fn points_with_identical_stacks_are_merged_with_summed_counts() {
        let stack = vec![
            frame(0x1000, "demo::boxed", "src/main.rs", 11),
            main_frame(),
        ];
        let a = ProgramPoint {
            frames: stack.clone(),
            tb: 100,
            tbk: 1,
            tl: 10,
            mb: 100,
            mbk: 1,
            gb: 100,
            gbk: 1,
            eb: 0,
            ebk: 0,
        };
        let b = ProgramPoint {
            frames: stack,
            tb: 60,
            tbk: 3,
            tl: 5,
            mb: 40,
            mbk: 2,
            gb: 20,
            gbk: 1,
            eb: 20,
            ebk: 1,
        };
        let v = to_value(&profile(Mode::Heap, vec![a, b]));
        let pps = v["pps"].as_array().unwrap();
        assert_eq!(pps.len(), 1);
        let pp = &pps[0];
        let got: Vec<u64> = ["tb", "tbk", "tl", "gb", "gbk", "eb", "ebk"]
            .iter()
            .map(|k| pp[*k].as_u64().unwrap())
            .collect();
        assert_eq!(got, [160, 4, 15, 120, 2, 20, 1]);
        // Sum of the peaks (140) is above the global peak (120): clamped to it.
        assert_eq!(
            (pp["mb"].as_u64(), pp["mbk"].as_u64()),
            (Some(120), Some(3))
        );
    }

    #[test]
    fn merged_peak_is_the_sum_when_below_the_global_peak() {
        let stack = vec![frame(0x1000, "demo::boxed", "src/main.rs", 11)];
        let other = vec![frame(0x2000, "demo::big", "src/main.rs", 12)];
        let a = ProgramPoint {
            frames: stack.clone(),
            tb: 10,
            tbk: 1,
            tl: 1,
            mb: 10,
            mbk: 1,
            gb: 0,
            gbk: 0,
            eb: 0,
            ebk: 0,
        };
        let b = ProgramPoint {
            frames: stack,
            tb: 30,
            tbk: 1,
            tl: 1,
            mb: 30,
            mbk: 1,
            gb: 30,
            gbk: 1,
            eb: 0,
            ebk: 0,
        };
        let big = ProgramPoint {
            frames: other,
            tb: 1000,
            tbk: 1,
            tl: 1,
            mb: 1000,
            mbk: 1,
            gb: 1000,
            gbk: 1,
            eb: 1000,
            ebk: 1,
        };
        let v = to_value(&profile(Mode::Heap, vec![a, b, big]));
        assert_eq!(v["pps"][0]["mb"], 40);
        assert_eq!(v["pps"][0]["mbk"], 2);
    }

    #[test]
    fn merged_peak_never_drops_below_live_bytes_at_peak_or_end() {
        // Inconsistent input (sum(gb) below an mb) must still give mb >= gb and mb >= eb.
        let stack = vec![frame(0x1000, "demo::boxed", "src/main.rs", 11)];
        let a = ProgramPoint {
            frames: stack.clone(),
            tb: 50,
            tbk: 2,
            tl: 1,
            mb: 5,
            mbk: 1,
            gb: 5,
            gbk: 1,
            eb: 5,
            ebk: 1,
        };
        let b = ProgramPoint {
            frames: stack,
            tb: 50,
            tbk: 2,
            tl: 1,
            mb: 8,
            mbk: 1,
            gb: 8,
            gbk: 1,
            eb: 8,
            ebk: 1,
        };
        let v = to_value(&profile(Mode::Heap, vec![a, b]));
        let pp = &v["pps"][0];
        assert!(
            pp["mb"].as_u64() >= pp["gb"].as_u64() && pp["mb"].as_u64() >= pp["eb"].as_u64(),
            "{pp}"
        );
    }

    #[test]
    fn a_single_point_is_written_exactly_as_given() {
        let p = two_sites();
        let v = to_value(&p);
        for (i, want) in p.pps.iter().enumerate() {
            let pp = &v["pps"][i];
            let got = [
                &pp["tb"], &pp["tbk"], &pp["tl"], &pp["mb"], &pp["mbk"], &pp["gb"], &pp["gbk"],
                &pp["eb"], &pp["ebk"],
            ];
            let want = [
                want.tb, want.tbk, want.tl, want.mb, want.mbk, want.gb, want.gbk, want.eb, want.ebk,
            ];
            assert_eq!(got.map(|x| x.as_u64().unwrap()), want);
        }
    }

    #[test]
    fn merging_keeps_first_appearance_order() {
        let s = |a: usize| vec![frame(a, "demo::f", "f.rs", 1)];
        let p = profile(
            Mode::Heap,
            vec![
                pp(s(3), 1, 1),
                pp(s(1), 2, 1),
                pp(s(3), 4, 1),
                pp(s(2), 8, 1),
            ],
        );
        let v = to_value(&p);
        let tbs: Vec<u64> = v["pps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pp| pp["tb"].as_u64().unwrap())
            .collect();
        assert_eq!(tbs, [5, 2, 8]);
    }

    #[test]
    fn no_two_points_share_an_fs() {
        let mut p = synthetic(50, 5, 1_000, 11);
        let copies: Vec<ProgramPoint> = p.pps.iter().step_by(3).cloned().collect();
        p.pps.extend(copies);
        let v = to_value(&p);
        let n = v["pps"].as_array().unwrap().len();
        assert_eq!(n, 50);
        let distinct: HashSet<Vec<u64>> = (0..n).map(|i| fs_of(&v, i)).collect();
        assert_eq!(distinct.len(), n);
    }

    #[test]
    fn recursion_keeps_a_repeated_frame_inside_one_stack() {
        let rec = frame(0x400, "demo::walk", "src/tree.rs", 9);
        let p = profile(
            Mode::Heap,
            vec![pp(
                vec![
                    frame(0x1, "demo::leaf", "src/tree.rs", 2),
                    rec.clone(),
                    rec.clone(),
                    rec,
                    main_frame(),
                ],
                64,
                1,
            )],
        );
        let v = to_value(&p);
        let fs = fs_of(&v, 0);
        assert_eq!(fs.len(), 5);
        assert_eq!((fs[1], fs[2], fs[3]), (fs[1], fs[1], fs[1]));
    }

    #[test]
    fn points_without_frames_merge_into_one_with_an_empty_fs() {
        let p = profile(
            Mode::Heap,
            vec![
                pp(vec![], 8, 1),
                pp(vec![main_frame()], 16, 1),
                pp(vec![], 4, 1),
            ],
        );
        let v = to_value(&p);
        assert_eq!(v["pps"].as_array().unwrap().len(), 2);
        assert_eq!(v["pps"][0]["tb"], 12);
        assert!(fs_of(&v, 0).is_empty());
    }

    #[test]
    fn totals_are_preserved_by_writing() {
        let p = synthetic(120, 6, 4_000, 9);
        let v = to_value(&p);
        for key in ["tb", "tbk", "tl", "gb", "gbk", "eb", "ebk"] {
            let written: u64 = v["pps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pp| pp[key].as_u64().unwrap())
                .sum();
            let given: u64 = p
                .pps
                .iter()
                .map(|pp| match key {
                    "tb" => pp.tb,
                    "tbk" => pp.tbk,
                    "tl" => pp.tl,
                    "gb" => pp.gb,
                    "gbk" => pp.gbk,
                    "eb" => pp.eb,
                    _ => pp.ebk,
                })
                .sum();
            assert_eq!(written, given, "{key}");
        }
    }

    #[test]
    fn synthetic_profiles_are_self_consistent() {
        // The generator feeds the viewer check, so it must satisfy dhat-check --strict.
        let p = synthetic(100, 5, 3_000, 13);
        let peak: u64 = p.pps.iter().map(|pp| pp.gb).sum();
        assert!(peak > 0);
        for pp in &p.pps {
            assert!(
                pp.gb <= pp.mb && pp.eb <= pp.mb && pp.mb <= pp.tb && pp.mb <= peak,
                "{pp:?}"
            );
            assert!(
                pp.gbk <= pp.tbk && pp.ebk <= pp.tbk && pp.mbk <= pp.tbk,
                "{pp:?}"
            );
        }
        assert!(p.tg <= p.te);
    }

    #[test]
    fn write_creates_a_file_with_the_same_text() {
        let p = two_sites();
        let path =
            std::env::temp_dir().join(format!("mod-alloc-dhat-write-{}.json", std::process::id()));
        write(&p, &path).unwrap();
        let back = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back, to_string(&p));
    }

    #[test]
    fn write_reports_a_missing_directory() {
        let path = std::env::temp_dir()
            .join("mod-alloc-no-such-dir-7f3a")
            .join("x.json");
        assert_eq!(
            write(&two_sites(), &path).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn strings_are_escaped_as_json() {
        let mut p = two_sites();
        p.cmd = "prog \"quoted\"\n\\x".into();
        p.pps[0].frames[0].function = Some("weird\"name\n".into());
        let v: Value = serde_json::from_str(&to_string(&p)).unwrap();
        assert_eq!(v["cmd"], "prog \"quoted\"\n\\x");
        assert!(v["ftbl"][1].as_str().unwrap().contains("weird\"name\n"));
    }

    /// Where the viewer check (`scripts/dhat-viewer-check`) finds the sample files.
    pub(crate) fn artefact_dir() -> std::path::PathBuf {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join("target")
            });
        target.join("mod-alloc").join("dhat-samples")
    }

    #[test]
    fn writes_synthetic_profiles_for_the_viewer_check() {
        let dir = artefact_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let heap = synthetic(60, 8, 5_000, 21);
        let mut merged = synthetic(30, 5, 2_000, 22);
        let copies: Vec<ProgramPoint> = merged.pps.iter().step_by(2).cloned().collect();
        merged.pps.extend(copies);
        let mut ad_hoc = synthetic(25, 4, 1_000, 23);
        ad_hoc.mode = Mode::AdHoc;
        let mut recursive = two_sites();
        let rec = frame(0x400, "demo::walk", "src/tree.rs", 9);
        recursive
            .pps
            .push(pp(vec![rec.clone(), rec.clone(), rec, main_frame()], 64, 2));
        for (name, p) in [
            ("heap", heap),
            ("merged", merged),
            ("ad-hoc", ad_hoc),
            ("recursive", recursive),
        ] {
            let path = dir.join(format!("synthetic-{name}.json"));
            write(&p, &path).unwrap();
            let back: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            assert_eq!(back, to_value(&p), "{}", path.display());
        }
    }

    /// Measures writing 10,000 sites with 1,000,000 blocks and 40-frame stacks (38 of
    /// them distinct per site: the worst case for the frame table), and leaves the
    /// file in `target/mod-alloc/dhat-samples/`.
    /// `cargo test --release -p mod-alloc --features dhat-compat -- --ignored --nocapture write_time`
    #[test]
    #[ignore = "timing run, prints the time; no speed goal in tests"]
    fn write_time_for_ten_thousand_sites() {
        let p = synthetic(10_000, 40, 2_000_000, 99);
        let blocks: u64 = p.pps.iter().map(|pp| pp.tbk).sum();
        // Kept (in target/) so the viewer check can load a large file too.
        std::fs::create_dir_all(artefact_dir()).unwrap();
        let path = artefact_dir().join("large-10k-sites.json");
        let mut times = Vec::new();
        for _ in 0..5 {
            let start = std::time::Instant::now();
            write(&p, &path).unwrap();
            times.push(start.elapsed());
        }
        let size = std::fs::metadata(&path).unwrap().len();
        let start = std::time::Instant::now();
        let text = to_string(&p);
        let as_string = start.elapsed();
        let start = std::time::Instant::now();
        let table = Table::build(&p);
        let build = start.elapsed();
        times.sort();
        println!(
            "frame table and merge alone: {:?} for {} ftbl strings",
            build,
            table.ftbl.len()
        );
        println!(
            "10,000 pps x 40 frames, {blocks} blocks, {size} bytes: write() median {:?} (min {:?}, max {:?}); to_string() {:?} for {} bytes",
            times[2], times[0], times[4], as_string, text.len()
        );
    }
}
