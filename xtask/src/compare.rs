//! The latency comparison's measurements (issue 13's `bench --compare`, in progress): what
//! cyclictest prints under PREEMPT_RT and stock Linux, read into one histogram form with the
//! figures the table shows.

/// A latency histogram in buckets of `bucket_ns` (bucket `i`: `[i·bucket_ns, (i+1)·bucket_ns)`),
/// the samples beyond the last bucket, and the extremes and mean as the system measured them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    /// Width of a bucket (ns): 1000 for cyclictest, 100 for the co-kernel's fine histogram.
    pub bucket_ns: u64,
    /// Samples per bucket.
    pub buckets: Vec<u64>,
    /// Samples at or beyond `buckets.len()·bucket_ns`.
    pub overflows: u64,
    /// The smallest latency (ns; cyclictest's are whole µs).
    pub min_ns: u64,
    /// The mean (ns).
    pub avg_ns: u64,
    /// The largest latency (ns), exact even when it overflowed the histogram.
    pub max_ns: u64,
}

impl Histogram {
    /// Every sample, in range or not.
    pub fn samples(&self) -> u64 {
        self.buckets.iter().sum::<u64>() + self.overflows
    }

    /// The latency (ns) at or below which a fraction `q` of the samples lie, as the upper edge of
    /// the bucket holding that sample (so a coarser histogram is never flattered); `None` if it
    /// falls among the overflows (or there are no samples).
    pub fn percentile_ns(&self, q: f64) -> Option<u64> {
        let n = self.samples();
        if n == 0 {
            return None;
        }
        let want = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Some((i as u64 + 1) * self.bucket_ns);
            }
        }
        None
    }

    /// Adds `other`'s samples (same bucket width), as if both windows were one.
    pub fn merge(&mut self, other: &Histogram) {
        let (n, m) = (self.samples(), other.samples());
        if m == 0 {
            return;
        }
        self.avg_ns = ((u128::from(self.avg_ns) * u128::from(n) + u128::from(other.avg_ns) * u128::from(m))
            / u128::from(n + m)) as u64;
        self.min_ns = if n == 0 { other.min_ns } else { self.min_ns.min(other.min_ns) };
        self.max_ns = self.max_ns.max(other.max_ns);
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.overflows += other.overflows;
    }
}

/// Reads the histogram of thread 0 from `cyclictest -h N -q` output: `# Histogram`, then one
/// `%06d %06lu` line per 1 µs bucket, then `# Total:`, `# Min Latencies:`, `# Avg Latencies:`,
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
        bucket_ns: 1000,
        overflows: field("Histogram Overflows")?,
        min_ns: field("Min Latencies")? * 1000,
        avg_ns: field("Avg Latencies")? * 1000,
        max_ns: field("Max Latencies")? * 1000,
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

/// One window of the co-kernel's latency task: its `latency` record and the `latency_hist`
/// record that follows it (the same window at 100 ns resolution), checked against each other.
pub fn cokernel_window(latency: &Value, fine: &Value) -> Result<Histogram, String> {
    let num = |v: &Value, k: &str| v[k].as_u64().ok_or_else(|| format!("no number `{k}` in {v}"));
    let bucket_ns = num(fine, "bucket_ns")?;
    let nbuckets = num(fine, "buckets")? as usize;
    let first = num(fine, "first")? as usize;
    let counts = fine["counts"].as_array().ok_or_else(|| format!("no `counts` list in {fine}"))?;
    if bucket_ns == 0 || first + counts.len() > nbuckets || nbuckets > 1 << 20 {
        return Err(format!(
            "a latency_hist record out of shape (bucket_ns {bucket_ns}, {nbuckets} buckets, first {first}, {} counts)",
            counts.len()
        ));
    }
    let mut buckets = vec![0; nbuckets];
    for (i, c) in counts.iter().enumerate() {
        buckets[first + i] = c.as_u64().ok_or_else(|| format!("a count that is not a number in {fine}"))?;
    }
    let h = Histogram {
        bucket_ns,
        buckets,
        overflows: num(fine, "overflows")?,
        min_ns: num(latency, "min_ns")?,
        avg_ns: num(latency, "avg_ns")?,
        max_ns: num(latency, "max_ns")?,
    };
    let samples = num(latency, "samples")?;
    if h.samples() != samples {
        return Err(format!("the fine histogram holds {} samples, its latency record {samples}", h.samples()));
    }
    let in_bucket = |ns: u64| ((ns / bucket_ns) as usize).min(nbuckets);
    let nonempty = |i: usize| if i < nbuckets { h.buckets[i] > 0 } else { h.overflows > 0 };
    if samples > 0 && !(nonempty(in_bucket(h.min_ns)) && nonempty(in_bucket(h.max_ns))) {
        return Err(format!(
            "the fine histogram has no sample where its latency record's min {} ns or max {} ns lie",
            h.min_ns, h.max_ns
        ));
    }
    Ok(h)
}

/// Every window of the co-kernel's latency task in `recs` from the `from`-th `latency` record
/// to before the `to`-th, as one histogram, and the misses in them.
pub fn cokernel_histogram(recs: &[&Value], from: usize, to: usize) -> Result<(Histogram, u64), String> {
    cokernel_histogram_of(recs, 0, from, to)
}

/// The CPU a record is about (`cpu`; records from before there were several say none: CPU 0).
pub fn record_cpu(r: &Value) -> u64 {
    r["cpu"].as_u64().unwrap_or(0)
}

/// As [`cokernel_histogram`], for CPU `cpu`'s latency task (each CPU's records are paired among
/// themselves: the other CPUs' interleave with them).
pub fn cokernel_histogram_of(recs: &[&Value], cpu: u64, from: usize, to: usize) -> Result<(Histogram, u64), String> {
    let mine: Vec<&Value> = recs
        .iter()
        .copied()
        .filter(|r| !(r["event"] == "latency" || r["event"] == "latency_hist") || record_cpu(r) == cpu)
        .collect();
    let recs = &mine[..];
    let mut total: Option<Histogram> = None;
    let mut misses = 0;
    let mut nth = 0;
    for (i, r) in recs.iter().enumerate() {
        if r["event"] != "latency" {
            continue;
        }
        nth += 1;
        if nth <= from || nth > to {
            continue;
        }
        let fine = recs[i + 1..]
            .iter()
            .take_while(|x| x["event"] != "latency")
            .find(|x| x["event"] == "latency_hist")
            .ok_or_else(|| format!("CPU {cpu}: latency record {nth} has no latency_hist record after it"))?;
        let w = cokernel_window(r, fine).map_err(|e| format!("CPU {cpu}: latency window {nth}: {e}"))?;
        misses += r["misses"].as_u64().unwrap_or(0);
        match &mut total {
            Some(t) => t.merge(&w),
            None => total = Some(w),
        }
    }
    total.map(|t| (t, misses)).ok_or_else(|| format!("CPU {cpu}: no latency windows between records {from} and {to}"))
}

use serde_json::Value;

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
        assert_eq!((h.min_ns, h.avg_ns, h.max_ns, h.overflows), (3000, 10_000, 269_000, 4887));
        assert_eq!(h.samples(), 5096 + 4887);
        // Half the samples lie in range up to 9 µs: the median is there; p99 is an overflow.
        assert_eq!(h.percentile_ns(0.0), Some(4000));
        assert_eq!(h.percentile_ns(0.5), Some(10_000));
        assert_eq!(h.percentile_ns(0.99), None);
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
        let h = Histogram {
            bucket_ns: 1000,
            buckets: vec![0, 90, 9, 1],
            overflows: 0,
            min_ns: 1000,
            avg_ns: 1000,
            max_ns: 3000,
        };
        assert_eq!(h.percentile_ns(0.5), Some(2000));
        assert_eq!(h.percentile_ns(0.9), Some(2000));
        assert_eq!(h.percentile_ns(0.99), Some(3000));
        assert_eq!(h.percentile_ns(0.999), Some(4000));
        assert_eq!(h.percentile_ns(1.0), Some(4000));
        let empty = Histogram { buckets: vec![0; 4], overflows: 0, min_ns: 0, avg_ns: 0, max_ns: 0, ..h.clone() };
        assert_eq!(empty.percentile_ns(0.5), None);
        let mut both = h.clone();
        both.merge(&Histogram { buckets: vec![0, 0, 0, 0, 0, 100], min_ns: 5000, avg_ns: 5000, max_ns: 5900, ..h });
        assert_eq!((both.samples(), both.min_ns, both.avg_ns, both.max_ns), (200, 1000, 3000, 5900));
    }

    fn rec(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn the_co_kernel_s_windows_are_read_and_checked_against_their_latency_records() {
        let lat = rec(r#"{"event":"latency","samples":5,"min_ns":150,"avg_ns":900,"max_ns":60000,"misses":1}"#);
        let fine =
            rec(r#"{"event":"latency_hist","bucket_ns":100,"buckets":512,"first":1,"counts":[2,0,2],"overflows":1}"#);
        let h = cokernel_window(&lat, &fine).unwrap();
        assert_eq!((h.buckets[1], h.buckets[3], h.overflows, h.samples()), (2, 2, 1, 5));
        let recs = [
            rec(r#"{"event":"latency","samples":0,"min_ns":0,"avg_ns":0,"max_ns":0}"#),
            lat.clone(),
            fine.clone(),
            lat.clone(),
            fine.clone(),
        ];
        let refs: Vec<&Value> = recs.iter().collect();
        let (both, misses) = cokernel_histogram(&refs, 1, 3).unwrap();
        assert_eq!((both.samples(), misses, both.max_ns), (10, 2, 60000));
        assert!(cokernel_histogram(&refs[..4], 1, 3).unwrap_err().contains("no latency_hist"));
        let short =
            rec(r#"{"event":"latency_hist","bucket_ns":100,"buckets":512,"first":1,"counts":[2,0,1],"overflows":1}"#);
        assert!(cokernel_window(&lat, &short).unwrap_err().contains("4 samples"));
        let hostile =
            rec(r#"{"event":"latency_hist","bucket_ns":100,"buckets":512,"first":511,"counts":[2,0,2],"overflows":1}"#);
        assert!(cokernel_window(&lat, &hostile).unwrap_err().contains("out of shape"));
        let elsewhere =
            rec(r#"{"event":"latency_hist","bucket_ns":100,"buckets":512,"first":2,"counts":[2,0,2],"overflows":1}"#);
        assert!(cokernel_window(&lat, &elsewhere).unwrap_err().contains("min 150 ns"));
    }

    #[test]
    fn each_cpu_s_windows_are_paired_among_themselves() {
        let lat0 = rec(r#"{"event":"latency","cpu":0,"samples":2,"min_ns":150,"avg_ns":150,"max_ns":150,"misses":0}"#);
        let fine0 = rec(
            r#"{"event":"latency_hist","cpu":0,"bucket_ns":100,"buckets":512,"first":1,"counts":[2],"overflows":0}"#,
        );
        let lat1 = rec(r#"{"event":"latency","cpu":1,"samples":3,"min_ns":350,"avg_ns":350,"max_ns":350,"misses":1}"#);
        let fine1 = rec(
            r#"{"event":"latency_hist","cpu":1,"bucket_ns":100,"buckets":512,"first":3,"counts":[3],"overflows":0}"#,
        );
        // Interleaved as two CPUs' reporters write them.
        let recs = [lat1.clone(), lat0.clone(), fine1.clone(), fine0.clone(), lat1, fine1];
        let refs: Vec<&Value> = recs.iter().collect();
        let (h0, m0) = cokernel_histogram_of(&refs, 0, 0, 9).unwrap();
        let (h1, m1) = cokernel_histogram_of(&refs, 1, 0, 9).unwrap();
        assert_eq!((h0.samples(), m0, h0.max_ns), (2, 0, 150));
        assert_eq!((h1.samples(), m1, h1.max_ns), (6, 2, 350));
        // The same records read as one CPU's do not pair up.
        assert!(cokernel_histogram_of(&refs, 2, 0, 9).unwrap_err().contains("CPU 2: no latency windows"));
    }
}
