//! A real-time task that owns an ISA device: a 16550 UART at I/O 0x3e8 on ISA line 5, driven by
//! its interrupt while Linux runs, which never gets the line or the ports (run with
//! `-chardev null,id=rtuart -device isa-serial,chardev=rtuart,iobase=0x3e8,irq=5`).
//!
//! The UART runs in loopback (MCR bit 4): every millisecond the `uart` task writes the next byte
//! of a sequence; the byte comes straight back, and the UART's receive interrupt wakes
//! `uart-irq`, which reads it, checks it against the byte written (a byte with none in flight is
//! counted `stray`), measures the time from the write to its own wake-up, and
//! ends the interrupt (the line is level-triggered on q35: masked from arrival to that end). The
//! `uart` telemetry record reports bytes sent and received, wrong ones, and that latency
//! (virtual time under `-icount`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod uart {
    use cokernel::app::{AppError, Boot};
    use cokernel::tasks::api::{self, Event, IsaDevice, Periodic, Shared};

    cokernel::app! {
        about: "a real-time task drives a 16550 UART (ISA line 5, I/O 0x3e8) by its interrupt; Linux never gets them (run with -device isa-serial,iobase=0x3e8,irq=5)",
        start: start,
        report: report,
    }

    const LINE: u8 = 5;
    const BASE: u16 = 0x3e8;
    const PORT: u16 = 13;
    // 16550 registers (offsets from BASE) and bits.
    const DATA: u16 = 0;
    const IER: u16 = 1;
    const FCR: u16 = 2;
    const LCR: u16 = 3;
    const MCR: u16 = 4;
    const LSR: u16 = 5;
    const SCRATCH: u16 = 7;
    const IER_RX: u8 = 0x01;
    const LCR_8N1: u8 = 0x03;
    const LCR_DLAB: u8 = 0x80;
    const MCR_OUT2: u8 = 0x08;
    const MCR_LOOP: u8 = 0x10;
    const LSR_DATA: u8 = 0x01;

    #[derive(Clone, Copy, Debug, Default)]
    struct Stats {
        sent: u64,
        received: u64,
        wrong: u64,
        stray: u64,
        busy: u64,
        min_ns: u64,
        max_ns: u64,
        sum_ns: u64,
        /// When the byte in flight was written (TSC; 0: none).
        pending_at: u64,
    }

    static STATS: Shared<Stats> = Shared::new(Stats {
        sent: 0,
        received: 0,
        wrong: 0,
        stray: 0,
        busy: 0,
        min_ns: u64::MAX,
        max_ns: 0,
        sum_ns: 0,
        pending_at: 0,
    });
    static DEV: Shared<Option<IsaDevice>> = Shared::new(None);

    fn start(_: &Boot<'_>) -> Result<(), AppError> {
        let dev = api::claim_isa(LINE, BASE, 8, PORT)?;
        // A UART answers with its scratch register; nothing there reads all-ones.
        dev.outb(SCRATCH, 0x5a);
        if dev.inb(SCRATCH) != 0x5a {
            return Err(AppError::Refused("no 16550 UART at 0x3e8"));
        }
        dev.outb(IER, 0);
        dev.outb(LCR, LCR_DLAB);
        dev.outb(DATA, 1); // divisor 1: 115200 baud
        dev.outb(IER, 0);
        dev.outb(LCR, LCR_8N1);
        dev.outb(FCR, 0); // no FIFO: an interrupt per byte
        dev.outb(MCR, MCR_LOOP | MCR_OUT2);
        while dev.inb(LSR) & LSR_DATA != 0 {
            let _ = dev.inb(DATA);
        }
        dev.outb(IER, IER_RX);
        DEV.with(|d| *d = Some(dev));
        Event::new("uart-irq", PORT).priority(190).spawn(on_irq)?;
        Periodic::new("uart").priority(170).period_us(1000).spawn(send)?;
        Ok(())
    }

    fn send(_: usize) -> ! {
        loop {
            api::wait_next_period();
            let Some(seq) = STATS.with(|s| {
                if s.pending_at != 0 {
                    s.busy += 1;
                    return None;
                }
                s.pending_at = api::now_tsc();
                s.sent += 1;
                Some(s.sent as u8)
            }) else {
                continue;
            };
            DEV.with(|d| d.as_ref().map(|d| d.outb(DATA, seq)));
        }
    }

    fn on_irq(_: usize) -> ! {
        loop {
            api::wait_event();
            let now = api::now_tsc();
            DEV.with(|d| {
                let Some(d) = d.as_ref() else { return };
                while d.inb(LSR) & LSR_DATA != 0 {
                    let b = d.inb(DATA);
                    STATS.with(|s| {
                        if s.pending_at == 0 {
                            s.stray += 1; // nothing was in flight
                            return;
                        }
                        s.received += 1;
                        if b != s.sent as u8 {
                            s.wrong += 1;
                        }
                        {
                            let ns = api::ns_between(s.pending_at, now);
                            s.min_ns = s.min_ns.min(ns);
                            s.max_ns = s.max_ns.max(ns);
                            s.sum_ns += ns;
                            s.pending_at = 0;
                        }
                    });
                }
                d.end_of_interrupt();
            });
        }
    }

    /// The `uart` record, once per reporting period.
    fn report() {
        let s = STATS.with(|s| *s);
        cokernel::arch::console::record("uart", |r| {
            r.u64("sent", s.sent)
                .u64("received", s.received)
                .u64("wrong", s.wrong)
                .u64("stray", s.stray)
                .u64("busy", s.busy)
                .u64("min_ns", if s.received > 0 { s.min_ns } else { 0 })
                .u64("avg_ns", s.sum_ns.checked_div(s.received).unwrap_or(0))
                .u64("max_ns", s.max_ns);
        });
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "an application runs on the co-kernel: cargo xtask run --app uart --qemu-arg=-chardev --qemu-arg=null,id=rtuart \
         --qemu-arg=-device --qemu-arg=isa-serial,chardev=rtuart,iobase=0x3e8,irq=5"
    );
    std::process::exit(2);
}
