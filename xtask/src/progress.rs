//! Waits that judge a guest by what it does, not by the host's clock.
//!
//! A test waits for something the guest does (a console marker, a telemetry record, QEMU's exit).
//! A slow or busy host makes the guest slower, not different, so the wall clock is never the
//! criterion: a wait gives up only when the guest has *stopped doing anything* — nothing new on its
//! serial ports for the stall bound ([`crate::suite::hard_timeout`], 120 s unless
//! `HAUKI_QEMU_TIMEOUT` says otherwise) — or, as a last safety net against a guest that talks
//! forever without getting anywhere, after [`SLOW_FACTOR`] stall bounds in all. Where the guest
//! reports telemetry under icount, its own clock is a budget as well ([`GuestClock`]: a wait also ends when
//! the guest's time advanced by a quarter of the stall bound, which no step needs: virtual time
//! under icount, so the same on every host). Either way the message says what was last seen.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The absolute safety net, in stall bounds: a host this many times slower than usual still passes.
pub const SLOW_FACTOR: u32 = 8;

/// Output a wait watches: files that grow (serial-port logs), plus what the caller reports.
pub struct Watch {
    files: Vec<PathBuf>,
    stall: Duration,
    start: Instant,
    last_change: Instant,
    last_size: u64,
}

impl Watch {
    /// Starts watching `files` with the stall bound `stall`.
    pub fn new(files: Vec<PathBuf>, stall: Duration) -> Watch {
        Watch::new_at(files, stall, Instant::now())
    }

    fn new_at(files: Vec<PathBuf>, stall: Duration, now: Instant) -> Watch {
        let mut w = Watch { files, stall, start: now, last_change: now, last_size: 0 };
        w.last_size = w.size(0);
        w
    }

    fn size(&self, extra: u64) -> u64 {
        extra + self.files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum::<u64>()
    }

    /// Whether to give up now, and why. `extra` is output the caller holds in memory (it counts as
    /// progress when it grows).
    pub fn expired(&mut self, extra: u64) -> Option<String> {
        self.expired_at(extra, Instant::now())
    }

    fn expired_at(&mut self, extra: u64, now: Instant) -> Option<String> {
        let size = self.size(extra);
        if size != self.last_size {
            self.last_size = size;
            self.last_change = now;
        }
        let quiet = now.duration_since(self.last_change);
        let total = now.duration_since(self.start);
        if quiet >= self.stall {
            return Some(format!(
                "the guest wrote nothing on its serial ports for {} s (stall bound)",
                quiet.as_secs()
            ));
        }
        if total >= self.stall * SLOW_FACTOR {
            return Some(format!(
                "still not there after {} s although the guest kept writing (safety net)",
                total.as_secs()
            ));
        }
        None
    }
}

/// The guest's own clock, read from its telemetry: every `latency` record covers `samples` periods
/// of `period_ns` of the guest's time (virtual under icount).
pub struct GuestClock {
    path: PathBuf,
    offset: u64,
    elapsed_ns: u64,
}

impl GuestClock {
    /// Counts from what `path` holds now.
    pub fn new(path: PathBuf) -> GuestClock {
        let offset = std::fs::metadata(&path).map_or(0, |m| m.len());
        GuestClock { path, offset, elapsed_ns: 0 }
    }

    /// The guest time covered by the records written since [`GuestClock::new`].
    pub fn elapsed_ns(&mut self) -> u64 {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(&self.path) else { return self.elapsed_ns };
        let mut new = Vec::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_end(&mut new).is_err() {
            return self.elapsed_ns;
        }
        let Some(end) = new.iter().rposition(|&b| b == b'\n') else { return self.elapsed_ns };
        self.offset += end as u64 + 1;
        self.elapsed_ns += covered_ns(&String::from_utf8_lossy(&new[..end]));
        self.elapsed_ns
    }
}

/// Guest time covered by the `latency` records among `lines`.
fn covered_ns(lines: &str) -> u64 {
    lines
        .lines()
        .filter(|l| l.starts_with('{') && l.contains("\"latency\""))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["event"] == "latency")
        .map(|r| {
            r["samples"]
                .as_u64()
                .unwrap_or(0)
                .saturating_add(r["misses"].as_u64().unwrap_or(0))
                .saturating_mul(r["period_ns"].as_u64().unwrap_or(0))
        })
        .sum()
}

/// The last non-empty line of `text`, for failure messages.
pub fn last_line(text: &str) -> &str {
    text.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("(nothing)")
}

/// The last line of the file at `path`.
pub fn last_line_of(path: &std::path::Path) -> String {
    let t = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let l = last_line(&t);
    if l.len() > 300 { format!("{}…", &l[..l.floor_char_boundary(300)]) } else { l.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_output_keeps_a_wait_alive_and_silence_ends_it() {
        let dir = std::env::temp_dir().join(format!("hauki-progress-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("com2");
        std::fs::write(&f, b"a").unwrap();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = Watch::new_at(vec![f.clone()], s(10), t0);
        // Output every 9 s keeps the wait going...
        for i in 1..8 {
            std::fs::write(&f, "a".repeat(i + 1)).unwrap();
            assert_eq!(w.expired_at(0, t0 + s(9 * i as u64)), None, "growing output at step {i}");
        }
        // ...until the safety net (8 stall bounds in all).
        std::fs::write(&f, "a".repeat(20)).unwrap();
        let why = w.expired_at(0, t0 + s(81)).expect("the safety net ends the wait");
        assert!(why.contains("safety net"), "{why}");
        // Silence for a stall bound ends it.
        let mut w = Watch::new_at(vec![f.clone()], s(10), t0);
        assert_eq!(w.expired_at(0, t0 + s(9)), None);
        let why = w.expired_at(0, t0 + s(10)).expect("silence ends the wait");
        assert!(why.contains("wrote nothing"), "{why}");
        // In-memory output counts too.
        let mut w = Watch::new_at(vec![], s(10), t0);
        assert_eq!(w.expired_at(5, t0 + s(9)), None);
        assert_eq!(w.expired_at(6, t0 + s(18)), None);
        assert!(w.expired_at(6, t0 + s(28)).is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn guest_time_is_read_from_latency_records() {
        let l = |samples: u64, misses: u64| {
            format!(
                "{{\"event\":\"latency\",\"task\":\"latency\",\"period_ns\":1000,\"samples\":{samples},\"misses\":{misses}}}\n"
            )
        };
        let text = format!(
            "hauki: latency 3 samples\n{}{{\"event\":\"task\",\"task\":\"latency\"}}\n{}",
            l(250, 0),
            l(240, 10)
        );
        assert_eq!(covered_ns(&text), 500_000);
        let dir = std::env::temp_dir().join(format!("hauki-clock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("com2");
        std::fs::write(&f, l(100, 0)).unwrap();
        let mut c = GuestClock::new(f.clone());
        assert_eq!(c.elapsed_ns(), 0, "what was there before does not count");
        // A record still being written counts once it is complete.
        let full = l(100, 0) + &l(5, 0) + "{\"event\":\"lat";
        std::fs::write(&f, &full).unwrap();
        assert_eq!(c.elapsed_ns(), 5_000);
        std::fs::write(&f, full + "ency\",\"period_ns\":1000,\"samples\":7,\"misses\":0}\n").unwrap();
        assert_eq!(c.elapsed_ns(), 12_000);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn last_line_skips_blank_lines() {
        assert_eq!(last_line("a\nb\n\n  \n"), "b");
        assert_eq!(last_line(""), "(nothing)");
    }
}
