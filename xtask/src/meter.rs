//! Progress of a long step that counts its work (the Linux build counts the objects make
//! compiles): a progress bar with an estimate of the time left on stderr when that is a terminal,
//! and otherwise (CI logs) one line on stdout, beside the other `==>` lines, every [`LINE_EVERY`]
//! (counted or not), such as `linux build: 41% (490/1190 objects), ~5 min left`.
//!
//! The expected total is an estimate (the last build's count): the count may pass it, and the
//! meter then says the step is finishing instead of claiming more than 99%.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a line is printed when stderr is not a terminal.
pub const LINE_EVERY: Duration = Duration::from_secs(30);
/// Work counted before the rate is trusted for an estimate of the time left.
const MIN_FOR_ESTIMATE: u64 = 20;

/// Counts one step's work and shows it.
pub struct Meter {
    label: String,
    unit: &'static str,
    total: u64,
    done: Arc<AtomicU64>,
    start: Instant,
    bar: Option<ProgressBar>,
    /// Without a terminal: the thread printing a line every [`LINE_EVERY`] (even while nothing is
    /// counted, as during the final link), stopped by dropping the sender.
    ticker: Option<(Sender<()>, JoinHandle<()>)>,
}

impl Meter {
    /// A meter for `label` expecting about `total` units of work (`unit`, plural).
    pub fn new(label: &str, unit: &'static str, total: u64) -> Meter {
        let total = total.max(1);
        let start = Instant::now();
        let done = Arc::new(AtomicU64::new(0));
        let (bar, ticker) = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(&format!(
                "{{prefix}}: [{{bar:30}}] {{pos}}/~{{len}} {unit} ({{percent}}%), {{elapsed}} so far, {{msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(label.to_string());
            bar.set_message(time_left(0, total, Duration::ZERO));
            bar.enable_steady_tick(Duration::from_secs(1));
            (Some(bar), None)
        } else {
            let (stop, stopped) = mpsc::channel::<()>();
            let (label, count) = (label.to_string(), Arc::clone(&done));
            let thread = std::thread::spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(LINE_EVERY) {
                    let line = progress_line(&label, unit, count.load(Ordering::Relaxed), total, start.elapsed());
                    println!("{line}");
                }
            });
            (None, Some((stop, thread)))
        };
        Meter { label: label.to_string(), unit, total, done, start, bar, ticker }
    }

    /// One more unit of work done.
    pub fn inc(&mut self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = &self.bar {
            if done >= self.total {
                // Past the estimate: keep the bar short of full until the step ends.
                self.total = done + done / 50 + 1;
                bar.set_length(self.total);
            }
            bar.set_position(done);
            bar.set_message(time_left(done, self.total, self.start.elapsed()));
        }
    }

    /// How much work was counted.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Stops the bar or the periodic lines.
    fn stop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Some((stop, thread)) = self.ticker.take() {
            drop(stop);
            let _ = thread.join();
        }
    }

    /// The step ended: the bar or the lines stop, and one line says how much was done in how long.
    pub fn finish(&mut self, how: &str) {
        self.stop();
        let secs = self.start.elapsed().as_secs();
        println!("{}: {how}, {} {} in {}:{:02}", self.label, self.done(), self.unit, secs / 60, secs % 60);
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `label: P% (done/total unit), ~T left`: P stays below 100 and the time left is only estimated
/// (from the rate so far) once enough work was counted.
pub fn progress_line(label: &str, unit: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let total = total.max(1);
    if done >= total {
        return format!("{label}: {done} {unit} (past the ~{total} expected), finishing");
    }
    let percent = done * 100 / total;
    format!("{label}: {percent}% ({done}/{total} {unit}), {}", time_left(done, total, elapsed))
}

/// `~T left` from the rate so far, once enough work was counted to trust it.
fn time_left(done: u64, total: u64, elapsed: Duration) -> String {
    if done >= total {
        "finishing".to_string()
    } else if done < MIN_FOR_ESTIMATE {
        "estimating the time left".to_string()
    } else {
        let secs = elapsed.as_secs_f64() * (total - done) as f64 / done as f64;
        format!("{} left", approx(secs))
    }
}

/// A duration for humans: `~40 s`, `~4 min`.
fn approx(secs: f64) -> String {
    if secs < 90.0 {
        format!("~{} s", (secs / 10.0).ceil().max(1.0) as u64 * 10)
    } else {
        format!("~{} min", (secs / 60.0).round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meter_counts_and_stops() {
        let mut m = Meter::new("test step", "objects", 3);
        for _ in 0..5 {
            m.inc();
        }
        assert_eq!(m.done(), 5);
        m.finish("done");
        m.finish("twice is harmless");
    }

    #[test]
    fn lines_say_how_far_and_how_long() {
        let s = Duration::from_secs;
        assert_eq!(
            progress_line("linux build", "objects", 490, 1190, s(200)),
            "linux build: 41% (490/1190 objects), ~5 min left"
        );
        assert_eq!(
            progress_line("linux build", "objects", 5, 1190, s(30)),
            "linux build: 0% (5/1190 objects), estimating the time left"
        );
        assert_eq!(progress_line("x", "objects", 1100, 1190, s(440)), "x: 92% (1100/1190 objects), ~40 s left");
        assert_eq!(
            progress_line("x", "objects", 1200, 1190, s(500)),
            "x: 1200 objects (past the ~1190 expected), finishing"
        );
        assert_eq!(progress_line("x", "objects", 0, 0, s(1)), "x: 0% (0/1 objects), estimating the time left");
    }
}
