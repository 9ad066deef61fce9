//! x86_64: bring-up and ownership of the machine (GDT/TSS/IDT, exceptions, memory, ACPI, LAPIC,
//! IO-APIC, PIC, TSC, one-shot timer, secondary CPUs).

pub mod acpi;
pub mod apic;
mod boot;
pub mod console;
pub mod context;
pub mod cpu;
pub mod exceptions;
pub mod fatal;
pub mod gdt;
pub mod guest;
pub mod idt;
pub mod ioapic;
pub mod irqchip;
pub mod linux;
pub mod mm;
pub mod pci;
pub mod pic;
pub mod rt;
pub mod serial;
pub mod smp;
pub mod timer;
pub mod tsc;
pub mod vga;
pub mod watchdog;

pub use boot::{BootReport, boot_report};

core::arch::global_asm!(include_str!("../../../../boot/entry.S"), options(att_syntax));

/// The co-kernel heap (mapped by `mm::init`).
#[global_allocator]
pub static HEAP: linked_list_allocator::LockedHeap = linked_list_allocator::LockedHeap::empty();

/// Halts until the next interrupt, with interrupts enabled atomically (`sti; hlt`).
pub fn idle_once() {
    x86_64::instructions::interrupts::enable_and_hlt();
}
