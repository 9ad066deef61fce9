//! The scheduler's home: where the one `Scheduler` lives, how tasks start, how a trap becomes a
//! context switch, and the kernel-call gate (`int 0xf2`).
//!
//! Every context (idle and each task) is saved as a [`TrapFrame`] on its own stack. A trap saves
//! the interrupted context's frame pointer in its TCB, lets the scheduler decide, and returns the
//! frame pointer of the task to resume; `trap.S` loads it into RSP and returns from the trap. The
//! scheduler is touched only here, with interrupts off, on the one real-time CPU.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, Ordering};

use crate::arch::cpu::rdtsc;
use crate::arch::frame::{self, TrapFrame};
use crate::arch::idt;
use crate::arch::percpu::{self, MAX_CPUS};
use crate::arch::{context, mm, timer};
use crate::guest::{supervisor, vcpu, vtimer};
use crate::rt::prio::TaskId;
use crate::rt::sched::{Error, Kind, MAX_PORTS, Outcome, Scheduler, Spec};

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

/// One scheduler per CPU (partitioned fixed-priority scheduling: a task stays on the CPU it was
/// created on). Each sits behind a spin lock that its own CPU takes on every trap (uncontended:
/// one atomic exchange) and another CPU takes only to create a task or an object there. The lock
/// is held with interrupts off for one O(1) scheduler operation, so a CPU that finds it taken
/// waits at most that long. No path holds two of them. Events posted to another CPU's port
/// travel through that CPU's [`Mailbox`] instead, lock-free.
struct Slot {
    sched: spin::Mutex<Option<&'static mut Scheduler>>,
    /// The CPU runs its scheduler (tasks may exist and its timer drives them).
    running: AtomicBool,
    /// The deadline this CPU's one-shot timer is armed for (u64::MAX: disarmed).
    armed: AtomicU64,
    /// The scheduler, for [`peek`]'s lock-free look (null before it is created).
    ptr: AtomicPtr<Scheduler>,
}

static SLOTS: [Slot; MAX_CPUS] = [const {
    Slot {
        sched: spin::Mutex::new(None),
        running: AtomicBool::new(false),
        armed: AtomicU64::new(u64::MAX),
        ptr: AtomicPtr::new(core::ptr::null_mut()),
    }
}; MAX_CPUS];

pub use crate::guest::vcpu::LINUX_CPU;

/// A scheduler, locked; interrupts are off while it lives.
struct Guard(spin::MutexGuard<'static, Option<&'static mut Scheduler>>);

impl core::ops::Deref for Guard {
    type Target = Scheduler;
    fn deref(&self) -> &Scheduler {
        self.0.as_deref().expect("a guard exists only for a created scheduler")
    }
}

impl core::ops::DerefMut for Guard {
    fn deref_mut(&mut self) -> &mut Scheduler {
        self.0.as_deref_mut().expect("a guard exists only for a created scheduler")
    }
}

/// CPU `cpu`'s scheduler, locked, from a context that already has interrupts off (a trap, or
/// inside [`with`]); `None` before it is created.
///
/// # Safety
/// Interrupts must be off, and the caller must hold no other scheduler's guard.
#[inline(always)]
unsafe fn lock(cpu: usize) -> Option<Guard> {
    let g = SLOTS[cpu].sched.lock();
    if g.is_none() { None } else { Some(Guard(g)) }
}

/// This CPU's scheduler, locked (see [`lock`]).
///
/// # Safety
/// As [`lock`].
#[inline(always)]
unsafe fn in_trap() -> Option<Guard> {
    // SAFETY: the caller's contract.
    unsafe { lock(percpu::this()) }
}

/// A read-only look at this CPU's scheduler without its lock (fault reports, the idle check),
/// with interrupts off. Only this CPU changes which task is current, so `current` is exact; other
/// fields may be in the middle of another CPU's task creation and are not read here.
#[inline(always)]
fn peek() -> Option<&'static Scheduler> {
    // SAFETY: read-only, of aligned word-sized fields this CPU alone writes (see above); the
    // scheduler is leaked, so the pointer stays valid.
    unsafe { SLOTS[percpu::this()].ptr.load(Ordering::Acquire).as_ref() }
}

/// Linux's `SET_TIMER` call (from Linux's context, hardware interrupts on or off; off here): the
/// deadline is Linux's ([`vtimer`]); the one-shot timer is re-armed if it is now the earliest.
pub fn set_linux_timer(deadline: u64) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        vtimer::set(deadline);
        if running() {
            // SAFETY: interrupts are off; no other guard is held.
            if let Some(mut s) = unsafe { in_trap() } {
                rearm(&mut s);
            }
        }
    });
}

/// Runs `f` on this CPU's scheduler with interrupts off.
pub fn with<R>(f: impl FnOnce(&mut Scheduler) -> R) -> R {
    with_cpu(percpu::this(), f)
}

/// Runs `f` on CPU `cpu`'s scheduler with interrupts off (another CPU's: under its lock, for an
/// O(1) operation such as creating a task or an object there).
pub fn with_cpu<R>(cpu: usize, f: impl FnOnce(&mut Scheduler) -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: interrupts are off and no other guard is held.
        let mut s = unsafe { lock(cpu) }.expect("real-time core not started on that CPU");
        f(&mut s)
    })
}

/// Whether this CPU's scheduler runs (tasks may exist).
pub fn running() -> bool {
    SLOTS[percpu::this()].running.load(Ordering::Acquire)
}

/// Whether CPU `cpu`'s scheduler exists (tasks may be created there).
pub fn exists(cpu: usize) -> bool {
    // `prepare` sets the pointer once the scheduler is in its lock.
    SLOTS.get(cpu).is_some_and(|s| !s.ptr.load(Ordering::Acquire).is_null())
}

/// `hauki.icount_pace_us` in TSC ticks (0: off): the furthest ahead any CPU's timer is armed.
static PACE_TICKS: AtomicU64 = AtomicU64::new(0);

/// Under QEMU `-icount` with several CPUs: arm no CPU's timer more than `us` µs ahead
/// (`hauki.icount_pace_us`, an emulator aid; see shared-abi). Each CPU then wakes at least that
/// often, which costs its idle loop (or Linux) a timer interrupt per period.
pub fn set_icount_pace_us(us: u64) {
    PACE_TICKS.store(crate::arch::tsc::ns_to_ticks(us.saturating_mul(1000)), Ordering::Relaxed);
}

/// Creates the boot CPU's scheduler; the caller's context becomes its idle task.
pub fn init() {
    prepare(0);
    timer::set_callback(on_timer);
    idt::register(frame::vectors::WAKEUP, on_wakeup);
    context::set_task_name_source(current_name);
    SLOTS[0].running.store(true, Ordering::Release);
}

/// Creates CPU `cpu`'s scheduler (from the boot CPU, before that CPU runs it): tasks may be
/// created there at once; they run once the CPU calls [`start_this_cpu`].
pub fn prepare(cpu: usize) {
    let s = Box::leak(Box::new(Scheduler::new(rdtsc())));
    let ptr = &raw mut *s;
    x86_64::instructions::interrupts::without_interrupts(|| *SLOTS[cpu].sched.lock() = Some(s));
    SLOTS[cpu].ptr.store(ptr, Ordering::Release);
}

/// On a secondary CPU whose scheduler [`prepare`] created: its context becomes the idle task, and
/// its timer starts driving the tasks created for it. Interrupts must be off.
pub fn start_this_cpu() {
    let cpu = percpu::this();
    SLOTS[cpu].running.store(true, Ordering::Release);
    // SAFETY: interrupts are off (the caller's contract); no other guard is held.
    if let Some(mut s) = unsafe { in_trap() } {
        let now = rdtsc();
        s.reset_idle_clock(now);
        rearm(&mut s);
    }
    // Tasks created for this CPU before it ran, and posts that reached its mailbox meanwhile
    // (their IPI found it not yet running): the wake-up vector, taken as soon as the idle loop
    // turns interrupts on, drains the mailbox and passes the switch point.
    kick(cpu);
}

/// Sends CPU `cpu` the wake-up IPI: it drains its mailbox and passes its switch point.
pub fn kick(cpu: usize) {
    if let Some(id) = percpu::apic_id(cpu) {
        crate::arch::apic::send_fixed(id, frame::vectors::WAKEUP);
    }
}

/// Events posted to one CPU's ports from other CPUs: a count per port and a bit per port that
/// has one. A poster adds its count, then sets the bit, then sends the wake-up IPI; the CPU clears
/// a bit before it takes the count, so an event is never lost (at worst a bit finds no count).
/// Wait-free for posters: no lock is shared between CPUs on this path.
struct Mailbox {
    counts: [AtomicU32; MAX_PORTS],
    bits: [AtomicU64; MAX_PORTS / 64],
}

static MAILBOXES: [Mailbox; MAX_CPUS] = [const {
    Mailbox { counts: [const { AtomicU32::new(0) }; MAX_PORTS], bits: [const { AtomicU64::new(0) }; MAX_PORTS / 64] }
}; MAX_CPUS];

/// Which CPU each port's task runs on (`NO_CPU`: no task is bound to it). Ports are one
/// namespace over every CPU.
static PORT_CPU: [AtomicU8; MAX_PORTS] = [const { AtomicU8::new(NO_CPU) }; MAX_PORTS];
const NO_CPU: u8 = u8::MAX;

/// Cross-CPU posts since boot: (sent, delivered by the receiving CPU).
static REMOTE_SENT: AtomicU64 = AtomicU64::new(0);
static REMOTE_DELIVERED: AtomicU64 = AtomicU64::new(0);

/// Cross-CPU posts since boot: (posted, delivered).
pub fn remote_posts() -> (u64, u64) {
    (REMOTE_SENT.load(Ordering::Relaxed), REMOTE_DELIVERED.load(Ordering::Relaxed))
}

/// The CPU whose task is bound to `port`, if any.
pub fn port_cpu(port: u16) -> Option<usize> {
    let c = PORT_CPU.get(usize::from(port))?.load(Ordering::Acquire);
    (c != NO_CPU).then_some(usize::from(c))
}

/// Posts to `port` on another CPU: counted in its mailbox, then the IPI.
fn post_remote(cpu: usize, port: u16, n: u32) {
    let mb = &MAILBOXES[cpu];
    let p = usize::from(port);
    let _ = mb.counts[p].fetch_update(Ordering::AcqRel, Ordering::Relaxed, |c| Some(c.saturating_add(n)));
    mb.bits[p / 64].fetch_or(1 << (p % 64), Ordering::Release);
    REMOTE_SENT.fetch_add(1, Ordering::Relaxed);
    kick(cpu);
}

/// Posts `n` events to `port`, wherever its task runs: this CPU's scheduler `s` directly, another
/// CPU's through its mailbox.
fn route_post(s: Option<&mut Scheduler>, port: u16, n: u32) -> Result<(), Error> {
    match port_cpu(port) {
        None => Err(Error::NoSuchObject),
        Some(c) if c == percpu::this() => s.ok_or(Error::NoSuchObject)?.post(port, n),
        Some(c) => {
            post_remote(c, port, n);
            Ok(())
        }
    }
}

/// The wake-up vector: events other CPUs posted here reach their tasks; the switch point then
/// picks the next task (and, on Linux's CPU, replays Linux's events).
fn on_wakeup(_frame: &mut TrapFrame) {
    if !running() {
        return;
    }
    let mb = &MAILBOXES[percpu::this()];
    // SAFETY: interrupt context: interrupts are off; no other guard is held.
    let Some(mut s) = (unsafe { in_trap() }) else { return };
    for (w, word) in mb.bits.iter().enumerate() {
        let mut bits = word.swap(0, Ordering::Acquire);
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let n = mb.counts[w * 64 + b].swap(0, Ordering::AcqRel);
            if n > 0 && s.post((w * 64 + b) as u16, n).is_ok() {
                REMOTE_DELIVERED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Mutex and semaphore ids name their CPU in their high byte: objects are per CPU, as tasks are.
fn tag(cpu: usize, id: u16) -> u16 {
    ((cpu as u16) << 8) | id
}

/// The local id of a tagged object id on this CPU; refused when it is another CPU's.
fn local_id(id: u64) -> Result<u16, Error> {
    if (id >> 8) as usize != percpu::this() {
        return Err(Error::WrongCpu);
    }
    Ok((id & 0xff) as u16)
}

/// Creates a mutex for tasks on CPU `cpu`; its id names the CPU.
pub fn mutex_create_on(cpu: usize) -> Result<u16, Error> {
    if !exists(cpu) {
        return Err(Error::WrongCpu);
    }
    with_cpu(cpu, |s| s.mutex_create()).map(|id| tag(cpu, id))
}

/// Creates a semaphore for tasks on CPU `cpu`; its id names the CPU.
pub fn sem_create_on(cpu: usize, initial: u32, max: u32) -> Result<u16, Error> {
    if !exists(cpu) {
        return Err(Error::WrongCpu);
    }
    with_cpu(cpu, |s| s.sem_create(initial, max)).map(|id| tag(cpu, id))
}

/// Units a semaphore (a tagged id) holds now.
pub fn sem_count(id: u16) -> Option<u32> {
    let cpu = usize::from(id >> 8);
    if !exists(cpu) {
        return None;
    }
    with_cpu(cpu, |s| s.sem_count(id & 0xff))
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

/// CPU time (TSC ticks) the idle context of CPU `cpu` — Linux, when it runs there — has had, as
/// accounted at the last switch away from it.
pub fn idle_cpu_ticks(cpu: usize) -> u64 {
    with_cpu(cpu, |s| s.task(crate::rt::sched::IDLE).stats.cpu_time)
}

/// Task entry: `entry(arg)` never returns.
pub type Entry = fn(usize) -> !;

extern "C" fn task_start(entry: usize, arg: usize) -> ! {
    // SAFETY: `spawn` stores a valid `Entry` in RDI of the initial frame.
    let f: Entry = unsafe { core::mem::transmute::<usize, Entry>(entry) };
    f(arg)
}

/// Creates a task running `entry(arg)` on a new stack (behind a guard page), on this CPU.
pub fn spawn(spec: Spec, entry: Entry, arg: usize) -> Result<TaskId, Error> {
    spawn_on(percpu::this(), spec, entry, arg)
}

/// Creates a task on CPU `cpu` (where it stays). Another CPU's scheduler is locked for the
/// insertion only, then that CPU is sent the wake-up IPI to re-arm its timer.
pub fn spawn_on(cpu: usize, spec: Spec, entry: Entry, arg: usize) -> Result<TaskId, Error> {
    if cpu >= MAX_CPUS || !exists(cpu) {
        return Err(Error::WrongCpu);
    }
    let port = match spec.kind {
        Kind::Event { port } => {
            let slot = PORT_CPU.get(usize::from(port)).ok_or(Error::BadParameters)?;
            if slot.compare_exchange(NO_CPU, cpu as u8, Ordering::AcqRel, Ordering::Acquire).is_err() {
                return Err(Error::PortInUse);
            }
            Some(slot)
        }
        _ => None,
    };
    // SAFETY: a stack just mapped for this task, which nothing else uses.
    let frame = unsafe {
        frame::initial_frame(mm::alloc_stack(), task_start as *const () as u64, entry as *const () as u64, arg as u64)
    };
    let t = with_cpu(cpu, |s| s.spawn(spec, frame));
    if let (Err(_), Some(slot)) = (&t, port) {
        slot.store(NO_CPU, Ordering::Release);
    }
    let t = t?;
    if cpu == percpu::this() {
        with(rearm);
    } else if SLOTS[cpu].running.load(Ordering::Acquire) {
        kick(cpu);
    }
    Ok(t)
}

fn on_timer(now: u64) {
    let cpu = percpu::this();
    SLOTS[cpu].armed.store(u64::MAX, Ordering::Relaxed);
    if vcpu::active() {
        vtimer::expire(now);
    }
    if cpu == LINUX_CPU {
        crate::guest::irqchip::release_due();
    }
    if running() {
        // SAFETY: timer interrupt context: interrupts are off; no other guard is held.
        if let Some(mut s) = unsafe { in_trap() } {
            s.expire(now);
        }
    }
}

/// Programs this CPU's one-shot timer for the earliest armed task timer (or, on Linux's CPU,
/// Linux's deadline), if it changed.
fn rearm(s: &mut Scheduler) {
    let cpu = percpu::this();
    let armed = &SLOTS[cpu].armed;
    let linux = vtimer::deadline();
    let mut next = match s.next_expiry() {
        Some(t) => Some(t.min(linux)),
        None => (linux != u64::MAX).then_some(linux),
    };
    let pace = PACE_TICKS.load(Ordering::Relaxed);
    if pace != 0 {
        let cap = rdtsc() + pace;
        next = Some(next.map_or(cap, |n| n.min(cap)));
    }
    match next {
        Some(when) if when != armed.load(Ordering::Relaxed) => {
            armed.store(when, Ordering::Relaxed);
            timer::arm_at(when);
        }
        None if armed.load(Ordering::Relaxed) != u64::MAX => {
            armed.store(u64::MAX, Ordering::Relaxed);
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
    // SAFETY: trap context: interrupts are off; no other guard is held.
    let mut s = unsafe { in_trap() }.expect("running implies a scheduler");
    resume(&mut s, frame, rdtsc())
}

fn resume(s: &mut Scheduler, frame: &mut TrapFrame, now: u64) -> *mut TrapFrame {
    if vcpu::active() {
        // The guest shares the LAPIC and may have masked the timer while our deadline was armed:
        // a deadline that has passed without an interrupt is handled now and the timer re-armed.
        let armed = &SLOTS[percpu::this()].armed;
        let at = armed.load(Ordering::Relaxed);
        if at != u64::MAX && at <= now {
            armed.store(u64::MAX, Ordering::Relaxed);
            timer::note_unseen(now - at);
            s.expire(now);
        }
        vtimer::expire(now);
    }
    let cur = s.current();
    s.task_mut(cur).frame = frame as *mut TrapFrame as u64;
    let next = s.schedule(now);
    rearm(s);
    if next == crate::rt::sched::IDLE {
        // Linux died: the idle context is taken over on its boot CPU, and leaves Linux on its
        // other CPUs (the old frames abandoned).
        let taken = if percpu::this() == LINUX_CPU {
            supervisor::take_over_frame()
        } else if vcpu::active() {
            supervisor::evict_frame()
        } else {
            None
        };
        if let Some(f) = taken {
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
    if next == crate::rt::sched::IDLE && vcpu::active() {
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
    let now = rdtsc();
    let (a, b) = (frame.rdi, frame.rsi);
    // A post to another CPU's port goes through its mailbox before this CPU's lock is taken (no
    // path holds two scheduler locks).
    let remote = if frame.rax == call::POST { port_cpu(a as u16).filter(|&c| c != percpu::this()) } else { None };
    if let Some(c) = remote {
        post_remote(c, a as u16, b as u32);
    }
    // SAFETY: trap context: interrupts are off; no other guard is held.
    let mut guard = unsafe { in_trap() }.expect("running implies a scheduler");
    let s = &mut *guard;
    let r = match frame.rax {
        call::WAIT_PERIOD => s.complete_job(now),
        call::WAIT_EVENT => s.wait_event(),
        call::MUTEX_LOCK => local_id(a).and_then(|m| s.mutex_lock(m)),
        call::MUTEX_UNLOCK => local_id(a).and_then(|m| s.mutex_unlock(m)),
        call::SEM_WAIT => local_id(a).and_then(|m| s.sem_wait(m)),
        call::SEM_TRY_WAIT => local_id(a).and_then(|m| s.sem_try_wait(m)),
        call::SEM_POST => local_id(a).and_then(|m| s.sem_post(m)).map(|_| Outcome::Done(0)),
        call::SLEEP_UNTIL => Ok(s.sleep_until(a, now)),
        call::POST if remote.is_some() => Ok(Outcome::Done(0)),
        call::POST => route_post(Some(s), a as u16, b as u32).map(|_| Outcome::Done(0)),
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
    post_from_irq(port, n).is_ok()
}

/// Posts events to a port from interrupt context (a device handler registered with `idt`), to
/// whichever CPU its task runs on.
pub fn post_from_irq(port: u16, n: u32) -> Result<(), Error> {
    if port_cpu(port).is_some_and(|c| c != percpu::this()) {
        return route_post(None, port, n);
    }
    // SAFETY: interrupt context (or Linux's call with interrupts off); no other guard is held.
    let mut s = unsafe { in_trap() }.ok_or(Error::NoSuchObject)?;
    route_post(Some(&mut s), port, n)
}
