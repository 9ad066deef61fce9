//! The real-time core: priority order, preemption by the timer, priority inheritance, deadline
//! misses and overruns, blocking queues.

use super::TestResult;
use crate::arch::{self, cpu, tsc};
use crate::kernel::sched as glue;
use crate::tasks::api::{self, Event, Mutex as RtMutex, Periodic, Queue, Shared};

/// Lets tasks run (the test runner is the idle context) until `done` or `timeout_ms` of TSC time.
pub(super) fn run_until(timeout_ms: u64, done: impl Fn() -> bool) -> bool {
    api::idle_until(timeout_ms * 1_000_000, done)
}

static LOG: Shared<heapless::Vec<u8, 32>> = Shared::new(heapless::Vec::new());

fn log_push(b: u8) {
    LOG.with(|l| {
        let _ = l.push(b);
    });
}

fn log_take() -> heapless::Vec<u8, 32> {
    LOG.with(core::mem::take)
}

fn logger_task(tag: usize) -> ! {
    loop {
        api::wait_event();
        log_push(tag as u8);
    }
}

pub(super) fn rt_ready_tasks_run_in_priority_order() -> TestResult {
    let ports = [10u16, 11, 12];
    let prios = [20u8, 40, 30];
    for (i, (&port, &prio)) in ports.iter().zip(&prios).enumerate() {
        Event::new("order", port)
            .priority(prio)
            .spawn_with(logger_task, b'a' as usize + i)
            .map_err(|e| alloc::format!("{e:?}"))?;
    }
    // Make all three ready at once, then let the scheduler choose.
    glue::with(|s| ports.iter().try_for_each(|&p| s.post(p, 1))).map_err(|e| alloc::format!("{e:?}"))?;
    api::yield_now();
    ensure!(run_until(100, || LOG.with(|l| l.len()) == 3), "tasks did not all run");
    let got = log_take();
    ensure!(got.as_slice() == b"bca", "ran in order {:?}, want b (40), c (30), a (20)", core::str::from_utf8(&got));
    Ok(())
}

static HI_RUNS: Shared<u64> = Shared::new(0);
static LO_SAW: Shared<Option<(u64, u64)>> = Shared::new(None);

fn hi_task(_: usize) -> ! {
    loop {
        api::wait_next_period();
        HI_RUNS.with(|n| *n += 1);
    }
}

/// Preemptions the spinner waits for.
const PREEMPTIONS: u64 = 3;

fn lo_spinner(_: usize) -> ! {
    loop {
        api::wait_event();
        let before = HI_RUNS.with(|n| *n);
        let start = cpu::rdtsc();
        let cap = tsc::ns_to_ticks(1_000_000_000);
        // Never blocks: only an interrupt can take the CPU from it. It spins until the 500 us task
        // has run PREEMPTIONS times, or for a second, so a host that stalls the CPU only delays it.
        let mut after = before;
        while after - before < PREEMPTIONS && cpu::rdtsc() - start < cap {
            api::spin_ns(100_000);
            after = HI_RUNS.with(|n| *n);
        }
        let spun = tsc::ticks_to_ns(cpu::rdtsc() - start);
        LO_SAW.with(|s| *s = Some((after - before, spun)));
    }
}

pub(super) fn rt_timer_release_preempts_a_busy_task() -> TestResult {
    Periodic::new("preempter").priority(60).period_us(500).spawn(hi_task).map_err(|e| alloc::format!("{e:?}"))?;
    Event::new("spinner", 13).priority(50).spawn(lo_spinner).map_err(|e| alloc::format!("{e:?}"))?;
    api::post(13, 1).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(run_until(5000, || LO_SAW.with(|s| s.is_some())), "spinner did not finish");
    let (runs, spun_ns) = LO_SAW.with(|s| s.unwrap_or((0, 0)));
    // The spinner never blocks, so every run of the 500 us task while it spins is a preemption
    // from the timer interrupt.
    ensure!(
        runs >= PREEMPTIONS,
        "the 500 us task ran {runs} times while a lower task spun for {spun_ns} ns: no preemption"
    );
    arch::console::console_write(format_args!("# preempted {runs} times in {} us of spinning\n", spun_ns / 1000));
    Ok(())
}

static PI_MUTEX: spin::Once<RtMutex<u32>> = spin::Once::new();
static PI_PRIO_WHILE_HELD: Shared<u8> = Shared::new(0);

fn pi_low(_: usize) -> ! {
    loop {
        api::wait_event();
        let m = PI_MUTEX.get().expect("mutex");
        let mut g = m.lock();
        *g += 1;
        let _ = api::post(21, 1); // H (30) runs now, blocks on the mutex, and lends L its priority
        let _ = api::post(22, 1); // M (20) is ready, but L now runs at 30
        let me = glue::with(|s| s.task(s.current()).prio);
        PI_PRIO_WHILE_HELD.with(|p| *p = me);
        log_push(b'L');
        drop(g);
    }
}

fn pi_high(_: usize) -> ! {
    loop {
        api::wait_event();
        let g = PI_MUTEX.get().expect("mutex").lock();
        log_push(b'H');
        drop(g);
    }
}

pub(super) fn rt_priority_inheritance_bounds_inversion() -> TestResult {
    let _ = log_take();
    PI_MUTEX.call_once(|| RtMutex::new(0).expect("mutex"));
    Event::new("pi-low", 20).priority(10).spawn(pi_low).map_err(|e| alloc::format!("{e:?}"))?;
    Event::new("pi-high", 21).priority(30).spawn(pi_high).map_err(|e| alloc::format!("{e:?}"))?;
    Event::new("pi-mid", 22)
        .priority(20)
        .spawn_with(logger_task, b'M' as usize)
        .map_err(|e| alloc::format!("{e:?}"))?;
    api::post(20, 1).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(run_until(100, || LOG.with(|l| l.len()) == 3), "tasks did not all run");
    let got = log_take();
    ensure!(got.as_slice() == b"LHM", "order {:?}: want L (releasing) then H then M", core::str::from_utf8(&got));
    let p = PI_PRIO_WHILE_HELD.with(|p| *p);
    ensure!(p == 30, "L ran at priority {p} while H waited, want 30");
    Ok(())
}

static LATE_STOP: Shared<bool> = Shared::new(false);

fn late_task(_: usize) -> ! {
    loop {
        api::wait_next_period();
        if !LATE_STOP.with(|s| *s) {
            api::spin_ns(400_000); // deadline 200 us, budget 100 us: late and over budget
        }
    }
}

pub(super) fn rt_deadline_misses_and_overruns_are_detected() -> TestResult {
    let t = Periodic::new("late")
        .priority(70)
        .period_us(1000)
        .deadline_ns(200_000)
        .budget_ns(100_000)
        .spawn(late_task)
        .map_err(|e| alloc::format!("{e:?}"))?;
    let stats = || glue::with(|s| s.task(t).stats);
    ensure!(run_until(100, || stats().completions >= 4), "no completions");
    LATE_STOP.with(|s| *s = true);
    let st = stats();
    ensure!(st.misses >= 3, "{} misses in {} jobs of 400 us with a 200 us deadline", st.misses, st.completions);
    ensure!(st.overruns >= 3, "{} overruns in {} jobs of 400 us with a 100 us budget", st.overruns, st.completions);
    ensure!(st.worst_response >= tsc::ns_to_ticks(400_000), "worst response shorter than the work");
    // (That the miss count stops growing once the work stops is a timing property of the host
    // under plain TCG; the scheduler's accounting of it is covered by the host unit tests.)
    Ok(())
}

static QUEUE: spin::Once<Queue<u32, 4>> = spin::Once::new();
static RECEIVED: Shared<heapless::Vec<u32, 16>> = Shared::new(heapless::Vec::new());

fn producer(_: usize) -> ! {
    loop {
        api::wait_event();
        for i in 0..10 {
            QUEUE.get().expect("queue").send(i); // blocks when 4 are queued
        }
    }
}

fn consumer(_: usize) -> ! {
    loop {
        let v = QUEUE.get().expect("queue").recv();
        RECEIVED.with(|r| {
            let _ = r.push(v);
        });
    }
}

pub(super) fn rt_queue_passes_messages_in_order_with_blocking() -> TestResult {
    QUEUE.call_once(|| Queue::new().expect("queue"));
    // The consumer has the lower priority: the producer fills the queue and must block.
    Event::new("consumer", 30).priority(15).spawn(consumer).map_err(|e| alloc::format!("{e:?}"))?;
    Event::new("producer", 31).priority(16).spawn(producer).map_err(|e| alloc::format!("{e:?}"))?;
    api::post(31, 1).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(run_until(100, || RECEIVED.with(|r| r.len()) == 10), "got {} of 10 messages", RECEIVED.with(|r| r.len()));
    let got = RECEIVED.with(|r| r.clone());
    ensure!(got.iter().copied().eq(0..10), "messages out of order: {:?}", got.as_slice());
    Ok(())
}
