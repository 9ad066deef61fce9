//! The references Hauki's latency is compared with (issue 13's `bench --compare`, in progress):
//! Linux 6.12 from the same source, without the patch series, with PREEMPT_RT, runs Debian's
//! cyclictest under deterministic time, and its histogram is read.

use std::path::Path;

use super::linux_guest::{at_prompt, poweroff, report_console_failure, sh};
use super::{Ctx, Status, Test, hard_timeout};
use crate::console::ShellConsole;
use crate::linux::Flavour;
use crate::qemu::{Boot, Qemu, QemuConfig};

pub(super) fn tests() -> Vec<Test> {
    tests![System: preempt_rt_kernel_runs_cyclictest]
}

/// What every reference kernel boots with besides the usual: the TSC trusted (the emulator's
/// would otherwise be judged unstable and the clocksource changed mid-run).
pub const REFERENCE_CMDLINE: &str = "tsc=reliable";

/// Seconds of cyclictest in the test (`cargo xtask bench --compare` runs longer).
const CYCLICTEST_SECS: u64 = 2;

/// The unpatched PREEMPT_RT kernel boots bare under icount with the rt-tests initramfs; `uname -v`
/// says PREEMPT_RT; cyclictest (`-m --policy=fifo -p99 -i100 -t1 -h 1000`, the latency task's
/// 100 µs period) runs for 2 virtual seconds beside a hackbench loop, and its histogram is read:
/// a sample per period, nothing lost.
fn preempt_rt_kernel_runs_cyclictest(ctx: &Ctx<'_>, _elf: &Path, _iso: &Path) -> Status {
    let built = crate::linux::build_flavour(ctx.ws, Flavour::PreemptRt)
        .and_then(|v| crate::linux::build_rt_tests_initramfs(ctx.ws).map(|i| (v, i)));
    let (vmlinux, initrd) = match built {
        Ok(x) => x,
        Err(e) => return Status::Fail(format!("the PREEMPT_RT kernel or its initramfs does not build: {e}")),
    };
    let dir = ctx.dir();
    let (c1, c2) = Qemu::paths(&dir);
    let cmdline = format!("{} {REFERENCE_CMDLINE}", crate::linux::DEFAULT_CMDLINE);
    let mut cfg = QemuConfig::test(Boot::Linux { vmlinux, initrd, cmdline }, "max", &c1, &c2);
    cfg.icount = true;
    let mut con = match ShellConsole::spawn(&dir, &cfg) {
        Ok(c) => c,
        Err(e) => return Status::Fail(e),
    };
    let bound = hard_timeout();
    let mut run = || -> Result<(), String> {
        at_prompt(&mut con, bound)?;
        let version = sh(&mut con, "uname -v; cat /sys/devices/system/clocksource/clocksource0/current_clocksource")?;
        if !version.contains("PREEMPT_RT") {
            return Err(format!("uname -v does not say PREEMPT_RT: {version:?}"));
        }
        let out = sh(
            &mut con,
            &format!(
                "mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm && \
                 (while :; do hackbench -g 2 -l 20 >/dev/null 2>&1; done) & l=$!; \
                 cyclictest -m --policy=fifo -p99 -i100 -t1 -h 1000 -q -D {CYCLICTEST_SECS}; s=$?; kill $l; [ $s = 0 ]"
            ),
        )?;
        let h = crate::compare::parse_cyclictest(&out)?;
        let want = CYCLICTEST_SECS * 10_000;
        if h.samples() + h.samples() / 100 < want || h.samples() > want + 1 {
            return Err(format!(
                "cyclictest took {} samples in {CYCLICTEST_SECS} s at 100 µs, want about {want}",
                h.samples()
            ));
        }
        let p = |q| h.percentile_us(q).map_or("beyond the histogram".to_string(), |v| format!("{v} µs"));
        println!(
            "    PREEMPT_RT, {}: cyclictest {} samples, min {} µs, avg {} µs, p99 {}, max {} µs (virtual time, under a hackbench loop)",
            version.lines().last().unwrap_or("?").trim(),
            h.samples(),
            h.min_us,
            h.avg_us,
            p(0.99),
            h.max_us
        );
        poweroff(&mut con, bound)
    };
    match run() {
        Ok(()) => Status::Pass,
        Err(e) => report_console_failure(&con, e),
    }
}
