//! Host steps: the crates' unit tests, the fuzz checks on stable, the generated ABI header, and the
//! lint and format checks (`lint/*`). Nothing is built for QEMU here.

use std::path::Path;
use std::process::Command;

use super::{Ctx, Status, Test};
use crate::util::{cargo, shell_quote};

pub(super) fn tests() -> Vec<Test> {
    tests![Host:
        unit::cokernel,
        unit::hauki_abi,
        unit::xtask,
        unit::haukictl,
        fuzz_smoke,
        abi_header,
        lint::fmt,
        lint::clippy,
        lint::clippy_cokernel,
        lint::clippy_cokernel_ktest,
        lint::clippy_fuzz,
        lint::checkpatch,
    ]
}

/// `cmd` as a user would type it, the program by its name (`cargo`, not the toolchain's path).
fn typed(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program()).file_name().unwrap_or(cmd.get_program());
    let mut s = program.to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&shell_quote(&a.to_string_lossy()));
    }
    s
}

/// `cargo ARGS` in the workspace root, its output shown as it runs (test runners' progress).
fn cargo_step(ctx: &Ctx<'_>, args: &[&str]) -> Status {
    let mut cmd = cargo();
    cmd.current_dir(&ctx.ws.root).args(args);
    println!("    {}", typed(&cmd));
    match cmd.status() {
        Ok(s) if s.success() => Status::Pass,
        Ok(s) => Status::Fail(format!("`{}` failed ({s}); see its output above", typed(&cmd))),
        Err(e) => Status::Fail(format!("cannot run cargo: {e}")),
    }
}

/// Runs `cmd` with its output captured: nothing is shown when it succeeds; when it fails, all of it
/// (the diagnostics or the diff) is printed and `what` is the reason.
fn checked_step(mut cmd: Command, what: &str) -> Status {
    println!("    {}", typed(&cmd));
    match cmd.output() {
        Ok(o) if o.status.success() => Status::Pass,
        Ok(o) => {
            for text in [&o.stdout, &o.stderr] {
                let text = String::from_utf8_lossy(text);
                if !text.trim().is_empty() {
                    println!("{}", text.trim_end());
                }
            }
            Status::Fail(format!("{what} (`{}`: {}); its output is above", typed(&cmd), o.status))
        }
        Err(e) => Status::Fail(format!("cannot run {}: {e}", typed(&cmd))),
    }
}

/// The crates' unit tests.
mod unit {
    use super::{Ctx, Status, cargo_step};

    pub(super) fn cokernel(ctx: &Ctx<'_>) -> Status {
        cargo_step(ctx, &["test", "-p", "cokernel", "--lib"])
    }

    pub(super) fn hauki_abi(ctx: &Ctx<'_>) -> Status {
        cargo_step(ctx, &["test", "-p", "hauki-abi"])
    }

    pub(super) fn xtask(ctx: &Ctx<'_>) -> Status {
        cargo_step(ctx, &["test", "-p", "xtask"])
    }

    /// The Linux programs' library and `haukictl` on the host (their tests need no device), and
    /// `linux-patch/hauki_channel.h` compiled and run with `cc`.
    pub(super) fn haukictl(ctx: &Ctx<'_>) -> Status {
        cargo_step(ctx, &["test", "-p", "haukictl"])
    }
}

/// Every fuzz target over its seed corpus and a few thousand mutations, on stable (docs/fuzzing.md).
fn fuzz_smoke(ctx: &Ctx<'_>) -> Status {
    cargo_step(ctx, &["test", "-p", "cokernel", "--features", "fuzz", "--test", "fuzz_smoke", "--", "--nocapture"])
}

/// The C header of the ABI must be what shared-abi generates (one source of truth).
fn abi_header(ctx: &Ctx<'_>) -> Status {
    println!("    {} and its patch match shared-abi", crate::abi::HEADER);
    match crate::abi::check(ctx.ws) {
        Ok(()) => Status::Pass,
        Err(e) => Status::Fail(e),
    }
}

/// Formatting (rustfmt.toml) and clippy with warnings denied: the workspace on the host, the
/// co-kernel on its own target with and without the KTAP runner, the fuzz crate on nightly.
mod lint {
    use std::io::IsTerminal;

    use super::{Ctx, Status, checked_step};
    use crate::deps::KERNEL_TARGET;
    use crate::util::cargo;

    /// The tools' output is captured and shown later: in colour when ours goes to a terminal, plain
    /// in logs (rustfmt's `auto` would colour a pipe).
    fn color() -> &'static str {
        if std::io::stdout().is_terminal() { "always" } else { "never" }
    }

    pub(super) fn fmt(ctx: &Ctx<'_>) -> Status {
        let mut cmd = cargo();
        cmd.current_dir(&ctx.ws.root).args(["fmt", "--all", "--check", "--", "--color", color()]);
        checked_step(cmd, "not formatted as rustfmt.toml says; `cargo fmt --all` formats it")
    }

    fn clippy_step(ctx: &Ctx<'_>, args: &[&str]) -> Status {
        let mut cmd = cargo();
        cmd.current_dir(&ctx.ws.root).args(["clippy", "--color", color()]).args(args).args(["--", "-D", "warnings"]);
        checked_step(cmd, "clippy found something")
    }

    pub(super) fn clippy(ctx: &Ctx<'_>) -> Status {
        clippy_step(ctx, &["--workspace", "--all-targets"])
    }

    /// The co-kernel for its target: the library, the image without an application, and every
    /// application (the examples built with `app`).
    pub(super) fn clippy_cokernel(ctx: &Ctx<'_>) -> Status {
        clippy_step(
            ctx,
            &["-p", "cokernel", "--target", KERNEL_TARGET, "--features", "app", "--lib", "--bins", "--examples"],
        )
    }

    pub(super) fn clippy_cokernel_ktest(ctx: &Ctx<'_>) -> Status {
        clippy_step(ctx, &["-p", "cokernel", "--target", KERNEL_TARGET, "--features", "ktest"])
    }

    /// The cargo-fuzz crate (its own workspace) with the nightly toolchain `cargo xtask fuzz` uses,
    /// installed with clippy when missing; a nightly that cannot be had fails the step.
    pub(super) fn clippy_fuzz(ctx: &Ctx<'_>) -> Status {
        if let Err(e) = crate::fuzz::ensure_nightly(&["clippy"]) {
            return Status::Fail(format!("no nightly toolchain with clippy for the fuzz crate: {e}"));
        }
        let mut cmd = crate::fuzz::nightly_cargo(ctx.ws);
        cmd.args([
            "clippy",
            "--color",
            color(),
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]);
        checked_step(cmd, "clippy (nightly) found something in the fuzz crate")
    }

    /// The kernel's `scripts/checkpatch.pl` (from the cached pristine tree) over every patch of
    /// `linux-patch/series`: no error, no warning. Its options are `linux-patch/checkpatch.conf`'s
    /// (one place; linux-patch/README.md says why a check is off).
    pub(super) fn checkpatch(ctx: &Ctx<'_>) -> Status {
        let conf = ctx.ws.root.join("linux-patch/checkpatch.conf");
        let options = match std::fs::read_to_string(&conf) {
            Ok(text) => checkpatch_options(&text),
            Err(e) => return Status::Fail(format!("{}: {e}", conf.display())),
        };
        let (tree, patches) = match (crate::linux::source_tree(), crate::linux::series(ctx.ws)) {
            (Ok(tree), Ok(patches)) => (tree, patches),
            (Err(e), _) | (_, Err(e)) => return Status::Fail(e),
        };
        let mut cmd = std::process::Command::new("perl");
        cmd.current_dir(&tree).arg("scripts/checkpatch.pl").args(options).args(patches);
        checked_step(cmd, "checkpatch.pl found something in linux-patch/")
    }

    /// The options of a checkpatch.conf: words of the lines that are not comments.
    pub(super) fn checkpatch_options(text: &str) -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .flat_map(str::split_whitespace)
            .map(String::from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn checkpatch_options_skip_comments() {
        let text = "# why\n--show-types\n\n  --ignore FILE_PATH_CHANGES  \n";
        assert_eq!(lint::checkpatch_options(text), ["--show-types", "--ignore", "FILE_PATH_CHANGES"]);
    }

    #[test]
    fn a_checked_step_fails_with_the_command_and_passes_quietly() {
        assert_eq!(checked_step(sh("echo fine"), "x"), Status::Pass);
        let Status::Fail(why) = checked_step(sh("echo a-diff; echo a-warning >&2; exit 3"), "clippy found something")
        else {
            panic!("a failing command passed");
        };
        assert!(why.starts_with("clippy found something (`sh -c 'echo a-diff; echo a-warning >&2; exit 3'`"), "{why}");
        assert!(why.contains("exit status: 3"), "{why}");
        let Status::Fail(why) = checked_step(Command::new("/nonexistent/tool"), "x") else { panic!() };
        assert!(why.starts_with("cannot run tool"), "{why}");
    }
}
