//! Driving a shell on QEMU's COM1 the way a person would: QEMU's first serial port on its
//! stdin/stdout (pipes), commands typed, output read until a marker the shell itself computes
//! (so the echo of the typed command never matches). A wait ends when the guest has stopped
//! writing on its serial ports for the stall bound, or after the safety net ([`crate::progress`]):
//! never because the host is slow.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::progress::{GuestClock, Watch, last_line, last_line_of};
use crate::qemu::QemuConfig;
use crate::util::strip_ansi;

pub struct ShellConsole {
    child: Child,
    stdin: ChildStdin,
    out: Arc<Mutex<Vec<u8>>>,
    cursor: usize,
    log: PathBuf,
    marker: u32,
    /// The telemetry file (COM2), when it goes to one: its growth counts as progress.
    com2: Option<PathBuf>,
    /// Under icount the guest's clock (from the telemetry) bounds each wait as well.
    icount: bool,
}

impl ShellConsole {
    /// Starts QEMU with COM1 on pipes (`cfg.com1` is replaced by `stdio`). Output goes to
    /// `dir/console.log` as well.
    pub fn spawn(dir: &Path, cfg: &QemuConfig) -> Result<ShellConsole, String> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut cfg = cfg.clone();
        cfg.com1 = "stdio".into();
        cfg.monitor_none = true;
        std::fs::write(dir.join("cmdline.txt"), cfg.display_line() + "\n").map_err(|e| e.to_string())?;
        let log = dir.join("console.log");
        let mut child = cfg
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let out = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let out = Arc::clone(&out);
            let log = log.clone();
            std::thread::spawn(move || {
                let mut pipe = pipe;
                let mut buf = [0u8; 4096];
                let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&log).ok();
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Some(f) = file.as_mut() {
                        let _ = f.write_all(&buf[..n]);
                    }
                    if let Ok(mut o) = out.lock() {
                        o.extend_from_slice(&buf[..n]);
                    }
                }
            });
        }
        let com2 = cfg.com2.strip_prefix("file:").map(PathBuf::from);
        Ok(ShellConsole { child, stdin, out, cursor: 0, log, marker: 0, com2, icount: cfg.icount })
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything received so far (ANSI sequences and `\r` removed).
    pub fn text(&self) -> String {
        let o = self.out.lock().map(|o| o.clone()).unwrap_or_default();
        strip_ansi(&String::from_utf8_lossy(&o)).replace('\r', "")
    }

    /// Waits until `needle` appears after the cursor; returns the text before it and moves the
    /// cursor past it.
    pub fn expect(&mut self, needle: &str, bound: Duration) -> Result<String, String> {
        let mut watch = self.watch(bound);
        // Virtual time is the same on every host; without icount the guest's clock is the host's.
        let mut clock = self.com2.clone().filter(|_| self.icount).map(GuestClock::new);
        let budget = bound.as_nanos() as u64 / 4;
        loop {
            let raw = self.out.lock().map(|o| o.clone()).unwrap_or_default();
            let text = String::from_utf8_lossy(&raw[self.cursor.min(raw.len())..]).into_owned();
            if let Some(i) = text.find(needle) {
                self.cursor += text[..i + needle.len()].len();
                return Ok(strip_ansi(&text[..i]).replace('\r', ""));
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!("QEMU exited ({st}) before {needle:?} appeared"));
            }
            if let Some(why) = watch.expired(raw.len() as u64) {
                return Err(format!("{needle:?} did not appear: {why}; {}", self.last_seen(&text)));
            }
            if let Some(t) = clock.as_mut().map(GuestClock::elapsed_ns).filter(|&t| t > budget) {
                return Err(format!(
                    "{needle:?} did not appear within {:.1} s of the guest's own time; {}",
                    t as f64 / 1e9,
                    self.last_seen(&text)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn watch(&self, bound: Duration) -> Watch {
        Watch::new(self.com2.iter().cloned().collect(), bound)
    }

    /// What the guest last said, for a failure message.
    fn last_seen(&self, console: &str) -> String {
        let mut s = format!("last console line: {:?}", strip_ansi(last_line(console)));
        if let Some(c2) = &self.com2 {
            s += &format!(", last telemetry line: {}", last_line_of(c2));
        }
        s
    }

    /// Types `line` and Enter.
    pub fn send(&mut self, line: &str) -> Result<(), String> {
        self.stdin
            .write_all(line.as_bytes())
            .and_then(|_| self.stdin.write_all(b"\n"))
            .and_then(|_| self.stdin.flush())
            .map_err(|e| format!("cannot type into the console: {e}"))
    }

    /// Runs a shell command and returns its output and exit status.
    pub fn run(&mut self, cmd: &str, bound: Duration) -> Result<(String, i32), String> {
        self.marker += 1;
        let n = self.marker;
        // The shell prints `@@<n+1>@@ <status>`; the echoed command line shows `$((n+1))` instead.
        let line = format!("{cmd}; echo @@$(({n}+1))@@ $?");
        self.send(&line)?;
        let out = self.expect(&format!("@@{}@@ ", n + 1), bound)?;
        let status_line = self.expect("\n", bound)?;
        let status = status_line.trim().parse::<i32>().map_err(|_| format!("no exit status after {cmd:?}"))?;
        Ok((strip_echo(&out, &line).to_string(), status))
    }

    /// Waits for QEMU to exit; its status.
    pub fn wait_exit(&mut self, bound: Duration) -> Result<Option<i32>, String> {
        let mut watch = self.watch(bound);
        loop {
            if let Some(st) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(st.code());
            }
            let len = self.out.lock().map(|o| o.len()).unwrap_or(0) as u64;
            if let Some(why) = watch.expired(len) {
                return Err(format!("QEMU did not exit: {why}; {}", self.last_seen(&self.text())));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// What follows the shell's echo of `sent` in `out`. The echo may be wrapped at the terminal width
/// (line breaks inserted anywhere), so it is matched character by character ignoring CR/LF; if it
/// does not match, the first line is taken as the echo.
fn strip_echo<'a>(out: &'a str, sent: &str) -> &'a str {
    // The echo follows the prompt; its first few characters are never wrapped. A command typed
    // before the previous prompt appeared is echoed twice (by the terminal at once, then again by
    // the shell's line editor after its prompt): the output follows the last complete echo.
    let head: String = sent.chars().take(8).collect();
    let starts: Vec<usize> = out.match_indices(&head).map(|(i, _)| i).collect();
    for &start in starts.iter().rev() {
        if let Some(end) = echo_end(out, start, sent) {
            return out[end..].split_once('\n').map_or("", |x| x.1);
        }
    }
    out.split_once('\n').map_or("", |x| x.1)
}

/// Where the echo of `sent` that begins at `start` ends (CR/LF inserted by wrapping ignored).
fn echo_end(out: &str, start: usize, sent: &str) -> Option<usize> {
    let mut want = sent.chars().peekable();
    for (i, c) in out[start..].char_indices() {
        if want.peek().is_none() {
            return Some(start + i);
        }
        if c == '\r' || c == '\n' {
            continue;
        }
        if want.next() != Some(c) {
            return None;
        }
    }
    want.peek().is_none().then_some(out.len())
}

impl Drop for ShellConsole {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod echo_tests {
    use super::strip_echo;

    #[test]
    fn a_command_typed_ahead_of_the_prompt_is_echoed_twice_and_both_are_removed() {
        let sent = "echo $((6*7)); echo @@$((5+1))@@ $?";
        let out = "echo $((6*7)); echo @@$((5+1))@@ $?\r\nhauki:/# echo $((6*7)); echo @@$((5+1))@@ $?\r\n42\r\n";
        assert_eq!(strip_echo(out, sent), "42\r\n");
    }

    #[test]
    fn wrapped_echo_is_removed() {
        let sent = "cat /sys/x; echo @@$((3+1))@@ $?";
        assert_eq!(strip_echo("cat /sys/x; echo @@\r\n$((3+1))@@ $?\r\nhauki\r\n", sent), "hauki\r\n");
        assert_eq!(
            strip_echo("hauki:/# \x1b[6ncat /sys/x; echo @@\r\r\n$((3+1))@@ $?\r\nhauki\r\n", sent),
            "hauki\r\n"
        );
        assert_eq!(strip_echo("cat /sys/x; echo @@$((3+1))@@ $?\r\nA\nB\n", sent), "A\nB\n");
        // Not the echo we sent: the first line is dropped.
        assert_eq!(strip_echo("garbled\nbody\n", sent), "body\n");
    }
}
