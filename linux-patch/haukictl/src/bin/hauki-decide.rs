//! `hauki-decide`: the Linux program of the `bridge` application. It reads the controller's
//! requests (`{"seq":N,"position_milli":P,"velocity_milli":V}` on channel `requests`), answers
//! the newest with a decision (`{"seq":N,"gain_milli":G}` on `decisions`) and prints a line
//! every 100 answers. The controller uses an answer that arrives before its next period and falls
//! back to a safe gain otherwise, so this program may stop, die or be slow at any time.
//!
//! `--delay-ms N` answers N ms late (to watch the fallback); `--count N` stops after N answers.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use hauki_channel::{Access, Channel, Error};

#[derive(Parser, Debug)]
#[command(name = "hauki-decide", about = "Answers the bridge application's requests with decisions")]
struct Args {
    /// Answer this many milliseconds after the request arrived.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Stop after this many answers (0: never).
    #[arg(long, default_value_t = 0)]
    count: u64,
}

/// The integer after `"key":` in a request.
fn field(text: &str, key: &str) -> Option<i64> {
    let pat = format!("\"{key}\":");
    let rest = text[text.find(&pat)? + pat.len()..].trim_start();
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '-')).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The decision for a request: a gain (milli) that grows with the distance to the 5 rad target,
/// within what the controller accepts (0 to 5000).
fn decide(request: &str) -> Option<(i64, i64)> {
    let seq = field(request, "seq")?;
    let position = field(request, "position_milli")?;
    let gain = (1000 + (5000 - position).abs() / 4).clamp(200, 5000);
    Some((seq, gain))
}

fn run(args: &Args) -> Result<(), Error> {
    let requests = Channel::open_with("requests", Access::Read)?;
    let decisions = Channel::open_with("decisions", Access::Write)?;
    let mut answered: u64 = 0;
    loop {
        let mut newest = requests.recv_record(None)?;
        // Requests queued while this program was away are stale: answer the newest only.
        loop {
            match requests.recv_record(Some(Duration::ZERO)) {
                Ok(r) => newest = r,
                Err(Error::WouldBlock { .. } | Error::TimedOut { .. }) => break,
                Err(e) => return Err(e),
            }
        }
        let text = String::from_utf8_lossy(&newest);
        let Some((seq, gain)) = decide(&text) else {
            eprintln!("hauki-decide: not a request: {text}");
            continue;
        };
        if args.delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(args.delay_ms));
        }
        decisions.send(format!("{{\"seq\":{seq},\"gain_milli\":{gain}}}").as_bytes())?;
        answered += 1;
        if answered.is_multiple_of(100) {
            println!("hauki-decide: {answered} answers, last seq {seq} gain {gain}");
        }
        if args.count > 0 && answered >= args.count {
            println!("hauki-decide: {answered} answers, done");
            return Ok(());
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hauki-decide: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_gets_a_gain_the_controller_accepts() {
        assert_eq!(decide("{\"seq\":7,\"position_milli\":5000,\"velocity_milli\":0}"), Some((7, 1000)));
        assert_eq!(decide("{\"seq\":8,\"position_milli\":-90000}"), Some((8, 5000)));
        assert_eq!(decide("{\"seq\":9}"), None);
        assert_eq!(decide("garbage"), None);
    }
}
