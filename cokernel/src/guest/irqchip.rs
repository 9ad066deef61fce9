//! The pv irqchip's hardware side: Linux's ISA lines on the IO-APIC (state in
//! [`crate::guest::lines`]). Everything here runs with interrupts off: from a trap, or from
//! Linux's calls, which turn them off first.

use spin::Mutex;

use crate::arch::{acpi, apic, ioapic};
use crate::guest::lines::{Action, Lines, Refusal, Route, SourceOverride, redirection_entry};

static LINES: Mutex<Option<Lines>> = Mutex::new(None);

/// Calls refused (a line Linux may not have), for telemetry.
static REFUSED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The co-kernel's own lines: COM2's IRQ 3 (its telemetry UART).
const RESERVED: u16 = 1 << hauki_abi::guest::TELEMETRY_IRQ;

/// ACPI's SCI line (the FADT's), which no task may claim: Linux's ACPI needs it. 0xff: none.
static SCI: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0xff);

/// ACPI's SCI line, if the firmware names one below 16.
pub fn sci() -> Option<u8> {
    Some(SCI.load(core::sync::atomic::Ordering::Relaxed)).filter(|&l| l < 16)
}

/// Takes the MADT's source overrides and the FADT's SCI; every line stays masked until Linux asks
/// for it.
pub fn init(overrides: &[acpi::Override], sci: Option<u16>) {
    if let Some(l) = sci.and_then(|l| u8::try_from(l).ok()) {
        SCI.store(l, core::sync::atomic::Ordering::Relaxed);
    }
    let mut v: heapless::Vec<SourceOverride, 16> = heapless::Vec::new();
    for o in overrides {
        let _ = v.push(SourceOverride { isa_irq: o.isa_irq, gsi: o.gsi, flags: o.flags });
    }
    *LINES.lock() = Some(Lines::new(&v, RESERVED));
}

fn apply(lines: &Lines, irq: u32, action: Action) {
    let Action::Program { gsi, masked } = action else { return };
    let Some(route) = lines.line(irq).and_then(|l| l.route) else { return };
    let Some((io, pin)) = ioapic::for_gsi(gsi) else { return };
    let entry = redirection_entry(route, Lines::vector(irq), apic::id() as u8, masked);
    io.set_redirection(pin, entry);
}

/// Linux's call: `op` is one of mask/unmask/eoi. Returns 0, or u64::MAX when refused.
pub fn call(op: fn(&mut Lines, u32) -> Result<Action, Refusal>, irq: u64) -> u64 {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut g = LINES.lock();
        let Some(lines) = g.as_mut() else { return u64::MAX };
        let irq = u32::try_from(irq).unwrap_or(u32::MAX);
        match op(lines, irq) {
            Ok(a) => {
                apply(lines, irq, a);
                0
            }
            Err(_) => {
                REFUSED.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                u64::MAX
            }
        }
    })
}

/// An interrupt arrived (trap context, before the local APIC EOI): masks a level line's input.
pub fn on_arrival(vector: u8) {
    let mut g = LINES.lock();
    let Some(lines) = g.as_mut() else { return };
    if let Some(a) = lines.arrive(vector) {
        apply(lines, u32::from(vector - hauki_abi::guest::ISA_VECTOR_BASE), a);
    }
}

/// A real-time task claims ISA line `irq` (before Linux runs): Linux's calls on it are refused
/// from now on, and its input is programmed masked to `vector`. Its route.
pub fn claim(irq: u32, vector: u8) -> Result<Route, Refusal> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut g = LINES.lock();
        let lines = g.as_mut().ok_or(Refusal::NoSuchLine)?;
        let route = lines.claim(irq)?;
        program_own(route, vector, true);
        Ok(route)
    })
}

/// Writes the redirection entry of a line the co-kernel owns (a claimed one).
pub fn program_own(route: Route, vector: u8, masked: bool) {
    if let Some((io, pin)) = ioapic::for_gsi(route.gsi) {
        io.set_redirection(pin, redirection_entry(route, vector, apic::id() as u8, masked));
    }
}

/// Line calls refused so far.
pub fn refused() -> u64 {
    REFUSED.load(core::sync::atomic::Ordering::Relaxed)
}

/// Interrupts received on ISA line `irq`.
pub fn count(irq: u32) -> u64 {
    // Interrupts off while the lock is held: a line's arrival takes it from trap context.
    x86_64::instructions::interrupts::without_interrupts(|| {
        LINES.lock().as_ref().and_then(|l| l.line(irq).map(|x| x.count)).unwrap_or(0)
    })
}

/// Every line masked and out of service (the guest that owned them is gone).
pub fn reset() {
    let mut g = LINES.lock();
    let Some(lines) = g.as_mut() else { return };
    for irq in 0..hauki_abi::guest::ISA_LINES {
        if let Ok(a) = lines.mask(irq) {
            apply(lines, irq, a);
        }
        if let Ok(a) = lines.eoi(irq) {
            apply(lines, irq, a);
        }
    }
}
