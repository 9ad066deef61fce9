//! The local APIC, in x2APIC mode (MSRs) when the CPU has it, else xAPIC (MMIO).
//!
//! `hauki.apic=xapic` forces xAPIC on an x2APIC-capable CPU (to test that path on any machine).

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use x86_64::registers::model_specific::Msr;

use super::frame::vectors;

const IA32_APIC_BASE: u32 = 0x1b;
const BASE_ENABLE: u64 = 1 << 11;
const BASE_X2APIC: u64 = 1 << 10;

// Register offsets (xAPIC MMIO); the x2APIC MSR is 0x800 + offset / 16.
/// Local APIC ID (xAPIC: bits 31..24; x2APIC: the whole 32-bit ID).
pub const REG_ID: u32 = 0x20;
/// Version and number of LVT entries.
pub const REG_VERSION: u32 = 0x30;
/// Task priority: interrupts of this priority class and below are held back (the co-kernel
/// keeps it 0).
pub const REG_TPR: u32 = 0x80;
/// End of interrupt: writing 0 retires the highest in-service vector.
pub const REG_EOI: u32 = 0xb0;
/// Spurious-interrupt vector register: bit 8 enables the APIC, bits 7..0 the spurious vector.
pub const REG_SVR: u32 = 0xf0;
/// In-service register: eight 32-bit words, 0x10 apart, a bit per vector being handled.
pub const REG_ISR: u32 = 0x100;
/// Interrupt request register: eight 32-bit words, 0x10 apart, a bit per vector pending.
pub const REG_IRR: u32 = 0x200;
/// Error status (write before reading to latch the errors).
pub const REG_ESR: u32 = 0x280;
/// Interrupt command register, low word: vector and delivery mode; writing it sends the IPI.
pub const REG_ICR_LOW: u32 = 0x300;
/// Interrupt command register, high word (xAPIC): the destination APIC ID in bits 31..24.
pub const REG_ICR_HIGH: u32 = 0x310;
/// LVT entry of the local timer: vector, mask bit, mode (one-shot or TSC deadline).
pub const REG_LVT_TIMER: u32 = 0x320;
/// LVT entry of the LINT0 pin (where an 8259 would deliver ExtINT); kept masked.
pub const REG_LVT_LINT0: u32 = 0x350;
/// LVT entry of the LINT1 pin, wired to NMI on a PC.
pub const REG_LVT_LINT1: u32 = 0x360;
/// LVT entry of the APIC's own error interrupt.
pub const REG_LVT_ERROR: u32 = 0x370;
/// Local timer initial count: writing it starts a one-shot countdown (0 stops it).
pub const REG_TIMER_INITIAL: u32 = 0x380;
/// Local timer current count.
pub const REG_TIMER_CURRENT: u32 = 0x390;
/// Local timer divide configuration (`0b1011`: divide by 1).
pub const REG_TIMER_DIVIDE: u32 = 0x3e0;

/// LVT bit: the entry is masked (its interrupt is not delivered).
pub const LVT_MASKED: u32 = 1 << 16;
/// LVT timer mode bits: TSC-deadline mode (`IA32_TSC_DEADLINE` arms the timer).
pub const LVT_TSC_DEADLINE: u32 = 0b10 << 17;
/// LVT delivery-mode bits: NMI.
pub const LVT_NMI: u32 = 0b100 << 8;

const MODE_NONE: u8 = 0;
const MODE_XAPIC: u8 = 1;
const MODE_X2APIC: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(MODE_NONE);
static XAPIC_VIRT: AtomicU64 = AtomicU64::new(0);

/// How the local APIC's registers are reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Memory-mapped registers (the 4 KiB page at IA32_APIC_BASE, mapped uncached).
    XApic,
    /// MSRs `0x800 + offset / 16`; 32-bit APIC IDs.
    X2Apic,
}

impl Mode {
    /// The name the boot record uses (`xapic`, `x2apic`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::XApic => "xapic",
            Mode::X2Apic => "x2apic",
        }
    }
}

/// The mode [`init`] chose; `None` before it ran.
pub fn mode() -> Option<Mode> {
    match MODE.load(Ordering::Relaxed) {
        MODE_XAPIC => Some(Mode::XApic),
        MODE_X2APIC => Some(Mode::X2Apic),
        _ => None,
    }
}

/// Reads the 32-bit register at xAPIC offset `reg` (in either mode); 0 before [`init`].
pub fn read(reg: u32) -> u32 {
    match MODE.load(Ordering::Relaxed) {
        // SAFETY: x2APIC register MSRs are architectural once x2APIC mode is enabled.
        MODE_X2APIC => unsafe { Msr::new(0x800 + (reg >> 4)).read() as u32 },
        MODE_XAPIC => {
            let p = (XAPIC_VIRT.load(Ordering::Relaxed) + u64::from(reg)) as *const u32;
            // SAFETY: the xAPIC page is mapped uncached at XAPIC_VIRT (see init); reg < 0x400.
            unsafe { p.read_volatile() }
        }
        _ => 0,
    }
}

/// Writes the 32-bit register at xAPIC offset `reg` (in either mode); nothing before [`init`].
pub fn write(reg: u32, value: u32) {
    match MODE.load(Ordering::Relaxed) {
        // SAFETY: as in `read`; writing a defined register of our own LAPIC.
        MODE_X2APIC => unsafe { Msr::new(0x800 + (reg >> 4)).write(u64::from(value)) },
        MODE_XAPIC => {
            let p = (XAPIC_VIRT.load(Ordering::Relaxed) + u64::from(reg)) as *mut u32;
            // SAFETY: as in `read`.
            unsafe { p.write_volatile(value) }
        }
        _ => {}
    }
}

/// Enables the LAPIC of this CPU. `force_xapic` keeps xAPIC mode even when x2APIC exists.
pub fn init(has_x2apic: bool, force_xapic: bool) -> Mode {
    let mut base = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC (checked by the caller via CPUID).
    let mut v = unsafe { base.read() };
    if v & BASE_ENABLE == 0 {
        v |= BASE_ENABLE;
        // SAFETY: disabled -> xAPIC is a legal transition.
        unsafe { base.write(v) };
    }
    let mode = if has_x2apic && !force_xapic {
        // SAFETY: xAPIC -> x2APIC (EN set, then EXTD) is a legal transition on an x2APIC CPU.
        unsafe { base.write(v | BASE_X2APIC) };
        MODE.store(MODE_X2APIC, Ordering::Relaxed);
        Mode::X2Apic
    } else {
        let phys = v & 0x000f_ffff_ffff_f000;
        XAPIC_VIRT.store(super::mm::map_mmio(phys, 4096), Ordering::Relaxed);
        MODE.store(MODE_XAPIC, Ordering::Relaxed);
        Mode::XApic
    };
    setup_local();
    mode
}

/// Enables a secondary CPU's LAPIC in the mode [`init`] chose on the boot CPU (the xAPIC page is
/// at the same address on every CPU, each seeing its own LAPIC there).
pub fn init_secondary() {
    let mut base = Msr::new(IA32_APIC_BASE);
    // SAFETY: as in `init`: disabled -> xAPIC -> x2APIC are legal transitions, and x2APIC is
    // chosen only when the boot CPU (the same model) has it.
    unsafe {
        let mut v = base.read();
        if v & BASE_ENABLE == 0 {
            v |= BASE_ENABLE;
            base.write(v);
        }
        if MODE.load(Ordering::Relaxed) == MODE_X2APIC && v & BASE_X2APIC == 0 {
            base.write(v | BASE_X2APIC);
        }
    }
    setup_local();
}

/// This CPU's LAPIC registers: timer masked, LINT0 masked, LINT1 NMI, errors and spurious to
/// the co-kernel's vectors, software-enabled.
fn setup_local() {
    write(REG_TPR, 0);
    write(REG_LVT_TIMER, LVT_MASKED | u32::from(vectors::TIMER));
    write(REG_LVT_LINT0, LVT_MASKED);
    write(REG_LVT_LINT1, LVT_NMI);
    write(REG_LVT_ERROR, u32::from(vectors::APIC_ERROR));
    write(REG_ESR, 0);
    write(REG_ESR, 0);
    write(REG_SVR, 0x100 | u32::from(vectors::SPURIOUS));
    eoi();
}

/// This CPU's APIC ID (from CPUID before the LAPIC is set up).
pub fn id() -> u32 {
    match MODE.load(Ordering::Relaxed) {
        MODE_X2APIC => read(REG_ID),
        MODE_XAPIC => read(REG_ID) >> 24,
        _ => u32::from(super::cpu::detect_initial_apic_id()),
    }
}

/// Whether vector `v` is in service (its ISR bit is set): a hardware interrupt being handled,
/// as opposed to a software `int` on the same vector.
pub fn in_service(v: u8) -> bool {
    read(REG_ISR + 0x10 * (u32::from(v) / 32)) & (1 << (v % 32)) != 0
}

/// The vectors in service (ISR bits set), highest first: one read per 32-vector register, made
/// when the iteration reaches it.
pub fn in_service_vectors() -> impl Iterator<Item = u8> {
    (0..8u32).rev().flat_map(|r| {
        let bits = read(REG_ISR + 0x10 * r);
        (0..32u32).rev().filter(move |b| bits & (1 << b) != 0).map(move |b| (r * 32 + b) as u8)
    })
}

/// Signals end of interrupt for the highest in-service vector.
#[inline]
pub fn eoi() {
    write(REG_EOI, 0);
}

/// Sends an IPI with the given ICR low word to `dest`, waiting for xAPIC delivery.
pub fn send_ipi(dest: u32, icr_low: u32) {
    match MODE.load(Ordering::Relaxed) {
        MODE_X2APIC => {
            // SAFETY: the x2APIC ICR MSR; one 64-bit write sends the IPI.
            unsafe { Msr::new(0x830).write((u64::from(dest) << 32) | u64::from(icr_low)) };
        }
        // Two writes: an interrupt between them that sent an IPI of its own would change the
        // destination under this one. Linux on this CPU sends its own IPIs the same way, and
        // the co-kernel may interrupt it between its two writes: the destination Linux wrote
        // goes back after this IPI has gone, so Linux's low write still reaches its target.
        MODE_XAPIC => x86_64::instructions::interrupts::without_interrupts(|| {
            let theirs = read(REG_ICR_HIGH);
            write(REG_ICR_HIGH, dest << 24);
            write(REG_ICR_LOW, icr_low);
            for _ in 0..1_000_000 {
                if read(REG_ICR_LOW) & (1 << 12) == 0 {
                    break;
                }
                core::hint::spin_loop();
            }
            write(REG_ICR_HIGH, theirs);
        }),
        _ => {}
    }
}

/// INIT (assert): puts the target CPU in wait-for-SIPI, the parked state.
pub fn send_init(dest: u32) {
    send_ipi(dest, 0x0000_4500);
}

/// STARTUP: a CPU in wait-for-SIPI starts in real mode at `page` × 4 KiB (below 1 MiB).
pub fn send_startup(dest: u32, page: u8) {
    send_ipi(dest, 0x0000_4600 | u32::from(page));
}

/// A fixed interrupt on `vector` to the CPU with APIC ID `dest`.
#[inline]
pub fn send_fixed(dest: u32, vector: u8) {
    send_ipi(dest, u32::from(vector));
}
