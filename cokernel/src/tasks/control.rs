//! The demo control loop: a PID controller at 1 kHz driving a simulated DC motor (fixed point, no
//! floats in the loop) to a setpoint that steps between two positions every two seconds.

use crate::rt::control::{self as ctl, DEMO_GAINS, Fx, Pid, Plant};
use crate::rt::sched::Error;
use crate::tasks::api::{self, Periodic, Shared};

/// The loop's period: 1 ms (the controller's `dt`).
pub const PERIOD_NS: u64 = 1_000_000;
/// Setpoint square wave: ±SETPOINT, switching every HALF_CYCLE steps.
const SETPOINT: Fx = ctl::from_int(10);
const HALF_CYCLE: u64 = 2000;

/// The loop after its latest step (Q16.16 values), for telemetry.
#[derive(Clone, Copy, Debug, Default)]
pub struct State {
    /// Steps taken (0: the loop has not run yet).
    pub steps: u64,
    /// The position asked for (rad).
    pub setpoint: Fx,
    /// The simulated motor's position (rad).
    pub position: Fx,
    /// Its velocity (rad/s).
    pub velocity: Fx,
    /// The controller's output (clamped to ±100).
    pub output: Fx,
    /// `|setpoint − position|` after the latest step.
    pub max_abs_error_last_ms: Fx,
}

/// The latest [`State`], written by the loop every step.
pub static STATE: Shared<State> =
    Shared::new(State { steps: 0, setpoint: 0, position: 0, velocity: 0, output: 0, max_abs_error_last_ms: 0 });

/// Starts the loop: a periodic task at [`super::PRIO_CONTROL`], 100 µs CPU budget per step.
pub fn start() -> Result<(), Error> {
    Periodic::new("control")
        .priority(super::PRIO_CONTROL)
        .period_ns(PERIOD_NS)
        .budget_ns(100_000)
        .spawn(run)
        .map(|_| ())
}

fn run(_: usize) -> ! {
    let mut pid = Pid::new(DEMO_GAINS, ctl::from_int(-100), ctl::from_int(100));
    let mut plant = Plant::MOTOR;
    let dt = ctl::from_milli(1);
    let mut step: u64 = 0;
    loop {
        api::wait_next_period();
        let setpoint = if (step / HALF_CYCLE).is_multiple_of(2) { SETPOINT } else { -SETPOINT };
        let u = pid.step(setpoint, plant.position(), dt);
        plant.step(u, dt);
        step += 1;
        let s = State {
            steps: step,
            setpoint,
            position: plant.position(),
            velocity: plant.velocity(),
            output: u,
            max_abs_error_last_ms: (setpoint - plant.position()).abs(),
        };
        STATE.with(|x| *x = s);
    }
}
