//! Hand-written argument parsing (`--flag value` and `--flag=value`).

use std::path::PathBuf;

/// Usage text of `cargo xtask run`.
pub const RUN_USAGE: &str = "cargo xtask run [FLAGS]
  --app NAME          the application the image runs (default demo; `cargo xtask apps` lists them)
  --no-linux          boot the co-kernel alone (no Linux module)
  --handover          let the co-kernel load Linux and hand it the whole machine (the real-time
                      side stops: a test of the loader, and Linux on the bare machine)
  --linux PATH        your own (patched) vmlinux instead of the one built from linux-patch/
  --initramfs PATH    your own initramfs instead of target/hauki/initramfs.cpio.gz
  --append ARGS       extra Linux command line (after `console=ttyS0 panic=-1`)
  --cokernel-append ARGS  extra co-kernel command line (docs/cmdline.md)
  --accel tcg|kvm     accelerator (default tcg; kvm implies -cpu host unless --cpu)
  --icount            deterministic time: -icount shift=0,sleep=off (tcg only)
  --smp N             CPUs (default 1)
  --mem MiB           guest RAM (default 512)
  --cpu MODEL         CPU model (default `max` under tcg, `host` under kvm)
  --telemetry PATH    where COM2 telemetry goes (default target/hauki/telemetry.jsonl)
  --qemu-arg ARG      extra QEMU argument, appended verbatim (repeatable)
  --iso               boot target/hauki/hauki.iso (GRUB, Multiboot2) instead of -kernel (PVH)
  --uefi              with --iso: boot through OVMF (UEFI) instead of SeaBIOS
  --vga               show the QEMU display (default: -display none)
  --nic MODEL         Linux's network card: virtio, e1000e (the default) or e1000 (an INTx line);
                      QEMU user networking (Linux gets 10.0.2.15 by DHCP, the host is 10.0.2.2)
  --forward H:G       forward TCP port H of the host's 127.0.0.1 to Linux's port G (repeatable),
                      e.g. --forward 8080:80
  --disk [BUS:]IMAGE  give Linux a disk image (repeatable) on BUS: virtio (the default, /dev/vdX),
                      sata (q35's AHCI, /dev/sdX) or nvme (/dev/nvmeNn1); raw, or qcow2 by name
  --rootfs debian     boot Linux into the Debian 12 image `cargo xtask rootfs` builds (its first
                      disk, virtio) instead of the busybox initramfs; forwards 2222 to its ssh";

/// The accelerator QEMU uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Emulation; works everywhere, supports `-icount`.
    Tcg,
    /// Hardware virtualization (needs /dev/kvm).
    Kvm,
}

impl Accel {
    /// QEMU's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// The flags of `cargo xtask run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOpts {
    /// `--no-linux` was given.
    pub no_linux: bool,
    /// `--accel`.
    pub accel: Accel,
    /// `--icount`.
    pub icount: bool,
    /// `--smp`.
    pub smp: u32,
    /// `--mem` in MiB.
    pub mem_mib: u32,
    /// `--cpu`; `None` picks the accelerator's default.
    pub cpu: Option<String>,
    /// `--telemetry`; `None` is `target/hauki/telemetry.jsonl`.
    pub telemetry: Option<PathBuf>,
    /// `--qemu-arg`, in order.
    pub qemu_args: Vec<String>,
    /// `--iso`.
    pub iso: bool,
    /// `--uefi`.
    pub uefi: bool,
    /// `--append`: extra Linux command line.
    pub append: Option<String>,
    /// `--cokernel-append`: extra co-kernel command line.
    pub cokernel_append: Option<String>,
    /// `--handover`.
    pub handover: bool,
    /// `--linux`.
    pub linux: Option<PathBuf>,
    /// `--initramfs`.
    pub initramfs: Option<PathBuf>,
    /// `--app`: the application (default [`crate::apps::DEFAULT`]).
    pub app: String,
    /// `--vga`.
    pub vga: bool,
    /// `--nic`.
    pub nic: Option<crate::qemu::NicModel>,
    /// `--forward`, in order: (host port, guest port).
    pub forwards: Vec<(u16, u16)>,
    /// `--disk`, in order.
    pub disks: Vec<crate::qemu::Disk>,
    /// `--rootfs`: the root filesystem image to boot instead of the initramfs.
    pub rootfs: Option<Rootfs>,
}

/// The root filesystems `--rootfs` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rootfs {
    /// Debian 12 with systemd and ssh, built by `cargo xtask rootfs` (docs/rootfs.md).
    Debian,
}

impl Default for RunOpts {
    fn default() -> Self {
        RunOpts {
            no_linux: false,
            accel: Accel::Tcg,
            icount: false,
            smp: 1,
            mem_mib: 512,
            cpu: None,
            telemetry: None,
            qemu_args: Vec::new(),
            iso: false,
            uefi: false,
            append: None,
            cokernel_append: None,
            handover: false,
            linux: None,
            initramfs: None,
            app: crate::apps::DEFAULT.to_string(),
            vga: false,
            nic: None,
            forwards: Vec::new(),
            disks: Vec::new(),
            rootfs: None,
        }
    }
}

impl RunOpts {
    /// Parse the arguments after `run`.
    pub fn parse(args: &[String]) -> Result<RunOpts, String> {
        let mut o = RunOpts::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (arg.as_str(), None),
            };
            let mut value = |name: &str| -> Result<String, String> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => {
                        it.next().cloned().ok_or_else(|| format!("`{name}` needs a value; see `cargo xtask help run`"))
                    }
                }
            };
            match flag {
                "--no-linux" => o.no_linux = true,
                "--icount" => o.icount = true,
                "--iso" => o.iso = true,
                "--uefi" => o.uefi = true,
                "--vga" => o.vga = true,
                "--accel" => {
                    o.accel = match value(flag)?.as_str() {
                        "tcg" => Accel::Tcg,
                        "kvm" => Accel::Kvm,
                        other => return Err(format!("--accel must be tcg or kvm, not `{other}`")),
                    }
                }
                "--smp" => o.smp = number(flag, &value(flag)?, 1, 255)?,
                "--mem" => o.mem_mib = number(flag, &value(flag)?, 16, 1 << 20)?,
                "--cpu" => o.cpu = Some(value(flag)?),
                "--telemetry" => o.telemetry = Some(PathBuf::from(value(flag)?)),
                "--qemu-arg" => o.qemu_args.push(value(flag)?),
                "--append" => o.append = Some(value(flag)?),
                "--cokernel-append" => o.cokernel_append = Some(value(flag)?),
                "--handover" => o.handover = true,
                "--linux" => o.linux = Some(PathBuf::from(value(flag)?)),
                "--initramfs" => o.initramfs = Some(PathBuf::from(value(flag)?)),
                "--app" => o.app = value(flag)?,
                "--nic" => {
                    let v = value(flag)?;
                    o.nic = Some(
                        crate::qemu::NicModel::parse(&v)
                            .ok_or_else(|| format!("--nic must be virtio, e1000e or e1000, not `{v}`"))?,
                    );
                }
                "--forward" => o.forwards.push(forward(&value(flag)?)?),
                "--disk" => o.disks.push(crate::qemu::Disk::parse(&value(flag)?)?),
                "--rootfs" => {
                    o.rootfs = match value(flag)?.as_str() {
                        "debian" => Some(Rootfs::Debian),
                        other => return Err(format!("--rootfs knows `debian` only, not `{other}`")),
                    }
                }
                other => {
                    return Err(format!("unknown flag `{other}` for `run`; see `cargo xtask help run`"));
                }
            }
            if inline.is_some()
                && matches!(flag, "--no-linux" | "--icount" | "--iso" | "--uefi" | "--vga" | "--handover")
            {
                return Err(format!("`{flag}` takes no value"));
            }
        }
        if o.icount && o.accel == Accel::Kvm {
            return Err("--icount needs TCG; it cannot be combined with --accel kvm".into());
        }
        if o.uefi && !o.iso {
            return Err("--uefi boots the ISO through OVMF; add --iso".into());
        }
        if o.iso && (o.append.is_some() || o.cokernel_append.is_some() || o.handover) {
            return Err("--append, --cokernel-append and --handover work with -kernel boot only; with --iso the command lines come from boot/grub.cfg".into());
        }
        if o.no_linux && (o.nic.is_some() || !o.forwards.is_empty()) {
            return Err("--nic and --forward are Linux's network: drop them with --no-linux".into());
        }
        if let Some(h) = o
            .forwards
            .iter()
            .map(|f| f.0)
            .enumerate()
            .find_map(|(i, h)| o.forwards[..i].iter().any(|f| f.0 == h).then_some(h))
        {
            return Err(format!("--forward: host port {h} is forwarded twice"));
        }
        if o.no_linux && (!o.disks.is_empty() || o.rootfs.is_some()) {
            return Err("--disk and --rootfs are Linux's disks: drop them with --no-linux".into());
        }
        if o.rootfs.is_some() && o.initramfs.is_some() {
            return Err("--rootfs boots Linux from a disk; it cannot be combined with --initramfs".into());
        }
        let first = usize::from(o.rootfs.is_some());
        if let Some(i) =
            o.disks.iter().enumerate().position(|(i, d)| d.bus == crate::qemu::DiskBus::Sata && first + i > 5)
        {
            return Err(format!(
                "--disk: disk {} would be on SATA port {}, and q35's AHCI has ports 0 to 5",
                i + 1,
                first + i
            ));
        }
        if o.no_linux && (o.handover || o.linux.is_some() || o.initramfs.is_some() || o.append.is_some()) {
            return Err("--no-linux boots no Linux: drop --handover, --linux, --initramfs and --append".into());
        }
        Ok(o)
    }

    /// The CPU model QEMU gets.
    pub fn cpu_model(&self) -> String {
        match (&self.cpu, self.accel) {
            (Some(c), _) => c.clone(),
            (None, Accel::Tcg) => "max".into(),
            (None, Accel::Kvm) => "host".into(),
        }
    }
}

/// `HOST:GUEST`, two TCP ports (1 to 65535).
fn forward(v: &str) -> Result<(u16, u16), String> {
    let bad = || format!("--forward takes HOSTPORT:GUESTPORT (TCP ports 1 to 65535), not `{v}`");
    let (h, g) = v.split_once(':').ok_or_else(bad)?;
    let port = |p: &str| p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(bad);
    Ok((port(h)?, port(g)?))
}

/// Usage text of `cargo xtask fuzz`.
pub const FUZZ_USAGE: &str = "cargo xtask fuzz [TARGET...] [--seconds N] | --list | TARGET --input FILE
  TARGET              fuzz only these targets (default: every one, one after the other)
  --seconds N         how long each target runs (default 60)
  --list              list the targets and what each checks
  --input FILE        run TARGET once on FILE (replay a crash) instead of fuzzing
Needs nightly and cargo-fuzz (installed on first use); docs/fuzzing.md.";

/// One command's arguments, a flag at a time: `--flag=value` split at `=`, and the value of a
/// flag that takes one (inline or the next argument).
struct Flags<'a> {
    it: std::slice::Iter<'a, String>,
    command: &'static str,
}

impl<'a> Flags<'a> {
    /// The next argument as (flag or word, inline value).
    fn next(&mut self) -> Option<(&'a str, Option<&'a str>)> {
        let arg = self.it.next()?;
        Some(match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (arg.as_str(), None),
        })
    }

    /// The value of `flag`: `inline`, or the next argument.
    fn value(&mut self, flag: &str, inline: Option<&str>) -> Result<String, String> {
        match inline {
            Some(v) => Ok(v.to_string()),
            None => self
                .it
                .next()
                .cloned()
                .ok_or_else(|| format!("`{flag}` needs a value; see `cargo xtask help {}`", self.command)),
        }
    }
}

/// The arguments of `cargo xtask bench`: bench names, or `--compare` with its options.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct BenchOpts {
    /// The benches named (empty: all); not with `--compare`.
    pub names: Vec<String>,
    /// `--compare`: Hauki against PREEMPT_RT and stock Linux.
    pub compare: bool,
    /// `--quick`: the comparison's short form.
    pub quick: bool,
    /// `--secs N`: virtual seconds of load per system.
    pub secs: Option<u64>,
    /// `--json FILE`.
    pub json: Option<PathBuf>,
    /// `--docs` / `--no-docs`: regenerate docs/benchmarks.md (default: for a full run).
    pub docs: Option<bool>,
    /// `--from FILE`: render a report a run wrote, without running.
    pub from: Option<PathBuf>,
}

impl BenchOpts {
    /// Parse the arguments after `bench`.
    pub fn parse(args: &[String]) -> Result<BenchOpts, String> {
        let mut o = BenchOpts::default();
        let mut flags = Flags { it: args.iter(), command: "bench" };
        while let Some((flag, inline)) = flags.next() {
            let mut value = |name: &str| flags.value(name, inline);
            match flag {
                "--compare" if inline.is_none() => o.compare = true,
                "--quick" if inline.is_none() => o.quick = true,
                "--docs" if inline.is_none() => o.docs = Some(true),
                "--no-docs" if inline.is_none() => o.docs = Some(false),
                "--secs" => o.secs = Some(u64::from(number(flag, &value(flag)?, 2, 3600)?)),
                "--json" => o.json = Some(PathBuf::from(value(flag)?)),
                "--from" => o.from = Some(PathBuf::from(value(flag)?)),
                f if f.starts_with('-') => {
                    return Err(format!("unknown flag `{f}` for `bench`; see `cargo xtask help bench`"));
                }
                name => o.names.push(name.to_string()),
            }
        }
        let compare_only = o.quick || o.secs.is_some() || o.json.is_some() || o.docs.is_some() || o.from.is_some();
        if compare_only && !o.compare {
            return Err("--quick, --secs, --json, --docs and --from go with --compare".into());
        }
        if o.compare && !o.names.is_empty() {
            return Err(format!("--compare runs on its own; drop the bench names {:?}", o.names));
        }
        Ok(o)
    }
}

/// The arguments of `cargo xtask fuzz`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuzzOpts {
    /// The targets named (empty: all).
    pub targets: Vec<String>,
    /// `--seconds`: per target.
    pub seconds: u32,
    /// `--list`.
    pub list: bool,
    /// `--input`.
    pub input: Option<PathBuf>,
}

impl FuzzOpts {
    /// Parse the arguments after `fuzz`.
    pub fn parse(args: &[String]) -> Result<FuzzOpts, String> {
        let mut o = FuzzOpts { targets: Vec::new(), seconds: 60, list: false, input: None };
        let mut flags = Flags { it: args.iter(), command: "fuzz" };
        while let Some((flag, inline)) = flags.next() {
            let mut value = |name: &str| flags.value(name, inline);
            match flag {
                "--seconds" => o.seconds = number(flag, &value(flag)?, 1, 24 * 3600)?,
                "--input" => o.input = Some(PathBuf::from(value(flag)?)),
                "--list" if inline.is_none() => o.list = true,
                f if f.starts_with('-') => {
                    return Err(format!("unknown flag `{f}` for `fuzz`; see `cargo xtask help fuzz`"));
                }
                name => o.targets.push(name.to_string()),
            }
        }
        if o.input.is_some() && o.targets.len() != 1 {
            return Err("--input replays one file on one target: name exactly one TARGET".into());
        }
        if o.list && (o.input.is_some() || !o.targets.is_empty()) {
            return Err("--list takes no target and no --input".into());
        }
        Ok(o)
    }
}

fn number(flag: &str, v: &str, min: u32, max: u32) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("`{flag}` wants a number in {min}..={max}, not `{v}`")),
    }
}

/// Fail when a command that takes no arguments got some.
pub fn no_args(cmd: &str, args: &[String]) -> Result<(), String> {
    match args.first() {
        None => Ok(()),
        Some(a) => Err(format!("`{cmd}` takes no arguments (got `{a}`); see `cargo xtask help`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RunOpts, String> {
        let v: Vec<String> = s.split_whitespace().map(String::from).collect();
        RunOpts::parse(&v)
    }

    #[test]
    fn defaults() {
        let o = parse("").unwrap();
        assert_eq!(o, RunOpts::default());
        assert_eq!(o.cpu_model(), "max");
        assert_eq!((o.smp, o.mem_mib, o.accel), (1, 512, Accel::Tcg));
    }

    #[test]
    fn all_flags() {
        let o = parse("--no-linux --smp 4 --mem=1024 --cpu qemu64 --telemetry /tmp/t.jsonl --qemu-arg -s --qemu-arg=-S --icount --vga")
            .unwrap();
        assert!(o.no_linux && o.icount && o.vga);
        assert_eq!((o.smp, o.mem_mib), (4, 1024));
        assert_eq!(o.cpu_model(), "qemu64");
        assert_eq!(o.telemetry, Some(PathBuf::from("/tmp/t.jsonl")));
        assert_eq!(o.qemu_args, vec!["-s", "-S"]);
    }

    #[test]
    fn disk_flags() {
        use crate::qemu::{Disk, DiskBus, disk_args};
        let o = parse("--disk a.img --disk sata:b.img --disk=nvme:/x/c.qcow2 --rootfs debian").unwrap();
        assert_eq!(o.rootfs, Some(Rootfs::Debian));
        let buses: Vec<DiskBus> = o.disks.iter().map(|d| d.bus).collect();
        assert_eq!(buses, [DiskBus::Virtio, DiskBus::Sata, DiskBus::Nvme]);
        // A name with a colon that is not a bus stays the file name.
        assert_eq!(Disk::parse("odd:name.img").unwrap(), Disk { bus: DiskBus::Virtio, image: "odd:name.img".into() });
        let a = disk_args(&o.disks).join(" ");
        assert!(a.contains("-drive file=a.img,format=raw,if=none,id=disk0"), "{a}");
        assert!(a.contains("-device virtio-blk-pci,drive=disk0"), "{a}");
        assert!(a.contains("-device ide-hd,drive=disk1,bus=ide.1"), "{a}");
        assert!(a.contains("file=/x/c.qcow2,format=qcow2") && a.contains("-device nvme,drive=disk2"), "{a}");
        assert!(parse("--disk sata:").unwrap_err().contains("[virtio:|sata:|nvme:]IMAGE"));
        assert!(parse("--rootfs arch").unwrap_err().contains("debian"));
        assert!(parse("--no-linux --disk a.img").unwrap_err().contains("--no-linux"));
        assert!(parse("--rootfs debian --initramfs i.cpio").unwrap_err().contains("--initramfs"));
        let seven = "--disk a --disk b --disk c --disk d --disk e --disk sata:f";
        assert!(parse(seven).is_ok());
        assert!(parse(&format!("{seven} --rootfs debian")).unwrap_err().contains("ports 0 to 5"));
    }

    #[test]
    fn network_flags() {
        use crate::qemu::{Net, NicModel};
        let o = parse("--nic virtio --forward 8080:80 --forward=2222:22").unwrap();
        assert_eq!(o.nic, Some(NicModel::Virtio));
        assert_eq!(o.forwards, vec![(8080, 80), (2222, 22)]);
        let n = Net { model: NicModel::E1000, forwards: o.forwards };
        assert_eq!(n.arg(), "user,model=e1000,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:2222-:22");
        assert!(parse("--nic rtl8139").unwrap_err().contains("virtio, e1000e or e1000"));
        for bad in ["--forward 8080", "--forward 0:80", "--forward 80:70000", "--forward a:b"] {
            assert!(parse(bad).unwrap_err().contains("HOSTPORT:GUESTPORT"), "{bad}");
        }
        assert!(parse("--forward 1:2 --forward 1:3").unwrap_err().contains("twice"));
        assert!(parse("--no-linux --nic e1000").unwrap_err().contains("--no-linux"));
    }

    #[test]
    fn append_keeps_spaces_and_equals() {
        let v = vec!["--append".to_string(), "hauki.inject=pf foo=bar".to_string()];
        assert_eq!(RunOpts::parse(&v).unwrap().append.as_deref(), Some("hauki.inject=pf foo=bar"));
        let v = vec!["--append=hauki.inject=ud".to_string()];
        assert_eq!(RunOpts::parse(&v).unwrap().append.as_deref(), Some("hauki.inject=ud"));
    }

    #[test]
    fn kvm() {
        let o = parse("--accel kvm").unwrap();
        assert_eq!(o.cpu_model(), "host");
        assert_eq!(parse("--accel kvm --cpu max").unwrap().cpu_model(), "max");
        assert!(parse("--accel kvm --icount").unwrap_err().contains("TCG"));
        assert!(parse("--accel hvf").is_err());
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse("--smp 0").is_err());
        assert!(parse("--smp x").is_err());
        assert!(parse("--smp").unwrap_err().contains("needs a value"));
        assert!(parse("--frobnicate").unwrap_err().contains("unknown flag"));
        assert!(parse("--uefi").unwrap_err().contains("--iso"));
        assert!(parse("--iso --uefi").is_ok());
        assert!(parse("--iso --append x").is_err());
        assert!(parse("--vga=1").is_err());
    }

    #[test]
    fn fuzz_args() {
        let p = |s: &str| FuzzOpts::parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>());
        let o = p("").unwrap();
        assert_eq!((o.targets.len(), o.seconds, o.list, o.input), (0, 60, false, None));
        let o = p("elf pvh --seconds=5").unwrap();
        assert_eq!((o.targets, o.seconds), (vec!["elf".to_string(), "pvh".to_string()], 5));
        assert!(p("--list").unwrap().list);
        let o = p("elf --input /tmp/crash").unwrap();
        assert_eq!(o.input, Some(PathBuf::from("/tmp/crash")));
        assert!(p("--input /tmp/crash").unwrap_err().contains("one TARGET"));
        assert!(p("elf pvh --input x").is_err());
        assert!(p("--list elf").is_err());
        assert!(p("--seconds 0").is_err());
        assert!(p("--seconds").unwrap_err().contains("needs a value"));
        assert!(p("--jobs 2").unwrap_err().contains("unknown flag"));
        assert!(p("--list=1").is_err());
    }

    #[test]
    fn no_args_check() {
        assert!(no_args("build", &[]).is_ok());
        assert!(no_args("build", &["x".into()]).is_err());
    }

    #[test]
    fn bench_options() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(BenchOpts::parse(&v(&["edu", "uart"])).unwrap().names, ["edu", "uart"]);
        let o = BenchOpts::parse(&v(&["--compare", "--quick", "--json", "r.json"])).unwrap();
        assert!(o.compare && o.quick && o.json == Some(PathBuf::from("r.json")) && o.docs.is_none());
        let o = BenchOpts::parse(&v(&["--compare", "--secs=30", "--no-docs"])).unwrap();
        assert_eq!((o.secs, o.docs), (Some(30), Some(false)));
        assert!(BenchOpts::parse(&v(&["--quick"])).unwrap_err().contains("go with --compare"));
        assert!(BenchOpts::parse(&v(&["--compare", "edu"])).unwrap_err().contains("on its own"));
        assert!(BenchOpts::parse(&v(&["--compare", "--secs", "1"])).is_err());
        assert!(BenchOpts::parse(&v(&["--compare", "--json"])).unwrap_err().contains("needs a value"));
    }
}
