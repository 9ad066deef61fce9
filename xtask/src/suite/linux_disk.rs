//! Linux's disks beside the real-time tasks: ext4 on a virtio-blk, a SATA (q35's AHCI) and an NVMe
//! disk, written, surviving a clean reboot of Linux and a Linux panic (journal replay on the next
//! mount), and clean by the host's `e2fsck -fn` at the end; the latency task misses nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::linux_guest::{at_prompt, sh, with_linux};
use super::{Ctx, Status, Test, hard_timeout};
use crate::console::ShellConsole;
use crate::qemu::{Disk, DiskBus, disk_args};
use crate::telemetry::Records;

pub(super) fn tests() -> Vec<Test> {
    tests![System: linux_disks_ext4_survive_reboot_and_panic]
}

/// Each disk's size and the bytes written to it per file.
const DISK_MIB: u32 = 64;
const FILE_BYTES: u32 = 4 << 20;

/// A disk of the test: its controller, its image on the host, and its device in Linux.
struct TestDisk {
    disk: Disk,
    dev: &'static str,
}

impl TestDisk {
    fn name(&self) -> &'static str {
        self.disk.bus.name()
    }
}

/// A fresh ext4 image of `DISK_MIB` MiB at `path` (the host's mkfs.ext4).
fn make_ext4(path: &Path, label: &str) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.set_len(u64::from(DISK_MIB) << 20).map_err(|e| e.to_string())?;
    let o = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run mkfs.ext4 (e2fsprogs): {e}"))?;
    if !o.status.success() {
        return Err(format!("mkfs.ext4 {}: {}", path.display(), String::from_utf8_lossy(&o.stderr)));
    }
    Ok(())
}

/// `e2fsck -fn`: the filesystem is clean (status 0), or what e2fsck said.
fn host_fsck(path: &Path) -> Result<(), String> {
    let o = Command::new("e2fsck")
        .arg("-fn")
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run e2fsck (e2fsprogs): {e}"))?;
    if o.status.success() {
        return Ok(());
    }
    Err(format!(
        "e2fsck -fn {} exited with {}: {}{}",
        path.display(),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    ))
}

/// The hash `sha256sum` printed for `file`.
fn sha_of(out: &str, file: &str) -> Result<String, String> {
    super::linux_net::guest_sha(out, file).ok_or_else(|| format!("no sha256sum line for {file}: {out:?}"))
}

/// Mounts every disk on /mnt/NAME; what ext4 said about recovery, per disk.
fn mount_all(con: &mut ShellConsole, disks: &[TestDisk]) -> Result<Vec<bool>, String> {
    let mut recovered = Vec::new();
    for d in disks {
        let (dev, name) = (d.dev, d.name());
        sh(con, &format!("mkdir -p /mnt/{name} && mount -t ext4 {dev} /mnt/{name}"))?;
        let dev_name = dev.trim_start_matches("/dev/");
        let (log, _) = con.run(&format!("dmesg | grep 'EXT4-fs ({dev_name})'"), hard_timeout())?;
        recovered.push(log.contains("recovery complete"));
    }
    Ok(recovered)
}

/// Waits for Linux to come back after a reboot or panic, then quiets its console again.
fn back_up(con: &mut ShellConsole) -> Result<(), String> {
    at_prompt(con, hard_timeout())
}

/// The last `linux` record's state (`rebooted`, `panicked`, …) on COM2.
fn last_linux_state(c2: &Path) -> Option<String> {
    let recs = Records::parse(&std::fs::read_to_string(c2).unwrap_or_default());
    recs.events("linux").last().and_then(|r| r["state"].as_str().map(str::to_string))
}

/// ext4 on virtio-blk, SATA and NVMe under deterministic time: 4 MiB written to each and synced,
/// unmounted, Linux rebooted (the co-kernel restarts it; the files read back equal, no journal
/// recovery needed), a second file written and synced, more written, Linux panicked (restarted;
/// both files equal, ext4 reports its journal recovered on every disk), unmounted, and the host's
/// `e2fsck -fn` finds every image clean; the latency task misses nothing throughout.
fn linux_disks_ext4_survive_reboot_and_panic(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let (dir, files) = match ctx.files_dir() {
        Ok(f) => (ctx.dir(), f),
        Err(e) => return Status::Fail(e),
    };
    let image = |n: &str| -> PathBuf { files.join(format!("{n}.ext4")) };
    let disks = [
        TestDisk { disk: Disk { bus: DiskBus::Virtio, image: image("virtio") }, dev: "/dev/vda" },
        TestDisk { disk: Disk { bus: DiskBus::Sata, image: image("sata") }, dev: "/dev/sda" },
        TestDisk { disk: Disk { bus: DiskBus::Nvme, image: image("nvme") }, dev: "/dev/nvme0n1" },
    ];
    for d in &disks {
        if let Err(e) = make_ext4(&d.disk.image, &format!("hauki-{}", d.name())) {
            return Status::Fail(e);
        }
    }
    let qemu = disk_args(&disks.iter().map(|d| d.disk.clone()).collect::<Vec<_>>());
    let qemu: Vec<&str> = qemu.iter().map(String::as_str).collect();
    let steps = |con: &mut ShellConsole, c2: &Path| -> Result<(), String> {
        let devs: Vec<&str> = disks.iter().map(|d| d.dev).collect();
        // The SCSI scan behind AHCI runs asynchronously: wait for every block device (guest time).
        sh(
            con,
            &format!(
                "for d in {0}; do i=0; until [ -b $d ] || [ $i -ge 100 ]; do i=$((i+1)); sleep 0.1; done; done; ls {0}",
                devs.join(" ")
            ),
        )?;
        let recovered = mount_all(con, &disks)?;
        if recovered.iter().any(|&r| r) {
            return Err("ext4 recovered a journal on a freshly made filesystem".into());
        }
        let mut want_a = Vec::new();
        for d in &disks {
            let f = format!("/mnt/{}/a", d.name());
            let out = sh(con, &format!("head -c {FILE_BYTES} /dev/urandom > {f} && sha256sum {f}"))?;
            want_a.push(sha_of(&out, &f)?);
        }
        sh(
            con,
            &format!(
                "sync && umount {}",
                disks.iter().map(|d| format!("/mnt/{}", d.name())).collect::<Vec<_>>().join(" ")
            ),
        )?;
        // A clean reboot of Linux: the co-kernel restarts it; the disks keep what was written.
        con.send("reboot")?;
        back_up(con).map_err(|e| format!("after reboot: {e}"))?;
        if last_linux_state(c2).as_deref() != Some("rebooted") {
            return Err(format!("the co-kernel's last linux record says {:?}, want rebooted", last_linux_state(c2)));
        }
        let recovered = mount_all(con, &disks)?;
        if let Some(d) = disks.iter().zip(&recovered).find(|(_, r)| **r).map(|(d, _)| d) {
            return Err(format!("{}: ext4 recovered its journal after a clean unmount and reboot", d.name()));
        }
        let mut want_b = Vec::new();
        for (d, want) in disks.iter().zip(&want_a) {
            let (a, b) = (format!("/mnt/{}/a", d.name()), format!("/mnt/{}/b", d.name()));
            let out = sh(con, &format!("sha256sum {a} && head -c {FILE_BYTES} /dev/urandom > {b} && sha256sum {b}"))?;
            if &sha_of(&out, &a)? != want {
                return Err(format!("{}: the file written before the reboot reads back different", d.name()));
            }
            want_b.push(sha_of(&out, &b)?);
        }
        // Synced, then more in flight (metadata in the running journal transaction) when Linux panics.
        sh(con, "sync")?;
        for d in &disks {
            sh(con, &format!("head -c 1048576 /dev/urandom > /mnt/{}/c", d.name()))?;
        }
        con.send("echo PANIC > /sys/kernel/debug/provoke-crash/DIRECT")?;
        back_up(con).map_err(|e| format!("after the panic: {e}"))?;
        if last_linux_state(c2).as_deref() != Some("panicked") {
            return Err(format!("the co-kernel's last linux record says {:?}, want panicked", last_linux_state(c2)));
        }
        let recovered = mount_all(con, &disks)?;
        if let Some(d) = disks.iter().zip(&recovered).find(|(_, r)| !**r).map(|(d, _)| d) {
            return Err(format!("{}: ext4 did not replay its journal after the panic", d.name()));
        }
        for ((d, a), b) in disks.iter().zip(&want_a).zip(&want_b) {
            let (fa, fb) = (format!("/mnt/{}/a", d.name()), format!("/mnt/{}/b", d.name()));
            let out = sh(con, &format!("sha256sum {fa} {fb}"))?;
            if &sha_of(&out, &fa)? != a || &sha_of(&out, &fb)? != b {
                return Err(format!("{}: a synced file reads back different after the panic: {out}", d.name()));
            }
        }
        sh(
            con,
            &format!("umount {}", disks.iter().map(|d| format!("/mnt/{}", d.name())).collect::<Vec<_>>().join(" ")),
        )?;
        // A report period more, so that the latency check covers the last writes.
        sh(con, "sleep 1")?;
        Ok(())
    };
    match with_linux(&dir, elf, &[], &qemu, &steps) {
        Status::Pass => {}
        other => return other,
    }
    for d in &disks {
        if let Err(e) = host_fsck(&d.disk.image) {
            return Status::Fail(format!("{}: {e}", d.name()));
        }
    }
    println!(
        "    virtio, sata, nvme: {} MiB each synced, read back after a reboot and after a panic (journal replayed), e2fsck clean",
        (2 * FILE_BYTES) >> 20
    );
    Status::Pass
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256sum_output_is_read_by_file() {
        let out = "abc  /mnt/virtio/a\ndef  /mnt/virtio/b\n";
        assert_eq!(sha_of(out, "/mnt/virtio/a").unwrap(), "abc");
        assert_eq!(sha_of(out, "/mnt/virtio/b").unwrap(), "def");
        assert!(sha_of(out, "/mnt/sata/a").is_err());
    }
}
