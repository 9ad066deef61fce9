//! One IDT for two kernels (contract C1, C4, C5): the guest (Linux) registers its gate table; for
//! vectors it owns, the co-kernel forwards the event to the guest's gate target with the exact
//! hardware frame, on the stack the event was taken on, with every register as at the event —
//! when the guest is the interrupted context. When a real-time task was running instead, the
//! event is logged as pending and replayed the moment the guest is resumed (one per resume; a
//! self-IPI brings the next at once, so nothing waits for a later tick).
//!
//! Interrupts are acknowledged (EOI) by the co-kernel when they arrive; Linux's own APIC EOI is a
//! no-op (the series' pv irqchip patch replaces its `eoi` callback).
//!
//! The forwarding itself is the tail of `trap.S`: it restores every register, drops the stub's
//! vector (and the fake error code on vectors without one) and jumps to the target stored here.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use hauki_abi::guest::{MASK_DISABLED, MASK_ENABLED, Vcpu};

use super::calls::KernelImage;

use crate::arch::frame::{TrapFrame, vectors};
use crate::arch::percpu::{MAX_CPUS, this};
use crate::arch::{apic, cpu, exceptions, timer};

/// One of Linux's vCPU blocks: its soft interrupt flag and the pending summary on one CPU. Linux
/// writes `mask` (through its pv irq ops) from its own context on that CPU; the co-kernel reads and
/// writes it there only with interrupts off. Shared memory: treated as Linux's allegation (only the
/// mask byte's zero/non-zero value is used).
#[repr(align(128))]
pub struct VcpuCell(UnsafeCell<Vcpu>);
// SAFETY: accesses are single bytes or words, volatile, on the CPU the block belongs to (Linux's
// code on it, or the co-kernel's traps there).
unsafe impl Sync for VcpuCell {}

impl VcpuCell {
    const fn new() -> Self {
        Self(UnsafeCell::new(Vcpu {
            mask: MASK_DISABLED,
            pending_any: 0,
            pad0: [0; 6],
            pending: [0; 4],
            idt_base: 0,
            idt_limit: 0,
            pad1: [0; 6],
            timer_deadline: u64::MAX,
            forwarded: 0,
            replayed: 0,
            upcalls: 0,
            hard_cli_max_tsc: 0,
            reserved: [0; 4],
        }))
    }
}

/// Linux's vCPU blocks, one per CPU, in the co-kernel's image (the shared range): the handoff
/// gives the boot CPU's; Linux asks for each secondary's (`VCPU_OF`) before it starts it. Each
/// starts with the flag off and no deadline.
static VCPUS: [VcpuCell; MAX_CPUS] = [const { VcpuCell::new() }; MAX_CPUS];

/// CPU `cpu`'s vCPU block.
pub fn block(cpu: usize) -> &'static VcpuCell {
    &VCPUS[cpu.min(MAX_CPUS - 1)]
}

/// This CPU's vCPU block.
#[inline]
pub fn mine() -> &'static VcpuCell {
    &VCPUS[this()]
}

impl VcpuCell {
    /// The block's virtual address (in the co-kernel's range, which Linux maps too).
    pub fn addr(&self) -> u64 {
        self.0.get() as u64
    }
    fn mask_ptr(&self) -> *mut u8 {
        // SAFETY: a field of the static.
        unsafe { core::ptr::addr_of_mut!((*self.0.get()).mask) }
    }
    fn pending_ptr(&self) -> *mut u8 {
        // SAFETY: a field of the static.
        unsafe { core::ptr::addr_of_mut!((*self.0.get()).pending_any) }
    }
    /// Linux's virtual flag is on.
    pub fn enabled(&self) -> bool {
        // SAFETY: a byte of the static, read volatile (Linux writes it).
        unsafe { self.mask_ptr().read_volatile() == MASK_ENABLED }
    }
    /// Sets Linux's virtual flag (as a forwarded gate would clear it, or a reset).
    pub fn set_enabled(&self, on: bool) {
        // SAFETY: as above.
        unsafe { self.mask_ptr().write_volatile(if on { MASK_ENABLED } else { MASK_DISABLED }) }
    }
    /// Linux's clock-event deadline, for Linux to read (`timer_deadline`).
    pub fn set_timer_deadline(&self, deadline: u64) {
        // SAFETY: a field of the static, written volatile (Linux may read it).
        unsafe { core::ptr::addr_of_mut!((*self.0.get()).timer_deadline).write_volatile(deadline) }
    }
    /// The block's summary byte: an event is logged for Linux on its CPU.
    pub fn pending_summary(&self) -> bool {
        // SAFETY: a byte of the static, read volatile.
        unsafe { self.pending_ptr().read_volatile() != 0 }
    }
    fn set_pending_any(&self, any: bool) {
        // SAFETY: as above.
        unsafe { self.pending_ptr().write_volatile(u8::from(any)) }
    }
}

/// Linux's kernel image as Linux maps it, from its first start as the guest (restarts reload
/// the same image): what its calls' pointers and its IDT are checked against.
static LINUX_IMAGE: spin::Once<KernelImage> = spin::Once::new();

/// Linux's kernel image, once Linux was started as the guest.
pub fn linux_image() -> Option<&'static KernelImage> {
    LINUX_IMAGE.get()
}

/// Records Linux's image at its first start (restarts reload the same image).
pub fn set_image(image: KernelImage) {
    LINUX_IMAGE.call_once(|| image);
}

/// The CPUs on which Linux registered its vCPU block (bit per CPU): decide by its soft flag there.
static SOFT: AtomicU32 = AtomicU32::new(0);

/// Linux's soft interrupt flag is live on this CPU (it registered this CPU's vCPU block).
pub fn set_soft(on: bool) {
    let bit = 1 << this();
    if on {
        SOFT.fetch_or(bit, Ordering::Release);
    } else {
        SOFT.fetch_and(!bit, Ordering::Release);
    }
}

/// Whether Linux's soft interrupt flag is live on this CPU: events for it are delivered by its
/// virtual flag (else by the hardware flag in the interrupted frame).
pub fn soft() -> bool {
    SOFT.load(Ordering::Acquire) & (1 << this()) != 0
}

/// Whether an event may be delivered to the guest interrupted in `frame` now: user code always;
/// kernel code when its interrupt flag is on (the virtual one once [`soft`], else the hardware
/// flag in the frame).
fn deliverable(frame: &TrapFrame) -> bool {
    if frame.cs & 3 == 3 {
        return true;
    }
    if soft() { mine().enabled() } else { frame.rflags & RFLAGS_IF != 0 }
}

/// Before a forwarded event enters Linux: its handler runs with the flag off (as a hardware gate
/// would leave it), and the frame's IF tells what the interrupted code had, virtually.
fn enter_guest_handler(frame: &mut TrapFrame) {
    if soft() {
        let vcpu = mine();
        if frame.cs & 3 == 0 {
            if vcpu.enabled() {
                frame.rflags |= RFLAGS_IF;
            } else {
                frame.rflags &= !RFLAGS_IF;
            }
        }
        vcpu.set_enabled(false);
    }
}

/// The CPU Linux boots on (its idle task is Linux there; with Linux SMP, Linux's secondaries are
/// the other shared CPUs it starts through `CPU_START`). Linux's device lines, its watchdog and
/// its supervisor are this CPU's.
pub const LINUX_CPU: usize = 0;

/// The CPUs Linux may run on (bit per CPU): its boot CPU and the shared CPUs the co-kernel's MADT
/// gives it (`kmain`), fixed before Linux first starts.
static LINUX_CPUS: AtomicU32 = AtomicU32::new(1 << LINUX_CPU);

/// Sets the CPUs Linux may run on (before it first starts); its boot CPU is always one.
pub fn set_linux_cpus(mask: u32) {
    LINUX_CPUS.store(mask | 1 << LINUX_CPU, Ordering::Release);
}

/// The CPUs Linux may run on (bit per CPU).
pub fn linux_cpus() -> u32 {
    LINUX_CPUS.load(Ordering::Acquire)
}

/// Linux asked to start CPU `cpu` at this physical address (0: nothing asked), for that CPU's
/// idle loop to take ([`take_start`]).
static START: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Records Linux's `CPU_START` of CPU `cpu` at `start`: false if `cpu` is not one of Linux's
/// secondaries, Linux runs there already, or a start is already waiting there.
pub fn request_start(cpu: usize, start: u64) -> bool {
    if cpu == LINUX_CPU || cpu >= MAX_CPUS || linux_cpus() & (1 << cpu) == 0 || running_on() & (1 << cpu) != 0 {
        return false;
    }
    START[cpu].compare_exchange(0, start, Ordering::AcqRel, Ordering::Acquire).is_ok()
}

/// The start address Linux asked for on this CPU, taken (interrupts off, from the idle loop).
pub fn take_start() -> Option<u64> {
    let s = START[this()].swap(0, Ordering::AcqRel);
    (s != 0).then_some(s)
}

/// In a frame's vector slot: forward to the target in its error-code slot (a vector without an
/// error code). `trap.S` knows this value.
const FORWARD_NO_CODE: u64 = 0x100;

/// The CPUs whose idle context is Linux (bit per CPU).
static ACTIVE: AtomicU32 = AtomicU32::new(0);
static IDT_BASE: AtomicU64 = AtomicU64::new(0);
static IDT_LIMIT: AtomicU64 = AtomicU64::new(0);
/// Events logged for Linux on each CPU (bit per vector).
static PENDING: [[AtomicU64; 4]; MAX_CPUS] = [const { [const { AtomicU64::new(0) }; 4] }; MAX_CPUS];
/// Events delivered at once (the guest was running, its interrupts enabled).
static FORWARDED: AtomicU64 = AtomicU64::new(0);
/// Events logged while a real-time task ran, delivered when the guest resumed.
static REPLAYED: AtomicU64 = AtomicU64::new(0);
/// Events logged for later.
static LOGGED: AtomicU64 = AtomicU64::new(0);
/// Events for a vector the guest has no gate for (dropped, counted).
static NO_GATE: AtomicU64 = AtomicU64::new(0);

const RFLAGS_IF: u64 = 1 << 9;

/// The guest's IDT (what it would have loaded with `lidt`): Linux's after `guest::calls::idt`
/// checked it (inside Linux's image, or its read-only alias), or a test's own table.
pub fn set_idt(base: u64, limit: u16) {
    IDT_BASE.store(base, Ordering::Release);
    IDT_LIMIT.store(u64::from(limit), Ordering::Release);
}

/// This CPU's idle context now runs the guest (true) or the co-kernel's own idle loop (false).
/// Turning it on on Linux's boot CPU starts a new guest for the watchdog: nothing taken yet,
/// waiting from now.
pub fn set_active(on: bool) {
    let cpu = this();
    if on {
        TAKEN_AT[cpu].store(cpu::rdtsc(), Ordering::Relaxed);
        ENTRIES[cpu].fetch_add(1, Ordering::Relaxed);
    }
    timer::set_shared(on);
    if on {
        ACTIVE.fetch_or(1 << cpu, Ordering::Release);
    } else {
        ACTIVE.fetch_and(!(1 << cpu), Ordering::Release);
    }
}

/// Linux entries on each CPU so far (each start of Linux, or of one of its secondaries).
static ENTRIES: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Interrupt events the guest has taken on each CPU (forwarded or replayed to its gates), and
/// when it last took one there (or was entered).
static TAKEN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static TAKEN_AT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Times the guest (the idle context) was resumed on each CPU.
static RESUMES: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

fn took_event() {
    let cpu = this();
    TAKEN[cpu].fetch_add(1, Ordering::Relaxed);
    TAKEN_AT[cpu].store(cpu::rdtsc(), Ordering::Relaxed);
}

/// What the watchdog judges Linux on CPU `c` by: Linux's entries there so far, and this one's
/// progress.
pub fn progress(c: usize) -> (u64, crate::guest::watchdog::Observation) {
    let c = c.min(MAX_CPUS - 1);
    let o = crate::guest::watchdog::Observation {
        now: cpu::rdtsc(),
        taken: TAKEN[c].load(Ordering::Relaxed),
        taken_at: TAKEN_AT[c].load(Ordering::Relaxed),
        resumes: RESUMES[c].load(Ordering::Relaxed),
        pending: pending_on(c),
        // The scheduler's to tell (supervisor::check).
        cpu: 0,
        others: [None; super::watchdog::CPUS],
    };
    (ENTRIES[c].load(Ordering::Relaxed), o)
}

/// Whether the guest runs (set by [`set_active`]) on any CPU, on whichever CPU asks.
pub fn running() -> bool {
    ACTIVE.load(Ordering::Acquire) != 0
}

/// The CPUs Linux runs on now (bit per CPU).
pub fn running_on() -> u32 {
    ACTIVE.load(Ordering::Acquire)
}

/// Whether the idle context runs the guest (set by [`set_active`]) on this CPU (elsewhere the
/// idle context is the co-kernel's own idle loop).
#[inline]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Acquire) & (1 << this()) != 0
}

/// Vectors the co-kernel keeps (never forwarded, never logged).
pub fn is_cokernel_vector(v: u8) -> bool {
    matches!(
        v,
        vectors::TIMER
            | vectors::WAKEUP
            | vectors::KCALL
            | vectors::DEVICE
            | vectors::UPCALL
            | vectors::APIC_ERROR
            | vectors::SPURIOUS
    )
}

fn has_error_code(v: u8) -> bool {
    matches!(v, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// The guest's gate target for `v`, if it registered a present interrupt or trap gate whose
/// target the forwarding jump can take (`guest::calls::gate_target`: canonical, and inside
/// Linux's executable segments once Linux is loaded).
pub fn gate_target(v: u8) -> Option<u64> {
    let base = IDT_BASE.load(Ordering::Acquire);
    let limit = u16::try_from(IDT_LIMIT.load(Ordering::Acquire)).unwrap_or(0);
    let at = crate::guest::calls::gate_address(base, limit, v)?;
    // The table was checked when it was registered, but Linux can unmap its own pages since:
    // probe both ends of the gate (16 bytes span at most two pages), so that costs Linux the
    // event, not the co-kernel a fault.
    let last = at.checked_add(crate::guest::calls::GATE_SIZE - 1)?;
    if exceptions::probe_read(at).is_err() || exceptions::probe_read(last).is_err() {
        return None;
    }
    // SAFETY: both ends were just read in the current address space (the guest's own, or the
    // co-kernel's for tests); nothing changes the mapping between the probe and this read (trap
    // context, interrupts off, one CPU). Any bit pattern is a valid byte array.
    let gate = unsafe { (at as *const [u8; 16]).read_volatile() };
    crate::guest::calls::gate_target(gate, linux_image())
}

/// Arranges for the trap exit that resumes `frame` to jump to the guest's gate for `v` instead
/// of returning: the target goes in the frame's vector slot (the error code stays for a vector
/// that has one) or, with [`FORWARD_NO_CODE`] there, in its error-code slot. The decision lives
/// in the frame, so every CPU's trap exit reads its own. False if the guest has no gate.
pub fn forward(frame: &mut TrapFrame, v: u8) -> bool {
    let Some(target) = gate_target(v) else {
        NO_GATE.fetch_add(1, Ordering::Relaxed);
        return false;
    };
    debug_assert!(target > FORWARD_NO_CODE);
    if has_error_code(v) {
        frame.vector = target;
    } else {
        frame.vector = FORWARD_NO_CODE;
        frame.error_code = target;
    }
    true
}

/// Forgets the guest on every CPU: no IDT, no soft flag, nothing pending, its vCPUs masked (a
/// new Linux starts from scratch). Interrupts off; Linux runs on no other CPU any more.
pub fn reset() {
    set_active(false);
    ACTIVE.store(0, Ordering::Release);
    SOFT.store(0, Ordering::Release);
    set_idt(0, 0);
    for (cpu, words) in PENDING.iter().enumerate() {
        for w in words {
            w.store(0, Ordering::Relaxed);
        }
        START[cpu].store(0, Ordering::Relaxed);
        let b = block(cpu);
        b.set_pending_any(false);
        b.set_enabled(false);
        b.set_timer_deadline(u64::MAX);
    }
}

/// This CPU leaves the guest (interrupts off): its idle context is the co-kernel's again; its
/// soft flag is no longer live, nothing is pending for it here, its block is masked.
pub fn leave() {
    let cpu = this();
    set_active(false);
    set_soft(false);
    for w in &PENDING[cpu] {
        w.store(0, Ordering::Relaxed);
    }
    START[cpu].store(0, Ordering::Relaxed);
    let b = mine();
    b.set_pending_any(false);
    b.set_enabled(false);
    b.set_timer_deadline(u64::MAX);
}

/// Logs `v` for the guest on this CPU.
pub fn log_pending(v: u8) {
    log_pending_on(this(), v);
}

/// Logs `v` for the guest on CPU `cpu` (from any CPU; another one is sent the wake-up IPI so that
/// it replays the event at its next switch point).
pub fn log_pending_on(cpu: usize, v: u8) {
    let cpu = cpu.min(MAX_CPUS - 1);
    PENDING[cpu][usize::from(v / 64)].fetch_or(1 << (v % 64), Ordering::Release);
    LOGGED.fetch_add(1, Ordering::Relaxed);
    block(cpu).set_pending_any(true);
    if cpu != this()
        && let Some(id) = crate::arch::percpu::apic_id(cpu)
    {
        apic::send_fixed(id, vectors::WAKEUP);
    }
}

/// An exception in the guest: forward it to the guest's gate (with the virtual IF in the frame).
pub fn forward_exception(frame: &mut TrapFrame, v: u8) -> bool {
    if gate_target(v).is_none() {
        return false;
    }
    enter_guest_handler(frame);
    let forwarded = forward(frame, v);
    if forwarded {
        FORWARDED.fetch_add(1, Ordering::Relaxed);
    }
    forwarded
}

/// Whether any event is logged for the guest on this CPU and not yet delivered.
pub fn pending_any() -> bool {
    pending_on(this())
}

/// Whether any event is logged for the guest on CPU `cpu` and not yet delivered.
pub fn pending_on(cpu: usize) -> bool {
    PENDING[cpu.min(MAX_CPUS - 1)].iter().any(|w| w.load(Ordering::Acquire) != 0)
}

/// Removes and returns this CPU's highest pending vector (the APIC's priority order).
fn take_highest() -> Option<u8> {
    let cpu = this();
    for (i, w) in PENDING[cpu].iter().enumerate().rev() {
        let bits = w.load(Ordering::Acquire);
        if bits != 0 {
            let b = 63 - bits.leading_zeros();
            w.fetch_and(!(1 << b), Ordering::AcqRel);
            mine().set_pending_any(pending_on(cpu));
            return Some((i * 64) as u8 + b as u8);
        }
    }
    None
}

/// An interrupt for the guest: deliver it now if the guest is the interrupted context
/// (`guest_interrupted`, the kernel's knowledge) with interrupts enabled, else log it. The
/// co-kernel has already acknowledged it.
pub fn on_guest_interrupt(frame: &mut TrapFrame, v: u8, guest_interrupted: bool) -> bool {
    if guest_interrupted && deliverable(frame) && gate_target(v).is_some() {
        enter_guest_handler(frame);
        if forward(frame, v) {
            FORWARDED.fetch_add(1, Ordering::Relaxed);
            took_event();
            return true;
        }
    }
    log_pending(v);
    false
}

/// At the end of a trap that resumes the guest: replay one pending event if its interrupts are
/// enabled; if more remain, a self-IPI brings the next trap right after the guest's handler.
pub fn replay_on_resume(resumed: &mut TrapFrame) {
    if !active() {
        return;
    }
    RESUMES[this()].fetch_add(1, Ordering::Relaxed);
    if !deliverable(resumed) {
        return;
    }
    let mut forwarded = false;
    while let Some(v) = take_highest() {
        if gate_target(v).is_some() {
            enter_guest_handler(resumed);
            forward(resumed, v);
            REPLAYED.fetch_add(1, Ordering::Relaxed);
            took_event();
            forwarded = true;
            break;
        }
        NO_GATE.fetch_add(1, Ordering::Relaxed);
    }
    if pending_any() {
        apic::send_ipi(apic::id(), u32::from(vectors::WAKEUP));
    }
    // Linux user code on an LDT stack segment (16-bit code): an IRETQ restores only RSP[15:0]
    // there, and Linux's espfix is what restores the rest. Linux returns to such a context
    // itself: a no-op event (its timer vector; an early clock event is harmless) goes in first.
    if !forwarded
        && resumed.cs & 3 == 3
        && resumed.ss & 4 != 0
        && gate_target(hauki_abi::guest::VECTOR_LINUX_TIMER).is_some()
    {
        enter_guest_handler(resumed);
        forward(resumed, hauki_abi::guest::VECTOR_LINUX_TIMER);
        LDT_RETURNS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Returns to Linux user code on an LDT stack segment routed through Linux (see above).
static LDT_RETURNS: AtomicU64 = AtomicU64::new(0);

/// Linux turned its flag on with events logged (`int HAUKI_VECTOR_UPCALL`).
static UPCALLS: AtomicU64 = AtomicU64::new(0);

/// An upcall arrived (trap context).
pub fn note_upcall() {
    UPCALLS.fetch_add(1, Ordering::Relaxed);
}

/// What the co-kernel did with Linux's events since boot.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Delivered at once (Linux was running with its flag on).
    pub forwarded: u64,
    /// Logged for later.
    pub logged: u64,
    /// Logged, then delivered when Linux resumed.
    pub replayed: u64,
    /// Upcalls (Linux turned its flag on with events logged).
    pub upcalls: u64,
    /// Events for a vector Linux has no gate for (dropped).
    pub no_gate: u64,
    /// Returns to Linux user code on an LDT stack segment routed through Linux.
    pub ldt_returns: u64,
}

/// The event counters.
pub fn counts() -> Counts {
    let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
    Counts {
        forwarded: r(&FORWARDED),
        logged: r(&LOGGED),
        replayed: r(&REPLAYED),
        upcalls: r(&UPCALLS),
        no_gate: r(&NO_GATE),
        ldt_returns: r(&LDT_RETURNS),
    }
}

/// The status page Linux shows in debugfs `hauki/status` and `/proc/hauki/status` (ABI `Status`, a seqlock).
pub struct StatusPage(UnsafeCell<hauki_abi::guest::Status>);
// SAFETY: written only by the telemetry task (one writer), read by Linux under the seqlock.
unsafe impl Sync for StatusPage {}

/// The co-kernel's one status page (its address goes to Linux as `status_virt`).
pub static STATUS: StatusPage = StatusPage(UnsafeCell::new(hauki_abi::guest::Status {
    seq: 0,
    len: 0,
    reserved: 0,
    text: [0; hauki_abi::guest::STATUS_TEXT],
}));

impl StatusPage {
    /// The page's virtual address (in the co-kernel's range, which Linux maps too).
    pub fn addr(&self) -> u64 {
        self.0.get() as u64
    }

    /// Replaces the text (one writer: the telemetry task).
    pub fn publish(&self, text: &[u8]) {
        let p = self.0.get();
        let n = text.len().min(hauki_abi::guest::STATUS_TEXT);
        // SAFETY: the single writer; Linux only reads, and retries while `seq` is odd or moved.
        unsafe {
            let seq = core::ptr::addr_of_mut!((*p).seq);
            let s = seq.read_volatile();
            seq.write_volatile(s | 1);
            core::sync::atomic::fence(Ordering::Release);
            core::ptr::copy_nonoverlapping(text.as_ptr(), core::ptr::addr_of_mut!((*p).text) as *mut u8, n);
            core::ptr::addr_of_mut!((*p).len).write_volatile(n as u32);
            core::sync::atomic::fence(Ordering::Release);
            seq.write_volatile((s | 1) + 1);
        }
    }
}
