//! The latency comparison's measurements (issue 13's `bench --compare`, in progress): what
//! cyclictest prints under PREEMPT_RT and stock Linux, read into one histogram form with the
//! figures the table shows.

/// A latency histogram in 1 µs buckets (bucket `i`: `i` µs, truncated, as cyclictest counts), the
/// samples beyond the last bucket, and the extremes and mean as the tool measured them (µs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    /// Samples per 1 µs bucket.
    pub buckets: Vec<u64>,
    /// Samples at or beyond `buckets.len()` µs.
    pub overflows: u64,
    /// The smallest latency (µs).
    pub min_us: u64,
    /// The mean (µs).
    pub avg_us: u64,
    /// The largest latency (µs), exact even when it overflowed the histogram.
    pub max_us: u64,
}

impl Histogram {
    /// Every sample, in range or not.
    pub fn samples(&self) -> u64 {
        self.buckets.iter().sum::<u64>() + self.overflows
    }

    /// The latency (µs, truncated) at or below which a fraction `q` of the samples lie; `None` if
    /// that falls among the overflows (or there are no samples).
    pub fn percentile_us(&self, q: f64) -> Option<u64> {
        let n = self.samples();
        if n == 0 {
            return None;
        }
        let want = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Some(i as u64);
            }
        }
        None
    }
}

/// Reads the histogram of thread 0 from `cyclictest -h N -q` output: `# Histogram`, then one
/// `%06d %06lu` line per bucket, then `# Total:`, `# Min Latencies:`, `# Avg Latencies:`,
/// `# Max Latencies:` and `# Histogram Overflows:` (one column per thread, thread 0 first).
pub fn parse_cyclictest(out: &str) -> Result<Histogram, String> {
    let mut lines = out.lines().map(str::trim).skip_while(|l| *l != "# Histogram");
    if lines.next().is_none() {
        return Err("no `# Histogram` in cyclictest's output".into());
    }
    let mut buckets = Vec::new();
    let mut fields = std::collections::HashMap::new();
    for l in lines {
        if let Some(rest) = l.strip_prefix("# ") {
            if let Some((k, v)) = rest.split_once(':')
                && let Some(first) = v.split_whitespace().next()
            {
                fields.insert(k.to_string(), first.to_string());
            }
            continue;
        }
        if l.is_empty() {
            continue;
        }
        let mut cols = l.split_whitespace();
        let (Some(b), Some(c)) = (cols.next(), cols.next()) else {
            return Err(format!("a histogram line without a count: {l:?}"));
        };
        let b: usize = b.parse().map_err(|e| format!("histogram bucket {b:?}: {e}"))?;
        if b != buckets.len() {
            return Err(format!("histogram bucket {b} after {} buckets", buckets.len()));
        }
        buckets.push(c.parse().map_err(|e| format!("histogram count {c:?}: {e}"))?);
    }
    let field = |k: &str| -> Result<u64, String> {
        let v = fields.get(k).ok_or_else(|| format!("no `# {k}:` in cyclictest's output"))?;
        v.parse().map_err(|e| format!("`# {k}: {v}`: {e}"))
    };
    let h = Histogram {
        overflows: field("Histogram Overflows")?,
        min_us: field("Min Latencies")?,
        avg_us: field("Avg Latencies")?,
        max_us: field("Max Latencies")?,
        buckets,
    };
    let total = field("Total")?;
    if total != h.buckets.iter().sum::<u64>() {
        return Err(format!("`# Total: {total}` is not the sum of the histogram ({})", h.buckets.iter().sum::<u64>()));
    }
    if h.buckets.is_empty() {
        return Err("an empty histogram".into());
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Verbatim from a 1 s run with `-h 10` (a host with no /dev/cpu_dma_latency), trimmed.
    const OUT: &str = "WARN: stat /dev/cpu_dma_latency failed: No such file or directory
# Histogram
000000 000000
000001 000000
000002 000000
000003 000001
000004 000003
000005 000022
000006 000391
000007 000922
000008 001690
000009 002067
# Total: 000005096
# Min Latencies: 00003
# Avg Latencies: 00010
# Max Latencies: 00269
# Histogram Overflows: 04887
# Histogram Overflow at cycle number:
# Thread 0: 00000 00001 00002 00003 00004 00005 00006 00007 00008 00009 # 04877 others
";

    #[test]
    fn cyclictest_histograms_are_read_with_their_figures() {
        let h = parse_cyclictest(OUT).unwrap();
        assert_eq!(h.buckets.len(), 10);
        assert_eq!(h.buckets[9], 2067);
        assert_eq!((h.min_us, h.avg_us, h.max_us, h.overflows), (3, 10, 269, 4887));
        assert_eq!(h.samples(), 5096 + 4887);
        // Half the samples lie in range up to 9 µs: the median is there; p99 is an overflow.
        assert_eq!(h.percentile_us(0.0), Some(3));
        assert_eq!(h.percentile_us(0.5), Some(9));
        assert_eq!(h.percentile_us(0.99), None);
    }

    #[test]
    fn broken_cyclictest_output_is_refused_with_the_reason() {
        assert!(parse_cyclictest("no histogram here").unwrap_err().contains("# Histogram"));
        let gap = OUT.replace("000004 000003\n", "");
        assert!(parse_cyclictest(&gap).unwrap_err().contains("bucket 5 after 4"));
        let total = OUT.replace("000005096", "000005097");
        assert!(parse_cyclictest(&total).unwrap_err().contains("not the sum"));
        let no_max = OUT.replace("# Max Latencies: 00269\n", "");
        assert!(parse_cyclictest(&no_max).unwrap_err().contains("Max Latencies"));
    }

    #[test]
    fn percentiles_of_a_histogram_in_range() {
        let h = Histogram { buckets: vec![0, 90, 9, 1], overflows: 0, min_us: 1, avg_us: 1, max_us: 3 };
        assert_eq!(h.percentile_us(0.5), Some(1));
        assert_eq!(h.percentile_us(0.9), Some(1));
        assert_eq!(h.percentile_us(0.99), Some(2));
        assert_eq!(h.percentile_us(0.999), Some(3));
        assert_eq!(h.percentile_us(1.0), Some(3));
        let empty = Histogram { buckets: vec![0; 4], overflows: 0, min_us: 0, avg_us: 0, max_us: 0 };
        assert_eq!(empty.percentile_us(0.5), None);
    }
}
