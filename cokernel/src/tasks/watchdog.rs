//! The watchdog task: every `hauki.linux_watchdog_ms / 8` it asks whether Linux still takes its
//! events and keeps a heartbeat pending for it ([`crate::guest::supervisor::check`], told how much
//! CPU the scheduler has given Linux, the idle context). A task of its
//! own, so its cadence does not depend on the telemetry period.

use crate::rt::sched::Error;
use crate::tasks::api::Periodic;

/// Starts the task with period `period_ns`.
pub fn start(period_ns: u64) -> Result<(), Error> {
    Periodic::new("watchdog")
        .priority(super::PRIO_WATCHDOG)
        .period_ns(period_ns)
        .phase_ns(period_ns)
        .spawn(run)
        .map(|_| ())
}

fn run(_: usize) -> ! {
    loop {
        crate::tasks::api::wait_next_period();
        crate::guest::supervisor::check(crate::kernel::sched::idle_cpu_ticks());
    }
}
