//! The real-time core's pure logic, tested on the host: the scheduler, priorities, the timer
//! queue, the controller's model, latency histograms and the hardware-off window table. The task
//! API and the tasks themselves are in `crate::tasks`; the scheduler's home in `crate::kernel`.
#![forbid(unsafe_code)]

pub mod control;
pub mod hist;
pub mod prio;
pub mod sched;
pub mod timerq;
pub mod windows;
