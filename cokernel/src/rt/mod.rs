//! The real-time core: tasks, scheduler, timer queue, synchronisation, latency statistics, and
//! the demo controller. `sched`, `prio` and `timerq` are pure logic tested on the host; the task
//! API and the built-in tasks run on the co-kernel.

#[cfg(target_os = "none")]
pub mod api;
#[cfg(target_os = "none")]
pub mod bench;
pub mod control;
pub mod hist;
pub mod prio;
pub mod sched;
#[cfg(target_os = "none")]
pub mod tasks;
pub mod timerq;
pub mod windows;
