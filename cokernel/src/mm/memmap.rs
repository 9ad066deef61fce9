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
//! idempotent and takes O(n log n) time for n ≤ [`MAX_REGIONS`] entries.
//!
//! A boot loader may pass far more entries than a map holds (a Multiboot2 map can list ~43,000 in
//! its 1 MiB). [`Collector`] takes any number of them in O(n log [`MAX_REGIONS`]) time: it
//! normalizes in batches and refuses ([`MemMapError::TooManyRegions`]) a map whose canonical form
//! would not fit, rather than dropping a region midway (which could later let a usable entry
//! paper over memory that another entry reserved).
#![forbid(unsafe_code)]

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

impl RegionKind {
    /// Every kind, least restrictive first (declaration order; `kind as usize` indexes it).
    pub const ALL: [RegionKind; 5] = [
        RegionKind::Usable,
        RegionKind::AcpiReclaimable,
        RegionKind::AcpiNvs,
        RegionKind::Reserved,
        RegionKind::Defective,
    ];
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

    /// A boot-loader entry `(start, len, kind)` as a region: `None` for a zero length, an error
    /// when `start + len` does not fit in 64 bits.
    pub fn from_entry(start: u64, len: u64, kind: RegionKind) -> Result<Option<Region>, MemMapError> {
        if len == 0 {
            return Ok(None);
        }
        let end = start.checked_add(len).ok_or(MemMapError::AddressOverflow { start, len })?;
        Ok(Some(Region { start, end, kind }))
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
            Self::TooManyRegions => {
                write!(f, "the boot memory map has more than {MAX_REGIONS} entries, which is more than Hauki can hold")
            }
            Self::AddressOverflow { start, len } => write!(
                f,
                "memory map entry at {start:#x} with length {len:#x} runs past the end of the 64-bit address space"
            ),
            Self::NoUsableAboveOneMiB => {
                write!(f, "no usable RAM is left above 1 MiB once the kernel, boot info and modules are set aside")
            }
            Self::KernelNotInUsableRam { kernel_start, kernel_end, conflict } => write!(
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
        Self { regions: heapless::Vec::new() }
    }

    /// Add an entry. A zero length is ignored. The map is not normalized by this call.
    pub fn add(&mut self, start: u64, len: u64, kind: RegionKind) -> Result<(), MemMapError> {
        let Some(r) = Region::from_entry(start, len, kind)? else {
            return Ok(());
        };
        self.regions.push(r).map_err(|_| MemMapError::TooManyRegions)
    }

    /// Sort, resolve overlaps (the more restrictive kind wins) and merge touching regions of the
    /// same kind. Idempotent.
    ///
    /// Resolving overlaps can split regions, so the result could in pathological inputs need more
    /// than [`MAX_REGIONS`] entries. In that case the non-usable regions are dropped first (a hole
    /// is never used, so this is safe once nothing more is added) and, if that is still too many,
    /// the highest usable regions.
    pub fn normalize(&mut self) {
        let input = self.regions.clone();
        self.regions = canonical(&[&input]);
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
        self.usable().filter(move |r| r.end > floor).map(move |r| r.start.max(floor)..r.end)
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
            match map.regions.iter().find(|r| r.start <= cursor && cursor < r.end) {
                Some(r) if r.kind == RegionKind::Usable => cursor = r.end,
                Some(r) => return Err(err(*r)),
                None => {
                    // A hole: it ends where the next region starts.
                    let end = map.regions.iter().map(|r| r.start).filter(|&s| s > cursor).min().unwrap_or(u64::MAX);
                    return Err(err(Region { start: cursor, end, kind: RegionKind::Reserved }));
                }
            }
        }
        Ok(())
    }

    fn usable(&self) -> impl Iterator<Item = &Region> + '_ {
        self.regions.iter().filter(|r| r.kind == RegionKind::Usable)
    }
}

/// Collects boot-loader entries, any number of them, into a normalized [`MemoryMap`]; see the
/// module documentation. Entries are buffered and merged into the map [`MAX_REGIONS`] at a time,
/// so n entries cost O(n log [`MAX_REGIONS`]).
#[derive(Clone, Debug, Default)]
pub struct Collector {
    map: MemoryMap,
    batch: heapless::Vec<Region, MAX_REGIONS>,
    merges: usize,
}

impl Collector {
    /// Nothing collected yet.
    pub const fn new() -> Self {
        Self { map: MemoryMap::new(), batch: heapless::Vec::new(), merges: 0 }
    }

    /// Batches merged into the map so far: one per [`MAX_REGIONS`] entries added (the work is
    /// linear in the entries).
    pub fn merges(&self) -> usize {
        self.merges
    }

    /// Add an entry; a zero length is ignored. Fails when `start + len` overflows, or when the
    /// entries so far need more than [`MAX_REGIONS`] regions even once normalized.
    pub fn add(&mut self, start: u64, len: u64, kind: RegionKind) -> Result<(), MemMapError> {
        let Some(r) = Region::from_entry(start, len, kind)? else {
            return Ok(());
        };
        if self.batch.is_full() {
            self.flush()?;
        }
        self.batch.push(r).map_err(|_| MemMapError::TooManyRegions)
    }

    /// Merge the batch into the map, losing nothing: more entries may follow, so no region may
    /// be dropped here.
    fn flush(&mut self) -> Result<(), MemMapError> {
        let mut merged: heapless::Vec<Region, MAX_REGIONS> = heapless::Vec::new();
        let mut fits = true;
        sweep(&[self.map.regions(), &self.batch], |r| {
            fits &= merged.push(r).is_ok();
        });
        if !fits {
            return Err(MemMapError::TooManyRegions);
        }
        self.map.regions = merged;
        self.batch.clear();
        self.merges += 1;
        Ok(())
    }

    /// The normalized map of everything added (with [`MemoryMap::normalize`]'s policy when the
    /// result needs more than [`MAX_REGIONS`] regions).
    pub fn finish(self) -> MemoryMap {
        MemoryMap { regions: canonical(&[self.map.regions(), &self.batch]) }
    }
}

/// The canonical regions of `parts` taken together (see [`MemoryMap::normalize`] for what is
/// dropped when they do not fit).
fn canonical(parts: &[&[Region]]) -> heapless::Vec<Region, MAX_REGIONS> {
    let mut count = 0usize;
    let mut usable = 0usize;
    sweep(parts, |r| {
        count += 1;
        if r.kind == RegionKind::Usable {
            usable += 1;
        }
    });
    let keep_all = count <= MAX_REGIONS;
    let mut out = heapless::Vec::new();
    sweep(parts, |r| {
        if keep_all || r.kind == RegionKind::Usable {
            // Ignoring the error drops the highest usable regions only if there are more than
            // MAX_REGIONS of them (see `normalize`).
            let _ = out.push(r);
        }
    });
    if !keep_all {
        log::warn!(
            "memory map: {count} regions after resolving overlaps, kept only {} of {usable} usable ones",
            out.len()
        );
    }
    out
}

/// Most regions [`sweep`] takes at once: a full map plus a full batch of a [`Collector`].
const SWEEP_MAX: usize = 2 * MAX_REGIONS;

/// Walk the elementary intervals of the regions in `parts` (at most [`SWEEP_MAX`] of them; any
/// beyond are ignored) in address order and hand `emit` the canonical regions: each interval gets
/// the most restrictive kind covering it, touching intervals of the same kind are merged,
/// uncovered intervals are skipped. O(n log n): one sort of the 2n region boundaries, then one
/// pass that keeps, per kind, how many regions are open.
fn sweep(parts: &[&[Region]], mut emit: impl FnMut(Region)) {
    // (address, kind, opens): a region opens at `start` and closes at `end`.
    let mut events: heapless::Vec<(u64, RegionKind, bool), { 2 * SWEEP_MAX }> = heapless::Vec::new();
    for r in parts.iter().flat_map(|p| p.iter()).filter(|r| r.start < r.end) {
        if events.push((r.start, r.kind, true)).is_err() || events.push((r.end, r.kind, false)).is_err() {
            break;
        }
    }
    events.sort_unstable_by_key(|&(at, _, _)| at);
    let mut open = [0usize; RegionKind::ALL.len()];
    let mut pending: Option<Region> = None;
    let mut i = 0;
    while let Some(&(lo, _, _)) = events.get(i) {
        // Apply every boundary at `lo`, then the interval up to the next boundary has one kind.
        while let Some(&(at, kind, opens)) = events.get(i) {
            if at != lo {
                break;
            }
            if let Some(n) = open.get_mut(kind as usize) {
                *n = if opens { *n + 1 } else { n.saturating_sub(1) };
            }
            i += 1;
        }
        let Some(&(hi, _, _)) = events.get(i) else {
            break;
        };
        let kind = RegionKind::ALL.into_iter().rev().find(|&k| open.get(k as usize).is_some_and(|&n| n > 0));
        match (kind, pending.as_mut()) {
            (Some(k), Some(p)) if p.kind == k && p.end == lo => p.end = hi,
            (Some(k), _) => {
                if let Some(p) = pending.replace(Region { start: lo, end: hi, kind: k }) {
                    emit(p);
                }
            }
            (None, _) => {}
        }
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
        assert_eq!(m.add(u64::MAX - 1, 2, Usable), Err(MemMapError::AddressOverflow { start: u64::MAX - 1, len: 2 }));
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
        assert_eq!(m.usable_bytes(), 0xa_0000 + 0x10_0000 + (0x100_0000 - 0x20_1000));
        assert_eq!(m.max_usable_end(), 0x100_0000);
        let above: Vec<_> = m.usable_above(0x18_0000).collect();
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
        prop_oneof![Just(Usable), Just(AcpiReclaimable), Just(AcpiNvs), Just(Reserved), Just(Defective)]
    }

    /// Most restrictive kind covering byte `a` of the raw input, if any.
    fn oracle(input: &[Region], a: u64) -> Option<RegionKind> {
        input.iter().filter(|r| r.start <= a && a < r.end).map(|r| r.kind).max()
    }

    #[test]
    fn kinds_are_listed_in_restrictiveness_order() {
        for (i, k) in RegionKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
        assert!(RegionKind::ALL.windows(2).all(|w| w[0] < w[1]));
    }

    /// A fuzzing regression: a Multiboot2 map of ~43,000 entries, 127 distinct regions and then
    /// the same entry over and over, is the worst case for a map that is full. The collector
    /// merges once per full batch, so the work is linear in the entries (counted, not timed).
    #[test]
    fn a_huge_map_is_collected_in_linear_time() {
        let mut c = Collector::new();
        for i in 0..127u64 {
            c.add(i * 0x2000, 0x1000, Usable).unwrap();
        }
        for _ in 0..43_000 {
            c.add(0, 0x1000, Usable).unwrap();
        }
        let entries = 127 + 43_000;
        assert!(c.merges() <= entries / MAX_REGIONS, "{} merges for {entries} entries", c.merges());
        let m = c.finish();
        assert_eq!(m.regions().len(), 127);
    }

    #[test]
    fn collector_refuses_rather_than_dropping_midway() {
        // 129 disjoint reserved regions cannot be held; the next batch must not drop any.
        let mut c = Collector::new();
        let mut r = Ok(());
        for i in 0..(2 * MAX_REGIONS as u64 + 1) {
            r = r.and(c.add(i * 0x2000, 0x1000, Reserved));
        }
        assert_eq!(r, Err(MemMapError::TooManyRegions));
        // Up to MAX_REGIONS entries behave exactly as `normalize` (which drops only at the end).
        let mut c = Collector::new();
        let mut m = MemoryMap::new();
        m.add(0, 0x1000_0000, Usable).unwrap();
        c.add(0, 0x1000_0000, Usable).unwrap();
        for i in 0..127u64 {
            m.add(0x10_0000 + i * 0x2000, 0x1000, Reserved).unwrap();
            c.add(0x10_0000 + i * 0x2000, 0x1000, Reserved).unwrap();
        }
        m.normalize();
        assert_eq!(c.finish().regions(), m.regions());
    }

    proptest! {
        #[test]
        fn collector_matches_oracle(entries in proptest::collection::vec((0u64..64, 1u64..16, kind()), 0..400)) {
            let mut c = Collector::new();
            for &(s, l, k) in &entries {
                c.add(s * 0x1000, l * 0x1000, k).unwrap();
            }
            let raw: Vec<Region> = entries
                .iter()
                .map(|&(s, l, k)| r(s * 0x1000, (s + l) * 0x1000, k))
                .collect();
            let m = c.finish();
            let regs = m.regions();
            for w in regs.windows(2) {
                prop_assert!(w[0].end <= w[1].start);
                prop_assert!(!(w[0].end == w[1].start && w[0].kind == w[1].kind));
            }
            for page in 0..90u64 {
                let a = page * 0x1000;
                let got = regs.iter().find(|r| r.start <= a && a < r.end).map(|r| r.kind);
                prop_assert_eq!(got, oracle(&raw, a));
            }
        }

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
