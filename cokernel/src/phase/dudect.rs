//! Statistical constant-time check, dudect style: Welch's t-test on cycle counts.
//!
//! The method (Reparaz, Balasch, Verbauwhede, "Dude, is my code constant time?", 2017): time the
//! code under test many times, each time with an input from one of two classes chosen at random —
//! [`Class::Fixed`] (always the same input) or [`Class::Random`] (a fresh random input) — and ask
//! whether the two distributions of cycle counts have different means. Welch's t statistic
//! above a threshold ([`THRESHOLD`] = 4.5, dudect's "definitely not constant time") rejects
//! constant time. A small `|t|` is evidence, not proof: it says no leak was *seen* at that sample
//! size. Outliers (interrupts, cache misses) are dropped by cropping above a percentile first
//! ([`crop_percentile`]).
//!
//! Invariants:
//! * [`Welford`] is the numerically stable one-pass mean/variance; `variance()` is the sample
//!   (n − 1) variance and is 0 for fewer than two samples;
//! * [`TTest::t`] is finite except when both classes have zero variance and different means
//!   (then ±∞, the sign of `mean(Fixed) − mean(Random)`); it is 0 when a class is empty or both
//!   classes are identical constants;
//! * this module uses `f64` (soft-float on the bare-metal target): it runs once per measurement,
//!   never at a high rate, and never inside the code being measured.

/// dudect's threshold: `|t|` above this means "not constant time" with high confidence.
pub const THRESHOLD: f64 = 4.5;

/// Which input class a measurement belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The same input every time.
    Fixed,
    /// A fresh random input every time.
    Random,
}

/// One-pass (Welford) mean and variance.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Welford {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Welford {
    /// No samples yet.
    pub const fn new() -> Self {
        Self { n: 0, mean: 0.0, m2: 0.0 }
    }

    /// Adds one sample.
    pub fn push(&mut self, x: f64) {
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Mean (0 with no samples).
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Sample variance `m2 / (n − 1)`; 0 for fewer than two samples.
    pub fn variance(&self) -> f64 {
        if self.n < 2 { 0.0 } else { self.m2 / (self.n - 1) as f64 }
    }
}

/// Welch's t-test between the two classes of measurements.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TTest {
    fixed: Welford,
    random: Welford,
}

impl TTest {
    /// No measurements yet.
    pub const fn new() -> Self {
        Self { fixed: Welford::new(), random: Welford::new() }
    }

    /// Adds one measurement of `cycles` for `class`.
    pub fn push(&mut self, class: Class, cycles: u64) {
        match class {
            Class::Fixed => self.fixed.push(cycles as f64),
            Class::Random => self.random.push(cycles as f64),
        }
    }

    /// Adds the measurement only if `cycles <= cutoff` (see [`crop_percentile`]); returns whether
    /// it was kept.
    pub fn push_cropped(&mut self, class: Class, cycles: u64, cutoff: u64) -> bool {
        let keep = cycles <= cutoff;
        if keep {
            self.push(class, cycles);
        }
        keep
    }

    /// Statistics of one class.
    pub fn class(&self, class: Class) -> &Welford {
        match class {
            Class::Fixed => &self.fixed,
            Class::Random => &self.random,
        }
    }

    /// Welch's t: `(mean_F − mean_R) / sqrt(var_F/n_F + var_R/n_R)`. 0 if a class is empty; if
    /// both variances are 0, 0 for equal means and ±∞ otherwise.
    pub fn t(&self) -> f64 {
        let (f, r) = (&self.fixed, &self.random);
        if f.n == 0 || r.n == 0 {
            return 0.0;
        }
        let diff = f.mean - r.mean;
        let se2 = f.variance() / f.n as f64 + r.variance() / r.n as f64;
        if se2 == 0.0 {
            return if diff == 0.0 {
                0.0
            } else if diff > 0.0 {
                f64::INFINITY
            } else {
                f64::NEG_INFINITY
            };
        }
        diff / sqrt(se2)
    }

    /// Whether a t statistic is below [`THRESHOLD`] in magnitude (NaN counts as not constant).
    pub fn t_is_constant_time(t: f64) -> bool {
        t.abs() < THRESHOLD
    }

    /// `|t| < threshold`: no timing difference detected at this sample size.
    pub fn constant_time(&self, threshold: f64) -> bool {
        self.t().abs() < threshold
    }
}

/// Sorts `samples` in place and returns the value at fraction `p` of the way through them
/// (`samples[floor(p·(len − 1))]`, `p` clamped to `[0, 1]`, NaN treated as 1). Measurements
/// above the returned cutoff are the outliers to drop. An empty slice gives `u64::MAX` (keep
/// everything).
pub fn crop_percentile(samples: &mut [u64], p: f64) -> u64 {
    if samples.is_empty() {
        return u64::MAX;
    }
    samples.sort_unstable();
    let p = if p.is_nan() { 1.0 } else { p.clamp(0.0, 1.0) };
    let idx = (p * (samples.len() - 1) as f64) as usize;
    samples[idx.min(samples.len() - 1)]
}

/// Square root by Newton's method (`core` has no `f64::sqrt` without `std`); exact to the last
/// bit or one below for finite positive inputs. Negative or NaN gives NaN.
fn sqrt(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 || x.is_infinite() {
        return x;
    }
    // Halving the exponent gives a guess within a factor of two; Newton doubles the correct bits
    // each step, so 7 steps are plenty for 53 bits.
    let mut g = f64::from_bits((x.to_bits() >> 1) + (1023u64 << 51));
    for _ in 0..7 {
        g = 0.5 * (g + x / g);
    }
    g
}

/// A tiny deterministic PRNG (Marsaglia xorshift64, shifts 13/7/17) to pick classes and random
/// inputs without a `rand` dependency. Not for cryptography.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XorShift64(pub u64);

impl XorShift64 {
    /// A generator from `seed`; a zero seed (a fixed point of xorshift) is replaced by a constant.
    pub const fn new(seed: u64) -> Self {
        Self(if seed == 0 { 0x2545_F491_4F6C_DD1D } else { seed })
    }

    /// The next 64 random bits (never 0 as long as the state is non-zero).
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// The next 32 random bits (the high half, the better-mixed one).
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A class chosen uniformly at random.
    pub fn next_class(&mut self) -> Class {
        if self.next_u64() >> 63 == 0 { Class::Fixed } else { Class::Random }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welford_matches_two_pass() {
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let mut w = Welford::new();
        assert_eq!(w.variance(), 0.0);
        for &x in &xs {
            w.push(x);
        }
        assert_eq!(w.count(), 8);
        assert!((w.mean() - 5.0).abs() < 1e-12);
        // Sum of squared deviations is 32; sample variance 32/7.
        assert!((w.variance() - 32.0 / 7.0).abs() < 1e-12);
        let mut one = Welford::new();
        one.push(3.0);
        assert_eq!(one.variance(), 0.0);
    }

    #[test]
    fn sqrt_is_accurate() {
        for &x in &[1e-300, 1e-10, 0.25, 1.0, 2.0, 3.0, 1e10, 12345.678, 1e300, f64::MAX] {
            let s = sqrt(x);
            assert!((s - x.sqrt()).abs() <= x.sqrt() * 4.0 * f64::EPSILON, "{x}: {s}");
        }
        assert_eq!(sqrt(0.0), 0.0);
        assert!(sqrt(-1.0).is_nan());
        assert_eq!(sqrt(f64::INFINITY), f64::INFINITY);
    }

    fn run(shift: u64, n: usize, seed: u64) -> TTest {
        let mut rng = XorShift64::new(seed);
        let mut t = TTest::new();
        for _ in 0..n {
            let class = rng.next_class();
            // Cycle counts around 1000 with ±32 of noise; the Fixed class is shifted by `shift`.
            let noise = rng.next_u64() % 64;
            let extra = if class == Class::Fixed { shift } else { 0 };
            t.push(class, 1000 + noise + extra);
        }
        t
    }

    #[test]
    fn identical_distributions_pass() {
        for seed in 1..20 {
            let t = run(0, 20_000, seed);
            assert!(t.constant_time(THRESHOLD), "seed {seed}: t = {}", t.t());
        }
    }

    #[test]
    fn shifted_distributions_fail() {
        // A shift of 2 cycles against a standard deviation of ~18 is found in 20 000 samples.
        for seed in 1..20 {
            let t = run(2, 20_000, seed);
            assert!(t.t() > THRESHOLD, "seed {seed}: t = {}", t.t());
            assert!(!t.constant_time(THRESHOLD));
        }
        let mut t = run(0, 0, 1);
        assert_eq!(t.t(), 0.0);
        t.push(Class::Fixed, 5);
        assert_eq!(t.t(), 0.0, "one class empty");
    }

    #[test]
    fn zero_variance_cases() {
        let mut t = TTest::new();
        for _ in 0..10 {
            t.push(Class::Fixed, 100);
            t.push(Class::Random, 100);
        }
        assert_eq!(t.t(), 0.0);
        assert!(t.constant_time(THRESHOLD));
        let mut t = TTest::new();
        for _ in 0..10 {
            t.push(Class::Fixed, 100);
            t.push(Class::Random, 101);
        }
        assert_eq!(t.t(), f64::NEG_INFINITY);
        assert!(!t.constant_time(THRESHOLD));
        let mut t = TTest::new();
        t.push(Class::Fixed, 7);
        t.push(Class::Random, 3);
        assert_eq!(t.t(), f64::INFINITY);
        assert_eq!(t.class(Class::Fixed).mean(), 7.0);
    }

    #[test]
    fn cropping() {
        let mut v = [9u64, 1, 8, 2, 7, 3, 6, 4, 5, 1000];
        assert_eq!(crop_percentile(&mut v, 0.9), 9);
        assert_eq!(v, [1, 2, 3, 4, 5, 6, 7, 8, 9, 1000]);
        assert_eq!(crop_percentile(&mut v, 1.0), 1000);
        assert_eq!(crop_percentile(&mut v, 0.0), 1);
        assert_eq!(crop_percentile(&mut v, 0.5), 5);
        assert_eq!(crop_percentile(&mut v, -3.0), 1);
        assert_eq!(crop_percentile(&mut v, f64::NAN), 1000);
        assert_eq!(crop_percentile(&mut [], 0.5), u64::MAX);
        let mut t = TTest::new();
        assert!(t.push_cropped(Class::Fixed, 9, 9));
        assert!(!t.push_cropped(Class::Fixed, 10, 9));
        assert_eq!(t.class(Class::Fixed).count(), 1);
    }

    #[test]
    fn xorshift_is_deterministic_and_nonzero() {
        let mut a = XorShift64::new(0);
        let mut b = XorShift64::new(0);
        let mut fixed = 0;
        for _ in 0..10_000 {
            let x = a.next_u64();
            assert_eq!(x, b.next_u64());
            assert_ne!(x, 0);
            let class = a.next_class();
            assert_eq!(class, b.next_class());
            if class == Class::Fixed {
                fixed += 1;
            }
        }
        assert!((4_500..5_500).contains(&fixed));
        assert_eq!(XorShift64::new(1).next_u64(), 1_082_269_761);
    }
}
