//! Call-stack capture at allocation time: a validated frame-pointer walk.
//!
//! Runs inside the global allocator on every tracked allocation, so everything here is
//! hook-safe: no allocation through the Rust allocator, no lock of ours, no panic, no
//! unwinding. The arch files only touch registers (`frame_pointer`, `stack_pointer`,
//! `strip_pac`); this file does every check, once, for both arches.
//!
//! # Frame records
//!
//! With frame pointers (x86_64 `rbp`, aarch64 `x29`) every frame holds a two-word record
//! and the frame pointer register points at the innermost one:
//!
//! ```text
//!  hi ─ top of the thread's stack
//!        ...
//!        │ return address │  fp1 + 8  ──► out[1]
//!  fp1 ─►│ saved fp (fp2) │  fp1      ──► next record, higher still, or 0 at the end
//!        │ ...            │  the caller's locals
//!        │ return address │  fp0 + 8  ──► out[0]
//!  fp0 ─►│ saved fp (fp1) │  fp0 = rbp / x29 of the function `capture` is inlined into
//!        │ ...            │  its locals (on aarch64 they may also sit above the record)
//!  sp  ─ stack pointer where `capture` runs
//! ```
//!
//! # Invariants
//!
//! Before a record at `fp` is read, the walk checks (in [`walk`]):
//!
//! - **in bounds**: `lo <= fp` and `fp + 2 words <= hi`, where `hi` is the top of the
//!   current thread's stack and `lo` the current stack pointer, so everything in
//!   `[lo, hi)` is mapped, even on the main thread, whose stack mapping only grows on
//!   demand below the stack pointer. (Not the address of a local: on aarch64 LLVM often
//!   puts locals *above* the frame record, which would reject a valid first record.)
//! - **aligned** to the word (8 bytes; records are 16-aligned on both ABIs, but 8 is
//!   what reading a word needs, and being lenient keeps odd but valid chains);
//! - **strictly increasing**: each saved fp is above the record holding it, so a loop
//!   or a chain pointing back down is cut;
//! - **bounded jump**: the next record is at most [`MAX_FRAME_BYTES`] (1 MiB) above.
//!   Safety does not need it (the bounds do), but a garbage saved fp that happens to
//!   land in the stack would otherwise be followed; real frames are far smaller (std's
//!   default thread stack is 2 MiB), and a frame above 1 MiB only truncates the stack.
//!
//! The walk stops at a null saved fp (the outermost frame: `_start` and glibc's thread
//! start clear the frame pointer), a null return address, the first failed check, or the
//! depth cap `min(out.len(), MAX_DEPTH)`. Any input therefore yields a short stack and
//! never a fault: code built without frame pointers (`rbp`/`x29` used as a general
//! register), corrupted chains, signal-handler frames. Code running on another stack
//! than the thread's own (a `sigaltstack` signal handler, a coroutine) gets an empty
//! stack, because `sp` is then outside the thread's `[lo, hi)`.
//!
//! # Predicted walks
//!
//! Following the chain is a series of dependent loads, each waiting for the one before
//! (about a nanosecond per frame here). Each thread remembers where its last walk found
//! its records (a [`Chain`]); while the walk finds each record where it was last time,
//! it reads it through the remembered address, which the processor knows early, and
//! only checks that the chain indeed leads there. The checks above are properties of
//! the records' addresses, which the remembered walk already made for the same
//! addresses; the first record off the prediction is checked again. The walk reads the
//! same records, in the same order, as without a prediction.
//!
//! The chain also keeps the return addresses the last walk returned. When every record
//! holds the same two words as then and the walk ends the same way (same depth cap,
//! same stack top), the result is the same: the walk writes nothing, and
//! [`capture_site`] hands back the site it resolved last time, with no lookup. An
//! allocation in a loop costs one compare per word read.
//!
//! A thread keeps [`CHAINS`] of them ([`Chains`]), one per key of a stack's first
//! record (its address and return address), so that stacks taking turns (a parser's,
//! a loop allocating from a few places) each find their own last walk. A walk tries
//! the last walk's chain first, which needs no read to pick; only when that is not
//! its stack does it read its first record's return address to pick another.
//!
//! # Stack bounds
//!
//! Each thread's `[lo, hi)` is cached in a const-initialised `thread_local!` `Cell`
//! (no destructor, no registration), computed on the thread's first capture with
//! `pthread_getattr_np` + `pthread_attr_getstack`. That first call goes into libc: on the
//! main thread glibc reads `/proc/self/maps` with stdio, which may call *libc's* `malloc`
//! (never the Rust global allocator, so never this hook again) and takes glibc's
//! internal per-thread lock. Every later capture on the thread is one TLS read. When the
//! bounds cannot be found (another OS, a failing libc call) captures are empty.
//!
//! Supported: x86_64 and aarch64 on Linux/Android. Elsewhere `capture` returns 0.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(target_arch = "x86_64")]
#[path = "x86_64.rs"]
mod arch;

#[cfg(target_arch = "aarch64")]
#[path = "aarch64.rs"]
mod arch;

/// Frames captured per allocation unless configured otherwise.
pub(crate) const DEFAULT_DEPTH: usize = 16;

/// The most frames `capture` ever writes, whatever the length of `out`.
pub(crate) const MAX_DEPTH: usize = 64;

/// The largest accepted distance between two consecutive frame records (see the module
/// docs for the choice).
const MAX_FRAME_BYTES: usize = 1 << 20;

use core::cell::Cell;
use core::mem::MaybeUninit;

/// Bytes in a stack word.
const WORD: usize = core::mem::size_of::<usize>();

// `is_aligned_jump` divides by rotating: both must be powers of two / multiples.
const _: () = assert!(WORD.is_power_of_two() && MAX_FRAME_BYTES % WORD == 0);

/// Fills `out` with the return addresses of the current call stack, innermost first:
/// `out[0]` is where the function that this call is inlined into returns to. Returns how
/// many were written: at most `min(out.len(), MAX_DEPTH)`, and 0 where unsupported.
///
/// `out` may be uninitialised (the hook passes a stack buffer it does not zero): the
/// returned count `n` promises that `out[..n]` has been written; the rest is untouched.
///
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
#[cfg_attr(not(test), allow(dead_code))] // the hook uses `capture_site`
pub(crate) fn capture(out: &mut [MaybeUninit<usize>]) -> usize {
    with_thread_chain(out.len(), out, &mut |chain, walked, out| {
        walked.materialise(chain, out)
    })
}

/// The site of the current call stack, captured `depth` frames deep (at most
/// [`CHAIN_LEN`]): `resolve` applied to its return addresses (what [`capture`] would
/// write), or, when the walk finds exactly the stack that this thread's last
/// `capture_site` resolved (the same records holding the same words), that call's
/// result again, without calling `resolve`. A result of 0 (an unknown site) is never
/// reused. The addresses stay in the thread's chain: nothing is copied.
///
/// Hook-safe if `resolve` is: no allocation, no lock, no panic.
#[inline(always)]
pub(crate) fn capture_site(depth: usize, resolve: impl FnOnce(&[usize]) -> u32) -> u32 {
    let mut resolve = Some(resolve);
    with_thread_chain(depth.min(CHAIN_LEN), &mut [], &mut |chain, walked, _| {
        if walked.same && chain.site.get() != 0 {
            return chain.site.get();
        }
        // SAFETY: nothing writes `chain`'s addresses until `frames` is dropped: `resolve`
        // cannot reach this chain (a walk inside it, as in a signal handler, gets a chain
        // of its own), and `site` is written after.
        let frames = unsafe { chain.returns(walked.n) };
        // Called once per `with_thread_chain`, so `resolve` is still there.
        let site = resolve.take().map_or(0, |f| f(frames));
        chain.site.set(site);
        site
    })
}

/// [`capture`] into initialised words (tests).
#[cfg(test)]
#[inline(always)]
pub(crate) fn capture_words(out: &mut [usize]) -> usize {
    capture(as_uninit(out))
}

/// Views initialised words as possibly uninitialised ones, for a writer that only ever
/// stores initialised values into them.
#[cfg(test)]
fn as_uninit(out: &mut [usize]) -> &mut [MaybeUninit<usize>] {
    let len = out.len();
    let p = out.as_mut_ptr().cast::<MaybeUninit<usize>>();
    // SAFETY: `MaybeUninit<usize>` has the layout of `usize`, so `p` addresses `len` of
    // them in the same exclusively borrowed allocation; the callers (`capture`, `walk`)
    // only write initialised `usize`s, so `out` stays valid when the borrow ends.
    unsafe { core::slice::from_raw_parts_mut(p, len) }
}

/// Walks the current stack, at most `limit` frames deep, into `out` (as far as it is
/// long) with this thread's [`Chain`], and gives the result to `then` with that chain. A walk nested in another on the same thread (a
/// signal handler allocating inside the hook), or one without usable thread-locals,
/// gets a chain of its own instead, which it neither reads nor leaves anything in.
/// `then` runs once. Where the walk is unsupported it gets an empty result.
///
/// Hook-safe if `then` is: no allocation, no lock, no panic.
#[inline(always)]
fn with_thread_chain<R>(
    limit: usize,
    out: &mut [MaybeUninit<usize>],
    then: &mut impl FnMut(&Chain, Walked, &mut [MaybeUninit<usize>]) -> R,
) -> R {
    #[cfg(all(
        any(target_arch = "x86_64", target_arch = "aarch64"),
        any(target_os = "linux", target_os = "android")
    ))]
    {
        let fp = arch::frame_pointer();
        let sp = arch::stack_pointer();
        let thread = stack_bounds::current();
        if !(thread.lo <= sp && sp < thread.hi) {
            // Bounds unknown, or running on another stack (sigaltstack, coroutine).
            return alone(None, fp, limit, out, then);
        }
        // SAFETY: `[sp, thread.hi)` is the in-use part of this thread's stack, from the
        // stack pointer of this frame up to the top: all of it is mapped, readable and
        // stays so during the walk (only memory below `sp` may change, and nothing else
        // runs on this thread during it).
        let stack = unsafe { LiveStack::new(sp, thread.hi) };
        // The thread's chains have no destructor: `try_with` only fails if
        // thread-locals are unusable, and then the walk goes without.
        let mine = LAST_CHAINS.try_with(|chains| {
            if chains.busy.replace(true) {
                // The outer walk's chain keeps that walk's records.
                return None;
            }
            let (chain, walked) = chains.walk(&stack, fp, limit, out);
            let r = then(chain, walked, out);
            chains.busy.set(false);
            Some(r)
        });
        match mine {
            Ok(Some(r)) => r,
            _ => alone(Some(&stack), fp, limit, out, then),
        }
    }
    #[cfg(not(all(
        any(target_arch = "x86_64", target_arch = "aarch64"),
        any(target_os = "linux", target_os = "android")
    )))]
    {
        let _ = limit;
        then(&Chain::new(), Walked::EMPTY, out)
    }
}

/// [`with_thread_chain`] without the thread's chain: a walk of `stack` from `fp` (none
/// without a stack) with a chain of its own. Out of line: it is rare, and keeps the
/// callers of `capture` small in unoptimised builds.
///
/// Hook-safe if `then` is: no allocation, no lock, no panic.
#[cfg(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    any(target_os = "linux", target_os = "android")
))]
#[cold]
#[inline(never)]
fn alone<R>(
    stack: Option<&LiveStack>,
    fp: usize,
    limit: usize,
    out: &mut [MaybeUninit<usize>],
    then: &mut impl FnMut(&Chain, Walked, &mut [MaybeUninit<usize>]) -> R,
) -> R {
    let lone = Chain::new();
    let walked = match stack {
        Some(stack) => walk(stack, fp, limit, out, &lone),
        None => Walked::EMPTY,
    };
    then(&lone, walked, out)
}

/// Frame records a [`Chain`] remembers: the deepest capture the call-site table keeps.
pub(crate) const CHAIN_LEN: usize = 32;

/// What a thread's last walk found, to predict and recognise the next one.
///
/// A walk is a chain of dependent loads: each record's address is read from the one
/// before, so 16 frames cost 16 load latencies one after another. Allocations made
/// again from the same place find their records at the same addresses, so the walk
/// reads record `k` at the address the last walk found it at, as soon as the
/// prediction says, while checking (in a register compare that the processor
/// predicts, not waits for) that it is indeed where the chain leads. The first
/// mismatch falls back to following the chain.
///
/// A walk that finds every record of the last one holding the same two words, and
/// ends where it ended for the same reason, returns what it returned: it has read
/// those records, and writes nothing (the result is `rets[..n]`, and the site
/// resolved for it is kept in `site`).
///
/// Invariants:
/// - `fps[..len]` are the records one walk on this thread read, in order: each
///   word-aligned and at most `top`, and each link from one to the next passing the
///   walk's checks (strictly increasing, a bounded word-aligned jump). These are
///   properties of the addresses alone, so when the records the walk reaches are at
///   the same addresses, in the same order, they hold again: the walk does not check
///   them again, and reads, in the same order, exactly the records the plain walk
///   would read;
/// - that walk returned `n <= len` return addresses, `rets[..n]` (the records at
///   `fps[..n]` held them; when `n <= CHAIN_LEN`);
/// - `ends` is `Some(saved fp of the last record)` when that walk stopped after
///   record `n - 1` for a reason that depends only on that word, `top` and `limit`
///   (the depth cap, a link check failing, the next record above `top`), and `None`
///   when it stopped otherwise (a null return address, more than `CHAIN_LEN`
///   records, a start outside the stack);
/// - `site` is what `capture_site` resolved `rets[..n]` to (0: none);
/// - a thread's chains are used by one walk at a time (see [`Chains`]), so no chain
///   mixes two walks' records.
pub(crate) struct Chain {
    len: Cell<usize>,
    n: Cell<usize>,
    ends: Cell<Option<usize>>,
    top: Cell<usize>,
    limit: Cell<usize>,
    site: Cell<u32>,
    fps: [Cell<usize>; CHAIN_LEN],
    rets: [Cell<usize>; CHAIN_LEN],
}

#[allow(clippy::declare_interior_mutable_const)] // only to build `Chain::new`
const NO_WORD: Cell<usize> = Cell::new(0);

impl Chain {
    pub(crate) const fn new() -> Chain {
        Chain {
            len: Cell::new(0),
            n: Cell::new(0),
            ends: Cell::new(None),
            top: Cell::new(0),
            limit: Cell::new(0),
            site: Cell::new(0),
            fps: [NO_WORD; CHAIN_LEN],
            rets: [NO_WORD; CHAIN_LEN],
        }
    }

    /// Records how the walk that taught this chain ended: it read `len` records and
    /// returned `n` addresses; `ends` as in the invariants. No site is known for it yet.
    #[inline(always)]
    fn learn_end(&self, len: usize, n: usize, ends: Option<usize>, top: usize, limit: usize) {
        let fits = n <= CHAIN_LEN;
        self.len.set(len.min(CHAIN_LEN));
        self.n.set(n.min(CHAIN_LEN));
        self.ends.set(ends.filter(|_| fits));
        self.top.set(top);
        self.limit.set(limit);
        self.site.set(0);
    }
}

impl Chain {
    /// Writes the first `n` return addresses of the last walk (at most
    /// [`CHAIN_LEN`]) into `out`, as far as it is long.
    /// Hook-safe: no allocation, no lock, no panic.
    #[inline(always)]
    fn copy_rets(&self, n: usize, out: &mut [MaybeUninit<usize>]) {
        for (slot, ret) in out.iter_mut().zip(&self.rets[..n.min(CHAIN_LEN)]) {
            slot.write(ret.get());
        }
    }

    /// The first `n` return addresses of the last walk (at most [`CHAIN_LEN`]).
    ///
    /// # Safety
    ///
    /// No `rets` cell of this chain is written while the returned slice is alive.
    #[inline(always)]
    unsafe fn returns(&self, n: usize) -> &[usize] {
        let rets = &self.rets[..n.min(CHAIN_LEN)];
        // SAFETY: `Cell<usize>` has the layout of `usize` (it is `repr(transparent)`),
        // and (caller contract) none of these cells changes while the slice is read.
        unsafe { core::slice::from_raw_parts(rets.as_ptr().cast::<usize>(), rets.len()) }
    }
}

/// Chains a thread keeps: one per key of a stack's first record.
const CHAINS: usize = 16;
const _: () = assert!(CHAINS.is_power_of_two());

/// A thread's chains: the walks of up to [`CHAINS`] recent stacks, each in the slot of
/// its first record (its address and return address, mixed), so that stacks that
/// take turns (a parser's, a loop allocating from a few places) each find their own
/// last walk, and each keep the site it resolved to.
///
/// `busy` keeps them all one walk's at a time: a walk that starts while another one
/// runs on the same thread (a signal handler allocating inside the hook) uses and
/// teaches none of them, so no chain mixes two walks' records.
pub(crate) struct Chains {
    busy: Cell<bool>,
    /// The chain the thread's last walk used, as a pointer into `set` (null:
    /// none yet, read as chain 0): read as the walk starts, so one load away.
    last: Cell<*const Chain>,
    set: [Chain; CHAINS],
}

#[allow(clippy::declare_interior_mutable_const)] // only to build `Chains::new`
const NEW_CHAIN: Chain = Chain::new();

impl Chains {
    const fn new() -> Chains {
        Chains {
            busy: Cell::new(false),
            last: Cell::new(core::ptr::null()),
            set: [NEW_CHAIN; CHAINS],
        }
    }

    /// The chain the thread's last walk used.
    #[inline(always)]
    fn last(&self) -> &Chain {
        let p = self.last.get();
        if p.is_null() {
            return &self.set[0];
        }
        // SAFETY: a non-null `last` was stored by `use_chain` from a reference into
        // this value's `set`, which lives (and does not move) as long as `self`.
        unsafe { &*p }
    }

    /// [`walk`] with one of these chains: the last walk's first, so that a stack
    /// allocating again (a loop) is found without reading anything to pick a
    /// chain; else the chain of the walk's first record ([`Chains::for_walk_from`]),
    /// which the next walk then tries first. Returns the chain used and the result.
    ///
    /// Hook-safe: no allocation, no lock, no panic.
    #[inline(always)]
    fn walk<M: FrameMemory>(
        &self,
        mem: &M,
        fp: usize,
        limit: usize,
        out: &mut [MaybeUninit<usize>],
    ) -> (&Chain, Walked) {
        let last = self.last();
        match replay(mem, fp, limit, last) {
            Ok(walked) => (last, walked),
            Err(state) => {
                let (_, chain) = self.for_walk_from(mem, fp);
                self.use_chain(chain);
                if core::ptr::eq(chain, last) {
                    // Go on from the replay just made.
                    (chain, finish(mem, out, chain, state))
                } else {
                    (chain, walk(mem, fp, limit, out, chain))
                }
            }
        }
    }

    /// Makes `chain` (one of `set`) the one the next walk tries first.
    #[inline(always)]
    fn use_chain(&self, chain: &Chain) {
        self.last.set(chain);
    }

    /// The chain of a walk from `fp` over `mem`, and its index: picked by the record
    /// at `fp` (its address and return address), which that walk reads first. Chain
    /// 0 when the walk would not read it (it then stops before any record).
    ///
    /// Hook-safe: no allocation, no lock, no panic.
    #[inline(always)]
    fn for_walk_from<M: FrameMemory>(&self, mem: &M, fp: usize) -> (usize, &Chain) {
        let (lo, hi) = mem.bounds();
        let mut i = 0;
        // The walk's own checks before its first record (see `walk`).
        if can_start(lo, hi, fp) && fp <= hi - 2 * WORD {
            // SAFETY: `fp + WORD` is word-aligned and in `[lo, hi)` with its word
            // (checked just above).
            let ret = unsafe { mem.read_word(fp + WORD) };
            let key = (fp ^ ret.rotate_left(32)) as u64;
            i = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - CHAINS.trailing_zeros()))
                as usize;
        }
        let i = i % CHAINS;
        (i, &self.set[i])
    }
}

std::thread_local! {
    static LAST_CHAINS: Chains = const { Chains::new() };
}

/// The outcome of a walk: `n` return addresses, written to `out`, or, when `same`,
/// not written because they are the chain's `rets[..n]`, unchanged since the walk
/// that put them there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Walked {
    n: usize,
    same: bool,
}

impl Walked {
    /// Nothing walked.
    const EMPTY: Walked = Walked { n: 0, same: false };

    /// Makes sure the result is in `out` (copying it from `chain` if it is the same
    /// as last time) and returns its length: `out[..n]` is then written.
    ///
    /// Hook-safe: no allocation, no lock, no panic.
    #[inline(always)]
    fn materialise(self, chain: &Chain, out: &mut [MaybeUninit<usize>]) -> usize {
        if self.same {
            chain.copy_rets(self.n, out);
        }
        self.n.min(out.len())
    }
}

/// `x`, as a value the compiler cannot prove equal to anything else. The predicted
/// walk reads a record through its predicted address once that compared equal to the
/// chained one; without this, the compiler reads through the chained one instead
/// (they are equal) and brings the dependency back.
///
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
fn opaque(x: usize) -> usize {
    #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(miri)))]
    {
        let mut x = x;
        // SAFETY: the template is a comment: no instruction runs; no memory, stack or
        // flags are touched (as the options promise) and `x` is unchanged.
        unsafe {
            core::arch::asm!("/* {0} */", inout(reg) x, options(nomem, nostack, preserves_flags))
        };
        x
    }
    #[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(miri))))]
    {
        x
    }
}

/// Word-addressed memory holding frame records: the live stack, or a fake one in tests.
trait FrameMemory {
    /// The readable range `[lo, hi)`.
    fn bounds(&self) -> (usize, usize);

    /// Reads the word at `addr`.
    ///
    /// # Safety
    ///
    /// `addr % WORD == 0` and `lo <= addr && addr + WORD <= hi` for `(lo, hi) =
    /// self.bounds()`.
    unsafe fn read_word(&self, addr: usize) -> usize;

    /// A saved return address as a plain code address (pointer-auth bits stripped).
    fn code_address(&self, saved: usize) -> usize;
}

/// The current thread's stack, from the capturing frame's stack pointer to the top.
#[cfg(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    any(target_os = "linux", target_os = "android")
))]
struct LiveStack {
    lo: usize,
    hi: usize,
}

#[cfg(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    any(target_os = "linux", target_os = "android")
))]
impl LiveStack {
    /// # Safety
    ///
    /// Every byte of `[lo, hi)` is mapped and readable for the life of the value.
    #[inline(always)]
    unsafe fn new(lo: usize, hi: usize) -> Self {
        LiveStack { lo, hi }
    }
}

#[cfg(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    any(target_os = "linux", target_os = "android")
))]
impl FrameMemory for LiveStack {
    #[inline(always)]
    fn bounds(&self) -> (usize, usize) {
        (self.lo, self.hi)
    }

    #[inline(always)]
    unsafe fn read_word(&self, addr: usize) -> usize {
        // SAFETY: `addr` is aligned and inside `[lo, hi)` (caller contract), which is
        // readable (contract of `LiveStack::new`). Volatile: this reads other frames'
        // saved registers, which the compiler must not reason about.
        unsafe { core::ptr::read_volatile(addr as *const usize) }
    }

    #[inline(always)]
    fn code_address(&self, saved: usize) -> usize {
        arch::strip_pac(saved)
    }
}

/// Follows the frame-record chain from `fp`, at most `limit` (and [`MAX_DEPTH`]) records,
/// writing return addresses to `out` as far as it is long. Every record is validated
/// before it is read (module docs, "Invariants"), directly or, while the walk follows
/// `chain`'s prediction, by the chain's invariant (see [`Chain`]), which the walk keeps
/// by teaching `chain` the records it read.
///
/// Returns how many addresses: written to `out[..n]` (those that fit) and to the
/// chain's `rets[..n]` (those that fit), or, when the walk found every record of the
/// chain's walk holding the same words and ending the same way (`same`), not written:
/// they are the chain's, and the chain is left as it was.
///
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
fn walk<M: FrameMemory>(
    mem: &M,
    fp: usize,
    limit: usize,
    out: &mut [MaybeUninit<usize>],
    chain: &Chain,
) -> Walked {
    match replay(mem, fp, limit, chain) {
        Ok(walked) => walked,
        Err(state) => finish(mem, out, chain, state),
    }
}

/// Whether a walk over `[lo, hi)` may start at `fp`: the stack can hold a record,
/// and `fp` is in it and word-aligned. Every later `fp` is checked for alignment
/// before it is followed, and is above this one.
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
fn can_start(lo: usize, hi: usize, fp: usize) -> bool {
    hi >= 2 * WORD && lo <= fp && fp % WORD == 0
}

/// Where a replay that did not give the chain's walk again stopped: the walk goes on
/// from there with [`finish`].
struct Replayed {
    /// Records replayed (the chain's `rets[..written]` are their return addresses).
    written: usize,
    /// The next record's address: the chain's record `written` if `held`, else the
    /// last replayed record's saved fp (not yet checked against the chain).
    fp: usize,
    /// The record at `fp`, read (its saved fp and return address), if it was.
    held: Option<(usize, usize)>,
    top: usize,
    limit: usize,
}

/// The first part of [`walk`]: the start checks, and the records that hold what they
/// held in `chain`'s walk. `Ok` with the whole result when that is the chain's walk
/// again (`same`, the chain untouched) or when the walk cannot start (the chain then
/// learns an empty walk); `Err` with where it stopped otherwise, having written
/// nothing. Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
fn replay<M: FrameMemory>(
    mem: &M,
    mut fp: usize,
    limit: usize,
    chain: &Chain,
) -> Result<Walked, Replayed> {
    let (lo, hi) = mem.bounds();
    // The highest address a record may start at; every later record is above
    // the first, so `lo <= fp` needs checking only once.
    let top = hi.saturating_sub(2 * WORD);
    // Every later `fp` is checked for alignment before it is followed (below).
    if !can_start(lo, hi, fp) {
        chain.learn_end(0, 0, None, top, 0);
        return Ok(Walked::EMPTY);
    }
    let limit = limit.min(MAX_DEPTH);

    // Replayed: while each record is where the chain's walk found it and holds the
    // return address it held then (and so, as the next record is checked to be the
    // chain's too, both its words). Nothing is written yet.
    let replay = chain.n.get().min(CHAIN_LEN).min(limit);
    let mut written = 0;
    let mut held = None;
    'replay: {
        // One record, expected to be the chain's record `$k` and to be at `fp`.
        macro_rules! replay_one {
            ($k:expr) => {{
                let k = $k;
                let at = chain.fps[k].get();
                // The same address, in a register the compiler cannot replace by `fp`
                // once they compare equal (made before the compare, so not from `fp`):
                // the read below then need not wait for the load that gave `fp`.
                let through = opaque(at);
                if at != fp {
                    written = k;
                    break 'replay;
                }
                // SAFETY: `through == fp`, a record the chain's walk read (`k < n <=
                // len`): word-aligned, at most `top`, and at least `lo` (the start is,
                // and every link increases).
                let (next, ret) = unsafe { read_record(mem, through) };
                if ret != chain.rets[k].get() {
                    // Record `k` (at `fp`) is read; it is handled below.
                    written = k;
                    held = Some((next, ret));
                    break 'replay;
                }
                fp = next;
            }};
        }
        // Four records per step while four remain: a quarter of the loop's own
        // instructions.
        while written + 4 <= replay {
            replay_one!(written);
            replay_one!(written + 1);
            replay_one!(written + 2);
            replay_one!(written + 3);
            written += 4;
        }
        while written < replay {
            replay_one!(written);
            written += 1;
        }
    }
    if held.is_none()
        && written == chain.n.get()
        && chain.ends.get() == Some(fp)
        && chain.top.get() == top
        && chain.limit.get() == limit
    {
        // Every record the chain's walk read holds the same words, and it stopped
        // after the last one for a reason that depends only on its saved fp (now
        // `fp`), `top` and `limit`, all the same: so does this walk.
        return Ok(Walked {
            n: written,
            same: true,
        });
    }
    Err(Replayed {
        written,
        fp,
        held,
        top,
        limit,
    })
}

/// The rest of [`walk`], from where [`replay`] stopped with `chain`: the replayed
/// records' return addresses, then the predicted and the chained records.
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
fn finish<M: FrameMemory>(
    mem: &M,
    out: &mut [MaybeUninit<usize>],
    chain: &Chain,
    state: Replayed,
) -> Walked {
    let Replayed {
        mut written,
        mut fp,
        mut held,
        top,
        limit,
    } = state;
    // The replayed records' return addresses are the chain's.
    chain.copy_rets(written, out);
    let mut last = written.checked_sub(1).map(|i| chain.fps[i].get());

    // Predicted: while each record is where the chain's walk found it. Record `k > 0`
    // is reached from record `k - 1`, which is `chain.fps[k - 1]`, by the saved fp
    // `chain.fps[k]`: a link that walk checked. The first may be the one the replay
    // read (`held`: record `written`, at `fp`; `written < replay <= len`).
    let predicted = chain.len.get().min(CHAIN_LEN).min(limit);
    while written < predicted {
        let (next, ret) = match held.take() {
            Some(record) => record,
            None => {
                let at = chain.fps[written].get();
                // As in the replay.
                let through = opaque(at);
                if at != fp {
                    break;
                }
                // SAFETY: as in the replay (`written < len`).
                unsafe { read_record(mem, through) }
            }
        };
        if ret == 0 {
            // The chain still holds this walk's records up to here.
            chain.learn_end(written + 1, written, None, top, limit);
            return Walked::fresh(written);
        }
        if let Some(slot) = out.get_mut(written) {
            slot.write(ret);
        }
        chain.rets[written].set(ret);
        written += 1;
        last = Some(fp);
        fp = next;
    }
    // Off the prediction: the link from the last predicted record to `fp` has not
    // been checked (the chain did not vouch for it).
    if let Some(from) = last {
        if !is_link(from, fp) {
            chain.learn_end(written, written, Some(fp), top, limit);
            return Walked::fresh(written);
        }
    }

    // Chained: each record's address comes from the one before.
    // One counter for the slot and the count: fewer instructions per frame.
    while written < limit {
        // The record [fp, fp + 2 words) lies in [lo, hi) (and `fp` is word-aligned
        // and at least `lo`: checked before the walk's first record, or before
        // following a saved fp, which is always above the record holding it).
        if fp > top {
            break;
        }
        if let Some(cell) = chain.fps.get(written) {
            cell.set(fp);
        }
        // SAFETY: `fp` is word-aligned, `lo <= fp` and `fp + 2 * WORD <= hi` (above).
        let (next, ret) = unsafe { read_record(mem, fp) };
        if ret == 0 {
            chain.learn_end(written + 1, written, None, top, limit);
            return Walked::fresh(written);
        }
        if let Some(slot) = out.get_mut(written) {
            slot.write(ret);
        }
        if let Some(cell) = chain.rets.get(written) {
            cell.set(ret);
        }
        written += 1;
        let linked = is_link(fp, next);
        fp = next;
        if !linked {
            break;
        }
    }
    // Stopped after record `written - 1`, whose saved fp is `fp`: at the depth cap,
    // on a failed link check, or with the next record above `top`.
    chain.learn_end(written, written, Some(fp), top, limit);
    Walked::fresh(written)
}

impl Walked {
    /// `n` addresses, written to `out`.
    #[inline(always)]
    fn fresh(n: usize) -> Walked {
        Walked { n, same: false }
    }
}

/// The frame record at `at`: the saved fp (the next record's address, unchecked)
/// and the return address as a plain code address (0: the walk stops).
///
/// Hook-safe: no allocation, no lock, no panic.
///
/// # Safety
///
/// `at` is word-aligned and the record `[at, at + 2 words)` lies in `mem`'s bounds.
#[inline(always)]
unsafe fn read_record<M: FrameMemory>(mem: &M, at: usize) -> (usize, usize) {
    // SAFETY: `at` is word-aligned and in bounds (caller contract).
    let next = unsafe { mem.read_word(at) };
    // SAFETY: `at + WORD` is word-aligned and in the same record (caller contract).
    let saved_return = unsafe { mem.read_word(at + WORD) };
    (next, mem.code_address(saved_return))
}

/// Whether the walk may follow a saved fp `to` from the record at `from`: strictly
/// increasing (this also stops at a null fp, and keeps every later record above
/// `lo`), then a bounded jump to a word-aligned record. Two compares: a wrapping
/// `to - from` alone would let a jump past the top of the address space come back
/// around to low addresses.
///
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
fn is_link(from: usize, to: usize) -> bool {
    to > from && is_aligned_jump(to - from)
}

/// Whether a jump of `delta` bytes from a word-aligned record lands on a word-aligned
/// one at most [`MAX_FRAME_BYTES`] away: `delta % WORD == 0 && delta <= MAX_FRAME_BYTES`,
/// in one compare. Rotating right by log2(WORD) bits moves any misalignment into the
/// top bits (making the value huge) and divides an aligned `delta` by `WORD` exactly;
/// `MAX_FRAME_BYTES` is a multiple of `WORD`, so the bound divides exactly too.
///
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
fn is_aligned_jump(delta: usize) -> bool {
    delta.rotate_right(WORD.trailing_zeros()) <= MAX_FRAME_BYTES / WORD
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod stack_bounds {
    //! The current thread's stack range, found once per thread through libc.

    use core::cell::Cell;
    use core::ffi::{c_int, c_void};

    /// A thread's stack: `[lo, hi)`. Empty (`lo >= hi`) when unknown.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) struct StackBounds {
        pub(super) lo: usize,
        pub(super) hi: usize,
    }

    /// Not looked up yet on this thread.
    const UNQUERIED: StackBounds = StackBounds { lo: 0, hi: 0 };
    /// Looked up and not found: an empty range, so every walk stops at once.
    const UNKNOWN: StackBounds = StackBounds { lo: 1, hi: 1 };

    std::thread_local! {
        static BOUNDS: Cell<StackBounds> = const { Cell::new(UNQUERIED) };
    }

    /// This thread's stack bounds, looked up on first use and cached.
    ///
    /// Hook-safe: no allocation through the Rust allocator, no lock of ours, no panic
    /// (the first call per thread enters libc; see the module docs of `backtrace`).
    #[inline(always)]
    pub(super) fn current() -> StackBounds {
        // The Cell has no destructor, so `try_with` only fails if TLS is unusable;
        // then there is nothing to walk.
        let cached = BOUNDS.try_with(Cell::get).unwrap_or(UNKNOWN);
        if cached != UNQUERIED {
            return cached;
        }
        let found = query().unwrap_or(UNKNOWN);
        let _ = BOUNDS.try_with(|b| b.set(found));
        found
    }

    /// `pthread_attr_t` storage: glibc and musl use 56 bytes on x86_64 and 64 on
    /// aarch64, bionic 56; 128 bytes, 16-aligned, covers them with room to spare.
    #[repr(C, align(16))]
    struct PthreadAttr([u64; 16]);

    extern "C" {
        fn pthread_self() -> usize;
        fn pthread_getattr_np(thread: usize, attr: *mut PthreadAttr) -> c_int;
        fn pthread_attr_getstack(
            attr: *const PthreadAttr,
            stack_addr: *mut *mut c_void,
            stack_size: *mut usize,
        ) -> c_int;
        fn pthread_attr_destroy(attr: *mut PthreadAttr) -> c_int;
    }

    /// Asks libc for the calling thread's stack range.
    ///
    /// Hook-safe: no allocation through the Rust allocator, no lock of ours, no panic.
    #[cold]
    #[inline(never)]
    fn query() -> Option<StackBounds> {
        let mut attr = PthreadAttr([0; 16]);
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { pthread_self() };
        // SAFETY: `me` is the live calling thread; `attr` is writable, aligned storage
        // at least as large as `pthread_attr_t` (see `PthreadAttr`).
        if unsafe { pthread_getattr_np(me, &mut attr) } != 0 {
            return None;
        }
        let mut stack_addr: *mut c_void = core::ptr::null_mut();
        let mut stack_size: usize = 0;
        // SAFETY: `attr` was initialised by pthread_getattr_np; both out-pointers are
        // valid for writes.
        let got = unsafe { pthread_attr_getstack(&attr, &mut stack_addr, &mut stack_size) };
        // SAFETY: `attr` was initialised by pthread_getattr_np and is destroyed once.
        unsafe { pthread_attr_destroy(&mut attr) };
        if got != 0 {
            return None;
        }
        let lo = stack_addr as usize;
        let hi = lo.checked_add(stack_size)?;
        if lo == 0 || lo >= hi {
            return None;
        }
        Some(StackBounds { lo, hi })
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod stack_bounds {
    //! No stack-bounds lookup on this OS: captures are empty.

    /// A thread's stack: `[lo, hi)`. Always empty here.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) struct StackBounds {
        pub(super) lo: usize,
        pub(super) hi: usize,
    }

    /// Unknown: an empty range.
    ///
    /// Hook-safe: no allocation, no lock, no panic.
    #[inline(always)]
    pub(super) fn current() -> StackBounds {
        StackBounds { lo: 1, hi: 1 }
    }
}

#[cfg(test)]
mod tests;
