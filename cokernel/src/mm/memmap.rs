//! The boot memory map: which physical address ranges are RAM we may use and which are not.
//!
//! Boot loaders hand over a list of `(start, length, type)` entries that may be unsorted, may
//! overlap and may split one kind of memory into many touching pieces. [`MemoryMap`] collects
//! them and [`MemoryMap::normalize`] turns the list into a canonical form.
//!
//! Invariants after [`MemoryMap::normalize`]:
//! * every region is non-empty (`start < end`, half-open `[start, end)`);
//! * regions are sorted by `start` and pairwise disjoint;
//! * two touching regions (`a.end == b.start`) never have the same kind;
//! * where the input overlapped, the more restrictive [`RegionKind`] (later in declaration order)
//!   owns the overlap, so memory is never reported usable if any entry said otherwise.
//!
//! Anything not covered by a region is a hole and is treated as not usable. `normalize` is
//! idempotent.

use core::fmt;
use core::ops::Range;

/// What a physical range holds. Declaration order is restrictiveness: on overlap the later
/// (more restrictive) kind wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RegionKind {
    /// Free RAM.
    Usable,
    /// ACPI tables; usable once they have been parsed.
    AcpiReclaimable,
    /// ACPI non-volatile storage; must be preserved.
    AcpiNvs,
    /// Reserved by firmware or hardware.
    Reserved,
    /// RAM reported as defective.
    Defective,
}

/// One physical range `[start, end)` of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// What the range holds.
    pub kind: RegionKind,
}

impl Region {
    /// Length in bytes.
    pub const fn len(&self) -> u64 {
        self.end - self.start
    }

    /// True when the region covers no byte.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// How many regions a [`MemoryMap`] holds at most.
pub const MAX_REGIONS: usize = 128;

/// Errors of the memory map and of the code that consumes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemMapError {
    /// More than [`MAX_REGIONS`] entries were added.
    TooManyRegions,
    /// `start + len` does not fit in 64 bits.
    AddressOverflow {
        /// Start of the offending entry.
        start: u64,
        /// Length of the offending entry.
        len: u64,
    },
    /// No usable RAM is left above the allocator's floor once reserved ranges are removed.
    NoUsableAboveOneMiB,
    /// The kernel image is not wholly inside usable RAM.
    KernelNotInUsableRam {
        /// Start of the kernel image.
        kernel_start: u64,
        /// End (exclusive) of the kernel image.
        kernel_end: u64,
        /// The first region overlapping the image that is not usable; a hole in the map is
        /// reported as a synthesized [`RegionKind::Reserved`] region spanning the hole.
        conflict: Region,
    },
}

impl fmt::Display for MemMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooManyRegions => write!(
                f,
                "the boot memory map has more than {MAX_REGIONS} entries, which is more than Hauki can hold"
            ),
            Self::AddressOverflow { start, len } => write!(
                f,
                "memory map entry at {start:#x} with length {len:#x} runs past the end of the 64-bit address space"
            ),
            Self::NoUsableAboveOneMiB => write!(
                f,
                "no usable RAM is left above 1 MiB once the kernel, boot info and modules are set aside"
            ),
            Self::KernelNotInUsableRam {
                kernel_start,
                kernel_end,
                conflict,
            } => write!(
                f,
                "the kernel image [{kernel_start:#x}, {kernel_end:#x}) is not wholly in usable RAM: it overlaps {:?} memory [{:#x}, {:#x})",
                conflict.kind, conflict.start, conflict.end
            ),
        }
    }
}

/// A physical memory map; see the module documentation for its invariants.
#[derive(Clone, Debug)]
pub struct MemoryMap {
    regions: heapless::Vec<Region, MAX_REGIONS>,
}

impl Default for MemoryMap {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryMap {
    /// An empty map.
    pub const fn new() -> Self {
        Self {
            regions: heapless::Vec::new(),
        }
    }

    /// Add an entry. A zero length is ignored. The map is not normalized by this call.
    pub fn add(&mut self, start: u64, len: u64, kind: RegionKind) -> Result<(), MemMapError> {
        if len == 0 {
            return Ok(());
        }
        let end = start
            .checked_add(len)
            .ok_or(MemMapError::AddressOverflow { start, len })?;
        self.regions
            .push(Region { start, end, kind })
            .map_err(|_| MemMapError::TooManyRegions)
    }

    /// Sort, resolve overlaps (the more restrictive kind wins) and merge touching regions of the
    /// same kind. Idempotent.
    ///
    /// Resolving overlaps can split regions, so the result could in pathological inputs need more
    /// than [`MAX_REGIONS`] entries. In that case the non-usable regions are dropped first (a hole
    /// is never used, so this is safe) and, if that is still too many, the highest usable regions.
    pub fn normalize(&mut self) {
        let input = self.regions.clone();
        let mut count = 0usize;
        let mut usable = 0usize;
        sweep(&input, |r| {
            count += 1;
            if r.kind == RegionKind::Usable {
                usable += 1;
            }
        });
        let keep_all = count <= MAX_REGIONS;
        self.regions.clear();
        sweep(&input, |r| {
            if keep_all || r.kind == RegionKind::Usable {
                // Ignoring the error drops the highest usable regions only if there are more
                // than MAX_REGIONS of them (see the doc comment).
                let _ = self.regions.push(r);
            }
        });
        if !keep_all {
            log::warn!(
                "memory map: {count} regions after resolving overlaps, kept only {} of {usable} usable ones",
                self.regions.len()
            );
        }
    }

    /// The regions, in insertion order before [`normalize`](Self::normalize) and canonical after.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Total bytes of usable RAM (meaningful on a normalized map).
    pub fn usable_bytes(&self) -> u64 {
        self.usable().map(|r| r.len()).sum()
    }

    /// One past the highest usable byte, or 0 when there is no usable RAM.
    pub fn max_usable_end(&self) -> u64 {
        self.usable().map(|r| r.end).max().unwrap_or(0)
    }

    /// Usable ranges at or above `floor`, clipped at `floor` (meaningful on a normalized map).
    pub fn usable_above(&self, floor: u64) -> impl Iterator<Item = Range<u64>> + '_ {
        self.usable()
            .filter(move |r| r.end > floor)
            .map(move |r| r.start.max(floor)..r.end)
    }

    /// The lowest `align`-aligned range of `size` bytes of usable RAM at or above `floor` that
    /// touches none of `avoid` (a place to move a boot module out of the way). `align` must be a
    /// power of two.
    pub fn find_free(&self, size: u64, align: u64, floor: u64, avoid: &[Range<u64>]) -> Option<Range<u64>> {
        if size == 0 || !align.is_power_of_two() {
            return None;
        }
        for r in self.usable_above(floor) {
            let mut start = r.start.checked_add(align - 1)? & !(align - 1);
            'candidate: while start.checked_add(size)? <= r.end {
                let cand = start..start + size;
                for a in avoid {
                    if a.start < cand.end && cand.start < a.end {
                        start = a.end.checked_add(align - 1)? & !(align - 1);
                        continue 'candidate;
                    }
                }
                return Some(cand);
            }
        }
        None
    }

    /// Check that `kernel` lies wholly inside usable RAM. The check runs on a normalized copy, so
    /// it is correct whether or not `self` is normalized. An empty range passes.
    pub fn check_kernel(&self, kernel: Range<u64>) -> Result<(), MemMapError> {
        let mut map = self.clone();
        map.normalize();
        let err = |conflict| MemMapError::KernelNotInUsableRam {
            kernel_start: kernel.start,
            kernel_end: kernel.end,
            conflict,
        };
        let mut cursor = kernel.start;
        while cursor < kernel.end {
            match map
                .regions
                .iter()
                .find(|r| r.start <= cursor && cursor < r.end)
            {
                Some(r) if r.kind == RegionKind::Usable => cursor = r.end,
                Some(r) => return Err(err(*r)),
                None => {
                    // A hole: it ends where the next region starts.
                    let end = map
                        .regions
                        .iter()
                        .map(|r| r.start)
                        .filter(|&s| s > cursor)
                        .min()
                        .unwrap_or(u64::MAX);
                    return Err(err(Region {
                        start: cursor,
                        end,
                        kind: RegionKind::Reserved,
                    }));
                }
            }
        }
        Ok(())
    }

    fn usable(&self) -> impl Iterator<Item = &Region> + '_ {
        self.regions.iter().filter(|r| r.kind == RegionKind::Usable)
    }
}

/// Walk the elementary intervals of `input` in address order and hand `emit` the canonical
/// regions: each interval gets the most restrictive kind covering it, touching intervals of the
/// same kind are merged, uncovered intervals are skipped. O(n²) with n ≤ [`MAX_REGIONS`].
fn sweep(input: &[Region], mut emit: impl FnMut(Region)) {
    let next_boundary = |after: Option<u64>| {
        input
            .iter()
            .flat_map(|r| [r.start, r.end])
            .filter(|&p| after.is_none_or(|a| p > a))
            .min()
    };
    let mut pending: Option<Region> = None;
    let Some(mut lo) = next_boundary(None) else {
        return;
    };
    while let Some(hi) = next_boundary(Some(lo)) {
        let kind = input
            .iter()
            .filter(|r| r.start <= lo && hi <= r.end)
            .map(|r| r.kind)
            .max();
        match (kind, pending.as_mut()) {
            (Some(k), Some(p)) if p.kind == k && p.end == lo => p.end = hi,
            (Some(k), _) => {
                if let Some(p) = pending.replace(Region {
                    start: lo,
                    end: hi,
                    kind: k,
                }) {
                    emit(p);
                }
            }
            (None, _) => {}
        }
        lo = hi;
    }
    if let Some(p) = pending {
        emit(p);
    }
}

#[cfg(test)]
mod find_free_tests {
    use super::*;

    #[test]
    fn finds_the_lowest_aligned_gap_clear_of_everything() {
        let mut m = MemoryMap::new();
        m.add(0, 0x9f000, RegionKind::Usable).unwrap();
        m.add(0x10_0000, 0x3ff0_0000, RegionKind::Usable).unwrap();
        m.normalize();
        let avoid = [0x10_0000..0x40_0000, 0x100_0000..0x200_0000, 0x41_0000..0x180_0000];
        let r = m.find_free(0x80_0000, 0x20_0000, 0x10_0000, &avoid).unwrap();
        assert_eq!(r, 0x200_0000..0x280_0000);
        assert!(avoid.iter().all(|a| a.end <= r.start || r.end <= a.start));
        assert_eq!(m.find_free(0x4000_0000, 0x1000, 0, &[]), None, "bigger than any region");
        assert_eq!(m.find_free(0x1000, 3, 0, &[]), None, "alignment must be a power of two");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RegionKind::*;
    use proptest::prelude::*;

    fn r(start: u64, end: u64, kind: RegionKind) -> Region {
        Region { start, end, kind }
    }

    #[test]
    fn add_rejects_overflow_and_ignores_empty() {
        let mut m = MemoryMap::new();
        m.add(0x1000, 0, Usable).unwrap();
        assert!(m.regions().is_empty());
        assert_eq!(
            m.add(u64::MAX - 1, 2, Usable),
            Err(MemMapError::AddressOverflow {
                start: u64::MAX - 1,
                len: 2
            })
        );
        m.add(u64::MAX - 1, 1, Usable).unwrap();
        for i in 1..MAX_REGIONS as u64 {
            m.add(i * 0x1000, 0x1000, Usable).unwrap();
        }
        assert_eq!(m.add(0, 1, Usable), Err(MemMapError::TooManyRegions));
    }

    #[test]
    fn normalize_resolves_overlap_and_merges() {
        let mut m = MemoryMap::new();
        m.add(0x10_0000, 0x100_0000, Usable).unwrap(); // 1 MiB .. 17 MiB
        m.add(0x20_0000, 0x1000, Reserved).unwrap();
        m.add(0x0, 0x9_f000, Usable).unwrap();
        m.add(0x9_f000, 0x1000, Usable).unwrap(); // touching, merges
        m.add(0x100_0000, 0x20_0000, AcpiNvs).unwrap(); // overlaps the tail
        m.add(0x20_0800, 0x100, Defective).unwrap(); // inside the reserved one
        m.normalize();
        assert_eq!(
            m.regions(),
            &[
                r(0, 0xa_0000, Usable),
                r(0x10_0000, 0x20_0000, Usable),
                r(0x20_0000, 0x20_0800, Reserved),
                r(0x20_0800, 0x20_0900, Defective),
                r(0x20_0900, 0x20_1000, Reserved),
                r(0x20_1000, 0x100_0000, Usable),
                r(0x100_0000, 0x120_0000, AcpiNvs),
            ]
        );
        assert_eq!(
            m.usable_bytes(),
            0xa_0000 + 0x10_0000 + (0x100_0000 - 0x20_1000)
        );
        assert_eq!(m.max_usable_end(), 0x100_0000);
        let above: std::vec::Vec<_> = m.usable_above(0x18_0000).collect();
        assert_eq!(above, [0x18_0000..0x20_0000, 0x20_1000..0x100_0000]);
    }

    #[test]
    fn normalize_overflow_keeps_usable() {
        // One big usable range with 127 reserved holes punched into it → 255 pieces.
        let mut m = MemoryMap::new();
        m.add(0, 0x1000_0000, Usable).unwrap();
        for i in 0..127u64 {
            m.add(0x10_0000 + i * 0x2000, 0x1000, Reserved).unwrap();
        }
        m.normalize();
        assert_eq!(m.regions().len(), 128);
        assert!(m.regions().iter().all(|r| r.kind == Usable));
        assert_eq!(m.usable_bytes(), 0x1000_0000 - 127 * 0x1000);
        let before = m.regions().to_vec();
        m.normalize();
        assert_eq!(m.regions(), &before[..]);
    }

    #[test]
    fn check_kernel_cases() {
        let mut m = MemoryMap::new();
        m.add(0x10_0000, 0x10_0000, Usable).unwrap();
        m.add(0x20_0000, 0x10_0000, Usable).unwrap();
        m.add(0x30_0000, 0x1000, Reserved).unwrap();
        m.add(0x40_0000, 0x1000, Usable).unwrap();
        m.normalize();
        assert_eq!(m.check_kernel(0x10_0000..0x30_0000), Ok(()));
        assert_eq!(m.check_kernel(0x5..0x5), Ok(()));
        assert_eq!(
            m.check_kernel(0x2f_f000..0x30_1000),
            Err(MemMapError::KernelNotInUsableRam {
                kernel_start: 0x2f_f000,
                kernel_end: 0x30_1000,
                conflict: r(0x30_0000, 0x30_1000, Reserved),
            })
        );
        // A hole between 0x301000 and 0x400000.
        assert_eq!(
            m.check_kernel(0x40_0000..0x40_2000),
            Err(MemMapError::KernelNotInUsableRam {
                kernel_start: 0x40_0000,
                kernel_end: 0x40_2000,
                conflict: r(0x40_1000, u64::MAX, Reserved),
            })
        );
        assert_eq!(
            m.check_kernel(0x8_0000..0x10_1000),
            Err(MemMapError::KernelNotInUsableRam {
                kernel_start: 0x8_0000,
                kernel_end: 0x10_1000,
                conflict: r(0x8_0000, 0x10_0000, Reserved),
            })
        );
        let e = m.check_kernel(0x2f_f000..0x30_1000).unwrap_err();
        let s = std::format!("{e}");
        assert!(s.contains("0x2ff000") && s.contains("Reserved"), "{s}");
    }

    fn kind() -> impl Strategy<Value = RegionKind> {
        prop_oneof![
            Just(Usable),
            Just(AcpiReclaimable),
            Just(AcpiNvs),
            Just(Reserved),
            Just(Defective)
        ]
    }

    /// Most restrictive kind covering byte `a` of the raw input, if any.
    fn oracle(input: &[Region], a: u64) -> Option<RegionKind> {
        input
            .iter()
            .filter(|r| r.start <= a && a < r.end)
            .map(|r| r.kind)
            .max()
    }

    proptest! {
        #[test]
        fn normalize_matches_oracle(entries in proptest::collection::vec((0u64..64, 1u64..16, kind()), 0..40)) {
            let mut m = MemoryMap::new();
            for &(s, l, k) in &entries {
                m.add(s * 0x1000, l * 0x1000, k).unwrap();
            }
            let raw = m.regions().to_vec();
            m.normalize();
            let regs = m.regions().to_vec();
            for w in regs.windows(2) {
                prop_assert!(w[0].end <= w[1].start);
                prop_assert!(!(w[0].end == w[1].start && w[0].kind == w[1].kind));
            }
            for reg in &regs {
                prop_assert!(reg.start < reg.end);
            }
            for page in 0..90u64 {
                let a = page * 0x1000;
                let got = regs.iter().find(|r| r.start <= a && a < r.end).map(|r| r.kind);
                prop_assert_eq!(got, oracle(&raw, a));
            }
            let mut again = m.clone();
            again.normalize();
            prop_assert_eq!(again.regions(), &regs[..]);
        }
    }
}
