//! Branchless, constant-time transforms of `u32` phases (0.32 fractions of a cycle).
//!
//! Every function here except [`triangle_branchy`] is written so that its instruction sequence
//! does not depend on its arguments: no `if`, `match`, `?`, `&&`/`||` on data, no loops with a
//! data-dependent trip count, and no table lookups indexed by data. Choices are made with masks
//! (`0` or `u32::MAX`) and arithmetic: `select(m, a, b) = (a & m) | (b & !m)`.
//!
//! Invariants / caveats:
//! * each transform equals a simple branchy reference (tested exhaustively over a stride of the
//!   `u32` space and by property tests);
//! * "constant time" is a property of the *generated machine code*, which the source cannot
//!   guarantee — the compiler may in principle reintroduce branches. It is therefore **checked
//!   statistically** with [`super::dudect`] (Welch's t-test on cycle counts, fixed vs random
//!   inputs), not claimed. [`triangle_branchy`] computes the same values as [`triangle`] with a
//!   data-dependent early return and loop; it is the negative control that such a test must
//!   flag, proving the test can see a timing difference at all;
//! * integer-only (the sine uses `i64` multiplies, which are constant latency on x86-64).

/// Half a cycle.
pub const HALF: u32 = 1 << 31;
/// Full scale of [`sine`]: `1.0` in Q1.30.
pub const SINE_ONE: i32 = 1 << 30;
/// Measured maximum absolute error of [`sine`] against `sin(2πp/2^32)·2^30`, in LSBs of Q1.30
/// (≈ 9.2·10⁻⁶ of full scale); [`sine`] is exact at multiples of a quarter cycle.
pub const SINE_MAX_ERROR_LSB: i64 = 10_000;

/// All ones if the top bit of `x` is set, else zero.
#[inline(always)]
const fn top_bit_mask(x: u32) -> u32 {
    0u32.wrapping_sub(x >> 31)
}

/// `a` where `mask` is all ones, `b` where it is zero (bitwise for other masks).
#[inline]
pub const fn select(mask: u32, a: u32, b: u32) -> u32 {
    (a & mask) | (b & !mask)
}

/// All ones if `a < b` (unsigned), else zero, from the borrow of a 64-bit subtraction.
#[inline]
pub const fn mask_if_lt(a: u32, b: u32) -> u32 {
    let borrow = ((a as u64).wrapping_sub(b as u64) >> 63) as u32;
    0u32.wrapping_sub(borrow)
}

/// All ones if `a == b`, else zero.
#[inline]
pub const fn mask_if_eq(a: u32, b: u32) -> u32 {
    let x = a ^ b;
    // Top bit of (x | -x) is set exactly when x != 0.
    !top_bit_mask(x | x.wrapping_neg())
}

/// `x` limited to `[lo, hi]` (requires `lo <= hi`).
#[inline]
pub const fn clamp(x: u32, lo: u32, hi: u32) -> u32 {
    let x = select(mask_if_lt(x, lo), lo, x);
    select(mask_if_lt(hi, x), hi, x)
}

/// Rising sawtooth: the phase itself, 0 → `u32::MAX` over one cycle.
#[inline]
pub const fn saw(p: u32) -> u32 {
    p
}

/// Square wave: `u32::MAX` in the second half-cycle (top bit of `p` set), 0 in the first.
#[inline]
pub const fn square(p: u32) -> u32 {
    top_bit_mask(p)
}

/// Triangle wave: 0 at phase 0, rising to `u32::MAX` at half a cycle, falling back towards 0:
/// `2p` for `p < HALF`, `u32::MAX − 2(p − HALF)` from `HALF` on.
#[inline]
pub const fn triangle(p: u32) -> u32 {
    (p << 1) ^ top_bit_mask(p)
}

/// Wave folder: the triangle of `p·folds`, i.e. `folds` up-down sweeps per cycle.
#[inline]
pub const fn fold(p: u32, folds: u32) -> u32 {
    triangle(p.wrapping_mul(folds))
}

/// Signed shortest distance `a − b` around the cycle, in phase units: in `[−2^31, 2^31)`
/// (exactly half a cycle apart gives `i32::MIN`).
#[inline]
pub const fn phase_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

// Coefficients of cos(πy/2) ≈ (1 − y²)(1 + A1·y² + A2·y⁴), Q2.30, fitted minimax on y ∈ [−1, 1].
const SINE_A1: i64 = -250_741_893; // −0.2335215857
const SINE_A2: i64 = 20_504_476; // 0.0190962810

/// `sin(2π·p/2^32)` in Q1.30 (`SINE_ONE` = 1.0), branchless.
///
/// The half-cycle is chosen by the top bit (a mask negates the result); within the half-cycle,
/// with `y = 2t − 1 ∈ [−1, 1)`, `sin(πt) = cos(πy/2)`, approximated by the even polynomial
/// `(1 − y²)(1 + A1·y² + A2·y⁴)`, exact at `y = 0` and `y = ±1`. Maximum error
/// [`SINE_MAX_ERROR_LSB`] ≈ 1·10⁻⁵ of full scale.
#[inline]
pub const fn sine(p: u32) -> i32 {
    let neg = top_bit_mask(p) as i32;
    // y = 2t − 1 in Q0.31, where t ∈ [0, 1) is the position within the half-cycle.
    let y = ((p << 1) ^ HALF) as i32 as i64;
    let z = (y * y) >> 31; // y² in Q0.31, 0..=2^31
    let inner = (1 << 30) + ((z * (SINE_A1 + ((z * SINE_A2) >> 31))) >> 31); // Q2.30
    let r = ((((1i64 << 31) - z) * inner) >> 31) as i32; // Q1.30, 0..=2^30
    (r ^ neg).wrapping_sub(neg)
}

/// `cos(2π·p/2^32)` in Q1.30: [`sine`] a quarter cycle later.
#[inline]
pub const fn cosine(p: u32) -> i32 {
    sine(p.wrapping_add(1 << 30))
}

/// **Negative control — deliberately not constant-time.** Same results as [`triangle`], but
/// with a data-dependent early return (first half-cycle) and, in the second half, a loop that
/// runs once per set bit of `p − HALF`, so its instruction count varies with the input. The
/// dudect test must report it as *not* constant-time; otherwise the measurement is blind.
#[inline(never)]
pub fn triangle_branchy(p: u32) -> u32 {
    if p < HALF {
        return p << 1;
    }
    let mut x = p - HALF;
    let mut r = u32::MAX;
    while x != 0 {
        let low = x & x.wrapping_neg();
        // black_box keeps the compiler from turning the loop back into `r − 2x`.
        r = core::hint::black_box(r - (low << 1));
        x &= x - 1;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ref_triangle(p: u32) -> u32 {
        if p < HALF { 2 * p } else { u32::MAX - 2 * (p - HALF) }
    }
    fn ref_square(p: u32) -> u32 {
        if p >= HALF { u32::MAX } else { 0 }
    }
    fn ref_diff(a: u32, b: u32) -> i32 {
        let d = (i64::from(a) - i64::from(b)).rem_euclid(1 << 32);
        let d = if d >= 1 << 31 { d - (1 << 32) } else { d };
        d as i32
    }
    fn ref_sine(p: u32) -> f64 {
        (2.0 * std::f64::consts::PI * f64::from(p) / 4_294_967_296.0).sin() * f64::from(SINE_ONE)
    }

    fn check_unary(p: u32) {
        assert_eq!(triangle(p), ref_triangle(p), "triangle {p:#x}");
        assert_eq!(triangle_branchy(p), ref_triangle(p), "triangle_branchy {p:#x}");
        assert_eq!(square(p), ref_square(p), "square {p:#x}");
        assert_eq!(saw(p), p);
        assert_eq!(fold(p, 1), triangle(p));
        assert_eq!(fold(p, 3), ref_triangle(p.wrapping_mul(3)));
    }

    fn check_binary(a: u32, b: u32) {
        assert_eq!(select(u32::MAX, a, b), a);
        assert_eq!(select(0, a, b), b);
        assert_eq!(mask_if_lt(a, b), if a < b { u32::MAX } else { 0 }, "{a} < {b}");
        assert_eq!(mask_if_eq(a, b), if a == b { u32::MAX } else { 0 });
        assert_eq!(mask_if_eq(a, a), u32::MAX);
        assert_eq!(phase_diff(a, b), ref_diff(a, b));
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        for x in [0, lo.wrapping_sub(1), lo, hi, hi.wrapping_add(1), u32::MAX, a ^ b] {
            assert_eq!(clamp(x, lo, hi), x.clamp(lo, hi));
        }
    }

    const EDGES: [u32; 9] = [0, 1, HALF - 1, HALF, HALF + 1, 1 << 30, 3 << 30, u32::MAX - 1, u32::MAX];

    #[test]
    fn strided_exhaustive_unary() {
        for p in (0..=u32::MAX).step_by(65_521).chain(EDGES) {
            check_unary(p);
        }
    }

    #[test]
    fn strided_exhaustive_binary() {
        for a in (0..=u32::MAX).step_by(16_777_259).chain(EDGES) {
            for b in (7..=u32::MAX).step_by(16_769_023).chain(EDGES) {
                check_binary(a, b);
            }
        }
    }

    #[test]
    fn sine_error_bound() {
        let mut max_err = 0f64;
        for p in (0..=u32::MAX).step_by(4_099).chain(EDGES) {
            let e = (f64::from(sine(p)) - ref_sine(p)).abs();
            max_err = max_err.max(e);
        }
        // Well inside the 1e-3 of full scale the API promises, and the documented constant.
        assert!(max_err < f64::from(SINE_ONE) * 1e-3);
        assert!(max_err <= SINE_MAX_ERROR_LSB as f64, "max error {max_err} LSB");
        // Exact at the quarter points.
        assert_eq!(sine(0), 0);
        assert_eq!(sine(1 << 30), SINE_ONE);
        assert_eq!(sine(HALF), 0);
        assert_eq!(sine(3 << 30), -SINE_ONE);
        assert_eq!(cosine(0), SINE_ONE);
        // Odd symmetry: sin(−x) = −sin(x).
        for p in (1..=u32::MAX).step_by(1_000_003) {
            assert_eq!(sine(p.wrapping_neg()), -sine(p));
        }
    }

    proptest! {
        #[test]
        fn unary_matches_reference(p: u32) {
            check_unary(p);
        }

        #[test]
        fn binary_matches_reference(a: u32, b: u32) {
            check_binary(a, b);
        }

        #[test]
        fn sine_close(p: u32) {
            prop_assert!((f64::from(sine(p)) - ref_sine(p)).abs() <= SINE_MAX_ERROR_LSB as f64);
            prop_assert!(sine(p).abs() <= SINE_ONE);
        }
    }
}
