//! The bridge between a control loop and a Linux program: each period the real-time controller
//! posts a request (its state) to Linux; a Linux program answers with a JSON decision (a gain);
//! the controller uses the answer if it arrives before its next period, and a safe fallback
//! otherwise. Whatever the Linux program does — stops, dies, floods the channel with garbage, or
//! Linux panics and restarts — the controller keeps its deadlines and only switches between the
//! program's decisions and the fallback.
//!
//! Channels: `requests` (to Linux; `{"seq":N,"position_milli":P,"velocity_milli":V}` every
//! 10 ms, dropped when nobody reads) and `decisions` (from Linux; `{"seq":N,"gain_milli":G}`,
//! G from 0 to 5000). The `bridge` telemetry record counts answers used, late or missing answers
//! (fallback periods), and malformed ones. In Linux: `hauki-decide` answers (linux-patch/haukictl).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod bridge {
    use core::fmt::Write;

    use cokernel::app::{AppError, Boot};
    use cokernel::rt::control::{self as ctl, Fx, Plant};
    use cokernel::tasks::api::{self, Channel, Periodic, Policy, Receiver, Sender, Shared};

    cokernel::app! {
        about: "a controller asks a Linux program for a decision each period, with a safe fallback",
        start: start,
        report: report,
    }

    /// The controller's period: 10 ms.
    const PERIOD_US: u64 = 10_000;
    const RECORD: u32 = 128;
    /// The gain used when no decision came in time (milli).
    const FALLBACK_GAIN_MILLI: i64 = 800;
    /// The largest gain a decision may ask for (milli); larger is malformed.
    const MAX_GAIN_MILLI: i64 = 5000;

    #[derive(Clone, Copy, Debug, Default)]
    struct Counts {
        periods: u64,
        used: u64,
        fallback: u64,
        late: u64,
        malformed: u64,
        gain_milli: i64,
        position_milli: i64,
    }

    static COUNTS: Shared<Counts> = Shared::new(Counts {
        periods: 0,
        used: 0,
        fallback: 0,
        late: 0,
        malformed: 0,
        gain_milli: 0,
        position_milli: 0,
    });
    static ENDS: Shared<Option<(Sender, Receiver)>> = Shared::new(None);

    fn start(_: &Boot<'_>) -> Result<(), AppError> {
        let req = Channel::messages("requests", RECORD).slots(8).to_linux().policy(Policy::Drop).open()?;
        let dec = Channel::messages("decisions", RECORD).slots(8).from_linux().open()?;
        let (Some(tx), Some(rx)) = (req.tx, dec.rx) else {
            return Err(AppError::Refused("the channels came without their rings"));
        };
        ENDS.with(|e| *e = Some((tx, rx)));
        Periodic::new("bridge").priority(180).period_us(PERIOD_US).budget_ns(200_000).spawn(run)?;
        Ok(())
    }

    /// The integer after `"key":` in `text`, if there is one (no allocation, never panics).
    fn field(text: &[u8], key: &str) -> Option<i64> {
        let text = core::str::from_utf8(text).ok()?;
        let mut pat: heapless::String<32> = heapless::String::new();
        write!(pat, "\"{key}\":").ok()?;
        let rest = text[text.find(pat.as_str())? + pat.len()..].trim_start();
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '-')).unwrap_or(rest.len());
        rest[..end].parse().ok()
    }

    fn run(_: usize) -> ! {
        let Some((mut tx, mut rx)) = ENDS.with(|e| e.take()) else {
            panic!("the bridge started without its channels");
        };
        let mut plant = Plant::MOTOR;
        let dt = ctl::from_milli(10);
        let target: Fx = ctl::from_int(5);
        let mut seq: u64 = 0;
        let mut c = Counts::default();
        let mut buf = [0u8; RECORD as usize];
        loop {
            api::wait_next_period();
            // The answer to the request of the last period, if it came in time; older answers
            // are late, anything else malformed. Never more than the ring holds.
            let mut gain = None;
            for _ in 0..8 {
                match rx.try_recv(&mut buf) {
                    Ok(Some(n)) => match (field(&buf[..n], "seq"), field(&buf[..n], "gain_milli")) {
                        (Some(s), Some(g)) if s == seq as i64 && (0..=MAX_GAIN_MILLI).contains(&g) => gain = Some(g),
                        (Some(s), Some(_)) if s >= 0 && (s as u64) < seq => c.late += 1,
                        _ => c.malformed += 1,
                    },
                    Ok(None) => break,
                    Err(_) => c.malformed += 1,
                }
            }
            if seq > 0 {
                match gain {
                    Some(_) => c.used += 1,
                    None => c.fallback += 1,
                }
            }
            let g = gain.unwrap_or(FALLBACK_GAIN_MILLI);
            let u = ctl::from_milli(g).saturating_mul(target - plant.position()) >> 16;
            plant.step(u.clamp(ctl::from_int(-100), ctl::from_int(100)), dt);
            seq += 1;
            c.periods += 1;
            c.gain_milli = g;
            c.position_milli = ctl::to_milli(plant.position());
            let mut rec: heapless::String<{ RECORD as usize }> = heapless::String::new();
            let _ = write!(
                rec,
                "{{\"seq\":{seq},\"position_milli\":{},\"velocity_milli\":{}}}",
                ctl::to_milli(plant.position()),
                ctl::to_milli(plant.velocity())
            );
            let _ = tx.send(rec.as_bytes());
            COUNTS.with(|x| *x = c);
        }
    }

    /// The `bridge` record, once per reporting period.
    fn report() {
        let c = COUNTS.with(|c| *c);
        cokernel::arch::console::record("bridge", |r| {
            r.u64("periods", c.periods)
                .u64("used", c.used)
                .u64("fallback", c.fallback)
                .u64("late", c.late)
                .u64("malformed", c.malformed)
                .i64("gain_milli", c.gain_milli)
                .i64("position_milli", c.position_milli);
        });
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("an application runs on the co-kernel: cargo xtask run --app bridge");
    std::process::exit(2);
}
