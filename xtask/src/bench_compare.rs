//! `cargo xtask bench --compare` (issue 13): Hauki's latency task against cyclictest on
//! PREEMPT_RT and on stock Linux, in the same QEMU with instruction counting, under the same load;
//! and Linux's own throughput under the co-kernel against the same kernel booted bare.
//!
//! Every system boots with the rt-tests initramfs (cyclictest, hackbench, stress-ng), a virtio NIC
//! with a forwarded port and `tsc=reliable`, under `-icount shift=0,sleep=off` (1 instruction =
//! 1 ns of virtual time); the co-kernel runs without an application (`hauki.app=off`): its
//! latency task, telemetry and watchdog. In each, Linux runs `hauki-load` (the stress battery, a
//! hackbench loop, a stress-ng mix, a network flood both ways) and, one second in,
//! `cyclictest -m --policy=fifo -p99 -i100 -t1` for the measured span. Hauki's figure is the
//! co-kernel's 10 kHz latency task over the reporting windows inside that span (its 100 ns
//! `latency_hist` records); the references' figure is cyclictest's. Under Hauki, Linux runs the
//! same cyclictest too: its figure (Linux's own latency beside the co-kernel) is reported beside
//! the others, not compared.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hauki_abi::cmdline;
use serde_json::{Value, json};

use crate::compare::{Histogram, cokernel_histogram, parse_cyclictest};
use crate::console::ShellConsole;
use crate::linux::Flavour;
use crate::qemu::{Boot, Qemu, QemuConfig, cokernel_args};
use crate::suite::{LinuxBoot, at_prompt, boot_linux, hard_timeout, sh, wait_for_dhcp};
use crate::telemetry::Records;
use crate::util::Workspace;

/// Virtual seconds of load measured per system: the full run and `--quick`.
pub const FULL_SECS: u64 = 30;
/// See [`FULL_SECS`].
pub const QUICK_SECS: u64 = 10;
/// cyclictest's histogram range (1 µs buckets); later samples count as overflows.
const HIST_US: u64 = 2000;
/// cyclictest's interval and the latency task's period (µs): a wake-up this late is a miss.
const PERIOD_US: u64 = 100;
/// The co-kernel's reporting period in these runs (ms): the windows Hauki's figure is cut into.
const REPORT_MS: u64 = 500;
/// Wall seconds per virtual second of load on a 2-core host, and per boot (for the estimate
/// printed up front; measured with this module's runs).
const WALL_PER_VIRTUAL_S: u64 = 14;
const WALL_PER_BOOT_S: u64 = 45;

/// What `bench --compare` is asked for.
pub struct Options {
    /// Virtual seconds of load per system.
    pub secs: u64,
    /// `hauki-work`'s scale (its work, not its time, is fixed).
    pub work_scale: u64,
    /// Where the run's files go (the plot, the JSON, each QEMU's logs).
    pub out: PathBuf,
    /// Also write `--json FILE`.
    pub json: Option<PathBuf>,
    /// Regenerate `docs/benchmarks.md` and its plot.
    pub docs: bool,
    /// The command line, for the record.
    pub command: String,
    /// The systems whose latency is measured, Hauki first ([`System::ALL`] for the bench; the
    /// system test leaves stock Linux out and saves a cold CI run its kernel build).
    pub systems: &'static [System],
}

/// The three systems compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    /// The co-kernel's latency task, the patched Linux as its idle task running the load.
    Hauki,
    /// The same Linux source with PREEMPT_RT, unpatched, bare; cyclictest.
    PreemptRt,
    /// The same Linux source with PREEMPT_VOLUNTARY, unpatched, bare; cyclictest.
    Stock,
}

impl System {
    /// Every system, in the order they run and are shown.
    pub const ALL: [System; 3] = [System::Hauki, System::PreemptRt, System::Stock];

    /// The key in the JSON.
    pub fn key(self) -> &'static str {
        match self {
            System::Hauki => "hauki",
            System::PreemptRt => "preempt_rt",
            System::Stock => "stock",
        }
    }

    /// What the figure is, for tables and the plot's legend.
    pub fn label(self) -> &'static str {
        match self {
            System::Hauki => "Hauki: co-kernel latency task",
            System::PreemptRt => "PREEMPT_RT: cyclictest",
            System::Stock => "stock (PREEMPT_VOLUNTARY): cyclictest",
        }
    }

    /// Its name in one word or two, for progress lines.
    pub fn name(self) -> &'static str {
        match self {
            System::Hauki => "Hauki",
            System::PreemptRt => "PREEMPT_RT",
            System::Stock => "stock Linux",
        }
    }

    /// The kernel a bare system boots (Hauki boots the patched one under the co-kernel: none).
    pub fn flavour(self) -> Option<Flavour> {
        match self {
            System::Hauki => None,
            System::PreemptRt => Some(Flavour::PreemptRt),
            System::Stock => Some(Flavour::Stock),
        }
    }
}

/// One system's latency run.
pub struct LatencyRun {
    /// Which.
    pub system: System,
    /// The measured latencies over the span.
    pub hist: Histogram,
    /// Deadline misses: the co-kernel's own count for Hauki (over the whole run); for cyclictest,
    /// the wake-ups a period (100 µs) or more late and the periods it skipped because a wake-up
    /// overran them.
    pub misses: u64,
    /// `uname -v` and Linux's clocksource.
    pub uname: String,
    /// See [`LatencyRun::uname`].
    pub clocksource: String,
    /// Under Hauki: Linux's own cyclictest beside the co-kernel.
    pub linux_cyclictest: Option<Histogram>,
    /// `hauki-load`'s summary line.
    pub load: String,
    /// Bytes the network flood moved (host → Linux, Linux → host).
    pub flood_bytes: (u64, u64),
}

/// Linux's throughput workload under the co-kernel and bare: (component, virtual seconds).
pub struct WorkRun {
    /// Per component, in `hauki-work`'s order.
    pub seconds: Vec<(String, f64)>,
}

/// Everything one `bench --compare` measured.
pub struct Report {
    /// Virtual seconds of load per system.
    pub secs: u64,
    /// The latency runs, in [`System::ALL`] order.
    pub runs: Vec<LatencyRun>,
    /// `hauki-work` under the co-kernel and bare.
    pub work: (WorkRun, WorkRun),
    /// `hauki-work`'s scale.
    pub work_scale: u64,
    /// Wall time of the whole run.
    pub wall: Duration,
}

impl Report {
    /// Per component (bare seconds / Hauki seconds) and the whole workload's ratio.
    pub fn throughput(&self) -> (Vec<(String, f64, f64, f64)>, f64) {
        let (h, b) = (&self.work.0.seconds, &self.work.1.seconds);
        let rows: Vec<(String, f64, f64, f64)> =
            h.iter().zip(b).map(|((name, hs), (_, bs))| (name.clone(), *hs, *bs, bs / hs.max(1e-9))).collect();
        let (sh, sb): (f64, f64) = rows.iter().fold((0.0, 0.0), |(a, b), r| (a + r.1, b + r.2));
        (rows, sb / sh.max(1e-9))
    }
}

/// How long a run of `secs` virtual seconds per system takes on this class of machine (5 boots).
pub fn estimate(secs: u64) -> Duration {
    Duration::from_secs(5 * WALL_PER_BOOT_S + 3 * (secs + 4) * WALL_PER_VIRTUAL_S)
}

/// Runs the comparison: builds what it needs, the three latency runs, the two throughput runs;
/// writes the plot and the JSON into `o.out` (and `--json`, and `docs/` when asked).
pub fn run(ws: &Workspace, qemu_version: (u32, u32, u32), o: &Options) -> Result<Report, String> {
    let started = Instant::now();
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    let elf = crate::build::build_app(ws, crate::apps::DEFAULT, crate::build::KERNEL_ELF)?;
    let patched = crate::linux::build_kernel(ws)?;
    let kernels: Vec<(System, PathBuf)> = o
        .systems
        .iter()
        .filter_map(|s| Some((*s, s.flavour()?)))
        .map(|(s, f)| crate::linux::build_flavour(ws, f).map(|v| (s, v)))
        .collect::<Result<_, _>>()?;
    let initrd = crate::linux::build_rt_tests_initramfs(ws)?;
    let est = estimate(o.secs);
    let names: Vec<&str> = o.systems.iter().map(|s| s.name()).collect();
    println!(
        "==> comparing {}: {} virtual s of load each, then Linux's throughput under the co-kernel and bare; about {} min on a 2-core machine",
        names.join(", "),
        o.secs,
        est.as_secs().div_ceil(60)
    );
    let phases = o.systems.len() + 2;
    let mut runs = Vec::new();
    for (i, &system) in o.systems.iter().enumerate() {
        let guest = match kernels.iter().find(|k| k.0 == system) {
            Some((_, vmlinux)) => Guest::Bare(vmlinux),
            None => Guest::Hauki(&elf),
        };
        let what = format!("[{}/{phases}] {}: {} virtual s of load", i + 1, system.label(), o.secs);
        let r = with_progress(&what, boot_time() + load_time(o.secs), || {
            latency_run(system, guest, &initrd, &o.out.join(system.key()), o.secs)
        })?;
        println!("    {}", summary_line(&r));
        runs.push(r);
    }
    let what =
        format!("[{}/{phases}] Linux's throughput under the co-kernel (hauki-work {})", phases - 1, o.work_scale);
    let hauki = with_progress(&what, boot_time(), || {
        work_run(Guest::Hauki(&elf), &initrd, &o.out.join("work-hauki"), o.work_scale)
    })?;
    let what = format!("[{phases}/{phases}] the same Linux bare (hauki-work {})", o.work_scale);
    let bare = with_progress(&what, boot_time(), || {
        work_run(Guest::Bare(&patched), &initrd, &o.out.join("work-bare"), o.work_scale)
    })?;
    let report = Report { secs: o.secs, runs, work: (hauki, bare), work_scale: o.work_scale, wall: started.elapsed() };
    println!("\n{}", table(&report));
    let doc = to_json(&report, qemu_version, &o.command);
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())? + "\n";
    let json_path = o.out.join("compare.json");
    for p in std::iter::once(&json_path).chain(&o.json) {
        std::fs::write(p, &text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    println!("==> wrote {}", ws.rel(&json_path));
    render(ws, &report, qemu_version, &o.command, &o.out, o.docs)?;
    Ok(report)
}

fn boot_time() -> Duration {
    Duration::from_secs(WALL_PER_BOOT_S)
}

fn load_time(secs: u64) -> Duration {
    Duration::from_secs((secs + 4) * WALL_PER_VIRTUAL_S)
}

/// Runs `f` with a progress bar that fills over `expected` (wall time; the guest's own pace
/// decides, so the bar only shows that it is moving and roughly how far).
fn with_progress<T>(what: &str, expected: Duration, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let bar = indicatif::ProgressBar::new(expected.as_secs().max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template("    {msg} [{bar:30}] {elapsed} of about {len}s")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    println!("==> {what}");
    let done = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (bar, done) = (bar.clone(), done.clone());
        std::thread::spawn(move || {
            let t0 = Instant::now();
            while !done.load(Ordering::Relaxed) {
                bar.set_position(t0.elapsed().as_secs().min(bar.length().unwrap_or(1) - 1));
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let r = f();
    done.store(true, Ordering::Relaxed);
    let _ = ticker.join();
    bar.finish_and_clear();
    r
}

/// Which Linux a run boots.
#[derive(Clone, Copy)]
enum Guest<'a> {
    /// The co-kernel (this image) with the patched Linux as its idle task.
    Hauki(&'a Path),
    /// This vmlinux, bare.
    Bare(&'a Path),
}

/// Linux's command line in every run.
fn cmdline() -> String {
    format!("{} {}", crate::linux::DEFAULT_CMDLINE, crate::suite::REFERENCE_CMDLINE)
}

/// Boots `guest` under icount with the rt-tests initramfs and `qemu_extra`, up to its quiet
/// prompt; the console and COM2's file (the co-kernel's telemetry; empty for a bare Linux).
fn boot(guest: Guest<'_>, initrd: &Path, dir: &Path, qemu_extra: &[String]) -> Result<(ShellConsole, PathBuf), String> {
    let cmdline = cmdline();
    let (mut con, c2) = match guest {
        Guest::Hauki(elf) => {
            // No application: the latency task, the telemetry and the watchdog are the co-kernel's
            // own; an application's tasks (the demo's workers burn 8% of the CPU on purpose) would
            // be charged to Linux's throughput.
            let args =
                cokernel_args(&[(cmdline::LINUX, &"guest"), (cmdline::REPORT_MS, &REPORT_MS), (cmdline::APP, &"off")]);
            let extra: Vec<&str> = qemu_extra.iter().map(String::as_str).collect();
            let linux = LinuxBoot { initramfs: Some(initrd), vmlinux: None, cmdline: &cmdline, smp: 1 };
            boot_linux(dir, elf, &args, Some(0), &linux, &extra)?
        }
        Guest::Bare(vmlinux) => {
            let (c1, c2) = Qemu::paths(dir);
            let boot = Boot::Linux { vmlinux: vmlinux.to_path_buf(), initrd: initrd.to_path_buf(), cmdline };
            let mut cfg = QemuConfig::test(boot, "max", &c1, &c2);
            cfg.icount = true;
            cfg.extra = qemu_extra.to_vec();
            (ShellConsole::spawn(dir, &cfg)?, c2)
        }
    };
    at_prompt(&mut con, hard_timeout()).inspect_err(|e| eprintln!("    {e}"))?;
    Ok((con, c2))
}

fn latency_records(c2: &Path) -> usize {
    Records::parse(&std::fs::read_to_string(c2).unwrap_or_default()).events("latency").count()
}

/// The host's half of the network flood: an HTTP server Linux's wget loops fetch from
/// (4 MiB a request), and a client fetching Linux's `/tmp/www/blob` through the forwarded port
/// again and again. Counts the bytes both ways.
struct Flood {
    stop: Arc<AtomicBool>,
    to_linux: Arc<AtomicU64>,
    from_linux: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

const FLOOD_RESPONSE: usize = 4 << 20;

impl Flood {
    fn start(listener: TcpListener, forwarded: u16) -> Result<Flood, String> {
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let (to_linux, from_linux) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let server = {
            let (stop, count) = (stop.clone(), to_linux.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            let count = count.clone();
                            std::thread::spawn(move || serve_flood(s, &count));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        let client = {
            let (stop, count) = (stop.clone(), from_linux.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if fetch_from_linux(forwarded, &count).is_err() {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            })
        };
        Ok(Flood { stop, to_linux, from_linux, threads: vec![server, client] })
    }

    /// Stops both halves; the bytes moved (host → Linux, Linux → host).
    fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        (self.to_linux.load(Ordering::Relaxed), self.from_linux.load(Ordering::Relaxed))
    }
}

fn serve_flood(mut s: TcpStream, count: &AtomicU64) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(60)));
    let mut req = Vec::new();
    let mut b = [0u8; 512];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&b[..n]),
        }
    }
    let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {FLOOD_RESPONSE}\r\n\r\n");
    if s.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk = vec![0x5au8; 64 << 10];
    for _ in 0..FLOOD_RESPONSE / chunk.len() {
        if s.write_all(&chunk).is_err() {
            return;
        }
        count.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
}

fn fetch_from_linux(port: u16, count: &AtomicU64) -> std::io::Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.write_all(b"GET /blob HTTP/1.0\r\n\r\n")?;
    let mut b = vec![0u8; 64 << 10];
    loop {
        let n = s.read(&mut b)?;
        if n == 0 {
            return Ok(());
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// One system under the load: boot, the network up, `hauki-load` for `secs` + 2 s with cyclictest
/// for `secs` from its first second; the histograms.
fn latency_run(system: System, guest: Guest<'_>, initrd: &Path, dir: &Path, secs: u64) -> Result<LatencyRun, String> {
    let forwarded = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let net = crate::qemu::Net { model: crate::qemu::NicModel::Virtio, forwards: vec![(forwarded, 8080)] };
    let (mut con, c2) = boot(guest, initrd, dir, &["-nic".into(), net.arg()])?;
    let mut steps = || -> Result<LatencyRun, String> {
        wait_for_dhcp(&mut con)?;
        let info = sh(&mut con, "uname -v; cat /sys/devices/system/clocksource/clocksource0/current_clocksource")?;
        let mut info = info.lines().map(str::trim).filter(|l| !l.is_empty());
        let (uname, clocksource) = (info.next().unwrap_or("?").to_string(), info.next().unwrap_or("?").to_string());
        sh(
            &mut con,
            "mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm && mkdir -p /tmp/www && \
             head -c 4194304 /dev/urandom > /tmp/www/blob && httpd -p 8080 -h /tmp/www",
        )?;
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let host_port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let flood = Flood::start(listener, forwarded)?;
        let before = latency_records(&c2);
        let cmd = format!(
            "hauki-load {} {host_port} & l=$!; sleep 1; \
             cyclictest -m --policy=fifo -p99 -i{PERIOD_US} -t1 -h {HIST_US} -q -D {secs} > /tmp/ct; s=$?; \
             wait $l; cat /tmp/ct; [ $s = 0 ]",
            secs + 2
        );
        let (out, status) = con.run(&cmd, hard_timeout() + Duration::from_secs(40 * secs))?;
        let after = latency_records(&c2);
        let flood_bytes = flood.stop();
        if status != 0 {
            return Err(format!("cyclictest or the load failed ({status}): {}", crate::progress::last_line(&out)));
        }
        let ct = parse_cyclictest(&out)?;
        // cyclictest skips the periods a late wake-up overran, so a late system takes fewer samples.
        let want = secs * 1_000_000 / PERIOD_US;
        if ct.samples() == 0 || ct.samples() > want + 1 {
            return Err(format!("cyclictest took {} samples in {secs} s at {PERIOD_US} µs, want {want}", ct.samples()));
        }
        let skipped = want.saturating_sub(ct.samples());
        let load: Vec<&str> = out
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("hauki-load:") || l.starts_with("hauki-stress:"))
            .collect();
        if load.len() != 2 {
            return Err(format!("no summary from hauki-load and hauki-stress: {}", crate::progress::last_line(&out)));
        }
        let load = load.join("; ");
        if !load.contains("stress-ng successful run completed") {
            return Err(format!("the stress-ng mix did not complete: {load}"));
        }
        let late = |h: &Histogram| -> u64 {
            let from = (PERIOD_US * 1000 / h.bucket_ns) as usize;
            h.buckets.iter().skip(from).sum::<u64>() + h.overflows
        };
        let run = match system {
            System::Hauki => {
                let recs = Records::parse(&std::fs::read_to_string(&c2).unwrap_or_default());
                let all: Vec<&Value> = recs.records.iter().collect();
                // The windows inside cyclictest's span: skip the second before it (and the window
                // the command started in), end before the load's last second.
                let per_s = (1000 / REPORT_MS) as usize;
                let from = before + per_s + 1;
                let to = (from + secs as usize * per_s).min(after.saturating_sub(per_s));
                let (hist, _) = cokernel_histogram(&all, from, to)?;
                let misses = recs.events("latency").last().and_then(|l| l["misses_total"].as_u64()).unwrap_or(0);
                LatencyRun { system, hist, misses, uname, clocksource, linux_cyclictest: Some(ct), load, flood_bytes }
            }
            _ => LatencyRun {
                system,
                misses: late(&ct) + skipped,
                hist: ct,
                uname,
                clocksource,
                linux_cyclictest: None,
                load,
                flood_bytes,
            },
        };
        crate::suite::poweroff(&mut con, hard_timeout())?;
        Ok(run)
    };
    steps().inspect_err(|e| {
        let _ = crate::suite::report_console_failure(&con, e.clone());
    })
}

/// `hauki-work SCALE` in `guest`: each component's virtual seconds.
fn work_run(guest: Guest<'_>, initrd: &Path, dir: &Path, scale: u64) -> Result<WorkRun, String> {
    let (mut con, _) = boot(guest, initrd, dir, &[])?;
    let out = sh(&mut con, &format!("hauki-work {scale}"));
    let out = out.inspect_err(|e| {
        let _ = crate::suite::report_console_failure(&con, e.clone());
    })?;
    let seconds = parse_work(&out)?;
    crate::suite::poweroff(&mut con, hard_timeout())?;
    Ok(WorkRun { seconds })
}

/// `hauki-work COMPONENT START END` lines: (component, END − START).
pub fn parse_work(out: &str) -> Result<Vec<(String, f64)>, String> {
    let mut v = Vec::new();
    for l in out.lines().filter_map(|l| l.trim().strip_prefix("hauki-work ")) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let [name, a, b] = f[..] else { return Err(format!("a hauki-work line out of shape: {l:?}")) };
        let num = |x: &str| x.parse::<f64>().map_err(|e| format!("{x:?} in {l:?}: {e}"));
        let d = num(b)? - num(a)?;
        if d <= 0.0 {
            return Err(format!("hauki-work {name} took no time ({l:?}): too little work to time"));
        }
        v.push((name.to_string(), d));
    }
    if v.len() != 4 {
        return Err(format!("want 4 hauki-work components, got {}: {out:?}", v.len()));
    }
    Ok(v)
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

fn pct(h: &Histogram, q: f64) -> String {
    h.percentile_ns(q)
        .map_or_else(|| format!(">{}", us(h.buckets.len() as u64 * h.bucket_ns)), |v| format!("≤{}", us(v)))
}

fn summary_line(r: &LatencyRun) -> String {
    format!(
        "{}: {} samples, max {} µs, {} misses; {}; clocksource {}",
        r.system.label(),
        r.hist.samples(),
        us(r.hist.max_ns),
        r.misses,
        r.load,
        r.clocksource
    )
}

/// The latency table (µs of virtual time) and the throughput table, as Markdown.
pub fn table(r: &Report) -> String {
    let mut s = String::from(
        "| system | samples | min | avg | p50 | p99 | p99.9 | max | misses |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut row = |label: &str, h: &Histogram, misses: String| {
        s.push_str(&format!(
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {misses} |\n",
            h.samples(),
            us(h.min_ns),
            us(h.avg_ns),
            pct(h, 0.5),
            pct(h, 0.99),
            pct(h, 0.999),
            us(h.max_ns)
        ));
    };
    for run in &r.runs {
        row(run.system.label(), &run.hist, run.misses.to_string());
    }
    for run in &r.runs {
        if let Some(h) = &run.linux_cyclictest {
            row("(Linux's own cyclictest beside Hauki)", h, "-".into());
        }
    }
    s.push_str("\nLatencies in µs of virtual time; percentiles are the upper edge of their bucket (100 ns for Hauki, 1 µs for cyclictest).\n\n");
    let (rows, ratio) = r.throughput();
    s.push_str("| Linux workload | under Hauki (s) | bare (s) | throughput ratio |\n|---|---:|---:|---:|\n");
    for (name, h, b, q) in &rows {
        s.push_str(&format!("| {name} | {h:.2} | {b:.2} | {q:.3} |\n"));
    }
    s.push_str(&format!("| **all** | | | **{ratio:.3}** |\n"));
    s
}

/// The JSON document (`--json`): per system `max_ns`, `p99_ns`, `samples` and the rest, and
/// `linux_throughput_ratio` with its components.
pub fn to_json(r: &Report, qemu: (u32, u32, u32), command: &str) -> Value {
    let hist = |h: &Histogram| {
        json!({
            "samples": h.samples(), "min_ns": h.min_ns, "avg_ns": h.avg_ns, "p50_ns": h.percentile_ns(0.5),
            "p99_ns": h.percentile_ns(0.99), "p999_ns": h.percentile_ns(0.999), "max_ns": h.max_ns,
            "bucket_ns": h.bucket_ns, "buckets": h.buckets, "overflows": h.overflows,
        })
    };
    let mut doc = serde_json::Map::new();
    for run in &r.runs {
        let mut v = hist(&run.hist);
        v["misses"] = json!(run.misses);
        v["what"] = json!(run.system.label());
        v["kernel"] = json!(run.uname);
        v["clocksource"] = json!(run.clocksource);
        v["load"] = json!(run.load);
        v["flood_bytes_to_linux"] = json!(run.flood_bytes.0);
        v["flood_bytes_from_linux"] = json!(run.flood_bytes.1);
        if let Some(h) = &run.linux_cyclictest {
            v["linux_cyclictest"] = hist(h);
        }
        doc.insert(run.system.key().into(), v);
    }
    let (rows, ratio) = r.throughput();
    doc.insert("linux_throughput_ratio".into(), json!(ratio));
    doc.insert(
        "linux_throughput".into(),
        rows.iter().map(|(n, h, b, q)| (n.clone(), json!({"hauki_s": h, "bare_s": b, "ratio": q}))).collect(),
    );
    doc.insert("secs".into(), json!(r.secs));
    doc.insert("work_scale".into(), json!(r.work_scale));
    doc.insert("time".into(), json!("virtual: QEMU -icount shift=0,sleep=off, 1 instruction = 1 ns"));
    doc.insert("qemu".into(), json!(format!("{}.{}.{}", qemu.0, qemu.1, qemu.2)));
    doc.insert("command".into(), json!(command));
    doc.insert("wall_s".into(), json!(r.wall.as_secs()));
    Value::Object(doc)
}

/// The histograms as an SVG plot, both axes logarithmic: samples per µs of latency against
/// latency, one curve per system, each at its own resolution (Hauki's 100 ns buckets,
/// cyclictest's 1 µs ones; dividing by the bucket width puts them on one scale).
pub fn plot_svg(r: &Report, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let curves: Vec<(String, Vec<(f64, f64)>)> = r
        .runs
        .iter()
        .map(|run| {
            let h = &run.hist;
            let width_us = h.bucket_ns as f64 / 1000.0;
            let pts = h
                .buckets
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| ((i as f64 + 0.5) * width_us, *c as f64 / width_us))
                .collect();
            (format!("{} ({} ns buckets)", run.system.label(), h.bucket_ns), pts)
        })
        .collect();
    let xs = || curves.iter().flat_map(|c| c.1.iter().map(|p| p.0));
    let ys = || curves.iter().flat_map(|c| c.1.iter().map(|p| p.1));
    let (x_min, x_max) = (xs().fold(1.0f64, f64::min) / 1.5, xs().fold(2.0f64, f64::max) * 1.5);
    let (y_min, y_max) = (ys().fold(1.0f64, f64::min) / 2.0, ys().fold(10.0f64, f64::max) * 3.0);
    let e = |e: &dyn std::fmt::Display| format!("plotting {}: {e}", path.display());
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Latency under the same load, {} virtual s each (QEMU -icount: 1 instruction = 1 ns)", r.secs),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d((x_min..x_max).log_scale(), (y_min..y_max).log_scale())
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("latency (µs of virtual time, log scale)")
        .y_desc("samples per µs of latency (log scale)")
        .draw()
        .map_err(|x| e(&x))?;
    let colours = [RGBColor(200, 30, 30), RGBColor(30, 80, 200), RGBColor(40, 150, 40)];
    for ((label, pts), colour) in curves.into_iter().zip(colours) {
        chart
            .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// A report read back from its JSON, with the QEMU version and the command of its run.
pub struct Saved {
    /// The figures.
    pub report: Report,
    /// QEMU's version.
    pub qemu: (u32, u32, u32),
    /// The command that made it.
    pub command: String,
}

/// A report read back from the JSON [`to_json`] wrote (`bench --compare --from FILE`): the same
/// table, plot and markdown without running anything again.
pub fn from_json(doc: &Value) -> Result<Saved, String> {
    let num = |v: &Value, k: &str| v[k].as_u64().ok_or_else(|| format!("no number `{k}` in the report"));
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    let hist = |v: &Value| -> Result<Histogram, String> {
        let buckets = v["buckets"].as_array().ok_or("no `buckets` in the report")?;
        Ok(Histogram {
            bucket_ns: num(v, "bucket_ns")?.max(1),
            buckets: buckets
                .iter()
                .map(|c| c.as_u64().ok_or("a bucket that is not a count"))
                .collect::<Result<_, _>>()?,
            overflows: num(v, "overflows")?,
            min_ns: num(v, "min_ns")?,
            avg_ns: num(v, "avg_ns")?,
            max_ns: num(v, "max_ns")?,
        })
    };
    let mut runs = Vec::new();
    for system in System::ALL {
        let v = &doc[system.key()];
        // A run without stock Linux (the system test's) has no `stock`; Hauki is always there.
        if system != System::Hauki && v.is_null() {
            continue;
        }
        runs.push(LatencyRun {
            system,
            hist: hist(v).map_err(|e| format!("{}: {e}", system.key()))?,
            misses: num(v, "misses")?,
            uname: text(v, "kernel"),
            clocksource: text(v, "clocksource"),
            linux_cyclictest: if v["linux_cyclictest"].is_object() {
                Some(hist(&v["linux_cyclictest"])?)
            } else {
                None
            },
            load: text(v, "load"),
            flood_bytes: (num(v, "flood_bytes_to_linux")?, num(v, "flood_bytes_from_linux")?),
        });
    }
    let work = doc["linux_throughput"].as_object().ok_or("no `linux_throughput` in the report")?;
    let side = |k: &str| -> WorkRun {
        WorkRun { seconds: work.iter().map(|(n, v)| (n.clone(), v[k].as_f64().unwrap_or(0.0))).collect() }
    };
    let qemu: Vec<u32> = text(doc, "qemu").split('.').filter_map(|x| x.parse().ok()).collect();
    let report = Report {
        secs: num(doc, "secs")?,
        runs,
        work: (side("hauki_s"), side("bare_s")),
        work_scale: num(doc, "work_scale")?,
        wall: Duration::from_secs(num(doc, "wall_s")?),
    };
    let qemu =
        (qemu.first().copied().unwrap_or(0), qemu.get(1).copied().unwrap_or(0), qemu.get(2).copied().unwrap_or(0));
    Ok(Saved { report, qemu, command: text(doc, "command") })
}

/// Writes the plot and, with `docs`, `docs/benchmarks.md` and its copy of the plot, from a report.
pub fn render(
    ws: &Workspace,
    r: &Report,
    qemu: (u32, u32, u32),
    command: &str,
    out: &Path,
    docs: bool,
) -> Result<(), String> {
    let plot = out.join("latency.svg");
    plot_svg(r, &plot)?;
    println!("==> wrote {}", ws.rel(&plot));
    if docs {
        let svg = ws.root.join("docs/benchmarks-latency.svg");
        std::fs::copy(&plot, &svg).map_err(|e| format!("{}: {e}", svg.display()))?;
        let md = ws.root.join("docs/benchmarks.md");
        std::fs::write(&md, markdown(ws, r, qemu, command)).map_err(|e| format!("{}: {e}", md.display()))?;
        println!("==> wrote {} and {}", ws.rel(&md), ws.rel(&svg));
    }
    Ok(())
}

/// `docs/benchmarks.md`: the figures, the plot, how they were made and what they are.
pub fn markdown(ws: &Workspace, r: &Report, qemu: (u32, u32, u32), command: &str) -> String {
    let kernel = crate::linux::source_version().unwrap_or_else(|_| "6.12".into());
    let (_, ratio) = r.throughput();
    let by = |s: System| r.runs.iter().find(|x| x.system == s);
    let factor = match (by(System::Hauki), by(System::PreemptRt)) {
        (Some(h), Some(p)) if h.hist.max_ns > 0 => p.hist.max_ns as f64 / h.hist.max_ns as f64,
        _ => 0.0,
    };
    let mut s = format!(
        "# Benchmarks: Hauki against PREEMPT_RT and stock Linux\n\n\
         *Generated by `{command}` — do not edit by hand; run it again.* Wall time of the run: {} min.\n\n\
         **These figures are virtual time.** Every system ran in QEMU {}.{}.{} (TCG) with\n\
         `-icount shift=0,sleep=off`: one guest instruction is one nanosecond, whatever the host does.\n\
         They are deterministic and comparable between the three systems of one run; they are not\n\
         hardware figures (a real CPU runs many instructions per ns, and caches, SMIs and buses do not exist here).\n\n\
         ![latency histograms](benchmarks-latency.svg)\n\n## Latency under load\n\n",
        r.wall.as_secs().div_ceil(60),
        qemu.0,
        qemu.1,
        qemu.2
    );
    s.push_str(&table(r));
    s.push_str(&format!(
        "\nTargets (issue 13): Hauki's worst case at least 10× lower than PREEMPT_RT's — measured **{factor:.1}×**; \
         zero misses — measured **{}**; Linux keeping at least 97% of its bare throughput — measured **{:.1}%**.\n\n",
        by(System::Hauki).map_or(0, |h| h.misses),
        ratio * 100.0
    ));
    s.push_str(&format!(
        "## How it was measured\n\n\
         - Linux {kernel} from Debian's `linux-source-6.12`, the same tree for all three. Hauki: with the patch\n\
           series (`linux-patch/`), as the co-kernel's idle task. PREEMPT_RT and stock: without it, booted bare;\n\
           `linux-patch/hauki.config` minus its `CONFIG_HAUKI_*` options, then `CONFIG_PREEMPT_RT` or\n\
           `CONFIG_PREEMPT_VOLUNTARY` (docs/comparison.md has the recipe). Every kernel boots with `tsc=reliable`.\n\
         - One virtual CPU (`-cpu max`), 512 MiB, a virtio NIC on QEMU's user network with a forwarded port.\n\
         - The load, the same everywhere, for {} + 2 virtual s: `hauki-load` — the stress battery\n\
           (`hauki-stress`: CPU hogs, fork/exec, find, /proc readers, pipes, console output, memory pressure),\n\
           a `hackbench -g 2 -l 50` loop, a stress-ng mix (`--cpu 1 --switch 1 --vm 1 --hdd 1 --timer 1\n\
           --timer-freq 10000 --sock 1`), two wget loops fetching 4 MiB responses from the host, and the host\n\
           fetching a 4 MiB file from Linux's httpd through the forwarded port, again and again.\n\
         - One second in: `cyclictest -m --policy=fifo -p99 -i100 -t1 -h {HIST_US} -q -D {}` in Linux on all three.\n\
           PREEMPT_RT's and stock's figures are cyclictest's; a miss there is a wake-up 100 µs (a period) or more late,
           or a period cyclictest skipped because a late wake-up overran it.\n\
         - Hauki's figure is the co-kernel's latency task (period 100 µs, highest priority; no application, `hauki.app=off`) over its {REPORT_MS} ms\n\
           reporting windows inside cyclictest's span, from its 100 ns `latency_hist` records; its misses are the\n\
           co-kernel's own count over the whole run. The row \"Linux's own cyclictest beside Hauki\" is the same\n\
           cyclictest in the patched Linux (PREEMPT_NONE) under the co-kernel: Linux's latency, not Hauki's.\n\
         - Linux's throughput: `hauki-work {}` (hackbench, a gzip/gunzip pipeline, a build-like loop of small\n\
           tools on small files, file I/O on tmpfs) timed with Linux's own clock, under the co-kernel and with the same\n\
           kernel booted bare; the ratio is bare time / Hauki time. The work is CPU-bound: the guest never idles,\n\
           so the idle clock jumps of `sleep=off` do not enter.\n\n",
        r.secs, r.secs, r.work_scale
    ));
    s.push_str(&configs_section(ws));
    s.push_str("| system | `uname -v` | clocksource | load summary |\n|---|---|---|---|\n");
    for run in &r.runs {
        s.push_str(&format!("| {} | {} | {} | {} |\n", run.system.key(), run.uname, run.clocksource, run.load));
    }
    s
}

/// Checks that `svg` is a complete SVG document with at least `curves` drawn polylines (the
/// curves; the legend's marks are polylines too).
pub fn check_svg(svg: &str, curves: usize) -> Result<(), String> {
    let body = svg.trim();
    if !body.starts_with("<svg") || !body.ends_with("</svg>") {
        return Err(format!("not an SVG document: starts {:?}", body.chars().take(40).collect::<String>()));
    }
    let opened = body.matches('<').count();
    let closed = body.matches('>').count();
    if opened != closed {
        return Err(format!("unbalanced markup: {opened} '<' and {closed} '>'"));
    }
    let lines = body.matches("<polyline").count();
    if lines < curves {
        return Err(format!("{lines} polylines, want a curve per system ({curves})"));
    }
    Ok(())
}

/// The kernels' configurations: each one's preemption model and how many options set it apart from
/// stock's (all three from the same `hauki.config`).
fn configs_section(ws: &Workspace) -> String {
    let set = |cfg: &str| -> std::collections::BTreeSet<String> {
        cfg.lines().filter(|l| l.starts_with("CONFIG_")).map(str::to_string).collect()
    };
    let kernels = [("Hauki", Flavour::Default), ("PREEMPT_RT", Flavour::PreemptRt), ("stock", Flavour::Stock)];
    let configs: Vec<Option<String>> = kernels.iter().map(|(_, f)| crate::linux::built_config(ws, *f).ok()).collect();
    let mut s = String::from("| kernel | preemption | options set | differing from stock |\n|---|---|---:|---|\n");
    let stock = configs[2].as_deref().map(set).unwrap_or_default();
    for ((name, _), cfg) in kernels.iter().zip(&configs) {
        let Some(cfg) = cfg else {
            s.push_str(&format!("| {name} | (its .config is not in the cache) | | |\n"));
            continue;
        };
        let mine = set(cfg);
        let model: Vec<&str> =
            ["CONFIG_PREEMPT_NONE=y", "CONFIG_PREEMPT_VOLUNTARY=y", "CONFIG_PREEMPT=y", "CONFIG_PREEMPT_RT=y"]
                .into_iter()
                .filter(|o| mine.contains(*o))
                .collect();
        let only: Vec<&str> = mine.symmetric_difference(&stock).map(|l| l.split('=').next().unwrap_or(l)).collect();
        let mut only: Vec<&str> = only.into_iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let n = only.len();
        only.truncate(12);
        let more = if n > only.len() { format!(" and {} more", n - only.len()) } else { String::new() };
        let names = if only.is_empty() { String::new() } else { format!(": `{}`{more}", only.join("` `")) };
        s.push_str(&format!("| {name} | `{}` | {} | {n}{names} |\n", model.join(" "), mine.len()));
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(bucket_ns: u64, buckets: Vec<u64>, max_ns: u64) -> Histogram {
        Histogram { bucket_ns, buckets, overflows: 0, min_ns: bucket_ns, avg_ns: bucket_ns * 2, max_ns }
    }

    fn report() -> Report {
        let run = |system, hist, misses| LatencyRun {
            system,
            hist,
            misses,
            uname: "#1 SMP".into(),
            clocksource: "tsc".into(),
            linux_cyclictest: None,
            load: "hauki-load: 2 s".into(),
            flood_bytes: (1, 2),
        };
        let work = |k: f64| WorkRun { seconds: vec![("hackbench".into(), 1.0 * k), ("compress".into(), 3.0 * k)] };
        Report {
            secs: 2,
            runs: vec![
                run(System::Hauki, h(100, vec![0, 0, 5, 90, 5], 480), 0),
                run(System::PreemptRt, h(1000, vec![0, 0, 50, 40, 10], 4900), 0),
                run(System::Stock, h(1000, vec![0, 10, 50, 30, 0, 0, 10], 6100), 0),
            ],
            work: (work(1.25), work(1.0)),
            work_scale: 1,
            wall: Duration::from_secs(61),
        }
    }

    #[test]
    fn the_report_has_every_figure_the_issue_names() {
        let r = report();
        let doc = to_json(&r, (10, 0, 2), "cargo xtask bench --compare");
        for k in ["hauki", "preempt_rt", "stock"] {
            for f in ["max_ns", "p99_ns", "samples"] {
                assert!(doc[k][f].is_u64(), "{k}.{f} in {doc}");
            }
        }
        assert_eq!(doc["hauki"]["max_ns"], 480);
        assert_eq!(doc["preempt_rt"]["p99_ns"], 5000, "the upper edge of the bucket holding p99");
        assert!((doc["linux_throughput_ratio"].as_f64().unwrap() - 0.8).abs() < 1e-9);
        assert!((doc["linux_throughput"]["compress"]["ratio"].as_f64().unwrap() - 0.8).abs() < 1e-9);
        let t = table(&r);
        assert!(
            t.contains("| Hauki: co-kernel latency task | 100 | 0.1 | 0.2 | ≤0.4 | ≤0.5 | ≤0.5 | 0.5 | 0 |"),
            "{t}"
        );
        assert!(t.contains("**0.800**"), "{t}");
        let md = markdown(&Workspace::locate(), &r, (10, 0, 2), "cargo xtask bench --compare");
        assert!(md.contains("measured **10.2×**") && md.contains("virtual time"), "{md}");
        assert!(md.contains("| kernel | preemption |"), "{md}");
    }

    #[test]
    fn a_report_reads_back_from_its_json() {
        let r = report();
        let doc = to_json(&r, (10, 0, 2), "cargo xtask bench --compare");
        let Saved { report: back, qemu, command } = from_json(&doc).map_err(|e| e.to_string()).unwrap();
        assert_eq!((qemu, command.as_str()), ((10, 0, 2), "cargo xtask bench --compare"));
        assert_eq!(back.runs[1].hist, r.runs[1].hist);
        assert_eq!(table(&back).lines().take(6).collect::<Vec<_>>(), table(&r).lines().take(6).collect::<Vec<_>>());
        assert!((back.throughput().1 - r.throughput().1).abs() < 1e-9);
        let mut bad = doc.clone();
        bad["stock"]["buckets"] = json!("many");
        assert!(from_json(&bad).err().unwrap().contains("stock: no `buckets`"));
    }

    #[test]
    fn a_report_without_stock_linux_reads_back_with_two_systems_and_one_without_hauki_does_not() {
        let mut r = report();
        r.runs.retain(|x| x.system != System::Stock);
        let doc = to_json(&r, (10, 0, 2), "the system test");
        assert!(doc["stock"].is_null(), "{doc}");
        let back = from_json(&doc).map_err(|e| e.to_string()).unwrap().report;
        assert_eq!(back.runs.iter().map(|x| x.system).collect::<Vec<_>>(), [System::Hauki, System::PreemptRt]);
        let mut no_hauki = doc.clone();
        no_hauki.as_object_mut().unwrap().remove("hauki");
        assert!(from_json(&no_hauki).is_err(), "Hauki's figures are never optional");
    }

    #[test]
    fn the_plot_is_an_svg_with_a_curve_per_system() {
        let dir = std::env::temp_dir().join(format!("hauki-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("latency.svg");
        plot_svg(&report(), &p).unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        check_svg(&svg, 3).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hauki_work_lines_are_read_and_bad_ones_named() {
        let out = "hauki-work hackbench 10.00 11.50\nnoise\nhauki-work compress 11.50 12.00\n\
                   hauki-work build 12.00 14.00\nhauki-work files 14.00 14.25\n";
        let w = parse_work(out).unwrap();
        assert_eq!(w[0], ("hackbench".into(), 1.5));
        assert_eq!(w.len(), 4);
        assert!(parse_work("hauki-work x 1 1").unwrap_err().contains("took no time"));
        assert!(parse_work("hauki-work x 1").unwrap_err().contains("out of shape"));
    }
}
