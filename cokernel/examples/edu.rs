//! A real-time task that owns a PCI device: QEMU's `edu` device (`-device edu`, 1234:11e8),
//! driven interrupt-driven while Linux runs, which never sees it (`lspci` does not list it).
//!
//! Every millisecond the `edu` task asks the device for a factorial with "interrupt when done";
//! the device's MSI wakes `edu-irq`, which acknowledges it, checks the result against its own
//! arithmetic and measures the time from the request to its own wake-up. The `edu` telemetry
//! record reports requests, completions, wrong results and that latency (virtual time under
//! `-icount`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod edu {
    use cokernel::app::{AppError, Boot};
    use cokernel::tasks::api::{self, Event, PciDevice, Periodic, Shared};

    cokernel::app! {
        about: "a real-time task drives QEMU's edu PCI device by its MSI; Linux never sees it (run with -device edu)",
        start: start,
        report: report,
    }

    const VENDOR: u16 = 0x1234;
    const DEVICE: u16 = 0x11e8;
    const PORT: u16 = 11;
    // Registers of BAR 0 (QEMU docs/specs/edu.rst).
    const IDENT: u64 = 0x00;
    const LIVENESS: u64 = 0x04;
    const FACTORIAL: u64 = 0x08;
    const STATUS: u64 = 0x20;
    const IRQ_STATUS: u64 = 0x24;
    const IRQ_ACK: u64 = 0x64;
    const STATUS_COMPUTING: u32 = 0x01;
    const STATUS_IRQ_WHEN_DONE: u32 = 0x80;
    const IRQ_FACTORIAL: u32 = 0x01;

    #[derive(Clone, Copy, Debug, Default)]
    struct Stats {
        requests: u64,
        completions: u64,
        wrong: u64,
        busy: u64,
        spurious: u64,
        min_ns: u64,
        max_ns: u64,
        sum_ns: u64,
        /// The request in flight: its argument and when it was made (TSC; 0: none).
        pending_n: u32,
        pending_at: u64,
    }

    static STATS: Shared<Stats> = Shared::new(Stats {
        requests: 0,
        completions: 0,
        wrong: 0,
        busy: 0,
        spurious: 0,
        min_ns: u64::MAX,
        max_ns: 0,
        sum_ns: 0,
        pending_n: 0,
        pending_at: 0,
    });
    static DEV: Shared<Option<PciDevice>> = Shared::new(None);

    fn start(_: &Boot<'_>) -> Result<(), AppError> {
        let dev = api::claim_pci(VENDOR, DEVICE, PORT)?;
        if dev.read32(IDENT) & 0xff != 0xed {
            return Err(AppError::Refused("the device at 1234:11e8 does not identify as edu"));
        }
        dev.write32(LIVENESS, 0x1234_5678);
        if dev.read32(LIVENESS) != !0x1234_5678 {
            return Err(AppError::Refused("the edu device failed its liveness check"));
        }
        DEV.with(|d| *d = Some(dev));
        Event::new("edu-irq", PORT).priority(190).spawn(on_irq)?;
        Periodic::new("edu").priority(170).period_us(1000).spawn(request)?;
        Ok(())
    }

    fn factorial(n: u32) -> u32 {
        (1..=n).fold(1u32, |a, k| a.wrapping_mul(k))
    }

    fn with_dev<R>(f: impl FnOnce(&PciDevice) -> R) -> Option<R> {
        DEV.with(|d| d.as_ref().map(f))
    }

    fn request(_: usize) -> ! {
        let mut n: u32 = 1;
        loop {
            api::wait_next_period();
            let busy = STATS.with(|s| s.pending_at != 0)
                || with_dev(|d| d.read32(STATUS) & STATUS_COMPUTING != 0).unwrap_or(true);
            if busy {
                STATS.with(|s| s.busy += 1);
                continue;
            }
            n = n % 12 + 1;
            STATS.with(|s| {
                s.requests += 1;
                s.pending_n = n;
                s.pending_at = api::now_tsc();
            });
            with_dev(|d| {
                d.write32(STATUS, STATUS_IRQ_WHEN_DONE);
                d.write32(FACTORIAL, n);
            });
        }
    }

    fn on_irq(_: usize) -> ! {
        loop {
            api::wait_event();
            let now = api::now_tsc();
            let Some((irq, result)) = with_dev(|d| {
                let irq = d.read32(IRQ_STATUS);
                if irq != 0 {
                    d.write32(IRQ_ACK, irq);
                }
                (irq, d.read32(FACTORIAL))
            }) else {
                continue;
            };
            STATS.with(|s| {
                if irq & IRQ_FACTORIAL == 0 || s.pending_at == 0 {
                    s.spurious += 1;
                    return;
                }
                let ns = api::ns_between(s.pending_at, now);
                s.completions += 1;
                if result != factorial(s.pending_n) {
                    s.wrong += 1;
                }
                s.min_ns = s.min_ns.min(ns);
                s.max_ns = s.max_ns.max(ns);
                s.sum_ns += ns;
                s.pending_at = 0;
            });
        }
    }

    /// The `edu` record, once per reporting period.
    fn report() {
        let s = STATS.with(|s| *s);
        cokernel::arch::console::record("edu", |r| {
            r.u64("requests", s.requests)
                .u64("completions", s.completions)
                .u64("wrong", s.wrong)
                .u64("busy", s.busy)
                .u64("spurious", s.spurious)
                .u64("min_ns", if s.completions > 0 { s.min_ns } else { 0 })
                .u64("avg_ns", s.sum_ns.checked_div(s.completions).unwrap_or(0))
                .u64("max_ns", s.max_ns);
        });
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("an application runs on the co-kernel: cargo xtask run --app edu --qemu-arg -device --qemu-arg edu");
    std::process::exit(2);
}
