//! Where the co-kernel's words go: human log lines (COM1 until Linux owns it, and COM2) and
//! telemetry records (COM2).
//!
//! Each UART has a lock so records and lines are never interleaved. Writers keep interrupts on
//! (a slow UART must never delay a real-time interrupt), so a writer can be preempted while it
//! holds the lock; anyone on the same CPU who then finds the lock taken drops its line and counts
//! it in [`DROPPED`] instead of spinning on a lock its own CPU holds. A writer on another CPU
//! waits for the line to end, unless it runs with interrupts off (then it drops its line too).
//! After boot, each CPU's telemetry task is the one regular writer. The fatal paths use [`Sink::force`], which breaks the lock: when the CPU
//! is stopping, a half-written line from the interrupted context is better than silence.

use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::percpu;
use super::serial::Uart;
use crate::telemetry::json::Record;
use hauki_abi::serial::{CONSOLE_PORT, TELEMETRY_PORT};

/// A locked UART. The lock word holds the owning CPU's index + 1, so a writer can tell its own
/// CPU's preempted writer (drop the line: spinning would never end) from another CPU's (wait: it
/// finishes its line).
pub struct Sink {
    owner: AtomicUsize,
    uart: UnsafeCell<Uart>,
}

// SAFETY: the UART is reached only by the owner of `owner` (or by `force` on a stopping CPU).
unsafe impl Sync for Sink {}

impl Sink {
    const fn new(base: u16) -> Self {
        Sink { owner: AtomicUsize::new(0), uart: UnsafeCell::new(Uart::new(base)) }
    }

    /// Runs `f` with the UART, breaking the lock if it is held (fatal paths only).
    pub fn force<R>(&self, f: impl FnOnce(&mut Uart) -> R) -> R {
        // Breaking the lock: called only on paths that stop the CPU; the holder never resumes its
        // write in a way that matters, and interleaving is preferable to a silent hang.
        self.owner.swap(percpu::this() + 1, Ordering::Acquire);
        // SAFETY: this CPU owns the lock now (taken by force).
        let r = f(unsafe { &mut *self.uart.get() });
        self.owner.store(0, Ordering::Release);
        r
    }

    /// Runs `f` with the UART unless this CPU's own interrupted context holds it (then the output
    /// is dropped); another CPU's writer is waited for.
    pub fn with(&self, f: impl FnOnce(&mut Uart)) {
        let me = percpu::this() + 1;
        loop {
            match self.owner.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                // This CPU's own writer, or interrupts off here (a real-time interrupt must not wait
                // for another CPU's line): dropped.
                Err(o) if o == me || !x86_64::instructions::interrupts::are_enabled() => {
                    DROPPED.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(_) => core::hint::spin_loop(),
            }
        }
        // SAFETY: this CPU owns the lock until the store below.
        f(unsafe { &mut *self.uart.get() });
        self.owner.store(0, Ordering::Release);
    }
}

/// Lines and records dropped because the UART was busy.
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

/// COM1: human lines while the console is the co-kernel's, KTAP output of the in-kernel tests.
pub static CONSOLE: Sink = Sink::new(CONSOLE_PORT);
/// COM2: telemetry records and a copy of every human line.
pub static TELEMETRY: Sink = Sink::new(TELEMETRY_PORT);

/// Cleared when Linux takes COM1 as its console; from then on human lines go to COM2 only.
static CONSOLE_IS_OURS: AtomicBool = AtomicBool::new(true);

/// Sets up both UARTs and routes the `log` crate's `info` and above to [`line()`]. The first thing
/// the co-kernel does: every later failure can be reported.
pub fn init() {
    CONSOLE.with(|u| u.init());
    TELEMETRY.with(|u| u.init());
    log::set_logger(&LOGGER).ok();
    log::set_max_level(log::LevelFilter::Info);
}

/// Hand COM1 over (to Linux).
pub fn release_console() {
    CONSOLE_IS_OURS.store(false, Ordering::Release);
}

/// Writes one telemetry record; `build` adds the fields after `event`.
pub fn record(event: &str, build: impl FnOnce(&mut Record<'_, Uart>)) {
    TELEMETRY.with(|u| emit(u, event, build));
}

/// [`record`] for fatal paths: breaks the lock.
pub fn record_forced(event: &str, build: impl FnOnce(&mut Record<'_, Uart>)) {
    TELEMETRY.force(|u| emit(u, event, build));
}

fn emit(u: &mut Uart, event: &str, build: impl FnOnce(&mut Record<'_, Uart>)) {
    let mut r = Record::new(u, event);
    build(&mut r);
    let _ = r.finish();
}

/// Writes a human line `hauki: …` to COM2 and, while it is ours, COM1.
pub fn line(args: fmt::Arguments<'_>, forced: bool) {
    let put = |u: &mut Uart| {
        let _ = u.write_str("hauki: ");
        let _ = u.write_fmt(args);
        let _ = u.write_str("\n");
    };
    if forced {
        TELEMETRY.force(put);
        if CONSOLE_IS_OURS.load(Ordering::Acquire) {
            CONSOLE.force(put);
        }
    } else {
        TELEMETRY.with(put);
        if CONSOLE_IS_OURS.load(Ordering::Acquire) {
            CONSOLE.with(put);
        }
    }
}

/// Raw text on COM1 (KTAP output of the in-kernel tests).
pub fn console_write(args: fmt::Arguments<'_>) {
    CONSOLE.with(|u| {
        let _ = u.write_fmt(args);
    });
}

struct Logger;
static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let level = match r.level() {
                log::Level::Error => "error: ",
                log::Level::Warn => "warning: ",
                log::Level::Info => "",
                log::Level::Debug => "debug: ",
                log::Level::Trace => "trace: ",
            };
            line(format_args!("{level}{}", r.args()), false);
        }
    }
    fn flush(&self) {}
}
