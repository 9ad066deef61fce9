//! Applications and channels: an application built and booted by name, refused at boot when it
//! asks for what the image cannot give, and its channels as the co-kernel reports them.

use std::path::{Path, PathBuf};

use hauki_abi::cmdline;
use serde_json::json;

use super::linux_guest::{quiet_console, sh, with_linux};
use super::{Ctx, PvhCase, Status, Test, expect_record, hard_timeout, run_pvh};
use crate::console::ShellConsole;
use crate::qemu::{STATUS_SUCCESS, cokernel_args};
use crate::telemetry::{Expect, Records};
use crate::util::Workspace;

pub(super) fn tests() -> Vec<Test> {
    tests![System:
        app_built_and_booted_by_name,
        app_refused_when_its_channels_do_not_fit,
        app_refused_when_its_device_is_absent,
        channels_echo_both_ways,
        channel_scribbled_by_a_hostile_linux,
        channels_bulk_each_way_checked,
        channel_without_a_task_is_a_broken_pipe,
        edu_device_owned_by_a_task_linux_never_sees,
        isa_uart_owned_by_a_task_linux_never_gets,
        bridge_survives_whatever_its_linux_program_does,
    ]
}

/// The `echo` application's image (built once per run; `target/hauki/cokernel-echo.elf`).
pub(super) fn echo_elf() -> Result<PathBuf, String> {
    crate::build::build_app(&Workspace::locate(), "echo", "cokernel-echo.elf")
}

fn echo_case<'a>(append: &'a str, verify: &'a dyn Fn(&Records) -> Result<(), String>) -> PvhCase<'a> {
    PvhCase {
        cpu: "max",
        smp: 1,
        mem_mib: None,
        icount: true,
        machine: "q35",
        append,
        want_status: STATUS_SUCCESS,
        verify,
    }
}

/// `cargo xtask build --app echo` gives an image that runs echo: its `app` record, its two
/// channels in telemetry (the ring to Linux idle, nothing refused), no demo `control` record,
/// and the latency task with no miss.
fn app_built_and_booted_by_name(ctx: &Ctx<'_>, _elf: &Path, _iso: &Path) -> Status {
    let elf = match echo_elf() {
        Ok(e) => e,
        Err(e) => return Status::Fail(e),
    };
    let verify = |r: &Records| {
        expect_record(r, "app", &[Expect::Eq("name", json!("echo")), Expect::Eq("state", json!("started"))])?;
        let names: Vec<&str> = r.events("channel").filter_map(|c| c["name"].as_str()).collect();
        for want in ["echo", "echo-log"] {
            if !names.contains(&want) {
                return Err(format!("no channel record for {want}: {names:?}"));
            }
        }
        if let Some(c) = r.events("channel").find(|c| c["refused"].as_u64() != Some(0) || c["sent"].as_u64() != Some(0))
        {
            return Err(format!("a channel counted traffic with no Linux: {c}"));
        }
        if r.events("control").next().is_some() {
            return Err("the echo image ran the demo's control loop".into());
        }
        let misses: u64 = r.events("latency").filter_map(|l| l["misses"].as_u64()).sum();
        if misses > 0 {
            return Err(format!("{misses} deadline misses"));
        }
        Ok(())
    };
    run_pvh(ctx, &elf, &echo_case(&cokernel_args(&[(cmdline::EXIT_AFTER_REPORTS, &2)]), &verify))
}

/// With a channel region too small for echo's channels, the application is refused at boot with
/// the sizes and the key to raise, and the system tasks run on (latency reports, no miss).
fn app_refused_when_its_channels_do_not_fit(ctx: &Ctx<'_>, _elf: &Path, _iso: &Path) -> Status {
    let elf = match echo_elf() {
        Ok(e) => e,
        Err(e) => return Status::Fail(e),
    };
    let verify = |r: &Records| {
        expect_record(r, "app", &[Expect::Eq("name", json!("echo")), Expect::Eq("state", json!("refused"))])?;
        let msg = r.first("app").and_then(|a| a["message"].as_str()).unwrap_or("");
        if !(msg.contains("bytes") && msg.contains("hauki.channels_kib")) {
            return Err(format!("the refusal does not say what did not fit: {msg:?}"));
        }
        if r.events("latency").count() < 2 || r.events("latency").any(|l| l["misses"].as_u64() != Some(0)) {
            return Err("the system tasks did not run on with no miss".into());
        }
        Ok(())
    };
    let append = cokernel_args(&[(cmdline::EXIT_AFTER_REPORTS, &2), (cmdline::CHANNELS_KIB, &16)]);
    run_pvh(ctx, &elf, &echo_case(&append, &verify))
}

/// The telemetry so far.
fn records(c2: &Path) -> Records {
    Records::parse(&std::fs::read_to_string(c2).unwrap_or_default())
}

/// The edu and uart applications booted on a machine without their devices: each is refused at
/// boot saying which device is missing, and the system tasks run on (latency reports, no miss).
fn app_refused_when_its_device_is_absent(ctx: &Ctx<'_>, _elf: &Path, _iso: &Path) -> Status {
    for (app, want) in [("edu", "no PCI device 1234:11e8 on this machine"), ("uart", "no 16550 UART at 0x3e8")] {
        let elf = match crate::build::build_app(&Workspace::locate(), app, &format!("cokernel-{app}.elf")) {
            Ok(e) => e,
            Err(e) => return Status::Fail(e),
        };
        let verify = |r: &Records| {
            expect_record(r, "app", &[Expect::Eq("name", json!(app)), Expect::Eq("state", json!("refused"))])?;
            let msg = r.first("app").and_then(|a| a["message"].as_str()).unwrap_or("");
            if !msg.contains(want) {
                return Err(format!("{app}: the refusal does not say {want:?}: {msg:?}"));
            }
            if r.events("latency").count() < 2 || r.events("latency").any(|l| l["misses"].as_u64() != Some(0)) {
                return Err(format!("{app}: the system tasks did not run on with no miss"));
            }
            Ok(())
        };
        let append = cokernel_args(&[(cmdline::EXIT_AFTER_REPORTS, &2)]);
        match run_pvh(ctx, &elf, &echo_case(&append, &verify)) {
            Status::Pass => {}
            other => return other,
        }
    }
    Status::Pass
}

/// Linux programs and a real-time task through `/dev/hauki/echo`: records of 1 to 256 random
/// bytes come back identical (compared byte for byte); a reader whose buffer is too short gets
/// EMSGSIZE and the record stays for the next read; a record longer than the channel's is
/// refused; the byte channel carries the task's log; the counters agree on both sides; the
/// latency task misses nothing.
fn channels_echo_both_ways(ctx: &Ctx<'_>, _elf: &Path, _iso: &Path) -> Status {
    let elf = match echo_elf() {
        Ok(e) => e,
        Err(e) => return Status::Fail(e),
    };
    let steps = |con: &mut ShellConsole, c2: &Path| -> Result<(), String> {
        let ls = sh(con, "ls /dev/hauki/")?;
        if !(ls.contains("echo-log") && ls.split_whitespace().any(|w| w == "echo")) {
            return Err(format!("/dev/hauki/ does not list echo and echo-log: {ls:?}"));
        }
        let out = sh(
            con,
            "ok=0; for i in $(seq 1 24); do n=$(( (i * 37) % 256 + 1 )); head -c $n /dev/urandom > /tmp/a; \
             dd if=/tmp/a of=/dev/hauki/echo bs=$n count=1 2>/dev/null; \
             dd if=/dev/hauki/echo of=/tmp/b bs=256 count=1 2>/dev/null; cmp -s /tmp/a /tmp/b && ok=$((ok + 1)); done; \
             echo echoed $ok of 24",
        )?;
        if !out.contains("echoed 24 of 24") {
            return Err(format!("records did not come back intact: {out:?}"));
        }
        // A short buffer: EMSGSIZE, and the record is still there for a buffer that fits.
        let out = sh(
            con,
            "head -c 100 /dev/urandom > /tmp/a; dd if=/tmp/a of=/dev/hauki/echo bs=100 count=1 2>/dev/null; \
             dd if=/dev/hauki/echo of=/dev/null bs=10 count=1 2>&1; echo short=$?; \
             dd if=/dev/hauki/echo of=/tmp/b bs=256 count=1 2>/dev/null; cmp -s /tmp/a /tmp/b && echo kept",
        )?;
        if !(out.contains("Message too long") || out.contains("message too long"))
            || out.contains("short=0")
            || !out.contains("kept")
        {
            return Err(format!("a short read buffer was not refused with EMSGSIZE keeping the record: {out:?}"));
        }
        let out = sh(con, "head -c 300 /dev/zero | dd of=/dev/hauki/echo bs=300 count=1 2>&1; echo long=$?")?;
        if out.contains("long=0") {
            return Err(format!("a record longer than the channel's was accepted: {out:?}"));
        }
        let log = sh(con, "dd if=/dev/hauki/echo-log bs=4096 count=1 2>/dev/null | grep -c '^echo '")?;
        if log.trim().parse::<u32>().unwrap_or(0) < 25 {
            return Err(format!("the byte channel echo-log carried {} lines, want 25", log.trim()));
        }
        let received = sh(con, "cat /sys/kernel/hauki/channels/echo/received")?;
        let received: u64 = received.trim().parse().map_err(|_| format!("sysfs received: {received:?}"))?;
        con.run("sleep 1", hard_timeout())?;
        let recs = records(c2);
        let ch =
            recs.events("channel").filter(|c| c["name"] == "echo").last().ok_or("no channel record for echo")?.clone();
        if ch["received"].as_u64() != Some(25) || ch["sent"].as_u64() != Some(25) || received != 25 {
            return Err(format!("want 25 records each way; telemetry {ch}, Linux's sysfs received {received}"));
        }
        if ch["refused"].as_u64() != Some(0) {
            return Err(format!("an honest Linux had records refused: {ch}"));
        }
        Ok(())
    };
    with_linux(&ctx.dir(), &elf, &[], &[], &steps)
}

/// A hostile Linux writes into echo's rings what an honest driver never would (through debugfs
/// `hauki/channel-region`, `haukictl scribble`): a record of 65535 bytes in a channel of 256, a
/// head 1000 records ahead of the tail, a tail 1000 records past what was sent. Each is refused
/// and counted by the co-kernel and followed by nothing; the echo task neither spins nor stops;
/// once Linux's indices are sane again the channel carries records as before; the latency task
/// misses nothing throughout.
fn channel_scribbled_by_a_hostile_linux(ctx: &Ctx<'_>, _elf: &Path, _iso: &Path) -> Status {
    let elf = match echo_elf() {
        Ok(e) => e,
        Err(e) => return Status::Fail(e),
    };
    let refused = |con: &mut ShellConsole| -> Result<u64, String> {
        let out = sh(con, "cat /sys/kernel/hauki/channels/echo/refused")?;
        out.trim().parse().map_err(|_| format!("sysfs refused: {out:?}"))
    };
    let echoed = |con: &mut ShellConsole, send: &str, want: &str| -> Result<(), String> {
        let out = sh(con, &format!("{send}haukictl cat -n {} -t 10 echo", want.lines().count()))?;
        if !out.lines().map(str::trim).filter(|l| !l.is_empty()).eq(want.lines()) {
            return Err(format!("want {want:?} echoed, got {out:?}"));
        }
        Ok(())
    };
    let steps = |con: &mut ShellConsole, c2: &Path| -> Result<(), String> {
        echoed(con, "haukictl send echo one; ", "one")?;
        // A record whose length word says 65535: consumed and refused; the next record follows.
        sh(con, "haukictl scribble echo length 65535")?;
        echoed(con, "haukictl send echo two; ", "two")?;
        let after_length = refused(con)?;
        if after_length != 1 {
            return Err(format!("a record of 65535 bytes was refused {after_length} times, want 1"));
        }
        // A head 1000 records ahead: the echo task, woken by Linux reading its reply, finds the
        // index out of range and stops there (it must not spin: Linux, its idle task, would
        // never run again); Linux's own driver refuses to write past it (EIO).
        sh(con, "haukictl send echo three; haukictl scribble echo head +1000")?;
        echoed(con, "", "three")?;
        let out = sh(con, "haukictl send echo four 2>&1; echo status=$?")?;
        if !out.contains("status=1") {
            return Err(format!("Linux's driver wrote past a head out of range: {out:?}"));
        }
        let after_head = refused(con)?;
        if after_head <= after_length {
            return Err(format!("a head 1000 records ahead was not refused (refused {after_head})"));
        }
        sh(con, "haukictl scribble echo head -1000")?;
        echoed(con, "haukictl send echo five; ", "five")?;
        // A tail 1000 records past what was sent: the echo task finds no room and sends nothing;
        // with the tail back, the record that waited is echoed with the next.
        sh(con, "haukictl scribble echo tail +1000; haukictl send echo six")?;
        let after_tail = refused(con)?;
        if after_tail <= after_head {
            return Err(format!("a tail 1000 records past the head was not refused (refused {after_tail})"));
        }
        sh(con, "haukictl scribble echo tail -1000")?;
        echoed(con, "haukictl send echo seven; ", "six\nseven")?;
        let violations = sh(con, "cat /sys/kernel/hauki/channels/echo/violations")?;
        if violations.trim() == "0" {
            return Err("Linux's driver counted no violation for the head it found out of range".into());
        }
        con.run("sleep 1", hard_timeout())?;
        let recs = records(c2);
        let ch =
            recs.events("channel").filter(|c| c["name"] == "echo").last().ok_or("no channel record for echo")?.clone();
        if ch["refused"].as_u64() != Some(after_tail) || ch["sent"].as_u64() != Some(6) {
            // one, two, three, five, six, seven: four never left Linux.
            return Err(format!("want {after_tail} refused and 6 records echoed in telemetry: {ch}"));
        }
        Ok(())
    };
    with_linux(&ctx.dir(), &elf, &[], &[], &steps)
}

/// The bulk application, each way flat out: 3000 records of 256 bytes written into `sink` arrive
/// in sequence and intact (the task checks every byte: `bad` 0), 3000 read from `source` are in
/// sequence and intact (`hauki-chanbench from-rt` checks every byte); no deadline missed.
fn channels_bulk_each_way_checked(ctx: &Ctx<'_>, _elf: &Path, _iso: &Path) -> Status {
    let elf = match crate::build::build_app(&Workspace::locate(), "bulk", "cokernel-bulk.elf") {
        Ok(e) => e,
        Err(e) => return Status::Fail(e),
    };
    let steps = |con: &mut ShellConsole, c2: &Path| -> Result<(), String> {
        for cmd in ["hauki-chanbench to-rt --count 3000", "hauki-chanbench from-rt --count 3000"] {
            let out = sh(con, cmd)?;
            if !out.contains("THROUGHPUT ") {
                return Err(format!("`{cmd}` printed no THROUGHPUT line: {out:?}"));
            }
        }
        con.run("sleep 1", hard_timeout())?;
        let b = records(c2).events("bulk").last().ok_or("no bulk record")?.clone();
        // The task keeps `source` full: what it sent is what Linux read plus a ring's worth.
        if b["received"].as_u64() != Some(3000) || b["bad"].as_u64() != Some(0) || b["sent"].as_u64() < Some(3000) {
            return Err(format!("want 3000 intact records received and at least 3000 sent: {b}"));
        }
        Ok(())
    };
    with_linux(&ctx.dir(), &elf, &[], &[], &steps)
}

/// A channel whose application was refused (echo's `echo-log` does not fit in 20 KiB, `echo` did)
/// has no task behind it: a Linux write gets EPIPE at once, it does not block.
fn channel_without_a_task_is_a_broken_pipe(ctx: &Ctx<'_>, _elf: &Path, _iso: &Path) -> Status {
    let elf = match echo_elf() {
        Ok(e) => e,
        Err(e) => return Status::Fail(e),
    };
    let steps = |con: &mut ShellConsole, c2: &Path| -> Result<(), String> {
        expect_record(&records(c2), "app", &[Expect::Eq("state", json!("refused"))])?;
        // A plain write dies of SIGPIPE (status 128 + 13), as on a pipe nobody reads; a program
        // that ignores SIGPIPE (haukictl, as every Rust program) sees EPIPE.
        let out = sh(
            con,
            "(echo hello | dd of=/dev/hauki/echo 2>/dev/null); echo status=$?; \
             haukictl send echo hello 2>&1; echo haukictl=$?; cat /sys/kernel/hauki/channels/echo/rt_state",
        )?;
        if !out.contains("status=141") || !out.contains("EPIPE") || !out.contains("haukictl=1") {
            return Err(format!("a write with no task behind the channel was not EPIPE/SIGPIPE: {out:?}"));
        }
        Ok(())
    };
    with_linux(&ctx.dir(), &elf, &[(cmdline::CHANNELS_KIB, &20)], &[], &steps)
}

/// While Linux runs a busy loop and a sleep, the device task behind telemetry record `event`
/// makes more than 100 more `count` and nothing `wrong`; prints its latency line.
fn device_task_keeps_working(
    con: &mut ShellConsole,
    c2: &Path,
    event: &str,
    count: &str,
    what: &str,
) -> Result<(), String> {
    let before = records(c2).events(event).last().and_then(|e| e[count].as_u64()).unwrap_or(0);
    sh(con, "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; sleep 1")?;
    let recs = records(c2);
    let r = recs.events(event).last().ok_or_else(|| format!("no {event} record"))?;
    let after = r[count].as_u64().unwrap_or(0);
    // `stray` (the uart task's bytes with none in flight): what Linux would write into the device.
    if after <= before + 100 || r["wrong"].as_u64() != Some(0) || r["stray"].as_u64().unwrap_or(0) != 0 {
        return Err(format!("the {event} task did not keep driving its device while Linux ran: {before} then {r}"));
    }
    println!(
        "    {event}: {after} {what} to task {}/{}/{} ns min/avg/max (virtual)",
        r["min_ns"], r["avg_ns"], r["max_ns"]
    );
    Ok(())
}

/// An ISA device owned by a task (the uart application): a 16550 at I/O 0x3e8 on ISA line 5 (level
/// on q35), in loopback, driven by its receive interrupt while Linux runs. Linux's command line
/// reserves the ports, no Linux driver has them or the line, and the task's bytes come back in
/// order.
fn isa_uart_owned_by_a_task_linux_never_gets(ctx: &Ctx<'_>, _elf: &Path, _iso: &Path) -> Status {
    let elf = match crate::build::build_app(&Workspace::locate(), "uart", "cokernel-uart.elf") {
        Ok(e) => e,
        Err(e) => return Status::Fail(e),
    };
    let steps = |con: &mut ShellConsole, c2: &Path| -> Result<(), String> {
        let ports = sh(con, "grep -i '03e8' /proc/ioports; grep -c '^ *5:' /proc/interrupts; cat /proc/cmdline")?;
        if !ports.contains("03e8-03ef : reserved") || !ports.contains("reserve=0x3e8,8") {
            return Err(format!("Linux did not get the UART's ports reserved: {ports:?}"));
        }
        if !ports.lines().any(|l| l.trim() == "0") {
            return Err(format!("Linux has ISA line 5 in /proc/interrupts: {ports:?}"));
        }
        // No serial driver lists the port, PnP did not add the device (Linux's patch 0016), and
        // the console stayed where it was (it was not unregistered through the task's UART).
        let tty = sh(
            con,
            "cat /proc/tty/driver/serial; grep -l '^irq 5$' /sys/bus/pnp/devices/*/resources; \
             dmesg | grep -E 'belongs to a real-time task|console \\[ttyS0\\] disabled'",
        )?;
        let lower = tty.to_ascii_lowercase();
        if lower.contains("port:000003e8") || lower.contains("/resources") {
            return Err(format!("Linux has a device on the task's UART or line: {tty:?}"));
        }
        if !tty.contains("ISA IRQ 5 belongs to a real-time task") || tty.contains("disabled") {
            return Err(format!("Linux did not say the UART is the task's, or moved its console: {tty:?}"));
        }
        device_task_keeps_working(con, c2, "uart", "received", "bytes by ISA line 5, write")?;
        Ok(())
    };
    with_linux(
        &ctx.dir(),
        &elf,
        &[],
        &["-chardev", "null,id=rtuart", "-device", "isa-serial,chardev=rtuart,iobase=0x3e8,irq=5"],
        &steps,
    )
}

/// QEMU's `edu` device, claimed by the edu application: its task gets factorials right by MSI
/// while Linux runs, and Linux has no such PCI device (not in /sys/bus/pci).
fn edu_device_owned_by_a_task_linux_never_sees(ctx: &Ctx<'_>, _elf: &Path, _iso: &Path) -> Status {
    let elf = match crate::build::build_app(&Workspace::locate(), "edu", "cokernel-edu.elf") {
        Ok(e) => e,
        Err(e) => return Status::Fail(e),
    };
    let steps = |con: &mut ShellConsole, c2: &Path| -> Result<(), String> {
        let devices = sh(con, "cat /sys/bus/pci/devices/*/vendor /sys/bus/pci/devices/*/device | tr '\\n' ' '")?;
        if devices.split_whitespace().count() < 4 {
            return Err(format!("Linux lists almost no PCI devices: {devices:?}"));
        }
        if devices.contains("0x11e8") {
            return Err(format!("Linux sees the edu device (1234:11e8): {devices}"));
        }
        device_task_keeps_working(con, c2, "edu", "completions", "factorials by MSI, request")?;
        Ok(())
    };
    with_linux(&ctx.dir(), &elf, &[], &["-device", "edu"], &steps)
}

/// The latest `bridge` record's counters: (used, fallback, malformed), or zeros.
fn bridge_counts(c2: &Path) -> (u64, u64, u64) {
    let recs = records(c2);
    let b = recs.events("bridge").last().cloned().unwrap_or_default();
    let get = |k: &str| b[k].as_u64().unwrap_or(0);
    (get("used"), get("fallback"), get("malformed"))
}

/// The seeds' example end to end: the bridge controller asks `hauki-decide` (a Linux program) for a
/// decision every 10 ms. Running, its answers are used; stopped (SIGSTOP), killed, flooded with
/// garbage, or gone with a Linux panic, the controller falls back and counts it, and uses
/// answers again once the program is back — also in the restarted Linux; no deadline is missed
/// throughout (the `with_linux` check).
fn bridge_survives_whatever_its_linux_program_does(ctx: &Ctx<'_>, _elf: &Path, _iso: &Path) -> Status {
    let elf = match crate::build::build_app(&Workspace::locate(), "bridge", "cokernel-bridge.elf") {
        Ok(e) => e,
        Err(e) => return Status::Fail(e),
    };
    let steps = |con: &mut ShellConsole, c2: &Path| -> Result<(), String> {
        // Lets virtual time pass on Linux's clock, then reads the counters.
        let after = |con: &mut ShellConsole, secs: u32| -> Result<(u64, u64, u64), String> {
            sh(con, &format!("sleep {secs}"))?;
            sh(con, "sleep 1")?; // one more report period lands on COM2
            Ok(bridge_counts(c2))
        };
        let start = |con: &mut ShellConsole| sh(con, "hauki-decide > /tmp/decide.log 2>&1 & echo $! > /tmp/decide.pid");
        start(con)?;
        let a = after(con, 2)?;
        let b = after(con, 2)?;
        if b.0 < a.0 + 50 {
            return Err(format!("the controller did not use hauki-decide's answers: used {} then {}", a.0, b.0));
        }
        sh(con, "kill -STOP $(cat /tmp/decide.pid)")?;
        let c = after(con, 1)?;
        let d = after(con, 2)?;
        if d.0 > c.0 + 2 || d.1 < c.1 + 100 {
            return Err(format!("stopped, the program's answers still counted or no fallback: {c:?} then {d:?}"));
        }
        sh(con, "kill -CONT $(cat /tmp/decide.pid)")?;
        let e = after(con, 2)?;
        if e.0 < d.0 + 50 {
            return Err(format!("continued, its answers were not used again: {d:?} then {e:?}"));
        }
        sh(con, "i=0; while [ $i -lt 300 ]; do echo garbage-$i > /dev/hauki/decisions; i=$((i+1)); done")?;
        let f = after(con, 1)?;
        if f.2 < e.2 + 100 {
            return Err(format!("a flood of garbage was not counted as malformed: {e:?} then {f:?}"));
        }
        sh(con, "kill $(cat /tmp/decide.pid)")?;
        let g = after(con, 1)?;
        let h = after(con, 2)?;
        if h.0 > g.0 + 2 || h.1 < g.1 + 100 {
            return Err(format!("killed, no fallback: {g:?} then {h:?}"));
        }
        // Linux panics; the co-kernel restarts it; the program is started again there.
        con.send("echo PANIC > /sys/kernel/debug/provoke-crash/DIRECT")?;
        con.expect(super::linux_guest::UP, hard_timeout())?;
        con.expect("# ", hard_timeout())?;
        quiet_console(con, hard_timeout())?;
        sh(con, "sleep 1")?; // a report period after the restart
        let restarts = records(c2).events("guest").last().and_then(|g| g["restarts"].as_u64()).unwrap_or(0);
        if restarts != 1 {
            return Err(format!("Linux's panic did not end in one restart ({restarts})"));
        }
        start(con)?;
        let i = after(con, 1)?;
        let j = after(con, 2)?;
        if j.0 < i.0 + 50 {
            return Err(format!("after Linux's restart the program's answers were not used: {i:?} then {j:?}"));
        }
        println!(
            "    bridge: answers used {}, fallback periods {}, malformed {} (running, stopped, flooded, killed, Linux restarted)",
            j.0, j.1, j.2
        );
        Ok(())
    };
    with_linux(&ctx.dir(), &elf, &[], &[], &steps)
}
