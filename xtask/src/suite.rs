//! `cargo xtask test`: host unit tests, in-kernel KTAP tests and system tests under QEMU, ending with
//! `N passed, M failed` (`, K skipped` when something was skipped; a skip never counts as a pass).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::build::{self, KTEST_ELF};
use crate::console::ShellConsole;
use crate::deps::{QEMU_X2APIC_MAJOR, Tools};
use crate::ktap;
use crate::qemu::{
    Boot, Com, Qemu, QemuConfig, STATUS_FAILURE, STATUS_SUCCESS, explain_status, fresh_ovmf_vars, kernel_cmdline,
};
use crate::telemetry::{Expect, Records, check, is_event};
use crate::util::{Workspace, cargo};

/// Safety bound on every QEMU run (120 s); never a pass/fail criterion for performance. Slow hosts can
/// raise it with `HAUKI_QEMU_TIMEOUT=<seconds>`.
pub fn hard_timeout() -> Duration {
    let secs = std::env::var("HAUKI_QEMU_TIMEOUT").ok().and_then(|s| s.parse::<u64>().ok()).filter(|&s| s > 0);
    Duration::from_secs(secs.unwrap_or(120))
}
/// Lines of each log shown when a test fails.
const TAIL: usize = 30;

/// A test's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Passed.
    Pass,
    /// Failed, with the reason.
    Fail(String),
    /// Not run, with the reason (never counts as a pass).
    Skip(String),
}

/// Collects results, printing each as it arrives.
#[derive(Default)]
pub struct Summary {
    results: Vec<(String, Status)>,
}

impl Summary {
    /// Record and print one result.
    pub fn record(&mut self, name: &str, status: Status, elapsed: Option<Duration>) {
        let time = elapsed.map(|d| format!(" ({:.1} s)", d.as_secs_f64())).unwrap_or_default();
        match &status {
            Status::Pass => println!("  ok    {name}{time}"),
            Status::Fail(why) => println!("  FAIL  {name}{time}: {why}"),
            Status::Skip(why) => println!("  SKIP  {name}: {why}"),
        }
        self.results.push((name.to_string(), status));
    }

    /// (passed, failed, skipped).
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for (_, s) in &self.results {
            match s {
                Status::Pass => c.0 += 1,
                Status::Fail(_) => c.1 += 1,
                Status::Skip(_) => c.2 += 1,
            }
        }
        c
    }

    /// The final line: `N passed, M failed` plus `, K skipped` when K > 0.
    pub fn line(&self) -> String {
        let (p, f, s) = self.counts();
        if s > 0 { format!("{p} passed, {f} failed, {s} skipped") } else { format!("{p} passed, {f} failed") }
    }

    fn finish(&self) -> ExitCode {
        let (_, failed, _) = self.counts();
        println!();
        for (name, s) in &self.results {
            match s {
                Status::Fail(why) => println!("failed:  {name}: {why}"),
                Status::Skip(why) => println!("skipped: {name}: {why}"),
                Status::Pass => {}
            }
        }
        println!("{}", self.line());
        if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
    }
}

/// Is `name` selected by the command-line filters (none = everything)?
fn selected(filters: &[String], name: &str) -> bool {
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}

/// The host unit-test steps: (summary name, cargo arguments).
const HOST_STEPS: &[(&str, &[&str])] = &[
    ("unit/cokernel", &["test", "-p", "cokernel", "--lib"]),
    ("unit/hauki-abi", &["test", "-p", "hauki-abi"]),
    ("unit/xtask", &["test", "-p", "xtask"]),
    // Every fuzz target over its seed corpus and a few thousand mutations, on stable (docs/fuzzing.md).
    ("fuzz-smoke", &["test", "-p", "cokernel", "--features", "fuzz", "--test", "fuzz_smoke", "--", "--nocapture"]),
];

/// Everything `test` needs to reach.
struct Ctx<'a> {
    tools: &'a Tools,
    tests_dir: PathBuf,
}

impl Ctx<'_> {
    fn dir(&self, name: &str) -> PathBuf {
        self.tests_dir.join(name)
    }
}

/// Run everything (or the steps matching `filters`) and return the exit code.
pub fn run_all(ws: &Workspace, tools: &Tools, filters: &[String]) -> ExitCode {
    println!("{}", tools.describe());
    let ctx = Ctx { tools, tests_dir: ws.hauki_dir().join("tests") };
    let mut sum = Summary::default();

    // a. Host unit tests.
    for (name, args) in HOST_STEPS {
        if !selected(filters, name) {
            continue;
        }
        println!("==> {name}: cargo {}", args.join(" "));
        let t = Instant::now();
        let status = match cargo().current_dir(&ws.root).args(*args).status() {
            Ok(s) if s.success() => Status::Pass,
            Ok(s) => Status::Fail(format!("`cargo {}` failed ({s}); see its output above", args.join(" "))),
            Err(e) => Status::Fail(format!("cannot run cargo: {e}")),
        };
        sum.record(name, status, Some(t.elapsed()));
    }

    // The C header of the ABI must be what shared-abi generates (one source of truth).
    if selected(filters, "abi-header") {
        println!("==> abi-header: {} and its patch match shared-abi", crate::abi::HEADER);
        let status = match crate::abi::check(ws) {
            Ok(()) => Status::Pass,
            Err(e) => Status::Fail(e),
        };
        sum.record("abi-header", status, None);
    }

    // b. In-kernel KTAP tests.
    // (name, cpu, smp, icount): the icount run makes every timing check deterministic.
    let ktest_runs: Vec<(&str, &str, u32, bool)> = vec![
        ("ktest-xapic", "qemu64", 1, false),
        ("ktest-x2apic", "max", 1, false),
        ("ktest-smp2", "max", 2, false),
        ("ktest-icount", "max", 1, true),
    ];
    let ktest_runs: Vec<_> = ktest_runs.into_iter().filter(|(n, _, _, _)| selected(filters, n)).collect();
    if !ktest_runs.is_empty() {
        match build::build_kernel(ws, &["ktest"], KTEST_ELF) {
            Err(e) => sum.record("ktest (build)", Status::Fail(e), None),
            Ok(elf) => {
                for (name, cpu, smp, icount) in ktest_runs {
                    if cpu == "max" && !tools.has_tcg_x2apic() {
                        sum.record(name, Status::Skip(x2apic_skip_reason(tools)), None);
                        continue;
                    }
                    let how = if icount { " -icount shift=0" } else { "" };
                    println!("==> {name}: KTAP under -cpu {cpu} -smp {smp}{how}");
                    ktest_run(&ctx, &mut sum, name, &elf, cpu, smp, icount);
                }
            }
        }
    }

    // c. System tests.
    let sys: Vec<&SysTest> = SYSTEM_TESTS.iter().filter(|t| selected(filters, t.name)).collect();
    if !sys.is_empty() {
        let built = build::build_all(ws);
        for t in sys {
            let start = Instant::now();
            let status = match &built {
                Err(e) => Status::Fail(format!("not run: the build failed ({})", e.lines().next().unwrap_or(""))),
                Ok(a) => {
                    println!("==> {}", t.name);
                    (t.run)(&ctx, &a.elf, &a.iso)
                }
            };
            sum.record(t.name, status, Some(start.elapsed()));
        }
    }

    if sum.results.is_empty() {
        println!("no test matches the filter(s) {filters:?}");
    }
    sum.finish()
}

fn x2apic_skip_reason(tools: &Tools) -> String {
    let (a, b, c) = tools.qemu_version;
    format!("QEMU {a}.{b}.{c} < {QEMU_X2APIC_MAJOR} has no x2APIC under TCG; install QEMU >= {QEMU_X2APIC_MAJOR}")
}

/// One KTAP run: every result becomes its own summary entry; problems with the run itself (plan, exit
/// status, timeout) add a failing `<name>` entry.
fn ktest_run(ctx: &Ctx<'_>, sum: &mut Summary, name: &str, elf: &Path, cpu: &str, smp: u32, icount: bool) {
    let dir = ctx.dir(name);
    let (c1, c2) = Qemu::paths(&dir);
    let boot = Boot::Kernel { elf: elf.to_path_buf(), cmdline: kernel_cmdline("") };
    let mut cfg = QemuConfig::test(boot, cpu, &c1, &c2);
    cfg.smp = smp;
    cfg.icount = icount;
    let start = Instant::now();
    let mut q = match Qemu::spawn(&dir, &cfg, hard_timeout()) {
        Ok(q) => q,
        Err(e) => return sum.record(name, Status::Fail(e), None),
    };
    let exit = q.wait_exit(hard_timeout());
    q.kill();
    let report = ktap::parse(&q.read(Com::Com1));
    for r in &report.results {
        let status = match &r.outcome {
            ktap::Outcome::Pass => Status::Pass,
            ktap::Outcome::Skip(why) => {
                Status::Skip(if why.is_empty() { "skipped by the kernel".into() } else { why.clone() })
            }
            ktap::Outcome::Fail => Status::Fail(if r.diagnostics.is_empty() {
                "not ok".into()
            } else {
                format!("not ok; {}", r.diagnostics.join(" | "))
            }),
        };
        sum.record(&format!("{name}/{}", r.name), status, None);
    }
    let failures = report.failures().count();
    let mut problems = Vec::new();
    if let Err(e) = report.complete() {
        problems.push(format!("KTAP: {e}"));
    }
    match exit {
        Err(e) => problems.push(e.to_string()),
        Ok(Some(STATUS_SUCCESS)) if failures > 0 => {
            problems.push(format!("QEMU exit status {STATUS_SUCCESS} (success) despite {failures} `not ok`"))
        }
        Ok(Some(STATUS_SUCCESS)) => {}
        Ok(Some(STATUS_FAILURE)) if failures > 0 => {}
        Ok(s) => problems.push(format!("expected exit status {STATUS_SUCCESS}, got {}", explain_status(s))),
    }
    if !problems.is_empty() {
        sum.record(name, Status::Fail(problems.join("; ")), Some(start.elapsed()));
    }
    if !problems.is_empty() || failures > 0 {
        q.print_logs(TAIL);
    }
}

/// A named system test.
struct SysTest {
    name: &'static str,
    run: fn(&Ctx<'_>, &Path, &Path) -> Status,
}

const SYSTEM_TESTS: &[SysTest] = &[
    SysTest { name: "pvh-xapic", run: pvh_xapic },
    SysTest { name: "pvh-x2apic", run: pvh_x2apic },
    SysTest { name: "pvh-smp2", run: pvh_smp2 },
    SysTest { name: "iso-bios", run: iso_bios },
    SysTest { name: "iso-uefi", run: iso_uefi },
    SysTest { name: "fault-report/pf", run: fault_pf },
    SysTest { name: "fault-report/ud", run: fault_ud },
    SysTest { name: "fault-report/stack", run: fault_stack },
    SysTest { name: "no-acpi", run: no_acpi },
    SysTest { name: "no-apic", run: no_apic },
    SysTest { name: "low-memory", run: low_memory },
    SysTest { name: "rt-latency-x2apic", run: rt_latency_x2apic },
    SysTest { name: "rt-latency-xapic", run: rt_latency_xapic },
    SysTest { name: "rt-tcg-runs", run: rt_tcg_runs },
    SysTest { name: "linux-bare-boot", run: linux_bare_boot },
    SysTest { name: "linux-loader-handover", run: linux_loader_handover },
    SysTest { name: "linux-loader-refuses-bad-image", run: linux_loader_refuses_bad_image },
    SysTest { name: "linux-guest-beside-rt", run: linux_guest_beside_rt },
    SysTest { name: "linux-stress-battery", run: linux_stress_battery },
    SysTest { name: "linux-faults-are-linux-s", run: linux_faults },
    SysTest { name: "linux-selftests-x86", run: linux_selftests },
    SysTest { name: "linux-debug-lockdep", run: linux_debug_lockdep },
    SysTest { name: "pvh-pit-calibration", run: pvh_pit },
];

/// Pass, or fail with the run's logs printed.
fn outcome(q: &Qemu, r: Result<(), String>) -> Status {
    match r {
        Ok(()) => Status::Pass,
        Err(e) => {
            q.print_logs(TAIL);
            Status::Fail(e)
        }
    }
}

/// A PVH (`-kernel`) boot that must end by itself with `want_status`, then `verify` the telemetry.
struct PvhCase<'a> {
    name: &'a str,
    cpu: &'a str,
    smp: u32,
    /// Guest RAM; `None` keeps the harness default.
    mem_mib: Option<u32>,
    /// Deterministic virtual time (`-icount shift=0,sleep=off`).
    icount: bool,
    machine: &'a str,
    append: &'a str,
    want_status: i32,
    verify: &'a dyn Fn(&Records) -> Result<(), String>,
}

fn run_pvh(ctx: &Ctx<'_>, elf: &Path, c: &PvhCase<'_>) -> Status {
    let dir = ctx.dir(c.name);
    let (c1, c2) = Qemu::paths(&dir);
    let boot = Boot::Kernel { elf: elf.to_path_buf(), cmdline: kernel_cmdline(c.append) };
    let mut cfg = QemuConfig::test(boot, c.cpu, &c1, &c2);
    cfg.smp = c.smp;
    if let Some(m) = c.mem_mib {
        cfg.mem_mib = m;
    }
    cfg.icount = c.icount;
    cfg.machine = c.machine.into();
    let mut q = match Qemu::spawn(&dir, &cfg, hard_timeout()) {
        Ok(q) => q,
        Err(e) => return Status::Fail(e),
    };
    let exit = q.wait_exit(hard_timeout());
    q.kill();
    let recs = Records::parse(&q.read(Com::Com2));
    let mut problems = Vec::new();
    if let Err(e) = recs.check_well_formed() {
        problems.push(e);
    }
    if let Err(e) = (c.verify)(&recs) {
        problems.push(e);
    }
    match exit {
        Err(e) => problems.push(e.to_string()),
        Ok(Some(s)) if s == c.want_status => {}
        Ok(s) => problems.push(format!("expected exit status {}, got {}", c.want_status, explain_status(s))),
    }
    outcome(&q, if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) })
}

/// Check the first record of `event` with `expects`.
fn expect_record(recs: &Records, event: &str, expects: &[Expect]) -> Result<(), String> {
    let r = recs.first(event).ok_or_else(|| format!("no {{\"event\":\"{event}\"}} record on COM2"))?;
    check(r, expects)
}

fn boot_expects(apic: Option<&'static str>, cpus: u64) -> Vec<Expect> {
    let mut v = vec![
        Expect::Eq("schema", json!(hauki_abi::telemetry::SCHEMA_VERSION)),
        Expect::Eq("timer", json!("lapic-oneshot")),
        Expect::Positive("tsc_hz"),
        Expect::Positive("boot_ns"),
        Expect::Eq("cpus", json!(cpus)),
    ];
    match apic {
        Some(a) => v.push(Expect::Eq("apic", json!(a))),
        None => v.push(Expect::OneOf("apic", &["xapic", "x2apic"])),
    }
    v
}

fn exit_after_boot() -> String {
    format!("{}=1", hauki_abi::cmdline::EXIT_AFTER_BOOT)
}

fn pvh_xapic(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let append = exit_after_boot();
    let verify = |r: &Records| expect_record(r, "boot", &boot_expects(Some("xapic"), 1));
    run_pvh(
        ctx,
        elf,
        &PvhCase {
            name: "pvh-xapic",
            cpu: "qemu64",
            smp: 1,
            mem_mib: None,
            icount: false,
            machine: "q35",
            append: &append,
            want_status: STATUS_SUCCESS,
            verify: &verify,
        },
    )
}

fn pvh_x2apic(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    if !ctx.tools.has_tcg_x2apic() {
        return Status::Skip(x2apic_skip_reason(ctx.tools));
    }
    let append = exit_after_boot();
    let verify = |r: &Records| expect_record(r, "boot", &boot_expects(Some("x2apic"), 1));
    run_pvh(
        ctx,
        elf,
        &PvhCase {
            name: "pvh-x2apic",
            cpu: "max",
            smp: 1,
            mem_mib: None,
            icount: false,
            machine: "q35",
            append: &append,
            want_status: STATUS_SUCCESS,
            verify: &verify,
        },
    )
}

fn pvh_smp2(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let append = exit_after_boot();
    let verify = |r: &Records| {
        expect_record(r, "boot", &boot_expects(None, 2))?;
        let parked = r.events(hauki_abi::telemetry::EVENT_CPU).filter(|c| c["state"] == "parked").count();
        if parked == 1 {
            Ok(())
        } else {
            Err(format!("want 1 {{\"event\":\"cpu\",\"state\":\"parked\"}} record for the secondary CPU, got {parked}"))
        }
    };
    run_pvh(
        ctx,
        elf,
        &PvhCase {
            name: "pvh-smp2",
            cpu: "max",
            smp: 2,
            mem_mib: None,
            icount: false,
            machine: "q35",
            append: &append,
            want_status: STATUS_SUCCESS,
            verify: &verify,
        },
    )
}

/// Boot the ISO (BIOS or UEFI), wait for the boot record, kill QEMU, check the record.
fn run_iso(ctx: &Ctx<'_>, name: &str, iso: &Path, uefi: bool, expects: &[Expect]) -> Status {
    let dir = ctx.dir(name);
    let (c1, c2) = Qemu::paths(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return Status::Fail(e.to_string());
    }
    // The writable OVMF variable store lives next to the test's logs (outside `dir`, which spawn empties).
    let uefi = if uefi {
        match fresh_ovmf_vars(&ctx.tools.ovmf, &ctx.tests_dir.join(format!("{name}.OVMF_VARS.fd"))) {
            Ok(p) => Some(p),
            Err(e) => return Status::Fail(e),
        }
    } else {
        None
    };
    let cfg = QemuConfig::test(Boot::Cdrom { iso: iso.to_path_buf(), uefi }, "qemu64", &c1, &c2);
    let mut q = match Qemu::spawn(&dir, &cfg, hard_timeout()) {
        Ok(q) => q,
        Err(e) => return Status::Fail(e),
    };
    // The ISO's first entry starts Linux as the idle task from its GRUB modules: wait for the
    // co-kernel's boot and linux records, then for Linux's userspace banner on COM1.
    let got = q
        .wait_for_line(Com::Com2, |l| is_event(l, "linux"), hard_timeout())
        .map_err(|e| format!("no linux record: {e}"))
        .and_then(|_| {
            q.wait_for_line(Com::Com1, |l| l.contains("is up; type 'poweroff' to end."), hard_timeout())
                .map_err(|e| format!("Linux did not reach its shell: {e}"))
        });
    q.kill();
    let result = got.and_then(|_| {
        // QEMU was stopped from outside: a record it was writing may be cut short.
        let text = q.read(Com::Com2);
        let recs = Records::parse(&text[..text.rfind('\n').map_or(0, |i| i + 1)]);
        recs.check_well_formed()
            .and_then(|()| expect_record(&recs, "boot", expects))
            .and_then(|()| expect_record(&recs, "linux", &[Expect::Eq("state", json!("guest"))]))
    });
    outcome(&q, result)
}

fn iso_bios(ctx: &Ctx<'_>, _elf: &Path, iso: &Path) -> Status {
    let mut ex = boot_expects(Some("xapic"), 1);
    ex.push(Expect::Eq("boot_protocol", json!("multiboot2")));
    ex.push(Expect::EqIfPresent("firmware", json!("bios")));
    run_iso(ctx, "iso-bios", iso, false, &ex)
}

fn iso_uefi(ctx: &Ctx<'_>, _elf: &Path, iso: &Path) -> Status {
    let mut ex = boot_expects(Some("xapic"), 1);
    ex.push(Expect::Eq("boot_protocol", json!("multiboot2")));
    ex.push(Expect::Eq("firmware", json!("uefi")));
    run_iso(ctx, "iso-uefi", iso, true, &ex)
}

/// Inject an exception; want an exception record satisfying `expects` and the fatal exit status.
fn fault(
    ctx: &Ctx<'_>,
    elf: &Path,
    name: &str,
    inject: &str,
    expects: &'static [Expect],
    vectors: &'static [u64],
) -> Status {
    let append = format!("{}={inject}", hauki_abi::cmdline::INJECT);
    let verify = move |r: &Records| {
        let ex: Vec<_> = r.events(hauki_abi::telemetry::EVENT_EXCEPTION).collect();
        let Some(rec) = ex.iter().find(|e| e["vector"].as_u64().is_some_and(|v| vectors.contains(&v))) else {
            return Err(match ex.first() {
                None => format!("no {{\"event\":\"exception\"}} record on COM2 (want vector {vectors:?})"),
                Some(e) => format!("exception record with vector {} but want {vectors:?}: {e}", e["vector"]),
            });
        };
        check(rec, expects)
    };
    let st = run_pvh(
        ctx,
        elf,
        &PvhCase {
            name,
            cpu: "qemu64",
            smp: 1,
            mem_mib: None,
            icount: false,
            machine: "q35",
            append: &append,
            want_status: STATUS_FAILURE,
            verify: &verify,
        },
    );
    match st {
        Status::Fail(why) if why.contains("got status 0:") => {
            Status::Fail(format!("{why} — QEMU reset (triple fault?) instead of reporting the exception"))
        }
        s => s,
    }
}

const PF_FIELDS: &[Expect] =
    &[Expect::Present("rip"), Expect::Present("error_code"), Expect::Present("cr2"), Expect::Present("regs")];
const UD_FIELDS: &[Expect] = &[Expect::Present("rip"), Expect::Present("regs")];
const STACK_FIELDS: &[Expect] = &[Expect::Present("rip"), Expect::Present("regs")];

fn fault_pf(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    fault(ctx, elf, "fault-report/pf", "pf", PF_FIELDS, &[14])
}

fn fault_ud(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    fault(ctx, elf, "fault-report/ud", "ud", UD_FIELDS, &[6])
}

fn fault_stack(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    fault(ctx, elf, "fault-report/stack", "stack", STACK_FIELDS, &[14, 8])
}

/// Want a fatal record with `reason` and the fatal exit status. `exit_after_boot` is set so that a boot
/// that wrongly succeeds ends at once (status 33) instead of idling until the safety bound.
fn fatal(ctx: &Ctx<'_>, elf: &Path, name: &str, cpu: &str, machine: &str, reason: &'static str) -> Status {
    let verify =
        |r: &Records| expect_record(r, hauki_abi::telemetry::EVENT_FATAL, &[Expect::Eq("reason", json!(reason))]);
    let append = exit_after_boot();
    run_pvh(
        ctx,
        elf,
        &PvhCase {
            name,
            cpu,
            smp: 1,
            mem_mib: None,
            icount: false,
            machine,
            append: &append,
            want_status: STATUS_FAILURE,
            verify: &verify,
        },
    )
}

/// No ACPI at all. Not `q35,acpi=off`: there SeaBIOS builds its own (revision 0) ACPI tables when QEMU
/// provides none, so an RSDP is still found. `microvm,acpi=off` (qboot, no ACPI) really has none.
fn no_acpi(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    fatal(ctx, elf, "no-acpi", "qemu64", "microvm,acpi=off", "no-rsdp")
}

fn no_apic(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    fatal(ctx, elf, "no-apic", "qemu64,-apic", "q35", "no-apic")
}

/// 6 MiB of RAM: too little for the heap and tables; the co-kernel must say so and stop.
fn low_memory(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let verify = |r: &Records| {
        expect_record(r, hauki_abi::telemetry::EVENT_FATAL, &[Expect::Eq("reason", json!("not-enough-memory"))])
    };
    let append = exit_after_boot();
    run_pvh(
        ctx,
        elf,
        &PvhCase {
            name: "low-memory",
            cpu: "qemu64",
            smp: 1,
            mem_mib: Some(6),
            icount: false,
            machine: "q35",
            append: &append,
            want_status: STATUS_FAILURE,
            verify: &verify,
        },
    )
}

/// The co-kernel alone with its built-in tasks, for 3 reporting periods under deterministic
/// virtual time: latency records with samples and zero deadline misses, every task without a
/// miss, the control loop tracking its setpoint, the phase engine reporting.
fn rt_checks(r: &Records, want_demo: bool) -> Result<(), String> {
    let lat: Vec<&serde_json::Value> = r.events("latency").collect();
    if lat.len() < 3 {
        return Err(format!("want 3 latency records, got {}", lat.len()));
    }
    for (i, l) in lat.iter().enumerate() {
        check(
            l,
            &[
                Expect::Eq("task", json!("latency")),
                Expect::Positive("samples"),
                Expect::Eq("misses", json!(0)),
                Expect::Positive("max_ns"),
            ],
        )
        .map_err(|e| format!("latency record {}: {e}", i + 1))?;
        let hist: u64 = l["hist"].as_array().map_or(0, |h| h.iter().filter_map(|x| x.as_u64()).sum());
        if Some(hist) != l["samples"].as_u64() {
            return Err(format!(
                "latency record {}: histogram holds {hist} samples, record says {}",
                i + 1,
                l["samples"]
            ));
        }
    }
    let tasks: Vec<&serde_json::Value> = r.events("task").collect();
    if tasks.is_empty() {
        return Err("no task records".into());
    }
    if let Some(t) = tasks.iter().find(|t| t["misses"].as_u64() != Some(0)) {
        return Err(format!("task {} missed deadlines: {t}", t["task"]));
    }
    if want_demo {
        let c = r.events("control").last().ok_or("no control record")?;
        let (sp, pos) = (c["setpoint_milli"].as_i64().unwrap_or(0), c["position_milli"].as_i64().unwrap_or(0));
        let steps = c["steps"].as_u64().unwrap_or(0);
        // One second after a setpoint change (the setpoint flips every 2000 steps) the loop has settled.
        if steps % 2000 == 1000 && (sp - pos).abs() > sp.abs() / 5 {
            return Err(format!("control loop off its setpoint one second after a change: {c}"));
        }
        if r.events("phase").next().is_none() {
            return Err("no phase record".into());
        }
    }
    Ok(())
}

fn rt_latency(ctx: &Ctx<'_>, elf: &Path, name: &str, cpu: &str, append: &str, demo: bool) -> Status {
    let verify = |r: &Records| rt_checks(r, demo);
    run_pvh(
        ctx,
        elf,
        &PvhCase {
            name,
            cpu,
            smp: 1,
            mem_mib: None,
            icount: true,
            machine: "q35",
            append,
            want_status: STATUS_SUCCESS,
            verify: &verify,
        },
    )
}

fn rt_latency_x2apic(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    if !ctx.tools.has_tcg_x2apic() {
        return Status::Skip(x2apic_skip_reason(ctx.tools));
    }
    rt_latency(ctx, elf, "rt-latency-x2apic", "max", "hauki.exit_after_reports=3", true)
}

fn rt_latency_xapic(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    rt_latency(ctx, elf, "rt-latency-xapic", "qemu64", "hauki.exit_after_reports=3 hauki.demo=0", false)
}

/// Under plain TCG (no icount) time is the host's and emulation is not real time, so misses are
/// not judged here; the tasks must run and report.
fn rt_tcg_runs(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let verify = |r: &Records| {
        let lat: Vec<&serde_json::Value> = r.events("latency").collect();
        if lat.len() < 2 || lat.iter().any(|l| l["samples"].as_u64().unwrap_or(0) == 0) {
            return Err(format!("want 2 latency records with samples, got {}", lat.len()));
        }
        r.events("control").next().ok_or("no control record")?;
        Ok(())
    };
    run_pvh(
        ctx,
        elf,
        &PvhCase {
            name: "rt-tcg-runs",
            cpu: "qemu64",
            smp: 1,
            mem_mib: None,
            icount: false,
            machine: "q35",
            append: "hauki.exit_after_reports=2",
            want_status: STATUS_SUCCESS,
            verify: &verify,
        },
    )
}

/// Keeps Linux's late boot messages (a clock source switch, a link coming up) from landing in
/// the middle of a command's output: the console shows emergencies only from here.
fn quiet_console(con: &mut ShellConsole, bound: Duration) -> Result<(), String> {
    con.run("echo 1 > /proc/sys/kernel/printk", bound).map(|_| ())
}

/// Drives the busybox shell: banner, prompt, `uname -r` ending in -hauki, the pseudo filesystems,
/// exit statuses, then `poweroff` (QEMU exit status 0).
fn drive_linux_shell(con: &mut ShellConsole) -> Result<(), String> {
    let bound = hard_timeout();
    con.expect("is up; type 'poweroff' to end.", bound)?;
    con.expect("# ", bound)?;
    quiet_console(con, bound)?;
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

fn report_console_failure(con: &ShellConsole, e: String) -> Status {
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
    let ws = Workspace::locate();
    let (vmlinux, initrd) = match crate::linux::build_all(&ws) {
        Ok(x) => x,
        Err(e) => return Status::Fail(format!("the Linux guest does not build: {e}")),
    };
    let dir = ctx.dir("linux-bare-boot");
    let (c1, c2) = Qemu::paths(&dir);
    let boot = Boot::Linux { vmlinux, initrd, cmdline: "console=ttyS0 panic=-1".into() };
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
/// shell console; returns the console and the telemetry file.
fn boot_cokernel_with_linux(
    ctx: &Ctx<'_>,
    elf: &Path,
    name: &str,
    cokernel_args: &str,
    icount: Option<u8>,
) -> Result<(ShellConsole, PathBuf), Status> {
    boot_with_linux_in(&ctx.dir(name), elf, cokernel_args, icount).map_err(Status::Fail)
}

/// Boots the co-kernel with the built Linux as its module, QEMU's files in `dir`.
pub fn boot_with_linux_in(
    dir: &Path,
    elf: &Path,
    cokernel_args: &str,
    icount: Option<u8>,
) -> Result<(ShellConsole, PathBuf), String> {
    boot_with_linux_initramfs(dir, elf, cokernel_args, icount, None, None)
}

/// As [`boot_with_linux_in`], with another kernel or initramfs than the usual ones.
fn boot_with_linux_initramfs(
    dir: &Path,
    elf: &Path,
    cokernel_args: &str,
    icount: Option<u8>,
    initramfs: Option<&Path>,
    vmlinux: Option<&Path>,
) -> Result<(ShellConsole, PathBuf), String> {
    let ws = Workspace::locate();
    let bundle = crate::linux::build_all(&ws)
        .and_then(|(v, i)| {
            let i = initramfs.map_or(i, Path::to_path_buf);
            let v = vmlinux.map_or(v, Path::to_path_buf);
            crate::linux::build_bundle(
                &ws,
                &v,
                &i,
                crate::linux::DEFAULT_CMDLINE,
                &format!("{}.bundle", dir.file_name().unwrap_or_default().to_string_lossy()),
            )
        })
        .map_err(|e| format!("the Linux guest does not build: {e}"))?;
    let dir = dir.to_path_buf();
    let (c1, c2) = Qemu::paths(&dir);
    let boot = Boot::Kernel { elf: elf.to_path_buf(), cmdline: kernel_cmdline(cokernel_args) };
    let mut cfg = QemuConfig::test(boot, "max", &c1, &c2);
    cfg.extra = vec!["-initrd".into(), bundle.display().to_string()];
    cfg.icount = icount.is_some();
    cfg.icount_shift = icount.unwrap_or(0);
    let con = ShellConsole::spawn(&dir, &cfg)?;
    Ok((con, c2))
}

/// The co-kernel's loader end to end: it takes the bundle (vmlinux, initramfs, command line) as
/// its boot module, validates and loads the kernel, builds boot_params and the handoff page, and
/// (hauki.linux=handover) gives Linux the machine; the shell must work.
fn linux_loader_handover(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let (mut con, c2) = match boot_cokernel_with_linux(ctx, elf, "linux-loader-handover", "hauki.linux=handover", None)
    {
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
    let (mut con, c2) = match boot_cokernel_with_linux(
        ctx,
        elf,
        "linux-guest-beside-rt",
        "hauki.linux=guest hauki.report_ms=500",
        Some(0),
    ) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let bound = hard_timeout();
    let mut steps = || -> Result<(), String> {
        con.expect("is up; type 'poweroff' to end.", bound)?;
        con.expect("# ", bound)?;
        quiet_console(&mut con, bound)?;
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

/// One selftest's outcome: name, exit status, its `[FAIL]` lines.
type Selftest = (String, i32, Vec<String>);

/// Runs `hauki-selftests` on a booted Linux; its results in order.
fn run_selftests(con: &mut ShellConsole, bound: Duration) -> Result<Vec<Selftest>, String> {
    con.expect("is up; type 'poweroff' to end.", bound)?;
    con.expect("# ", bound)?;
    quiet_console(con, bound)?;
    let (out, status) = con.run("hauki-selftests", bound * 10)?;
    if status != 0 || !out.contains("hauki-selftests: done") {
        return Err(format!("hauki-selftests did not finish (status {status}):\n{out}"));
    }
    let results = out
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("selftest")).then_some(())?;
            let name = w.next()?.to_string();
            (w.next() == Some("exit")).then_some(())?;
            let prefix = format!("{name}: ");
            let fails = out.lines().filter_map(|f| f.trim_start().strip_prefix(&prefix)).map(str::to_string).collect();
            Some((name, w.next()?.parse().ok()?, fails))
        })
        .collect();
    poweroff(con, bound)?;
    Ok(results)
}

/// Linux is still Linux: Linux's own x86 selftests (64-bit, from the same 6.12 source) give the
/// same result under the co-kernel as on the same kernel booted bare in the same QEMU (where the
/// co-kernel's hooks are inactive: the stock code paths). Plain TCG; results printed side by side.
fn linux_selftests(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let ws = Workspace::locate();
    let initramfs = match crate::linux::build_selftests_initramfs(&ws) {
        Ok(i) => i,
        Err(e) => return Status::Fail(format!("the selftests do not build: {e}")),
    };
    let bound = hard_timeout();
    let bare = (|| {
        let (vmlinux, _) = crate::linux::build_all(&ws)?;
        let dir = ctx.dir("linux-selftests-x86-bare");
        let (c1, c2) = Qemu::paths(&dir);
        let boot = Boot::Linux { vmlinux, initrd: initramfs.clone(), cmdline: "console=ttyS0 panic=-1".into() };
        let cfg = QemuConfig::test(boot, "max", &c1, &c2);
        let mut con = ShellConsole::spawn(&dir, &cfg)?;
        run_selftests(&mut con, bound).inspect_err(|e| {
            let _ = report_console_failure(&con, e.clone());
        })
    })();
    let guest = (|| {
        let dir = ctx.dir("linux-selftests-x86-guest");
        let (mut con, _) = boot_with_linux_initramfs(&dir, elf, "hauki.linux=guest", None, Some(&initramfs), None)?;
        run_selftests(&mut con, bound).inspect_err(|e| {
            let _ = report_console_failure(&con, e.clone());
        })
    })();
    let (bare, guest) = match (bare, guest) {
        (Ok(b), Ok(g)) => (b, g),
        (Err(e), _) => return Status::Fail(format!("bare Linux: {e}")),
        (_, Err(e)) => return Status::Fail(format!("Linux under the co-kernel: {e}")),
    };
    let word = |s: i32| match s {
        0 => "pass",
        4 => "skip",
        _ => "FAIL",
    };
    let mut differ = Vec::new();
    println!("    {:<28} {:>6} {:>14}", "selftest", "bare", "under Hauki");
    for (name, b, _) in &bare {
        let g = guest.iter().find(|x| &x.0 == name);
        println!("    {:<28} {:>6} {:>14}", name, word(*b), g.map_or("missing", |g| word(g.1)));
        if let Some(g) = g.filter(|g| g.1 != *b) {
            for f in &g.2 {
                println!("      under Hauki: {f}");
            }
        }
        if g.map(|g| g.1) != Some(*b) {
            differ.push(name.clone());
        }
    }
    let passed = bare.iter().filter(|x| x.1 == 0).count();
    if bare.len() != guest.len() || !differ.is_empty() {
        return Status::Fail(format!(
            "selftests differ under the co-kernel: {differ:?} ({} bare, {} guest)",
            bare.len(),
            guest.len()
        ));
    }
    if passed == 0 {
        return Status::Fail("no selftest passed even on bare Linux".into());
    }
    Status::Pass
}

/// Kernel log lines that mean something is wrong: lockdep and irq-state splats, entry-code and
/// sleeping-in-atomic checks, lock-ups and stalls.
const SPLATS: &[&str] = &[
    "WARNING:",
    "BUG:",
    "possible recursive locking",
    "inconsistent lock state",
    "possible circular locking",
    "irq event stamp",
    "raw_local_irq_restore() called with IRQs enabled",
    "soft lockup",
    "hung_task",
    "rcu: INFO",
    "self-detected stall",
    "workqueue lockup",
    "Oops",
];

/// Linux behaves exactly like Linux, checked by Linux itself: the debug build (lockdep with
/// irq-state tracing, DEBUG_ENTRY, DEBUG_IRQFLAGS, the lock-up and stall detectors) boots under the
/// co-kernel and runs the stress battery with the real-time tasks going; its log must hold no
/// splat, and lockdep must still be on at the end (a splat turns it off).
fn linux_debug_lockdep(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let ws = Workspace::locate();
    let r = (|| -> Result<String, String> {
        let vmlinux = crate::linux::build_flavour(&ws, crate::linux::Flavour::Debug)?;
        let dir = ctx.dir("linux-debug-lockdep");
        let (mut con, _) = boot_with_linux_initramfs(&dir, elf, "hauki.linux=guest", None, None, Some(&vmlinux))?;
        let bound = hard_timeout();
        let steps = (|| -> Result<String, String> {
            con.expect("is up; type 'poweroff' to end.", bound * 2)?;
            con.expect("# ", bound)?;
            let (out, _) = con.run("hauki-stress 5", bound * 2)?;
            if !out.contains("hauki-stress:") {
                return Err(format!("the stress battery did not run: {out}"));
            }
            let (lockdep, _) = con.run("grep -c 'lock-classes' /proc/lockdep_stats; cat /proc/sys/kernel/prove_locking 2>/dev/null; cat /proc/lockdep_stats | grep 'debug_locks'", bound)?;
            let (log, _) = con.run("dmesg", bound)?;
            poweroff(&mut con, bound)?;
            Ok(format!("{lockdep}\n--dmesg--\n{log}"))
        })();
        steps.inspect_err(|e| {
            let _ = report_console_failure(&con, e.clone());
        })
    })();
    let out = match r {
        Ok(o) => o,
        Err(e) => return Status::Fail(e),
    };
    let (stats, log) = out.split_once("--dmesg--").unwrap_or((&out, ""));
    if !log.contains("Lock dependency validator") {
        return Status::Fail("the debug kernel does not run lockdep".into());
    }
    let debug_locks_on =
        stats.lines().any(|l| l.trim_start().starts_with("debug_locks:") && l.trim_end().ends_with(" 1"));
    let bad: Vec<&str> = log.lines().filter(|l| SPLATS.iter().any(|s| l.contains(s))).collect();
    if !bad.is_empty() || !debug_locks_on {
        return Status::Fail(format!(
            "the debug kernel complained (debug_locks on: {debug_locks_on}):\n{}\n{stats}",
            bad.join("\n")
        ));
    }
    println!(
        "    lockdep, DEBUG_ENTRY, DEBUG_IRQFLAGS: boot and a 5 s stress battery beside the real-time tasks, no splat"
    );
    Status::Pass
}

/// `poweroff` on Linux's shell must end QEMU cleanly (status 0).
fn poweroff(con: &mut ShellConsole, bound: Duration) -> Result<(), String> {
    con.send("poweroff")?;
    match con.wait_exit(bound)? {
        Some(0) => Ok(()),
        other => Err(format!("QEMU exit status {other:?} after poweroff, want 0")),
    }
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
    let (mut con, c2) = boot_with_linux_in(dir, elf, "hauki.linux=guest hauki.report_ms=500", Some(0))?;
    let bound = hard_timeout();
    let latency = |c2: &Path| -> Vec<serde_json::Value> {
        Records::parse(&std::fs::read_to_string(c2).unwrap_or_default()).events("latency").cloned().collect()
    };
    let mut steps = || -> Result<StressRun, String> {
        con.expect("is up; type 'poweroff' to end.", bound)?;
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
    let r = match stress_run(&ctx.dir("linux-stress-battery"), elf, STRESS_TEST_SECS) {
        Ok(r) => r,
        Err(e) => return Status::Fail(e),
    };
    println!(
        "    {}; latency max {} ns idle, {} ns under the battery ({} samples), {} misses",
        r.summary, r.idle_max_ns, r.stress_max_ns, r.stress_samples, r.misses
    );
    let ws = Workspace::locate();
    for w in r.windows.iter().take(8) {
        println!("      window {:>7} ns x{:<6} {}", w.max_ns, w.count, crate::telemetry::symbolize(&ws, w.site));
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

/// One way to make Linux fail, and how it must end.
struct Provoke {
    /// What the step is called in the report.
    what: &'static str,
    /// Shell commands that set it up and trigger it (the last one does not return).
    commands: &'static [&'static str],
    /// What Linux itself must print about it (its own report), if anything.
    linux_says: Option<&'static str>,
    /// The co-kernel's `linux` record for it: `stuck` (its watchdog), `panicked` (Linux's panic
    /// reached it), or `None` when Linux survives by itself (an oops kills only the process).
    cokernel_says: Option<&'static str>,
}

/// Every way the fault test makes Linux fail, in order.
const PROVOKED: &[Provoke] = &[
    // An oops in a process: Linux kills it and carries on (init starts a new shell).
    Provoke {
        what: "EXCEPTION (oops in a process)",
        commands: &["echo EXCEPTION > /sys/kernel/debug/provoke-crash/DIRECT"],
        linux_says: Some("Oops"),
        cokernel_says: None,
    },
    // Spinning with the virtual flag off: only the co-kernel's watchdog can see it.
    Provoke {
        what: "HARDLOCKUP (flag off, process context)",
        commands: &["echo HARDLOCKUP > /sys/kernel/debug/provoke-crash/DIRECT"],
        linux_says: None,
        cokernel_says: Some("stuck"),
    },
    // Flag on, preemption off: Linux's own detector reports it (and panics, as asked).
    Provoke {
        what: "SOFTLOCKUP (Linux's detector)",
        commands: &[
            "echo 1 > /proc/sys/kernel/watchdog_thresh",
            "echo 1 > /proc/sys/kernel/softlockup_panic",
            "echo SOFTLOCKUP > /sys/kernel/debug/provoke-crash/DIRECT",
        ],
        linux_says: Some("soft lockup"),
        cokernel_says: Some("panicked"),
    },
    Provoke {
        what: "HUNG_TASK (Linux's detector)",
        commands: &[
            "echo 2 > /proc/sys/kernel/hung_task_timeout_secs",
            "echo 1 > /proc/sys/kernel/hung_task_panic",
            "echo HUNG_TASK > /sys/kernel/debug/provoke-crash/DIRECT",
        ],
        linux_says: Some("blocked for more than"),
        cokernel_says: Some("panicked"),
    },
    // A panic in a device interrupt handler (a kprobe on handle_irq_event: the console's IRQ).
    Provoke {
        what: "PANIC in interrupt context",
        commands: &[
            "echo 1 > /sys/module/lkdtm/parameters/cpoint_count",
            "echo PANIC > /sys/kernel/debug/provoke-crash/INT_HW_IRQ_EN",
        ],
        linux_says: Some("handle_irq_event"),
        cokernel_says: Some("panicked"),
    },
    Provoke {
        what: "CORRUPT_STACK (stack protector)",
        commands: &["echo CORRUPT_STACK > /sys/kernel/debug/provoke-crash/DIRECT"],
        linux_says: Some("stack-protector"),
        cokernel_says: Some("panicked"),
    },
    Provoke {
        what: "EXHAUST_STACK (guard page, double fault)",
        commands: &["echo EXHAUST_STACK > /sys/kernel/debug/provoke-crash/DIRECT"],
        linux_says: Some("stack guard page was hit"),
        cokernel_says: Some("panicked"),
    },
    // A lock-up inside an interrupt handler that comes while the shell waits (Linux idle, its
    // tick stopped: no timer armed, the line in service).
    Provoke {
        what: "HARDLOCKUP in an interrupt while idle",
        commands: &[
            "echo 1 > /sys/module/lkdtm/parameters/cpoint_count",
            "echo HARDLOCKUP > /sys/kernel/debug/provoke-crash/INT_HW_IRQ_EN",
        ],
        linux_says: None,
        cokernel_says: Some("stuck"),
    },
];

/// The watchdog limit the fault test runs with (ms, virtual).
const FAULT_WATCHDOG_MS: u64 = 1000;
/// The fault test's virtual time: one instruction = 32 ns. A lock-up spins on PAUSE, which QEMU's
/// icount mode executes a thousand times slower than other instructions; at 1 ns per instruction
/// Linux's 2-second soft-lockup threshold would take many minutes of host time. The latency task
/// runs at 1 kHz there (at 32 ns per instruction its 10 kHz path would not fit its period).
const FAULT_ICOUNT_SHIFT: u8 = 5;

/// Linux's faults are Linux's (icount, [`FAULT_ICOUNT_SHIFT`]): each of [`PROVOKED`] ends as it must — an oops kills only
/// the process; a lock-up with Linux's flag off is caught by the co-kernel's watchdog within its
/// limit plus one check period (virtual time, from the `linux` record); Linux's own detectors
/// report soft lock-ups and hung tasks; panics (from a process, an interrupt, a corrupted or
/// exhausted stack) reach the co-kernel — and every time the co-kernel reports on COM2, restarts
/// Linux, which comes back to a working shell, and the latency task misses no deadline.
fn linux_faults(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let args = format!(
        "hauki.linux=guest hauki.report_ms=250 hauki.demo=0 hauki.latency_period_us=1000 hauki.linux_watchdog_ms={FAULT_WATCHDOG_MS}"
    );
    let (mut con, c2) =
        match boot_cokernel_with_linux(ctx, elf, "linux-faults-are-linux-s", &args, Some(FAULT_ICOUNT_SHIFT)) {
            Ok(x) => x,
            Err(s) => return s,
        };
    let bound = hard_timeout();
    const UP: &str = "is up; type 'poweroff' to end.";
    let failures = |c2: &Path| -> Vec<serde_json::Value> {
        Records::parse(&std::fs::read_to_string(c2).unwrap_or_default())
            .events("linux")
            .filter(|r| r.get("action").is_some())
            .cloned()
            .collect()
    };
    let mut steps = || -> Result<(), String> {
        con.expect(UP, bound)?;
        con.expect("# ", bound)?;
        let mut report = Vec::new();
        for p in PROVOKED {
            let before = failures(&c2).len();
            let (last, setup) = p.commands.split_last().expect("a command");
            for c in setup {
                let (out, st) = con.run(c, bound)?;
                if st != 0 {
                    return Err(format!("{}: `{c}` failed ({st}): {out}", p.what));
                }
            }
            con.send(last)?;
            if let Some(says) = p.linux_says {
                con.expect(says, bound).map_err(|e| format!("{}: Linux did not report it: {e}", p.what))?;
            }
            let mut detail = String::new();
            if let Some(state) = p.cokernel_says {
                con.expect(UP, bound).map_err(|e| format!("{}: Linux was not restarted: {e}", p.what))?;
                let recs = failures(&c2);
                let new: Vec<&serde_json::Value> = recs[before.min(recs.len())..].iter().collect();
                let [r] = new[..] else {
                    return Err(format!("{}: want one new linux failure record ({state}), got {new:?}", p.what));
                };
                if r["state"] != state || r["action"] != "restart" {
                    return Err(format!("{}: the co-kernel says {r}, want state {state}, action restart", p.what));
                }
                if state == "stuck" {
                    let waited = r["waited_ns"].as_u64().unwrap_or(0);
                    let limit = FAULT_WATCHDOG_MS * 1_000_000;
                    // Caught within the limit plus one check period (limit / 8) and the latency
                    // of the task that checks (virtual time).
                    if waited < limit || waited > limit + limit / 4 {
                        return Err(format!(
                            "{}: the watchdog caught it after {waited} ns, want {limit}..{} ns",
                            p.what,
                            limit + limit / 4
                        ));
                    }
                    detail = format!(", caught after {:.1} ms (virtual)", waited as f64 / 1e6);
                }
            }
            con.expect("# ", bound)?;
            let (out, _) = con.run("echo alive-again", bound)?;
            if !out.contains("alive-again") {
                return Err(format!("{}: no working shell afterwards: {out:?}", p.what));
            }
            report.push(format!(
                "{} -> {}{detail}",
                p.what,
                p.cokernel_says.map_or("Linux carries on".to_string(), |s| format!("{s}, restarted"))
            ));
        }
        let recs = Records::parse(&std::fs::read_to_string(&c2).unwrap_or_default());
        let want = PROVOKED.iter().filter(|p| p.cokernel_says.is_some()).count() as u64;
        let restarts = recs.events("guest").last().and_then(|g| g["restarts"].as_u64()).unwrap_or(0);
        if restarts != want {
            return Err(format!("{restarts} restarts counted, want {want}"));
        }
        let misses: u64 = recs.events("latency").filter_map(|l| l["misses"].as_u64()).sum();
        let max = recs.events("latency").filter_map(|l| l["max_ns"].as_u64()).max().unwrap_or(0);
        for l in &report {
            println!("    {l}");
        }
        println!("    latency max {max} ns (virtual) over the run, {misses} misses");
        if misses != 0 {
            return Err(format!("the latency task missed {misses} deadlines while Linux failed and restarted"));
        }
        poweroff(&mut con, bound)
    };
    match steps() {
        Ok(()) => Status::Pass,
        Err(e) => report_console_failure(&con, e),
    }
}

/// Linux's clock events come from the co-kernel ("hauki" clock-event device, ticking: uptime
/// advances across `sleep 1`), its console line is interrupt-driven through the co-kernel's
/// irqchip (IRQ 4 on chip "hauki" with interrupts counted), it left COM2 alone, and
/// `/proc/hauki/status` shows the co-kernel's tasks and latency.
fn guest_devices_are_paravirtual(con: &mut ShellConsole, bound: Duration) -> Result<(), String> {
    let (dev, _) = con.run("cat /sys/devices/system/clockevents/clockevent0/current_device", bound)?;
    if dev.trim() != "hauki" {
        return Err(format!("Linux's clock-event device is {:?}, not the co-kernel's \"hauki\"", dev.trim()));
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
    let (status, _) = con.run("cat /proc/hauki/status", bound)?;
    let latency_row = status.lines().find(|l| l.split_whitespace().next() == Some("latency"));
    let samples = status.lines().find(|l| l.starts_with("latency: period")).is_some();
    if !status.lines().any(|l| l.starts_with("Hauki co-kernel"))
        || latency_row.is_none()
        || !samples
        || !status.contains("events for linux: forwarded")
    {
        return Err(format!("/proc/hauki/status does not show the co-kernel's tasks and latency:\n{status}"));
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
    let ws = Workspace::locate();
    let dir = ctx.dir("linux-loader-refuses-bad-image");
    let _ = std::fs::create_dir_all(&dir);
    // An ELF header that lies: right magic, then garbage.
    let mut garbage = b"\x7fELF\x02\x01\x01".to_vec();
    garbage.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let fake = dir.join("vmlinux-corrupt");
    let initrd = dir.join("initrd-empty");
    if let Err(e) = std::fs::write(&fake, &garbage).and_then(|_| std::fs::write(&initrd, b"")) {
        return Status::Fail(e.to_string());
    }
    let bundle = match crate::linux::build_bundle(&ws, &fake, &initrd, "console=ttyS0", "linux-corrupt.bundle") {
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
        rt_checks(r, false)
    };
    let dir2 = ctx.dir("linux-loader-refuses-bad-image-run");
    let (c1, c2) = Qemu::paths(&dir2);
    let boot =
        Boot::Kernel { elf: elf.to_path_buf(), cmdline: kernel_cmdline("hauki.exit_after_reports=3 hauki.demo=0") };
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

/// No HPET: the TSC must be calibrated against the PIT, and come out plausible.
fn pvh_pit(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let append = exit_after_boot();
    let verify = |r: &Records| {
        let mut e = boot_expects(Some("xapic"), 1);
        e.push(Expect::Eq("tsc_source", json!("pit")));
        e.push(Expect::Eq("hpet", json!(false)));
        expect_record(r, "boot", &e)?;
        let hz = r.first("boot").and_then(|b| b["tsc_hz"].as_u64()).unwrap_or(0);
        if (100_000_000..=10_000_000_000).contains(&hz) {
            Ok(())
        } else {
            Err(format!("PIT-calibrated TSC of {hz} Hz is implausible"))
        }
    };
    run_pvh(
        ctx,
        elf,
        &PvhCase {
            name: "pvh-pit-calibration",
            cpu: "qemu64",
            smp: 1,
            mem_mib: None,
            icount: false,
            machine: "q35,hpet=off",
            append: &append,
            want_status: STATUS_SUCCESS,
            verify: &verify,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line() {
        let mut s = Summary::default();
        s.record("a", Status::Pass, None);
        s.record("b", Status::Fail("x".into()), None);
        assert_eq!(s.line(), "1 passed, 1 failed");
        s.record("c", Status::Skip("old qemu".into()), None);
        assert_eq!(s.line(), "1 passed, 1 failed, 1 skipped");
        assert_eq!(s.counts(), (1, 1, 1));
    }

    #[test]
    fn filters() {
        assert!(selected(&[], "pvh-xapic"));
        assert!(selected(&["pvh".into()], "pvh-xapic"));
        assert!(!selected(&["iso".into()], "pvh-xapic"));
        assert!(selected(&["iso".into(), "xapic".into()], "pvh-xapic"));
    }

    #[test]
    fn system_test_names_unique() {
        for (i, t) in SYSTEM_TESTS.iter().enumerate() {
            assert!(SYSTEM_TESTS[i + 1..].iter().all(|u| u.name != t.name));
        }
    }

    #[test]
    fn boot_record_checks() {
        let good = json!({"event":"boot","schema":1,"apic":"xapic","timer":"lapic-oneshot","tsc_hz":3_000_000_000u64,
            "boot_ns":1234567,"cpus":1,"boot_protocol":"multiboot2"});
        assert!(check(&good, &boot_expects(Some("xapic"), 1)).is_ok());
        assert!(check(&good, &boot_expects(None, 1)).is_ok());
        let e = check(&good, &boot_expects(Some("x2apic"), 2)).unwrap_err();
        assert!(e.contains("`apic`") && e.contains("`cpus`"), "{e}");
        let mut ex = boot_expects(Some("xapic"), 1);
        ex.push(Expect::Eq("firmware", json!("uefi")));
        assert!(check(&good, &ex).unwrap_err().contains("`firmware`: want \"uefi\", got missing"));
    }
}
