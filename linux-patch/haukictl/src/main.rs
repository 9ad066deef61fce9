//! `haukictl`: the co-kernel's status and the real-time tasks' channels from Linux's shell.
//!
//! Exit status: 0 when the command did what it was asked, 1 on a runtime error (one line on
//! stderr naming the channel and what the errno means), 2 on a usage error.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use hauki_channel::channel::DEV_DIR;
use hauki_channel::region::{self, Field, REGION_FILE, Value};
use hauki_channel::render::{self, BarStyle};
use hauki_channel::sysfs::{self, SYSFS_DIR};
use hauki_channel::{Access, Kind, OpenOptions, status};

#[derive(Parser, Debug)]
#[command(
    name = "haukictl",
    version,
    about = "The Hauki co-kernel's status and its channels to real-time tasks, from Linux",
    long_about = "The Hauki co-kernel's status and its channels to real-time tasks, from Linux.\n\n\
        Channels are /dev/hauki/NAME (one record per read or write on a message channel, a byte stream on a \
        byte channel); their counters are in /sys/kernel/hauki/channels/NAME/; the co-kernel's status text \
        is /proc/hauki/status.",
    after_help = "Exit status: 0 ok, 1 a runtime error (one line on stderr), 2 a usage error.",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Where the channels' devices are.
    #[arg(long, global = true, hide = true, value_name = "DIR", default_value = DEV_DIR)]
    dev_dir: PathBuf,
    /// Where the channels' sysfs directories are.
    #[arg(long, global = true, hide = true, value_name = "DIR", default_value = SYSFS_DIR)]
    sysfs_dir: PathBuf,
    /// Read the status text from FILE rather than /proc/hauki/status (or debugfs).
    #[arg(long, global = true, hide = true, value_name = "FILE")]
    status_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug, PartialEq)]
enum Command {
    /// The co-kernel's status: the latency task's last report, every task with its statistics,
    /// the channels' counts, Linux's events
    Status {
        /// Print the status text as the co-kernel wrote it
        #[arg(long)]
        raw: bool,
    },
    /// The latency task's release latencies of the last report, as horizontal bars
    Latency(LatencyArgs),
    /// One line per channel: kind, direction, record size, slots, both sides' state, counters
    Channels,
    /// Print what real-time tasks send on a channel: a line per record (text as it is, anything
    /// else as hex bytes); a byte channel's bytes as they come
    Cat(CatArgs),
    /// Send records to real-time tasks: one per MSG; `-` sends a record per line of stdin
    Send(SendArgs),
    /// The status and the histogram, refreshed every second until Ctrl-C
    Watch(WatchArgs),
    /// Fault injection (tests only): write into a channel's shared ring what a hostile Linux
    /// could, through debugfs hauki/channel-region
    #[command(hide = true)]
    Scribble(ScribbleArgs),
}

#[derive(Args, Debug, PartialEq)]
struct ScribbleArgs {
    /// The channel
    channel: String,
    /// `head` (ring from Linux), `tail` (ring to Linux), or `length` (a record of that length,
    /// published at the head of the ring from Linux)
    #[arg(value_parser = parse_field)]
    field: Field,
    /// N, 0xN, or +N / -N relative to the index it replaces
    #[arg(allow_hyphen_values = true)]
    value: Value,
    /// The region file
    #[arg(long, value_name = "FILE", default_value = REGION_FILE)]
    region: PathBuf,
}

fn parse_field(s: &str) -> Result<Field, String> {
    match s {
        "head" => Ok(Field::Head),
        "tail" => Ok(Field::Tail),
        "length" => Ok(Field::Length),
        _ => Err(format!("{s:?}: want head, tail or length")),
    }
}

#[derive(Args, Debug, PartialEq)]
struct LatencyArgs {
    /// Bar lengths on a logarithmic scale (rare slow buckets show)
    #[arg(long)]
    log: bool,
    /// Every bucket, the empty ones at both ends too
    #[arg(long)]
    all: bool,
    /// Characters of the longest bar
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=500))]
    width: u16,
}

#[derive(Args, Debug, PartialEq)]
struct CatArgs {
    /// The channel (haukictl channels lists them)
    channel: String,
    /// Stop after N records (lines, on a byte channel)
    #[arg(short = 'n', long = "count", value_name = "N")]
    count: Option<u64>,
    /// Print every record as hex bytes
    #[arg(short = 'x', long)]
    hex: bool,
    /// Fail (exit 1) when nothing comes for SECS seconds
    #[arg(short = 't', long, value_name = "SECS", value_parser = parse_seconds)]
    timeout: Option<Duration>,
}

#[derive(Args, Debug, PartialEq)]
struct SendArgs {
    /// The channel (haukictl channels lists them)
    channel: String,
    /// The records: each MSG is one (a byte channel gets it with a newline); `-` reads stdin, a
    /// record per line
    #[arg(required = true, value_name = "MSG", allow_hyphen_values = true)]
    messages: Vec<String>,
    /// Each MSG (and line) is hex bytes (`de ad be ef`, `deadbeef`, `0xdeadbeef`)
    #[arg(short = 'x', long)]
    hex: bool,
    /// Fail (exit 1) when the channel has no room for SECS seconds
    #[arg(short = 't', long, value_name = "SECS", value_parser = parse_seconds)]
    timeout: Option<Duration>,
}

#[derive(Args, Debug, PartialEq)]
struct WatchArgs {
    /// Seconds between refreshes
    #[arg(short = 'i', long, value_name = "SECS", default_value = "1", value_parser = parse_seconds)]
    interval: Duration,
    /// Stop after N refreshes
    #[arg(short = 'n', long = "count", value_name = "N")]
    count: Option<u64>,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.0..=1e9).contains(&v) {
        return Err(format!("{s} seconds is out of range (0 to 1e9)"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Why a command failed.
#[derive(Debug)]
enum Fail {
    /// A channel, sysfs or status error (exit 1).
    Lib(hauki_channel::Error),
    /// Writing the output or reading stdin failed (exit 1; a closed pipe on stdout is a normal end).
    Io(std::io::Error),
    /// Something else at run time (exit 1).
    Msg(String),
    /// An argument that cannot be used (exit 2).
    Usage(String),
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Lib(e) => write!(f, "{e}"),
            Fail::Io(e) => write!(f, "{e}"),
            Fail::Msg(m) | Fail::Usage(m) => f.write_str(m),
        }
    }
}

impl From<hauki_channel::Error> for Fail {
    fn from(e: hauki_channel::Error) -> Fail {
        Fail::Lib(e)
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Fail {
        Fail::Io(e)
    }
}

impl Fail {
    /// The process's exit status.
    fn exit_code(&self) -> u8 {
        match self {
            Fail::Usage(_) => 2,
            _ => 1,
        }
    }
}

impl Cli {
    fn options(&self) -> OpenOptions {
        let mut o = OpenOptions::new();
        o.dev_dir(&self.dev_dir).sysfs_dir(&self.sysfs_dir);
        o
    }

    fn status_text(&self) -> Result<String, Fail> {
        Ok(match &self.status_file {
            Some(f) => status::read_from(&[f])?,
            None => status::read()?,
        })
    }
}

fn run(cli: &Cli, input: &mut dyn BufRead, out: &mut dyn Write) -> Result<(), Fail> {
    match &cli.command {
        Command::Status { raw: true } => out.write_all(cli.status_text()?.as_bytes())?,
        Command::Status { raw: false } => {
            out.write_all(render::status_report(&status::parse(&cli.status_text()?)).as_bytes())?
        }
        Command::Latency(a) => latency(cli, a, out)?,
        Command::Channels => channels(cli, out)?,
        Command::Cat(a) => cat(cli, a, out)?,
        Command::Send(a) => send(cli, a, input)?,
        Command::Watch(a) => watch(cli, a, out)?,
        Command::Scribble(a) => {
            let done = region::scribble(&a.region, &a.channel, a.field, a.value).map_err(Fail::Msg)?;
            for (off, old, new) in done.writes {
                writeln!(out, "{}: region offset {off:#x}: {old} -> {new}", a.channel)?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn latency(cli: &Cli, a: &LatencyArgs, out: &mut dyn Write) -> Result<(), Fail> {
    let s = status::parse(&cli.status_text()?);
    if let Some(l) = &s.latency {
        writeln!(out, "latency task: {}\n", render::latency_summary(l))?;
    }
    let Some(h) = &s.histogram else {
        return Err(Fail::Msg(
            "the status text has no latency histogram (no `latency histogram:` line: this co-kernel does not \
             write one); haukictl status shows the latency summary"
                .into(),
        ));
    };
    let style = BarStyle { width: usize::from(a.width), log: a.log, all: a.all };
    writeln!(out, "release latency of the last report ({} samples):", h.total())?;
    out.write_all(render::histogram_bars(h, style).as_bytes())?;
    Ok(())
}

fn channels(cli: &Cli, out: &mut dyn Write) -> Result<(), Fail> {
    let all = sysfs::read_all(&cli.sysfs_dir)?;
    if all.is_empty() {
        writeln!(out, "no channels: the image's application opened none")?;
    } else {
        out.write_all(render::channels_table(&all).as_bytes())?;
    }
    Ok(())
}

fn cat(cli: &Cli, a: &CatArgs, out: &mut dyn Write) -> Result<(), Fail> {
    let ch = cli.options().access(Access::Read).open(&a.channel)?;
    let wait = |buf: &mut [u8]| match a.timeout {
        Some(t) => ch.recv_timeout(buf, t),
        None => ch.recv(buf),
    };
    if ch.kind() == Some(Kind::Stream) {
        // With -n, a byte at a time: what follows the last line stays in the channel.
        let mut buf = vec![0u8; if a.count.is_some() { 1 } else { 4096 }];
        let mut lines = 0;
        while a.count.is_none_or(|c| lines < c) {
            let n = wait(&mut buf)?;
            if n == 0 {
                break; // end of file: not the driver's, but a FIFO's or a regular file's
            }
            let take = match a.count {
                Some(c) => {
                    let (take, seen) = render::take_lines(&buf[..n], c - lines);
                    lines += seen;
                    take
                }
                None => n,
            };
            out.write_all(&buf[..take])?;
            out.flush()?;
        }
    } else {
        let size = ch.record_size().and_then(|r| usize::try_from(r).ok()).unwrap_or(64 * 1024);
        let mut buf = vec![0u8; size.max(1)];
        let mut records = 0;
        while a.count.is_none_or(|c| records < c) {
            let n = wait(&mut buf)?;
            writeln!(out, "{}", render::record_line(&buf[..n], a.hex))?;
            out.flush()?;
            records += 1;
        }
    }
    Ok(())
}

/// The records of `send`: each argument's bytes (hex-decoded with `--hex`); `-` stands for
/// stdin's lines, read when it is reached.
fn record_of(text: &str, hex: bool, stream: bool) -> Result<Vec<u8>, Fail> {
    let mut rec = if hex { render::parse_hex(text).map_err(Fail::Usage)? } else { text.as_bytes().to_vec() };
    if stream {
        rec.push(b'\n');
    }
    Ok(rec)
}

fn send(cli: &Cli, a: &SendArgs, input: &mut dyn BufRead) -> Result<(), Fail> {
    if a.hex {
        for m in a.messages.iter().filter(|m| *m != "-") {
            render::parse_hex(m).map_err(Fail::Usage)?;
        }
    }
    let ch = cli.options().access(Access::Write).open(&a.channel)?;
    let stream = ch.kind() == Some(Kind::Stream);
    let put = |rec: &[u8]| match a.timeout {
        Some(t) => ch.send_timeout(rec, t),
        None => ch.send(rec),
    };
    for m in &a.messages {
        if m == "-" {
            let mut line = String::new();
            while input.read_line(&mut line)? > 0 {
                let text = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line);
                put(&record_of(text, a.hex, stream)?)?;
                line.clear();
            }
        } else {
            put(&record_of(m, a.hex, stream)?)?;
        }
    }
    Ok(())
}

/// One screen of `watch`.
fn watch_screen(cli: &Cli, a: &WatchArgs) -> Result<String, Fail> {
    let s = status::parse(&cli.status_text()?);
    let mut screen = format!(
        "haukictl watch: every {}; Ctrl-C ends\n\n{}",
        render::duration_ns(u64::try_from(a.interval.as_nanos()).unwrap_or(u64::MAX)),
        render::status_report(&s)
    );
    if let Some(h) = &s.histogram {
        screen.push_str("\nrelease latency of the last report:\n");
        screen.push_str(&render::histogram_bars(h, BarStyle { width: 40, log: true, all: false }));
    }
    if let Ok(chans) = sysfs::read_all(&cli.sysfs_dir)
        && !chans.is_empty()
    {
        screen.push_str("\nchannels in Linux:\n");
        screen.push_str(&render::channels_table(&chans));
    }
    Ok(screen)
}

fn watch(cli: &Cli, a: &WatchArgs, out: &mut dyn Write) -> Result<(), Fail> {
    let mut shown = 0;
    loop {
        let screen = watch_screen(cli, a)?;
        // Home, clear the screen, then the new one.
        write!(out, "\x1b[H\x1b[2J{screen}")?;
        out.flush()?;
        shown += 1;
        if a.count.is_some_and(|c| shown >= c) {
            return Ok(());
        }
        std::thread::sleep(a.interval);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut input = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    match run(&cli, &mut input, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        // `haukictl cat control | head -3`: the reader is done, and so are we.
        Err(Fail::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(f) => {
            let _ = out.flush();
            eprintln!("haukictl: {f}");
            ExitCode::from(f.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("haukictl").chain(args.iter().copied()))
    }

    fn usage_error(args: &[&str]) -> bool {
        parse(args).is_err_and(|e| e.exit_code() == 2 && e.use_stderr())
    }

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn commands_parse() {
        assert_eq!(parse(&["status"]).unwrap().command, Command::Status { raw: false });
        assert_eq!(parse(&["status", "--raw"]).unwrap().command, Command::Status { raw: true });
        assert_eq!(
            parse(&["latency", "--log", "--width", "30"]).unwrap().command,
            Command::Latency(LatencyArgs { log: true, all: false, width: 30 })
        );
        assert_eq!(parse(&["channels"]).unwrap().command, Command::Channels);
        assert_eq!(
            parse(&["cat", "control", "-n", "3", "-t", "0.5"]).unwrap().command,
            Command::Cat(CatArgs {
                channel: "control".into(),
                count: Some(3),
                hex: false,
                timeout: Some(Duration::from_millis(500))
            })
        );
        assert_eq!(
            parse(&["watch", "-i", "2", "-n", "1"]).unwrap().command,
            Command::Watch(WatchArgs { interval: Duration::from_secs(2), count: Some(1) })
        );
        let d = parse(&["status"]).unwrap();
        assert_eq!((d.dev_dir.to_str(), d.sysfs_dir.to_str()), (Some(DEV_DIR), Some(SYSFS_DIR)));
    }

    #[test]
    fn send_takes_negative_numbers_and_dashes_as_records() {
        let Command::Send(a) = parse(&["send", "setpoint", "-7.5", "auto", "-"]).unwrap().command else {
            panic!("not send");
        };
        assert_eq!(a.messages, ["-7.5", "auto", "-"]);
        let Command::Send(a) = parse(&["send", "-x", "echo", "0102"]).unwrap().command else { panic!("not send") };
        assert!(a.hex);
        assert_eq!((a.channel.as_str(), a.messages.as_slice()), ("echo", ["0102".to_string()].as_slice()));
        let Command::Send(a) = parse(&["send", "echo", "--", "--not-a-flag"]).unwrap().command else {
            panic!("not send")
        };
        assert_eq!(a.messages, ["--not-a-flag"]);
    }

    #[test]
    fn usage_errors_exit_2_and_help_exits_0() {
        assert!(usage_error(&[]));
        assert!(usage_error(&["frobnicate"]));
        assert!(usage_error(&["cat"]));
        assert!(usage_error(&["send", "echo"]));
        assert!(usage_error(&["cat", "x", "-n", "many"]));
        assert!(usage_error(&["cat", "x", "-t", "-1"]));
        assert!(usage_error(&["latency", "--width", "0"]));
        for help in [&["--help"][..], &["cat", "--help"], &["help", "send"], &["--version"]] {
            let e = parse(help).unwrap_err();
            assert_eq!(e.exit_code(), 0, "{help:?}");
        }
        let help = Cli::command().render_long_help().to_string();
        for cmd in ["status", "latency", "channels", "cat", "send", "watch", "Exit status: 0 ok, 1"] {
            assert!(help.contains(cmd), "{cmd} missing from --help:\n{help}");
        }
        assert!(!help.contains("--dev-dir"), "test options stay hidden");
        assert_eq!(Fail::Usage(String::new()).exit_code(), 2);
        assert_eq!(Fail::Msg(String::new()).exit_code(), 1);
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        assert!(parse_seconds("x").is_err() && parse_seconds("-2").is_err() && parse_seconds("NaN").is_err());
    }

    #[test]
    fn records_to_send() {
        assert_eq!(record_of("2.5", false, false).unwrap(), b"2.5");
        assert_eq!(record_of("hi", false, true).unwrap(), b"hi\n");
        assert_eq!(record_of("de ad", true, false).unwrap(), [0xde, 0xad]);
        assert!(matches!(record_of("xyz", true, false), Err(Fail::Usage(_))));
    }

    /// A scratch directory: `dev/` for devices (FIFOs stand in), `sys/` for sysfs, `status`.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(what: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!("haukictl-cli-{}-{what}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(p.join("dev")).unwrap();
            Scratch(p)
        }

        fn write(&self, rel: &str, text: &str) {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }

        /// A FIFO as channel `name` of `kind` going `direction`, and an end of it held open for
        /// reading and writing (so that neither side sees end of file).
        fn channel(&self, name: &str, kind: &str, direction: &str) -> std::fs::File {
            let path = self.0.join("dev").join(name);
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &path,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .unwrap();
            for (f, v) in [("kind", kind), ("direction", direction), ("record_size", "64"), ("rt_state", "ready")] {
                self.write(&format!("sys/{name}/{f}"), &format!("{v}\n"));
            }
            std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap()
        }

        /// Runs `args` against this directory; the output, or the failure.
        fn run(&self, args: &[&str], stdin: &str) -> Result<String, Fail> {
            let root = self.0.display().to_string();
            let mut all = vec![
                "--dev-dir".to_string(),
                format!("{root}/dev"),
                "--sysfs-dir".to_string(),
                format!("{root}/sys"),
                "--status-file".to_string(),
                format!("{root}/status"),
            ];
            all.extend(args.iter().map(|a| a.to_string()));
            let cli = Cli::try_parse_from(std::iter::once("haukictl".to_string()).chain(all)).unwrap();
            let mut out = Vec::new();
            run(&cli, &mut stdin.as_bytes(), &mut out)?;
            Ok(String::from_utf8(out).unwrap())
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const STATUS: &str = "Hauki co-kernel 0.1.0 up 1.522 s\n\
        latency: period 100000 ns; last report: 10 samples, min 788 avg 875 max 1198 ns; deadline misses since boot 0\n\
        latency histogram: bucket0_ns 500 counts 0 9 1 0\n\
        task         prio     kind  period_ns   releases  misses overruns   worst_ns     cpu_ms\n\
        latency       250 periodic     100000      15001       0        0       4340          6\n\
        linux: soft irq flag on, failures 0, restarts 0\n";

    #[test]
    fn status_latency_and_watch() {
        let s = Scratch::new("status");
        let e = s.run(&["status"], "").unwrap_err();
        assert!(e.to_string().contains("/status (ENOENT): this Linux does not run under the Hauki co-kernel"), "{e}");
        assert_eq!(e.exit_code(), 1);
        s.write("status", STATUS);
        assert_eq!(s.run(&["status", "--raw"], "").unwrap(), STATUS);
        let out = s.run(&["status"], "").unwrap();
        assert!(
            out.contains("\nlatency   250  periodic  100 us     15001       0         0  4.34 us  6 ms\n"),
            "{out}"
        );
        let out = s.run(&["latency", "--width", "9"], "").unwrap();
        assert!(out.ends_with("500 ns - 1 us |######### 9  90.00%\n  1 us - 2 us |#         1  10.00%\n"), "{out}");
        let w = s.run(&["watch", "-n", "2", "-i", "0.01"], "").unwrap();
        assert!(w.starts_with("\x1b[H\x1b[2Jhaukictl watch: every 10 ms; Ctrl-C ends\n"), "{w}");
        assert_eq!(w.matches("\x1b[2J").count(), 2);
        assert!(w.contains("release latency of the last report:\n500 ns - 1 us |"), "{w}");
        s.write("status", "Hauki co-kernel 0.1.0 up 1.522 s\nlatency: period 100000 ns\n");
        let e = s.run(&["latency"], "").unwrap_err();
        assert!(e.to_string().starts_with("the status text has no latency histogram"), "{e}");
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn channels_lists_sysfs() {
        let s = Scratch::new("channels");
        let e = s.run(&["channels"], "").unwrap_err();
        assert!(e.to_string().contains("no Hauki channel driver"), "{e}");
        std::fs::create_dir_all(s.0.join("sys")).unwrap();
        assert_eq!(s.run(&["channels"], "").unwrap(), "no channels: the image's application opened none\n");
        let _ends = [s.channel("control", "message", "to_linux"), s.channel("setpoint", "1", "from_linux")];
        let out = s.run(&["channels"], "").unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("control   message  to_linux        64      -  ready  -"), "{out}");
        assert!(lines[2].starts_with("setpoint  message  from_linux      64"), "{out}");
    }

    #[test]
    fn cat_prints_records_and_stream_lines() {
        use std::io::Read;
        let s = Scratch::new("cat");
        let mut control = s.channel("control", "message", "to_linux");
        control.write_all(b"{\"step\":1}").unwrap();
        assert_eq!(s.run(&["cat", "control", "-n", "1"], "").unwrap(), "{\"step\":1}\n");
        control.write_all(&[1, 0, 0xff]).unwrap();
        assert_eq!(s.run(&["cat", "control", "-n", "1"], "").unwrap(), "01 00 ff\n");
        control.write_all(b"AB").unwrap();
        assert_eq!(s.run(&["cat", "-x", "control", "-n", "1"], "").unwrap(), "41 42\n");
        let e = s.run(&["cat", "control", "-t", "0.05"], "").unwrap_err();
        assert_eq!(e.to_string(), "channel control: nothing happened within 0.050 s (timed out)");
        let mut log = s.channel("echo-log", "stream", "to_linux");
        log.write_all(b"echo 1: 4 bytes\necho 2: 5 bytes\necho 3").unwrap();
        assert_eq!(s.run(&["cat", "echo-log", "-n", "2"], "").unwrap(), "echo 1: 4 bytes\necho 2: 5 bytes\n");
        let mut rest = Vec::new();
        let _ = rustix::fs::fcntl_setfl(&log, rustix::fs::OFlags::NONBLOCK);
        let _ = log.read_to_end(&mut rest);
        assert_eq!(rest, b"echo 3", "what follows the last line stays in the channel");
        let e = s.run(&["cat", "nope"], "").unwrap_err();
        assert_eq!(e.to_string(), "no channel nope (ENOENT: no /dev/hauki/nope); haukictl channels lists them");
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn send_writes_a_record_per_message_and_per_stdin_line() {
        use std::io::Read;
        let s = Scratch::new("send");
        let mut setpoint = s.channel("setpoint", "message", "from_linux");
        assert_eq!(s.run(&["send", "setpoint", "-7.5", "-", "auto"], "1\r\n2\n").unwrap(), "");
        let _ = rustix::fs::fcntl_setfl(&setpoint, rustix::fs::OFlags::NONBLOCK);
        let mut got = Vec::new();
        let _ = setpoint.read_to_end(&mut got);
        assert_eq!(got, b"-7.512auto");
        let mut stream = s.channel("in", "stream", "from_linux");
        s.run(&["send", "--hex", "in", "6869", "-"], "4142\n").unwrap();
        let _ = rustix::fs::fcntl_setfl(&stream, rustix::fs::OFlags::NONBLOCK);
        let mut got = Vec::new();
        let _ = stream.read_to_end(&mut got);
        assert_eq!(got, b"hi\nAB\n");
        let e = s.run(&["send", "--hex", "nope", "xyz"], "").unwrap_err();
        assert!(matches!(e, Fail::Usage(_)), "a bad argument is found before the channel is looked for: {e}");
        assert_eq!(e.exit_code(), 2);
        let e = s.run(&["send", "nope", "1"], "").unwrap_err();
        assert!(e.to_string().starts_with("no channel nope"), "{e}");
    }
}
