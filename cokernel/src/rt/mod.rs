//! The real-time core: tasks, scheduler, timer queue, synchronisation, latency statistics, and
//! the demo controller. `sched`, `prio` and `timerq` are pure logic tested on the host; the task
//! API and the built-in tasks run on the co-kernel.

pub mod prio;
pub mod sched;
pub mod timerq;
