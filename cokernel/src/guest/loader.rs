//! Loading Linux from the boot modules and entering it: find the kernel, its initramfs and command
//! line (one bundle module, or separate modules); validate the `vmlinux` (ELF structure, segment
//! bounds, a load range inside usable RAM that does not touch the co-kernel, boot modules in that
//! range moved out of the way first); copy it into place; build `boot_params` (e820 with the
//! co-kernel's memory withheld, command line, initramfs, RSDP, and the ABI handoff page through
//! `hardware_subarch_data`); then run it as the idle task beside the real-time tasks
//! (`hauki.linux=guest`, [`enter_guest`]) or give it the whole machine (`hauki.linux=handover`,
//! [`handover`]: the real-time side stops). Without `hauki.linux=` it is loaded and checked only.
//!
//! Everything in the modules is input from outside: a refusal comes back as a [`PlanError`], a
//! failure once the plan was accepted (memory the co-kernel lacked) as a [`LoaderError`]; either
//! way the co-kernel keeps running its real-time tasks. For restarts, [`keep`] holds on to the
//! plan and pristine copies of the pages handed to Linux, and [`reload`] loads Linux again from
//! them.

use core::fmt;
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

use hauki_abi::guest::{self as abi, AbiError, Handoff};

use super::vcpu;
use crate::arch::{apic, cpu, mm, timer, tsc};
use crate::bootinfo::BootInfo;
use crate::guest::bootparams::{self, BOOT_PARAMS_SIZE, BootParamsError, COMMAND_LINE_SIZE, E820_MAX, LinuxBoot};
use crate::guest::calls::KernelImage;
use crate::guest::elf::{self, ElfError, LoadError, Vmlinux};
use crate::guest::modules::{self, ModuleError};
use crate::mm::memmap::MemMapError;

/// What was found and checked before memory is set up.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Physical bytes of the vmlinux image (inside a module).
    pub image: Range<u64>,
    /// The image's validated ELF description (segments, entry, load range).
    pub vmlinux: Vmlinux,
    /// Physical range of the initramfs (inside a module).
    pub initrd: Option<Range<u64>>,
    /// Linux's command line (the command-line module's text, else `console=ttyS0`), checked
    /// against Linux's limit.
    pub cmdline: bootparams::Cmdline,
    /// Modules in the way of the kernel's load range, to move first: (from, to). `image` and
    /// `initrd` above already name the destinations.
    pub moves: heapless::Vec<(Range<u64>, u64), 2>,
}

impl Plan {
    /// Where the kernel is copied to: its physical load range.
    pub fn load_range(&self) -> Range<u64> {
        self.vmlinux.phys_start..self.vmlinux.phys_end
    }

    /// Memory the co-kernel must not hand out before Linux is loaded.
    pub fn reserved(&self) -> heapless::Vec<Range<u64>, 3> {
        let mut v = heapless::Vec::new();
        let _ = v.push(self.load_range());
        for (from, to) in &self.moves {
            let _ = v.push(*to..*to + (from.end - from.start));
        }
        v
    }
}

/// Why Linux cannot be loaded from the boot modules.
#[derive(Clone, Debug)]
pub enum PlanError {
    /// The modules (or the bundle's cpio archive) could not be told apart.
    Modules(ModuleError),
    /// No module is a Linux kernel, or a module is not in mapped memory.
    NoLinux,
    /// The kernel module is not a usable x86_64 vmlinux.
    Elf(ElfError),
    /// The kernel's load range is not usable RAM.
    NotInRam(MemMapError),
    /// The kernel's load range overlaps the co-kernel's image.
    OverlapsCokernel {
        /// Linux's physical load range.
        linux: Range<u64>,
        /// The co-kernel image's physical range.
        cokernel: Range<u64>,
    },
    /// A module lies in the kernel's load range and no free RAM can take it.
    NoRoomToMove {
        /// Bytes of the module to move.
        size: u64,
    },
    /// The command line is longer than Linux takes (its length in bytes).
    CmdlineTooLong(usize),
    /// The command-line module is not UTF-8.
    CmdlineNotText,
}

impl PlanError {
    /// Stable key for telemetry.
    pub fn reason(&self) -> &'static str {
        match self {
            PlanError::Modules(_) => "bad-modules",
            PlanError::NoLinux => "no-linux-module",
            PlanError::Elf(_) => "bad-vmlinux",
            PlanError::NotInRam(_) => "vmlinux-not-in-ram",
            PlanError::OverlapsCokernel { .. } => "vmlinux-overlaps-cokernel",
            PlanError::NoRoomToMove { .. } => "no-room-to-move-module",
            PlanError::CmdlineTooLong(_) | PlanError::CmdlineNotText => "bad-cmdline",
        }
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Modules(e) => write!(f, "the boot modules cannot be used: {e}"),
            PlanError::NoLinux => write!(f, "the boot modules hold no Linux kernel (vmlinux)"),
            PlanError::Elf(e) => write!(f, "the Linux module is not a usable x86_64 vmlinux: {e}"),
            PlanError::NotInRam(e) => write!(f, "Linux cannot be loaded where it is linked: {e}"),
            PlanError::OverlapsCokernel { linux, cokernel } => write!(
                f,
                "Linux loads at {:#x}..{:#x}, over the co-kernel at {:#x}..{:#x}",
                linux.start, linux.end, cokernel.start, cokernel.end
            ),
            PlanError::NoRoomToMove { size } => {
                write!(f, "a boot module of {size} bytes lies where Linux must load, and no free RAM can take it")
            }
            PlanError::CmdlineTooLong(n) => {
                write!(f, "the Linux command line is {n} bytes; at most {} fit", COMMAND_LINE_SIZE - 1)
            }
            PlanError::CmdlineNotText => write!(f, "the Linux command-line module is not UTF-8 text"),
        }
    }
}

/// Why Linux could not be put in memory, prepared or restarted once its [`Plan`] was accepted.
/// Each means the co-kernel lacked memory it should have had (a range not mapped, no free frame)
/// or built something it then refused; the real-time side carries on without Linux.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoaderError {
    /// A module to move out of Linux's way is not in the direct map.
    MoveSourceNotMapped {
        /// Its physical address.
        at: u64,
        /// Its length in bytes.
        len: u64,
    },
    /// The free RAM chosen for a moved module is not in the direct map.
    MoveDestinationNotMapped {
        /// The destination's physical address.
        at: u64,
        /// The module's length in bytes.
        len: u64,
    },
    /// The kernel image (inside its module) is not in the direct map.
    KernelNotMapped {
        /// The image's physical address.
        at: u64,
        /// Its length in bytes.
        len: u64,
    },
    /// Part of the kernel's load range is not in the direct map.
    LoadRangeNotMapped {
        /// Physical address of the bytes that could not be written.
        at: u64,
        /// How many bytes.
        len: u64,
    },
    /// The plan's vmlinux description does not match the image it was parsed from.
    Segments(ElfError),
    /// The initramfs module is not in the direct map.
    InitrdNotMapped {
        /// Its physical address.
        at: u64,
        /// Its length in bytes.
        len: u64,
    },
    /// Linux's copy of the initramfs would not be in the direct map.
    InitrdDestinationNotMapped {
        /// The destination's physical address.
        at: u64,
        /// The initramfs's length in bytes.
        len: u64,
    },
    /// The co-kernel's pool has no frame left for one of the pages handed to Linux.
    NoFrame(BootPage),
    /// The pool has no frame left for the pristine copies a restart needs.
    NoFrameToKeep,
    /// The handoff page the co-kernel built fails [`Handoff::check`].
    HandoffCheck(AbiError),
    /// The e820 map does not fit in `boot_params`.
    E820(BootParamsError),
    /// `boot_params` could not be built.
    BootParams(BootParamsError),
    /// A restart was asked for, but Linux was never started as the guest.
    NeverStarted,
}

/// The pages [`prepare`] hands to Linux.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootPage {
    /// `boot_params`, the zero page.
    BootParams,
    /// The command line.
    Cmdline,
    /// The ABI handoff page.
    Handoff,
}

impl fmt::Display for LoaderError {
    /// The message names what went wrong; the variant's fields carry the addresses and sizes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LoaderError::MoveSourceNotMapped { .. } => "a module to move is not mapped",
            LoaderError::MoveDestinationNotMapped { .. } => "a module's new place is not mapped",
            LoaderError::KernelNotMapped { .. } => "the Linux module is not mapped",
            LoaderError::LoadRangeNotMapped { .. } | LoaderError::Segments(_) => "copying the kernel segments failed",
            LoaderError::InitrdNotMapped { .. } => "the initramfs module is not mapped",
            LoaderError::InitrdDestinationNotMapped { .. } => "the initramfs destination is not mapped",
            LoaderError::NoFrame(BootPage::BootParams) => "no frame for boot_params",
            LoaderError::NoFrame(BootPage::Cmdline) => "no frame for the command line",
            LoaderError::NoFrame(BootPage::Handoff) => "no frame for the handoff page",
            LoaderError::NoFrameToKeep => "no frame to keep Linux's boot pages",
            LoaderError::HandoffCheck(_) => "the handoff page fails its own check",
            LoaderError::E820(_) => "the e820 map does not fit boot_params",
            LoaderError::BootParams(_) => "boot_params could not be built",
            LoaderError::NeverStarted => "Linux was never started as the guest",
        })?;
        match self {
            LoaderError::MoveSourceNotMapped { at, len }
            | LoaderError::MoveDestinationNotMapped { at, len }
            | LoaderError::KernelNotMapped { at, len }
            | LoaderError::LoadRangeNotMapped { at, len }
            | LoaderError::InitrdNotMapped { at, len }
            | LoaderError::InitrdDestinationNotMapped { at, len } => write!(f, " ({len:#x} bytes at {at:#x})"),
            _ => Ok(()),
        }
    }
}

/// Bytes of physical memory `r` (below 4 GiB before `mm::init`, in the direct map after).
///
/// # Safety
/// `r` must be memory nobody writes while the slice lives (a boot module).
unsafe fn phys_bytes<'a>(r: &Range<u64>) -> Option<&'a [u8]> {
    let len = r.end.checked_sub(r.start)?;
    let virt = mm::phys_to_virt_checked(r.start, len)?;
    // SAFETY: the range is mapped (checked above) and, per the contract, not written meanwhile.
    Some(unsafe { core::slice::from_raw_parts(virt as *const u8, len as usize) })
}

fn sub_range(outer: &Range<u64>, base: &[u8], inner: &[u8]) -> Range<u64> {
    let off = inner.as_ptr() as u64 - base.as_ptr() as u64;
    outer.start + off..outer.start + off + inner.len() as u64
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Finds and validates Linux among the boot modules. `Ok(None)`: no module at all.
pub fn plan(boot: &BootInfo, cokernel: Range<u64>) -> Result<Option<Plan>, PlanError> {
    if boot.modules.is_empty() {
        return Ok(None);
    }
    let mut spans: heapless::Vec<(Range<u64>, &[u8]), 8> = heapless::Vec::new();
    for m in &boot.modules {
        let r = m.start..m.end;
        // SAFETY: boot modules are reserved from the frame allocator and written by nobody.
        let bytes = unsafe { phys_bytes(&r) }.ok_or(PlanError::NoLinux)?;
        let _ = spans.push((r, bytes));
    }
    let (image, initrd, cmdline_text): (Range<u64>, Option<Range<u64>>, Option<&str>) =
        if spans.len() == 1 && spans[0].1.starts_with(b"07070") {
            let (r, bytes) = (&spans[0].0, spans[0].1);
            let b = modules::select_bundle(bytes).map_err(PlanError::Modules)?;
            (sub_range(r, bytes, b.linux), b.initramfs.map(|i| sub_range(r, bytes, i)), b.cmdline)
        } else {
            let list: heapless::Vec<(&str, &[u8]), 8> =
                boot.modules.iter().zip(spans.iter()).map(|(m, s)| (m.cmdline.as_str(), s.1)).collect();
            let sel = modules::select(&list).map_err(PlanError::Modules)?;
            let linux = sel.linux.ok_or(PlanError::NoLinux)?;
            let cmd = match sel.cmdline {
                Some(i) => Some(
                    core::str::from_utf8(spans[i].1)
                        .map_err(|_| PlanError::CmdlineNotText)?
                        .trim_end_matches(['\0', '\n', ' ']),
                ),
                None => None,
            };
            (spans[linux].0.clone(), sel.initramfs.map(|i| spans[i].0.clone()), cmd)
        };
    // SAFETY: as above; `image` lies inside a module.
    let bytes = unsafe { phys_bytes(&image) }.ok_or(PlanError::NoLinux)?;
    let vmlinux = elf::parse(bytes).map_err(PlanError::Elf)?;
    let load = vmlinux.phys_start..vmlinux.phys_end;
    boot.memory.check_kernel(load.clone()).map_err(PlanError::NotInRam)?;
    if overlaps(&load, &cokernel) {
        return Err(PlanError::OverlapsCokernel { linux: load, cokernel });
    }
    let text = cmdline_text.unwrap_or("console=ttyS0");
    let cmdline = bootparams::linux_cmdline(text).map_err(|_| PlanError::CmdlineTooLong(text.len()))?;
    // GRUB puts modules right after the co-kernel, often where Linux must load (16 MiB up): such a
    // module (the kernel image or the initramfs) is moved to free RAM before Linux is loaded.
    let mut avoid: heapless::Vec<Range<u64>, 16> = heapless::Vec::new();
    let _ = avoid.push(cokernel.clone());
    let _ = avoid.push(load.clone());
    for (r, _) in &spans {
        let _ = avoid.push(r.clone());
    }
    for r in &boot.info_ranges {
        let _ = avoid.push(r.clone());
    }
    let mut moves: heapless::Vec<(Range<u64>, u64), 2> = heapless::Vec::new();
    let mut relocate = |r: &Range<u64>, avoid: &mut heapless::Vec<Range<u64>, 16>| -> Result<Range<u64>, PlanError> {
        if !overlaps(&load, r) {
            return Ok(r.clone());
        }
        let size = r.end - r.start;
        let to = boot.memory.find_free(size, 4096, 0x10_0000, avoid).ok_or(PlanError::NoRoomToMove { size })?;
        let _ = avoid.push(to.clone());
        let _ = moves.push((r.clone(), to.start));
        Ok(to)
    };
    let image = relocate(&image, &mut avoid)?;
    let initrd = match initrd {
        Some(r) => Some(relocate(&r, &mut avoid)?),
        None => None,
    };
    Ok(Some(Plan { image, vmlinux, initrd, cmdline, moves }))
}

/// Moves the modules that lie in Linux's way (after `mm::init`: the direct map covers both sides;
/// the destinations were reserved and touch no module).
pub fn relocate(plan: &Plan) -> Result<(), LoaderError> {
    for (from, to) in &plan.moves {
        let len = from.end - from.start;
        let src = mm::phys_to_virt_checked(from.start, len)
            .ok_or(LoaderError::MoveSourceNotMapped { at: from.start, len })?;
        let dst = mm::phys_to_virt_checked(*to, len).ok_or(LoaderError::MoveDestinationNotMapped { at: *to, len })?;
        // SAFETY: both ranges are mapped RAM, disjoint (chosen so), and used by nobody else.
        unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, len as usize) };
    }
    Ok(())
}

/// Copies the kernel into place (after `mm::init`: the direct map covers both sides).
pub fn load(plan: &Plan) -> Result<(), LoaderError> {
    let image = LoaderError::KernelNotMapped { at: plan.image.start, len: plan.image.end - plan.image.start };
    // SAFETY: the module is untouched and mapped in the direct map.
    let bytes = unsafe { phys_bytes(&plan.image) }.ok_or(image)?;
    let mut write = |paddr: u64, data: &[u8]| -> Result<(), LoaderError> {
        let len = data.len() as u64;
        let virt = mm::phys_to_virt_checked(paddr, len).ok_or(LoaderError::LoadRangeNotMapped { at: paddr, len })?;
        // SAFETY: the load range is reserved for Linux (no co-kernel allocation) and mapped.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), virt as *mut u8, data.len()) };
        Ok(())
    };
    let mut zero = |paddr: u64, len: u64| -> Result<(), LoaderError> {
        let virt = mm::phys_to_virt_checked(paddr, len).ok_or(LoaderError::LoadRangeNotMapped { at: paddr, len })?;
        // SAFETY: as above.
        unsafe { core::ptr::write_bytes(virt as *mut u8, 0, len as usize) };
        Ok(())
    };
    elf::load(bytes, &plan.vmlinux, &mut write, &mut zero).map_err(|e| match e {
        LoadError::Elf(e) => LoaderError::Segments(e),
        LoadError::Write { why, .. } | LoadError::Zero { why, .. } => why,
    })
}

/// The pages handed to Linux, all from the co-kernel's pool.
pub struct Prepared {
    /// Physical address of Linux's `boot_params` (the zero page; RSI at its entry).
    pub boot_params: u64,
    /// Physical address of the NUL-terminated command line (a whole page).
    pub cmdline: u64,
    /// Physical address of the [`Handoff`] page (`hardware_subarch_data`).
    pub handoff: u64,
    /// Entries of the e820 map written into `boot_params`.
    pub e820_entries: usize,
}

/// Builds the handoff page, the command line and `boot_params`; `withhold` is the co-kernel's own
/// memory (image, pool, boot information), reported to Linux as reserved.
/// `guest`: Linux runs as the idle task (it gets `hardware_subarch` = HAUKI); otherwise it
/// is handed the whole machine and must boot as on a plain PC.
/// `initrd_at`: where the initramfs is copied for Linux (guest mode: the module itself stays the
/// co-kernel's, for restarts); `None` passes it in place.
/// `call_gate`: the address Linux calls the co-kernel at (the kernel's handler of Linux's calls).
/// `channels`: the channel region's address and size (0, 0: none); `claimed`: the address of the
/// table of devices real-time tasks own; `rsdp`: the ACPI tables Linux gets (the co-kernel's
/// view, or the firmware's).
#[allow(clippy::too_many_arguments, reason = "each is one fact of the handoff; a struct would only rename them")]
pub fn prepare(
    plan: &Plan,
    boot: &BootInfo,
    withhold: &[Range<u64>],
    features: u64,
    guest: bool,
    initrd_at: Option<u64>,
    call_gate: u64,
    channels: (u64, u64),
    claimed: u64,
    rsdp: Option<u64>,
) -> Result<Prepared, LoaderError> {
    let bp = mm::alloc_frame().ok_or(LoaderError::NoFrame(BootPage::BootParams))?;
    let cmd = mm::alloc_frame().ok_or(LoaderError::NoFrame(BootPage::Cmdline))?;
    let ho = mm::alloc_frame().ok_or(LoaderError::NoFrame(BootPage::Handoff))?;
    let page = |p: u64| mm::phys_to_virt(p) as *mut u8;
    // SAFETY: three fresh frames from the co-kernel's pool, mapped in the direct map.
    unsafe {
        core::ptr::write_bytes(page(cmd), 0, 4096);
        core::ptr::copy_nonoverlapping(plan.cmdline.as_ptr(), page(cmd), plan.cmdline.len());
        let mut h = Handoff::new();
        h.tsc_khz = tsc::hz() / 1000;
        h.features = features;
        h.cokernel_phys_start = withhold.iter().map(|r| r.start).min().unwrap_or(0);
        h.cokernel_phys_end = withhold.iter().map(|r| r.end).max().unwrap_or(0);
        h.pgd = mm::share_top_level();
        h.call_gate = call_gate;
        h.nr_vcpus = vcpu::linux_cpus().count_ones();
        h.vcpu_virt = vcpu::block(vcpu::LINUX_CPU).addr();
        h.vcpu_phys = h.vcpu_virt - mm::KERNEL_VIRT_BASE;
        h.status_virt = vcpu::STATUS.addr();
        (h.channels_virt, h.channels_size) = channels;
        h.claimed_virt = claimed;
        h.check().map_err(LoaderError::HandoffCheck)?;
        core::ptr::write_bytes(page(ho), 0, 4096);
        (page(ho) as *mut Handoff).write(h);
    }
    let mut e820: heapless::Vec<bootparams::E820Entry, E820_MAX> = heapless::Vec::new();
    bootparams::e820_from(&boot.memory, withhold, &mut e820).map_err(LoaderError::E820)?;
    let lb = LinuxBoot {
        cmdline_phys: cmd,
        cmdline_len: plan.cmdline.len() as u32,
        initrd: plan.initrd.as_ref().map(|r| (initrd_at.unwrap_or(r.start), r.end - r.start)),
        rsdp,
        hardware_subarch: if guest { abi::SUBARCH_HAUKI } else { bootparams::X86_SUBARCH_PC },
        subarch_data: ho,
        e820: &e820,
    };
    // SAFETY: a fresh 4 KiB frame, exclusively ours.
    let out = unsafe { &mut *(page(bp) as *mut [u8; BOOT_PARAMS_SIZE]) };
    bootparams::build(out, &lb).map_err(LoaderError::BootParams)?;
    Ok(Prepared { boot_params: bp, cmdline: cmd, handoff: ho, e820_entries: e820.len() })
}

unsafe extern "C" {
    /// Physical address of the boot page tables (identity + alias of the low 4 GiB), entry.S.
    static hauki_boot_pml4_phys: u64;
}

/// Where Linux's copy of the initramfs goes: the lowest free place above its kernel (2 MiB
/// aligned, below 2 GiB as the boot protocol's `initrd_addr_max` allows) that touches neither the
/// co-kernel's memory nor the modules it keeps.
pub fn initrd_slot(plan: &Plan, boot: &BootInfo, avoid: &[Range<u64>]) -> Option<u64> {
    let len = plan.initrd.as_ref().map(|r| r.end - r.start)?;
    let mut all: heapless::Vec<Range<u64>, 16> = heapless::Vec::new();
    for r in avoid {
        all.push(r.clone()).ok()?;
    }
    all.push(plan.load_range()).ok()?;
    let slot = boot.memory.find_free(len.max(1), 2 << 20, plan.load_range().end, &all)?;
    (slot.end <= 0x8000_0000).then_some(slot.start)
}

/// Copies the initramfs from its module to `dst` (Linux's RAM).
pub fn place_initrd(plan: &Plan, dst: u64) -> Result<(), LoaderError> {
    let Some(r) = plan.initrd.as_ref() else { return Ok(()) };
    let len = r.end - r.start;
    let src = mm::phys_to_virt_checked(r.start, len).ok_or(LoaderError::InitrdNotMapped { at: r.start, len })?;
    let to = mm::phys_to_virt_checked(dst, len).ok_or(LoaderError::InitrdDestinationNotMapped { at: dst, len })?;
    // SAFETY: the module is withheld from Linux and unchanged; the destination is Linux's RAM,
    // unused while Linux is (re)loaded; the ranges are disjoint (chosen so).
    unsafe { core::ptr::copy_nonoverlapping(src as *const u8, to as *mut u8, len as usize) };
    Ok(())
}

/// What restarting Linux needs, kept from its first start: the plan (the modules stay withheld
/// from Linux), the pages handed to it and pristine copies of them.
struct Kept {
    plan: Plan,
    pages: [u64; 3],
    pristine: [u64; 3],
    initrd_at: Option<u64>,
}

static KEPT: spin::Mutex<Option<Kept>> = spin::Mutex::new(None);

/// Keeps what a restart needs (after `prepare`, before Linux first runs).
pub fn keep(plan: &Plan, prep: &Prepared, initrd_at: Option<u64>) -> Result<(), LoaderError> {
    let pages = [prep.boot_params, prep.cmdline, prep.handoff];
    let mut pristine = [0u64; 3];
    for (i, p) in pages.iter().enumerate() {
        let f = mm::alloc_frame().ok_or(LoaderError::NoFrameToKeep)?;
        // SAFETY: both are 4 KiB frames of the co-kernel's pool, mapped in the direct map.
        unsafe {
            core::ptr::copy_nonoverlapping(mm::phys_to_virt(*p) as *const u8, mm::phys_to_virt(f) as *mut u8, 4096)
        };
        pristine[i] = f;
    }
    vcpu::set_image(KernelImage::new(&plan.vmlinux));
    let k = Kept { plan: plan.clone(), pages, pristine, initrd_at };
    x86_64::instructions::interrupts::without_interrupts(|| *KEPT.lock() = Some(k));
    Ok(())
}

/// Appends ` text` to the command line of the prepared Linux, in the live page and in the copy a
/// restart starts from (a device a real-time task claims is hidden with Linux's `reserve=`).
/// Before Linux first runs; nothing to do without a Linux. Fails when the line would pass
/// Linux's limit.
pub fn append_cmdline(text: &str) -> Result<(), &'static str> {
    let kept =
        x86_64::instructions::interrupts::without_interrupts(|| KEPT.lock().as_ref().map(|k| (k.pages, k.pristine)));
    let Some((pages, pristine)) = kept else { return Ok(()) };
    if ENTERED_TSC.load(Ordering::Relaxed) != 0 {
        return Err("Linux already runs");
    }
    // SAFETY: the command-line page (a pool frame, mapped) is Linux's only once Linux runs, and it
    // does not yet; a page is 4096 bytes.
    let live = unsafe { core::slice::from_raw_parts_mut(mm::phys_to_virt(pages[1]) as *mut u8, 4096) };
    let len = live.iter().position(|&b| b == 0).unwrap_or(live.len());
    let end = len + 1 + text.len();
    if !bootparams::cmdline_fits(end) {
        return Err("Linux's command line would be too long");
    }
    for page in [pages[1], pristine[1]] {
        // SAFETY: as above, for the live page and the co-kernel's own copy of it.
        let p = unsafe { core::slice::from_raw_parts_mut(mm::phys_to_virt(page) as *mut u8, 4096) };
        p[len] = b' ';
        p[len + 1..end].copy_from_slice(text.as_bytes());
        p[end] = 0;
    }
    Ok(())
}

/// Loads Linux again from the kept modules; returns its entry and boot_params.
pub fn reload() -> Result<(u64, u64), LoaderError> {
    let k = x86_64::instructions::interrupts::without_interrupts(|| {
        KEPT.lock().as_ref().map(|k| (k.plan.clone(), k.pages, k.pristine, k.initrd_at))
    });
    let (plan, pages, pristine, initrd_at) = k.ok_or(LoaderError::NeverStarted)?;
    load(&plan)?;
    if let Some(dst) = initrd_at {
        place_initrd(&plan, dst)?;
    }
    for (p, q) in pages.iter().zip(pristine) {
        // SAFETY: pool frames, mapped; the originals are Linux's boot pages, unused while it is
        // being reloaded.
        unsafe {
            core::ptr::copy_nonoverlapping(mm::phys_to_virt(q) as *const u8, mm::phys_to_virt(*p) as *mut u8, 4096)
        };
    }
    Ok((plan.vmlinux.entry_phys, pages[0]))
}

/// TSC when Linux was last entered, and the IDT loads counted before that.
static ENTERED_TSC: AtomicU64 = AtomicU64::new(0);
static ENTRY_IDT_LOADS: AtomicU64 = AtomicU64::new(0);
/// From the last entry into Linux to its first IDT handover (its early boot, interrupts off).
static ENTRY_TO_IDT_TICKS: AtomicU64 = AtomicU64::new(0);

/// How often Linux handed over an IDT.
static LINUX_IDT_LOADS: AtomicU64 = AtomicU64::new(0);

/// Linux registered an IDT: counted, and the first after an entry ends its early boot.
pub fn note_idt_load() {
    if LINUX_IDT_LOADS.fetch_add(1, Ordering::Relaxed) == ENTRY_IDT_LOADS.load(Ordering::Relaxed) {
        let t = cpu::rdtsc().saturating_sub(ENTERED_TSC.load(Ordering::Relaxed));
        ENTRY_TO_IDT_TICKS.store(t, Ordering::Relaxed);
    }
}

/// IDT loads so far, and the ticks from the last entry to its first IDT load.
pub fn idt_loads() -> (u64, u64) {
    (LINUX_IDT_LOADS.load(Ordering::Relaxed), ENTRY_TO_IDT_TICKS.load(Ordering::Relaxed))
}

/// Runs Linux as the idle task: the idle context (this one) enters Linux's 64-bit entry with
/// interrupts off and a top-level table that identity-maps the low 4 GiB (the boot protocol) and
/// holds the co-kernel's shared slots; real-time tasks keep preempting it from here on.
pub fn enter_guest(entry: u64, boot_params: u64) -> ! {
    x86_64::instructions::interrupts::disable();
    ENTRY_IDT_LOADS.store(LINUX_IDT_LOADS.load(Ordering::Relaxed), Ordering::Relaxed);
    ENTERED_TSC.store(cpu::rdtsc(), Ordering::Relaxed);
    // SAFETY: reading a linker-initialised constant.
    let boot = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(hauki_boot_pml4_phys)) };
    let pml4 = entry_pml4(boot);
    vcpu::set_active(true);
    // SAFETY: the new table maps this code and stack (shared slots) and Linux's entry and
    // boot_params (identity); interrupts are off as the protocol requires. From here on this
    // context is Linux.
    unsafe { jump_to_linux(pml4, entry, boot_params) }
}

/// The page table Linux is entered with (on its boot CPU and on each secondary it starts): the
/// boot tables' identity map of the low 4 GiB in slot 0 and the co-kernel's shared slots, in one
/// pool frame kept for every entry (rewritten with the same contents each time).
fn entry_pml4(boot: u64) -> u64 {
    static ENTRY_PML4: spin::Once<u64> = spin::Once::new();
    let pml4 = *ENTRY_PML4.call_once(|| {
        let f = mm::alloc_frame().expect("a frame for Linux's entry page table");
        // SAFETY: a fresh pool frame, in the direct map.
        unsafe { core::ptr::write_bytes(mm::phys_to_virt(f) as *mut u8, 0, 4096) };
        f
    });
    let slots = mm::share_top_level();
    let t = mm::phys_to_virt(pml4) as *mut u64;
    // SAFETY: the pool frame kept for this table; the boot PML4 is reachable through the direct
    // map (low memory). Entries are written whole, with the values they already had after the
    // first time, so a CPU walking the table meanwhile sees the same mappings.
    unsafe {
        t.write_volatile(*(mm::phys_to_virt(boot) as *const u64)); // slot 0: identity 0..4 GiB
        for (i, e) in slots.iter().enumerate() {
            t.add(256 + i).write_volatile(*e);
        }
    }
    pml4
}

/// Enters Linux on this secondary CPU at `start`, Linux's 64-bit trampoline below 1 MiB
/// (`CPU_START`): interrupts off, the entry page table, a 64-bit code segment. From here on this
/// CPU's idle context is Linux. Called from the CPU's idle loop.
pub fn enter_secondary(start: u64) -> ! {
    x86_64::instructions::interrupts::disable();
    // SAFETY: reading a linker-initialised constant.
    let boot = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(hauki_boot_pml4_phys)) };
    let pml4 = entry_pml4(boot);
    vcpu::set_active(true);
    // SAFETY: the table maps this code (shared slots) and identity-maps `start` (below 1 MiB,
    // checked by `guest::calls`); interrupts are off; the trampoline sets up its own stack and
    // segments. Nothing of this context is needed afterwards: it is Linux's now.
    unsafe { jump_to_linux(pml4, start, 0) }
}

/// Loads `cr3` and enters Linux's 64-bit entry with RSI = `boot_params` (CS/DS are 0x10/0x18,
/// as the 64-bit boot protocol requires). Never returns.
///
/// # Safety
/// `cr3` must map the running code and stack and identity-map Linux's entry and `boot_params`;
/// interrupts must be off; nothing of the calling context may be needed afterwards.
unsafe fn jump_to_linux(cr3: u64, entry: u64, boot_params: u64) -> ! {
    // SAFETY: per this function's contract.
    unsafe {
        core::arch::asm!(
            "mov cr3, {cr3}",
            "xor ebp, ebp",
            "jmp {entry}",
            cr3 = in(reg) cr3,
            entry = in(reg) entry,
            in("rsi") boot_params,
            options(noreturn)
        )
    }
}

/// Gives the whole machine to Linux: interrupts off, the co-kernel's timer stopped, the boot page
/// tables (which identity-map the low 4 GiB, as Linux's 64-bit entry expects) loaded, and a jump
/// to `startup_64` with RSI = `boot_params`. The real-time side ends here.
pub fn handover(entry: u64, boot_params: u64) -> ! {
    x86_64::instructions::interrupts::disable();
    timer::cancel();
    apic::write(apic::REG_LVT_TIMER, apic::LVT_MASKED);
    // SAFETY: reading a linker-initialised constant.
    let cr3 = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(hauki_boot_pml4_phys)) };
    // SAFETY: the boot tables still map this code (at its high alias) and the stack, and
    // identity-map Linux's entry and boot_params; interrupts are off. Nothing of the co-kernel runs
    // after the jump.
    unsafe { jump_to_linux(cr3, entry, boot_params) }
}
