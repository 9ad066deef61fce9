//! The checking functions; see the module documentation of [`crate::fuzz`] and docs/fuzzing.md.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::convert::Infallible;
use core::ops::Range;

use super::{Reader, within};
use crate::bootinfo::{self, BootInfo, BootInfoError, MULTIBOOT2_MAGIC, Protocol};
use crate::cmdline as cl;
use crate::guest::bootparams::{self as bp, BootParamsError, E820_MAX, E820Entry, E820Type, LinuxBoot};
use crate::guest::calls::{self, Call, Expect, KernelImage, Refusal};
use crate::guest::elf::{self, ElfError, LoadError, MAX_SEGMENTS, Segment, Vmlinux};
use crate::guest::modules::{self, ModuleError, Role};
use crate::mm::memmap::{Collector, MAX_REGIONS, MemMapError, MemoryMap, Region, RegionKind};

// ---------------------------------------------------------------------------------------------
// ELF loader

/// `elf::parse`, `find_note` and `load` on an arbitrary image. An accepted plan keeps every
/// invariant `parse` documents, and `load` copies exactly its segments' file bytes and zeroes
/// exactly their tails, in order, without error into memory that covers the plan; a truncated
/// image or a refusing callback is an error, never a panic.
pub fn elf(image: &[u8]) {
    for (name, ty) in [(&b"Xen"[..], 18), (&b"GNU"[..], 3)] {
        if let Some(desc) = elf::find_note(image, name, ty) {
            assert!(within(image, desc), "a note's descriptor lies outside the image");
        }
    }
    let Ok(v) = elf::parse(image) else { return };
    check_vmlinux(image, &v);

    // Load into memory that covers the plan: exactly the segments' file bytes are copied and
    // exactly their tails zeroed, in order, and the memory then holds the file's bytes.
    let loaded = elf::sample::load_recorded(image, &v);
    assert_eq!(loaded.result, Ok(()), "an accepted plan must load");
    let mut expected = Vec::new();
    for s in &v.segments {
        if s.filesz > 0 {
            expected.push(('w', s.paddr, s.filesz));
        }
        if s.memsz > s.filesz {
            expected.push(('z', s.paddr + s.filesz, s.memsz - s.filesz));
        }
    }
    assert_eq!(loaded.calls, expected, "load did not copy exactly the plan's segments");
    if let Some(mem) = loaded.memory {
        for s in &v.segments {
            let o = (s.paddr - v.phys_start) as usize;
            let file = &image[s.file_offset as usize..(s.file_offset + s.filesz) as usize];
            assert_eq!(&mem[o..o + s.filesz as usize], file);
            assert!(mem[o + s.filesz as usize..o + s.memsz as usize].iter().all(|&b| b == 0));
        }
    }

    // A plan applied to a truncated image, or memory that refuses, is an error, not a panic.
    let mut ok_w = |_: u64, _: &[u8]| Ok::<(), Infallible>(());
    let mut ok_z = |_: u64, _: u64| Ok(());
    let half = &image[..image.len() / 2];
    match elf::load(half, &v, &mut ok_w, &mut ok_z) {
        Ok(()) | Err(LoadError::Elf(ElfError::SegmentOutOfFile { .. })) => {}
        Err(e) => panic!("load of a truncated image: {e:?}"),
    }
    let mut no_w = |_: u64, _: &[u8]| Err(Full);
    let mut no_z = |_: u64, _: u64| Err(Full);
    if let Err(e) = elf::load(image, &v, &mut no_w, &mut no_z) {
        let _ = alloc::format!("{e}");
    }
}

/// The refusal of memory that takes nothing, for `elf::load`'s callbacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Full;

impl core::fmt::Display for Full {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the memory is full")
    }
}

/// `[at, at + len)` inside `r` (checked).
fn inside(r: &Range<u64>, at: u64, len: u64) -> bool {
    at.checked_add(len).is_some_and(|end| r.start <= at && end <= r.end)
}

/// The invariants `elf::parse` documents for a `Vmlinux`.
fn check_vmlinux(image: &[u8], v: &Vmlinux) {
    assert!(!v.segments.is_empty() && v.segments.len() <= MAX_SEGMENTS);
    for s in &v.segments {
        assert!(s.memsz > 0 && s.filesz <= s.memsz, "{s:?}");
        let end = s.file_offset.checked_add(s.filesz);
        assert!(end.is_some_and(|e| e <= image.len() as u64), "file bytes outside the image: {s:?}");
        assert!(s.paddr.checked_add(s.memsz).is_some() && s.vaddr.checked_add(s.memsz).is_some());
    }
    for (i, a) in v.segments.iter().enumerate() {
        for b in &v.segments[i + 1..] {
            assert!(a.phys_end() <= b.paddr || b.phys_end() <= a.paddr, "overlap {a:?} {b:?}");
        }
    }
    let min = v.segments.iter().map(|s| s.paddr).min();
    let max = v.segments.iter().map(Segment::phys_end).max();
    assert_eq!((Some(v.phys_start), Some(v.phys_end)), (min, max));
    let e = v.entry_phys;
    assert!(v.segments.iter().any(|s| s.paddr <= e && e < s.phys_end()), "entry outside");
}

// ---------------------------------------------------------------------------------------------
// Boot modules

/// The first byte picks the interpretation of the rest. Even: a bundle module, walked with
/// `cpio_entries` (entries borrow from the archive, names are non-empty and NUL-free, one error
/// at most and it ends the walk, the walk ends) and picked apart with `select_bundle` (the
/// `vmlinux` it returns is the one regular file of that name). Odd: a list of up to eight
/// modules (command line, contents) for `select`, whose every answer must agree with `classify`.
pub fn modules(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 1 == 0 {
        bundle(rest);
    } else {
        separate_modules(rest);
    }
}

fn bundle(archive: &[u8]) {
    let mut entries = modules::cpio_entries(archive);
    let mut regular = Vec::new();
    let mut failed = false;
    let mut count = 0usize;
    while let Some(e) = entries.next_entry() {
        assert!(!failed, "the walk went on after an error");
        count += 1;
        assert!(count <= archive.len() / modules::CPIO_HEADER_SIZE + 1, "the walk does not end");
        match e {
            Ok(e) => {
                assert!(within(archive, e.name.as_bytes()) && within(archive, e.data));
                assert!(!e.name.is_empty() && !e.name.contains('\0'));
                assert_ne!(e.name, modules::CPIO_TRAILER);
                if e.is_regular_file() {
                    regular.push(e);
                }
            }
            Err(_) => failed = true,
        }
    }
    assert!(entries.next_entry().is_none());
    match modules::select_bundle(archive) {
        Ok(b) => {
            assert!(!failed, "a bundle with a malformed entry was accepted");
            let named = |want: &str| {
                regular
                    .iter()
                    .filter(|e| e.name.trim_start_matches("./").trim_start_matches('/') == want)
                    .collect::<Vec<_>>()
            };
            let linux = named("vmlinux");
            assert_eq!(linux.len(), 1);
            assert_eq!(linux[0].data.as_ptr_range(), b.linux.as_ptr_range());
            if let Some(i) = b.initramfs {
                assert!(within(archive, i));
            }
            if let Some(c) = b.cmdline {
                assert!(within(archive, c.as_bytes()));
                assert!(!c.ends_with(|ch: char| ch.is_whitespace() || ch == '\0'));
            }
        }
        Err(ModuleError::Cpio(_)) => assert!(failed),
        Err(ModuleError::BundleWithoutLinux | ModuleError::CmdlineNotUtf8) => {}
        Err(ModuleError::DuplicateRole { first, second, .. }) => assert!(first < second),
    }
}

fn separate_modules(data: &[u8]) {
    let mut r = Reader::new(data);
    let n = r.u8() % 9;
    let mut owned: Vec<(String, &[u8])> = Vec::new();
    for _ in 0..n {
        let len = usize::from(r.u8() % 64);
        let cmdline = String::from_utf8_lossy(r.bytes(len)).into_owned();
        let len = usize::from(r.u16() % 512);
        owned.push((cmdline, r.bytes(len)));
    }
    let mods: Vec<(&str, &[u8])> = owned.iter().map(|(c, d)| (c.as_str(), *d)).collect();
    let role_of = |i: usize| modules::classify(mods[i].0, mods[i].1);
    match modules::select(&mods) {
        Ok(sel) => {
            for (slot, role) in
                [(sel.linux, Role::Linux), (sel.initramfs, Role::Initramfs), (sel.cmdline, Role::Cmdline)]
            {
                let claimants: Vec<usize> = (0..mods.len()).filter(|&i| role_of(i) == Some(role)).collect();
                assert!(claimants.len() <= 1, "two modules for {role} were accepted");
                assert_eq!(slot, claimants.first().copied(), "{role}");
            }
        }
        Err(ModuleError::DuplicateRole { role, first, second, .. }) => {
            assert!(first < second && second < mods.len());
            assert_eq!((role_of(first), role_of(second)), (Some(role), Some(role)));
        }
        Err(e) => panic!("select fails only with DuplicateRole, not {e:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// boot_params and e820

/// A memory map (up to 40 entries, normalized or not), withheld ranges and Linux's boot facts.
/// `e820_from`'s map is sorted, disjoint, merged, of at most 128 entries, and gives every byte
/// the type a per-byte oracle gives it (the most restrictive region; withheld RAM and ACPI
/// reserved; holes stay holes). `build` writes every field it promises and nothing else, or
/// refuses and leaves the page zeroed. `linux_cmdline` and `build` agree on the command line.
pub fn bootparams(data: &[u8]) {
    let mut r = Reader::new(data);
    let mut map = MemoryMap::new();
    for _ in 0..r.u8() % 41 {
        let (start, len, kind) = (r.u64(), r.u64(), kind(r.u8()));
        let _ = map.add(start, len, kind);
    }
    if r.u8() & 1 == 1 {
        map.normalize();
    }
    let withhold: Vec<Range<u64>> = (0..r.u8() % 8).map(|_| r.u64()..r.u64()).collect();
    let mut out = heapless::Vec::new();
    match bp::e820_from(&map, &withhold, &mut out) {
        Ok(()) => check_e820(&out, map.regions(), &withhold),
        Err(BootParamsError::TooManyE820Entries(n)) => assert!(n > E820_MAX && out.len() == E820_MAX),
        Err(e) => panic!("e820_from: {e:?}"),
    }

    // The zero page, for the e820 map just made or for entries straight from the input.
    let raw: Vec<E820Entry> =
        (0..r.u8() % 140).map(|_| E820Entry { addr: r.u64(), size: r.u64(), kind: r.u32() }).collect();
    let e820: &[E820Entry] = if r.u8() & 1 == 0 { &out } else { &raw };
    let opt = |r: &mut Reader<'_>| (r.u8() & 1 == 1).then(|| r.u64());
    let lb = LinuxBoot {
        cmdline_phys: r.u64(),
        cmdline_len: r.u32() % 4096,
        initrd: opt(&mut r).map(|a| (a, r.u64())),
        rsdp: opt(&mut r),
        hardware_subarch: r.u32(),
        subarch_data: r.u64(),
        e820,
    };
    let mut page = [0xffu8; bp::BOOT_PARAMS_SIZE];
    match bp::build(&mut page, &lb) {
        Ok(()) => check_zero_page(&page, &lb),
        Err(e) => {
            assert!(page.iter().all(|&b| b == 0), "a refused page is not zeroed");
            let ok = match e {
                BootParamsError::TooManyE820Entries(n) => n == e820.len() && n > E820_MAX,
                BootParamsError::CmdlineTooLong(n) => n == lb.cmdline_len && !bp::cmdline_fits(n as usize),
                BootParamsError::CmdlineOutOfRange(p) => p.checked_add(u64::from(lb.cmdline_len)).is_none(),
                BootParamsError::InitrdOutOfRange { phys, size } => phys.checked_add(size).is_none(),
                BootParamsError::E820EntryOutOfRange(i) => e820[i].addr.checked_add(e820[i].size).is_none(),
            };
            assert!(ok, "build refused for a reason that does not hold: {e:?}");
        }
    }

    // The loader's check and build's agree on the command line.
    let len = usize::from(r.u16() % 4096);
    let text = String::from_utf8_lossy(r.bytes(len)).into_owned();
    let kept = bp::linux_cmdline(&text);
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    let at = LinuxBoot { cmdline_phys: 0x1000, cmdline_len: len, initrd: None, e820: &[], ..lb };
    assert_eq!(kept.is_ok(), bp::build(&mut page, &at).is_ok(), "linux_cmdline and build disagree on {len} bytes");
    if let Ok(c) = kept {
        assert_eq!(c.as_str(), text);
    }
}

fn kind(b: u8) -> RegionKind {
    RegionKind::ALL[usize::from(b) % RegionKind::ALL.len()]
}

/// The most restrictive kind covering byte `a`, as the raw entries say.
fn oracle(regions: &[Region], a: u64) -> Option<RegionKind> {
    regions.iter().filter(|r| r.start <= a && a < r.end).map(|r| r.kind).max()
}

/// Points worth asking the oracle about: the boundaries of (the first 64 of) `regions` and the
/// bytes either side of them, and `extra`.
fn sample_points(regions: &[Region], extra: &[u64]) -> Vec<u64> {
    let mut p: Vec<u64> = regions
        .iter()
        .take(64)
        .flat_map(|r| [r.start, r.end, r.end.wrapping_sub(1), r.start.wrapping_sub(1)])
        .chain(extra.iter().copied())
        .collect();
    p.sort_unstable();
    p.dedup();
    p
}

fn check_e820(out: &[E820Entry], regions: &[Region], withhold: &[Range<u64>]) {
    for w in out.windows(2) {
        let end = w[0].addr + w[0].size;
        assert!(end <= w[1].addr, "not sorted and disjoint: {w:?}");
        assert!(!(end == w[1].addr && w[0].kind == w[1].kind), "not merged: {w:?}");
    }
    assert!(out.iter().all(|e| e.size > 0 && e.addr.checked_add(e.size).is_some()));
    let extra: Vec<u64> = withhold
        .iter()
        .flat_map(|w| [w.start, w.end, w.end.wrapping_sub(1)])
        .chain(out.iter().flat_map(|e| [e.addr, e.addr + e.size - 1, e.addr + e.size]))
        .collect();
    for a in sample_points(regions, &extra) {
        let withheld = withhold.iter().any(|w| w.start <= a && a < w.end);
        let want = oracle(regions, a).map(|k| {
            (match k {
                RegionKind::Usable if withheld => E820Type::Reserved,
                RegionKind::AcpiReclaimable if withheld => E820Type::Reserved,
                RegionKind::Usable => E820Type::Ram,
                RegionKind::AcpiReclaimable => E820Type::Acpi,
                RegionKind::AcpiNvs => E820Type::Nvs,
                RegionKind::Reserved => E820Type::Reserved,
                RegionKind::Defective => E820Type::Unusable,
            }) as u32
        });
        let got = out.iter().find(|e| e.addr <= a && a - e.addr < e.size).map(|e| e.kind);
        assert_eq!(got, want, "e820 type of byte {a:#x}");
    }
}

fn check_zero_page(page: &[u8; bp::BOOT_PARAMS_SIZE], lb: &LinuxBoot<'_>) {
    let rd = |off: usize, n: usize| page[off..off + n].iter().rev().fold(0u64, |a, &b| a << 8 | u64::from(b));
    let split = |lo: usize, hi: usize| rd(lo, 4) | rd(hi, 4) << 32;
    assert_eq!(rd(bp::BOOT_FLAG, 2), u64::from(bp::BOOT_FLAG_MAGIC));
    assert_eq!(&page[bp::HEADER..bp::HEADER + 4], &bp::HEADER_MAGIC);
    assert_eq!(rd(bp::SENTINEL, 1), 0);
    assert_eq!(rd(bp::SETUP_DATA, 8), 0);
    assert_eq!(split(bp::CMD_LINE_PTR, bp::EXT_CMD_LINE_PTR), lb.cmdline_phys);
    let (initrd, size) = lb.initrd.unwrap_or((0, 0));
    assert_eq!(split(bp::RAMDISK_IMAGE, bp::EXT_RAMDISK_IMAGE), initrd);
    assert_eq!(split(bp::RAMDISK_SIZE, bp::EXT_RAMDISK_SIZE), size);
    assert_eq!(rd(bp::ACPI_RSDP_ADDR, 8), lb.rsdp.unwrap_or(0));
    assert_eq!(rd(bp::HARDWARE_SUBARCH, 4), u64::from(lb.hardware_subarch));
    assert_eq!(rd(bp::HARDWARE_SUBARCH_DATA, 8), lb.subarch_data);
    assert_eq!(rd(bp::E820_ENTRIES, 1), lb.e820.len() as u64);
    for (i, e) in lb.e820.iter().enumerate() {
        let at = bp::E820_TABLE + i * bp::E820_ENTRY_SIZE;
        assert_eq!((rd(at, 8), rd(at + 8, 8), rd(at + 16, 4)), (e.addr, e.size, u64::from(e.kind)));
    }
    let table_end = bp::E820_TABLE + lb.e820.len() * bp::E820_ENTRY_SIZE;
    assert!(page[table_end..].iter().all(|&b| b == 0), "bytes written past the e820 table");
}

// ---------------------------------------------------------------------------------------------
// Boot information

/// The input as a Multiboot2 information structure in a fake physical memory (nothing else is
/// mapped), once as it is and once with its `total_size` set to its length. Anything accepted is
/// a consistent [`BootInfo`] whose structure lies inside what was mapped.
pub fn multiboot2(data: &[u8]) {
    let mut fixed = data.to_vec();
    if let Some(total) = fixed.get_mut(..4) {
        total.copy_from_slice(&((data.len() as u32) & !7).to_le_bytes());
    }
    for bytes in [data, &fixed[..]] {
        let mem = bootinfo::sample::Fake::new(bytes);
        let mapped = mem.mapped();
        // SAFETY: the fake memory's translation hands out pointers into its own buffer only,
        // which lives and stays unchanged for the call.
        let r = unsafe { bootinfo::parse_multiboot2(MULTIBOOT2_MAGIC, bootinfo::sample::PHYS, &mem.p2p()) };
        if let Ok(bi) = r {
            assert_eq!(bi.protocol, Protocol::Multiboot2);
            check_bootinfo(&bi, &mapped);
            assert_eq!(bi.info_range.start, mapped.start);
            if let Some(rsdp) = bi.rsdp {
                assert!(inside(&bi.info_range, rsdp, 20), "the RSDP is outside the structure");
            }
        }
    }
}

/// The input as a PVH start info (and whatever it points to) in a fake physical memory. A
/// pointer outside it must be `Unmapped`, never followed; anything accepted is a consistent
/// [`BootInfo`] whose pieces lie inside what was mapped.
pub fn pvh(data: &[u8]) {
    let mem = bootinfo::sample::Fake::new(data);
    let mapped = mem.mapped();
    // SAFETY: as in `multiboot2`.
    let r = unsafe { bootinfo::parse_pvh(mapped.start, &mem.p2p()) };
    match r {
        Ok(bi) => {
            assert_eq!(bi.protocol, Protocol::Pvh);
            check_bootinfo(&bi, &mapped);
        }
        Err(BootInfoError::Unmapped { phys, len, .. }) => {
            assert!(!inside(&mapped, phys, len.max(1)), "a mapped structure was called unmapped");
        }
        Err(_) => {}
    }
}

/// What every accepted [`BootInfo`] keeps, only `memory` having been readable.
fn check_bootinfo(bi: &BootInfo, memory: &Range<u64>) {
    check_normalized(bi.memory.regions());
    assert!(bi.modules.iter().all(|m| m.start <= m.end));
    let r = &bi.info_ranges;
    assert!(!r.is_empty() && r.len() <= 4);
    assert!(r.iter().all(|x| x.start < x.end && memory.start <= x.start && x.end <= memory.end));
    assert!(r.windows(2).all(|w| w[0].end < w[1].start), "info ranges overlap or touch");
    assert_eq!(bi.info_range, r[0].start..r[r.len() - 1].end);
}

// ---------------------------------------------------------------------------------------------
// Memory map

/// A list of memory-map entries (the first byte says whether addresses are full 64-bit or page
/// numbers below 256 MiB, where entries meet and overlap). `MemoryMap::normalize` of the first
/// 128 and `Collector` of them all give a normalized map (sorted, disjoint, non-empty, touching
/// regions of different kinds), idempotent, that never calls a byte usable that an entry said is
/// not, and agrees byte for byte with the oracle when nothing had to be dropped; then
/// `find_free` and `check_kernel` answer consistently with it.
pub fn memmap(data: &[u8]) {
    let mut r = Reader::new(data);
    let wide = r.u8() & 1 == 1;
    let mut entries = Vec::new();
    while !r.is_empty() && entries.len() < 640 {
        let e = if wide {
            (r.u64(), r.u64(), kind(r.u8()))
        } else {
            (u64::from(r.u16()) << 12, u64::from(r.u8()) << 12, kind(r.u8()))
        };
        entries.push(e);
    }

    let mut map = MemoryMap::new();
    let mut raw = Vec::new();
    for &(start, len, k) in entries.iter().take(MAX_REGIONS) {
        match map.add(start, len, k) {
            Ok(()) => raw.extend(Region::from_entry(start, len, k).ok().flatten()),
            Err(MemMapError::AddressOverflow { .. }) => assert!(start.checked_add(len).is_none()),
            Err(e) => panic!("add: {e:?}"),
        }
    }
    map.normalize();
    check_against_oracle(map.regions(), &raw);
    let mut again = map.clone();
    again.normalize();
    assert_eq!(again.regions(), map.regions(), "normalize is not idempotent");

    let mut c = Collector::new();
    let mut all = Vec::new();
    let mut refused = false;
    for &(start, len, k) in &entries {
        match c.add(start, len, k) {
            Ok(()) => all.extend(Region::from_entry(start, len, k).ok().flatten()),
            Err(MemMapError::AddressOverflow { .. }) => assert!(start.checked_add(len).is_none()),
            Err(MemMapError::TooManyRegions) => {
                refused = true;
                break;
            }
            Err(e) => panic!("collect: {e:?}"),
        }
    }
    if !refused {
        let collected = c.finish();
        check_against_oracle(collected.regions(), &all);
        if entries.len() <= MAX_REGIONS {
            assert_eq!(collected.regions(), map.regions(), "Collector and normalize disagree");
        }
    }

    // Queries on the normalized map.
    let avoid: Vec<Range<u64>> = (0..r.u8() % 4).map(|_| r.u64()..r.u64()).collect();
    let (size, align, floor) = (r.u64() >> (r.u8() % 64), 1u64 << (r.u8() % 40), r.u64() >> (r.u8() % 64));
    if let Some(f) = map.find_free(size, align, floor, &avoid) {
        assert!(f.end - f.start == size && f.start % align == 0 && f.start >= floor);
        assert!(map.regions().iter().any(|x| x.kind == RegionKind::Usable && x.start <= f.start && f.end <= x.end));
        assert!(avoid.iter().all(|a| !(a.start < f.end && f.start < a.end)), "found range touches one to avoid");
    }
    let kernel = r.u64()..r.u64();
    if map.check_kernel(kernel.clone()).is_ok() && kernel.start < kernel.end {
        for a in [kernel.start, kernel.end - 1] {
            assert_eq!(oracle(map.regions(), a), Some(RegionKind::Usable), "kernel byte {a:#x} accepted");
        }
    }
}

/// The invariants of a normalized map.
fn check_normalized(regions: &[Region]) {
    assert!(regions.len() <= MAX_REGIONS);
    assert!(regions.iter().all(|r| r.start < r.end), "empty region");
    for w in regions.windows(2) {
        assert!(w[0].end <= w[1].start, "not sorted and disjoint: {w:?}");
        assert!(!(w[0].end == w[1].start && w[0].kind == w[1].kind), "not merged: {w:?}");
    }
}

/// `regions` is normalized, never calls a byte usable that `raw` does not, and agrees with `raw`
/// everywhere unless regions had to be dropped (then only usable ones remain, and only the
/// highest usable ones are missing when more than `MAX_REGIONS` usable regions were needed).
fn check_against_oracle(regions: &[Region], raw: &[Region]) {
    check_normalized(regions);
    let all_usable = regions.iter().all(|r| r.kind == RegionKind::Usable);
    // Where the result changes, and where the first raw entries begin and end.
    let edges: Vec<u64> = regions.iter().flat_map(|r| [r.start, r.end - 1, r.end]).collect();
    for a in sample_points(raw, &edges) {
        let (got, want) = (oracle(regions, a), oracle(raw, a));
        if got == Some(RegionKind::Usable) {
            assert_eq!(want, Some(RegionKind::Usable), "byte {a:#x} called usable");
        }
        if !all_usable {
            assert_eq!(got, want, "byte {a:#x}");
        } else if want == Some(RegionKind::Usable) && regions.len() < MAX_REGIONS {
            assert_eq!(got, want, "usable byte {a:#x} dropped");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Command line

/// The input as a command line. `get` agrees with a naive last-occurrence search and hands out
/// a slice of the line; `flag`, `number` and `mib` agree with `get` and refuse what they must
/// (`mib` is checked: a non-zero multiple of 1 MiB that is the value times 2^20).
pub fn cmdline(data: &[u8]) {
    let line = String::from_utf8_lossy(data);
    let line = line.as_ref();
    let mut keys: Vec<&str> = alloc::vec![hauki_abi::cmdline::POOL_MIB, hauki_abi::cmdline::LINUX, "k", ""];
    keys.extend(line.split_ascii_whitespace().take(8).map(|w| w.split('=').next().unwrap_or(w)));
    for key in keys {
        let naive = line
            .split_ascii_whitespace()
            .filter_map(|w| match w.split_once('=') {
                Some((k, v)) => (k == key).then_some(Some(v)),
                None => (w == key).then_some(None),
            })
            .next_back();
        let got = cl::get(line, key);
        assert_eq!(got, naive.map(|v| v.unwrap_or("")), "get {key:?}");
        if let Some(v) = got.filter(|v| !v.is_empty()) {
            assert!(within(line.as_bytes(), v.as_bytes()), "a value that is not the line's");
        }
        let on = match naive {
            None => false,
            Some(None) => true,
            Some(Some(v)) => ["1", "y", "yes", "on", "true"].iter().any(|t| v.eq_ignore_ascii_case(t)),
        };
        assert_eq!(cl::flag(line, key), on, "flag {key:?}");
        let parsed = got.and_then(|v| v.parse::<u64>().ok());
        match cl::number(line, key, 1..=1000) {
            Ok(None) => assert!(got.is_none()),
            Ok(Some(n)) => assert!(parsed == Some(n) && (1..=1000).contains(&n)),
            Err(e) => {
                assert!(!parsed.is_some_and(|n| (1..=1000).contains(&n)));
                assert_eq!((e.key, Some(e.value)), (key, got));
            }
        }
        match cl::mib(line, key) {
            Ok(None) => assert!(got.is_none()),
            Ok(Some(b)) => assert!(b > 0 && b % (1 << 20) == 0 && parsed == Some(b >> 20)),
            Err(_) => assert!(!parsed.is_some_and(|n| n > 0 && n.checked_mul(1 << 20).is_some())),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Linux's calls and what they point to

/// A Linux image (up to four segments), the vCPU block's address, a call number and argument,
/// a `struct desc_ptr` and a gate. `decode` accepts exactly the calls the ABI defines with their
/// arguments in range (a `LOAD_IDT` pointer wholly inside the image); `idt` accepts only no IDT,
/// the read-only alias, or a table inside the image of at most 256 gates; `gate_address` stays
/// within the limit; `gate_target` returns only present interrupt or trap gates' canonical
/// targets inside an executable segment. Every check is against the raw segments, not the
/// module's own `KernelImage` queries.
pub fn linux_calls(data: &[u8]) {
    let mut r = Reader::new(data);
    let mut segments: heapless::Vec<Segment, MAX_SEGMENTS> = heapless::Vec::new();
    for _ in 0..r.u8() % 5 {
        let vaddr = match r.u8() % 3 {
            0 => calls::KERNEL_MAP_START.wrapping_add(u64::from(r.u32()) << 8),
            1 => u64::from(r.u32()),
            _ => r.u64(),
        };
        let memsz = u64::from(r.u32()).max(1);
        let flags = u32::from(r.u8() & 7);
        let _ = segments.push(Segment { file_offset: 0, filesz: 0, memsz, paddr: 0, vaddr, flags });
    }
    let mapped: Vec<(Range<u64>, bool)> = segments
        .iter()
        .filter(|s| s.vaddr >= calls::KERNEL_MAP_START)
        .filter_map(|s| Some((s.vaddr..s.vaddr.checked_add(s.memsz)?, s.flags & elf::PF_X != 0)))
        .collect();
    let in_image = |at: u64, len: u64| mapped.iter().any(|(m, _)| inside(m, at, len));
    let image = KernelImage::new(&Vmlinux { entry_phys: 0, segments: segments.clone(), phys_start: 0, phys_end: 0 });
    let have_image = r.u8() & 1 == 0;
    let expect = Expect { vcpu: r.u64(), image: have_image.then_some(&image), channels: u32::from(r.u8() % 40) };

    // An argument near a segment now and then, so pointers into the image are common.
    let nr = if r.u8() & 1 == 0 { u64::from(r.u8() % 14) } else { r.u64() };
    let arg = match (r.u8() % 3, segments.first()) {
        (0, Some(s)) => s.vaddr.wrapping_add(u64::from(r.u32())),
        (1, _) => u64::from(r.u8()),
        _ => r.u64(),
    };
    use hauki_abi::guest::call as n;
    let nr32 = u32::try_from(nr).ok();
    match calls::decode(nr, arg, &expect) {
        Ok(Call::LoadIdt { desc }) => {
            assert!(nr32 == Some(n::LOAD_IDT) && have_image && desc == arg && in_image(arg, 10))
        }
        Ok(Call::RegisterVcpu) => assert!(nr32 == Some(n::REGISTER_VCPU) && arg == expect.vcpu),
        Ok(Call::SetTimer { deadline }) => assert!(nr32 == Some(n::SET_TIMER) && deadline == arg),
        Ok(Call::Line { line, .. }) => {
            assert!(matches!(nr32, Some(n::IRQ_MASK | n::IRQ_UNMASK | n::IRQ_EOI)));
            assert!(u64::from(line) == arg && line < hauki_abi::guest::LINES);
        }
        Ok(Call::GsiBind { gsi, vector, level, active_low }) => {
            assert_eq!(nr32, Some(n::GSI_BIND));
            assert!((hauki_abi::guest::ISA_LINES..hauki_abi::guest::LINES).contains(&gsi));
            let again = u64::from(gsi)
                | u64::from(vector) << 8
                | if level { n::GSI_BIND_LEVEL } else { 0 }
                | if active_low { n::GSI_BIND_ACTIVE_LOW } else { 0 };
            assert_eq!(again, arg, "every bit of a bind is one of its fields");
        }
        Err(Refusal::BadBind) => {
            assert_eq!(nr32, Some(n::GSI_BIND));
            let gsi = arg & 0xff;
            let known = 0xffff | n::GSI_BIND_LEVEL | n::GSI_BIND_ACTIVE_LOW;
            assert!(arg & !known != 0 || !(16..24).contains(&gsi));
        }
        Ok(Call::Shutdown(_)) => assert_eq!(nr32, Some(n::SHUTDOWN)),
        Ok(Call::ChannelNotify { index }) => {
            assert!(nr32 == Some(n::CHANNEL_NOTIFY) && u64::from(index) == arg && index < expect.channels)
        }
        Err(Refusal::BadChannel) => assert!(nr32 == Some(n::CHANNEL_NOTIFY) && arg >= u64::from(expect.channels)),
        Ok(Call::VcpuOf { apic_id }) => {
            assert!(nr32 == Some(n::VCPU_OF) && u64::from(apic_id) == arg && apic_id <= 255)
        }
        Ok(Call::CpuStart { apic_id, start }) => {
            assert_eq!(nr32, Some(n::CPU_START));
            assert_eq!(u64::from(start) << 32 | u64::from(apic_id), arg, "every bit is one of its fields");
            assert!(apic_id <= 255 && start != 0 && start < 0x10_0000);
        }
        Err(Refusal::BadCpu) => {
            assert!(matches!(nr32, Some(n::VCPU_OF | n::CPU_START)));
            assert!(if nr32 == Some(n::VCPU_OF) { arg > 255 } else { arg & 0xffff_ffff > 255 });
        }
        Err(Refusal::BadStart) => {
            assert_eq!(nr32, Some(n::CPU_START));
            let start = arg >> 32;
            assert!(start == 0 || start >= 0x10_0000);
        }
        Err(Refusal::UnknownCall) => assert!(!matches!(
            nr32,
            Some(
                n::LOAD_IDT
                    | n::REGISTER_VCPU
                    | n::SET_TIMER
                    | n::IRQ_MASK
                    | n::IRQ_UNMASK
                    | n::IRQ_EOI
                    | n::SHUTDOWN
                    | n::CHANNEL_NOTIFY
                    | n::GSI_BIND
                    | n::VCPU_OF
                    | n::CPU_START
            )
        )),
        Err(Refusal::WrongVcpu) => assert!(nr32 == Some(n::REGISTER_VCPU) && arg != expect.vcpu),
        Err(Refusal::BadLine) => {
            assert!(matches!(nr32, Some(n::IRQ_MASK | n::IRQ_UNMASK | n::IRQ_EOI)));
            assert!(arg >= u64::from(hauki_abi::guest::LINES));
        }
        Err(Refusal::NoImage) => assert!(nr32 == Some(n::LOAD_IDT) && !have_image),
        Err(Refusal::DescOutsideImage) => assert!(nr32 == Some(n::LOAD_IDT) && !in_image(arg, 10)),
        Err(e) => panic!("decode cannot refuse with {e:?}"),
    }

    let desc: [u8; 10] = r.array();
    let (limit, base) =
        (u16::from_le_bytes([desc[0], desc[1]]), u64::from_le_bytes(desc[2..].try_into().unwrap_or([0; 8])));
    match calls::idt(desc, &image) {
        Ok(idt) => {
            assert_eq!((idt.base, idt.limit), (base, limit));
            let none = base == 0 && limit == 0;
            let fits =
                limit <= calls::MAX_IDT_LIMIT && (base == calls::CEA_RO_IDT || in_image(base, u64::from(limit) + 1));
            assert!(none || fits, "accepted IDT {base:#x}/{limit:#x}");
        }
        Err(Refusal::IdtTooLarge) => assert!(limit > calls::MAX_IDT_LIMIT),
        Err(Refusal::IdtOutsideImage) => assert!(base != calls::CEA_RO_IDT && !in_image(base, u64::from(limit) + 1)),
        Err(e) => panic!("idt cannot refuse with {e:?}"),
    }

    let v = r.u8();
    let within_limit = u64::from(v) * 16 + 15 <= u64::from(limit);
    match calls::gate_address(base, limit, v) {
        Some(a) => assert!(base != 0 && within_limit && base.checked_add(u64::from(v) * 16) == Some(a)),
        None => assert!(base == 0 || !within_limit || base.checked_add(u64::from(v) * 16).is_none()),
    }

    let gate: [u8; 16] = r.array();
    let target = u64::from(u16::from_le_bytes([gate[0], gate[1]]))
        | u64::from(u16::from_le_bytes([gate[6], gate[7]])) << 16
        | u64::from(u32::from_le_bytes([gate[8], gate[9], gate[10], gate[11]])) << 32;
    let usable = gate[5] & 0x80 != 0 && matches!(gate[5] & 0xf, 0xe | 0xf);
    let canonical = !(1 << 47..0xffff_8000_0000_0000).contains(&target);
    let executable = |t: u64| mapped.iter().any(|(m, x)| *x && m.contains(&t));
    for img in [None, Some(&image)] {
        let want = usable && canonical && img.is_none_or(|_| executable(target));
        assert_eq!(calls::gate_target(gate, img), want.then_some(target), "gate {gate:02x?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Channel rings

/// The co-kernel's ends of a channel's rings (`guest::ring`) against a Linux that writes anything
/// anywhere in them. Input: a geometry (kind, slots, record size), then steps: a real-time send,
/// receive or stream write/read, or Linux writing a `u32` at any offset of either ring. Every
/// access stays inside the ring (the memory panics otherwise); a record received is never longer
/// than `record_size`; an index refusal happens exactly when Linux's index is out of range of the
/// co-kernel's; the co-kernel's published index is always its own; nothing panics.
pub fn channel_ring(data: &[u8]) {
    use crate::guest::ring::{
        Consumer, DATA, Geometry, HEAD, Producer, RecvError, Refusal as R, RingMem, SendError, TAIL, VecRing,
    };
    let mut r = Reader::new(data);
    let stream = r.u8() & 1 == 1;
    let slots = 1u32 << (1 + r.u8() % 8);
    let record = u32::from(r.u8() % 64) + 1;
    let Ok(geo) = (if stream { Geometry::stream(slots) } else { Geometry::message(slots, record) }) else {
        return;
    };
    let (mut out, mut inn) = (VecRing::new(&geo), VecRing::new(&geo));
    let mut p = Producer::new(geo, &mut out);
    let mut c = Consumer::new(geo, &mut inn);
    let (mut head, mut tail) = (0u32, 0u32); // the co-kernel's own indices, as it must keep them
    let mut buf = alloc::vec![0u8; record as usize + 8];
    let mut steps = 0;
    while !r.is_empty() && steps < 256 {
        steps += 1;
        match r.u8() % 6 {
            0 => {
                let len = usize::from(r.u8());
                let rec = r.bytes(len).to_vec();
                let theirs = out.load(TAIL);
                let in_range = head.wrapping_sub(theirs) <= slots;
                if stream {
                    match p.write_bytes(&mut out, &rec) {
                        Ok(n) => {
                            assert!(in_range && n <= rec.len());
                            head = head.wrapping_add(n as u32);
                        }
                        Err(R::Index { own, theirs: t }) => assert!(!in_range && own == head && t == theirs),
                        Err(e) => panic!("a stream write refused with {e:?}"),
                    }
                } else {
                    match p.send(&mut out, &rec) {
                        Ok(()) => {
                            assert!(in_range && rec.len() <= record as usize);
                            head = head.wrapping_add(1);
                        }
                        Err(SendError::TooLong) => assert!(in_range && rec.len() > record as usize),
                        Err(SendError::Full) => assert!(head.wrapping_sub(theirs) == slots),
                        Err(SendError::Refused(R::Index { own, theirs: t })) => {
                            assert!(!in_range && own == head && t == theirs)
                        }
                        Err(e) => panic!("a send refused with {e:?}"),
                    }
                }
                assert_eq!(out.load(HEAD), head, "the published head is not the co-kernel's");
            }
            1 => {
                let theirs = inn.load(HEAD);
                let in_range = theirs.wrapping_sub(tail) <= slots;
                if stream {
                    let want = usize::from(r.u8()) % buf.len();
                    match c.read_bytes(&mut inn, &mut buf[..want]) {
                        Ok(n) => {
                            assert!(in_range && n <= want);
                            tail = tail.wrapping_add(n as u32);
                        }
                        Err(R::Index { own, .. }) => assert!(!in_range && own == tail),
                        Err(e) => panic!("a stream read refused with {e:?}"),
                    }
                } else {
                    match c.recv(&mut inn, &mut buf) {
                        Ok(Some(n)) => {
                            assert!(in_range && n <= record as usize);
                            tail = tail.wrapping_add(1);
                        }
                        Ok(None) => assert!(in_range && theirs == tail),
                        Err(RecvError::Refused(R::Length(n))) => {
                            assert!(in_range && n > record);
                            tail = tail.wrapping_add(1); // consumed and dropped
                        }
                        Err(RecvError::Refused(R::Index { own, .. })) => assert!(!in_range && own == tail),
                        Err(RecvError::BufferTooSmall) => panic!("the buffer holds a record"),
                    }
                }
                assert_eq!(inn.load(TAIL), tail, "the published tail is not the co-kernel's");
            }
            2 => {
                // Linux consumes honestly-ish: any tail it likes.
                let v = r.u32();
                out.store(TAIL, if v & 1 == 0 { head.wrapping_sub(v % (slots + 1)) } else { v });
            }
            3 => {
                // Linux produces: a head and slot contents of its choosing.
                let v = r.u32();
                let at = (DATA + r.u32() as usize % (inn.0.len() - DATA)).min(inn.0.len() - 4);
                inn.store(at, r.u32());
                inn.store(HEAD, if v & 1 == 0 { tail.wrapping_add(v % (slots + 1)) } else { v });
            }
            4 => {
                // Linux scribbles anywhere in either ring, its own index fields and ours included.
                let mem = if r.u8() & 1 == 0 { &mut out } else { &mut inn };
                let at = r.u32() as usize % (mem.0.len() - 3);
                mem.store(at, r.u32());
                // The co-kernel's own index is what it keeps, whatever Linux wrote over the copy:
                // the next operation publishes it again.
            }
            _ => {
                let _ = p.room(&mut out);
                let _ = c.pending(&mut inn);
                assert_eq!((out.load(HEAD), inn.load(TAIL)), (head, tail), "an index copy was not restored");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Linux's ACPI view

/// `acpi_view::build` on arbitrary firmware tables. Input: a flags byte (bit 0: the root table is
/// the XSDT; bits 1–7: the APIC IDs kept are those whose low 7 bits share a bit with them, or all
/// if none are set), the root table's length (u16) and bytes, then the MADT's bytes; the MADT's
/// address is the root's first entry. An accepted view has valid checksums throughout, lists
/// every firmware table but the MADT unchanged, and its MADT is the firmware's fixed part and
/// entries in order, minus exactly the processors not kept and the wake-up mailboxes.
pub fn acpi_view(data: &[u8]) {
    use crate::guest::acpi_view::{self as av, Firmware, HEADER, PAGE, XSDT_AT};
    let mut r = Reader::new(data);
    let flags = r.u8();
    let xsdt = flags & 1 != 0;
    let mask = u32::from(flags >> 1);
    let n = usize::from(r.u16());
    let root = r.bytes(n);
    let madt = r.rest();
    let width = if xsdt { 8 } else { 4 };
    let madt_phys = root.get(HEADER..HEADER + width).map_or(0, |b| {
        let mut w = [0u8; 8];
        w[..width].copy_from_slice(b);
        u64::from_le_bytes(w)
    });
    let keep = |id: u32| mask == 0 || id & mask != 0;
    let fw = Firmware { root, xsdt, madt_phys, madt, oem_id: *b"FUZZ  " };
    let at_phys = 0x20_0000;
    let mut out = Box::new([0u8; PAGE]);
    let Ok(b) = av::build(&fw, &keep, at_phys, &mut out) else { return };
    let sum = |b: &[u8]| b.iter().fold(0u8, |s, &x| s.wrapping_add(x));
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    assert!(b.len <= PAGE);
    assert_eq!(sum(&out[..20]), 0, "RSDP checksum");
    assert_eq!(sum(&out[..36]), 0, "RSDP extended checksum");
    let xl = u32_at(&out[..], XSDT_AT + 4) as usize;
    assert_eq!(sum(&out[XSDT_AT..XSDT_AT + xl]), 0, "XSDT checksum");
    let ours: Vec<u64> = out[XSDT_AT + HEADER..XSDT_AT + xl]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let root_len = u32_at(root, 4) as usize;
    let theirs = av::root_entries(&root[..root_len], xsdt);
    assert_eq!(ours.len(), theirs.len());
    let madt_at = (XSDT_AT + xl).next_multiple_of(8);
    for (o, t) in ours.iter().zip(&theirs) {
        assert_eq!(*o, if *t == madt_phys { at_phys + madt_at as u64 } else { *t }, "a table moved");
    }
    let ml = u32_at(&out[..], madt_at + 4) as usize;
    let view = &out[madt_at..madt_at + ml];
    assert_eq!(sum(view), 0, "MADT checksum");
    assert_eq!(&view[HEADER..HEADER + 8], &madt[HEADER..HEADER + 8]);
    // The firmware's entries, filtered as documented, are exactly the view's.
    let entries = |t: &[u8], len: usize| {
        let mut v = Vec::new();
        let mut at = HEADER + 8;
        while at + 2 <= len {
            let l = usize::from(t[at + 1]);
            v.push(t[at..at + l].to_vec());
            at += l;
        }
        v
    };
    let cpu = |e: &[u8]| match (e[0], e.len()) {
        (0, 8..) => Some(u32::from(e[3])),
        (9, 16..) => Some(u32_at(e, 4)),
        _ => None,
    };
    let want: Vec<Vec<u8>> = entries(madt, u32_at(madt, 4) as usize)
        .into_iter()
        .filter(|e| e[0] != 0x10 && cpu(e).is_none_or(keep))
        .collect();
    assert_eq!(entries(view, ml), want, "the view's MADT entries");
    assert_eq!(b.cpus as usize, want.iter().filter(|e| cpu(e).is_some()).count());
    assert_eq!(av::madt_cpus(view).len(), (b.cpus as usize).min(64));
}
