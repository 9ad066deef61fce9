//! Applications and channels: an application built and booted by name, refused at boot when it
//! asks for what the image cannot give, and its channels as the co-kernel reports them.

use std::path::{Path, PathBuf};

use hauki_abi::cmdline;
use serde_json::json;

use super::{Ctx, PvhCase, Status, Test, expect_record, run_pvh};
use crate::qemu::{STATUS_SUCCESS, cokernel_args};
use crate::telemetry::{Expect, Records};
use crate::util::Workspace;

pub(super) fn tests() -> Vec<Test> {
    tests![System: app_built_and_booted_by_name, app_refused_when_its_channels_do_not_fit]
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
