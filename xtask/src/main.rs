//! `cargo xtask`: build, run, test and benchmark Hauki.
//!
//! Everything a developer or CI does goes through here; see `cargo xtask help`. The pure parts (argument
//! parsing, QEMU command assembly, KTAP and telemetry parsing, ELF program headers) are unit-tested with
//! `cargo test -p xtask`.

mod abi;
mod apps;
mod args;
mod bench;
mod bench_compare;
mod bench_linux;
mod build;
mod compare;
mod console;
mod deps;
mod elf;
mod fuzz;
mod ktap;
mod layers;
mod linux;
mod meter;
mod progress;
mod qemu;
mod rootfs;
mod suite;
mod telemetry;
mod util;

use std::process::ExitCode;

use util::Workspace;

/// One `cargo xtask` subcommand: its name, a one-line summary and its usage.
struct Command {
    name: &'static str,
    summary: &'static str,
    usage: &'static str,
    run: fn(&Workspace, &[String]) -> Result<ExitCode, String>,
}

/// Every subcommand, in the order `cargo xtask help` lists them.
const COMMANDS: &[Command] = &[
    Command {
        name: "help",
        summary: "List the subcommands (this text).",
        usage: "cargo xtask help [COMMAND]",
        run: cmd_help,
    },
    Command {
        name: "deps",
        summary: "Check the host tools (QEMU, GRUB, xorriso, mtools, OVMF, Rust target); install them as root on Debian.",
        usage: "cargo xtask deps",
        run: cmd_deps,
    },
    Command {
        name: "build",
        summary: "Build the co-kernel with an application (target/hauki/cokernel.elf) and the BIOS+UEFI boot image (target/hauki/hauki.iso).",
        usage: "cargo xtask build [--app NAME]   (default: demo; `cargo xtask apps` lists them)",
        run: cmd_build,
    },
    Command {
        name: "apps",
        summary: "List the applications (cokernel/examples declaring cokernel::app!), one per line, name first.",
        usage: "cargo xtask apps",
        run: cmd_apps,
    },
    Command {
        name: "abi",
        summary: "Regenerate linux-patch/hauki_abi.h and its patch from shared-abi (commit the result).",
        usage: "cargo xtask abi",
        run: cmd_abi,
    },
    Command {
        name: "layers",
        summary: "Check the co-kernel's layering (no upward edge, no cycle) and print its module graph.",
        usage: "cargo xtask layers [--dot]   (--dot: Graphviz, e.g. `cargo xtask layers --dot | dot -Tsvg > layers.svg`)",
        run: cmd_layers,
    },
    Command {
        name: "linux",
        summary: "Build the Linux guest: the patched 6.12 vmlinux (cached outside the repo) and the busybox initramfs.",
        usage: "cargo xtask linux [--debug] [--preempt-rt] [--stock]   (also the lockdep debug build; the unpatched PREEMPT_RT and stock references)",
        run: cmd_linux,
    },
    Command {
        name: "rootfs",
        summary: "Build the Debian 12 root filesystem image (systemd, ssh; from Debian's archive with mmdebstrap, cached) that `run --rootfs debian` boots.",
        usage: "cargo xtask rootfs   (packages: rootfs/debian/packages; files: rootfs/debian/overlay; docs/rootfs.md)",
        run: cmd_rootfs,
    },
    Command {
        name: "run",
        summary: "Build, then boot under QEMU with the console (COM1) on this terminal and telemetry (COM2) in a file.",
        usage: args::RUN_USAGE,
        run: cmd_run,
    },
    Command {
        name: "test",
        summary: "Run every test: host steps (unit tests, lint, format), in-kernel KTAP tests, system tests under QEMU.",
        usage: "cargo xtask test [FILTER...]   (only tests whose name contains a FILTER or whose area is one: host, ktest, boot, rt, apps, \
                linux-guest, linux-net, linux-lines, linux-disk, linux-distro, linux-faults, linux-smp, linux-checks, linux-compare; a FILTER matching nothing lists the tests; HAUKI_QEMU_TIMEOUT=<s> \
                raises the 120 s safety bound per QEMU run)",
        run: cmd_test,
    },
    Command {
        name: "bench",
        summary: "Build, then measure image size and boot time; writes target/hauki/bench.json.",
        usage: "cargo xtask bench [NAME...]   (only the benches whose name contains a NAME: image-size, boot-time, rt-core, rt-latency, rt-stagger, rt-smp, linux-guest, linux-stress, linux-smp, channels, edu, uart, linux-io, debian-boot)\n       cargo xtask bench --compare [--quick] [--secs N] [--json FILE] [--docs|--no-docs] [--from FILE]   (Hauki against PREEMPT_RT and stock Linux under the same load; writes target/hauki/compare/ and, for a full run, docs/benchmarks.md; --from renders a run's compare.json again without running)",
        run: cmd_bench,
    },
    Command {
        name: "fuzz",
        summary: "Fuzz the parsers of untrusted input (coverage-guided, libFuzzer; installs nightly + cargo-fuzz on first use).",
        usage: args::FUZZ_USAGE,
        run: cmd_fuzz,
    },
    Command { name: "ci", summary: "Exactly what CI runs (today: `test`).", usage: "cargo xtask ci", run: cmd_ci },
];

fn cmd_abi(ws: &Workspace, args: &[String]) -> Result<ExitCode, String> {
    args::no_args("abi", args)?;
    abi::write(ws)?;
    println!("==> wrote {} and {}", abi::HEADER, abi::PATCH);
    Ok(ExitCode::SUCCESS)
}

fn cmd_layers(ws: &Workspace, args: &[String]) -> Result<ExitCode, String> {
    let dot = match args {
        [] => false,
        [a] if a == "--dot" => true,
        _ => return Err(format!("usage: {}", "cargo xtask layers [--dot]")),
    };
    print!("{}", layers::graph(&ws.root)?.render(dot));
    let verdict = layers::check(&ws.root);
    match &verdict {
        Ok(summary) => eprintln!("==> layers: {summary}"),
        Err(violations) => eprintln!("==> layers: violations:\n{violations}"),
    }
    Ok(if verdict.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn cmd_linux(ws: &Workspace, args: &[String]) -> Result<ExitCode, String> {
    let mut more = Vec::new();
    for a in args {
        more.push(match a.as_str() {
            "--debug" => linux::Flavour::Debug,
            "--preempt-rt" => linux::Flavour::PreemptRt,
            "--stock" => linux::Flavour::Stock,
            _ => return Err(format!("`linux` takes --debug, --preempt-rt and --stock (got {a:?})")),
        });
    }
    deps::ensure()?;
    let (vmlinux, initramfs) = linux::build_all(ws)?;
    println!("==> {}\n==> {}", ws.rel(&vmlinux), ws.rel(&initramfs));
    for f in more {
        let v = linux::build_flavour(ws, f)?;
        println!("==> {}", ws.rel(&v));
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = argv.first() else {
        print_help();
        return ExitCode::from(2);
    };
    let name = name.as_str();
    let name = match name {
        "-h" | "--help" => "help",
        other => other,
    };
    let Some(cmd) = COMMANDS.iter().find(|c| c.name == name) else {
        eprintln!("error: unknown command `{name}`");
        print_help();
        return ExitCode::from(2);
    };
    let rest = &argv[1..];
    if name != "help" && rest.iter().any(|a| a == "-h" || a == "--help") {
        println!("{}\n\nusage: {}", cmd.summary, cmd.usage);
        return ExitCode::SUCCESS;
    }
    let ws = Workspace::locate();
    match (cmd.run)(&ws, rest) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_help() {
    println!("cargo xtask <COMMAND> [ARGS]\n\nCommands:");
    for c in COMMANDS {
        println!("  {:<6} {}", c.name, c.summary);
    }
    println!("\n`cargo xtask help COMMAND` shows a command's arguments.");
}

/// `help [COMMAND]`: list the subcommands, or show one command's usage.
fn cmd_help(_ws: &Workspace, args: &[String]) -> Result<ExitCode, String> {
    match args.first() {
        None => print_help(),
        Some(name) => match COMMANDS.iter().find(|c| c.name == name) {
            Some(c) => println!("{}\n\nusage: {}", c.summary, c.usage),
            None => return Err(format!("unknown command `{name}`; see `cargo xtask help`")),
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// `deps`: check (and, as root on Debian, install) the host tools every other command needs.
fn cmd_deps(_ws: &Workspace, args: &[String]) -> Result<ExitCode, String> {
    args::no_args("deps", args)?;
    let tools = deps::ensure()?;
    println!("{}", tools.describe());
    Ok(ExitCode::SUCCESS)
}

/// `build [--app NAME]`: the co-kernel ELF with an application, and the hybrid BIOS+UEFI ISO.
fn cmd_build(ws: &Workspace, args: &[String]) -> Result<ExitCode, String> {
    let app = match args {
        [] => apps::DEFAULT,
        [flag, name] if flag == "--app" => name.as_str(),
        [flag] if flag.starts_with("--app=") => &flag["--app=".len()..],
        _ => return Err("usage: cargo xtask build [--app NAME]".into()),
    };
    apps::find(ws, app)?;
    deps::ensure()?;
    let out = build::build_all_app(ws, app)?;
    println!("==> done: {} and {}", ws.rel(&out.elf), ws.rel(&out.iso));
    Ok(ExitCode::SUCCESS)
}

/// `apps`: the applications, one per line, name first.
fn cmd_apps(ws: &Workspace, args: &[String]) -> Result<ExitCode, String> {
    args::no_args("apps", args)?;
    for a in apps::list(ws)? {
        let default = if a.name == apps::DEFAULT { " (default)" } else { "" };
        println!("{:<12} {}{default}", a.name, a.about);
    }
    Ok(ExitCode::SUCCESS)
}

/// `rootfs`: the Debian image, built or found in the cache.
fn cmd_rootfs(ws: &Workspace, args: &[String]) -> Result<ExitCode, String> {
    args::no_args("rootfs", args)?;
    deps::ensure()?;
    let image = rootfs::build(ws)?;
    println!(
        "==> boot it with `cargo xtask run --rootfs debian`, then `ssh -i {} -p 2222 root@127.0.0.1` ({})",
        rootfs::ssh_key().display(),
        image.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `run [FLAGS]`: build, then boot under QEMU interactively.
fn cmd_run(ws: &Workspace, args: &[String]) -> Result<ExitCode, String> {
    let opts = args::RunOpts::parse(args)?;
    let tools = deps::ensure()?;
    apps::find(ws, &opts.app)?;
    let out = if opts.iso {
        build::build_all_app(ws, &opts.app)?
    } else {
        let elf = build::build_app(ws, &opts.app, build::KERNEL_ELF)?;
        build::Artifacts { iso: ws.hauki_dir().join(build::ISO), elf }
    };
    qemu::run_interactive(ws, &tools, &opts, &out)
}

/// `test [FILTER...]`: everything, with a final `N passed, M failed` line.
fn cmd_test(ws: &Workspace, args: &[String]) -> Result<ExitCode, String> {
    if let Some(flag) = args.iter().find(|a| a.starts_with('-')) {
        return Err(format!("`test` takes no flags (got `{flag}`); usage: cargo xtask test [FILTER...]"));
    }
    let tools = deps::ensure()?;
    Ok(suite::run_all(ws, &tools, args))
}

/// `bench`: the benches against their targets, or `--compare`.
fn cmd_bench(ws: &Workspace, args: &[String]) -> Result<ExitCode, String> {
    let o = args::BenchOpts::parse(args)?;
    if o.compare
        && let Some(from) = &o.from
    {
        let text = std::fs::read_to_string(from).map_err(|e| format!("{}: {e}", from.display()))?;
        let doc = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", from.display()))?;
        let saved = bench_compare::from_json(&doc).map_err(|e| format!("{}: {e}", from.display()))?;
        println!("{}", bench_compare::table(&saved.report));
        let out = ws.hauki_dir().join("compare");
        std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        bench_compare::render(ws, &saved.report, saved.qemu, &saved.command, &out, o.docs.unwrap_or(false))?;
        return Ok(ExitCode::SUCCESS);
    }
    if o.compare {
        let tools = deps::ensure()?;
        let secs = o.secs.unwrap_or(if o.quick { bench_compare::QUICK_SECS } else { bench_compare::FULL_SECS });
        let opts = bench_compare::Options {
            secs,
            work_scale: if o.quick { 1 } else { 4 },
            out: ws.hauki_dir().join("compare"),
            json: o.json,
            docs: o.docs.unwrap_or(!o.quick),
            command: format!("cargo xtask bench {}", args.join(" ")),
            systems: &bench_compare::System::ALL,
        };
        bench_compare::run(ws, tools.qemu_version, &opts)?;
        return Ok(ExitCode::SUCCESS);
    }
    let chosen: Vec<&bench::Bench> = bench::BENCHES
        .iter()
        .filter(|b| o.names.is_empty() || o.names.iter().any(|a| b.name.contains(a.as_str())))
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = bench::BENCHES.iter().map(|b| b.name).collect();
        return Err(format!("no bench matches {:?}; the benches: {}", o.names, names.join(", ")));
    }
    let tools = deps::ensure()?;
    bench::run_all(ws, &tools, &chosen)
}

/// `fuzz [TARGET...] [--seconds N] | --list | TARGET --input FILE`: the fuzz targets of `fuzz/`.
fn cmd_fuzz(ws: &Workspace, args: &[String]) -> Result<ExitCode, String> {
    let opts = args::FuzzOpts::parse(args)?;
    fuzz::run(ws, &opts)
}

/// `ci`: what CI runs, i.e. `test` with no filter.
fn cmd_ci(ws: &Workspace, args: &[String]) -> Result<ExitCode, String> {
    args::no_args("ci", args)?;
    cmd_test(ws, &[])
}

#[cfg(test)]
mod main_tests {
    use super::COMMANDS;

    #[test]
    fn command_names_are_unique_and_documented() {
        for (i, c) in COMMANDS.iter().enumerate() {
            assert!(!c.summary.is_empty() && !c.usage.is_empty(), "{}", c.name);
            assert!(COMMANDS[i + 1..].iter().all(|d| d.name != c.name), "duplicate {}", c.name);
        }
        for needed in ["help", "build", "run", "test", "bench", "ci", "deps"] {
            assert!(COMMANDS.iter().any(|c| c.name == needed), "missing {needed}");
        }
    }
}
