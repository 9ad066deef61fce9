//! Polled 16550 UART output on COM1 (console) and COM2 (telemetry).
//!
//! Written by hand rather than with a crate because this path runs inside exception and fatal
//! handlers: it must not allocate, block on anything but the transmitter, or take locks it cannot
//! break. Output only; input belongs to Linux once it runs.

use core::fmt;
use x86_64::instructions::port::Port;

/// One UART, addressed by its I/O base.
#[derive(Clone, Copy)]
pub struct Uart {
    base: u16,
}

impl Uart {
    /// The UART at I/O port `base` (not touched until [`Uart::init`]).
    pub const fn new(base: u16) -> Self {
        Uart { base }
    }

    /// 115200 baud, 8N1, FIFOs on, interrupts off.
    pub fn init(&self) {
        let b = self.base;
        // SAFETY: these are the 16550 registers at a standard PC COM base; writing them only
        // configures the UART.
        unsafe {
            Port::<u8>::new(b + 1).write(0x00); // IER: no interrupts
            Port::<u8>::new(b + 3).write(0x80); // LCR: DLAB
            Port::<u8>::new(b).write(0x01); // DLL: 115200
            Port::<u8>::new(b + 1).write(0x00); // DLM
            Port::<u8>::new(b + 3).write(0x03); // LCR: 8N1
            Port::<u8>::new(b + 2).write(0xc7); // FCR: enable + clear FIFOs, 14-byte threshold
            Port::<u8>::new(b + 4).write(0x03); // MCR: DTR | RTS
        }
    }

    /// Whether a UART answers at this base (the scratch register holds a value).
    pub fn present(&self) -> bool {
        let mut scratch = Port::<u8>::new(self.base + 7);
        // SAFETY: the scratch register has no side effect.
        unsafe {
            scratch.write(0x5a);
            scratch.read() == 0x5a
        }
    }

    /// Sends one byte once the transmitter holding register is empty, or after about 100 000
    /// polls of a UART that never empties (a missing one), so a fault handler never hangs here.
    pub fn write_byte(&self, byte: u8) {
        let mut lsr = Port::<u8>::new(self.base + 5);
        let mut thr = Port::<u8>::new(self.base);
        // SAFETY: LSR is read-only status; THR takes the byte once the transmitter is empty. The
        // spin is bounded so a missing UART cannot hang a fault handler.
        unsafe {
            for _ in 0..100_000 {
                if lsr.read() & 0x20 != 0 {
                    break;
                }
                core::hint::spin_loop();
            }
            thr.write(byte);
        }
    }

    /// Sends `bytes`, each `\n` as `\r\n`.
    pub fn write_bytes(&self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
    }
}

impl fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}
