//! IO-APICs: found in the MADT, every redirection entry masked at boot. Entries are programmed
//! only through [`IoApic::set_redirection`] (Linux's ISA lines by `guest::irqchip`); [`for_gsi`]
//! finds the IO-APIC and pin of a global system interrupt.

use spin::Mutex;

const REG_ID: u32 = 0x00;
const REG_VERSION: u32 = 0x01;
const REG_REDIR: u32 = 0x10;
const REDIR_MASKED: u64 = 1 << 16;

/// One IO-APIC, mapped and answering.
#[derive(Clone, Copy, Debug)]
pub struct IoApic {
    /// Its IO-APIC ID (from the MADT).
    pub id: u8,
    /// Physical address of its register window.
    pub phys: u64,
    virt: u64,
    /// The global system interrupt of its pin 0; pin `p` takes GSI `gsi_base + p`.
    pub gsi_base: u32,
    /// Its input pins (1..=256, from the version register's maximum redirection entry).
    pub pins: u32,
}

impl IoApic {
    fn read(&self, reg: u32) -> u32 {
        let sel = self.virt as *mut u32;
        let win = (self.virt + 0x10) as *mut u32;
        // SAFETY: IOREGSEL/IOWIN of an IO-APIC mapped uncached at `virt` (see `add`); the lock in
        // IOAPICS serialises the select/access pair.
        unsafe {
            sel.write_volatile(reg);
            win.read_volatile()
        }
    }

    fn write(&self, reg: u32, value: u32) {
        let sel = self.virt as *mut u32;
        let win = (self.virt + 0x10) as *mut u32;
        // SAFETY: as in `read`.
        unsafe {
            sel.write_volatile(reg);
            win.write_volatile(value);
        }
    }

    /// The 64-bit redirection entry of `pin` (vector, delivery, polarity, trigger, mask bit 16,
    /// destination in bits 63..56). `pin` must be below [`IoApic::pins`].
    pub fn redirection(&self, pin: u32) -> u64 {
        let lo = self.read(REG_REDIR + 2 * pin);
        let hi = self.read(REG_REDIR + 2 * pin + 1);
        (u64::from(hi) << 32) | u64::from(lo)
    }

    /// Writes the redirection entry of `pin` (below [`IoApic::pins`]); the entry is masked while
    /// its two halves are written, so it is never live half-written.
    pub fn set_redirection(&self, pin: u32, value: u64) {
        // Mask first so the entry is never live half-written.
        self.write(REG_REDIR + 2 * pin, (value as u32) | REDIR_MASKED as u32);
        self.write(REG_REDIR + 2 * pin + 1, (value >> 32) as u32);
        self.write(REG_REDIR + 2 * pin, value as u32);
    }

    /// Whether `pin`'s entry has its mask bit set.
    pub fn is_masked(&self, pin: u32) -> bool {
        self.redirection(pin) & REDIR_MASKED != 0
    }
}

/// IO-APICs the co-kernel drives at most.
const MAX_IOAPICS: usize = 8;

static IOAPICS: Mutex<heapless::Vec<IoApic, MAX_IOAPICS>> = Mutex::new(heapless::Vec::new());

/// Why an IO-APIC the MADT lists is left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Its version register reads all ones: nothing answers at the address.
    NotAnswering {
        /// The register window's physical address (from the MADT).
        phys: u64,
    },
    /// The table of IO-APICs is full.
    TooMany {
        /// How many the co-kernel drives.
        max: usize,
    },
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::NotAnswering { .. } => write!(f, "IO-APIC does not answer at the address the MADT gives"),
            Error::TooMany { max } => write!(f, "more than {max} IO-APICs"),
        }
    }
}

/// Maps an IO-APIC, reads how many pins it has and masks all of them.
pub fn add(id: u8, phys: u64, gsi_base: u32) -> Result<IoApic, Error> {
    let virt = super::mm::map_mmio(phys, 4096);
    let mut io = IoApic { id, phys, virt, gsi_base, pins: 0 };
    let version = io.read(REG_VERSION);
    if version == 0xffff_ffff {
        return Err(Error::NotAnswering { phys });
    }
    io.pins = ((version >> 16) & 0xff) + 1;
    let _ = io.read(REG_ID);
    for pin in 0..io.pins {
        // Masked, vector 0, edge, active high, physical destination 0.
        io.set_redirection(pin, REDIR_MASKED);
    }
    IOAPICS.lock().push(io).map_err(|_| Error::TooMany { max: MAX_IOAPICS })?;
    Ok(io)
}

/// All IO-APICs found.
pub fn all() -> heapless::Vec<IoApic, MAX_IOAPICS> {
    // Interrupts off: trap handlers take this lock too (`for_gsi`).
    x86_64::instructions::interrupts::without_interrupts(|| IOAPICS.lock().clone())
}

/// The IO-APIC and pin that take `gsi`.
pub fn for_gsi(gsi: u32) -> Option<(IoApic, u32)> {
    IOAPICS
        .lock()
        .iter()
        .find(|io| gsi >= io.gsi_base && gsi < io.gsi_base + io.pins)
        .map(|io| (*io, gsi - io.gsi_base))
}
