//! Linux's faults are Linux's: every way Linux can fail (an oops, lock-ups with its interrupt flag
//! off and on, hung tasks, panics from a process, an interrupt, a corrupted or exhausted stack) ends
//! as it must — the co-kernel reports, restarts Linux, and its real-time tasks miss nothing.

use std::path::Path;

use hauki_abi::cmdline;

use super::linux_guest::{boot_cokernel_with_linux, no_misses, poweroff, report_console_failure};
use super::{Ctx, Status, Test, hard_timeout};
use crate::qemu::cokernel_args;
use crate::telemetry::Records;

pub(super) fn tests() -> Vec<Test> {
    tests![System: linux_faults_are_linux_s]
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
    /// The co-kernel's interrupt entry may find Linux's exhausted stack before Linux's own fault
    /// does (an interrupt arriving at the last frames of the recursion, docs/guest.md): then
    /// Linux cannot report, and the record is `faulted`, vector 8, `cause` `stack-overflow`.
    entry_may_catch: bool,
}

/// Every way the fault test makes Linux fail, in order.
const PROVOKED: &[Provoke] = &[
    // An oops in a process: Linux kills it and carries on (init starts a new shell).
    Provoke {
        what: "EXCEPTION (oops in a process)",
        commands: &["echo EXCEPTION > /sys/kernel/debug/provoke-crash/DIRECT"],
        linux_says: Some("Oops"),
        cokernel_says: None,
        entry_may_catch: false,
    },
    // Spinning with the virtual flag off: only the co-kernel's watchdog can see it.
    Provoke {
        what: "HARDLOCKUP (flag off, process context)",
        commands: &["echo HARDLOCKUP > /sys/kernel/debug/provoke-crash/DIRECT"],
        linux_says: None,
        cokernel_says: Some("stuck"),
        entry_may_catch: false,
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
        entry_may_catch: false,
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
        entry_may_catch: false,
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
        entry_may_catch: false,
    },
    Provoke {
        what: "CORRUPT_STACK (stack protector)",
        commands: &["echo CORRUPT_STACK > /sys/kernel/debug/provoke-crash/DIRECT"],
        linux_says: Some("stack-protector"),
        cokernel_says: Some("panicked"),
        entry_may_catch: false,
    },
    Provoke {
        what: "EXHAUST_STACK (guard page, double fault)",
        commands: &["echo EXHAUST_STACK > /sys/kernel/debug/provoke-crash/DIRECT"],
        linux_says: Some("stack guard page was hit"),
        cokernel_says: Some("panicked"),
        entry_may_catch: true,
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
        entry_may_catch: false,
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
fn linux_faults_are_linux_s(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let args = cokernel_args(&[
        (cmdline::LINUX, &"guest"),
        (cmdline::REPORT_MS, &250),
        (cmdline::APP, &"off"),
        (cmdline::LATENCY_PERIOD_US, &1000),
        (cmdline::LINUX_WATCHDOG_MS, &FAULT_WATCHDOG_MS),
    ]);
    let (mut con, c2) = match boot_cokernel_with_linux(ctx, elf, &args, Some(FAULT_ICOUNT_SHIFT)) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let bound = hard_timeout();
    use super::linux_guest::UP;
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
        println!(
            "    Linux is up under icount shift={FAULT_ICOUNT_SHIFT}; {} failures to provoke, each reported as it ends",
            PROVOKED.len()
        );
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
            let mut detail = String::new();
            let mut outcome = "Linux carries on".to_string();
            if let Some(state) = p.cokernel_says {
                outcome = format!("{state}, restarted");
                // Linux's report comes before it stops: everything printed up to the restarted
                // Linux's banner.
                let said = con.expect(UP, bound).map_err(|e| format!("{}: Linux was not restarted: {e}", p.what))?;
                let recs = failures(&c2);
                let new: Vec<&serde_json::Value> = recs[before.min(recs.len())..].iter().collect();
                let [r] = new[..] else {
                    return Err(format!("{}: want one new linux failure record ({state}), got {new:?}", p.what));
                };
                let caught_by_entry = p.entry_may_catch
                    && r["state"] == "faulted"
                    && r["vector"] == 8
                    && r["cause"] == "stack-overflow"
                    && r["action"] == "restart";
                if caught_by_entry {
                    outcome = "faulted (stack-overflow), restarted".into();
                    detail =
                        ": the co-kernel's interrupt entry found the exhausted stack before Linux's fault did".into();
                } else {
                    if r["state"] != state || r["action"] != "restart" {
                        return Err(format!("{}: the co-kernel says {r}, want state {state}, action restart", p.what));
                    }
                    if let Some(says) = p.linux_says.filter(|s| !said.contains(s)) {
                        return Err(format!(
                            "{}: Linux did not report it ({says:?} not printed before it restarted): {}",
                            p.what,
                            said.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
                        ));
                    }
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
            if p.cokernel_says.is_none()
                && let Some(says) = p.linux_says
            {
                con.expect(says, bound).map_err(|e| format!("{}: Linux did not report it: {e}", p.what))?;
            }
            con.expect("# ", bound)?;
            let (out, _) = con.run("echo alive-again", bound)?;
            if !out.contains("alive-again") {
                return Err(format!("{}: no working shell afterwards: {out:?}", p.what));
            }
            println!("    {} -> {outcome}{detail}", p.what);
        }
        let recs = Records::parse(&std::fs::read_to_string(&c2).unwrap_or_default());
        let want = PROVOKED.iter().filter(|p| p.cokernel_says.is_some()).count() as u64;
        let restarts = recs.events("guest").last().and_then(|g| g["restarts"].as_u64()).unwrap_or(0);
        if restarts != want {
            return Err(format!("{restarts} restarts counted, want {want}"));
        }
        let max = no_misses(&c2, " while Linux failed and restarted")?;
        println!("    latency max {max} ns (virtual) over the run, 0 misses");
        poweroff(&mut con, bound)
    };
    match steps() {
        Ok(()) => Status::Pass,
        Err(e) => report_console_failure(&con, e),
    }
}
