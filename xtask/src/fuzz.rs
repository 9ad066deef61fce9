//! `cargo xtask fuzz`: the coverage-guided fuzz targets of `fuzz/` under cargo-fuzz and libFuzzer,
//! one target at a time, then one summary line per target (executions, coverage, crashes).
//!
//! The targets need a nightly toolchain (cargo-fuzz builds with sanitizer flags) and cargo-fuzz;
//! both are installed on first use, with a message. The crates themselves stay on the pinned
//! stable toolchain, and the same checks run on stable in `cargo xtask test` (`fuzz-smoke`).
//! libFuzzer starts from the committed seeds (`fuzz/corpus/<target>/`, read only) and keeps what it
//! finds in `target/hauki/fuzz/corpus/<target>/`; crashes go to `fuzz/artifacts/<target>/`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use crate::args::FuzzOpts;
use crate::util::{Workspace, cargo, run_status, show};

/// A fuzz target: `fuzz/fuzz_targets/<name>.rs` and the first line of its doc comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub what: String,
}

/// The targets, in name order, from `fuzz/fuzz_targets/`.
pub fn targets(ws: &Workspace) -> Result<Vec<Target>, String> {
    let dir = ws.root.join("fuzz/fuzz_targets");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut v = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let Some(name) =
            path.file_stem().and_then(|s| s.to_str()).filter(|_| path.extension().is_some_and(|x| x == "rs"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let what = text.lines().find_map(|l| l.strip_prefix("//! ")).unwrap_or("").to_string();
        v.push(Target { name: name.to_string(), what });
    }
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(v)
}

/// What one libFuzzer run reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Inputs run (`stat::number_of_executed_units`).
    pub execs: u64,
    /// Average executions per second.
    pub exec_per_sec: u64,
    /// Coverage at the end: libFuzzer's `cov:` (edges) and `ft:` (features).
    pub cov: u64,
    pub ft: u64,
    /// Inputs in the corpus at the end, and how many this run added.
    pub corpus: u64,
    pub new_units: u64,
    /// Crash, leak, timeout or out-of-memory inputs libFuzzer wrote.
    pub artifacts: Vec<String>,
    /// libFuzzer reported a failure (even if no artifact path was seen).
    pub failed: bool,
}

impl Outcome {
    /// Takes one line of libFuzzer's output into account.
    pub fn take(&mut self, line: &str) {
        let num = |key: &str| -> Option<u64> {
            let rest = line.split(key).nth(1)?.trim_start();
            rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        };
        if line.starts_with('#') && line.contains(" cov: ") {
            self.cov = num(" cov: ").unwrap_or(self.cov);
            self.ft = num(" ft: ").unwrap_or(self.ft);
            self.corpus = num(" corp: ").unwrap_or(self.corpus);
            self.exec_per_sec = num(" exec/s: ").unwrap_or(self.exec_per_sec);
            self.execs = line[1..].split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(self.execs);
        } else if let Some(v) = line.strip_prefix("stat::number_of_executed_units:") {
            self.execs = v.trim().parse().unwrap_or(self.execs);
        } else if let Some(v) = line.strip_prefix("stat::average_exec_per_sec:") {
            self.exec_per_sec = v.trim().parse().unwrap_or(self.exec_per_sec);
        } else if let Some(v) = line.strip_prefix("stat::new_units_added:") {
            self.new_units = v.trim().parse().unwrap_or(self.new_units);
        } else if let Some(i) = line.find("Test unit written to ") {
            self.artifacts.push(line[i + "Test unit written to ".len()..].trim().to_string());
            self.failed = true;
        } else if line.starts_with("==") && line.contains("ERROR: libFuzzer") {
            self.failed = true;
        }
    }
}

/// Whether a libFuzzer line is worth showing while it runs: everything but its per-input lines
/// (of which the periodic `pulse` lines and the final `DONE` line stay, as progress) and its
/// recommended dictionary.
fn shown(line: &str) -> bool {
    if line.starts_with('"') || line.starts_with("###### ") {
        return false;
    }
    !line.starts_with('#') || matches!(line.split_whitespace().nth(1), Some("pulse" | "DONE" | "INITED"))
}

/// `cargo xtask fuzz`.
pub fn run(ws: &Workspace, opts: &FuzzOpts) -> Result<ExitCode, String> {
    let all = targets(ws)?;
    if opts.list {
        for t in &all {
            println!("  {:<12} {}", t.name, t.what);
        }
        println!("\n`cargo xtask fuzz TARGET --seconds N` fuzzes one; docs/fuzzing.md says what each checks.");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(unknown) = opts.targets.iter().find(|n| !all.iter().any(|t| &t.name == *n)) {
        let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
        return Err(format!("no fuzz target `{unknown}`; the targets are {}", names.join(", ")));
    }
    ensure_tools()?;
    if let Some(input) = &opts.input {
        let name = &opts.targets[0];
        println!("==> {name}: running {} once", ws.rel(input));
        let mut cmd = fuzz_cmd(ws, &["run", name.as_str()]);
        cmd.arg(input);
        return Ok(match run_status(&mut cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        });
    }
    let chosen: Vec<&Target> =
        all.iter().filter(|t| opts.targets.is_empty() || opts.targets.contains(&t.name)).collect();
    let mut results = Vec::new();
    for (i, t) in chosen.iter().enumerate() {
        println!("==> fuzz {} ({}/{}): {} s — {}", t.name, i + 1, chosen.len(), opts.seconds, t.what);
        let outcome = fuzz_one(ws, &t.name, opts.seconds)?;
        results.push((t.name.as_str(), outcome));
    }
    println!(
        "\n{:<12} {:>11} {:>8} {:>6} {:>7} {:>7} {:>5}  crashes",
        "target", "execs", "exec/s", "cov", "ft", "corpus", "new"
    );
    let mut failed = 0;
    for (name, o) in &results {
        let crashes = if o.artifacts.is_empty() && o.failed {
            "failed (see above)".to_string()
        } else if o.artifacts.is_empty() {
            "0".to_string()
        } else {
            format!("{}: {}", o.artifacts.len(), o.artifacts.join(" "))
        };
        println!(
            "{name:<12} {:>11} {:>8} {:>6} {:>7} {:>7} {:>5}  {crashes}",
            o.execs, o.exec_per_sec, o.cov, o.ft, o.corpus, o.new_units
        );
        failed += usize::from(o.failed);
    }
    if failed > 0 {
        println!(
            "\n{failed} target(s) found something: replay with `cargo xtask fuzz TARGET --input FILE`, add the input to the target's seeds (cokernel/src/fuzz/seeds.rs) once fixed."
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `cargo` of the nightly toolchain, in the workspace root.
pub fn nightly_cargo(ws: &Workspace) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo"]).current_dir(&ws.root);
    // What `cargo xtask` inherited from the pinned toolchain must not leak into nightly's build.
    for var in ["CARGO", "RUSTC", "RUSTDOC", "RUSTUP_TOOLCHAIN", "CARGO_TARGET_DIR"] {
        cmd.env_remove(var);
    }
    cmd
}

/// `cargo fuzz ARGS` on the nightly toolchain, in the workspace root.
fn fuzz_cmd(ws: &Workspace, args: &[&str]) -> Command {
    let mut cmd = nightly_cargo(ws);
    cmd.arg("fuzz").args(args);
    cmd
}

/// Fuzzes `name` for `seconds` and reads libFuzzer's report.
fn fuzz_one(ws: &Workspace, name: &str, seconds: u32) -> Result<Outcome, String> {
    let work = ws.hauki_dir().join("fuzz/corpus").join(name);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let seeds = seed_dir(ws, name);
    let mut cmd = fuzz_cmd(ws, &["run", name]);
    cmd.arg(&work).arg(&seeds).arg("--").args([
        format!("-max_total_time={seconds}"),
        "-print_final_stats=1".into(),
        "-timeout=10".into(),
        "-rss_limit_mb=2048".into(),
    ]);
    cmd.stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", show(&cmd)))?;
    let mut outcome = Outcome::default();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            outcome.take(&line);
            if shown(&line) {
                eprintln!("{line}");
            }
        }
    }
    let status = child.wait().map_err(|e| format!("{}: {e}", show(&cmd)))?;
    if !status.success() && outcome.execs == 0 && !outcome.failed {
        return Err(format!("`{}` failed ({status}) before fuzzing; see its output above", show(&cmd)));
    }
    outcome.failed |= !status.success();
    Ok(outcome)
}

/// Whether `cmd` runs and succeeds, its output discarded.
fn quiet(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Installs the nightly toolchain (minimal profile) when it is missing, and the rustup
/// `components` it lacks (`clippy` for `cargo xtask test`'s `lint/clippy-fuzz`).
pub fn ensure_nightly(components: &[&str]) -> Result<(), String> {
    if !quiet(Command::new("rustup").args(["run", "nightly", "rustc", "--version"])) {
        println!(
            "==> the fuzz targets need a nightly toolchain (cargo-fuzz's sanitizer flags); the crates stay on the pinned stable one"
        );
        println!("==> installing it: rustup toolchain install nightly --profile minimal");
        run_status(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    }
    for c in components {
        let tool = if *c == "clippy" { "clippy-driver" } else { c };
        if !quiet(Command::new("rustup").args(["run", "nightly", tool, "--version"])) {
            println!("==> installing nightly's {c}: rustup component add {c} --toolchain nightly");
            run_status(Command::new("rustup").args(["component", "add", c, "--toolchain", "nightly"]))?;
        }
    }
    Ok(())
}

/// Installs what the targets need when it is missing: nightly (minimal profile) and cargo-fuzz.
fn ensure_tools() -> Result<(), String> {
    ensure_nightly(&[])?;
    if !quiet(Command::new("rustup").args(["run", "nightly", "cargo", "fuzz", "--version"])) {
        println!("==> installing cargo-fuzz (cargo install cargo-fuzz --locked; a few minutes the first time)");
        run_status(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

/// The committed seed corpus of target `name`.
pub fn seed_dir(ws: &Workspace, name: &str) -> PathBuf {
    ws.root.join("fuzz/corpus").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_output() {
        let mut o = Outcome::default();
        for l in [
            "INFO: Seed: 1234",
            "#2\tINITED cov: 512 ft: 900 corp: 3/2Kb exec/s: 0 rss: 40Mb",
            "#4096\tpulse  cov: 600 ft: 1100 corp: 30/4Kb lim: 43 exec/s: 2048 rss: 45Mb",
            "#180000\tDONE   cov: 812 ft: 2311 corp: 143/23Kb lim: 4096 exec/s: 2950 rss: 80Mb",
            "stat::number_of_executed_units: 180123",
            "stat::average_exec_per_sec:     2952",
            "stat::new_units_added:          140",
        ] {
            o.take(l);
        }
        assert_eq!((o.execs, o.exec_per_sec, o.cov, o.ft, o.corpus, o.new_units), (180123, 2952, 812, 2311, 143, 140));
        assert!(!o.failed && o.artifacts.is_empty());
        o.take("==1234== ERROR: libFuzzer: deadly signal");
        o.take("artifact_prefix='/w/fuzz/artifacts/elf/'; Test unit written to /w/fuzz/artifacts/elf/crash-abc");
        assert!(o.failed);
        assert_eq!(o.artifacts, ["/w/fuzz/artifacts/elf/crash-abc"]);
        assert!(shown("INFO: Running") && shown("#4096\tpulse  cov: 1") && !shown("#17\tNEW    cov: 1"));
        assert!(!shown("\"\\377\\000\" # Uses: 12") && !shown("###### Recommended dictionary. ######"));
    }

    #[test]
    fn lists_the_committed_targets() {
        let ws = Workspace::locate();
        let t = targets(&ws).unwrap();
        assert!(t.iter().any(|t| t.name == "elf"));
        assert!(t.iter().all(|t| !t.what.is_empty() && seed_dir(&ws, &t.name).is_dir()), "{t:?}");
    }
}
