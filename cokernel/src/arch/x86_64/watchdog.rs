//! Linux's faults are Linux's. When Linux panics, reboots, powers itself off, or gets stuck with
//! its virtual flag off (an event waiting longer than `hauki.linux_watchdog_ms`), the co-kernel
//! takes the idle context back at the next switch to it, while its real-time tasks run on
//! undisturbed, and then — on the idle context, preemptible by every task — reports on COM2,
//! stops the bus masters the dead Linux left running, and either loads Linux again from the boot
//! modules it kept (`hauki.linux_failure=restart`, the default, at most `hauki.linux_max_restarts`
//! times) or leaves the CPU idle (`halt`; always after a power-off).

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use super::idt::TrapFrame;
use super::{apic, console, gdt, guest, idt, irqchip, linux, mm, pci, tsc};
use crate::cmdline;

/// Why Linux stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Failure {
    PoweredOff = 1,
    Reboot = 2,
    Panic = 3,
    Stuck = 4,
    /// A CPU exception Linux had no handler for.
    Fault = 5,
}

impl Failure {
    fn from_u8(v: u8) -> Option<Failure> {
        Some(match v {
            1 => Failure::PoweredOff,
            2 => Failure::Reboot,
            3 => Failure::Panic,
            4 => Failure::Stuck,
            5 => Failure::Fault,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Failure::PoweredOff => "powered-off",
            Failure::Reboot => "rebooted",
            Failure::Panic => "panicked",
            Failure::Stuck => "stuck",
            Failure::Fault => "faulted",
        }
    }
}

/// A take-over asked for and not yet done (0: none).
static REQUEST: AtomicU8 = AtomicU8::new(0);
/// The failure being handled, for the report on the idle context.
static HANDLING: AtomicU8 = AtomicU8::new(0);
static RESTART: AtomicU8 = AtomicU8::new(1);
static WATCHDOG_TICKS: AtomicU64 = AtomicU64::new(0);
static MAX_RESTARTS: AtomicU64 = AtomicU64::new(DEFAULT_MAX_RESTARTS);
static STACK_TOP: AtomicU64 = AtomicU64::new(0);
/// Linux restarts so far.
pub static RESTARTS: AtomicU64 = AtomicU64::new(0);
/// Take-overs so far (restarts and halts).
pub static FAILURES: AtomicU64 = AtomicU64::new(0);

pub const DEFAULT_WATCHDOG_MS: u64 = 2000;
pub const DEFAULT_MAX_RESTARTS: u64 = 16;

/// Reads the policy from the command line and sets aside the stack the take-over runs on.
pub fn init(line: &str) {
    RESTART.store(u8::from(cmdline::get(line, "hauki.linux_failure") != Some("halt")), Ordering::Relaxed);
    let ms = cmdline::get(line, "hauki.linux_watchdog_ms").and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_WATCHDOG_MS);
    WATCHDOG_TICKS.store(tsc::ns_to_ticks(ms.saturating_mul(1_000_000)), Ordering::Relaxed);
    if let Some(n) = cmdline::get(line, "hauki.linux_max_restarts").and_then(|v| v.parse().ok()) {
        MAX_RESTARTS.store(n, Ordering::Relaxed);
    }
    STACK_TOP.store(mm::alloc_stack(), Ordering::Relaxed);
}

/// Linux told the co-kernel it stops (its context, interrupts off): the wake-up interrupt brings
/// the switch point, which takes the idle context over.
pub fn linux_stopped(why: Failure) {
    REQUEST.store(why as u8, Ordering::Release);
    apic::send_ipi(apic::id(), u32::from(idt::vectors::WAKEUP));
}

/// The exception (vector, RIP) Linux had no handler for, for the report.
static FAULT: AtomicU64 = AtomicU64::new(0);

/// Linux took an exception it has no gate for (trap context): the switch point takes over.
pub fn linux_faulted(vector: u8, rip: u64) {
    FAULT.store((u64::from(vector) << 56) | (rip & 0x00ff_ffff_ffff_ffff), Ordering::Relaxed);
    REQUEST.store(Failure::Fault as u8, Ordering::Release);
}

/// The watchdog (from the telemetry task): an event has waited for Linux longer than allowed.
pub fn check(now: u64) {
    let limit = WATCHDOG_TICKS.load(Ordering::Relaxed);
    if limit == 0 || !guest::active() || !guest::soft() || REQUEST.load(Ordering::Acquire) != 0 {
        return;
    }
    if guest::pending_for(now).is_some_and(|t| t > limit) {
        REQUEST.store(Failure::Stuck as u8, Ordering::Release);
    }
}

/// At the switch point, about to resume the idle context (interrupts off): if a take-over was
/// asked for, forget the guest and return the frame that runs [`take_over`] instead.
pub fn take_over_frame() -> Option<*mut TrapFrame> {
    let req = REQUEST.swap(0, Ordering::AcqRel);
    Failure::from_u8(req)?;
    HANDLING.store(req, Ordering::Release);
    guest::reset();
    super::rt::clear_linux_timer();
    irqchip::reset();
    // SAFETY: the take-over stack is the co-kernel's, used by nothing else (the dead Linux's
    // context is abandoned; a second take-over comes only after `enter_guest` left this stack).
    let frame = unsafe { super::rt::initial_frame(STACK_TOP.load(Ordering::Relaxed), take_over as *const () as u64, 0, 0) };
    Some(frame as *mut TrapFrame)
}

/// The idle context after Linux died: the co-kernel's tables back, the dead Linux's bus masters
/// stopped, a report, then Linux again or idle. Interrupts are on: every task preempts this.
extern "C" fn take_over() -> ! {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: the co-kernel's own page table maps this code and stack; its GDT and TSS are
        // intact (Linux's, about to be overwritten, must not stay loaded).
        unsafe {
            x86_64::registers::control::Cr3::write(
                x86_64::structures::paging::PhysFrame::containing_address(x86_64::PhysAddr::new(mm::kernel_pml4())),
                x86_64::registers::control::Cr3Flags::empty(),
            );
        }
        gdt::reload();
    });
    let why = Failure::from_u8(HANDLING.load(Ordering::Acquire)).unwrap_or(Failure::Stuck);
    FAILURES.fetch_add(1, Ordering::Relaxed);
    let stopped = pci::stop_bus_masters();
    let restarts = RESTARTS.load(Ordering::Relaxed);
    let restart = RESTART.load(Ordering::Relaxed) == 1 && why != Failure::PoweredOff && restarts < MAX_RESTARTS.load(Ordering::Relaxed);
    console::record("linux", |r| {
        r.str("state", why.name())
            .str("action", if restart { "restart" } else { "halt" })
            .u64("restarts", restarts)
            .u64("bus_masters_stopped", u64::from(stopped));
        if why == Failure::Fault {
            let f = FAULT.load(Ordering::Relaxed);
            r.u64("vector", f >> 56).hex("rip", f | 0xff00_0000_0000_0000);
        }
    });
    log::warn!(
        "Linux {}; the real-time tasks run on; {}",
        why.name(),
        if restart { "restarting Linux" } else { "Linux stays halted" }
    );
    if restart {
        match linux::reload() {
            Ok((entry, boot_params)) => {
                RESTARTS.fetch_add(1, Ordering::Relaxed);
                linux::enter_guest(entry, boot_params);
            }
            Err(e) => {
                console::record("linux", |r| {
                    r.str("state", "refused").str("reason", "restart-failed").str("message", e);
                });
                log::warn!("Linux could not be restarted: {e}");
            }
        }
    }
    loop {
        super::idle_once();
    }
}
