//! The real-time scheduler core: fixed-priority preemptive, O(1) selection, tickless.
//!
//! Pure logic over a task table; the kernel (`kernel::sched`) calls it with interrupts off on the
//! real-time CPU and performs the context switch it decides. Times are TSC ticks.
//!
//! Invariants:
//! - every Ready task (the running one included) is in exactly one ready list, at its effective
//!   priority; the running task is the first of the highest non-empty list;
//! - a task has at most one armed timer (its next release, or a sleep);
//! - a task's effective priority is max(base priority, highest waiter on any mutex it holds)
//!   (priority inheritance, transitive through chains of owners);
//! - the idle task (id 0, priority 0) is always Ready, so selection never fails.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::prio::{LEVELS, Links, NIL, ReadyLists, TaskId};
use super::timerq::TimerQueue;

/// Task-table size: 256 user tasks plus the system's own.
pub const MAX_TASKS: usize = 320;
/// Mutexes that can exist at once.
pub const MAX_MUTEXES: usize = 64;
/// Semaphores that can exist at once.
pub const MAX_SEMS: usize = 128;
/// Event ports (0..MAX_PORTS), each bound to at most one event task.
pub const MAX_PORTS: usize = 256;
/// Mutexes one task may hold at once.
pub const MAX_HELD: usize = 8;
/// Waiters one mutex or semaphore queues.
pub const MAX_WAITERS: usize = 32;
/// The idle task: the context that called [`Scheduler::new`] (the co-kernel's idle loop, or
/// Linux), priority 0, always ready.
pub const IDLE: TaskId = 0;

/// What a blocked task waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Job done; waiting for the next periodic release.
    Period,
    /// Waiting for an event on the task's port.
    Event,
    /// Waiting to own this mutex (queued by priority on it).
    Mutex(u16),
    /// Waiting for a unit of this semaphore (queued by priority on it).
    Sem(u16),
    /// Sleeping until its one-shot timer expires.
    Sleep,
}

/// Where a task-table slot stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// An unused slot.
    Free,
    /// Runnable (the running task included): in the ready list of its effective priority.
    Ready,
    /// Not runnable until what it waits for happens.
    Blocked(Wait),
}

/// What a task has done since it was created (times in TSC ticks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskStats {
    /// Periodic releases, the late ones (released while the previous job ran) included; for an
    /// event task, its wake-ups by events (each `wait_event` that returned events).
    pub releases: u64,
    /// Jobs completed.
    pub completions: u64,
    /// Jobs that missed their deadline: still running at a release after it, or completed
    /// after it. A job counts once.
    pub misses: u64,
    /// Jobs that used more CPU time than the task's budget.
    pub overruns: u64,
    /// Largest response time: completion minus release.
    pub worst_response: u64,
    /// CPU time accounted to the task at each switch away from it and at each job's end.
    pub cpu_time: u64,
    /// Times the scheduler switched to it.
    pub switches_in: u64,
}

/// How a task is released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The idle task: never released, never blocks.
    Idle,
    /// Released every `period` ticks; a job must complete within `deadline` ticks of its
    /// release and should use at most `budget` ticks of CPU (0: no budget).
    Periodic {
        /// Ticks between releases (> 0).
        period: u64,
        /// Relative deadline in ticks (> 0).
        deadline: u64,
        /// CPU time one job may use before it counts as an overrun (0: unlimited).
        budget: u64,
    },
    /// Released by events posted to `port`.
    Event {
        /// The port it is bound to (below [`MAX_PORTS`]).
        port: u16,
    },
}

/// A task control block: one slot of the task table.
#[derive(Clone, Debug)]
pub struct Tcb {
    /// The task's name, for telemetry and fault reports (not necessarily unique).
    pub name: &'static str,
    /// Free, ready or blocked.
    pub state: State,
    /// The priority it was created with (1..=255; 0 is the idle task's).
    pub base_prio: u8,
    /// Its effective priority: `base_prio`, raised by priority inheritance.
    pub prio: u8,
    /// How it is released.
    pub kind: Kind,
    /// Arch state: the saved trap frame pointer while not running.
    pub frame: u64,
    /// Release time of the current (or last) job.
    pub release: u64,
    /// A periodic job is released and not yet completed.
    pub job_active: bool,
    job_missed: bool,
    /// CPU time of the current job so far (checked against the budget when it completes).
    pub job_cpu: u64,
    /// Releases that arrived while the task was not waiting for one (each becomes a job, late).
    pub pending: u32,
    /// Release time of the oldest pending release.
    pending_release: u64,
    /// Events posted to the task's port and not yet taken.
    pub events: u32,
    held: heapless::Vec<u16, MAX_HELD>,
    /// Value the task's blocked call returns when it resumes.
    pub wake_value: Option<u64>,
    /// What it has done since it was created.
    pub stats: TaskStats,
}

impl Tcb {
    const FREE: Tcb = Tcb {
        name: "",
        state: State::Free,
        base_prio: 0,
        prio: 0,
        kind: Kind::Idle,
        frame: 0,
        release: 0,
        job_active: false,
        job_missed: false,
        job_cpu: 0,
        pending: 0,
        pending_release: 0,
        events: 0,
        held: heapless::Vec::new(),
        wake_value: None,
        stats: TaskStats {
            releases: 0,
            completions: 0,
            misses: 0,
            overruns: 0,
            worst_response: 0,
            cpu_time: 0,
            switches_in: 0,
        },
    };
}

/// A priority-ordered wait queue (highest first, FIFO among equals).
#[derive(Clone, Debug, Default)]
struct WaitQueue(heapless::Vec<TaskId, MAX_WAITERS>);

impl WaitQueue {
    const fn new() -> Self {
        WaitQueue(heapless::Vec::new())
    }
    fn insert(&mut self, t: TaskId, tcbs: &[Tcb]) -> Result<(), Error> {
        let p = tcbs[usize::from(t)].prio;
        let i = self.0.iter().position(|&w| tcbs[usize::from(w)].prio < p).unwrap_or(self.0.len());
        self.0.insert(i, t).map_err(|_| Error::TooManyWaiters)
    }
    fn remove(&mut self, t: TaskId) {
        if let Some(i) = self.0.iter().position(|&w| w == t) {
            self.0.remove(i);
        }
    }
    fn pop(&mut self) -> Option<TaskId> {
        (!self.0.is_empty()).then(|| self.0.remove(0))
    }
    fn highest_prio(&self, tcbs: &[Tcb]) -> Option<u8> {
        self.0.first().map(|&w| tcbs[usize::from(w)].prio)
    }
}

#[derive(Clone, Debug, Default)]
struct Mutex {
    in_use: bool,
    owner: Option<TaskId>,
    waiters: WaitQueue,
}

#[derive(Clone, Debug, Default)]
struct Sem {
    in_use: bool,
    count: u32,
    max: u32,
    waiters: WaitQueue,
}

/// Why a scheduler operation was refused. Wire value: the discriminant (see [`Error::from_code`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Error {
    /// All [`MAX_TASKS`] task slots are in use.
    NoFreeTask,
    /// All [`MAX_MUTEXES`] mutexes (or [`MAX_SEMS`] semaphores) exist already.
    NoFreeObject,
    /// Priority 0 asked for a task (it is the idle level).
    BadPriority,
    /// A period or deadline of 0, a port at or above [`MAX_PORTS`], or a semaphore whose
    /// maximum is 0 or below its initial count.
    BadParameters,
    /// Another event task is bound to the port.
    PortInUse,
    /// No such mutex, semaphore or bound port, or an unknown kernel call.
    NoSuchObject,
    /// The caller unlocks a mutex it does not own.
    NotOwner,
    /// The caller locks a mutex it owns already (mutexes do not nest).
    AlreadyOwner,
    /// [`MAX_WAITERS`] tasks wait on the mutex or semaphore already.
    TooManyWaiters,
    /// The caller holds [`MAX_HELD`] mutexes already.
    TooManyHeld,
    /// The call does not fit the caller: a job completion from a task that is not periodic,
    /// an event wait from one that is not an event task, a blocking call from the idle
    /// context, or a task of kind [`Kind::Idle`].
    WrongKind,
    /// A post would raise the semaphore above its maximum.
    SemOverflow,
    /// The object or CPU does not fit: a mutex or semaphore of another CPU's tasks (objects are
    /// per CPU, as tasks are), or a task for a CPU the co-kernel does not run on.
    WrongCpu,
}

impl Error {
    const ALL: [Error; 13] = [
        Error::NoFreeTask,
        Error::NoFreeObject,
        Error::BadPriority,
        Error::BadParameters,
        Error::PortInUse,
        Error::NoSuchObject,
        Error::NotOwner,
        Error::AlreadyOwner,
        Error::TooManyWaiters,
        Error::TooManyHeld,
        Error::WrongKind,
        Error::SemOverflow,
        Error::WrongCpu,
    ];

    /// The error a kernel call's return code names (unknown codes read as `NoSuchObject`).
    pub fn from_code(code: u8) -> Error {
        Self::ALL.iter().copied().find(|e| *e as u8 == code).unwrap_or(Error::NoSuchObject)
    }
}

/// What a task asked for through a kernel call; the result says whether it continues or waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Carry on; the call returns this value at once.
    Done(u64),
    /// The task blocked; the value arrives through `wake_value` when it resumes.
    Blocked,
}

/// The tables live on the heap (built in place there), so creating a scheduler needs little
/// stack and the co-kernel image stays small.
pub struct Scheduler {
    /// The task table, [`MAX_TASKS`] slots indexed by [`TaskId`]; slot [`IDLE`] is the idle task.
    pub tasks: Box<[Tcb]>,
    links: Box<[Links]>,
    ready: Box<ReadyLists>,
    timers: Box<TimerQueue<MAX_TASKS>>,
    mutexes: Box<[Mutex]>,
    sems: Box<[Sem]>,
    ports: [TaskId; MAX_PORTS],
    current: TaskId,
    last_switch: u64,
    /// Switches from one task to another so far.
    pub switches: u64,
    /// Live tasks in creation order (tasks never exit), so walking them costs what exists.
    live: heapless::Vec<TaskId, MAX_TASKS>,
}

/// Parameters of a new task.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// The task's name.
    pub name: &'static str,
    /// Its base priority, 1 (least urgent) ..= 255 (most urgent).
    pub prio: u8,
    /// Periodic or event-driven ([`Kind::Idle`] is refused).
    pub kind: Kind,
    /// First release (periodic tasks), absolute.
    pub first_release: u64,
}

impl Scheduler {
    /// A scheduler whose only task is the idle task (the caller's context), running.
    pub fn new(now: u64) -> Self {
        let mut s = Scheduler {
            tasks: (0..MAX_TASKS).map(|_| Tcb::FREE).collect::<Vec<_>>().into_boxed_slice(),
            links: alloc::vec![Links::UNLINKED; MAX_TASKS].into_boxed_slice(),
            ready: Box::new(ReadyLists::new()),
            timers: Box::new(TimerQueue::new()),
            mutexes: (0..MAX_MUTEXES).map(|_| Mutex::default()).collect::<Vec<_>>().into_boxed_slice(),
            sems: (0..MAX_SEMS).map(|_| Sem::default()).collect::<Vec<_>>().into_boxed_slice(),
            ports: [NIL; MAX_PORTS],
            current: IDLE,
            last_switch: now,
            switches: 0,
            live: heapless::Vec::new(),
        };
        let _ = s.live.push(IDLE);
        let idle = &mut s.tasks[usize::from(IDLE)];
        idle.name = "idle";
        idle.state = State::Ready;
        idle.kind = Kind::Idle;
        s.ready.push_back(&mut s.links, 0, IDLE);
        s
    }

    /// Starts the idle context's CPU-time account at `now` (a CPU that starts running a
    /// scheduler created earlier for it).
    pub fn reset_idle_clock(&mut self, now: u64) {
        self.last_switch = now;
    }

    /// The running task (the last one [`Scheduler::schedule`] picked).
    pub fn current(&self) -> TaskId {
        self.current
    }

    /// Task `t`'s control block. Panics if `t` is not below [`MAX_TASKS`].
    pub fn task(&self, t: TaskId) -> &Tcb {
        &self.tasks[usize::from(t)]
    }

    /// Task `t`'s control block, to change. Panics if `t` is not below [`MAX_TASKS`].
    pub fn task_mut(&mut self, t: TaskId) -> &mut Tcb {
        &mut self.tasks[usize::from(t)]
    }

    /// Live tasks in creation order, idle first.
    pub fn task_ids(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.live.iter().copied()
    }

    /// Number of live tasks, idle included.
    pub fn task_count(&self) -> usize {
        self.live.len()
    }

    /// The `i`-th live task in creation order.
    pub fn nth_task(&self, i: usize) -> Option<TaskId> {
        self.live.get(i).copied()
    }

    /// The earliest armed timer: when the one-shot timer must fire next.
    #[inline]
    pub fn next_expiry(&mut self) -> Option<u64> {
        self.timers.peek().map(|(w, _)| w)
    }

    /// Creates a task, ready to run its set-up code; it then calls `complete_job` (periodic: its
    /// first job is released at `first_release`) or `wait_event` (event tasks).
    pub fn spawn(&mut self, spec: Spec, frame: u64) -> Result<TaskId, Error> {
        if spec.prio == 0 {
            return Err(Error::BadPriority); // level 0 is the idle level
        }
        match spec.kind {
            Kind::Periodic { period, deadline, .. } if period == 0 || deadline == 0 => {
                return Err(Error::BadParameters);
            }
            Kind::Event { port } if usize::from(port) >= MAX_PORTS => return Err(Error::BadParameters),
            Kind::Event { port } if self.ports[usize::from(port)] != NIL => return Err(Error::PortInUse),
            Kind::Idle => return Err(Error::WrongKind),
            _ => {}
        }
        let t = (1..MAX_TASKS as TaskId)
            .find(|&t| self.tasks[usize::from(t)].state == State::Free)
            .ok_or(Error::NoFreeTask)?;
        let tcb = &mut self.tasks[usize::from(t)];
        *tcb = Tcb::FREE;
        tcb.name = spec.name;
        tcb.base_prio = spec.prio;
        tcb.prio = spec.prio;
        tcb.kind = spec.kind;
        tcb.frame = frame;
        match spec.kind {
            // The first release may be any distance away: the one-shot heap holds it. From then on
            // each re-arm is `release + period`, which always goes to the tail of the period's
            // calendar (O(1)); see timerq.
            Kind::Periodic { .. } => self.timers.arm(t, spec.first_release),
            Kind::Event { port } => self.ports[usize::from(port)] = t,
            Kind::Idle => unreachable!(),
        }
        let _ = self.live.push(t); // cannot fail: at most MAX_TASKS slots exist
        self.make_ready(t);
        Ok(t)
    }

    fn make_ready(&mut self, t: TaskId) {
        let tcb = &mut self.tasks[usize::from(t)];
        tcb.state = State::Ready;
        let p = tcb.prio;
        self.ready.push_back(&mut self.links, p, t);
    }

    fn block(&mut self, t: TaskId, why: Wait) {
        let p = self.tasks[usize::from(t)].prio;
        self.ready.remove(&mut self.links, p, t);
        self.tasks[usize::from(t)].state = State::Blocked(why);
    }

    fn wake(&mut self, t: TaskId, value: u64) {
        self.tasks[usize::from(t)].wake_value = Some(value);
        self.make_ready(t);
    }

    /// Handles every timer that has expired by `now`: periodic releases and sleeps.
    pub fn expire(&mut self, now: u64) {
        while let Some((when, t)) = self.timers.pop_expired(now) {
            let tcb = &mut self.tasks[usize::from(t)];
            match (tcb.state, tcb.kind) {
                (State::Blocked(Wait::Period), Kind::Periodic { period, .. }) => {
                    tcb.release = when;
                    tcb.job_active = true;
                    tcb.job_missed = false;
                    tcb.job_cpu = 0;
                    tcb.stats.releases += 1;
                    self.timers.arm_periodic(t, when + period, period);
                    self.wake(t, when);
                }
                (_, Kind::Periodic { period, deadline, .. }) => {
                    // Released while the previous job still runs (or waits on a lock), or before
                    // the task first waited: the job is queued, and starts late.
                    tcb.stats.releases += 1;
                    if tcb.pending == 0 {
                        tcb.pending_release = when;
                    }
                    tcb.pending += 1;
                    if tcb.job_active && !tcb.job_missed && when > tcb.release + deadline {
                        tcb.job_missed = true;
                        tcb.stats.misses += 1;
                    }
                    self.timers.arm_periodic(t, when + period, period);
                }
                (State::Blocked(Wait::Sleep), _) => self.wake(t, when),
                _ => {}
            }
        }
    }

    /// The current periodic task finished its job. Returns `Done(release)` when a late release
    /// is already pending (the next job starts now), else blocks until the next release.
    pub fn complete_job(&mut self, now: u64) -> Result<Outcome, Error> {
        let t = self.current;
        let tcb = &mut self.tasks[usize::from(t)];
        let Kind::Periodic { period, deadline, budget } = tcb.kind else {
            return Err(Error::WrongKind);
        };
        self.account(now);
        let tcb = &mut self.tasks[usize::from(t)];
        if tcb.job_active {
            let response = now.saturating_sub(tcb.release);
            tcb.stats.completions += 1;
            tcb.stats.worst_response = tcb.stats.worst_response.max(response);
            if response > deadline && !tcb.job_missed {
                tcb.stats.misses += 1;
            }
            if budget > 0 && tcb.job_cpu > budget {
                tcb.stats.overruns += 1;
            }
        }
        tcb.job_cpu = 0;
        tcb.job_missed = false;
        if tcb.pending > 0 {
            tcb.pending -= 1;
            tcb.release = tcb.pending_release;
            tcb.pending_release += period;
            tcb.job_active = true;
            let release = tcb.release;
            let p = tcb.prio;
            // To the back of its level: equal-priority tasks get their turn.
            self.ready.remove(&mut self.links, p, t);
            self.ready.push_back(&mut self.links, p, t);
            return Ok(Outcome::Done(release));
        }
        tcb.job_active = false;
        self.block(t, Wait::Period);
        Ok(Outcome::Blocked)
    }

    /// The current task waits for events on its port; returns how many were pending.
    pub fn wait_event(&mut self) -> Result<Outcome, Error> {
        let t = self.current;
        let tcb = &mut self.tasks[usize::from(t)];
        if !matches!(tcb.kind, Kind::Event { .. }) {
            return Err(Error::WrongKind);
        }
        if tcb.events > 0 {
            let n = tcb.events;
            tcb.events = 0;
            tcb.stats.releases += 1;
            return Ok(Outcome::Done(u64::from(n)));
        }
        self.block(t, Wait::Event);
        Ok(Outcome::Blocked)
    }

    /// Posts `n` events to `port` (from an interrupt or a task). Events are counted, never lost.
    pub fn post(&mut self, port: u16, n: u32) -> Result<(), Error> {
        let t = *self.ports.get(usize::from(port)).ok_or(Error::NoSuchObject)?;
        if t == NIL {
            return Err(Error::NoSuchObject);
        }
        let tcb = &mut self.tasks[usize::from(t)];
        tcb.events = tcb.events.saturating_add(n);
        if tcb.state == State::Blocked(Wait::Event) {
            let n = tcb.events;
            tcb.events = 0;
            tcb.stats.releases += 1;
            self.wake(t, u64::from(n));
        }
        Ok(())
    }

    /// The current task sleeps until `until`.
    pub fn sleep_until(&mut self, until: u64, now: u64) -> Outcome {
        if until <= now {
            return Outcome::Done(now);
        }
        let t = self.current;
        if t == IDLE {
            return Outcome::Done(now);
        }
        if matches!(self.tasks[usize::from(t)].kind, Kind::Periodic { .. }) {
            // A periodic task's one timer is its release; it sleeps by spinning out its job instead.
            return Outcome::Done(now);
        }
        self.timers.arm(t, until);
        self.block(t, Wait::Sleep);
        Outcome::Blocked
    }

    // ---- mutexes with priority inheritance ----

    /// A new unowned mutex; returns its id.
    pub fn mutex_create(&mut self) -> Result<u16, Error> {
        let i = self.mutexes.iter().position(|m| !m.in_use).ok_or(Error::NoFreeObject)?;
        self.mutexes[i] = Mutex { in_use: true, ..Default::default() };
        Ok(i as u16)
    }

    fn mutex(&self, m: u16) -> Result<&Mutex, Error> {
        self.mutexes.get(usize::from(m)).filter(|x| x.in_use).ok_or(Error::NoSuchObject)
    }

    /// The task that owns mutex `m` (`None`: unowned, or no such mutex).
    pub fn mutex_owner(&self, m: u16) -> Option<TaskId> {
        self.mutex(m).ok().and_then(|x| x.owner)
    }

    /// Changes `t`'s effective priority, moving it in whatever list orders by priority.
    fn set_prio(&mut self, t: TaskId, p: u8) {
        let old = self.tasks[usize::from(t)].prio;
        if old == p {
            return;
        }
        match self.tasks[usize::from(t)].state {
            State::Ready => {
                self.ready.remove(&mut self.links, old, t);
                self.tasks[usize::from(t)].prio = p;
                if t == self.current {
                    self.ready.push_front(&mut self.links, p, t);
                } else {
                    self.ready.push_back(&mut self.links, p, t);
                }
            }
            State::Blocked(Wait::Mutex(m)) => {
                self.tasks[usize::from(t)].prio = p;
                let mut w = core::mem::take(&mut self.mutexes[usize::from(m)].waiters);
                w.remove(t);
                let _ = w.insert(t, &self.tasks); // was in it, so there is room
                self.mutexes[usize::from(m)].waiters = w;
            }
            State::Blocked(Wait::Sem(s)) => {
                self.tasks[usize::from(t)].prio = p;
                let mut w = core::mem::take(&mut self.sems[usize::from(s)].waiters);
                w.remove(t);
                let _ = w.insert(t, &self.tasks);
                self.sems[usize::from(s)].waiters = w;
            }
            _ => self.tasks[usize::from(t)].prio = p,
        }
    }

    /// Effective priority `t` should have now: its base, raised by the waiters of what it holds.
    fn inherited_prio(&self, t: TaskId) -> u8 {
        let tcb = &self.tasks[usize::from(t)];
        tcb.held
            .iter()
            .filter_map(|&m| self.mutexes[usize::from(m)].waiters.highest_prio(&self.tasks))
            .fold(tcb.base_prio, u8::max)
    }

    /// The current task takes mutex `m`: `Done(0)` when it was free, else the task blocks,
    /// queued by priority, and the owner (and the owners it waits on in turn) inherit its
    /// priority. The idle context may not lock.
    pub fn mutex_lock(&mut self, m: u16) -> Result<Outcome, Error> {
        let t = self.current;
        if t == IDLE {
            return Err(Error::WrongKind); // the idle context never blocks nor holds locks
        }
        let owner = self.mutex(m)?.owner;
        match owner {
            None => {
                self.tasks[usize::from(t)].held.push(m).map_err(|_| Error::TooManyHeld)?;
                self.mutexes[usize::from(m)].owner = Some(t);
                Ok(Outcome::Done(0))
            }
            Some(o) if o == t => Err(Error::AlreadyOwner),
            Some(_) => {
                let mut w = core::mem::take(&mut self.mutexes[usize::from(m)].waiters);
                let r = w.insert(t, &self.tasks);
                self.mutexes[usize::from(m)].waiters = w;
                r?;
                self.block(t, Wait::Mutex(m));
                // Priority inheritance along the chain of owners.
                let p = self.tasks[usize::from(t)].prio;
                let mut m = m;
                for _ in 0..MAX_TASKS {
                    let Some(o) = self.mutexes[usize::from(m)].owner else { break };
                    if self.tasks[usize::from(o)].prio >= p {
                        break;
                    }
                    self.set_prio(o, p);
                    match self.tasks[usize::from(o)].state {
                        State::Blocked(Wait::Mutex(next)) => m = next,
                        _ => break,
                    }
                }
                Ok(Outcome::Blocked)
            }
        }
    }

    /// Releases `m`; the highest waiter (if any) becomes its owner and is woken.
    pub fn mutex_unlock(&mut self, m: u16) -> Result<Outcome, Error> {
        let t = self.current;
        if self.mutex(m)?.owner != Some(t) {
            return Err(Error::NotOwner);
        }
        let held = &mut self.tasks[usize::from(t)].held;
        if let Some(i) = held.iter().position(|&x| x == m) {
            held.remove(i);
        }
        let next = self.mutexes[usize::from(m)].waiters.pop();
        self.mutexes[usize::from(m)].owner = next;
        if let Some(w) = next {
            // The waiter could not have held more than MAX_HELD - 1 (it was refused otherwise).
            let _ = self.tasks[usize::from(w)].held.push(m);
            self.wake(w, 0);
            let p = self.inherited_prio(w);
            self.set_prio(w, p);
        }
        let p = self.inherited_prio(t);
        self.set_prio(t, p);
        Ok(Outcome::Done(0))
    }

    // ---- counting semaphores ----

    /// A new semaphore holding `initial` units, at most `max` (`0 < max`, `initial <= max`);
    /// returns its id.
    pub fn sem_create(&mut self, initial: u32, max: u32) -> Result<u16, Error> {
        if max == 0 || initial > max {
            return Err(Error::BadParameters);
        }
        let i = self.sems.iter().position(|s| !s.in_use).ok_or(Error::NoFreeObject)?;
        self.sems[i] = Sem { in_use: true, count: initial, max, waiters: WaitQueue::new() };
        Ok(i as u16)
    }

    /// Units semaphore `s` holds now (`None`: no such semaphore).
    pub fn sem_count(&self, s: u16) -> Option<u32> {
        self.sems.get(usize::from(s)).filter(|x| x.in_use).map(|x| x.count)
    }

    /// The current task takes a unit of semaphore `s`: `Done(0)` when one was there, else it
    /// blocks, queued by priority. The idle context may not wait.
    pub fn sem_wait(&mut self, s: u16) -> Result<Outcome, Error> {
        let t = self.current;
        if t == IDLE {
            return Err(Error::WrongKind);
        }
        let sem = self.sems.get_mut(usize::from(s)).filter(|x| x.in_use).ok_or(Error::NoSuchObject)?;
        if sem.count > 0 {
            sem.count -= 1;
            return Ok(Outcome::Done(0));
        }
        let mut w = core::mem::take(&mut sem.waiters);
        let r = w.insert(t, &self.tasks);
        self.sems[usize::from(s)].waiters = w;
        r?;
        self.block(t, Wait::Sem(s));
        Ok(Outcome::Blocked)
    }

    /// Non-blocking wait: `Done(1)` if a unit was taken, `Done(0)` if none was available.
    pub fn sem_try_wait(&mut self, s: u16) -> Result<Outcome, Error> {
        let sem = self.sems.get_mut(usize::from(s)).filter(|x| x.in_use).ok_or(Error::NoSuchObject)?;
        if sem.count > 0 {
            sem.count -= 1;
            Ok(Outcome::Done(1))
        } else {
            Ok(Outcome::Done(0))
        }
    }

    /// Callable from interrupt context.
    pub fn sem_post(&mut self, s: u16) -> Result<(), Error> {
        let sem = self.sems.get_mut(usize::from(s)).filter(|x| x.in_use).ok_or(Error::NoSuchObject)?;
        if let Some(w) = sem.waiters.pop() {
            self.wake(w, 0);
            return Ok(());
        }
        if sem.count >= sem.max {
            return Err(Error::SemOverflow);
        }
        sem.count += 1;
        Ok(())
    }

    // ---- selection ----

    fn account(&mut self, now: u64) {
        let ran = now.saturating_sub(self.last_switch);
        let tcb = &mut self.tasks[usize::from(self.current)];
        tcb.stats.cpu_time += ran;
        tcb.job_cpu += ran;
        self.last_switch = now;
    }

    /// Picks the task to run: the first of the highest non-empty ready level. O(1).
    #[inline]
    pub fn schedule(&mut self, now: u64) -> TaskId {
        let next = self.ready.first().unwrap_or(IDLE);
        if next != self.current {
            self.account(now);
            self.current = next;
            self.switches += 1;
            self.tasks[usize::from(next)].stats.switches_in += 1;
        }
        next
    }

    /// Highest ready priority (for tests and the idle decision).
    pub fn highest_ready(&self) -> u8 {
        self.ready.highest_level().unwrap_or(0)
    }

    /// Number of priority levels.
    pub const LEVELS: usize = LEVELS;
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod error_code_tests {
    use super::Error;

    #[test]
    fn every_error_round_trips_through_its_code() {
        for e in Error::ALL {
            assert_eq!(Error::from_code(e as u8), e);
        }
        assert_eq!(Error::ALL.len(), Error::WrongCpu as usize + 1);
    }
}
