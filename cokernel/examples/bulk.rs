//! Channel throughput each way: Linux programs write records into `/dev/hauki/sink`, which a
//! real-time task drains and checks; they read records from `/dev/hauki/source`, which the same
//! task keeps full. One event task on one port serves both: Linux's doorbell (after a write to
//! `sink`, or a read from `source`) wakes it.
//!
//! Every record is 256 bytes: a sequence number (8 bytes, little-endian) then 248 bytes of
//! `seq as u8 ^ index`. The task counts what it received, sent, and what was out of sequence or
//! malformed; `hauki-chanbench to-rt` / `from-rt` drive it flat out and check the same pattern
//! (the `channels` benchmark). The `bulk` telemetry record reports the counts.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod bulk {
    use cokernel::app::{AppError, Boot};
    use cokernel::tasks::api::{self, Channel, Event, Receiver, RecvError, Refusal, Sender, Shared};

    cokernel::app! {
        about: "throughput each way: drains and checks /dev/hauki/sink, keeps /dev/hauki/source full",
        start: start,
        report: report,
    }

    const PORT: u16 = 12;
    const RECORD: usize = 256;
    const SLOTS: u32 = 64;

    #[derive(Clone, Copy, Default)]
    struct Counts {
        received: u64,
        bad: u64,
        sent: u64,
    }

    static ENDS: Shared<Option<(Receiver, Sender)>> = Shared::new(None);
    static COUNTS: Shared<Counts> = Shared::new(Counts { received: 0, bad: 0, sent: 0 });

    fn start(_: &Boot<'_>) -> Result<(), AppError> {
        let sink = Channel::messages("sink", RECORD as u32).slots(SLOTS).from_linux().port(PORT).open()?;
        let source = Channel::messages("source", RECORD as u32).slots(SLOTS).to_linux().port(PORT).open()?;
        let (Some(rx), Some(tx)) = (sink.rx, source.tx) else {
            return Err(AppError::Refused("the channels came without their rings"));
        };
        ENDS.with(|e| *e = Some((rx, tx)));
        Event::new("bulk", PORT).priority(110).spawn(run)?;
        Ok(())
    }

    /// Record `seq`'s content (the same rule `hauki-chanbench` checks).
    fn record(seq: u64, buf: &mut [u8; RECORD]) {
        buf[..8].copy_from_slice(&seq.to_le_bytes());
        for (i, b) in buf.iter_mut().enumerate().skip(8) {
            *b = seq as u8 ^ i as u8;
        }
    }

    fn run(_: usize) -> ! {
        let Some((mut rx, mut tx)) = ENDS.with(|e| e.take()) else {
            panic!("the bulk task started without its channels");
        };
        let (mut buf, mut want) = ([0u8; RECORD], [0u8; RECORD]);
        let (mut next_in, mut next_out) = (0u64, 0u64);
        loop {
            // Fill what Linux has read (the whole ring, the first time).
            let mut sent = 0;
            while tx.room() > 0 {
                record(next_out, &mut buf);
                if tx.send(&buf).is_err() {
                    break;
                }
                next_out += 1;
                sent += 1;
            }
            api::wait_event();
            // Everything Linux wrote (at most a ring's worth arrived since the last doorbell).
            let (mut received, mut bad) = (0, 0);
            for _ in 0..SLOTS {
                match rx.try_recv(&mut buf) {
                    Ok(Some(n)) => {
                        record(next_in, &mut want);
                        if n != RECORD || buf != want {
                            bad += 1;
                        }
                        received += 1;
                        next_in += 1;
                    }
                    Ok(None) => break,
                    Err(RecvError::Refused(Refusal::Length(_))) => bad += 1,
                    Err(_) => break,
                }
            }
            COUNTS.with(|c| {
                c.received += received;
                c.bad += bad;
                c.sent += sent;
            });
        }
    }

    /// The `bulk` record, once per reporting period.
    fn report() {
        let c = COUNTS.with(|c| *c);
        cokernel::arch::console::record("bulk", |r| {
            r.u64("received", c.received).u64("bad", c.bad).u64("sent", c.sent);
        });
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("an application runs on the co-kernel: cargo xtask run --app bulk");
    std::process::exit(2);
}
