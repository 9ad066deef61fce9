//! `cargo xtask rootfs`: a Debian 12 root filesystem image for Linux beside the real-time tasks
//! (`cargo xtask run --rootfs debian`), built from Debian's package archive with mmdebstrap and
//! cached under `~/.cache/hauki/rootfs-<key>/`, the key being everything it is built from: the
//! package list and overlay under `rootfs/debian/`, the suite, this recipe's version and the ssh
//! key xtask generated. docs/rootfs.md is the user's side of it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::util::{Workspace, find_program, last_lines, show};

/// Bump when the recipe below changes what the image holds.
const RECIPE_VERSION: u32 = 1;
/// Debian's release.
pub const SUITE: &str = "bookworm";
/// Where the packages come from (and the security updates).
const MIRRORS: [&str; 2] = [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
];
/// The image's size (a sparse file: it takes what the files take, about 700 MiB).
const IMAGE_SIZE: &str = "4G";
/// The filesystem label.
pub const LABEL: &str = "hauki-root";
/// The image in its cache folder.
const IMAGE: &str = "debian.ext4";
/// Units the image enables beyond what its packages enable.
const ENABLE: &[&str] = &["systemd-networkd.service"];
/// Linux's command line for a boot into the image: the kernel mounts the first virtio disk
/// read-only, systemd checks it and makes it writable (the fstab in `rootfs/debian/overlay`).
pub const CMDLINE: &str = "console=ttyS0 panic=-1 root=/dev/vda ro rootwait rootfstype=ext4";
/// The user's working copy of the image, in `target/hauki/`: what they change in Debian stays
/// there from run to run; a new image from the cache replaces it only when the cache key changed.
pub const WORKING_COPY: &str = "debian.ext4";

/// The ssh key pair xtask generates (once) for logging in to the image: the private key's path.
pub fn ssh_key() -> PathBuf {
    crate::linux::cache_dir().join("ssh").join("id_ed25519")
}

/// Generates the key pair if it is absent; its public half.
fn ensure_ssh_key() -> Result<String, String> {
    let key = ssh_key();
    let public = key.with_extension("pub");
    if !public.exists() {
        let dir = key.parent().ok_or("no folder for the ssh key")?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let _ = std::fs::remove_file(&key);
        let mut c = Command::new("ssh-keygen");
        c.args(["-q", "-t", "ed25519", "-N", "", "-C", "hauki-xtask", "-f"]).arg(&key);
        let o = c.output().map_err(|e| format!("cannot run ssh-keygen (install openssh-client): {e}"))?;
        if !o.status.success() {
            return Err(format!("`{}` failed: {}", show(&c), String::from_utf8_lossy(&o.stderr)));
        }
        println!("==> generated the ssh key for the Debian image: {}", key.display());
    }
    std::fs::read_to_string(&public).map_err(|e| format!("{}: {e}", public.display()))
}

/// The packages of `rootfs/debian/packages` (comments and blank lines dropped).
pub fn packages(ws: &Workspace) -> Result<Vec<String>, String> {
    let p = ws.root.join("rootfs/debian/packages");
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(parse_packages(&text))
}

fn parse_packages(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The overlay's files, relative path and contents, in a fixed order.
fn overlay(ws: &Workspace) -> Result<Vec<(String, Vec<u8>)>, String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), String> {
        let entries = crate::util::sorted_entries(dir)?;
        for p in entries {
            if p.is_dir() {
                walk(root, &p, out)?;
            } else {
                let rel = p.strip_prefix(root).map_err(|e| e.to_string())?.to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?));
            }
        }
        Ok(())
    }
    let root = ws.root.join("rootfs/debian/overlay");
    let mut out = Vec::new();
    walk(&root, &root, &mut out)?;
    Ok(out)
}

/// The cache key: everything the image is built from.
fn key(packages: &[String], overlay: &[(String, Vec<u8>)], ssh_public: &str) -> String {
    let mut h = Sha256::new();
    h.update(format!("recipe {RECIPE_VERSION}\nsuite {SUITE}\nsize {IMAGE_SIZE}\nlabel {LABEL}\n"));
    for m in MIRRORS {
        h.update(format!("mirror {m}\n"));
    }
    for u in ENABLE {
        h.update(format!("enable {u}\n"));
    }
    for p in packages {
        h.update(format!("package {p}\n"));
    }
    for (path, data) in overlay {
        h.update(format!("file {path} {}\n", data.len()));
        h.update(data);
    }
    h.update(format!("ssh {}\n", ssh_public.trim()));
    h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds the image if the cache lacks it; its path in the cache.
pub fn build(ws: &Workspace) -> Result<PathBuf, String> {
    let packages = packages(ws)?;
    let overlay = overlay(ws)?;
    let public = ensure_ssh_key()?;
    let key = key(&packages, &overlay, &public);
    let dir = crate::linux::cache_dir().join(format!("rootfs-{key}"));
    let image = dir.join(IMAGE);
    if image.exists() {
        println!("==> Debian {SUITE} image (cached): {}", image.display());
        return Ok(image);
    }
    for (prog, package) in [("mmdebstrap", "mmdebstrap"), ("mkfs.ext4", "e2fsprogs"), ("chroot", "coreutils")] {
        if find_program(prog).is_none() {
            return Err(format!("{prog} is missing: `apt-get install {package}` (`cargo xtask deps` does it as root)"));
        }
    }
    if !crate::deps::is_root() {
        return Err("cargo xtask rootfs builds the image as root (mmdebstrap's root mode keeps the files' owners, \
                    which mkfs.ext4 -d copies): run it with sudo once; the image is cached for everyone after"
            .into());
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tree = dir.join("tree");
    let _ = std::fs::remove_dir_all(&tree);
    let log = dir.join("build.log");
    let _ = std::fs::remove_file(&log);
    println!(
        "==> building a Debian {SUITE} image from Debian's archive ({} packages and their dependencies, \
         about 300 MiB to download; 3 to 10 minutes); log: {}",
        packages.len(),
        log.display()
    );
    let mut c = Command::new("mmdebstrap");
    c.args(["--mode=root", "--variant=apt", "--format=directory"])
        .arg(format!("--include={}", packages.join(",")))
        .arg(SUITE)
        .arg(&tree)
        .args(MIRRORS);
    run_with_phases(c, &log)?;
    println!("==> customizing: rootfs/debian/overlay, the ssh key, {}", ENABLE.join(", "));
    for (path, data) in &overlay {
        let dest = tree.join(path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&dest, data).map_err(|e| format!("{}: {e}", dest.display()))?;
    }
    let ssh = tree.join("root/.ssh");
    std::fs::create_dir_all(&ssh).map_err(|e| format!("{}: {e}", ssh.display()))?;
    std::fs::write(ssh.join("authorized_keys"), &public).map_err(|e| format!("authorized_keys: {e}"))?;
    set_mode(&ssh, 0o700)?;
    set_mode(&ssh.join("authorized_keys"), 0o600)?;
    let mut enable = Command::new("chroot");
    enable.arg(&tree).args(["systemctl", "enable"]).args(ENABLE);
    crate::linux::run_logged(enable, &log)?;
    println!("==> mkfs.ext4 -d: the tree into a {IMAGE_SIZE} sparse image");
    let partial = dir.join("debian.ext4.partial");
    let _ = std::fs::remove_file(&partial);
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args(["-q", "-F", "-L", LABEL, "-d"]).arg(&tree).arg(&partial).arg(IMAGE_SIZE);
    crate::linux::run_logged(mkfs, &log)?;
    std::fs::rename(&partial, &image).map_err(|e| format!("{}: {e}", image.display()))?;
    let _ = std::fs::remove_dir_all(&tree);
    let used = std::fs::metadata(&image).map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512).unwrap_or(0);
    println!("==> Debian {SUITE} image: {} ({} MiB used of {IMAGE_SIZE})", image.display(), used >> 20);
    Ok(image)
}

/// The user's working copy (`target/hauki/debian.ext4`), refreshed from the cache when the cache
/// key changed, with this tree's Linux tools (`haukictl`, …) written into `/usr/local/bin`.
pub fn working_copy(ws: &Workspace) -> Result<PathBuf, String> {
    let cached = build(ws)?;
    let copy = ws.hauki_dir().join(WORKING_COPY);
    let stamp = ws.hauki_dir().join(format!("{WORKING_COPY}.from"));
    let from = cached.display().to_string();
    if !copy.exists() || std::fs::read_to_string(&stamp).ok().as_deref() != Some(from.as_str()) {
        println!("==> a fresh working copy of the image: {}", ws.rel(&copy));
        std::fs::create_dir_all(ws.hauki_dir()).map_err(|e| e.to_string())?;
        sparse_copy(&cached, &copy)?;
        std::fs::write(&stamp, &from).map_err(|e| e.to_string())?;
    }
    install_tools(ws, &copy)?;
    Ok(copy)
}

/// A fresh copy of the cached image at `dest` (sparse), with this tree's Linux tools in it: what a
/// test boots, so that no test changes the cache or the user's working copy.
pub fn fresh_copy(ws: &Workspace, dest: &Path) -> Result<(), String> {
    let cached = build(ws)?;
    let _ = std::fs::remove_file(dest);
    sparse_copy(&cached, dest)?;
    install_tools(ws, dest)
}

/// Copies the image `from` to `to`, keeping it sparse.
fn sparse_copy(from: &Path, to: &Path) -> Result<(), String> {
    crate::util::run_status(Command::new("cp").arg("--sparse=always").arg(from).arg(to))
}

/// Writes the Linux tools into `/usr/local/bin` of the (unmounted) image with debugfs.
fn install_tools(ws: &Workspace, image: &Path) -> Result<(), String> {
    let tools = crate::linux::build_haukictl(ws)?;
    let dir = ws.hauki_dir().join("rootfs-tools");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut script = String::from("cd /usr/local/bin\n");
    for (name, data) in &tools {
        let p = dir.join(name);
        std::fs::write(&p, data).map_err(|e| format!("{}: {e}", p.display()))?;
        script.push_str(&format!("rm {name}\nwrite {} {name}\nsif {name} mode 0100755\n", p.display()));
    }
    let cmds = dir.join("debugfs.cmds");
    std::fs::write(&cmds, script).map_err(|e| e.to_string())?;
    let mut c = Command::new("debugfs");
    c.arg("-w").arg("-f").arg(&cmds).arg(image);
    let o = c.output().map_err(|e| format!("cannot run debugfs (e2fsprogs): {e}"))?;
    // debugfs reports a missing file on `rm` and carries on; anything else it cannot do fails here.
    let err = String::from_utf8_lossy(&o.stderr);
    let bad: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs ") && !l.contains("File not found by ext2_lookup"))
        .collect();
    if !o.status.success() || !bad.is_empty() {
        return Err(format!("`{}` could not write the tools into {}: {}", show(&c), image.display(), bad.join("; ")));
    }
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(|e| format!("{}: {e}", p.display()))
}

/// Runs mmdebstrap with its output in `log`, showing its phases (its `I: …` lines) as progress.
fn run_with_phases(mut cmd: Command, log: &Path) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", show(&cmd)))?;
    let stdout = child.stdout.take();
    let out_log = log.to_path_buf();
    let drain = std::thread::spawn(move || {
        if let (Some(s), Ok(mut f)) = (stdout, std::fs::OpenOptions::new().append(true).open(out_log)) {
            for line in BufReader::new(s).lines().map_while(Result::ok) {
                let _ = writeln!(f, "{line}");
            }
        }
    });
    let mut tail = Vec::new();
    let started = std::time::Instant::now();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = writeln!(f, "{line}");
            if let Some(phase) = line.strip_prefix("I: ") {
                println!("    [{:>4} s] {phase}", started.elapsed().as_secs());
            }
            tail.push(line);
        }
    }
    let _ = drain.join();
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        return Ok(());
    }
    Err(format!(
        "`{}` failed ({status}); last lines (full log: {}):\n{}",
        show(&cmd),
        log.display(),
        last_lines(&tail.join("\n"), 30).join("\n")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_list_drops_comments_and_the_key_follows_every_input() {
        let p = parse_packages("# head\nsystemd\n\n  python3  # why\n#x\n");
        assert_eq!(p, ["systemd", "python3"]);
        let o = vec![("etc/hostname".to_string(), b"a\n".to_vec())];
        let k = key(&p, &o, "ssh-ed25519 AAAA k");
        assert_eq!(k.len(), 16);
        assert_eq!(k, key(&p, &o, "ssh-ed25519 AAAA k\n"), "a trailing newline is not a new key");
        assert_ne!(k, key(&p[..1], &o, "ssh-ed25519 AAAA k"), "the package list");
        assert_ne!(k, key(&p, &[("etc/hostname".into(), b"b\n".to_vec())], "ssh-ed25519 AAAA k"), "a file");
        assert_ne!(k, key(&p, &[("etc/hosts".into(), b"a\n".to_vec())], "ssh-ed25519 AAAA k"), "a path");
        assert_ne!(k, key(&p, &o, "ssh-ed25519 BBBB k"), "the ssh key");
    }
}
