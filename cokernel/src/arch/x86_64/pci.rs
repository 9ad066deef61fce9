//! PCI configuration space through mechanism #1 (ports 0xCF8/0xCFC): finding a function, sizing
//! its BARs and programming its MSI for a real-time task (at boot, before Linux runs, so the
//! address port is not shared yet), and stopping the devices a dead guest left running from
//! writing into memory (DMA and MSI are bus-master writes) before a new guest is loaded there.

use core::sync::atomic::{AtomicU32, Ordering};

use x86_64::instructions::port::Port;

/// Functions real-time tasks own (`bdf + 1`; 0: free): [`stop_bus_masters`] leaves them running.
static KEEP: [AtomicU32; 16] = [const { AtomicU32::new(0) }; 16];

/// Marks `f` as a real-time task's: stopping Linux's devices leaves it running. False when the
/// list is full.
pub fn keep(f: Function) -> bool {
    KEEP.iter().any(|k| k.compare_exchange(0, f.bdf() + 1, Ordering::Relaxed, Ordering::Relaxed).is_ok())
}

fn kept(bus: u32, dev: u32, func: u32) -> bool {
    let bdf = bus << 8 | dev << 3 | func;
    KEEP.iter().any(|k| k.load(Ordering::Relaxed) == bdf + 1)
}

const ADDRESS: u16 = 0xcf8;
const DATA: u16 = 0xcfc;
const COMMAND_BUS_MASTER: u32 = 1 << 2;
const CLASS_BRIDGE: u32 = 0x06;

fn address(bus: u32, dev: u32, func: u32, off: u32) -> u32 {
    0x8000_0000 | bus << 16 | dev << 11 | func << 8 | (off & 0xfc)
}

fn read(bus: u32, dev: u32, func: u32, off: u32) -> u32 {
    // SAFETY: the PC's configuration ports; the guest that shared them is stopped.
    unsafe {
        Port::<u32>::new(ADDRESS).write(address(bus, dev, func, off));
        Port::<u32>::new(DATA).read()
    }
}

fn write(bus: u32, dev: u32, func: u32, off: u32, v: u32) {
    // SAFETY: as in `read`.
    unsafe {
        Port::<u32>::new(ADDRESS).write(address(bus, dev, func, off));
        Port::<u32>::new(DATA).write(v);
    }
}

/// Clears Bus Master Enable on every function that is not a bridge or a real-time task's
/// ([`keep`]); returns how many had it set.
/// Bridges keep theirs (the devices behind them are stopped one by one), and decoding (I/O and
/// memory enable) stays on, so the co-kernel's own UART behind the LPC bridge keeps working.
pub fn stop_bus_masters() -> u32 {
    let mut stopped = 0;
    for bus in 0..256 {
        for dev in 0..32 {
            let id = read(bus, dev, 0, 0);
            if id & 0xffff == 0xffff {
                continue;
            }
            let multi = read(bus, dev, 0, 0x0c) & (1 << 23) != 0;
            for func in 0..if multi { 8 } else { 1 } {
                if read(bus, dev, func, 0) & 0xffff == 0xffff {
                    continue;
                }
                if read(bus, dev, func, 0x08) >> 24 == CLASS_BRIDGE || kept(bus, dev, func) {
                    continue;
                }
                let cmd = read(bus, dev, func, 0x04);
                if cmd & COMMAND_BUS_MASTER != 0 {
                    // The status half is write-1-to-clear: write zeros there.
                    write(bus, dev, func, 0x04, cmd & 0xffff & !COMMAND_BUS_MASTER);
                    stopped += 1;
                }
            }
        }
    }
    stopped
}

/// A PCI function of segment 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    /// Bus number.
    pub bus: u8,
    /// Device number (0..32).
    pub dev: u8,
    /// Function number (0..8).
    pub func: u8,
}

impl Function {
    fn read(self, off: u32) -> u32 {
        read(u32::from(self.bus), u32::from(self.dev), u32::from(self.func), off)
    }

    fn write(self, off: u32, v: u32) {
        write(u32::from(self.bus), u32::from(self.dev), u32::from(self.func), off, v)
    }

    /// Vendor and device ID.
    pub fn ids(self) -> (u16, u16) {
        let id = self.read(0);
        (id as u16, (id >> 16) as u16)
    }

    /// `bus << 8 | dev << 3 | func`.
    pub fn bdf(self) -> u32 {
        hauki_abi::devices::bdf(self.bus, self.dev, self.func)
    }

    /// The memory BAR `n` (0..6): its physical base and size, or `None` for an I/O or absent BAR.
    /// Sizes it by writing all-ones (decoding off meanwhile), as every PCI driver does.
    pub fn memory_bar(self, n: u32) -> Option<(u64, u64)> {
        let off = 0x10 + 4 * n;
        let lo = self.read(off);
        if lo & 1 != 0 {
            return None; // I/O space
        }
        let is64 = (lo >> 1) & 3 == 2;
        let cmd = self.read(0x04);
        self.write(0x04, cmd & 0xffff & !COMMAND_MEMORY);
        self.write(off, u32::MAX);
        let size_lo = self.read(off) & !0xf;
        self.write(off, lo);
        let (hi, size_hi) = if is64 {
            let hi = self.read(off + 4);
            self.write(off + 4, u32::MAX);
            let sh = self.read(off + 4);
            self.write(off + 4, hi);
            (hi, sh)
        } else {
            (0, if size_lo != 0 { u32::MAX } else { 0 })
        };
        self.write(0x04, cmd & 0xffff);
        let mask = u64::from(size_hi) << 32 | u64::from(size_lo);
        let base = u64::from(hi) << 32 | u64::from(lo & !0xf);
        (mask != 0 && base != 0).then(|| (base, (!mask).wrapping_add(1)))
    }

    /// Turns memory decoding and bus mastering on (legacy INTx off: MSI is used).
    pub fn enable(self) {
        let cmd = self.read(0x04) & 0xffff;
        self.write(0x04, cmd | COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE);
    }

    /// Programs the function's MSI capability to send `vector` to the LAPIC `apic_id` (fixed
    /// delivery, edge) and enables it; false if it has no MSI capability.
    pub fn enable_msi(self, apic_id: u32, vector: u8) -> bool {
        let Some(cap) = self.capability(CAP_MSI) else { return false };
        let ctl = self.read(cap) >> 16;
        let is64 = ctl & (1 << 7) != 0;
        self.write(cap + 4, 0xfee0_0000 | (apic_id & 0xff) << 12);
        let data_off = if is64 {
            self.write(cap + 8, 0);
            cap + 12
        } else {
            cap + 8
        };
        let old = self.read(data_off);
        self.write(data_off, (old & 0xffff_0000) | u32::from(vector));
        // One vector (Multiple Message Enable 0), enabled.
        let ctl = (ctl & !(0b111 << 4)) | 1;
        self.write(cap, (self.read(cap) & 0xffff) | ctl << 16);
        true
    }

    /// The offset of capability `id` in the function's list, if it has one.
    fn capability(self, id: u8) -> Option<u32> {
        if self.read(0x04) >> 16 & (1 << 4) == 0 {
            return None; // no capability list
        }
        let mut at = self.read(0x34) & 0xfc;
        for _ in 0..48 {
            if at < 0x40 {
                return None;
            }
            let head = self.read(at);
            if head as u8 == id {
                return Some(at);
            }
            at = (head >> 8) & 0xfc;
        }
        None
    }
}

const COMMAND_MEMORY: u32 = 1 << 1;
const COMMAND_INTX_DISABLE: u32 = 1 << 10;
const CAP_MSI: u8 = 0x05;

/// The function at `bus:dev.func`, if one answers there (`dev` below 32, `func` below 8).
pub fn at(bus: u8, dev: u8, func: u8) -> Option<Function> {
    let f = Function { bus, dev, func };
    (dev < 32 && func < 8 && f.read(0) & 0xffff != 0xffff).then_some(f)
}

/// The first function with this vendor and device ID.
pub fn find(vendor: u16, device: u16) -> Option<Function> {
    for bus in 0..=255u8 {
        for dev in 0..32u8 {
            let f0 = Function { bus, dev, func: 0 };
            if f0.read(0) & 0xffff == 0xffff {
                continue;
            }
            let multi = f0.read(0x0c) & (1 << 23) != 0;
            for func in 0..if multi { 8 } else { 1 } {
                let f = Function { bus, dev, func };
                if f.ids() == (vendor, device) {
                    return Some(f);
                }
            }
        }
    }
    None
}
