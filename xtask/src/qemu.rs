//! QEMU: command-line assembly (pure, unit-tested), the interactive `run`, and a harness for tests that
//! sends COM1 and COM2 to files, enforces a hard timeout and kills QEMU on drop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use hauki_abi::{cmdline, debug_exit};

use crate::args::{Accel, RunOpts};
use crate::build::Artifacts;
use crate::deps::{Ovmf, Tools};
use crate::progress::{Watch, last_line, last_line_of};
use crate::util::{Workspace, print_tail, shell_quote};

/// The QEMU exit status when the co-kernel wrote `SUCCESS` to isa-debug-exit.
pub const STATUS_SUCCESS: i32 = debug_exit::qemu_status(debug_exit::SUCCESS);
/// The QEMU exit status when the co-kernel wrote `FAILURE` to isa-debug-exit.
pub const STATUS_FAILURE: i32 = debug_exit::qemu_status(debug_exit::FAILURE);

/// How the machine boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Boot {
    /// `-kernel ELF -append CMDLINE` (PVH entry).
    Kernel {
        /// The co-kernel ELF.
        elf: PathBuf,
        /// The whole co-kernel command line.
        cmdline: String,
    },
    /// Linux alone, no co-kernel: `-kernel vmlinux -initrd INITRD -append CMDLINE` (Linux's PVH entry).
    Linux {
        /// The (patched) vmlinux.
        vmlinux: PathBuf,
        /// The initramfs.
        initrd: PathBuf,
        /// Linux's command line.
        cmdline: String,
    },
    /// `-cdrom ISO` through SeaBIOS, or through OVMF when `uefi` is set.
    Cdrom {
        /// The ISO.
        iso: PathBuf,
        /// OVMF code image and the writable variable store copy.
        uefi: Option<(PathBuf, PathBuf)>,
    },
}

/// Where a serial port goes: a QEMU chardev spec such as `mon:stdio` or `file:PATH`.
pub type Chardev = String;

/// The NIC models `--nic` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicModel {
    /// virtio-net-pci (MSI-X).
    Virtio,
    /// Intel 82574L, `e1000e` (MSI-X); q35's default.
    E1000e,
    /// Intel 82540EM, `e1000` (a legacy INTx line).
    E1000,
}

impl NicModel {
    /// The `--nic` spelling.
    pub fn name(self) -> &'static str {
        match self {
            NicModel::Virtio => "virtio",
            NicModel::E1000e => "e1000e",
            NicModel::E1000 => "e1000",
        }
    }

    /// QEMU's device model.
    pub fn qemu_model(self) -> &'static str {
        match self {
            NicModel::Virtio => "virtio-net-pci",
            NicModel::E1000e => "e1000e",
            NicModel::E1000 => "e1000",
        }
    }

    /// From the `--nic` spelling.
    pub fn parse(s: &str) -> Option<NicModel> {
        [NicModel::Virtio, NicModel::E1000e, NicModel::E1000].into_iter().find(|m| m.name() == s)
    }
}

/// User-mode networking (QEMU's slirp: Linux gets 10.0.2.15 by DHCP, the host is 10.0.2.2) on one
/// NIC, with TCP ports of the host's loopback forwarded into Linux.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Net {
    /// The NIC model.
    pub model: NicModel,
    /// `(host port, guest port)`: TCP connections to 127.0.0.1:host reach Linux's guest port.
    pub forwards: Vec<(u16, u16)>,
}

impl Net {
    /// The `-nic` argument.
    pub fn arg(&self) -> String {
        let mut a = format!("user,model={}", self.model.qemu_model());
        for (h, g) in &self.forwards {
            a.push_str(&format!(",hostfwd=tcp:127.0.0.1:{h}-:{g}"));
        }
        a
    }
}

/// The disk controllers `--disk` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskBus {
    /// virtio-blk-pci (MSI-X): Linux's `/dev/vdX`.
    Virtio,
    /// A SATA disk on q35's own AHCI controller (ICH9, MSI): Linux's `/dev/sdX`.
    Sata,
    /// An NVMe controller of its own (MSI-X): Linux's `/dev/nvmeNn1`.
    Nvme,
}

impl DiskBus {
    /// The `--disk` spelling.
    pub fn name(self) -> &'static str {
        match self {
            DiskBus::Virtio => "virtio",
            DiskBus::Sata => "sata",
            DiskBus::Nvme => "nvme",
        }
    }

    /// From the `--disk` spelling.
    pub fn parse(s: &str) -> Option<DiskBus> {
        [DiskBus::Virtio, DiskBus::Sata, DiskBus::Nvme].into_iter().find(|b| b.name() == s)
    }
}

/// A disk image Linux gets on one controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    /// Which controller.
    pub bus: DiskBus,
    /// The image (raw, or qcow2 when its name ends in `.qcow2`).
    pub image: PathBuf,
}

impl Disk {
    /// `[virtio:|sata:|nvme:]IMAGE` (virtio when no controller is named).
    pub fn parse(v: &str) -> Result<Disk, String> {
        let (bus, image) = match v.split_once(':') {
            Some((b, rest)) if DiskBus::parse(b).is_some() => (DiskBus::parse(b).unwrap_or(DiskBus::Virtio), rest),
            _ => (DiskBus::Virtio, v),
        };
        if image.is_empty() {
            return Err(format!("--disk takes [virtio:|sata:|nvme:]IMAGE, not `{v}`"));
        }
        Ok(Disk { bus, image: PathBuf::from(image) })
    }

    /// The QEMU arguments for disk number `n` of the machine (ids and the SATA port follow from `n`;
    /// q35's AHCI has six ports, `ide.0` to `ide.5`).
    pub fn args(&self, n: usize) -> Vec<String> {
        let format = if self.image.extension().is_some_and(|e| e == "qcow2") { "qcow2" } else { "raw" };
        let id = format!("disk{n}");
        let device = match self.bus {
            DiskBus::Virtio => format!("virtio-blk-pci,drive={id},serial=hauki-{n}"),
            DiskBus::Sata => format!("ide-hd,drive={id},bus=ide.{n}"),
            DiskBus::Nvme => format!("nvme,drive={id},serial=hauki-{n}"),
        };
        vec![
            "-drive".into(),
            format!("file={},format={format},if=none,id={id},cache=writeback", self.image.display()),
            "-device".into(),
            device,
        ]
    }
}

/// The QEMU arguments for a machine's disks, numbered in order.
pub fn disk_args(disks: &[Disk]) -> Vec<String> {
    disks.iter().enumerate().flat_map(|(n, d)| d.args(n)).collect()
}

/// Everything that shapes a QEMU command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuConfig {
    /// `-machine` value (`q35`, or e.g. `q35,acpi=off`).
    pub machine: String,
    /// Accelerator.
    pub accel: Accel,
    /// `-cpu` model.
    pub cpu: String,
    /// `-smp`.
    pub smp: u32,
    /// `-m` in MiB.
    pub mem_mib: u32,
    /// `-icount shift=N,sleep=off` (N = `icount_shift`): deterministic virtual time, one
    /// instruction = 2^N ns.
    pub icount: bool,
    /// The icount shift (0: one instruction = 1 ns).
    pub icount_shift: u8,
    /// How it boots.
    pub boot: Boot,
    /// COM1 (console).
    pub com1: Chardev,
    /// COM2 (telemetry).
    pub com2: Chardev,
    /// Show a display (`--vga`); otherwise `-display none`.
    pub display: bool,
    /// Add `-monitor none` (when the monitor is not multiplexed on stdio).
    pub monitor_none: bool,
    /// The NIC and its forwarded ports; `None` leaves QEMU's default NIC (q35: e1000e, user
    /// networking, nothing forwarded).
    pub net: Option<Net>,
    /// Appended verbatim.
    pub extra: Vec<String>,
}

impl QemuConfig {
    /// A headless test machine: q35, TCG, 1 CPU, 512 MiB, COM1/COM2 to the given files.
    pub fn test(boot: Boot, cpu: &str, com1: &Path, com2: &Path) -> QemuConfig {
        QemuConfig {
            machine: "q35".into(),
            accel: Accel::Tcg,
            cpu: cpu.into(),
            smp: 1,
            mem_mib: 512,
            icount: false,
            icount_shift: 0,
            boot,
            com1: format!("file:{}", com1.display()),
            com2: format!("file:{}", com2.display()),
            display: false,
            monitor_none: true,
            net: None,
            extra: Vec::new(),
        }
    }

    /// The arguments after `qemu-system-x86_64`.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
        push(&["-machine", &self.machine]);
        push(&["-accel", self.accel.name()]);
        push(&["-cpu", &self.cpu]);
        push(&["-smp", &self.smp.to_string()]);
        push(&["-m", &self.mem_mib.to_string()]);
        if self.icount {
            push(&["-icount", &format!("shift={},sleep=off", self.icount_shift)]);
        }
        // COM1 must be the first -serial, COM2 the second. QEMU's microvm machine wires up only the
        // first -serial, so there COM2 (file: chardevs only) becomes an explicit isa-serial at 0x2f8.
        match (self.machine.starts_with("microvm"), self.com2.strip_prefix("file:")) {
            (true, Some(path)) => {
                push(&["-serial", &self.com1]);
                push(&["-chardev", &format!("file,id=com2,path={path}")]);
                push(&["-device", "isa-serial,chardev=com2,iobase=0x2f8,irq=3"]);
            }
            _ => push(&["-serial", &self.com1, "-serial", &self.com2]),
        }
        if !self.display {
            push(&["-display", "none"]);
        }
        if self.monitor_none {
            push(&["-monitor", "none"]);
        }
        push(&["-no-reboot", "-device", debug_exit::QEMU_DEVICE]);
        if let Some(net) = &self.net {
            push(&["-nic", &net.arg()]);
        }
        match &self.boot {
            Boot::Kernel { elf, cmdline } => {
                push(&["-kernel", &elf.display().to_string(), "-append", cmdline]);
            }
            Boot::Linux { vmlinux, initrd, cmdline } => {
                push(&["-kernel", &vmlinux.display().to_string(), "-initrd", &initrd.display().to_string()]);
                push(&["-append", cmdline]);
            }
            Boot::Cdrom { iso, uefi } => {
                if let Some((code, vars)) = uefi {
                    push(&["-drive", &format!("if=pflash,format=raw,unit=0,readonly=on,file={}", code.display())]);
                    push(&["-drive", &format!("if=pflash,format=raw,unit=1,file={}", vars.display())]);
                }
                push(&["-cdrom", &iso.display().to_string(), "-boot", "d"]);
            }
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// The command line for humans (copy-pasteable).
    pub fn display_line(&self) -> String {
        let mut s = String::from("qemu-system-x86_64");
        for a in self.args() {
            s.push(' ');
            s.push_str(&shell_quote(&a));
        }
        s
    }

    /// A `Command` ready to spawn.
    pub fn command(&self) -> Command {
        let mut c = Command::new("qemu-system-x86_64");
        c.args(self.args());
        c
    }
}

/// The co-kernel command line for `-kernel` boots: always with the debug-exit key, then `extra`.
pub fn kernel_cmdline(extra: &str) -> String {
    let base = cokernel_args(&[(cmdline::DEBUG_EXIT, &1)]);
    if extra.trim().is_empty() { base } else { format!("{base} {}", extra.trim()) }
}

/// Co-kernel command-line arguments, `key=value` separated by spaces, for [`kernel_cmdline`]'s `extra`.
/// The keys are [`hauki_abi::cmdline`]'s constants, so xtask names none as a literal.
pub fn cokernel_args(args: &[(&str, &dyn std::fmt::Display)]) -> String {
    args.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(" ")
}

/// Copy the OVMF variable store template to `dest` (a fresh, writable copy per boot).
pub fn fresh_ovmf_vars(ovmf: &Ovmf, dest: &Path) -> Result<(PathBuf, PathBuf), String> {
    std::fs::copy(&ovmf.vars, dest)
        .map_err(|e| format!("cannot copy {} to {}: {e}", ovmf.vars.display(), dest.display()))?;
    let mut perm = std::fs::metadata(dest).map_err(|e| e.to_string())?.permissions();
    #[allow(clippy::permissions_set_readonly_false, reason = "the copy must be writable by QEMU; we own it")]
    perm.set_readonly(false);
    std::fs::set_permissions(dest, perm).map_err(|e| e.to_string())?;
    Ok((ovmf.code.clone(), dest.to_path_buf()))
}

/// What a QEMU exit status means, for humans.
pub fn explain_status(status: Option<i32>) -> String {
    match status {
        Some(STATUS_SUCCESS) => format!("status {STATUS_SUCCESS}: co-kernel exited: success"),
        Some(STATUS_FAILURE) => {
            format!("status {STATUS_FAILURE}: co-kernel exited: failure (test failure or fatal stop)")
        }
        Some(0) => "status 0: machine reset (triple fault?) or powered off; with -no-reboot QEMU exits on reset".into(),
        Some(n) => format!("status {n}: QEMU error or unexpected debug-exit code"),
        None => "killed by a signal".into(),
    }
}

/// `cargo xtask run`: boot interactively with COM1 on this terminal.
pub fn run_interactive(ws: &Workspace, tools: &Tools, o: &RunOpts, out: &Artifacts) -> Result<ExitCode, String> {
    let hauki = ws.hauki_dir();
    let bundle = if o.no_linux || o.iso {
        None
    } else {
        let vmlinux = match &o.linux {
            Some(p) => p.clone(),
            None => crate::linux::build_kernel(ws)?,
        };
        let (initramfs, base) = match (&o.initramfs, o.rootfs) {
            (Some(p), _) => (p.clone(), crate::linux::DEFAULT_CMDLINE),
            (None, Some(crate::args::Rootfs::Debian)) => {
                (crate::linux::build_rootless_initramfs(ws)?, crate::rootfs::CMDLINE)
            }
            (None, None) => (crate::linux::build_initramfs(ws)?, crate::linux::DEFAULT_CMDLINE),
        };
        let cmdline = match &o.append {
            Some(a) => format!("{base} {a}"),
            None => base.to_string(),
        };
        if !o.handover {
            println!(
                "note: Linux runs as the co-kernel's idle task (its interrupt flag is virtual); the real-time \
                 tasks report on COM2 and in /proc/hauki/status"
            );
        }
        Some(crate::linux::build_bundle(ws, &vmlinux, &initramfs, &cmdline, crate::linux::BUNDLE)?)
    };
    if timing(o.accel, o.icount) == Some("emulated") {
        println!(
            "note: plain emulation: the clock follows the host, so the latencies and deadline misses you will see are \
             the emulator's, not Hauki's (the status page and COM2 say so); --icount gives deterministic virtual time"
        );
    }
    let telemetry = match &o.telemetry {
        Some(p) if p.is_absolute() => p.clone(),
        Some(p) => std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.clone()),
        None => hauki.join("telemetry.jsonl"),
    };
    if let Some(dir) = telemetry.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let boot = if o.iso {
        let uefi = if o.uefi { Some(fresh_ovmf_vars(&tools.ovmf, &hauki.join("OVMF_VARS.fd"))?) } else { None };
        Boot::Cdrom { iso: out.iso.clone(), uefi }
    } else {
        let mut extra = o.cokernel_append.clone().unwrap_or_default();
        if let Some(t) = timing(o.accel, o.icount) {
            extra = format!("{extra} {}", cokernel_args(&[(cmdline::TIMING, &t)]));
        }
        // Several vCPUs under icount run round-robin: keep their turns short (docs/smp.md),
        // unless the user chose a pace.
        if o.icount && o.smp > 1 && !extra.contains(cmdline::ICOUNT_PACE_US) {
            extra = format!("{extra} {}", cokernel_args(&[(cmdline::ICOUNT_PACE_US, &crate::suite::ICOUNT_PACE_US)]));
            println!(
                "note: {} vCPUs under icount run round-robin in one thread; {}={} keeps each one's turn short (an emulator aid, docs/smp.md)",
                o.smp,
                cmdline::ICOUNT_PACE_US,
                crate::suite::ICOUNT_PACE_US
            );
        }
        if o.handover {
            extra = format!("{extra} {}", cokernel_args(&[(cmdline::LINUX, &"handover")]));
        } else if !o.no_linux {
            extra = format!("{extra} {}", cokernel_args(&[(cmdline::LINUX, &"guest")]));
        }
        Boot::Kernel { elf: out.elf.clone(), cmdline: kernel_cmdline(&extra) }
    };
    let mut disks = Vec::new();
    let mut forwards = o.forwards.clone();
    if o.rootfs == Some(crate::args::Rootfs::Debian) {
        disks.push(Disk { bus: DiskBus::Virtio, image: crate::rootfs::working_copy(ws)? });
        if !forwards.iter().any(|f| f.1 == 22) && !forwards.iter().any(|f| f.0 == 2222) {
            forwards.push((2222, 22));
        }
        println!(
            "note: Debian boots from {} (systemd, about a minute or two under emulation); root is logged in on this \
             console, and `ssh -i {} -p {} root@127.0.0.1` reaches it",
            ws.rel(&disks[0].image),
            crate::rootfs::ssh_key().display(),
            forwards.iter().find(|f| f.1 == 22).map_or(2222, |f| f.0)
        );
    }
    for d in &o.disks {
        if !d.image.exists() {
            return Err(format!(
                "--disk: {} does not exist (make one with e.g. `truncate -s 1G {0} && mkfs.ext4 {0}`)",
                d.image.display()
            ));
        }
        disks.push(d.clone());
    }
    let cfg = QemuConfig {
        machine: "q35".into(),
        accel: o.accel,
        cpu: o.cpu_model(),
        smp: o.smp,
        mem_mib: o.mem_mib,
        icount: o.icount,
        icount_shift: 0,
        boot,
        com1: "mon:stdio".into(),
        com2: format!("file:{}", telemetry.display()),
        display: o.vga,
        monitor_none: false,
        net: (o.nic.is_some() || !forwards.is_empty())
            .then(|| Net { model: o.nic.unwrap_or(NicModel::E1000e), forwards }),
        extra: bundle
            .iter()
            .flat_map(|b| ["-initrd".to_string(), b.display().to_string()])
            .chain(disk_args(&disks))
            .chain(o.qemu_args.iter().cloned())
            .collect(),
    };
    println!("==> booting: {}", cfg.display_line());
    println!("    telemetry (COM2): {}   quit QEMU: Ctrl-A X", ws.rel(&telemetry));
    let status =
        cfg.command().status().map_err(|e| format!("cannot start qemu-system-x86_64: {e}; run `cargo xtask deps`"))?;
    let code = status.code();
    println!();
    if code == Some(STATUS_SUCCESS) {
        println!("==> co-kernel exited: success");
        return Ok(ExitCode::SUCCESS);
    }
    if code == Some(0) && ended_cleanly(&telemetry) {
        // Ctrl-A X or a poweroff after a good boot: QEMU says 0 for both, and so does a reset under
        // -no-reboot, which is why the telemetry decides.
        println!("==> QEMU ended (quit or powered off) after a clean boot");
        return Ok(ExitCode::SUCCESS);
    }
    match (code, std::os::unix::process::ExitStatusExt::signal(&status)) {
        (None, Some(sig)) => {
            println!("==> QEMU was killed by signal {sig} (crashed or killed; see its messages above)")
        }
        _ => println!("==> QEMU exited: {}", explain_status(code)),
    }
    print_tail("telemetry (COM2)", &telemetry, 30);
    Ok(ExitCode::FAILURE)
}

/// What the co-kernel's clock is under this accelerator (`hauki.timing`): `virtual` with icount,
/// `emulated` under plain TCG, none (hardware) under KVM.
pub fn timing(accel: Accel, icount: bool) -> Option<&'static str> {
    match (accel, icount) {
        (Accel::Tcg, true) => Some("virtual"),
        (Accel::Tcg, false) => Some("emulated"),
        (Accel::Kvm, _) => None,
    }
}

/// Whether the telemetry holds a boot record and no fatal stop or fatal exception.
fn ended_cleanly(telemetry: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(telemetry) else { return false };
    let records: Vec<serde_json::Value> =
        text.lines().filter(|l| l.starts_with('{')).filter_map(|l| serde_json::from_str(l).ok()).collect();
    let event = |r: &serde_json::Value, e: &str| r.get("event").and_then(|v| v.as_str()) == Some(e);
    let booted = records.iter().any(|r| event(r, "boot"));
    let fatal = records.iter().any(|r| {
        event(r, "fatal") || (event(r, "exception") && r.get("fatal").and_then(|v| v.as_bool()) != Some(false))
    });
    booted && !fatal
}

/// Which serial port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Com {
    /// The console.
    Com1,
    /// Telemetry.
    Com2,
}

/// Why a wait ended without what was asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitError {
    /// The guest stopped making progress (or the safety net ran out): QEMU was killed. What was
    /// last seen.
    Timeout(String),
    /// QEMU exited first, with this status (`None`: killed by a signal).
    Exited(Option<i32>),
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::Timeout(why) => write!(f, "gave up: {why}"),
            WaitError::Exited(s) => write!(f, "QEMU exited first ({})", explain_status(*s)),
        }
    }
}

/// A QEMU process under test, with COM1/COM2 in `dir/com1.log` and `dir/com2.jsonl`.
pub struct Qemu {
    child: Child,
    status: Option<ExitStatus>,
    hard_timeout: Duration,
    /// The directory holding this run's files.
    pub dir: PathBuf,
    /// COM1 output.
    pub com1: PathBuf,
    /// COM2 output.
    pub com2: PathBuf,
    /// QEMU's own stdout/stderr.
    pub qemu_log: PathBuf,
}

const POLL: Duration = Duration::from_millis(25);

impl Qemu {
    /// The COM file paths a run in `dir` uses (to build the config before spawning).
    pub fn paths(dir: &Path) -> (PathBuf, PathBuf) {
        (dir.join("com1.log"), dir.join("com2.jsonl"))
    }

    /// Spawn QEMU with `cfg` (whose COM1/COM2 should be [`Qemu::paths`] of `dir`); `dir` is emptied
    /// first. `hard_timeout` is the stall bound of every wait on it (at most): QEMU is killed once a wait
    /// gives up ([`crate::progress`]).
    pub fn spawn(dir: &Path, cfg: &QemuConfig, hard_timeout: Duration) -> Result<Qemu, String> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| format!("cannot clean {}: {e}", dir.display()))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let (com1, com2) = Qemu::paths(dir);
        let qemu_log = dir.join("qemu.log");
        std::fs::write(dir.join("cmdline.txt"), cfg.display_line() + "\n").map_err(|e| e.to_string())?;
        let log = File::create(&qemu_log).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = cfg
            .command()
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot start qemu-system-x86_64: {e}; run `cargo xtask deps`"))?;
        Ok(Qemu { child, status: None, hard_timeout, dir: dir.to_path_buf(), com1, com2, qemu_log })
    }

    fn path(&self, com: Com) -> &Path {
        match com {
            Com::Com1 => &self.com1,
            Com::Com2 => &self.com2,
        }
    }

    /// Everything written to `com` so far (lossy UTF-8, `\r` removed).
    pub fn read(&self, com: Com) -> String {
        std::fs::read(self.path(com)).map(|b| String::from_utf8_lossy(&b).replace('\r', "")).unwrap_or_default()
    }

    /// Has QEMU exited? Returns its status once it has.
    pub fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// A wait with the stall bound `timeout` (at most the run's own), watching COM1 and COM2.
    fn watch(&self, timeout: Duration) -> Watch {
        Watch::new(vec![self.com1.clone(), self.com2.clone()], timeout.min(self.hard_timeout))
    }

    /// A wait gave up: QEMU is killed (the run is over) and the reason says what was last seen.
    fn give_up(&mut self, why: String) -> WaitError {
        self.kill();
        WaitError::Timeout(format!(
            "{why}; last COM1 line: {:?}, last COM2 line: {}",
            last_line(&self.read(Com::Com1)),
            last_line_of(&self.com2)
        ))
    }

    /// Wait until a complete line on `com` satisfies `pred`, and return it. Fails when `timeout` or the
    /// hard timeout passes, or QEMU exits without having written such a line.
    pub fn wait_for_line(
        &mut self,
        com: Com,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, WaitError> {
        let mut watch = self.watch(timeout);
        loop {
            let exited = self.poll_exit();
            let text = self.read(com);
            // While QEMU runs, only newline-terminated lines are complete.
            let complete = if exited.is_some() { &text[..] } else { &text[..text.rfind('\n').map_or(0, |i| i + 1)] };
            if let Some(l) = complete.lines().find(|l| pred(l)) {
                return Ok(l.to_string());
            }
            if let Some(s) = exited {
                return Err(WaitError::Exited(s.code()));
            }
            if let Some(why) = watch.expired(0) {
                return Err(self.give_up(why));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Wait for QEMU to exit and return its status (`None`: killed by a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Option<i32>, WaitError> {
        let mut watch = self.watch(timeout);
        loop {
            if let Some(s) = self.poll_exit() {
                return Ok(s.code());
            }
            if let Some(why) = watch.expired(0) {
                return Err(self.give_up(why));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Kill QEMU (if still running) and reap it.
    pub fn kill(&mut self) {
        if self.poll_exit().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// Print where this run's files are and the last `n` lines of each.
    pub fn print_logs(&self, n: usize) {
        println!("    files: {}", self.dir.display());
        print_tail("COM1", &self.com1, n);
        print_tail("COM2", &self.com2, n);
        if std::fs::metadata(&self.qemu_log).map(|m| m.len() > 0).unwrap_or(false) {
            print_tail("QEMU", &self.qemu_log, n);
        }
        if let Ok(c) = std::fs::read_to_string(self.dir.join("cmdline.txt")) {
            println!("    reproduce: {}", c.trim());
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(a: &[String], x: &str) -> usize {
        a.iter().position(|y| y == x).unwrap_or_else(|| panic!("{x} missing in {a:?}"))
    }

    #[test]
    fn the_clock_is_named_for_every_accelerator() {
        use crate::args::Accel;
        assert_eq!(timing(Accel::Tcg, false), Some("emulated"));
        assert_eq!(timing(Accel::Tcg, true), Some("virtual"));
        assert_eq!(timing(Accel::Kvm, false), None);
    }

    #[test]
    fn clean_end_needs_a_boot_record_and_no_fatal_stop() {
        let dir = std::env::temp_dir().join(format!("hauki-xtask-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t.jsonl");
        let case = |text: &str| {
            std::fs::write(&f, text).unwrap();
            ended_cleanly(&f)
        };
        assert!(case("hauki: x\n{\"event\":\"boot\"}\n"));
        assert!(!case("hauki: x\n"), "no boot record: a reset during boot");
        assert!(!case("{\"event\":\"boot\"}\n{\"event\":\"fatal\",\"reason\":\"x\"}\n"));
        assert!(!case("{\"event\":\"boot\"}\n{\"event\":\"exception\",\"fatal\":true}\n"));
        assert!(case("{\"event\":\"boot\"}\n{\"event\":\"exception\",\"fatal\":false}\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn statuses_match_the_abi() {
        assert_eq!(STATUS_SUCCESS, 33);
        assert_eq!(STATUS_FAILURE, 35);
        assert!(explain_status(Some(0)).contains("triple fault"));
    }

    #[test]
    fn test_machine_command() {
        let append = cokernel_args(&[(cmdline::EXIT_AFTER_BOOT, &1)]);
        let boot = Boot::Kernel { elf: "/k.elf".into(), cmdline: kernel_cmdline(&append) };
        let cfg = QemuConfig::test(boot, "qemu64", Path::new("/d/com1.log"), Path::new("/d/com2.jsonl"));
        let a = cfg.args();
        assert_eq!(a[pos(&a, "-machine") + 1], "q35");
        assert_eq!(a[pos(&a, "-cpu") + 1], "qemu64");
        assert_eq!(a[pos(&a, "-accel") + 1], "tcg");
        assert_eq!(a[pos(&a, "-kernel") + 1], "/k.elf");
        assert_eq!(a[pos(&a, "-append") + 1], "hauki.debug_exit=1 hauki.exit_after_boot=1");
        assert_eq!(a[pos(&a, "-device") + 1], "isa-debug-exit,iobase=0xf4,iosize=0x04");
        let s = pos(&a, "-serial");
        assert_eq!(a[s + 1], "file:/d/com1.log");
        assert_eq!(a[s + 2], "-serial");
        assert_eq!(a[s + 3], "file:/d/com2.jsonl");
        for f in ["-no-reboot", "-display", "-monitor"] {
            pos(&a, f);
        }
        assert!(!a.contains(&"-icount".to_string()));
    }

    #[test]
    fn interactive_style_command() {
        let cfg = QemuConfig {
            machine: "q35".into(),
            accel: Accel::Kvm,
            cpu: "host".into(),
            smp: 2,
            mem_mib: 1024,
            icount: false,
            icount_shift: 0,
            boot: Boot::Cdrom { iso: "/h.iso".into(), uefi: Some(("/C.fd".into(), "/V.fd".into())) },
            com1: "mon:stdio".into(),
            com2: "file:/t.jsonl".into(),
            display: true,
            monitor_none: false,
            net: None,
            extra: vec!["-s".into(), "-S".into()],
        };
        let a = cfg.args();
        assert_eq!(a[pos(&a, "-serial") + 1], "mon:stdio");
        assert!(!a.contains(&"-display".to_string()) && !a.contains(&"-monitor".to_string()));
        assert_eq!(a[pos(&a, "-smp") + 1], "2");
        assert_eq!(a[pos(&a, "-m") + 1], "1024");
        assert_eq!(a[pos(&a, "-cdrom") + 1], "/h.iso");
        assert!(a.contains(&"if=pflash,format=raw,unit=0,readonly=on,file=/C.fd".to_string()));
        assert!(a.contains(&"if=pflash,format=raw,unit=1,file=/V.fd".to_string()));
        assert_eq!(&a[a.len() - 2..], &["-s", "-S"]);
        assert!(cfg.display_line().starts_with("qemu-system-x86_64 -machine q35 -accel kvm -cpu host"));
    }

    #[test]
    fn microvm_gets_com2_as_isa_serial() {
        let mut cfg = QemuConfig::test(
            Boot::Kernel { elf: "/k".into(), cmdline: kernel_cmdline("") },
            "qemu64",
            Path::new("/d/c1"),
            Path::new("/d/c2"),
        );
        cfg.machine = "microvm,acpi=off".into();
        let a = cfg.args();
        assert_eq!(a.iter().filter(|x| *x == "-serial").count(), 1);
        assert_eq!(a[pos(&a, "-serial") + 1], "file:/d/c1");
        assert_eq!(a[pos(&a, "-chardev") + 1], "file,id=com2,path=/d/c2");
        assert!(a.contains(&"isa-serial,chardev=com2,iobase=0x2f8,irq=3".to_string()));
    }

    #[test]
    fn icount_and_cmdline() {
        let mut cfg = QemuConfig::test(
            Boot::Kernel { elf: "/k".into(), cmdline: kernel_cmdline("") },
            "qemu64",
            Path::new("/a"),
            Path::new("/b"),
        );
        cfg.icount = true;
        let a = cfg.args();
        assert_eq!(a[pos(&a, "-icount") + 1], "shift=0,sleep=off");
        assert_eq!(a[pos(&a, "-append") + 1], "hauki.debug_exit=1");
        assert!(cfg.display_line().contains("-append hauki.debug_exit=1"));
        assert_eq!(kernel_cmdline("  a=1 "), "hauki.debug_exit=1 a=1");
        let args = cokernel_args(&[(cmdline::LINUX, &"guest"), (cmdline::REPORT_MS, &250), (cmdline::APP, &"off")]);
        assert_eq!(args, "hauki.linux=guest hauki.report_ms=250 hauki.app=off");
        assert_eq!(cokernel_args(&[]), "");
    }
}
