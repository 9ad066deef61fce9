//! The contract shared by the Hauki co-kernel, its host tools (`xtask`) and, from the Linux issue on, the
//! patched Linux guest.
//!
//! Everything here is plain data: fixed-width integers, no `bool`, `usize` or Rust enums on any wire. A
//! number once given a meaning is never reused for another (retired numbers stay reserved).
#![no_std]
#![forbid(unsafe_code)]

/// QEMU's `isa-debug-exit` device: the co-kernel ends a test run by writing a code to this port.
///
/// QEMU then exits with status `(code << 1) | 1`; see [`debug_exit::qemu_status`].
pub mod debug_exit {
    /// I/O port of the device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
    pub const PORT: u16 = 0xf4;
    /// Everything asked for ran and passed.
    pub const SUCCESS: u32 = 0x10;
    /// A test failed, or the co-kernel stopped on a fatal error.
    pub const FAILURE: u32 = 0x11;

    /// The process exit status QEMU reports for a code written to [`PORT`].
    pub const fn qemu_status(code: u32) -> i32 {
        ((code << 1) | 1) as i32
    }

    /// The QEMU argument that adds the device.
    pub const QEMU_DEVICE: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";
}

/// The serial ports: COM1 is the console (Linux's, once Linux runs), COM2 the co-kernel's telemetry.
pub mod serial {
    /// COM1: the user's console.
    pub const CONSOLE_PORT: u16 = 0x3f8;
    /// COM2: JSON Lines telemetry; human-readable lines on it never start with `{`.
    pub const TELEMETRY_PORT: u16 = 0x2f8;
}

/// Telemetry records on COM2 (JSON Lines). The schema is documented in `docs/telemetry.md`.
pub mod telemetry {
    /// Bumped when a record loses or changes a field; adding a field does not bump it.
    pub const SCHEMA_VERSION: u32 = 1;

    /// Emitted once at the end of boot.
    pub const EVENT_BOOT: &str = "boot";
    /// A CPU exception taken in the co-kernel or a context it runs.
    pub const EVENT_EXCEPTION: &str = "exception";
    /// The co-kernel stopped: what was wrong and what to do.
    pub const EVENT_FATAL: &str = "fatal";
    /// A secondary CPU found in the MADT and parked.
    pub const EVENT_CPU: &str = "cpu";
}

/// Co-kernel command-line keys (documented in `docs/cmdline.md`).
pub mod cmdline {
    /// `hauki.debug_exit=1`: end QEMU through `isa-debug-exit` on a fatal stop or an `exit` request.
    pub const DEBUG_EXIT: &str = "hauki.debug_exit";
    /// `hauki.exit_after_boot=1`: exit with SUCCESS right after the boot record (benchmarks, tests).
    pub const EXIT_AFTER_BOOT: &str = "hauki.exit_after_boot";
    /// `hauki.inject=pf|gp|ud|de|bp|df|stack`: raise this exception after boot (tests of the report path).
    pub const INJECT: &str = "hauki.inject";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_status_matches_isa_debug_exit() {
        // QEMU exits with (value << 1) | 1; 0 and 1 stay free for QEMU's own meanings.
        assert_eq!(debug_exit::qemu_status(debug_exit::SUCCESS), 33);
        assert_eq!(debug_exit::qemu_status(debug_exit::FAILURE), 35);
        assert!(debug_exit::QEMU_DEVICE.contains("iobase=0xf4"));
        assert_eq!(debug_exit::PORT, 0xf4);
    }

    #[test]
    fn com_ports_are_the_pc_standard_ones() {
        assert_eq!((serial::CONSOLE_PORT, serial::TELEMETRY_PORT), (0x3f8, 0x2f8));
    }
}
