//! What a trap means: `hauki_trap`, the entry every stub in `arch/x86_64/trap.S` calls (the one
//! symbol the hardware layer takes from the kernel, bound at link time so the entry costs no
//! indirect call).
//!
//! - A CPU exception in Linux goes to Linux's own gate; one Linux has no gate for means Linux is
//!   dead (the supervisor takes over); one in the co-kernel is reported by `arch::exceptions`.
//! - The kernel-call and upcall vectors enter the scheduler.
//! - A registered handler (timer, devices) runs; any other vector is Linux's when Linux runs:
//!   acknowledged, and delivered to it now or logged for later.
//!
//! Every trap ends at the scheduler's switch point, which picks the context to resume.

use super::sched;
use crate::arch::frame::{TrapFrame, vectors};
use crate::arch::idt;
use crate::arch::{apic, exceptions, mm};
use crate::guest::{irqchip, supervisor, vcpu};

/// Called by every stub with the frame it built; returns the frame to resume (a different one
/// when the scheduler switches contexts).
#[unsafe(no_mangle)]
extern "C" fn hauki_trap(frame: &mut TrapFrame) -> *mut TrapFrame {
    let v = idt::on_entry(frame);
    dispatch(v, frame)
}

/// Whether the interrupted context is Linux: guest mode on, and the idle context running.
fn linux_interrupted() -> bool {
    vcpu::active() && sched::current_is_idle()
}

#[inline(always)]
fn dispatch(v: usize, frame: &mut TrapFrame) -> *mut TrapFrame {
    if v < 32 {
        if !mm::is_cokernel_code(frame.rip) && linux_interrupted() {
            if vcpu::forward_exception(frame, v as u8) {
                return frame; // Linux's fault: its own handler runs, on its own terms
            }
            // Linux faulted with no handler of its own yet (early boot): Linux is dead, the
            // co-kernel is not. The switch point takes the idle context over.
            supervisor::linux_faulted(v as u8, frame.rip);
            return sched::switch_point(frame);
        }
        if v == 8 && linux_interrupted() && !mm::is_stack_address(frame.rsp, 8) {
            return linux_stack_overflow(frame);
        }
        exceptions::handle(frame);
        return frame;
    }
    let vector = v as u8;
    match vector {
        vectors::SPURIOUS => {
            idt::count_spurious();
            return frame; // no EOI for spurious interrupts
        }
        // The masked 8259's spurious IRQ 7 and 15 share their vectors with Linux's MSIs (its
        // vector allocator starts at 0x21): only one the local APIC does not have in service is
        // the PIC's. Dropping a real one would lose the device's interrupt and leave its ISR bit
        // set (blocking every vector below it until the next EOI).
        vectors::PIC_SPURIOUS_7 | vectors::PIC_SPURIOUS_15 if !apic::in_service(vector) => {
            idt::count_spurious();
            return frame;
        }
        vectors::KCALL => return sched::kcall(frame),
        vectors::UPCALL => {
            // `int` from Linux (nothing to acknowledge) or Linux's self-IPI on its way to user
            // mode (in service: acknowledge). Then the switch point replays.
            if apic::in_service(vectors::UPCALL) {
                apic::eoi();
            }
            vcpu::note_upcall();
            return sched::switch_point(frame);
        }
        _ => {}
    }
    if idt::run_handler(vector, frame) {
    } else if vcpu::active() && !vcpu::is_cokernel_vector(vector) {
        if irqchip::is_line_vector(vector) {
            irqchip::on_arrival(vector); // a level line is masked until Linux's EOI
        }
        apic::eoi();
        if vcpu::on_guest_interrupt(frame, vector, sched::current_is_idle()) {
            return frame; // delivered to Linux at the trap's exit
        }
        return sched::switch_point(frame);
    } else {
        idt::count_unexpected(vector);
        if irqchip::is_line_vector(vector) {
            // A device line of a Linux that is gone (taken over, not restarted yet): a level
            // line still asserted would fire again at the EOI, for as long as it stays unmasked.
            irqchip::on_arrival(vector);
        }
    }
    apic::eoi();
    sched::switch_point(frame)
}

/// A double fault in the co-kernel's own entry code, on a stack that is not the co-kernel's:
/// an interrupt arrived while Linux's kernel stack had no room left for the CPU's frame or the
/// entry's registers (Linux overflowed its stack, and the interrupt found the guard page first).
/// That is Linux's failure, not the co-kernel's: the #DF runs on its own IST stack, the trap it
/// interrupted had done nothing yet (interrupts off, no lock taken), so the interrupt it was
/// entering is acknowledged and raised again, and the supervisor takes Linux's context over.
fn linux_stack_overflow(frame: &mut TrapFrame) -> *mut TrapFrame {
    supervisor::note_stack_overflow(frame.rsp);
    // The interrupt being entered is in service at the local APIC (traps run with interrupts off,
    // so it is the only one): acknowledge it, or every vector at or below its priority stays
    // blocked. The co-kernel's own is raised again; Linux's goes with Linux. A lost timer
    // interrupt needs nothing: the switch point handles a deadline that passed unseen.
    for v in apic::in_service_vectors().filter(|v| *v >= 32) {
        apic::eoi();
        if v != vectors::TIMER && (vcpu::is_cokernel_vector(v) || idt::has_handler(v)) {
            apic::send_ipi(apic::id(), u32::from(v));
        }
    }
    supervisor::linux_faulted(8, frame.rip);
    #[cfg(feature = "ktest")]
    supervisor::testing::redirect_after_overflow(frame);
    sched::switch_point(frame)
}
