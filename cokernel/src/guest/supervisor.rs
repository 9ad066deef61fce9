//! Linux's failures end Linux, never the co-kernel (contract C9). When Linux panics, reboots,
//! powers itself off, faults where it has no handler, or is stuck (it takes no event for
//! `hauki.linux_watchdog_ms`: spinning or halted with its virtual flag off, looping in faults, or
//! never registering its IDT; the judgement is [`crate::guest::watchdog`]'s), the co-kernel takes
//! the idle context back at the next switch to it, while its real-time tasks run on undisturbed,
//! and then — on the idle context, preemptible by every task — reports on COM2, stops the bus
//! masters the dead Linux left running, and either loads Linux again from the boot modules it
//! kept (`hauki.linux_failure=restart`, the default, at most `hauki.linux_max_restarts` times) or
//! leaves the CPU idle (`halt`; always after a power-off).

use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use super::watchdog::{Verdict, Watchdog};
use super::{irqchip, loader, vcpu, vtimer};
use crate::arch::frame::{self, TrapFrame};
use crate::arch::percpu::{self, MAX_CPUS};
use crate::arch::{apic, console, gdt, mm, pci, tsc};
use crate::cmdline;

/// Linux's failures (take-overs), restarts, and the heartbeats the watchdog logged for it.
pub fn counts() -> (u64, u64, u64) {
    (FAILURES.load(Ordering::Relaxed), RESTARTS.load(Ordering::Relaxed), HEARTBEATS.load(Ordering::Relaxed))
}

/// Why Linux stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Failure {
    /// Linux powered itself off (`SHUTDOWN_OFF`): never restarted.
    PoweredOff = 1,
    /// Linux rebooted (`SHUTDOWN_REBOOT`).
    Reboot = 2,
    /// Linux panicked (`SHUTDOWN_PANIC`).
    Panic = 3,
    /// The watchdog found Linux taking no events (`crate::guest::watchdog`).
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

    /// The `state` the `linux` record gives (`powered-off`, `rebooted`, `panicked`, `stuck`,
    /// `faulted`).
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
static BOOT_WATCHDOG_TICKS: AtomicU64 = AtomicU64::new(0);
static MAX_RESTARTS: AtomicU64 = AtomicU64::new(DEFAULT_MAX_RESTARTS);
static STACK_TOP: AtomicU64 = AtomicU64::new(0);
/// Per CPU: the stack a CPU Linux ran on goes back to the co-kernel's idle loop on, when
/// Linux stops as a whole (set aside at `init`, like the take-over's).
static EVICT_STACK: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// CPUs that must leave Linux at their next switch point (bit per CPU).
static EVICT: AtomicU32 = AtomicU32::new(0);
/// Linux restarts so far.
static RESTARTS: AtomicU64 = AtomicU64::new(0);
/// Take-overs so far (restarts and halts).
static FAILURES: AtomicU64 = AtomicU64::new(0);

/// `hauki.linux_watchdog_ms` when the command line does not set it.
pub const DEFAULT_WATCHDOG_MS: u64 = 2000;
/// `hauki.linux_boot_watchdog_ms` when the command line does not set it: the limit until Linux
/// takes its first event (early boot runs with interrupts off for long stretches, and under
/// emulation on a busy host far longer than on hardware).
pub const DEFAULT_BOOT_WATCHDOG_MS: u64 = 30_000;
/// `hauki.linux_max_restarts` when the command line does not set it.
pub const DEFAULT_MAX_RESTARTS: u64 = 16;
/// Checks per `hauki.linux_watchdog_ms`: Linux is stuck after this many checks in a row that
/// found it had the CPU and took nothing (and the limit passed).
pub const CHECKS_PER_LIMIT: u32 = 8;
/// Heartbeats logged for Linux (the watchdog's spare clock events).
static HEARTBEATS: AtomicU64 = AtomicU64::new(0);
/// How long the last stuck Linux had gone without taking an event (TSC ticks), for the report.
static STUCK_WAITED: AtomicU64 = AtomicU64::new(0);
static STUCK_BOOTING: AtomicU8 = AtomicU8::new(0);

/// Reads the policy from the command line and sets aside the stack the take-over runs on.
pub fn init(line: &str) {
    RESTART.store(u8::from(cmdline::get(line, hauki_abi::cmdline::LINUX_FAILURE) != Some("halt")), Ordering::Relaxed);
    // At most a day; 0 turns the watchdog off.
    let ms_key = |key: &str, default: u64| cmdline::number_or(line, key, 0..=86_400_000, default, " ms");
    let ms = ms_key(hauki_abi::cmdline::LINUX_WATCHDOG_MS, DEFAULT_WATCHDOG_MS);
    WATCHDOG_TICKS.store(tsc::ns_to_ticks(ms * 1_000_000), Ordering::Relaxed);
    let boot_ms = ms_key(hauki_abi::cmdline::LINUX_BOOT_WATCHDOG_MS, DEFAULT_BOOT_WATCHDOG_MS).max(ms);
    BOOT_WATCHDOG_TICKS.store(tsc::ns_to_ticks(boot_ms * 1_000_000), Ordering::Relaxed);
    CHECK_PERIOD_NS.store(ms * 1_000_000 / u64::from(CHECKS_PER_LIMIT), Ordering::Relaxed);
    let restarts =
        cmdline::number_or(line, hauki_abi::cmdline::LINUX_MAX_RESTARTS, 0..=u64::MAX, DEFAULT_MAX_RESTARTS, "");
    MAX_RESTARTS.store(restarts, Ordering::Relaxed);
    STACK_TOP.store(mm::alloc_stack(), Ordering::Relaxed);
    let linux = vcpu::linux_cpus();
    for (cpu, top) in EVICT_STACK.iter().enumerate() {
        if cpu != vcpu::LINUX_CPU && linux & (1 << cpu) != 0 {
            top.store(mm::alloc_stack(), Ordering::Relaxed);
        }
    }
}

/// The switch point of Linux's boot CPU handles a failure: wake it from another CPU.
fn wake_linux_cpu() {
    if percpu::this() != vcpu::LINUX_CPU
        && let Some(id) = percpu::apic_id(vcpu::LINUX_CPU)
    {
        apic::send_fixed(id, frame::vectors::WAKEUP);
    }
}

/// Linux told the co-kernel it stops (its context, interrupts off): the wake-up interrupt brings
/// the switch point, which takes the idle context over.
pub fn linux_stopped(why: Failure) {
    REQUEST.store(why as u8, Ordering::Release);
    apic::send_ipi(apic::id(), u32::from(frame::vectors::WAKEUP));
    wake_linux_cpu();
}

/// The exception (vector, RIP) Linux had no handler for, for the report.
static FAULT: AtomicU64 = AtomicU64::new(0);

/// Linux took an exception it has no gate for (trap context): the switch point takes over.
pub fn linux_faulted(vector: u8, rip: u64) {
    FAULT.store((u64::from(vector) << 56) | (rip & 0x00ff_ffff_ffff_ffff), Ordering::Relaxed);
    REQUEST.store(Failure::Fault as u8, Ordering::Release);
    wake_linux_cpu();
}

/// Where Linux's stack ran out, when an interrupt's entry found no room on it (0: never).
static STACK_OVERFLOW_RSP: AtomicU64 = AtomicU64::new(0);

/// An interrupt's entry double-faulted on Linux's exhausted stack (trap context); the take-over
/// reports the stack pointer.
pub fn note_stack_overflow(rsp: u64) {
    STACK_OVERFLOW_RSP.store(rsp, Ordering::Relaxed);
}

/// How often the watchdog task checks (ns); 0 when the watchdog is off.
static CHECK_PERIOD_NS: AtomicU64 = AtomicU64::new(0);

/// The watchdog task's period (ns), if Linux runs as the guest with a watchdog.
pub fn check_period_ns() -> Option<u64> {
    Some(CHECK_PERIOD_NS.load(Ordering::Relaxed)).filter(|&p| p > 0)
}

/// Per CPU: the judgement for Linux entered there `entries` times so far.
static STATE: [spin::Mutex<Option<(u64, Watchdog)>>; MAX_CPUS] = [const { spin::Mutex::new(None) }; MAX_CPUS];
/// The CPU the last stuck Linux was found stuck on, for the report.
static STUCK_CPU: AtomicU64 = AtomicU64::new(0);

const _: () = assert!(MAX_CPUS <= super::watchdog::CPUS);

/// Checks that found Linux on one CPU would be judged stuck but another of its CPUs had had no
/// time to run (lock-holder preemption; `guest` record `watchdog_excused`).
static EXCUSED: AtomicU64 = AtomicU64::new(0);

/// Checks the watchdog excused (see [`EXCUSED`]).
pub fn excused() -> u64 {
    EXCUSED.load(Ordering::Relaxed)
}

/// One check of Linux on CPU `cpu` (the watchdog task, every [`check_period_ns`], for each CPU
/// Linux runs on), told the CPU time Linux (the idle context) has had on each CPU it runs on
/// (`None` elsewhere): keeps a heartbeat pending for Linux on that CPU and asks for a take-over
/// when Linux has stopped taking its events there while all its CPUs had time to run.
pub fn check(cpu: usize, linux_ticks: &[Option<u64>; MAX_CPUS]) {
    let limit = WATCHDOG_TICKS.load(Ordering::Relaxed);
    // Only while Linux runs on its boot CPU (not while a take-over gathers its other CPUs), and
    // on this one.
    let on = vcpu::running_on();
    if limit == 0
        || cpu >= MAX_CPUS
        || on & (1 << vcpu::LINUX_CPU) == 0
        || on & (1 << cpu) == 0
        || REQUEST.load(Ordering::Acquire) != 0
    {
        return;
    }
    let (entries, mut o) = vcpu::progress(cpu);
    o.cpu = linux_ticks[cpu].unwrap_or(0);
    for (c, t) in linux_ticks.iter().enumerate() {
        o.others[c] = t.filter(|_| c != cpu);
    }
    let mut state = STATE[cpu].lock();
    let w = match &mut *state {
        Some((e, w)) if *e == entries => w,
        s => {
            let w = Watchdog::new(limit, BOOT_WATCHDOG_TICKS.load(Ordering::Relaxed), CHECKS_PER_LIMIT, o);
            &mut s.insert((entries, w)).1
        }
    };
    let verdict = w.check(o);
    if w.excused() {
        EXCUSED.fetch_add(1, Ordering::Relaxed);
    }
    match verdict {
        Verdict::Alive => {}
        Verdict::Heartbeat => {
            HEARTBEATS.fetch_add(1, Ordering::Relaxed);
            x86_64::instructions::interrupts::without_interrupts(|| {
                vcpu::log_pending_on(cpu, hauki_abi::guest::VECTOR_LINUX_TIMER)
            });
        }
        Verdict::Stuck { waited, booting } => {
            STUCK_WAITED.store(waited, Ordering::Relaxed);
            STUCK_BOOTING.store(u8::from(booting), Ordering::Relaxed);
            STUCK_CPU.store(cpu as u64, Ordering::Relaxed);
            REQUEST.store(Failure::Stuck as u8, Ordering::Release);
            wake_linux_cpu();
        }
    }
}

/// At the switch point, about to resume the idle context (interrupts off): if a take-over was
/// asked for, forget the guest and return the frame that runs `take_over` instead.
pub fn take_over_frame() -> Option<*mut TrapFrame> {
    let req = REQUEST.swap(0, Ordering::AcqRel);
    Failure::from_u8(req)?;
    #[cfg(feature = "ktest")]
    if testing::DRY_RUN.load(Ordering::Relaxed) {
        testing::CAUGHT.store(req, Ordering::Release);
        return None;
    }
    HANDLING.store(req, Ordering::Release);
    // This CPU leaves Linux now; Linux's other CPUs at their next switch point. The take-over
    // forgets Linux once all have.
    vcpu::leave();
    vtimer::clear_this();
    let others = vcpu::running_on() & !(1 << percpu::this());
    EVICT.fetch_or(others, Ordering::AcqRel);
    for cpu in (0..MAX_CPUS).filter(|c| others & (1 << c) != 0) {
        if let Some(id) = percpu::apic_id(cpu) {
            apic::send_fixed(id, frame::vectors::WAKEUP);
        }
    }
    // SAFETY: the take-over stack is the co-kernel's, used by nothing else (the dead Linux's
    // context is abandoned; a second take-over comes only after `enter_guest` left this stack).
    let frame = unsafe { frame::initial_frame(STACK_TOP.load(Ordering::Relaxed), take_over as *const () as u64, 0, 0) };
    Some(frame as *mut TrapFrame)
}

/// At the switch point of a CPU other than Linux's boot CPU, about to resume the idle context
/// (Linux) there (interrupts off): if Linux is being taken down, this CPU leaves it, and the
/// frame returned runs the co-kernel's idle loop on this CPU's eviction stack instead.
pub fn evict_frame() -> Option<*mut TrapFrame> {
    let cpu = percpu::this();
    let bit = 1 << cpu;
    if EVICT.load(Ordering::Acquire) & bit == 0 {
        return None;
    }
    EVICT.fetch_and(!bit, Ordering::AcqRel);
    let top = EVICT_STACK[cpu].load(Ordering::Relaxed);
    if top == 0 {
        return None;
    }
    vcpu::leave();
    vtimer::clear_this();
    // SAFETY: this CPU's eviction stack, used by nothing else (the abandoned Linux context was
    // the only other thing this CPU's idle context ran on).
    let frame = unsafe { frame::initial_frame(top, evicted as *const () as u64, 0, 0) };
    Some(frame as *mut TrapFrame)
}

/// A secondary's idle context after Linux left it: the co-kernel's page table and GDT back, then
/// the co-kernel's idle loop, until Linux starts the CPU again.
extern "C" fn evicted() -> ! {
    own_tables();
    secondary_idle()
}

/// This CPU back on the co-kernel's own page table and GDT/TSS (Linux's, which Linux may
/// overwrite or free from now on, must not stay loaded).
fn own_tables() {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: the co-kernel's own page table maps this code and stack; its GDT and TSS are
        // intact.
        unsafe {
            x86_64::registers::control::Cr3::write(
                x86_64::structures::paging::PhysFrame::containing_address(x86_64::PhysAddr::new(mm::kernel_pml4())),
                x86_64::registers::control::Cr3Flags::empty(),
            );
        }
        gdt::reload(percpu::this());
    });
}

/// The idle loop of a CPU Linux may share but does not run on (yet, or again): halted between
/// interrupts until Linux starts it (`CPU_START`), then Linux is its idle context.
pub fn secondary_idle() -> ! {
    loop {
        // With interrupts off between the look and the halt (`sti; hlt`), a start Linux asks
        // for (`CPU_START`, with the wake-up IPI) is never missed.
        x86_64::instructions::interrupts::disable();
        if let Some(start) = vcpu::take_start() {
            loader::enter_secondary(start);
        }
        crate::arch::idle_once();
    }
}

/// The idle context after Linux died: the co-kernel's tables back, the dead Linux's bus masters
/// stopped, a report, then Linux again or idle. Interrupts are on: every task preempts this.
extern "C" fn take_over() -> ! {
    own_tables();
    // Linux's other CPUs leave it at their next switch point (an idle moment on each, between
    // its real-time tasks); nothing of Linux is touched before they all have.
    while vcpu::running() {
        core::hint::spin_loop();
    }
    x86_64::instructions::interrupts::without_interrupts(|| {
        vcpu::reset();
        vtimer::clear();
        irqchip::reset();
    });
    let why = Failure::from_u8(HANDLING.load(Ordering::Acquire)).unwrap_or(Failure::Stuck);
    FAILURES.fetch_add(1, Ordering::Relaxed);
    let stopped = pci::stop_bus_masters();
    let restarts = RESTARTS.load(Ordering::Relaxed);
    let restart = RESTART.load(Ordering::Relaxed) == 1
        && why != Failure::PoweredOff
        && restarts < MAX_RESTARTS.load(Ordering::Relaxed);
    console::record("linux", |r| {
        r.str("state", why.name())
            .str("action", if restart { "restart" } else { "halt" })
            .u64("restarts", restarts)
            .u64("bus_masters_stopped", u64::from(stopped));
        if why == Failure::Fault {
            let f = FAULT.load(Ordering::Relaxed);
            r.u64("vector", f >> 56).hex("rip", f | 0xff00_0000_0000_0000);
            let rsp = STACK_OVERFLOW_RSP.swap(0, Ordering::Relaxed);
            if rsp != 0 {
                r.str("cause", "stack-overflow").hex("rsp", rsp);
            }
        }
        if why == Failure::Stuck {
            r.u64("waited_ns", tsc::ticks_to_ns(STUCK_WAITED.load(Ordering::Relaxed)))
                .u64("cpu", STUCK_CPU.load(Ordering::Relaxed))
                .str("phase", if STUCK_BOOTING.load(Ordering::Relaxed) == 1 { "boot" } else { "running" });
        }
    });
    log::warn!(
        "Linux {}; the real-time tasks run on; {}",
        why.name(),
        if restart { "restarting Linux" } else { "Linux stays halted" }
    );
    if restart {
        match loader::reload() {
            Ok((entry, boot_params)) => {
                RESTARTS.fetch_add(1, Ordering::Relaxed);
                loader::enter_guest(entry, boot_params);
            }
            Err(e) => {
                console::record("linux", |r| {
                    r.str("state", "refused").str("reason", "restart-failed").fmt("message", format_args!("{e}"));
                });
                log::warn!("Linux could not be restarted: {e}");
            }
        }
    }
    loop {
        crate::arch::idle_once();
    }
}

/// For the in-kernel tests: the watchdog judges a synthetic guest, and what it would have done is
/// kept instead of done.
#[cfg(feature = "ktest")]
pub mod testing {
    use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

    use super::{
        BOOT_WATCHDOG_TICKS, CHECK_PERIOD_NS, CHECKS_PER_LIMIT, Failure, STACK_OVERFLOW_RSP, STUCK_BOOTING,
        STUCK_WAITED, TrapFrame, WATCHDOG_TICKS, tsc,
    };

    pub(super) static DRY_RUN: AtomicBool = AtomicBool::new(false);
    pub(super) static CAUGHT: AtomicU8 = AtomicU8::new(0);
    static RESUME_AFTER_OVERFLOW: AtomicU64 = AtomicU64::new(0);

    /// The next stack overflow caught in an interrupt's entry resumes at `rip`, interrupts off
    /// (the synthetic guest's stack is not worth returning to; a dry run keeps the frame).
    pub fn resume_after_overflow(rip: u64) {
        RESUME_AFTER_OVERFLOW.store(rip, Ordering::Relaxed);
    }

    /// Called on a caught stack overflow: points `frame` at the resume point, if one was set.
    pub fn redirect_after_overflow(frame: &mut TrapFrame) {
        let rip = RESUME_AFTER_OVERFLOW.swap(0, Ordering::Relaxed);
        if rip != 0 {
            frame.rip = rip;
            frame.rflags &= !0x200;
        }
    }

    /// The stack pointer of the last caught overflow (0: none), taken.
    pub fn take_overflow_rsp() -> u64 {
        STACK_OVERFLOW_RSP.swap(0, Ordering::Relaxed)
    }

    /// Judges with these limits and keeps verdicts instead of acting on them. Returns the check
    /// period (ns) when this is the first call, for the caller to start the watchdog task with.
    pub fn arm(limit_ms: u64, boot_limit_ms: u64) -> Option<u64> {
        DRY_RUN.store(true, Ordering::Relaxed);
        WATCHDOG_TICKS.store(tsc::ns_to_ticks(limit_ms * 1_000_000), Ordering::Relaxed);
        BOOT_WATCHDOG_TICKS.store(tsc::ns_to_ticks(boot_limit_ms * 1_000_000), Ordering::Relaxed);
        let period = limit_ms * 1_000_000 / u64::from(CHECKS_PER_LIMIT);
        (CHECK_PERIOD_NS.swap(period, Ordering::Relaxed) == 0).then_some(period)
    }

    /// The check period now in force (ns).
    pub fn period_ns() -> u64 {
        CHECK_PERIOD_NS.load(Ordering::Relaxed)
    }

    /// What the watchdog would have done since the last call: the failure, how long Linux had
    /// gone without an event (ns), and whether it was still booting.
    pub fn take_caught() -> Option<(Failure, u64, bool)> {
        let f = Failure::from_u8(CAUGHT.swap(0, Ordering::AcqRel))?;
        Some((f, tsc::ticks_to_ns(STUCK_WAITED.load(Ordering::Relaxed)), STUCK_BOOTING.load(Ordering::Relaxed) == 1))
    }

    /// Whether a verdict waits to be taken.
    pub fn caught() -> bool {
        CAUGHT.load(Ordering::Acquire) != 0
    }
}
