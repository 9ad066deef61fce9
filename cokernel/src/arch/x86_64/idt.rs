//! The IDT: one gate per vector, all 256, each to a stub in `trap.S` that pushes a uniform frame and
//! calls `hauki_trap`, which counts the vector and calls the dispatcher.
//!
//! Dispatch is registered, not named: the kernel above installs its dispatcher with
//! [`set_dispatcher`] and device handlers with [`register`]. While no dispatcher is installed
//! (early boot, and a kernel that installs none) [`default_dispatch`] reports CPU exceptions, runs
//! registered handlers, counts spurious and unexpected vectors and acknowledges the rest.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::frame::{TrapFrame, vectors};
use super::{apic, exceptions, gdt};

core::arch::global_asm!(include_str!("trap.S"), options(att_syntax));

unsafe extern "C" {
    /// First of 256 stubs, 16 bytes apart.
    static hauki_trap_stubs: u8;
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

/// Decides what a trap means and returns the frame to resume (a different one when the kernel
/// switches contexts). Runs with interrupts off; the entry has counted the vector and fixed RF.
pub type Dispatcher = fn(&mut TrapFrame) -> *mut TrapFrame;

static DISPATCH: AtomicUsize = AtomicUsize::new(0);

/// Installs the kernel's dispatcher for every vector.
pub fn set_dispatcher(d: Dispatcher) {
    DISPATCH.store(d as usize, Ordering::Release);
}

/// Called by every stub with the frame it built; returns the frame to resume.
#[unsafe(no_mangle)]
extern "C" fn hauki_trap(frame: &mut TrapFrame) -> *mut TrapFrame {
    let v = frame.vector as usize;
    PER_VECTOR[v].fetch_add(1, Ordering::Relaxed);
    if (v >= 32 || v == 2) && INTERRUPT_RF_QUIRK.load(Ordering::Relaxed) {
        // An external interrupt or NMI (or `int n`, which pushes RF clear anyway).
        frame.rflags &= !RFLAGS_RF;
    }
    let d = DISPATCH.load(Ordering::Acquire);
    if d == 0 {
        return default_dispatch(frame);
    }
    // SAFETY: only `set_dispatcher` stores here, and it stores a `Dispatcher`.
    let d: Dispatcher = unsafe { core::mem::transmute::<usize, Dispatcher>(d) };
    d(frame)
}

/// Dispatch with no kernel above: exceptions are reported ([`exceptions::handle`]), registered
/// handlers run, spurious and unexpected vectors are counted; the frame resumes.
pub fn default_dispatch(frame: &mut TrapFrame) -> *mut TrapFrame {
    let v = frame.vector as u8;
    if v < 32 {
        exceptions::handle(frame);
        return frame;
    }
    if take_spurious(v) {
        return frame;
    }
    if !run_handler(frame) {
        count_unexpected();
    }
    apic::eoi();
    frame
}

/// Counts `v` if it is a spurious vector (LAPIC, or the legacy PIC's 7 and 15), which gets no EOI.
pub fn take_spurious(v: u8) -> bool {
    if matches!(v, vectors::SPURIOUS | 0x27 | 0x2f) {
        SPURIOUS.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    false
}

/// Runs the handler [`register`]ed for the frame's vector; false if there is none.
pub fn run_handler(frame: &mut TrapFrame) -> bool {
    let h = HANDLERS[frame.vector as usize & 0xff].load(Ordering::Acquire);
    if h == 0 {
        return false;
    }
    // SAFETY: only `register` stores here, and it stores a `Handler`.
    let h: Handler = unsafe { core::mem::transmute::<usize, Handler>(h) };
    h(frame);
    true
}

/// An interrupt on a vector nobody handles: counted and reported by telemetry, never printed from
/// here (the console may be busy).
pub fn count_unexpected() {
    UNEXPECTED.fetch_add(1, Ordering::Relaxed);
}
