//! The watchdog task: every `hauki.linux_watchdog_ms / 8` it asks, for each CPU Linux runs on,
//! whether Linux still takes its events there and keeps a heartbeat pending for it
//! ([`crate::guest::supervisor::check`], told how much CPU the scheduler has given Linux, the
//! idle context, on each of Linux's CPUs). A task of its own, so its cadence does not depend on
//! the telemetry period.

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
        let on = crate::guest::vcpu::running_on();
        let linux: [Option<u64>; crate::arch::percpu::MAX_CPUS] =
            core::array::from_fn(|cpu| (on & (1 << cpu) != 0).then(|| crate::kernel::sched::idle_cpu_ticks(cpu)));
        for cpu in (0..linux.len()).filter(|&c| linux[c].is_some()) {
            crate::guest::supervisor::check(cpu, &linux);
        }
    }
}
