//! In-kernel benchmarks (`hauki.bench=1`), run by `cargo xtask bench` under `-icount shift=0`,
//! where 1 ns of virtual time is one instruction, so every figure is a deterministic path length.
//! Each result is a `bench` record; the run ends through `isa-debug-exit`.
//!
//! - `kcall`: a kernel call that switches nothing (int 0xf2 to iretq).
//! - `context_switch`: two tasks ping-pong through semaphores; per switch, including the kernel
//!   call that causes it.
//! - `sched_cycle/N`: one release-run-complete cycle of the scheduler core (expire, select,
//!   complete, select) with N periodic tasks in the system.
//! - `latency/N`: the latency task's release latency with N tasks in the system.
//! - `post_same_cpu`, `post_cross_cpu`: from a task's post to the woken event task's first
//!   instruction after its wait, both tasks on CPU 0, or the receiver on another CPU (through
//!   the mailbox and the wake-up IPI; only with a second CPU). Under icount QEMU runs the vCPUs
//!   round-robin, so the cross-CPU figure also holds the sender's path from its post to its next
//!   halt (its CPU's turn ends there): path lengths of both CPUs, not parallel hardware.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::{console, cpu, fatal, tsc};
use crate::rt::sched::{Kind, Scheduler, Spec};
use crate::tasks::api::{self, Event, Periodic};
use crate::tasks::latency;
use hauki_abi::debug_exit;

fn emit(name: &str, n: u64, per_op_ticks_x1000: u64, note: &str) {
    let ns = tsc::ticks_to_ns(per_op_ticks_x1000) / 1000;
    let frac = tsc::ticks_to_ns(per_op_ticks_x1000) % 1000;
    console::record("bench", |r| {
        r.str("name", name).u64("iterations", n).u64("ns", ns).u64("ns_milli", frac).str("note", note);
    });
}

/// Runs every benchmark in turn (each writes its `bench` records), or with `smp_only`
/// (`hauki.bench=smp`) only the posts within and across CPUs, then ends the run with SUCCESS. Called from the idle context instead of starting the tasks.
pub fn run(smp_only: bool) -> ! {
    if smp_only {
        post_between_tasks(false);
        post_between_tasks(true);
        fatal::exit(debug_exit::SUCCESS)
    }
    let k = kcall();
    context_switch(k);
    for n in [1usize, 16, 64, 256] {
        sched_cycle(n);
    }
    guest_forward_and_replay();
    post_between_tasks(false);
    post_between_tasks(true);
    latency_with_tasks();
    fatal::exit(debug_exit::SUCCESS)
}

// ---- forwarding to a guest and replay (a synthetic guest in the idle context) ----

core::arch::global_asm!(
    r#"
    .section .guest_test, "ax"
    .global bench_guest_handler
/* A guest's gate: note the TSC at its first instruction, count, return. */
bench_guest_handler:
    pushq %rax
    pushq %rdx
    rdtsc
    shlq $32, %rdx
    orq %rdx, %rax
    movq %rax, bench_guest_tsc(%rip)
    incq bench_guest_count(%rip)
    popq %rdx
    popq %rax
    iretq
    .section .data.bench_guest, "aw"
    .balign 8
    .global bench_guest_tsc
    .global bench_guest_count
bench_guest_tsc: .quad 0
bench_guest_count: .quad 0
    .section .text
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn bench_guest_handler();
    static bench_guest_tsc: u64;
    static bench_guest_count: u64;
}

macro_rules! guest_rec {
    ($sym:ident) => {
        // SAFETY: an aligned u64 the synthetic guest's handler writes; read volatile.
        unsafe { core::ptr::addr_of!($sym).read_volatile() }
    };
}

const BENCH_GUEST_VECTOR: u8 = 0x50;
const BENCH_NATIVE_VECTOR: u8 = 0x51;

#[repr(C, align(16))]
struct Idt([u64; 512]);
static mut BENCH_IDT: Idt = Idt([0; 512]);
static NATIVE_TSC: AtomicU64 = AtomicU64::new(0);

fn native_handler(_f: &mut crate::arch::frame::TrapFrame) {
    NATIVE_TSC.store(cpu::rdtsc(), Ordering::Relaxed);
}

static REPLAY_T0: api::Shared<u64> = api::Shared::new(0);

fn replay_task(_: usize) -> ! {
    loop {
        api::wait_event();
        crate::arch::apic::send_ipi(crate::arch::apic::id(), u32::from(BENCH_GUEST_VECTOR));
        api::spin_ns(20_000); // the interrupt arrives now, while this task runs: logged
        REPLAY_T0.with(|t| *t = cpu::rdtsc());
        // blocking here resumes the guest, which gets the logged event replayed
    }
}

fn guest_forward_and_replay() {
    use crate::arch::apic;
    use crate::guest::vcpu as guest;
    let target = bench_guest_handler as *const () as u64;
    let lo = (target & 0xffff)
        | (u64::from(crate::arch::gdt::KERNEL_CS) << 16)
        | (0x8e << 40)
        | ((target >> 16) & 0xffff) << 48;
    let idt = &raw mut BENCH_IDT;
    // SAFETY: the bench's own table, written before it is registered.
    unsafe {
        (*idt).0[usize::from(BENCH_GUEST_VECTOR) * 2] = lo;
        (*idt).0[usize::from(BENCH_GUEST_VECTOR) * 2 + 1] = target >> 32;
    }
    guest::set_idt(idt as u64, 256 * 16 - 1);
    crate::arch::idt::register(BENCH_NATIVE_VECTOR, native_handler);
    const N: u64 = 200;
    let (mut fwd, mut native) = (0u64, 0u64);
    guest::set_active(true);
    for _ in 0..N {
        let before = guest_rec!(bench_guest_count);
        let t0 = cpu::rdtsc();
        apic::send_ipi(apic::id(), u32::from(BENCH_GUEST_VECTOR));
        while guest_rec!(bench_guest_count) == before {
            core::hint::spin_loop();
        }
        fwd += guest_rec!(bench_guest_tsc) - t0;
        let t0 = cpu::rdtsc();
        apic::send_ipi(apic::id(), u32::from(BENCH_NATIVE_VECTOR));
        while NATIVE_TSC.load(Ordering::Relaxed) < t0 {
            core::hint::spin_loop();
        }
        native += NATIVE_TSC.load(Ordering::Relaxed) - t0;
    }
    emit(
        "forward_interrupt",
        N,
        fwd * 1000 / N,
        "self-IPI sent to the first instruction of the guest's gate (EOI, decision, exact-frame jump)",
    );
    emit("native_interrupt", N, native * 1000 / N, "self-IPI sent to a co-kernel handler, for comparison");
    // Replay: the event arrives while a task runs; the task blocks; the guest gets it.
    Event::new("replay", 202).priority(70).spawn(replay_task).expect("replay task");
    api::yield_now();
    let mut replay = 0u64;
    for _ in 0..N {
        let before = guest_rec!(bench_guest_count);
        let _ = api::post(202, 1);
        api::idle_until(10_000_000, || guest_rec!(bench_guest_count) > before);
        replay += guest_rec!(bench_guest_tsc) - REPLAY_T0.with(|t| *t);
    }
    guest::set_active(false);
    emit(
        "replay_interrupt",
        N,
        replay * 1000 / N,
        "a task blocks with a guest event logged: its last instruction to the guest's gate (kernel call, switch, replay)",
    );
}

fn kcall() -> u64 {
    const N: u64 = 2000;
    let t0 = cpu::rdtsc();
    for _ in 0..N {
        api::yield_now();
    }
    let t1 = cpu::rdtsc();
    let per = (t1 - t0) * 1000 / N;
    emit("kcall", N, per, "int 0xf2 round trip that switches nothing");
    per
}

static PING_RESULT: api::Shared<Option<u64>> = api::Shared::new(None);
const PINGS: u64 = 2000;
const PONG_PORT: u16 = 201;

/// Each post wakes `pong` (more urgent), which runs and waits again: two switches per round,
/// one kernel call each.
fn ping(_: usize) -> ! {
    loop {
        api::wait_event();
        let t0 = cpu::rdtsc();
        for _ in 0..PINGS {
            let _ = api::post(PONG_PORT, 1);
        }
        let t1 = cpu::rdtsc();
        PING_RESULT.with(|r| *r = Some(t1 - t0));
    }
}

fn pong(_: usize) -> ! {
    loop {
        api::wait_event();
    }
}

fn context_switch(kcall_x1000: u64) {
    Event::new("ping", 200).priority(60).spawn(ping).expect("ping");
    Event::new("pong", PONG_PORT).priority(61).spawn(pong).expect("pong");
    api::yield_now(); // both run their set-up and wait
    let _ = api::post(200, 1);
    api::idle_until(1_000_000_000, || PING_RESULT.with(|r| r.is_some()));
    let total = PING_RESULT.with(|r| r.unwrap_or(0));
    let per_switch = total * 1000 / (2 * PINGS);
    emit("context_switch", 2 * PINGS, per_switch, "per task switch, including the kernel call that causes it");
    emit(
        "context_switch_only",
        2 * PINGS,
        per_switch.saturating_sub(kcall_x1000),
        "per task switch, minus a kernel call that switches nothing",
    );
}

/// `n` periodic tasks with one period, releases spread evenly over it; time advances release by
/// release, and each release costs expire + select + complete + select. Per release, it should not
/// depend on `n`.
fn sched_cycle(n: usize) {
    const RELEASES: u64 = 2000;
    let period = 1_000_000u64;
    let gap = period / n as u64;
    let mut s = Scheduler::new(0);
    for i in 0..n {
        let spec = Spec {
            name: "bench",
            prio: 1 + (i % 200) as u8,
            kind: Kind::Periodic { period, deadline: period, budget: 0 },
            first_release: i as u64 * gap,
        };
        s.spawn(spec, 0).expect("spawn");
    }
    // Every task runs its set-up and waits for its first release.
    for _ in 0..n {
        s.schedule(0);
        let _ = s.complete_job(0);
    }
    // One full period first, so every task has moved from its first release to its calendar.
    let mut now = 0u64;
    for _ in 0..n {
        s.expire(now);
        s.schedule(now);
        let _ = s.complete_job(now);
        s.schedule(now);
        now += gap;
    }
    let mut total = 0u64;
    for _ in 0..RELEASES {
        let t0 = cpu::rdtsc();
        s.expire(now);
        let t = s.schedule(now);
        let _ = s.complete_job(now + 1);
        let back = s.schedule(now + 1);
        let t1 = cpu::rdtsc();
        core::hint::black_box((t, back));
        total += t1 - t0;
        now += gap;
    }
    let mut name: heapless::String<32> = heapless::String::new();
    let _ = core::fmt::write(&mut name, format_args!("sched_cycle/{n}"));
    emit(
        &name,
        RELEASES,
        total * 1000 / RELEASES,
        "per release: expire + select + complete + select, scheduler core only",
    );
}

// ---- posting to an event task on this CPU or another ----

const XRECV_PORT: u16 = 90;
const XSEND_PORT: u16 = 91;
const POST_ROUNDS: u64 = 2000;

static SENT_AT: AtomicU64 = AtomicU64::new(0);
static XROUNDS: AtomicU64 = AtomicU64::new(0);
static XMIN: AtomicU64 = AtomicU64::new(u64::MAX);
static XMAX: AtomicU64 = AtomicU64::new(0);
static XSUM: AtomicU64 = AtomicU64::new(0);

/// The sender: each event from the receiver (or the first from the bench) starts a round by
/// posting to the receiver's port `to`.
fn xsend(to: usize) -> ! {
    loop {
        api::wait_event();
        if XROUNDS.load(Ordering::Relaxed) >= POST_ROUNDS {
            continue;
        }
        SENT_AT.store(cpu::rdtsc(), Ordering::Release);
        api::post(to as u16, 1).expect("post to the receiver");
    }
}

/// The receiver: the time from the sender's post to here, then the next round (a post back to
/// the sender's port `back`).
fn xrecv(back: usize) -> ! {
    loop {
        api::wait_event();
        let t = cpu::rdtsc().saturating_sub(SENT_AT.load(Ordering::Acquire));
        XMIN.fetch_min(t, Ordering::Relaxed);
        XMAX.fetch_max(t, Ordering::Relaxed);
        XSUM.fetch_add(t, Ordering::Relaxed);
        XROUNDS.fetch_add(1, Ordering::Release);
        api::post(back as u16, 1).expect("post back to the sender");
    }
}

fn post_between_tasks(cross: bool) {
    let cpu = if cross {
        match crate::arch::smp::online().find(|&c| c != 0) {
            Some(c) => c,
            None => return, // one CPU: nothing to measure
        }
    } else {
        0
    };
    for a in [&XROUNDS, &XMAX, &XSUM] {
        a.store(0, Ordering::Relaxed);
    }
    XMIN.store(u64::MAX, Ordering::Relaxed);
    let (rp, sp) = (XRECV_PORT + 2 * u16::from(cross), XSEND_PORT + 2 * u16::from(cross));
    // Ports differ per run: each run has its own pair of tasks (tasks never end).
    Event::new("xrecv", rp).priority(200).cpu(cpu).spawn_with(xrecv, usize::from(sp)).expect("receiver");
    Event::new("xsend", sp).priority(200).cpu(0).spawn_with(xsend, usize::from(rp)).expect("sender");
    api::post(sp, 1).expect("start");
    api::idle_until(2_000_000_000, || XROUNDS.load(Ordering::Acquire) >= POST_ROUNDS);
    let n = XROUNDS.load(Ordering::Acquire).max(1);
    let ns = |t: u64| tsc::ticks_to_ns(t);
    console::record("bench", |r| {
        r.str("name", if cross { "post_cross_cpu" } else { "post_same_cpu" })
            .u64("samples", XROUNDS.load(Ordering::Acquire))
            .u64("min_ns", ns(XMIN.load(Ordering::Relaxed)))
            .u64("avg_ns", ns(XSUM.load(Ordering::Relaxed) / n))
            .u64("max_ns", ns(XMAX.load(Ordering::Relaxed)))
            .str(
                "note",
                if cross {
                    "task post to an event task on CPU 1 running: mailbox + IPI + switch (icount: includes the sender's path to its halt)"
                } else {
                    "task post to a higher event task on the same CPU running: kernel call + switch"
                },
            );
    });
}

fn dummy(_: usize) -> ! {
    loop {
        api::wait_next_period();
    }
}

fn latency_with_tasks() {
    latency::start(100_000).expect("latency task");
    let mut spawned = 1usize; // the latency task itself
    for n in [1usize, 16, 64, 256] {
        while spawned < n {
            Periodic::new("dummy")
                .priority(10)
                .period_ns(10_000_000_000)
                .phase_ns(10_000_000_000 + spawned as u64)
                .spawn(dummy)
                .expect("dummy");
            spawned += 1;
        }
        api::idle_until(20_000_000, || false); // let set-up finish
        latency::STATS[0].with(|s| s.reset());
        api::idle_until(200_000_000, || false);
        let w = latency::STATS[0].with(|s| *s);
        let mut name: heapless::String<32> = heapless::String::new();
        let _ = core::fmt::write(&mut name, format_args!("latency/{n}"));
        console::record("bench", |r| {
            r.str("name", &name)
                .u64("tasks", n as u64)
                .u64("samples", w.samples)
                .u64("min_ns", w.min_ns)
                .u64("avg_ns", w.avg_ns())
                .u64("max_ns", w.max_ns)
                .str("note", "timer interrupt to task: release latency of the 10 kHz latency task");
        });
    }
}
