//! PCI configuration space through mechanism #1 (ports 0xCF8/0xCFC): just enough to stop the
//! devices a dead guest left running from writing into memory (DMA and MSI are bus-master
//! writes) before a new guest is loaded there.

use x86_64::instructions::port::Port;

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

/// Clears Bus Master Enable on every function that is not a bridge; returns how many had it set.
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
                if read(bus, dev, func, 0x08) >> 24 == CLASS_BRIDGE {
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
