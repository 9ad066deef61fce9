//! `cargo xtask bench`: measurements with targets, printed as a table and written to
//! `target/hauki/bench.json`. Add a bench by appending to [`BENCHES`].

use std::path::PathBuf;
use std::process::ExitCode;

use hauki_abi::cmdline;
use serde_json::{Value, json};

use crate::build;
use crate::deps::Tools;
use crate::elf;
use crate::qemu::{Boot, Com, Qemu, QemuConfig, STATUS_SUCCESS, cokernel_args, explain_status, kernel_cmdline};
use crate::suite::hard_timeout;
use crate::telemetry::Records;
use crate::util::Workspace;

/// One measured value.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// Stable name (a key in bench.json).
    pub name: String,
    /// The value compared with the target (for repeated runs: the worst run).
    pub value: u64,
    /// Unit, e.g. `bytes` or `ns`.
    pub unit: &'static str,
    /// The value must be <= this.
    pub target_max: Option<u64>,
    /// Every run when measured more than once.
    pub runs: Vec<u64>,
    /// A note for humans.
    pub note: String,
}

impl Metric {
    /// Did it meet its target (true when it has none)?
    pub fn met(&self) -> bool {
        self.target_max.is_none_or(|t| self.value <= t)
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name, "value": self.value, "unit": self.unit, "target_max": self.target_max,
            "met": self.met(), "runs": self.runs, "note": self.note,
        })
    }
}

/// What a bench gets.
pub struct BenchCtx<'a> {
    /// The workspace.
    pub ws: &'a Workspace,
    /// Host tools.
    #[allow(dead_code, reason = "QEMU version and OVMF, for benches that need them")]
    pub tools: &'a Tools,
    /// The release co-kernel.
    pub elf: PathBuf,
    /// Where benches keep their QEMU run files.
    pub dir: PathBuf,
}

/// A bench: a name and a function producing metrics.
pub struct Bench {
    /// Name shown in progress lines.
    pub name: &'static str,
    /// Measure.
    pub run: fn(&BenchCtx<'_>) -> Result<Vec<Metric>, String>,
}

/// Every bench, in order.
pub const BENCHES: &[Bench] = &[
    Bench { name: "image-size", run: image_size },
    Bench { name: "boot-time", run: boot_time },
    Bench { name: "rt-core", run: rt_core },
    Bench { name: "rt-latency", run: rt_latency },
    Bench { name: "rt-stagger", run: rt_stagger },
    Bench { name: "rt-smp", run: rt_smp },
    Bench { name: "linux-guest", run: linux_guest },
    Bench { name: "linux-stress", run: linux_stress },
    Bench { name: "linux-smp", run: crate::bench_linux::linux_smp },
    Bench { name: "linux-smp-throughput", run: crate::bench_linux::linux_smp_throughput },
    Bench { name: "channels", run: channels },
    Bench { name: "edu", run: edu },
    Bench { name: "uart", run: uart },
    Bench { name: "linux-io", run: crate::bench_linux::linux_io },
    Bench { name: "debian-boot", run: crate::bench_linux::debian_boot },
];

/// Virtual seconds of the stress battery in the bench (about 10 s of wall time each).
const STRESS_BENCH_SECS: u64 = 120;

/// Worst release latency target (virtual time).
const LATENCY_TARGET_NS: u64 = 10_000;
/// Context switch target (instructions; = ns under icount shift=0).
const SWITCH_TARGET: u64 = 500;

/// Boots the co-kernel under `-icount shift=0,sleep=off` (`-cpu max`) with `append`, waits for it
/// to exit with success, returns the telemetry.
fn run_icount(c: &BenchCtx<'_>, name: &str, append: &str) -> Result<Records, String> {
    run_icount_smp(c, name, append, 1)
}

/// As [`run_icount`], with `smp` CPUs.
fn run_icount_smp(c: &BenchCtx<'_>, name: &str, append: &str, smp: u32) -> Result<Records, String> {
    let dir = c.dir.join(name);
    let (c1, c2) = Qemu::paths(&dir);
    let cfg = {
        let mut cfg =
            QemuConfig::test(Boot::Kernel { elf: c.elf.clone(), cmdline: kernel_cmdline(append) }, "max", &c1, &c2);
        cfg.icount = true;
        cfg.smp = smp;
        cfg
    };
    let mut q = Qemu::spawn(&dir, &cfg, hard_timeout())?;
    let exit = q.wait_exit(hard_timeout());
    let recs = Records::parse(&q.read(Com::Com2));
    match exit {
        Ok(Some(STATUS_SUCCESS)) => Ok(recs),
        Ok(s) => {
            q.print_logs(30);
            Err(format!("{name}: expected exit status {STATUS_SUCCESS}, got {}", explain_status(s)))
        }
        Err(e) => {
            q.print_logs(30);
            Err(format!("{name}: {e}"))
        }
    }
}

pub(crate) fn metric(name: &str, value: u64, unit: &'static str, target_max: Option<u64>, note: &str) -> Metric {
    Metric { name: name.into(), value, unit, target_max, runs: vec![], note: note.into() }
}

/// The in-kernel benchmarks (`hauki.bench=1`): kernel call, context switch, scheduler cost and
/// release latency with 1, 16, 64 and 256 tasks.
fn rt_core(c: &BenchCtx<'_>) -> Result<Vec<Metric>, String> {
    let recs = run_icount(c, "rt-core", &cokernel_args(&[(cmdline::BENCH, &1)]))?;
    let mut out = Vec::new();
    for r in recs.events("bench") {
        let name = r["name"].as_str().unwrap_or("?");
        let note = r["note"].as_str().unwrap_or("");
        if let Some(ns) = r["ns"].as_u64() {
            let target = (name == "context_switch").then_some(SWITCH_TARGET);
            out.push(metric(&format!("rt.{name}"), ns, "instr", target, note));
        } else if let Some(max) = r["max_ns"].as_u64() {
            let note = format!(
                "{note}; min {} avg {} over {} samples",
                r["min_ns"].as_u64().unwrap_or(0),
                r["avg_ns"].as_u64().unwrap_or(0),
                r["samples"].as_u64().unwrap_or(0)
            );
            out.push(metric(&format!("rt.{name}.max"), max, "ns", Some(LATENCY_TARGET_NS), &note));
        }
    }
    if out.is_empty() {
        return Err("no bench records on COM2".into());
    }
    Ok(out)
}

/// Posts between tasks on one CPU and across two (`hauki.bench=smp` under `-smp 2`): from the
/// sender's post to the receiver's first instruction after its wait. Virtual time; the
/// cross-CPU figure carries QEMU's round-robin of vCPUs (see tasks/bench.rs).
fn rt_smp(c: &BenchCtx<'_>) -> Result<Vec<Metric>, String> {
    let recs = run_icount_smp(c, "rt-smp", &cokernel_args(&[(cmdline::BENCH, &"smp")]), 2)?;
    let mut out = Vec::new();
    for name in ["post_same_cpu", "post_cross_cpu"] {
        let r = recs.events("bench").find(|r| r["name"] == name).ok_or_else(|| format!("no {name} bench record"))?;
        let g = |k: &str| r[k].as_u64().unwrap_or(0);
        if g("samples") < 1000 {
            return Err(format!("{name}: {} rounds, want 2000", g("samples")));
        }
        let note = format!(
            "{}; min {} avg {} over {} posts",
            r["note"].as_str().unwrap_or(""),
            g("min_ns"),
            g("avg_ns"),
            g("samples")
        );
        out.push(metric(&format!("rt.{name}.max"), g("max_ns"), "ns", Some(LATENCY_TARGET_NS), &note));
    }
    Ok(out)
}

/// Latency records over `reports` reporting periods: (min, avg, max, samples, misses).
fn latency_summary(recs: &Records) -> Result<(u64, u64, u64, u64, u64), String> {
    let lat: Vec<&Value> = recs.events("latency").collect();
    if lat.is_empty() {
        return Err("no latency records".into());
    }
    let g = |r: &Value, k: &str| r[k].as_u64().unwrap_or(0);
    let samples: u64 = lat.iter().map(|r| g(r, "samples")).sum();
    let min = lat.iter().filter(|r| g(r, "samples") > 0).map(|r| g(r, "min_ns")).min().unwrap_or(0);
    let max = lat.iter().map(|r| g(r, "max_ns")).max().unwrap_or(0);
    let avg = lat.iter().map(|r| g(r, "avg_ns") * g(r, "samples")).sum::<u64>() / samples.max(1);
    let misses = lat.iter().map(|r| g(r, "misses")).sum();
    Ok((min, avg, max, samples, misses))
}

/// The 10 kHz latency task, alone and under the demo workload, for 5 reporting periods (5 s of
/// virtual time) each.
fn rt_latency(c: &BenchCtx<'_>) -> Result<Vec<Metric>, String> {
    let mut out = Vec::new();
    let reports = (cmdline::EXIT_AFTER_REPORTS, &5 as &dyn std::fmt::Display);
    for (name, append) in
        [("alone", cokernel_args(&[reports, (cmdline::APP, &"off")])), ("demo", cokernel_args(&[reports]))]
    {
        let recs = run_icount(c, &format!("rt-latency-{name}"), &append)?;
        let (min, avg, max, samples, misses) = latency_summary(&recs)?;
        out.push(metric(
            &format!("rt.latency.{name}.max"),
            max,
            "ns",
            Some(LATENCY_TARGET_NS),
            &format!("10 kHz task, min {min} avg {avg} over {samples} samples (virtual ns = instructions)"),
        ));
        out.push(metric(&format!("rt.latency.{name}.misses"), misses, "jobs", Some(0), "deadline misses"));
    }
    Ok(out)
}

/// Four equal-period workers (1 ms, 20 us of work each): worst response of any of them with
/// golden-ratio phase offsets against all released at once.
fn rt_stagger(c: &BenchCtx<'_>) -> Result<Vec<Metric>, String> {
    let mut out = Vec::new();
    let reports = (cmdline::EXIT_AFTER_REPORTS, &3 as &dyn std::fmt::Display);
    for (name, append) in
        [("naive", cokernel_args(&[reports, (cmdline::STAGGER, &"off")])), ("golden", cokernel_args(&[reports]))]
    {
        let recs = run_icount(c, &format!("rt-stagger-{name}"), &append)?;
        let last = recs.events("phase").last().ok_or("no phase records")?;
        let worst: Vec<u64> = last["worker_worst_response_ns"]
            .as_array()
            .ok_or("phase record without worker_worst_response_ns")?
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        let max = worst.iter().copied().max().unwrap_or(0);
        out.push(Metric {
            name: format!("rt.stagger.{name}.worst_response"),
            value: max,
            unit: "ns",
            target_max: None,
            runs: worst,
            note: "worst response of 4 equal-period workers (each: 20 us of work per 1 ms)".into(),
        });
    }
    Ok(out)
}

/// Loaded image target: 256 KiB.
const IMAGE_TARGET: u64 = 256 * 1024;
/// Virtual boot time target: 5 ms.
const BOOT_TARGET_NS: u64 = 5_000_000;
/// Boot-time runs (deterministic under icount, so they should agree).
const BOOT_RUNS: usize = 3;

fn image_size(c: &BenchCtx<'_>) -> Result<Vec<Metric>, String> {
    let bytes = std::fs::read(&c.elf).map_err(|e| format!("cannot read {}: {e}", c.elf.display()))?;
    let phdrs = elf::program_headers(&bytes).map_err(|e| format!("{}: {e}", c.elf.display()))?;
    Ok(vec![
        Metric {
            name: "image.file_bytes".into(),
            value: bytes.len() as u64,
            unit: "bytes",
            target_max: None,
            runs: vec![],
            note: "cokernel.elf on disk (with debug info)".into(),
        },
        Metric {
            name: "image.loaded_bytes".into(),
            value: elf::image_size(&phdrs),
            unit: "bytes",
            target_max: Some(IMAGE_TARGET),
            runs: vec![],
            note: "the image the loader copies: sum of PT_LOAD p_filesz (no debug info)".into(),
        },
        Metric {
            name: "image.memory_bytes".into(),
            value: elf::loaded_size(&phdrs),
            unit: "bytes",
            target_max: None,
            runs: vec![],
            note: "memory it occupies once loaded: sum of p_memsz (adds .bss with the 64 KiB boot stack)".into(),
        },
    ])
}

fn boot_time(c: &BenchCtx<'_>) -> Result<Vec<Metric>, String> {
    let mut runs = Vec::new();
    for i in 1..=BOOT_RUNS {
        let dir = c.dir.join(format!("boot-{i}"));
        let (c1, c2) = Qemu::paths(&dir);
        let cmdline = kernel_cmdline(&cokernel_args(&[(cmdline::EXIT_AFTER_BOOT, &1)]));
        let mut cfg = QemuConfig::test(Boot::Kernel { elf: c.elf.clone(), cmdline }, "qemu64", &c1, &c2);
        cfg.icount = true;
        let mut q = Qemu::spawn(&dir, &cfg, hard_timeout())?;
        let exit = q.wait_exit(hard_timeout());
        let recs = Records::parse(&q.read(Com::Com2));
        let boot_ns = recs.first(hauki_abi::telemetry::EVENT_BOOT).and_then(|r| r["boot_ns"].as_u64());
        let fail = |why: String| {
            q.print_logs(30);
            Err(format!("boot-time run {i}: {why}"))
        };
        match (exit, boot_ns) {
            (Ok(Some(STATUS_SUCCESS)), Some(ns)) => runs.push(ns),
            (_, None) => return fail("no boot record with `boot_ns` on COM2".into()),
            (Ok(s), _) => {
                return fail(format!("expected exit status {STATUS_SUCCESS}, got {}", explain_status(s)));
            }
            (Err(e), _) => return fail(e.to_string()),
        }
    }
    let worst = runs.iter().copied().max().unwrap_or(0);
    let note = if runs.windows(2).all(|w| w[0] == w[1]) {
        "virtual ns under -icount shift=0 (runs identical)".to_string()
    } else {
        "virtual ns under -icount shift=0; WARNING: runs differ, icount should be deterministic".to_string()
    };
    Ok(vec![Metric {
        name: "boot.boot_ns".into(),
        value: worst,
        unit: "ns",
        target_max: Some(BOOT_TARGET_NS),
        runs,
        note,
    }])
}

/// Format the table.
pub fn table(metrics: &[Metric]) -> String {
    let mut s =
        format!("{:<34} {:>10} {:<6} {:>12} {:<6} {}\n", "metric", "value", "unit", "target", "ok", "runs / note");
    for m in metrics {
        let target = m.target_max.map_or("-".to_string(), |t| format!("<= {t}"));
        let ok = match m.target_max {
            None => "-",
            Some(_) if m.met() => "yes",
            Some(_) => "NO",
        };
        let runs = if m.runs.is_empty() { String::new() } else { format!("{:?} ", m.runs) };
        s.push_str(&format!(
            "{:<34} {:>10} {:<6} {:>12} {:<6} {runs}{}\n",
            m.name, m.value, m.unit, target, ok, m.note
        ));
    }
    s
}

/// Build, run every bench, print the table, write bench.json. Fails when a bench could not measure or
/// a target was missed.
pub fn run_all(ws: &Workspace, tools: &Tools, benches: &[&Bench]) -> Result<ExitCode, String> {
    let elf = build::build_app(ws, crate::apps::DEFAULT, build::KERNEL_ELF)?;
    let ctx = BenchCtx { ws, tools, elf, dir: ws.hauki_dir().join("bench") };
    let mut metrics = Vec::new();
    let mut errors = Vec::new();
    for b in benches {
        println!("==> bench {}", b.name);
        match (b.run)(&ctx) {
            Ok(m) => metrics.extend(m),
            Err(e) => {
                println!("    error: {e}");
                errors.push(format!("{}: {e}", b.name));
            }
        }
    }
    println!("\n{}", table(&metrics));
    let (a, b_, c) = tools.qemu_version;
    let doc = json!({
        "schema": 1,
        "qemu": format!("{a}.{b_}.{c}"),
        "metrics": metrics.iter().map(Metric::to_json).collect::<Vec<_>>(),
        "errors": errors,
    });
    let path = ctx.ws.hauki_dir().join("bench.json");
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())? + "\n";
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("==> wrote {}", ws.rel(&path));
    let missed: Vec<&str> = metrics.iter().filter(|m| !m.met()).map(|m| m.name.as_str()).collect();
    if !missed.is_empty() {
        println!("target missed: {}", missed.join(", "));
    }
    if !errors.is_empty() {
        println!("benches that could not measure: {}", errors.join("; "));
    }
    Ok(if missed.is_empty() && errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Linux as the idle task, under icount: time to the shell prompt (wall and virtual), and the
/// latency task's worst case while Linux boots and while it idles at the prompt.
fn linux_guest(c: &BenchCtx<'_>) -> Result<Vec<Metric>, String> {
    use std::time::{Duration, Instant};
    let (vmlinux, initrd) = crate::linux::build_all(c.ws)?;
    let bundle =
        crate::linux::build_bundle(c.ws, &vmlinux, &initrd, crate::linux::DEFAULT_CMDLINE, crate::linux::BUNDLE)?;
    let dir = c.dir.join("linux-guest");
    let (c1, c2) = Qemu::paths(&dir);
    let mut cfg = QemuConfig::test(
        Boot::Kernel {
            elf: c.elf.clone(),
            cmdline: kernel_cmdline(&cokernel_args(&[(cmdline::LINUX, &"guest"), (cmdline::REPORT_MS, &250)])),
        },
        "max",
        &c1,
        &c2,
    );
    cfg.icount = true;
    cfg.extra = vec!["-initrd".into(), bundle.display().to_string()];
    println!("    Linux as the idle task under icount: time to its shell prompt, then 2 s idle at it");
    let start = Instant::now();
    let mut con = crate::console::ShellConsole::spawn(&dir, &cfg)?;
    let bound = Duration::from_secs(300);
    con.expect("is up; type 'poweroff' to end.", bound)?;
    con.expect("# ", bound)?;
    let wall_ms = start.elapsed().as_millis() as u64;
    let (uptime, _) = con.run("cat /proc/uptime", bound)?;
    let linux_s: f64 = uptime.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let boot_records = Records::parse(&std::fs::read_to_string(&c2).unwrap_or_default()).events("latency").count();
    con.run("sleep 2", bound)?;
    con.send("poweroff")?;
    let _ = con.wait_exit(bound);
    let recs = Records::parse(&std::fs::read_to_string(&c2).unwrap_or_default());
    let boot_ns = recs.first("boot").and_then(|b| b["boot_ns"].as_u64()).unwrap_or(0);
    let lat: Vec<&Value> = recs.events("latency").collect();
    let worst = |rs: &[&Value]| rs.iter().filter_map(|r| r["max_ns"].as_u64()).max().unwrap_or(0);
    let misses = |rs: &[&Value]| rs.iter().filter_map(|r| r["misses"].as_u64()).sum::<u64>();
    let split = boot_records.min(lat.len());
    let (during_boot, idle) = lat.split_at(split);
    // Skip the record that straddles the prompt and the `sleep` command's start.
    let idle = if idle.len() > 2 { &idle[1..idle.len() - 1] } else { idle };
    Ok(vec![
        metric(
            "linux.prompt_wall_ms",
            wall_ms,
            "ms",
            None,
            "wall time from QEMU start to the Linux shell prompt under -icount (TCG)",
        ),
        metric(
            "linux.prompt_virtual_ms",
            boot_ns / 1_000_000 + (linux_s * 1000.0) as u64,
            "ms",
            None,
            "virtual time to the prompt: co-kernel boot + Linux's /proc/uptime at the prompt",
        ),
        metric(
            "linux.rt_latency_during_boot.max",
            worst(during_boot),
            "ns",
            None,
            &format!(
                "latency task while Linux boots ({} misses); the worst case is Linux's early boot, entered with the hardware flag off",
                misses(during_boot)
            ),
        ),
        metric(
            "linux.rt_latency_idle.max",
            worst(idle),
            "ns",
            None,
            &format!(
                "latency task while Linux idles at its prompt ({} misses over {} reports)",
                misses(idle),
                idle.len()
            ),
        ),
    ])
}

/// The latency task while Linux idles and while it runs the stress battery (CPU hogs, fork/exec,
/// find, /proc readers, pipes, console output, memory pressure), and the worst hardware-off
/// windows, under icount.
fn linux_stress(c: &BenchCtx<'_>) -> Result<Vec<Metric>, String> {
    let r = crate::suite::stress_run(&c.dir.join("linux-stress"), &c.elf, STRESS_BENCH_SECS)?;
    let mut m = vec![
        metric(
            "linux.stress.rt_latency_idle.max",
            r.idle_max_ns,
            "ns",
            None,
            "latency task while Linux idles (same run)",
        ),
        metric(
            "linux.stress.rt_latency.max",
            r.stress_max_ns,
            "ns",
            Some(LATENCY_TARGET_NS),
            &format!(
                "latency task during {STRESS_BENCH_SECS} s of hauki-stress ({} samples, {} misses); {}",
                r.stress_samples, r.misses, r.summary
            ),
        ),
        metric("linux.stress.misses", r.misses, "", Some(0), "deadline misses over the whole run"),
    ];
    for (i, w) in r.windows.iter().take(10).enumerate() {
        m.push(metric(
            &format!("linux.window.{i}"),
            w.max_ns,
            "ns",
            None,
            &format!("x{} {}", w.count, crate::telemetry::symbolize(c.ws, w.site)),
        ));
    }
    Ok(m)
}

/// Boots application image `elf` with Linux as the idle task under icount (`qemu_extra`:
/// devices), waits for the shell, runs `commands`, powers off; the outputs and the telemetry.
fn with_linux_app(
    c: &BenchCtx<'_>,
    name: &str,
    elf: &std::path::Path,
    qemu_extra: &[&str],
    commands: &[&str],
) -> Result<(Vec<String>, Records), String> {
    use std::time::Duration;
    let args = cokernel_args(&[(cmdline::LINUX, &"guest"), (cmdline::REPORT_MS, &250)]);
    let (mut con, c2) =
        crate::suite::boot_with_linux_devices(&c.dir.join(name), elf, &args, Some(0), None, None, qemu_extra)?;
    let bound = Duration::from_secs(600);
    con.expect("is up; type 'poweroff' to end.", bound)?;
    con.expect("# ", bound)?;
    con.run("echo 1 > /proc/sys/kernel/printk", bound)?;
    let mut outs = Vec::new();
    for cmd in commands {
        let (out, status) = con.run(cmd, bound)?;
        if status != 0 {
            return Err(format!("`{cmd}` failed ({status}): {out}"));
        }
        outs.push(out);
    }
    con.send("poweroff")?;
    let _ = con.wait_exit(bound);
    Ok((outs, Records::parse(&std::fs::read_to_string(&c2).unwrap_or_default())))
}

/// Field `key` of the `KIND k=v ...` line `hauki-chanbench` printed (`ROUNDTRIP`, `THROUGHPUT`), as a
/// number.
fn chanbench_field(out: &str, kind: &str, key: &str) -> Result<f64, String> {
    let line = out
        .lines()
        .find(|l| l.strip_prefix(kind).is_some_and(|r| r.starts_with(' ')))
        .ok_or_else(|| format!("no {kind} line in {out:?}"))?;
    let v = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .ok_or_else(|| format!("no {key} in {line:?}"))?;
    v.parse::<f64>().map_err(|e| format!("{key}={v}: {e}"))
}

/// The latency task's worst release latency and its misses over every report in `recs`.
fn latency_worst(recs: &Records) -> (u64, u64) {
    let max = recs.events("latency").filter_map(|l| l["max_ns"].as_u64()).max().unwrap_or(0);
    let misses = recs.events("latency").filter_map(|l| l["misses"].as_u64()).sum();
    (max, misses)
}

/// Channels, under icount: round trips Linux → real-time task → Linux through the echo
/// application's channel against a pipe ping-pong between two Linux processes in the same run
/// (`hauki-chanbench`), records per second both ways, and the latency task's worst case while
/// the channel is driven flat out.
fn channels(c: &BenchCtx<'_>) -> Result<Vec<Metric>, String> {
    let elf = build::build_app(c.ws, "echo", "cokernel-echo.elf")?;
    println!(
        "    echo application, Linux as the idle task under icount: 2000 round trips of 64 bytes, channel then pipe"
    );
    let (outs, recs) = with_linux_app(
        c,
        "channels",
        &elf,
        &[],
        &["hauki-chanbench echo --count 2000 --size 64", "hauki-chanbench pipe --count 2000 --size 64"],
    )?;
    let get = |i: usize, k: &str| chanbench_field(&outs[i], "ROUNDTRIP", k).map(|f| f as u64);
    let (lat_max, misses) = latency_worst(&recs);
    let mut m = Vec::new();
    for (i, kind) in [(0, "channel"), (1, "pipe")] {
        for (k, unit) in [("min_ns", "ns"), ("avg_ns", "ns"), ("max_ns", "ns")] {
            m.push(metric(
                &format!("{kind}.roundtrip.{}", k.trim_end_matches("_ns")),
                get(i, k)?,
                unit,
                None,
                &format!(
                    "64-byte round trip Linux -> {} -> Linux (virtual time)",
                    if i == 0 { "real-time task" } else { "child process" }
                ),
            ));
        }
        m.push(metric(
            &format!("{kind}.records_per_s"),
            get(i, "records_per_s")?,
            "/s",
            None,
            "round trips per second (each a record each way)",
        ));
    }
    m.push(metric(
        "channel.rt_latency.max",
        lat_max,
        "ns",
        Some(LATENCY_TARGET_NS),
        &format!("latency task's worst case over the whole run, the channel driven flat out ({misses} misses)"),
    ));
    // One way each, flat out: the bulk application's sink and source.
    let bulk = build::build_app(c.ws, "bulk", "cokernel-bulk.elf")?;
    println!("    bulk application: 20000 records of 256 bytes Linux -> real-time, then real-time -> Linux");
    let (outs, recs) = with_linux_app(
        c,
        "channels-bulk",
        &bulk,
        &[],
        &["hauki-chanbench to-rt --count 20000", "hauki-chanbench from-rt --count 20000"],
    )?;
    let b = recs.events("bulk").last().ok_or("no bulk record")?.clone();
    if b["bad"].as_u64() != Some(0) || b["received"].as_u64() < Some(20000) {
        return Err(format!("the bulk task did not receive 20000 intact records: {b}"));
    }
    let (bulk_max, bulk_misses) = latency_worst(&recs);
    for (out, dir, what) in [(&outs[0], "to_rt", "Linux -> real-time"), (&outs[1], "from_rt", "real-time -> Linux")] {
        let get = |k: &str| chanbench_field(out, "THROUGHPUT", k);
        m.push(metric(
            &format!("channel.{dir}.records_per_s"),
            get("records_per_s")? as u64,
            "/s",
            None,
            &format!("256-byte records {what}, flat out, 20000 checked (virtual time)"),
        ));
        m.push(metric(
            &format!("channel.{dir}.kb_per_s"),
            (get("mb_per_s")? * 1000.0).round() as u64,
            "KB/s",
            None,
            &format!("payload {what} (virtual time)"),
        ));
    }
    m.push(metric(
        "channel.bulk.rt_latency.max",
        bulk_max,
        "ns",
        Some(LATENCY_TARGET_NS),
        &format!("latency task's worst case while the bulk channels run flat out ({bulk_misses} misses)"),
    ));
    Ok(m)
}

/// A device owned by a real-time task of application `app` (booted with `qemu_extra`) while Linux
/// runs 3 virtual seconds: the latency figures of its telemetry record (`count` events, `what`).
fn device_bench(
    c: &BenchCtx<'_>,
    app: &str,
    qemu_extra: &[&str],
    count: &str,
    what: &str,
) -> Result<Vec<Metric>, String> {
    let elf = build::build_app(c.ws, app, &format!("cokernel-{app}.elf"))?;
    println!("    {app} application with {}, Linux as the idle task under icount, 3 s", qemu_extra.join(" "));
    let (_, recs) = with_linux_app(c, app, &elf, qemu_extra, &["sleep 3"])?;
    let e = recs.events(app).last().ok_or_else(|| format!("no {app} record"))?;
    let get = |k: &str| e[k].as_u64().unwrap_or(0);
    if get("wrong") != 0 || get(count) == 0 {
        return Err(format!("the {app} task did not drive its device right: {e}"));
    }
    Ok(vec![
        metric(&format!("{app}.irq_to_task.min"), get("min_ns"), "ns", None, &format!("{what} (virtual)")),
        metric(&format!("{app}.irq_to_task.avg"), get("avg_ns"), "ns", None, &format!("{what} (virtual)")),
        metric(
            &format!("{app}.irq_to_task.max"),
            get("max_ns"),
            "ns",
            None,
            &format!("{} {count}, {} wrong", get(count), get("wrong")),
        ),
    ])
}

/// QEMU's edu device owned by a real-time task (the edu application) while Linux runs: from the
/// task's request to the wake-up of the task its MSI releases (virtual time; the device model's
/// compute time included).
fn edu(c: &BenchCtx<'_>) -> Result<Vec<Metric>, String> {
    device_bench(c, "edu", &["-device", "edu"], "completions", "factorial request to the MSI-released task")
}

/// A 16550 on ISA line 5 owned by a real-time task (the uart application) while Linux runs: from
/// the task's write of a byte (looped back) to the wake-up of the task the receive interrupt
/// releases (virtual time).
fn uart(c: &BenchCtx<'_>) -> Result<Vec<Metric>, String> {
    device_bench(
        c,
        "uart",
        &["-chardev", "null,id=rtuart", "-device", "isa-serial,chardev=rtuart,iobase=0x3e8,irq=5"],
        "received",
        "UART write to the task its ISA-line interrupt releases",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, value: u64, target: Option<u64>) -> Metric {
        Metric { name: name.into(), value, unit: "ns", target_max: target, runs: vec![value, value], note: "n".into() }
    }

    #[test]
    fn chanbench_lines_are_read_by_kind_and_key() {
        let out = "noise\nROUNDTRIP kind=channel min_ns=4998 records_per_s=130092.5\nTHROUGHPUTX a=1\nTHROUGHPUT mb_per_s=46.82\n";
        assert_eq!(chanbench_field(out, "ROUNDTRIP", "min_ns"), Ok(4998.0));
        assert_eq!(chanbench_field(out, "ROUNDTRIP", "records_per_s"), Ok(130092.5));
        assert_eq!(chanbench_field(out, "THROUGHPUT", "mb_per_s"), Ok(46.82));
        assert!(chanbench_field(out, "THROUGHPUT", "a").unwrap_err().contains("no a"));
        assert!(chanbench_field("", "ROUNDTRIP", "min_ns").unwrap_err().contains("no ROUNDTRIP line"));
    }

    #[test]
    fn targets_and_table() {
        assert!(m("a", 5, Some(5)).met());
        assert!(!m("a", 6, Some(5)).met());
        assert!(m("a", 6, None).met());
        let t = table(&[m("boot.boot_ns", 4_000_000, Some(5_000_000)), m("x", 9, Some(1))]);
        assert!(t.contains("boot.boot_ns") && t.contains("<= 5000000") && t.contains("yes"));
        assert!(t.contains("NO"));
        assert_eq!(m("a", 1, None).to_json()["met"], true);
    }
}
