//! The co-kernel's status text, as Linux shows it (`/proc/hauki/status`, debugfs `hauki/status`).
//!
//! The co-kernel writes it (`cokernel/src/tasks/telemetry.rs`, `publish_status`) once per
//! reporting period, for people: its lines may grow from release to release, so [`parse`]
//! picks out what it knows and keeps every other line as it is ([`Status::other`]):
//!
//! ```text
//! Hauki co-kernel 0.1.0 up 1.522 s
//! latency: period 100000 ns; last report: 5000 samples, min 788 avg 875 max 1198 ns; deadline misses since boot 0
//! latency histogram: bucket0_ns 500 counts 0 4990 10 0 …
//! task         prio     kind  period_ns   releases  misses overruns   worst_ns     cpu_ms
//! control       200 periodic    1000000       1501       0        0       4241          1
//! latency       250 periodic     100000      15001       0        0       4340          6
//! linux: soft irq flag on, failures 0, restarts 0
//! channel control: sent 120, received 0, full 0, refused 0, linux open
//! …
//! ```

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Where Linux shows the status text: procfs (works without debugfs), then debugfs.
pub const STATUS_PATHS: [&str; 2] = ["/proc/hauki/status", "/sys/kernel/debug/hauki/status"];

/// Reads the status text from the first of [`STATUS_PATHS`] that can be read.
pub fn read() -> Result<String> {
    read_from(&STATUS_PATHS.map(Path::new))
}

/// Reads the status text from the first of `paths` that can be read. When none can:
/// [`Error::NoStatus`] if none exists, else the error of the first that exists.
pub fn read_from(paths: &[&Path]) -> Result<String> {
    let mut first = None;
    for p in paths {
        match std::fs::read(p) {
            Ok(bytes) => return Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                first.get_or_insert(Error::Read { path: p.to_path_buf(), source: e });
            }
        }
    }
    Err(first.unwrap_or_else(|| Error::NoStatus {
        path: paths.first().map_or_else(|| PathBuf::from(STATUS_PATHS[0]), |p| p.to_path_buf()),
    }))
}

/// The `latency:` line: the latency task's last reporting window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// The latency task's period.
    pub period_ns: Option<u64>,
    /// Releases measured in the last report.
    pub samples: Option<u64>,
    /// Smallest release latency in it.
    pub min_ns: Option<u64>,
    /// Mean release latency.
    pub avg_ns: Option<u64>,
    /// Largest release latency.
    pub max_ns: Option<u64>,
    /// Deadline misses since boot.
    pub misses_since_boot: Option<u64>,
}

/// The `latency histogram:` line: counts per bucket of the last report's release latencies.
///
/// Buckets as `cokernel/src/rt/hist.rs` makes them, with `b = bucket0_ns`: bucket 0 is
/// `[0, b)`, bucket `i ≥ 1` is `[b·2^(i−1), b·2^i)`, and the last bucket is open-ended
/// (`[b·2^(n−2), ∞)` for `n` buckets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    /// The upper bound of bucket 0, and the scale of the others.
    pub bucket0_ns: u64,
    /// Count per bucket.
    pub counts: Vec<u64>,
}

impl Histogram {
    /// Bucket `i`'s bounds: its lowest latency, and the first latency above it (`None` for the
    /// open-ended last bucket).
    pub fn bounds(&self, i: usize) -> (u64, Option<u64>) {
        let shifted = |k: usize| if k < 64 { self.bucket0_ns.checked_mul(1u64 << k) } else { None };
        let lower = if i == 0 { 0 } else { shifted(i - 1).unwrap_or(u64::MAX) };
        let upper = if i + 1 >= self.counts.len() { None } else { shifted(i) };
        (lower, upper)
    }

    /// The sum of the counts.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Parses the part after `latency histogram:`: `bucket0_ns B counts C0 C1 …` (also with
    /// `=`, commas or brackets).
    pub fn parse(rest: &str) -> Option<Histogram> {
        let cleaned: String =
            rest.chars().map(|c| if matches!(c, ',' | '[' | ']' | '=' | ':' | ';') { ' ' } else { c }).collect();
        let mut words = cleaned.split_whitespace();
        let (mut bucket0_ns, mut counts) = (None, None);
        while let Some(w) = words.next() {
            match w {
                "bucket0_ns" => bucket0_ns = words.next()?.parse::<u64>().ok(),
                "counts" => {
                    let c: Vec<u64> = words.by_ref().map_while(|w| w.parse().ok()).collect();
                    counts = Some(c);
                }
                _ => {}
            }
        }
        let (bucket0_ns, counts) = (bucket0_ns?, counts?);
        (bucket0_ns > 0 && !counts.is_empty()).then_some(Histogram { bucket0_ns, counts })
    }
}

/// One row of the task table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// The task's name.
    pub name: String,
    /// The other columns: (column name from the table's head, value), in order.
    pub values: Vec<(String, String)>,
}

impl Task {
    /// The value of column `column` (`prio`, `kind`, `period_ns`, `releases`, `misses`,
    /// `overruns`, `worst_ns`, `cpu_ms`, …).
    pub fn get(&self, column: &str) -> Option<&str> {
        self.values.iter().find(|(c, _)| c == column).map(|(_, v)| v.as_str())
    }

    /// The value of column `column` as a number.
    pub fn number(&self, column: &str) -> Option<u64> {
        self.get(column)?.parse().ok()
    }
}

/// A `channel NAME: …` line: the co-kernel's counters for a channel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelLine {
    /// The channel's name.
    pub name: String,
    /// Records (bytes) sent to Linux.
    pub sent: Option<u64>,
    /// Records (bytes) received from Linux.
    pub received: Option<u64>,
    /// Sends that found the ring to Linux full.
    pub full: Option<u64>,
    /// Values from Linux refused.
    pub refused: Option<u64>,
    /// Whether a Linux program has it open.
    pub linux_open: Option<bool>,
}

/// The status text, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// The first line (`Hauki co-kernel 0.1.0 up 1.522 s`).
    pub title: Option<String>,
    /// The `latency:` line.
    pub latency: Option<Latency>,
    /// The `latency histogram:` line.
    pub histogram: Option<Histogram>,
    /// The task table's column names (`task`, `prio`, …).
    pub task_columns: Vec<String>,
    /// The task table's rows, in order.
    pub tasks: Vec<Task>,
    /// The `channel NAME:` lines.
    pub channels: Vec<ChannelLine>,
    /// Every other line, in order, as it was.
    pub other: Vec<String>,
}

impl Status {
    /// The task named `name` (`latency` is the latency task).
    pub fn task(&self, name: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.name == name)
    }
}

/// The word after `key` in `words`, as a number.
fn after(words: &[&str], key: &str) -> Option<u64> {
    let i = words.iter().position(|w| *w == key)?;
    words.get(i + 1)?.parse().ok()
}

/// The word before `key` in `words`, as a number.
fn before(words: &[&str], key: &str) -> Option<u64> {
    let i = words.iter().position(|w| *w == key)?;
    words.get(i.checked_sub(1)?)?.parse().ok()
}

fn words(text: &str) -> Vec<&str> {
    text.split_whitespace().map(|w| w.trim_end_matches([',', ';', ':'])).collect()
}

fn parse_latency(rest: &str) -> Latency {
    let w = words(rest);
    Latency {
        period_ns: after(&w, "period"),
        samples: before(&w, "samples"),
        min_ns: after(&w, "min"),
        avg_ns: after(&w, "avg"),
        max_ns: after(&w, "max"),
        misses_since_boot: after(&w, "boot"),
    }
}

fn parse_channel(line: &str) -> Option<ChannelLine> {
    let rest = line.strip_prefix("channel ")?;
    let (name, counts) = rest.split_once(':')?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let w = words(counts);
    Some(ChannelLine {
        name: name.to_string(),
        sent: after(&w, "sent"),
        received: after(&w, "received"),
        full: after(&w, "full"),
        refused: after(&w, "refused"),
        linux_open: match w.iter().position(|x| *x == "linux").and_then(|i| w.get(i + 1)) {
            Some(&"open") => Some(true),
            Some(&"closed") => Some(false),
            _ => None,
        },
    })
}

/// A task row for a table with `columns`: at least as many words, every column after the name
/// a number except `kind` (a task name may hold spaces: the leading words are the name).
fn parse_task(line: &str, columns: &[String]) -> Option<Task> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let n = columns.len();
    if n < 2 || w.len() < n {
        return None;
    }
    let split = w.len() - (n - 1);
    let name = w[..split].join(" ");
    if name.ends_with(':') {
        return None;
    }
    let mut values = Vec::with_capacity(n - 1);
    for (col, v) in columns[1..].iter().zip(&w[split..]) {
        if col != "kind" && v.parse::<u64>().is_err() && *v != "-" {
            return None;
        }
        values.push((col.clone(), (*v).to_string()));
    }
    Some(Task { name, values })
}

/// Parses the status text; never fails (what it does not know goes to [`Status::other`]).
pub fn parse(text: &str) -> Status {
    let mut s = Status::default();
    let mut in_table = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if in_table {
            if let Some(t) = parse_task(line, &s.task_columns) {
                s.tasks.push(t);
                continue;
            }
            in_table = false;
        }
        let trimmed = line.trim_start();
        if i == 0 && line.starts_with("Hauki") {
            s.title = Some(line.trim().to_string());
        } else if let Some(rest) = trimmed.strip_prefix("latency histogram:") {
            match Histogram::parse(rest) {
                Some(h) => s.histogram = Some(h),
                None => s.other.push(line.to_string()),
            }
        } else if let Some(rest) = trimmed.strip_prefix("latency:") {
            s.latency = Some(parse_latency(rest));
        } else if trimmed.starts_with("task ") && s.task_columns.is_empty() {
            s.task_columns = trimmed.split_whitespace().map(String::from).collect();
            in_table = true;
        } else if let Some(c) = parse_channel(trimmed) {
            s.channels.push(c);
        } else if !line.trim().is_empty() {
            s.other.push(line.to_string());
        }
    }
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The status text of a system test run (`linux-guest-beside-rt`), with a histogram line and
    /// channel lines added as the co-kernel writes them.
    pub(crate) const SAMPLE: &str = "\
Hauki co-kernel 0.1.0 up 1.522 s
latency: period 100000 ns; last report: 5000 samples, min 788 avg 875 max 1198 ns; deadline misses since boot 0
latency histogram: bucket0_ns 500 counts 0 4990 8 2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
task         prio     kind  period_ns   releases  misses overruns   worst_ns     cpu_ms
control       200 periodic    1000000       1501       0        0       4241          1
phase         150 periodic    1000000       1501       0        0       5198          0
worker0       100 periodic    1000000       1500       0        0      21540         30
echo          120    event          0         12       0        0       3100          0
telemetry       1 periodic  500000000          3       0        0     268910          0
latency       250 periodic     100000      15001       0        0       4340          6
linux: soft irq flag on, failures 0, restarts 0
events for linux: forwarded 1401, logged 1497, replayed 927, upcalls 739, timer events 183
linux lines (irq: interrupts): 4: 1311
channel control: sent 1500, received 0, full 3, refused 0, linux open
channel setpoint: sent 0, received 2, full 0, refused 1, linux closed
hardware-off windows (worst since boot; site = where interrupts came back on):
      4096 ns x3        0xffff80000012c316
       671 ns x1        0xffffffff81600e8b
";

    #[test]
    fn the_sample_parses_whole() {
        let s = parse(SAMPLE);
        assert_eq!(s.title.as_deref(), Some("Hauki co-kernel 0.1.0 up 1.522 s"));
        assert_eq!(
            s.latency,
            Some(Latency {
                period_ns: Some(100_000),
                samples: Some(5000),
                min_ns: Some(788),
                avg_ns: Some(875),
                max_ns: Some(1198),
                misses_since_boot: Some(0),
            })
        );
        let h = s.histogram.as_ref().unwrap();
        assert_eq!((h.bucket0_ns, h.counts.len(), h.total()), (500, 24, 5000));
        assert_eq!(s.task_columns[..3], ["task", "prio", "kind"]);
        let names: Vec<&str> = s.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["control", "phase", "worker0", "echo", "telemetry", "latency"]);
        let lat = s.task("latency").unwrap();
        assert_eq!(lat.number("prio"), Some(250));
        assert_eq!(lat.get("kind"), Some("periodic"));
        assert_eq!(lat.number("releases"), Some(15001));
        assert_eq!(lat.number("cpu_ms"), Some(6));
        assert_eq!(s.task("echo").unwrap().get("kind"), Some("event"));
        assert_eq!(
            s.channels,
            [
                ChannelLine {
                    name: "control".into(),
                    sent: Some(1500),
                    received: Some(0),
                    full: Some(3),
                    refused: Some(0),
                    linux_open: Some(true)
                },
                ChannelLine {
                    name: "setpoint".into(),
                    sent: Some(0),
                    received: Some(2),
                    full: Some(0),
                    refused: Some(1),
                    linux_open: Some(false)
                },
            ]
        );
        assert_eq!(s.other.len(), 6, "{:?}", s.other);
        assert_eq!(s.other[0], "linux: soft irq flag on, failures 0, restarts 0");
        assert_eq!(s.other[5], "       671 ns x1        0xffffffff81600e8b");
    }

    #[test]
    fn the_table_ends_at_the_first_line_that_is_no_row() {
        // "linux: soft irq flag on, failures 0, restarts 0" has nine words, like a row.
        let s = parse("task prio kind\na 1 periodic\nb c 2 event\nlinux: x 3\nd 4 periodic\n");
        let names: Vec<&str> = s.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "b c"]);
        assert_eq!(s.other, ["linux: x 3", "d 4 periodic"]);
    }

    #[test]
    fn crlf_and_a_missing_histogram_and_odd_lines() {
        let s =
            parse("Hauki co-kernel 0.2.0 up 3.000 s\r\nlatency: period 50000 ns\r\nlatency histogram: soon\r\n\r\n");
        assert_eq!(s.latency.as_ref().and_then(|l| l.period_ns), Some(50000));
        assert_eq!(s.latency.as_ref().and_then(|l| l.samples), None);
        assert_eq!(s.histogram, None);
        assert_eq!(s.other, ["latency histogram: soon"]);
        assert_eq!(parse(""), Status::default());
    }

    #[test]
    fn histogram_forms_and_bounds() {
        let h = Histogram::parse(" bucket0_ns 500 counts 1 2 3 4").unwrap();
        assert_eq!(h.counts, [1, 2, 3, 4]);
        assert_eq!(h.bounds(0), (0, Some(500)));
        assert_eq!(h.bounds(1), (500, Some(1000)));
        assert_eq!(h.bounds(2), (1000, Some(2000)));
        assert_eq!(h.bounds(3), (2000, None));
        let h = Histogram::parse("bucket0_ns=500, counts=[0, 7, 1]").unwrap();
        assert_eq!((h.bucket0_ns, h.counts.clone()), (500, vec![0, 7, 1]));
        assert_eq!(Histogram::parse("counts 1 2"), None);
        assert_eq!(Histogram::parse("bucket0_ns 500 counts"), None);
        assert_eq!(Histogram::parse("bucket0_ns 0 counts 1"), None);
        // The co-kernel's 24 buckets: as cokernel/src/rt/hist.rs says.
        let h = Histogram { bucket0_ns: 500, counts: vec![0; 24] };
        assert_eq!(h.bounds(22), (1_048_576_000, Some(2_097_152_000)));
        assert_eq!(h.bounds(23), (2_097_152_000, None));
        let huge = Histogram { bucket0_ns: u64::MAX / 2, counts: vec![0; 80] };
        assert_eq!(huge.bounds(2), (u64::MAX - 1, None));
        assert_eq!(huge.bounds(70), (u64::MAX, None));
    }

    /// The lines parsed here are the ones the co-kernel writes (`publish_status`): its format
    /// strings, read from its source, still have the words the parser looks for.
    #[test]
    fn the_co_kernel_writes_what_is_parsed() {
        let src = include_str!("../../../cokernel/src/tasks/telemetry.rs");
        let publish = &src[src.find("fn publish_status").expect("publish_status")..];
        for format in [
            "\"Hauki co-kernel {} up {}.{:03} s\"",
            "\"latency: period {} ns; last report: {} samples, min {} avg {} max {} ns; deadline misses since boot {}\"",
            "\"latency histogram: bucket0_ns {} counts\"",
            "\"task\", \"prio\", \"kind\", \"period_ns\", \"releases\", \"misses\", \"overruns\", \"worst_ns\", \"cpu_ms\"",
            "\"channel {name}: sent {}, received {}, full {}, refused {}, linux {}\"",
        ] {
            assert!(publish.contains(format), "publish_status no longer writes {format}");
        }
        assert!(include_str!("../../../cokernel/src/rt/hist.rs").contains("pub const BUCKET0_NS: u64 = 500;"));
    }

    #[test]
    fn status_is_read_from_the_first_readable_path() {
        let dir = crate::sysfs::tests::TempDir::new("status");
        dir.write("debugfs", "Hauki co-kernel\n");
        let missing = dir.path().join("proc");
        let debugfs = dir.path().join("debugfs");
        assert_eq!(read_from(&[&missing, &debugfs]).unwrap(), "Hauki co-kernel\n");
        let e = read_from(&[&missing, &dir.path().join("other")]).unwrap_err();
        assert!(matches!(e, Error::NoStatus { ref path } if *path == missing), "{e:?}");
        // A directory exists but cannot be read as a file: its error, not "no status".
        let e = read_from(&[&missing, dir.path()]).unwrap_err();
        assert!(e.to_string().ends_with("(EISDIR)") || e.to_string().contains("directory"), "{e}");
    }
}
