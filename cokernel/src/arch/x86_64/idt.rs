//! The IDT: one gate per vector, all 256, each to a stub in `trap.S` that pushes a uniform frame and
//! calls [`hauki_trap`].
//!
//! Dispatch: CPU exceptions (0..32) go to `exceptions`; the APIC timer, spurious and error vectors
//! to their handlers; anything else is counted as unexpected and acknowledged. Later issues
//! register device and Linux vectors through [`register`].

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::{apic, exceptions, gdt};

core::arch::global_asm!(include_str!("trap.S"), options(att_syntax));

unsafe extern "C" {
    /// First of 256 stubs, 16 bytes apart.
    static hauki_trap_stubs: u8;
}

/// What the stubs push (lowest address first).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    // The hardware frame.
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
const _: () = assert!(size_of::<TrapFrame>() == 22 * 8);

/// Vector assignments of the co-kernel.
pub mod vectors {
    /// Legacy PIC, remapped here and masked; 0x27 and 0x2f can still arrive as spurious.
    pub const PIC_BASE: u8 = 0x20;
    use hauki_abi::guest;
    /// The co-kernel's one-shot timer.
    pub const TIMER: u8 = guest::VECTOR_COKERNEL_TIMER;
    /// Wakes a parked or idle CPU (no handler work).
    pub const WAKEUP: u8 = guest::VECTOR_COKERNEL_WAKEUP;
    /// Kernel calls from real-time tasks (`int 0xf2`).
    pub const KCALL: u8 = guest::VECTOR_COKERNEL_KCALL;
    /// Linux turned its soft interrupt flag on with events logged (`int 0xf3`).
    pub const UPCALL: u8 = guest::VECTOR_UPCALL;
    /// LAPIC error interrupt.
    pub const APIC_ERROR: u8 = 0xfe;
    /// LAPIC spurious-interrupt vector (must end in 0xf on old xAPICs).
    pub const SPURIOUS: u8 = 0xff;
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}
const _: () = assert!(size_of::<Gate>() == 16);

impl Gate {
    const MISSING: Gate =
        Gate { offset_low: 0, selector: 0, ist: 0, attributes: 0, offset_mid: 0, offset_high: 0, reserved: 0 };

    fn interrupt(handler: u64, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: gdt::KERNEL_CS,
            ist,
            attributes: 0x8e, // present, DPL 0, 64-bit interrupt gate
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(4096))]
struct Idt(UnsafeCell<[Gate; 256]>);
// SAFETY: written on the boot CPU before `lidt` and, for IST slots, before the vectors can fire.
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new([Gate::MISSING; 256]));

fn stub(vector: usize) -> u64 {
    let base = core::ptr::addr_of!(hauki_trap_stubs) as u64;
    base + 16 * vector as u64
}

/// Fills all 256 gates and loads the IDT. IST slots are not used yet (see [`enable_ist`]).
pub fn init() {
    // SAFETY: boot CPU, interrupts off, the IDT not yet loaded.
    let gates = unsafe { &mut *IDT.0.get() };
    for (v, g) in gates.iter_mut().enumerate() {
        *g = Gate::interrupt(stub(v), 0);
    }
    // As in Linux: user code may raise #BP (int3) and #OF (into).
    gates[3].attributes = 0xee;
    gates[4].attributes = 0xee;
    let ptr = x86_64::structures::DescriptorTablePointer {
        limit: (size_of::<[Gate; 256]>() - 1) as u16,
        base: x86_64::VirtAddr::new(IDT.0.get() as u64),
    };
    // SAFETY: the table is 'static and every gate points to a stub in this image.
    unsafe { x86_64::instructions::tables::lidt(&ptr) };
}

/// Moves #DF, NMI and #MC onto their IST stacks (after gdt::set_ist has given each a stack).
pub fn enable_ist() {
    // SAFETY: each gate is one 16-byte store the CPU reads only on delivery; the IST slots it
    // names are already set.
    let gates = unsafe { &mut *IDT.0.get() };
    gates[8].ist = gdt::IST_DOUBLE_FAULT;
    gates[2].ist = gdt::IST_NMI;
    gates[1].ist = gdt::IST_DEBUG;
    gates[18].ist = gdt::IST_MACHINE_CHECK;
}

/// A handler for an external vector.
pub type Handler = fn(&mut TrapFrame);

static HANDLERS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];
/// Interrupts that arrived on a vector nobody handles.
pub static UNEXPECTED: AtomicU64 = AtomicU64::new(0);
/// Spurious interrupts (LAPIC and legacy PIC).
pub static SPURIOUS: AtomicU64 = AtomicU64::new(0);
static PER_VECTOR: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];

/// Installs `h` for vector `v` (32..=255). The handler runs with interrupts off and must not EOI;
/// dispatch does.
pub fn register(v: u8, h: Handler) {
    assert!(v >= 32, "vectors below 32 are CPU exceptions");
    HANDLERS[usize::from(v)].store(h as usize, Ordering::Release);
}

/// How many times vector `v` has been taken.
pub fn count(v: u8) -> u64 {
    PER_VECTOR[usize::from(v)].load(Ordering::Relaxed)
}

const RFLAGS_RF: u64 = 1 << 16;
/// The CPU pushes RF set in the frame of every external interrupt, where the architecture pushes
/// the interrupted code's RF (clear after any completed instruction). QEMU's emulator does so
/// since 9.1; since it also clears RF only at the end of a translated block, code resumed with
/// such a frame runs its next block with RF set, and an `int3` there reports RF in its frame
/// (Linux's sigreturn selftest sees it). Found at boot by [`probe_interrupt_rf`]; when set, the
/// co-kernel clears RF in external interrupts' frames, which is what hardware would have pushed.
static INTERRUPT_RF_QUIRK: AtomicBool = AtomicBool::new(false);
static PROBED_RF: AtomicU64 = AtomicU64::new(u64::MAX);

fn record_rf(frame: &mut TrapFrame) {
    PROBED_RF.store(frame.rflags & RFLAGS_RF, Ordering::Relaxed);
}

/// Sends itself an interrupt while running plain code (RF clear) and looks at the RF its frame
/// carries: set means the CPU has the quirk above. Boot CPU, LAPIC up, interrupts off, before
/// the real-time core registers the wake-up vector (borrowed here).
pub fn probe_interrupt_rf() -> bool {
    register(vectors::WAKEUP, record_rf);
    apic::send_ipi(apic::id(), u32::from(vectors::WAKEUP));
    for _ in 0..1_000_000 {
        if PROBED_RF.load(Ordering::Relaxed) != u64::MAX {
            break;
        }
        // SAFETY: every vector has a gate; the wake-up interrupt's handler only records.
        unsafe { core::arch::asm!("sti", "nop", "cli", options(nomem, nostack)) };
    }
    HANDLERS[usize::from(vectors::WAKEUP)].store(0, Ordering::Release);
    let quirk = PROBED_RF.load(Ordering::Relaxed) == RFLAGS_RF;
    INTERRUPT_RF_QUIRK.store(quirk, Ordering::Relaxed);
    quirk
}

/// Whether [`probe_interrupt_rf`] found the quirk.
pub fn interrupt_rf_quirk() -> bool {
    INTERRUPT_RF_QUIRK.load(Ordering::Relaxed)
}

/// Called by every stub with the frame it built; returns the frame to resume (a different one
/// when the scheduler switches tasks).
#[unsafe(no_mangle)]
extern "C" fn hauki_trap(frame: &mut TrapFrame) -> *mut TrapFrame {
    let v = frame.vector as usize;
    PER_VECTOR[v].fetch_add(1, Ordering::Relaxed);
    if (v >= 32 || v == 2) && INTERRUPT_RF_QUIRK.load(Ordering::Relaxed) {
        // An external interrupt or NMI (or `int n`, which pushes RF clear anyway).
        frame.rflags &= !RFLAGS_RF;
    }
    if v < 32 {
        if !super::mm::is_cokernel_code(frame.rip)
            && super::guest::in_guest_context()
            && super::guest::forward_exception(frame, v as u8)
        {
            super::guest::FORWARDED.fetch_add(1, Ordering::Relaxed);
            return frame; // the guest's fault: its own handler runs, on its own terms
        }
        if !super::mm::is_cokernel_code(frame.rip) && super::guest::in_guest_context() {
            // Linux faulted with no handler of its own yet (early boot): Linux is dead, the
            // co-kernel is not. The switch point takes the idle context over.
            super::watchdog::linux_faulted(v as u8, frame.rip);
            return super::rt::switch_point(frame);
        }
        exceptions::handle(frame);
        return frame;
    }
    let vector = v as u8;
    match vector {
        vectors::SPURIOUS | 0x27 | 0x2f => {
            SPURIOUS.fetch_add(1, Ordering::Relaxed);
            return frame; // no EOI for spurious interrupts
        }
        vectors::KCALL => return super::rt::kcall(frame),
        vectors::UPCALL => {
            // `int` from Linux (nothing to acknowledge) or Linux's self-IPI on its way to user
            // mode (in service: acknowledge). Then the switch point replays.
            if apic::in_service(vectors::UPCALL) {
                apic::eoi();
            }
            super::guest::UPCALLS.fetch_add(1, Ordering::Relaxed);
            return super::rt::switch_point(frame);
        }
        _ => {}
    }
    let h = HANDLERS[v].load(Ordering::Acquire);
    if h != 0 {
        // SAFETY: only `register` stores here, and it stores a `Handler`.
        let h: Handler = unsafe { core::mem::transmute::<usize, Handler>(h) };
        h(frame);
    } else if super::guest::active() && !super::guest::is_cokernel_vector(vector) {
        if vector >> 4 == hauki_abi::guest::ISA_VECTOR_BASE >> 4 {
            super::irqchip::on_arrival(vector); // a level line is masked until Linux's EOI
        }
        apic::eoi();
        if super::guest::on_guest_interrupt(frame, vector) {
            return frame; // delivered to the guest at the trap's exit
        }
        return super::rt::switch_point(frame);
    } else {
        // Counted and reported by telemetry; never printed from here (the console may be busy).
        UNEXPECTED.fetch_add(1, Ordering::Relaxed);
    }
    apic::eoi();
    super::rt::switch_point(frame)
}
