//! The text forms `haukictl` prints: durations, tables, the status report, histogram bars,
//! records as text or hex. Plain ASCII, so they read the same on a serial console and in a log.

use std::fmt::Write;

use crate::status::{Histogram, Latency, Status};
use crate::sysfs::ChannelInfo;

/// `ns` nanoseconds in the largest unit that keeps it ≥ 1, with up to three decimals:
/// `788 ns`, `4.241 us`, `100 us`, `1.024 ms`, `2.097 s`.
pub fn duration_ns(ns: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "us")];
    for (scale, unit) in UNITS {
        if ns >= scale {
            let whole = ns / scale;
            // Thousandths, rounded down (a bucket's bound is never shown larger than it is).
            let frac = (ns % scale) / (scale / 1000);
            return if frac == 0 {
                format!("{whole} {unit}")
            } else {
                let f = format!("{frac:03}");
                format!("{whole}.{} {unit}", f.trim_end_matches('0'))
            };
        }
    }
    format!("{ns} ns")
}

/// Lays out `rows` under `head` in columns two spaces apart; the columns marked in `right` are
/// right-aligned. No trailing spaces.
pub fn table(head: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let head_row: Vec<String> = head.iter().map(|h| h.to_string()).collect();
    for r in std::iter::once(&head_row).chain(rows) {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i > 0 {
                line.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                let _ = write!(line, "{c:>w$}");
            } else {
                let _ = write!(line, "{c:<w$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn opt_ns(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), duration_ns)
}

/// The `latency:` line in words: `period 100 us; last report 5000 samples: min 788 ns, avg …`.
pub fn latency_summary(l: &Latency) -> String {
    format!(
        "period {}; last report {} samples: min {}, avg {}, max {}; deadline misses since boot {}",
        opt_ns(l.period_ns),
        opt(l.samples),
        opt_ns(l.min_ns),
        opt_ns(l.avg_ns),
        opt_ns(l.max_ns),
        opt(l.misses_since_boot)
    )
}

/// The task table: every task (the latency task included) with every column the co-kernel
/// gives, `_ns` and `_ms` columns as durations (an event task's period 0 as `-`).
pub fn task_table(s: &Status) -> String {
    if s.task_columns.is_empty() {
        return String::new();
    }
    let head: Vec<String> = s
        .task_columns
        .iter()
        .map(|c| c.strip_suffix("_ns").or_else(|| c.strip_suffix("_ms")).unwrap_or(c).to_string())
        .collect();
    let right: Vec<bool> = s.task_columns.iter().map(|c| c != "task" && c != "kind").collect();
    let rows: Vec<Vec<String>> = s
        .tasks
        .iter()
        .map(|t| {
            let mut row = vec![t.name.clone()];
            for (col, v) in &t.values {
                let n = v.parse::<u64>().ok();
                row.push(match (col.as_str(), n) {
                    ("period_ns", Some(0)) => "-".to_string(),
                    (c, Some(n)) if c.ends_with("_ns") => duration_ns(n),
                    (c, Some(n)) if c.ends_with("_ms") && n < 1000 => format!("{n} ms"),
                    (c, Some(n)) if c.ends_with("_ms") => duration_ns(n.saturating_mul(1_000_000)),
                    _ => v.clone(),
                });
            }
            row
        })
        .collect();
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    table(&head, &rows, &right)
}

/// The status report for people: title, latency, the task table, the channels' counts, then
/// every other line as the co-kernel wrote it.
pub fn status_report(s: &Status) -> String {
    let mut out = String::new();
    if let Some(t) = &s.title {
        let _ = writeln!(out, "{t}\n");
    }
    match &s.latency {
        Some(l) => {
            let _ = writeln!(out, "latency task: {}\n", latency_summary(l));
        }
        None => out.push_str("latency task: no latency line in the status text\n\n"),
    }
    if !s.tasks.is_empty() {
        out.push_str(&task_table(s));
        out.push('\n');
    }
    if !s.channels.is_empty() {
        out.push_str("channels (the co-kernel's counts):\n");
        let rows: Vec<Vec<String>> = s
            .channels
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    opt(c.sent),
                    opt(c.received),
                    opt(c.full),
                    opt(c.refused),
                    match c.linux_open {
                        Some(true) => "open".into(),
                        Some(false) => "closed".into(),
                        None => "-".into(),
                    },
                ]
            })
            .collect();
        out.push_str(&table(
            &["channel", "sent", "received", "full", "refused", "linux"],
            &rows,
            &[false, true, true, true, true, false],
        ));
        out.push('\n');
    }
    for l in &s.other {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// How [`histogram_bars`] draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarStyle {
    /// Characters of the longest bar.
    pub width: usize,
    /// Bar lengths on a logarithmic scale (`ln(1 + count)`), so that rare slow buckets show.
    pub log: bool,
    /// Every bucket, not only those from the first to the last non-empty one.
    pub all: bool,
}

impl Default for BarStyle {
    fn default() -> Self {
        Self { width: 50, log: false, all: false }
    }
}

/// A bucket's label: `0 - 500 ns`, `500 ns - 1 us`, `>= 2.097 s`.
pub fn bucket_label(h: &Histogram, i: usize) -> String {
    match h.bounds(i) {
        (lo, Some(hi)) => format!("{} - {}", if lo == 0 { "0".to_string() } else { duration_ns(lo) }, duration_ns(hi)),
        (lo, None) => format!(">= {}", duration_ns(lo)),
    }
}

/// Bar length for `count` against the largest count `max`: at least one character for a
/// non-empty bucket.
fn bar_len(count: u64, max: u64, style: BarStyle) -> usize {
    if count == 0 || max == 0 {
        return 0;
    }
    let f = if style.log { (count as f64).ln_1p() / (max as f64).ln_1p() } else { count as f64 / max as f64 };
    ((f * style.width as f64).round() as usize).clamp(1, style.width)
}

/// The histogram as horizontal bars, a bucket a line: its range, a bar of `#`, the count and
/// its share of the samples. An empty histogram is one line saying so.
pub fn histogram_bars(h: &Histogram, style: BarStyle) -> String {
    let total = h.total();
    let max = h.counts.iter().copied().max().unwrap_or(0);
    if total == 0 && !style.all {
        return "no samples in the last report\n".to_string();
    }
    let (first, last) = if style.all {
        (0, h.counts.len().saturating_sub(1))
    } else {
        let first = h.counts.iter().position(|&c| c > 0).unwrap_or(0);
        let last = h.counts.iter().rposition(|&c| c > 0).unwrap_or(0);
        (first, last)
    };
    let labels: Vec<String> = (first..=last).map(|i| bucket_label(h, i)).collect();
    let lw = labels.iter().map(String::len).max().unwrap_or(0);
    let cw = h.counts[first..=last].iter().map(|c| c.to_string().len()).max().unwrap_or(1);
    let mut out = String::new();
    for (label, i) in labels.iter().zip(first..=last) {
        let c = h.counts[i];
        let bar = "#".repeat(bar_len(c, max, style));
        let pct = if total == 0 { 0.0 } else { c as f64 * 100.0 / total as f64 };
        let w = style.width;
        let line = format!("{label:>lw$} |{bar:<w$} {c:>cw$} {pct:>6.2}%");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The channels as `haukictl channels` shows them: a line per channel with its shape, both
/// sides' presence and every counter (`-` where sysfs has no value).
pub fn channels_table(chans: &[ChannelInfo]) -> String {
    let rows: Vec<Vec<String>> = chans
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.kind.map_or("-", |k| k.as_str()).to_string(),
                c.direction.map_or("-", |d| d.as_str()).to_string(),
                match (c.kind, c.record_size) {
                    (Some(crate::Kind::Stream), _) => "-".to_string(),
                    (_, r) => opt(r),
                },
                opt(c.slots),
                c.rt_state.as_ref().map_or("-", |r| r.as_str()).to_string(),
                match c.linux_openers {
                    None => "-".to_string(),
                    Some(0) => "closed".to_string(),
                    Some(n) => format!("open({n})"),
                },
                opt(c.sent),
                opt(c.received),
                opt(c.full),
                opt(c.refused),
                opt(c.linux_read),
                opt(c.linux_written),
                opt(c.violations),
            ]
        })
        .collect();
    table(
        &[
            "channel",
            "kind",
            "direction",
            "record",
            "slots",
            "rt",
            "linux",
            "sent",
            "received",
            "full",
            "refused",
            "linux_read",
            "linux_written",
            "violations",
        ],
        &rows,
        &[false, false, false, true, true, false, false, true, true, true, true, true, true, true],
    )
}

/// Is `rec` a line of text: UTF-8 without control characters other than tab, at most one
/// line ending at its end?
pub fn is_text(rec: &[u8]) -> bool {
    let body = rec.strip_suffix(b"\n").map(|r| r.strip_suffix(b"\r").unwrap_or(r)).unwrap_or(rec);
    match std::str::from_utf8(body) {
        Ok(s) => !s.chars().any(|c| c.is_control() && c != '\t'),
        Err(_) => false,
    }
}

/// `rec` as hex bytes, space-separated: `de ad be ef`.
pub fn hex(rec: &[u8]) -> String {
    let mut s = String::with_capacity(rec.len() * 3);
    for (i, b) in rec.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A record as `haukictl cat` prints it, without the newline: text as it is (less one line
/// ending), anything else (or everything, with `force_hex`) as [`hex`].
pub fn record_line(rec: &[u8], force_hex: bool) -> String {
    if !force_hex && is_text(rec) {
        let body = rec.strip_suffix(b"\n").map(|r| r.strip_suffix(b"\r").unwrap_or(r)).unwrap_or(rec);
        String::from_utf8_lossy(body).into_owned()
    } else {
        hex(rec)
    }
}

/// Bytes from hex text: pairs of hex digits, with or without spaces, `:` or a `0x` prefix
/// (`de ad be ef`, `deadbeef`, `0xdeadbeef`).
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let t = text.trim();
    let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    let digits: Vec<u8> = t.bytes().filter(|b| !b.is_ascii_whitespace() && *b != b':').collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("{text:?} is not hex bytes: an odd number of digits"));
    }
    digits
        .chunks(2)
        .map(|p| {
            let s = std::str::from_utf8(p).map_err(|_| format!("{text:?} is not hex bytes"))?;
            u8::from_str_radix(s, 16).map_err(|_| format!("{text:?} is not hex bytes: {s:?}"))
        })
        .collect()
}

/// How much of `chunk` holds up to `lines` newline-ended lines: the length of that prefix and
/// the lines in it (for `haukictl cat -n N` on a byte channel).
pub fn take_lines(chunk: &[u8], lines: u64) -> (usize, u64) {
    let mut seen = 0;
    for (i, b) in chunk.iter().enumerate() {
        if *b == b'\n' {
            seen += 1;
            if seen == lines {
                return (i + 1, seen);
            }
        }
    }
    (chunk.len(), seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{parse, tests::SAMPLE};
    use crate::sysfs::{Direction, Kind, RtState};

    #[test]
    fn durations() {
        assert_eq!(duration_ns(0), "0 ns");
        assert_eq!(duration_ns(999), "999 ns");
        assert_eq!(duration_ns(1000), "1 us");
        assert_eq!(duration_ns(4241), "4.241 us");
        assert_eq!(duration_ns(268_910), "268.91 us");
        assert_eq!(duration_ns(100_000), "100 us");
        assert_eq!(duration_ns(1_024_000), "1.024 ms");
        assert_eq!(duration_ns(500_000_000), "500 ms");
        assert_eq!(duration_ns(2_097_152_000), "2.097 s");
        assert_eq!(duration_ns(1_500), "1.5 us");
    }

    #[test]
    fn tables_align_and_have_no_trailing_spaces() {
        let t = table(&["a", "bb", "c"], &[vec!["xxx".into(), "1".into(), "".into()]], &[false, true, false]);
        assert_eq!(t, "a    bb  c\nxxx   1\n");
    }

    #[test]
    fn the_report_shows_every_task_and_the_latency() {
        let r = status_report(&parse(SAMPLE));
        let lines: Vec<&str> = r.lines().collect();
        assert_eq!(lines[0], "Hauki co-kernel 0.1.0 up 1.522 s");
        assert_eq!(
            lines[2],
            "latency task: period 100 us; last report 5000 samples: min 788 ns, avg 875 ns, max 1.198 us; \
             deadline misses since boot 0"
        );
        assert_eq!(lines[4], "task       prio  kind      period  releases  misses  overruns      worst    cpu");
        assert_eq!(lines[5], "control     200  periodic    1 ms      1501       0         0   4.241 us   1 ms");
        assert_eq!(lines[7], "worker0     100  periodic    1 ms      1500       0         0   21.54 us  30 ms");
        assert_eq!(lines[8], "echo        120  event          -        12       0         0     3.1 us   0 ms");
        assert_eq!(lines[9], "telemetry     1  periodic  500 ms         3       0         0  268.91 us   0 ms");
        assert_eq!(lines[10], "latency     250  periodic  100 us     15001       0         0    4.34 us   6 ms");
        assert!(r.contains(
            "channel   sent  received  full  refused  linux\ncontrol   1500         0     3        0  open\n"
        ));
        assert!(r.contains("\nlinux: soft irq flag on, failures 0, restarts 0\n"));
        assert!(r.ends_with("       671 ns x1        0xffffffff81600e8b\n"));
        let bare = status_report(&parse("something else\n"));
        assert_eq!(bare, "latency task: no latency line in the status text\n\nsomething else\n");
    }

    #[test]
    fn bars_are_scaled_to_the_largest_bucket() {
        let h = Histogram { bucket0_ns: 500, counts: vec![0, 100, 50, 1, 0, 0] };
        let s = histogram_bars(&h, BarStyle { width: 10, log: false, all: false });
        assert_eq!(
            s,
            "500 ns - 1 us |########## 100  66.23%\n\
             \x20 1 us - 2 us |#####       50  33.11%\n\
             \x20 2 us - 4 us |#            1   0.66%\n"
        );
        let log = histogram_bars(&h, BarStyle { width: 10, log: true, all: false });
        assert!(log.lines().nth(2).unwrap().contains("|##  "), "{log}");
        let all = histogram_bars(&h, BarStyle { width: 4, log: false, all: true });
        let lines: Vec<&str> = all.lines().collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0], "   0 - 500 ns |       0   0.00%");
        assert_eq!(lines[5], "      >= 8 us |       0   0.00%");
        let empty = Histogram { bucket0_ns: 500, counts: vec![0; 24] };
        assert_eq!(histogram_bars(&empty, BarStyle::default()), "no samples in the last report\n");
        let sample = parse(SAMPLE).histogram.unwrap();
        let s = histogram_bars(&sample, BarStyle::default());
        assert_eq!(s.lines().count(), 3);
        assert!(
            s.starts_with("500 ns - 1 us |################################################## 4990  99.80%\n"),
            "{s}"
        );
        assert_eq!(bucket_label(&empty, 23), ">= 2.097 s");
        assert_eq!(bucket_label(&empty, 0), "0 - 500 ns");
    }

    #[test]
    fn channels_table_shows_every_counter() {
        let c = ChannelInfo {
            name: "echo".into(),
            kind: Some(Kind::Message),
            direction: Some(Direction::Both),
            policy: Some("refuse".into()),
            record_size: Some(256),
            slots: Some(16),
            rt_state: Some(RtState::Ready),
            linux_openers: Some(2),
            sent: Some(5),
            received: Some(6),
            full: Some(0),
            refused: Some(1),
            linux_read: Some(5),
            linux_written: Some(6),
            violations: Some(0),
        };
        let log = ChannelInfo {
            name: "echo-log".into(),
            kind: Some(Kind::Stream),
            record_size: Some(0),
            linux_openers: Some(0),
            ..Default::default()
        };
        let t = channels_table(&[c, log]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "channel   kind     direction  record  slots  rt     linux    sent  received  full  refused  linux_read  \
             linux_written  violations"
        );
        assert_eq!(
            lines[1],
            "echo      message  both          256     16  ready  open(2)     5         6     0        1           5  \
             \x20           6           0"
        );
        assert!(lines[2].starts_with("echo-log  stream   -               -      -  -      closed      -"), "{t}");
    }

    #[test]
    fn records_print_as_text_or_hex() {
        assert_eq!(record_line(b"{\"step\":2000}", false), "{\"step\":2000}");
        assert_eq!(record_line(b"echo 1: 4 bytes\n", false), "echo 1: 4 bytes");
        assert_eq!(record_line(b"crlf\r\n", false), "crlf");
        assert_eq!(record_line(b"tab\there", false), "tab\there");
        assert_eq!(record_line("caf\u{e9}".as_bytes(), false), "caf\u{e9}");
        assert_eq!(record_line(b"", false), "");
        assert_eq!(record_line(&1000u64.to_le_bytes(), false), "e8 03 00 00 00 00 00 00");
        assert_eq!(record_line(b"two\nlines", false), "74 77 6f 0a 6c 69 6e 65 73");
        assert_eq!(record_line(b"\xff\xfe", false), "ff fe");
        assert_eq!(record_line(b"AB", true), "41 42");
        assert!(is_text(b"2.5") && !is_text(b"\x1b[2J"));
    }

    #[test]
    fn hex_parses_back() {
        assert_eq!(parse_hex("de ad be ef").unwrap(), [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(parse_hex("0xDEADbeef").unwrap(), [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(parse_hex("01:02").unwrap(), [1, 2]);
        assert_eq!(parse_hex("").unwrap(), Vec::<u8>::new());
        assert!(parse_hex("abc").unwrap_err().contains("odd number"));
        assert!(parse_hex("zz").is_err());
        assert_eq!(parse_hex(&hex(b"\x00\x7f\xff")).unwrap(), b"\x00\x7f\xff");
    }

    #[test]
    fn lines_are_taken_from_a_stream() {
        assert_eq!(take_lines(b"a\nb\nc\n", 2), (4, 2));
        assert_eq!(take_lines(b"a\nb", 5), (3, 1));
        assert_eq!(take_lines(b"", 1), (0, 0));
    }
}
