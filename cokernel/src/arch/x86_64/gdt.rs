//! GDT and TSS.
//!
//! The selector layout mirrors Linux's x86_64 GDT (kernel CS 0x10, kernel DS 0x18, user32 CS 0x23,
//! user DS 0x2b, user CS 0x33, TSS at entry 8): once Linux runs beside us, gates of the one IDT
//! name a code selector that is valid in either kernel's GDT.
//!
//! IST slots follow Linux's layout (1 = #DF, 2 = NMI, 3 = #DB, 4 = #MC), so the one IDT's gates
//! name the right stack whichever TSS is loaded, the co-kernel's or, once Linux runs, Linux's.
//! They are filled once the stacks (with guard pages) exist; until then those vectors use the
//! current stack.

use core::cell::UnsafeCell;

use x86_64::instructions::segmentation::{CS, DS, ES, FS, GS, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::{PrivilegeLevel, VirtAddr};

use super::cpu::MAX_CPUS;

/// The 64-bit kernel code selector (Linux's `__KERNEL_CS`).
pub const KERNEL_CS: u16 = 0x10;
/// The kernel data and stack selector (Linux's `__KERNEL_DS`).
pub const KERNEL_DS: u16 = 0x18;
/// The TSS selector (GDT entry 8, as Linux's `GDT_ENTRY_TSS`).
pub const TSS_SEL: u16 = 8 * 8;

/// IST slot of #DF (Linux's `IST_INDEX_DF` + 1).
pub const IST_DOUBLE_FAULT: u8 = 1;
/// IST slot of NMI (Linux's `IST_INDEX_NMI` + 1).
pub const IST_NMI: u8 = 2;
/// IST slot of #DB (Linux's `IST_INDEX_DB` + 1).
pub const IST_DEBUG: u8 = 3;
/// IST slot of #MC (Linux's `IST_INDEX_MCE` + 1).
pub const IST_MACHINE_CHECK: u8 = 4;

/// Boot-time-initialized, then read by the CPU; mutated only before `lgdt`/`ltr` or for IST slots.
struct CpuTables {
    gdt: UnsafeCell<GlobalDescriptorTable<16>>,
    tss: UnsafeCell<TaskStateSegment>,
}
// SAFETY: CPU `i`'s tables are built by the boot CPU (IST slots, before CPU `i` starts) and then
// loaded and read only by CPU `i`.
unsafe impl Sync for CpuTables {}

/// One GDT and TSS per CPU (the IDT is shared).
static TABLES: [CpuTables; MAX_CPUS] = [const {
    CpuTables { gdt: UnsafeCell::new(GlobalDescriptorTable::empty()), tss: UnsafeCell::new(TaskStateSegment::new()) }
}; MAX_CPUS];

/// Builds and loads the boot CPU's GDT and TSS, reloads every segment register.
pub fn init() {
    init_cpu(0);
}

/// Builds and loads CPU `cpu`'s GDT and TSS on that CPU, reloads every segment register.
pub fn init_cpu(cpu: usize) {
    let t = &TABLES[cpu];
    // SAFETY: on CPU `cpu`, once, before interrupts are enabled; no other CPU loads these tables.
    let gdt = unsafe { &mut *t.gdt.get() };
    // SAFETY: as above; the TSS is 'static, as the descriptor requires.
    let tss: &'static TaskStateSegment = unsafe { &*t.tss.get() };
    gdt.append(Descriptor::UserSegment(0x00cf_9b00_0000_ffff)); // 0x08 kernel 32-bit code
    let cs = gdt.append(Descriptor::kernel_code_segment()); // 0x10
    let ds = gdt.append(Descriptor::kernel_data_segment()); // 0x18
    gdt.append(Descriptor::UserSegment(0x00cf_fb00_0000_ffff)); // 0x20 user 32-bit code
    gdt.append(Descriptor::user_data_segment()); // 0x28
    gdt.append(Descriptor::user_code_segment()); // 0x30
    gdt.append(Descriptor::UserSegment(0)); // 0x38 unused (Linux: user TLS)
    let tss_sel = gdt.append(Descriptor::tss_segment(tss)); // 0x40
    debug_assert_eq!((cs.0, ds.0, tss_sel.0), (KERNEL_CS, KERNEL_DS, TSS_SEL));
    // SAFETY: the table is 'static and complete; the selectors loaded below are valid in it.
    unsafe {
        (*t.gdt.get()).load_unsafe();
        CS::set_reg(cs);
        SS::set_reg(ds);
        DS::set_reg(ds);
        ES::set_reg(ds);
        FS::set_reg(SegmentSelector::new(0, PrivilegeLevel::Ring0));
        GS::set_reg(SegmentSelector::new(0, PrivilegeLevel::Ring0));
        load_tss(tss_sel);
    }
}

/// Loads CPU `cpu`'s (this CPU's) GDT and TSS again (after a guest that loaded its own died:
/// its tables lie in memory about to be overwritten). Interrupts must be off.
pub fn reload(cpu: usize) {
    // SAFETY: the tables were built by `init`; the TSS descriptor's busy bit (type 0xb) is cleared
    // first, as `ltr` requires an available TSS; the selectors are those `init` loaded.
    unsafe {
        let gdt = &*TABLES[cpu].gdt.get();
        let entries = gdt.entries().as_ptr() as *mut u64;
        let tss = entries.add(usize::from(TSS_SEL) / 8);
        tss.write_volatile(tss.read_volatile() & !(1 << 41));
        gdt.load_unsafe();
        let cs = SegmentSelector(KERNEL_CS);
        let ds = SegmentSelector(KERNEL_DS);
        CS::set_reg(cs);
        SS::set_reg(ds);
        DS::set_reg(ds);
        ES::set_reg(ds);
        load_tss(SegmentSelector(TSS_SEL));
    }
}

/// Points CPU `cpu`'s IST slot `slot` (1-based) at `top` (for a secondary: before it starts).
pub fn set_ist_of(cpu: usize, slot: u8, top: u64) {
    assert!((1..=7).contains(&slot));
    // SAFETY: the CPU reads the IST slot only when it takes an exception through a gate that
    // names it; gates name a slot only after it has been set (see idt::enable_ist), and a
    // secondary's slots are set before it runs.
    unsafe { (*TABLES[cpu].tss.get()).interrupt_stack_table[usize::from(slot - 1)] = VirtAddr::new(top) };
}

/// Gives CPU `cpu` its four IST stacks (#DF, NMI, #DB, #MC), each behind a guard page.
pub fn alloc_ist_stacks(cpu: usize) {
    for slot in [IST_DOUBLE_FAULT, IST_NMI, IST_DEBUG, IST_MACHINE_CHECK] {
        set_ist_of(cpu, slot, super::mm::alloc_stack());
    }
}
