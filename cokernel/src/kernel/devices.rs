//! Devices real-time tasks own: a PCI function claimed by vendor and device ID gets its memory
//! BARs mapped (uncached) for its task and its MSI sent to the co-kernel's device vector, which
//! posts an event to the task's port; the function goes into the [`Claimed`] table the handoff
//! names, so Linux never sees it (its configuration reads return no device).
//!
//! Claims happen while applications start, before Linux runs: configuration space is the
//! co-kernel's alone then.

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

use hauki_abi::devices::{Claimed, MAX_PCI};

use crate::arch::frame::{TrapFrame, vectors::DEVICE as VECTOR_DEVICE};
use crate::arch::{apic, idt, mm, pci};
use crate::guest::vcpu;

/// Why a device cannot be claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// No PCI function has this vendor and device ID.
    Absent {
        /// Vendor ID asked for.
        vendor: u16,
        /// Device ID asked for.
        device: u16,
    },
    /// No PCI function at this address (or the address cannot be one: device 32 or more,
    /// function 8 or more).
    AbsentAt {
        /// Bus.
        bus: u8,
        /// Device.
        dev: u8,
        /// Function.
        func: u8,
    },
    /// Claims happen while applications start, before Linux runs.
    TooLate,
    /// All [`MAX_PCI`] claims are taken.
    TooMany,
    /// The function has no memory BAR 0.
    NoBar,
    /// The function has no MSI capability (interrupt lines for claimed devices are not done).
    NoMsi,
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DeviceError::Absent { vendor, device } => {
                write!(f, "no PCI device {vendor:04x}:{device:04x} on this machine")
            }
            DeviceError::AbsentAt { bus, dev, func } => {
                write!(f, "no PCI function at {bus:02x}:{dev:02x}.{func} on this machine")
            }
            DeviceError::TooLate => write!(f, "devices are claimed while applications start, before Linux runs"),
            DeviceError::TooMany => write!(f, "all {MAX_PCI} device claims are taken"),
            DeviceError::NoBar => write!(f, "the device has no memory BAR 0"),
            DeviceError::NoMsi => write!(f, "the device has no MSI capability"),
        }
    }
}

/// The table Linux reads (its address is the handoff's `claimed_virt`).
#[repr(C, align(4096))]
struct Table(core::cell::UnsafeCell<Claimed>);
// SAFETY: written only at boot by `claim_pci` (one thread, before Linux runs); Linux reads it.
unsafe impl Sync for Table {}

static TABLE: Table =
    Table(core::cell::UnsafeCell::new(Claimed { count: 0, isa_lines: 0, pci: [0; MAX_PCI], reserved: [0; 7] }));

/// The claimed table's address, for the handoff.
pub fn table_addr() -> u64 {
    TABLE.0.get() as u64
}

/// Per claim: the port its MSI posts to (`u32::MAX`: none).
static PORTS: [AtomicU32; MAX_PCI] = [const { AtomicU32::new(u32::MAX) }; MAX_PCI];
/// Device interrupts taken.
static IRQS: AtomicU32 = AtomicU32::new(0);

/// A claimed PCI function's registers (BAR 0), mapped uncached for its task.
#[derive(Debug)]
pub struct PciDevice {
    base: u64,
    len: u64,
    bdf: u32,
}

impl PciDevice {
    /// Reads the 32-bit register at `off` of BAR 0 (an offset past the BAR reads as all-ones).
    pub fn read32(&self, off: u64) -> u32 {
        if off.checked_add(4).is_none_or(|end| end > self.len) {
            return u32::MAX;
        }
        // SAFETY: inside BAR 0, mapped uncached at `base` for this device alone.
        unsafe { ((self.base + off) as *const u32).read_volatile() }
    }

    /// Writes the 32-bit register at `off` of BAR 0 (an offset past the BAR is ignored).
    pub fn write32(&self, off: u64, v: u32) {
        if off.checked_add(4).is_none_or(|end| end > self.len) {
            return;
        }
        // SAFETY: as in `read32`.
        unsafe { ((self.base + off) as *mut u32).write_volatile(v) }
    }

    /// `bus << 8 | dev << 3 | func`.
    pub fn bdf(&self) -> u32 {
        self.bdf
    }

    /// Bytes of BAR 0.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether BAR 0 is empty (never, for a claimed device).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The device vector's handler: every claim's port gets an event (the tasks read their device's
/// status to see whether it was theirs). Interrupt context.
fn on_device_interrupt(_: &mut TrapFrame) {
    IRQS.fetch_add(1, Ordering::Relaxed);
    for p in &PORTS {
        if let Ok(port) = u16::try_from(p.load(Ordering::Relaxed)) {
            let _ = super::sched::post_from_irq(port, 1);
        }
    }
}

/// Claims the first PCI function `vendor:device`: maps BAR 0, sends its MSI to `port`, hides it
/// from Linux.
pub fn claim_pci(vendor: u16, device: u16, port: u16) -> Result<PciDevice, DeviceError> {
    if vcpu::active() {
        return Err(DeviceError::TooLate);
    }
    claim(pci::find(vendor, device).ok_or(DeviceError::Absent { vendor, device })?, port)
}

/// Claims the PCI function at `bus:dev.func` (segment 0), as [`claim_pci`] does: for a machine
/// with two of the same device, or a device known by its slot.
pub fn claim_pci_at(bus: u8, dev: u8, func: u8, port: u16) -> Result<PciDevice, DeviceError> {
    if vcpu::active() {
        return Err(DeviceError::TooLate);
    }
    claim(pci::at(bus, dev, func).ok_or(DeviceError::AbsentAt { bus, dev, func })?, port)
}

fn claim(f: pci::Function, port: u16) -> Result<PciDevice, DeviceError> {
    let t = TABLE.0.get();
    // SAFETY: boot, one thread, before Linux runs: nothing else reads or writes the table.
    let claimed = unsafe { &mut *t };
    let slot = claimed.count as usize;
    if slot >= MAX_PCI {
        return Err(DeviceError::TooMany);
    }
    let (phys, len) = f.memory_bar(0).ok_or(DeviceError::NoBar)?;
    if !f.enable_msi(apic::id(), VECTOR_DEVICE) {
        return Err(DeviceError::NoMsi);
    }
    if !pci::keep(f) {
        return Err(DeviceError::TooMany);
    }
    idt::register(VECTOR_DEVICE, on_device_interrupt);
    PORTS[slot].store(u32::from(port), Ordering::Relaxed);
    f.enable();
    let base = mm::map_mmio(phys, len);
    claimed.pci[slot] = f.bdf();
    claimed.count += 1;
    Ok(PciDevice { base, len, bdf: f.bdf() })
}

/// Device interrupts taken since boot.
pub fn irqs() -> u32 {
    IRQS.load(Ordering::Relaxed)
}
