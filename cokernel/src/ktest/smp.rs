//! Several CPUs: every secondary the MADT lists runs the co-kernel, tasks stay on the CPU they
//! were created for, posts cross CPUs through the mailboxes and IPIs, and objects are per CPU.
//! Under `-smp 1` the tests that need a second CPU are skipped (the `ktest-smp2` run has one).

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::{TestResult, Verdict};
use crate::arch::{self, percpu, smp};
use crate::kernel::sched as glue;
use crate::rt::sched::Error;
use crate::tasks::api::{self, Event, Mutex as RtMutex, Periodic, Semaphore};

fn second_cpu() -> Result<usize, Verdict> {
    smp::online().find(|&c| c != 0).ok_or(Verdict::Skip("one CPU: the ktest-smp2 run covers this"))
}

pub(super) fn secondary_cpus_are_online() -> TestResult {
    let r = crate::kmain::boot_report();
    let listed = r.platform.cpus.iter().filter(|c| c.enabled || c.online_capable).count() as u32;
    ensure!(r.cpus.cpus == listed, "{} CPUs counted, MADT lists {listed}", r.cpus.cpus);
    let want = listed.min(percpu::MAX_CPUS as u32);
    ensure!(r.cpus.online == want, "{} CPUs online of {listed} listed (want {want})", r.cpus.online);
    ensure!(r.cpus.parked == listed - want, "{} parked, want {}", r.cpus.parked, listed - want);
    ensure!(smp::online().count() as u32 == want, "{} CPUs run a scheduler, want {want}", smp::online().count());
    for c in smp::online() {
        ensure!(glue::exists(c), "CPU {c} is online without a scheduler");
    }
    let rt = (0..want as usize).filter(|&c| smp::is_rt_only(c)).count() as u32;
    ensure!(rt == r.cpus.rt_only, "{rt} real-time-only CPUs, the boot record says {}", r.cpus.rt_only);
    ensure!(!smp::is_rt_only(0), "CPU 0 (Linux's) is real-time only");
    ensure!(
        r.cpus.rt_only == u32::from(want >= 2),
        "default: {} real-time-only CPUs with {want} online",
        r.cpus.rt_only
    );
    arch::console::console_write(format_args!("# {} CPU(s), {} online, {} real-time only\n", listed, want, rt));
    Ok(())
}

static RAN_ON: AtomicUsize = AtomicUsize::new(usize::MAX);
static RUNS: AtomicU64 = AtomicU64::new(0);
static WRONG_CPU: AtomicU64 = AtomicU64::new(0);

fn pinned(want: usize) -> ! {
    loop {
        api::wait_next_period();
        let here = api::this_cpu();
        RAN_ON.store(here, Ordering::Relaxed);
        if here != want {
            WRONG_CPU.fetch_add(1, Ordering::Relaxed);
        }
        RUNS.fetch_add(1, Ordering::Relaxed);
    }
}

pub(super) fn smp_tasks_run_on_the_cpu_they_were_created_for() -> TestResult {
    let cpu = second_cpu()?;
    let before = arch::timer::FIRED.load(Ordering::Relaxed);
    Periodic::new("pinned")
        .priority(90)
        .period_us(500)
        .cpu(cpu)
        .spawn_with(pinned, cpu)
        .map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(super::rt::run_until(2000, || RUNS.load(Ordering::Relaxed) >= 20), "the task on CPU {cpu} did not run");
    ensure!(WRONG_CPU.load(Ordering::Relaxed) == 0, "a job ran on CPU {}", RAN_ON.load(Ordering::Relaxed));
    ensure!(RAN_ON.load(Ordering::Relaxed) == cpu, "ran on CPU {}, want {cpu}", RAN_ON.load(Ordering::Relaxed));
    // Its releases came from its own CPU's timer: this CPU (the test runner's) arms none for it.
    let fired = arch::timer::FIRED.load(Ordering::Relaxed) - before;
    ensure!(fired >= 20, "{fired} timer interrupts over 20 releases");
    let stats = glue::with_cpu(cpu, |s| s.task_ids().find(|&t| s.task(t).name == "pinned").map(|t| s.task(t).stats));
    let st = stats.ok_or("CPU 1's scheduler does not have the task")?;
    ensure!(st.completions >= 20, "CPU {cpu}: {} jobs", st.completions);
    // Timing is judged under instruction counting only (the host may stop a vCPU for longer).
    ensure!(!super::virtual_clock() || st.misses == 0, "CPU {cpu}: {} misses in {} jobs", st.misses, st.completions);
    ensure!(glue::with(|s| s.task_ids().all(|t| s.task(t).name != "pinned")), "the task is in CPU 0's scheduler too");
    Ok(())
}

const PONG_PORT: u16 = 60;
const BACK_PORT: u16 = 61;
static PONGS: AtomicU64 = AtomicU64::new(0);
static BACK: AtomicU64 = AtomicU64::new(0);
static BACK_CPU: AtomicUsize = AtomicUsize::new(usize::MAX);

/// On the second CPU: counts what it gets and posts as many back to CPU 0.
fn pong(_: usize) -> ! {
    loop {
        let n = api::wait_event();
        PONGS.fetch_add(u64::from(n), Ordering::Relaxed);
        api::post(BACK_PORT, n).expect("post back to CPU 0");
    }
}

/// On CPU 0: counts what comes back.
fn back(_: usize) -> ! {
    loop {
        let n = api::wait_event();
        BACK_CPU.store(api::this_cpu(), Ordering::Relaxed);
        BACK.fetch_add(u64::from(n), Ordering::Relaxed);
    }
}

pub(super) fn smp_posts_cross_cpus_through_mailboxes() -> TestResult {
    let cpu = second_cpu()?;
    Event::new("pong", PONG_PORT).priority(80).cpu(cpu).spawn(pong).map_err(|e| alloc::format!("{e:?}"))?;
    Event::new("back", BACK_PORT).priority(80).cpu(0).spawn(back).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(glue::port_cpu(PONG_PORT) == Some(cpu), "port {PONG_PORT} is on CPU {:?}", glue::port_cpu(PONG_PORT));
    // The port namespace is shared: CPU 0 cannot bind the second CPU's port.
    let dup = Event::new("dup", PONG_PORT).cpu(0).spawn(pong);
    ensure!(dup == Err(Error::PortInUse), "a second task on port {PONG_PORT} from another CPU: {dup:?}");
    let (sent0, delivered0) = glue::remote_posts();
    const ROUNDS: u64 = 50;
    for i in 0..ROUNDS {
        api::post(PONG_PORT, 2).map_err(|e| alloc::format!("{e:?}"))?;
        // Every few posts, let them pile up: counts add up in the mailbox, never lost.
        if i % 5 == 4 {
            ensure!(
                super::rt::run_until(1000, || BACK.load(Ordering::Relaxed) == 2 * (i + 1)),
                "after {} posts of 2: {} arrived on CPU {cpu}, {} came back",
                i + 1,
                PONGS.load(Ordering::Relaxed),
                BACK.load(Ordering::Relaxed)
            );
        }
    }
    ensure!(
        PONGS.load(Ordering::Relaxed) == 2 * ROUNDS,
        "{} events arrived, want {}",
        PONGS.load(Ordering::Relaxed),
        2 * ROUNDS
    );
    ensure!(BACK_CPU.load(Ordering::Relaxed) == 0, "the answer ran on CPU {}", BACK_CPU.load(Ordering::Relaxed));
    let (sent, delivered) = glue::remote_posts();
    // ROUNDS posts there; at least one post back per burst of five (the task may take several at once).
    ensure!(sent - sent0 >= ROUNDS + ROUNDS / 5, "{} cross-CPU posts counted", sent - sent0);
    ensure!(delivered - delivered0 >= ROUNDS / 5, "{} cross-CPU deliveries counted", delivered - delivered0);
    arch::console::console_write(format_args!(
        "# {} events each way; {} cross-CPU posts, {} deliveries\n",
        2 * ROUNDS,
        sent - sent0,
        delivered - delivered0
    ));
    Ok(())
}

pub(super) fn smp_objects_and_tasks_refuse_the_wrong_cpu() -> TestResult {
    let cpu = second_cpu()?;
    let m = RtMutex::new_on(cpu, 0u32).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(usize::from(m.id() >> 8) == cpu, "mutex id {:#x} does not name CPU {cpu}", m.id());
    let s = Semaphore::new_on(cpu, 2, 3).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(s.count() == 2, "the other CPU's semaphore reads {}", s.count());
    // From CPU 0 (this context), the other CPU's semaphore is refused by name.
    ensure!(s.post() == Err(Error::WrongCpu), "a post to CPU {cpu}'s semaphore from CPU 0: {:?}", s.post());
    ensure!(s.count() == 2, "the refused post changed the count to {}", s.count());
    let none = percpu::MAX_CPUS + 1;
    ensure!(RtMutex::new_on(none, 0u8).err() == Some(Error::WrongCpu), "a mutex for a CPU that does not exist");
    let t = Periodic::new("nowhere").cpu(none).spawn(pinned);
    ensure!(t == Err(Error::WrongCpu), "a task for a CPU that does not exist: {t:?}");
    Ok(())
}

/// Linux's events are per CPU: one logged for Linux on another CPU is pending there only (and
/// that CPU is woken for it); Linux cannot start its boot CPU, a CPU that is not Linux's, or one
/// twice.
pub(super) fn smp_linux_state_is_per_cpu() -> TestResult {
    use crate::guest::vcpu;
    let cpu = second_cpu()?;
    x86_64::instructions::interrupts::without_interrupts(|| vcpu::log_pending_on(cpu, 0x41));
    let here = vcpu::pending_on(0);
    let there = vcpu::pending_on(cpu);
    let summary = vcpu::block(cpu).pending_summary();
    let none_here = !vcpu::block(0).pending_summary();
    let linux = vcpu::linux_cpus();
    let boot = vcpu::request_start(0, 0x9_a000);
    let not_linux = vcpu::request_start(cpu, 0x9_a000);
    x86_64::instructions::interrupts::without_interrupts(vcpu::reset);
    ensure!(there && summary, "the event for CPU {cpu} is not pending there (bit {there}, summary {summary})");
    ensure!(!here && none_here, "the event for CPU {cpu} is pending on CPU 0");
    ensure!(linux == 1, "Linux's CPUs are {linux:#b} with no Linux running, want CPU 0's bit");
    ensure!(!boot, "Linux could start its own boot CPU");
    ensure!(!not_linux, "Linux could start CPU {cpu}, which is not one of its CPUs");
    ensure!(!vcpu::pending_on(cpu), "reset left the event pending on CPU {cpu}");
    Ok(())
}
