//! `cargo xtask bench --compare` (issue 13) run short, so that the comparison cannot rot: the
//! unpatched PREEMPT_RT kernel boots, cyclictest runs in it, and everything the benchmark writes
//! is checked. Stock Linux, the third system of the bench, is left out here: its run is the
//! PREEMPT_RT one with another kernel, and its build would add eight minutes to a cold CI run.

use std::path::Path;

use super::{Ctx, Status, Test};

pub(super) fn tests() -> Vec<Test> {
    tests![System: bench_compare_runs_hauki_and_preempt_rt]
}

/// What every reference kernel boots with besides the usual: the TSC trusted (the emulator's
/// would otherwise be judged unstable and the clocksource changed mid-run).
pub const REFERENCE_CMDLINE: &str = "tsc=reliable";

/// Virtual seconds of load per system in the test (`bench --compare --quick` runs 10).
const COMPARE_TEST_SECS: u64 = 3;

/// `cargo xtask bench --compare`, short, with Hauki and PREEMPT_RT (not stock Linux): each boots
/// under icount and runs the load
/// (the battery, hackbench, the network flood both ways) with cyclictest for 3 virtual seconds;
/// the co-kernel's fine histograms and cyclictest's are read; Linux's throughput workload runs
/// under the co-kernel and bare; the plot is a complete SVG with a curve per system and the JSON
/// holds the figures the issue names. Hauki's latency task misses nothing.
fn bench_compare_runs_hauki_and_preempt_rt(ctx: &Ctx<'_>, _elf: &Path, _iso: &Path) -> Status {
    use crate::bench_compare::{Options, System, check_svg, run};
    let dir = ctx.dir();
    let given = dir.join("given.json");
    let opts = Options {
        secs: COMPARE_TEST_SECS,
        work_scale: 1,
        out: dir.join("compare"),
        json: Some(given.clone()),
        docs: false,
        command: format!("cargo xtask bench --compare --secs {COMPARE_TEST_SECS} (system test, without stock Linux)"),
        systems: &[System::Hauki, System::PreemptRt],
    };
    let check = || -> Result<(), String> {
        let r = run(ctx.ws, ctx.tools.qemu_version, &opts)?;
        for run in &r.runs {
            let want = (COMPARE_TEST_SECS - 1) * 10_000;
            if run.hist.samples() < want {
                return Err(format!("{}: {} samples, want at least {want}", run.system.label(), run.hist.samples()));
            }
            if run.flood_bytes.0 == 0 || run.flood_bytes.1 == 0 {
                return Err(format!(
                    "{}: the network flood moved {:?} bytes (to, from Linux)",
                    run.system.label(),
                    run.flood_bytes
                ));
            }
            if (run.system == System::PreemptRt) != run.uname.contains("PREEMPT_RT") {
                return Err(format!("{}: uname -v says {:?}", run.system.label(), run.uname));
            }
        }
        let hauki = r.runs.iter().find(|x| x.system == System::Hauki).ok_or("no Hauki run")?;
        if hauki.misses != 0 {
            return Err(format!("Hauki's latency task missed {} deadlines", hauki.misses));
        }
        let svg = std::fs::read_to_string(opts.out.join("latency.svg")).map_err(|e| format!("the plot: {e}"))?;
        check_svg(&svg, 2).map_err(|e| format!("the plot: {e}"))?;
        let doc: serde_json::Value = std::fs::read_to_string(&given)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
            .map_err(|e| format!("--json {}: {e}", given.display()))?;
        if r.runs.len() != 2 || !doc["stock"].is_null() {
            return Err(format!("{} runs and stock {}: want Hauki and PREEMPT_RT only", r.runs.len(), doc["stock"]));
        }
        for k in ["hauki", "preempt_rt"] {
            for f in ["max_ns", "p99_ns", "samples"] {
                if !doc[k][f].is_u64() {
                    return Err(format!("--json has no number {k}.{f}: {}", doc[k]));
                }
            }
        }
        let ratio = doc["linux_throughput_ratio"].as_f64().unwrap_or(0.0);
        if !(0.5..=1.5).contains(&ratio) {
            return Err(format!("linux_throughput_ratio {ratio} is not a ratio of two runs of the same work"));
        }
        for line in crate::bench_compare::table(&r).lines() {
            println!("    {line}");
        }
        Ok(())
    };
    match check() {
        Ok(()) => Status::Pass,
        Err(e) => Status::Fail(e),
    }
}
