//! Linux as the co-kernel's guest: the patched kernel bare, handed the machine by the co-kernel's
//! loader, refused when corrupt, and as the idle task beside the real-time tasks — its shell, its
//! paravirtual devices, and the stress battery that must not make a real-time task late. The
//! helpers that boot Linux and drive its shell serve the other Linux areas too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hauki_abi::cmdline;
use serde_json::json;

use super::{Ctx, Status, Test, expect_record, hard_timeout, outcome};
use crate::console::ShellConsole;
use crate::qemu::{Boot, Com, Qemu, QemuConfig, STATUS_SUCCESS, cokernel_args, explain_status, kernel_cmdline};
use crate::telemetry::{Expect, Records};
use crate::util::Workspace;

/// The last line of the busybox initramfs's banner: Linux is up and its shell about to prompt.
pub(crate) const UP: &str = "is up; type 'poweroff' to end.";

pub(super) fn tests() -> Vec<Test> {
    tests![System:
        linux_bare_boot,
        linux_loader_handover,
        linux_loader_refuses_bad_image,
        linux_guest_beside_rt,
        linux_stress_battery,
    ]
}

/// Boots `elf` with Linux as its idle task under icount (`qemu_extra`: devices; QEMU's files in
/// `dir`), runs `steps` on Linux's shell, then checks that the latency task missed nothing and powers off.
pub(super) fn with_linux(
    dir: &Path,
    elf: &Path,
    extra_args: &[(&str, &dyn std::fmt::Display)],
    qemu_extra: &[&str],
    steps: &dyn Fn(&mut ShellConsole, &Path) -> Result<(), String>,
) -> Status {
    let mut args: Vec<(&str, &dyn std::fmt::Display)> = vec![(cmdline::LINUX, &"guest"), (cmdline::REPORT_MS, &500)];
    args.extend_from_slice(extra_args);
    let args = cokernel_args(&args);
    let (mut con, c2) = match boot_linux(dir, elf, &args, Some(0), &LinuxBoot::default(), qemu_extra) {
        Ok(x) => x,
        Err(e) => return Status::Fail(e),
    };
    let bound = hard_timeout();
    let mut run = || -> Result<(), String> {
        at_prompt(&mut con, bound)?;
        steps(&mut con, &c2)?;
        no_misses(&c2, "")?;
        poweroff(&mut con, bound)
    };
    match run() {
        Ok(()) => Status::Pass,
        Err(e) => report_console_failure(&con, e),
    }
}

/// Runs `cmd` on the shell; its output, or an error naming the command and its status.
pub(crate) fn sh(con: &mut ShellConsole, cmd: &str) -> Result<String, String> {
    let (out, status) = con.run(cmd, hard_timeout())?;
    if status != 0 {
        return Err(format!("`{cmd}` exited with {status}: {out}"));
    }
    Ok(out)
}

/// Keeps Linux's late boot messages (a clock source switch, a link coming up) from landing in
/// the middle of a command's output: the console shows emergencies only from here.
pub(crate) fn quiet_console(con: &mut ShellConsole, bound: Duration) -> Result<(), String> {
    con.run("echo 1 > /proc/sys/kernel/printk", bound).map(|_| ())
}

/// Waits for the initramfs's banner and shell prompt, then quiets Linux's console.
pub(crate) fn at_prompt(con: &mut ShellConsole, bound: Duration) -> Result<(), String> {
    con.expect(UP, bound)?;
    con.expect("# ", bound)?;
    quiet_console(con, bound)
}

/// Drives the busybox shell: banner, prompt, `uname -r` ending in -hauki, the pseudo filesystems,
/// exit statuses, then `poweroff` (QEMU exit status 0).
fn drive_linux_shell(con: &mut ShellConsole) -> Result<(), String> {
    let bound = hard_timeout();
    at_prompt(con, bound)?;
    let (release, _) = con.run("uname -r", bound)?;
    if !release.trim().ends_with("-hauki") {
        return Err(format!("uname -r says {:?}, want a release ending in -hauki", release.trim()));
    }
    let (mounts, _) = con.run("cat /proc/mounts", bound)?;
    for fs in ["proc", "sysfs", "devtmpfs"] {
        if !mounts.contains(fs) {
            return Err(format!("{fs} is not mounted: {mounts}"));
        }
    }
    let (_, st) = con.run("ls /nonexistent", bound)?;
    if st == 0 {
        return Err("a failing command reported success".into());
    }
    let (math, _) = con.run("echo $((6*7))", bound)?;
    if math.trim() != "42" {
        return Err(format!("shell arithmetic gave {math:?}"));
    }
    con.send("poweroff")?;
    match con.wait_exit(bound)? {
        Some(0) => Ok(()),
        other => Err(format!("QEMU exit status {other:?} after poweroff, want 0")),
    }
}

pub(crate) fn report_console_failure(con: &ShellConsole, e: String) -> Status {
    let text = con.text();
    let tail: Vec<&str> = text.lines().rev().take(30).collect();
    println!("    console ({}), last lines:", con.log_path().display());
    for l in tail.iter().rev() {
        println!("      {l}");
    }
    Status::Fail(e)
}

/// The patched kernel still boots without the co-kernel: build it (cached), boot it with the
/// initramfs, drive the shell over COM1, power off.
fn linux_bare_boot(ctx: &Ctx<'_>, _elf: &Path, _iso: &Path) -> Status {
    let (vmlinux, initrd) = match crate::linux::build_all(ctx.ws) {
        Ok(x) => x,
        Err(e) => return Status::Fail(format!("the Linux guest does not build: {e}")),
    };
    println!("    booting the patched Linux bare (no co-kernel); driving its shell on COM1");
    let dir = ctx.dir();
    let (c1, c2) = Qemu::paths(&dir);
    let boot = Boot::Linux { vmlinux, initrd, cmdline: crate::linux::DEFAULT_CMDLINE.into() };
    let mut cfg = QemuConfig::test(boot, "max", &c1, &c2);
    cfg.extra = vec!["-nic".into(), "user,model=virtio-net-pci".into()];
    let mut con = match ShellConsole::spawn(&dir, &cfg) {
        Ok(c) => c,
        Err(e) => return Status::Fail(e),
    };
    match drive_linux_shell(&mut con) {
        Ok(()) => Status::Pass,
        Err(e) => report_console_failure(&con, e),
    }
}

/// Boots the co-kernel with the Linux bundle as its boot module and `cokernel_args`, COM1 on a
/// shell console, in the running test's folder; returns the console and the telemetry file.
pub(super) fn boot_cokernel_with_linux(
    ctx: &Ctx<'_>,
    elf: &Path,
    cokernel_args: &str,
    icount: Option<u8>,
) -> Result<(ShellConsole, PathBuf), Status> {
    boot_with_linux_in(&ctx.dir(), elf, cokernel_args, icount).map_err(Status::Fail)
}

/// Boots the co-kernel with the built Linux as its module, QEMU's files in `dir`.
fn boot_with_linux_in(
    dir: &Path,
    elf: &Path,
    cokernel_args: &str,
    icount: Option<u8>,
) -> Result<(ShellConsole, PathBuf), String> {
    boot_with_linux_initramfs(dir, elf, cokernel_args, icount, None, None)
}

/// As [`boot_with_linux_in`], with another kernel or initramfs than the usual ones.
pub(super) fn boot_with_linux_initramfs(
    dir: &Path,
    elf: &Path,
    cokernel_args: &str,
    icount: Option<u8>,
    initramfs: Option<&Path>,
    vmlinux: Option<&Path>,
) -> Result<(ShellConsole, PathBuf), String> {
    boot_with_linux_devices(dir, elf, cokernel_args, icount, initramfs, vmlinux, &[])
}

/// As [`boot_with_linux_initramfs`], with extra QEMU arguments (devices).
pub(crate) fn boot_with_linux_devices(
    dir: &Path,
    elf: &Path,
    cokernel_args: &str,
    icount: Option<u8>,
    initramfs: Option<&Path>,
    vmlinux: Option<&Path>,
    qemu_extra: &[&str],
) -> Result<(ShellConsole, PathBuf), String> {
    let linux = LinuxBoot { initramfs, vmlinux, ..LinuxBoot::default() };
    boot_linux(dir, elf, cokernel_args, icount, &linux, qemu_extra)
}

/// What Linux boots with: `None` for the usual kernel and initramfs.
pub(crate) struct LinuxBoot<'a> {
    pub initramfs: Option<&'a Path>,
    pub vmlinux: Option<&'a Path>,
    pub cmdline: &'a str,
    /// CPUs (`-smp`).
    pub smp: u32,
}

impl Default for LinuxBoot<'_> {
    fn default() -> Self {
        LinuxBoot { initramfs: None, vmlinux: None, cmdline: crate::linux::DEFAULT_CMDLINE, smp: 1 }
    }
}

/// [`boot_with_linux_devices`] with Linux's command line chosen too.
pub(crate) fn boot_linux(
    dir: &Path,
    elf: &Path,
    cokernel_args: &str,
    icount: Option<u8>,
    linux: &LinuxBoot<'_>,
    qemu_extra: &[&str],
) -> Result<(ShellConsole, PathBuf), String> {
    let (initramfs, vmlinux) = (linux.initramfs, linux.vmlinux);
    let ws = Workspace::locate();
    let bundle = crate::linux::build_all(&ws)
        .and_then(|(v, i)| {
            let i = initramfs.map_or(i, Path::to_path_buf);
            let v = vmlinux.map_or(v, Path::to_path_buf);
            crate::linux::build_bundle(
                &ws,
                &v,
                &i,
                linux.cmdline,
                &format!("{}.bundle", dir.file_name().unwrap_or_default().to_string_lossy()),
            )
        })
        .map_err(|e| format!("the Linux guest does not build: {e}"))?;
    let dir = dir.to_path_buf();
    let (c1, c2) = Qemu::paths(&dir);
    // Every figure the co-kernel shows says what its clock is, as `cargo xtask run` has it say.
    let timing = crate::qemu::timing(crate::args::Accel::Tcg, icount.is_some()).unwrap_or("hardware");
    let args = format!("{cokernel_args} {}", crate::qemu::cokernel_args(&[(cmdline::TIMING, &timing)]));
    let boot = Boot::Kernel { elf: elf.to_path_buf(), cmdline: kernel_cmdline(&args) };
    let mut cfg = QemuConfig::test(boot, "max", &c1, &c2);
    cfg.smp = linux.smp;
    cfg.extra = vec!["-initrd".into(), bundle.display().to_string()];
    cfg.extra.extend(qemu_extra.iter().map(|s| s.to_string()));
    cfg.icount = icount.is_some();
    cfg.icount_shift = icount.unwrap_or(0);
    let con = ShellConsole::spawn(&dir, &cfg)?;
    Ok((con, c2))
}

/// The co-kernel's loader end to end: it takes the bundle (vmlinux, initramfs, command line) as
/// its boot module, validates and loads the kernel, builds boot_params and the handoff page, and
/// (hauki.linux=handover) gives Linux the machine; the shell must work.
fn linux_loader_handover(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let args = cokernel_args(&[(cmdline::LINUX, &"handover")]);
    println!("    the co-kernel loads Linux and hands it the machine; driving Linux's shell on COM1");
    let (mut con, c2) = match boot_cokernel_with_linux(ctx, elf, &args, None) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let r = drive_linux_shell(&mut con).and_then(|()| {
        let recs = Records::parse(&std::fs::read_to_string(&c2).unwrap_or_default());
        expect_record(&recs, "linux", &[Expect::Eq("state", json!("handover")), Expect::Positive("e820_entries")])?;
        let r = recs.first("linux").ok_or("no linux record")?;
        let hex =
            |k: &str| r[k].as_str().and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok()).unwrap_or(0);
        // Linux is linked at 16 MiB physical; its entry (startup_64) lies inside what was loaded.
        if hex("load_start") != 0x100_0000 || !(hex("load_start")..hex("load_end")).contains(&hex("entry")) {
            return Err(format!("implausible load layout: {r}"));
        }
        Ok(())
    });
    match r {
        Ok(()) => Status::Pass,
        Err(e) => report_console_failure(&con, e),
    }
}

/// Linux as the co-kernel's idle task: one IDT (Linux's exceptions and interrupts forwarded), the
/// co-kernel's page-table slots shared, Linux's soft interrupt flag, the real-time tasks running
/// throughout. Under deterministic virtual time (icount) the shell must work and the latency task
/// must miss no deadline, from the co-kernel's boot through Linux's boot and a shell workload.
fn linux_guest_beside_rt(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let args = cokernel_args(&[(cmdline::LINUX, &"guest"), (cmdline::REPORT_MS, &500)]);
    println!("    Linux as the idle task under icount: its boot, a shell workload, its paravirtual devices");
    let (mut con, c2) = match boot_cokernel_with_linux(ctx, elf, &args, Some(0)) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let bound = hard_timeout();
    let mut steps = || -> Result<(), String> {
        at_prompt(&mut con, bound)?;
        // The first report after the prompt may still cover Linux's boot: the shell's figures start
        // after it.
        let before = Records::parse(&std::fs::read_to_string(&c2).unwrap_or_default()).events("latency").count() + 1;
        let (release, _) = con.run("uname -r", bound)?;
        if !release.trim().ends_with("-hauki") {
            return Err(format!("uname -r says {:?}", release.trim()));
        }
        let (out, _) = con.run("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo done $i", bound)?;
        if !out.contains("done 20000") {
            return Err(format!("a shell loop did not finish: {out:?}"));
        }
        guest_devices_are_paravirtual(&mut con, bound)?;
        let recs = Records::parse(&std::fs::read_to_string(&c2).unwrap_or_default());
        expect_record(&recs, "linux", &[Expect::Eq("state", json!("guest"))])?;
        let guest = recs.events("guest").last().ok_or("no guest record on COM2")?;
        let timer_events = guest["timer_events"].as_u64().unwrap_or(0);
        let com1_irqs = guest["line_irqs"].get(4).and_then(|v| v.as_u64()).unwrap_or(0);
        if timer_events == 0 || com1_irqs == 0 {
            return Err(format!(
                "the co-kernel raised {timer_events} Linux timer events and took {com1_irqs} COM1 interrupts for Linux: {guest}"
            ));
        }
        let lat: Vec<&serde_json::Value> = recs.events("latency").collect();
        if lat.len() <= before || lat[before..].iter().all(|l| l["samples"].as_u64().unwrap_or(0) == 0) {
            return Err(format!(
                "no latency samples while Linux ran its shell ({} records before, {} after)",
                before,
                lat.len()
            ));
        }
        let samples: u64 = lat[before..].iter().filter_map(|l| l["samples"].as_u64()).sum();
        let max = lat[before..].iter().filter_map(|l| l["max_ns"].as_u64()).max().unwrap_or(0);
        println!("    while Linux ran the shell: {samples} latency samples, max {max} ns (virtual)");
        let misses: u64 = lat.iter().filter_map(|l| l["misses"].as_u64()).sum();
        if misses != 0 {
            return Err(format!("the latency task missed {misses} deadlines while Linux booted and ran its shell"));
        }
        poweroff(&mut con, bound)
    };
    match steps() {
        Ok(()) => Status::Pass,
        Err(e) => report_console_failure(&con, e),
    }
}

/// Linux's clock events come from the co-kernel ("hauki" clock-event device, ticking: uptime
/// advances across `sleep 1`), its local APIC writes go through the co-kernel's filter, its console line is interrupt-driven through the co-kernel's
/// irqchip (IRQ 4 on chip "hauki" with interrupts counted), it left COM2 alone, and the
/// co-kernel's status page shows its tasks and latency, both in debugfs (`hauki/status`, where the
/// patch series puts it) and at `/proc/hauki/status` (kept for users; linux-patch/README.md).
fn guest_devices_are_paravirtual(con: &mut ShellConsole, bound: Duration) -> Result<(), String> {
    let (dev, _) = con.run("cat /sys/devices/system/clockevents/clockevent0/current_device", bound)?;
    if dev.trim() != "hauki" {
        return Err(format!("Linux's clock-event device is {:?}, not the co-kernel's \"hauki\"", dev.trim()));
    }
    // Patch 0019: Linux's writes to the shared local APIC's enable, priority and timer go through
    // the filter (Linux reports each callback it replaces).
    let (apic, _) = con.run("dmesg | grep 'APIC: write() replaced'", bound)?;
    if !apic.contains("hauki_apic_write") {
        return Err(format!("Linux's local APIC writes are not filtered (no hauki_apic_write in dmesg): {apic:?}"));
    }
    let uptime = |con: &mut ShellConsole| -> Result<f64, String> {
        let (u, _) = con.run("cat /proc/uptime", bound)?;
        u.split_whitespace().next().and_then(|x| x.parse().ok()).ok_or(format!("unreadable /proc/uptime: {u:?}"))
    };
    let t0 = uptime(con)?;
    con.run("sleep 1", bound)?;
    let t1 = uptime(con)?;
    if !(1.0..30.0).contains(&(t1 - t0)) {
        return Err(format!("`sleep 1` moved Linux's uptime by {:.2} s", t1 - t0));
    }
    let (irqs, _) = con.run("cat /proc/interrupts", bound)?;
    let line = irqs.lines().find(|l| l.contains("ttyS0")).ok_or(format!("no ttyS0 in /proc/interrupts:\n{irqs}"))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let count: u64 = f.get(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    if f.first() != Some(&"4:") || f.get(2) != Some(&"hauki") || count == 0 {
        return Err(format!("ttyS0 is not IRQ 4 on the \"hauki\" irqchip with interrupts taken: {line:?}"));
    }
    let loc = irqs
        .lines()
        .find(|l| l.trim_start().starts_with("LOC:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok());
    if loc.unwrap_or(0) == 0 {
        return Err(format!("no local timer interrupts (LOC) in /proc/interrupts:\n{irqs}"));
    }
    for path in ["/sys/kernel/debug/hauki/status", "/proc/hauki/status"] {
        let (status, _) = con.run(&format!("cat {path}"), bound)?;
        // The latency task's row: its name, then its priority.
        let latency_row = status.lines().find(|l| l.split_whitespace().take(2).eq(["latency", "250"]));
        let samples = status.lines().any(|l| l.starts_with("latency: period"));
        // Under icount the page says its figures are virtual time.
        if !status.lines().any(|l| l.starts_with("timing: virtual (QEMU -icount")) {
            return Err(format!("{path} does not say its figures are virtual time:\n{status}"));
        }
        if !status.lines().any(|l| l.starts_with("Hauki co-kernel"))
            || latency_row.is_none()
            || !samples
            || !status.contains("events for linux: forwarded")
        {
            return Err(format!("{path} does not show the co-kernel's tasks and latency:\n{status}"));
        }
    }
    let (ports, _) = con.run("cat /proc/ioports", bound)?;
    if !ports.contains("02f8-02ff : hauki telemetry") {
        return Err(format!("Linux did not leave COM2 (the telemetry UART) to the co-kernel:\n{ports}"));
    }
    Ok(())
}

/// A corrupt kernel image is refused with a clear record, and the real-time side keeps its
/// deadlines (3 reports under icount, zero misses).
fn linux_loader_refuses_bad_image(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let dir = ctx.dir();
    let _ = std::fs::create_dir_all(&dir);
    // An ELF header that lies: right magic, then garbage.
    let mut garbage = b"\x7fELF\x02\x01\x01".to_vec();
    garbage.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let fake = dir.join("vmlinux-corrupt");
    let initrd = dir.join("initrd-empty");
    if let Err(e) = std::fs::write(&fake, &garbage).and_then(|_| std::fs::write(&initrd, b"")) {
        return Status::Fail(e.to_string());
    }
    let bundle = match crate::linux::build_bundle(ctx.ws, &fake, &initrd, "console=ttyS0", "linux-corrupt.bundle") {
        Ok(b) => b,
        Err(e) => return Status::Fail(e),
    };
    let extra_initrd = bundle.display().to_string();
    let verify = |r: &Records| {
        expect_record(
            r,
            "linux",
            &[Expect::Eq("state", json!("refused")), Expect::Eq("reason", json!("bad-vmlinux"))],
        )?;
        super::rt::rt_checks(r, false)
    };
    let dir2 = ctx.dir_with("run");
    let (c1, c2) = Qemu::paths(&dir2);
    let args = cokernel_args(&[(cmdline::EXIT_AFTER_REPORTS, &3), (cmdline::APP, &"off")]);
    let boot = Boot::Kernel { elf: elf.to_path_buf(), cmdline: kernel_cmdline(&args) };
    let mut cfg = QemuConfig::test(boot, "qemu64", &c1, &c2);
    cfg.icount = true;
    cfg.extra = vec!["-initrd".into(), extra_initrd];
    let mut q = match Qemu::spawn(&dir2, &cfg, hard_timeout()) {
        Ok(q) => q,
        Err(e) => return Status::Fail(e),
    };
    let exit = q.wait_exit(hard_timeout());
    let recs = Records::parse(&q.read(Com::Com2));
    let r = verify(&recs).and_then(|()| match exit {
        Ok(Some(STATUS_SUCCESS)) => Ok(()),
        Ok(s) => Err(format!("expected exit status {STATUS_SUCCESS}, got {}", explain_status(s))),
        Err(e) => Err(e.to_string()),
    });
    outcome(&q, r)
}

/// `poweroff` on Linux's shell must end QEMU cleanly (status 0).
pub(crate) fn poweroff(con: &mut ShellConsole, bound: Duration) -> Result<(), String> {
    poweroff_by(con, "poweroff", bound)
}

/// `cmd` on Linux's shell must end QEMU cleanly (status 0).
pub(super) fn poweroff_by(con: &mut ShellConsole, cmd: &str, bound: Duration) -> Result<(), String> {
    con.send(cmd)?;
    match con.wait_exit(bound)? {
        Some(0) => Ok(()),
        other => Err(format!("QEMU exit status {other:?} after {cmd}, want 0")),
    }
}

/// The latency task's worst case (ns) in COM2's records so far (`c2`); an error, naming `during`,
/// if it missed any deadline.
pub(super) fn no_misses(c2: &Path, during: &str) -> Result<u64, String> {
    let recs = Records::parse(&std::fs::read_to_string(c2).unwrap_or_default());
    let misses: u64 = recs.events("latency").filter_map(|l| l["misses"].as_u64()).sum();
    if misses != 0 {
        return Err(format!("the latency task missed {misses} deadlines{during}; {}", miss_context(&recs)));
    }
    Ok(recs.events("latency").filter_map(|l| l["max_ns"].as_u64()).max().unwrap_or(0))
}

/// Where misses happened, for a failure message: each latency window with misses (its CPU, worst
/// release latency and the Linux failure records near it), the worst hardware-off sites since
/// boot (symbolized), and the stray-interrupt counts.
pub(super) fn miss_context(recs: &Records) -> String {
    let mut parts = Vec::new();
    for (i, r) in recs.records.iter().enumerate() {
        if r["event"] != "latency" || r["misses"].as_u64().unwrap_or(0) == 0 {
            continue;
        }
        let near: Vec<String> = recs.records[i.saturating_sub(12)..(i + 4).min(recs.records.len())]
            .iter()
            .filter(|x| x["event"] == "linux" || x["event"] == "stray_irqs")
            .map(|x| x.to_string())
            .collect();
        parts.push(format!(
            "window with {} misses on CPU {}: max {} ns{}",
            r["misses"],
            r["cpu"],
            r["max_ns"],
            if near.is_empty() { String::new() } else { format!(" near {}", near.join(", ")) }
        ));
        if parts.len() == 4 {
            break;
        }
    }
    let ws = Workspace::locate();
    let sites: Vec<String> = crate::telemetry::windows(recs)
        .iter()
        .take(3)
        .map(|w| format!("{} ns x{} at {}", w.max_ns, w.count, crate::telemetry::symbolize(&ws, w.site)))
        .collect();
    parts.push(format!("worst sites since boot: {}", sites.join("; ")));
    if let Some(s) = recs.events("stray_irqs").last() {
        parts.push(format!("stray interrupts: {s}"));
    }
    parts.join("; ")
}

/// Seconds of virtual time the battery runs in the system test (about 10 s of wall time each
/// under icount); `cargo xtask bench` runs it longer.
pub const STRESS_TEST_SECS: u64 = 4;
/// The battery's worst release latency may be at most this many times the idle worst case.
pub const STRESS_FACTOR: u64 = 5;

/// What a stress run measured.
pub struct StressRun {
    pub idle_max_ns: u64,
    pub stress_max_ns: u64,
    pub stress_samples: u64,
    pub misses: u64,
    pub summary: String,
    pub windows: Vec<crate::telemetry::Window>,
}

/// Boots Linux beside the tasks under icount, lets it idle for 2 s at the prompt, runs
/// `hauki-stress SECS` and reads the latency records of both phases and the window table.
pub fn stress_run(dir: &Path, elf: &Path, secs: u64) -> Result<StressRun, String> {
    let args = cokernel_args(&[(cmdline::LINUX, &"guest"), (cmdline::REPORT_MS, &500)]);
    println!(
        "    Linux as the idle task under icount: booting, idling 3 s at its prompt, then hauki-stress {secs} (virtual s)"
    );
    let (mut con, c2) = boot_with_linux_in(dir, elf, &args, Some(0))?;
    let bound = hard_timeout();
    let latency = |c2: &Path| -> Vec<serde_json::Value> {
        Records::parse(&std::fs::read_to_string(c2).unwrap_or_default()).events("latency").cloned().collect()
    };
    let mut steps = || -> Result<StressRun, String> {
        con.expect(UP, bound)?;
        con.expect("# ", bound)?;
        // Skip the report that may still cover Linux's boot; then idle.
        let a = latency(&c2).len() + 1;
        con.run("sleep 3", bound)?;
        let b = latency(&c2).len();
        let (out, status) = con.run(&format!("hauki-stress {secs}"), bound + Duration::from_secs(30 * secs))?;
        let c = latency(&c2).len();
        if status != 0 || !out.contains("hauki-stress:") {
            return Err(format!("the stress battery failed (status {status}): {out}"));
        }
        let lat = latency(&c2);
        let max = |r: &[serde_json::Value]| r.iter().filter_map(|l| l["max_ns"].as_u64()).max().unwrap_or(0);
        let idle = lat.get(a..b).ok_or("no latency reports while Linux idled")?;
        let stress = lat.get(b + 1..c).ok_or("no latency reports during the battery")?;
        if idle.is_empty() || stress.is_empty() {
            return Err(format!("too few latency reports: {} idle, {} under stress", idle.len(), stress.len()));
        }
        let recs = Records::parse(&std::fs::read_to_string(&c2).unwrap_or_default());
        let windows = crate::telemetry::windows(&recs);
        con.send("poweroff")?;
        let _ = con.wait_exit(bound);
        Ok(StressRun {
            idle_max_ns: max(idle),
            stress_max_ns: max(stress),
            stress_samples: stress.iter().filter_map(|l| l["samples"].as_u64()).sum(),
            misses: lat.iter().filter_map(|l| l["misses"].as_u64()).sum(),
            summary: out.lines().find(|l| l.starts_with("hauki-stress:")).unwrap_or("").trim().to_string(),
            windows,
        })
    };
    steps().inspect_err(|e| {
        let _ = report_console_failure(&con, e.clone());
    })
}

/// Nothing Linux does can make a real-time task late: under the stress battery (CPU hogs,
/// fork/exec, find, /proc readers, pipes, console output, memory pressure) the latency task misses
/// no deadline and its worst case stays within a small factor of the idle worst case. Prints the
/// hardware-off window table, symbolized.
fn linux_stress_battery(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let r = match stress_run(&ctx.dir(), elf, STRESS_TEST_SECS) {
        Ok(r) => r,
        Err(e) => return Status::Fail(e),
    };
    println!(
        "    {}; latency max {} ns idle, {} ns under the battery ({} samples), {} misses",
        r.summary, r.idle_max_ns, r.stress_max_ns, r.stress_samples, r.misses
    );
    for w in r.windows.iter().take(8) {
        println!("      window {:>7} ns x{:<6} {}", w.max_ns, w.count, crate::telemetry::symbolize(ctx.ws, w.site));
    }
    if r.misses != 0 {
        return Status::Fail(format!("the latency task missed {} deadlines", r.misses));
    }
    if r.stress_max_ns > STRESS_FACTOR * r.idle_max_ns.max(1) {
        return Status::Fail(format!(
            "worst release latency under the battery {} ns is more than {STRESS_FACTOR}x the idle worst case {} ns",
            r.stress_max_ns, r.idle_max_ns
        ));
    }
    Status::Pass
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_is_reported_with_its_window_the_failure_near_it_and_the_worst_sites() {
        let recs = Records::parse(concat!(
            r#"{"event":"latency","cpu":0,"max_ns":900,"misses":0}"#,
            "\n",
            r#"{"event":"linux","state":"panicked","action":"restart"}"#,
            "\n",
            r#"{"event":"latency","cpu":0,"max_ns":224945,"misses":2}"#,
            "\n",
            r#"{"event":"windows","sites":["0x0000000000000002","0x0000000000000001"],"max_ns":[224945,300],"count":[1,5],"dropped":0}"#,
            "\n",
            r#"{"event":"stray_irqs","spurious":0,"unexpected":7}"#,
            "\n",
        ));
        let c = miss_context(&recs);
        assert!(c.contains("window with 2 misses on CPU 0: max 224945 ns near"), "{c}");
        assert!(c.contains(r#""state":"panicked""#), "{c}");
        assert!(c.contains("224945 ns x1 at timer interrupt lost"), "{c}");
        assert!(c.contains("300 ns x5 at Linux user mode"), "{c}");
        assert!(c.contains(r#""unexpected":7"#), "{c}");
        assert_eq!(c.matches("window with").count(), 1, "{c}");
    }
}
