//! The IDT: one gate per vector, all 256, each to a stub in `trap.S` that pushes a uniform frame and
//! calls `hauki_trap`.
//!
//! Dispatch is registered, not named: the kernel above provides `hauki_trap` (bound at link time,
//! so the entry costs no indirect call), which starts with [`on_entry`], and installs device
//! handlers with [`register`], which it runs through [`run_handler`].

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::frame::{TrapFrame, vectors};
use super::{apic, gdt};

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
    load();
}

/// Loads the one IDT on this CPU (the boot CPU in [`init`], each secondary as it starts).
pub fn load() {
    let ptr = x86_64::structures::DescriptorTablePointer {
        limit: (size_of::<[Gate; 256]>() - 1) as u16,
        base: x86_64::VirtAddr::new(IDT.0.get() as u64),
    };
    // SAFETY: the table is 'static and every gate points to a stub in this image.
    unsafe { x86_64::instructions::tables::lidt(&ptr) };
}

/// Moves #DF, NMI and #MC onto their IST stacks (after gdt::alloc_ist_stacks has given each a stack).
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
/// Interrupts that arrived on a vector nobody handles, and the latest such vector.
static UNEXPECTED: AtomicU64 = AtomicU64::new(0);
static LAST_UNEXPECTED: AtomicU64 = AtomicU64::new(0);
/// Spurious interrupts (LAPIC and legacy PIC).
static SPURIOUS: AtomicU64 = AtomicU64::new(0);
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

/// The first steps of every trap, before the kernel decides what it means: counts the vector and
/// clears the RF bit an emulator may have pushed in an external interrupt's frame; returns the vector.
///
/// `trap.S` calls `hauki_trap(frame) -> *mut TrapFrame`, which the kernel above defines (a
/// link-time registration: the hardware layer names no subsystem, and the entry costs no indirect
/// call); it calls this first.
///
/// `pub(crate)`, as [`run_handler`]: a `pub` inline function makes the statics it reads exported
/// from the library, and exported statics are reached through an address slot (one load more on
/// every trap, seen in `cargo xtask bench`).
#[inline(always)]
pub(crate) fn on_entry(frame: &mut TrapFrame) -> usize {
    let v = frame.vector as usize;
    PER_VECTOR[v].fetch_add(1, Ordering::Relaxed);
    if (v >= 32 || v == 2) && INTERRUPT_RF_QUIRK.load(Ordering::Relaxed) {
        // An external interrupt or NMI (or `int n`, which pushes RF clear anyway).
        frame.rflags &= !RFLAGS_RF;
    }
    v
}

/// A spurious interrupt (LAPIC, or the legacy PIC's 7 and 15) arrived: counted, and it gets no EOI.
pub fn count_spurious() {
    SPURIOUS.fetch_add(1, Ordering::Relaxed);
}

/// Runs the handler [`register`]ed for the frame's vector; false if there is none.
#[inline(always)]
/// Whether a handler is registered for `v`.
pub fn has_handler(v: u8) -> bool {
    HANDLERS[usize::from(v)].load(Ordering::Acquire) != 0
}

pub(crate) fn run_handler(v: u8, frame: &mut TrapFrame) -> bool {
    let h = HANDLERS[usize::from(v)].load(Ordering::Acquire);
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
pub fn count_unexpected(v: u8) {
    UNEXPECTED.fetch_add(1, Ordering::Relaxed);
    LAST_UNEXPECTED.store(u64::from(v), Ordering::Relaxed);
}

/// Interrupts nobody asked for since boot: (spurious, on a vector nobody handles, the latest
/// such vector).
pub fn stray() -> (u64, u64, u8) {
    (
        SPURIOUS.load(Ordering::Relaxed),
        UNEXPECTED.load(Ordering::Relaxed),
        LAST_UNEXPECTED.load(Ordering::Relaxed) as u8,
    )
}
