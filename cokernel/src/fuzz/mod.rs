//! Fuzz targets: one checking function per parser or validator of input the co-kernel does not
//! control, shared by the coverage-guided targets in `fuzz/` (cargo-fuzz and libFuzzer, nightly)
//! and the deterministic smoke run of `cargo xtask test` (`tests/fuzz_smoke.rs`, stable).
//!
//! Each target takes arbitrary bytes, hands them to the code under test and asserts what must
//! hold: nothing panics, overflows or reads out of bounds (any panic is a finding), malformed
//! input is refused with a typed error, and what is accepted keeps the parser's documented
//! invariants, checked against simple independent oracles where there are any. [`seeds`] makes
//! each target's seed corpus from realistic inputs (the `sample` builders of the modules under
//! test); `fuzz/corpus/<target>/` holds it, rewritten by
//! `cargo run -p cokernel --features fuzz --example fuzz_seeds`.
//!
//! Built only for the host, with the `fuzz` feature (and for the unit tests); never part of the
//! kernel. docs/fuzzing.md says what each target checks and how to run it.

use alloc::vec::Vec;

mod seeds;
mod targets;

pub use seeds::{Seed, seeds};
pub use targets::*;

/// A fuzz target: its name (as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` spell it)
/// and its checking function.
#[derive(Clone, Copy)]
pub struct Target {
    /// The name.
    pub name: &'static str,
    /// Runs one input; panics on a finding.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target { name: "elf", run: elf },
    Target { name: "modules", run: modules },
    Target { name: "bootparams", run: bootparams },
    Target { name: "multiboot2", run: multiboot2 },
    Target { name: "pvh", run: pvh },
    Target { name: "memmap", run: memmap },
    Target { name: "cmdline", run: cmdline },
    Target { name: "linux_calls", run: linux_calls },
    Target { name: "channel_ring", run: channel_ring },
    Target { name: "acpi_view", run: acpi_view },
];

/// Reads fields from fuzz input, little-endian; once the input is used up every read is zero, so
/// any input decodes to something.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads `data` from the start.
    pub const fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The next `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// The next `N` bytes, zero-padded at the end of the input.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        let b = self.bytes(N);
        a[..b.len()].copy_from_slice(b);
        a
    }

    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// What is left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }

    /// The next byte.
    pub fn u8(&mut self) -> u8 {
        u8::from_le_bytes(self.array())
    }

    /// The next `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    /// The next `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    /// The next `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }
}

/// Writes what a [`Reader`] reads (to build seeds in the targets' encodings).
#[derive(Default)]
pub struct Writer {
    /// The bytes so far.
    pub out: Vec<u8>,
}

impl Writer {
    /// Appends a byte.
    pub fn u8(&mut self, x: u8) -> &mut Self {
        self.out.push(x);
        self
    }

    /// Appends a `u16`.
    pub fn u16(&mut self, x: u16) -> &mut Self {
        self.bytes(&x.to_le_bytes())
    }

    /// Appends a `u32`.
    pub fn u32(&mut self, x: u32) -> &mut Self {
        self.bytes(&x.to_le_bytes())
    }

    /// Appends a `u64`.
    pub fn u64(&mut self, x: u64) -> &mut Self {
        self.bytes(&x.to_le_bytes())
    }

    /// Appends bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.out.extend_from_slice(b);
        self
    }
}

/// Whether `inner` is a subslice of `outer` (a parser handed out bytes of its input only).
pub fn within(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr_range(), inner.as_ptr_range());
    o.start <= i.start && i.end <= o.end
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every target accepts its seeds, and every seed names a target.
    #[test]
    fn every_target_runs_its_seeds() {
        for s in seeds() {
            let t = TARGETS.iter().find(|t| t.name == s.target);
            let t = t.unwrap_or_else(|| panic!("seed {} for unknown target {}", s.name, s.target));
            (t.run)(&s.bytes);
        }
        for t in TARGETS {
            assert!(seeds().iter().any(|s| s.target == t.name), "{} has no seed", t.name);
        }
    }

    /// The realistic seeds get past the parsers (so fuzzing starts deep), the findings' do not.
    #[test]
    fn realistic_seeds_are_accepted() {
        use crate::bootinfo::{self, BootInfoError, MULTIBOOT2_MAGIC, sample::Fake};
        let seed = |t: &str, n: &str| seeds().into_iter().find(|s| s.target == t && s.name == n).unwrap().bytes;
        let v = crate::guest::elf::parse(&seed("elf", "vmlinux-like")).unwrap();
        assert_eq!(v.segments.len(), 4);
        assert!(crate::guest::elf::find_note(&seed("elf", "vmlinux-like"), b"Xen", 18).is_some());
        assert!(crate::guest::elf::parse(&seed("elf", "bss-past-end-of-file")).is_err());
        for n in ["grub-bios", "grub-uefi", "fragmented-map"] {
            let mem = Fake::new(&seed("multiboot2", n));
            // SAFETY: the fake memory's translation hands out pointers into it only.
            let r = unsafe { bootinfo::parse_multiboot2(MULTIBOOT2_MAGIC, bootinfo::sample::PHYS, &mem.p2p()) };
            assert!(r.is_ok(), "{n}: {r:?}");
        }
        for (n, ok) in [("qemu", true), ("qemu-bundle-only", true), ("cmdline-at-the-top", false)] {
            let mem = Fake::new(&seed("pvh", n));
            // SAFETY: as above.
            let r = unsafe { bootinfo::parse_pvh(bootinfo::sample::PHYS, &mem.p2p()) };
            assert_eq!(r.is_ok(), ok, "{n}: {r:?}");
            if !ok {
                assert!(matches!(r, Err(BootInfoError::Unmapped { .. })));
            }
        }
        let b = seed("modules", "bundle");
        assert!(crate::guest::modules::select_bundle(&b[1..]).is_ok());
    }

    #[test]
    fn reader_pads_with_zeros() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), 0x0201);
        assert_eq!(r.u32(), 3);
        assert!(r.is_empty());
        assert_eq!(r.u64(), 0);
        let mut w = Writer::default();
        w.u8(7).u16(0x0908).u64(u64::MAX);
        let mut r = Reader::new(&w.out);
        assert_eq!((r.u8(), r.u16(), r.u64()), (7, 0x0908, u64::MAX));
    }
}
