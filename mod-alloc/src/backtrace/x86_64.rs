//! x86_64 register reads for the frame-pointer walk (`super` does every check).
//!
//! With frame pointers, every function's prologue is `push rbp; mov rbp, rsp`, so `rbp`
//! points at a two-word frame record:
//!
//! ```text
//! [rbp]      caller's rbp   (next record, at a higher address)
//! [rbp + 8]  return address (pushed by `call`)
//! ```
//!
//! Return addresses carry no signature bits on x86_64, so `strip_pac` is the identity.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use core::arch::asm;

/// The current frame pointer (`rbp`): the frame record of the function this is inlined
/// into. In code built without frame pointers it may be any value; `super` validates it.
///
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
pub(super) fn frame_pointer() -> usize {
    let fp: usize;
    // SAFETY: copies `rbp` into a general register; reads no memory, touches neither the
    // stack nor the flags (as the options promise).
    unsafe { asm!("mov {}, rbp", out(reg) fp, options(nomem, nostack, preserves_flags)) };
    fp
}

/// The current stack pointer (`rsp`): everything from it up to the top of the thread's
/// stack is mapped.
///
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
pub(super) fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: copies `rsp` into a general register; reads no memory, touches neither the
    // stack nor the flags (as the options promise).
    unsafe { asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

/// A saved return address as a plain code address: the identity on x86_64.
///
/// Hook-safe: no allocation, no lock, no panic.
#[inline(always)]
pub(super) fn strip_pac(code: usize) -> usize {
    code
}

#[cfg(test)]
pub(super) use forged::call_through_forged_frame;

#[cfg(test)]
mod forged {
    //! A hand-written frame whose saved `rbp` is whatever the test says.
    use core::ffi::c_void;

    // mod_alloc_test_forged_frame(forged_fp: rdi, callback: rsi, ctx: rdx)
    // Builds the record [forged_fp, return address] right below the return address,
    // points rbp at it and calls callback(ctx); restores rbp afterwards.
    core::arch::global_asm!(
        ".text",
        ".p2align 4",
        ".globl mod_alloc_test_forged_frame",
        ".hidden mod_alloc_test_forged_frame",
        ".type mod_alloc_test_forged_frame, @function",
        "mod_alloc_test_forged_frame:",
        "push rdi", // record: [rsp] = forged fp, [rsp + 8] = return address
        "mov rax, rbp",
        "mov rbp, rsp",
        "push rax",   // the real rbp, restored below
        "sub rsp, 8", // 16-byte alignment for the call
        "mov rdi, rdx",
        "call rsi",
        "add rsp, 8",
        "pop rbp",
        "add rsp, 8",
        "ret",
        ".size mod_alloc_test_forged_frame, . - mod_alloc_test_forged_frame",
    );

    extern "C" {
        fn mod_alloc_test_forged_frame(
            forged_fp: usize,
            callback: extern "C" fn(*mut c_void),
            ctx: *mut c_void,
        );
    }

    /// Calls `callback(ctx)` from a frame whose saved frame pointer is `forged_fp`.
    /// Returns the address of the forging function (for range checks). Inlined, so
    /// that the forged frame's caller is the function calling this.
    #[inline(always)]
    pub(in super::super) fn call_through_forged_frame(
        forged_fp: usize,
        callback: extern "C" fn(*mut c_void),
        ctx: *mut c_void,
    ) -> usize {
        // SAFETY: the assembly above follows the SysV ABI (callee-saved registers and
        // the stack restored, stack 16-byte aligned at the call); `callback` is a valid
        // `extern "C"` function and receives `ctx` unchanged. `forged_fp` is only
        // stored, never dereferenced.
        unsafe { mod_alloc_test_forged_frame(forged_fp, callback, ctx) };
        mod_alloc_test_forged_frame as *const () as usize
    }
}
