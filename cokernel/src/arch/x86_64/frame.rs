//! The floor of the trap path: the frame every trap stub pushes, the co-kernel's vector
//! assignments, and the frame a new context starts from.

use super::gdt;

/// What the stubs push (lowest address first): the general registers of the interrupted
/// context, the vector and error code, then the frame the CPU pushed. Every saved context is one
/// of these, on its own stack; whatever a handler writes here is what the context resumes with.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    /// R15 of the interrupted context.
    pub r15: u64,
    /// R14 of the interrupted context.
    pub r14: u64,
    /// R13 of the interrupted context.
    pub r13: u64,
    /// R12 of the interrupted context.
    pub r12: u64,
    /// R11 of the interrupted context.
    pub r11: u64,
    /// R10 of the interrupted context.
    pub r10: u64,
    /// R9 of the interrupted context.
    pub r9: u64,
    /// R8 of the interrupted context.
    pub r8: u64,
    /// RBP of the interrupted context (the head of its frame-pointer chain).
    pub rbp: u64,
    /// RDI of the interrupted context (a kernel call's first argument; a new context's first
    /// argument).
    pub rdi: u64,
    /// RSI of the interrupted context (a kernel call's second argument).
    pub rsi: u64,
    /// RDX of the interrupted context.
    pub rdx: u64,
    /// RCX of the interrupted context.
    pub rcx: u64,
    /// RBX of the interrupted context.
    pub rbx: u64,
    /// RAX of the interrupted context (a kernel call's number going in, its result coming out).
    pub rax: u64,
    /// The vector the stub was entered for (0..=255).
    pub vector: u64,
    /// The CPU's error code for vectors that push one, else 0 (pushed by the stub).
    pub error_code: u64,
    // The hardware frame.
    /// Where the interrupted context resumes.
    pub rip: u64,
    /// Its code selector; the low two bits are its privilege level (3: user mode).
    pub cs: u64,
    /// Its RFLAGS (IF is bit 9, RF bit 16).
    pub rflags: u64,
    /// Its stack pointer.
    pub rsp: u64,
    /// Its stack selector.
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
    /// MSIs of devices real-time tasks own.
    pub const DEVICE: u8 = guest::VECTOR_COKERNEL_DEVICE;
    /// Kernel calls from real-time tasks (`int 0xf2`).
    pub const KCALL: u8 = guest::VECTOR_COKERNEL_KCALL;
    /// Linux turned its soft interrupt flag on with events logged (`int 0xf3`).
    pub const UPCALL: u8 = guest::VECTOR_UPCALL;
    /// LAPIC error interrupt.
    pub const APIC_ERROR: u8 = 0xfe;
    /// LAPIC spurious-interrupt vector (must end in 0xf on old xAPICs).
    pub const SPURIOUS: u8 = 0xff;
    /// The legacy PIC's spurious IRQ 7 (master) and IRQ 15 (slave), as remapped to `PIC_BASE`.
    pub const PIC_SPURIOUS_7: u8 = PIC_BASE + 7;
    /// See [`PIC_SPURIOUS_7`].
    pub const PIC_SPURIOUS_15: u8 = PIC_BASE + 15;
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
