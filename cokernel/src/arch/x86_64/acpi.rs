//! ACPI discovery through the `acpi` crate: the MADT (CPUs, IO-APICs, interrupt source overrides,
//! LAPIC address) and the HPET.

use core::ptr::NonNull;

use acpi::madt::{Madt, MadtEntry};
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

#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    pub apic_id: u32,
    pub acpi_uid: u32,
    pub enabled: bool,
    pub online_capable: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct IoApicInfo {
    pub id: u8,
    pub phys: u64,
    pub gsi_base: u32,
}

#[derive(Clone, Copy, Debug)]
pub struct Override {
    pub isa_irq: u8,
    pub gsi: u32,
    pub flags: u16,
}

#[derive(Clone, Debug)]
pub struct Platform {
    pub rsdp: u64,
    pub revision: u8,
    pub lapic_phys: u64,
    pub cpus: heapless::Vec<Cpu, 64>,
    pub ioapics: heapless::Vec<IoApicInfo, 8>,
    pub overrides: heapless::Vec<Override, 16>,
    pub has_8259: bool,
    pub hpet_phys: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
pub enum Error {
    /// No RSDP from the boot loader, and none found in the BIOS areas.
    NoRsdp,
    /// The RSDP or RSDT/XSDT is malformed.
    BadTables,
    /// No MADT: no way to find the interrupt controllers.
    NoMadt,
}

pub fn discover(rsdp: Option<u64>, firmware: Firmware) -> Result<Platform, Error> {
    // SAFETY: the boot loader's RSDP pointer is taken as given (the crate validates the
    // signature and checksum); the BIOS search is only done on non-UEFI firmware.
    let tables = unsafe {
        match rsdp {
            Some(p) => AcpiTables::from_rsdp(Handler, p as usize).map_err(|_| Error::BadTables)?,
            None if firmware != Firmware::Uefi => {
                AcpiTables::search_for_rsdp_bios(Handler).map_err(|_| Error::NoRsdp)?
            }
            None => return Err(Error::NoRsdp),
        }
    };
    let madt = tables.find_table::<Madt>().map_err(|_| Error::NoMadt)?;
    let m = madt.get();
    let mut p = Platform {
        rsdp: rsdp.unwrap_or(0),
        revision: tables.revision(),
        lapic_phys: u64::from(m.local_apic_address),
        cpus: heapless::Vec::new(),
        ioapics: heapless::Vec::new(),
        overrides: heapless::Vec::new(),
        has_8259: m.supports_8259(),
        hpet_phys: HpetInfo::new(&tables).ok().map(|h| h.base_address as u64),
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
