//! Tests of the frame-pointer walk: fake stacks (hand-made cases and property checks
//! over many seeds: every read stays in bounds and the walk stops exactly where the
//! chain breaks) and the live stack (known call chains, deep recursion, a tiny stack,
//! hand-forged frames with bogus saved frame pointers and, on aarch64, signed return
//! addresses).
//!
//! `scripts/test-no-frame-pointers` builds these without frame pointers and sets
//! `MOD_ALLOC_TEST_NO_FRAME_POINTERS`: then the live tests still run every capture (it
//! must not crash) but only check the depth bound, since the chain is garbage.
// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use std::cell::RefCell;
use std::collections::HashMap;

/// False when built by `scripts/test-no-frame-pointers`.
const FRAME_POINTERS: bool = option_env!("MOD_ALLOC_TEST_NO_FRAME_POINTERS").is_none();

// ---------------------------------------------------------------------------------
// Fake stacks
// ---------------------------------------------------------------------------------

/// SplitMix64: a small deterministic generator, so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.next() % one_in == 0
    }
}

/// Bits a fake "pointer authentication" puts in return addresses and `code_address`
/// strips, like a 48-bit virtual address space does on aarch64.
const FAKE_PAC_BITS: usize = 0xffff_0000_0000_0000;

/// A stack made of a word map over `[lo, hi)`; words not in the map read as
/// deterministic garbage. Panics on any read outside the `FrameMemory` contract and
/// records every read.
struct FakeStack {
    lo: usize,
    hi: usize,
    words: HashMap<usize, usize>,
    garbage_seed: u64,
    garbage_near: bool,
    reads: RefCell<Vec<usize>>,
}

impl FakeStack {
    fn new(lo: usize, hi: usize) -> Self {
        FakeStack {
            lo,
            hi,
            words: HashMap::new(),
            garbage_seed: 0,
            garbage_near: false,
            reads: RefCell::new(Vec::new()),
        }
    }

    /// Writes a frame record at `fp`.
    fn record(&mut self, fp: usize, next_fp: usize, ret: usize) {
        self.words.insert(fp, next_fp);
        self.words.insert(fp + WORD, ret);
    }

    fn garbage(&self, addr: usize) -> usize {
        let mut rng = Rng(self.garbage_seed ^ addr as u64);
        let word = rng.next() as usize;
        if self.garbage_near && rng.chance(2) {
            // Plausible-looking: near the address, either side, any alignment.
            addr.wrapping_add(word % 512).wrapping_sub(128)
        } else {
            word
        }
    }

    fn walk_into(&self, fp: usize, out: &mut [usize]) -> usize {
        self.walk_predicted(fp, out, &Chain::new())
    }

    /// The walk with `chain`'s prediction (and teaching it); its result in `out`.
    fn walk_predicted(&self, fp: usize, out: &mut [usize], chain: &Chain) -> usize {
        self.walk_with(fp, out, chain).0
    }

    /// [`FakeStack::walk_predicted`], also saying whether the walk was the chain's
    /// again (`same`: `out` was filled from the chain).
    fn walk_with(&self, fp: usize, out: &mut [usize], chain: &Chain) -> (usize, bool) {
        self.reads.borrow_mut().clear();
        let out = as_uninit(out);
        let walked = walk(self, fp, out.len(), out, chain);
        (walked.materialise(chain, out), walked.same)
    }
}

impl FrameMemory for FakeStack {
    fn bounds(&self) -> (usize, usize) {
        (self.lo, self.hi)
    }

    unsafe fn read_word(&self, addr: usize) -> usize {
        assert!(
            addr % WORD == 0
                && addr >= self.lo
                && addr.checked_add(WORD).is_some_and(|end| end <= self.hi),
            "read at {addr:#x} outside the contract: bounds [{:#x}, {:#x})",
            self.lo,
            self.hi
        );
        self.reads.borrow_mut().push(addr);
        match self.words.get(&addr) {
            Some(&word) => word,
            None => self.garbage(addr),
        }
    }

    fn code_address(&self, saved: usize) -> usize {
        saved & !FAKE_PAC_BITS
    }
}

const LO: usize = 0x7ff0_0000_0000;
const HI: usize = LO + (8 << 20);

/// A valid chain of `n` records, 64 bytes apart from `LO + 0x100`, returning to
/// `0x1000 + i`; the last saved fp is null. Returns the records' addresses.
fn chain(mem: &mut FakeStack, n: usize) -> Vec<usize> {
    let fps: Vec<usize> = (0..n).map(|i| LO + 0x100 + 64 * i).collect();
    for (i, &fp) in fps.iter().enumerate() {
        let next = fps.get(i + 1).copied().unwrap_or(0);
        mem.record(fp, next, 0x1000 + i);
    }
    fps
}

fn rets(n: usize) -> Vec<usize> {
    (0..n).map(|i| 0x1000 + i).collect()
}

#[test]
fn walk_follows_a_valid_chain_to_the_null_frame() {
    let mut mem = FakeStack::new(LO, HI);
    let fps = chain(&mut mem, 5);
    let mut out = [0; 16];
    let n = mem.walk_into(fps[0], &mut out);
    assert_eq!(out[..n], rets(5)[..]);
}

#[test]
fn walk_stops_at_the_length_of_out() {
    let mut mem = FakeStack::new(LO, HI);
    let fps = chain(&mut mem, 10);
    let mut out = [0; 3];
    assert_eq!(mem.walk_into(fps[0], &mut out), 3);
    assert_eq!(out[..], rets(3)[..]);
    assert_eq!(mem.walk_into(fps[0], &mut []), 0);
}

#[test]
fn walk_writes_only_the_slots_it_counts() {
    // The hook's buffer is not zeroed: what lies past the count must be untouched.
    const POISON: usize = 0x5a5a_5a5a;
    let mut mem = FakeStack::new(LO, HI);
    let fps = chain(&mut mem, 4);
    let mut out = [POISON; 16];
    let n = mem.walk_into(fps[0], &mut out);
    assert_eq!(n, 4);
    assert_eq!(out[..n], rets(4)[..]);
    assert!(out[n..].iter().all(|&w| w == POISON));
}

#[test]
fn walk_stops_at_max_depth_however_long_out_is() {
    let mut mem = FakeStack::new(LO, HI);
    let fps = chain(&mut mem, MAX_DEPTH + 10);
    let mut out = vec![0; MAX_DEPTH + 10];
    assert_eq!(mem.walk_into(fps[0], &mut out), MAX_DEPTH);
    assert_eq!(out[..MAX_DEPTH], rets(MAX_DEPTH)[..]);
}

#[test]
fn walk_stops_at_a_loop() {
    let mut mem = FakeStack::new(LO, HI);
    let fps = chain(&mut mem, 5);
    mem.record(fps[2], fps[2], 0x1002); // points at itself
    let mut out = [0; 16];
    assert_eq!(mem.walk_into(fps[0], &mut out), 3);
    mem.record(fps[2], fps[1], 0x1002); // points back down
    assert_eq!(mem.walk_into(fps[0], &mut out), 3);
    assert_eq!(out[..3], rets(3)[..]);
}

#[test]
fn walk_stops_at_a_misaligned_fp() {
    let mut mem = FakeStack::new(LO, HI);
    let fps = chain(&mut mem, 5);
    let mut out = [0; 16];
    assert_eq!(mem.walk_into(fps[0] + 4, &mut out), 0);
    mem.record(fps[1], fps[2] + 1, 0x1001);
    assert_eq!(mem.walk_into(fps[0], &mut out), 2);
}

#[test]
fn walk_accepts_an_fp_aligned_to_the_word_only() {
    let mut mem = FakeStack::new(LO, HI);
    mem.record(LO + 8, LO + 40, 0x1000);
    mem.record(LO + 40, 0, 0x1001);
    let mut out = [0; 4];
    assert_eq!(mem.walk_into(LO + 8, &mut out), 2);
}

#[test]
fn aligned_jump_check_is_alignment_and_bound_together() {
    let mut deltas = vec![0, 1, WORD - 1, WORD, WORD + 1, 2 * WORD, 2 * WORD + 4];
    for base in [MAX_FRAME_BYTES, usize::MAX, usize::MAX - WORD + 1, 1 << 63] {
        deltas.extend((0..=2 * WORD).map(|k| base.wrapping_sub(WORD).wrapping_add(k)));
    }
    let mut rng = Rng(7);
    deltas.extend((0..10_000).map(|_| rng.next() as usize >> rng.range(0, 64)));
    for d in deltas {
        assert_eq!(
            is_aligned_jump(d),
            d % WORD == 0 && d <= MAX_FRAME_BYTES,
            "delta {d:#x}"
        );
    }
}

#[test]
fn walk_rejects_a_start_fp_outside_the_bounds() {
    let mut mem = FakeStack::new(LO, HI);
    mem.record(LO, 0, 0x1000);
    let mut out = [0; 4];
    assert_eq!(mem.walk_into(LO - 16, &mut out), 0);
    assert_eq!(mem.walk_into(HI, &mut out), 0);
    assert_eq!(mem.walk_into(0, &mut out), 0);
    assert_eq!(mem.walk_into(LO, &mut out), 1);
    assert!(mem
        .reads
        .borrow()
        .iter()
        .all(|&a| a == LO || a == LO + WORD));
}

#[test]
fn walk_stops_before_a_record_crossing_the_stack_top() {
    let mut mem = FakeStack::new(LO, HI);
    mem.record(HI - 32, HI - 16, 0x1000);
    mem.record(HI - 16, HI - 8, 0x1001); // the last record that fits
    let mut out = [0; 4];
    assert_eq!(mem.walk_into(HI - 32, &mut out), 2);
    assert_eq!(
        mem.reads.borrow().len(),
        4,
        "HI - 8 must not be read as a record"
    );
}

#[test]
fn walk_accepts_a_jump_of_max_frame_bytes_and_no_more() {
    let mut mem = FakeStack::new(LO, HI);
    mem.record(LO, LO + MAX_FRAME_BYTES, 0x1000);
    mem.record(LO + MAX_FRAME_BYTES, 0, 0x1001);
    let mut out = [0; 4];
    assert_eq!(mem.walk_into(LO, &mut out), 2);
    mem.record(LO, LO + MAX_FRAME_BYTES + WORD, 0x1000);
    mem.record(LO + MAX_FRAME_BYTES + WORD, 0, 0x1001);
    assert_eq!(mem.walk_into(LO, &mut out), 1);
}

#[test]
fn walk_stops_at_a_null_return_address() {
    let mut mem = FakeStack::new(LO, HI);
    let fps = chain(&mut mem, 5);
    mem.record(fps[3], fps[4], 0);
    let mut out = [0; 16];
    assert_eq!(mem.walk_into(fps[0], &mut out), 3);
    // A return address that is only authentication bits is null too.
    mem.record(fps[1], fps[2], FAKE_PAC_BITS);
    assert_eq!(mem.walk_into(fps[0], &mut out), 1);
}

#[test]
fn walk_strips_pointer_authentication_bits() {
    let mut mem = FakeStack::new(LO, HI);
    mem.record(LO, LO + 16, 0x00ab_0000_0000_1000);
    mem.record(LO + 16, 0, 0xff00_0000_0000_2000);
    let mut out = [0; 4];
    assert_eq!(mem.walk_into(LO, &mut out), 2);
    assert_eq!(out[..2], [0x1000, 0x2000]);
}

#[test]
fn walk_at_the_top_of_the_address_space_does_not_overflow() {
    let hi = usize::MAX - 7; // word-aligned; `hi + 8` would overflow
    let lo = hi - 4096;
    let mut mem = FakeStack::new(lo, hi);
    mem.record(hi - 48, hi - 16, 0x1000);
    mem.record(hi - 16, usize::MAX - 7, 0x1001);
    let mut out = [0; 4];
    assert_eq!(mem.walk_into(hi - 48, &mut out), 2);
    mem.record(hi - 16, usize::MAX, 0x1001);
    assert_eq!(mem.walk_into(hi - 48, &mut out), 2);
    assert_eq!(mem.walk_into(usize::MAX - 7, &mut out), 0);
}

/// How a generated chain is broken.
#[derive(Clone, Copy, Debug)]
enum Break {
    /// The saved fp of record `j` is null.
    NullFp,
    /// ... points at record `j` itself.
    SelfLoop,
    /// ... points below record `j` (an earlier record, or anywhere lower).
    Backwards,
    /// ... is not word-aligned.
    Misaligned,
    /// ... is in bounds but more than `MAX_FRAME_BYTES` above.
    TooFar,
    /// ... leaves no room for a record below `hi`.
    PastTop,
    /// The return address of record `j` is null (maybe with auth bits).
    NullReturn,
}

const BREAKS: [Break; 7] = [
    Break::NullFp,
    Break::SelfLoop,
    Break::Backwards,
    Break::Misaligned,
    Break::TooFar,
    Break::PastTop,
    Break::NullReturn,
];

/// A random stack with a valid chain of `k` records (maybe broken at record `j`), the
/// start fp, and the return addresses the walk must produce.
fn generated_stack(seed: u64) -> (FakeStack, usize, Vec<usize>, String) {
    let mut rng = Rng(seed);
    // Anywhere in the address space, up to its very top.
    let size = WORD * rng.range(2, (6 << 20) / WORD);
    let lo = match rng.next() % 4 {
        0 => usize::MAX - size - WORD * rng.range(0, 4),
        1 => WORD * rng.range(0, 1024),
        _ => WORD * rng.range(0, (usize::MAX - size) / WORD),
    } & !(WORD - 1);
    let hi = lo + size;
    let mut mem = FakeStack::new(lo, hi);
    mem.garbage_seed = rng.next();
    mem.garbage_near = rng.chance(2);

    // Records at strictly increasing, mostly 16-aligned addresses.
    let mut fps = Vec::new();
    let mut fp = lo + WORD * rng.range(0, 64.min(size / WORD));
    let k_max = rng.range(0, 90);
    while fps.len() < k_max && fp <= hi && hi - fp >= 2 * WORD {
        fps.push(fp);
        let gap = if rng.chance(16) {
            WORD * rng.range(2, (MAX_FRAME_BYTES / WORD) + 1) // up to the limit
        } else {
            WORD * rng.range(2, 64)
        };
        match fp.checked_add(gap) {
            Some(next) => fp = next,
            None => break,
        }
    }
    let k = fps.len();
    let mut expected = Vec::new();
    for (i, &fp) in fps.iter().enumerate() {
        let ret = rng.range(1, usize::MAX) & !FAKE_PAC_BITS;
        let ret = if ret == 0 { 1 } else { ret };
        let signed = ret | (rng.next() as usize & FAKE_PAC_BITS);
        mem.record(fp, fps.get(i + 1).copied().unwrap_or(0), signed);
        expected.push(ret);
    }

    let mut what = format!("seed {seed}: {k} records in [{lo:#x}, {hi:#x})");
    if k > 0 && rng.chance(2) {
        let j = rng.range(0, k);
        let fp = fps[j];
        let brk = BREAKS[rng.range(0, BREAKS.len())];
        let ret = mem.words[&(fp + WORD)];
        let next = match brk {
            Break::NullFp => Some(0),
            Break::SelfLoop => Some(fp),
            Break::Backwards => Some(if j > 0 && rng.chance(2) {
                fps[rng.range(0, j)]
            } else if fp == 0 {
                0
            } else {
                fp - WORD * rng.range(1, 1 + fp / WORD)
            }),
            Break::Misaligned => Some(fp + 2 * WORD + rng.range(1, WORD)),
            Break::TooFar => fp
                .checked_add(MAX_FRAME_BYTES + WORD * rng.range(1, 64))
                .filter(|&far| far <= hi - 2 * WORD),
            Break::PastTop => Some(hi - WORD * rng.range(0, 2)).filter(|&top| top > fp),
            Break::NullReturn => None,
        };
        match (brk, next) {
            (Break::NullReturn, _) => {
                mem.record(fp, mem.words[&fp], rng.next() as usize & FAKE_PAC_BITS);
                expected.truncate(j);
            }
            (_, Some(next)) => {
                mem.record(fp, next, ret);
                expected.truncate(j + 1);
            }
            (_, None) => {} // this break cannot be made here: the chain stays valid
        }
        what = format!("{what}, broken at record {j} by {brk:?}");
    }
    // No record: start where no record can be.
    let start = fps.first().copied().unwrap_or(hi);
    (mem, start, expected, what)
}

#[test]
fn random_chains_walk_exactly_to_their_break_and_never_read_out_of_bounds() {
    let mut broken = 0;
    for seed in 0..4000 {
        let (mem, start, expected, what) = generated_stack(seed);
        let out_len = Rng(seed ^ 0xabcd).range(0, MAX_DEPTH + 20);
        let mut out = vec![0; out_len];
        let n = mem.walk_into(start, &mut out);
        let want = expected.len().min(out_len).min(MAX_DEPTH);
        assert_eq!(n, want, "{what}, out.len() {out_len}");
        assert_eq!(out[..n], expected[..n], "{what}");
        if what.contains("broken") {
            broken += 1;
        }
    }
    assert!(broken > 1000, "only {broken} broken chains generated");
}

#[test]
fn random_garbage_stacks_give_checked_chains_and_never_read_out_of_bounds() {
    for seed in 0..4000 {
        let mut rng = Rng(seed);
        let size = WORD * rng.range(2, 1 << 16);
        let lo = WORD * rng.range(0, (usize::MAX - size) / WORD);
        let mut mem = FakeStack::new(lo, lo + size);
        mem.garbage_seed = rng.next();
        mem.garbage_near = true;
        // Mostly inside, sometimes outside or misaligned.
        let start = lo.wrapping_add(rng.range(0, size + 64)).wrapping_sub(32);
        let mut out = vec![0; rng.range(0, MAX_DEPTH + 20)];
        let n = mem.walk_into(start, &mut out);
        assert!(n <= out.len().min(MAX_DEPTH), "seed {seed}");

        // The reads come in pairs (fp, fp + WORD), fps strictly increasing, each
        // accepted record's return address written in order, none of them null.
        let reads = mem.reads.borrow();
        assert_eq!(reads.len() % 2, 0, "seed {seed}");
        let fps: Vec<usize> = reads.chunks(2).map(|pair| pair[0]).collect();
        for (i, pair) in reads.chunks(2).enumerate() {
            assert_eq!(pair[1], pair[0] + WORD, "seed {seed}");
            if i > 0 {
                assert!(fps[i] > fps[i - 1], "seed {seed}: not increasing");
                assert!(fps[i] - fps[i - 1] <= MAX_FRAME_BYTES, "seed {seed}");
                assert_eq!(
                    mem.garbage(fps[i - 1]),
                    fps[i],
                    "seed {seed}: not the saved fp"
                );
            }
        }
        assert!(fps.len() == n || fps.len() == n + 1, "seed {seed}");
        for (i, &ret) in out[..n].iter().enumerate() {
            assert_ne!(ret, 0, "seed {seed}");
            assert_eq!(
                ret,
                mem.garbage(fps[i] + WORD) & !FAKE_PAC_BITS,
                "seed {seed}"
            );
        }
    }
}

/// A chain predicting `fps` (its first `CHAIN_LEN`).
fn predicting(fps: &[usize]) -> Chain {
    let chain = Chain::new();
    for (cell, &fp) in chain.fps.iter().zip(fps) {
        cell.set(fp);
    }
    chain.len.set(fps.len().min(CHAIN_LEN));
    chain
}

/// Ways a stack can change between two walks that share a chain.
fn mutate(rng: &mut Rng, mem: &mut FakeStack, visited: &[usize]) -> String {
    if visited.is_empty() {
        return "nothing to change".into();
    }
    let fp = visited[rng.range(0, visited.len())];
    match rng.next() % 5 {
        0 => "unchanged".into(),
        1 => {
            let ret = rng.next() as usize;
            mem.words.insert(fp + WORD, ret);
            format!("return address at {fp:#x} now {ret:#x}")
        }
        2 => {
            // Another saved fp: the next record, one a little further, garbage, or
            // one below.
            let next = match rng.next() % 4 {
                0 => visited.iter().copied().find(|&v| v > fp).unwrap_or(0),
                1 => fp + WORD * rng.range(2, 64),
                2 => rng.next() as usize,
                _ => fp.saturating_sub(WORD * rng.range(1, 8)),
            };
            mem.words.insert(fp, next);
            format!("saved fp at {fp:#x} now {next:#x}")
        }
        3 => {
            mem.words.insert(fp + WORD, 0);
            format!("null return address at {fp:#x}")
        }
        _ => {
            mem.words.remove(&fp);
            mem.words.remove(&(fp + WORD));
            format!("record at {fp:#x} now garbage")
        }
    }
}

#[test]
fn random_stacks_walked_with_a_learned_chain_read_and_return_what_plain_walks_do() {
    let mut same_walks = 0;
    for seed in 0..3000 {
        let (mut mem, start, _, what) = generated_stack(seed);
        let mut rng = Rng(seed ^ 0x5eed);
        let out_len = rng.range(0, MAX_DEPTH + 20);
        // A walk teaches a chain the records it read.
        let chain = Chain::new();
        mem.walk_predicted(start, &mut vec![0; out_len], &chain);
        let first_reads = mem.reads.borrow().clone();
        let learned: Vec<usize> = chain.fps[..chain.len.get()].iter().map(Cell::get).collect();
        let read: Vec<usize> = first_reads
            .chunks(2)
            .map(|r| r[0])
            .take(CHAIN_LEN)
            .collect();
        assert_eq!(
            learned, read,
            "{what}: the chain learned other records than were read"
        );

        // The stack changes, and the next walk starts at a record of the last one,
        // or elsewhere; it reads and returns what the plain walk does. A walk that
        // says it is the last one again returns what the last one did.
        let mut previous: Vec<usize> = {
            let mut out = vec![0; out_len];
            let n = mem.walk_into(start, &mut out);
            out.truncate(n);
            out
        };
        for round in 0..4 {
            let change = mutate(&mut rng, &mut mem, &learned);
            let from = match rng.next() % 3 {
                0 => start,
                1 => learned
                    .get(rng.range(0, learned.len().max(1)))
                    .copied()
                    .unwrap_or(start),
                _ => mem.lo + WORD * rng.range(0, 64),
            };
            let mut plain = vec![0; out_len];
            let n = mem.walk_into(from, &mut plain);
            let reads = mem.reads.borrow().clone();
            let mut out = vec![0; out_len];
            let (m, same) = mem.walk_with(from, &mut out, &chain);
            let context = format!("{what}, round {round}: {change}, from {from:#x}");
            assert_eq!((m, &out[..m]), (n, &plain[..n]), "{context}");
            if same {
                assert_eq!(&out[..m], &previous[..], "{context}: not the last walk");
                same_walks += 1;
            }
            previous = out[..m].to_vec();
            assert_eq!(*mem.reads.borrow(), reads, "{context}");
            let relearned: Vec<usize> =
                chain.fps[..chain.len.get()].iter().map(Cell::get).collect();
            let read: Vec<usize> = reads.chunks(2).map(|r| r[0]).take(CHAIN_LEN).collect();
            assert_eq!(
                relearned, read,
                "{context}: the chain learned other records"
            );
        }
    }
    // Unchanged stacks walked again from the same start are replayed.
    assert!(same_walks > 300, "only {same_walks} walks were replayed");
}

#[test]
fn a_right_prediction_reads_through_its_own_addresses_and_is_kept() {
    let mut mem = FakeStack::new(LO, HI);
    let fps = chain(&mut mem, 20);
    let chain = predicting(&fps);
    let mut out = [0; 16];
    assert_eq!(mem.walk_predicted(fps[0], &mut out, &chain), 16);
    assert_eq!(out[..], rets(16)[..]);
    assert_eq!(chain.len.get(), 16);
    let kept: Vec<usize> = chain.fps[..16].iter().map(Cell::get).collect();
    assert_eq!(kept, fps[..16]);
}

#[test]
fn an_unchanged_stack_is_the_same_walk_again_reading_the_same_records() {
    let mut mem = FakeStack::new(LO, HI);
    let fps = chain(&mut mem, 20);
    let learned = Chain::new();
    let mut out = [0; 16];
    assert_eq!(mem.walk_with(fps[0], &mut out, &learned), (16, false));
    let first_reads = mem.reads.borrow().clone();
    let mut again = [0; 16];
    assert_eq!(mem.walk_with(fps[0], &mut again, &learned), (16, true));
    assert_eq!(again, out);
    assert_eq!(again[..], rets(16)[..]);
    assert_eq!(*mem.reads.borrow(), first_reads);
    // Ended by a failed link (the null saved fp of the last record), as well.
    let mut mem = FakeStack::new(LO, HI);
    let fps = chain(&mut mem, 5);
    let learned = Chain::new();
    assert_eq!(mem.walk_with(fps[0], &mut out, &learned), (5, false));
    assert_eq!(mem.walk_with(fps[0], &mut out, &learned), (5, true));
    assert_eq!(out[..5], rets(5)[..]);
}

#[test]
fn any_changed_word_depth_or_bound_makes_the_walk_a_fresh_one() {
    let depth = 8;
    // (what changes, the stack after it, where the walk starts, its depth)
    let cases: Vec<(String, FakeStack, usize, usize)> = {
        let mut cases = Vec::new();
        let mut base = FakeStack::new(LO, HI);
        let fps = chain(&mut base, 12);
        // Every record read, and the one the last saved fp leads to (not read, so
        // changing it changes nothing).
        for k in 0..=depth {
            let mut mem = FakeStack::new(LO, HI);
            chain(&mut mem, 12);
            mem.words.insert(fps[k] + WORD, 0x9000 + k);
            cases.push((format!("return address {k}"), mem, fps[0], depth));
            let mut mem = FakeStack::new(LO, HI);
            chain(&mut mem, 12);
            mem.words.insert(fps[k], fps[k] + 16);
            mem.record(fps[k] + 16, fps[k + 1], 0x8000 + k);
            cases.push((format!("saved fp {k}"), mem, fps[0], depth));
        }
        let mut mem = FakeStack::new(LO, HI);
        chain(&mut mem, 12);
        cases.push(("a deeper walk".into(), mem, fps[0], depth + 1));
        let mut mem = FakeStack::new(LO, HI);
        chain(&mut mem, 12);
        cases.push(("a shallower walk".into(), mem, fps[0], depth - 1));
        let mut mem = FakeStack::new(LO, fps[depth] + WORD);
        chain(&mut mem, 12);
        cases.push(("a lower stack top".into(), mem, fps[0], depth));
        let mut mem = FakeStack::new(LO, HI);
        chain(&mut mem, 12);
        cases.push(("another start".into(), mem, fps[1], depth));
        cases
    };
    for (what, mem, from, walk_depth) in cases {
        let mut original = FakeStack::new(LO, HI);
        let fps = chain(&mut original, 12);
        let learned = Chain::new();
        let mut out = vec![0; depth];
        assert_eq!(
            original.walk_with(fps[0], &mut out, &learned),
            (depth, false)
        );
        let mut plain = vec![0; walk_depth];
        let n = mem.walk_into(from, &mut plain);
        let plain_reads = mem.reads.borrow().clone();
        let mut out = vec![0; walk_depth];
        let (m, same) = mem.walk_with(from, &mut out, &learned);
        let changes_result = (n, &plain[..n]) != (depth, &rets(depth)[..]);
        assert!(!same || !changes_result, "{what}: taken for the same walk");
        if what.starts_with("saved fp") || what.starts_with("return address") {
            let k: usize = what.rsplit(' ').next().unwrap().parse().unwrap();
            // Record `depth` is not read: changing it changes nothing.
            assert_eq!(same, k == depth, "{what}");
        } else {
            assert!(!same, "{what}");
        }
        assert_eq!((m, &out[..m]), (n, &plain[..n]), "{what}");
        assert_eq!(*mem.reads.borrow(), plain_reads, "{what}");
    }
}

#[test]
fn stacks_taking_turns_each_replay_their_own_chain() {
    // Two stacks in one memory, starting at different records; shifted until
    // their first records pick different chains.
    let chains = Chains::new();
    let mut mem = FakeStack::new(LO, HI);
    let mut shift = 0;
    let (a, b) = loop {
        let a = LO + 0x1000 + shift;
        let b = LO + 0x8000 + shift;
        for (i, start) in [a, b].into_iter().enumerate() {
            for k in 0..12 {
                let fp = start + 64 * k;
                mem.record(fp, fp + 64, 0x5000 * (i + 1) + k);
            }
        }
        let (ca, cb) = (
            chains.for_walk_from(&mem, a).1,
            chains.for_walk_from(&mem, b).1,
        );
        if !core::ptr::eq(ca, cb) {
            break (a, b);
        }
        shift += 16;
    };
    let mut results = Vec::new();
    for round in 0..6 {
        let start = if round % 2 == 0 { a } else { b };
        let chain = chains.for_walk_from(&mem, start).1;
        let mut out = [0; 8];
        let (n, same) = mem.walk_with(start, &mut out, chain);
        let mut plain = [0; 8];
        assert_eq!(mem.walk_into(start, &mut plain), n);
        assert_eq!(out, plain, "round {round}");
        // Each stack's first walk is fresh; every later one is its chain's again.
        assert_eq!(same, round >= 2, "round {round}");
        results.push(out);
    }
    assert_ne!(results[0], results[1]);
}

#[test]
fn a_threads_chains_walk_stacks_taking_turns_as_plain_walks_do() {
    // Three stacks in one memory; each walked in turn, over and over, through a
    // thread's chains: the same results and the same reads as plain walks, and
    // from its second turn on each stack is found again (unless two of them share
    // a chain, which the random starts below make unlikely but allowed).
    let mut rng = Rng(7);
    for round in 0..50 {
        let chains = Chains::new();
        let mut mem = FakeStack::new(LO, HI);
        let starts: Vec<usize> = (0..3)
            .map(|i| LO + 0x1000 + 0x4000 * i + 16 * rng.range(0, 64))
            .collect();
        for (i, &start) in starts.iter().enumerate() {
            for k in 0..10 {
                let fp = start + 64 * k;
                let next = if k == 9 { 0 } else { fp + 64 };
                mem.record(fp, next, 0x7000 * (i + 1) + rng.range(0, 4));
            }
        }
        let distinct = {
            let mut ids: Vec<usize> = starts
                .iter()
                .map(|&s| chains.for_walk_from(&mem, s).0)
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len() == starts.len()
        };
        for turn in 0..12 {
            let start = starts[turn % 3];
            let mut plain = [0; 8];
            let n = mem.walk_into(start, &mut plain);
            let plain_reads = mem.reads.borrow().clone();
            mem.reads.borrow_mut().clear();
            let mut out = [0; 8];
            let (chain, walked) = {
                let out = as_uninit(&mut out);
                let (chain, walked) = chains.walk(&mem, start, 8, out);
                walked.materialise(chain, out);
                (chain as *const Chain, walked)
            };
            assert_eq!(
                (walked.n, &out[..walked.n]),
                (n, &plain[..n]),
                "round {round}, turn {turn}"
            );
            // Only words the plain walk reads, and the first record's return
            // address (read to pick a chain).
            let reads = mem.reads.borrow().clone();
            assert!(
                reads
                    .iter()
                    .all(|r| plain_reads.contains(r) || *r == start + WORD),
                "round {round}, turn {turn}: {reads:x?}"
            );
            if distinct && turn >= 3 {
                assert!(walked.same, "round {round}, turn {turn}: not found again");
            }
            assert!(core::ptr::eq(chain, chains.last()));
        }
    }
}

#[test]
fn a_walk_that_would_not_read_its_first_record_takes_chain_zero() {
    let chains = Chains::new();
    let mem = FakeStack::new(LO, HI);
    for fp in [LO - WORD, LO + 1, HI - WORD, HI] {
        let (i, chain) = chains.for_walk_from(&mem, fp);
        assert_eq!(i, 0);
        assert!(core::ptr::eq(chain, &chains.set[0]));
    }
    assert!(mem.reads.borrow().is_empty());
}

#[test]
fn a_walk_ended_by_a_null_return_address_is_never_the_same_again() {
    let mut mem = FakeStack::new(LO, HI);
    let fps = chain(&mut mem, 6);
    mem.record(fps[4], fps[5], 0);
    let learned = Chain::new();
    let mut out = [0; 16];
    assert_eq!(mem.walk_with(fps[0], &mut out, &learned), (4, false));
    assert_eq!(mem.walk_with(fps[0], &mut out, &learned), (4, false));
    assert_eq!(out[..4], rets(4)[..]);
}

/// The live stack, where the walk is supported.
#[cfg(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    any(target_os = "linux", target_os = "android")
))]
mod live {
    use super::*;
    use core::ffi::c_void;
    use std::hint::black_box;
    use std::thread;

    /// Whether `ret` can be a return address inside the function starting at `start`
    /// (functions here are far smaller than this, debug builds included).
    fn returns_into(ret: usize, start: usize) -> bool {
        ret > start && ret - start < 2048
    }

    #[inline(never)]
    fn chain_leaf(out: &mut [usize]) -> usize {
        black_box(capture_words(black_box(out)))
    }

    #[inline(never)]
    fn chain_mid(out: &mut [usize]) -> usize {
        black_box(chain_leaf(black_box(out)))
    }

    #[inline(never)]
    fn chain_top(out: &mut [usize]) -> usize {
        black_box(chain_mid(black_box(out)))
    }

    /// Captures through `chain_top -> chain_mid -> chain_leaf` and checks the first two
    /// frames are `chain_mid` and `chain_top`, in that order.
    fn check_known_chain() {
        let mut out = [0; DEFAULT_DEPTH];
        let n = chain_top(&mut out);
        assert!(n <= DEFAULT_DEPTH);
        if !FRAME_POINTERS {
            return;
        }
        assert!(n >= 3, "only {n} frames: {:x?}", &out[..n]);
        let mid = chain_mid as fn(&mut [usize]) -> usize as usize;
        let top = chain_top as fn(&mut [usize]) -> usize as usize;
        assert!(
            returns_into(out[0], mid),
            "out[0] {:#x} not in chain_mid {mid:#x}",
            out[0]
        );
        assert!(
            returns_into(out[1], top),
            "out[1] {:#x} not in chain_top {top:#x}",
            out[1]
        );
        assert!(out[..n].iter().all(|&ret| ret != 0));
    }

    #[test]
    fn capture_returns_the_callers_innermost_first() {
        check_known_chain();
    }

    /// Every chain of this thread: its records and return addresses, and how many.
    fn all_chains() -> Vec<(Vec<usize>, Vec<usize>, usize)> {
        LAST_CHAINS.with(|cs| {
            cs.set
                .iter()
                .map(|c| {
                    let fps = c.fps[..c.len.get()].iter().map(Cell::get).collect();
                    let rets = c.rets[..c.n.get()].iter().map(Cell::get).collect();
                    (fps, rets, c.n.get())
                })
                .collect()
        })
    }

    #[test]
    fn a_capture_inside_a_capture_leaves_the_chains_alone() {
        let mut out = [0; 8];
        capture_words(&mut out);
        let before = all_chains();
        // As a signal handler's allocation inside the hook sees it.
        LAST_CHAINS.with(|c| c.busy.set(true));
        let n = chain_top(&mut out);
        let during = all_chains();
        // The outer walk's flag is the outer walk's to clear.
        let still_busy = LAST_CHAINS.with(|c| c.busy.replace(false));
        assert!(during == before, "a nested walk taught a chain");
        assert!(still_busy, "a nested walk cleared the outer walk's flag");
        if FRAME_POINTERS {
            assert!(n >= 3, "a nested walk still captures ({n} frames)");
        }
    }

    /// `capture_site` here, resolving to `site` and counting the calls to `resolve`.
    #[inline(never)]
    fn site_here(resolved: &mut Vec<Vec<usize>>, site: u32) -> u32 {
        black_box(capture_site(black_box(DEFAULT_DEPTH), |frames| {
            resolved.push(frames.to_vec());
            site
        }))
    }

    #[test]
    fn a_stack_sited_again_is_resolved_once_and_an_unknown_site_every_time() {
        let mut resolved = Vec::new();
        // Opaque trip counts: the loops stay loops (one call site each) when optimised.
        for _ in 0..black_box(2) {
            for _ in 0..black_box(5) {
                assert_eq!(site_here(&mut resolved, 7), 7);
            }
            // Another stack in between, walked with the same thread's chains.
            let mut other = [0; DEFAULT_DEPTH];
            chain_top(&mut other);
        }
        if FRAME_POINTERS {
            // Once, or twice if the other stack's first record took the same chain.
            assert!(resolved.len() == 1 || resolved.len() == 2, "{resolved:x?}");
            assert!(resolved[0].len() >= 3);
            assert!(resolved.iter().all(|frames| *frames == resolved[0]));
        }
        // On a thread of its own, whose chain has resolved nothing else: without
        // frame pointers the walks see whatever `rbp` holds, and two stacks of
        // garbage may well be the same one (rightly resolved once).
        let unknown = thread::spawn(|| {
            let mut unknown = Vec::new();
            for _ in 0..black_box(3) {
                assert_eq!(site_here(&mut unknown, 0), 0);
            }
            unknown
        })
        .join()
        .unwrap();
        assert_eq!(unknown.len(), 3, "an unknown site was reused");
        if FRAME_POINTERS {
            assert!(unknown.iter().all(|frames| *frames == unknown[0]));
        }
    }

    #[test]
    fn capture_writes_at_most_the_length_of_out() {
        let mut out = [0; 2];
        assert!(chain_top(&mut out) <= 2);
        if FRAME_POINTERS {
            assert_eq!(chain_top(&mut out), 2);
        }
        assert_eq!(chain_top(&mut []), 0);
    }

    #[inline(never)]
    fn recurse(depth: usize, out: &mut [usize]) -> usize {
        if depth == 0 {
            black_box(capture_words(black_box(out)))
        } else {
            black_box(recurse(depth - 1, black_box(out)))
        }
    }

    #[test]
    fn deep_recursion_yields_exactly_the_depth_cap() {
        let handle = thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(|| {
                let mut long = vec![0; MAX_DEPTH + 36];
                let n_long = recurse(10_000, &mut long);
                let mut short = [0; DEFAULT_DEPTH];
                let n_short = recurse(10_000, &mut short);
                (long, n_long, short, n_short)
            })
            .unwrap();
        let (long, n_long, short, n_short) = handle.join().unwrap();
        assert!(n_long <= MAX_DEPTH && n_short <= DEFAULT_DEPTH);
        if FRAME_POINTERS {
            assert_eq!(n_long, MAX_DEPTH);
            assert_eq!(n_short, DEFAULT_DEPTH);
            let start = recurse as fn(usize, &mut [usize]) -> usize as usize;
            assert!(long[..n_long].iter().all(|&ret| returns_into(ret, start)));
            assert_eq!(long[..DEFAULT_DEPTH], short[..]);
        }
    }

    #[test]
    fn a_thread_with_the_smallest_stack_captures_its_callers() {
        let handle = thread::Builder::new()
            .stack_size(16 * 1024)
            .spawn(|| {
                check_known_chain();
                let local = 0u8;
                (stack_bounds::current(), core::ptr::addr_of!(local) as usize)
            })
            .unwrap();
        let (bounds, local) = handle.join().unwrap();
        assert!(
            bounds.lo <= local && local < bounds.hi,
            "{bounds:x?} {local:#x}"
        );
        // Rounded up to the libc minimum (128 KiB on aarch64 glibc), far below 2 MiB.
        assert!(bounds.hi - bounds.lo <= 512 * 1024, "{bounds:x?}");
    }

    #[test]
    fn each_thread_finds_its_own_stack_bounds() {
        let local = 0u8;
        let here = core::ptr::addr_of!(local) as usize;
        let mine = stack_bounds::current();
        assert!(mine.lo <= here && here < mine.hi, "{mine:x?} {here:#x}");
        let sp = arch::stack_pointer();
        assert!(
            mine.lo <= sp && sp <= here,
            "{mine:x?} sp {sp:#x} local {here:#x}"
        );
        assert_eq!(stack_bounds::current(), mine, "cached");
        let theirs = thread::spawn(stack_bounds::current).join().unwrap();
        assert!(
            theirs.hi <= mine.lo || mine.hi <= theirs.lo,
            "{mine:x?} {theirs:x?}"
        );
    }

    /// What a capture from inside the forged frame saw.
    struct Forged {
        out: [usize; 32],
        n: usize,
    }

    extern "C" fn capture_into(ctx: *mut c_void) {
        // SAFETY: `ctx` is the `&mut Forged` passed by `capture_through_forged_frame`,
        // not otherwise used until this returns.
        let forged = unsafe { &mut *ctx.cast::<Forged>() };
        forged.n = capture_words(&mut forged.out);
    }

    /// Captures from a callee of a hand-written frame whose saved fp is
    /// `saved_fp(own_fp, local)`, where `own_fp` is this function's frame pointer (the
    /// correct value) and `local` the address of a local of this function. Returns the
    /// capture, the forging function's address and this function's address.
    ///
    /// Call it with `black_box(saved_fp)`: a constant function argument lets LLVM clone
    /// this function per closure, and the clone's address is not the one returned.
    #[inline(never)]
    fn capture_through_forged_frame(saved_fp: fn(usize, usize) -> usize) -> (Forged, usize, usize) {
        let own_fp = arch::frame_pointer();
        let local = 0u8;
        let forged_fp = saved_fp(own_fp, core::ptr::addr_of!(local) as usize);
        let mut forged = Forged { out: [0; 32], n: 0 };
        let ctx = core::ptr::addr_of_mut!(forged).cast::<c_void>();
        let forger = arch::call_through_forged_frame(forged_fp, capture_into, black_box(ctx));
        let me = capture_through_forged_frame
            as fn(fn(usize, usize) -> usize) -> (Forged, usize, usize) as usize;
        (black_box(forged), forger, me)
    }

    /// Checks a capture through a forged frame with the given saved fp: it must see the
    /// forging function, then this test's function, and stop there.
    fn check_forged_frame_stops(saved_fp: fn(usize, usize) -> usize) {
        let (forged, forger, me) = capture_through_forged_frame(black_box(saved_fp));
        assert!(forged.n <= 32);
        if !FRAME_POINTERS {
            return;
        }
        let out = &forged.out[..forged.n];
        assert_eq!(out.len(), 2, "{out:x?}");
        check_forger_then_caller(out, forger, me);
    }

    /// The first two frames of a capture through the forged frame: into the
    /// forging function, then into this test's function.
    fn check_forger_then_caller(out: &[usize], forger: usize, me: usize) {
        assert!(
            returns_into(out[0], forger),
            "out[0] {:#x} not in {forger:#x}",
            out[0]
        );
        // On aarch64 this return address was saved signed: the walk must have stripped it.
        assert!(
            returns_into(out[1], me),
            "out[1] {:#x} not in {me:#x}",
            out[1]
        );
    }

    #[test]
    fn forged_frame_with_the_right_saved_fp_is_walked_through() {
        let (forged, forger, me) = capture_through_forged_frame(black_box(|own_fp, _| own_fp));
        if FRAME_POINTERS {
            let out = &forged.out[..forged.n];
            assert!(out.len() >= 3, "{out:x?}");
            check_forger_then_caller(out, forger, me);
        }
    }

    #[test]
    fn forged_frame_with_a_null_saved_fp_ends_the_stack() {
        check_forged_frame_stops(|_, _| 0);
    }

    #[test]
    fn forged_frame_with_a_misaligned_saved_fp_stops_the_walk() {
        check_forged_frame_stops(|own_fp, _| own_fp + 4);
    }

    #[test]
    fn forged_frame_pointing_down_the_stack_stops_the_walk() {
        check_forged_frame_stops(|_, local| local - 4096);
    }

    #[test]
    fn forged_frame_pointing_past_the_stack_top_stops_the_walk() {
        check_forged_frame_stops(|_, _| usize::MAX - 15);
    }

    #[test]
    fn forged_frame_with_garbage_saved_fp_stops_the_walk() {
        check_forged_frame_stops(|_, _| 0xdead_beef_0000);
    }

    #[inline(never)]
    fn below_a_big_frame() -> (Forged, usize, usize) {
        // 3 MiB of locals between this frame's record and its caller's: a saved fp
        // 2 MiB up lies inside the stack, in this very frame, but is too far a jump.
        let mut big = [0u8; 3 << 20];
        black_box(&mut big);
        let result = capture_through_forged_frame(black_box(|own_fp, _| own_fp + (2 << 20)));
        black_box(&big);
        result
    }

    #[test]
    fn forged_frame_jumping_more_than_max_frame_bytes_stops_the_walk() {
        let handle = thread::Builder::new()
            .stack_size(16 << 20)
            .spawn(below_a_big_frame)
            .unwrap();
        let (forged, forger, me) = handle.join().unwrap();
        if FRAME_POINTERS {
            let out = &forged.out[..forged.n];
            assert_eq!(out.len(), 2, "{out:x?}");
            assert!(
                returns_into(out[0], forger) && returns_into(out[1], me),
                "{out:x?}"
            );
        }
    }

    #[cfg(target_arch = "aarch64")]
    #[test]
    fn strip_pac_recovers_a_signed_return_address() {
        let code = chain_mid as fn(&mut [usize]) -> usize as usize + 8;
        let local = 0u8;
        let signed = arch::sign_pac(code, core::ptr::addr_of!(local) as usize);
        if arch::has_pointer_auth() {
            assert_ne!(signed, code, "signing must set authentication bits");
        } else {
            assert_eq!(
                signed, code,
                "no pointer authentication: signing is a no-op"
            );
        }
        eprintln!("pointer authentication: {}", arch::has_pointer_auth());
        assert_eq!(arch::strip_pac(signed), code);
        assert_eq!(arch::strip_pac(code), code);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn strip_pac_is_the_identity_on_x86_64() {
        assert_eq!(arch::strip_pac(0x7fff_1234_5678), 0x7fff_1234_5678);
    }
}
