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
    guest::mine().set_enabled(true);
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
        guest::mine().set_enabled(true);
        supervisor::testing::caught()
    });
    wd_guest_gone();
    ensure!(!caught, "a healthy idle guest was judged {:?}", supervisor::testing::take_caught());
    ensure!(supervisor::counts().2 > hb + 2 && irq_count() > taken + 2, "no heartbeats while idle");
    Ok(())
}

pub(super) fn watchdog_catches_a_guest_spinning_with_its_flag_off() -> TestResult {
    wd_guest_running()?;
    guest::mine().set_enabled(false);
    wd_expect_stuck("spinning, flag off", false, core::hint::spin_loop)
}

pub(super) fn watchdog_catches_a_guest_spinning_with_its_timer_armed() -> TestResult {
    wd_guest_running()?;
    guest::mine().set_enabled(false);
    glue::set_linux_timer(cpu::rdtsc() + tsc::ns_to_ticks(5_000_000));
    wd_expect_stuck("spinning, flag off, timer armed", false, core::hint::spin_loop)
}

pub(super) fn watchdog_catches_a_guest_halted_with_its_flag_off() -> TestResult {
    wd_guest_running()?;
    guest::mine().set_enabled(false);
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
    guest::mine().set_enabled(false);
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

core::arch::global_asm!(
    r#"
    .section .guest_test, "ax"
    .global ktest_guest_overflow
    .global ktest_guest_overflow_resume
/* Guest code on an exhausted stack (rdi: 64 bytes above an unmapped page): interrupts on, so the
   interrupt pending at the local APIC is taken here. The CPU's frame fits; the co-kernel entry's
   register pushes do not. The co-kernel resumes the guest at the label below, interrupts off. */
ktest_guest_overflow:
    movq %rsp, ktest_overflow_saved_rsp(%rip)
    movq %rdi, %rsp
    sti
1:  pause
    jmp 1b
ktest_guest_overflow_resume:
    movq ktest_overflow_saved_rsp(%rip), %rsp
    sti
    ret

    .section .data.ktest_guest, "aw"
    .balign 8
ktest_overflow_saved_rsp: .quad 0
    .section .text
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn ktest_guest_overflow(stack: u64);
    fn ktest_guest_overflow_resume();
}

/// The vector the overflowing guest is interrupted with (a Linux one: acknowledged, not raised
/// again, when Linux is given up).
const OVERFLOW_IRQ: u8 = 0x40;

pub(super) fn an_interrupt_entry_on_linux_s_exhausted_stack_is_linux_s_failure() -> TestResult {
    wd_arm();
    let _ = supervisor::testing::take_caught();
    let _ = supervisor::testing::take_overflow_rsp();
    // The guest's stack: one page in a window of its own, an unmapped page below it, and not a
    // co-kernel stack.
    let phys = arch::mm::alloc_frame().ok_or("no frame for the guest's stack")?;
    let page = arch::mm::map_mmio(phys, 4096);
    ensure!(arch::mm::translate(page - 4096).is_none(), "the page below the guest's stack is mapped");
    guest_on();
    guest::mine().set_enabled(true);
    supervisor::testing::resume_after_overflow(ktest_guest_overflow_resume as *const () as u64);
    let timer = arch::frame::vectors::TIMER;
    let ticks = idt::count(timer);
    x86_64::instructions::interrupts::disable();
    arch::apic::send_ipi(arch::apic::id(), u32::from(OVERFLOW_IRQ));
    // SAFETY: guest code: it runs on the given stack until an interrupt's entry overflows it,
    // and the co-kernel resumes it at its resume label, which restores this stack and returns.
    unsafe { ktest_guest_overflow(page + 64) };
    let caught = supervisor::testing::take_caught();
    let rsp = supervisor::testing::take_overflow_rsp();
    wd_guest_gone();
    ensure!(matches!(caught, Some((Failure::Fault, _, _))), "judged {caught:?}, want a Linux fault");
    ensure!(rsp >= page - 8 && rsp < page + 64, "the overflow's stack pointer {rsp:#x}, the page at {page:#x}");
    ensure!(!arch::apic::in_service(OVERFLOW_IRQ), "the interrupt being entered is still in service");
    // The co-kernel's own interrupts go on: the timer keeps ticking.
    ensure!(run_until(50, || idt::count(timer) > ticks + 2), "the co-kernel's timer stopped");
    Ok(())
}

pub(super) fn watchdog_catches_a_guest_that_never_registers() -> TestResult {
    wd_arm();
    let _ = supervisor::testing::take_caught();
    // Entered, but no IDT and no vCPU registered: nothing can ever be delivered.
    guest::set_idt(0, 0);
    guest::set_active(true);
    wd_expect_stuck("never registered (boot limit)", true, core::hint::spin_loop)
}
