//! Fixed-point PID controller and a simulated DC-motor plant, for the demo control loop.
//!
//! The loop runs at 1 kHz in a real-time task, and the bare-metal target has soft-float only, so
//! everything here is integer: values are Q16.16 fixed point in an `i64` ([`Fx`], [`ONE`] = 1.0,
//! resolution 1/65536 ≈ 15 µ, range ±1.4·10¹⁴).
//!
//! Invariants:
//! * no function here panics or overflows, for any input: every operation saturates at
//!   `i64::MIN`/`i64::MAX` (products go through `i128`, division by zero saturates);
//! * state that accumulates small increments — the PID integral, the plant's position and
//!   velocity — is kept with 16 extra fractional bits (Q·.32 in an `i128`, limited to the [`Fx`]
//!   range): at `dt` = 1 ms an increment of `x·dt` is below one Q16.16 LSB whenever
//!   `|x| < 0.0076`, which would otherwise leave a dead band around the setpoint;
//! * [`Pid::step`] always returns a value in `[out_min, out_max]` (clamped);
//! * anti-windup by conditional integration: the integral does not move further in a direction
//!   in which the output is already saturated. The integral itself is not clamped to the output
//!   limits, because with setpoint weighting (below) it must hold `kp·(1 − b)·setpoint` in steady
//!   state, which can exceed them;
//! * the proportional term acts on `b·setpoint − measured` (setpoint weight `b`, [`ONE`] for a
//!   textbook PID; a smaller `b` trades step-response speed for less overshoot without slowing
//!   disturbance rejection), the integral on the full error `setpoint − measured`;
//! * the derivative acts on the measurement, not the error, so a setpoint step gives no
//!   derivative kick; the first step after [`Pid::new`]/[`Pid::reset`] has no derivative term.
//!
//! The plant ([`Plant`]) is a DC motor driving an inertia, reduced to
//! `dθ/dt = ω`, `dω/dt = gain·u − damping·ω − load`, integrated with semi-implicit Euler
//! (velocity first, then position with the new velocity), which is stable for `damping·dt < 2`.
//! [`Plant::MOTOR`]: `gain` = 20 rad/s² per unit input, `damping` = 5 /s (mechanical time
//! constant 200 ms, no-load speed 4 rad/s per unit input), no load. Its transfer function is
//! `θ/u = gain / (s (s + damping))`.
//!
//! [`DEMO_GAINS`] (kp 20, ki 60, kd 1.5, b 0.7) tune a PID for it at 1 kHz with outputs limited to
//! ±10: a 1 rad step settles within 2 % in about 0.3 s with about 0.5 % overshoot; a load step
//! needing 15 % of the input range dips the position by about 6 % and is rejected to within 1 % in
//! about 0.7 s; a saturated 10 rad step (limits ±2) does not overshoot (see the tests).

/// Q16.16 fixed point in an `i64`.
pub type Fx = i64;
/// Fractional bits of [`Fx`].
pub const FRAC_BITS: u32 = 16;
/// 1.0 in [`Fx`].
pub const ONE: Fx = 1 << FRAC_BITS;

/// Extra fractional bits of the accumulators (`Fx << EXTRA` is Q·.32).
const EXTRA: u32 = 16;
const ACC_MIN: i128 = (i64::MIN as i128) << EXTRA;
const ACC_MAX: i128 = (i64::MAX as i128) << EXTRA;

/// An [`Fx`] as a Q·.32 accumulator value.
const fn to_acc(x: Fx) -> i128 {
    (x as i128) << EXTRA
}

/// A Q·.32 accumulator value back to [`Fx`], rounded to nearest.
const fn from_acc(a: i128) -> Fx {
    sat((a + (1 << (EXTRA - 1))) >> EXTRA)
}

/// Limits a Q·.32 accumulator to the [`Fx`] range.
const fn clamp_acc(a: i128) -> i128 {
    if a < ACC_MIN {
        ACC_MIN
    } else if a > ACC_MAX {
        ACC_MAX
    } else {
        a
    }
}

/// `fx · acc` (Q16 × Q32 → Q32), saturating to the accumulator range.
const fn mul_acc(fx: Fx, acc: i128) -> i128 {
    clamp_acc((fx as i128).saturating_mul(acc) >> FRAC_BITS)
}

const fn sat(x: i128) -> Fx {
    if x > i64::MAX as i128 {
        i64::MAX
    } else if x < i64::MIN as i128 {
        i64::MIN
    } else {
        x as i64
    }
}

/// The integer `i` as [`Fx`] (saturating).
pub const fn from_int(i: i64) -> Fx {
    i.saturating_mul(ONE)
}

/// `m / 1000` as [`Fx`], rounded to nearest (saturating).
pub const fn from_milli(m: i64) -> Fx {
    let x = (m as i128) * (ONE as i128);
    sat((x + if x >= 0 { 500 } else { -500 }) / 1000)
}

/// `x · 1000`, rounded to nearest: thousandths, for printing without floats.
pub const fn to_milli(x: Fx) -> i64 {
    let m = (x as i128) * 1000;
    sat((m + if m >= 0 { 1 << 15 } else { -(1 << 15) }) / (ONE as i128))
}

/// `a · b`, rounded to nearest, saturating.
pub const fn fx_mul(a: Fx, b: Fx) -> Fx {
    sat(((a as i128) * (b as i128) + (1 << (FRAC_BITS - 1))) >> FRAC_BITS)
}

/// `a / b`, truncated toward zero, saturating; division by zero gives `i64::MAX`, `i64::MIN` or
/// 0 by the sign of `a`.
pub const fn fx_div(a: Fx, b: Fx) -> Fx {
    if b == 0 {
        return if a > 0 {
            i64::MAX
        } else if a < 0 {
            i64::MIN
        } else {
            0
        };
    }
    // |a << 16| < 2^80, so neither the shift nor the division can overflow i128.
    sat(((a as i128) << FRAC_BITS) / (b as i128))
}

/// Gains of a PID controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gains {
    /// Proportional gain (output per unit error).
    pub kp: Fx,
    /// Integral gain (output per unit error·second).
    pub ki: Fx,
    /// Derivative gain (output per unit/second of measurement change).
    pub kd: Fx,
    /// Setpoint weight `b` of the proportional term ([`ONE`] = textbook PID).
    pub setpoint_weight: Fx,
}

/// Gains that control [`Plant::MOTOR`] well at 1 kHz: kp 20, ki 60, kd 1.5, setpoint weight 0.7.
pub const DEMO_GAINS: Gains =
    Gains { kp: 20 * ONE, ki: 60 * ONE, kd: from_milli(1500), setpoint_weight: from_milli(700) };

/// A PID controller in Q16.16; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pid {
    kp: Fx,
    ki: Fx,
    kd: Fx,
    setpoint_weight: Fx,
    /// Accumulated integral *term* (already multiplied by `ki`), Q·.32, within the [`Fx`] range.
    integral: i128,
    /// Measurement of the previous step, for the derivative.
    prev_measured: Fx,
    /// Whether `prev_measured` is valid.
    primed: bool,
    out_min: Fx,
    out_max: Fx,
}

impl Pid {
    /// A controller with `gains` and output limits (swapped if given the wrong way round).
    pub const fn new(gains: Gains, out_min: Fx, out_max: Fx) -> Self {
        let (lo, hi) = if out_min <= out_max { (out_min, out_max) } else { (out_max, out_min) };
        Self {
            kp: gains.kp,
            ki: gains.ki,
            kd: gains.kd,
            setpoint_weight: gains.setpoint_weight,
            integral: 0,
            prev_measured: 0,
            primed: false,
            out_min: lo,
            out_max: hi,
        }
    }

    /// Current gains.
    pub const fn gains(&self) -> Gains {
        Gains { kp: self.kp, ki: self.ki, kd: self.kd, setpoint_weight: self.setpoint_weight }
    }

    /// Changes the gains without a bump (the integral is stored as a term, not an error sum).
    pub fn set_gains(&mut self, gains: Gains) {
        self.kp = gains.kp;
        self.ki = gains.ki;
        self.kd = gains.kd;
        self.setpoint_weight = gains.setpoint_weight;
    }

    /// Forgets the integral and the previous measurement.
    pub fn reset(&mut self) {
        self.integral = 0;
        self.prev_measured = 0;
        self.primed = false;
    }

    /// The integral term (rounded to [`Fx`]).
    pub const fn integral(&self) -> Fx {
        from_acc(self.integral)
    }

    /// One control step: the output for `measured` against `setpoint`, `dt` seconds after the
    /// previous step (`dt ≤ 0` disables the integral and derivative for this step).
    pub fn step(&mut self, setpoint: Fx, measured: Fx, dt: Fx) -> Fx {
        let dt = if dt > 0 { dt } else { 0 };
        let error = setpoint.saturating_sub(measured);
        let p = fx_mul(self.kp, fx_mul(self.setpoint_weight, setpoint).saturating_sub(measured));
        let d = if self.primed && dt > 0 {
            let rate = fx_div(measured.saturating_sub(self.prev_measured), dt);
            fx_mul(self.kd, rate).saturating_neg()
        } else {
            0
        };
        self.prev_measured = measured;
        self.primed = true;

        // ki·error·dt in Q·.32: (Q16 × Q16 = Q32) × Q16 = Q48, back to Q32.
        let di = clamp_acc(((self.ki as i128) * (error as i128)).saturating_mul(dt as i128) >> FRAC_BITS);
        let candidate = clamp_acc(self.integral.saturating_add(di));
        let unsat = p.saturating_add(from_acc(candidate)).saturating_add(d);
        // Conditional integration: don't wind further into a saturated output.
        let winding_up = (unsat > self.out_max && di > 0) || (unsat < self.out_min && di < 0);
        if !winding_up {
            self.integral = candidate;
        }
        p.saturating_add(from_acc(self.integral)).saturating_add(d).clamp(self.out_min, self.out_max)
    }
}

/// A DC-motor-like second-order plant; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plant {
    /// θ in Q·.32.
    position: i128,
    /// ω in Q·.32.
    velocity: i128,
    /// Acceleration per unit input (rad/s² per unit).
    pub gain: Fx,
    /// Viscous damping (1/s): deceleration per unit of velocity.
    pub damping: Fx,
    /// Constant load deceleration (rad/s²), a disturbance for the integral term to reject.
    pub load: Fx,
}

impl Plant {
    /// The demo motor at rest at position 0: gain 20, damping 5, no load.
    pub const MOTOR: Plant = Plant::new(20 * ONE, 5 * ONE);

    /// A plant at rest at position 0 with no load.
    pub const fn new(gain: Fx, damping: Fx) -> Self {
        Self { position: 0, velocity: 0, gain, damping, load: 0 }
    }

    /// Position θ (rad).
    pub const fn position(&self) -> Fx {
        from_acc(self.position)
    }

    /// Velocity ω (rad/s).
    pub const fn velocity(&self) -> Fx {
        from_acc(self.velocity)
    }

    /// Puts the plant in a given state.
    pub fn set_state(&mut self, position: Fx, velocity: Fx) {
        self.position = to_acc(position);
        self.velocity = to_acc(velocity);
    }

    /// Advances the model by `dt` seconds with `input` applied (semi-implicit Euler).
    pub fn step(&mut self, input: Fx, dt: Fx) {
        // gain·input is Q32 already (Q16 × Q16).
        let drive = clamp_acc((self.gain as i128) * (input as i128));
        let accel = clamp_acc(drive - mul_acc(self.damping, self.velocity) - to_acc(self.load));
        self.velocity = clamp_acc(self.velocity + mul_acc(dt, accel));
        self.position = clamp_acc(self.position + mul_acc(dt, self.velocity));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DT: Fx = from_milli(1); // 1 ms: 66/65536 s, 0.7 % long
    const LIMIT: Fx = 10 * ONE;

    #[test]
    fn fixed_point_helpers() {
        assert_eq!(from_int(3), 3 * ONE);
        assert_eq!(from_int(i64::MAX), i64::MAX);
        assert_eq!(fx_mul(3 * ONE, ONE / 2), 3 * ONE / 2);
        assert_eq!(fx_mul(-3 * ONE, ONE / 2), -3 * ONE / 2);
        assert_eq!(fx_mul(i64::MAX, i64::MAX), i64::MAX);
        assert_eq!(fx_mul(i64::MIN, i64::MAX), i64::MIN);
        assert_eq!(fx_div(3 * ONE, 2 * ONE), 3 * ONE / 2);
        assert_eq!(fx_div(1, 0), i64::MAX);
        assert_eq!(fx_div(-1, 0), i64::MIN);
        assert_eq!(fx_div(0, 0), 0);
        assert_eq!(fx_div(i64::MIN, -1), i64::MAX);
        assert_eq!(to_milli(ONE), 1000);
        assert_eq!(to_milli(-ONE / 2), -500);
        assert_eq!(to_milli(from_milli(1234)), 1234);
        assert_eq!(to_milli(from_milli(-77)), -77);
        assert_eq!(from_milli(1), 66);
    }

    /// Runs the demo loop for `ms` milliseconds; returns (trace of positions, max |output|).
    fn run(setpoint: Fx, ms: usize, plant: &mut Plant, pid: &mut Pid) -> (Vec<Fx>, Fx) {
        let mut trace = Vec::with_capacity(ms);
        let mut max_out = 0;
        for _ in 0..ms {
            let u = pid.step(setpoint, plant.position(), DT);
            max_out = max_out.max(u.abs());
            plant.step(u, DT);
            trace.push(plant.position());
        }
        (trace, max_out)
    }

    /// Time (ms) after which the trace stays within `band` of `target`.
    fn settling_ms(trace: &[Fx], target: Fx, band: Fx) -> usize {
        trace.iter().rposition(|&x| (x - target).abs() > band).map_or(0, |i| i + 1)
    }

    #[test]
    fn closed_loop_step_response() {
        let mut plant = Plant::MOTOR;
        let mut pid = Pid::new(DEMO_GAINS, -LIMIT, LIMIT);
        let (trace, max_out) = run(ONE, 3000, &mut plant, &mut pid);
        let peak = *trace.iter().max().unwrap();
        let settle = settling_ms(&trace, ONE, ONE / 50);
        println!(
            "PID step 1 rad: settles (2 %) in {settle} ms, peak {} mrad, final {} mrad, max |u| {}",
            to_milli(peak),
            to_milli(trace[trace.len() - 1]),
            to_milli(max_out)
        );
        assert!(settle < 400, "settling {settle} ms");
        assert!(peak < ONE + ONE / 100, "overshoot: peak {}", to_milli(peak));
        assert!((trace[trace.len() - 1] - ONE).abs() < ONE / 1000);
        assert!(max_out <= LIMIT);
    }

    #[test]
    fn integral_rejects_load() {
        let mut plant = Plant::MOTOR;
        let mut pid = Pid::new(DEMO_GAINS, -LIMIT, LIMIT);
        run(ONE, 1000, &mut plant, &mut pid);
        // A load that needs an input of 1.5 to hold position.
        plant.load = from_int(30);
        let (trace, _) = run(ONE, 2000, &mut plant, &mut pid);
        let dip = *trace.iter().min().unwrap();
        let recover = settling_ms(&trace, ONE, ONE / 100);
        println!("load step: dip to {} mrad, back within 1 % after {recover} ms", to_milli(dip));
        assert!(recover < 800, "recovery {recover} ms");
        assert!((trace[trace.len() - 1] - ONE).abs() < ONE / 500);
        // Steady state: u = 1.5 = kp·(b − 1)·setpoint + integral, so the integral is 7.5.
        assert!((pid.integral() - 15 * ONE / 2).abs() < ONE / 20, "integral {}", to_milli(pid.integral()));
    }

    #[test]
    fn saturation_does_not_wind_up() {
        // A far setpoint saturates the output for a long time; the integral must not wind up,
        // so there is no overshoot.
        let mut plant = Plant::MOTOR;
        let mut pid = Pid::new(DEMO_GAINS, -2 * ONE, 2 * ONE);
        let (trace, max_out) = run(from_int(10), 5000, &mut plant, &mut pid);
        let peak = *trace.iter().max().unwrap();
        let settle = settling_ms(&trace, from_int(10), ONE / 10);
        println!("saturated 10 rad step (|u| <= 2): peak {} mrad, within 0.1 rad after {settle} ms", to_milli(peak));
        assert!(max_out <= 2 * ONE);
        assert!(peak < from_int(10) + ONE / 10, "peak {}", to_milli(peak));
        assert!(settle < 2500, "settling {settle} ms");
    }

    #[test]
    fn reset_and_limits() {
        let gains = Gains { kp: 5 * ONE, ki: ONE, kd: 0, setpoint_weight: ONE };
        let mut pid = Pid::new(gains, LIMIT, -LIMIT); // swapped
        let u = pid.step(from_int(1000), 0, DT);
        assert_eq!(u, LIMIT);
        // Conditional integration: saturated high with positive error, so no integration.
        assert_eq!(pid.integral(), 0);
        pid.reset();
        // No integral with dt = 0.
        assert_eq!(pid.step(ONE, 0, 0), 5 * ONE);
        assert_eq!(pid.integral(), 0);
        pid.set_gains(Gains { kp: 0, ki: 0, kd: ONE, setpoint_weight: ONE });
        assert_eq!(pid.gains().kd, ONE);
        // Measurement rising at 1 unit/s with kd 1: output −1 (derivative on measurement).
        let u = pid.step(ONE, fx_mul(ONE, DT), DT);
        assert!((u + ONE).abs() <= 1, "{u}");
        // No derivative on the first step after a reset.
        pid.reset();
        assert_eq!(pid.step(ONE, from_int(5), DT), 0);
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_in_limits(
            kp: i64, ki: i64, kd: i64, b: i64, lo: i64, hi: i64,
            steps in proptest::collection::vec((any::<i64>(), any::<i64>(), any::<i64>()), 1..20),
        ) {
            let mut pid = Pid::new(Gains { kp, ki, kd, setpoint_weight: b }, lo, hi);
            let (lo, hi) = (lo.min(hi), lo.max(hi));
            let mut plant = Plant::new(kp, kd);
            plant.load = ki;
            for (sp, meas, dt) in steps {
                let u = pid.step(sp, meas, dt);
                prop_assert!(lo <= u && u <= hi);
                plant.step(u, dt);
                plant.step(sp, meas);
            }
        }

        #[test]
        fn sane_gains_keep_the_loop_bounded(
            kp in 0i64..50 * ONE, ki in 0i64..100 * ONE, kd in 0i64..3 * ONE, b in 0i64..=ONE,
            sp in -100 * ONE..100 * ONE,
        ) {
            let mut plant = Plant::MOTOR;
            let mut pid = Pid::new(Gains { kp, ki, kd, setpoint_weight: b }, -LIMIT, LIMIT);
            let (trace, max_out) = run(sp, 500, &mut plant, &mut pid);
            prop_assert!(max_out <= LIMIT);
            // Input is bounded by 10, so speed by 40 rad/s and the position change by 20 rad in 0.5 s.
            prop_assert!(trace.iter().all(|x| x.abs() <= 21 * ONE));
        }
    }
}
