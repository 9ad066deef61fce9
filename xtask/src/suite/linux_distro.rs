//! A full distribution beside the real-time tasks: the Debian 12 image `cargo xtask rootfs` builds
//! boots from a virtio disk under deterministic time, systemd reaches multi-user.target with no
//! failed unit, ssh through a forwarded port gets a shell with the key xtask generated, and the
//! latency task misses nothing.

use std::path::Path;
use std::process::Command;

use hauki_abi::cmdline;

use super::linux_guest::{LinuxBoot, boot_linux, no_misses, poweroff_by, quiet_console, report_console_failure, sh};
use super::linux_net::free_port;
use super::{Ctx, Status, Test, hard_timeout};
use crate::console::ShellConsole;
use crate::qemu::{Disk, DiskBus, Net, NicModel, cokernel_args, disk_args};

pub(super) fn tests() -> Vec<Test> {
    tests![System: linux_debian_multi_user_with_ssh]
}

/// Linux's command line in the test: the image's, with systemd's progress lines off the console
/// (they would land inside the shell's output).
fn test_cmdline() -> String {
    format!("{} systemd.show_status=false", crate::rootfs::CMDLINE)
}

/// Runs `remote` in Debian over ssh through host port `port` with xtask's key; its output.
fn ssh(port: u16, remote: &str) -> Result<String, String> {
    let key = crate::rootfs::ssh_key();
    let mut c = Command::new("ssh");
    c.arg("-i").arg(&key).args(["-p", &port.to_string()]).args([
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        // Bounds, generous for a loaded host: the connection, and a guest that stops answering
        // once connected (20 keep-alives 15 s apart unanswered).
        "-o",
        "ConnectTimeout=300",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ServerAliveCountMax=20",
        "root@127.0.0.1",
        remote,
    ]);
    let o = c.output().map_err(|e| format!("cannot run ssh (openssh-client): {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "ssh -p {port} root@127.0.0.1 {remote:?} exited with {}: {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The Debian image boots beside the real-time tasks under icount: root's shell on the console,
/// `systemctl is-system-running --wait` says `running`, ssh through a forwarded port runs commands
/// (the kernel is Hauki's, python3, cyclictest and stress-ng are there, /proc/hauki/status answers),
/// `systemctl poweroff` ends QEMU with status 0, and the latency task missed nothing.
fn linux_debian_multi_user_with_ssh(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let (dir, files) = match ctx.files_dir() {
        Ok(f) => (ctx.dir(), f),
        Err(e) => return Status::Fail(e),
    };
    let image = files.join("debian.ext4");
    let prepared = crate::rootfs::fresh_copy(ctx.ws, &image)
        .and_then(|()| crate::linux::build_rootless_initramfs(ctx.ws))
        .and_then(|i| free_port().map(|p| (i, p)));
    let (initramfs, port) = match prepared {
        Ok(x) => x,
        Err(e) => return Status::Fail(format!("preparing the Debian boot: {e}")),
    };
    let mut qemu = disk_args(&[Disk { bus: DiskBus::Virtio, image }]);
    qemu.extend(["-nic".to_string(), Net { model: NicModel::Virtio, forwards: vec![(port, 22)] }.arg()]);
    let qemu: Vec<&str> = qemu.iter().map(String::as_str).collect();
    let cmdline = test_cmdline();
    let linux = LinuxBoot { initramfs: Some(&initramfs), vmlinux: None, cmdline: &cmdline, smp: 1 };
    let args = cokernel_args(&[(cmdline::LINUX, &"guest"), (cmdline::REPORT_MS, &500)]);
    let (mut con, c2) = match boot_linux(&dir, elf, &args, Some(0), &linux, &qemu) {
        Ok(x) => x,
        Err(e) => return Status::Fail(e),
    };
    let bound = hard_timeout();
    let run = |con: &mut ShellConsole| -> Result<(), String> {
        con.expect("root@hauki-debian", bound)?;
        con.expect("# ", bound)?;
        // A plain prompt and no bracketed paste: the console is driven like the busybox one.
        con.run("bind 'set enable-bracketed-paste off'; export TERM=dumb PS1='# '", bound)?;
        quiet_console(con, bound)?;
        let (state, _) = con.run("systemctl is-system-running --wait", bound)?;
        let state = state.trim().lines().last().unwrap_or("").trim().to_string();
        if state != "running" {
            let (failed, _) = con.run("systemctl --failed --no-legend --plain", bound)?;
            return Err(format!("systemd says {state:?}, want running; failed units:\n{failed}"));
        }
        let analyze = sh(con, "systemd-analyze")?;
        if let Some(l) = analyze.lines().find(|l| l.contains("Startup finished")) {
            println!("    {} (virtual time)", l.trim());
        }
        let out = ssh(
            port,
            "uname -r; systemctl is-system-running; python3 -c 'print(6*7)'; command -v cyclictest stress-ng; \
             head -n 1 /proc/hauki/status",
        )?;
        let lines: Vec<&str> = out.lines().collect();
        let ok = lines.first().is_some_and(|l| l.ends_with("-hauki"))
            && lines.get(1) == Some(&"running")
            && lines.get(2) == Some(&"42")
            && out.contains("/usr/bin/cyclictest")
            && out.contains("/usr/bin/stress-ng")
            && lines.len() >= 6;
        if !ok {
            return Err(format!("over ssh, Debian answered {out:?}"));
        }
        println!("    ssh: {} — {}", lines[0], lines[5]);
        no_misses(&c2, " while Debian booted")?;
        poweroff_by(con, "systemctl poweroff", bound)
    };
    match run(&mut con) {
        Ok(()) => Status::Pass,
        Err(e) => report_console_failure(&con, e),
    }
}
