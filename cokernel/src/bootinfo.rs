//! Boot information from either boot protocol (Multiboot2 or Xen/QEMU PVH) in one structure.
//!
//! [`parse_multiboot2`] and [`parse_pvh`] read the boot loader's structures through a
//! caller-supplied, checked physical-to-pointer translation ([`PhysToPtr`]: it says which physical
//! ranges are readable at all) and copy everything the kernel needs into an owned [`BootInfo`]: a
//! normalized memory map, the command line, boot modules, the RSDP address and a few facts about
//! the platform. Nothing in a `BootInfo` points back into the boot
//! loader's memory except [`BootInfo::rsdp`] (for Multiboot2 it points *into* the information
//! structure, which is why [`BootInfo::info_range`] must stay out of the frame allocator until
//! ACPI has been parsed).
//!
//! Invariants of a returned `BootInfo`: `memory` is normalized; every string is valid UTF-8 that
//! was NUL-terminated in the source and fits its capacity (the boot loader name is truncated at
//! a character boundary instead, as it is informational only); every module has
//! `start <= end`. The parsers never panic on malformed input: everything the loader wrote is
//! bounds-checked (lengths, counts, tag chain) before it is used, every address it gives is added
//! to with checked arithmetic and read only through the translation, which refuses what is not
//! mapped ([`BootInfoError::Unmapped`]); errors are reported as [`BootInfoError`].

use core::fmt;
use core::mem::{offset_of, size_of};
use core::ops::Range;

use crate::mm::memmap::{Collector, MemMapError, MemoryMap, RegionKind};

/// The boot structures' physical-to-pointer translation: a pointer valid for reading the `len`
/// bytes at physical `phys`, or `None` when they are not all mapped (or `phys + len` overflows).
pub type PhysToPtr<'a> = dyn Fn(u64, u64) -> Option<*const u8> + 'a;

/// Magic value a Multiboot2 loader passes in EAX.
pub const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;
/// Magic value at the start of a PVH `hvm_start_info`.
pub const PVH_MAGIC: u32 = 0x336e_c578;
/// Largest Multiboot2 information structure we accept (sanity bound on `total_size`).
pub const MAX_MB2_INFO_SIZE: u32 = 1 << 20;
/// Largest PVH memory map we accept (sanity bound on `memmap_entries`).
pub const MAX_PVH_MEMMAP_ENTRIES: u32 = 4096;

/// Which boot protocol started the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Multiboot2 (GRUB, or QEMU with a Multiboot2-capable option ROM).
    Multiboot2,
    /// Xen/QEMU PVH direct boot (`hvm_start_info`).
    Pvh,
}

/// The firmware the machine booted with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// Legacy BIOS.
    Bios,
    /// UEFI.
    Uefi,
    /// Could not be told.
    Unknown,
}

/// A boot module (e.g. an initrd or a payload image), physical `[start, end)`.
#[derive(Clone, Debug)]
pub struct Module {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// The module's command line.
    pub cmdline: heapless::String<128>,
}

/// Everything the kernel takes from the boot loader; see the module documentation.
#[derive(Clone, Debug)]
pub struct BootInfo {
    /// Which protocol booted us.
    pub protocol: Protocol,
    /// Which firmware the machine runs. PVH always reports [`Firmware::Bios`]: QEMU's PVH
    /// path runs SeaBIOS and the protocol has no firmware field.
    pub firmware: Firmware,
    /// The physical memory map, normalized.
    pub memory: MemoryMap,
    /// Physical address of an RSDP. For Multiboot2 this is the copy inside the ACPI tag of the
    /// information structure (the ACPI 2.0 tag, type 15, preferred over type 14).
    pub rsdp: Option<u64>,
    /// The kernel command line.
    pub cmdline: heapless::String<512>,
    /// Boot modules, in the loader's order.
    pub modules: heapless::Vec<Module, 8>,
    /// Whether the VGA text console at 0xb8000 can be used. Multiboot2: a framebuffer tag of
    /// EGA-text type, or no framebuffer tag and no EFI tags. PVH: always true.
    pub vga_text: bool,
    /// The boot loader's name (Multiboot2 name tag; empty for PVH), truncated to 64 bytes.
    pub bootloader: heapless::String<64>,
    /// Physical bytes the boot structures occupy, as one covering range. Keep it out of the
    /// frame allocator while [`rsdp`](Self::rsdp) may point into it (Multiboot2).
    pub info_range: Range<u64>,
    /// The same bytes as up to four disjoint ranges (tighter than `info_range` for PVH, whose
    /// start info, memory map, module list and strings may lie apart); their hull is
    /// `info_range`.
    pub info_ranges: heapless::Vec<Range<u64>, 4>,
}

/// Why the boot information could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// The Multiboot2 magic in EAX was wrong.
    BadMultiboot2Magic(u32),
    /// The PVH start info magic was wrong.
    BadPvhMagic(u32),
    /// The structures are inconsistent; the text says what was wrong.
    Malformed(&'static str),
    /// The boot loader passed no memory map.
    NoMemoryMap,
    /// The memory map could not be stored.
    Memory(MemMapError),
    /// A structure the boot loader points to is not in readable memory (outside what the
    /// translation maps, e.g. above the boot identity map's 4 GiB, or past the end of the
    /// address space).
    Unmapped {
        /// Which structure.
        what: &'static str,
        /// Its physical address.
        phys: u64,
        /// How many bytes were to be read there.
        len: u64,
    },
}

impl fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadMultiboot2Magic(m) => {
                write!(f, "the boot loader's Multiboot2 magic is {m:#x}, expected {MULTIBOOT2_MAGIC:#x}")
            }
            Self::BadPvhMagic(m) => {
                write!(f, "the PVH start info magic is {m:#x}, expected {PVH_MAGIC:#x}")
            }
            Self::Malformed(what) => write!(f, "the boot information is malformed: {what}"),
            Self::NoMemoryMap => write!(f, "the boot loader passed no memory map"),
            Self::Memory(e) => write!(f, "the boot memory map could not be stored: {e}"),
            Self::Unmapped { what, phys, len } => write!(
                f,
                "the boot loader points to {what} at {phys:#x} ({len:#x} bytes), which is not in readable memory"
            ),
        }
    }
}

impl From<MemMapError> for BootInfoError {
    fn from(e: MemMapError) -> Self {
        Self::Memory(e)
    }
}

/// `len` readable bytes at `phys`, or [`BootInfoError::Unmapped`] naming `what`.
fn ptr(phys: u64, len: u64, phys_to_ptr: &PhysToPtr<'_>, what: &'static str) -> Result<*const u8, BootInfoError> {
    phys.checked_add(len).and_then(|_| phys_to_ptr(phys, len)).filter(|p| !p.is_null()).ok_or(BootInfoError::Unmapped {
        what,
        phys,
        len,
    })
}

/// e820 / Multiboot2 memory type → region kind.
fn e820_kind(typ: u32) -> RegionKind {
    match typ {
        1 => RegionKind::Usable,
        3 => RegionKind::AcpiReclaimable,
        4 => RegionKind::AcpiNvs,
        5 => RegionKind::Defective,
        _ => RegionKind::Reserved,
    }
}

/// Copy `s` into a fixed-capacity string, or fail with `too_long`.
fn copy_str<const N: usize>(s: &str, too_long: &'static str) -> Result<heapless::String<N>, BootInfoError> {
    let mut out = heapless::String::new();
    out.push_str(s).map_err(|_| BootInfoError::Malformed(too_long))?;
    Ok(out)
}

/// Copy `s` into a fixed-capacity string, truncating at a character boundary.
fn copy_str_truncated<const N: usize>(s: &str) -> heapless::String<N> {
    let mut cut = s.len().min(N);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = heapless::String::new();
    // Cannot fail: `cut <= N`.
    let _ = out.push_str(&s[..cut]);
    out
}

/// Map a multiboot2 string error to a message.
fn mb2_str<'a>(
    r: Result<&'a str, multiboot2::StringError>,
    no_nul: &'static str,
    bad_utf8: &'static str,
) -> Result<&'a str, BootInfoError> {
    r.map_err(|e| match e {
        multiboot2::StringError::MissingNul(_) => BootInfoError::Malformed(no_nul),
        multiboot2::StringError::Utf8(_) => BootInfoError::Malformed(bad_utf8),
    })
}

// Multiboot2 tag types used here.
const MB2_TAG_END: u32 = 0;
const MB2_TAG_MODULE: u32 = 3;
const MB2_TAG_MMAP: u32 = 6;
const MB2_TAG_FRAMEBUFFER: u32 = 8;
const MB2_TAG_ACPI_OLD: u32 = 14;
const MB2_TAG_ACPI_NEW: u32 = 15;
/// EFI 32/64-bit system table, EFI memory map, boot services not exited, EFI image handles.
const MB2_EFI_TAGS: [u32; 6] = [11, 12, 17, 18, 19, 20];
/// Offset of `framebuffer_type` in the framebuffer tag.
const MB2_FB_TYPE_OFFSET: usize = 29;
const MB2_FB_TYPE_EGA_TEXT: u8 = 2;
const RSDP_V1_LEN: u32 = 20;
const RSDP_V2_LEN: u32 = 36;

/// What the raw walk over the Multiboot2 tag chain found.
struct Mb2Scan {
    acpi_new: Option<usize>,
    acpi_old: Option<usize>,
    efi: bool,
    framebuffer_type: Option<u8>,
}

/// Walk the tag chain of the `total`-byte structure at `base` and check everything the
/// multiboot2 crate would otherwise assert on (so malformed input is an error, not a panic).
///
/// # Safety
/// `base` is valid for reads of `total` bytes.
unsafe fn mb2_scan(base: *const u8, total: usize) -> Result<Mb2Scan, BootInfoError> {
    let rd32 = |off: usize| {
        // SAFETY: callers only pass `off + 4 <= total`, inside the readable structure.
        unsafe { base.add(off).cast::<u32>().read_unaligned() }
    };
    let mut scan = Mb2Scan { acpi_new: None, acpi_old: None, efi: false, framebuffer_type: None };
    let mut off = 8;
    loop {
        if off + 8 > total {
            return Err(BootInfoError::Malformed("the Multiboot2 tag list has no end tag"));
        }
        let (typ, size) = (rd32(off), rd32(off + 4));
        let size_usize = size as usize;
        if size < 8 || size_usize > total - off {
            return Err(BootInfoError::Malformed("a Multiboot2 tag runs past the end of the structure"));
        }
        match typ {
            MB2_TAG_END => {
                if size != 8 || off + 8 != total {
                    return Err(BootInfoError::Malformed("the Multiboot2 end tag is not the last 8 bytes"));
                }
                return Ok(scan);
            }
            MB2_TAG_MODULE if size < 16 => {
                return Err(BootInfoError::Malformed("a Multiboot2 module tag is too short"));
            }
            MB2_TAG_MMAP if size < 16 || rd32(off + 8) != 24 || (size - 16) % 24 != 0 => {
                return Err(BootInfoError::Malformed(
                    "the Multiboot2 memory map tag has an unexpected entry size or length",
                ));
            }
            MB2_TAG_FRAMEBUFFER => {
                if size_usize <= MB2_FB_TYPE_OFFSET {
                    return Err(BootInfoError::Malformed("the Multiboot2 framebuffer tag is too short"));
                }
                // SAFETY: `off + MB2_FB_TYPE_OFFSET < off + size <= total`.
                scan.framebuffer_type = Some(unsafe { base.add(off + MB2_FB_TYPE_OFFSET).read() });
            }
            MB2_TAG_ACPI_OLD | MB2_TAG_ACPI_NEW => {
                let need = if typ == MB2_TAG_ACPI_NEW { RSDP_V2_LEN } else { RSDP_V1_LEN };
                if size < 8 + need {
                    return Err(BootInfoError::Malformed("a Multiboot2 ACPI tag is too short to hold an RSDP"));
                }
                let slot = if typ == MB2_TAG_ACPI_NEW { &mut scan.acpi_new } else { &mut scan.acpi_old };
                slot.get_or_insert(off);
            }
            t if MB2_EFI_TAGS.contains(&t) => scan.efi = true,
            _ => {}
        }
        off += size_usize.next_multiple_of(8);
    }
}

/// Parse a Multiboot2 boot information structure.
///
/// `magic` is the value the loader left in EAX and must be `0x36d76289`; `info_phys` the
/// physical address from EBX (8-byte aligned). A memory map tag is required. Strings must be
/// NUL-terminated UTF-8 and fit their field: the command line 512 bytes, module command lines
/// 128 bytes; at most 8 modules.
///
/// # Safety
/// Whenever `phys_to_ptr(phys, len)` returns a pointer, it must be valid for reads of those `len`
/// bytes (a linear map such as the identity map of low 4 GiB, refusing everything beyond it), and
/// that memory must not change while this runs.
pub unsafe fn parse_multiboot2(
    magic: u32,
    info_phys: u64,
    phys_to_ptr: &PhysToPtr<'_>,
) -> Result<BootInfo, BootInfoError> {
    if magic != MULTIBOOT2_MAGIC {
        return Err(BootInfoError::BadMultiboot2Magic(magic));
    }
    const WHAT: &str = "the Multiboot2 information";
    let base = ptr(info_phys, 8, phys_to_ptr, WHAT)?;
    if !info_phys.is_multiple_of(8) || base.align_offset(8) != 0 {
        return Err(BootInfoError::Malformed("the Multiboot2 information is not 8-byte aligned"));
    }
    // SAFETY: the translation vouched for the first 8 bytes (the total size and a reserved word).
    let total = unsafe { base.cast::<u32>().read() };
    if !(16..=MAX_MB2_INFO_SIZE).contains(&total) || !total.is_multiple_of(8) {
        return Err(BootInfoError::Malformed("the Multiboot2 information has an implausible total size"));
    }
    let info_range = info_phys..info_phys.checked_add(u64::from(total)).ok_or(BootInfoError::Unmapped {
        what: WHAT,
        phys: info_phys,
        len: u64::from(total),
    })?;
    let base = ptr(info_phys, u64::from(total), phys_to_ptr, WHAT)?;
    // SAFETY: the translation vouched for all `total` bytes at `base`.
    let scan = unsafe { mb2_scan(base, total as usize) }?;
    // SAFETY: as above; `mb2_scan` checked the tag chain and every tag the crate asserts on.
    let bi = unsafe { multiboot2::BootInformation::load(base.cast()) }
        .map_err(|_| BootInfoError::Malformed("the multiboot2 crate rejected the information structure"))?;

    let mut memory = Collector::new();
    let mmap = bi.memory_map_tag().ok_or(BootInfoError::NoMemoryMap)?;
    for area in mmap.memory_areas() {
        memory.add(area.start_address(), area.size(), e820_kind(area.typ().into()))?;
    }
    let memory = memory.finish();

    let mut cmdline = heapless::String::new();
    if let Some(tag) = bi.command_line_tag() {
        let s =
            mb2_str(tag.cmdline(), "the command line is not NUL-terminated", "the command line is not valid UTF-8")?;
        cmdline = copy_str(s, "the command line is longer than 512 bytes")?;
    }

    let mut bootloader = heapless::String::new();
    if let Some(tag) = bi.boot_loader_name_tag() {
        let s = mb2_str(
            tag.name(),
            "the boot loader name is not NUL-terminated",
            "the boot loader name is not valid UTF-8",
        )?;
        bootloader = copy_str_truncated(s);
    }

    let mut modules = heapless::Vec::new();
    for tag in bi.module_tags() {
        let (start, end) = (u64::from(tag.start_address()), u64::from(tag.end_address()));
        if end < start {
            return Err(BootInfoError::Malformed("a boot module ends before it starts"));
        }
        let s = mb2_str(
            tag.cmdline(),
            "a module command line is not NUL-terminated",
            "a module command line is not valid UTF-8",
        )?;
        let cmdline = copy_str(s, "a module command line is longer than 128 bytes")?;
        modules
            .push(Module { start, end, cmdline })
            .map_err(|_| BootInfoError::Malformed("there are more than 8 boot modules"))?;
    }

    // The RSDP copy starts right after the 8-byte tag header (inside `info_range`: no overflow).
    let rsdp = scan.acpi_new.or(scan.acpi_old).map(|off| info_range.start + off as u64 + 8);
    let firmware = if scan.efi { Firmware::Uefi } else { Firmware::Bios };
    let vga_text = match scan.framebuffer_type {
        Some(t) => t == MB2_FB_TYPE_EGA_TEXT,
        None => !scan.efi,
    };
    let mut info_ranges = heapless::Vec::new();
    // Cannot fail: capacity 4.
    let _ = info_ranges.push(info_range.clone());

    Ok(BootInfo {
        protocol: Protocol::Multiboot2,
        firmware,
        memory,
        rsdp,
        cmdline,
        modules,
        vga_text,
        bootloader,
        info_range,
        info_ranges,
    })
}

/// Xen's `struct hvm_start_info` (public/arch-x86/hvm/start_info.h), version 1 layout.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct HvmStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    // Version 1 and later:
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

/// Xen's `struct hvm_memmap_table_entry`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct HvmMemmapEntry {
    addr: u64,
    size: u64,
    typ: u32,
    reserved: u32,
}

/// Xen's `struct hvm_modlist_entry`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct HvmModlistEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

const _: () = {
    assert!(size_of::<HvmStartInfo>() == 56);
    assert!(offset_of!(HvmStartInfo, magic) == 0);
    assert!(offset_of!(HvmStartInfo, version) == 4);
    assert!(offset_of!(HvmStartInfo, flags) == 8);
    assert!(offset_of!(HvmStartInfo, nr_modules) == 12);
    assert!(offset_of!(HvmStartInfo, modlist_paddr) == 16);
    assert!(offset_of!(HvmStartInfo, cmdline_paddr) == 24);
    assert!(offset_of!(HvmStartInfo, rsdp_paddr) == 32);
    assert!(offset_of!(HvmStartInfo, memmap_paddr) == 40);
    assert!(offset_of!(HvmStartInfo, memmap_entries) == 48);
    assert!(offset_of!(HvmStartInfo, reserved) == 52);
    assert!(size_of::<HvmMemmapEntry>() == 24);
    assert!(offset_of!(HvmMemmapEntry, addr) == 0);
    assert!(offset_of!(HvmMemmapEntry, size) == 8);
    assert!(offset_of!(HvmMemmapEntry, typ) == 16);
    assert!(offset_of!(HvmMemmapEntry, reserved) == 20);
    assert!(size_of::<HvmModlistEntry>() == 32);
    assert!(offset_of!(HvmModlistEntry, paddr) == 0);
    assert!(offset_of!(HvmModlistEntry, size) == 8);
    assert!(offset_of!(HvmModlistEntry, cmdline_paddr) == 16);
    assert!(offset_of!(HvmModlistEntry, reserved) == 24);
};

/// Read a `T` at physical `phys`, or [`BootInfoError::Unmapped`] naming `what`.
///
/// # Safety
/// The translation's contract (see [`parse_pvh`]); any bit pattern must be a valid `T`.
unsafe fn read_phys<T: Copy>(phys: u64, phys_to_ptr: &PhysToPtr<'_>, what: &'static str) -> Result<T, BootInfoError> {
    let p = ptr(phys, size_of::<T>() as u64, phys_to_ptr, what)?;
    // SAFETY: the translation vouched for these bytes; `read_unaligned` needs no alignment.
    Ok(unsafe { p.cast::<T>().read_unaligned() })
}

/// Read a NUL-terminated string of at most `N` bytes at `phys` (`phys == 0` is the empty
/// string, occupying nothing); returns it with the bytes it occupies, its NUL included. Bytes are
/// read one at a time, each through the translation, and never more than `N + 1` of them.
///
/// # Safety
/// The translation's contract (see [`parse_pvh`]).
unsafe fn read_cstr<const N: usize>(
    phys: u64,
    phys_to_ptr: &PhysToPtr<'_>,
    what: &'static str,
    too_long: &'static str,
    bad_utf8: &'static str,
) -> Result<(heapless::String<N>, Range<u64>), BootInfoError> {
    if phys == 0 {
        return Ok((heapless::String::new(), 0..0));
    }
    let mut buf = heapless::Vec::<u8, N>::new();
    for i in 0..=N as u64 {
        let unmapped = BootInfoError::Unmapped { what, phys, len: i + 1 };
        let at = phys.checked_add(i).ok_or(unmapped)?;
        // SAFETY: by the translation's contract; one byte the translation vouched for.
        let b: u8 = unsafe { read_phys(at, phys_to_ptr, what) }.map_err(|_| unmapped)?;
        if b == 0 {
            let s = core::str::from_utf8(&buf).map_err(|_| BootInfoError::Malformed(bad_utf8))?;
            let mut out = heapless::String::new();
            // Cannot fail: `s` came from a buffer of capacity N.
            let _ = out.push_str(s);
            // `at + 1` cannot overflow: the translation vouched for the byte at `at`, so
            // `at + 1` was representable.
            return Ok((out, phys..at.checked_add(1).ok_or(unmapped)?));
        }
        if buf.push(b).is_err() {
            break;
        }
    }
    Err(BootInfoError::Malformed(too_long))
}

/// Byte range of `count` entries of `size` bytes at `phys`, or `what` if it overflows.
fn array_range(phys: u64, count: u32, size: usize, what: &'static str) -> Result<Range<u64>, BootInfoError> {
    let bytes = u64::from(count) * size as u64;
    let end = phys.checked_add(bytes).ok_or(BootInfoError::Malformed(what))?;
    Ok(phys..end)
}

/// Reduce byte ranges to at most four disjoint ones covering them all (merging overlapping and
/// touching ones, then the closest pairs), and return them with their hull.
fn cover(pieces: &mut [Range<u64>]) -> (heapless::Vec<Range<u64>, 4>, Range<u64>) {
    pieces.sort_unstable_by_key(|r| r.start);
    let mut merged = heapless::Vec::<Range<u64>, 16>::new();
    for r in pieces.iter().filter(|r| r.start < r.end) {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => {
                // Cannot fail: callers pass at most 16 pieces.
                let _ = merged.push(r.clone());
            }
        }
    }
    while merged.len() > 4 {
        let i = (0..merged.len() - 1).min_by_key(|&i| merged[i + 1].start - merged[i].end).unwrap_or(0);
        merged[i].end = merged[i + 1].end;
        merged.remove(i + 1);
    }
    let hull = match (merged.first(), merged.last()) {
        (Some(a), Some(b)) => a.start..b.end,
        _ => 0..0,
    };
    let mut out = heapless::Vec::new();
    for r in merged {
        // Cannot fail: at most 4 remain.
        let _ = out.push(r);
    }
    (out, hull)
}

/// Parse a PVH `hvm_start_info` (version 1 or later; version 0 has no memory map).
///
/// Memory map types follow e820 (1 usable, 3 ACPI reclaimable, 4 ACPI NVS, 5 unusable → defective,
/// anything else reserved). The firmware is reported as [`Firmware::Bios`] (QEMU's PVH path
/// runs SeaBIOS), `vga_text` as true and `bootloader` as empty. Strings must be NUL-terminated
/// UTF-8 within their capacity (512 bytes for the command line, 128 for module command lines);
/// at most 8 modules. `info_ranges` covers the start info, the memory map, the module list, the
/// command line and the module command lines.
///
/// Every address in the start info is Xen's 64-bit physical address; each is read only through
/// the translation, so one outside what it maps (QEMU passes them all below 4 GiB, which the
/// boot identity map covers) is [`BootInfoError::Unmapped`], not a fault.
///
/// # Safety
/// Whenever `phys_to_ptr(phys, len)` returns a pointer, it must be valid for reads of those `len`
/// bytes, and that memory must not change while this runs.
pub unsafe fn parse_pvh(start_info_phys: u64, phys_to_ptr: &PhysToPtr<'_>) -> Result<BootInfo, BootInfoError> {
    const WHAT: &str = "the PVH start info";
    // SAFETY: the translation's contract; an integer.
    let magic: u32 = unsafe { read_phys(start_info_phys, phys_to_ptr, WHAT) }?;
    if magic != PVH_MAGIC {
        return Err(BootInfoError::BadPvhMagic(magic));
    }
    // SAFETY: as above; `checked_add` keeps the address in range.
    let version: u32 = unsafe {
        read_phys(
            start_info_phys.checked_add(4).ok_or(BootInfoError::Unmapped {
                what: WHAT,
                phys: start_info_phys,
                len: 8,
            })?,
            phys_to_ptr,
            WHAT,
        )
    }?;
    if version == 0 {
        return Err(BootInfoError::NoMemoryMap);
    }
    // SAFETY: the translation's contract; version ≥ 1 start infos have the full 56-byte layout,
    // all of it integers.
    let si: HvmStartInfo = unsafe { read_phys(start_info_phys, phys_to_ptr, WHAT) }?;

    let mut pieces = heapless::Vec::<Range<u64>, 16>::new();
    let mut piece = |r: Range<u64>| {
        // Cannot fail: 1 + 1 + 1 + 1 + 8 ≤ 16 pieces.
        let _ = pieces.push(r);
    };
    // Cannot overflow: the read of the whole start info above was vouched for.
    piece(start_info_phys..start_info_phys + size_of::<HvmStartInfo>() as u64);

    if si.memmap_entries == 0 {
        return Err(BootInfoError::NoMemoryMap);
    }
    if si.memmap_paddr == 0 || si.memmap_entries > MAX_PVH_MEMMAP_ENTRIES {
        return Err(BootInfoError::Malformed("the PVH memory map address or entry count is implausible"));
    }
    let mm = array_range(
        si.memmap_paddr,
        si.memmap_entries,
        size_of::<HvmMemmapEntry>(),
        "the PVH memory map runs past the end of the address space",
    )?;
    let mut memory = Collector::new();
    for at in mm.clone().step_by(size_of::<HvmMemmapEntry>()) {
        // SAFETY: the translation's contract; integers only.
        let e: HvmMemmapEntry = unsafe { read_phys(at, phys_to_ptr, "the PVH memory map") }?;
        memory.add(e.addr, e.size, e820_kind(e.typ))?;
    }
    let memory = memory.finish();
    piece(mm);

    // SAFETY: the translation's contract.
    let (cmdline, at) = unsafe {
        read_cstr(
            si.cmdline_paddr,
            phys_to_ptr,
            "the command line",
            "the command line is longer than 512 bytes or not NUL-terminated",
            "the command line is not valid UTF-8",
        )
    }?;
    piece(at);

    let mut modules = heapless::Vec::new();
    if si.nr_modules > 8 {
        return Err(BootInfoError::Malformed("there are more than 8 boot modules"));
    }
    if si.nr_modules > 0 {
        if si.modlist_paddr == 0 {
            return Err(BootInfoError::Malformed("the PVH module list address is zero"));
        }
        let ml = array_range(
            si.modlist_paddr,
            si.nr_modules,
            size_of::<HvmModlistEntry>(),
            "the PVH module list runs past the end of the address space",
        )?;
        for at in ml.clone().step_by(size_of::<HvmModlistEntry>()) {
            // SAFETY: the translation's contract; integers only.
            let e: HvmModlistEntry = unsafe { read_phys(at, phys_to_ptr, "the PVH module list") }?;
            let end = e
                .paddr
                .checked_add(e.size)
                .ok_or(BootInfoError::Malformed("a boot module runs past the end of the address space"))?;
            // SAFETY: the translation's contract.
            let (cmdline, at) = unsafe {
                read_cstr(
                    e.cmdline_paddr,
                    phys_to_ptr,
                    "a module command line",
                    "a module command line is longer than 128 bytes or not NUL-terminated",
                    "a module command line is not valid UTF-8",
                )
            }?;
            piece(at);
            // Cannot fail: nr_modules ≤ 8.
            let _ = modules.push(Module { start: e.paddr, end, cmdline });
        }
        piece(ml);
    }

    let (info_ranges, info_range) = cover(&mut pieces);
    Ok(BootInfo {
        protocol: Protocol::Pvh,
        firmware: Firmware::Bios,
        memory,
        rsdp: (si.rsdp_paddr != 0).then_some(si.rsdp_paddr),
        cmdline,
        modules,
        vga_text: true,
        bootloader: heapless::String::new(),
        info_range,
        info_ranges,
    })
}

/// Boot information as loaders lay it out, in a fake physical memory, for the tests and the fuzz
/// seeds (`crate::fuzz`).
#[cfg(any(test, feature = "fuzz"))]
pub mod sample {
    use super::*;
    use alloc::vec::Vec;

    /// Where the fake memory starts.
    pub const PHYS: u64 = 0x8000;

    /// A fake physical memory: the bytes at `PHYS`, then 512 zero bytes, 8-byte aligned.
    pub struct Fake {
        words: Vec<u64>,
    }

    impl Fake {
        /// A fake memory holding `bytes` at [`PHYS`].
        pub fn new(bytes: &[u8]) -> Self {
            let mut words = alloc::vec![0u64; bytes.len().div_ceil(8) + 64];
            for (i, b) in bytes.iter().enumerate() {
                words[i / 8] |= u64::from(*b) << (8 * (i % 8));
            }
            Self { words }
        }
        /// The physical range the fake memory covers.
        pub fn mapped(&self) -> Range<u64> {
            PHYS..PHYS + self.words.len() as u64 * 8
        }
        /// The translation: only the fake memory is mapped.
        pub fn p2p(&self) -> impl Fn(u64, u64) -> Option<*const u8> + '_ {
            move |phys, len| {
                let off = usize::try_from(phys.checked_sub(PHYS)?).ok()?;
                let end = off.checked_add(usize::try_from(len).ok()?)?;
                (end <= self.words.len() * 8).then(|| self.words.as_ptr().cast::<u8>().wrapping_add(off))
            }
        }
    }

    /// Appends `x` as 4 little-endian bytes.
    pub fn le32(v: &mut Vec<u8>, x: u32) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    /// Appends `x` as 8 little-endian bytes.
    pub fn le64(v: &mut Vec<u8>, x: u64) {
        v.extend_from_slice(&x.to_le_bytes());
    }

    /// Builds a Multiboot2 information structure.
    #[derive(Default)]
    pub struct Mb2 {
        tags: Vec<u8>,
    }

    impl Mb2 {
        /// No tags yet.
        pub fn new() -> Self {
            Self { tags: Vec::new() }
        }
        /// Appends a tag of type `typ` with `payload`, padded to 8 bytes.
        pub fn tag(mut self, typ: u32, payload: &[u8]) -> Self {
            le32(&mut self.tags, typ);
            le32(&mut self.tags, 8 + payload.len() as u32);
            self.tags.extend_from_slice(payload);
            while !self.tags.len().is_multiple_of(8) {
                self.tags.push(0);
            }
            self
        }
        /// Appends a string tag (`typ` 1: command line, 2: boot loader name), NUL added.
        pub fn string(self, typ: u32, s: &[u8]) -> Self {
            let mut p = s.to_vec();
            p.push(0);
            self.tag(typ, &p)
        }
        /// Appends a memory-map tag (type 6) of `(base, length, type)` areas, 24 bytes each.
        pub fn mmap(self, areas: &[(u64, u64, u32)]) -> Self {
            let mut p = Vec::new();
            le32(&mut p, 24);
            le32(&mut p, 0);
            for &(a, l, t) in areas {
                le64(&mut p, a);
                le64(&mut p, l);
                le32(&mut p, t);
                le32(&mut p, 0);
            }
            self.tag(6, &p)
        }
        /// Appends a module tag (type 3): physical `[start, end)` and its command line.
        pub fn module(self, start: u32, end: u32, cmdline: &str) -> Self {
            let mut p = Vec::new();
            le32(&mut p, start);
            le32(&mut p, end);
            p.extend_from_slice(cmdline.as_bytes());
            p.push(0);
            self.tag(3, &p)
        }
        /// Appends an ACPI tag with a zeroed RSDP copy: the 2.0 one (type 15, 36 bytes) when
        /// `new`, else the 1.0 one (type 14, 20 bytes).
        pub fn rsdp(self, new: bool) -> Self {
            let mut p = b"RSD PTR ".to_vec();
            p.resize(if new { 36 } else { 20 }, 0);
            self.tag(if new { 15 } else { 14 }, &p)
        }
        /// Appends an 80×25 framebuffer tag (type 8) of framebuffer type `typ` (2: EGA text).
        pub fn framebuffer(self, typ: u8) -> Self {
            let mut p = Vec::new();
            le64(&mut p, 0xb8000);
            le32(&mut p, 160);
            le32(&mut p, 80);
            le32(&mut p, 25);
            p.push(16);
            p.push(typ);
            p.extend_from_slice(&[0, 0]);
            self.tag(8, &p)
        }
        /// The whole structure: total size and reserved word, the tags, the end tag.
        pub fn build(self) -> Vec<u8> {
            let mut v = Vec::new();
            le32(&mut v, (8 + self.tags.len() + 8) as u32);
            le32(&mut v, 0);
            v.extend_from_slice(&self.tags);
            le32(&mut v, 0);
            le32(&mut v, 8);
            v
        }
    }

    /// [`parse_multiboot2`] on `bytes` placed in a [`Fake`] memory, with the right magic.
    pub fn parse_mb2(bytes: &[u8]) -> Result<BootInfo, BootInfoError> {
        let fake = Fake::new(bytes);
        // SAFETY: the fake memory holds the whole structure and outlives the call.
        unsafe { parse_multiboot2(MULTIBOOT2_MAGIC, PHYS, &fake.p2p()) }
    }

    /// A 128 MiB PC's memory map as GRUB passes it: low RAM, the EBDA and BIOS ROM, RAM from
    /// 1 MiB, ACPI tables, ACPI NVS and a bad page above 4 GiB.
    pub fn basic_mmap() -> Mb2 {
        Mb2::new().mmap(&[
            (0, 0x9_fc00, 1),
            (0x9_fc00, 0x400, 2),
            (0xf_0000, 0x1_0000, 2),
            (0x10_0000, 0x7ee_0000, 1),
            (0x7fe_0000, 0x2_0000, 3),
            (0xfffc_0000, 0x4_0000, 4),
            (0x1_0000_0000, 0x1000, 5),
        ])
    }

    /// Lays out a PVH start info and what it points to, at fixed offsets from `PHYS`.
    pub struct Pvh {
        /// `hvm_start_info.version` (1: with a memory map).
        pub version: u32,
        /// The memory map: `(address, size, e820 type)`.
        pub memmap: Vec<(u64, u64, u32)>,
        /// The command line's bytes as placed (NUL included when the test wants one).
        pub cmdline: Option<Vec<u8>>,
        /// The modules: `(address, size, command line bytes)`.
        pub modules: Vec<(u64, u64, Option<Vec<u8>>)>,
        /// `rsdp_paddr` (0: none).
        pub rsdp: u64,
    }

    /// Where the start info lies.
    pub const SI: u64 = PHYS;
    /// Where the memory map lies.
    pub const MEMMAP: u64 = PHYS + 0x40;
    /// Where the module list lies.
    pub const MODLIST: u64 = PHYS + 0x200;
    /// Where the command line lies.
    pub const CMDLINE: u64 = PHYS + 0x400;
    /// Where module `i`'s command line lies: `MODCMD + 0x100 * i`.
    pub const MODCMD: u64 = PHYS + 0x800;

    impl Pvh {
        /// The fake memory's bytes from [`PHYS`]: every structure at its fixed offset.
        pub fn build(&self) -> Vec<u8> {
            let mut m = alloc::vec![0u8; 0x1400];
            let put = |m: &mut Vec<u8>, at: u64, b: &[u8]| {
                let o = (at - PHYS) as usize;
                m[o..o + b.len()].copy_from_slice(b);
            };
            let mut si = Vec::new();
            le32(&mut si, PVH_MAGIC);
            le32(&mut si, self.version);
            le32(&mut si, 0);
            le32(&mut si, self.modules.len() as u32);
            le64(&mut si, if self.modules.is_empty() { 0 } else { MODLIST });
            le64(&mut si, if self.cmdline.is_some() { CMDLINE } else { 0 });
            le64(&mut si, self.rsdp);
            le64(&mut si, MEMMAP);
            le32(&mut si, self.memmap.len() as u32);
            le32(&mut si, 0);
            put(&mut m, SI, &si);
            let mut mm = Vec::new();
            for &(a, s, t) in &self.memmap {
                le64(&mut mm, a);
                le64(&mut mm, s);
                le32(&mut mm, t);
                le32(&mut mm, 0);
            }
            put(&mut m, MEMMAP, &mm);
            if let Some(c) = &self.cmdline {
                put(&mut m, CMDLINE, c);
            }
            let mut ml = Vec::new();
            for (i, (a, s, c)) in self.modules.iter().enumerate() {
                le64(&mut ml, *a);
                le64(&mut ml, *s);
                let at = MODCMD + 0x100 * i as u64;
                le64(&mut ml, if c.is_some() { at } else { 0 });
                le64(&mut ml, 0);
                if let Some(c) = c {
                    put(&mut m, at, c);
                }
            }
            put(&mut m, MODLIST, &ml);
            m
        }

        /// [`parse_pvh`] on [`Pvh::build`]'s bytes in a [`Fake`] memory.
        pub fn parse(&self) -> Result<BootInfo, BootInfoError> {
            let fake = Fake::new(&self.build());
            // SAFETY: everything the start info references lies inside the fake memory, and
            // every string read stops within it (strings are followed by zero bytes or capped).
            unsafe { parse_pvh(SI, &fake.p2p()) }
        }
    }

    /// A start info like QEMU's for a 128 MiB machine, with a command line and two modules (the
    /// second without a command line).
    pub fn pvh() -> Pvh {
        Pvh {
            version: 1,
            memmap: alloc::vec![
                (0, 0x9_fc00, 1),
                (0x10_0000, 0x7f0_0000, 1),
                (0xfeff_c000, 0x4000, 2),
                (0x7ff_0000, 0x1_0000, 3),
            ],
            cmdline: Some(b"console=ttyS0 hauki.cpus=1\0".to_vec()),
            modules: alloc::vec![(0x100_0000, 0x1234, Some(b"payload\0".to_vec())), (0x200_0000, 0x10, None),],
            rsdp: 0xf_5a10,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sample::*;
    use super::*;
    use crate::mm::memmap::Region;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn mb2_normal() {
        let bytes = basic_mmap()
            .string(2, b"GRUB 2.12")
            .string(1, b"console=ttyS0 hauki.debug")
            .rsdp(false)
            .module(0x20_0000, 0x30_0000, "payload.elf arg")
            .rsdp(true)
            .module(0x30_0000, 0x30_0000, "")
            .framebuffer(2)
            .build();
        // Where the new ACPI tag is: find it in the bytes.
        let mut off = 8;
        let acpi_new = loop {
            let typ = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
            let size = u32::from_le_bytes(bytes[off + 4..off + 8].try_into().unwrap()) as usize;
            if typ == 15 {
                break off;
            }
            off += size.next_multiple_of(8);
        };
        let bi = parse_mb2(&bytes).unwrap();
        assert_eq!(bi.protocol, Protocol::Multiboot2);
        assert_eq!(bi.firmware, Firmware::Bios);
        assert!(bi.vga_text);
        assert_eq!(bi.bootloader.as_str(), "GRUB 2.12");
        assert_eq!(bi.cmdline.as_str(), "console=ttyS0 hauki.debug");
        assert_eq!(bi.rsdp, Some(PHYS + acpi_new as u64 + 8));
        assert_eq!(bi.modules.len(), 2);
        assert_eq!((bi.modules[0].start, bi.modules[0].end), (0x20_0000, 0x30_0000));
        assert_eq!(bi.modules[0].cmdline.as_str(), "payload.elf arg");
        assert_eq!(bi.modules[1].cmdline.as_str(), "");
        assert_eq!(bi.info_range, PHYS..PHYS + bytes.len() as u64);
        assert_eq!(&bi.info_ranges[..], std::slice::from_ref(&bi.info_range));
        assert_eq!(
            bi.memory.regions(),
            &[
                Region { start: 0, end: 0x9_fc00, kind: RegionKind::Usable },
                Region { start: 0x9_fc00, end: 0xa_0000, kind: RegionKind::Reserved },
                Region { start: 0xf_0000, end: 0x10_0000, kind: RegionKind::Reserved },
                Region { start: 0x10_0000, end: 0x7fe_0000, kind: RegionKind::Usable },
                Region { start: 0x7fe_0000, end: 0x800_0000, kind: RegionKind::AcpiReclaimable },
                Region { start: 0xfffc_0000, end: 0x1_0000_0000, kind: RegionKind::AcpiNvs },
                Region { start: 0x1_0000_0000, end: 0x1_0000_1000, kind: RegionKind::Defective },
            ]
        );
    }

    #[test]
    fn mb2_old_acpi_only_and_rgb_framebuffer() {
        let bytes = basic_mmap().rsdp(false).framebuffer(1).build();
        let bi = parse_mb2(&bytes).unwrap();
        assert_eq!(bi.rsdp, Some(PHYS + 8 + (8 + 8 + 7 * 24) + 8));
        assert!(!bi.vga_text);
        assert!(bi.cmdline.is_empty() && bi.bootloader.is_empty() && bi.modules.is_empty());
    }

    #[test]
    fn mb2_efi() {
        for typ in [11u32, 12, 17] {
            let bytes = basic_mmap().tag(typ, &[0; 8]).build();
            let bi = parse_mb2(&bytes).unwrap();
            assert_eq!(bi.firmware, Firmware::Uefi);
            assert!(!bi.vga_text);
        }
        let bytes = basic_mmap().tag(12, &[0; 8]).framebuffer(2).build();
        assert!(parse_mb2(&bytes).unwrap().vga_text);
    }

    #[test]
    fn mb2_errors() {
        let good = basic_mmap().build();
        let fake = Fake::new(&good);
        // SAFETY: the fake memory holds the structure.
        let r = unsafe { parse_multiboot2(0x2bad_b002, PHYS, &fake.p2p()) };
        assert_eq!(r.unwrap_err(), BootInfoError::BadMultiboot2Magic(0x2bad_b002));
        // SAFETY: as above.
        let r = unsafe { parse_multiboot2(MULTIBOOT2_MAGIC, PHYS + 4, &fake.p2p()) };
        assert!(matches!(r, Err(BootInfoError::Malformed(_))));

        let no_mmap = Mb2::new().string(1, b"x").build();
        assert_eq!(parse_mb2(&no_mmap).unwrap_err(), BootInfoError::NoMemoryMap);

        // Command line without NUL (the tag ends right after the text).
        let bytes = basic_mmap().tag(1, b"abcdefg").build();
        assert!(matches!(parse_mb2(&bytes), Err(BootInfoError::Malformed(m)) if m.contains("NUL")));
        // Invalid UTF-8.
        let bytes = basic_mmap().string(1, &[b'a', 0xff, b'b']).build();
        assert!(matches!(parse_mb2(&bytes), Err(BootInfoError::Malformed(m)) if m.contains("UTF-8")));
        // Overlong command line and module command line.
        let bytes = basic_mmap().string(1, &[b'a'; 513]).build();
        assert!(matches!(parse_mb2(&bytes), Err(BootInfoError::Malformed(m)) if m.contains("512")));
        assert!(parse_mb2(&basic_mmap().string(1, &[b'a'; 512]).build()).is_ok());
        let long = "m".repeat(129);
        let bytes = basic_mmap().module(0, 1, &long).build();
        assert!(matches!(parse_mb2(&bytes), Err(BootInfoError::Malformed(m)) if m.contains("128")));
        // An overlong boot loader name is truncated, not refused.
        let bi = parse_mb2(&basic_mmap().string(2, "é".repeat(40).as_bytes()).build()).unwrap();
        assert_eq!(bi.bootloader.as_str(), "é".repeat(32));
        // Too many modules.
        let mut b = basic_mmap();
        for i in 0..9 {
            b = b.module(i, i + 1, "");
        }
        assert!(matches!(parse_mb2(&b.build()), Err(BootInfoError::Malformed(_))));
    }

    #[test]
    fn mb2_structural_garbage_is_an_error_not_a_panic() {
        let good = basic_mmap().string(1, b"hello").build();
        // Truncated total size, a tag running past the end, a bad mmap entry size, no end tag.
        let mut v = good.clone();
        v[0..4].copy_from_slice(&((good.len() - 8) as u32).to_le_bytes());
        assert!(matches!(parse_mb2(&v), Err(BootInfoError::Malformed(_))));
        let mut v = good.clone();
        v[12..16].copy_from_slice(&0x1000u32.to_le_bytes());
        assert!(matches!(parse_mb2(&v), Err(BootInfoError::Malformed(_))));
        let mut v = good.clone();
        v[16..20].copy_from_slice(&20u32.to_le_bytes());
        assert!(matches!(parse_mb2(&v), Err(BootInfoError::Malformed(_))));
        let mut v = good.clone();
        let n = v.len();
        v[n - 4..].copy_from_slice(&16u32.to_le_bytes());
        assert!(matches!(parse_mb2(&v), Err(BootInfoError::Malformed(_))));
        let mut v = good;
        v[0..4].copy_from_slice(&4u32.to_le_bytes());
        assert!(matches!(parse_mb2(&v), Err(BootInfoError::Malformed(_))));
        // Short framebuffer and ACPI tags.
        assert!(matches!(parse_mb2(&basic_mmap().tag(8, &[0; 8]).build()), Err(BootInfoError::Malformed(_))));
        assert!(matches!(parse_mb2(&basic_mmap().tag(15, &[0; 20]).build()), Err(BootInfoError::Malformed(_))));
    }

    #[test]
    fn pvh_normal() {
        let bi = pvh().parse().unwrap();
        assert_eq!(bi.protocol, Protocol::Pvh);
        assert_eq!(bi.firmware, Firmware::Bios);
        assert!(bi.vga_text);
        assert_eq!(bi.rsdp, Some(0xf_5a10));
        assert_eq!(bi.cmdline.as_str(), "console=ttyS0 hauki.cpus=1");
        assert_eq!(bi.modules.len(), 2);
        assert_eq!((bi.modules[0].start, bi.modules[0].end), (0x100_0000, 0x100_1234));
        assert_eq!(bi.modules[0].cmdline.as_str(), "payload");
        assert_eq!(bi.modules[1].cmdline.as_str(), "");
        assert_eq!(bi.memory.usable_bytes(), 0x9_fc00 + 0x7f0_0000 - 0x1_0000); // ACPI overlaps the top
        assert_eq!(bi.memory.regions().len(), 4);
        assert_eq!(bi.memory.regions()[2].kind, RegionKind::AcpiReclaimable);
        assert_eq!(
            &bi.info_ranges[..],
            &[SI..MEMMAP + 4 * 24, MODLIST..MODLIST + 64, CMDLINE..CMDLINE + 27, MODCMD..MODCMD + 8]
        );
        assert_eq!(bi.info_range, SI..MODCMD + 8);
        let mut no_rsdp = pvh();
        no_rsdp.rsdp = 0;
        no_rsdp.cmdline = None;
        no_rsdp.modules.clear();
        let bi = no_rsdp.parse().unwrap();
        assert_eq!(bi.rsdp, None);
        assert!(bi.cmdline.is_empty() && bi.modules.is_empty());
        assert_eq!(&bi.info_ranges[..], &[SI..SI + 56, MEMMAP..MEMMAP + 4 * 24]);
        assert_eq!(bi.info_range, SI..MEMMAP + 4 * 24);
    }

    #[test]
    fn pvh_errors() {
        let mut p = pvh();
        p.version = 0;
        assert_eq!(p.parse().unwrap_err(), BootInfoError::NoMemoryMap);
        let mut p = pvh();
        p.memmap.clear();
        assert_eq!(p.parse().unwrap_err(), BootInfoError::NoMemoryMap);

        let mut bytes = pvh().build();
        bytes[0] ^= 1;
        let fake = Fake::new(&bytes);
        // SAFETY: the fake memory holds the start info.
        let r = unsafe { parse_pvh(SI, &fake.p2p()) };
        assert_eq!(r.unwrap_err(), BootInfoError::BadPvhMagic(PVH_MAGIC ^ 1));

        // Exactly 512 bytes fits; 513 (or a missing NUL within reach) does not.
        let mut p = pvh();
        let mut c = vec![b'x'; 512];
        c.push(0);
        p.cmdline = Some(c);
        assert_eq!(p.parse().unwrap().cmdline.len(), 512);
        let mut p = pvh();
        p.cmdline = Some(vec![b'x'; 600]);
        assert!(matches!(p.parse(), Err(BootInfoError::Malformed(m)) if m.contains("512")));
        let mut p = pvh();
        p.cmdline = Some(b"bad \xc3\x28 utf8\0".to_vec());
        assert!(matches!(p.parse(), Err(BootInfoError::Malformed(m)) if m.contains("UTF-8")));
        let mut p = pvh();
        p.modules[0].2 = Some(vec![b'm'; 0xff]);
        assert!(matches!(p.parse(), Err(BootInfoError::Malformed(m)) if m.contains("128")));
        let mut p = pvh();
        p.modules = (0..9).map(|i| (i, 1, None)).collect();
        assert!(matches!(p.parse(), Err(BootInfoError::Malformed(_))));
        let mut p = pvh();
        p.modules[0].1 = u64::MAX;
        assert!(matches!(p.parse(), Err(BootInfoError::Malformed(_))));
    }

    /// A fuzzing regression: every address in the PVH start info, `cmdline_paddr + len` included,
    /// is added to with checked arithmetic and read only through the translation. One that
    /// overflows or is not readable is a typed refusal, not an overflow panic or a page fault.
    #[test]
    fn pvh_pointers_outside_readable_memory_are_refused() {
        let unmapped = |r: Result<BootInfo, BootInfoError>, which: &str, at: u64| match r {
            Err(BootInfoError::Unmapped { what, phys, .. }) => {
                assert!(what.contains(which), "{what}");
                assert_eq!(phys, at);
            }
            other => panic!("expected Unmapped for {which}, got {other:?}"),
        };
        // A command line in the last byte of the address space (`cmdline_paddr + len` overflows).
        let mut bytes = pvh().build();
        bytes[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        let fake = Fake::new(&bytes);
        // SAFETY: the translation hands out only pointers inside the fake memory.
        unmapped(unsafe { parse_pvh(SI, &fake.p2p()) }, "command line", u64::MAX);
        // A memory map, a module list and a module command line beyond mapped memory.
        for (field, value, which) in [(40usize, 0x1_0000_0000u64, "memory map"), (16, 0x1_0000_0000, "module list")] {
            let mut bytes = pvh().build();
            bytes[field..field + 8].copy_from_slice(&value.to_le_bytes());
            let fake = Fake::new(&bytes);
            // SAFETY: as above.
            unmapped(unsafe { parse_pvh(SI, &fake.p2p()) }, which, value);
        }
        let mut bytes = pvh().build();
        let modcmd = (MODLIST - PHYS) as usize + 16;
        bytes[modcmd..modcmd + 8].copy_from_slice(&(u64::MAX - 1).to_le_bytes());
        let fake = Fake::new(&bytes);
        // SAFETY: as above.
        unmapped(unsafe { parse_pvh(SI, &fake.p2p()) }, "module command line", u64::MAX - 1);
        // The start info itself.
        // SAFETY: as above.
        unmapped(unsafe { parse_pvh(u64::MAX - 3, &fake.p2p()) }, "start info", u64::MAX - 3);
        // SAFETY: as above.
        let r = unsafe { parse_multiboot2(MULTIBOOT2_MAGIC, 0x1_0000_0000, &fake.p2p()) };
        unmapped(r, "Multiboot2", 0x1_0000_0000);
    }

    /// A fuzzing regression: a Multiboot2 memory map of ~43,000 entries (within the 1 MiB limit),
    /// 127 distinct regions followed by one entry repeated, the worst case for a full map, parses
    /// to the 127 regions. (The parse goes through `memmap::Collector`, whose work is counted
    /// linear in `a_huge_map_is_collected_in_linear_time`; nothing here is timed.)
    #[test]
    fn mb2_huge_memory_map_parses() {
        let mut areas: Vec<(u64, u64, u32)> = (0..127).map(|i| (i * 0x2000, 0x1000, 1)).collect();
        areas.resize(43_000, (0, 0x1000, 1));
        let bytes = Mb2::new().mmap(&areas).build();
        assert!(bytes.len() <= MAX_MB2_INFO_SIZE as usize);
        let bi = parse_mb2(&bytes).unwrap();
        assert_eq!(bi.memory.regions().len(), 127);
    }

    #[test]
    fn many_entries_are_merged_not_refused() {
        // 200 touching usable entries exceed MAX_REGIONS before normalization.
        let mut p = pvh();
        p.memmap = (0..200).map(|i| (0x10_0000 + i * 0x1000, 0x1000, 1)).collect();
        p.modules.clear();
        p.cmdline = None;
        let bi = p.parse().unwrap();
        assert_eq!(
            bi.memory.regions(),
            &[Region { start: 0x10_0000, end: 0x10_0000 + 200 * 0x1000, kind: RegionKind::Usable }]
        );
    }

    #[test]
    fn cover_merges_closest() {
        let mut v = [0..10, 100..110, 20..30, 25..40, 200..210, 1000..1001, 41..42];
        let (r, hull) = cover(&mut v);
        assert_eq!(&r[..], &[0..42, 100..110, 200..210, 1000..1001]);
        assert_eq!(hull, 0..1001);
    }

    #[test]
    fn display_is_readable() {
        let s = std::format!("{}", BootInfoError::BadMultiboot2Magic(0x1234));
        assert!(s.contains("0x1234") && s.contains("0x36d76289"), "{s}");
        let s = std::format!("{}", BootInfoError::Memory(MemMapError::TooManyRegions));
        assert!(s.contains("128"), "{s}");
    }
}
