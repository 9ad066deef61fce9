//! Golden-ratio (Weyl-sequence) offsets for staggering equal-period releases.
//!
//! Point `k` of the sequence is `k·φ mod 1` (φ the golden ratio; only its fractional part
//! `0.6180339887…` matters), held as a 0.64 fixed-point fraction so `mod 1` is just wrapping
//! multiplication. Scaled to a period, the first `n` points give release offsets that are close to
//! evenly spread for *every* `n`, without knowing `n` in advance: adding task `n + 1` never moves
//! the offsets of tasks `0..n`.
//!
//! Guarantees, for the first `n ≥ 2` points `k = 0..n` (point 0 is offset 0):
//! * **three-distance property** (Steinhaus): the gaps between circularly adjacent points take at
//!   most three distinct lengths (±1 after scaling to an integer period, from rounding down);
//! * **minimum gap**: the smallest gap is `‖F·φ‖ = φ^(−j)` where `F = F_j` is the largest Fibonacci
//!   number `≤ n − 1`; since `F_j ≥ φ^(j−2)` this is more than `period / (φ²·n) ≈ period / (2.618·n)`
//!   (minus 1 for rounding) — i.e. more than a third of the even spacing `period / n`. Measured for
//!   `n ≤ 256` the worst case is `0.449·period / n` (≈ `1/√5`, at `n = 234`);
//! * **maximum gap**: measured for `n ≤ 256`, at most `1.89·period / n` (`1.94` with rounding at
//!   period 1000), and at most `φ² ×` the minimum gap (plus rounding);
//! * every offset is `< period` (for `period > 0`; all offsets are 0 for `period == 0`).
//!
//! Integer-only; `offset` is one 64×64→128 multiplication.

use heapless::Vec;

/// The fractional part of the golden ratio, `φ − 1 = 0.6180339887…`, in 0.64 fixed point
/// (`round(2^64 / φ)`; the same constant as Fibonacci hashing).
pub const PHI_FRAC_64: u64 = 0x9E37_79B9_7F4A_7C15;

/// `k·φ mod 1` as a 0.64 fixed-point fraction.
#[inline]
pub const fn fraction(k: u64) -> u64 {
    k.wrapping_mul(PHI_FRAC_64)
}

/// `floor(fraction(k) · period)`: point `k` scaled into `[0, period)`.
#[inline]
pub const fn offset(k: u64, period: u64) -> u64 {
    ((fraction(k) as u128 * period as u128) >> 64) as u64
}

/// The offsets of points `0..min(n, N)` for `period`, in point order (not sorted).
pub fn offsets<const N: usize>(n: usize, period: u64) -> Vec<u64, N> {
    let mut v = Vec::new();
    for k in 0..n.min(N) {
        // Cannot fail: at most N elements are pushed.
        let _ = v.push(offset(k as u64, period));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Circular gaps between the sorted points.
    fn gaps(points: &[u64], period: u64) -> std::vec::Vec<u64> {
        let mut p = points.to_vec();
        p.sort_unstable();
        let mut g: std::vec::Vec<u64> = p.windows(2).map(|w| w[1] - w[0]).collect();
        g.push(period - p[p.len() - 1] + p[0]);
        g
    }

    /// Number of clusters of gap lengths, merging lengths that differ by 1 (rounding).
    fn distinct_up_to_rounding(g: &[u64]) -> usize {
        let mut d = g.to_vec();
        d.sort_unstable();
        d.dedup();
        let mut clusters = 0;
        let mut last: Option<u64> = None;
        for x in d {
            if last.is_none_or(|l| x > l + 1) {
                clusters += 1;
            }
            last = Some(x);
        }
        clusters
    }

    #[test]
    fn constant_is_golden() {
        let phi_frac = (5f64.sqrt() - 1.0) / 2.0;
        let c = PHI_FRAC_64 as f64 / 2f64.powi(64);
        assert!((c - phi_frac).abs() < 1e-15);
        assert_eq!(fraction(0), 0);
        assert_eq!(fraction(1), PHI_FRAC_64);
    }

    #[test]
    fn small_cases() {
        let o: Vec<u64, 8> = offsets(8, 1000);
        assert_eq!(o.as_slice(), &[0, 618, 236, 854, 472, 90, 708, 326]);
        let o: Vec<u64, 4> = offsets(10, 1000);
        assert_eq!(o.len(), 4);
        assert_eq!(offset(5, 0), 0);
        assert!(offset(u64::MAX, u64::MAX) < u64::MAX);
    }

    #[test]
    fn three_distance_and_gap_bounds() {
        for &period in &[1000u64, 1_000_000, 1 << 32, u64::MAX] {
            for n in 2..=256usize {
                let pts: Vec<u64, 256> = offsets(n, period);
                assert!(pts.iter().all(|&x| x < period));
                let g = gaps(&pts, period);
                assert!(distinct_up_to_rounding(&g) <= 3, "period {period} n {n}: {g:?}");
                let min = *g.iter().min().unwrap();
                let max = *g.iter().max().unwrap();
                let n128 = n as u128;
                // Proven bound: min gap + 1 ≥ period / (φ² n)  (φ² = 2.6180339887…).
                assert!(
                    (min as u128 + 1) * n128 * 2_618_034 >= period as u128 * 1_000_000,
                    "period {period} n {n}: min gap {min}"
                );
                // Measured: min gap ≥ 0.449·period/n (no rounding allowance needed above 10^6).
                if period >= 1_000_000 {
                    assert!(min as u128 * n128 * 1000 >= period as u128 * 449, "n {n}");
                }
                // Measured: max gap ≤ 1.94·period/n + 1, and ≤ φ²·min gap + 2.
                assert!((max as u128).saturating_sub(1) * n128 * 100 <= period as u128 * 194, "n {n}");
                assert!(max as u128 * 1_000_000 <= (min as u128 + 2) * 2_618_034, "n {n}");
            }
        }
    }

    proptest! {
        #[test]
        fn offsets_below_period(k: u64, period in 1u64..) {
            prop_assert!(offset(k, period) < period);
        }

        #[test]
        fn offset_is_floor_of_scaled_fraction(k: u64, period: u64) {
            let exact = fraction(k) as u128 * period as u128;
            let o = offset(k, period) as u128;
            prop_assert!(o << 64 <= exact && exact < (o + 1) << 64);
        }
    }
}
