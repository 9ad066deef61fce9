//! The tasks layer: the task API real-time code is written against ([`api`]), the system tasks
//! every image has (the latency tool, the telemetry reporter, and Linux's watchdog when Linux
//! runs as the guest), components an application may start (the phase engine with its
//! golden-ratio-staggered workers, the VGA view), and the in-kernel benchmarks
//! ([`bench`](mod@bench)). Applications (`crate::app`) start their own tasks after these.
//!
//! Priorities: latency 250 (highest), phase 150, workers 100–103, Linux's watchdog 3 (when Linux
//! runs as the guest), display 2, telemetry 1; the demo application's control loop takes 200.
//! Command-line knobs are in docs/cmdline.md.

pub mod api;
pub mod bench;
pub mod display;
pub mod latency;
pub mod phase;
pub mod telemetry;
pub mod watchdog;

use crate::arch::fatal::fatal;
use crate::cmdline;
use crate::rt::sched::Error;

/// The latency task: above every other task, so it measures the system's release latency.
pub const PRIO_LATENCY: u8 = 250;
/// The phase engine's oscillator bank.
pub const PRIO_PHASE: u8 = 150;
/// The first of the phase engine's workers; worker `k` runs at `PRIO_WORKERS + k`.
pub const PRIO_WORKERS: u8 = 100;
/// Linux's watchdog (only when Linux runs as the guest).
pub const PRIO_WATCHDOG: u8 = 3;
/// The VGA live view.
pub const PRIO_DISPLAY: u8 = 2;
/// The telemetry reporter: the least urgent task, so a slow UART delays no other.
pub const PRIO_TELEMETRY: u8 = 1;

/// A period from the command line in `unit_ns` units (1 ..= an hour); a bad value is refused by
/// name and the default kept.
fn ns_option(line: &str, key: &str, default_ns: u64, unit_ns: u64) -> u64 {
    const HOUR_NS: u64 = 3_600_000_000_000;
    match cmdline::number(line, key, 1..=HOUR_NS / unit_ns) {
        Ok(v) => v.map_or(default_ns, |v| v * unit_ns),
        Err(e) => {
            log::warn!("{e}; keeping the default {default_ns} ns");
            default_ns
        }
    }
}

/// Starts the application's tasks (`app`, first, so the system tasks measure them), then the
/// system tasks.
pub fn start(line: &str, app: impl FnOnce()) {
    app();
    let r = start_inner(line);
    if let Err(e) = r {
        fatal("task-start-failed", format_args!("starting the system's real-time tasks failed: {e:?}"));
    }
}

fn start_inner(line: &str) -> Result<(), Error> {
    let latency_period = ns_option(line, hauki_abi::cmdline::LATENCY_PERIOD_US, 100_000, 1000);
    let report_period = ns_option(line, hauki_abi::cmdline::REPORT_MS, 1_000_000_000, 1_000_000);
    let exit_after = cmdline::get(line, hauki_abi::cmdline::EXIT_AFTER_REPORTS).and_then(|v| v.parse().ok());
    telemetry::start(report_period, exit_after)?;
    if let Some(period) = crate::guest::supervisor::check_period_ns() {
        watchdog::start(period)?;
    }
    // Last: creating a task maps its stack with interrupts off (a few microseconds), so the
    // latency tool starts once the others exist and measures the running system.
    latency::start(latency_period)
}
