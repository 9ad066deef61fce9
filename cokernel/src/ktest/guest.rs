//! The one IDT: forwarding to a guest (a synthetic one, standing in for Linux), logging and
//! replay, its clock event, and its interrupt lines on the IO-APIC.

use super::TestResult;
use super::rt::run_until;
use crate::arch::{self, apic, cpu, ioapic, tsc};
use crate::guest::vcpu as guest;
use crate::kernel::sched as glue;
use crate::tasks::api::{self, Event, Shared};

core::arch::global_asm!(
    r#"
    .section .guest_test, "ax"
    .global ktest_guest_ud_handler
    .global ktest_guest_irq_handler
    .global ktest_guest_ud
    .global ktest_guest_ud_insn
/* The guest's #UD gate: record the frame as a guest handler sees it, skip the ud2, return. */
ktest_guest_ud_handler:
    movq %rsp, ktest_seen_rsp(%rip)
    movq %r12, ktest_seen_r12(%rip)
    pushq %rax
    movq 8(%rsp), %rax
    movq %rax, ktest_seen_rip(%rip)
    movq 32(%rsp), %rax
    movq %rax, ktest_seen_frame_rsp(%rip)
    addq $2, 8(%rsp)
    incq ktest_ud_count(%rip)
    popq %rax
    iretq
/* The guest's gate for a device vector: count, record the stack, return. */
ktest_guest_irq_handler:
    movq %rsp, ktest_irq_rsp(%rip)
    incq ktest_irq_count(%rip)
    iretq
/* Guest code that faults with known registers: returns RSP at the ud2. */
ktest_guest_ud:
    pushq %r12
    movq $0x5eed5eed, %r12
    movq %rsp, %rax
ktest_guest_ud_insn:
    ud2
    popq %r12
    ret

    .section .data.ktest_guest, "aw"
    .balign 8
    .global ktest_seen_rsp
    .global ktest_seen_r12
    .global ktest_seen_rip
    .global ktest_seen_frame_rsp
    .global ktest_ud_count
    .global ktest_irq_count
    .global ktest_irq_rsp
ktest_seen_rsp: .quad 0
ktest_seen_r12: .quad 0
ktest_seen_rip: .quad 0
ktest_seen_frame_rsp: .quad 0
ktest_ud_count: .quad 0
ktest_irq_count: .quad 0
ktest_irq_rsp: .quad 0
    .section .text
"#,
    options(att_syntax)
);

unsafe extern "C" {
    pub(super) fn ktest_guest_ud_handler();
    pub(super) fn ktest_guest_irq_handler();
    fn ktest_guest_ud() -> u64;
    static ktest_guest_ud_insn: u8;
    static ktest_seen_rsp: u64;
    static ktest_seen_r12: u64;
    static ktest_seen_rip: u64;
    static ktest_seen_frame_rsp: u64;
    static ktest_ud_count: u64;
    static ktest_irq_count: u64;
}

/// Reads a record the guest handlers write.
macro_rules! rec {
    ($sym:ident) => {
        // SAFETY: a plain, aligned u64 in this image that the guest handlers write; read volatile.
        unsafe { core::ptr::addr_of!($sym).read_volatile() }
    };
}

pub(super) fn irq_count() -> u64 {
    rec!(ktest_irq_count)
}

const GUEST_IRQ: u8 = 0x40;
const GUEST_IRQ_2: u8 = 0x41;

#[repr(C, align(16))]
struct GuestIdt([u64; 512]);
static mut GUEST_IDT: GuestIdt = GuestIdt([0; 512]);

pub(super) fn guest_gate(v: u8, target: u64) {
    let lo =
        (target & 0xffff) | (u64::from(arch::gdt::KERNEL_CS) << 16) | (0x8e << 40) | ((target >> 16) & 0xffff) << 48;
    let hi = target >> 32;
    let idt = &raw mut GUEST_IDT;
    // SAFETY: the test's own table, written before it is registered.
    unsafe {
        (*idt).0[usize::from(v) * 2] = lo;
        (*idt).0[usize::from(v) * 2 + 1] = hi;
    }
}

pub(super) fn guest_on() {
    guest_gate(6, ktest_guest_ud_handler as *const () as u64);
    guest_gate(GUEST_IRQ, ktest_guest_irq_handler as *const () as u64);
    guest_gate(GUEST_IRQ_2, ktest_guest_irq_handler as *const () as u64);
    guest::set_idt((&raw const GUEST_IDT) as u64, 256 * 16 - 1);
    guest::set_active(true);
}

pub(super) fn guest_off() {
    guest::set_active(false);
}

pub(super) fn guest_exception_is_forwarded_with_the_exact_frame() -> TestResult {
    guest_on();
    let before = rec!(ktest_ud_count);
    // SAFETY: guest code: its ud2 goes to the guest's #UD gate, which skips it and returns.
    let rsp_at_fault = unsafe { ktest_guest_ud() };
    guest_off();
    let (count, seen_rsp, r12, rip, frame_rsp) = (
        rec!(ktest_ud_count),
        rec!(ktest_seen_rsp),
        rec!(ktest_seen_r12),
        rec!(ktest_seen_rip),
        rec!(ktest_seen_frame_rsp),
    );
    let insn = core::ptr::addr_of!(ktest_guest_ud_insn) as u64;
    ensure!(count == before + 1, "the guest's #UD handler ran {} times", count - before);
    ensure!(rip == insn, "guest saw RIP {rip:#x}, the ud2 is at {insn:#x}");
    ensure!(frame_rsp == rsp_at_fault, "guest saw the interrupted RSP {frame_rsp:#x}, it was {rsp_at_fault:#x}");
    ensure!(
        seen_rsp == (rsp_at_fault & !0xf) - 40,
        "the guest's handler did not start at the exact hardware frame (RSP {seen_rsp:#x})"
    );
    ensure!(r12 == 0x5eed_5eed, "a register changed on the way: r12 = {r12:#x}");
    Ok(())
}

/// An interrupt that arrives while the guest runs goes straight to its gate, counted as
/// forwarded. Without icount a real-time task left by an earlier test can take the CPU between
/// the send and the delivery; the interrupt is then logged and replayed (another test checks that
/// path), so that outcome is tried again, up to five times.
pub(super) fn guest_interrupt_is_forwarded_when_the_guest_runs() -> TestResult {
    guest_on();
    let r = (|| -> TestResult {
        for _ in 0..5 {
            let before = irq_count();
            let (fwd, rep) = (guest::counts().forwarded, guest::counts().replayed);
            apic::send_ipi(apic::id(), u32::from(GUEST_IRQ));
            let ok = run_until(50, || irq_count() > before);
            ensure!(ok, "the guest's gate for vector {GUEST_IRQ:#x} never ran");
            let c = guest::counts();
            if c.forwarded > fwd {
                return Ok(());
            }
            ensure!(c.replayed > rep, "the gate ran, but the event was counted neither forwarded nor replayed");
        }
        Err(super::Verdict::Fail(
            "five tries: each interrupt arrived while a task ran (replayed), none was forwarded".into(),
        ))
    })();
    guest_off();
    r
}

static REPLAY_SEEN_DURING_TASK: Shared<Option<(u64, u64)>> = Shared::new(None);

fn replay_task(_: usize) -> ! {
    loop {
        api::wait_event();
        let count = irq_count;
        let before = count();
        apic::send_ipi(apic::id(), u32::from(GUEST_IRQ_2));
        api::spin_ns(200_000); // the interrupt arrives while this task runs: logged, not delivered
        REPLAY_SEEN_DURING_TASK.with(|s| *s = Some((before, count())));
    }
}

pub(super) fn guest_interrupt_during_a_task_is_replayed_on_resume() -> TestResult {
    Event::new("replay", 40).priority(90).spawn(replay_task).map_err(|e| alloc::format!("{e:?}"))?;
    api::yield_now();
    guest_on();
    let count = irq_count;
    let (logged, replayed) = (guest::counts().logged, guest::counts().replayed);
    api::post(40, 1).map_err(|e| alloc::format!("{e:?}"))?;
    let done = run_until(100, || REPLAY_SEEN_DURING_TASK.with(|s| s.is_some()));
    let after_resume = count();
    guest_off();
    ensure!(done, "the task did not run");
    let (before, during) = REPLAY_SEEN_DURING_TASK.with(|s| s.unwrap_or((0, 0)));
    ensure!(during == before, "the guest's handler ran while a real-time task had the CPU");
    ensure!(guest::counts().logged > logged, "the event was not logged");
    ensure!(
        after_resume == before + 1,
        "the logged event was delivered {} times after the guest resumed",
        after_resume - before
    );
    ensure!(guest::counts().replayed > replayed, "not counted as replayed");
    Ok(())
}

/// Linux's clock event (`SET_TIMER`): raised once at or after the deadline on the Linux timer
/// vector, forwarded to the guest's gate; a cancelled deadline raises nothing.
pub(super) fn guest_timer_event_comes_at_the_deadline_and_cancels() -> TestResult {
    use hauki_abi::guest::VECTOR_LINUX_TIMER;
    guest_gate(VECTOR_LINUX_TIMER, ktest_guest_irq_handler as *const () as u64);
    guest_on();
    let count = irq_count;
    let events = crate::guest::vtimer::counts().0;
    let before = count();
    let deadline = cpu::rdtsc() + tsc::ns_to_ticks(1_000_000);
    glue::set_linux_timer(deadline);
    let fired = run_until(50, || count() > before);
    let seen_at = cpu::rdtsc();
    let once = run_until(3, || count() > before + 1);
    // Cancelled: nothing comes.
    let before2 = count();
    glue::set_linux_timer(cpu::rdtsc() + tsc::ns_to_ticks(1_000_000));
    glue::set_linux_timer(u64::MAX);
    let spurious = run_until(5, || count() > before2);
    guest_off();
    ensure!(fired, "the guest's timer gate never ran");
    ensure!(seen_at >= deadline, "the timer event came before its deadline");
    ensure!(!once, "one deadline raised more than one event");
    ensure!(crate::guest::vtimer::counts().0 == events + 1, "not counted once");
    ensure!(!spurious, "a cancelled deadline still raised an event");
    Ok(())
}

/// Linux masks the LAPIC timer's LVT and puts its own vector there (`end_local_APIC_setup()`);
/// while it shares the LAPIC the co-kernel rewrites the LVT at every arm. A guest that leaves with
/// the LVT masked and an armed deadline already passed (its interrupt lost) gives the timer back:
/// the co-kernel's LVT and divider again, and the deadline programmed again, so it fires.
pub(super) fn guest_leaving_with_the_timer_masked_gives_it_back() -> TestResult {
    use crate::arch::frame::vectors;
    use crate::arch::timer;
    let timer_irr = apic::REG_IRR + 0x10 * (u32::from(vectors::TIMER) / 32);
    let pending = move || apic::read(timer_irr) & (1 << (vectors::TIMER % 32)) != 0;
    // Under real-time TCG the host may stop the guest between the arm and the mask, and the
    // interrupt then comes before the mask: nothing was lost and the case is not shown. Each try
    // leaves more room (100 us, 1 ms, 10 ms); under icount the first does.
    let mut shown = None;
    for lead_ns in [100_000, 1_000_000, 10_000_000] {
        let (lvt, divide, lost, fired) = x86_64::instructions::interrupts::without_interrupts(|| {
            guest_on();
            let deadline = cpu::rdtsc() + tsc::ns_to_ticks(lead_ns);
            glue::set_linux_timer(deadline);
            // What Linux does to the shared timer.
            apic::write(apic::REG_LVT_TIMER, apic::LVT_MASKED | 0xec);
            apic::write(apic::REG_TIMER_DIVIDE, 0b0011);
            let early = pending();
            // The deadline passes while the timer is masked: no interrupt becomes pending.
            let until = deadline + tsc::ns_to_ticks(100_000);
            while cpu::rdtsc() < until {
                core::hint::spin_loop();
            }
            let lost = !early && !pending();
            guest_off();
            crate::guest::vtimer::clear_this();
            let (lvt, divide) = (apic::read(apic::REG_LVT_TIMER), apic::read(apic::REG_TIMER_DIVIDE));
            // Given back: the passed deadline fires at once (polled here, interrupts still off).
            let until = cpu::rdtsc() + tsc::ns_to_ticks(1_000_000);
            while !pending() && cpu::rdtsc() < until {
                core::hint::spin_loop();
            }
            (lvt, divide, lost, pending())
        });
        // (Interrupts on again: a pending timer interrupt is taken here, with nothing armed.)
        if lost {
            shown = Some((lvt, divide, fired));
            break;
        }
        let l = lvt & 0x7_00ff;
        if l & apic::LVT_MASKED != 0 || divide & 0b1011 != 0b1011 {
            shown = Some((lvt, divide, fired)); // not given back: that is the failure either way
            break;
        }
    }
    let Some((lvt, divide, fired)) = shown else {
        return Err("in three tries the timer's interrupt came before the guest masked it (host stalls)".into());
    };
    let want =
        if timer::kind() == timer::Kind::TscDeadline { apic::LVT_TSC_DEADLINE } else { 0 } | u32::from(vectors::TIMER);
    let restored = lvt & 0x7_00ff == want && divide & 0b1011 == 0b1011;
    if !restored {
        timer::init_secondary(); // the later tests need a working timer
    }
    ensure!(restored, "the LVT is {lvt:#x} and the divider {divide:#x} after the guest left, want {want:#x} and 0xb");
    ensure!(fired, "the deadline whose interrupt the masked timer lost was not programmed again");
    Ok(())
}

/// The pv irqchip on the real IO-APIC: a line Linux unmasks is programmed with its vector,
/// trigger and polarity; a level line is masked from its arrival until Linux's EOI; refused lines
/// are refused. Every line is masked again at the end.
pub(super) fn guest_lines_program_the_ioapic_level_masked_until_eoi() -> TestResult {
    use crate::guest::irqchip;
    use crate::guest::lines::Lines;
    let rte = |gsi: u32| ioapic::for_gsi(gsi).map(|(io, pin)| io.redirection(pin));
    const MASKED: u64 = 1 << 16;
    const LEVEL: u64 = 1 << 15;
    // COM1's line, edge.
    ensure!(irqchip::call(Lines::unmask, 4) == 0, "unmask 4 refused");
    let e = rte(4).ok_or("no IO-APIC pin for GSI 4")?;
    ensure!(e & 0xff == 0x34 && e & (MASKED | LEVEL) == 0, "IRQ 4's entry is {e:#x}");
    irqchip::on_arrival(0x34);
    ensure!(rte(4).unwrap_or(0) & MASKED == 0, "an edge line was masked on arrival");
    // The firmware's level line (ACPI's SCI, IRQ 9, on QEMU).
    ensure!(irqchip::call(Lines::unmask, 9) == 0, "unmask 9 refused");
    let l = rte(9).ok_or("no IO-APIC pin for GSI 9")?;
    ensure!(l & 0xff == 0x39 && l & LEVEL != 0 && l & MASKED == 0, "IRQ 9's entry is {l:#x} (want level, unmasked)");
    irqchip::on_arrival(0x39);
    ensure!(rte(9).unwrap_or(0) & MASKED != 0, "a level line stayed unmasked after its arrival");
    irqchip::call(Lines::unmask, 9);
    ensure!(rte(9).unwrap_or(0) & MASKED != 0, "a level line in service was unmasked before its EOI");
    irqchip::call(Lines::eoi, 9);
    ensure!(rte(9).unwrap_or(0) & MASKED == 0, "Linux's EOI did not unmask the level line");
    ensure!(irqchip::call(Lines::unmask, 3) == u64::MAX, "the telemetry UART's line was given away");
    ensure!(irqchip::call(Lines::unmask, 2) == u64::MAX, "IRQ 2 (its input carries IRQ 0) was given away");
    ensure!(irqchip::call(Lines::unmask, 16) == u64::MAX, "a PCI line Linux never bound was accepted");
    irqchip::call(Lines::mask, 4);
    irqchip::call(Lines::mask, 9);
    ensure!(rte(4).unwrap_or(0) & MASKED != 0 && rte(9).unwrap_or(0) & MASKED != 0, "mask left a line open");
    Ok(())
}

/// A PCI line Linux binds (GSI 16..23, ACPI's APIC-mode `_PRT`) on the real IO-APIC: programmed
/// masked with Linux's vector, level and active low as bound; unmasked by Linux's unmask, masked
/// from arrival to EOI; binds naming a co-kernel vector, an ISA vector or a taken vector are
/// refused; unbinding masks it and frees the vector.
pub(super) fn guest_pci_lines_bound_by_linux_program_the_ioapic() -> TestResult {
    use crate::guest::irqchip;
    use crate::guest::lines::Lines;
    let rte = |gsi: u32| ioapic::for_gsi(gsi).map(|(io, pin)| io.redirection(pin));
    const MASKED: u64 = 1 << 16;
    const LEVEL: u64 = 1 << 15;
    const LOW: u64 = 1 << 13;
    ensure!(irqchip::bind(18, 0x61, true, true) == 0, "binding GSI 18 to 0x61 refused");
    let e = rte(18).ok_or("no IO-APIC pin for GSI 18")?;
    ensure!(e & 0xff == 0x61 && e & (MASKED | LEVEL | LOW) == MASKED | LEVEL | LOW, "GSI 18's entry is {e:#x}");
    ensure!(irqchip::is_line_vector(0x61), "the trap path does not know 0x61 is a line");
    ensure!(irqchip::bind(19, 0x61, true, true) == u64::MAX, "a second line took vector 0x61");
    ensure!(irqchip::bind(19, 0x35, true, true) == u64::MAX, "a PCI line took an ISA vector");
    let own = hauki_abi::guest::VECTOR_COKERNEL_DEVICE;
    ensure!(irqchip::bind(19, own, true, true) == u64::MAX, "a PCI line took the co-kernel's device vector");
    ensure!(irqchip::call(Lines::unmask, 18) == 0, "unmask 18 refused");
    ensure!(rte(18).unwrap_or(0) & MASKED == 0, "Linux's unmask left GSI 18 masked");
    let before = irqchip::count(18);
    irqchip::on_arrival(0x61);
    ensure!(irqchip::count(18) == before + 1, "the arrival was not counted on line 18");
    ensure!(rte(18).unwrap_or(0) & MASKED != 0, "a PCI line stayed unmasked after its arrival");
    irqchip::call(Lines::eoi, 18);
    ensure!(rte(18).unwrap_or(0) & MASKED == 0, "Linux's EOI did not unmask the PCI line");
    ensure!(irqchip::bind(18, 0, false, false) == 0, "unbinding GSI 18 refused");
    ensure!(rte(18).unwrap_or(0) & MASKED != 0, "unbinding left GSI 18 unmasked");
    ensure!(!irqchip::is_line_vector(0x61), "vector 0x61 is still a line's after the unbind");
    ensure!(irqchip::call(Lines::unmask, 18) == u64::MAX, "an unbound line was unmasked");
    Ok(())
}
