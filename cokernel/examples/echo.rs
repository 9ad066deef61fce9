//! An echo server for Linux programs: every record a Linux program writes to `/dev/hauki/echo`
//! comes back on the same channel, unchanged, from a real-time task woken by Linux's doorbell;
//! and a line per record goes to the byte stream `/dev/hauki/echo-log`.
//!
//! The channel tests and the round-trip benchmark use it; it is also the shortest application
//! that serves Linux: one channel, one event-driven task.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod echo {
    use core::fmt::Write;

    use cokernel::app::{AppError, Boot};
    use cokernel::tasks::api::{self, Channel, Event, Receiver, RecvError, Refusal, Sender, Shared};

    cokernel::app! {
        about: "echoes each record Linux writes to /dev/hauki/echo; a line per record on echo-log",
        start: start,
    }

    /// The port Linux's doorbell posts to.
    const PORT: u16 = 10;
    /// The largest record.
    const RECORD: u32 = 256;

    static ENDS: Shared<Option<(Sender, Receiver, Sender)>> = Shared::new(None);

    fn start(_: &Boot<'_>) -> Result<(), AppError> {
        let echo = Channel::messages("echo", RECORD).slots(16).to_linux().from_linux().port(PORT).open()?;
        let log = Channel::bytes("echo-log", 4096).to_linux().open()?;
        let (Some(tx), Some(rx), Some(log)) = (echo.tx, echo.rx, log.tx) else {
            return Err(AppError::Refused("the channels came without their rings"));
        };
        ENDS.with(|e| *e = Some((tx, rx, log)));
        Event::new("echo", PORT).priority(120).spawn(run)?;
        Ok(())
    }

    fn run(_: usize) -> ! {
        let Some((mut tx, mut rx, mut log)) = ENDS.with(|e| e.take()) else {
            panic!("the echo task started without its channels");
        };
        let mut buf = [0u8; RECORD as usize];
        let mut n_records: u64 = 0;
        loop {
            api::wait_event();
            // Everything that waits; a record the ring back to Linux has no room for waits for
            // Linux's next doorbell (it reads, then rings).
            while tx.room() > 0 {
                match rx.try_recv(&mut buf) {
                    Ok(Some(n)) => {
                        let _ = tx.send(&buf[..n]);
                        n_records += 1;
                        let mut line: heapless::String<64> = heapless::String::new();
                        let _ = writeln!(line, "echo {n_records}: {n} bytes");
                        let _ = log.write(line.as_bytes());
                    }
                    Ok(None) => break,
                    // A record too long was consumed (counted by the channel): the next follows.
                    Err(RecvError::Refused(Refusal::Length(_))) => {}
                    // Linux's head is out of range (counted): nothing to read until Linux
                    // writes a sane one and rings again. Retrying now would spin forever.
                    Err(_) => break,
                }
            }
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("an application runs on the co-kernel: cargo xtask run --app echo");
    std::process::exit(2);
}
