//! aarch64 register reads for the frame-pointer walk (`super` does every check).
//!
//! AAPCS64 with frame pointers: each function stores a frame record
//! `stp x29, x30, [sp, ...]` and points `x29` at it:
//!
//! ```text
//! [x29]      caller's x29   (next record, at a higher address)
//! [x29 + 8]  saved x30      (return address, maybe signed: see below)
//! ```
//!
//! Code built with pointer authentication (`-mbranch-protection=pac-ret`, e.g. some C
//! libraries) signs `x30` before saving it (`paciasp`), putting a signature in the
//! address's unused high bits. `strip_pac` removes it with `XPACLRI`, which lives in
//! the HINT space: a no-op on CPUs without pointer authentication (whose return
//! addresses carry no signature anyway), and no assembler feature flag is needed.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use core::arch::asm;

/// The current frame pointer (`x29`): the frame record of the function this is inlined
/// into. In code built without frame pointers it may be any value; `super` validates it.
///
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
pub(super) fn frame_pointer() -> usize {
    let fp: usize;
    // SAFETY: copies `x29` into a general register; reads no memory, touches neither
    // the stack nor the flags (as the options promise).
    unsafe { asm!("mov {}, x29", out(reg) fp, options(nomem, nostack, preserves_flags)) };
    fp
}

/// The current stack pointer (`sp`): everything from it up to the top of the thread's
/// stack is mapped.
///
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
pub(super) fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: copies `sp` into a general register; reads no memory, touches neither the
    // stack nor the flags (as the options promise).
    unsafe { asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

/// A saved return address as a plain code address: pointer-authentication bits removed.
///
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
pub(super) fn strip_pac(code: usize) -> usize {
    let mut lr = code;
    // SAFETY: `hint #7` is XPACLRI: it clears the authentication code of x30 in place
    // (a no-op without FEAT_PAuth). It reads no memory and cannot fault; x30 is a
    // declared in/out operand, so the compiler saves the real link register.
    unsafe { asm!("hint #7", inout("x30") lr, options(nomem, nostack, preserves_flags)) };
    lr
}

#[cfg(test)]
pub(super) use forged::{call_through_forged_frame, has_pointer_auth, sign_pac};

#[cfg(test)]
mod forged {
    //! A hand-written frame whose saved `x29` is whatever the test says and whose saved
    //! `x30` is signed, as `-mbranch-protection=pac-ret` code does.
    use core::arch::asm;
    use core::ffi::c_void;

    // mod_alloc_test_forged_frame(forged_fp: x0, callback: x1, ctx: x2)
    core::arch::global_asm!(
        ".text",
        ".p2align 4",
        ".globl mod_alloc_test_forged_frame",
        ".hidden mod_alloc_test_forged_frame",
        ".type mod_alloc_test_forged_frame, %function",
        "mod_alloc_test_forged_frame:",
        "hint #25",                 // paciasp: sign x30, modifier sp
        "stp x0, x30, [sp, #-32]!", // record: [sp] = forged fp, [sp + 8] = signed lr
        "str x29, [sp, #16]",       // the real x29, restored below
        "mov x29, sp",
        "mov x0, x2",
        "blr x1",
        "ldr x29, [sp, #16]",
        "ldp x0, x30, [sp], #32",
        "hint #29", // autiasp: sp is back to its value at paciasp
        "ret",
        ".size mod_alloc_test_forged_frame, . - mod_alloc_test_forged_frame",
    );

    extern "C" {
        fn mod_alloc_test_forged_frame(
            forged_fp: usize,
            callback: extern "C" fn(*mut c_void),
            ctx: *mut c_void,
        );
        fn getauxval(kind: core::ffi::c_ulong) -> core::ffi::c_ulong;
    }

    /// Calls `callback(ctx)` from a frame whose saved frame pointer is `forged_fp` and
    /// whose saved return address is signed. Returns the forging function's address.
    /// Inlined, so that the forged frame's caller is the function calling this.
    #[inline(always)]
    pub(in super::super) fn call_through_forged_frame(
        forged_fp: usize,
        callback: extern "C" fn(*mut c_void),
        ctx: *mut c_void,
    ) -> usize {
        // SAFETY: the assembly above follows AAPCS64 (x29, x30 and sp restored, sp
        // 16-byte aligned); it authenticates x30 with the same key and modifier it signed
        // it with. `callback` is a valid `extern "C"` function and receives `ctx`
        // unchanged. `forged_fp` is only stored, never dereferenced.
        unsafe { mod_alloc_test_forged_frame(forged_fp, callback, ctx) };
        mod_alloc_test_forged_frame as *const () as usize
    }

    /// Whether the CPU and kernel enable pointer authentication for this process
    /// (`HWCAP_PACA`); without it, `sign_pac` returns its input.
    pub(in super::super) fn has_pointer_auth() -> bool {
        const AT_HWCAP: core::ffi::c_ulong = 16;
        const HWCAP_PACA: core::ffi::c_ulong = 1 << 30;
        // SAFETY: getauxval has no preconditions; it reads the process's aux vector.
        let hwcap = unsafe { getauxval(AT_HWCAP) };
        hwcap & HWCAP_PACA != 0
    }

    /// Signs `code` with the A instruction key and `modifier`, as `pacia` does.
    pub(in super::super) fn sign_pac(code: usize, modifier: usize) -> usize {
        let mut x17 = code;
        // SAFETY: `hint #8` is PACIA1716: x17 = sign(x17, key A, modifier x16). No
        // memory access, no fault; a no-op without FEAT_PAuth.
        unsafe {
            asm!(
                "hint #8",
                inout("x17") x17,
                in("x16") modifier,
                options(nomem, nostack, preserves_flags),
            );
        }
        x17
    }
}
