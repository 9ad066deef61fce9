//! `cargo xtask test`: host steps, in-kernel KTAP tests and system tests under QEMU, ending with
//! `N passed, M failed` (`, K skipped` when something was skipped; a skip never counts as a pass).
//!
//! One file per area; each registers its tests with [`tests!`], which names a test after its
//! function (`linux_bare_boot` is shown as `linux-bare-boot`, `fault_report::pf` as
//! `fault-report/pf`), so a test's name is written once. `cargo xtask test FILTER...` runs the tests
//! whose name contains a FILTER, or whose area is one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::build::{self, Artifacts, KTEST_ELF};
use crate::deps::{QEMU_X2APIC_MAJOR, Tools};
use crate::qemu::{Boot, Com, Qemu, QemuConfig, explain_status, kernel_cmdline};
use crate::telemetry::{Expect, Records, check};
use crate::util::Workspace;

/// Registers test functions of one [`Run`] kind: `tests![System: pvh_xapic, fault_report::pf]`.
/// The displayed name is the function's path with `_` shown as `-` and `::` as `/`; the area is the
/// module that registers it.
macro_rules! tests {
    ($kind:ident: $($($seg:ident)::+),+ $(,)?) => {
        vec![$($crate::suite::Test::new(
            module_path!(),
            &[$(stringify!($seg)),+],
            $crate::suite::Run::$kind($($seg)::+),
        )),+]
    };
}

mod apps;
mod boot;
mod host;
mod ktest;
mod linux_checks;
mod linux_compare;
mod linux_disk;
mod linux_distro;
mod linux_faults;
mod linux_guest;
mod linux_lines;
mod linux_net;
mod linux_smp;
pub(crate) use linux_compare::REFERENCE_CMDLINE;
pub(crate) use linux_guest::UP as LINUX_UP;
pub(crate) use linux_guest::{
    LinuxBoot, at_prompt, boot_linux, boot_with_linux_devices, poweroff, quiet_console, report_console_failure, sh,
};
pub(crate) use linux_net::{blob, fetch, guest_sha, hex, serve_once, wait_for_dhcp};
pub(crate) use linux_smp::ICOUNT_PACE_US;
mod rt;

pub use linux_guest::stress_run;

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

/// What a test runs, by what it needs built first.
pub enum Run {
    /// A step on the host (cargo, checks of committed files): nothing built for it.
    Host(fn(&Ctx<'_>) -> Status),
    /// A KTAP run of the co-kernel built with `--features ktest` (its ELF): it records each in-kernel
    /// result itself, and a failing entry under its own name when the run itself went wrong.
    Ktest(fn(&Ctx<'_>, &Path, &mut Summary)),
    /// A system test of the release co-kernel (its ELF) and the boot image (the ISO).
    System(fn(&Ctx<'_>, &Path, &Path) -> Status),
}

/// A registered test.
pub struct Test {
    /// As shown and matched by filters: the function's path, `_` as `-`, `::` as `/`.
    pub name: String,
    /// The module that registers it, `_` as `-` (`host`, `boot`, `linux-guest`, ...).
    pub area: String,
    /// What it runs.
    pub run: Run,
}

impl Test {
    /// A test registered from `module` (its `module_path!()`) as the function at `path`.
    pub fn new(module: &str, path: &[&str], run: Run) -> Test {
        let name = path.iter().map(|s| s.replace('_', "-")).collect::<Vec<_>>().join("/");
        let area = module.rsplit("::").next().unwrap_or(module).replace('_', "-");
        Test { name, area, run }
    }
}

/// Every test, in the order they run: host steps, KTAP runs, then the system tests area by area.
fn registry() -> Vec<Test> {
    [
        host::tests(),
        ktest::tests(),
        boot::tests(),
        rt::tests(),
        apps::tests(),
        linux_guest::tests(),
        linux_net::tests(),
        linux_disk::tests(),
        linux_lines::tests(),
        linux_distro::tests(),
        linux_faults::tests(),
        linux_smp::tests(),
        linux_checks::tests(),
        linux_compare::tests(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Is `t` selected by the command-line filters (none = everything): its name contains one, or its
/// area is one?
fn selected(filters: &[String], t: &Test) -> bool {
    filters.is_empty() || filters.iter().any(|f| t.name.contains(f.as_str()) || t.area == *f)
}

/// What a running test can reach.
pub struct Ctx<'a> {
    pub ws: &'a Workspace,
    pub tools: &'a Tools,
    tests_dir: PathBuf,
    /// The running test's name.
    pub name: &'a str,
}

impl Ctx<'_> {
    /// The running test's folder for its QEMU files: `target/hauki/tests/<name>`.
    fn dir(&self) -> PathBuf {
        self.tests_dir.join(self.name)
    }

    /// A folder for the files a test makes before QEMU starts (disk images): `<name>-files`,
    /// emptied and created (QEMU's own folder, [`Ctx::dir`], is emptied when QEMU starts).
    fn files_dir(&self) -> Result<PathBuf, String> {
        let d = self.dir_with("files");
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        Ok(d)
    }

    /// Another folder of the running test, for a second QEMU run: `target/hauki/tests/<name>-<what>`.
    fn dir_with(&self, what: &str) -> PathBuf {
        self.tests_dir.join(format!("{}-{what}", self.name))
    }
}

/// Something built once, when the first test that needs it runs.
struct Lazy<T>(Option<Result<T, String>>);

impl<T> Lazy<T> {
    fn get(&mut self, build: impl FnOnce() -> Result<T, String>) -> &Result<T, String> {
        self.0.get_or_insert_with(build)
    }
}

/// Run everything (or the tests matching `filters`) and return the exit code.
pub fn run_all(ws: &Workspace, tools: &Tools, filters: &[String]) -> ExitCode {
    println!("{}", tools.describe());
    let tests_dir = ws.hauki_dir().join("tests");
    let all = registry();
    let chosen: Vec<&Test> = all.iter().filter(|t| selected(filters, t)).collect();
    if chosen.is_empty() {
        let mut areas: Vec<&str> = all.iter().map(|t| t.area.as_str()).collect();
        areas.dedup();
        println!("no test matches the filter(s) {filters:?}; the areas are {}; the tests:", areas.join(", "));
        for t in &all {
            println!("  {:<14} {}", t.area, t.name);
        }
        return ExitCode::FAILURE;
    }
    let mut sum = Summary::default();
    // The kernels only the last Linux tests boot are built beside the system tests before them.
    let mut background = BackgroundKernels::new(ws, &chosen);
    let mut ktest_elf = Lazy(None);
    let mut artifacts: Lazy<Artifacts> = Lazy(None);
    let not_built =
        |e: &String| Status::Fail(format!("not run: the build failed ({})", e.lines().next().unwrap_or("")));
    for t in chosen {
        let ctx = Ctx { ws, tools, tests_dir: tests_dir.clone(), name: &t.name };
        match t.run {
            Run::Host(f) => {
                println!("==> {}", t.name);
                let start = Instant::now();
                let status = f(&ctx);
                sum.record(&t.name, status, Some(start.elapsed()));
            }
            Run::Ktest(f) => match ktest_elf.get(|| build::build_kernel(ws, &["ktest"], KTEST_ELF)) {
                Err(e) => sum.record(&t.name, not_built(e), None),
                Ok(elf) => {
                    println!("==> {}", t.name);
                    f(&ctx, elf, &mut sum);
                }
            },
            // The time shown is the test's own, not the build's that the first one waits for.
            Run::System(f) => match artifacts.get(|| build::build_all(ws)) {
                Err(e) => sum.record(&t.name, not_built(e), None),
                Ok(a) => {
                    // From the first system test on (the image holds the default kernel by then).
                    background.start(ws);
                    println!("==> {}", t.name);
                    let start = Instant::now();
                    let status = f(&ctx, &a.elf, &a.iso);
                    sum.record(&t.name, status, Some(start.elapsed()));
                }
            },
        }
    }
    background.wait();
    sum.finish()
}

/// The kernels only some Linux tests boot (the test, the flavour, `cargo xtask linux`'s flag).
const BACKGROUND_KERNELS: [(&str, crate::linux::Flavour, &str); 2] = [
    ("linux-debug-lockdep", crate::linux::Flavour::Debug, "--debug"),
    ("bench-compare-runs-hauki-and-preempt-rt", crate::linux::Flavour::PreemptRt, "--preempt-rt"),
];

/// Those kernels, built in the background (a second `cargo xtask linux --debug …`, niced, its
/// output in `target/hauki/linux-background-build.log`) while the system tests before theirs run:
/// on two cores the QEMU tests use one, and a cold run saves most of each build's quarter of an
/// hour. A test takes its kernel through the build lock (it waits for the build, or builds again
/// itself and fails with the build's error).
struct BackgroundKernels {
    flags: Vec<&'static str>,
    child: Option<std::process::Child>,
}

impl BackgroundKernels {
    fn new(ws: &Workspace, chosen: &[&Test]) -> BackgroundKernels {
        let theirs = |t: &Test| BACKGROUND_KERNELS.iter().any(|(name, _, _)| t.name == *name);
        // Worth it only with other system tests to overlap.
        let others = chosen.iter().filter(|t| matches!(t.run, Run::System(_)) && !theirs(t)).count();
        let mut flags: Vec<&'static str> = Vec::new();
        for (name, f, flag) in BACKGROUND_KERNELS {
            let wanted = others > 0 && chosen.iter().any(|t| t.name == name) && !crate::linux::is_cached(ws, f);
            if wanted && !flags.contains(&flag) {
                flags.push(flag);
            }
        }
        BackgroundKernels { flags, child: None }
    }

    /// Once: the default kernel first (in the foreground, as the tests would), then the others.
    fn start(&mut self, ws: &Workspace) {
        let flags = std::mem::take(&mut self.flags);
        if flags.is_empty() {
            return;
        }
        if crate::linux::build_kernel(ws).is_err() {
            return; // the test reports it
        }
        let log = ws.hauki_dir().join("linux-background-build.log");
        let spawn = || -> std::io::Result<std::process::Child> {
            let out = std::fs::File::create(&log)?;
            std::process::Command::new("nice")
                .args(["-n", "10"])
                .arg(std::env::current_exe()?)
                .arg("linux")
                .args(&flags)
                .current_dir(&ws.root)
                .stdin(std::process::Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
        };
        match spawn() {
            Ok(c) => {
                println!(
                    "==> building `cargo xtask linux {}` in the background meanwhile (log: {})",
                    flags.join(" "),
                    ws.rel(&log)
                );
                self.child = Some(c);
            }
            Err(e) => println!("==> the background kernel build did not start ({e}); the tests build them"),
        }
    }

    fn wait(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}

fn x2apic_skip_reason(tools: &Tools) -> String {
    let (a, b, c) = tools.qemu_version;
    format!("QEMU {a}.{b}.{c} < {QEMU_X2APIC_MAJOR} has no x2APIC under TCG; install QEMU >= {QEMU_X2APIC_MAJOR}")
}

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

/// Runs a [`PvhCase`] in the running test's folder.
fn run_pvh(ctx: &Ctx<'_>, elf: &Path, c: &PvhCase<'_>) -> Status {
    let dir = ctx.dir();
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

    fn host_test(module: &str, path: &[&str]) -> Test {
        Test::new(module, path, Run::Host(|_| Status::Pass))
    }

    #[test]
    fn names_come_from_function_paths() {
        let t = host_test("xtask::suite::linux_faults", &["linux_faults_are_linux_s"]);
        assert_eq!((t.name.as_str(), t.area.as_str()), ("linux-faults-are-linux-s", "linux-faults"));
        let t = host_test("xtask::suite::boot", &["fault_report", "pf"]);
        assert_eq!((t.name.as_str(), t.area.as_str()), ("fault-report/pf", "boot"));
    }

    #[test]
    fn filters_match_names_by_substring_and_areas_by_name() {
        let t = host_test("xtask::suite::boot", &["pvh_xapic"]);
        assert!(selected(&[], &t));
        assert!(selected(&["pvh".into()], &t));
        assert!(!selected(&["iso".into()], &t));
        assert!(selected(&["iso".into(), "xapic".into()], &t));
        assert!(selected(&["boot".into()], &t));
        assert!(!selected(&["boo".into()], &t), "an area is matched whole");
    }

    #[test]
    fn names_are_unique_and_macro_registered() {
        let all = registry();
        for (i, t) in all.iter().enumerate() {
            assert!(all[i + 1..].iter().all(|u| u.name != t.name), "duplicate {}", t.name);
            assert!(!t.name.contains('_') && !t.area.contains('_'), "{} in {}", t.name, t.area);
        }
        // What the runner does per kind: host steps first, then KTAP, then system tests.
        let rank = |t: &Test| match t.run {
            Run::Host(_) => 0,
            Run::Ktest(_) => 1,
            Run::System(_) => 2,
        };
        assert!(all.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])));
    }

    #[test]
    fn the_usage_names_every_area() {
        let usage = crate::COMMANDS.iter().find(|c| c.name == "test").map(|c| c.usage).unwrap_or_default();
        for t in registry() {
            assert!(usage.contains(&format!(" {},", t.area)) || usage.contains(&format!(" {};", t.area)), "{}", t.area);
        }
    }

    /// CI logs, notes and docs name these tests: they keep their names.
    #[test]
    fn known_names_are_kept() {
        let all = registry();
        for name in [
            "unit/cokernel",
            "unit/hauki-abi",
            "unit/xtask",
            "unit/haukictl",
            "fuzz-smoke",
            "abi-header",
            "ktest-xapic",
            "ktest-x2apic",
            "ktest-smp2",
            "ktest-icount",
            "pvh-xapic",
            "pvh-x2apic",
            "pvh-smp2",
            "iso-bios",
            "iso-uefi",
            "fault-report/pf",
            "fault-report/ud",
            "fault-report/stack",
            "no-acpi",
            "no-apic",
            "low-memory",
            "rt-latency-x2apic",
            "rt-latency-xapic",
            "rt-tcg-runs",
            "linux-bare-boot",
            "linux-loader-handover",
            "linux-loader-refuses-bad-image",
            "linux-guest-beside-rt",
            "linux-stress-battery",
            "linux-faults-are-linux-s",
            "linux-selftests-x86",
            "linux-debug-lockdep",
            "pvh-pit-calibration",
        ] {
            assert!(all.iter().any(|t| t.name == name), "no test named {name}");
        }
    }
}
