//! Several CPUs under deterministic time (icount): the co-kernel runs on every CPU, Linux beside it
//! on the shared ones (CPU 0, or every shared CPU with `hauki.linux_smp=on`), real-time tasks on
//! every core; the latency task on each CPU misses nothing while Linux runs the stress battery,
//! panics and is restarted.
//!
//! QEMU runs the vCPUs round-robin in one thread under icount: a CPU's timer interrupt waits until
//! the vCPU running before it gives up its turn, so the worst case on one CPU carries the others'
//! time slices. The co-kernel's `hauki.icount_pace_us` keeps those turns short (docs/smp.md).
//! The tests judge deadlines (100 µs) and print the per-CPU worst cases; `cargo xtask bench`
//! reports them.

use std::path::Path;
use std::time::Duration;

use hauki_abi::cmdline;
use serde_json::Value;

use super::linux_guest::{LinuxBoot, UP, boot_linux, report_console_failure};
use super::{Ctx, Status, Test, hard_timeout};
use crate::compare::{cokernel_histogram_of, record_cpu};
use crate::console::ShellConsole;
use crate::qemu::cokernel_args;
use crate::telemetry::Records;

/// `hauki.icount_pace_us` in these tests: QEMU's round-robin switches vCPUs at least every
/// 10 µs of virtual time, so a CPU's timer waits for another vCPU's turn about 5 µs at most.
pub(crate) const ICOUNT_PACE_US: u64 = 10;

pub(super) fn tests() -> Vec<Test> {
    tests![
        System: smp2_linux_beside_an_rt_only_core,
        smp4_every_core_runs_real_time_tasks,
        smp3_linux_smp_on_two_shared_cores
    ]
}

fn records(c2: &Path) -> Records {
    Records::parse(&std::fs::read_to_string(c2).unwrap_or_default())
}

/// Per CPU in `0..cpus`: the latency records from the `skip`-th on (each CPU's own count),
/// checked: samples in every window, no miss, the fine histogram consistent; the worst case (ns).
fn per_cpu_latency(r: &Records, cpus: u64, skip: usize, during: &str) -> Result<Vec<u64>, String> {
    let all: Vec<&Value> = r.records.iter().collect();
    let mut worst = Vec::new();
    for cpu in 0..cpus {
        let lat: Vec<&Value> = r.events("latency").filter(|l| record_cpu(l) == cpu).collect();
        if lat.len() <= skip {
            return Err(format!("CPU {cpu}: {} latency records{during}, want more than {skip}", lat.len()));
        }
        if let Some(l) = lat.iter().find(|l| l["samples"].as_u64().unwrap_or(0) == 0) {
            return Err(format!("CPU {cpu}: a window without samples{during}: {l}"));
        }
        let (h, misses) = cokernel_histogram_of(&all, cpu, skip, lat.len())?;
        let since_boot = lat.last().and_then(|l| l["misses_total"].as_u64()).unwrap_or(u64::MAX);
        if misses != 0 || since_boot != 0 {
            return Err(format!(
                "CPU {cpu}: the latency task missed {misses} deadlines{during} ({since_boot} since boot); {}",
                super::linux_guest::miss_context(r)
            ));
        }
        worst.push(h.max_ns);
    }
    if let Some(t) = r.events("task").find(|t| t["misses"].as_u64() != Some(0)) {
        return Err(format!("task {} on CPU {} missed deadlines{during}: {t}", t["task"], record_cpu(t)));
    }
    Ok(worst)
}

fn boot_record_cpus(r: &Records, online: u64, rt_only: u64) -> Result<(), String> {
    let b = r.events("boot").next().ok_or("no boot record")?;
    if b["cpus_online"] != online || b["cpus_rt_only"] != rt_only || b["cpus_parked"] != 0 {
        return Err(format!(
            "boot record: cpus_online {} cpus_rt_only {} cpus_parked {}, want {online}, {rt_only}, 0",
            b["cpus_online"], b["cpus_rt_only"], b["cpus_parked"]
        ));
    }
    Ok(())
}

/// Linux up at its prompt, the boot record naming `online` CPUs of which `rt_only` are real-time
/// only, and Linux seeing exactly the CPUs with the APIC IDs `linux`.
fn up(con: &mut ShellConsole, c2: &Path, online: u64, rt_only: u64, linux: &[u32]) -> Result<(), String> {
    let bound = hard_timeout();
    con.expect(UP, bound)?;
    con.expect("# ", bound)?;
    boot_record_cpus(&records(c2), online, rt_only)?;
    linux_sees_cpus(con, linux)
}

/// `hauki-stress SECS` on Linux's shell, checked.
fn stress(con: &mut ShellConsole, secs: u64) -> Result<(), String> {
    let (out, status) = con.run(&format!("hauki-stress {secs}"), hard_timeout() + Duration::from_secs(45 * secs))?;
    if status != 0 || !out.contains("hauki-stress:") {
        return Err(format!("the stress battery failed (status {status}): {out}"));
    }
    Ok(())
}

/// The processors (APIC IDs) a MADT's bytes list: Local APIC (type 0) and Local x2APIC (type 9)
/// entries.
fn madt_apic_ids(t: &[u8]) -> Result<Vec<u32>, String> {
    let len = t.get(4..8).map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()) as usize);
    if t.get(..4) != Some(&b"APIC"[..]) || len != Some(t.len()) || t.len() < 44 {
        return Err(format!("not a MADT: {} bytes, {:?}", t.len(), t.get(..8)));
    }
    let (mut at, mut ids) = (44, Vec::new());
    while at + 2 <= t.len() {
        let (ty, l) = (t[at], t[at + 1] as usize);
        if l < 2 || at + l > t.len() {
            return Err(format!("a MADT entry at {at} of length {l} runs past the table"));
        }
        match ty {
            0 if l >= 8 => ids.push(u32::from(t[at + 3])),
            9 if l >= 16 => ids.push(u32::from_le_bytes(t[at + 4..at + 8].try_into().unwrap_or_default())),
            _ => {}
        }
        at += l;
    }
    Ok(ids)
}

/// Linux sees exactly its own CPUs (APIC IDs `want`): `nproc` and `/proc/cpuinfo` count them, the
/// MADT it reads lists only them, and it did not have to ignore a processor.
fn linux_sees_cpus(con: &mut ShellConsole, want: &[u32]) -> Result<(), String> {
    let bound = hard_timeout();
    let (out, _) = con.run("nproc; grep -c ^processor /proc/cpuinfo", bound)?;
    let nums: Vec<&str> = out.split_whitespace().collect();
    let n = want.len().to_string();
    if nums != [n.as_str(), n.as_str()] {
        return Err(format!(
            "Linux counts CPUs {nums:?} (nproc, /proc/cpuinfo), want {n} and {n}: it must see exactly the shared CPUs"
        ));
    }
    let (out, st) = con.run("od -An -v -tu1 /sys/firmware/acpi/tables/APIC", bound)?;
    if st != 0 {
        return Err(format!("reading Linux's MADT failed ({st}): {out}"));
    }
    let bytes: Vec<u8> = out.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let ids = madt_apic_ids(&bytes)?;
    if ids != want {
        return Err(format!("the MADT Linux reads lists processors {ids:?}, want the shared CPUs {want:?} (APIC IDs)"));
    }
    let (out, _) = con.run("dmesg | grep -c 'Processor .* ignored' || true", bound)?;
    if out.trim() != "0" {
        return Err(format!("Linux ignored processors it was shown: {out}"));
    }
    Ok(())
}

fn boot(
    ctx: &Ctx<'_>,
    elf: &Path,
    smp: u32,
    extra: &[(&str, &dyn std::fmt::Display)],
) -> Result<(ShellConsole, std::path::PathBuf), Status> {
    let mut keys: Vec<(&str, &dyn std::fmt::Display)> = vec![
        (cmdline::LINUX, &"guest"),
        (cmdline::REPORT_MS, &500),
        (cmdline::APP, &"off"),
        (cmdline::ICOUNT_PACE_US, &ICOUNT_PACE_US),
    ];
    keys.extend_from_slice(extra);
    let linux = LinuxBoot { smp, ..LinuxBoot::default() };
    boot_linux(&ctx.dir(), elf, &cokernel_args(&keys), Some(0), &linux, &[]).map_err(Status::Fail)
}

/// Two CPUs, the default split: CPU 0 shared (Linux is its idle task), CPU 1 real-time only.
/// Linux boots and counts one CPU, runs the stress battery, then panics and is restarted; the
/// latency task on each CPU misses nothing throughout, and CPU 1's windows go on unbroken while
/// Linux is down.
fn smp2_linux_beside_an_rt_only_core(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let (mut con, c2) = match boot(ctx, elf, 2, &[]) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let bound = hard_timeout();
    let mut steps = || -> Result<(), String> {
        up(&mut con, &c2, 2, 1, &[0])?;
        let skip = |cpu: u64| records(&c2).events("latency").filter(|l| record_cpu(l) == cpu).count();
        let before = skip(1);
        stress(&mut con, 3)?;
        let worst = per_cpu_latency(&records(&c2), 2, before, " under the battery")?;
        println!(
            "    under hauki-stress 3: latency worst case CPU 0 (shared) {} ns, CPU 1 (real-time only) {} ns (virtual)",
            worst[0], worst[1]
        );
        // Linux panics: it is restarted on CPU 0, and CPU 1 never notices.
        let (worst, windows) = crash_and_restart(&mut con, &c2, (2, 1), &[0], Crash::Panic)?;
        println!(
            "    Linux panicked and was restarted; {windows} windows of CPU 1 across it, 5000 samples each; worst case CPU 0 {} ns, CPU 1 {} ns",
            worst[0], worst[1]
        );
        super::linux_guest::poweroff(&mut con, bound)
    };
    match steps() {
        Ok(()) => Status::Pass,
        Err(e) => report_console_failure(&con, e),
    }
}

/// Four CPUs, the default split: CPUs 0-2 shared (Linux SMP on three CPUs), CPU 3 real-time
/// only; real-time tasks on every core. Linux counts three CPUs and runs the battery on all of
/// them; then it locks up on CPU 2 with its flag off (beside two idle Linux CPUs), the watchdog
/// judges it stuck there, and all of Linux is restarted on its three CPUs; the co-kernel's latency
/// task on all four misses nothing throughout.
fn smp4_every_core_runs_real_time_tasks(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let (mut con, c2) = match boot(ctx, elf, 4, &[(cmdline::LINUX_WATCHDOG_MS, &SMP4_WATCHDOG_MS)]) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let bound = hard_timeout();
    let mut steps = || -> Result<(), String> {
        up(&mut con, &c2, 4, 1, &[0, 1, 2])?;
        let worst = battery_on_every_linux_cpu(&mut con, &c2, 4, 2)?;
        println!("    latency worst case per CPU {worst:?} ns (virtual; CPUs 0-2 shared with Linux, 3 real-time only)");
        let (_, windows) = crash_and_restart(&mut con, &c2, (4, 3), &[0, 1, 2], Crash::HardLockup)?;
        println!(
            "    Linux locked up on CPU 2 (flag off), was judged stuck there and came back on three CPUs; {windows} windows of CPU 3 across it, 5000 samples each"
        );
        super::linux_guest::poweroff(&mut con, bound)
    };
    match steps() {
        Ok(()) => Status::Pass,
        Err(e) => report_console_failure(&con, e),
    }
}

/// The watchdog limit of the four-CPU test (ms, virtual): its lock-up spins on PAUSE, which icount
/// runs far slower than other instructions (as the fault test found), so the limit is short; Linux
/// takes a clock event every few ms when busy and heartbeats when idle, so it is not judged
/// stuck otherwise.
const SMP4_WATCHDOG_MS: u64 = 100;

/// `hauki-stress SECS` with Linux on several CPUs: each of Linux's CPUs works under it (its
/// user+nice+system time in `/proc/stat` grows by at least half a second), and the latency task on
/// each of the `cpus` CPUs misses nothing meanwhile. The worst case per CPU (ns).
fn battery_on_every_linux_cpu(con: &mut ShellConsole, c2: &Path, cpus: u64, secs: u64) -> Result<Vec<u64>, String> {
    let before = records(c2).events("latency").filter(|l| record_cpu(l) == 0).count();
    let busy_before = linux_cpu_busy(con)?;
    stress(con, secs)?;
    let busy = linux_cpu_busy(con)?;
    if busy.len() != busy_before.len() || busy.iter().zip(&busy_before).any(|(a, b)| a.saturating_sub(*b) < 50) {
        return Err(format!(
            "Linux's CPUs worked {busy_before:?} -> {busy:?} ticks (user+nice+system) under the battery: want each busy"
        ));
    }
    println!("    Linux's CPUs busy under hauki-stress {secs}: {busy_before:?} -> {busy:?} ticks (USER_HZ)");
    // The latency records since the battery began, counted on CPU 0 (every CPU reports at once).
    per_cpu_latency(&records(c2), cpus, before.saturating_sub(1), " under the battery")
}

/// How a test makes Linux fail on its last CPU (LKDTM, pinned there with `taskset`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// Linux panics: it tells the co-kernel itself.
    Panic,
    /// Linux spins with its flag off: only the co-kernel's watchdog for that CPU can see it (its
    /// other CPUs idle on meanwhile, so they are not what it waits for).
    HardLockup,
}

/// Linux fails (`crash`, on its last CPU) and is restarted, seeing its CPUs (APIC IDs `linux`)
/// again; the `linux` record says how it failed (stuck: on which CPU); the latency task on each of
/// the `cpus` CPUs missed nothing throughout, and every window of the real-time-only CPU `rt_cpu`
/// across the restart holds its full count of releases (500 ms of 100 µs periods), so it lost
/// none. Returns the worst case per CPU and how many windows of `rt_cpu` spanned it.
fn crash_and_restart(
    con: &mut ShellConsole,
    c2: &Path,
    (cpus, rt_cpu): (u64, u64),
    linux: &[u32],
    crash: Crash,
) -> Result<(Vec<u64>, usize), String> {
    let bound = hard_timeout();
    let before = records(c2).events("latency").filter(|l| record_cpu(l) == rt_cpu).count();
    // On Linux's last CPU: with Linux SMP, a secondary's failure must take all of Linux down.
    let on = linux.len() - 1;
    let what = if crash == Crash::Panic { "PANIC" } else { "HARDLOCKUP" };
    con.send(&format!("taskset -c {on} sh -c 'echo {what} > /sys/kernel/debug/provoke-crash/DIRECT'"))?;
    if crash == Crash::Panic {
        con.expect("Kernel panic", bound).map_err(|e| format!("Linux did not panic: {e}"))?;
        con.expect(&format!("CPU: {on} "), bound).map_err(|e| format!("Linux did not panic on its CPU {on}: {e}"))?;
    }
    con.expect(UP, bound).map_err(|e| format!("Linux was not restarted: {e}"))?;
    con.expect("# ", bound)?;
    linux_sees_cpus(con, linux)?;
    con.run("sleep 1", bound)?;
    let r = records(c2);
    let restarts: Vec<&Value> = r.events("linux").filter(|l| l["action"] == "restart").collect();
    let [failed] = restarts[..] else {
        return Err(format!("{} Linux restarts recorded, want 1", restarts.len()));
    };
    let state = if crash == Crash::Panic { "panicked" } else { "stuck" };
    if failed["state"] != state || (crash == Crash::HardLockup && failed["cpu"].as_u64() != Some(on as u64)) {
        return Err(format!("the restart's record is {failed}, want state {state:?} (stuck: on CPU {on})"));
    }
    let worst = per_cpu_latency(&r, cpus, 0, " across the failure and restart")?;
    let windows: Vec<u64> = r
        .events("latency")
        .filter(|l| record_cpu(l) == rt_cpu)
        .skip(before)
        .filter_map(|l| l["samples"].as_u64())
        .collect();
    if windows.len() < 3 || windows[..windows.len() - 1].iter().any(|&n| n.abs_diff(5000) > 1) {
        return Err(format!("CPU {rt_cpu}'s windows across Linux's restart: {windows:?} samples, want 5000 each"));
    }
    Ok((worst, windows.len()))
}

/// Per Linux CPU, the kernel and user time `/proc/stat` has counted (USER_HZ ticks).
fn linux_cpu_busy(con: &mut ShellConsole) -> Result<Vec<u64>, String> {
    let (out, _) = con.run("grep '^cpu[0-9]' /proc/stat", hard_timeout())?;
    Ok(out
        .lines()
        .filter(|l| l.starts_with("cpu"))
        .map(|l| l.split_whitespace().skip(1).take(3).filter_map(|w| w.parse::<u64>().ok()).sum())
        .collect())
}

/// Three CPUs, the default split: CPUs 0 and 1 shared (Linux SMP), CPU 2 real-time only. Linux
/// counts two CPUs and runs the stress battery on both; the latency task on all three misses
/// nothing; Linux panics and is restarted with both of its CPUs, while CPU 2's windows go on
/// unbroken.
fn smp3_linux_smp_on_two_shared_cores(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let (mut con, c2) = match boot(ctx, elf, 3, &[]) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let bound = hard_timeout();
    let mut steps = || -> Result<(), String> {
        up(&mut con, &c2, 3, 1, &[0, 1])?;
        // Linux's status file shows every CPU's latency task and what kind of CPU it is.
        let (status, _) = con.run("cat /proc/hauki/status", bound)?;
        for want in ["cpu 0 (shared, Linux runs here)", "cpu 1 (shared, Linux runs here)", "cpu 2 (real-time only)"] {
            if !status.lines().any(|l| l.starts_with(want) && l.contains("deadline misses 0")) {
                return Err(format!("/proc/hauki/status has no line `{want}: ... deadline misses 0`:\n{status}"));
            }
        }
        // A CPU Linux took offline would have no way back to the co-kernel: Linux refuses.
        let (out, _) = con.run("echo 0 > /sys/devices/system/cpu/cpu1/online; echo offline=$?; nproc", bound)?;
        if out.contains("offline=0") || out.trim().lines().last() != Some("2") {
            return Err(format!("taking CPU 1 offline: {out:?}; want a refusal and nproc 2"));
        }
        let worst = battery_on_every_linux_cpu(&mut con, &c2, 3, 3)?;
        println!(
            "    latency worst case CPU 0 {} ns, CPU 1 {} ns (shared), CPU 2 {} ns (real-time only) (virtual)",
            worst[0], worst[1], worst[2]
        );
        let (_, windows) = crash_and_restart(&mut con, &c2, (3, 2), &[0, 1], Crash::Panic)?;
        println!(
            "    Linux panicked and came back on both CPUs; {windows} windows of CPU 2 across it, 5000 samples each"
        );
        super::linux_guest::poweroff(&mut con, bound)
    };
    match steps() {
        Ok(()) => Status::Pass,
        Err(e) => report_console_failure(&con, e),
    }
}
