//! Stopping: a clear message on COM2 (record + human line), COM1 and the VGA text screen, then a
//! halt — never a silent reboot. With `hauki.debug_exit=1` QEMU is ended through `isa-debug-exit`.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use hauki_abi::debug_exit;
use x86_64::instructions::port::Port;

use super::console;

static DEBUG_EXIT: AtomicBool = AtomicBool::new(false);

/// Honour `hauki.debug_exit=1` from now on.
pub fn enable_debug_exit() {
    DEBUG_EXIT.store(true, Ordering::Relaxed);
}

/// Stops the co-kernel: `reason` is a stable kebab-case key (documented in docs/telemetry.md),
/// `message` says what was wrong and what to do.
pub fn fatal(reason: &str, message: fmt::Arguments<'_>) -> ! {
    x86_64::instructions::interrupts::disable();
    console::record_forced("fatal", |r| {
        r.str("reason", reason).fmt("message", message);
    });
    console::line(format_args!("fatal: {message}"), true);
    console::line(format_args!("halted (reason: {reason})"), true);
    super::vga::fatal_screen(message);
    stop_after_report()
}

/// Halts for good (or ends QEMU with FAILURE under `hauki.debug_exit=1`).
pub fn stop_after_report() -> ! {
    exit(debug_exit::FAILURE)
}

/// Ends the run with `code` when debug exit is enabled; otherwise halts with interrupts off.
pub fn exit(code: u32) -> ! {
    x86_64::instructions::interrupts::disable();
    if DEBUG_EXIT.load(Ordering::Relaxed) {
        // SAFETY: the isa-debug-exit port; enabled only when the user asked for it on the command line.
        unsafe { Port::<u32>::new(debug_exit::PORT).write(code) };
    }
    loop {
        x86_64::instructions::hlt();
    }
}
