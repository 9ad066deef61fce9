//! The in-kernel KTAP tests (`--features ktest`) under four machines; the icount run makes every
//! timing check deterministic. Each in-kernel result is its own summary entry (`ktest-xapic/<test>`).

use std::path::Path;
use std::time::Instant;

use super::{Ctx, Status, Summary, TAIL, Test, hard_timeout, x2apic_skip_reason};
use crate::ktap;
use crate::qemu::{
    Boot, Com, Qemu, QemuConfig, STATUS_FAILURE, STATUS_SUCCESS, cokernel_args, explain_status, kernel_cmdline,
};

pub(super) fn tests() -> Vec<Test> {
    tests![Ktest: ktest_xapic, ktest_x2apic, ktest_smp2, ktest_icount]
}

fn ktest_xapic(ctx: &Ctx<'_>, elf: &Path, sum: &mut Summary) {
    ktest_run(ctx, sum, elf, "qemu64", 1, false);
}

fn ktest_x2apic(ctx: &Ctx<'_>, elf: &Path, sum: &mut Summary) {
    ktest_run(ctx, sum, elf, "max", 1, false);
}

fn ktest_smp2(ctx: &Ctx<'_>, elf: &Path, sum: &mut Summary) {
    ktest_run(ctx, sum, elf, "max", 2, false);
}

fn ktest_icount(ctx: &Ctx<'_>, elf: &Path, sum: &mut Summary) {
    ktest_run(ctx, sum, elf, "max", 1, true);
}

/// One KTAP run: every result becomes its own summary entry; problems with the run itself (plan, exit
/// status, timeout) add a failing entry under the test's name.
fn ktest_run(ctx: &Ctx<'_>, sum: &mut Summary, elf: &Path, cpu: &str, smp: u32, icount: bool) {
    let name = ctx.name;
    if cpu == "max" && !ctx.tools.has_tcg_x2apic() {
        return sum.record(name, Status::Skip(x2apic_skip_reason(ctx.tools)), None);
    }
    let how = if icount { " -icount shift=0" } else { "" };
    println!("    KTAP under -cpu {cpu} -smp {smp}{how}");
    let dir = ctx.dir();
    let (c1, c2) = Qemu::paths(&dir);
    // Under icount the clock counts instructions: the kernel then judges its timing tests.
    let clock = if icount { cokernel_args(&[(hauki_abi::cmdline::KTEST_CLOCK, &"virtual")]) } else { String::new() };
    let boot = Boot::Kernel { elf: elf.to_path_buf(), cmdline: kernel_cmdline(&clock) };
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
