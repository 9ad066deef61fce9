//! The latency tool: a periodic task at the highest priority that measures how late it starts
//! against its programmed release (like Xenomai's `latency` or cyclictest). The telemetry task
//! reports and resets the statistics once per reporting period.

use crate::arch::percpu::{self, MAX_CPUS};
use crate::rt::hist::{FineHist, LatencyStats};
use crate::rt::prio::TaskId;
use crate::rt::sched::Error;
use crate::tasks::api::{self, Periodic, Shared};

/// Each CPU's release latencies of the current reporting window (that CPU's telemetry task reads
/// and resets it; only that CPU touches it).
pub static STATS: [Shared<LatencyStats>; MAX_CPUS] = [const { Shared::new(LatencyStats::new()) }; MAX_CPUS];
/// Each CPU's current window at 100 ns resolution (its telemetry task flips and drains it with
/// [`STATS`]).
pub static FINE: [FineHist; MAX_CPUS] = [const { FineHist::new() }; MAX_CPUS];
/// Each CPU's statistics since boot (never reset).
pub static TOTAL: [Shared<LatencyStats>; MAX_CPUS] = [const { Shared::new(LatencyStats::new()) }; MAX_CPUS];
static TASK: [Shared<Option<TaskId>>; MAX_CPUS] = [const { Shared::new(None) }; MAX_CPUS];
static PERIOD_NS: Shared<u64> = Shared::new(0);

/// Starts the task on every CPU the co-kernel runs on: periodic with `period_ns`, at
/// [`super::PRIO_LATENCY`], each measuring its own CPU.
pub fn start(period_ns: u64) -> Result<(), Error> {
    PERIOD_NS.with(|p| *p = period_ns);
    for cpu in crate::arch::smp::online() {
        let t = Periodic::new("latency").priority(super::PRIO_LATENCY).period_ns(period_ns).cpu(cpu).spawn(run)?;
        // Another CPU's slot is written before that CPU is released (`smp::release`), so no
        // context there can read it meanwhile.
        TASK[cpu].with(|x| *x = Some(t));
    }
    Ok(())
}

/// The latency task of this CPU, once started.
pub fn task() -> Option<TaskId> {
    TASK[percpu::this()].with(|t| *t)
}

/// Its period in ns (0 before it starts).
pub fn period_ns() -> u64 {
    PERIOD_NS.with(|p| *p)
}

fn run(_: usize) -> ! {
    let cpu = percpu::this();
    let (stats, total, fine) = (&STATS[cpu], &TOTAL[cpu], &FINE[cpu]);
    loop {
        let release = api::wait_next_period();
        let late = api::ns_between(release, api::now_tsc());
        stats.with(|s| s.record(late));
        total.with(|s| s.record(late));
        fine.record(late);
    }
}
