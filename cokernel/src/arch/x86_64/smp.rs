//! Secondary CPUs: found in the MADT and started into the co-kernel, each with its own GDT, TSS
//! and IST stacks, its LAPIC and one-shot timer (the IDT is shared). A CPU the co-kernel cannot
//! run on (beyond [`MAX_CPUS`], an APIC ID above 255, no free page below 1 MiB for the start-up
//! code, or one that does not answer) is parked with an INIT IPI instead, so none is left
//! spinning in firmware code or memory the co-kernel or Linux reuses.
//!
//! Start-up is INIT, then STARTUP twice (the MP specification's sequence), one CPU at a time: the
//! CPU runs `ap_boot.S` from a page below 1 MiB into [`secondary_entry`], which sets the CPU up,
//! says it is online, and waits (halted) until [`release`]: by then the layers above have created
//! its scheduler and tasks. It then runs the function they registered with [`set_main`].

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use x86_64::PhysAddr;
use x86_64::registers::control::{Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::structures::paging::PhysFrame;

use super::acpi::Platform;
use super::percpu::{self, MAX_CPUS};
use super::{apic, console, cpu, gdt, idt, mm, timer, tsc};

core::arch::global_asm!(include_str!("ap_boot.S"), options(att_syntax));

unsafe extern "C" {
    static hauki_ap_tramp_start: u8;
    static hauki_ap_tramp_end: u8;
    static hauki_ap_gdt: u8;
    static hauki_ap_gdt_base: u8;
    static hauki_ap_jump_target: u8;
    static hauki_ap_long: u8;
    static hauki_ap_cr3: u8;
    static hauki_ap_stack: u8;
    static hauki_ap_entry: u8;
    static hauki_ap_cpu: u8;
}

/// Bytes of low memory [`start_secondaries`] needs: the start-up code's page and its page table
/// (PML4, PDPT, PD).
pub const LOW_BYTES: u64 = 4 * 4096;

/// What [`start_secondaries`] found, for the boot record.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    /// CPUs the MADT lists as usable (enabled or online-capable), the boot CPU included.
    pub cpus: u32,
    /// CPUs the co-kernel runs on, the boot CPU included.
    pub online: u32,
    /// Of those, real-time-only CPUs (`hauki.rt_cpus`): Linux never runs there.
    pub rt_only: u32,
    /// Usable secondaries left parked with INIT (see the module documentation).
    pub parked: u32,
    /// CPUs the MADT lists as neither enabled nor online-capable (left alone).
    pub disabled: u32,
}

/// Per-CPU start-up handshake.
static ONLINE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
static RELEASED: AtomicBool = AtomicBool::new(false);
/// The boot CPU's CR4, which each secondary takes (PGE and the rest as the boot CPU set them).
static BOOT_CR4: AtomicU64 = AtomicU64::new(0);
/// What a released secondary runs (a `fn() -> !`; 0: halt forever).
static MAIN: AtomicUsize = AtomicUsize::new(0);
/// Real-time-only CPUs (bit per CPU index).
static RT_ONLY: AtomicU64 = AtomicU64::new(0);

/// Whether CPU `cpu` is real-time only (Linux never runs there).
pub fn is_rt_only(cpu: usize) -> bool {
    cpu < 64 && RT_ONLY.load(Ordering::Relaxed) & (1 << cpu) != 0
}

/// The CPUs the co-kernel runs on, by index.
pub fn online() -> impl Iterator<Item = usize> {
    (0..percpu::count()).filter(|&c| c == 0 || ONLINE[c].load(Ordering::Acquire))
}

/// Registers what each secondary runs once released (its scheduler's start and idle loop).
pub fn set_main(f: fn() -> !) {
    MAIN.store(f as usize, Ordering::Release);
}

/// Lets the started secondaries run their [`set_main`] function.
pub fn release() {
    RELEASED.store(true, Ordering::Release);
    for c in online().filter(|&c| c != 0) {
        if let Some(id) = percpu::apic_id(c) {
            apic::send_fixed(id, super::frame::vectors::WAKEUP);
        }
    }
}

/// Which secondaries are real-time only: `hauki.rt_cpus=LIST` (CPU indexes, `1,3` or `1-3`),
/// else the last CPU when there are at least two. CPU 0 is Linux's and cannot be.
#[derive(Clone, Copy, Debug)]
pub enum RtChoice {
    /// The default.
    Default,
    /// These CPU indexes (bit per index).
    List(u64),
}

fn addr(s: &u8) -> u64 {
    s as *const u8 as u64
}

fn offset(s: &u8) -> u64 {
    // SAFETY: only the symbol's address is taken.
    addr(s) - addr(unsafe { &hauki_ap_tramp_start })
}

/// Starts every usable secondary the MADT lists into the co-kernel, using the 16 KiB of free
/// low memory at `low` (page-aligned, below 1 MiB; `None`: none was found, every secondary is
/// parked), and writes a `cpu` record for each. Called once, on the boot CPU, with its LAPIC
/// and timer set up and interrupts off.
pub fn start_secondaries(p: &Platform, low: Option<u64>, rt: RtChoice) -> Summary {
    let me = apic::id();
    let _ = percpu::register(me);
    let mut s = Summary { online: 1, ..Summary::default() };
    let mut results: heapless::Vec<(u32, u32, Result<usize, &'static str>), 64> = heapless::Vec::new();
    let usable = p.cpus.iter().filter(|c| c.enabled || c.online_capable || c.apic_id == me).count();
    if let Some(low) = low.filter(|_| usable > 1) {
        prepare_low(low);
        percpu::enable_smp();
    }
    for c in &p.cpus {
        if c.apic_id == me {
            s.cpus += 1;
            continue;
        }
        if !(c.enabled || c.online_capable) {
            s.disabled += 1;
            console::record("cpu", |r| {
                r.u64("apic_id", u64::from(c.apic_id)).u64("acpi_uid", u64::from(c.acpi_uid)).str("state", "disabled");
            });
            continue;
        }
        s.cpus += 1;
        let started = match low {
            None => Err("no free page below 1 MiB for the start-up code"),
            Some(low) => start_one(c.apic_id, low),
        };
        if started.is_ok() {
            s.online += 1;
        } else {
            apic::send_init(c.apic_id);
            s.parked += 1;
        }
        let _ = results.push((c.apic_id, c.acpi_uid, started));
    }
    let online = s.online as usize;
    let mask = match rt {
        RtChoice::Default if online >= 2 => 1 << (online - 1),
        RtChoice::Default => 0,
        RtChoice::List(bits) => {
            if bits & 1 != 0 {
                log::warn!("hauki.rt_cpus: CPU 0 is Linux's and cannot be real-time only; ignored");
            }
            let all = if online >= 64 { u64::MAX } else { (1u64 << online) - 1 };
            if bits & !all != 0 {
                log::warn!("hauki.rt_cpus: CPUs beyond the {online} online ignored");
            }
            bits & all & !1
        }
    };
    RT_ONLY.store(mask, Ordering::Relaxed);
    s.rt_only = mask.count_ones();
    for (apic_id, acpi_uid, started) in results {
        console::record("cpu", |r| {
            match started {
                Ok(cpu) => r
                    .u64("cpu", cpu as u64)
                    .u64("apic_id", u64::from(apic_id))
                    .u64("acpi_uid", u64::from(acpi_uid))
                    .str("state", "online")
                    .str("kind", if is_rt_only(cpu) { "rt" } else { "shared" }),
                Err(why) => r
                    .u64("apic_id", u64::from(apic_id))
                    .u64("acpi_uid", u64::from(acpi_uid))
                    .str("state", "parked")
                    .str("message", why),
            };
        });
    }
    s
}

/// Copies the start-up code to `low` and builds its page table in the three pages after it.
fn prepare_low(low: u64) {
    // SAFETY: the template's bounds are two symbols of this image.
    let (start, end) = unsafe { (addr(&hauki_ap_tramp_start), addr(&hauki_ap_tramp_end)) };
    let len = (end - start) as usize;
    assert!(len <= 4096, "the start-up code must fit in its page");
    let page = mm::phys_to_virt(low) as *mut u8;
    let (pml4, pdpt, pd) = (low + 4096, low + 2 * 4096, low + 3 * 4096);
    // SAFETY: `low` is 16 KiB of free RAM below 1 MiB (the caller's contract), in the direct map.
    unsafe {
        core::ptr::write_bytes(page, 0, LOW_BYTES as usize);
        core::ptr::copy_nonoverlapping(start as *const u8, page, len);
        let field32 = |sym: &u8, v: u32| (page.add(offset(sym) as usize) as *mut u32).write_unaligned(v);
        field32(&hauki_ap_gdt_base, (low + offset(&hauki_ap_gdt)) as u32);
        field32(&hauki_ap_jump_target, (low + offset(&hauki_ap_long)) as u32);
        field32(&hauki_ap_cr3, pml4 as u32);
        // The upper half as the boot CPU maps it; the first 2 MiB at their physical addresses.
        let kernel = mm::phys_to_virt(mm::kernel_pml4()) as *const u64;
        let top = mm::phys_to_virt(pml4) as *mut u64;
        for i in 256..512 {
            top.add(i).write(kernel.add(i).read());
        }
        top.write(pdpt | 0x3);
        (mm::phys_to_virt(pdpt) as *mut u64).write(pd | 0x3);
        (mm::phys_to_virt(pd) as *mut u64).write(0x83); // present | writable | 2 MiB, at 0
    }
    BOOT_CR4.store(Cr4::read_raw(), Ordering::Relaxed);
}

/// Starts the CPU with APIC ID `apic_id`; its index once it is online.
fn start_one(apic_id: u32, low: u64) -> Result<usize, &'static str> {
    if percpu::count() >= MAX_CPUS {
        return Err("more CPUs than the co-kernel runs on (MAX_CPUS)");
    }
    if apic_id > 255 {
        return Err("APIC ID above 255");
    }
    let stack = mm::alloc_stack();
    let cpu = percpu::register(apic_id).ok_or("more CPUs than the co-kernel runs on (MAX_CPUS)")?;
    gdt::alloc_ist_stacks(cpu);
    let page = mm::phys_to_virt(low) as *mut u8;
    // SAFETY: the start-up page written by `prepare_low`; no CPU runs it now.
    unsafe {
        let field64 = |sym: &u8, v: u64| (page.add(offset(sym) as usize) as *mut u64).write_unaligned(v);
        field64(&hauki_ap_stack, stack);
        field64(&hauki_ap_entry, secondary_entry as *const () as u64);
        field64(&hauki_ap_cpu, cpu as u64);
    }
    let vector = (low >> 12) as u8;
    apic::send_init(apic_id);
    wait_us(10_000);
    for _ in 0..2 {
        apic::send_startup(apic_id, vector);
        if wait_online(cpu, 200) {
            return Ok(cpu);
        }
    }
    // A slow host may be late: give it a second (of TSC time) before giving up.
    if wait_online(cpu, 1_000_000) {
        return Ok(cpu);
    }
    Err("did not answer its STARTUP IPIs")
}

fn wait_us(us: u64) {
    let end = cpu::rdtsc() + tsc::ns_to_ticks(us * 1000);
    while cpu::rdtsc() < end {
        core::hint::spin_loop();
    }
}

fn wait_online(cpu: usize, us: u64) -> bool {
    let end = cpu::rdtsc() + tsc::ns_to_ticks(us * 1000);
    loop {
        if ONLINE[cpu].load(Ordering::Acquire) {
            return true;
        }
        if cpu::rdtsc() >= end {
            return false;
        }
        core::hint::spin_loop();
    }
}

/// Where `ap_boot.S` lands, on the CPU's own stack, with the start-up page table.
extern "C" fn secondary_entry(cpu: usize) -> ! {
    // Tables first (the start-up GDT is in low memory, which the co-kernel's page table does not
    // map), then the co-kernel's page table and the boot CPU's CR4.
    gdt::init_cpu(cpu);
    idt::load();
    // SAFETY: the co-kernel's page table maps this code, this stack and every static as the
    // start-up table's upper half did; CR4 as the boot CPU runs it (PAE stays set).
    unsafe {
        Cr3::write(PhysFrame::containing_address(PhysAddr::new(mm::kernel_pml4())), Cr3Flags::empty());
        Cr4::write_raw(BOOT_CR4.load(Ordering::Relaxed) | Cr4Flags::PHYSICAL_ADDRESS_EXTENSION.bits());
    }
    apic::init_secondary();
    timer::init_secondary();
    ONLINE[cpu].store(true, Ordering::Release);
    while !RELEASED.load(Ordering::Acquire) {
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
    }
    let f = MAIN.load(Ordering::Acquire);
    if f == 0 {
        loop {
            x86_64::instructions::hlt();
        }
    }
    // SAFETY: only `set_main` stores here, and it stores a `fn() -> !`.
    let f = unsafe { core::mem::transmute::<usize, fn() -> !>(f) };
    f()
}
