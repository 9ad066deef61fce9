//! What Linux hands the co-kernel through its call gate and shared memory, decoded and checked
//! before anything acts on it.
//!
//! Linux calls the gate (`Handoff::call_gate`) with a call number and one argument
//! (`hauki_abi::guest::call`). [`decode`] turns the pair into a typed [`Call`] or a [`Refusal`];
//! for `LOAD_IDT` the argument is a pointer into Linux's address space to a `struct desc_ptr`
//! (10 bytes: `u16` limit, `u64` base), accepted only when all of it lies inside Linux's loaded
//! kernel image ([`KernelImage`]: where Linux keeps `idt_descr`, and the static descriptors of
//! `idt_invalidate` and resume). [`idt`] then checks the IDT it describes, and [`gate_address`] /
//! [`gate_target`] find and decode one 16-byte gate of it when an event is forwarded.
//!
//! Invariants: nothing here reads memory (the arch code reads the bytes these functions
//! approved, and copes with a fault); every address computation is checked; an accepted IDT lies
//! wholly inside Linux's kernel image or is Linux's read-only alias of it in the CPU entry area
//! ([`CEA_RO_IDT`]); an accepted gate is a present interrupt or trap gate whose target is
//! canonical and, when the image is known, inside one of its executable segments, so the
//! forwarding jump can never fault in the co-kernel's own code.
#![forbid(unsafe_code)]

use core::ops::Range;

use hauki_abi::guest::{ISA_LINES, LINES, call};

use crate::guest::elf::{MAX_SEGMENTS, PF_X, Vmlinux};

/// Linux's kernel-image map (`__START_KERNEL_map`): the image is linked in the top 2 GiB.
pub const KERNEL_MAP_START: u64 = 0xffff_ffff_8000_0000;
/// Where Linux maps its IDT read-only once it is set up (`CPU_ENTRY_AREA_RO_IDT`, the start of
/// the CPU entry area: PGD slot -4, the same with 4- and 5-level paging).
pub const CEA_RO_IDT: u64 = 0xffff_fe00_0000_0000;
/// Size of `struct desc_ptr` (`u16` limit, `u64` base, packed).
pub const DESC_PTR_SIZE: u64 = 10;
/// Size of one 64-bit IDT gate.
pub const GATE_SIZE: u64 = 16;
/// The largest IDT limit: 256 gates, minus one (the limit is the last valid byte offset).
pub const MAX_IDT_LIMIT: u16 = 256 * 16 - 1;

/// Linux's kernel image in Linux's own virtual address space: the kernel-map ranges of the
/// segments the loader placed, and which of them are executable. Segments linked elsewhere (the
/// zero-based per-CPU segment) are left out: nothing is mapped at their link address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelImage {
    segments: heapless::Vec<(Range<u64>, bool), MAX_SEGMENTS>,
}

impl KernelImage {
    /// The image of a validated `vmlinux` (whose segment ranges cannot overflow).
    pub fn new(v: &Vmlinux) -> Self {
        let mut segments = heapless::Vec::new();
        for s in v.segments.iter().filter(|s| s.vaddr >= KERNEL_MAP_START) {
            if let Some(end) = s.vaddr.checked_add(s.memsz) {
                // Cannot fail: as many as the Vmlinux has.
                let _ = segments.push((s.vaddr..end, s.flags & PF_X != 0));
            }
        }
        Self { segments }
    }

    /// Whether the `len` bytes at `addr` (`len > 0`) lie inside one segment.
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        len > 0 && self.segments.iter().any(|(r, _)| r.start <= addr && end <= r.end)
    }

    /// Whether `addr` lies inside an executable segment.
    pub fn executable(&self, addr: u64) -> bool {
        self.segments.iter().any(|(r, x)| *x && r.contains(&addr))
    }
}

/// How a device-line call acts on its line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineOp {
    /// `IRQ_MASK`.
    Mask,
    /// `IRQ_UNMASK`.
    Unmask,
    /// `IRQ_EOI`.
    Eoi,
}

/// Why Linux stops (`SHUTDOWN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Linux powered itself off.
    PoweredOff,
    /// Linux reboots.
    Reboot,
    /// Linux panicked, or gave a reason this co-kernel does not know (Linux stops either way).
    Panic,
}

/// A call the co-kernel serves, with its argument checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `LOAD_IDT`: the 10-byte `struct desc_ptr` at `desc` (inside Linux's image) names Linux's
    /// IDT; read it, then check it with [`idt`].
    LoadIdt {
        /// Linux's virtual address of the descriptor.
        desc: u64,
    },
    /// `REGISTER_VCPU` with the vCPU block this co-kernel handed over.
    RegisterVcpu,
    /// `SET_TIMER`: Linux's next clock event at this TSC value (`u64::MAX` cancels).
    SetTimer {
        /// The TSC deadline.
        deadline: u64,
    },
    /// `IRQ_MASK` / `IRQ_UNMASK` / `IRQ_EOI` of a line (`line < LINES`; whether Linux may have
    /// that line is the irqchip's decision).
    Line {
        /// What to do.
        op: LineOp,
        /// The line (ISA IRQ, or PCI GSI 16..23).
        line: u32,
    },
    /// `GSI_BIND` of PCI line `gsi` (16..23) to `vector` (0: unbind); whether the vector is
    /// acceptable is the irqchip's decision.
    GsiBind {
        /// The line.
        gsi: u32,
        /// Linux's vector, 0 to unbind.
        vector: u8,
        /// Level-triggered.
        level: bool,
        /// Active low.
        active_low: bool,
    },
    /// `SHUTDOWN`.
    Shutdown(Stop),
    /// `CHANNEL_NOTIFY` of a channel that exists (`index <` [`Expect::channels`]).
    ChannelNotify {
        /// The channel's index in the directory.
        index: u32,
    },
    /// `VCPU_OF` a local APIC ID (0..=255; whether it is Linux's CPU is the co-kernel's decision).
    VcpuOf {
        /// The CPU's local APIC ID.
        apic_id: u32,
    },
    /// `CPU_START` of a CPU at a physical address below 1 MiB (whether the CPU is Linux's and
    /// idle is the co-kernel's decision).
    CpuStart {
        /// The CPU's local APIC ID (0..=255).
        apic_id: u32,
        /// Where Linux's 64-bit trampoline starts (physical, below 1 MiB).
        start: u32,
    },
}

/// Why a call from Linux was refused. The co-kernel returns `u64::MAX` to Linux, counts it and
/// reports the first of each kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A call number this co-kernel does not serve.
    UnknownCall,
    /// `REGISTER_VCPU` with another address than the vCPU block handed over.
    WrongVcpu,
    /// A device-line call for a line number `>= LINES`.
    BadLine,
    /// `LOAD_IDT` before the co-kernel knows Linux's image (no Linux was loaded).
    NoImage,
    /// `LOAD_IDT`'s descriptor does not lie inside Linux's kernel image.
    DescOutsideImage,
    /// `LOAD_IDT`'s descriptor lies inside Linux's image but could not be read (Linux unmapped
    /// it); found by the arch code.
    DescUnreadable,
    /// The IDT is larger than 256 gates.
    IdtTooLarge,
    /// The IDT lies neither inside Linux's image nor at its read-only alias.
    IdtOutsideImage,
    /// `CHANNEL_NOTIFY` for an index with no channel.
    BadChannel,
    /// `GSI_BIND` of a line outside 16..23, or with bits set beyond its fields.
    BadBind,
    /// `VCPU_OF` or `CPU_START` of a CPU that is not one of Linux's (an APIC ID above 255, or
    /// none of the CPUs the co-kernel gives Linux), or `CPU_START` of a CPU Linux already runs on.
    BadCpu,
    /// `CPU_START` at an address at or above 1 MiB (or 0).
    BadStart,
}

impl Refusal {
    /// Every kind, in [`index`](Self::index) order.
    pub const ALL: [Refusal; 12] = [
        Refusal::UnknownCall,
        Refusal::WrongVcpu,
        Refusal::BadLine,
        Refusal::NoImage,
        Refusal::DescOutsideImage,
        Refusal::DescUnreadable,
        Refusal::IdtTooLarge,
        Refusal::IdtOutsideImage,
        Refusal::BadChannel,
        Refusal::BadBind,
        Refusal::BadCpu,
        Refusal::BadStart,
    ];

    /// Position in [`ALL`](Self::ALL) (a bit number for "reported once" masks).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Stable key for telemetry.
    pub const fn key(self) -> &'static str {
        match self {
            Refusal::UnknownCall => "unknown-call",
            Refusal::WrongVcpu => "wrong-vcpu",
            Refusal::BadLine => "bad-line",
            Refusal::NoImage => "no-image",
            Refusal::DescOutsideImage => "desc-outside-image",
            Refusal::DescUnreadable => "desc-unreadable",
            Refusal::IdtTooLarge => "idt-too-large",
            Refusal::IdtOutsideImage => "idt-outside-image",
            Refusal::BadChannel => "bad-channel",
            Refusal::BadBind => "bad-bind",
            Refusal::BadCpu => "bad-cpu",
            Refusal::BadStart => "bad-start",
        }
    }
}

/// The highest local APIC ID the co-kernel starts CPUs by (xAPIC's 8 bits).
pub const MAX_APIC_ID: u32 = 255;
/// `CPU_START` addresses lie below this (the real-mode megabyte, where Linux's trampoline is).
pub const LOW_MEMORY_END: u32 = 0x10_0000;

/// What a call is checked against: the vCPU block handed to Linux, and Linux's image once
/// loaded.
#[derive(Clone, Copy, Debug)]
pub struct Expect<'a> {
    /// Address of the vCPU block in the handoff.
    pub vcpu: u64,
    /// Linux's kernel image (`None` before the loader placed one).
    pub image: Option<&'a KernelImage>,
    /// Channels in the channel directory.
    pub channels: u32,
}

/// Decode Linux's call `nr` with argument `arg`.
pub fn decode(nr: u64, arg: u64, expect: &Expect<'_>) -> Result<Call, Refusal> {
    let nr = u32::try_from(nr).map_err(|_| Refusal::UnknownCall)?;
    let line = |op| match u32::try_from(arg) {
        Ok(line) if line < LINES => Ok(Call::Line { op, line }),
        _ => Err(Refusal::BadLine),
    };
    match nr {
        call::LOAD_IDT => {
            let image = expect.image.ok_or(Refusal::NoImage)?;
            if image.contains(arg, DESC_PTR_SIZE) {
                Ok(Call::LoadIdt { desc: arg })
            } else {
                Err(Refusal::DescOutsideImage)
            }
        }
        call::REGISTER_VCPU if arg == expect.vcpu => Ok(Call::RegisterVcpu),
        call::REGISTER_VCPU => Err(Refusal::WrongVcpu),
        call::SET_TIMER => Ok(Call::SetTimer { deadline: arg }),
        call::IRQ_MASK => line(LineOp::Mask),
        call::IRQ_UNMASK => line(LineOp::Unmask),
        call::IRQ_EOI => line(LineOp::Eoi),
        call::GSI_BIND => {
            let known = 0xffff | call::GSI_BIND_LEVEL | call::GSI_BIND_ACTIVE_LOW;
            let gsi = (arg & 0xff) as u32;
            if arg & !known != 0 || !(ISA_LINES..LINES).contains(&gsi) {
                return Err(Refusal::BadBind);
            }
            Ok(Call::GsiBind {
                gsi,
                vector: (arg >> 8) as u8,
                level: arg & call::GSI_BIND_LEVEL != 0,
                active_low: arg & call::GSI_BIND_ACTIVE_LOW != 0,
            })
        }
        call::CHANNEL_NOTIFY => match u32::try_from(arg) {
            Ok(index) if index < expect.channels => Ok(Call::ChannelNotify { index }),
            _ => Err(Refusal::BadChannel),
        },
        call::VCPU_OF => match u32::try_from(arg) {
            Ok(apic_id) if apic_id <= MAX_APIC_ID => Ok(Call::VcpuOf { apic_id }),
            _ => Err(Refusal::BadCpu),
        },
        call::CPU_START => {
            let (apic_id, start) = (arg as u32, (arg >> 32) as u32);
            if apic_id > MAX_APIC_ID {
                Err(Refusal::BadCpu)
            } else if start == 0 || start >= LOW_MEMORY_END {
                Err(Refusal::BadStart)
            } else {
                Ok(Call::CpuStart { apic_id, start })
            }
        }
        call::SHUTDOWN => Ok(Call::Shutdown(match u32::try_from(arg) {
            Ok(call::SHUTDOWN_OFF) => Stop::PoweredOff,
            Ok(call::SHUTDOWN_REBOOT) => Stop::Reboot,
            _ => Stop::Panic,
        })),
        _ => Err(Refusal::UnknownCall),
    }
}

/// An IDT Linux registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Idt {
    /// Linux's virtual address of gate 0 (0: no IDT).
    pub base: u64,
    /// The last valid byte offset.
    pub limit: u16,
}

/// Check the IDT that the `struct desc_ptr` bytes `desc` describe: no IDT at all (base and limit
/// 0, Linux's `idt_invalidate`), Linux's read-only alias at [`CEA_RO_IDT`], or a table wholly
/// inside Linux's image; never more than 256 gates.
pub fn idt(desc: [u8; DESC_PTR_SIZE as usize], image: &KernelImage) -> Result<Idt, Refusal> {
    let [l0, l1, b @ ..] = desc;
    let limit = u16::from_le_bytes([l0, l1]);
    let base = u64::from_le_bytes(b);
    let idt = Idt { base, limit };
    if base == 0 && limit == 0 {
        return Ok(idt);
    }
    if limit > MAX_IDT_LIMIT {
        return Err(Refusal::IdtTooLarge);
    }
    if base == CEA_RO_IDT || image.contains(base, u64::from(limit) + 1) {
        Ok(idt)
    } else {
        Err(Refusal::IdtOutsideImage)
    }
}

/// Where gate `vector` of the IDT at `base` with `limit` lies, if the whole gate is within the
/// limit (and there is an IDT: `base != 0`).
pub fn gate_address(base: u64, limit: u16, vector: u8) -> Option<u64> {
    let off = u64::from(vector) * GATE_SIZE;
    if base == 0 || off + GATE_SIZE - 1 > u64::from(limit) {
        return None;
    }
    base.checked_add(off)
}

/// Gate type of a 64-bit interrupt gate and of a trap gate.
const GATE_INTERRUPT: u8 = 0xe;
const GATE_TRAP: u8 = 0xf;

/// Whether `addr` is canonical under 4-level paging (the co-kernel's, and so Linux's): bits
/// 63..48 copy bit 47. A jump to a non-canonical address faults at the jump itself, in the
/// co-kernel's forwarding code.
const fn canonical(addr: u64) -> bool {
    ((addr as i64) << 16 >> 16) as u64 == addr
}

/// The target of a 16-byte IDT gate, if it is a present interrupt or trap gate whose target is
/// canonical and, when `image` is given, inside one of its executable segments.
pub fn gate_target(gate: [u8; GATE_SIZE as usize], image: Option<&KernelImage>) -> Option<u64> {
    let [o0, o1, _, _, _, attr, o2, o3, o4, o5, o6, o7, ..] = gate;
    let present = attr & 0x80 != 0;
    let kind = attr & 0x0f;
    if !present || !(kind == GATE_INTERRUPT || kind == GATE_TRAP) {
        return None;
    }
    let target = u64::from_le_bytes([o0, o1, o2, o3, o4, o5, o6, o7]);
    let inside = image.is_none_or(|i| i.executable(target));
    (canonical(target) && inside).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::elf::{PF_R, PF_W, Segment};

    fn seg(vaddr: u64, memsz: u64, flags: u32) -> Segment {
        Segment { file_offset: 0, filesz: 0, memsz, paddr: vaddr.wrapping_sub(KERNEL_MAP_START), vaddr, flags }
    }

    /// Linux-like: text (RX), data (RW), the zero-based per-CPU segment, init+bss (RWX).
    fn image() -> KernelImage {
        let mut segments = heapless::Vec::new();
        for s in [
            seg(0xffff_ffff_8100_0000, 0x100_0000, PF_R | PF_X),
            seg(0xffff_ffff_8200_0000, 0x80_0000, PF_R | PF_W),
            seg(0, 0x3_0000, PF_R | PF_W),
            seg(0xffff_ffff_8300_0000, 0x40_0000, PF_R | PF_W | PF_X),
        ] {
            segments.push(s).unwrap();
        }
        KernelImage::new(&Vmlinux { entry_phys: 0x100_0000, segments, phys_start: 0, phys_end: 0 })
    }

    const DATA: u64 = 0xffff_ffff_8200_1000;
    const TEXT: u64 = 0xffff_ffff_8100_2000;

    fn expect(image: &KernelImage) -> Expect<'_> {
        Expect { vcpu: 0xffff_8000_0012_3000, image: Some(image), channels: 2 }
    }

    #[test]
    fn the_image_leaves_out_what_is_not_in_the_kernel_map() {
        let i = image();
        assert!(i.contains(DATA, 10));
        assert!(i.contains(0xffff_ffff_827f_fff6, 10));
        assert!(!i.contains(0xffff_ffff_827f_fff7, 10), "runs past the data segment");
        assert!(!i.contains(0x100, 10), "the per-CPU segment's link address is not mapped");
        assert!(!i.contains(DATA, 0));
        assert!(!i.contains(u64::MAX - 4, 10));
        assert!(i.executable(TEXT) && i.executable(0xffff_ffff_8300_0000));
        assert!(!i.executable(DATA) && !i.executable(0x10));
    }

    #[test]
    fn decodes_every_call() {
        let i = image();
        let e = expect(&i);
        assert_eq!(decode(call::LOAD_IDT.into(), DATA, &e), Ok(Call::LoadIdt { desc: DATA }));
        assert_eq!(decode(call::REGISTER_VCPU.into(), e.vcpu, &e), Ok(Call::RegisterVcpu));
        assert_eq!(decode(call::SET_TIMER.into(), u64::MAX, &e), Ok(Call::SetTimer { deadline: u64::MAX }));
        for (nr, op) in
            [(call::IRQ_MASK, LineOp::Mask), (call::IRQ_UNMASK, LineOp::Unmask), (call::IRQ_EOI, LineOp::Eoi)]
        {
            assert_eq!(decode(nr.into(), 15, &e), Ok(Call::Line { op, line: 15 }));
            assert_eq!(decode(nr.into(), 23, &e), Ok(Call::Line { op, line: 23 }));
            assert_eq!(decode(nr.into(), 24, &e), Err(Refusal::BadLine));
            assert_eq!(decode(nr.into(), 1 << 32, &e), Err(Refusal::BadLine));
        }
        let bind = |arg: u64| decode(call::GSI_BIND.into(), arg, &e);
        let level_low = call::GSI_BIND_LEVEL | call::GSI_BIND_ACTIVE_LOW;
        assert_eq!(
            bind(17 | 0x41 << 8 | level_low),
            Ok(Call::GsiBind { gsi: 17, vector: 0x41, level: true, active_low: true })
        );
        assert_eq!(bind(23), Ok(Call::GsiBind { gsi: 23, vector: 0, level: false, active_low: false }));
        assert_eq!(bind(15 | 0x41 << 8), Err(Refusal::BadBind), "an ISA line");
        assert_eq!(bind(24 | 0x41 << 8), Err(Refusal::BadBind));
        assert_eq!(bind(17 | 0x41 << 8 | 1 << 18), Err(Refusal::BadBind), "an unknown bit");
        assert_eq!(bind(17 | 1 << 40), Err(Refusal::BadBind));
        for (arg, stop) in [
            (u64::from(call::SHUTDOWN_OFF), Stop::PoweredOff),
            (u64::from(call::SHUTDOWN_REBOOT), Stop::Reboot),
            (u64::from(call::SHUTDOWN_PANIC), Stop::Panic),
            (77, Stop::Panic),
            (1 << 32, Stop::Panic),
        ] {
            assert_eq!(decode(call::SHUTDOWN.into(), arg, &e), Ok(Call::Shutdown(stop)));
        }
    }

    #[test]
    fn refuses_what_is_not_a_call_or_points_elsewhere() {
        let i = image();
        let e = expect(&i);
        assert_eq!(decode(0, 0, &e), Err(Refusal::UnknownCall));
        assert_eq!(decode(call::REPLAY.into(), 0, &e), Err(Refusal::UnknownCall));
        assert_eq!(decode(99, 0, &e), Err(Refusal::UnknownCall));
        assert_eq!(decode(u64::from(call::LOAD_IDT) | 1 << 32, DATA, &e), Err(Refusal::UnknownCall));
        assert_eq!(decode(call::REGISTER_VCPU.into(), e.vcpu + 8, &e), Err(Refusal::WrongVcpu));
        // A desc_ptr on a stack, in user memory or straddling a segment's end.
        for p in [0xffff_c900_0000_1000, 0x7fff_0000_0000, 0xffff_ffff_827f_fffa, u64::MAX] {
            assert_eq!(decode(call::LOAD_IDT.into(), p, &e), Err(Refusal::DescOutsideImage), "{p:#x}");
        }
        let none = Expect { vcpu: 0, image: None, channels: 0 };
        assert_eq!(decode(call::LOAD_IDT.into(), DATA, &none), Err(Refusal::NoImage));
        assert_eq!(decode(call::CHANNEL_NOTIFY.into(), 1, &e), Ok(Call::ChannelNotify { index: 1 }));
        for bad in [2, u64::from(u32::MAX), 1 << 32 | 1] {
            assert_eq!(decode(call::CHANNEL_NOTIFY.into(), bad, &e), Err(Refusal::BadChannel), "{bad:#x}");
        }
        assert_eq!(decode(call::CHANNEL_NOTIFY.into(), 0, &none), Err(Refusal::BadChannel));
    }

    #[test]
    fn decodes_cpu_calls() {
        let i = image();
        let e = expect(&i);
        assert_eq!(decode(call::VCPU_OF.into(), 3, &e), Ok(Call::VcpuOf { apic_id: 3 }));
        assert_eq!(decode(call::VCPU_OF.into(), 255, &e), Ok(Call::VcpuOf { apic_id: 255 }));
        for bad in [256, u64::from(u32::MAX), 1 << 32] {
            assert_eq!(decode(call::VCPU_OF.into(), bad, &e), Err(Refusal::BadCpu), "{bad:#x}");
        }
        let start = |apic: u64, at: u64| decode(call::CPU_START.into(), at << 32 | apic, &e);
        assert_eq!(start(2, 0x9a000), Ok(Call::CpuStart { apic_id: 2, start: 0x9a000 }));
        assert_eq!(start(1, 0xf_ffff), Ok(Call::CpuStart { apic_id: 1, start: 0xf_ffff }));
        assert_eq!(start(256, 0x9a000), Err(Refusal::BadCpu));
        assert_eq!(start(0xffff_ffff, 0x9a000), Err(Refusal::BadCpu));
        for at in [0, 0x10_0000, 0xffff_ffff] {
            assert_eq!(start(1, at), Err(Refusal::BadStart), "{at:#x}");
        }
    }

    fn desc(limit: u16, base: u64) -> [u8; 10] {
        let mut d = [0u8; 10];
        d[..2].copy_from_slice(&limit.to_le_bytes());
        d[2..].copy_from_slice(&base.to_le_bytes());
        d
    }

    #[test]
    fn checks_the_idt() {
        let i = image();
        let ok = |limit, base| Ok(Idt { base, limit });
        assert_eq!(idt(desc(4095, DATA), &i), ok(4095, DATA));
        assert_eq!(idt(desc(4095, CEA_RO_IDT), &i), ok(4095, CEA_RO_IDT));
        assert_eq!(idt(desc(0, 0), &i), ok(0, 0));
        assert_eq!(idt(desc(15, DATA), &i), ok(15, DATA));
        assert_eq!(idt(desc(4096, DATA), &i), Err(Refusal::IdtTooLarge));
        assert_eq!(idt(desc(u16::MAX, CEA_RO_IDT), &i), Err(Refusal::IdtTooLarge));
        assert_eq!(idt(desc(4095, 0), &i), Err(Refusal::IdtOutsideImage));
        assert_eq!(idt(desc(4095, 0xffff_ffff_827f_f800), &i), Err(Refusal::IdtOutsideImage));
        assert_eq!(idt(desc(4095, CEA_RO_IDT + 16), &i), Err(Refusal::IdtOutsideImage));
        assert_eq!(idt(desc(4095, u64::MAX - 100), &i), Err(Refusal::IdtOutsideImage));
    }

    #[test]
    fn finds_gates_within_the_limit() {
        assert_eq!(gate_address(DATA, 4095, 255), Some(DATA + 255 * 16));
        assert_eq!(gate_address(DATA, 4094, 255), None);
        assert_eq!(gate_address(DATA, 15, 0), Some(DATA));
        assert_eq!(gate_address(DATA, 15, 1), None);
        assert_eq!(gate_address(0, 4095, 3), None);
        assert_eq!(gate_address(u64::MAX - 20, 4095, 2), None);
    }

    fn gate(target: u64, attr: u8) -> [u8; 16] {
        let mut g = [0u8; 16];
        g[..2].copy_from_slice(&(target as u16).to_le_bytes());
        g[2..4].copy_from_slice(&0x10u16.to_le_bytes());
        g[5] = attr;
        g[6..8].copy_from_slice(&((target >> 16) as u16).to_le_bytes());
        g[8..12].copy_from_slice(&((target >> 32) as u32).to_le_bytes());
        g
    }

    #[test]
    fn decodes_gates() {
        let i = image();
        assert_eq!(gate_target(gate(TEXT, 0x8e), Some(&i)), Some(TEXT));
        assert_eq!(gate_target(gate(TEXT, 0xef), Some(&i)), Some(TEXT), "DPL 3 trap gate");
        assert_eq!(gate_target(gate(TEXT, 0x0e), Some(&i)), None, "not present");
        assert_eq!(gate_target(gate(TEXT, 0x8c), Some(&i)), None, "call gate");
        assert_eq!(gate_target(gate(DATA, 0x8e), Some(&i)), None, "not executable");
        assert_eq!(gate_target(gate(0xffff_8000_0010_0000, 0x8e), Some(&i)), None);
        // Without an image (the in-kernel synthetic guest) only the form is checked.
        assert_eq!(gate_target(gate(0xffff_8000_0010_0000, 0x8e), None), Some(0xffff_8000_0010_0000));
        assert_eq!(gate_target(gate(0x0000_8000_0000_0000, 0x8e), None), None, "non-canonical");
        assert_eq!(gate_target(gate(0x00ff_8000_0000_0000, 0x8e), None), None, "non-canonical");
        assert_eq!(gate_target(gate(0xff00_0000_0000_0000, 0x8e), None), None, "57-bit only");
        assert_eq!(gate_target(gate(0x7fff_ffff_f000, 0x8e), None), Some(0x7fff_ffff_f000));
    }

    #[test]
    fn refusal_keys_are_distinct_and_indexed() {
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(Refusal::ALL[i + 1..].iter().all(|o| o.key() != r.key()));
        }
        assert!(Refusal::ALL.len() <= 32);
    }
}
