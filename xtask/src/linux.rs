//! The Linux guest: the patched 6.12 kernel (`target/hauki/vmlinux`) and the initramfs
//! (`target/hauki/initramfs.cpio.gz`).
//!
//! Linux comes from Debian's `linux-source-6.12` tarball (offline-friendly), extracted once into the
//! cache (`$HAUKI_CACHE`, else `$XDG_CACHE_HOME/hauki`, else `~/.cache/hauki`), never into the repo.
//! A build is keyed by the source version, the patch series, the config fragment and this recipe's
//! version: an unchanged key reuses the cached `vmlinux` (seconds); a changed one rebuilds (about 8
//! minutes per flavour on 2 cores) in a hard-linked copy of the pristine tree with
//! `linux-patch/series` applied, showing how many of the expected objects make has compiled
//! ([`crate::meter`]).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::meter::Meter;
use crate::util::{Workspace, last_lines, run_status, show};

/// Bump when the build steps below change in a way that changes the output.
const RECIPE_VERSION: u32 = 1;
const TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";
const SOURCE_DIR: &str = "linux-source-6.12";
const SOURCE_PACKAGE: &str = "linux-source-6.12";

pub const VMLINUX: &str = "vmlinux";
pub const INITRAMFS: &str = "initramfs.cpio.gz";

/// The cache folder for Linux trees and builds.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HAUKI_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("hauki");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".cache").join("hauki")
}

pub(crate) fn source_version() -> Result<String, String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", SOURCE_PACKAGE])
        .output()
        .map_err(|e| format!("cannot run dpkg-query: {e}"))?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || v.is_empty() || !Path::new(TARBALL).exists() {
        return Err(format!(
            "the Linux 6.12 source is missing: install Debian's {SOURCE_PACKAGE} \
             (`apt-get install {SOURCE_PACKAGE}`; `cargo xtask deps` does it as root), which provides {TARBALL}"
        ));
    }
    Ok(v)
}

/// The patches named in `linux-patch/series`, in order.
pub fn series(ws: &Workspace) -> Result<Vec<PathBuf>, String> {
    let dir = ws.root.join("linux-patch");
    let text = std::fs::read_to_string(dir.join("series")).map_err(|e| format!("linux-patch/series: {e}"))?;
    Ok(parse_series(&text).into_iter().map(|p| dir.join(p)).collect())
}

fn parse_series(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect()
}

/// Which kernel: the one that runs (`hauki.config`), the debug build for lockdep and entry
/// checks (`hauki.config` + `hauki-debug.config`), or one of the two references Hauki is compared
/// with, built from the same source without the patch series: `hauki.config` without its Hauki
/// options, `EXPERT` on (which PREEMPT_RT depends on) and a preemption model set on the
/// configured tree with `scripts/config`, then `olddefconfig` (setting EXPERT in the
/// `allnoconfig` fragment instead would turn off dozens of options EXPERT makes visible).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    Default,
    Debug,
    /// Unpatched, `CONFIG_PREEMPT_RT` (mainline since 6.12).
    PreemptRt,
    /// Unpatched, `CONFIG_PREEMPT_VOLUNTARY`: the preemption Debian's kernels run with by default.
    Stock,
}

impl Flavour {
    fn fragments(self) -> &'static [&'static str] {
        match self {
            Flavour::Debug => &["linux-patch/hauki.config", "linux-patch/hauki-debug.config"],
            Flavour::Default | Flavour::PreemptRt | Flavour::Stock => &["linux-patch/hauki.config"],
        }
    }

    /// Whether the patch series is applied (the references are built without it).
    fn patched(self) -> bool {
        matches!(self, Flavour::Default | Flavour::Debug)
    }

    /// How the progress lines name the build.
    fn what(self) -> &'static str {
        if self.patched() { "with the patch series" } else { "unpatched" }
    }

    /// `scripts/config` arguments applied after `allnoconfig` (then `olddefconfig`), if any.
    pub fn preemption(self) -> &'static [&'static str] {
        match self {
            Flavour::Default | Flavour::Debug => &[],
            Flavour::PreemptRt => &["-e", "EXPERT", "-d", "PREEMPT_NONE", "-e", "PREEMPT_RT"],
            Flavour::Stock => &["-e", "EXPERT", "-d", "PREEMPT_NONE", "-e", "PREEMPT_VOLUNTARY"],
        }
    }

    /// The file name in `target/hauki/`.
    pub fn vmlinux(self) -> &'static str {
        match self {
            Flavour::Default => VMLINUX,
            Flavour::Debug => "vmlinux-debug",
            Flavour::PreemptRt => "vmlinux-preempt-rt",
            Flavour::Stock => "vmlinux-stock",
        }
    }

    /// Objects a build compiles, as counted when this was written (the Linux 6.12 tree with the
    /// series and the fragments); a build remembers its own count for the next one
    /// ([`expected_objects`]).
    fn typical_objects(self) -> u64 {
        match self {
            Flavour::Default | Flavour::PreemptRt | Flavour::Stock => 1190,
            Flavour::Debug => 1220,
        }
    }

    /// The name of the cache file holding the object count of the last build.
    fn objects_file(self) -> &'static str {
        match self {
            Flavour::Default => "objects-default",
            Flavour::Debug => "objects-debug",
            Flavour::PreemptRt => "objects-preempt-rt",
            Flavour::Stock => "objects-stock",
        }
    }

    /// The fragments, concatenated (without the Hauki options for an unpatched build).
    fn config(self, ws: &Workspace) -> Result<String, String> {
        let mut text = String::new();
        for f in self.fragments() {
            let p = ws.root.join(f);
            text.push_str(&std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?);
        }
        if !self.patched() {
            text = without_hauki_options(&text);
        }
        Ok(text)
    }
}

/// A fragment without the options only the patch series has (`CONFIG_HAUKI_*`).
fn without_hauki_options(fragment: &str) -> String {
    fragment.lines().filter(|l| !l.contains("CONFIG_HAUKI_")).map(|l| format!("{l}\n")).collect()
}

/// The cache key: every input that changes the kernel.
fn build_key(ws: &Workspace, version: &str, flavour: Flavour) -> Result<String, String> {
    let mut h = Sha256::new();
    h.update(format!("recipe {RECIPE_VERSION}\nsource {version}\n"));
    if !flavour.patched() {
        h.update(format!("unpatched, scripts/config {}\n", flavour.preemption().join(" ")));
    }
    for p in series(ws)?.into_iter().filter(|_| flavour.patched()) {
        let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        h.update(p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        h.update(&bytes);
    }
    h.update(flavour.config(ws)?);
    let mut key = String::new();
    for b in &h.finalize()[..8] {
        let _ = write!(key, "{b:02x}");
    }
    Ok(key)
}

fn ensure_source(cache: &Path, version: &str) -> Result<PathBuf, String> {
    let pristine = cache.join(format!("src-{version}"));
    let tree = pristine.join(SOURCE_DIR);
    if tree.join("Makefile").exists() {
        return Ok(tree);
    }
    println!("==> extracting {TARBALL} into {}", pristine.display());
    let tmp = cache.join(format!("src-{version}.partial"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    run_status(Command::new("tar").arg("-xJf").arg(TARBALL).arg("-C").arg(&tmp))?;
    let _ = std::fs::remove_dir_all(&pristine);
    std::fs::rename(&tmp, &pristine).map_err(|e| format!("{}: {e}", pristine.display()))?;
    Ok(tree)
}

/// The pristine Linux tree in the cache (extracted on first use), for tools that read it as it is
/// (`scripts/checkpatch.pl`).
pub fn source_tree() -> Result<PathBuf, String> {
    ensure_source(&cache_dir(), &source_version()?)
}

/// Builds (or takes from the cache) the patched kernel; returns `target/hauki/vmlinux`.
pub fn build_kernel(ws: &Workspace) -> Result<PathBuf, String> {
    build_flavour(ws, Flavour::Default)
}

/// Whether a flavour's build is in the cache already.
pub fn is_cached(ws: &Workspace, flavour: Flavour) -> bool {
    let key = source_version().and_then(|v| build_key(ws, &v, flavour));
    key.is_ok_and(|k| cache_dir().join(format!("linux-{k}")).join(VMLINUX).exists())
}

/// The `.config` a built flavour was made with (kept beside its vmlinux in the cache).
pub fn built_config(ws: &Workspace, flavour: Flavour) -> Result<String, String> {
    let key = build_key(ws, &source_version()?, flavour)?;
    let p = cache_dir().join(format!("linux-{key}")).join("config");
    std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
}

/// Builds (or takes from the cache) a kernel flavour; returns its path in `target/hauki/`.
pub fn build_flavour(ws: &Workspace, flavour: Flavour) -> Result<PathBuf, String> {
    let version = source_version()?;
    let key = build_key(ws, &version, flavour)?;
    let cache = cache_dir();
    let dir = cache.join(format!("linux-{key}"));
    let cached = dir.join(VMLINUX);
    let out = ws.hauki_dir().join(flavour.vmlinux());
    if !cached.exists() {
        let _lock = build_lock(&cache, &key)?;
        if !cached.exists() {
            compile(ws, &cache, &dir, &version, flavour)?;
        } else {
            println!("==> Linux {version} {} ({flavour:?}): built meanwhile ({})", flavour.what(), dir.display());
        }
    } else {
        println!("==> Linux {version} {} ({flavour:?}): cached ({})", flavour.what(), dir.display());
    }
    std::fs::create_dir_all(ws.hauki_dir()).map_err(|e| e.to_string())?;
    std::fs::copy(&cached, &out).map_err(|e| format!("copy {} -> {}: {e}", cached.display(), out.display()))?;
    Ok(out)
}

/// One build of a key at a time: another xtask building the same kernel (a second test run, another
/// terminal) is waited for, and its result taken, instead of its tree being removed under it. The
/// lock is held until the returned file is dropped.
fn build_lock(cache: &Path, key: &str) -> Result<std::fs::File, String> {
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let path = cache.join(format!("linux-{key}.lock"));
    let lock = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if lock.try_lock().is_err() {
        println!("==> waiting for another xtask building the same Linux (it holds {})", path.display());
        lock.lock().map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(lock)
}

fn compile(ws: &Workspace, cache: &Path, dir: &Path, version: &str, flavour: Flavour) -> Result<(), String> {
    let pristine = ensure_source(cache, version)?;
    let work = dir.join("work");
    let tree = work.join("src");
    let obj = work.join("obj");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    // A hard-linked copy: cheap, and `patch` replaces (not edits) the files it changes.
    run_status(Command::new("cp").arg("-al").arg(&pristine).arg(&tree))?;
    for p in series(ws)?.into_iter().filter(|_| flavour.patched()) {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        println!("==> applying {name}");
        let o = Command::new("patch")
            .args(["-p1", "--forward", "--batch", "--quiet", "-i"])
            .arg(&p)
            .current_dir(&tree)
            .output()
            .map_err(|e| format!("cannot run patch: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "{name} does not apply to Debian's {SOURCE_PACKAGE} {version}:\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
    let frag = work.join("allconfig");
    let config = flavour.config(ws)?;
    std::fs::write(&frag, &config).map_err(|e| format!("{}: {e}", frag.display()))?;
    let make = |args: &[&str]| {
        let mut c = Command::new("make");
        c.arg("-C").arg(&tree).arg(format!("O={}", obj.display())).args(args);
        c
    };
    println!("==> configuring (allnoconfig + {})", flavour.fragments().join(" + "));
    let log = dir.join("build.log");
    run_logged(make(&["allnoconfig", &format!("KCONFIG_ALLCONFIG={}", frag.display())]), &log)?;
    if !flavour.preemption().is_empty() {
        println!("==> scripts/config {} && make olddefconfig", flavour.preemption().join(" "));
        let mut sc = Command::new(tree.join("scripts/config"));
        sc.arg("--file").arg(obj.join(".config")).args(flavour.preemption());
        run_logged(sc, &log)?;
        run_logged(make(&["olddefconfig"]), &log)?;
        let have = std::fs::read_to_string(obj.join(".config")).map_err(|e| format!(".config: {e}"))?;
        let wrong = preemption_not_taken(flavour.preemption(), &have);
        if !wrong.is_empty() {
            return Err(format!("Kconfig did not take the preemption model ({flavour:?}): {}", wrong.join(", ")));
        }
    }
    check_config(&config, &obj.join(".config"))?;
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (expected, from) = expected_objects(cache, flavour);
    println!(
        "==> building Linux {version} ({flavour:?}): about {expected} objects ({from}), about 8 minutes on 2 cores; log: {}",
        log.display()
    );
    let mut meter = Meter::new("linux build", "objects", expected);
    let built = run_counted(make(&[&format!("-j{jobs}"), "vmlinux"]), &log, &mut meter);
    meter.finish(if built.is_ok() { "done" } else { "failed" });
    built?;
    let _ = std::fs::write(cache.join(flavour.objects_file()), format!("{}\n", meter.done()));
    // Complete or absent: a build that is not waited for (see `build_lock`) never copies half a file.
    let partial = dir.join("vmlinux.partial");
    std::fs::copy(obj.join("vmlinux"), &partial).map_err(|e| format!("vmlinux: {e}"))?;
    std::fs::copy(obj.join(".config"), dir.join("config")).map_err(|e| format!(".config: {e}"))?;
    std::fs::rename(&partial, dir.join(VMLINUX)).map_err(|e| format!("vmlinux: {e}"))?;
    // The tree and objects are large; the cache keeps only what runs.
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// The objects the next build of `flavour` is expected to compile, and where the figure comes from.
fn expected_objects(cache: &Path, flavour: Flavour) -> (u64, &'static str) {
    let last = std::fs::read_to_string(cache.join(flavour.objects_file())).ok().and_then(|t| t.trim().parse().ok());
    match last {
        Some(n) if n > 0 => (n, "as many as the last build"),
        _ => (flavour.typical_objects(), "a typical build"),
    }
}

/// Whether a line of kbuild's output (`V=0`, the default) says an object is being compiled:
/// `  CC      kernel/fork.o`, `  AS      arch/x86/entry/entry_64.o`.
fn is_object_line(line: &str) -> bool {
    let mut words = line.split_whitespace();
    line.starts_with("  ")
        && matches!(words.next(), Some("CC" | "AS"))
        && words.next().is_some_and(|path| path.ends_with(".o"))
        && words.next().is_none()
}

/// Calls `each` with every line `r` gives (invalid UTF-8 replaced: reading must never stop early,
/// or the child would block on a full pipe).
fn for_each_line(r: impl Read, mut each: impl FnMut(&str)) {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
        each(String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']));
        buf.clear();
    }
}

/// Runs `cmd` with its output appended to `log`, counting on `meter` every object it compiles.
fn run_counted(mut cmd: Command, log: &Path, meter: &mut Meter) -> Result<(), String> {
    let open = || {
        std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| format!("{}: {e}", log.display()))
    };
    let (mut out_log, mut err_log) = (open()?, open()?);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {}: {e}", show(&cmd)))?;
    let keep = |tail: &mut VecDeque<String>, line: &str| {
        if tail.len() == 30 {
            tail.pop_front();
        }
        tail.push_back(line.to_string());
    };
    let stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut tail = VecDeque::new();
        if let Some(e) = stderr {
            for_each_line(e, |line| {
                let _ = writeln!(err_log, "{line}");
                keep(&mut tail, line);
            });
        }
        tail
    });
    let mut tail = VecDeque::new();
    if let Some(out) = child.stdout.take() {
        for_each_line(out, |line| {
            let _ = writeln!(out_log, "{line}");
            if is_object_line(line) {
                meter.inc();
            }
            keep(&mut tail, line);
        });
    }
    let status = child.wait().map_err(|e| format!("{}: {e}", show(&cmd)))?;
    let err_tail = errors.join().unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    let lines: Vec<String> = err_tail.into_iter().chain(tail).collect();
    Err(format!(
        "`{}` failed ({status}); last lines (full log: {}):\n{}",
        show(&cmd),
        log.display(),
        last_lines(&lines.join("\n"), 30).join("\n")
    ))
}

pub(crate) fn run_logged(mut cmd: Command, log: &Path) -> Result<(), String> {
    let o = cmd.output().map_err(|e| format!("cannot run {}: {e}", show(&cmd)))?;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| e.to_string())?;
    let _ = f.write_all(&o.stdout);
    let _ = f.write_all(&o.stderr);
    if o.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
    Err(format!(
        "`{}` failed; last lines (full log: {}):\n{}",
        show(&cmd),
        log.display(),
        last_lines(&text, 30).join("\n")
    ))
}

/// Every `CONFIG_X=…` the fragment asks for must have survived Kconfig (a typo or an unmet
/// dependency silently drops an option otherwise).
fn check_config(fragment: &str, config: &Path) -> Result<(), String> {
    let have = std::fs::read_to_string(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let missing = missing_options(fragment, &have);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Kconfig dropped options of linux-patch/hauki.config (unmet dependencies?): {}",
            missing.join(", ")
        ))
    }
}

/// The `scripts/config` settings (`-e X`, `-d X`) a `.config` does not have.
fn preemption_not_taken(args: &[&str], config: &str) -> Vec<String> {
    let have: std::collections::HashSet<&str> = config.lines().map(str::trim).collect();
    args.chunks(2)
        .filter_map(|a| match a {
            ["-e", name] => (!have.contains(format!("CONFIG_{name}=y").as_str())).then(|| format!("CONFIG_{name}=y")),
            ["-d", name] => have.contains(format!("CONFIG_{name}=y").as_str()).then(|| format!("CONFIG_{name} off")),
            _ => None,
        })
        .collect()
}

fn missing_options(fragment: &str, config: &str) -> Vec<String> {
    let have: std::collections::HashSet<&str> = config.lines().map(str::trim).collect();
    fragment
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("CONFIG_") || l.starts_with("# CONFIG_"))
        .filter(|l| {
            // "# CONFIG_X is not set" is satisfied by the same line or by X being absent.
            if let Some(name) = l.strip_prefix("# ").and_then(|r| r.strip_suffix(" is not set")) {
                !have.contains(l) && have.iter().any(|h| h.starts_with(&format!("{name}=")))
            } else {
                !have.contains(l)
            }
        })
        .map(String::from)
        .collect()
}

// ---- initramfs ----

/// A newc ("070701") cpio writer: enough for directories, files, symlinks and device nodes.
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;

impl Default for Cpio {
    fn default() -> Self {
        Self::new()
    }
}

impl Cpio {
    pub fn new() -> Cpio {
        Cpio { buf: Vec::new(), ino: 1 }
    }

    fn pad4(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            if mode & 0o170000 == S_IFDIR { 2 } else { 1 },
            0, // mtime: reproducible archives
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.ino += 1;
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad4();
        self.buf.extend_from_slice(data);
        self.pad4();
    }

    pub fn dir(&mut self, name: &str) {
        self.entry(name, S_IFDIR | 0o755, (0, 0), &[]);
    }
    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, S_IFREG | mode, (0, 0), data);
    }
    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, S_IFLNK | 0o777, (0, 0), target.as_bytes());
    }
    pub fn char_dev(&mut self, name: &str, mode: u32, major: u32, minor: u32) {
        self.entry(name, S_IFCHR | mode, (major, minor), &[]);
    }

    /// Adds a `.pad` file sized so that the data of the next entry, named `next_name`, starts at a
    /// multiple of `align` in the archive.
    pub fn align_next_data(&mut self, next_name: &str, align: usize) {
        let header = |name_len: usize| (110 + name_len + 1).div_ceil(4) * 4;
        let after_pad_header = self.buf.len() + header(".pad".len());
        let next_header = header(next_name.len());
        let mut pad = 0;
        while !(after_pad_header + pad + next_header).is_multiple_of(align) {
            pad += 4;
        }
        let zeros = vec![0u8; pad];
        self.file(".pad", 0o644, &zeros);
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.buf
    }
}

const BUSYBOX: &str = "/bin/busybox";

/// Builds `target/hauki/initramfs.cpio.gz`: Debian's static busybox as /init (busybox init with
/// `linux-patch/initramfs/etc/inittab`), `haukictl` ([`build_haukictl`]), the files under
/// `linux-patch/initramfs/`, /dev/console.
pub fn build_initramfs(ws: &Workspace) -> Result<PathBuf, String> {
    write_initramfs(ws, INITRAMFS, &[], "")
}

/// The initramfs for a boot from a disk (`target/hauki/rootless.cpio.gz`): `/dev/console` and
/// nothing to run, so that Linux mounts its `root=` device and starts that filesystem's init.
pub fn build_rootless_initramfs(ws: &Workspace) -> Result<PathBuf, String> {
    let mut c = Cpio::new();
    c.dir("dev");
    c.char_dev("dev/console", 0o600, 5, 1);
    c.dir("root");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&c.finish()).map_err(|e| e.to_string())?;
    let out = ws.hauki_dir().join("rootless.cpio.gz");
    std::fs::create_dir_all(ws.hauki_dir()).map_err(|e| e.to_string())?;
    std::fs::write(&out, gz.finish().map_err(|e| e.to_string())?).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

/// Where Linux's x86 selftests are built (`target/hauki/selftests-x86`).
pub const SELFTESTS_INITRAMFS: &str = "selftests-initramfs.cpio.gz";

/// Builds Linux's own x86 selftests (`tools/testing/selftests/x86` of the same 6.12 source: the
/// 64-bit ones, static, stripped) and an initramfs holding them in `/selftests` beside everything
/// the usual one has (`hauki-selftests` runs them). Returns that initramfs.
pub fn build_selftests_initramfs(ws: &Workspace) -> Result<PathBuf, String> {
    let version = source_version()?;
    let tree = ensure_source(&cache_dir(), &version)?;
    let out = ws.hauki_dir().join("selftests-x86");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let log = out.join("build.log");
    println!("==> building Linux's x86 selftests (64-bit, static) into {}; log: {}", ws.rel(&out), ws.rel(&log));
    let mut make = Command::new("make");
    make.arg("-C")
        .arg(tree.join("tools/testing/selftests/x86"))
        .arg(format!("OUTPUT={}", out.display()))
        .arg("EXTRA_CFLAGS=-static -s")
        .arg(format!("-j{}", std::thread::available_parallelism().map_or(2, |n| n.get())));
    run_logged(make, &log)?;
    let mut files = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&out)
        .map_err(|e| format!("{}: {e}", out.display()))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("_64"))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(format!("no 64-bit selftest was built (log: {})", log.display()));
    }
    for n in names {
        let data = std::fs::read(out.join(&n)).map_err(|e| format!("{n}: {e}"))?;
        files.push((format!("selftests/{n}"), data));
    }
    let what = format!(" and {} selftests", files.len());
    write_initramfs(ws, SELFTESTS_INITRAMFS, &files, &what)
}

/// The initramfs the latency comparison boots (`target/hauki/rt-tests-initramfs.cpio.gz`):
/// everything the usual one has, and Debian 12's `cyclictest` and `hackbench` (rt-tests) with the
/// C library and libnuma they load, from Debian's packages ([`rt_tests_files`]).
pub fn build_rt_tests_initramfs(ws: &Workspace) -> Result<PathBuf, String> {
    let mut files = rt_tests_files(&cache_dir())?;
    let have: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
    files.extend(stress_ng_files()?.into_iter().filter(|f| !have.contains(&f.0)));
    write_initramfs(ws, "rt-tests-initramfs.cpio.gz", &files, " and rt-tests (cyclictest, hackbench) and stress-ng")
}

/// Where `cargo xtask deps` has Debian's stress-ng installed.
pub const STRESS_NG: &str = "/usr/bin/stress-ng";

/// The host's stress-ng (Debian 12's, installed by `cargo xtask deps`) and the libraries `ldd`
/// says it loads, each at `lib/x86_64-linux-gnu/<soname>` (the dynamic loader is the rt-tests
/// one, at the path the ELF names). The host is the Debian release the rt-tests packages come
/// from, so the C library is the same ABI.
fn stress_ng_files() -> Result<Vec<(String, Vec<u8>)>, String> {
    let read = |p: &str| std::fs::read(p).map_err(|e| format!("{p}: {e}; `cargo xtask deps` installs stress-ng"));
    let mut files = vec![("bin/stress-ng".to_string(), read(STRESS_NG)?)];
    let out = Command::new("ldd").arg(STRESS_NG).output().map_err(|e| format!("cannot run ldd: {e}"))?;
    if !out.status.success() {
        return Err(format!("`ldd {STRESS_NG}` failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    for (soname, path) in ldd_libraries(&String::from_utf8_lossy(&out.stdout))? {
        files.push((format!("lib/x86_64-linux-gnu/{soname}"), read(&path)?));
    }
    Ok(files)
}

/// The `soname => path` lines of `ldd`'s output (not the vDSO, not the loader); an unresolved
/// library is an error naming it.
fn ldd_libraries(out: &str) -> Result<Vec<(String, String)>, String> {
    let mut v = Vec::new();
    for l in out.lines().map(str::trim) {
        let Some((soname, rest)) = l.split_once(" => ") else { continue };
        let path = rest.split_whitespace().next().unwrap_or("");
        if !path.starts_with('/') {
            return Err(format!("ldd cannot find {soname}: {l:?}"));
        }
        v.push((soname.to_string(), path.to_string()));
    }
    if v.is_empty() {
        return Err(format!("ldd listed no library: {out:?}"));
    }
    Ok(v)
}

/// The Debian packages the rt-tests files come from.
const RT_TESTS_DEBS: [&str; 3] = ["rt-tests", "libnuma1", "libc6"];

/// (package, path in the package, path in the initramfs): the two programs, the libraries they
/// load (`ldd`), and the dynamic loader at the path their ELF headers name.
const RT_TESTS_FILES: [(&str, &str, &str); 7] = [
    ("rt-tests", "usr/bin/cyclictest", "bin/cyclictest"),
    ("rt-tests", "usr/bin/hackbench", "bin/hackbench"),
    ("libnuma1", "usr/lib/x86_64-linux-gnu/libnuma.so.1.0.0", "lib/x86_64-linux-gnu/libnuma.so.1"),
    ("libc6", "lib/x86_64-linux-gnu/libc.so.6", "lib/x86_64-linux-gnu/libc.so.6"),
    ("libc6", "lib/x86_64-linux-gnu/libpthread.so.0", "lib/x86_64-linux-gnu/libpthread.so.0"),
    ("libc6", "lib/x86_64-linux-gnu/librt.so.1", "lib/x86_64-linux-gnu/librt.so.1"),
    ("libc6", "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "lib64/ld-linux-x86-64.so.2"),
];

/// The rt-tests files for the initramfs, from the Debian packages kept in
/// `~/.cache/hauki/rt-tests-debs/` (fetched with `apt-get download` the first time; their file
/// names carry their versions, so what a run used is on record there).
fn rt_tests_files(cache: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let dir = cache.join("rt-tests-debs");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let deb_of = |pkg: &str| -> Option<PathBuf> {
        let prefix = format!("{pkg}_");
        std::fs::read_dir(&dir).ok()?.filter_map(Result::ok).map(|e| e.path()).find(|p| {
            p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                && p.extension().is_some_and(|e| e == "deb")
        })
    };
    let missing: Vec<&str> = RT_TESTS_DEBS.iter().copied().filter(|p| deb_of(p).is_none()).collect();
    if !missing.is_empty() {
        println!("==> apt-get download {} (for the latency comparison's initramfs)", missing.join(" "));
        let mut c = Command::new("apt-get");
        c.arg("download").args(&missing).current_dir(&dir);
        run_status(&mut c).map_err(|e| format!("{e}; `apt-get update` may be needed first"))?;
    }
    // Per process: two xtask runs (a bench beside a test) must not extract into one folder.
    let stage = dir.join(format!("extracted-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&stage);
    let mut files = Vec::new();
    for pkg in RT_TESTS_DEBS {
        let deb = deb_of(pkg).ok_or_else(|| format!("{pkg}: no .deb in {}", dir.display()))?;
        let into = stage.join(pkg);
        std::fs::create_dir_all(&into).map_err(|e| e.to_string())?;
        run_status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&into))?;
    }
    for (pkg, from, to) in RT_TESTS_FILES {
        let p = stage.join(pkg).join(from);
        let data = std::fs::read(&p).map_err(|e| format!("{}: {e} (in {pkg}'s package)", p.display()))?;
        files.push((to.to_string(), data));
    }
    let _ = std::fs::remove_dir_all(&stage);
    Ok(files)
}

/// The Linux programs of `linux-patch/haukictl` (`haukictl`, `hauki-decide` for the bridge
/// application, `hauki-chanbench` for the channel benchmark): static, stripped x86_64 musl binaries, built with `cargo build --release -p
/// haukictl --target x86_64-unknown-linux-musl`. Returns each one's name and bytes.
pub fn build_haukictl(ws: &Workspace) -> Result<Vec<(&'static str, Vec<u8>)>, String> {
    use crate::deps::{LINUX_TOOLS_TARGET, missing_target_message, rust_target_installed};
    if !rust_target_installed(LINUX_TOOLS_TARGET) {
        return Err(missing_target_message(LINUX_TOOLS_TARGET));
    }
    let mut cargo = crate::util::cargo();
    cargo.current_dir(&ws.root).args(haukictl_build_args());
    let out = cargo.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("`{}` failed ({}):\n{}", show(&cargo), out.status, last_lines(&err, 30).join("\n")));
    }
    let mut bins = Vec::new();
    for name in ["haukictl", "hauki-decide", "hauki-chanbench"] {
        let exe = ws.target_dir().join(LINUX_TOOLS_TARGET).join("release").join(name);
        let data = std::fs::read(&exe).map_err(|e| format!("{}: {e}", exe.display()))?;
        check_static_elf(&data).map_err(|e| format!("{}: {e}", exe.display()))?;
        bins.push((name, data));
    }
    Ok(bins)
}

/// `cargo` arguments that build `haukictl` for the initramfs (stripped by the workspace's
/// `[profile.release.package.haukictl]`).
fn haukictl_build_args() -> [&'static str; 6] {
    ["build", "--release", "-p", "haukictl", "--target", crate::deps::LINUX_TOOLS_TARGET]
}

/// An x86_64 ELF executable with no program interpreter (`PT_INTERP`): it runs in an initramfs
/// with no C library.
fn check_static_elf(data: &[u8]) -> Result<(), String> {
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| data.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |o: usize| data.get(o..o + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    if data.get(..5) != Some(b"\x7fELF\x02") || u16_at(18) != Some(62) {
        return Err("not an x86_64 ELF executable".into());
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(32), u16_at(54), u16_at(56)) else {
        return Err("truncated ELF header".into());
    };
    for i in 0..usize::from(phnum) {
        let at = usize::try_from(phoff).map_err(|e| e.to_string())? + i * usize::from(phentsize);
        match u32_at(at) {
            Some(3) => return Err("dynamically linked (it has a program interpreter)".into()),
            Some(_) => {}
            None => return Err("truncated program headers".into()),
        }
    }
    Ok(())
}

/// The initramfs `name` in `target/hauki/`, with `bin/haukictl` and `extra` files (path,
/// contents; mode 0755) added.
/// The folders every initramfs has.
const INITRAMFS_DIRS: [&str; 13] =
    ["bin", "sbin", "dev", "etc", "proc", "sys", "tmp", "root", "usr", "usr/bin", "usr/sbin", "var", "run"];

fn write_initramfs(ws: &Workspace, name: &str, extra: &[(String, Vec<u8>)], what: &str) -> Result<PathBuf, String> {
    let busybox = std::fs::read(BUSYBOX)
        .map_err(|e| format!("{BUSYBOX}: {e}; install Debian's busybox-static (`apt-get install busybox-static`)"))?;
    if busybox.get(..4) != Some(b"\x7fELF") || busybox.windows(7).any(|w| w == b"ld-linux") {
        return Err(format!("{BUSYBOX} is not a static ELF binary; install busybox-static, not busybox"));
    }
    let tools = build_haukictl(ws)?;
    let mut c = Cpio::new();
    for d in INITRAMFS_DIRS {
        c.dir(d);
    }
    c.char_dev("dev/console", 0o600, 5, 1);
    c.char_dev("dev/null", 0o666, 1, 3);
    c.file("bin/busybox", 0o755, &busybox);
    for (name, data) in &tools {
        c.file(&format!("bin/{name}"), 0o755, data);
    }
    c.symlink("init", "bin/busybox");
    c.symlink("bin/sh", "busybox");
    let root = ws.root.join("linux-patch/initramfs");
    add_tree(&mut c, &root, &root)?;
    // The folders the extra files need that the base does not have, parents first.
    let mut dirs = std::collections::BTreeSet::new();
    for (path, _) in extra {
        let mut at = Path::new(path).parent();
        while let Some(d) = at.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_string_lossy().into_owned());
            at = d.parent();
        }
    }
    for d in dirs.iter().filter(|d| !INITRAMFS_DIRS.contains(&d.as_str())) {
        c.dir(d);
    }
    for (path, data) in extra {
        c.file(path, 0o755, data);
    }
    let archive = c.finish();
    let tools: Vec<String> = tools.iter().map(|(n, d)| format!("{n} ({} KiB)", d.len() / 1024)).collect();
    println!(
        "==> initramfs {name}: busybox, {}, linux-patch/initramfs{what} ({} KiB before gzip -9)",
        tools.join(", "),
        archive.len() / 1024
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&archive).map_err(|e| e.to_string())?;
    let bytes = gz.finish().map_err(|e| e.to_string())?;
    let out = ws.hauki_dir().join(name);
    std::fs::create_dir_all(ws.hauki_dir()).map_err(|e| e.to_string())?;
    std::fs::write(&out, bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

fn add_tree(c: &mut Cpio, root: &Path, dir: &Path) -> Result<(), String> {
    let entries = crate::util::sorted_entries(dir)?;
    for p in entries {
        let rel = p.strip_prefix(root).map_err(|e| e.to_string())?.to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(&p).map_err(|e| e.to_string())?;
        if meta.is_dir() {
            if !matches!(rel.as_str(), "etc" | "bin") {
                c.dir(&rel);
            }
            add_tree(c, root, &p)?;
        } else if meta.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let data = std::fs::read(&p).map_err(|e| e.to_string())?;
            c.file(&rel, meta.permissions().mode() & 0o777, &data);
        }
    }
    Ok(())
}

pub const BUNDLE: &str = "linux.bundle";
/// Linux's command line when nothing else is asked for.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 panic=-1";

/// One module for QEMU's PVH path (which passes a single `-initrd` module): an uncompressed newc
/// archive holding `vmlinux`, `initramfs.cpio.gz` and `cmdline`, read by the co-kernel's loader.
pub fn build_bundle(
    ws: &Workspace,
    vmlinux: &Path,
    initramfs: &Path,
    cmdline: &str,
    out_name: &str,
) -> Result<PathBuf, String> {
    let mut c = Cpio::new();
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    c.file("vmlinux", 0o644, &read(vmlinux)?);
    // Linux frees its initramfs page by page once unpacked: start it on a page boundary (the
    // module itself is page-aligned) by padding with a file the loader ignores.
    c.align_next_data("initramfs.cpio.gz", 4096);
    c.file("initramfs.cpio.gz", 0o644, &read(initramfs)?);
    c.file("cmdline", 0o644, cmdline.as_bytes());
    let out = ws.hauki_dir().join(out_name);
    std::fs::write(&out, c.finish()).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

/// Both Linux artifacts.
pub fn build_all(ws: &Workspace) -> Result<(PathBuf, PathBuf), String> {
    Ok((build_kernel(ws)?, build_initramfs(ws)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_references_are_built_without_the_hauki_options_and_keyed_apart() {
        let frag = "# x\nCONFIG_SMP=n\nCONFIG_HAUKI_GUEST=y\nCONFIG_PCI=y\n";
        assert_eq!(without_hauki_options(frag), "# x\nCONFIG_SMP=n\nCONFIG_PCI=y\n");
        assert!(Flavour::Default.patched() && Flavour::Debug.patched());
        assert!(!Flavour::PreemptRt.patched() && !Flavour::Stock.patched());
        let ws = Workspace::locate();
        let keys: std::collections::HashSet<String> =
            [Flavour::Default, Flavour::Debug, Flavour::PreemptRt, Flavour::Stock]
                .into_iter()
                .map(|f| build_key(&ws, "6.12.test", f).unwrap())
                .collect();
        assert_eq!(keys.len(), 4, "every flavour has a key of its own");
        assert!(Flavour::PreemptRt.config(&ws).unwrap().lines().all(|l| !l.contains("HAUKI")));
    }

    #[test]
    fn a_preemption_model_kconfig_did_not_take_is_named() {
        let args = Flavour::PreemptRt.preemption();
        let good = "CONFIG_EXPERT=y\n# CONFIG_PREEMPT_NONE is not set\nCONFIG_PREEMPT_RT=y\n";
        assert!(preemption_not_taken(args, good).is_empty());
        let bad = "CONFIG_EXPERT=y\nCONFIG_PREEMPT_NONE=y\n";
        assert_eq!(preemption_not_taken(args, bad), ["CONFIG_PREEMPT_NONE off", "CONFIG_PREEMPT_RT=y"]);
    }

    #[test]
    fn series_skips_comments_and_blanks() {
        assert_eq!(parse_series("# x\n\n 0001-a.patch \n0002-b.patch\n"), vec!["0001-a.patch", "0002-b.patch"]);
    }

    #[test]
    fn compiled_objects_are_counted() {
        let out = [
            "make[1]: Entering directory '/c/obj'",
            "  GEN     Makefile",
            "  HOSTCC  scripts/basic/fixdep",
            "  CC      kernel/bounds.s",
            "  CC      init/main.o",
            "  AS      arch/x86/entry/entry_64.o",
            "  AR      init/built-in.a",
            "  LD      vmlinux.o",
            "init/main.c:1: warning: CC init/x.o",
            "  CC      init/version.o",
        ];
        let counted: Vec<&str> = out.into_iter().filter(|l| is_object_line(l)).collect();
        assert_eq!(
            counted,
            ["  CC      init/main.o", "  AS      arch/x86/entry/entry_64.o", "  CC      init/version.o"]
        );
    }

    #[test]
    fn a_build_counts_and_logs_its_objects_and_remembers_them() {
        let dir = std::env::temp_dir().join(format!("hauki-linux-count-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(expected_objects(&dir, Flavour::Debug), (1220, "a typical build"));
        let log = dir.join("build.log");
        let mut sh = Command::new("/bin/sh");
        sh.args(["-c", "printf '  CC      a.o\\n  AR      a.a\\n  CC      b.o\\n\\377\\n'; echo warn >&2"]);
        let mut meter = Meter::new("test build", "objects", 2);
        run_counted(sh, &log, &mut meter).unwrap();
        assert_eq!(meter.done(), 2);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(text.contains("  AR      a.a") && text.contains("warn"), "{text:?}");
        let mut fail = Command::new("/bin/sh");
        fail.args(["-c", "echo '  CC      c.o'; echo 'c.c: error: no' >&2; exit 2"]);
        let e = run_counted(fail, &log, &mut meter).unwrap_err();
        assert!(e.contains("c.c: error: no") && e.contains("exit status: 2"), "{e}");
        assert_eq!(meter.done(), 3);
        std::fs::write(dir.join(Flavour::Debug.objects_file()), "1234\n").unwrap();
        assert_eq!(expected_objects(&dir, Flavour::Debug), (1234, "as many as the last build"));
        assert_eq!(expected_objects(&dir, Flavour::Default).0, 1190);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_build_of_a_key_at_a_time() {
        let dir = std::env::temp_dir().join(format!("hauki-linux-lock-{}", std::process::id()));
        let held = build_lock(&dir, "k1").unwrap();
        let other = std::fs::File::create(dir.join("linux-k1.lock")).unwrap();
        assert!(other.try_lock().is_err(), "a second build of the key must wait");
        assert!(build_lock(&dir, "k2").is_ok(), "another key does not wait");
        drop(held);
        assert!(other.try_lock().is_ok(), "the lock ends with the build");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn dropped_options_are_found() {
        let frag = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\n# comment\n";
        assert!(missing_options(frag, "CONFIG_A=y\nCONFIG_C=\"x\"\n").is_empty());
        assert!(missing_options(frag, "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\n").is_empty());
        assert_eq!(
            missing_options(frag, "CONFIG_B=y\nCONFIG_C=\"y\"\n"),
            vec!["CONFIG_A=y", "# CONFIG_B is not set", "CONFIG_C=\"x\""]
        );
    }

    #[test]
    fn next_data_can_be_page_aligned() {
        let mut c = Cpio::new();
        c.file("vmlinux", 0o644, &[1u8; 12345]);
        c.align_next_data("initramfs.cpio.gz", 4096);
        c.file("initramfs.cpio.gz", 0o644, b"\x1f\x8bDATA");
        let a = c.finish();
        let at = a.windows(6).position(|w| w == b"\x1f\x8bDATA"[..6].as_ref()).unwrap();
        assert_eq!(at % 4096, 0);
    }

    #[test]
    fn haukictl_is_built_static_for_the_initramfs() {
        assert_eq!(haukictl_build_args().join(" "), "build --release -p haukictl --target x86_64-unknown-linux-musl");
        let manifest = include_str!("../../Cargo.toml");
        assert!(manifest.contains("\"linux-patch/haukictl\""), "haukictl is a workspace member");
        assert!(manifest.contains("[profile.release.package.haukictl]\nstrip = \"symbols\""), "stripped");
        // A 64-bit x86_64 ELF header with one program header of type `t`.
        let elf = |t: u32| {
            let mut e = vec![0u8; 64 + 56];
            e[..5].copy_from_slice(b"\x7fELF\x02");
            e[18..20].copy_from_slice(&62u16.to_le_bytes());
            e[32..40].copy_from_slice(&64u64.to_le_bytes());
            e[54..56].copy_from_slice(&56u16.to_le_bytes());
            e[56..58].copy_from_slice(&1u16.to_le_bytes());
            e[64..68].copy_from_slice(&t.to_le_bytes());
            e
        };
        assert_eq!(check_static_elf(&elf(1)), Ok(()));
        assert!(check_static_elf(&elf(3)).unwrap_err().contains("dynamically linked"));
        assert!(check_static_elf(b"#!/bin/sh\n").is_err());
        let mut short = elf(1);
        short.truncate(66);
        assert_eq!(check_static_elf(&short), Err("truncated program headers".into()));
        // The xtask binary running this test is dynamically linked on a glibc host.
        if let Ok(me) = std::env::current_exe().and_then(std::fs::read) {
            assert!(check_static_elf(&me).is_err_and(|e| e.contains("dynamically")));
        }
    }

    #[test]
    fn cpio_newc_layout() {
        let mut c = Cpio::new();
        c.file("a", 0o644, b"hello");
        let a = c.finish();
        assert_eq!(&a[..6], b"070701");
        // Header 110 bytes + "a\0" padded to 112, data padded to 8.
        assert_eq!(&a[110..112], b"a\0");
        assert_eq!(&a[112..117], b"hello");
        assert_eq!(&a[120..126], b"070701");
        assert!(a.windows(10).any(|w| w == b"TRAILER!!!"));
        assert_eq!(a.len() % 4, 0);
        // filesize field (7th) is 5.
        assert_eq!(&a[6 + 6 * 8..6 + 7 * 8], b"00000005");
    }

    #[test]
    fn ldd_lines_give_the_libraries_and_a_missing_one_is_named() {
        let out = "\tlinux-vdso.so.1 (0x00007f)\n\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x1)\n";
        let libs = ldd_libraries(out).unwrap();
        assert_eq!(
            libs,
            [
                ("libm.so.6".into(), "/lib/x86_64-linux-gnu/libm.so.6".into()),
                ("libz.so.1".into(), "/lib/x86_64-linux-gnu/libz.so.1".into())
            ]
        );
        assert!(ldd_libraries("\tlibq.so.1 => not found\n").unwrap_err().contains("cannot find libq.so.1"));
    }
}
