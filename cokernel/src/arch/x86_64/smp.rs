//! Secondary CPUs: found in the MADT and parked with an INIT IPI (wait-for-SIPI), so none is left
//! spinning in firmware code or memory the co-kernel or Linux reuses. The co-kernel and Linux run
//! on the boot CPU only; the parked CPUs stay parked.

use super::acpi::Platform;
use super::{apic, console};

/// What [`park_secondaries`] found, for the boot record.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    /// CPUs the MADT lists as usable (enabled or online-capable), the boot CPU included.
    pub cpus: u32,
    /// Secondary CPUs sent INIT (all usable ones but the boot CPU).
    pub parked: u32,
    /// CPUs the MADT lists as neither enabled nor online-capable (left alone).
    pub disabled: u32,
}

/// Sends INIT to every usable CPU but this one and writes a `cpu` record for each listed CPU
/// that is not the boot CPU.
pub fn park_secondaries(p: &Platform) -> Summary {
    let me = apic::id();
    let mut s = Summary::default();
    for c in &p.cpus {
        if c.apic_id == me {
            s.cpus += 1;
            continue;
        }
        if !(c.enabled || c.online_capable) {
            s.disabled += 1;
            console::record("cpu", |r| {
                r.u64("apic_id", u64::from(c.apic_id)).u64("acpi_uid", u64::from(c.acpi_uid)).str("state", "disabled");
            });
            continue;
        }
        s.cpus += 1;
        apic::send_init(c.apic_id);
        s.parked += 1;
        console::record("cpu", |r| {
            r.u64("apic_id", u64::from(c.apic_id)).u64("acpi_uid", u64::from(c.acpi_uid)).str("state", "parked");
        });
    }
    s
}
