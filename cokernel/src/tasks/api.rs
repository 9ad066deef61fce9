//! The task API: what real-time code calls. Declaring a periodic task takes a few lines:
//!
//! ```ignore
//! Periodic::new("pid").priority(200).period_us(1000).spawn(|_| loop {
//!     let release = tasks::api::wait_next_period();
//!     // … one control step …
//! })?;
//! ```
//!
//! Blocking calls go through `int 0xf2` into the scheduler; `post_from_irq` is for interrupt
//! handlers. Times are nanoseconds at this interface, TSC ticks inside.

use core::cell::UnsafeCell;
use core::marker::PhantomData;

use crate::arch::{cpu, tsc};
use crate::kernel::sched::{self as glue, ERROR_BIT, Entry, call};
use crate::rt::prio::TaskId;
use crate::rt::sched::{Error, Kind, Spec};

fn kcall(nr: u64, a: u64, b: u64) -> Result<u64, Error> {
    let r: u64;
    // SAFETY: `int 0xf2` enters the kernel-call gate, which saves and restores every register but
    // RAX (the result) and returns with the same flags and stack.
    unsafe {
        core::arch::asm!(
            "int {vector}",
            vector = const hauki_abi::guest::VECTOR_COKERNEL_KCALL,
            inlateout("rax") nr => r,
            in("rdi") a,
            in("rsi") b,
        )
    };
    if r & ERROR_BIT != 0 { Err(Error::from_code(r as u8)) } else { Ok(r) }
}

/// The CPU the caller runs on (the co-kernel's index: 0 is the boot CPU).
pub fn this_cpu() -> usize {
    crate::arch::percpu::this()
}

/// TSC now.
pub fn now_tsc() -> u64 {
    cpu::rdtsc()
}

/// Nanoseconds between two TSC readings.
pub fn ns_between(from: u64, to: u64) -> u64 {
    tsc::ticks_to_ns(to.saturating_sub(from))
}

/// Ends the current job of a periodic task; returns the release time (TSC) of the next job once
/// it starts. The difference between that and the time the task runs is its release latency.
pub fn wait_next_period() -> u64 {
    kcall(call::WAIT_PERIOD, 0, 0).expect("wait_next_period outside a periodic task")
}

/// Waits for events on the task's port; returns how many arrived.
pub fn wait_event() -> u32 {
    kcall(call::WAIT_EVENT, 0, 0).expect("wait_event outside an event task") as u32
}

/// Posts `n` events to `port` from a task.
pub fn post(port: u16, n: u32) -> Result<(), Error> {
    kcall(call::POST, u64::from(port), u64::from(n)).map(|_| ())
}

/// Posts `n` events to `port` from an interrupt handler.
pub fn post_from_irq(port: u16, n: u32) -> Result<(), Error> {
    glue::post_from_irq(port, n)
}

/// Passes through the scheduler: anything more urgent that became ready runs first.
pub fn yield_now() {
    let _ = kcall(call::YIELD, 0, 0);
}

/// For the idle context (boot code, in-kernel tests and benchmarks): let tasks run until `done`
/// or `timeout_ns` has passed. Returns whether `done` held.
pub fn idle_until(timeout_ns: u64, done: impl Fn() -> bool) -> bool {
    let end = now_tsc() + tsc::ns_to_ticks(timeout_ns);
    while now_tsc() < end {
        if done() {
            return true;
        }
        yield_now();
        crate::arch::idle_once();
    }
    done()
}

/// Sleeps for `ns` (event-driven tasks; periodic tasks are paced by their period).
pub fn sleep_ns(ns: u64) {
    let _ = kcall(call::SLEEP_UNTIL, now_tsc() + tsc::ns_to_ticks(ns), 0);
}

/// Busy work for `ns`, for demos and tests.
pub fn spin_ns(ns: u64) {
    let end = now_tsc() + tsc::ns_to_ticks(ns);
    while now_tsc() < end {
        core::hint::spin_loop();
    }
}

/// Declares a periodic task.
#[derive(Clone, Copy, Debug)]
pub struct Periodic {
    name: &'static str,
    prio: u8,
    period_ns: u64,
    phase_ns: u64,
    deadline_ns: Option<u64>,
    budget_ns: u64,
    epoch_tsc: Option<u64>,
    cpu: Option<usize>,
}

impl Periodic {
    /// A task named `name` with the defaults: priority 100, period 1 ms, released at once,
    /// deadline = period, no budget.
    pub const fn new(name: &'static str) -> Self {
        Periodic {
            name,
            prio: 100,
            period_ns: 1_000_000,
            phase_ns: 0,
            deadline_ns: None,
            budget_ns: 0,
            epoch_tsc: None,
            cpu: None,
        }
    }
    /// The CPU the task runs on, for good (default: the CPU that spawns it). Refused with
    /// [`Error::WrongCpu`] when the co-kernel does not run on that CPU.
    pub const fn cpu(mut self, cpu: usize) -> Self {
        self.cpu = Some(cpu);
        self
    }
    /// Count the phase from this TSC value instead of from the moment of `spawn`: tasks that
    /// share an epoch are released in a fixed relation to each other.
    pub const fn epoch_tsc(mut self, tsc: u64) -> Self {
        self.epoch_tsc = Some(tsc);
        self
    }
    /// 1 (least urgent) ..= 255 (most urgent); 0 is the idle level.
    pub const fn priority(mut self, p: u8) -> Self {
        self.prio = p;
        self
    }
    /// Time between releases, in ns (must not round to 0 TSC ticks).
    pub const fn period_ns(mut self, ns: u64) -> Self {
        self.period_ns = ns;
        self
    }
    /// Time between releases, in µs.
    pub const fn period_us(self, us: u64) -> Self {
        self.period_ns(us * 1000)
    }
    /// Offset of the first release from now (or from the epoch, see [`Periodic::epoch_tsc`]).
    pub const fn phase_ns(mut self, ns: u64) -> Self {
        self.phase_ns = ns;
        self
    }
    /// Relative deadline (default: the period).
    pub const fn deadline_ns(mut self, ns: u64) -> Self {
        self.deadline_ns = Some(ns);
        self
    }
    /// CPU time one job may use before it counts as an overrun (0: no budget).
    pub const fn budget_ns(mut self, ns: u64) -> Self {
        self.budget_ns = ns;
        self
    }

    /// Creates the task running `entry(0)` on its own stack; it runs its set-up at once, then
    /// calls [`wait_next_period`] for each job.
    pub fn spawn(self, entry: Entry) -> Result<TaskId, Error> {
        self.spawn_with(entry, 0)
    }

    /// As [`Periodic::spawn`], running `entry(arg)`.
    pub fn spawn_with(self, entry: Entry, arg: usize) -> Result<TaskId, Error> {
        let period = tsc::ns_to_ticks(self.period_ns);
        let spec = Spec {
            name: self.name,
            prio: self.prio,
            kind: Kind::Periodic {
                period,
                deadline: tsc::ns_to_ticks(self.deadline_ns.unwrap_or(self.period_ns)),
                budget: tsc::ns_to_ticks(self.budget_ns),
            },
            first_release: self.epoch_tsc.unwrap_or_else(now_tsc) + tsc::ns_to_ticks(self.phase_ns),
        };
        glue::spawn_on(self.cpu.unwrap_or_else(this_cpu), spec, entry, arg)
    }
}

/// Declares an event-driven task bound to a port.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    name: &'static str,
    prio: u8,
    port: u16,
    cpu: Option<usize>,
}

impl Event {
    /// A task named `name`, released by events posted to `port` (below
    /// [`crate::rt::sched::MAX_PORTS`], one task per port), priority 100.
    pub const fn new(name: &'static str, port: u16) -> Self {
        Event { name, prio: 100, port, cpu: None }
    }
    /// The CPU the task runs on, for good (default: the CPU that spawns it). Posts to its port
    /// from other CPUs reach it through that CPU's mailbox and an IPI.
    pub const fn cpu(mut self, cpu: usize) -> Self {
        self.cpu = Some(cpu);
        self
    }
    /// 1 (least urgent) ..= 255 (most urgent); 0 is the idle level.
    pub const fn priority(mut self, p: u8) -> Self {
        self.prio = p;
        self
    }
    /// Creates the task running `entry(0)` on its own stack; it runs its set-up at once, then
    /// calls [`wait_event`].
    pub fn spawn(self, entry: Entry) -> Result<TaskId, Error> {
        self.spawn_with(entry, 0)
    }
    /// As [`Event::spawn`], running `entry(arg)`.
    pub fn spawn_with(self, entry: Entry, arg: usize) -> Result<TaskId, Error> {
        let spec = Spec { name: self.name, prio: self.prio, kind: Kind::Event { port: self.port }, first_release: 0 };
        glue::spawn_on(self.cpu.unwrap_or_else(this_cpu), spec, entry, arg)
    }
}

/// A mutex with priority inheritance. Holders are never preempted by tasks of lower priority
/// than the highest waiter.
pub struct Mutex<T> {
    id: u16,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is serialised by the kernel mutex.
unsafe impl<T: Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    /// A mutex guarding `value` (one of the scheduler's [`crate::rt::sched::MAX_MUTEXES`]).
    pub fn new(value: T) -> Result<Self, Error> {
        Self::new_on(this_cpu(), value)
    }

    /// A mutex for the tasks of CPU `cpu` (mutexes, like tasks, belong to one CPU; a task on
    /// another CPU that takes it is refused with [`Error::WrongCpu`]).
    pub fn new_on(cpu: usize, value: T) -> Result<Self, Error> {
        Ok(Mutex { id: glue::mutex_create_on(cpu)?, value: UnsafeCell::new(value) })
    }

    /// Takes the mutex, blocking while another task owns it. Panics if the scheduler refuses:
    /// from the idle context, by the owner itself, or with a full wait queue or held list.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        kcall(call::MUTEX_LOCK, u64::from(self.id), 0).expect("mutex lock");
        MutexGuard { m: self, _not_send: PhantomData }
    }

    /// The scheduler's id for the mutex.
    pub fn id(&self) -> u16 {
        self.id
    }
}

/// Access to a [`Mutex`]'s value while the task owns it; dropping it releases the mutex. It
/// stays with the task that took it (not `Send`).
pub struct MutexGuard<'a, T> {
    m: &'a Mutex<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T> core::ops::Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this task owns the kernel mutex.
        unsafe { &*self.m.value.get() }
    }
}

impl<T> core::ops::DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`.
        unsafe { &mut *self.m.value.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        kcall(call::MUTEX_UNLOCK, u64::from(self.m.id), 0).expect("mutex unlock");
    }
}

/// A counting semaphore.
#[derive(Clone, Copy, Debug)]
pub struct Semaphore(u16);

impl Semaphore {
    /// A semaphore holding `initial` units, at most `max` (`0 < max`, `initial <= max`).
    pub fn new(initial: u32, max: u32) -> Result<Self, Error> {
        Self::new_on(this_cpu(), initial, max)
    }
    /// A semaphore for the tasks of CPU `cpu` (see [`Mutex::new_on`]).
    pub fn new_on(cpu: usize, initial: u32, max: u32) -> Result<Self, Error> {
        glue::sem_create_on(cpu, initial, max).map(Semaphore)
    }
    /// Takes a unit, blocking while there is none. Panics if the scheduler refuses: from the idle
    /// context, or with a full wait queue.
    pub fn wait(&self) {
        kcall(call::SEM_WAIT, u64::from(self.0), 0).expect("semaphore wait");
    }
    /// Takes a unit if there is one, without blocking; whether it took one.
    pub fn try_wait(&self) -> bool {
        kcall(call::SEM_TRY_WAIT, u64::from(self.0), 0).expect("semaphore try_wait") == 1
    }
    /// Gives a unit back, or wakes the highest waiter; refused above the maximum.
    pub fn post(&self) -> Result<(), Error> {
        kcall(call::SEM_POST, u64::from(self.0), 0).map(|_| ())
    }
    /// Units held now.
    pub fn count(&self) -> u32 {
        glue::sem_count(self.0).unwrap_or(0)
    }
}

/// A fixed-capacity message queue (heapless ring) with blocking send and receive.
pub struct Queue<T, const N: usize> {
    buf: spin::Mutex<heapless::Deque<T, N>>,
    items: Semaphore,
    slots: Semaphore,
}

impl<T, const N: usize> Queue<T, N> {
    /// An empty queue of `N` slots (two semaphores of the scheduler's).
    pub fn new() -> Result<Self, Error> {
        Ok(Queue {
            buf: spin::Mutex::new(heapless::Deque::new()),
            items: Semaphore::new(0, N as u32)?,
            slots: Semaphore::new(N as u32, N as u32)?,
        })
    }

    fn locked<R>(&self, f: impl FnOnce(&mut heapless::Deque<T, N>) -> R) -> R {
        // Interrupts off: the holder cannot be preempted, so the spin never waits on this CPU.
        x86_64::instructions::interrupts::without_interrupts(|| f(&mut self.buf.lock()))
    }

    /// Sends, waiting while the queue is full.
    pub fn send(&self, v: T) {
        self.slots.wait();
        let r = self.locked(|q| q.push_back(v));
        debug_assert!(r.is_ok(), "a slot was reserved");
        let _ = self.items.post();
    }

    /// Sends if there is room; gives the value back otherwise.
    pub fn try_send(&self, v: T) -> Result<(), T> {
        if !self.slots.try_wait() {
            return Err(v);
        }
        let r = self.locked(|q| q.push_back(v));
        let _ = self.items.post();
        r
    }

    /// Receives, waiting while the queue is empty.
    pub fn recv(&self) -> T {
        self.items.wait();
        let v = self.locked(|q| q.pop_front()).expect("an item was counted");
        let _ = self.slots.post();
        v
    }

    /// Receives if an item is there, without blocking.
    pub fn try_recv(&self) -> Option<T> {
        if !self.items.try_wait() {
            return None;
        }
        let v = self.locked(|q| q.pop_front());
        let _ = self.slots.post();
        v
    }
}

/// State shared between tasks (and interrupt handlers) on the real-time CPU: every access runs
/// with interrupts off, so it is atomic with respect to every other real-time context. Keep the
/// closures short: they delay interrupts.
pub struct Shared<T>(UnsafeCell<T>);

// SAFETY: all access goes through `with`, which runs with interrupts off on the one real-time CPU.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// State starting as `v`.
    pub const fn new(v: T) -> Self {
        Shared(UnsafeCell::new(v))
    }

    /// Runs `f` on the state with interrupts off (restored afterwards). `f` must not call `with`
    /// on the same `Shared` (that would alias the state).
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        x86_64::instructions::interrupts::without_interrupts(|| {
            // SAFETY: interrupts are off on the only CPU that runs real-time code: no other
            // context can hold a reference now.
            f(unsafe { &mut *self.0.get() })
        })
    }
}

pub use crate::guest::ring::{RecvError, Refusal, SendError};
pub use crate::kernel::channels::{ChannelError, Ends, Policy, Receiver, Sender};

/// Declares a channel to Linux programs (`/dev/hauki/<name>` on Linux's side):
///
/// ```ignore
/// let ends = Channel::messages("setpoint", 64).slots(16).from_linux().port(7).open()?;
/// let mut rx = ends.rx.unwrap();
/// ```
///
/// Records (`messages`) or bytes (`bytes`); a ring to Linux, from Linux or both; what a send
/// into a full ring does ([`Policy`], refuse by default); the port Linux's doorbell posts to (for a
/// task that waits for Linux's records). Opened while the application starts, before Linux runs.
#[derive(Clone, Copy, Debug)]
pub struct Channel {
    name: &'static str,
    stream: bool,
    size: u32,
    slots: u32,
    to_linux: bool,
    from_linux: bool,
    policy: Policy,
    port: Option<u16>,
}

impl Channel {
    /// A channel of records of at most `record_size` bytes (16 slots per ring by default).
    pub const fn messages(name: &'static str, record_size: u32) -> Channel {
        Channel {
            name,
            stream: false,
            size: record_size,
            slots: 16,
            to_linux: false,
            from_linux: false,
            policy: Policy::Refuse,
            port: None,
        }
    }

    /// A channel of bytes, `bytes` per ring (a power of two).
    pub const fn bytes(name: &'static str, bytes: u32) -> Channel {
        Channel { stream: true, size: 0, slots: bytes, ..Channel::messages(name, 0) }
    }

    /// Records per ring (a power of two).
    pub const fn slots(self, slots: u32) -> Channel {
        Channel { slots, ..self }
    }

    /// A ring from the real-time side to Linux.
    pub const fn to_linux(self) -> Channel {
        Channel { to_linux: true, ..self }
    }

    /// A ring from Linux to the real-time side.
    pub const fn from_linux(self) -> Channel {
        Channel { from_linux: true, ..self }
    }

    /// What a send into a full ring does.
    pub const fn policy(self, policy: Policy) -> Channel {
        Channel { policy, ..self }
    }

    /// The port Linux's doorbell posts an event to.
    pub const fn port(self, port: u16) -> Channel {
        Channel { port: Some(port), ..self }
    }

    /// Opens it: the ends real-time tasks use.
    pub fn open(self) -> Result<Ends, ChannelError> {
        let geometry = if self.stream {
            crate::guest::ring::Geometry::stream(self.slots)
        } else {
            crate::guest::ring::Geometry::message(self.slots, self.size)
        }
        .map_err(ChannelError::Geometry)?;
        crate::kernel::channels::open(&crate::kernel::channels::Spec {
            name: self.name,
            geometry,
            to_linux: self.to_linux,
            from_linux: self.from_linux,
            policy: self.policy,
            port: self.port,
        })
    }
}

pub use crate::kernel::devices::{DeviceError, IsaDevice, PciDevice};

/// Claims the first PCI function `vendor:device` for a real-time task: its BAR 0 mapped
/// uncached ([`PciDevice::read32`], [`PciDevice::write32`]), its MSI posting an event to `port`
/// (an `Event` task bound there waits for it), and Linux never seeing it. While the application
/// starts, before Linux runs.
pub fn claim_pci(vendor: u16, device: u16, port: u16) -> Result<PciDevice, DeviceError> {
    crate::kernel::devices::claim_pci(vendor, device, port)
}

/// Claims the PCI function at `bus:dev.func` (segment 0) as [`claim_pci`] claims one by its IDs:
/// for two devices of one kind, or a device known by its slot.
pub fn claim_pci_at(bus: u8, dev: u8, func: u8, port: u16) -> Result<PciDevice, DeviceError> {
    crate::kernel::devices::claim_pci_at(bus, dev, func, port)
}

/// Claims an ISA device: its interrupt line `line` (1..15) and its I/O ports `start..start+len`.
/// The line's interrupts post an event to `port` (a level-triggered line stays masked until
/// [`IsaDevice::end_of_interrupt`]); the ports are reached through [`IsaDevice::inb`] /
/// [`IsaDevice::outb`]. Linux's calls on the line are refused and its command line gets
/// `reserve=START,LEN`, so no Linux driver takes the ports. While the application starts.
pub fn claim_isa(line: u8, start: u16, len: u16, port: u16) -> Result<IsaDevice, DeviceError> {
    crate::kernel::devices::claim_isa(line, start, len, port)
}
