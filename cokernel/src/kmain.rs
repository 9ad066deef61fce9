//! The boot sequence: from the boot trampoline to a co-kernel that owns the machine, then the boot
//! record, then the tasks, Linux, the in-kernel tests or the benchmarks.
//!
//! Order matters: serial first (so every later failure can be reported), then GDT/IDT (so a fault
//! is a report, not a triple fault), then the boot information and memory, then the platform.
//! Each refusal of bad input goes through `fatal` with a stable reason key.

use spin::Once;

use hauki_abi::cmdline as keys;
use hauki_abi::debug_exit;

use crate::arch::context::{self, Context};
use crate::arch::cpu::{self, rdtsc};
use crate::arch::fatal::fatal;
use crate::arch::{acpi, apic, console, exceptions, fatal, gdt, idt, ioapic, mm, pic, smp, timer, tsc, vga};
use crate::bootinfo::{self, BootInfo, Firmware, Protocol};
use crate::cmdline;
use crate::guest::loader as linux;
use crate::guest::{irqchip, supervisor};
use crate::kernel::{channels, linux_calls, sched};
use crate::mm::frame::FrameAllocator;
use crate::mm::memmap::MemMapError;

const PROTO_MULTIBOOT2: u32 = 1;
const PROTO_PVH: u32 = 2;
/// Free RAM wanted beyond the heap: page tables, task stacks, the pages handed to Linux, and
/// headroom for real-time work.
const MIN_FREE_AFTER_HEAP: u64 = 4 << 20;

/// What bring-up found, for the boot record and the in-kernel tests.
#[derive(Clone, Debug)]
pub struct BootReport {
    /// The boot protocol that started the co-kernel.
    pub protocol: Protocol,
    /// The firmware the machine booted with.
    pub firmware: Firmware,
    /// The co-kernel's command line.
    pub cmdline: heapless::String<512>,
    /// What CPUID says about the boot CPU.
    pub cpu: cpu::Features,
    /// The local APIC's mode.
    pub apic: apic::Mode,
    /// The hardware behind the one-shot timer.
    pub timer: timer::Kind,
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// Where `tsc_hz` came from.
    pub tsc_source: tsc::Source,
    /// The LAPIC timer's input frequency (Hz), measured against the TSC.
    pub lapic_timer_hz: u64,
    /// Nanoseconds from the boot trampoline's first TSC read to the end of bring-up.
    pub boot_ns: u64,
    /// The CPUs found, started and parked.
    pub cpus: smp::Summary,
    /// IO-APICs the MADT lists.
    pub ioapics: u32,
    /// Input pins of the IO-APICs that answered.
    pub ioapic_pins: u32,
    /// Bytes of usable RAM in the boot memory map.
    pub mem_usable_bytes: u64,
    /// What the page-table setup built.
    pub mm: mm::Stats,
    /// What ACPI describes.
    pub platform: acpi::Platform,
}

static REPORT: Once<BootReport> = Once::new();

/// The report of a completed boot.
pub fn boot_report() -> &'static BootReport {
    REPORT.get().expect("boot not complete")
}

/// Called by boot/entry.S in long mode on the boot stack, boot page tables live.
#[unsafe(no_mangle)]
extern "C" fn hauki_entry(protocol: u32, magic: u32, info_phys: u32, entry_tsc: u64) -> ! {
    console::init();
    gdt::init();
    idt::init();
    context::set(Context::Boot);
    log::info!("Hauki co-kernel {} starting", env!("CARGO_PKG_VERSION"));

    let boot = parse_boot_info(protocol, magic, u64::from(info_phys));
    let line = boot.cmdline.as_str();
    if cmdline::flag(line, keys::DEBUG_EXIT) {
        fatal::enable_debug_exit();
    }
    vga::set_present(boot.vga_text);
    log::info!(
        "boot protocol {:?} ({:?} firmware, loader \"{}\"), command line \"{}\"",
        boot.protocol,
        boot.firmware,
        boot.bootloader,
        line
    );

    let cpu = cpu::detect();
    let (mm_stats, linux_plan, withheld) = init_memory(&boot);
    // IST stacks exist only now; until here #DF/NMI/#MC used the current stack.
    gdt::alloc_ist_stacks(0);
    idt::enable_ist();

    if !cpu.apic {
        fatal(
            "no-apic",
            format_args!(
                "this CPU reports no local APIC (CPUID.1:EDX.APIC = 0); Hauki needs one for its timer and interrupts. \
                 Under QEMU, do not pass -apic in -cpu."
            ),
        );
    }
    let platform = match acpi::discover(boot.rsdp, boot.firmware) {
        Ok(p) => p,
        Err(acpi::Error::NoRsdp) => fatal(
            "no-rsdp",
            format_args!(
                "no ACPI RSDP: the boot loader passed none and none was found in the BIOS areas. Hauki needs ACPI \
                 (MADT) to find CPUs and IO-APICs; enable ACPI in the firmware (QEMU: do not use acpi=off)."
            ),
        ),
        Err(acpi::Error::BadTables) => fatal(
            "bad-acpi",
            format_args!("the ACPI RSDP or RSDT/XSDT is malformed (bad signature or checksum); check the firmware."),
        ),
        Err(acpi::Error::NoMadt) => {
            fatal("no-madt", format_args!("ACPI has no MADT (APIC table): the interrupt controllers cannot be found."))
        }
    };

    pic::remap_and_mask();
    crate::tasks::telemetry::set_timing(cmdline::get(line, keys::TIMING));
    let force_xapic = cmdline::get(line, keys::APIC) == Some("xapic");
    let apic_mode = apic::init(cpu.x2apic, force_xapic);
    if idt::probe_interrupt_rf() {
        log::info!("this CPU sets RF in external interrupts' frames (an emulator quirk): the co-kernel clears it");
    }
    let mut ioapic_pins = 0;
    for io in &platform.ioapics {
        match ioapic::add(io.id, io.phys, io.gsi_base) {
            Ok(a) => ioapic_pins += a.pins,
            Err(e) => log::warn!("IO-APIC {} at {:#x}: {e}; left alone", io.id, io.phys),
        }
    }
    let default = u64::from(crate::guest::lines::STORM_LIMIT);
    let storm_limit = cmdline::number_or(line, keys::LINE_STORM_LIMIT, 0..=u64::from(u32::MAX), default, "") as u32;
    irqchip::init(&platform.overrides, platform.sci_irq, storm_limit);
    let (tsc_hz, tsc_source) = tsc::calibrate(cpu.tsc_hz_stated, platform.hpet_phys);
    let force_lapic = cmdline::get(line, keys::TIMER) == Some("lapic");
    let timer = timer::init(cpu.tsc_deadline, force_lapic);
    let rt = match cmdline::bit_list(line, keys::RT_CPUS) {
        Ok(Some(bits)) => smp::RtChoice::List(bits),
        Ok(None) => smp::RtChoice::Default,
        Err(e) => {
            log::warn!("{e}; the default real-time-only CPU is kept");
            smp::RtChoice::Default
        }
    };
    let cpus = smp::start_secondaries(&platform, low_pages(&boot), rt);
    x86_64::instructions::interrupts::enable();

    let boot_ns = tsc::ticks_to_ns(rdtsc() - entry_tsc);
    let report = REPORT.call_once(|| BootReport {
        protocol: boot.protocol,
        firmware: boot.firmware,
        cmdline: boot.cmdline.clone(),
        cpu,
        apic: apic_mode,
        timer,
        tsc_hz,
        tsc_source,
        lapic_timer_hz: timer::lapic_hz(),
        boot_ns,
        cpus,
        ioapics: platform.ioapics.len() as u32,
        ioapic_pins,
        mem_usable_bytes: boot.memory.usable_bytes(),
        mm: mm_stats,
        platform,
    });
    emit_boot_record(report);
    log::info!(
        "ready in {} us: {} CPU(s), {} {} timer, TSC {} kHz ({}), {} MiB usable",
        boot_ns / 1000,
        report.cpus.cpus,
        report.apic.name(),
        report.timer.name(),
        tsc_hz / 1000,
        tsc_source.name(),
        report.mem_usable_bytes >> 20
    );

    if let Some(what) = cmdline::get(line, keys::INJECT) {
        inject(what);
    }
    if cmdline::flag(line, keys::EXIT_AFTER_BOOT) {
        fatal::exit(debug_exit::SUCCESS);
    }
    let kib = cmdline::number(line, keys::CHANNELS_KIB, 16..=channels::MAX_KIB).unwrap_or_else(|e| {
        log::warn!("{e}; the channel region keeps the default {} KiB", channels::DEFAULT_KIB);
        None
    });
    let region = channels::init(kib.unwrap_or(channels::DEFAULT_KIB)).unwrap_or_else(|| {
        log::warn!("no memory for the channel region: applications get no channels");
        (0, 0)
    });
    let guest = start_linux(&boot, &report.cpu, linux_plan, &withheld, region);
    sched::init();
    match cmdline::number(line, keys::ICOUNT_PACE_US, 1..=1000) {
        Ok(Some(us)) => sched::set_icount_pace_us(us),
        Ok(None) => {}
        Err(e) => log::warn!("{e}; no pacing"),
    }
    for c in smp::online().filter(|&c| c != 0) {
        sched::prepare(c);
    }
    smp::set_main(secondary_main);
    #[cfg(feature = "ktest")]
    {
        let _ = &guest; // the in-kernel tests run instead of Linux
        context::set(Context::Test);
        smp::release();
        let ok = crate::ktest::run();
        fatal::enable_debug_exit();
        fatal::exit(if ok { debug_exit::SUCCESS } else { debug_exit::FAILURE });
    }
    #[allow(unreachable_code, reason = "with the ktest feature the tests above end the run")]
    let smp_bench = cmdline::get(line, keys::BENCH) == Some("smp");
    if cmdline::flag(line, keys::BENCH) || smp_bench {
        context::set(Context::Test);
        smp::release();
        crate::tasks::bench::run(smp_bench);
    }
    crate::tasks::start(line, || start_app(line, boot.vga_text && guest.is_none()));
    smp::release();
    if let Some((entry, boot_params)) = guest {
        console::release_console();
        context::set(Context::Idle);
        linux::enter_guest(entry, boot_params);
    }
    context::set(Context::Idle);
    loop {
        crate::arch::idle_once();
    }
}

/// Linux's ACPI tables (`guest::acpi_view`): the firmware's, with a MADT listing only the CPUs
/// Linux runs on (CPU 0), in a page of the co-kernel's pool; the RSDP's physical address. On
/// firmware tables it cannot use, a `linux_acpi` record says why and Linux gets the firmware's
/// tables (and `nr_cpus=1`).
fn linux_acpi(p: &acpi::Platform) -> Option<u64> {
    use crate::guest::acpi_view::{self, Firmware};
    let t = &p.tables;
    let (Some(root), Some(madt)) =
        (acpi::table_bytes(t.root_phys, acpi_view::PAGE), acpi::table_bytes(t.madt_phys, 1 << 16))
    else {
        acpi_fallback(format_args!("the firmware's root table or MADT has an impossible length"));
        return None;
    };
    let page = mm::alloc_frame()?;
    // SAFETY: a fresh pool frame (withheld from Linux's RAM), in the direct map.
    let out = unsafe { &mut *(mm::phys_to_virt(page) as *mut [u8; acpi_view::PAGE]) };
    let fw = Firmware { root, xsdt: t.root_is_xsdt, madt_phys: t.madt_phys, madt, oem_id: t.oem_id };
    let linux_apic = crate::arch::percpu::apic_id(crate::guest::vcpu::LINUX_CPU).unwrap_or_else(apic::id);
    let linux = crate::guest::vcpu::linux_cpus();
    let is_linux =
        |id: u32| id == linux_apic || crate::arch::percpu::of_apic(id).is_some_and(|c| c < 32 && linux & (1 << c) != 0);
    match acpi_view::build(&fw, &is_linux, page, out) {
        Ok(b) => {
            console::record("linux_acpi", |r| {
                r.str("state", "own")
                    .hex("rsdp", page)
                    .u64("cpus", u64::from(b.cpus))
                    .u64("left_out", u64::from(b.dropped))
                    .u64("bytes", b.len as u64);
            });
            Some(page)
        }
        Err(e) => {
            mm::free_frame(page);
            acpi_fallback(format_args!("{e}"));
            None
        }
    }
}

/// The CPUs Linux runs on (bit per co-kernel CPU): CPU 0 and every other shared CPU that is
/// online, or CPU 0 alone with `hauki.linux_smp=off`.
fn linux_cpus(line: &str) -> u32 {
    let smp = !matches!(cmdline::get(line, keys::LINUX_SMP), Some("off" | "0"));
    let mut mask = 1;
    if smp {
        for c in smp::online().filter(|&c| c > 0 && c < 32 && !smp::is_rt_only(c)) {
            mask |= 1 << c;
        }
    }
    mask
}

fn acpi_fallback(why: core::fmt::Arguments<'_>) {
    console::record("linux_acpi", |r| {
        r.str("state", "firmware").fmt("message", why);
    });
    log::warn!("Linux gets the firmware's ACPI tables: {why}");
}

/// What a secondary CPU runs once released: its scheduler, with the co-kernel's idle loop as
/// its idle task until Linux starts one of its CPUs there (`CPU_START`); Linux is the idle task
/// from then on.
fn secondary_main() -> ! {
    x86_64::instructions::interrupts::disable();
    sched::start_this_cpu();
    supervisor::secondary_idle()
}

/// 16 KiB of free RAM below 1 MiB for the secondaries' start-up code: usable in the memory map,
/// clear of the boot information and modules, below the EBDA.
fn low_pages(boot: &BootInfo) -> Option<u64> {
    let mut avoid: heapless::Vec<core::ops::Range<u64>, 16> = heapless::Vec::new();
    let _ = avoid.push(0..0x1000);
    for r in &boot.info_ranges {
        let _ = avoid.push(r.clone());
    }
    for m in &boot.modules {
        let _ = avoid.push(m.start..m.end);
    }
    boot.memory
        .find_free(smp::LOW_BYTES, 0x1000, 0x1000, &avoid)
        .map(|r| r.start)
        .filter(|&a| a + smp::LOW_BYTES <= 0x9_f000)
}

/// Starts the image's application unless `hauki.app=off`; what it cannot have is refused with
/// its reason in an `app` record, and the system runs on without it.
fn start_app(line: &str, vga: bool) {
    let app = crate::app::this();
    if cmdline::get(line, keys::APP).is_some_and(|v| v == "0" || v == "off") {
        console::record("app", |r| {
            r.str("name", app.name).str("state", "off");
        });
        return;
    }
    match (app.start)(&crate::app::Boot { cmdline: line, vga }) {
        Ok(()) => console::record("app", |r| {
            r.str("name", app.name).str("state", "started").str("about", app.about);
        }),
        Err(e) => {
            log::error!("application {} refused: {e}", app.name);
            channels::abandon_all(); // what it opened has no task behind it
            console::record("app", |r| {
                r.str("name", app.name).str("state", "refused").str("message", &alloc::format!("{e}"));
            });
        }
    }
}

fn parse_boot_info(protocol: u32, magic: u32, info: u64) -> BootInfo {
    // Only what the boot page tables map (the low 4 GiB, aliased at the boot offset) is handed
    // out; an address beyond it is a `bad-boot-info` refusal, not a page fault.
    let to_ptr = |p: u64, len: u64| mm::phys_to_virt_checked(p, len).map(|v| v as *const u8);
    // SAFETY: `phys_to_virt_checked` returns only addresses inside the boot alias of the low
    // 4 GiB, where the boot loader's structures lie unchanged while they are parsed.
    let parsed = unsafe {
        match protocol {
            PROTO_MULTIBOOT2 => bootinfo::parse_multiboot2(magic, info, &to_ptr),
            PROTO_PVH => bootinfo::parse_pvh(info, &to_ptr),
            _ => fatal("bad-boot-protocol", format_args!("unknown boot protocol {protocol} from entry.S")),
        }
    };
    match parsed {
        Ok(b) => b,
        Err(e) => fatal("bad-boot-info", format_args!("the boot information is unusable: {e}")),
    }
}

/// The co-kernel's own memory when Linux shares the machine (`hauki.pool_mib`, default 64 MiB):
/// heap, page tables, task stacks and the pages handed to Linux all come from it; Linux gets the
/// rest of RAM.
const DEFAULT_POOL_MIB: u64 = 64;

fn init_memory(
    boot: &BootInfo,
) -> (mm::Stats, Option<Result<linux::Plan, linux::PlanError>>, heapless::Vec<core::ops::Range<u64>, 8>) {
    let image = mm::image_phys();
    if let Err(e) = boot.memory.check_kernel(image.clone()) {
        fatal("memory-map-overlaps-kernel", format_args!("{e}"));
    }
    let plan = linux::plan(boot, image.clone()).transpose();
    let mut reserved: heapless::Vec<core::ops::Range<u64>, 16> = heapless::Vec::new();
    let _ = reserved.push(image.clone());
    for r in &boot.info_ranges {
        let _ = reserved.push(r.clone());
    }
    for m in &boot.modules {
        let _ = reserved.push(m.start..m.end);
    }
    if let Some(Ok(p)) = &plan {
        for r in p.reserved() {
            let _ = reserved.push(r);
        }
    }
    let mut frames = match FrameAllocator::new(&boot.memory, 0x10_0000, &reserved) {
        Ok(f) => f,
        Err(MemMapError::NoUsableAboveOneMiB) => fatal(
            "no-usable-memory",
            format_args!(
                "the memory map has no usable RAM above 1 MiB outside the co-kernel image and boot modules; \
                 give the machine more memory"
            ),
        ),
        Err(e) => fatal("bad-memory-map", format_args!("{e}")),
    };
    let mut withheld: heapless::Vec<core::ops::Range<u64>, 8> = heapless::Vec::new();
    let _ = withheld.push(image);
    for r in &boot.info_ranges {
        let _ = withheld.push(r.clone());
    }
    // With Linux to run, the co-kernel keeps a pool and leaves the rest of RAM to Linux.
    if let Some(Ok(_)) = &plan {
        let line = boot.cmdline.as_str();
        let bytes = cmdline::mib(line, keys::POOL_MIB).unwrap_or_else(|e| {
            log::warn!("{e}; the co-kernel keeps the default {DEFAULT_POOL_MIB} MiB");
            None
        });
        let bytes = bytes.unwrap_or(DEFAULT_POOL_MIB << 20);
        let mib = bytes >> 20;
        let Some(start) = frames.alloc_contiguous(bytes / crate::mm::frame::FRAME_SIZE, 2 << 20) else {
            fatal(
                "not-enough-memory",
                format_args!(
                    "no {mib} MiB of contiguous RAM for the co-kernel's pool beside Linux; give the machine more memory or lower hauki.pool_mib"
                ),
            );
        };
        let mut pool_map = crate::mm::memmap::MemoryMap::new();
        let _ = pool_map.add(start, bytes, crate::mm::memmap::RegionKind::Usable);
        pool_map.normalize();
        frames = match FrameAllocator::new(&pool_map, 0x10_0000, &[]) {
            Ok(f) => f,
            Err(e) => fatal("bad-memory-map", format_args!("{e}")),
        };
        let _ = withheld.push(start..start + bytes);
    }
    // The heap, the page tables and the stacks must fit, with room left for real-time work.
    let need = mm::HEAP_SIZE + MIN_FREE_AFTER_HEAP;
    let have = frames.free_frames() * crate::mm::frame::FRAME_SIZE;
    if have < need {
        fatal(
            "not-enough-memory",
            format_args!(
                "only {} KiB of free RAM above 1 MiB; the co-kernel needs at least {} KiB (heap, page tables, \
                 stacks). Give the machine more memory.",
                have >> 10,
                need >> 10
            ),
        );
    }
    let modules: heapless::Vec<core::ops::Range<u64>, 8> = boot.modules.iter().map(|m| m.start..m.end).collect();
    let stats = match mm::init(&boot.memory, &modules, frames) {
        Ok(s) => s,
        Err(e) => fatal("memory-setup-failed", format_args!("building the page tables failed: {e}")),
    };
    (stats, plan, withheld)
}

/// What to do with a loaded Linux (`hauki.linux=`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum LinuxMode {
    /// Load and check it only.
    Load,
    /// Run it as the idle task beside the real-time tasks.
    Guest,
    /// Give it the whole machine.
    Handover,
}

/// Loads the planned Linux (or reports why not) and, with `hauki.linux=handover`, gives it the
/// machine. Returns the entry and boot_params of a Linux to run as the guest, if asked for.
fn start_linux(
    boot: &BootInfo,
    cpu: &cpu::Features,
    plan: Option<Result<linux::Plan, linux::PlanError>>,
    withheld: &[core::ops::Range<u64>],
    channels: (u64, u64),
) -> Option<(u64, u64)> {
    let line = boot.cmdline.as_str();
    let plan = match plan {
        None => {
            console::record("linux", |r| {
                r.str("state", "absent").str("message", "no boot module: the co-kernel runs its real-time tasks alone");
            });
            return None;
        }
        Some(Err(e)) => {
            refuse(e.reason(), format_args!("{e}"));
            return None;
        }
        Some(Ok(p)) => p,
    };
    let mode = match cmdline::get(line, keys::LINUX) {
        Some("handover") => LinuxMode::Handover,
        Some("guest") => LinuxMode::Guest,
        _ => LinuxMode::Load,
    };
    if let Err(e) = linux::relocate(&plan).and_then(|()| linux::load(&plan)) {
        refuse("load-failed", format_args!("{e}"));
        return None;
    }
    let mut features = 0;
    // The mode in use, not the CPU's ability: Linux writes the x2APIC self-IPI MSR on it.
    if apic::mode() == Some(apic::Mode::X2Apic) {
        features |= hauki_abi::guest::FEATURE_X2APIC;
    }
    if cpu.tsc_deadline {
        features |= hauki_abi::guest::FEATURE_TSC_DEADLINE;
    }
    if cpu.invariant_tsc {
        features |= hauki_abi::guest::FEATURE_INVARIANT_TSC;
    }
    // As the guest, Linux can be restarted: the modules stay the co-kernel's (withheld from
    // Linux) and Linux gets a copy of the initramfs in its own RAM at every start.
    let guest = mode == LinuxMode::Guest;
    let mut withhold: heapless::Vec<core::ops::Range<u64>, 12> = heapless::Vec::new();
    for r in withheld
        .iter()
        .cloned()
        .chain(guest.then(|| page_out(&plan.image)))
        .chain(plan.initrd.as_ref().filter(|_| guest).map(page_out))
    {
        let _ = withhold.push(r);
    }
    let initrd_at = if guest && plan.initrd.is_some() {
        match linux::initrd_slot(&plan, boot, &withhold) {
            Some(a) => Some(a),
            None => {
                refuse(
                    "no-room-for-initramfs",
                    format_args!("no free RAM below 2 GiB above the kernel takes Linux's copy of the initramfs"),
                );
                return None;
            }
        }
    } else {
        None
    };
    if let Some(dst) = initrd_at
        && let Err(e) = linux::place_initrd(&plan, dst)
    {
        refuse("load-failed", format_args!("{e}"));
        return None;
    }
    // Linux sees only its own CPUs (not on handover: then the machine is Linux's).
    crate::guest::vcpu::set_linux_cpus(linux_cpus(line));
    let acpi = if mode == LinuxMode::Handover { None } else { linux_acpi(&boot_report().platform) };
    if acpi.is_none() {
        crate::guest::vcpu::set_linux_cpus(0);
    }
    let prep = match linux::prepare(
        &plan,
        boot,
        &withhold,
        features,
        guest,
        initrd_at,
        linux_calls::gate(),
        channels,
        crate::kernel::devices::table_addr(),
        acpi.or(boot.rsdp),
    ) {
        Ok(p) => p,
        Err(e) => {
            refuse("prepare-failed", format_args!("{e}"));
            return None;
        }
    };
    if guest {
        if let Err(e) = linux::keep(&plan, &prep, initrd_at) {
            refuse("prepare-failed", format_args!("{e}"));
            return None;
        }
        supervisor::init(line);
        if crate::guest::vcpu::linux_cpus().count_ones() > 1 {
            // Linux's broadcast IPIs would reach the co-kernel's real-time-only CPUs too.
            if let Err(e) = linux::append_cmdline("no_ipi_broadcast=1") {
                refuse("prepare-failed", format_args!("cannot keep Linux's IPIs off real-time CPUs: {e}"));
                return None;
            }
        }
        if acpi.is_none() && boot_report().cpus.online > 1 {
            // Without its own MADT, Linux would see the co-kernel's CPUs: it must not start them.
            if let Err(e) = linux::append_cmdline("nr_cpus=1") {
                refuse("prepare-failed", format_args!("cannot keep Linux off the co-kernel's CPUs: {e}"));
                return None;
            }
        }
    }
    let handover = mode == LinuxMode::Handover;
    console::record("linux", |r| {
        r.str(
            "state",
            match mode {
                LinuxMode::Handover => "handover",
                LinuxMode::Guest => "guest",
                LinuxMode::Load => "loaded",
            },
        )
        .hex("entry", plan.vmlinux.entry_phys)
        .hex("load_start", plan.vmlinux.phys_start)
        .hex("load_end", plan.vmlinux.phys_end)
        .u64("initrd_bytes", plan.initrd.as_ref().map_or(0, |r| r.end - r.start))
        .str("cmdline", &plan.cmdline)
        .u64("e820_entries", prep.e820_entries as u64)
        .u64("modules_moved", plan.moves.len() as u64)
        .hex("boot_params", prep.boot_params)
        .hex("handoff", prep.handoff);
    });
    if handover {
        log::info!(
            "handing the machine to Linux at {:#x} (hauki.linux=handover): the real-time side stops here",
            plan.vmlinux.entry_phys
        );
        console::release_console();
        linux::handover(plan.vmlinux.entry_phys, prep.boot_params);
    }
    if mode == LinuxMode::Guest {
        log::info!(
            "starting Linux as the idle task at {:#x}; COM1 is Linux's console from here",
            plan.vmlinux.entry_phys
        );
        return Some((plan.vmlinux.entry_phys, prep.boot_params));
    }
    log::info!(
        "Linux loaded and checked ({:#x}..{:#x}), not started: hauki.linux=guest runs it beside the real-time \
         tasks, hauki.linux=handover gives it the whole machine",
        plan.vmlinux.phys_start,
        plan.vmlinux.phys_end
    );
    None
}

/// `r` widened to whole pages.
fn page_out(r: &core::ops::Range<u64>) -> core::ops::Range<u64> {
    (r.start & !0xfff)..((r.end + 0xfff) & !0xfff)
}

/// A refused Linux: say what was wrong; the real-time side carries on.
fn refuse(reason: &str, message: core::fmt::Arguments<'_>) {
    console::record("linux", |r| {
        r.str("state", "refused").str("reason", reason).fmt("message", message);
    });
    log::warn!("Linux not started: {message}");
}

fn emit_boot_record(b: &BootReport) {
    console::record(hauki_abi::telemetry::EVENT_BOOT, |r| {
        r.str("version", env!("CARGO_PKG_VERSION"))
            .str("timing", crate::tasks::telemetry::timing_name())
            .str("apic", b.apic.name())
            .str("timer", b.timer.name())
            .u64("tsc_hz", b.tsc_hz)
            .str("tsc_source", b.tsc_source.name())
            .u64("lapic_timer_hz", b.lapic_timer_hz)
            .u64("boot_ns", b.boot_ns)
            .str(
                "boot_protocol",
                match b.protocol {
                    Protocol::Multiboot2 => "multiboot2",
                    Protocol::Pvh => "pvh",
                },
            )
            .str(
                "firmware",
                match b.firmware {
                    Firmware::Bios => "bios",
                    Firmware::Uefi => "uefi",
                    Firmware::Unknown => "unknown",
                },
            )
            .str("cpu_vendor", &b.cpu.vendor)
            .str("cpu_model", &b.cpu.brand)
            .fmt("cpu_signature", format_args!("{}/{}/{}", b.cpu.family, b.cpu.model, b.cpu.stepping))
            .bool("tsc_deadline_capable", b.cpu.tsc_deadline)
            .bool("invariant_tsc", b.cpu.invariant_tsc)
            .bool("interrupt_rf_quirk", idt::interrupt_rf_quirk())
            .str("hypervisor", b.cpu.hypervisor.as_deref().unwrap_or("none"))
            .u64("cpus", u64::from(b.cpus.cpus))
            .u64("cpus_online", u64::from(b.cpus.online))
            .u64("cpus_rt_only", u64::from(b.cpus.rt_only))
            .u64("cpus_parked", u64::from(b.cpus.parked))
            .u64("boot_cpu_apic_id", u64::from(apic::id()))
            .u64("ioapics", u64::from(b.ioapics))
            .u64("ioapic_pins", u64::from(b.ioapic_pins))
            .bool("hpet", b.platform.hpet_phys.is_some())
            .u64("acpi_revision", u64::from(b.platform.revision))
            .u64("mem_usable_bytes", b.mem_usable_bytes)
            .u64("frames_free", b.mm.free_frames)
            .u64("direct_map_bytes", b.mm.direct_map_bytes)
            .u64("heap_bytes", mm::HEAP_SIZE)
            .str("cmdline", &b.cmdline);
    });
}

/// `hauki.inject=`: raise an exception on purpose, to test the report path end to end.
fn inject(what: &str) {
    context::set(Context::Inject);
    log::info!("injecting fault \"{what}\" as asked on the command line");
    match what {
        // SAFETY: a deliberate read of an unmapped canonical address; the #PF handler reports and stops.
        "pf" => unsafe {
            core::ptr::read_volatile(0x0000_4000_dead_0000_usize as *const u64);
        },
        // SAFETY: a deliberate non-canonical read; the #GP handler reports and stops.
        "gp" => unsafe {
            core::ptr::read_volatile(0x8000_0000_0000_0000_usize as *const u64);
        },
        // SAFETY: a deliberate invalid opcode; the #UD handler reports and stops.
        "ud" => unsafe { core::arch::asm!("ud2") },
        // SAFETY: a deliberate division by zero; the #DE handler reports and stops.
        "de" => unsafe { core::arch::asm!("xor ecx, ecx", "div ecx", out("eax") _, out("edx") _, out("ecx") _) },
        // SAFETY: a breakpoint; the #BP handler reports and resumes.
        "bp" => unsafe { core::arch::asm!("int3") },
        "stack" => {
            overflow(0);
        }
        other => {
            log::warn!("{}={other}: unknown fault (pf, gp, ud, de, bp, stack); ignored", keys::INJECT)
        }
    }
    let _ = exceptions::TAKEN.load(core::sync::atomic::Ordering::Relaxed);
    context::set(Context::Boot);
}

/// Recurses until the boot stack's guard page stops it.
#[inline(never)]
#[allow(unconditional_recursion, reason = "the point: recurse until the guard page faults")]
fn overflow(depth: u64) -> u64 {
    let buf = [depth; 64];
    let r = overflow(core::hint::black_box(depth + 1));
    core::hint::black_box(&buf);
    r + buf[3]
}
