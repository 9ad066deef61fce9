//! Host tools: check that everything `build`, `run` and `test` need is present, and install what is
//! missing when running as root on Debian (QEMU from bookworm-backports on Debian 12: QEMU >= 8 is needed
//! for x2APIC under TCG).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{find_program, run_status};

/// The Rust target the co-kernel is built for.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// The Rust target of the Linux programs in the initramfs (`haukictl`): static, so the initramfs
/// needs no C library.
pub const LINUX_TOOLS_TARGET: &str = "x86_64-unknown-linux-musl";

/// What each Rust target is for (messages).
const RUST_TARGETS: [(&str, &str); 2] =
    [(KERNEL_TARGET, "the co-kernel"), (LINUX_TOOLS_TARGET, "haukictl in Linux's initramfs")];

/// The first QEMU major version whose TCG emulates x2APIC.
pub const QEMU_X2APIC_MAJOR: u32 = 8;

/// An OVMF (UEFI firmware) image pair: the read-only code and a template of the variable store.
#[derive(Clone, Debug)]
pub struct Ovmf {
    /// `OVMF_CODE*.fd`.
    pub code: PathBuf,
    /// The matching `OVMF_VARS*.fd`.
    pub vars: PathBuf,
}

/// The host tools found.
#[derive(Clone, Debug)]
pub struct Tools {
    /// `qemu-system-x86_64 --version`, parsed.
    pub qemu_version: (u32, u32, u32),
    /// OVMF images for UEFI boots.
    pub ovmf: Ovmf,
}

impl Tools {
    /// QEMU's major version.
    pub fn qemu_major(&self) -> u32 {
        self.qemu_version.0
    }

    /// Does this QEMU emulate x2APIC under TCG?
    pub fn has_tcg_x2apic(&self) -> bool {
        self.qemu_major() >= QEMU_X2APIC_MAJOR
    }

    /// One line for humans.
    pub fn describe(&self) -> String {
        let (a, b, c) = self.qemu_version;
        format!(
            "==> host tools ok: QEMU {a}.{b}.{c}{}, grub-mkrescue, xorriso, mtools, OVMF {}, Rust target {KERNEL_TARGET}",
            if self.has_tcg_x2apic() { "" } else { " (older than 8: x2APIC tests will be skipped)" },
            self.ovmf.code.display()
        )
    }
}

/// Parse `qemu-system-x86_64 --version` output: `QEMU emulator version 10.0.2 (Debian ...)`.
pub fn parse_qemu_version(out: &str) -> Option<(u32, u32, u32)> {
    let line = out.lines().find(|l| l.contains("version"))?;
    let rest = &line[line.find("version")? + "version".len()..];
    let word = rest.split_whitespace().next()?;
    let mut nums = word.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse::<u32>());
    let major = nums.next()?.ok()?;
    let minor = nums.next().and_then(Result::ok).unwrap_or(0);
    let micro = nums.next().and_then(Result::ok).unwrap_or(0);
    Some((major, minor, micro))
}

/// The installed QEMU's version, if `qemu-system-x86_64` runs.
pub fn qemu_version() -> Option<(u32, u32, u32)> {
    let out = Command::new("qemu-system-x86_64").arg("--version").output().ok()?;
    parse_qemu_version(&String::from_utf8_lossy(&out.stdout))
}

/// QEMU's major version, if QEMU runs.
#[allow(dead_code, reason = "harness API for benches that need the QEMU version")]
pub fn qemu_major() -> Option<u32> {
    qemu_version().map(|v| v.0)
}

/// Where distributions put OVMF: (code, vars) pairs, preferred first. `HAUKI_OVMF_CODE` and
/// `HAUKI_OVMF_VARS` override.
fn ovmf_candidates() -> Vec<(PathBuf, PathBuf)> {
    let mut v = Vec::new();
    if let (Some(c), Some(s)) = (std::env::var_os("HAUKI_OVMF_CODE"), std::env::var_os("HAUKI_OVMF_VARS")) {
        v.push((c.into(), s.into()));
    }
    for (c, s) in [
        ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
        ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
        ("/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"),
        ("/usr/share/edk2/x64/OVMF_CODE.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"),
        ("/usr/share/edk2-ovmf/x64/OVMF_CODE.fd", "/usr/share/edk2-ovmf/x64/OVMF_VARS.fd"),
    ] {
        v.push((c.into(), s.into()));
    }
    v
}

/// The first OVMF pair present.
pub fn find_ovmf() -> Option<Ovmf> {
    ovmf_candidates().into_iter().find(|(c, s)| c.is_file() && s.is_file()).map(|(code, vars)| Ovmf { code, vars })
}

/// Is the Rust target `target` installed for the active toolchain?
pub fn rust_target_installed(target: &str) -> bool {
    if let Ok(out) = Command::new("rustup").args(["target", "list", "--installed"]).output()
        && out.status.success()
    {
        return String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == target);
    }
    // No rustup: look in the sysroot.
    let Ok(out) = Command::new("rustc").args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot).join("lib/rustlib").join(target).is_dir()
}

/// What to say when the Rust target `target` is missing.
pub fn missing_target_message(target: &str) -> String {
    let what = RUST_TARGETS.iter().find(|(t, _)| *t == target).map_or("this build", |(_, w)| *w);
    format!(
        "{what} needs the Rust target {target}: run `rustup target add {target}` (rust-toolchain.toml lists it, \
         so rustup normally installs it on first use)"
    )
}

/// Something missing, and the Debian package that provides it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Missing {
    what: String,
    package: &'static str,
}

/// Everything absent on this host.
fn missing() -> Vec<Missing> {
    let mut m = Vec::new();
    let mut need = |ok: bool, what: &str, package: &'static str| {
        if !ok {
            m.push(Missing { what: what.to_string(), package });
        }
    };
    match qemu_version() {
        None => need(false, "qemu-system-x86_64", "qemu-system-x86"),
        Some(v) if v.0 < QEMU_X2APIC_MAJOR && is_root() && debian_major() == Some(12) => need(
            false,
            &format!("qemu-system-x86_64 >= {QEMU_X2APIC_MAJOR} (have {}.{}.{})", v.0, v.1, v.2),
            "qemu-system-x86",
        ),
        Some(_) => {}
    }
    need(find_program("grub-mkrescue").is_some(), "grub-mkrescue", "grub-common");
    need(find_program("xorriso").is_some(), "xorriso", "xorriso");
    need(find_program("mformat").is_some(), "mformat (mtools)", "mtools");
    need(Path::new("/usr/lib/grub/i386-pc").is_dir(), "/usr/lib/grub/i386-pc (GRUB for BIOS)", "grub-pc-bin");
    need(
        Path::new("/usr/lib/grub/x86_64-efi").is_dir(),
        "/usr/lib/grub/x86_64-efi (GRUB for UEFI)",
        "grub-efi-amd64-bin",
    );
    need(find_ovmf().is_some(), "OVMF_CODE/OVMF_VARS (UEFI firmware)", "ovmf");
    // The Linux guest: its source, a static busybox, and the kernel's build tools.
    need(
        Path::new("/usr/src/linux-source-6.12.tar.xz").exists(),
        "/usr/src/linux-source-6.12.tar.xz (Linux 6.12 source)",
        "linux-source-6.12",
    );
    need(Path::new("/bin/busybox").exists(), "/bin/busybox (static)", "busybox-static");
    // The latency comparison's load (`bench --compare`): stress-ng goes into Linux's initramfs.
    need(Path::new(crate::linux::STRESS_NG).exists(), crate::linux::STRESS_NG, "stress-ng");
    // Linux's disks and the Debian image (`cargo xtask rootfs`), and ssh into it.
    need(find_program("mmdebstrap").is_some(), "mmdebstrap (the Debian image)", "mmdebstrap");
    need(find_program("mkfs.ext4").is_some() && find_program("debugfs").is_some(), "mkfs.ext4, debugfs", "e2fsprogs");
    need(find_program("ssh").is_some() && find_program("ssh-keygen").is_some(), "ssh, ssh-keygen", "openssh-client");
    for (prog, package) in [("flex", "flex"), ("bison", "bison"), ("bc", "bc"), ("make", "make"), ("gcc", "gcc")] {
        need(find_program(prog).is_some(), prog, package);
    }
    need(
        Path::new("/usr/include/libelf.h").exists() || Path::new("/usr/include/gelf.h").exists(),
        "libelf headers (objtool)",
        "libelf-dev",
    );
    need(Path::new("/usr/include/openssl/ssl.h").exists(), "OpenSSL headers (kernel build)", "libssl-dev");
    need(
        Path::new("/usr/lib/x86_64-linux-gnu/libc.a").exists(),
        "static glibc (Linux's x86 selftests are linked static)",
        "libc6-dev",
    );
    m
}

/// Whether xtask runs as root (`id -u` is 0).
pub(crate) fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// The Debian major version (`/etc/debian_version` = `12.11` → 12), if this is Debian.
fn debian_major() -> Option<u32> {
    let v = std::fs::read_to_string("/etc/debian_version").ok()?;
    parse_debian_major(&v)
}

fn parse_debian_major(v: &str) -> Option<u32> {
    v.trim().split('.').next()?.parse().ok()
}

/// Does any apt source mention bookworm-backports?
fn has_backports_source() -> bool {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(dir.flatten().map(|e| e.path()).filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".list") || n.ends_with(".sources")
        }));
    }
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .any(|t| t.lines().any(|l| !l.trim_start().starts_with('#') && l.contains("bookworm-backports")))
}

const BACKPORTS_FILE: &str = "/etc/apt/sources.list.d/bookworm-backports.sources";
const BACKPORTS_SOURCE: &str = "Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";
const APT_PACKAGES: &[&str] = &[
    "grub-pc-bin",
    "grub-efi-amd64-bin",
    "grub-common",
    "xorriso",
    "mtools",
    "ovmf",
    "busybox-static",
    "stress-ng",
    "linux-source-6.12",
    "flex",
    "bison",
    "bc",
    "make",
    "gcc",
    "libelf-dev",
    "libssl-dev",
    "libc6-dev",
    "mmdebstrap",
    "e2fsprogs",
    "openssh-client",
];

/// The shell commands that install everything (for printing when not root).
fn install_commands(debian12: bool, need_backports_source: bool) -> Vec<String> {
    let mut v = Vec::new();
    if debian12 && need_backports_source {
        v.push(format!("printf '{}' > {BACKPORTS_FILE}", BACKPORTS_SOURCE.replace('\n', "\\n")));
    }
    v.push("apt-get update".into());
    if debian12 {
        v.push("DEBIAN_FRONTEND=noninteractive apt-get install -y -t bookworm-backports qemu-system-x86".into());
    } else {
        v.push("DEBIAN_FRONTEND=noninteractive apt-get install -y qemu-system-x86".into());
    }
    v.push(format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}",
        APT_PACKAGES.join(" ")
    ));
    v
}

fn apt(args: &[&str]) -> Result<(), String> {
    run_status(Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive"))
}

fn install_debian(debian12: bool) -> Result<(), String> {
    if debian12 && !has_backports_source() {
        println!("==> adding {BACKPORTS_FILE}");
        std::fs::write(BACKPORTS_FILE, BACKPORTS_SOURCE).map_err(|e| format!("cannot write {BACKPORTS_FILE}: {e}"))?;
    }
    println!("==> apt-get update");
    apt(&["update"])?;
    println!("==> installing QEMU");
    if debian12 {
        apt(&["install", "-y", "-t", "bookworm-backports", "qemu-system-x86"])?;
    } else {
        apt(&["install", "-y", "qemu-system-x86"])?;
    }
    println!(
        "==> installing GRUB, xorriso, mtools, OVMF, busybox-static, stress-ng, the Linux 6.12 source and its build tools, \
         mmdebstrap, e2fsprogs and the ssh client"
    );
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend_from_slice(APT_PACKAGES);
    apt(&args)
}

/// Check the host tools; install missing ones as root on Debian; otherwise explain and fail.
pub fn ensure() -> Result<Tools, String> {
    for (target, _) in RUST_TARGETS {
        if !rust_target_installed(target) {
            println!("==> installing the Rust target {target}");
            run_status(Command::new("rustup").args(["target", "add", target]))
                .map_err(|e| format!("{e}\n{}", missing_target_message(target)))?;
        }
    }
    let miss = missing();
    if !miss.is_empty() {
        println!("==> missing host tools:");
        for m in &miss {
            println!("    {} (Debian package {})", m.what, m.package);
        }
        let debian = debian_major();
        match debian {
            Some(major) if is_root() => {
                install_debian(major == 12)?;
                let still = missing();
                if !still.is_empty() {
                    let list: Vec<String> = still.iter().map(|m| m.what.clone()).collect();
                    return Err(format!("still missing after installing: {}", list.join(", ")));
                }
            }
            Some(major) => {
                println!("Run as root (e.g. with sudo):");
                for c in install_commands(major == 12, !has_backports_source()) {
                    println!("    {c}");
                }
                return Err("host tools missing; install them with the commands above, then retry".into());
            }
            None => {
                let pkgs: Vec<&str> = miss.iter().map(|m| m.package).collect();
                return Err(format!(
                    "host tools missing and this is not Debian: install the equivalents of the Debian packages {} \
                     (QEMU >= {QEMU_X2APIC_MAJOR} for x2APIC); set HAUKI_OVMF_CODE/HAUKI_OVMF_VARS if OVMF lives elsewhere",
                    pkgs.join(" ")
                ));
            }
        }
    }
    let qemu_version = qemu_version().ok_or("qemu-system-x86_64 --version gave no version")?;
    let ovmf = find_ovmf().ok_or("no OVMF image found")?;
    let tools = Tools { qemu_version, ovmf };
    if !tools.has_tcg_x2apic() {
        println!(
            "warning: QEMU {}.{}.{} is older than {QEMU_X2APIC_MAJOR}: no x2APIC under TCG; on Debian 12 install \
             qemu-system-x86 from bookworm-backports",
            qemu_version.0, qemu_version.1, qemu_version.2
        );
    }
    Ok(tools)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_target_says_what_to_run() {
        let m = missing_target_message(LINUX_TOOLS_TARGET);
        assert!(m.starts_with("haukictl in Linux's initramfs needs the Rust target x86_64-unknown-linux-musl"), "{m}");
        assert!(m.contains("run `rustup target add x86_64-unknown-linux-musl`"), "{m}");
        assert!(missing_target_message(KERNEL_TARGET).starts_with("the co-kernel needs"));
        let toolchain = include_str!("../../rust-toolchain.toml");
        for (t, _) in RUST_TARGETS {
            assert!(toolchain.contains(&format!("\"{t}\"")), "rust-toolchain.toml does not list {t}");
        }
    }

    #[test]
    fn qemu_versions() {
        assert_eq!(
            parse_qemu_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright"),
            Some((10, 0, 2))
        );
        assert_eq!(parse_qemu_version("QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u12)"), Some((7, 2, 15)));
        assert_eq!(parse_qemu_version("QEMU emulator version 8.2.0"), Some((8, 2, 0)));
        assert_eq!(parse_qemu_version("QEMU emulator version 9.1.50 (v9.1.0-123-gabc)"), Some((9, 1, 50)));
        assert_eq!(parse_qemu_version("nonsense"), None);
    }

    #[test]
    fn debian_versions() {
        assert_eq!(parse_debian_major("12.11\n"), Some(12));
        assert_eq!(parse_debian_major("13.0"), Some(13));
        assert_eq!(parse_debian_major("trixie/sid"), None);
    }

    #[test]
    fn printed_install_commands() {
        let c = install_commands(true, true);
        assert!(c[0].contains(BACKPORTS_FILE) && c[0].contains("Suites: bookworm-backports"));
        assert!(c.iter().any(|l| l.contains("-t bookworm-backports qemu-system-x86")));
        assert!(c.last().unwrap().contains("--no-install-recommends grub-pc-bin"));
        assert!(!install_commands(true, false).iter().any(|l| l.contains(BACKPORTS_FILE)));
        assert!(!install_commands(false, false).iter().any(|l| l.contains("backports")));
    }
}
