//! The seed corpus: realistic inputs for every target, in the target's encoding, made from the
//! `sample` builders of the modules under test (a synthetic vmlinux, GRUB's and QEMU's boot
//! information, QEMU's memory map, Linux's calls as the patch series makes them) plus the inputs
//! of the findings the fuzzing has made, as regressions. Each is a few KB at most.

use alloc::string::String;
use alloc::vec::Vec;

use super::Writer;
use crate::bootinfo::sample::{self as bi, Mb2};
use crate::guest::calls::{CEA_RO_IDT, KERNEL_MAP_START};
use crate::guest::elf::sample::{image, load_ph, note};
use crate::guest::elf::{PF_R, PF_W, PF_X, PT_NOTE, Phdr};
use crate::guest::modules::sample::{DIR, REG, cpio};
use crate::mm::memmap::RegionKind;

/// One seed: its target, a file name, the bytes.
pub struct Seed {
    /// The target it is for.
    pub target: &'static str,
    /// Its file name under `fuzz/corpus/<target>/`.
    pub name: &'static str,
    /// The input.
    pub bytes: Vec<u8>,
}

/// Every target's seeds.
pub fn seeds() -> Vec<Seed> {
    let mut v = Vec::new();
    let mut add = |target, name, bytes| v.push(Seed { target, name, bytes });
    add("elf", "vmlinux-like", vmlinux_like());
    add("elf", "bss-past-end-of-file", hex(BSS_PAST_END));
    add("modules", "bundle", [&[0u8][..], &bundle()].concat());
    add("modules", "grub-modules", grub_modules(false));
    add("modules", "two-kernels", grub_modules(true));
    add("bootparams", "qemu-512m", bootparams_qemu(false));
    add("bootparams", "over-the-limits", bootparams_qemu(true));
    add("multiboot2", "grub-bios", mb2_bios());
    add("multiboot2", "grub-uefi", mb2_uefi());
    add("multiboot2", "fragmented-map", mb2_fragmented());
    add("pvh", "qemu", trimmed(bi::pvh().build()));
    add("pvh", "qemu-bundle-only", pvh_bundle_only());
    add("pvh", "cmdline-at-the-top", pvh_cmdline_at_the_top());
    add("memmap", "qemu-e820-pages", memmap_qemu_pages());
    add("memmap", "uefi-wide", memmap_uefi_wide());
    add("memmap", "full-map-then-repeats", memmap_full_then_repeats());
    add(
        "cmdline",
        "qemu",
        b"console=ttyS0 hauki.debug_exit=1 hauki.linux=guest hauki.report_ms=250 hauki.pool_mib=64".to_vec(),
    );
    add("cmdline", "grub", b"hauki.apic=xapic hauki.timer=lapic  hauki.inject=pf\tquiet hauki.app=off".to_vec());
    add("cmdline", "pool-overflow", b"hauki.pool_mib=17592186044416 k=YES k hauki.pool_mib=0 a=b=c".to_vec());
    for (name, call) in LINUX_CALLS {
        add("linux_calls", name, linux_call(call));
    }
    add("channel_ring", "messages-honest", ring_steps(false, &[0, 0, 2, 0, 0, 3, 1, 1, 0, 1]));
    add("channel_ring", "stream-honest", ring_steps(true, &[0, 2, 0, 3, 1, 1, 0]));
    add("channel_ring", "messages-scribbled", ring_steps(false, &[0, 4, 0, 1, 3, 4, 1, 0, 2, 1]));
    add(
        "acpi_view",
        "qemu-xsdt-2-cpus-keep-0",
        acpi_tables(true, 0b10, crate::guest::acpi_view::sample::madt(2, false)),
    );
    add("acpi_view", "qemu-rsdt-4-cpus", acpi_tables(false, 0, crate::guest::acpi_view::sample::madt(4, false)));
    let mut mailbox = crate::guest::acpi_view::sample::madt(3, true);
    mailbox.extend_from_slice(&[0x10, 16, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0]);
    let len = mailbox.len() as u32;
    mailbox[4..8].copy_from_slice(&len.to_le_bytes());
    add("acpi_view", "x2apic-with-a-mailbox", acpi_tables(true, 0b100, mailbox));
    v
}

/// One `acpi_view` input: the flags byte (XSDT or RSDT, the APIC IDs kept), a root table whose
/// first entry is the MADT (then a FADT-like and an HPET-like address), the MADT.
fn acpi_tables(xsdt: bool, keep_mask: u8, madt: Vec<u8>) -> Vec<u8> {
    let root = crate::guest::acpi_view::sample::root(&[0x7ffe_1000, 0x7ffe_0000, 0x7ffe_2000], xsdt);
    let mut w = Writer::default();
    w.u8(u8::from(xsdt) | keep_mask).u16(root.len() as u16).bytes(&root).bytes(&madt);
    w.out
}

/// One `channel_ring` input: a ring of 16 slots of 48-byte records (or 16 bytes), then `ops` in
/// its step encoding, each with plausible arguments (a 12-byte record, an in-range index).
fn ring_steps(stream: bool, ops: &[u8]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(u8::from(stream)).u8(3).u8(47);
    for (i, &op) in ops.iter().enumerate() {
        w.u8(op);
        match op {
            0 => {
                w.u8(12).bytes(b"{\"seq\":1234}");
            }
            1 => {
                w.u8(12);
            }
            2 => {
                w.u32(2 * (i as u32 % 3));
            }
            3 => {
                w.u32(2 * (i as u32 % 3)).u32(0).u32(12);
            }
            4 => {
                w.u8(i as u8).u32(0x40).u32(0xffff_0000);
            }
            _ => {}
        }
    }
    w.out
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

/// Without its trailing zeros (the fake memory the targets use has 512 more after the input).
fn trimmed(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

// ELF ------------------------------------------------------------------------------------------

/// Found by an outside fuzzing run: a bss-only `PT_LOAD` at an offset past the end of the file
/// (parse accepted it, load refused it).
const BSS_PAST_END: &str = "7f454c4602010100000000000000000002003e0001000000000000010000000040000000000000000000000000000000000000004000380001004000000000000100000006000000001000000000000000000000000000000000000100000000000000000000000000100000000000000000000000000000";

/// A vmlinux in miniature: text, data, the zero-based per-CPU segment, init + bss, the PVH entry
/// and build-id notes, GNU_STACK; 512-byte alignment instead of 2 MiB to stay small.
fn vmlinux_like() -> Vec<u8> {
    let seg = |offset, paddr, filesz, memsz, flags, vaddr| Phdr {
        flags,
        vaddr,
        align: 0x200,
        ..load_ph(offset, paddr, filesz, memsz)
    };
    let kmap = |pa: u64| KERNEL_MAP_START + pa;
    let mut notes = note(b"Xen\0", 18, &0x100_0040u32.to_le_bytes());
    notes.extend(note(b"GNU\0", 3, &[0x5a; 20]));
    let phs = [
        seg(0x1000, 0x100_0000, 0x400, 0x400, PF_R | PF_X, kmap(0x100_0000)),
        seg(0x1400, 0x140_0000, 0x200, 0x200, PF_R | PF_W, kmap(0x140_0000)),
        seg(0x1600, 0x160_0000, 0x200, 0x200, PF_R | PF_W, 0),
        seg(0x1800, 0x180_0000, 0x200, 0x1_0000, PF_R | PF_W | PF_X, kmap(0x180_0000)),
        Phdr {
            p_type: PT_NOTE,
            flags: PF_R,
            offset: 0x1a00,
            vaddr: 0,
            paddr: 0,
            filesz: notes.len() as u64,
            memsz: 0,
            align: 4,
        },
        Phdr { p_type: 0x6474_e551, flags: PF_R | PF_W, offset: 0, vaddr: 0, paddr: 0, filesz: 0, memsz: 0, align: 16 },
    ];
    let mut img = image(0x100_0040, &phs, 0xa00 + notes.len());
    img[0x1a00..0x1a00 + notes.len()].copy_from_slice(&notes);
    img
}

// Boot modules -----------------------------------------------------------------------------

const KERNEL: &[u8] = b"\x7fELF\x02\x01\x01\x00vmlinux-6.12.117-hauki";
const INITRAMFS: &[u8] = &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0x03, 0];

/// What `cargo xtask` bundles for QEMU's single `-initrd` module.
fn bundle() -> Vec<u8> {
    cpio(
        &[
            (".", DIR, &[]),
            ("vmlinux", REG, KERNEL),
            ("initramfs.cpio.gz", REG, INITRAMFS),
            ("cmdline", REG, b"console=ttyS0 panic=-1 hauki.linux=guest\n"),
        ],
        true,
    )
}

/// GRUB's `module2` lines in `separate_modules`' encoding (mode byte 1, count, then command line
/// and contents of each); `twice` repeats the kernel.
fn grub_modules(twice: bool) -> Vec<u8> {
    let mut mods: Vec<(&str, &[u8])> = alloc::vec![
        ("/boot/vmlinux-6.12.117-hauki", KERNEL),
        ("/boot/initramfs.cpio.gz", INITRAMFS),
        ("/boot/hauki.cmdline cmdline", b"console=ttyS0 panic=-1"),
    ];
    if twice {
        mods.push(("/boot/vmlinux.old linux", KERNEL));
    }
    let mut w = Writer::default();
    w.u8(1).u8(mods.len() as u8);
    for (cmdline, data) in mods {
        w.u8(cmdline.len() as u8).bytes(cmdline.as_bytes()).u16(data.len() as u16).bytes(data);
    }
    w.out
}

// boot_params --------------------------------------------------------------------------------

/// SeaBIOS's e820 map of a 512 MiB QEMU machine.
const QEMU_E820: [(u64, u64, RegionKind); 6] = [
    (0, 0x9_fc00, RegionKind::Usable),
    (0x9_fc00, 0x400, RegionKind::Reserved),
    (0xf_0000, 0x1_0000, RegionKind::Reserved),
    (0x10_0000, 0x1fee_0000, RegionKind::Usable),
    (0x1ffe_0000, 0x2_0000, RegionKind::Reserved),
    (0xfffc_0000, 0x4_0000, RegionKind::Reserved),
];

/// `bootparams`' encoding: the QEMU map with the co-kernel's image, pool and boot information
/// withheld, and Linux's boot facts as the loader gives them; `over` passes 129 raw e820 entries
/// and a 2048-byte command line instead (the limits).
fn bootparams_qemu(over: bool) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(QEMU_E820.len() as u8);
    for (start, len, kind) in QEMU_E820 {
        w.u64(start).u64(len).u8(kind as u8);
    }
    w.u8(1).u8(3);
    for (start, end) in [(0x10_0000, 0x40_0000), (0x1c00_0000, 0x2000_0000), (0x9000, 0xa000)] {
        w.u64(start).u64(end);
    }
    if over {
        w.u8(129);
        for i in 0..129u64 {
            w.u64(i << 20).u64(0x8_0000).u32(1);
        }
        w.u8(1);
    } else {
        w.u8(0).u8(0);
    }
    let cmdline = "console=ttyS0 panic=-1 hauki.linux=guest";
    w.u64(0x1f00_0000).u32(cmdline.len() as u32);
    w.u8(1).u64(0x200_0000).u64(0x40_0000);
    w.u8(1).u64(0xf_5a10);
    w.u32(5).u64(0x1f00_1000);
    let text: String = if over { "x".repeat(2048) } else { cmdline.into() };
    w.u16(text.len() as u16).bytes(text.as_bytes());
    w.out
}

// Boot information -----------------------------------------------------------------------------

/// What GRUB passes on a BIOS machine.
fn mb2_bios() -> Vec<u8> {
    bi::basic_mmap()
        .string(2, b"GRUB 2.06-13+deb12u1")
        .string(1, b"hauki.debug_exit=1 hauki.linux=guest")
        .module(0x20_0000, 0x5e_0000, "/boot/vmlinux linux")
        .module(0x5e_0000, 0x60_0000, "/boot/initramfs.cpio.gz")
        .rsdp(true)
        .framebuffer(2)
        .build()
}

/// What GRUB passes on a UEFI machine: EFI system table and memory map tags, an RGB framebuffer,
/// the old ACPI tag.
fn mb2_uefi() -> Vec<u8> {
    bi::basic_mmap()
        .string(2, b"GRUB 2.06")
        .string(1, b"")
        .tag(12, &0x7fe8_e018u64.to_le_bytes())
        .tag(17, &[48, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0])
        .rsdp(false)
        .framebuffer(1)
        .build()
}

/// A memory map of 200 entries, mostly touching (firmware that splits its map finely).
fn mb2_fragmented() -> Vec<u8> {
    let mut areas: Vec<(u64, u64, u32)> =
        (0..190).map(|i| (0x10_0000 + i * 0x1000, 0x1000, 1 + (i % 17 == 0) as u32)).collect();
    areas.extend((0..10).map(|i| (0xfee0_0000 + i * 0x1_0000, 0x1000, 2)));
    Mb2::default().mmap(&areas).build()
}

/// QEMU's PVH start info with one bundle module and no RSDP.
fn pvh_bundle_only() -> Vec<u8> {
    let mut p = bi::pvh();
    p.modules.truncate(1);
    p.modules[0].2 = None;
    p.rsdp = 0;
    trimmed(p.build())
}

/// Found by an outside fuzzing run: a command line in the last byte of the address space
/// (`cmdline_paddr + len` overflowed).
fn pvh_cmdline_at_the_top() -> Vec<u8> {
    let mut b = trimmed(bi::pvh().build());
    b[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
    b
}

// Memory map ---------------------------------------------------------------------------------

/// The QEMU map in pages (mode byte 0), with the holes punched by ACPI and a few overlaps.
fn memmap_qemu_pages() -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(0);
    let pages: [(u16, u8, RegionKind); 8] = [
        (0, 0x9f, RegionKind::Usable),
        (0x9f, 1, RegionKind::Reserved),
        (0xf0, 0x10, RegionKind::Reserved),
        (0x100, 0xff, RegionKind::Usable),
        (0x1ff, 0xff, RegionKind::Usable),
        (0x2f0, 0x20, RegionKind::AcpiReclaimable),
        (0x300, 0x8, RegionKind::AcpiNvs),
        (0x302, 0x1, RegionKind::Defective),
    ];
    for (page, n, kind) in pages {
        w.u16(page).u8(n).u8(kind as u8);
    }
    w.out
}

/// A UEFI-like map with full addresses (mode byte 1): boot-services pieces, runtime regions,
/// ACPI and MMIO above 4 GiB.
fn memmap_uefi_wide() -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(1);
    let map: [(u64, u64, RegionKind); 10] = [
        (0, 0xa_0000, RegionKind::Usable),
        (0x10_0000, 0x70_0000, RegionKind::Usable),
        (0x80_0000, 0x8000, RegionKind::AcpiNvs),
        (0x80_8000, 0x7f7f_8000, RegionKind::Usable),
        (0x7f78_0000, 0x8_0000, RegionKind::Reserved),
        (0x7fb0_0000, 0x10_0000, RegionKind::AcpiReclaimable),
        (0x7fc0_0000, 0x40_0000, RegionKind::AcpiNvs),
        (0xffc0_0000, 0x40_0000, RegionKind::Reserved),
        (0x1_0000_0000, 0x1_8000_0000, RegionKind::Usable),
        (0xfd_0000_0000, 0x3_0000_0000, RegionKind::Reserved),
    ];
    for (start, len, kind) in map {
        w.u64(start).u64(len).u8(kind as u8);
    }
    w.out
}

/// The shape of the quadratic finding, small: 127 distinct regions, then one entry again and
/// again (before, every entry past the full map re-normalized it).
fn memmap_full_then_repeats() -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(0);
    for i in 0..127u16 {
        w.u16(i * 2).u8(1).u8(0);
    }
    for _ in 0..200 {
        w.u16(0).u8(1).u8(0);
    }
    w.out
}

// Linux's calls ------------------------------------------------------------------------------

/// One `linux_calls` input: Linux's image as the loader sees it, the call, what a `desc_ptr`
/// holds, one gate.
struct LinuxCall {
    nr: u8,
    /// Offset from the text segment's start, or a full address.
    arg: Result<u32, u64>,
    have_image: bool,
    idt_base: u64,
    idt_limit: u16,
    vector: u8,
    gate_target: u64,
    gate_attr: u8,
}

const VCPU: u64 = 0xffff_8000_0013_2000;
const TEXT: u64 = KERNEL_MAP_START + 0x100_0000;
const IDT_TABLE: u64 = KERNEL_MAP_START + 0x300_1000;
const TYPICAL: LinuxCall = LinuxCall {
    nr: 1,
    arg: Ok(0x100_1000),
    have_image: true,
    idt_base: IDT_TABLE,
    idt_limit: 4095,
    vector: 14,
    gate_target: TEXT + 0xa0_0000,
    gate_attr: 0x8e,
};

/// Linux's calls as the patch series makes them: its first IDT (in .bss, the `desc_ptr` in
/// .data), the read-only alias, idt_invalidate, the other calls, and a `desc_ptr` on a stack.
const LINUX_CALLS: [(&str, LinuxCall); 10] = [
    ("load-idt-early", TYPICAL),
    ("load-idt-cea", LinuxCall { idt_base: CEA_RO_IDT, vector: 3, gate_attr: 0xee, ..TYPICAL }),
    ("idt-invalidate", LinuxCall { idt_base: 0, idt_limit: 0, ..TYPICAL }),
    ("register-vcpu", LinuxCall { nr: 8, arg: Err(VCPU), ..TYPICAL }),
    ("set-timer", LinuxCall { nr: 2, arg: Err(0x1234_5678_9abc), ..TYPICAL }),
    ("irq-eoi", LinuxCall { nr: 5, arg: Err(4), vector: 0x34, ..TYPICAL }),
    ("shutdown-panic", LinuxCall { nr: 7, arg: Err(2), have_image: false, ..TYPICAL }),
    ("desc-on-a-stack", LinuxCall { arg: Err(0xffff_c900_0001_3e58), ..TYPICAL }),
    ("vcpu-of", LinuxCall { nr: 11, arg: Err(1), ..TYPICAL }),
    ("cpu-start", LinuxCall { nr: 12, arg: Err(0x9_a000 << 32 | 1), ..TYPICAL }),
];

/// In `linux_calls`' encoding.
fn linux_call(c: LinuxCall) -> Vec<u8> {
    let mut w = Writer::default();
    // text, data, the zero-based per-CPU segment, init + bss (vaddr = kernel map + offset << 8)
    w.u8(4);
    w.u8(0).u32(0x1_0000).u32(0x100_0000).u8((PF_R | PF_X) as u8);
    w.u8(0).u32(0x2_0000).u32(0x80_0000).u8((PF_R | PF_W) as u8);
    w.u8(1).u32(0).u32(0x3_0000).u8((PF_R | PF_W) as u8);
    w.u8(0).u32(0x3_0000).u32(0x40_0000).u8((PF_R | PF_W | PF_X) as u8);
    w.u8(if c.have_image { 0 } else { 1 }).u64(VCPU);
    w.u8(0).u8(c.nr);
    match c.arg {
        Ok(offset) => w.u8(0).u32(offset),
        Err(full) => w.u8(2).u64(full),
    };
    w.u16(c.idt_limit).u64(c.idt_base).u8(c.vector);
    let t = c.gate_target;
    w.u16(t as u16).u16(0x10).u8(0).u8(c.gate_attr).u16((t >> 16) as u16).u32((t >> 32) as u32).u32(0);
    w.out
}
