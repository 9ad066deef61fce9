//! The floor of the trap path: the frame every trap stub pushes, the co-kernel's vector
//! assignments, and the frame a new context starts from.

use super::gdt;

/// What the stubs push (lowest address first).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    // The hardware frame.
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
const _: () = assert!(size_of::<TrapFrame>() == 22 * 8);

/// Vector assignments of the co-kernel.
pub mod vectors {
    /// Legacy PIC, remapped here and masked; 0x27 and 0x2f can still arrive as spurious.
    pub const PIC_BASE: u8 = 0x20;
    use hauki_abi::guest;
    /// The co-kernel's one-shot timer.
    pub const TIMER: u8 = guest::VECTOR_COKERNEL_TIMER;
    /// Wakes a parked or idle CPU (no handler work).
    pub const WAKEUP: u8 = guest::VECTOR_COKERNEL_WAKEUP;
    /// Kernel calls from real-time tasks (`int 0xf2`).
    pub const KCALL: u8 = guest::VECTOR_COKERNEL_KCALL;
    /// Linux turned its soft interrupt flag on with events logged (`int 0xf3`).
    pub const UPCALL: u8 = guest::VECTOR_UPCALL;
    /// LAPIC error interrupt.
    pub const APIC_ERROR: u8 = 0xfe;
    /// LAPIC spurious-interrupt vector (must end in 0xf on old xAPICs).
    pub const SPURIOUS: u8 = 0xff;
}

/// Writes the frame of a context that starts at `rip(rdi, rsi)` on the stack whose top is `top`,
/// as if interrupted there with a fresh stack (interrupts on, RSP ≡ 8 mod 16 at entry, a zero
/// return address ending the frame-pointer chain); returns the frame's address.
///
/// # Safety
/// `top` must be the top of a mapped kernel stack that nothing else uses.
pub unsafe fn initial_frame(top: u64, rip: u64, rdi: u64, rsi: u64) -> u64 {
    let ret_slot = top - 8;
    let frame = (ret_slot - size_of::<TrapFrame>() as u64) & !0xf;
    let f = TrapFrame {
        rip,
        cs: u64::from(gdt::KERNEL_CS),
        rflags: 0x202,
        rsp: ret_slot,
        ss: u64::from(gdt::KERNEL_DS),
        rdi,
        rsi,
        ..TrapFrame::default()
    };
    // SAFETY: both addresses lie in that stack (the caller's contract).
    unsafe {
        (ret_slot as *mut u64).write(0);
        (frame as *mut TrapFrame).write(f);
    }
    frame
}
