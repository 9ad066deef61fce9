//! The scheduler's home: where the one `Scheduler` lives, how tasks start, how a trap becomes a
//! context switch, and the kernel-call gate (`int 0xf2`).
//!
//! Every context (idle and each task) is saved as a [`TrapFrame`] on its own stack. A trap saves
//! the interrupted context's frame pointer in its TCB, lets the scheduler decide, and returns the
//! frame pointer of the task to resume; `trap.S` loads it into RSP and returns from the trap. The
//! scheduler is touched only here, with interrupts off, on the one real-time CPU.

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::cpu::rdtsc;
use crate::arch::frame::{self, TrapFrame};
use crate::arch::idt;
use crate::arch::{context, mm, timer};
use crate::guest::{supervisor, vcpu, vtimer};
use crate::rt::prio::TaskId;
use crate::rt::sched::{Error, Outcome, Scheduler, Spec};

/// Kernel-call numbers (RAX at `int 0xf2`; arguments in RDI, RSI).
pub mod call {
    /// A periodic task's job is done; returns the next job's release (TSC) once it starts.
    pub const WAIT_PERIOD: u64 = 0;
    /// An event task waits for events on its port; returns how many arrived.
    pub const WAIT_EVENT: u64 = 1;
    /// RDI = mutex id: take it, blocking (with priority inheritance) while another task owns it.
    pub const MUTEX_LOCK: u64 = 2;
    /// RDI = mutex id: release it (the caller must own it).
    pub const MUTEX_UNLOCK: u64 = 3;
    /// RDI = semaphore id: take a unit, blocking while there is none.
    pub const SEM_WAIT: u64 = 4;
    /// RDI = semaphore id: give a unit back (or wake its highest waiter).
    pub const SEM_POST: u64 = 5;
    /// RDI = absolute TSC: an event task sleeps until then (returns at once for a periodic one).
    pub const SLEEP_UNTIL: u64 = 6;
    /// RDI = port, RSI = count: post events to the task bound to the port.
    pub const POST: u64 = 7;
    /// RDI = semaphore id: take a unit if there is one; returns 1 if taken, 0 if not.
    pub const SEM_TRY_WAIT: u64 = 8;
    /// No operation: just pass through the scheduler (lets the idle context hand over at once).
    pub const YIELD: u64 = 9;
}

/// A failed call returns this bit set with the error number below it.
pub const ERROR_BIT: u64 = 1 << 63;

/// The one scheduler. Reached only through the three accessors below: [`with`] (task context;
/// turns interrupts off), [`in_trap`] (interrupts already off) and [`peek`] (read-only, for reports).
struct Cell(UnsafeCell<Option<&'static mut Scheduler>>);
// SAFETY: accessed only through the accessors, with interrupts off on the real-time CPU.
unsafe impl Sync for Cell {}

static SCHED: Cell = Cell(UnsafeCell::new(None));

/// The scheduler, from a context that already has interrupts off (a trap, or inside [`with`]).
///
/// # Safety
/// Interrupts must be off, and the reference must not outlive that section or meet another
/// from this function (one real-time CPU: nothing else runs meanwhile).
#[inline(always)]
unsafe fn in_trap() -> Option<&'static mut Scheduler> {
    // SAFETY: the caller's contract makes this the only reference while it lives.
    unsafe { (*SCHED.0.get()).as_deref_mut() }
}

/// A read-only look at the scheduler (fault reports, the idle check), with interrupts off.
#[inline(always)]
fn peek() -> Option<&'static Scheduler> {
    // SAFETY: read-only; callers run with interrupts off on the real-time CPU, so no `&mut` is live.
    unsafe { (*SCHED.0.get()).as_deref() }
}
static RUNNING: AtomicBool = AtomicBool::new(false);
/// The deadline the one-shot timer is armed for (u64::MAX: disarmed).
static ARMED: AtomicU64 = AtomicU64::new(u64::MAX);
/// Linux's `SET_TIMER` call (from Linux's context, hardware interrupts on or off; off here): the
/// deadline is Linux's ([`vtimer`]); the one-shot timer is re-armed if it is now the earliest.
pub fn set_linux_timer(deadline: u64) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        vtimer::set(deadline);
        if running() {
            // SAFETY: interrupts are off on the real-time CPU.
            if let Some(s) = unsafe { in_trap() } {
                rearm(s);
            }
        }
    });
}

/// Runs `f` on the scheduler with interrupts off.
pub fn with<R>(f: impl FnOnce(&mut Scheduler) -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: interrupts are off and only this CPU runs real-time code, so this is the only
        // reference for the duration of `f`.
        let s = unsafe { in_trap() }.expect("real-time core not started");
        f(s)
    })
}

/// Whether the scheduler runs (tasks may exist).
pub fn running() -> bool {
    RUNNING.load(Ordering::Acquire)
}

/// Creates the scheduler; the caller's context becomes the idle task.
pub fn init() {
    let s = Box::leak(Box::new(Scheduler::new(rdtsc())));
    // SAFETY: before RUNNING is set nothing else reads SCHED; interrupts are off around the store.
    x86_64::instructions::interrupts::without_interrupts(|| unsafe { *SCHED.0.get() = Some(s) });
    timer::set_callback(on_timer);
    idt::register(frame::vectors::WAKEUP, vcpu::on_wakeup);
    context::set_task_name_source(current_name);
    RUNNING.store(true, Ordering::Release);
}

/// Name of the running task, for exception reports (no lock: fault context).
pub fn current_name() -> Option<&'static str> {
    if !running() {
        return None;
    }
    // From fault context too: a read of aligned word-sized fields cannot tear.
    let s = peek()?;
    Some(s.task(s.current()).name)
}

/// CPU time (TSC ticks) the idle context — Linux, when it runs — has had, as accounted at the
/// last switch away from it.
pub fn idle_cpu_ticks() -> u64 {
    with(|s| s.task(crate::rt::sched::IDLE).stats.cpu_time)
}

/// Task entry: `entry(arg)` never returns.
pub type Entry = fn(usize) -> !;

extern "C" fn task_start(entry: usize, arg: usize) -> ! {
    // SAFETY: `spawn` stores a valid `Entry` in RDI of the initial frame.
    let f: Entry = unsafe { core::mem::transmute::<usize, Entry>(entry) };
    f(arg)
}

/// Creates a task running `entry(arg)` on a new stack (behind a guard page).
pub fn spawn(spec: Spec, entry: Entry, arg: usize) -> Result<TaskId, Error> {
    // SAFETY: a stack just mapped for this task, which nothing else uses.
    let frame = unsafe {
        frame::initial_frame(mm::alloc_stack(), task_start as *const () as u64, entry as *const () as u64, arg as u64)
    };
    let t = with(|s| s.spawn(spec, frame))?;
    with(rearm);
    Ok(t)
}

fn on_timer(now: u64) {
    ARMED.store(u64::MAX, Ordering::Relaxed);
    vtimer::expire(now);
    crate::guest::irqchip::release_due();
    if running() {
        // SAFETY: timer interrupt context: interrupts are off.
        let s = unsafe { in_trap() };
        if let Some(s) = s {
            s.expire(now);
        }
    }
}

/// Programs the one-shot timer for the earliest armed task timer or Linux's deadline, if it changed.
fn rearm(s: &mut Scheduler) {
    let linux = vtimer::deadline();
    let next = match s.next_expiry() {
        Some(t) => Some(t.min(linux)),
        None => (linux != u64::MAX).then_some(linux),
    };
    match next {
        Some(when) if when != ARMED.load(Ordering::Relaxed) => {
            ARMED.store(when, Ordering::Relaxed);
            timer::arm_at(when);
        }
        None if ARMED.load(Ordering::Relaxed) != u64::MAX => {
            ARMED.store(u64::MAX, Ordering::Relaxed);
            timer::cancel();
        }
        _ => {}
    }
}

/// The end of every interrupt: save the interrupted context, pick the next, resume it.
pub fn switch_point(frame: &mut TrapFrame) -> *mut TrapFrame {
    if !running() {
        return frame;
    }
    // SAFETY: trap context: interrupts are off.
    let s = unsafe { in_trap() }.expect("running implies a scheduler");
    resume(s, frame, rdtsc())
}

fn resume(s: &mut Scheduler, frame: &mut TrapFrame, now: u64) -> *mut TrapFrame {
    if vcpu::active() {
        // The guest shares the LAPIC and may have masked the timer while our deadline was armed:
        // a deadline that has passed without an interrupt is handled now and the timer re-armed.
        let armed = ARMED.load(Ordering::Relaxed);
        if armed != u64::MAX && armed <= now {
            ARMED.store(u64::MAX, Ordering::Relaxed);
            s.expire(now);
        }
        vtimer::expire(now);
    }
    let cur = s.current();
    s.task_mut(cur).frame = frame as *mut TrapFrame as u64;
    let next = s.schedule(now);
    rearm(s);
    if next == crate::rt::sched::IDLE {
        // Linux died: the idle context is taken over (its old frame abandoned).
        if let Some(f) = supervisor::take_over_frame() {
            s.task_mut(next).frame = f as u64;
            return f;
        }
    }
    let t = s.task_mut(next);
    let f = t.frame as *mut TrapFrame;
    if let Some(v) = t.wake_value.take() {
        // SAFETY: `f` is the saved frame of a task blocked in a kernel call; RAX is its result.
        unsafe { (*f).rax = v };
    }
    if next == crate::rt::sched::IDLE {
        // SAFETY: the idle context's saved frame, written by the trap that interrupted it.
        vcpu::replay_on_resume(unsafe { &mut *f });
    }
    f
}

/// Whether the idle context (the guest, once Linux runs) is the one running (no lock: trap context).
pub fn current_is_idle() -> bool {
    if !running() {
        return true;
    }
    peek().is_none_or(|s| s.current() == crate::rt::sched::IDLE)
}

fn encode(r: Result<Outcome, Error>) -> Option<u64> {
    match r {
        Ok(Outcome::Done(v)) => Some(v),
        Ok(Outcome::Blocked) => None,
        Err(e) => Some(ERROR_BIT | e as u64),
    }
}

/// `int 0xf2` from a task.
pub fn kcall(frame: &mut TrapFrame) -> *mut TrapFrame {
    if !running() {
        frame.rax = ERROR_BIT | Error::WrongKind as u64;
        return frame;
    }
    // SAFETY: trap context: interrupts are off.
    let s = unsafe { in_trap() }.expect("running implies a scheduler");
    let now = rdtsc();
    let (a, b) = (frame.rdi, frame.rsi);
    let r = match frame.rax {
        call::WAIT_PERIOD => s.complete_job(now),
        call::WAIT_EVENT => s.wait_event(),
        call::MUTEX_LOCK => s.mutex_lock(a as u16),
        call::MUTEX_UNLOCK => s.mutex_unlock(a as u16),
        call::SEM_WAIT => s.sem_wait(a as u16),
        call::SEM_TRY_WAIT => s.sem_try_wait(a as u16),
        call::SEM_POST => s.sem_post(a as u16).map(|_| Outcome::Done(0)),
        call::SLEEP_UNTIL => Ok(s.sleep_until(a, now)),
        call::POST => s.post(a as u16, b as u32).map(|_| Outcome::Done(0)),
        call::YIELD => Ok(Outcome::Done(0)),
        _ => Err(Error::NoSuchObject),
    };
    if let Some(v) = encode(r) {
        frame.rax = v;
    }
    resume(s, frame, now)
}

/// Posts `n` events to `port` from Linux's context (its `CHANNEL_NOTIFY` call), interrupts off;
/// whether a task is bound to the port (the caller then makes the scheduler run).
pub fn post_from_linux(port: u16, n: u32) -> bool {
    // SAFETY: the caller turned interrupts off; Linux's call runs on the real-time CPU.
    unsafe { in_trap() }.is_some_and(|s| s.post(port, n).is_ok())
}

/// Posts events to a port from interrupt context (a device handler registered with `idt`).
pub fn post_from_irq(port: u16, n: u32) -> Result<(), Error> {
    // SAFETY: interrupt context: interrupts are off; the switch happens at the trap's end.
    let s = unsafe { in_trap() }.ok_or(Error::NoSuchObject)?;
    s.post(port, n)
}
