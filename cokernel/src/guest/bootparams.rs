//! Linux's "zero page" (`struct boot_params`) for the 64-bit boot protocol, and its e820 map.
//!
//! [`build`] writes a complete 4096-byte `boot_params` from scratch into a caller-owned buffer:
//! it zeroes the page, then fills the setup-header fields a boot loader must set (boot flag,
//! "HdrS" magic, protocol version, loader type, load flags, command line, initrd), the
//! hardware subarchitecture, the ACPI RSDP address and the e820 memory map. Offsets are those of
//! `arch/x86/include/uapi/asm/bootparam.h` and `Documentation/arch/x86/boot.rst` (Linux 6.12);
//! the tests check every constant against the documented value and against a transcription of
//! the C structure. All multi-byte fields are little-endian.
//!
//! Invariants of a page written by [`build`]:
//! * every byte not named below is zero, in particular the `sentinel` (0x1ef), so Linux's
//!   `sanitize_boot_params` keeps everything, and `setup_data` (0x250) is 0 (no chain);
//! * 64-bit addresses are split into a low half in the classic field and a high half in the
//!   matching `ext_` field (`ramdisk_image`/`ext_ramdisk_image`, `ramdisk_size`/
//!   `ext_ramdisk_size`, `cmd_line_ptr`/`ext_cmd_line_ptr`), so nothing has to be below 4 GiB;
//! * `e820_entries` equals the number of entries written, at most [`E820_MAX`].
//!
//! Linux's 64-bit entry (`startup_64`) copies [`COMMAND_LINE_SIZE`] bytes from `cmd_line_ptr`
//! whatever the command line's length, so the caller must place a NUL-terminated command line
//! with that many readable bytes behind it.
//!
//! [`e820_from`] turns the co-kernel's [`MemoryMap`] into the e820 map Linux sees, withholding
//! the co-kernel's own memory. [`linux_cmdline`] is where a command line is checked against
//! Linux's limit, once: the loader keeps only what [`build`] accepts.
#![forbid(unsafe_code)]

use core::fmt;
use core::ops::Range;

use crate::mm::memmap::{MemoryMap, RegionKind};

/// Size of `struct boot_params`.
pub const BOOT_PARAMS_SIZE: usize = 4096;
/// Entries of `e820_table` in the zero page (`E820_MAX_ENTRIES_ZEROPAGE`).
pub const E820_MAX: usize = 128;
/// Size of one `struct boot_e820_entry` (packed: addr u64, size u64, type u32).
pub const E820_ENTRY_SIZE: usize = 20;
/// Linux's x86 `COMMAND_LINE_SIZE`, including the terminating NUL.
pub const COMMAND_LINE_SIZE: u32 = 2048;
/// Longest command line Linux takes, without its NUL.
pub const MAX_CMDLINE_LEN: usize = COMMAND_LINE_SIZE as usize - 1;
/// A Linux command line that fits Linux's limit (what [`linux_cmdline`] returns).
pub type Cmdline = heapless::String<MAX_CMDLINE_LEN>;
/// Boot protocol version we claim to speak (2.15, the newest in Linux 6.12).
pub const BOOT_PROTOCOL_VERSION: u16 = 0x020f;
/// `type_of_loader` for a loader without an assigned ID.
pub const LOADER_TYPE_UNDEFINED: u8 = 0xff;
/// `loadflags` bit 0: the protected-mode kernel is loaded at 0x100000 or above. The only flag
/// we set: `CAN_USE_HEAP` and `KEEP_SEGMENTS` concern the real-mode and 32-bit entry paths,
/// which the 64-bit entry skips, and `QUIET_FLAG` would silence early messages.
pub const LOADED_HIGH: u8 = 1 << 0;
/// `boot_flag` value.
pub const BOOT_FLAG_MAGIC: u16 = 0xaa55;
/// `header` value: "HdrS".
pub const HEADER_MAGIC: [u8; 4] = *b"HdrS";
/// `hardware_subarch` of a normal, enumerable PC.
pub const X86_SUBARCH_PC: u32 = 0;

// Offsets in `struct boot_params`.
/// `acpi_rsdp_addr` (u64).
pub const ACPI_RSDP_ADDR: usize = 0x070;
/// `ext_ramdisk_image` (u32): high half of the initrd address.
pub const EXT_RAMDISK_IMAGE: usize = 0x0c0;
/// `ext_ramdisk_size` (u32): high half of the initrd size.
pub const EXT_RAMDISK_SIZE: usize = 0x0c4;
/// `ext_cmd_line_ptr` (u32): high half of the command line address.
pub const EXT_CMD_LINE_PTR: usize = 0x0c8;
/// `e820_entries` (u8).
pub const E820_ENTRIES: usize = 0x1e8;
/// `sentinel` (u8); must stay 0.
pub const SENTINEL: usize = 0x1ef;
/// Start of `struct setup_header hdr`.
pub const SETUP_HEADER: usize = 0x1f1;
/// `hdr.setup_sects` (u8).
pub const SETUP_SECTS: usize = 0x1f1;
/// `hdr.boot_flag` (u16) = 0xAA55.
pub const BOOT_FLAG: usize = 0x1fe;
/// `hdr.header` (u32) = "HdrS".
pub const HEADER: usize = 0x202;
/// `hdr.version` (u16).
pub const VERSION: usize = 0x206;
/// `hdr.type_of_loader` (u8).
pub const TYPE_OF_LOADER: usize = 0x210;
/// `hdr.loadflags` (u8).
pub const LOADFLAGS: usize = 0x211;
/// `hdr.ramdisk_image` (u32): low half of the initrd address.
pub const RAMDISK_IMAGE: usize = 0x218;
/// `hdr.ramdisk_size` (u32): low half of the initrd size.
pub const RAMDISK_SIZE: usize = 0x21c;
/// `hdr.cmd_line_ptr` (u32): low half of the command line address.
pub const CMD_LINE_PTR: usize = 0x228;
/// `hdr.kernel_alignment` (u32); read from a bzImage by loaders, not written here.
pub const KERNEL_ALIGNMENT: usize = 0x230;
/// `hdr.cmdline_size` (u32); read from a bzImage by loaders, not written here.
pub const CMDLINE_SIZE: usize = 0x238;
/// `hdr.hardware_subarch` (u32).
pub const HARDWARE_SUBARCH: usize = 0x23c;
/// `hdr.hardware_subarch_data` (u64).
pub const HARDWARE_SUBARCH_DATA: usize = 0x240;
/// `hdr.setup_data` (u64): physical address of a `setup_data` chain; 0 here.
pub const SETUP_DATA: usize = 0x250;
/// `e820_table`: [`E820_MAX`] entries of [`E820_ENTRY_SIZE`] bytes.
pub const E820_TABLE: usize = 0x2d0;

/// e820 memory types Linux understands.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum E820Type {
    /// Usable RAM.
    Ram = 1,
    /// Reserved; never touched.
    Reserved = 2,
    /// ACPI tables, reclaimable after parsing.
    Acpi = 3,
    /// ACPI non-volatile storage.
    Nvs = 4,
    /// Defective RAM.
    Unusable = 5,
    /// Persistent memory.
    Pmem = 7,
}

/// One e820 entry, `[addr, addr + size)` of type `kind` (an [`E820Type`] value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    /// First byte.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// The e820 type ([`E820Type`] as `u32`).
    pub kind: u32,
}

impl E820Entry {
    /// An entry of a known type.
    pub const fn new(addr: u64, size: u64, kind: E820Type) -> Self {
        Self { addr, size, kind: kind as u32 }
    }
}

/// What Linux is told in its zero page.
#[derive(Clone, Copy, Debug)]
pub struct LinuxBoot<'a> {
    /// Physical address of the NUL-terminated command line (0 for none).
    pub cmdline_phys: u64,
    /// Its length without the NUL; must be below [`COMMAND_LINE_SIZE`].
    pub cmdline_len: u32,
    /// The initramfs: physical address and size.
    pub initrd: Option<(u64, u64)>,
    /// Physical address of the ACPI RSDP.
    pub rsdp: Option<u64>,
    /// `hardware_subarch` ([`X86_SUBARCH_PC`] for a normal PC).
    pub hardware_subarch: u32,
    /// `hardware_subarch_data`.
    pub subarch_data: u64,
    /// The memory map, at most [`E820_MAX`] entries.
    pub e820: &'a [E820Entry],
}

/// Why a zero page or e820 map could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootParamsError {
    /// The e820 map needs this many entries, more than [`E820_MAX`].
    TooManyE820Entries(usize),
    /// The command line is this long, not below [`COMMAND_LINE_SIZE`].
    CmdlineTooLong(u32),
    /// The command line `[phys, phys + len]` (with its NUL) runs past the 64-bit address space.
    CmdlineOutOfRange(u64),
    /// The initrd `[phys, phys + size)` runs past the 64-bit address space.
    InitrdOutOfRange {
        /// Its address.
        phys: u64,
        /// Its size.
        size: u64,
    },
    /// This e820 entry runs past the 64-bit address space.
    E820EntryOutOfRange(usize),
}

impl fmt::Display for BootParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooManyE820Entries(n) => write!(
                f,
                "Linux's memory map would need {n:#x} e820 entries, more than the {E820_MAX:#x} the zero page holds"
            ),
            Self::CmdlineTooLong(n) => write!(
                f,
                "the Linux command line is {n:#x} bytes long; Linux takes at most {:#x}",
                COMMAND_LINE_SIZE - 1
            ),
            Self::CmdlineOutOfRange(p) => {
                write!(f, "the Linux command line at {p:#x} runs past the end of the 64-bit address space")
            }
            Self::InitrdOutOfRange { phys, size } => {
                write!(f, "the initramfs at {phys:#x} of {size:#x} bytes runs past the end of the 64-bit address space")
            }
            Self::E820EntryOutOfRange(i) => {
                write!(f, "e820 entry {i:#x} runs past the end of the 64-bit address space")
            }
        }
    }
}

/// Whether a command line of `len` bytes (without its NUL) fits Linux's limit: the one check
/// behind both [`linux_cmdline`] and [`build`].
pub const fn cmdline_fits(len: usize) -> bool {
    len <= MAX_CMDLINE_LEN
}

/// `text` as a command line Linux takes, or [`BootParamsError::CmdlineTooLong`].
pub fn linux_cmdline(text: &str) -> Result<Cmdline, BootParamsError> {
    let too_long = BootParamsError::CmdlineTooLong(u32::try_from(text.len()).unwrap_or(u32::MAX));
    if !cmdline_fits(text.len()) {
        return Err(too_long);
    }
    let mut c = Cmdline::new();
    c.push_str(text).map_err(|_| too_long)?;
    Ok(c)
}

fn put(out: &mut [u8], off: usize, bytes: &[u8]) {
    // Every offset used here is a constant well inside the page (checked by the tests), so the
    // lookup cannot fail; `if let` keeps it panic-free regardless.
    if let Some(dst) = off.checked_add(bytes.len()).and_then(|end| out.get_mut(off..end)) {
        dst.copy_from_slice(bytes);
    }
}

fn lo(x: u64) -> [u8; 4] {
    (x as u32).to_le_bytes()
}

fn hi(x: u64) -> [u8; 4] {
    ((x >> 32) as u32).to_le_bytes()
}

/// Write Linux's zero page for `p` into `out`; see the module documentation. On error `out` is
/// left zeroed.
pub fn build(out: &mut [u8; BOOT_PARAMS_SIZE], p: &LinuxBoot<'_>) -> Result<(), BootParamsError> {
    out.fill(0);
    if p.e820.len() > E820_MAX {
        return Err(BootParamsError::TooManyE820Entries(p.e820.len()));
    }
    if let Some(i) = p.e820.iter().position(|e| e.addr.checked_add(e.size).is_none()) {
        return Err(BootParamsError::E820EntryOutOfRange(i));
    }
    if !usize::try_from(p.cmdline_len).is_ok_and(cmdline_fits) {
        return Err(BootParamsError::CmdlineTooLong(p.cmdline_len));
    }
    if p.cmdline_phys.checked_add(u64::from(p.cmdline_len)).is_none() {
        return Err(BootParamsError::CmdlineOutOfRange(p.cmdline_phys));
    }
    let (initrd, initrd_size) = p.initrd.unwrap_or((0, 0));
    if initrd.checked_add(initrd_size).is_none() {
        return Err(BootParamsError::InitrdOutOfRange { phys: initrd, size: initrd_size });
    }

    /* 0x070 */
    put(out, ACPI_RSDP_ADDR, &p.rsdp.unwrap_or(0).to_le_bytes());
    /* 0x0c0 */
    put(out, EXT_RAMDISK_IMAGE, &hi(initrd));
    /* 0x0c4 */
    put(out, EXT_RAMDISK_SIZE, &hi(initrd_size));
    /* 0x0c8 */
    put(out, EXT_CMD_LINE_PTR, &hi(p.cmdline_phys));
    /* 0x1e8 */
    put(out, E820_ENTRIES, &[p.e820.len() as u8]);
    /* 0x1fe */
    put(out, BOOT_FLAG, &BOOT_FLAG_MAGIC.to_le_bytes());
    /* 0x202 */
    put(out, HEADER, &HEADER_MAGIC);
    /* 0x206 */
    put(out, VERSION, &BOOT_PROTOCOL_VERSION.to_le_bytes());
    /* 0x210 */
    put(out, TYPE_OF_LOADER, &[LOADER_TYPE_UNDEFINED]);
    /* 0x211 */
    put(out, LOADFLAGS, &[LOADED_HIGH]);
    /* 0x218 */
    put(out, RAMDISK_IMAGE, &lo(initrd));
    /* 0x21c */
    put(out, RAMDISK_SIZE, &lo(initrd_size));
    /* 0x228 */
    put(out, CMD_LINE_PTR, &lo(p.cmdline_phys));
    /* 0x23c */
    put(out, HARDWARE_SUBARCH, &p.hardware_subarch.to_le_bytes());
    /* 0x240 */
    put(out, HARDWARE_SUBARCH_DATA, &p.subarch_data.to_le_bytes());
    /* 0x2d0 */
    for (i, e) in p.e820.iter().enumerate() {
        let at = E820_TABLE + i * E820_ENTRY_SIZE;
        put(out, at, &e.addr.to_le_bytes());
        put(out, at + 8, &e.size.to_le_bytes());
        put(out, at + 16, &e.kind.to_le_bytes());
    }
    Ok(())
}

/// The e820 type Linux is told for a co-kernel region kind, `withheld` or not.
///
/// Withheld memory that Linux could otherwise take (usable RAM, reclaimable ACPI) becomes
/// reserved; NVS, reserved and defective memory keep their types.
fn e820_type(kind: RegionKind, withheld: bool) -> E820Type {
    match kind {
        RegionKind::Usable | RegionKind::AcpiReclaimable if withheld => E820Type::Reserved,
        RegionKind::Usable => E820Type::Ram,
        RegionKind::AcpiReclaimable => E820Type::Acpi,
        RegionKind::AcpiNvs => E820Type::Nvs,
        RegionKind::Reserved => E820Type::Reserved,
        RegionKind::Defective => E820Type::Unusable,
    }
}

/// Build Linux's e820 map from the co-kernel's memory map, withholding the co-kernel's memory.
///
/// Every byte covered by `map` is covered by exactly one entry of the corresponding type
/// (Usable→Ram, AcpiReclaimable→Acpi, AcpiNvs→Nvs, Reserved→Reserved, Defective→Unusable);
/// where `map` overlaps itself (it need not be normalized) the more restrictive kind wins. Every
/// byte inside a `withhold` range that would be Ram or Acpi is Reserved instead. Holes stay
/// holes (also where withheld), and empty or inverted `withhold` ranges are ignored. The result
/// in `out` (cleared first) is sorted, disjoint, and touching entries of equal type are merged.
/// Fails with the number of entries needed when that is more than [`E820_MAX`] (then `out`
/// holds the first [`E820_MAX`]). O(n²) in the number of regions plus withheld ranges.
pub fn e820_from(
    map: &MemoryMap,
    withhold: &[Range<u64>],
    out: &mut heapless::Vec<E820Entry, E820_MAX>,
) -> Result<(), BootParamsError> {
    out.clear();
    let regions = map.regions();
    let withhold = || withhold.iter().filter(|w| w.start < w.end);
    let next_boundary = |after: Option<u64>| {
        regions
            .iter()
            .flat_map(|r| [r.start, r.end])
            .chain(withhold().flat_map(|w| [w.start, w.end]))
            .filter(|&p| after.is_none_or(|a| p > a))
            .min()
    };
    let mut needed = 0usize;
    let mut pending: Option<E820Entry> = None;
    let mut emit = |e: E820Entry| {
        needed += 1;
        // Past E820_MAX entries only the count matters (see the error).
        let _ = out.push(e);
    };
    let Some(mut lo) = next_boundary(None) else {
        return Ok(());
    };
    while let Some(hi) = next_boundary(Some(lo)) {
        let kind = regions.iter().filter(|r| r.start <= lo && hi <= r.end).map(|r| r.kind).max();
        if let Some(kind) = kind {
            let withheld = withhold().any(|w| w.start <= lo && hi <= w.end);
            let ty = e820_type(kind, withheld) as u32;
            match pending.as_mut() {
                Some(p) if p.kind == ty && p.addr + p.size == lo => p.size += hi - lo,
                _ => {
                    if let Some(p) = pending.replace(E820Entry { addr: lo, size: hi - lo, kind: ty }) {
                        emit(p);
                    }
                }
            }
        }
        lo = hi;
    }
    if let Some(p) = pending {
        emit(p);
    }
    if needed > E820_MAX {
        return Err(BootParamsError::TooManyE820Entries(needed));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// `struct setup_header` transcribed from `arch/x86/include/uapi/asm/bootparam.h`.
    #[allow(dead_code, reason = "a layout transcribed whole from Linux: only its offsets are read")]
    #[repr(C, packed)]
    struct SetupHeader {
        setup_sects: u8,
        root_flags: u16,
        syssize: u32,
        ram_size: u16,
        vid_mode: u16,
        root_dev: u16,
        boot_flag: u16,
        jump: u16,
        header: u32,
        version: u16,
        realmode_swtch: u32,
        start_sys_seg: u16,
        kernel_version: u16,
        type_of_loader: u8,
        loadflags: u8,
        setup_move_size: u16,
        code32_start: u32,
        ramdisk_image: u32,
        ramdisk_size: u32,
        bootsect_kludge: u32,
        heap_end_ptr: u16,
        ext_loader_ver: u8,
        ext_loader_type: u8,
        cmd_line_ptr: u32,
        initrd_addr_max: u32,
        kernel_alignment: u32,
        relocatable_kernel: u8,
        min_alignment: u8,
        xloadflags: u16,
        cmdline_size: u32,
        hardware_subarch: u32,
        hardware_subarch_data: u64,
        payload_offset: u32,
        payload_length: u32,
        setup_data: u64,
        pref_address: u64,
        init_size: u32,
        handover_offset: u32,
        kernel_info_offset: u32,
    }

    #[test]
    fn offsets_match_the_documentation() {
        // The documented values (boot.rst, bootparam.h comments).
        let documented = [
            (ACPI_RSDP_ADDR, 0x070),
            (EXT_RAMDISK_IMAGE, 0x0c0),
            (EXT_RAMDISK_SIZE, 0x0c4),
            (EXT_CMD_LINE_PTR, 0x0c8),
            (E820_ENTRIES, 0x1e8),
            (SENTINEL, 0x1ef),
            (SETUP_HEADER, 0x1f1),
            (SETUP_SECTS, 0x1f1),
            (BOOT_FLAG, 0x1fe),
            (HEADER, 0x202),
            (VERSION, 0x206),
            (TYPE_OF_LOADER, 0x210),
            (LOADFLAGS, 0x211),
            (RAMDISK_IMAGE, 0x218),
            (RAMDISK_SIZE, 0x21c),
            (CMD_LINE_PTR, 0x228),
            (KERNEL_ALIGNMENT, 0x230),
            (CMDLINE_SIZE, 0x238),
            (HARDWARE_SUBARCH, 0x23c),
            (HARDWARE_SUBARCH_DATA, 0x240),
            (SETUP_DATA, 0x250),
            (E820_TABLE, 0x2d0),
        ];
        for (ours, doc) in documented {
            assert_eq!(ours, doc, "offset {ours:#x} should be {doc:#x}");
        }
        // The same offsets from the transcribed C structure.
        let h = |o: usize| SETUP_HEADER + o;
        assert_eq!(h(offset_of!(SetupHeader, setup_sects)), SETUP_SECTS);
        assert_eq!(h(offset_of!(SetupHeader, boot_flag)), BOOT_FLAG);
        assert_eq!(h(offset_of!(SetupHeader, header)), HEADER);
        assert_eq!(h(offset_of!(SetupHeader, version)), VERSION);
        assert_eq!(h(offset_of!(SetupHeader, type_of_loader)), TYPE_OF_LOADER);
        assert_eq!(h(offset_of!(SetupHeader, loadflags)), LOADFLAGS);
        assert_eq!(h(offset_of!(SetupHeader, ramdisk_image)), RAMDISK_IMAGE);
        assert_eq!(h(offset_of!(SetupHeader, ramdisk_size)), RAMDISK_SIZE);
        assert_eq!(h(offset_of!(SetupHeader, cmd_line_ptr)), CMD_LINE_PTR);
        assert_eq!(h(offset_of!(SetupHeader, kernel_alignment)), KERNEL_ALIGNMENT);
        assert_eq!(h(offset_of!(SetupHeader, cmdline_size)), CMDLINE_SIZE);
        assert_eq!(h(offset_of!(SetupHeader, hardware_subarch)), HARDWARE_SUBARCH);
        assert_eq!(h(offset_of!(SetupHeader, hardware_subarch_data)), HARDWARE_SUBARCH_DATA);
        assert_eq!(h(offset_of!(SetupHeader, setup_data)), SETUP_DATA);
        // The header ends before the EDD MBR signature buffer at 0x290.
        assert!(SETUP_HEADER + size_of::<SetupHeader>() <= 0x290);
        // The e820 table ends at the documented 0xcd0 padding.
        assert_eq!(E820_TABLE + E820_MAX * E820_ENTRY_SIZE, 0xcd0);
    }

    fn rd(b: &[u8], off: usize, n: usize) -> u64 {
        let mut x = [0u8; 8];
        x[..n].copy_from_slice(&b[off..off + n]);
        u64::from_le_bytes(x)
    }

    #[test]
    fn builds_a_zero_page() {
        let e820 = [
            E820Entry::new(0, 0x9_fc00, E820Type::Ram),
            E820Entry::new(0x10_0000, 0x1234_5678_0000, E820Type::Ram),
            E820Entry::new(0xfee0_0000, 0x1000, E820Type::Reserved),
        ];
        let mut page = [0xeeu8; BOOT_PARAMS_SIZE];
        let p = LinuxBoot {
            cmdline_phys: 0x1_2345_6000,
            cmdline_len: 42,
            initrd: Some((0x3_8000_0000, 0x1_0000_1000)),
            rsdp: Some(0xf_5a10),
            hardware_subarch: X86_SUBARCH_PC,
            subarch_data: 0xdead_beef_0000_0001,
            e820: &e820,
        };
        build(&mut page, &p).unwrap();
        assert_eq!(rd(&page, BOOT_FLAG, 2), 0xaa55);
        assert_eq!(&page[HEADER..HEADER + 4], b"HdrS");
        assert_eq!(rd(&page, VERSION, 2), 0x020f);
        assert_eq!(page[TYPE_OF_LOADER], 0xff);
        assert_eq!(page[LOADFLAGS], 0x01);
        assert_eq!(page[SENTINEL], 0);
        assert_eq!(rd(&page, CMD_LINE_PTR, 4), 0x2345_6000);
        assert_eq!(rd(&page, EXT_CMD_LINE_PTR, 4), 0x1);
        assert_eq!(rd(&page, RAMDISK_IMAGE, 4), 0x8000_0000);
        assert_eq!(rd(&page, EXT_RAMDISK_IMAGE, 4), 0x3);
        assert_eq!(rd(&page, RAMDISK_SIZE, 4), 0x1000);
        assert_eq!(rd(&page, EXT_RAMDISK_SIZE, 4), 0x1);
        assert_eq!(rd(&page, ACPI_RSDP_ADDR, 8), 0xf_5a10);
        assert_eq!(rd(&page, HARDWARE_SUBARCH, 4), 0);
        assert_eq!(rd(&page, HARDWARE_SUBARCH_DATA, 8), 0xdead_beef_0000_0001);
        assert_eq!(rd(&page, SETUP_DATA, 8), 0);
        assert_eq!(page[E820_ENTRIES], 3);
        for (i, e) in e820.iter().enumerate() {
            let at = E820_TABLE + i * 20;
            assert_eq!(rd(&page, at, 8), e.addr);
            assert_eq!(rd(&page, at + 8, 8), e.size);
            assert_eq!(rd(&page, at + 16, 4), u64::from(e.kind));
        }
        // Everything else is zero.
        let mut written = [false; BOOT_PARAMS_SIZE];
        for (off, n) in [
            (BOOT_FLAG, 2),
            (HEADER, 4),
            (VERSION, 2),
            (TYPE_OF_LOADER, 1),
            (LOADFLAGS, 1),
            (CMD_LINE_PTR, 4),
            (EXT_CMD_LINE_PTR, 4),
            (RAMDISK_IMAGE, 4),
            (EXT_RAMDISK_IMAGE, 4),
            (RAMDISK_SIZE, 4),
            (EXT_RAMDISK_SIZE, 4),
            (ACPI_RSDP_ADDR, 8),
            (HARDWARE_SUBARCH_DATA, 8),
            (E820_ENTRIES, 1),
            (E820_TABLE, 3 * 20),
        ] {
            written[off..off + n].fill(true);
        }
        for (i, &b) in page.iter().enumerate() {
            if !written[i] {
                assert_eq!(b, 0, "byte {i:#x}");
            }
        }
    }

    #[test]
    fn build_errors() {
        let mut page = [0u8; BOOT_PARAMS_SIZE];
        let base = LinuxBoot {
            cmdline_phys: 0x1000,
            cmdline_len: 2047,
            initrd: None,
            rsdp: None,
            hardware_subarch: 0,
            subarch_data: 0,
            e820: &[],
        };
        assert_eq!(build(&mut page, &base), Ok(()));
        let p = LinuxBoot { cmdline_len: 2048, ..base };
        assert_eq!(build(&mut page, &p), Err(BootParamsError::CmdlineTooLong(2048)));
        assert!(page.iter().all(|&b| b == 0));
        let p = LinuxBoot { cmdline_phys: u64::MAX, ..base };
        assert_eq!(build(&mut page, &p), Err(BootParamsError::CmdlineOutOfRange(u64::MAX)));
        let p = LinuxBoot { initrd: Some((u64::MAX - 1, 2)), ..base };
        assert!(matches!(build(&mut page, &p), Err(BootParamsError::InitrdOutOfRange { .. })));
        let many = [E820Entry::new(0, 1, E820Type::Ram); E820_MAX + 1];
        let p = LinuxBoot { e820: &many, ..base };
        assert_eq!(build(&mut page, &p), Err(BootParamsError::TooManyE820Entries(129)));
        let p = LinuxBoot { e820: &many[..E820_MAX], ..base };
        assert_eq!(build(&mut page, &p), Ok(()));
        assert_eq!(page[E820_ENTRIES], 128);
        let bad = [E820Entry::new(u64::MAX, 2, E820Type::Ram)];
        let p = LinuxBoot { e820: &bad, ..base };
        assert_eq!(build(&mut page, &p), Err(BootParamsError::E820EntryOutOfRange(0)));
        let s = std::format!("{}", BootParamsError::TooManyE820Entries(200));
        assert!(s.contains("0xc8") && s.contains("0x80"), "{s}");
    }

    /// A fuzzing regression: a 2048-byte command line, one more than `build` takes. What
    /// [`linux_cmdline`] accepts (up to a full [`Cmdline`]) `build` accepts, and what it refuses
    /// `build` refuses with the same error, so a plan never fails later on its command line.
    #[test]
    fn the_loader_and_build_agree_on_the_command_line_length() {
        let mut page = [0u8; BOOT_PARAMS_SIZE];
        let boot = |len: usize| LinuxBoot {
            cmdline_phys: 0x1000,
            cmdline_len: len as u32,
            initrd: None,
            rsdp: None,
            hardware_subarch: 0,
            subarch_data: 0,
            e820: &[],
        };
        let full = "x".repeat(Cmdline::new().capacity());
        let kept = linux_cmdline(&full).unwrap();
        assert_eq!(build(&mut page, &boot(kept.len())), Ok(()));
        let over = "x".repeat(kept.len() + 1);
        assert_eq!(linux_cmdline(&over), Err(BootParamsError::CmdlineTooLong(2048)));
        assert_eq!(build(&mut page, &boot(over.len())), Err(BootParamsError::CmdlineTooLong(2048)));
        assert_eq!(linux_cmdline("").unwrap().as_str(), "");
    }

    fn e(addr: u64, end: u64, kind: E820Type) -> E820Entry {
        E820Entry::new(addr, end - addr, kind)
    }

    #[test]
    fn e820_withholds_and_merges() {
        let mut m = MemoryMap::new();
        m.add(0, 0x9_f000, RegionKind::Usable).unwrap();
        m.add(0x9_f000, 0x1000, RegionKind::Reserved).unwrap();
        m.add(0x10_0000, 0x7ff0_0000, RegionKind::Usable).unwrap();
        m.add(0x7ff0_0000, 0x10_0000, RegionKind::AcpiReclaimable).unwrap();
        m.add(0x8000_0000, 0x1000, RegionKind::AcpiNvs).unwrap();
        m.add(0xfee0_0000, 0x1000, RegionKind::Reserved).unwrap();
        m.add(0x1_0000_0000, 0x1000, RegionKind::Defective).unwrap();
        let mut out = heapless::Vec::new();
        let withhold = [
            0x9_e000..0x9_f000,                         // touches the reserved page: merges with it
            0x10_0000..0x20_0000,                       // co-kernel image
            0x30_0000..0x30_0000,                       // empty: ignored
            Range { start: 0x50_0000, end: 0x40_0000 }, // inverted: ignored
            0xa_0000..0xb_0000,                         // a hole: stays a hole
        ];
        e820_from(&m, &withhold, &mut out).unwrap();
        use E820Type::*;
        assert_eq!(
            &out[..],
            &[
                e(0, 0x9_e000, Ram),
                e(0x9_e000, 0xa_0000, Reserved),
                e(0x10_0000, 0x20_0000, Reserved),
                e(0x20_0000, 0x7ff0_0000, Ram),
                e(0x7ff0_0000, 0x8000_0000, Acpi),
                e(0x8000_0000, 0x8000_1000, Nvs),
                e(0xfee0_0000, 0xfee0_1000, Reserved),
                e(0x1_0000_0000, 0x1_0000_1000, Unusable),
            ][..]
        );
        // Withholding reclaimable ACPI memory reserves it.
        let acpi_withheld = 0x7ff8_0000..0x8000_1000;
        e820_from(&m, core::slice::from_ref(&acpi_withheld), &mut out).unwrap();
        assert!(out.contains(&e(0x7ff0_0000, 0x7ff8_0000, Acpi)));
        assert!(out.contains(&e(0x7ff8_0000, 0x8000_0000, Reserved)));
        assert!(out.contains(&e(0x8000_0000, 0x8000_1000, Nvs)));
        // An empty map gives an empty e820.
        e820_from(&MemoryMap::new(), &withhold, &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn e820_too_many() {
        let mut m = MemoryMap::new();
        m.add(0, 0x1000_0000, RegionKind::Usable).unwrap();
        let withhold: Vec<_> = (0..100u64).map(|i| 0x10_0000 + i * 0x2000..0x10_1000 + i * 0x2000).collect();
        let mut out = heapless::Vec::new();
        assert_eq!(e820_from(&m, &withhold, &mut out), Err(BootParamsError::TooManyE820Entries(201)));
        assert_eq!(out.len(), E820_MAX);
        e820_from(&m, &withhold[..63], &mut out).unwrap();
        assert_eq!(out.len(), 127);
    }

    fn kind() -> impl Strategy<Value = RegionKind> {
        prop_oneof![
            Just(RegionKind::Usable),
            Just(RegionKind::AcpiReclaimable),
            Just(RegionKind::AcpiNvs),
            Just(RegionKind::Reserved),
            Just(RegionKind::Defective)
        ]
    }

    proptest! {
        #[test]
        fn e820_properties(
            regions in proptest::collection::vec((0u64..64, 1u64..16, kind()), 0..30),
            withhold in proptest::collection::vec((0u64..80, 0u64..10), 0..10),
            normalize in any::<bool>(),
        ) {
            let mut m = MemoryMap::new();
            for &(s, l, k) in &regions {
                m.add(s * 0x1000, l * 0x1000, k).unwrap();
            }
            if normalize {
                m.normalize();
            }
            let withhold: Vec<Range<u64>> =
                withhold.iter().map(|&(s, l)| s * 0x1000..(s + l) * 0x1000).collect();
            let mut out = heapless::Vec::new();
            e820_from(&m, &withhold, &mut out).unwrap();
            for w in out.windows(2) {
                prop_assert!(w[0].addr + w[0].size <= w[1].addr, "sorted and disjoint");
                prop_assert!(
                    !(w[0].addr + w[0].size == w[1].addr && w[0].kind == w[1].kind),
                    "touching equal entries are merged"
                );
            }
            for x in &out {
                prop_assert!(x.size > 0);
                if x.kind == E820Type::Ram as u32 {
                    for w in withhold.iter().filter(|w| !w.is_empty()) {
                        prop_assert!(
                            x.addr + x.size <= w.start || w.end <= x.addr,
                            "Ram {:x?} intersects withheld {:x?}", x, w
                        );
                    }
                }
            }
            for page in 0..90u64 {
                let a = page * 0x1000;
                let kind = m.regions().iter().filter(|r| r.start <= a && a < r.end).map(|r| r.kind).max();
                let withheld = withhold.iter().any(|w| w.contains(&a));
                let got = out.iter().find(|x| x.addr <= a && a < x.addr + x.size).map(|x| x.kind);
                prop_assert_eq!(got, kind.map(|k| e820_type(k, withheld) as u32));
                if kind == Some(RegionKind::Usable) && !withheld {
                    prop_assert_eq!(got, Some(E820Type::Ram as u32));
                }
            }
        }
    }
}
