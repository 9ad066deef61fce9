//! Numerically controlled oscillator: a `u32` phase accumulator.
//!
//! The phase is a 0.32 unsigned fixed-point fraction of a cycle: `0` is the start of a cycle and
//! `2^32` (which wraps to `0`) is one full cycle. Every [`Nco::advance`] adds the constant `step`
//! with wrapping arithmetic, so the oscillator runs at `step / 2^32` cycles per tick, i.e. at
//! `rate · step / 2^32` Hz when ticked at `rate` Hz.
//!
//! Invariants:
//! * the phase after `n` advances is exactly `phase₀ + n·step (mod 2^32)`, whatever way the
//!   advances were grouped (`advance_by(n)` equals `n` calls of `advance`); there is no
//!   accumulated rounding error beyond the one-time quantisation of `step`;
//! * every wrap of the accumulator is one completed cycle, and [`Nco::wraps_in`] counts them
//!   exactly without advancing;
//! * integer-only and O(1): safe to call from an interrupt handler.

/// One full cycle as a `u64` (the phase is `u32`, so `2^32` wraps to `0`).
pub const CYCLE: u64 = 1 << 32;

/// A phase accumulator; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Nco {
    phase: u32,
    step: u32,
}

impl Nco {
    /// An oscillator at phase 0 that advances by `step / 2^32` of a cycle per tick.
    pub const fn new(step: u32) -> Self {
        Self { phase: 0, step }
    }

    /// An oscillator at phase 0 producing `freq_millihz / 1000` Hz when ticked at
    /// `sample_rate_hz`: `step = round(freq / rate · 2^32)`, computed exactly in `u128`.
    ///
    /// Frequencies at or above the tick rate alias, as in any sampled oscillator (the step is
    /// taken modulo `2^32`). A sample rate of 0 gives a stopped oscillator (step 0).
    pub fn from_frequency(freq_millihz: u64, sample_rate_hz: u64) -> Self {
        if sample_rate_hz == 0 {
            return Self::new(0);
        }
        let num = u128::from(freq_millihz) << 32;
        let den = u128::from(sample_rate_hz) * 1000;
        let step = (num + den / 2) / den;
        // Truncation to u32 is the aliasing modulo 2^32 documented above.
        Self::new(step as u32)
    }

    /// Advances one tick and returns the new phase (wrapping at one cycle).
    #[inline]
    pub fn advance(&mut self) -> u32 {
        self.phase = self.phase.wrapping_add(self.step);
        self.phase
    }

    /// Advances `n` ticks at once and returns the new phase; equal to `n` calls of
    /// [`Nco::advance`].
    #[inline]
    pub fn advance_by(&mut self, n: u32) -> u32 {
        self.phase = self.phase.wrapping_add(self.step.wrapping_mul(n));
        self.phase
    }

    /// The current phase.
    #[inline]
    pub fn phase(&self) -> u32 {
        self.phase
    }

    /// Sets the current phase (for example to a staggering offset).
    #[inline]
    pub fn set_phase(&mut self, phase: u32) {
        self.phase = phase;
    }

    /// The step added per tick.
    #[inline]
    pub fn step(&self) -> u32 {
        self.step
    }

    /// How many times the phase would wrap (cycles would complete) during the next `n` advances,
    /// without advancing: `floor((phase + n·step) / 2^32)`.
    #[inline]
    pub fn wraps_in(&self, n: u32) -> u32 {
        let end = u64::from(self.phase) + u64::from(self.step) * u64::from(n);
        // end < 2^32 + 2^64 - 2^33 + 1 < 2^64, and end >> 32 < 2^32.
        (end >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn advance_wraps() {
        let mut n = Nco::new(1 << 30);
        assert_eq!(n.advance(), 1 << 30);
        assert_eq!(n.advance(), 2 << 30);
        assert_eq!(n.advance(), 3 << 30);
        assert_eq!(n.advance(), 0);
        assert_eq!(n.step(), 1 << 30);
        n.set_phase(5);
        assert_eq!(n.phase(), 5);
        assert_eq!(n.wraps_in(3), 0);
        assert_eq!(n.wraps_in(4), 1);
        assert_eq!(n.wraps_in(8), 2);
    }

    #[test]
    fn from_frequency_rounds() {
        // 1 kHz at 4 kHz is exactly a quarter cycle per tick.
        assert_eq!(Nco::from_frequency(1_000_000, 4_000).step(), 1 << 30);
        // Half the rate is half a cycle.
        assert_eq!(Nco::from_frequency(500_000, 1_000).step(), 1 << 31);
        // 1 Hz at 3 Hz: 2^32 / 3 = 1431655765.33 → 1431655765.
        assert_eq!(Nco::from_frequency(1_000, 3).step(), 1_431_655_765);
        // 2 Hz at 3 Hz: 2863311530.67 → 2863311531 (rounds up).
        assert_eq!(Nco::from_frequency(2_000, 3).step(), 2_863_311_531);
        assert_eq!(Nco::from_frequency(1_000, 0).step(), 0);
        // The rate itself aliases to DC.
        assert_eq!(Nco::from_frequency(48_000_000, 48_000).step(), 0);
    }

    #[test]
    fn frequency_accuracy_over_an_hour() {
        // 50 Hz from a 1 kHz tick for one hour: 180 000 cycles expected.
        let rate = 1_000u64;
        let ticks = 3_600 * rate;
        for &(freq_mhz, expected_cycles) in &[(50_000u64, 180_000u64), (1_000, 3_600), (333_333, 1_199_998)] {
            let n = Nco::from_frequency(freq_mhz, rate);
            // Count cycles over the hour in chunks, exactly.
            let mut nco = n;
            let mut cycles = 0u64;
            let mut left = ticks;
            while left > 0 {
                let chunk = left.min(1 << 20) as u32;
                cycles += u64::from(nco.wraps_in(chunk));
                nco.advance_by(chunk);
                left -= u64::from(chunk);
            }
            // Quantisation of the step is at most half an LSB: |error| ≤ ticks / 2^33 cycles.
            let max_err = ticks.div_ceil(1 << 33) + 1;
            assert!(cycles.abs_diff(expected_cycles) <= max_err, "{freq_mhz} mHz: {cycles} cycles");
            // And the mean frequency agrees to within rate / 2^33 Hz.
            let actual_mhz = u128::from(n.step()) * u128::from(rate) * 1000;
            let ideal = u128::from(freq_mhz) << 32;
            assert!(actual_mhz.abs_diff(ideal) <= u128::from(rate) * 1000 / 2 + 1);
        }
    }

    proptest! {
        #[test]
        fn advance_by_equals_repeated_advance(step: u32, start: u32, n in 0u32..3000) {
            let mut a = Nco::new(step);
            a.set_phase(start);
            let mut b = a;
            let mut wraps = 0u32;
            let mut prev = start;
            for _ in 0..n {
                let p = a.advance();
                if p < prev {
                    wraps += 1;
                }
                prev = p;
            }
            prop_assert_eq!(b.wraps_in(n), wraps);
            prop_assert_eq!(b.advance_by(n), a.phase());
        }

        #[test]
        fn from_frequency_is_nearest_step(freq in 0u64..1_000_000_000, rate in 1u64..10_000_000) {
            let n = Nco::from_frequency(freq, rate);
            // |step/2^32 − freq/(1000·rate)| ≤ 1/2^33, modulo aliasing.
            let exact = u128::from(freq) << 32;
            let den = u128::from(rate) * 1000;
            let got = u128::from(n.step()) + (((exact + den / 2) / den) >> 32 << 32);
            prop_assert!((got * den).abs_diff(exact) <= den / 2);
        }
    }
}
