//! Linux's calls to the co-kernel: the one entry (`call_gate` in the handoff page) through which
//! Linux registers its IDT and vCPU block, arms its clock event, drives its interrupt lines and
//! says it stops. Each call is decoded and checked by [`crate::guest::calls`] (pure, fuzzed); a
//! refused call returns `u64::MAX`, is counted, and the first of each kind is reported on COM2.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::arch::{console, exceptions};
use crate::guest::calls::{self, Call, KernelImage, LineOp, Refusal, Stop};
use crate::guest::lines::Lines;
use crate::guest::supervisor::{self, Failure};
use crate::guest::{irqchip, loader, vcpu};

/// The address Linux calls (the handoff's `call_gate`).
pub fn gate() -> u64 {
    hauki_linux_call as *const () as u64
}

/// Calls from Linux refused since boot.
pub fn refused() -> u64 {
    REFUSED_CALLS.load(Ordering::Relaxed)
}

/// Calls from Linux (through the handoff's `call_gate`), on Linux's stack, in Linux's context.
/// Only `RDI` = call number and `RSI` = argument are read, and what `guest::calls` approved; a
/// refused call returns `u64::MAX` (counted, the first of each kind reported); nothing of Linux's
/// state is touched.
extern "C" fn hauki_linux_call(nr: u64, arg: u64) -> u64 {
    let expect =
        calls::Expect { vcpu: vcpu::mine().addr(), image: vcpu::linux_image(), channels: super::channels::count() };
    let done = calls::decode(nr, arg, &expect).and_then(|c| match c {
        Call::LoadIdt { desc } => load_idt(desc, expect.image),
        // Linux's soft interrupt flag goes live on this CPU (the block the co-kernel gave it).
        // A secondary came through Linux's trampoline, which may have loaded an empty IDT: the
        // co-kernel's goes back in before anything else can interrupt it.
        Call::RegisterVcpu => {
            crate::arch::idt::load();
            vcpu::set_soft(true);
            Ok(0)
        }
        Call::VcpuOf { apic_id } => linux_cpu(apic_id).map(|cpu| vcpu::block(cpu).addr()),
        Call::CpuStart { apic_id, start } => {
            let cpu = linux_cpu(apic_id)?;
            if !vcpu::request_start(cpu, u64::from(start)) {
                return Err(Refusal::BadCpu);
            }
            super::sched::kick(cpu);
            Ok(0)
        }
        Call::SetTimer { deadline } => {
            super::sched::set_linux_timer(deadline);
            Ok(0)
        }
        Call::Line { op, line } => {
            let op = match op {
                LineOp::Mask => Lines::mask,
                LineOp::Unmask => Lines::unmask,
                LineOp::Eoi => Lines::eoi,
            };
            Ok(irqchip::call(op, u64::from(line)))
        }
        Call::GsiBind { gsi, vector, level, active_low } => Ok(irqchip::bind(gsi, vector, level, active_low)),
        Call::ChannelNotify { index } => {
            super::channels::notify(index);
            Ok(0)
        }
        // Linux stops: the switch point takes this context away (restart or halt); it never
        // returns to Linux.
        Call::Shutdown(stop) => {
            supervisor::linux_stopped(match stop {
                Stop::PoweredOff => Failure::PoweredOff,
                Stop::Reboot => Failure::Reboot,
                Stop::Panic => Failure::Panic,
            });
            loop {
                x86_64::instructions::interrupts::enable_and_hlt();
            }
        }
    });
    let ret = done.unwrap_or_else(|why| refuse(why, nr, arg));
    report_refusals();
    ret
}

/// The co-kernel's index of the CPU with local APIC ID `apic_id`, if it is one of Linux's.
fn linux_cpu(apic_id: u32) -> Result<usize, Refusal> {
    crate::arch::percpu::of_apic(apic_id).filter(|&c| vcpu::linux_cpus() & (1 << c) != 0).ok_or(Refusal::BadCpu)
}

/// `LOAD_IDT`: reads the `struct desc_ptr` at `desc` (which `calls::decode` found inside Linux's
/// image) and registers the IDT it names if `calls::idt` accepts it.
fn load_idt(desc: u64, image: Option<&KernelImage>) -> Result<u64, Refusal> {
    let image = image.ok_or(Refusal::NoImage)?;
    // Linux maps its whole image except what it unmapped itself (freed init memory): probe both
    // ends of the 10 bytes (at most two pages) so such a pointer is refused, not a fault.
    let last = desc.checked_add(calls::DESC_PTR_SIZE - 1).ok_or(Refusal::DescOutsideImage)?;
    if exceptions::probe_read(desc).is_err() || exceptions::probe_read(last).is_err() {
        return Err(Refusal::DescUnreadable);
    }
    // SAFETY: both ends of the descriptor were just read in Linux's address space (the current
    // one), and Linux, the only one that could unmap them, is waiting for this call.
    let raw = unsafe { (desc as *const [u8; calls::DESC_PTR_SIZE as usize]).read_volatile() };
    let idt = calls::idt(raw, image)?;
    vcpu::set_idt(idt.base, idt.limit);
    loader::note_idt_load();
    Ok(0)
}

/// Calls from Linux refused since boot (any `guest::calls::Refusal`).
static REFUSED_CALLS: AtomicU64 = AtomicU64::new(0);
/// Kinds of refusal seen, and those not reported yet (bit `Refusal::index`).
static REFUSED_KINDS: AtomicU32 = AtomicU32::new(0);
static UNREPORTED_KINDS: AtomicU32 = AtomicU32::new(0);
/// The first refused call of each kind: number and argument.
static FIRST_REFUSED: [[AtomicU64; 2]; Refusal::ALL.len()] =
    [const { [AtomicU64::new(0), AtomicU64::new(0)] }; Refusal::ALL.len()];

/// Counts a refused call, keeps the first of its kind for the report, and returns Linux's error.
fn refuse(why: Refusal, nr: u64, arg: u64) -> u64 {
    REFUSED_CALLS.fetch_add(1, Ordering::Relaxed);
    let bit = 1u32 << why.index();
    if REFUSED_KINDS.fetch_or(bit, Ordering::Relaxed) & bit == 0 {
        if let Some([n, a]) = FIRST_REFUSED.get(why.index()) {
            n.store(nr, Ordering::Relaxed);
            a.store(arg, Ordering::Relaxed);
        }
        UNREPORTED_KINDS.fetch_or(bit, Ordering::Release);
    }
    u64::MAX
}

/// One `refused` record on COM2 per kind of refused call, the first time it happens. Only with
/// interrupts on (Linux's early calls come with them off): a slow UART must never hold the
/// co-kernel's timer back, so a report made with them off waits for a later call.
fn report_refusals() {
    if UNREPORTED_KINDS.load(Ordering::Relaxed) == 0 || !x86_64::instructions::interrupts::are_enabled() {
        return;
    }
    let kinds = UNREPORTED_KINDS.swap(0, Ordering::Acquire);
    for why in Refusal::ALL.iter().filter(|w| kinds & (1 << w.index()) != 0) {
        let Some([n, a]) = FIRST_REFUSED.get(why.index()) else { continue };
        console::record("refused", |r| {
            r.str("source", "linux-call")
                .str("reason", why.key())
                .u64("call", n.load(Ordering::Relaxed))
                .hex("arg", a.load(Ordering::Relaxed))
                .u64("refused_calls", REFUSED_CALLS.load(Ordering::Relaxed));
        });
    }
}
