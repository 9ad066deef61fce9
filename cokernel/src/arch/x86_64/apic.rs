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
pub const REG_ID: u32 = 0x20;
pub const REG_VERSION: u32 = 0x30;
pub const REG_TPR: u32 = 0x80;
pub const REG_EOI: u32 = 0xb0;
pub const REG_SVR: u32 = 0xf0;
pub const REG_ISR: u32 = 0x100;
pub const REG_IRR: u32 = 0x200;
pub const REG_ESR: u32 = 0x280;
pub const REG_ICR_LOW: u32 = 0x300;
pub const REG_ICR_HIGH: u32 = 0x310;
pub const REG_LVT_TIMER: u32 = 0x320;
pub const REG_LVT_LINT0: u32 = 0x350;
pub const REG_LVT_LINT1: u32 = 0x360;
pub const REG_LVT_ERROR: u32 = 0x370;
pub const REG_TIMER_INITIAL: u32 = 0x380;
pub const REG_TIMER_CURRENT: u32 = 0x390;
pub const REG_TIMER_DIVIDE: u32 = 0x3e0;

pub const LVT_MASKED: u32 = 1 << 16;
pub const LVT_TSC_DEADLINE: u32 = 0b10 << 17;
pub const LVT_NMI: u32 = 0b100 << 8;

const MODE_NONE: u8 = 0;
const MODE_XAPIC: u8 = 1;
const MODE_X2APIC: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(MODE_NONE);
static XAPIC_VIRT: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    XApic,
    X2Apic,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::XApic => "xapic",
            Mode::X2Apic => "x2apic",
        }
    }
}

pub fn mode() -> Option<Mode> {
    match MODE.load(Ordering::Relaxed) {
        MODE_XAPIC => Some(Mode::XApic),
        MODE_X2APIC => Some(Mode::X2Apic),
        _ => None,
    }
}

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
    write(REG_TPR, 0);
    write(REG_LVT_TIMER, LVT_MASKED | u32::from(vectors::TIMER));
    write(REG_LVT_LINT0, LVT_MASKED);
    write(REG_LVT_LINT1, LVT_NMI);
    write(REG_LVT_ERROR, u32::from(vectors::APIC_ERROR));
    write(REG_ESR, 0);
    write(REG_ESR, 0);
    write(REG_SVR, 0x100 | u32::from(vectors::SPURIOUS));
    eoi();
    mode
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
        MODE_XAPIC => {
            write(REG_ICR_HIGH, dest << 24);
            write(REG_ICR_LOW, icr_low);
            for _ in 0..1_000_000 {
                if read(REG_ICR_LOW) & (1 << 12) == 0 {
                    break;
                }
                core::hint::spin_loop();
            }
        }
        _ => {}
    }
}

/// INIT (assert): puts the target CPU in wait-for-SIPI, the parked state.
pub fn send_init(dest: u32) {
    send_ipi(dest, 0x0000_4500);
}
