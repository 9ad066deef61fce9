//! Linux's virtual clock events: the deadline Linux asks for with `SET_TIMER` on each of its CPUs.
//! That CPU's one-shot timer serves the earlier of it and its tasks' next expiry; when it passes,
//! Linux's timer vector is logged for Linux on that CPU and delivered when Linux resumes there
//! with its flag on.

use core::sync::atomic::{AtomicU64, Ordering};

use super::vcpu;
use crate::arch::percpu::{MAX_CPUS, this};

/// Linux's clock-event deadline on each CPU (TSC; `u64::MAX`: none).
static DEADLINE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(u64::MAX) }; MAX_CPUS];
/// Linux timer events raised.
static EVENTS: AtomicU64 = AtomicU64::new(0);
/// Linux's `SET_TIMER` calls.
static SETS: AtomicU64 = AtomicU64::new(0);

/// Linux's deadline on this CPU, `u64::MAX` when it has none.
pub fn deadline() -> u64 {
    DEADLINE[this()].load(Ordering::Relaxed)
}

/// Records Linux's new deadline on this CPU (interrupts off); Linux reads it back from its vCPU
/// block.
pub fn set(deadline: u64) {
    SETS.fetch_add(1, Ordering::Relaxed);
    DEADLINE[this()].store(deadline, Ordering::Relaxed);
    vcpu::mine().set_timer_deadline(deadline);
}

/// Linux is gone: its deadlines with it.
pub fn clear() {
    for d in &DEADLINE {
        d.store(u64::MAX, Ordering::Relaxed);
    }
}

/// Linux left this CPU: its deadline here with it.
pub fn clear_this() {
    DEADLINE[this()].store(u64::MAX, Ordering::Relaxed);
}

/// If Linux's deadline on this CPU has passed by `now`, logs its timer event (interrupts off).
pub fn expire(now: u64) {
    let d = &DEADLINE[this()];
    if d.load(Ordering::Relaxed) <= now {
        d.store(u64::MAX, Ordering::Relaxed);
        vcpu::mine().set_timer_deadline(u64::MAX);
        EVENTS.fetch_add(1, Ordering::Relaxed);
        vcpu::log_pending(hauki_abi::guest::VECTOR_LINUX_TIMER);
    }
}

/// Timer events raised for Linux and `SET_TIMER` calls so far.
pub fn counts() -> (u64, u64) {
    (EVENTS.load(Ordering::Relaxed), SETS.load(Ordering::Relaxed))
}
