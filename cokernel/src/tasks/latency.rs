//! The latency tool: a periodic task at the highest priority that measures how late it starts
//! against its programmed release (like Xenomai's `latency` or cyclictest). The telemetry task
//! reports and resets the statistics once per reporting period.

use crate::rt::hist::{FineHist, LatencyStats};
use crate::rt::prio::TaskId;
use crate::rt::sched::Error;
use crate::tasks::api::{self, Periodic, Shared};

/// Release latencies of the current reporting window (the telemetry task reads and resets it).
pub static STATS: Shared<LatencyStats> = Shared::new(LatencyStats::new());
/// The current window's latencies at 100 ns resolution (the telemetry task flips and drains it
/// with [`STATS`]).
pub static FINE: FineHist = FineHist::new();
/// Statistics since boot (never reset).
pub static TOTAL: Shared<LatencyStats> = Shared::new(LatencyStats::new());
static TASK: Shared<Option<TaskId>> = Shared::new(None);
static PERIOD_NS: Shared<u64> = Shared::new(0);

/// Starts the task: periodic with `period_ns`, at [`super::PRIO_LATENCY`].
pub fn start(period_ns: u64) -> Result<(), Error> {
    PERIOD_NS.with(|p| *p = period_ns);
    let t = Periodic::new("latency").priority(super::PRIO_LATENCY).period_ns(period_ns).spawn(run)?;
    TASK.with(|x| *x = Some(t));
    Ok(())
}

/// The latency task, once started.
pub fn task() -> Option<TaskId> {
    TASK.with(|t| *t)
}

/// Its period in ns (0 before it starts).
pub fn period_ns() -> u64 {
    PERIOD_NS.with(|p| *p)
}

fn run(_: usize) -> ! {
    loop {
        let release = api::wait_next_period();
        let late = api::ns_between(release, api::now_tsc());
        STATS.with(|s| s.record(late));
        TOTAL.with(|s| s.record(late));
        FINE.record(late);
    }
}
