//! The co-kernel alone with its real-time tasks: deadlines under deterministic virtual time (icount)
//! on xAPIC and x2APIC, and the tasks running and reporting under plain TCG.

use std::path::Path;

use hauki_abi::cmdline;

use super::{Ctx, PvhCase, Status, Test, run_pvh, x2apic_skip_reason};
use crate::qemu::{STATUS_SUCCESS, cokernel_args};
use crate::telemetry::{Expect, Records, check};

pub(super) fn tests() -> Vec<Test> {
    tests![System: rt_latency_x2apic, rt_latency_xapic, rt_tcg_runs]
}

/// The co-kernel alone with its built-in tasks, for 3 reporting periods under deterministic
/// virtual time: latency records with samples and zero deadline misses, every task without a
/// miss, the control loop tracking its setpoint, the phase engine reporting.
pub(super) fn rt_checks(r: &Records, want_demo: bool) -> Result<(), String> {
    let lat: Vec<&serde_json::Value> = r.events("latency").collect();
    if lat.len() < 3 {
        return Err(format!("want 3 latency records, got {}", lat.len()));
    }
    for (i, l) in lat.iter().enumerate() {
        check(
            l,
            &[
                Expect::Eq("task", serde_json::json!("latency")),
                Expect::Positive("samples"),
                Expect::Eq("misses", serde_json::json!(0)),
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
    // Each window's fine histogram (`latency_hist`) holds the same samples as its record.
    // With several CPUs, each CPU's records among themselves.
    let all: Vec<&serde_json::Value> = r.records.iter().collect();
    let cpus: std::collections::BTreeSet<u64> = lat.iter().map(|l| crate::compare::record_cpu(l)).collect();
    for cpu in cpus {
        let mine: Vec<&&serde_json::Value> = lat.iter().filter(|l| crate::compare::record_cpu(l) == cpu).collect();
        let (fine, _) = crate::compare::cokernel_histogram_of(&all, cpu, 0, mine.len())?;
        if fine.max_ns != mine.iter().filter_map(|l| l["max_ns"].as_u64()).max().unwrap_or(0) {
            return Err(format!(
                "CPU {cpu}: the fine histograms' worst case {} ns is not the latency records'",
                fine.max_ns
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

fn rt_latency(ctx: &Ctx<'_>, elf: &Path, cpu: &str, append: &str, demo: bool) -> Status {
    let verify = |r: &Records| rt_checks(r, demo);
    run_pvh(
        ctx,
        elf,
        &PvhCase {
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
    rt_latency(ctx, elf, "max", &cokernel_args(&[(cmdline::EXIT_AFTER_REPORTS, &3)]), true)
}

fn rt_latency_xapic(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let append = cokernel_args(&[(cmdline::EXIT_AFTER_REPORTS, &3), (cmdline::APP, &"off")]);
    rt_latency(ctx, elf, "qemu64", &append, false)
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
            cpu: "qemu64",
            smp: 1,
            mem_mib: None,
            icount: false,
            machine: "q35",
            append: &cokernel_args(&[(cmdline::EXIT_AFTER_REPORTS, &2)]),
            want_status: STATUS_SUCCESS,
            verify: &verify,
        },
    )
}
