//! Building the co-kernel ELF and the hybrid BIOS+UEFI ISO.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::deps::KERNEL_TARGET;
use crate::util::{Workspace, cargo, run_status, show};

/// The release co-kernel, under `target/hauki/`.
pub const KERNEL_ELF: &str = "cokernel.elf";
/// The co-kernel with the in-kernel test runner (`--features ktest`).
pub const KTEST_ELF: &str = "cokernel-ktest.elf";
/// The bootable image, under `target/hauki/`.
pub const ISO: &str = "hauki.iso";

/// Used when `boot/grub.cfg` does not exist yet (the co-kernel side owns that file).
const DEFAULT_GRUB_CFG: &str = "\
# Fallback written by xtask because boot/grub.cfg is missing.
set timeout=0
set default=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry \"Hauki co-kernel\" {
    multiboot2 /boot/cokernel.elf
    boot
}
";

/// What `build_all` produced.
pub struct Artifacts {
    /// `target/hauki/cokernel.elf`.
    pub elf: PathBuf,
    /// `target/hauki/hauki.iso`.
    pub iso: PathBuf,
}

/// Build the co-kernel without an application (release, `x86_64-unknown-none`) with `features`, and copy it to
/// `target/hauki/<out_name>` right away (so feature variants sharing the target dir don't clash).
pub fn build_kernel(ws: &Workspace, features: &[&str], out_name: &str) -> Result<PathBuf, String> {
    let what = if features.is_empty() { String::new() } else { format!(" (features: {})", features.join(",")) };
    println!("==> building co-kernel{what}");
    let mut cmd = cargo();
    cmd.current_dir(&ws.root).args(["build", "--release", "-p", "cokernel", "--target", KERNEL_TARGET]);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    run_status(&mut cmd).map_err(|e| format!("{e}\nthe co-kernel does not build; fix the errors above, then retry"))?;
    let built = ws.target_dir().join(KERNEL_TARGET).join("release").join("cokernel");
    let out_dir = ws.hauki_dir();
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let out = out_dir.join(out_name);
    std::fs::copy(&built, &out).map_err(|e| format!("cannot copy {} to {}: {e}", built.display(), out.display()))?;
    Ok(out)
}

/// Build `target/hauki/hauki.iso` from `elf` and `boot/grub.cfg` with `grub-mkrescue` (BIOS and UEFI).
pub fn build_iso(ws: &Workspace, elf: &Path) -> Result<PathBuf, String> {
    println!("==> building boot image (grub-mkrescue, BIOS+UEFI)");
    let stage = ws.hauki_dir().join("iso");
    let io = |what: &str, p: &Path, e: std::io::Error| format!("cannot {what} {}: {e}", p.display());
    if stage.exists() {
        std::fs::remove_dir_all(&stage).map_err(|e| io("clean", &stage, e))?;
    }
    let grub_dir = stage.join("boot").join("grub");
    std::fs::create_dir_all(&grub_dir).map_err(|e| io("create", &grub_dir, e))?;
    let staged_elf = stage.join("boot").join(KERNEL_ELF);
    std::fs::copy(elf, &staged_elf).map_err(|e| io("copy to", &staged_elf, e))?;
    // Linux and its initramfs as modules (boot/grub.cfg names them).
    let (vmlinux, initramfs) = crate::linux::build_all(ws)?;
    for (src, name) in [(&vmlinux, crate::linux::VMLINUX), (&initramfs, crate::linux::INITRAMFS)] {
        let dst = stage.join("boot").join(name);
        std::fs::copy(src, &dst).map_err(|e| io("copy to", &dst, e))?;
    }
    let cmdline = stage.join("boot").join("cmdline");
    std::fs::write(&cmdline, crate::linux::DEFAULT_CMDLINE).map_err(|e| io("write", &cmdline, e))?;
    let cfg_src = ws.root.join("boot").join("grub.cfg");
    let cfg_dst = grub_dir.join("grub.cfg");
    if cfg_src.is_file() {
        std::fs::copy(&cfg_src, &cfg_dst).map_err(|e| io("copy to", &cfg_dst, e))?;
    } else {
        println!(
            "    warning: boot/grub.cfg is missing; using xtask's built-in default (multiboot2 /boot/{KERNEL_ELF})"
        );
        std::fs::write(&cfg_dst, DEFAULT_GRUB_CFG).map_err(|e| io("write", &cfg_dst, e))?;
    }
    let iso = ws.hauki_dir().join(ISO);
    let mut cmd = Command::new("grub-mkrescue");
    cmd.arg("-o").arg(&iso).arg(&stage);
    let out = cmd.output().map_err(|e| format!("cannot start grub-mkrescue: {e}; run `cargo xtask deps`"))?;
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        return Err(format!(
            "`{}` failed ({}); see its output above (missing grub-pc-bin, grub-efi-amd64-bin, xorriso or mtools? \
             run `cargo xtask deps`)",
            show(&cmd),
            out.status
        ));
    }
    Ok(iso)
}

/// Build the image of application `app` (a `cokernel` example with the `app` feature) and copy it
/// to `target/hauki/<out_name>`.
pub fn build_app(ws: &Workspace, app: &str, out_name: &str) -> Result<PathBuf, String> {
    crate::apps::find(ws, app)?;
    println!("==> building co-kernel with application {app}");
    let mut cmd = cargo();
    cmd.current_dir(&ws.root).args(["build", "--release", "-p", "cokernel", "--target", KERNEL_TARGET]);
    cmd.args(["--features", "app", "--example", app]);
    run_status(&mut cmd).map_err(|e| {
        format!("{e}\nthe co-kernel or application {app} does not build; fix the errors above, then retry")
    })?;
    let built = ws.target_dir().join(KERNEL_TARGET).join("release").join("examples").join(app);
    let out_dir = ws.hauki_dir();
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let out = out_dir.join(out_name);
    std::fs::copy(&built, &out).map_err(|e| format!("cannot copy {} to {}: {e}", built.display(), out.display()))?;
    Ok(out)
}

/// The release co-kernel with the default application, and the ISO.
pub fn build_all(ws: &Workspace) -> Result<Artifacts, String> {
    build_all_app(ws, crate::apps::DEFAULT)
}

/// The release co-kernel with application `app`, and the ISO.
pub fn build_all_app(ws: &Workspace, app: &str) -> Result<Artifacts, String> {
    let elf = build_app(ws, app, KERNEL_ELF)?;
    let iso = build_iso(ws, &elf)?;
    Ok(Artifacts { elf, iso })
}
