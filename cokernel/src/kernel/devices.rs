//! Devices real-time tasks own: a PCI function claimed by vendor and device ID gets its memory
//! BARs mapped (uncached) for its task and its MSI sent to the co-kernel's device vector, which
//! posts an event to the task's port; the function goes into the [`Claimed`] table the handoff
//! names, so Linux never sees it (its configuration reads return no device).
//!
//! Claims happen while applications start, before Linux runs: configuration space is the
//! co-kernel's alone then.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use hauki_abi::devices::{Claimed, MAX_PCI};

use crate::arch::frame::{TrapFrame, vectors::DEVICE as VECTOR_DEVICE};
use crate::arch::{apic, idt, mm, pci};
use crate::guest::irqchip;
use crate::guest::lines::{Refusal, Route};
use crate::guest::{loader, vcpu};

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
    /// The ISA line cannot be a task's: `why`.
    LineUnavailable {
        /// The line asked for.
        line: u8,
        /// Why not.
        why: &'static str,
    },
    /// The I/O ports cannot be a task's: outside 0x100..0x10000, empty or longer than 256, or
    /// the co-kernel's own (its UARTs, PCI configuration).
    PortsUnavailable {
        /// First port asked for.
        start: u16,
        /// Ports asked for.
        len: u16,
    },
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
            DeviceError::LineUnavailable { line, why } => write!(f, "ISA line {line} cannot be claimed: {why}"),
            DeviceError::PortsUnavailable { start, len } => write!(
                f,
                "I/O ports {start:#x}+{len} cannot be claimed (1 to 256 ports in 0x100..0x10000, none of the co-kernel's UARTs or PCI configuration)"
            ),
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
    if vcpu::running() {
        return Err(DeviceError::TooLate);
    }
    claim(pci::find(vendor, device).ok_or(DeviceError::Absent { vendor, device })?, port)
}

/// Claims the PCI function at `bus:dev.func` (segment 0), as [`claim_pci`] does: for a machine
/// with two of the same device, or a device known by its slot.
pub fn claim_pci_at(bus: u8, dev: u8, func: u8, port: u16) -> Result<PciDevice, DeviceError> {
    if vcpu::running() {
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

/// ISA devices claimed at most.
pub const MAX_ISA: usize = 4;

/// I/O ports no task may claim: COM2 (the co-kernel's telemetry), COM1 (the console), PCI
/// configuration. Everything below 0x100 (the platform's PIC, PIT, keyboard, CMOS, DMA) is refused
/// too.
const OWN_PORTS: [(u16, u16); 3] = [(0x2f8, 8), (0x3f8, 8), (0xcf8, 8)];

/// Whether ports `start..start + len` may be a task's.
pub fn ports_claimable(start: u16, len: u16) -> bool {
    let end = u32::from(start) + u32::from(len);
    (1..=256).contains(&len)
        && start >= 0x100
        && end <= 0x1_0000
        && OWN_PORTS.iter().all(|&(s, l)| end <= u32::from(s) || u32::from(s) + u32::from(l) <= u32::from(start))
}

/// Per ISA line, its claim packed for interrupt context (no lock there): 0 unclaimed, else
/// [`CLAIMED`] | port << 32 | level << 48 | active-low << 49 | GSI.
static ISA: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
const CLAIMED: u64 = 1 << 63;

fn pack(port: u16, r: Route) -> u64 {
    CLAIMED | u64::from(port) << 32 | u64::from(r.level) << 48 | u64::from(r.active_low) << 49 | u64::from(r.gsi)
}

/// A claimed line's port and route.
fn unpack(line: u8) -> Option<(u16, Route)> {
    let v = ISA.get(usize::from(line))?.load(Ordering::Acquire);
    (v & CLAIMED != 0)
        .then_some(((v >> 32) as u16, Route { gsi: v as u32, level: v & 1 << 48 != 0, active_low: v & 1 << 49 != 0 }))
}

/// A claimed ISA device: its I/O ports (bounds-checked) and its line.
#[derive(Debug)]
pub struct IsaDevice {
    line: u8,
    start: u16,
    len: u16,
    level: bool,
}

impl IsaDevice {
    /// Reads the byte port `start + off` (past the claimed ports: all-ones).
    pub fn inb(&self, off: u16) -> u8 {
        if off >= self.len {
            return u8::MAX;
        }
        // SAFETY: a port of this claimed device alone (checked claimable, hidden from Linux).
        unsafe { x86_64::instructions::port::Port::<u8>::new(self.start + off).read() }
    }

    /// Writes the byte port `start + off` (past the claimed ports: ignored).
    pub fn outb(&self, off: u16, v: u8) {
        if off >= self.len {
            return;
        }
        // SAFETY: as in `inb`.
        unsafe { x86_64::instructions::port::Port::<u8>::new(self.start + off).write(v) }
    }

    /// Ends the handling of an interrupt: a level-triggered line, masked from its arrival (it
    /// would fire again at once while the device holds it), is unmasked. Call it once the device
    /// no longer asserts the line; nothing on an edge-triggered line.
    pub fn end_of_interrupt(&self) {
        if !self.level {
            return;
        }
        if let Some((_, r)) = unpack(self.line) {
            irqchip::program_own(r, isa_vector(self.line), false);
        }
    }

    /// The ISA line.
    pub fn line(&self) -> u8 {
        self.line
    }

    /// Whether the firmware describes the line as level-triggered.
    pub fn is_level(&self) -> bool {
        self.level
    }
}

fn isa_vector(line: u8) -> u8 {
    hauki_abi::guest::ISA_VECTOR_BASE + line
}

/// A claimed ISA line's interrupt: a level line is masked until its task's
/// [`IsaDevice::end_of_interrupt`]; the task's port gets an event. Interrupt context.
fn on_isa_interrupt(frame: &mut TrapFrame) {
    IRQS.fetch_add(1, Ordering::Relaxed);
    let line = (frame.vector as u8).wrapping_sub(hauki_abi::guest::ISA_VECTOR_BASE);
    if let Some((port, route)) = unpack(line) {
        if route.level {
            irqchip::program_own(route, isa_vector(line), true);
        }
        let _ = super::sched::post_from_irq(port, 1);
    }
}

/// Claims ISA line `line` and I/O ports `start..start + len` for a task: the line's interrupts post
/// to `port` (on the line's own vector, programmed as the firmware describes it), Linux's calls on
/// the line are refused, and Linux's command line gets `reserve=START,LEN` so no Linux driver can
/// take the ports. While the application starts, before Linux runs.
pub fn claim_isa(line: u8, start: u16, len: u16, port: u16) -> Result<IsaDevice, DeviceError> {
    if vcpu::running() {
        return Err(DeviceError::TooLate);
    }
    if !ports_claimable(start, len) {
        return Err(DeviceError::PortsUnavailable { start, len });
    }
    let unavailable = |why| DeviceError::LineUnavailable { line, why };
    if line == 0 || line >= 16 {
        return Err(unavailable("not an ISA line a device can have (1 to 15; 0 is the PIT's)"));
    }
    if ISA.iter().filter(|l| l.load(Ordering::Relaxed) != 0).count() >= MAX_ISA {
        return Err(DeviceError::TooMany);
    }
    if irqchip::sci() == Some(line) {
        return Err(unavailable("it is ACPI's system control interrupt (the FADT's SCI), which Linux needs"));
    }
    let route = irqchip::claim(u32::from(line), isa_vector(line)).map_err(|r| {
        unavailable(match r {
            Refusal::Cokernel => "the co-kernel or another task has it",
            Refusal::Shadowed => "another ISA IRQ is routed onto its input",
            Refusal::NoSuchLine | Refusal::NoPin => "no such line on this machine",
            // Only PCI lines are bound, and `line` is an ISA line.
            Refusal::Unbound | Refusal::BadVector => "not an ISA line",
        })
    })?;
    let mut reserve: heapless::String<32> = heapless::String::new();
    let _ = write!(reserve, "reserve={start:#x},{len}");
    loader::append_cmdline(&reserve).map_err(unavailable)?;
    ISA[usize::from(line)].store(pack(port, route), Ordering::Release);
    idt::register(isa_vector(line), on_isa_interrupt);
    // SAFETY: boot, one thread, before Linux runs: nothing else reads or writes the table.
    unsafe { (*TABLE.0.get()).isa_lines |= 1 << line };
    irqchip::program_own(route, isa_vector(line), false);
    Ok(IsaDevice { line, start, len, level: route.level })
}

/// Device interrupts taken since boot.
pub fn irqs() -> u32 {
    IRQS.load(Ordering::Relaxed)
}
