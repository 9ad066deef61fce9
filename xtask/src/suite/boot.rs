//! Booting: PVH (`-kernel`) on xAPIC, x2APIC and two CPUs, the ISO under BIOS and UEFI, the TSC
//! calibrated against the PIT; and how boot fails: exceptions reported (`fault-report/*`), machines
//! without ACPI, without an APIC, with too little memory.

use std::path::Path;

use hauki_abi::cmdline;
use serde_json::json;

use super::{Ctx, PvhCase, Status, Test, expect_record, hard_timeout, outcome, run_pvh, x2apic_skip_reason};
use crate::qemu::{Boot, Com, Qemu, QemuConfig, STATUS_FAILURE, STATUS_SUCCESS, cokernel_args, fresh_ovmf_vars};
use crate::telemetry::{Expect, Records, is_event};

pub(super) fn tests() -> Vec<Test> {
    tests![System:
        pvh_xapic,
        pvh_x2apic,
        pvh_smp2,
        iso_bios,
        iso_uefi,
        fault_report::pf,
        fault_report::ud,
        fault_report::stack,
        no_acpi,
        no_apic,
        low_memory,
        pvh_pit_calibration,
    ]
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
    cokernel_args(&[(cmdline::EXIT_AFTER_BOOT, &1)])
}

fn pvh_xapic(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let append = exit_after_boot();
    let verify = |r: &Records| expect_record(r, "boot", &boot_expects(Some("xapic"), 1));
    run_pvh(
        ctx,
        elf,
        &PvhCase {
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

/// Two CPUs in xAPIC mode (the in-kernel tests' `ktest-smp2` run covers x2APIC): the secondary
/// is started into the co-kernel before the boot record, and is the real-time-only CPU.
fn pvh_smp2(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let append = exit_after_boot();
    let verify = |r: &Records| {
        let mut want = boot_expects(Some("xapic"), 2);
        want.push(Expect::Eq("cpus_online", json!(2)));
        want.push(Expect::Eq("cpus_rt_only", json!(1)));
        want.push(Expect::Eq("cpus_parked", json!(0)));
        expect_record(r, "boot", &want)?;
        let online: Vec<_> = r.events(hauki_abi::telemetry::EVENT_CPU).filter(|c| c["state"] == "online").collect();
        match online.as_slice() {
            [c] if c["cpu"] == 1 && c["apic_id"] == 1 => Ok(()),
            _ => Err(format!(
                "want one {{\"event\":\"cpu\",\"cpu\":1,\"apic_id\":1,\"state\":\"online\"}} record, got {online:?}"
            )),
        }
    };
    run_pvh(
        ctx,
        elf,
        &PvhCase {
            cpu: "qemu64",
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
fn run_iso(ctx: &Ctx<'_>, iso: &Path, uefi: bool, expects: &[Expect]) -> Status {
    let dir = ctx.dir();
    let (c1, c2) = Qemu::paths(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return Status::Fail(e.to_string());
    }
    // The writable OVMF variable store lives next to the test's logs (outside `dir`, which spawn empties).
    let uefi = if uefi {
        match fresh_ovmf_vars(&ctx.tools.ovmf, &ctx.tests_dir.join(format!("{}.OVMF_VARS.fd", ctx.name))) {
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
    println!("    waiting for the co-kernel's linux record (COM2), then Linux's shell (COM1)");
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
    run_iso(ctx, iso, false, &ex)
}

fn iso_uefi(ctx: &Ctx<'_>, _elf: &Path, iso: &Path) -> Status {
    let mut ex = boot_expects(Some("xapic"), 1);
    ex.push(Expect::Eq("boot_protocol", json!("multiboot2")));
    ex.push(Expect::Eq("firmware", json!("uefi")));
    run_iso(ctx, iso, true, &ex)
}

/// An exception injected after boot (`hauki.inject`) must be reported on COM2 with its vector and
/// registers, and end the run with the fatal exit status.
mod fault_report {
    use std::path::Path;

    use super::{Ctx, PvhCase, Status, cmdline, cokernel_args, run_pvh};
    use crate::qemu::STATUS_FAILURE;
    use crate::telemetry::{Expect, Records, check};

    const PF_FIELDS: &[Expect] =
        &[Expect::Present("rip"), Expect::Present("error_code"), Expect::Present("cr2"), Expect::Present("regs")];
    const UD_FIELDS: &[Expect] = &[Expect::Present("rip"), Expect::Present("regs")];
    const STACK_FIELDS: &[Expect] = &[Expect::Present("rip"), Expect::Present("regs")];

    pub(super) fn pf(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
        fault(ctx, elf, "pf", PF_FIELDS, &[14])
    }

    pub(super) fn ud(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
        fault(ctx, elf, "ud", UD_FIELDS, &[6])
    }

    pub(super) fn stack(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
        fault(ctx, elf, "stack", STACK_FIELDS, &[14, 8])
    }

    /// Inject an exception; want an exception record satisfying `expects` and the fatal exit status.
    fn fault(ctx: &Ctx<'_>, elf: &Path, inject: &str, expects: &'static [Expect], vectors: &'static [u64]) -> Status {
        let append = cokernel_args(&[(cmdline::INJECT, &inject)]);
        let verify = move |r: &Records| {
            let ex: Vec<_> = r.events(hauki_abi::telemetry::EVENT_EXCEPTION).collect();
            let Some(rec) = ex.iter().find(|e| e["vector"].as_u64().is_some_and(|v| vectors.contains(&v))) else {
                return Err(match ex.first() {
                    None => format!("no {{\"event\":\"exception\"}} record on COM2 (want vector {vectors:?})"),
                    Some(e) => format!("exception record with vector {} but want {vectors:?}: {e}", e["vector"]),
                });
            };
            check(rec, expects)?;
            // One CPU: the boot CPU's index is 0 whatever its APIC ID.
            match (rec["cpu"].as_u64(), rec["apic_id"].as_u64()) {
                (Some(0), Some(_)) => Ok(()),
                _ => Err(format!("want \"cpu\":0 (the boot CPU's index) and an \"apic_id\": {rec}")),
            }
        };
        let st = run_pvh(
            ctx,
            elf,
            &PvhCase {
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
}

/// Want a fatal record with `reason` and the fatal exit status. `exit_after_boot` is set so that a boot
/// that wrongly succeeds ends at once (status 33) instead of idling until the safety bound.
fn fatal(ctx: &Ctx<'_>, elf: &Path, cpu: &str, machine: &str, reason: &'static str) -> Status {
    let verify =
        |r: &Records| expect_record(r, hauki_abi::telemetry::EVENT_FATAL, &[Expect::Eq("reason", json!(reason))]);
    let append = exit_after_boot();
    run_pvh(
        ctx,
        elf,
        &PvhCase {
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
    fatal(ctx, elf, "qemu64", "microvm,acpi=off", "no-rsdp")
}

fn no_apic(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    fatal(ctx, elf, "qemu64,-apic", "q35", "no-apic")
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

/// No HPET: the TSC must be calibrated against the PIT, and come out plausible.
fn pvh_pit_calibration(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
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
    use crate::telemetry::check;

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

    #[test]
    fn exit_after_boot_is_the_abi_key() {
        assert_eq!(exit_after_boot(), "hauki.exit_after_boot=1");
    }
}
