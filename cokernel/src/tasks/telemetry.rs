//! The telemetry reporter: the one regular writer of COM2 once tasks run. Once per reporting
//! period it emits a `latency` record (and resets the window) and a human latency line, a `task`
//! record per task, the application's own records (its `report`), a `phase` record once the phase
//! engine has run, a `channel` record per channel, and, while Linux runs or after it failed, a
//! `guest` and a `windows` record; it also rewrites the status page
//! Linux shows. Lowest real-time priority: a slow UART never delays real-time work (it writes
//! with interrupts on).

use crate::arch::console;
use crate::kernel::counters;
use crate::kernel::sched as glue;
use crate::rt::hist::{self, LatencyStats};
use crate::rt::prio::TaskId;
use crate::rt::sched::{Error, Kind, TaskStats};
use crate::tasks::api::{Periodic, Shared};
use hauki_abi::debug_exit;

static EXIT_AFTER: Shared<Option<u64>> = Shared::new(None);
static PERIOD: Shared<u64> = Shared::new(0);

/// Starts the reporter: a report every `period_ns` (the first one period after start); with
/// `exit_after`, the run ends with SUCCESS after that many reports.
pub fn start(period_ns: u64, exit_after: Option<u64>) -> Result<(), Error> {
    EXIT_AFTER.with(|e| *e = exit_after);
    PERIOD.with(|p| *p = period_ns);
    for cpu in crate::arch::smp::online() {
        Periodic::new("telemetry")
            .priority(super::PRIO_TELEMETRY)
            .period_ns(period_ns)
            .phase_ns(period_ns)
            .cpu(cpu)
            .spawn(if cpu == 0 { run } else { run_secondary })?;
    }
    Ok(())
}

const MAX_REPORTED: usize = 32;

type TaskRow = (TaskId, &'static str, u8, Kind, TaskStats);

fn ticks_ns(t: u64) -> u64 {
    crate::arch::tsc::ticks_to_ns(t)
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Periodic { .. } => "periodic",
        Kind::Event { .. } => "event",
        Kind::Idle => "idle",
    }
}

fn period_ns(kind: &Kind) -> u64 {
    match kind {
        Kind::Periodic { period, .. } => ticks_ns(*period),
        _ => 0,
    }
}

/// What every CPU's reporter emits for its own CPU: the `latency` and `latency_hist` records
/// (the window then reset) and a `task` record per task, each with the CPU's index. Returns the
/// window, the latency task's misses in it and since boot, and the tasks.
fn report_cpu(cpu: usize, last_misses: &mut u64) -> (LatencyStats, u64, u64, heapless::Vec<TaskRow, MAX_REPORTED>) {
    let (window, fine) = super::latency::STATS[cpu].with(|s| {
        let w = *s;
        s.reset();
        (w, super::latency::FINE[cpu].flip())
    });
    let lat_task = super::latency::task();
    // One short critical section per task: interrupts stay off for a copy, not a scan.
    let mut tasks: heapless::Vec<TaskRow, MAX_REPORTED> = heapless::Vec::new();
    for i in 1..=MAX_REPORTED {
        let Some(entry) = glue::with(|s| {
            s.nth_task(i).map(|t| {
                let k = s.task(t);
                (t, k.name, k.base_prio, k.kind, k.stats)
            })
        }) else {
            break;
        };
        let _ = tasks.push(entry);
    }
    let misses_total = lat_task.and_then(|lt| tasks.iter().find(|x| x.0 == lt)).map_or(0, |x| x.4.misses);
    let misses = misses_total - *last_misses;
    *last_misses = misses_total;
    super::latency::TOTAL[cpu].with(|t| t.misses = misses_total);
    emit_latency(cpu, &window, misses, misses_total);
    emit_latency_hist(cpu, fine);
    for (_, name, prio, kind, st) in &tasks {
        console::record("task", |r| {
            r.str("task", name)
                .u64("cpu", cpu as u64)
                .u64("prio", u64::from(*prio))
                .str("kind", kind_name(kind))
                .u64("period_ns", period_ns(kind))
                .u64("releases", st.releases)
                .u64("completions", st.completions)
                .u64("misses", st.misses)
                .u64("overruns", st.overruns)
                .u64("worst_response_ns", ticks_ns(st.worst_response))
                .u64("cpu_ns", ticks_ns(st.cpu_time));
        });
    }
    (window, misses, misses_total, tasks)
}

/// A secondary CPU's reporter: its own latency and tasks.
fn run_secondary(_: usize) -> ! {
    let cpu = crate::arch::percpu::this();
    let mut last_misses = 0u64;
    loop {
        crate::tasks::api::wait_next_period();
        report_cpu(cpu, &mut last_misses);
    }
}

/// CPU 0's reporter: its own latency and tasks, and everything system-wide.
fn run(_: usize) -> ! {
    let mut reports = 0u64;
    let mut last_misses = 0u64;
    loop {
        crate::tasks::api::wait_next_period();
        reports += 1;
        let (window, misses, misses_total, tasks) = report_cpu(0, &mut last_misses);
        console::line(
            format_args!(
                "latency {} samples: min {} avg {} max {} ns, {} deadline misses ({} since boot){}",
                window.samples,
                window.min_ns,
                window.avg_ns(),
                window.max_ns,
                misses,
                misses_total,
                if timing_name() == "emulated" { " [emulated clock: the emulator's figures, not Hauki's]" } else { "" }
            ),
            false,
        );
        // The application's own records (the demo's `control`).
        if let Some(report) = crate::app::this().report {
            report();
        }
        let p = super::phase::STATE.with(|s| *s);
        if p.steps > 0 {
            let workers = super::phase::WORKER_IDS.with(|w| *w);
            let mut worst = [0u64; super::phase::WORKERS];
            let mut phases = [0u64; super::phase::WORKERS];
            for (i, w) in workers.iter().enumerate() {
                if let Some((t, ph)) = w {
                    phases[i] = *ph;
                    worst[i] = tasks.iter().find(|x| x.0 == *t).map_or(0, |x| ticks_ns(x.4.worst_response));
                }
            }
            let staggered = super::phase::STAGGERED.with(|s| *s);
            console::record("phase", |r| {
                r.str("task", "phase")
                    .u64("steps", p.steps)
                    .u64s("nco_millihz", &super::phase::NCO_MILLIHZ)
                    .hex_list("nco_phase", &p.phases.map(u64::from))
                    .i64s("nco_sine_q30", &p.sines.map(i64::from))
                    .str("stagger", if staggered { "golden" } else { "off" })
                    .u64s("worker_phase_ns", &phases)
                    .u64s("worker_worst_response_ns", &worst);
            });
        }
        // One copy of the window table per report, with interrupts off for the copy only; sorted
        // after they are back on.
        let windows = counters::windows();
        let g = counters::guest();
        let stray = counters::stray();
        publish_status(&window, misses_total, &tasks, &g, &windows, stray);
        emit_channels();
        if stray.spurious + stray.unexpected > 0 {
            console::record("stray_irqs", |r| {
                r.u64("spurious", stray.spurious)
                    .u64("unexpected", stray.unexpected)
                    .hex("last_unexpected_vector", u64::from(stray.last_unexpected_vector));
            });
        }
        if g.running || g.failures > 0 {
            emit_guest(&g, &windows);
        }
        if EXIT_AFTER.with(|e| *e).is_some_and(|n| reports >= n) {
            crate::arch::fatal::exit(debug_exit::SUCCESS);
        }
    }
}

fn emit_latency(cpu: usize, w: &LatencyStats, misses: u64, misses_total: u64) {
    let period = super::latency::period_ns();
    console::record("latency", |r| {
        r.str("task", "latency")
            .u64("cpu", cpu as u64)
            .u64("period_ns", period)
            .u64("samples", w.samples)
            .u64("min_ns", if w.samples > 0 { w.min_ns } else { 0 })
            .u64("avg_ns", w.avg_ns())
            .u64("max_ns", w.max_ns)
            .u64("misses", misses)
            .u64("misses_total", misses_total)
            .u64("hist_bucket0_ns", hist::BUCKET0_NS)
            .u64s("hist", &w.hist.map(u64::from));
    });
}

/// The window's fine histogram (`half` of [`super::latency::FINE`], drained as it is written):
/// the counts from the first non-empty bucket to the last, and the overflows.
fn emit_latency_hist(cpu: usize, half: usize) {
    use core::cell::Cell;
    let fine = &super::latency::FINE[cpu];
    let mut nonempty = fine.drain(half).peekable();
    let first = nonempty.peek().map_or(0, |&(i, _)| i.min(hist::FINE_BUCKETS));
    let overflows = Cell::new(0u64);
    let mut next = first;
    let counts = nonempty.flat_map(|(i, c)| {
        let gap = if i < hist::FINE_BUCKETS { i - next } else { 0 };
        let c = if i < hist::FINE_BUCKETS {
            next = i + 1;
            Some(u64::from(c))
        } else {
            overflows.set(u64::from(c));
            None
        };
        core::iter::repeat_n(0, gap).chain(c)
    });
    console::record("latency_hist", |r| {
        r.str("task", "latency")
            .u64("cpu", cpu as u64)
            .u64("bucket_ns", hist::FINE_BUCKET_NS)
            .u64("buckets", hist::FINE_BUCKETS as u64)
            .u64("first", first as u64)
            .u64_iter("counts", counts)
            .u64("overflows", overflows.get());
    });
    // Whatever the record did not take (a busy UART drops it) must not leak into a later window.
    fine.drain(half).for_each(drop);
}

/// One `channel` record per channel: its counters, and whether a Linux program has it open.
fn emit_channels() {
    use crate::kernel::channels;
    for i in 0..channels::count() as usize {
        let Some((name, c)) = channels::counts(i) else { continue };
        let last = channels::last_refusal(i);
        console::record("channel", |r| {
            let r = r
                .str("name", name)
                .u64("sent", c.sent)
                .u64("received", c.received)
                .u64("full", c.full)
                .u64("refused", c.refused)
                .bool("linux_open", c.linux_open);
            if let Some((what, value)) = last {
                r.str("last_refused", what).u64("last_refused_value", u64::from(value));
            }
        });
    }
}

/// What the co-kernel does for Linux: events forwarded at once, logged and replayed later, Linux's
/// clock events, and its device lines.
fn emit_guest(g: &counters::Guest, windows: &crate::rt::windows::Windows) {
    emit_storms(g);
    console::record("guest", |r| {
        r.bool("soft_irq", g.soft_irq)
            .u64("idt_loads", g.idt_loads)
            .u64("entry_to_idt_ns", g.entry_to_idt_ns)
            .u64("forwarded", g.events.forwarded)
            .u64("logged", g.events.logged)
            .u64("replayed", g.events.replayed)
            .u64("upcalls", g.events.upcalls)
            .u64("no_gate", g.events.no_gate)
            .u64("timer_events", g.timer_events)
            .u64("timer_sets", g.timer_sets)
            .u64s("line_irqs", &g.line_irqs)
            .u64s("line_storms", &g.line_storms)
            .u64("lines_throttled", u64::from(g.lines_throttled))
            .u64("line_calls_refused", g.line_calls_refused)
            .bool("running", g.running)
            .u64("failures", g.failures)
            .u64("restarts", g.restarts)
            .u64("heartbeats", g.heartbeats)
            .u64("watchdog_excused", g.watchdog_excused)
            .u64("calls_refused", g.calls_refused);
    });
    emit_windows(windows);
}

/// Storms reported so far, per line (the telemetry task alone writes them).
static STORMS_REPORTED: [core::sync::atomic::AtomicU64; hauki_abi::guest::LINES as usize] =
    [const { core::sync::atomic::AtomicU64::new(0) }; hauki_abi::guest::LINES as usize];

/// A `storm` record for each line with storms the last report did not show: a device of Linux's
/// interrupting faster than any should, throttled by the co-kernel.
fn emit_storms(g: &counters::Guest) {
    use core::sync::atomic::Ordering::Relaxed;
    for (line, (&storms, &irqs)) in g.line_storms.iter().zip(&g.line_irqs).enumerate() {
        let before = STORMS_REPORTED[line].swap(storms, Relaxed);
        if storms > before {
            console::record("storm", |r| {
                r.u64("line", line as u64)
                    .u64("storms", storms)
                    .u64("new", storms - before)
                    .u64("irqs", irqs)
                    .bool("throttled", g.lines_throttled & (1 << line) != 0);
            });
        }
    }
}

/// The hardware-off windows the timer found (worst first, since boot): `sites` are the kernel
/// addresses (Linux's or the co-kernel's) where the flag came back on, or 0x1 (Linux user mode:
/// its exit window).
fn emit_windows(windows: &crate::rt::windows::Windows) {
    use crate::rt::windows::SITES;
    let (w, dropped) = (windows.worst_first(), windows.dropped);
    let mut sites = [0u64; SITES];
    let mut max_ns = [0u64; SITES];
    let mut count = [0u64; SITES];
    for (i, e) in w.iter().enumerate() {
        sites[i] = e.key;
        max_ns[i] = ticks_ns(e.max);
        count[i] = e.count;
    }
    let n = w.len();
    console::record("windows", |r| {
        r.u64("late_ns", counters::LATE_NS)
            .hex_list("sites", &sites[..n])
            .u64s("max_ns", &max_ns[..n])
            .u64s("count", &count[..n])
            .u64("dropped", dropped);
    });
}

/// What the clock is (`hauki.timing`): 0 hardware (absent), 1 emulated, 2 virtual.
static TIMING: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

/// Takes `hauki.timing`'s value (`emulated` or `virtual`; anything else: hardware).
pub fn set_timing(value: Option<&str>) {
    let t = match value {
        Some("emulated") => 1,
        Some("virtual") => 2,
        _ => 0,
    };
    TIMING.store(t, core::sync::atomic::Ordering::Relaxed);
}

/// The clock's name for records (`hardware`, `emulated`, `virtual`).
pub fn timing_name() -> &'static str {
    match TIMING.load(core::sync::atomic::Ordering::Relaxed) {
        1 => "emulated",
        2 => "virtual",
        _ => "hardware",
    }
}

/// What the latency figures are worth under this clock, for people reading them.
fn timing_note() -> Option<&'static str> {
    match TIMING.load(core::sync::atomic::Ordering::Relaxed) {
        1 => Some(
            "timing: emulated (QEMU without -icount): latencies and deadline misses are the emulator's, not Hauki's; \
             cargo xtask run --icount gives deterministic virtual time",
        ),
        2 => Some("timing: virtual (QEMU -icount: 1 instruction = 1 ns, deterministic)"),
        _ => None,
    }
}

/// The co-kernel's state as text for Linux (debugfs `hauki/status` and `/proc/hauki/status`): the latency summary, every
/// task's statistics, what the co-kernel does for Linux, and the worst hardware-off windows.
fn publish_status(
    window: &LatencyStats,
    misses_total: u64,
    tasks: &[(TaskId, &'static str, u8, Kind, TaskStats)],
    g: &counters::Guest,
    windows: &crate::rt::windows::Windows,
    stray: counters::Stray,
) {
    use core::fmt::Write;
    let mut t: heapless::String<{ hauki_abi::guest::STATUS_TEXT }> = heapless::String::new();
    let up_ms = crate::arch::tsc::ticks_to_ns(crate::arch::cpu::rdtsc()) / 1_000_000;
    let _ = writeln!(t, "Hauki co-kernel {} up {}.{:03} s", env!("CARGO_PKG_VERSION"), up_ms / 1000, up_ms % 1000);
    if let Some(note) = timing_note() {
        let _ = writeln!(t, "{note}");
    }
    let _ = writeln!(
        t,
        "latency: period {} ns; last report: {} samples, min {} avg {} max {} ns; deadline misses since boot {}",
        super::latency::period_ns(),
        window.samples,
        if window.samples > 0 { window.min_ns } else { 0 },
        window.avg_ns(),
        window.max_ns,
        misses_total
    );
    // With several CPUs, each one's latency task since boot (the lines above are CPU 0's).
    if crate::arch::smp::online().count() > 1 {
        let linux = crate::guest::vcpu::running_on();
        for cpu in crate::arch::smp::online() {
            let kind = if crate::arch::smp::is_rt_only(cpu) {
                "real-time only"
            } else if linux & (1 << cpu) != 0 {
                "shared, Linux runs here"
            } else {
                "shared"
            };
            let tot = super::latency::TOTAL[cpu].with(|s| *s);
            let _ = writeln!(
                t,
                "cpu {cpu} ({kind}): latency since boot {} samples, max {} ns, deadline misses {}",
                tot.samples, tot.max_ns, tot.misses
            );
        }
    }
    // The last report's histogram: bucket i counts [lower(i), lower(i + 1)) ns (crate::rt::hist).
    let _ = write!(t, "latency histogram: bucket0_ns {} counts", hist::BUCKET0_NS);
    for c in window.hist {
        let _ = write!(t, " {c}");
    }
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "{:<12} {:>4} {:>8} {:>10} {:>10} {:>7} {:>8} {:>10} {:>10}",
        "task", "prio", "kind", "period_ns", "releases", "misses", "overruns", "worst_ns", "cpu_ms"
    );
    for (_, name, prio, kind, st) in tasks {
        let (k, period) = (kind_name(kind), period_ns(kind));
        let _ = writeln!(
            t,
            "{:<12} {:>4} {:>8} {:>10} {:>10} {:>7} {:>8} {:>10} {:>10}",
            name,
            prio,
            k,
            period,
            st.releases,
            st.misses,
            st.overruns,
            ticks_ns(st.worst_response),
            ticks_ns(st.cpu_time) / 1_000_000
        );
    }
    let _ = writeln!(
        t,
        "linux: soft irq flag {}, failures {}, restarts {}",
        if g.soft_irq { "on" } else { "off" },
        g.failures,
        g.restarts
    );
    let _ = writeln!(
        t,
        "events for linux: forwarded {}, logged {}, replayed {}, upcalls {}, timer events {}",
        g.events.forwarded, g.events.logged, g.events.replayed, g.events.upcalls, g.timer_events
    );
    let _ = write!(t, "linux lines (irq: interrupts):");
    for (irq, (&n, &storms)) in g.line_irqs.iter().zip(&g.line_storms).enumerate() {
        if n > 0 {
            let _ = write!(t, " {irq}: {n}");
        }
        if storms > 0 {
            let now = if g.lines_throttled & (1 << irq) != 0 { ", throttled now" } else { "" };
            let _ = write!(t, " ({storms} storms{now})");
        }
    }
    let _ = writeln!(t);
    for i in 0..crate::kernel::channels::count() as usize {
        if let Some((name, c)) = crate::kernel::channels::counts(i) {
            let _ = writeln!(
                t,
                "channel {name}: sent {}, received {}, full {}, refused {}, linux {}",
                c.sent,
                c.received,
                c.full,
                c.refused,
                if c.linux_open { "open" } else { "closed" }
            );
        }
    }
    if stray.spurious + stray.unexpected > 0 {
        let _ = writeln!(t, "stray interrupts: spurious {}, unexpected {}", stray.spurious, stray.unexpected);
    }
    let _ = writeln!(t, "hardware-off windows (worst since boot; site = where interrupts came back on):");
    for e in windows.worst_first().iter().take(8) {
        let site = match crate::rt::windows::Site::from_key(e.key) {
            crate::rt::windows::Site::User => heapless::String::<24>::try_from("linux user mode").unwrap_or_default(),
            crate::rt::windows::Site::Unseen => {
                heapless::String::<24>::try_from("timer interrupt lost").unwrap_or_default()
            }
            crate::rt::windows::Site::At(rip) => {
                let mut h = heapless::String::<24>::new();
                let _ = write!(h, "{rip:#x}");
                h
            }
        };
        let _ = writeln!(t, "  {:>8} ns x{:<8} {}", ticks_ns(e.max), e.count, site);
    }
    crate::guest::vcpu::STATUS.publish(t.as_bytes());
}
