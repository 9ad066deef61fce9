//! The physical frame allocator: hands out 4 KiB frames of usable RAM.
//!
//! State: a sorted list of disjoint, frame-aligned free ranges (lowest address first), a small
//! stack of individually freed frames, and a copy of the ranges the allocator manages at all.
//!
//! Invariants:
//! * every free frame is usable RAM at or above the floor given to [`FrameAllocator::new`] and
//!   outside every reserved range, and is either in exactly one free range or exactly once on
//!   the stack, never both;
//! * `free_frames() + allocated + lost == total_frames()`, where `lost` counts frames that had
//!   to be dropped because a fixed-capacity list was full (it stays 0 in practice and is
//!   reported by [`FrameAllocator::lost_frames`]);
//! * a frame is never handed out twice; freeing a frame that is not allocated (double free) or
//!   not managed (foreign) is refused without touching any state.
//!
//! Allocation is lowest-address first, so early page tables land in low memory, which the boot
//! code reaches through its identity map of the low 4 GiB.
#![forbid(unsafe_code)]

use core::ops::Range;

use super::memmap::{MAX_REGIONS, MemMapError, MemoryMap};

/// Size of one physical frame.
pub const FRAME_SIZE: u64 = 4096;

/// Capacity of the free-range list (a reserved range can split a usable region in two).
pub const MAX_FREE_RANGES: usize = MAX_REGIONS + 32;
/// Capacity of the stack of individually freed frames.
pub const FREE_STACK: usize = 64;

/// Why [`FrameAllocator::try_free`] refused a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// The address is not 4 KiB aligned.
    Misaligned(u64),
    /// The frame is not managed by this allocator.
    Foreign(u64),
    /// The frame is already free.
    DoubleFree(u64),
}

impl core::fmt::Display for FreeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Misaligned(a) => write!(f, "cannot free frame {a:#x}: not 4 KiB aligned"),
            Self::Foreign(a) => {
                write!(f, "cannot free frame {a:#x}: it is not managed by the frame allocator")
            }
            Self::DoubleFree(a) => write!(f, "cannot free frame {a:#x}: it is already free"),
        }
    }
}

/// Physical frame allocator; see the module documentation.
#[derive(Clone, Debug)]
pub struct FrameAllocator {
    free: heapless::Vec<Range<u64>, MAX_FREE_RANGES>,
    stack: heapless::Vec<u64, FREE_STACK>,
    managed: heapless::Vec<Range<u64>, MAX_FREE_RANGES>,
    free_frames: u64,
    total_frames: u64,
    lost_frames: u64,
}

const fn align_up(x: u64, a: u64) -> Option<u64> {
    match x.checked_add(a - 1) {
        Some(v) => Some(v & !(a - 1)),
        None => None,
    }
}

const fn align_down(x: u64, a: u64) -> u64 {
    x & !(a - 1)
}

const fn frames_in(r: &Range<u64>) -> u64 {
    (r.end - r.start) / FRAME_SIZE
}

impl FrameAllocator {
    /// Usable RAM at or above `floor` (the lead passes 1 MiB), minus every `reserved` range
    /// (kernel image, boot info, boot modules). Usable ranges are shrunk to whole frames,
    /// reserved ranges grown to whole frames. The map is normalized on a copy first, so an
    /// unnormalized map is handled correctly. Returns [`MemMapError::NoUsableAboveOneMiB`] when
    /// no frame remains.
    pub fn new(map: &MemoryMap, floor: u64, reserved: &[Range<u64>]) -> Result<Self, MemMapError> {
        let mut map = map.clone();
        map.normalize();
        let mut this = Self {
            free: heapless::Vec::new(),
            stack: heapless::Vec::new(),
            managed: heapless::Vec::new(),
            free_frames: 0,
            total_frames: 0,
            lost_frames: 0,
        };
        let reserved_frames =
            |r: &Range<u64>| align_down(r.start, FRAME_SIZE)..align_up(r.end, FRAME_SIZE).unwrap_or(u64::MAX);
        for usable in map.usable_above(floor) {
            let Some(start) = align_up(usable.start, FRAME_SIZE) else {
                continue;
            };
            let end = align_down(usable.end, FRAME_SIZE);
            let mut cursor = start;
            while cursor < end {
                // The lowest-starting reserved range that still overlaps [cursor, end).
                let next = reserved
                    .iter()
                    .filter(|r| r.start < r.end)
                    .map(reserved_frames)
                    .filter(|r| r.end > cursor && r.start < end)
                    .min_by_key(|r| r.start);
                let piece_end = next.as_ref().map_or(end, |r| r.start.max(cursor));
                if piece_end > cursor {
                    this.add_initial(cursor..piece_end);
                }
                match next {
                    Some(r) => cursor = r.end.max(cursor),
                    None => break,
                }
            }
        }
        if this.total_frames == 0 {
            return Err(MemMapError::NoUsableAboveOneMiB);
        }
        Ok(this)
    }

    fn add_initial(&mut self, r: Range<u64>) {
        // Usable regions are sorted and disjoint, and pieces are produced in address order.
        if self.free.is_full() {
            log::warn!("frame allocator: free-range list full, ignoring RAM {:#x}..{:#x}", r.start, r.end);
            return;
        }
        let n = frames_in(&r);
        self.total_frames += n;
        self.free_frames += n;
        let _ = self.managed.push(r.clone());
        let _ = self.free.push(r);
    }

    /// One free frame (4 KiB aligned physical address), lowest address first after the stack of
    /// recently freed frames.
    pub fn alloc(&mut self) -> Option<u64> {
        let frame = if let Some(f) = self.stack.pop() {
            f
        } else {
            let first = self.free.first_mut()?;
            let f = first.start;
            first.start += FRAME_SIZE;
            if first.start == first.end {
                self.free.remove(0);
            }
            f
        };
        self.free_frames -= 1;
        Some(frame)
    }

    /// `frames` physically contiguous frames starting at a multiple of `align` (a power of two
    /// ≥ 4096), first fit from low addresses. Frames on the freed-frame stack are not considered.
    /// Returns `None` for `frames == 0`, a bad `align`, or when no range fits.
    pub fn alloc_contiguous(&mut self, frames: u64, align: u64) -> Option<u64> {
        if frames == 0 || !align.is_power_of_two() || align < FRAME_SIZE {
            return None;
        }
        let bytes = frames.checked_mul(FRAME_SIZE)?;
        let (i, start) = self.free.iter().enumerate().find_map(|(i, r)| {
            let a = align_up(r.start, align)?;
            (a.checked_add(bytes)? <= r.end).then_some((i, a))
        })?;
        let r = self.free[i].clone();
        let head = r.start..start;
        let tail = start + bytes..r.end;
        match (head.is_empty(), tail.is_empty()) {
            (true, true) => {
                self.free.remove(i);
            }
            (true, false) => self.free[i] = tail,
            (false, true) => self.free[i] = head,
            (false, false) => {
                self.free[i] = tail;
                if self.free.insert(i, head.clone()).is_err() {
                    // The list is full: keep the head frames via the stack where possible.
                    let mut f = head.start;
                    while f < head.end {
                        if self.stack.push(f).is_err() {
                            let lost = (head.end - f) / FRAME_SIZE;
                            log::warn!("frame allocator: lost {lost} frames at {f:#x}");
                            self.lost_frames += lost;
                            self.free_frames -= lost;
                            break;
                        }
                        f += FRAME_SIZE;
                    }
                }
            }
        }
        self.free_frames -= frames;
        Some(start)
    }

    /// Return one frame. A misaligned, foreign or already free frame is refused with a warning
    /// and leaves the state untouched; see [`try_free`](Self::try_free) to observe the refusal.
    pub fn free(&mut self, phys: u64) {
        if let Err(e) = self.try_free(phys) {
            log::warn!("frame allocator: {e}");
        }
    }

    /// Return one frame, saying why it was refused if it was.
    pub fn try_free(&mut self, phys: u64) -> Result<(), FreeError> {
        if !phys.is_multiple_of(FRAME_SIZE) {
            return Err(FreeError::Misaligned(phys));
        }
        if find_containing(&self.managed, phys).is_none() {
            return Err(FreeError::Foreign(phys));
        }
        if find_containing(&self.free, phys).is_some() || self.stack.contains(&phys) {
            return Err(FreeError::DoubleFree(phys));
        }
        if self.stack.push(phys).is_err() {
            self.insert_free(phys);
        }
        self.free_frames += 1;
        Ok(())
    }

    /// Put one frame back into the range list, merging with neighbours.
    fn insert_free(&mut self, phys: u64) {
        let end = phys + FRAME_SIZE;
        // Index of the first range starting after `phys`.
        let i = self.free.partition_point(|r| r.start <= phys);
        let merge_prev = i > 0 && self.free[i - 1].end == phys;
        let merge_next = i < self.free.len() && self.free[i].start == end;
        match (merge_prev, merge_next) {
            (true, true) => {
                self.free[i - 1].end = self.free[i].end;
                self.free.remove(i);
            }
            (true, false) => self.free[i - 1].end = end,
            (false, true) => self.free[i].start = phys,
            (false, false) => {
                if self.free.insert(i, phys..end).is_err() {
                    log::warn!("frame allocator: lost frame {phys:#x} (range list full)");
                    self.lost_frames += 1;
                    // Balanced by the increment in try_free.
                    self.free_frames -= 1;
                }
            }
        }
    }

    /// Frames currently free.
    pub fn free_frames(&self) -> u64 {
        self.free_frames
    }

    /// Frames managed in total (free or allocated).
    pub fn total_frames(&self) -> u64 {
        self.total_frames
    }

    /// Frames dropped because a fixed-capacity list was full (normally 0).
    pub fn lost_frames(&self) -> u64 {
        self.lost_frames
    }

    /// The free ranges (sorted, disjoint); frames on the freed-frame stack are not included.
    pub fn free_ranges(&self) -> &[Range<u64>] {
        &self.free
    }
}

/// Index of the range in a sorted, disjoint list that contains `a`.
fn find_containing(list: &[Range<u64>], a: u64) -> Option<usize> {
    let i = list.partition_point(|r| r.start <= a);
    (i > 0 && list[i - 1].contains(&a)).then(|| i - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::memmap::RegionKind;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::vec::Vec;

    const MIB: u64 = 1 << 20;

    fn simple_map() -> MemoryMap {
        let mut m = MemoryMap::new();
        m.add(0, 0x9_fc00, RegionKind::Usable).unwrap();
        m.add(MIB, 7 * MIB, RegionKind::Usable).unwrap();
        m.add(8 * MIB, 0x1000, RegionKind::Reserved).unwrap();
        m.add(8 * MIB + 0x1000, 8 * MIB - 0x1000 + 0x800, RegionKind::Usable).unwrap();
        m.normalize();
        m
    }

    #[test]
    fn new_excludes_floor_reserved_and_partial_frames() {
        let fa =
            FrameAllocator::new(&simple_map(), MIB, std::slice::from_ref(&(2 * MIB + 5..2 * MIB + 0x1001))).unwrap();
        // 7 MiB + (8 MiB - 4 KiB) (the partial 0x800 tail is dropped) - 2 reserved frames.
        let expect = (7 * MIB + 8 * MIB - 0x1000) / FRAME_SIZE - 2;
        assert_eq!(fa.total_frames(), expect);
        assert_eq!(fa.free_frames(), expect);
        assert_eq!(fa.free_ranges(), &[MIB..2 * MIB, 2 * MIB + 0x2000..8 * MIB, 8 * MIB + 0x1000..16 * MIB]);
    }

    #[test]
    fn nothing_left_is_an_error() {
        let mut m = MemoryMap::new();
        m.add(0, 0x9_f000, RegionKind::Usable).unwrap();
        m.add(MIB, MIB, RegionKind::Usable).unwrap();
        m.normalize();
        assert_eq!(
            FrameAllocator::new(&m, MIB, std::slice::from_ref(&(0..4 * MIB))).unwrap_err(),
            MemMapError::NoUsableAboveOneMiB
        );
        assert!(FrameAllocator::new(&m, MIB, std::slice::from_ref(&(MIB..MIB))).is_ok());
    }

    #[test]
    fn double_and_foreign_free_are_refused() {
        let mut fa = FrameAllocator::new(&simple_map(), MIB, &[]).unwrap();
        let a = fa.alloc().unwrap();
        assert_eq!(a, MIB);
        let before = fa.free_frames();
        assert_eq!(fa.try_free(a + 1), Err(FreeError::Misaligned(a + 1)));
        assert_eq!(fa.try_free(0x1000), Err(FreeError::Foreign(0x1000)));
        assert_eq!(fa.try_free(8 * MIB), Err(FreeError::Foreign(8 * MIB)));
        assert_eq!(fa.try_free(a + FRAME_SIZE), Err(FreeError::DoubleFree(a + FRAME_SIZE)));
        assert_eq!(fa.free_frames(), before);
        fa.free(a);
        assert_eq!(fa.free_frames(), before + 1);
        fa.free(a); // refused, logged
        assert_eq!(fa.try_free(a), Err(FreeError::DoubleFree(a)));
        assert_eq!(fa.free_frames(), before + 1);
        assert_eq!(fa.alloc(), Some(a));
        assert_ne!(fa.alloc(), Some(a));
    }

    #[test]
    fn contiguous_alignment() {
        let mut fa = FrameAllocator::new(&simple_map(), MIB, &[]).unwrap();
        fa.alloc().unwrap();
        let total = fa.free_frames();
        let p = fa.alloc_contiguous(512, 2 * MIB).unwrap();
        assert_eq!(p, 2 * MIB);
        assert_eq!(fa.free_frames(), total - 512);
        assert_eq!(fa.alloc_contiguous(1, 3000), None);
        assert_eq!(fa.alloc_contiguous(0, 4096), None);
        assert_eq!(fa.alloc_contiguous(1 << 40, 4096), None);
        // The head below 2 MiB is still there.
        assert_eq!(fa.alloc(), Some(MIB + FRAME_SIZE));
    }

    #[test]
    fn stack_overflow_falls_back_to_ranges() {
        let mut fa = FrameAllocator::new(&simple_map(), MIB, &[]).unwrap();
        let total = fa.free_frames();
        let got: Vec<u64> = (0..200).map(|_| fa.alloc().unwrap()).collect();
        for &f in got.iter().step_by(2).chain(got.iter().skip(1).step_by(2)) {
            fa.try_free(f).unwrap();
        }
        assert_eq!(fa.free_frames(), total);
        assert_eq!(fa.lost_frames(), 0);
        let mut seen = BTreeSet::new();
        while let Some(f) = fa.alloc() {
            assert!(seen.insert(f));
        }
        assert_eq!(seen.len() as u64, total);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Alloc,
        Contig(u64, u32),
        Free(usize),
        FreeBogus(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Alloc),
            1 => (1u64..40, 12u32..23).prop_map(|(n, s)| Op::Contig(n, s)),
            3 => any::<usize>().prop_map(Op::Free),
            1 => (0u64..0x2000).prop_map(|p| Op::FreeBogus(p * FRAME_SIZE)),
        ]
    }

    proptest! {
        #[test]
        fn never_twice_never_outside(
            regions in proptest::collection::vec((0u64..0x1800, 1u64..0x300, 0u8..3), 1..12),
            reserved in proptest::collection::vec((0u64..0x1800, 0u64..0x80), 0..6),
            ops in proptest::collection::vec(op(), 0..400),
        ) {
            let mut m = MemoryMap::new();
            for &(s, l, k) in &regions {
                let kind = if k == 0 { RegionKind::Reserved } else { RegionKind::Usable };
                // Byte-granular, deliberately unaligned.
                m.add(s * 0x1000 + 0x123 * u64::from(k == 2), l * 0x1000, kind).unwrap();
            }
            let reserved: Vec<Range<u64>> = reserved.iter().map(|&(s, l)| s * 0x1000 + 7..(s + l) * 0x1000 + 9).collect();
            let floor = 0x100_000;
            let Ok(mut fa) = FrameAllocator::new(&m, floor, &reserved) else { return Ok(()) };
            let mut norm = m.clone();
            norm.normalize();
            let ok = |f: u64| -> bool {
                f.is_multiple_of(FRAME_SIZE)
                    && f >= floor
                    && norm.regions().iter().any(|r| r.kind == RegionKind::Usable && r.start <= f && f + FRAME_SIZE <= r.end)
                    && !reserved.iter().any(|r| r.start < f + FRAME_SIZE && f < r.end)
            };
            let total = fa.total_frames();
            let mut held: Vec<u64> = Vec::new();
            let mut held_set = BTreeSet::new();
            for o in ops {
                match o {
                    Op::Alloc => if let Some(f) = fa.alloc() {
                        prop_assert!(ok(f), "bad frame {:#x}", f);
                        prop_assert!(held_set.insert(f), "frame {:#x} handed out twice", f);
                        held.push(f);
                    },
                    Op::Contig(n, s) => if let Some(p) = fa.alloc_contiguous(n, 1 << s) {
                        prop_assert_eq!(p % (1 << s), 0);
                        for k in 0..n {
                            let f = p + k * FRAME_SIZE;
                            prop_assert!(ok(f), "bad frame {:#x}", f);
                            prop_assert!(held_set.insert(f), "frame {:#x} handed out twice", f);
                            held.push(f);
                        }
                    },
                    Op::Free(i) => if !held.is_empty() {
                        let f = held.swap_remove(i % held.len());
                        held_set.remove(&f);
                        prop_assert_eq!(fa.try_free(f), Ok(()));
                    },
                    Op::FreeBogus(f) => {
                        if !held_set.contains(&f) {
                            prop_assert!(fa.try_free(f).is_err());
                        }
                    }
                }
                prop_assert_eq!(fa.free_frames() + held.len() as u64 + fa.lost_frames(), total);
            }
            // Drain: everything left is distinct, valid and accounted for.
            while let Some(f) = fa.alloc() {
                prop_assert!(ok(f));
                prop_assert!(held_set.insert(f));
            }
            prop_assert_eq!(fa.free_frames(), 0);
            prop_assert_eq!(held_set.len() as u64 + fa.lost_frames(), total);
        }
    }
}
