//! ACPI discovery through the `acpi` crate: the MADT (CPUs, IO-APICs, interrupt source overrides,
//! LAPIC address), the HPET and the FADT's SCI.

use core::ptr::NonNull;

use acpi::fadt::Fadt;
use acpi::madt::{Madt, MadtEntry};
use acpi::rsdp::Rsdp;
use acpi::{AcpiHandler, AcpiTables, HpetInfo, PhysicalMapping};

use crate::bootinfo::Firmware;

/// Maps firmware tables through the direct map or a window (never unmapped: tables stay valid).
#[derive(Clone, Copy)]
pub struct Handler;

impl AcpiHandler for Handler {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        let virt = super::mm::map_phys(phys as u64, size as u64);
        // SAFETY: `virt` maps `size` bytes at `phys` for the life of the kernel; the crate's
        // contract is that `phys` holds a `T`.
        unsafe { PhysicalMapping::new(phys, NonNull::new_unchecked(virt as *mut T), size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// Where the firmware's ACPI tables are (physical addresses).
#[derive(Clone, Copy, Debug)]
pub struct Tables {
    /// The RSDP (the boot loader's, or the one the BIOS search found).
    pub rsdp_phys: u64,
    /// The root table: the XSDT (`root_is_xsdt`) or the RSDT.
    pub root_phys: u64,
    /// Whether the root table is the XSDT (RSDP revision 2 or later with an XSDT address).
    pub root_is_xsdt: bool,
    /// The MADT.
    pub madt_phys: u64,
    /// The RSDP's OEM ID.
    pub oem_id: [u8; 6],
}

/// The bytes of the firmware table at `phys` (its header's length, at most `max`), mapped for
/// the co-kernel's life; `None` when the length is below a header's.
pub fn table_bytes(phys: u64, max: usize) -> Option<&'static [u8]> {
    let head = super::mm::map_phys(phys, 36);
    // SAFETY: `head` maps 36 bytes at `phys` (never unmapped).
    let len = unsafe { core::ptr::read_unaligned((head + 4) as *const u32) } as usize;
    if !(36..=max).contains(&len) {
        return None;
    }
    let virt = super::mm::map_phys(phys, len as u64);
    // SAFETY: `virt` maps `len` bytes at `phys`, read-only use, for the kernel's life.
    Some(unsafe { core::slice::from_raw_parts(virt as *const u8, len) })
}

/// One processor the MADT lists (a Local APIC or Local x2APIC entry).
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    /// Its local APIC ID (the destination of an IPI to it).
    pub apic_id: u32,
    /// The ACPI processor UID that names it in the DSDT.
    pub acpi_uid: u32,
    /// Flags bit 0: the CPU is usable now.
    pub enabled: bool,
    /// Flags bit 1: a disabled CPU that the firmware says can be brought online.
    pub online_capable: bool,
}

/// One IO-APIC the MADT lists.
#[derive(Clone, Copy, Debug)]
pub struct IoApicInfo {
    /// Its IO-APIC ID.
    pub id: u8,
    /// Physical address of its register window (IOREGSEL; IOWIN at +0x10).
    pub phys: u64,
    /// The first global system interrupt its pin 0 takes.
    pub gsi_base: u32,
}

/// One interrupt source override from the MADT: ISA IRQ `isa_irq` arrives on `gsi`.
#[derive(Clone, Copy, Debug)]
pub struct Override {
    /// The ISA IRQ (0..15) that is moved.
    pub isa_irq: u8,
    /// The global system interrupt it arrives on.
    pub gsi: u32,
    /// MPS INTI flags: polarity (bits 0–1) and trigger mode (bits 2–3), `guest::lines` decodes them.
    pub flags: u16,
}

/// What ACPI says about the machine: interrupt controllers, CPUs and the HPET.
#[derive(Clone, Debug)]
pub struct Platform {
    /// Physical address of the RSDP the boot loader passed (0: it was found by the BIOS search).
    pub rsdp: u64,
    /// Where the tables are, for the copy Linux gets (`guest::acpi_view`).
    pub tables: Tables,
    /// ACPI revision from the RSDP (0: ACPI 1.0, 2 and up: XSDT-based).
    pub revision: u8,
    /// Physical address of the local APIC's registers (the MADT's, or its 64-bit override).
    pub lapic_phys: u64,
    /// Every processor listed, the boot CPU included, in MADT order (at most 64 kept).
    pub cpus: heapless::Vec<Cpu, 64>,
    /// Every IO-APIC listed (at most 8 kept).
    pub ioapics: heapless::Vec<IoApicInfo, 8>,
    /// Every interrupt source override listed (at most 16 kept).
    pub overrides: heapless::Vec<Override, 16>,
    /// The MADT's PCAT_COMPAT flag: a pair of 8259 PICs is present (and must be masked).
    pub has_8259: bool,
    /// Physical address of the HPET's registers, when ACPI lists one.
    pub hpet_phys: Option<u64>,
    /// The ISA IRQ of ACPI's system control interrupt (the FADT's), which Linux's ACPI needs.
    pub sci_irq: Option<u16>,
}

/// Why ACPI gave no usable platform description.
#[derive(Clone, Copy, Debug)]
pub enum Error {
    /// No RSDP from the boot loader, and none found in the BIOS areas.
    NoRsdp,
    /// The RSDP or RSDT/XSDT is malformed.
    BadTables,
    /// No MADT: no way to find the interrupt controllers.
    NoMadt,
}

/// Reads the MADT (and the HPET table) from the RSDP the boot loader passed or, on BIOS
/// firmware, one found in the BIOS areas.
pub fn discover(rsdp: Option<u64>, firmware: Firmware) -> Result<Platform, Error> {
    // SAFETY: the boot loader's RSDP pointer is taken as given (the crate validates the
    // signature and checksum); the BIOS search is only done on non-UEFI firmware.
    let rsdp_map = unsafe {
        match rsdp {
            Some(p) => {
                let m = Handler.map_physical_region::<Rsdp>(p as usize, size_of::<Rsdp>());
                m.validate().map_err(|_| Error::BadTables)?;
                m
            }
            None if firmware != Firmware::Uefi => Rsdp::search_for_on_bios(Handler).map_err(|_| Error::NoRsdp)?,
            None => return Err(Error::NoRsdp),
        }
    };
    let r = rsdp_map.get();
    let mut oem_id = [b' '; 6];
    for (d, s) in oem_id.iter_mut().zip(r.oem_id().bytes()) {
        *d = s;
    }
    let revision = r.revision();
    // The crate panics on the extended fields of an ACPI 1.0 RSDP.
    let (rsdt, xsdt) = (r.rsdt_address(), if revision >= 2 { r.xsdt_address() } else { 0 });
    let rsdp_phys = rsdp_map.physical_start() as u64;
    // SAFETY: validated just above.
    let tables = unsafe { AcpiTables::from_validated_rsdp(Handler, rsdp_map) }.map_err(|_| Error::BadTables)?;
    let madt = tables.find_table::<Madt>().map_err(|_| Error::NoMadt)?;
    let m = madt.get();
    let mut p = Platform {
        rsdp: rsdp.unwrap_or(0),
        tables: Tables {
            rsdp_phys,
            root_phys: if revision >= 2 && xsdt != 0 { xsdt } else { u64::from(rsdt) },
            root_is_xsdt: revision >= 2 && xsdt != 0,
            madt_phys: madt.physical_start() as u64,
            oem_id,
        },
        revision: tables.revision(),
        lapic_phys: u64::from(m.local_apic_address),
        cpus: heapless::Vec::new(),
        ioapics: heapless::Vec::new(),
        overrides: heapless::Vec::new(),
        has_8259: m.supports_8259(),
        hpet_phys: HpetInfo::new(&tables).ok().map(|h| h.base_address as u64),
        sci_irq: tables.find_table::<Fadt>().ok().map(|f| f.get().sci_interrupt),
    };
    for e in m.entries() {
        match e {
            MadtEntry::LocalApic(a) => {
                let flags = a.flags;
                let _ = p.cpus.push(Cpu {
                    apic_id: u32::from(a.apic_id),
                    acpi_uid: u32::from(a.processor_id),
                    enabled: flags & 1 != 0,
                    online_capable: flags & 2 != 0,
                });
            }
            MadtEntry::LocalX2Apic(a) => {
                let (id, uid, flags) = (a.x2apic_id, a.processor_uid, a.flags);
                if !p.cpus.iter().any(|c| c.apic_id == id) {
                    let _ = p.cpus.push(Cpu {
                        apic_id: id,
                        acpi_uid: uid,
                        enabled: flags & 1 != 0,
                        online_capable: flags & 2 != 0,
                    });
                }
            }
            MadtEntry::IoApic(io) => {
                let _ = p.ioapics.push(IoApicInfo {
                    id: io.io_apic_id,
                    phys: u64::from(io.io_apic_address),
                    gsi_base: io.global_system_interrupt_base,
                });
            }
            MadtEntry::InterruptSourceOverride(o) => {
                let _ = p.overrides.push(Override { isa_irq: o.irq, gsi: o.global_system_interrupt, flags: o.flags });
            }
            MadtEntry::LocalApicAddressOverride(o) => p.lapic_phys = o.local_apic_address,
            _ => {}
        }
    }
    Ok(p)
}
