//! x86_64: the hardware layer. Frames and vectors, IDT gates and the trap entry, GDT/TSS, the CPU,
//! paging, LAPIC, IO-APIC and PIC, TSC and the one-shot timer, ACPI, PCI, serial, console and VGA,
//! secondary CPUs. Nothing here knows tasks or Linux: the layers above plug in by registration
//! (the trap entry `hauki_trap` that `trap.S` calls, `idt::register`, `timer::set_callback`, `timer::set_shared`,
//! `context::set_task_name_source`).

pub mod acpi;
pub mod apic;
pub mod console;
pub mod context;
pub mod cpu;
pub mod exceptions;
pub mod fatal;
pub mod frame;
pub mod gdt;
pub mod idt;
pub mod ioapic;
pub mod mm;
pub mod pci;
pub mod percpu;
pub mod pic;
pub mod serial;
pub mod smp;
pub mod timer;
pub mod tsc;
pub mod vga;

core::arch::global_asm!(include_str!("../../../../boot/entry.S"), options(att_syntax));

/// The co-kernel heap (mapped by `mm::init`).
#[global_allocator]
pub static HEAP: linked_list_allocator::LockedHeap = linked_list_allocator::LockedHeap::empty();

/// Halts until the next interrupt, with interrupts enabled atomically (`sti; hlt`).
pub fn idle_once() {
    x86_64::instructions::interrupts::enable_and_hlt();
}
