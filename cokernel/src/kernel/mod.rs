//! The kernel: the only layer that knows both the real-time tasks and Linux. It sits on the
//! hardware layer (`arch`) and Linux's runtime (`guest`), and below the tasks and `kmain`.
//!
//! [`trap`] decides what each trap means, [`sched`] owns the scheduler and the switch point,
//! [`linux_calls`] serves Linux's calls, [`channels`] connects real-time tasks and Linux programs,
//! and [`counters`] is the one place telemetry reads the co-kernel's counters from.

pub mod channels;
pub mod counters;
pub mod devices;
pub mod linux_calls;
pub mod sched;
pub mod trap;
