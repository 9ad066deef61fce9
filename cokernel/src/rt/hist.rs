//! Latency statistics: count, min, max, mean and a logarithmic histogram of latencies in ns; and
//! [`FineHist`], a linear 100 ns histogram for comparisons with other systems.
//!
//! Histogram buckets ([`BUCKETS`] = 24), for a latency of `ns` nanoseconds:
//! * bucket 0 is `[0, 500)` ns;
//! * bucket `i` for `1 ≤ i ≤ 22` is `[500·2^(i−1), 500·2^i)` ns — bucket 1 is `[500, 1000)`,
//!   bucket 2 `[1000, 2000)`, bucket 3 `[2000, 4000)`, …, bucket 22 `[1 048 576 000,
//!   2 097 152 000)` ns (≈ 1.05–2.10 s);
//! * bucket 23 is open-ended: `[500·2^22, ∞)` = every latency of 2 097 152 000 ns (≈ 2.1 s) or
//!   more.
//!
//! Equivalently, with `q = ns / 500` (integer division), the bucket is `min(bit_length(q), 23)`,
//! which is how [`bucket_of`] computes it: a division by a constant and `leading_zeros`, O(1) with
//! no loop.
//!
//! Invariants:
//! * `samples` counts [`LatencyStats::record`] calls; the histogram counts sum to `samples`
//!   (unless a bucket saturates at `u32::MAX`, more than 4·10⁹ samples in one bucket);
//! * with `samples == 0`, `min_ns == max_ns == 0` and [`LatencyStats::avg_ns`] is 0; otherwise
//!   `min_ns ≤ avg_ns() ≤ max_ns` (as long as the sum has not saturated);
//! * the sum saturates at `u64::MAX` (585 years of nanoseconds), so nothing can overflow;
//! * `misses` counts deadline misses reported with [`LatencyStats::record_miss`]; they are not
//!   samples;
//! * integer-only; `record` is O(1).

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Number of histogram buckets.
pub const BUCKETS: usize = 24;
/// Upper bound of bucket 0, and the scale of every other bucket.
pub const BUCKET0_NS: u64 = 500;

/// The bucket a latency of `ns` nanoseconds falls into (see the module documentation).
#[inline]
pub const fn bucket_of(ns: u64) -> usize {
    let q = ns / BUCKET0_NS;
    let bits = (u64::BITS - q.leading_zeros()) as usize;
    if bits < BUCKETS - 1 { bits } else { BUCKETS - 1 }
}

/// The smallest latency in bucket `i`: 0 for bucket 0, `500·2^(i−1)` ns otherwise. Indices past
/// the last bucket are treated as the last bucket.
#[inline]
pub const fn bucket_lower_bound_ns(i: usize) -> u64 {
    let i = if i < BUCKETS { i } else { BUCKETS - 1 };
    if i == 0 { 0 } else { BUCKET0_NS << (i - 1) }
}

/// The first latency *above* bucket `i` (`500·2^i` ns), or `None` for the open-ended last
/// bucket (and indices past it).
#[inline]
pub const fn bucket_upper_bound_ns(i: usize) -> Option<u64> {
    if i + 1 < BUCKETS { Some(BUCKET0_NS << i) } else { None }
}

/// Latency statistics; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencyStats {
    /// Number of recorded latencies.
    pub samples: u64,
    /// Smallest recorded latency (0 when empty).
    pub min_ns: u64,
    /// Largest recorded latency (0 when empty).
    pub max_ns: u64,
    /// Sum of recorded latencies, saturating.
    sum_ns: u64,
    /// Histogram counts per bucket.
    pub hist: [u32; BUCKETS],
    /// Deadline misses.
    pub misses: u64,
}

impl Default for LatencyStats {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyStats {
    /// Empty statistics.
    pub const fn new() -> Self {
        Self { samples: 0, min_ns: 0, max_ns: 0, sum_ns: 0, hist: [0; BUCKETS], misses: 0 }
    }

    /// Records one latency. O(1).
    #[inline]
    pub fn record(&mut self, ns: u64) {
        if self.samples == 0 || ns < self.min_ns {
            self.min_ns = ns;
        }
        if ns > self.max_ns {
            self.max_ns = ns;
        }
        self.samples += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
        let b = &mut self.hist[bucket_of(ns)];
        *b = b.saturating_add(1);
    }

    /// Records one deadline miss.
    #[inline]
    pub fn record_miss(&mut self) {
        self.misses = self.misses.saturating_add(1);
    }

    /// Sum of all latencies (saturating).
    pub const fn sum_ns(&self) -> u64 {
        self.sum_ns
    }

    /// Mean latency, rounded down (0 when empty).
    pub const fn avg_ns(&self) -> u64 {
        match self.sum_ns.checked_div(self.samples) {
            Some(avg) => avg,
            None => 0,
        }
    }

    /// Adds `other`'s counts into `self` (as if its samples had been recorded here).
    pub fn merge(&mut self, other: &LatencyStats) {
        if other.samples != 0 {
            if self.samples == 0 {
                self.min_ns = other.min_ns;
                self.max_ns = other.max_ns;
            } else {
                self.min_ns = self.min_ns.min(other.min_ns);
                self.max_ns = self.max_ns.max(other.max_ns);
            }
        }
        self.samples = self.samples.saturating_add(other.samples);
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
        for (a, b) in self.hist.iter_mut().zip(other.hist.iter()) {
            *a = a.saturating_add(*b);
        }
        self.misses = self.misses.saturating_add(other.misses);
    }

    /// Back to empty.
    pub fn reset(&mut self) {
        *self = Self::new();
    }
}

/// Width of a [`FineHist`] bucket (ns).
pub const FINE_BUCKET_NS: u64 = 100;
/// [`FineHist`] buckets below its overflow bucket: 0 to 51.2 µs in [`FINE_BUCKET_NS`] steps.
pub const FINE_BUCKETS: usize = 512;

/// A linear histogram of one task's latencies at [`FINE_BUCKET_NS`] resolution, for comparisons
/// with other systems' histograms (cyclictest counts in 1 µs buckets): bucket `i <
/// FINE_BUCKETS` is `[i·100, (i+1)·100)` ns, bucket `FINE_BUCKETS` is every latency of 51.2 µs or
/// more.
///
/// Two halves, so that a reader never stops the writer: [`FineHist::record`] counts into the
/// active half; the reader [`FineHist::flip`]s (the window ends there) and then
/// [`FineHist::drain`]s the half it got back at its own pace while new samples go to the other.
/// Counts are atomics, so this holds for any writers and readers; a window is exact when the flip
/// happens where no `record` is under way (the telemetry task flips inside the same
/// interrupts-off section that takes the [`LatencyStats`] window, and the latency task, the one
/// writer, runs above it).
pub struct FineHist {
    active: AtomicUsize,
    halves: [[AtomicU32; FINE_BUCKETS + 1]; 2],
}

impl Default for FineHist {
    fn default() -> Self {
        Self::new()
    }
}

impl FineHist {
    /// Empty, half 0 active.
    pub const fn new() -> Self {
        FineHist { active: AtomicUsize::new(0), halves: [const { [const { AtomicU32::new(0) }; FINE_BUCKETS + 1] }; 2] }
    }

    /// The bucket of a latency of `ns` nanoseconds.
    #[inline]
    pub const fn bucket_of(ns: u64) -> usize {
        let b = ns / FINE_BUCKET_NS;
        if b < FINE_BUCKETS as u64 { b as usize } else { FINE_BUCKETS }
    }

    /// Counts one latency in the active half (saturating). O(1).
    #[inline]
    pub fn record(&self, ns: u64) {
        let half = &self.halves[self.active.load(Ordering::Relaxed) & 1];
        let c = &half[Self::bucket_of(ns)];
        // Saturating: a bucket at u32::MAX stays there (4·10⁹ samples is 5 days at 10 kHz).
        let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_add(1));
    }

    /// Ends the window: new samples go to the other half. Returns the half that holds the window
    /// just ended, for [`FineHist::drain`].
    pub fn flip(&self) -> usize {
        self.active.fetch_xor(1, Ordering::Relaxed) & 1
    }

    /// Takes the counts of `half` (emptying it): `(bucket, count)` for every non-empty bucket,
    /// in bucket order (bucket [`FINE_BUCKETS`] is the overflow).
    pub fn drain(&self, half: usize) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.halves[half & 1].iter().enumerate().filter_map(|(i, c)| {
            let v = c.swap(0, Ordering::Relaxed);
            (v != 0).then_some((i, v))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bucket_edges() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(499), 0);
        assert_eq!(bucket_of(500), 1);
        assert_eq!(bucket_of(999), 1);
        assert_eq!(bucket_of(1000), 2);
        assert_eq!(bucket_of(1999), 2);
        assert_eq!(bucket_of(2000), 3);
        assert_eq!(bucket_of(2_097_151_999), 22);
        assert_eq!(bucket_of(2_097_152_000), 23);
        assert_eq!(bucket_of(u64::MAX), 23);
        assert_eq!(bucket_lower_bound_ns(0), 0);
        assert_eq!(bucket_lower_bound_ns(1), 500);
        assert_eq!(bucket_lower_bound_ns(23), 2_097_152_000);
        assert_eq!(bucket_lower_bound_ns(99), 2_097_152_000);
        assert_eq!(bucket_upper_bound_ns(0), Some(500));
        assert_eq!(bucket_upper_bound_ns(22), Some(2_097_152_000));
        assert_eq!(bucket_upper_bound_ns(23), None);
        for i in 0..BUCKETS {
            let lo = bucket_lower_bound_ns(i);
            assert_eq!(bucket_of(lo), i);
            if let Some(hi) = bucket_upper_bound_ns(i) {
                assert_eq!(bucket_of(hi - 1), i);
                assert_eq!(bucket_of(hi), i + 1);
                assert_eq!(bucket_lower_bound_ns(i + 1), hi);
            }
        }
    }

    #[test]
    fn record_merge_reset() {
        let mut s = LatencyStats::new();
        assert_eq!((s.min_ns, s.max_ns, s.avg_ns()), (0, 0, 0));
        for ns in [700, 300, 5000] {
            s.record(ns);
        }
        s.record_miss();
        assert_eq!(s.samples, 3);
        assert_eq!((s.min_ns, s.max_ns, s.avg_ns(), s.sum_ns()), (300, 5000, 2000, 6000));
        assert_eq!(s.hist[0], 1);
        assert_eq!(s.hist[1], 1);
        assert_eq!(s.hist[4], 1);
        assert_eq!(s.misses, 1);

        let mut empty = LatencyStats::default();
        empty.merge(&s);
        assert_eq!(empty, s);
        let mut t = LatencyStats::new();
        t.record(100);
        t.merge(&LatencyStats::new());
        assert_eq!((t.min_ns, t.max_ns), (100, 100));
        t.merge(&s);
        assert_eq!((t.samples, t.min_ns, t.max_ns, t.misses), (4, 100, 5000, 1));
        assert_eq!(t.hist[0], 2);
        t.reset();
        assert_eq!(t, LatencyStats::new());

        let mut big = LatencyStats::new();
        big.record(u64::MAX);
        big.record(u64::MAX);
        assert_eq!(big.sum_ns(), u64::MAX);
        assert_eq!(big.hist[BUCKETS - 1], 2);
    }

    proptest! {
        #[test]
        fn bucket_contains_value(ns: u64) {
            let b = bucket_of(ns);
            prop_assert!(b < BUCKETS);
            prop_assert!(bucket_lower_bound_ns(b) <= ns);
            if let Some(hi) = bucket_upper_bound_ns(b) {
                prop_assert!(ns < hi);
            }
        }

        #[test]
        fn counts_sum_to_samples(
            a in proptest::collection::vec(0u64..10_000_000_000, 0..200),
            b in proptest::collection::vec(any::<u64>(), 0..50),
        ) {
            let mut sa = LatencyStats::new();
            let mut sb = LatencyStats::new();
            let mut all = LatencyStats::new();
            for &x in &a { sa.record(x); all.record(x); }
            for &x in &b { sb.record(x); all.record(x); }
            sa.merge(&sb);
            prop_assert_eq!(sa, all);
            let total: u64 = all.hist.iter().map(|&c| u64::from(c)).sum();
            prop_assert_eq!(total, all.samples);
            prop_assert_eq!(all.samples, (a.len() + b.len()) as u64);
            if all.samples > 0 {
                if all.sum_ns() < u64::MAX {
                    prop_assert!(all.min_ns <= all.avg_ns() && all.avg_ns() <= all.max_ns);
                }
                prop_assert_eq!(all.min_ns, *a.iter().chain(&b).min().unwrap());
                prop_assert_eq!(all.max_ns, *a.iter().chain(&b).max().unwrap());
            }
        }
    }

    #[test]
    fn the_fine_histogram_counts_by_window_and_drains_in_order() {
        let h = FineHist::new();
        assert_eq!(FineHist::bucket_of(0), 0);
        assert_eq!(FineHist::bucket_of(99), 0);
        assert_eq!(FineHist::bucket_of(100), 1);
        assert_eq!(FineHist::bucket_of(51_199), FINE_BUCKETS - 1);
        assert_eq!(FineHist::bucket_of(51_200), FINE_BUCKETS);
        assert_eq!(FineHist::bucket_of(u64::MAX), FINE_BUCKETS);
        for ns in [150, 120, 2_050, 1_000_000] {
            h.record(ns);
        }
        let first = h.flip();
        h.record(330);
        let got: Vec<_> = h.drain(first).collect();
        assert_eq!(got, [(1, 2), (20, 1), (FINE_BUCKETS, 1)]);
        assert_eq!(h.drain(first).count(), 0, "drained means empty");
        let second = h.flip();
        assert_ne!(first, second);
        assert_eq!(h.drain(second).collect::<Vec<_>>(), [(3, 1)]);
        h.halves[h.active.load(Ordering::Relaxed)][7].store(u32::MAX, Ordering::Relaxed);
        h.record(750);
        let third = h.flip();
        assert_eq!(h.drain(third).collect::<Vec<_>>(), [(7, u32::MAX)], "saturates");
    }
}
