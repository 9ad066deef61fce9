//! Benches of Linux as people run it beside the real-time tasks (issue 12), each against the same
//! kernel booted bare in the same QEMU configuration: network throughput both ways, disk
//! throughput both ways, the latency task's worst case during a network flood and during disk
//! I/O, and Debian's boot time to multi-user.target.
//!
//! Everything is measured in the guest's own time under `-icount shift=0,sleep=off` (1 instruction
//! = 1 ns): Linux's CPU work is counted exactly, while the host's share of an I/O (QEMU's slirp,
//! its block layer) costs the guest almost no time (an idle guest's clock jumps to its next
//! timer). Figures compare the two systems of the same run, not hardware — and only where Linux
//! is busy. Where a phase mostly waits for the host (QEMU's slirp draining a socket, its block
//! layer syncing), the guest's clock jumps from timer to timer: under the co-kernel its 10 kHz
//! latency task makes each jump at most 100 µs, while bare Linux (tickless) jumps to its next
//! timer, often milliseconds away. Such a phase looks many times faster under the co-kernel in
//! virtual time; that is the clock, not Hauki. The report marks the ratios to read.

use std::path::Path;

use hauki_abi::cmdline;
use sha2::{Digest, Sha256};

use crate::bench::{BenchCtx, Metric, metric};
use crate::console::ShellConsole;
use crate::qemu::{Boot, Qemu, QemuConfig, cokernel_args, disk_args};
use crate::suite::{LinuxBoot, blob, boot_linux, guest_sha, hex, quiet_console, serve_once, wait_for_dhcp};
use crate::telemetry::Records;

/// Bytes moved over the network: to Linux (streamed into sha256sum), and from Linux (served from
/// its tmpfs, so bounded by its 512 MiB of RAM); MiB written then read on the disk.
const NET_IN_BYTES: usize = 256 << 20;
const NET_OUT_BYTES: usize = 128 << 20;
const DISK_MIB: usize = 128;

/// Which system a run boots.
#[derive(Clone, Copy, PartialEq, Eq)]
enum System {
    /// The co-kernel with its real-time tasks, Linux as its idle task.
    Hauki,
    /// The same patched kernel booted bare (no co-kernel).
    Bare,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Hauki => "hauki",
            System::Bare => "bare",
        }
    }
}

/// Boots `system` with `linux` and the QEMU devices `qemu_extra` under icount, up to Linux's
/// prompt (`prompt`), its console quiet; the console and COM2's file.
fn boot(
    c: &BenchCtx<'_>,
    system: System,
    dir: &Path,
    linux: &LinuxBoot<'_>,
    qemu_extra: &[String],
    prompt: &str,
) -> Result<(ShellConsole, std::path::PathBuf), String> {
    let bound = std::time::Duration::from_secs(900);
    let extra: Vec<&str> = qemu_extra.iter().map(String::as_str).collect();
    let (mut con, c2) = match system {
        System::Hauki => {
            let args = cokernel_args(&[(cmdline::LINUX, &"guest"), (cmdline::REPORT_MS, &250)]);
            boot_linux(dir, &c.elf, &args, Some(0), linux, &extra)?
        }
        System::Bare => {
            let (vmlinux, initrd) = crate::linux::build_all(c.ws)?;
            let initrd = linux.initramfs.map_or(initrd, Path::to_path_buf);
            let (c1, c2) = Qemu::paths(dir);
            let mut cfg =
                QemuConfig::test(Boot::Linux { vmlinux, initrd, cmdline: linux.cmdline.into() }, "max", &c1, &c2);
            cfg.icount = true;
            cfg.extra = qemu_extra.to_vec();
            (ShellConsole::spawn(dir, &cfg)?, c2)
        }
    };
    con.expect(prompt, bound)?;
    con.expect("# ", bound)?;
    quiet_console(&mut con, bound)?;
    Ok((con, c2))
}

/// Runs `cmd`; its output, or an error naming it.
fn run(con: &mut ShellConsole, cmd: &str) -> Result<String, String> {
    let (out, st) = con.run(cmd, std::time::Duration::from_secs(900))?;
    if st != 0 {
        return Err(format!("`{cmd}` exited with {st}: {out}"));
    }
    Ok(out)
}

/// Linux's uptime in seconds (the guest's clock).
fn uptime(con: &mut ShellConsole) -> Result<f64, String> {
    let out = run(con, "cut -d' ' -f1 /proc/uptime")?;
    out.trim().parse().map_err(|e| format!("/proc/uptime said {out:?}: {e}"))
}

/// The worst latency and the misses in latency records `from..` of COM2 (none for a bare run).
fn worst_since(c2: &Path, from: usize) -> (u64, u64, usize) {
    let recs = Records::parse(&std::fs::read_to_string(c2).unwrap_or_default());
    let lat: Vec<_> = recs.events("latency").skip(from).collect();
    let max = lat.iter().filter_map(|l| l["max_ns"].as_u64()).max().unwrap_or(0);
    let misses = lat.iter().filter_map(|l| l["misses"].as_u64()).sum();
    (max, misses, lat.len())
}

fn latency_records(c2: &Path) -> usize {
    Records::parse(&std::fs::read_to_string(c2).unwrap_or_default()).events("latency").count()
}

/// One system's network and disk figures: (host → Linux MB/s, Linux → host MB/s, disk write
/// MB/s, disk read MB/s), guest time, and the latency task's worst case and misses during the
/// network and the disk phases.
struct IoRun {
    mbps: [f64; 4],
    rt_net: (u64, u64),
    rt_disk: (u64, u64),
}

fn io_run(c: &BenchCtx<'_>, system: System) -> Result<IoRun, String> {
    let dir = c.dir.join(format!("linux-io-{}", system.name()));
    let files = c.dir.join(format!("linux-io-{}-files", system.name()));
    let _ = std::fs::remove_dir_all(&files);
    std::fs::create_dir_all(&files).map_err(|e| e.to_string())?;
    let disk = files.join("disk.img");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(((DISK_MIB + 8) << 20) as u64))
        .map_err(|e| format!("{}: {e}", disk.display()))?;
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let mut qemu = disk_args(&[crate::qemu::Disk { bus: crate::qemu::DiskBus::Virtio, image: disk }]);
    let net = crate::qemu::Net { model: crate::qemu::NicModel::Virtio, forwards: vec![(port, 8080)] };
    qemu.extend(["-nic".into(), net.arg()]);
    let (mut con, c2) = boot(c, system, &dir, &LinuxBoot::default(), &qemu, "is up; type 'poweroff' to end.")?;
    wait_for_dhcp(&mut con)?;
    let mb = |bytes: usize, secs: f64| bytes as f64 / 1e6 / secs.max(1e-3);
    let rt_from = latency_records(&c2);
    // Host → Linux: Linux fetches what the host serves and checks it.
    let body: Vec<u8> = (0..NET_IN_BYTES >> 20).flat_map(|i| blob(i as u64 + 1)).collect();
    let want = hex(&Sha256::digest(&body));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let hport = listener.local_addr().map_err(|e| e.to_string())?.port();
    let server = serve_once(listener, body);
    let out = run(
        &mut con,
        &format!(
            "a=$(cut -d' ' -f1 /proc/uptime); wget -q -O - http://10.0.2.2:{hport}/blob | sha256sum; \
             b=$(cut -d' ' -f1 /proc/uptime); echo ELAPSED $a $b"
        ),
    )?;
    server.join().map_err(|_| "the host server panicked".to_string())??;
    if guest_sha(&out, "-").as_deref() != Some(want.as_str()) {
        return Err(format!("{}: what Linux fetched differs: {out:?}", system.name()));
    }
    let down = elapsed(&out)?;
    // Linux → host: the host fetches what Linux serves from tmpfs through the forwarded port.
    let sums = run(
        &mut con,
        &format!(
            "mkdir -p /tmp/www && head -c {NET_OUT_BYTES} /dev/urandom > /tmp/www/blob && sha256sum /tmp/www/blob && \
             httpd -p 8080 -h /tmp/www"
        ),
    )?;
    let want = guest_sha(&sums, "/tmp/www/blob").ok_or("no sha256sum of the blob")?;
    let t0 = uptime(&mut con)?;
    let got = crate::suite::fetch(port, "/blob")?;
    let t1 = uptime(&mut con)?;
    if got.len() != NET_OUT_BYTES || hex(&Sha256::digest(&got)) != want {
        return Err(format!("{}: the host fetched {} bytes that differ from Linux's", system.name(), got.len()));
    }
    run(&mut con, "rm -rf /tmp/www; killall httpd; sleep 1")?;
    let (net_max, net_misses, _) = worst_since(&c2, rt_from);
    // The disk: write DISK_MIB and sync, drop the caches, read them back.
    let rt_from = latency_records(&c2);
    let out = run(
        &mut con,
        &format!(
            "a=$(cut -d' ' -f1 /proc/uptime); dd if=/dev/zero of=/dev/vda bs=1M count={DISK_MIB} conv=fsync 2>/dev/null; \
             b=$(cut -d' ' -f1 /proc/uptime); echo 3 > /proc/sys/vm/drop_caches; \
             dd if=/dev/vda of=/dev/null bs=1M count={DISK_MIB} 2>/dev/null; c=$(cut -d' ' -f1 /proc/uptime); \
             echo ELAPSED $a $b; echo ELAPSED $b $c; sleep 1"
        ),
    )?;
    let times: Vec<f64> = out.lines().filter(|l| l.starts_with("ELAPSED")).map(elapsed).collect::<Result<_, _>>()?;
    let [write, read] = times[..] else { return Err(format!("no disk timings in {out:?}")) };
    let (disk_max, disk_misses, _) = worst_since(&c2, rt_from);
    con.send("poweroff")?;
    let _ = con.wait_exit(std::time::Duration::from_secs(120));
    let bytes = DISK_MIB << 20;
    Ok(IoRun {
        mbps: [mb(NET_IN_BYTES, down), mb(NET_OUT_BYTES, t1 - t0), mb(bytes, write), mb(bytes, read)],
        rt_net: (net_max, net_misses),
        rt_disk: (disk_max, disk_misses),
    })
}

/// Seconds between the two uptimes of an `ELAPSED a b` line.
fn elapsed(out: &str) -> Result<f64, String> {
    let line = out.lines().find(|l| l.starts_with("ELAPSED")).ok_or_else(|| format!("no ELAPSED line in {out:?}"))?;
    let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    match v[..] {
        [a, b] if b >= a => Ok(b - a),
        _ => Err(format!("bad ELAPSED line {line:?}")),
    }
}

/// Network and disk throughput under the co-kernel against the same kernel bare, and the latency
/// task's worst case during each (virtual time).
pub fn linux_io(c: &BenchCtx<'_>) -> Result<Vec<Metric>, String> {
    println!(
        "    the patched kernel under the co-kernel, then bare, same QEMU (virtio-net, virtio-blk, icount): \
         {} MiB to Linux and {} MiB from it over the network, {DISK_MIB} MiB written and read on the disk",
        NET_IN_BYTES >> 20,
        NET_OUT_BYTES >> 20
    );
    let h = io_run(c, System::Hauki)?;
    let b = io_run(c, System::Bare)?;
    let names = ["net.host_to_linux", "net.linux_to_host", "disk.write", "disk.read"];
    let what = [
        "Linux fetches from the host (wget, SHA-256 checked)",
        "the host fetches from Linux's httpd through a forwarded port (checked)",
        "dd to the raw virtio disk, conv=fsync",
        "dd from the raw virtio disk, caches dropped",
    ];
    let mut m = Vec::new();
    for i in 0..4 {
        let ratio = (h.mbps[i] / b.mbps[i].max(1e-9) * 1000.0).round() as u64;
        m.push(metric(
            &format!("linux.io.{}.hauki_kbps", names[i]),
            (h.mbps[i] * 1000.0) as u64,
            "kB/s",
            None,
            &format!("{} under the co-kernel (virtual time)", what[i]),
        ));
        m.push(metric(
            &format!("linux.io.{}.bare_kbps", names[i]),
            (b.mbps[i] * 1000.0) as u64,
            "kB/s",
            None,
            &format!("{} bare, same QEMU", what[i]),
        ));
        let note = if ratio > 1100 {
            "co-kernel / bare: NOT comparable, the phase waits on the host and the guest's clock jumps further between bare Linux's timers (see bench_linux.rs)"
        } else {
            "co-kernel / bare, Linux busy: comparable"
        };
        m.push(metric(&format!("linux.io.{}.ratio_permille", names[i]), ratio, "‰", None, note));
    }
    m.push(metric(
        "linux.io.rt_latency_net.max",
        h.rt_net.0,
        "ns",
        Some(10_000),
        &format!("latency task while Linux moves the network data ({} misses)", h.rt_net.1),
    ));
    m.push(metric(
        "linux.io.rt_latency_disk.max",
        h.rt_disk.0,
        "ns",
        Some(10_000),
        &format!("latency task during the disk writes and reads ({} misses)", h.rt_disk.1),
    ));
    m.push(metric("linux.io.rt_misses", h.rt_net.1 + h.rt_disk.1, "", Some(0), "deadline misses during both"));
    Ok(m)
}

/// `systemd-analyze`'s durations (`1min 2.5s`, `850ms`, `12.3s`) in milliseconds.
fn systemd_ms(text: &str) -> Option<u64> {
    let mut total = 0.0;
    for part in text.split_whitespace() {
        let (num, unit) = part.split_at(part.find(|c: char| c.is_ascii_alphabetic())?);
        let v: f64 = num.parse().ok()?;
        total += v * match unit {
            "min" => 60_000.0,
            "s" => 1000.0,
            "ms" => 1.0,
            "us" => 0.001,
            _ => return None,
        };
    }
    Some(total.round() as u64)
}

/// The total of a `Startup finished in … = TOTAL` line.
fn startup_total_ms(analyze: &str) -> Option<u64> {
    let line = analyze.lines().find(|l| l.contains("Startup finished in"))?;
    systemd_ms(line.rsplit('=').next()?.trim())
}

/// Debian's boot to multi-user.target under the co-kernel against bare (`systemd-analyze`).
pub fn debian_boot(c: &BenchCtx<'_>) -> Result<Vec<Metric>, String> {
    let initramfs = crate::linux::build_rootless_initramfs(c.ws)?;
    let cmdline = format!("{} systemd.show_status=false", crate::rootfs::CMDLINE);
    let mut out = Vec::new();
    for system in [System::Hauki, System::Bare] {
        let dir = c.dir.join(format!("debian-{}", system.name()));
        let files = c.dir.join(format!("debian-{}-files", system.name()));
        std::fs::create_dir_all(&files).map_err(|e| e.to_string())?;
        let image = files.join("debian.ext4");
        crate::rootfs::fresh_copy(c.ws, &image)?;
        let qemu = disk_args(&[crate::qemu::Disk { bus: crate::qemu::DiskBus::Virtio, image }]);
        let linux = LinuxBoot { initramfs: Some(&initramfs), vmlinux: None, cmdline: &cmdline, smp: 1 };
        let (mut con, _c2) = boot(c, system, &dir, &linux, &qemu, "root@hauki-debian")?;
        con.run(
            "bind 'set enable-bracketed-paste off'; export TERM=dumb PS1='# '",
            std::time::Duration::from_secs(60),
        )?;
        let (state, _) = con.run("systemctl is-system-running --wait", std::time::Duration::from_secs(900))?;
        let analyze = run(&mut con, "systemd-analyze")?;
        let total = startup_total_ms(&analyze).ok_or_else(|| format!("no startup time in {analyze:?}"))?;
        println!("    {}: {} ({})", system.name(), analyze.lines().next().unwrap_or("").trim(), state.trim());
        con.send("systemctl poweroff")?;
        let _ = con.wait_exit(std::time::Duration::from_secs(300));
        out.push(total);
    }
    Ok(vec![
        metric(
            "debian.boot_ms.hauki",
            out[0],
            "ms",
            None,
            "kernel + userspace to multi-user.target under the co-kernel (systemd-analyze, virtual time)",
        ),
        metric("debian.boot_ms.bare", out[1], "ms", None, "the same, the kernel booted bare in the same QEMU"),
    ])
}

/// Virtual seconds of the stress battery in the SMP bench.
const SMP_STRESS_SECS: u64 = 20;

/// Two CPUs, the default split (CPU 0 shared with Linux, CPU 1 real-time only), Linux running the
/// stress battery: each CPU's latency task's worst case and percentiles, from its fine
/// histograms (virtual time). Under icount QEMU runs the vCPUs round-robin, CPU 0 first in every
/// round, and gives each a share of the instructions up to the next timer: a timer on CPU 1 is
/// taken once CPU 0's share is spent, so CPU 1's tail holds CPU 0's slices (up to about half a
/// 100 µs period), which parallel hardware does not have. Its median is its own path.
pub fn linux_smp(c: &BenchCtx<'_>) -> Result<Vec<Metric>, String> {
    let dir = c.dir.join("linux-smp");
    let args = cokernel_args(&[
        (cmdline::LINUX, &"guest"),
        (cmdline::REPORT_MS, &500),
        (cmdline::APP, &"off"),
        (cmdline::ICOUNT_PACE_US, &crate::suite::ICOUNT_PACE_US),
    ]);
    let linux = LinuxBoot { smp: 2, ..LinuxBoot::default() };
    let (mut con, c2) = boot_linux(&dir, &c.elf, &args, Some(0), &linux, &[])?;
    let bound = std::time::Duration::from_secs(900);
    con.expect(crate::suite::LINUX_UP, bound)?;
    con.expect("# ", bound)?;
    quiet_console(&mut con, bound)?;
    run(&mut con, "sleep 2")?;
    let count = |cpu: u64| {
        Records::parse(&std::fs::read_to_string(&c2).unwrap_or_default())
            .events("latency")
            .filter(|l| crate::compare::record_cpu(l) == cpu)
            .count()
    };
    let from = [count(0) + 1, count(1) + 1];
    println!("    hauki-stress {SMP_STRESS_SECS} (virtual s) on Linux (CPU 0) beside the real-time-only CPU 1");
    let out = run(&mut con, &format!("hauki-stress {SMP_STRESS_SECS}"))?;
    if !out.contains("hauki-stress:") {
        return Err(format!("the stress battery did not report: {out}"));
    }
    let to = [count(0), count(1)];
    let _ = run(&mut con, "poweroff");
    let recs = Records::parse(&std::fs::read_to_string(&c2).unwrap_or_default());
    let all: Vec<&serde_json::Value> = recs.records.iter().collect();
    let mut out = Vec::new();
    let mut misses = 0;
    for (cpu, name) in [(0u64, "shared"), (1, "rt_only")] {
        let i = cpu as usize;
        let (h, m) = crate::compare::cokernel_histogram_of(&all, cpu, from[i], to[i])?;
        misses += m;
        let p = |q: f64| h.percentile_ns(q).unwrap_or(0);
        let note = format!(
            "CPU {cpu} ({}) under the battery: {} samples, p50 <= {} ns, p99.9 <= {} ns{}",
            if cpu == 0 { "shared: Linux is its idle task" } else { "real-time only" },
            h.samples(),
            p(0.5),
            p(0.999),
            if cpu == 1 { "; its tail holds CPU 0's round-robin slices under icount" } else { "" }
        );
        let target = (cpu == 0).then_some(10_000);
        out.push(metric(&format!("smp.latency.{name}.max"), h.max_ns, "ns", target, &note));
        out.push(metric(&format!("smp.latency.{name}.p99"), p(0.99), "ns", None, "upper edge of the 100 ns bucket"));
    }
    out.push(metric("smp.misses", misses, "", Some(0), "deadline misses on both CPUs during the battery"));
    Ok(out)
}

/// Jobs in the SMP throughput bench, and what each counts to in Linux's shell (CPU work only: no
/// I/O, no system calls in the loop).
const THROUGHPUT_JOBS: u32 = 6;
const THROUGHPUT_COUNT: u32 = 100_000;
/// The latency task's period in this bench (µs). At the default 100 µs, in real time under an
/// emulator some twenty times slower than the hardware, each CPU's 10 kHz task and its interrupts
/// took most of the host time of the emulated CPU (measured: six jobs on one shared core 102 s,
/// bare Linux 17 s; with 1 kHz, 26 s), and the figures were about the emulator, not about Linux's
/// cores; on hardware a 10 kHz task costs a per cent or two.
pub(crate) const THROUGHPUT_LATENCY_US: u32 = 1000;

/// Linux's throughput with 1, 2 and 3 shared cores: two, three and four CPUs, each time the last
/// one real-time only (the default split), so the real-time load beside Linux is the same. The
/// same fixed CPU work, six shell jobs at once, timed by Linux's own clock; jobs per second and the
/// speed-up over one core.
///
/// Wall-clock, not virtual time: under `-icount` QEMU runs the vCPUs round-robin in one thread and
/// the virtual clock counts every vCPU's instructions, so parallel work can never finish sooner
/// there. This runs multi-threaded TCG instead, one host thread per vCPU — on a host with fewer
/// free cores than Linux has CPUs the speed-up stops at the host's, and a busy host makes every
/// figure noisy. The real-time tasks run all along: the latency task on every CPU, at 1 kHz
/// ([`THROUGHPUT_LATENCY_US`]).
pub fn linux_smp_throughput(c: &BenchCtx<'_>) -> Result<Vec<Metric>, String> {
    let host = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hz = 1_000_000 / THROUGHPUT_LATENCY_US;
    println!(
        "    {THROUGHPUT_JOBS} jobs counting to {THROUGHPUT_COUNT} in Linux's shell, with 1, 2, 3 shared cores and one real-time-only core, the latency task at {hz} Hz on each (wall-clock, multi-threaded TCG on {host} host cores)"
    );
    let mut out = Vec::new();
    let mut rates: Vec<f64> = Vec::new();
    for shared in 1u32..=3 {
        let dir = c.dir.join(format!("linux-smp-throughput-{shared}"));
        let args = cokernel_args(&[
            (cmdline::LINUX, &"guest"),
            (cmdline::REPORT_MS, &1000),
            (cmdline::APP, &"off"),
            (cmdline::LATENCY_PERIOD_US, &THROUGHPUT_LATENCY_US),
        ]);
        let linux = LinuxBoot { smp: shared + 1, ..LinuxBoot::default() };
        let (mut con, _c2) = boot_linux(&dir, &c.elf, &args, None, &linux, &[])?;
        let bound = std::time::Duration::from_secs(900);
        con.expect(crate::suite::LINUX_UP, bound)?;
        con.expect("# ", bound)?;
        quiet_console(&mut con, bound)?;
        let n = run(&mut con, "nproc")?;
        if n.trim() != shared.to_string() {
            return Err(format!("Linux counts {} CPUs of {}, want {shared}", n.trim(), shared + 1));
        }
        let job = format!("(i=0; while [ $i -lt {THROUGHPUT_COUNT} ]; do i=$((i+1)); done) &");
        let cmd = format!(
            "s=$(cut -d' ' -f1 /proc/uptime); for j in $(seq {THROUGHPUT_JOBS}); do {job} done; wait; echo ELAPSED $s $(cut -d' ' -f1 /proc/uptime)"
        );
        // Timed on the host: under multi-threaded TCG the guest's TSC follows the host's and need
        // not match the rate the co-kernel calibrated, so Linux's clock is only reported beside it.
        let t0 = std::time::Instant::now();
        let linux_secs = elapsed(&run(&mut con, &cmd)?)?;
        let secs = t0.elapsed().as_secs_f64().max(0.01);
        let _ = run(&mut con, "poweroff");
        let rate = f64::from(THROUGHPUT_JOBS) / secs;
        println!(
            "    {shared} shared core(s): {secs:.2} s on the host ({linux_secs:.2} s by Linux's clock), {rate:.3} jobs/s"
        );
        out.push(metric(
            &format!("smp.throughput.shared{shared}"),
            (rate * 1000.0).round() as u64,
            "mjobs/s",
            None,
            &format!("{THROUGHPUT_JOBS} jobs in {secs:.2} s of host time ({linux_secs:.2} s by Linux's clock) with {shared} shared core(s), latency task at {hz} Hz (multi-threaded TCG, {host} host cores)"),
        ));
        rates.push(rate);
    }
    for (i, shared) in [(1usize, 2), (2, 3)] {
        let pct = (rates[i] / rates[0] * 100.0).round() as u64;
        out.push(metric(
            &format!("smp.throughput.speedup{shared}"),
            pct,
            "%",
            None,
            &format!("{shared} shared cores against 1 (100 % = no gain; {host} host cores bound it)"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_durations_and_elapsed_lines_are_read() {
        assert_eq!(systemd_ms("1min 2.5s"), Some(62_500));
        assert_eq!(systemd_ms("850ms"), Some(850));
        assert_eq!(systemd_ms("12.345s"), Some(12_345));
        assert_eq!(systemd_ms("3 parsecs"), None);
        let a = "Startup finished in 2.104s (kernel) + 10.650s (userspace) = 12.755s\nmulti-user.target reached after 10.6s in userspace";
        assert_eq!(startup_total_ms(a), Some(12_755));
        assert_eq!(elapsed("x\nELAPSED 10.50 12.75\n").unwrap(), 2.25);
        assert!(elapsed("ELAPSED 3 2").is_err());
        assert!(elapsed("nothing").is_err());
    }
}
