//! The one place the co-kernel's counters are read from: telemetry and the status page take
//! snapshots here instead of reaching into each subsystem's statics.

use crate::arch::{idt, timer, tsc};
use crate::guest::{irqchip, loader, supervisor, vcpu, vtimer};
use crate::rt::windows::Windows;

/// What the co-kernel has done for Linux since boot.
#[derive(Clone, Copy, Debug, Default)]
pub struct Guest {
    /// Linux runs as the idle task now.
    pub running: bool,
    /// Linux's soft interrupt flag is live (it registered its vCPU block).
    pub soft_irq: bool,
    /// IDTs Linux registered.
    pub idt_loads: u64,
    /// From the last entry into Linux to its first IDT registration (its early boot).
    pub entry_to_idt_ns: u64,
    /// Linux's events: forwarded, logged, replayed, upcalls, dropped for want of a gate, LDT
    /// returns.
    pub events: vcpu::Counts,
    /// Clock events raised for Linux (its deadline passed).
    pub timer_events: u64,
    /// Linux's `SET_TIMER` calls.
    pub timer_sets: u64,
    /// Interrupts per line (ISA IRQs 0..15, PCI lines 16..23).
    pub line_irqs: [u64; hauki_abi::guest::LINES as usize],
    /// Interrupt storms detected per line (each throttled).
    pub line_storms: [u64; hauki_abi::guest::LINES as usize],
    /// Lines throttled now, a bit each.
    pub lines_throttled: u32,
    /// Line calls refused.
    pub line_calls_refused: u64,
    /// Take-overs: Linux died or was stuck (each ends in a restart or a halt).
    pub failures: u64,
    /// Restarts of Linux.
    pub restarts: u64,
    /// Heartbeats the watchdog logged for Linux.
    pub heartbeats: u64,
    /// Checks where the watchdog excused a Linux CPU that took nothing because another Linux CPU
    /// had no time to run.
    pub watchdog_excused: u64,
    /// Calls from Linux refused.
    pub calls_refused: u64,
}

/// A snapshot of Linux's counters.
pub fn guest() -> Guest {
    let (idt_loads, entry_to_idt) = loader::idt_loads();
    let (timer_events, timer_sets) = vtimer::counts();
    let (failures, restarts, heartbeats) = supervisor::counts();
    let lines = irqchip::snapshot();
    Guest {
        running: vcpu::running(),
        soft_irq: vcpu::soft(),
        idt_loads,
        entry_to_idt_ns: tsc::ticks_to_ns(entry_to_idt),
        events: vcpu::counts(),
        timer_events,
        timer_sets,
        line_irqs: lines.irqs,
        line_storms: lines.storms,
        lines_throttled: lines.throttled,
        line_calls_refused: irqchip::refused(),
        failures,
        restarts,
        heartbeats,
        watchdog_excused: supervisor::excused(),
        calls_refused: super::linux_calls::refused(),
    }
}

/// Interrupts the co-kernel took that nobody asked for, since boot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stray {
    /// Spurious interrupts (the LAPIC's spurious vector, the legacy PIC's IRQ 7 and 15): no EOI.
    pub spurious: u64,
    /// Interrupts on a vector with no handler while Linux was not running (while it runs, such a
    /// vector is Linux's).
    pub unexpected: u64,
    /// The latest vector of an unexpected interrupt.
    pub last_unexpected_vector: u8,
}

/// A snapshot of the stray interrupts.
pub fn stray() -> Stray {
    let (spurious, unexpected, last_unexpected_vector) = idt::stray();
    Stray { spurious, unexpected, last_unexpected_vector }
}

/// The hardware-off windows the timer attributed late interrupts to (a copy taken with interrupts
/// off for the copy only).
pub fn windows() -> Windows {
    x86_64::instructions::interrupts::without_interrupts(|| *timer::WINDOWS.lock())
}

/// Arrivals later than this (ns) are attributed to a window.
pub const LATE_NS: u64 = timer::LATE_NS;
