//! Linux's virtual clock event: the one deadline Linux asks for with `SET_TIMER`. The scheduler's
//! one-shot timer serves the earlier of it and the tasks' next expiry; when it passes, Linux's
//! timer vector is logged for it and delivered when Linux resumes with its flag on.

use core::sync::atomic::{AtomicU64, Ordering};

use super::vcpu;

/// Linux's clock-event deadline (TSC; `u64::MAX`: none).
static DEADLINE: AtomicU64 = AtomicU64::new(u64::MAX);
/// Linux timer events raised.
static EVENTS: AtomicU64 = AtomicU64::new(0);
/// Linux's `SET_TIMER` calls.
static SETS: AtomicU64 = AtomicU64::new(0);

/// Linux's deadline, `u64::MAX` when it has none.
pub fn deadline() -> u64 {
    DEADLINE.load(Ordering::Relaxed)
}

/// Records Linux's new deadline (interrupts off); Linux reads it back from its vCPU block.
pub fn set(deadline: u64) {
    SETS.fetch_add(1, Ordering::Relaxed);
    DEADLINE.store(deadline, Ordering::Relaxed);
    vcpu::VCPU.set_timer_deadline(deadline);
}

/// Linux is gone: its deadline with it.
pub fn clear() {
    DEADLINE.store(u64::MAX, Ordering::Relaxed);
}

/// If Linux's deadline has passed by `now`, logs its timer event (interrupts off).
pub fn expire(now: u64) {
    if DEADLINE.load(Ordering::Relaxed) <= now {
        DEADLINE.store(u64::MAX, Ordering::Relaxed);
        vcpu::VCPU.set_timer_deadline(u64::MAX);
        EVENTS.fetch_add(1, Ordering::Relaxed);
        vcpu::log_pending(hauki_abi::guest::VECTOR_LINUX_TIMER);
    }
}

/// Timer events raised for Linux and `SET_TIMER` calls so far.
pub fn counts() -> (u64, u64) {
    (EVENTS.load(Ordering::Relaxed), SETS.load(Ordering::Relaxed))
}
