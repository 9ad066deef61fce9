//! The co-kernel's one-shot timer: TSC-deadline when the CPU has it, else the LAPIC timer in
//! one-shot mode (what QEMU TCG offers). Tickless: nothing fires unless armed.
//!
//! Deadlines are absolute TSC values whichever hardware is used. In one-shot mode the count is
//! rounded up, and an interrupt that still arrives before the deadline re-arms for the rest, so the
//! callback never runs early.

use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::apic::{self, LVT_TSC_DEADLINE};
use super::cpu::rdtsc;
use super::frame::{TrapFrame, vectors};
use super::idt;
use super::percpu::{self, MAX_CPUS};
use super::tsc;
use x86_64::registers::model_specific::Msr;

const IA32_TSC_DEADLINE: u32 = 0x6e0;

/// The hardware behind the one-shot timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The LAPIC timer in TSC-deadline mode: `IA32_TSC_DEADLINE` holds the absolute deadline.
    TscDeadline,
    /// The LAPIC timer counting down in one-shot mode; deadlines are converted to counts.
    LapicOneshot,
}

impl Kind {
    /// The name the boot record uses (`tsc-deadline`, `lapic-oneshot`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::TscDeadline => "tsc-deadline",
            Kind::LapicOneshot => "lapic-oneshot",
        }
    }
}

static KIND: AtomicU8 = AtomicU8::new(0);
static LAPIC_HZ: AtomicU64 = AtomicU64::new(0);
/// Each CPU's armed deadline (its own LAPIC timer).
static DEADLINE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(u64::MAX) }; MAX_CPUS];
/// Expiries delivered to the callback.
pub static FIRED: AtomicU64 = AtomicU64::new(0);
/// TSC when the last expiry was handled.
pub static LAST_FIRE_TSC: AtomicU64 = AtomicU64::new(0);
static CALLBACK: AtomicUsize = AtomicUsize::new(0);
/// Arrivals later than this (TSC ticks) are attributed to the site they interrupted.
static LATE_TICKS: AtomicU64 = AtomicU64::new(u64::MAX);
/// Arrivals later than this are attributed (virtual ns under icount).
pub const LATE_NS: u64 = 150;
/// Where late timer interrupts landed: the hardware-off windows that held them (`rt::windows`).
pub static WINDOWS: spin::Mutex<crate::rt::windows::Windows> = spin::Mutex::new(crate::rt::windows::Windows::new());

/// The CPUs where another kernel (Linux, as the idle task) shares the LAPIC and may rewrite the
/// timer's registers (bit per CPU).
static SHARED: AtomicU32 = AtomicU32::new(0);

/// Whether another kernel shares this CPU's LAPIC (the one-shot path then rewrites LVT and
/// divider each time).
pub fn set_shared(on: bool) {
    let bit = 1 << percpu::this();
    if on {
        SHARED.fetch_or(bit, Ordering::Relaxed);
    } else {
        SHARED.fetch_and(!bit, Ordering::Relaxed);
        // The other kernel is gone from this CPU. Whatever it left in the timer's registers
        // (Linux masks the LVT and sets its own vector in `end_local_APIC_setup()`), the
        // co-kernel's setup goes back and the armed deadline is programmed again: from now on
        // nothing rewrites them at each arm, and a deadline whose interrupt was lost is no
        // longer caught at the switch point.
        x86_64::instructions::interrupts::without_interrupts(|| {
            setup_lvt();
            let deadline = DEADLINE[percpu::this()].load(Ordering::Relaxed);
            if deadline != u64::MAX {
                program(deadline, rdtsc());
            }
        });
    }
}

/// Called on expiry with the TSC at entry, interrupts off.
pub type Callback = fn(now: u64);

/// The hardware [`init`] chose (LAPIC one-shot before it ran).
pub fn kind() -> Kind {
    if KIND.load(Ordering::Relaxed) == 1 { Kind::TscDeadline } else { Kind::LapicOneshot }
}

/// The LAPIC timer's input frequency in Hz, as [`init`] measured it (divide by 1); 0 before.
pub fn lapic_hz() -> u64 {
    LAPIC_HZ.load(Ordering::Relaxed)
}

/// Sets a secondary CPU's LAPIC timer up as [`init`] chose on the boot CPU (same hardware, so
/// no calibration of its own).
pub fn init_secondary() {
    setup_lvt();
}

/// The divider and the LVT as [`init`] chose: divide by 1, the timer's vector, unmasked, in
/// TSC-deadline or one-shot mode.
fn setup_lvt() {
    apic::write(apic::REG_TIMER_DIVIDE, 0b1011);
    apic::write(apic::REG_LVT_TIMER, lvt());
}

fn lvt() -> u32 {
    let mode = if kind() == Kind::TscDeadline { LVT_TSC_DEADLINE } else { 0 };
    mode | u32::from(vectors::TIMER)
}

/// Calibrates the LAPIC timer against the TSC and selects the timer hardware.
pub fn init(tsc_deadline: bool, force_lapic: bool) -> Kind {
    apic::write(apic::REG_TIMER_DIVIDE, 0b1011); // divide by 1
    // First: calibration's windows each leave an interrupt pending, which the handler ignores
    // (no deadline armed) instead of its counting as a vector nobody handles.
    idt::register(vectors::TIMER, on_interrupt);
    LAPIC_HZ.store(calibrate(), Ordering::Relaxed);
    LATE_TICKS.store(tsc::ns_to_ticks(LATE_NS), Ordering::Relaxed);
    if tsc_deadline && !force_lapic {
        apic::write(apic::REG_LVT_TIMER, LVT_TSC_DEADLINE | u32::from(vectors::TIMER));
        KIND.store(1, Ordering::Relaxed);
        Kind::TscDeadline
    } else {
        apic::write(apic::REG_LVT_TIMER, u32::from(vectors::TIMER)); // one-shot
        KIND.store(2, Ordering::Relaxed);
        Kind::LapicOneshot
    }
}

/// The LAPIC timer's input frequency, measured against the TSC: the fastest of five short
/// windows. Under emulation the host may stop the guest inside a window, which only ever makes a
/// window look slower (a 48 MHz timer was seen on a loaded host, where 1 GHz was true): the
/// fastest window is the one no stall touched.
fn calibrate() -> u64 {
    (0..5)
        .map(|_| {
            let hz = calibrate_once();
            // The window's interrupt is pending: let it in (with no deadline armed the handler
            // ignores it), or the next window would see it at once.
            x86_64::instructions::interrupts::enable();
            for _ in 0..64 {
                core::hint::spin_loop();
            }
            x86_64::instructions::interrupts::disable();
            hz
        })
        .max()
        .unwrap_or(0)
}

/// One window of [`calibrate`]: arm a one-shot count and wait (interrupts off) for the timer
/// vector to become pending in the IRR. Polling the IRR rather than reading the current-count
/// register keeps QEMU's `-icount` mode usable with x2APIC (QEMU cannot read its virtual clock
/// from an MSR access under icount).
fn calibrate_once() -> u64 {
    const COUNT: u32 = 100_000;
    let irr = apic::REG_IRR + 0x10 * (u32::from(vectors::TIMER) / 32);
    let bit = 1u32 << (vectors::TIMER % 32);
    x86_64::instructions::interrupts::without_interrupts(|| {
        apic::write(apic::REG_LVT_TIMER, u32::from(vectors::TIMER)); // one-shot, unmasked
        let t0 = rdtsc();
        apic::write(apic::REG_TIMER_INITIAL, COUNT);
        let limit = tsc::ns_to_ticks(100_000_000);
        while apic::read(irr) & bit == 0 && rdtsc() - t0 <= limit {
            core::hint::spin_loop(); // (no interrupt in 100 ms: report what was measured)
        }
        let t1 = rdtsc();
        apic::write(apic::REG_LVT_TIMER, apic::LVT_MASKED | u32::from(vectors::TIMER));
        // The pending interrupt is delivered once interrupts are enabled; with no deadline armed
        // the handler ignores it.
        (u128::from(COUNT) * u128::from(tsc::hz()) / u128::from((t1 - t0).max(1))) as u64
    })
}

/// Sets the function run on expiry.
pub fn set_callback(f: Callback) {
    CALLBACK.store(f as usize, Ordering::Release);
}

/// Arms the timer for absolute TSC `deadline` (replacing any earlier one).
pub fn arm_at(deadline: u64) {
    DEADLINE[percpu::this()].store(deadline, Ordering::Relaxed);
    program(deadline, rdtsc());
}

/// Disarms the timer.
pub fn cancel() {
    DEADLINE[percpu::this()].store(u64::MAX, Ordering::Relaxed);
    match kind() {
        // SAFETY: writing 0 to IA32_TSC_DEADLINE disarms it.
        Kind::TscDeadline => unsafe { Msr::new(IA32_TSC_DEADLINE).write(0) },
        Kind::LapicOneshot => apic::write(apic::REG_TIMER_INITIAL, 0),
    }
}

fn program(deadline: u64, now: u64) {
    let shared = SHARED.load(Ordering::Relaxed) & (1 << percpu::this()) != 0;
    match kind() {
        Kind::TscDeadline => {
            if shared {
                // Linux shares the LAPIC and may have masked the LVT or put it in one-shot mode
                // (`end_local_APIC_setup()`), where a deadline written to the MSR is ignored.
                apic::write(apic::REG_LVT_TIMER, lvt());
            }
            // SAFETY: the LVT is in TSC-deadline mode; a past deadline fires at once.
            unsafe { Msr::new(IA32_TSC_DEADLINE).write(deadline.max(1)) }
        }
        Kind::LapicOneshot => {
            if shared {
                // Linux shares the LAPIC and may have rewritten the timer's LVT or divider.
                setup_lvt();
            }
            let delta = deadline.saturating_sub(now);
            let hz = u128::from(tsc::hz().max(1));
            let count = (u128::from(delta) * u128::from(lapic_hz())).div_ceil(hz);
            apic::write(apic::REG_TIMER_INITIAL, count.clamp(1, u128::from(u32::MAX)) as u32);
        }
    }
}

fn on_interrupt(frame: &mut TrapFrame) {
    let now = rdtsc();
    let slot = &DEADLINE[percpu::this()];
    let deadline = slot.load(Ordering::Relaxed);
    if deadline == u64::MAX {
        return; // cancelled after it was already pending
    }
    if now < deadline {
        program(deadline, now); // counter rounding or a clamped long deadline: wait for the rest
        return;
    }
    if now - deadline > LATE_TICKS.load(Ordering::Relaxed) {
        attribute(frame, now - deadline);
    }
    slot.store(u64::MAX, Ordering::Relaxed);
    FIRED.fetch_add(1, Ordering::Relaxed);
    LAST_FIRE_TSC.store(now, Ordering::Relaxed);
    let cb = CALLBACK.load(Ordering::Acquire);
    if cb != 0 {
        // SAFETY: only `set_callback` stores here, and it stores a `Callback`.
        let cb: Callback = unsafe { core::mem::transmute::<usize, Callback>(cb) };
        cb(now);
    }
}

/// A switch point found this CPU's deadline `late` ticks past with no interrupt for it (trap
/// context, interrupts off): if the timer's vector is not even pending, the interrupt was lost
/// (the guest masked or reprogrammed the shared timer) and the lateness is attributed to
/// [`Site::Unseen`](crate::rt::windows::Site::Unseen); a pending one is merely arriving late.
pub fn note_unseen(late: u64) {
    let irr = apic::REG_IRR + 0x10 * (u32::from(vectors::TIMER) / 32);
    if late > LATE_TICKS.load(Ordering::Relaxed)
        && apic::read(irr) & (1 << (vectors::TIMER % 32)) == 0
        && let Some(mut w) = WINDOWS.try_lock()
    {
        w.record(crate::rt::windows::Site::Unseen, late);
    }
}

/// A late arrival: the interrupted instruction is where the hardware flag came back on.
#[cold]
fn attribute(frame: &TrapFrame, late: u64) {
    use crate::rt::windows::Site;
    let site = if frame.cs & 3 == 3 { Site::User } else { Site::At(frame.rip) };
    // Trap context, interrupts off: readers take the lock with interrupts off too.
    if let Some(mut w) = WINDOWS.try_lock() {
        w.record(site, late);
    }
}
