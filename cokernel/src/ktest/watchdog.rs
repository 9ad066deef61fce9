//! Linux's watchdog, judging the synthetic guest in each state a stuck Linux can be in (dry run:
//! the verdict is kept, not acted on).

use super::TestResult;
use super::guest::{guest_gate, guest_on, irq_count, ktest_guest_irq_handler, ktest_guest_ud_handler};
use super::rt::run_until;
use crate::arch::{self, cpu, idt, tsc};
use crate::guest::vcpu as guest;
use crate::kernel::sched as glue;
use crate::tasks::api::{self, Periodic};

use crate::guest::supervisor::{self, Failure};

/// The watchdog judges in dry-run mode with the tests' limits; its task starts the first time.
fn wd_arm() {
    if let Some(period) = supervisor::testing::arm(WD_LIMIT_MS, WD_BOOT_LIMIT_MS) {
        crate::tasks::watchdog::start(period).expect("the watchdog task starts");
    }
}

/// The watchdog's limits in these tests (ms of TSC time; virtual under icount).
const WD_LIMIT_MS: u64 = 100;
const WD_BOOT_LIMIT_MS: u64 = 300;

core::arch::global_asm!(
    r#"
    .section .guest_test, "ax"
    .global ktest_guest_ud_loop_handler
    .global ktest_guest_ud_loop
/* A #UD gate that returns to the faulting ud2 (a fault loop) until told to stop; it returns with
   the hardware flag on, as Linux's patched return path does. */
ktest_guest_ud_loop_handler:
    orq $0x200, 16(%rsp)
    cmpq $0, ktest_loop_stop(%rip)
    je 1f
    addq $2, (%rsp)
1:  iretq
ktest_guest_ud_loop:
    ud2
    ret

    .section .data.ktest_guest, "aw"
    .balign 8
    .global ktest_loop_stop
ktest_loop_stop: .quad 0
    .section .text
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn ktest_guest_ud_loop_handler();
    fn ktest_guest_ud_loop();
    static mut ktest_loop_stop: u64;
}

/// The guest with its soft flag live and a gate for the heartbeat (Linux's timer vector); returns
/// once it has taken one, so the watchdog judges it as running (past its boot).
fn wd_guest_running() -> TestResult {
    use hauki_abi::guest::VECTOR_LINUX_TIMER;
    wd_arm();
    let _ = supervisor::testing::take_caught();
    guest_gate(VECTOR_LINUX_TIMER, ktest_guest_irq_handler as *const () as u64);
    guest_on();
    guest::set_soft(true);
    guest::VCPU.set_enabled(true);
    let before = irq_count();
    let hb = supervisor::counts().2;
    ensure!(run_until(WD_LIMIT_MS * 20, || irq_count() > before), "the idle guest never took a heartbeat");
    ensure!(supervisor::counts().2 > hb, "the event the guest took was not a heartbeat");
    Ok(())
}

/// Back to no guest at all.
fn wd_guest_gone() {
    glue::set_linux_timer(u64::MAX);
    guest::reset();
}

/// Runs `stuck` (the guest's code, interrupts on in hardware) until the watchdog's verdict comes;
/// it must be "stuck", not early, and not long after the limit (`booting`: the boot limit).
fn wd_expect_stuck(what: &str, booting: bool, mut stuck: impl FnMut()) -> TestResult {
    let limit_ms = if booting { WD_BOOT_LIMIT_MS } else { WD_LIMIT_MS };
    let end = cpu::rdtsc() + tsc::ns_to_ticks(limit_ms * 20 * 1_000_000);
    while !supervisor::testing::caught() && cpu::rdtsc() < end {
        stuck();
    }
    wd_guest_gone();
    let (why, waited, was_booting) =
        supervisor::testing::take_caught().ok_or(alloc::format!("not caught within {} ms", limit_ms * 20))?;
    let limit = limit_ms * 1_000_000;
    ensure!(why == Failure::Stuck, "the verdict is {why:?}");
    ensure!(was_booting == booting, "judged as booting: {was_booting}");
    ensure!(waited >= limit, "caught after {waited} ns, before the {limit} ns limit");
    ensure!(
        waited <= 3 * limit,
        "caught only after {waited} ns (limit {limit} ns, checks every {} ns)",
        supervisor::testing::period_ns()
    );
    arch::console::console_write(format_args!(
        "# watchdog: {what}: caught after {}.{:03} ms (limit {limit_ms} ms, checks every {} ms)\n",
        waited / 1_000_000,
        waited / 1000 % 1000,
        supervisor::testing::period_ns() / 1_000_000
    ));
    Ok(())
}

pub(super) fn watchdog_leaves_a_healthy_idle_guest_alone() -> TestResult {
    wd_guest_running()?;
    let (hb, taken) = (supervisor::counts().2, irq_count());
    // Idle (halted with its flag on) for five limits: heartbeats come and are taken. (The
    // synthetic gate does not turn the virtual flag back on as Linux's return path does: the
    // idle loop does.)
    let caught = run_until(WD_LIMIT_MS * 5, || {
        guest::VCPU.set_enabled(true);
        supervisor::testing::caught()
    });
    wd_guest_gone();
    ensure!(!caught, "a healthy idle guest was judged {:?}", supervisor::testing::take_caught());
    ensure!(supervisor::counts().2 > hb + 2 && irq_count() > taken + 2, "no heartbeats while idle");
    Ok(())
}

pub(super) fn watchdog_catches_a_guest_spinning_with_its_flag_off() -> TestResult {
    wd_guest_running()?;
    guest::VCPU.set_enabled(false);
    wd_expect_stuck("spinning, flag off", false, core::hint::spin_loop)
}

pub(super) fn watchdog_catches_a_guest_spinning_with_its_timer_armed() -> TestResult {
    wd_guest_running()?;
    guest::VCPU.set_enabled(false);
    glue::set_linux_timer(cpu::rdtsc() + tsc::ns_to_ticks(5_000_000));
    wd_expect_stuck("spinning, flag off, timer armed", false, core::hint::spin_loop)
}

pub(super) fn watchdog_catches_a_guest_halted_with_its_flag_off() -> TestResult {
    wd_guest_running()?;
    guest::VCPU.set_enabled(false);
    wd_expect_stuck("halted, flag off", false, x86_64::instructions::interrupts::enable_and_hlt)
}

fn stop_fault_loop(_: usize) -> ! {
    loop {
        api::wait_next_period();
        if supervisor::testing::caught() {
            // SAFETY: a plain u64 of this image that the guest's #UD gate reads.
            unsafe { core::ptr::addr_of_mut!(ktest_loop_stop).write_volatile(1) };
        }
    }
}

pub(super) fn watchdog_catches_a_guest_looping_in_faults() -> TestResult {
    wd_guest_running()?;
    // SAFETY: as above.
    unsafe { core::ptr::addr_of_mut!(ktest_loop_stop).write_volatile(0) };
    Periodic::new("wd-probe")
        .priority(80)
        .period_us(1000)
        .spawn(stop_fault_loop)
        .map_err(|e| alloc::format!("{e:?}"))?;
    guest_gate(6, ktest_guest_ud_loop_handler as *const () as u64);
    guest::VCPU.set_enabled(false);
    let faults = idt::count(6);
    // SAFETY: guest code: its ud2 goes to the guest's looping #UD gate, which lets it through once
    // the watchdog has judged.
    unsafe { ktest_guest_ud_loop() };
    let looped = idt::count(6) - faults;
    guest_gate(6, ktest_guest_ud_handler as *const () as u64);
    let r = wd_expect_stuck("looping in faults", false, || {});
    ensure!(looped > 100, "the guest faulted only {looped} times");
    r
}

pub(super) fn watchdog_catches_a_guest_that_never_registers() -> TestResult {
    wd_arm();
    let _ = supervisor::testing::take_caught();
    // Entered, but no IDT and no vCPU registered: nothing can ever be delivered.
    guest::set_idt(0, 0);
    guest::set_active(true);
    wd_expect_stuck("never registered (boot limit)", true, core::hint::spin_loop)
}
