//! `hauki-chanbench`: round trips and throughput of a channel against a pipe between two Linux
//! processes, measured the same way in the same run.
//!
//! - `hauki-chanbench echo [--count N] [--size S]`: N records of S bytes through the `echo`
//!   application's channel, each waiting for its echo (RT→Linux→RT round trip as Linux sees it:
//!   write, the real-time task's wake-up and send, Linux's wake-up and read).
//! - `hauki-chanbench pipe [--count N] [--size S]`: the same over two pipes to a child process
//!   that echoes.
//! - `hauki-chanbench to-rt [--count N]` / `from-rt [--count N]`: throughput one way, flat out,
//!   through the `bulk` application's `sink` (Linux writes) and `source` (Linux reads) channels:
//!   N records of 256 bytes, each a sequence number and a pattern; `from-rt` checks every byte
//!   of what it reads, the task checks what it drains (its `bulk` telemetry record).
//!
//! Prints one line: `ROUNDTRIP kind=… count=N size=S min_ns=… avg_ns=… max_ns=… records_per_s=…
//! mb_per_s=…`, or for the one-way kinds `THROUGHPUT kind=… count=N size=256 ns=…
//! records_per_s=… mb_per_s=…` (CLOCK_MONOTONIC: virtual time under QEMU's -icount).

use std::io::{Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use clap::{Parser, Subcommand};
use hauki_channel::{Access, Channel};

#[derive(Parser, Debug)]
#[command(name = "hauki-chanbench", about = "Channel round trips against a pipe ping-pong")]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand, Debug)]
enum What {
    /// Through the echo application's channel.
    Echo {
        /// Round trips.
        #[arg(long, default_value_t = 1000)]
        count: u32,
        /// Bytes per record (1 to 256).
        #[arg(long, default_value_t = 64)]
        size: usize,
    },
    /// Through two pipes to a child process that echoes.
    Pipe {
        /// Round trips.
        #[arg(long, default_value_t = 1000)]
        count: u32,
        /// Bytes per message.
        #[arg(long, default_value_t = 64)]
        size: usize,
    },
    /// Linux -> real-time, flat out: records written into the bulk application's `sink`.
    ToRt {
        /// Records (256 bytes each).
        #[arg(long, default_value_t = 10000)]
        count: u64,
    },
    /// Real-time -> Linux, flat out: records read from the bulk application's `source`.
    FromRt {
        /// Records (256 bytes each).
        #[arg(long, default_value_t = 10000)]
        count: u64,
    },
    /// The child's side of `pipe` (stdin to stdout, `size` bytes at a time).
    #[command(hide = true)]
    PipeChild {
        #[arg(long)]
        size: usize,
    },
}

/// Round-trip times in ns.
struct Stats {
    min: u128,
    max: u128,
    sum: u128,
    n: u32,
}

impl Stats {
    fn new() -> Stats {
        Stats { min: u128::MAX, max: 0, sum: 0, n: 0 }
    }
    fn add(&mut self, ns: u128) {
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
        self.sum += ns;
        self.n += 1;
    }
    fn line(&self, kind: &str, size: usize, total_ns: u128) -> String {
        let n = u128::from(self.n.max(1));
        let per_s = u128::from(self.n) * 1_000_000_000 / total_ns.max(1);
        let mb_s = per_s as f64 * size as f64 * 2.0 / 1e6; // both directions
        format!(
            "ROUNDTRIP kind={kind} count={} size={size} min_ns={} avg_ns={} max_ns={} records_per_s={per_s} mb_per_s={mb_s:.3}",
            self.n,
            if self.n > 0 { self.min } else { 0 },
            self.sum / n,
            self.max
        )
    }
}

fn payload(size: usize, i: u32) -> Vec<u8> {
    (0..size).map(|k| (k as u32).wrapping_mul(31).wrapping_add(i) as u8).collect()
}

fn echo(count: u32, size: usize) -> Result<String, String> {
    let ch = Channel::open_with("echo", Access::ReadWrite).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256];
    let mut st = Stats::new();
    let all = Instant::now();
    for i in 0..count {
        let msg = payload(size, i);
        let t = Instant::now();
        ch.send(&msg).map_err(|e| e.to_string())?;
        let n = ch.recv(&mut buf).map_err(|e| e.to_string())?;
        st.add(t.elapsed().as_nanos());
        if buf[..n] != msg[..] {
            return Err(format!("round trip {i}: the echo differs from what was sent"));
        }
    }
    Ok(st.line("channel", size, all.elapsed().as_nanos()))
}

/// The bulk application's records: sequence number, then `seq as u8 ^ index`.
const BULK_RECORD: usize = 256;

fn bulk_record(seq: u64) -> [u8; BULK_RECORD] {
    let mut r = [0u8; BULK_RECORD];
    r[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in r.iter_mut().enumerate().skip(8) {
        *b = seq as u8 ^ i as u8;
    }
    r
}

fn throughput_line(kind: &str, count: u64, ns: u128) -> String {
    let secs = ns as f64 / 1e9;
    format!(
        "THROUGHPUT kind={kind} count={count} size={BULK_RECORD} ns={ns} records_per_s={:.0} mb_per_s={:.2}",
        count as f64 / secs,
        (count as usize * BULK_RECORD) as f64 / secs / 1e6
    )
}

/// Writes `count` records into `sink` as fast as the channel takes them (the sequence starts
/// where the task expects: at what `sink` has received so far).
fn to_rt(count: u64) -> Result<String, String> {
    let ch = Channel::open_with("sink", Access::Write).map_err(|e| e.to_string())?;
    let first = hauki_channel::sysfs::channels()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|c| c.name == "sink")
        .and_then(|c| c.received)
        .unwrap_or(0);
    let t = Instant::now();
    for seq in first..first + count {
        ch.send(&bulk_record(seq)).map_err(|e| e.to_string())?;
    }
    Ok(throughput_line("to-rt", count, t.elapsed().as_nanos()))
}

/// Reads `count` records from `source` and checks each (the sequence continues from the first
/// one read).
fn from_rt(count: u64) -> Result<String, String> {
    let ch = Channel::open_with("source", Access::Read).map_err(|e| e.to_string())?;
    let mut buf = [0u8; BULK_RECORD];
    let t = Instant::now();
    let mut next = None;
    for i in 0..count {
        let n = ch.recv(&mut buf).map_err(|e| e.to_string())?;
        let seq = next.unwrap_or_else(|| u64::from_le_bytes(buf[..8].try_into().unwrap_or_default()));
        if n != BULK_RECORD || buf != bulk_record(seq) {
            return Err(format!("record {i} (sequence {seq}) is not what the task sends"));
        }
        next = Some(seq + 1);
    }
    Ok(throughput_line("from-rt", count, t.elapsed().as_nanos()))
}

fn pipe(count: u32, size: usize) -> Result<String, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(me)
        .args(["pipe-child", "--size", &size.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the echoing child: {e}"))?;
    let (mut to, mut from) = (child.stdin.take().ok_or("no stdin")?, child.stdout.take().ok_or("no stdout")?);
    let mut buf = vec![0u8; size];
    let mut st = Stats::new();
    let all = Instant::now();
    for i in 0..count {
        let msg = payload(size, i);
        let t = Instant::now();
        to.write_all(&msg).map_err(|e| e.to_string())?;
        from.read_exact(&mut buf).map_err(|e| e.to_string())?;
        st.add(t.elapsed().as_nanos());
        if buf != msg {
            return Err(format!("round trip {i}: the echo differs from what was sent"));
        }
    }
    let total = all.elapsed().as_nanos();
    drop(to);
    let _ = child.wait();
    Ok(st.line("pipe", size, total))
}

fn pipe_child(size: usize) -> Result<String, String> {
    let (mut i, mut o) = (std::io::stdin().lock(), std::io::stdout().lock());
    let mut buf = vec![0u8; size.max(1)];
    while i.read_exact(&mut buf).is_ok() {
        o.write_all(&buf).and_then(|()| o.flush()).map_err(|e| e.to_string())?;
    }
    Ok(String::new())
}

fn main() -> ExitCode {
    let r = match Args::parse().what {
        What::Echo { count, size } if (1..=256).contains(&size) => echo(count, size),
        What::Echo { .. } => Err("--size must be 1 to 256 (the echo channel's records)".into()),
        What::Pipe { count, size } if size > 0 => pipe(count, size),
        What::Pipe { .. } => Err("--size must be at least 1".into()),
        What::ToRt { count } => to_rt(count),
        What::FromRt { count } => from_rt(count),
        What::PipeChild { size } => pipe_child(size),
    };
    match r {
        Ok(line) => {
            if !line.is_empty() {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hauki-chanbench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_has_every_figure() {
        let mut s = Stats::new();
        for ns in [1000, 3000, 2000] {
            s.add(ns);
        }
        let l = s.line("pipe", 64, 6000);
        assert!(l.starts_with("ROUNDTRIP kind=pipe count=3 size=64 min_ns=1000 avg_ns=2000 max_ns=3000"), "{l}");
        assert!(l.contains("records_per_s=500000 "), "{l}");
    }
}
