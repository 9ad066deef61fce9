//! The demo controller, the default application: a PID loop at 1 kHz driving a simulated DC motor
//! (fixed point, no floats in the loop) to a setpoint that steps between ±10 rad every two
//! seconds, beside the phase engine and, when there is a screen, the VGA view.
//!
//! Two channels to Linux programs:
//! - `control` (to Linux, records of up to 160 bytes, dropped when Linux does not read): the loop's
//!   state every 10 ms as one JSON object per record, for example
//!   `{"step":2000,"setpoint_milli":10000,"position_milli":9981,"velocity_milli":-12,"output_milli":3}`;
//! - `setpoint` (from Linux, records of up to 32 bytes): a number in radians (`-7.5`) holds the
//!   setpoint there, `auto` returns to the square wave. Anything else is counted as refused in
//!   the `control` telemetry record and ignored.
//!
//! In Linux: `haukictl cat control`, `haukictl send setpoint 2.5`.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod demo {
    use core::fmt::Write;

    use cokernel::app::{AppError, Boot};
    use cokernel::rt::control::{self as ctl, DEMO_GAINS, Fx, Pid, Plant};
    use cokernel::tasks::api::{self, Channel, Periodic, Policy, Receiver, Sender, Shared};

    cokernel::app! {
        about: "PID loop on a simulated motor, phase engine, VGA view; channels control and setpoint",
        start: start,
        report: report,
    }

    /// The loop's priority (below the latency tool's 250, above the phase engine's 150).
    const PRIO_CONTROL: u8 = 200;
    /// Square-wave setpoint: ±SETPOINT, switching every HALF_CYCLE steps.
    const SETPOINT: Fx = ctl::from_int(10);
    const HALF_CYCLE: u64 = 2000;
    /// The state goes to Linux every STATE_EVERY steps (100 Hz).
    const STATE_EVERY: u64 = 10;
    /// The largest `control` record.
    const STATE_RECORD: u32 = 160;
    /// The largest `setpoint` record.
    const SETPOINT_RECORD: usize = 32;

    /// The loop after its latest step, for telemetry.
    #[derive(Clone, Copy, Debug, Default)]
    struct State {
        steps: u64,
        setpoint: Fx,
        position: Fx,
        velocity: Fx,
        output: Fx,
        /// Setpoints from Linux taken, and records from Linux that were not a setpoint.
        commands: u64,
        bad_commands: u64,
        held: bool,
    }

    static STATE: Shared<State> = Shared::new(State {
        steps: 0,
        setpoint: 0,
        position: 0,
        velocity: 0,
        output: 0,
        commands: 0,
        bad_commands: 0,
        held: false,
    });

    /// The loop's channel ends, handed to it at start.
    static ENDS: Shared<Option<(Sender, Receiver)>> = Shared::new(None);

    fn start(boot: &Boot<'_>) -> Result<(), AppError> {
        let state = Channel::messages("control", STATE_RECORD).slots(64).to_linux().policy(Policy::Drop).open()?;
        let setpoint = Channel::messages("setpoint", SETPOINT_RECORD as u32).slots(8).from_linux().open()?;
        let (Some(tx), Some(rx)) = (state.tx, setpoint.rx) else {
            return Err(AppError::Refused("the channels came without their rings"));
        };
        ENDS.with(|e| *e = Some((tx, rx)));
        Periodic::new("control").priority(PRIO_CONTROL).period_us(1000).budget_ns(100_000).spawn(run)?;
        cokernel::tasks::phase::start(
            cokernel::cmdline::get(boot.cmdline, hauki_abi::cmdline::STAGGER) != Some("off"),
        )?;
        if boot.vga {
            cokernel::tasks::display::start()?;
        }
        Ok(())
    }

    /// A setpoint from Linux: radians with up to three decimals, or `auto`.
    fn parse_setpoint(text: &[u8]) -> Option<Option<Fx>> {
        let text = core::str::from_utf8(text).ok()?.trim();
        if text == "auto" {
            return Some(None);
        }
        let (neg, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() || whole.len() > 4 || frac.len() > 3 {
            return None;
        }
        let mut milli: i64 = whole.parse::<u16>().ok()?.into();
        milli *= 1000;
        if !frac.is_empty() {
            milli += i64::from(frac.parse::<u16>().ok()?) * [100, 10, 1][frac.len() - 1];
        }
        Some(Some(ctl::from_milli(if neg { -milli } else { milli })))
    }

    fn run(_: usize) -> ! {
        let Some((mut tx, mut rx)) = ENDS.with(|e| e.take()) else {
            panic!("the control loop started without its channels");
        };
        let mut pid = Pid::new(DEMO_GAINS, ctl::from_int(-100), ctl::from_int(100));
        let mut plant = Plant::MOTOR;
        let dt = ctl::from_milli(1);
        let mut held: Option<Fx> = None;
        let (mut commands, mut bad) = (0u64, 0u64);
        let mut buf = [0u8; SETPOINT_RECORD];
        let mut step: u64 = 0;
        loop {
            api::wait_next_period();
            // Linux's commands: at most a few per step, never waiting.
            for _ in 0..4 {
                match rx.try_recv(&mut buf) {
                    Ok(Some(n)) => match parse_setpoint(&buf[..n]) {
                        Some(s) => {
                            held = s;
                            commands += 1;
                        }
                        None => bad += 1,
                    },
                    Ok(None) => break,
                    Err(_) => bad += 1, // counted by the channel too
                }
            }
            let wave = if (step / HALF_CYCLE).is_multiple_of(2) { SETPOINT } else { -SETPOINT };
            let setpoint = held.unwrap_or(wave);
            let u = pid.step(setpoint, plant.position(), dt);
            plant.step(u, dt);
            step += 1;
            let s = State {
                steps: step,
                setpoint,
                position: plant.position(),
                velocity: plant.velocity(),
                output: u,
                commands,
                bad_commands: bad,
                held: held.is_some(),
            };
            STATE.with(|x| *x = s);
            if step.is_multiple_of(STATE_EVERY) {
                let mut rec: heapless::String<{ STATE_RECORD as usize }> = heapless::String::new();
                let _ = write!(
                    rec,
                    "{{\"step\":{},\"setpoint_milli\":{},\"position_milli\":{},\"velocity_milli\":{},\"output_milli\":{}}}",
                    s.steps,
                    ctl::to_milli(s.setpoint),
                    ctl::to_milli(s.position),
                    ctl::to_milli(s.velocity),
                    ctl::to_milli(s.output)
                );
                let _ = tx.send(rec.as_bytes()); // a full ring drops it (counted by the channel)
            }
        }
    }

    /// The `control` record, once per reporting period.
    fn report() {
        let c = STATE.with(|s| *s);
        if c.steps == 0 {
            return;
        }
        cokernel::arch::console::record("control", |r| {
            r.str("task", "control")
                .u64("steps", c.steps)
                .i64("setpoint_milli", ctl::to_milli(c.setpoint))
                .i64("position_milli", ctl::to_milli(c.position))
                .i64("velocity_milli", ctl::to_milli(c.velocity))
                .i64("output_milli", ctl::to_milli(c.output))
                .i64("error_milli", ctl::to_milli(c.setpoint - c.position))
                .u64("commands", c.commands)
                .u64("bad_commands", c.bad_commands)
                .bool("held", c.held);
        });
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("an application runs on the co-kernel: cargo xtask run --app demo");
    std::process::exit(2);
}
