//! The pv irqchip's hardware side: Linux's ISA and PCI lines on the IO-APIC (state in
//! [`crate::guest::lines`]). Everything here runs with interrupts off: from a trap, or from
//! Linux's calls, which turn them off first.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use spin::Mutex;

use crate::arch::{acpi, apic, ioapic, tsc};
use crate::guest::lines::{Action, Arrival, Lines, Refusal, Route, SourceOverride, redirection_entry};

static LINES: Mutex<Option<Lines>> = Mutex::new(None);

/// Calls refused (a line Linux may not have), for telemetry.
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// The vectors PCI lines are bound to, a bit each: the trap path's cheap test.
static BOUND_VECTORS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Some line is throttled (the timer path's cheap test before taking the lock).
static THROTTLED: AtomicBool = AtomicBool::new(false);

fn set_bound(vector: u8, on: bool) {
    let (word, bit) = (usize::from(vector / 64), 1u64 << (vector % 64));
    if on {
        BOUND_VECTORS[word].fetch_or(bit, Ordering::Relaxed);
    } else {
        BOUND_VECTORS[word].fetch_and(!bit, Ordering::Relaxed);
    }
}

/// Whether `vector` is one of Linux's device lines (ISA, or a bound PCI line): its arrival goes
/// through [`on_arrival`].
pub fn is_line_vector(vector: u8) -> bool {
    let isa = hauki_abi::guest::ISA_VECTOR_BASE..hauki_abi::guest::ISA_VECTOR_BASE + hauki_abi::guest::ISA_LINES as u8;
    isa.contains(&vector) || BOUND_VECTORS[usize::from(vector / 64)].load(Ordering::Relaxed) & (1 << (vector % 64)) != 0
}

fn now_ns() -> u64 {
    tsc::ticks_to_ns(crate::arch::cpu::rdtsc())
}

/// The co-kernel's own lines: COM2's IRQ 3 (its telemetry UART).
const RESERVED: u16 = 1 << hauki_abi::guest::TELEMETRY_IRQ;

/// ACPI's SCI line (the FADT's), which no task may claim: Linux's ACPI needs it. 0xff: none.
static SCI: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0xff);

/// ACPI's SCI line, if the firmware names one below 16.
pub fn sci() -> Option<u8> {
    Some(SCI.load(Ordering::Relaxed)).filter(|&l| l < 16)
}

/// Takes the MADT's source overrides, the FADT's SCI and the storm limit (arrivals within 100 µs;
/// 0: never throttle); every line stays masked until Linux asks for it.
pub fn init(overrides: &[acpi::Override], sci: Option<u16>, storm_limit: u32) {
    if let Some(l) = sci.and_then(|l| u8::try_from(l).ok()) {
        SCI.store(l, Ordering::Relaxed);
    }
    let mut v: heapless::Vec<SourceOverride, 16> = heapless::Vec::new();
    for o in overrides {
        let _ = v.push(SourceOverride { isa_irq: o.isa_irq, gsi: o.gsi, flags: o.flags });
    }
    let mut lines = Lines::new(&v, RESERVED);
    lines.set_storm_limit(storm_limit);
    *LINES.lock() = Some(lines);
}

fn apply(lines: &Lines, irq: u32, action: Action) {
    let Action::Program { gsi, masked } = action else { return };
    let Some(line) = lines.line(irq) else { return };
    let Some(route) = line.route else { return };
    let Some((io, pin)) = ioapic::for_gsi(gsi) else { return };
    let entry = redirection_entry(route, line.vector, apic::id() as u8, masked);
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
                REFUSED.fetch_add(1, Ordering::Relaxed);
                u64::MAX
            }
        }
    })
}

/// An interrupt arrived (trap context, before the local APIC EOI): masks a level line's input,
/// and throttles a storming line.
pub fn on_arrival(vector: u8) {
    let mut g = LINES.lock();
    let Some(lines) = g.as_mut() else { return };
    if let Some(Arrival { irq, action, throttled }) = lines.arrive(vector, now_ns()) {
        apply(lines, irq, action);
        if throttled {
            THROTTLED.store(true, Ordering::Relaxed);
        }
    }
}

/// The co-kernel's timer (trap context): throttled lines whose time is up are released.
pub fn release_due() {
    if !THROTTLED.load(Ordering::Relaxed) {
        return;
    }
    let mut g = LINES.lock();
    let Some(lines) = g.as_mut() else { return };
    lines.release_due(now_ns(), apply);
    THROTTLED.store(lines.any_throttled(), Ordering::Relaxed);
}

/// Linux's `GSI_BIND` (interrupts off): binds PCI line `gsi` to Linux's `vector` (0: unbinds it).
/// 0, or u64::MAX when refused (counted).
pub fn bind(gsi: u32, vector: u8, level: bool, active_low: bool) -> u64 {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut g = LINES.lock();
        let Some(lines) = g.as_mut() else { return u64::MAX };
        let old = lines.line(gsi).map_or(0, |l| l.vector);
        let done = if vector == 0 {
            lines.unbind(gsi).map(|a| apply_masked(gsi, a))
        } else if crate::guest::vcpu::is_cokernel_vector(vector) {
            Err(Refusal::BadVector)
        } else {
            let has_pin = ioapic::for_gsi(gsi).is_some();
            lines.bind(gsi, vector, level, active_low, has_pin).map(|route| program_own(route, vector, true))
        };
        match done {
            Ok(()) => {
                if old != 0 {
                    set_bound(old, false);
                }
                if vector != 0 {
                    set_bound(vector, true);
                }
                0
            }
            Err(_) => {
                REFUSED.fetch_add(1, Ordering::Relaxed);
                u64::MAX
            }
        }
    })
}

/// Each line's interrupts and storms so far, and the lines throttled now (a bit each), from one
/// look at the table.
pub fn snapshot() -> LineCounts {
    let mut c = LineCounts::default();
    x86_64::instructions::interrupts::without_interrupts(|| {
        let g = LINES.lock();
        let Some(lines) = g.as_ref() else { return };
        for irq in 0..hauki_abi::guest::LINES {
            let Some(l) = lines.line(irq) else { continue };
            c.irqs[irq as usize] = l.count;
            c.storms[irq as usize] = l.storm.storms;
            if l.storm.throttled_until.is_some() {
                c.throttled |= 1 << irq;
            }
        }
    });
    c
}

/// Per-line counters ([`snapshot`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct LineCounts {
    /// Interrupts received on each line.
    pub irqs: [u64; hauki_abi::guest::LINES as usize],
    /// Storms detected on each line.
    pub storms: [u64; hauki_abi::guest::LINES as usize],
    /// The lines throttled now, a bit each.
    pub throttled: u32,
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
    REFUSED.load(Ordering::Relaxed)
}

/// Interrupts received on line `irq`.
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
    // The PCI lines are Linux's bindings: a restarted Linux binds them again.
    for gsi in hauki_abi::guest::ISA_LINES..hauki_abi::guest::LINES {
        let vector = lines.line(gsi).map_or(0, |l| l.vector);
        if let Ok(a) = lines.unbind(gsi) {
            apply_masked(gsi, a);
            set_bound(vector, false);
        }
    }
    lines.release_due(u64::MAX, |_, _, _| {});
}

/// Masks an input whose line was just unbound (its route is gone from the table).
fn apply_masked(gsi: u32, action: Action) {
    if let Action::Program { masked: true, .. } = action
        && let Some((io, pin)) = ioapic::for_gsi(gsi)
    {
        let entry = io.redirection(pin);
        io.set_redirection(pin, entry | 1 << 16);
    }
}
