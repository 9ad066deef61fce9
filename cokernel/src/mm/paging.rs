//! A 4-level x86_64 page-table builder over abstract physical memory.
//!
//! [`Mapper`] edits a page-table tree rooted at a PML4 frame. It never dereferences a physical
//! address directly: every table is reached through [`PhysMem::table_ptr`], so the same code
//! builds the kernel's tables at boot (through the identity map of low memory) and runs on the
//! host over a fake memory in tests.
//!
//! Invariants kept by the mapper:
//! * no leaf it creates is both writable and executable (W^X): [`Mapper::map`] refuses
//!   `WRITABLE` without `NO_EXECUTE` before it changes anything;
//! * intermediate entries it creates are `PRESENT | WRITABLE` (plus `USER_ACCESSIBLE` when the
//!   leaf is), never `GLOBAL` or `NO_EXECUTE`, so the leaf alone decides the access rights;
//! * it never replaces a present entry: mapping over an existing mapping is `AlreadyMapped`, and
//!   a 2 MiB leaf is only written into an empty page-directory slot;
//! * tables are read and written one entry at a time through raw pointers, so no two references
//!   to the same table are ever live, even if the tree maps itself (recursive entries).
//!
//! The mapper does not flush the TLB: when editing the live tree, the caller issues `invlpg`
//! (or reloads CR3) after [`Mapper::unmap_4k`] or any change to existing entries.

use core::fmt;

use x86_64::structures::paging::{PageTable, PageTableFlags};

/// How the builder reaches a page-table frame by its physical address.
pub trait PhysMem {
    /// A pointer to the 4 KiB table at physical address `phys` (4 KiB aligned).
    fn table_ptr(&self, phys: u64) -> *mut PageTable;
}

/// Why [`Mapper::map`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// `virt` or `phys` is not 4 KiB aligned, or the physical range reaches past 2^52.
    Misaligned {
        /// Requested virtual start.
        virt: u64,
        /// Requested physical start.
        phys: u64,
    },
    /// The virtual range is not wholly inside one canonical half; `virt` is the first
    /// offending address (or the start, if the range wraps around).
    NonCanonical {
        /// The offending virtual address.
        virt: u64,
    },
    /// A page in the range is already mapped; `virt` is the first such address.
    AlreadyMapped {
        /// The first mapped virtual address found.
        virt: u64,
    },
    /// The frame source ran dry (or yielded a misaligned frame) while building tables.
    OutOfFrames,
    /// The flags are `WRITABLE` without `NO_EXECUTE`.
    WriteAndExecute {
        /// Requested virtual start.
        virt: u64,
    },
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Misaligned { virt, phys } => write!(
                f,
                "cannot map virtual {virt:#x} to physical {phys:#x}: both must be 4 KiB aligned and the physical range must lie below 2^52"
            ),
            Self::NonCanonical { virt } => {
                write!(f, "virtual address {virt:#x} is not canonical, so it cannot be mapped")
            }
            Self::AlreadyMapped { virt } => {
                write!(f, "virtual address {virt:#x} is already mapped")
            }
            Self::OutOfFrames => {
                write!(f, "ran out of physical frames while building page tables")
            }
            Self::WriteAndExecute { virt } => {
                write!(f, "refused to map {virt:#x} writable and executable (W^X): add NO_EXECUTE or drop WRITABLE")
            }
        }
    }
}

const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const SIZE_4K: u64 = 1 << 12;
const SIZE_2M: u64 = 1 << 21;
const PHYS_LIMIT: u64 = 1 << 52;
const ENTRIES: usize = 512;

/// Bytes covered by one entry of a table at `level` (4 = PML4 … 1 = PT).
const fn span(level: u32) -> u64 {
    1 << (12 + 9 * (level - 1))
}

const fn index(virt: u64, level: u32) -> usize {
    ((virt >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

const fn is_canonical(virt: u64) -> bool {
    let top = virt >> 47;
    top == 0 || top == 0x1_ffff
}

const fn sign_extend(virt: u64) -> u64 {
    if virt & (1 << 47) != 0 { virt | 0xffff_0000_0000_0000 } else { virt }
}

fn flags_of(entry: u64) -> PageTableFlags {
    PageTableFlags::from_bits_truncate(entry)
}

const fn present(entry: u64) -> bool {
    entry & PageTableFlags::PRESENT.bits() != 0
}

const fn huge(entry: u64) -> bool {
    entry & PageTableFlags::HUGE_PAGE.bits() != 0
}

/// Builds and inspects a 4-level page-table tree; see the module documentation.
pub struct Mapper<M: PhysMem> {
    pml4: u64,
    mem: M,
}

impl<M: PhysMem> Mapper<M> {
    /// A mapper for the tree rooted at `pml4_phys`.
    ///
    /// # Safety
    /// `pml4_phys` is a zeroed or valid PML4 frame reachable through `mem` (and so is every
    /// table it references), and every frame any `frames` source passed to [`map`](Self::map)
    /// yields is free RAM reachable through `mem`, not used for anything else.
    pub unsafe fn new(pml4_phys: u64, mem: M) -> Self {
        Self { pml4: pml4_phys & ADDR_MASK, mem }
    }

    /// Physical address of the PML4 (the value for CR3).
    pub fn pml4_phys(&self) -> u64 {
        self.pml4
    }

    /// The physical-memory accessor.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    fn entry_ptr(&self, table: u64, idx: usize) -> *mut u64 {
        debug_assert!(idx < ENTRIES);
        // `PageTable` is `repr(C)` over 512 transparent `u64` entries.
        self.mem.table_ptr(table).cast::<u64>().wrapping_add(idx)
    }

    fn read(&self, table: u64, idx: usize) -> u64 {
        let p = self.entry_ptr(table, idx);
        // SAFETY: `table` is the PML4 or a table referenced from the tree, all of which the
        // contract of `new` makes reachable through `mem`; `idx < 512` keeps the read inside it.
        unsafe { p.read() }
    }

    fn write(&mut self, table: u64, idx: usize, value: u64) {
        let p = self.entry_ptr(table, idx);
        // SAFETY: as in `read`; the tables are ours to edit by the contract of `new`, and no
        // reference to the table is live while we write.
        unsafe { p.write(value) }
    }

    /// Map [virt, virt+len) → [phys, phys+len).
    ///
    /// `len` is rounded up to whole 4 KiB pages; `len == 0` does nothing. `PRESENT` is always
    /// added to `flags` and `HUGE_PAGE` is ignored (the mapper sets it for 2 MiB leaves itself;
    /// in a 4 KiB entry that bit would mean PAT). 2 MiB pages are used where `allow_huge` and
    /// both addresses and the remaining length allow it and the page-directory slot is empty;
    /// 4 KiB pages otherwise. New intermediate tables come from `frames`, are zeroed here and get
    /// `PRESENT | WRITABLE` (and `USER_ACCESSIBLE` when the leaf has it; existing intermediate
    /// entries get `WRITABLE` / `USER_ACCESSIBLE` added if the leaf needs them).
    ///
    /// Checked before anything is changed: alignment, canonical range, W^X (`WRITABLE` without
    /// `NO_EXECUTE` → [`MapError::WriteAndExecute`]) and that no page of the range is mapped
    /// ([`MapError::AlreadyMapped`]). [`MapError::OutOfFrames`] however can strike halfway: the
    /// pages mapped and tables allocated before that are not rolled back.
    pub fn map(
        &mut self,
        virt: u64,
        phys: u64,
        len: u64,
        flags: PageTableFlags,
        allow_huge: bool,
        frames: &mut dyn FnMut() -> Option<u64>,
    ) -> Result<(), MapError> {
        if len == 0 {
            return Ok(());
        }
        if !virt.is_multiple_of(SIZE_4K) || !phys.is_multiple_of(SIZE_4K) {
            return Err(MapError::Misaligned { virt, phys });
        }
        if !is_canonical(virt) {
            return Err(MapError::NonCanonical { virt });
        }
        let len = len.checked_next_multiple_of(SIZE_4K).ok_or(MapError::NonCanonical { virt })?;
        let last = virt.checked_add(len - 1).ok_or(MapError::NonCanonical { virt })?;
        if last >> 47 != virt >> 47 {
            return Err(MapError::NonCanonical { virt: 1 << 47 });
        }
        if phys.checked_add(len).is_none_or(|end| end > PHYS_LIMIT) {
            return Err(MapError::Misaligned { virt, phys });
        }
        let flags = (flags | PageTableFlags::PRESENT) - PageTableFlags::HUGE_PAGE;
        if flags.contains(PageTableFlags::WRITABLE) && !flags.contains(PageTableFlags::NO_EXECUTE) {
            return Err(MapError::WriteAndExecute { virt });
        }
        if let Some(v) = self.first_mapped(virt, last) {
            return Err(MapError::AlreadyMapped { virt: v });
        }

        let mut off = 0;
        while off < len {
            let (v, p) = (virt + off, phys + off);
            let huge_fits = allow_huge && v % SIZE_2M == 0 && p % SIZE_2M == 0 && len - off >= SIZE_2M;
            let pd = self.descend_create(self.pml4, v, 4, 2, flags, frames)?;
            let pde = self.read(pd, index(v, 2));
            if huge_fits && !present(pde) {
                self.write(pd, index(v, 2), p | (flags | PageTableFlags::HUGE_PAGE).bits());
                off += SIZE_2M;
            } else {
                let pt = self.descend_create(pd, v, 2, 1, flags, frames)?;
                let i = index(v, 1);
                if present(self.read(pt, i)) {
                    return Err(MapError::AlreadyMapped { virt: v });
                }
                self.write(pt, i, p | flags.bits());
                off += SIZE_4K;
            }
        }
        Ok(())
    }

    /// From the table at `level`, walk (creating tables as needed) down to the table at
    /// `target` level covering `virt`, and return its physical address.
    fn descend_create(
        &mut self,
        mut table: u64,
        virt: u64,
        mut level: u32,
        target: u32,
        leaf: PageTableFlags,
        frames: &mut dyn FnMut() -> Option<u64>,
    ) -> Result<u64, MapError> {
        let mut need = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
        if leaf.contains(PageTableFlags::USER_ACCESSIBLE) {
            need |= PageTableFlags::USER_ACCESSIBLE;
        }
        while level > target {
            let i = index(virt, level);
            let e = self.read(table, i);
            table = if present(e) {
                if huge(e) {
                    return Err(MapError::AlreadyMapped { virt });
                }
                if !flags_of(e).contains(need) {
                    self.write(table, i, e | need.bits());
                }
                e & ADDR_MASK
            } else {
                let frame = frames().ok_or(MapError::OutOfFrames)?;
                if !frame.is_multiple_of(SIZE_4K) || frame >= PHYS_LIMIT {
                    return Err(MapError::OutOfFrames);
                }
                for k in 0..ENTRIES {
                    self.write(frame, k, 0);
                }
                self.write(table, i, frame | need.bits());
                frame
            };
            level -= 1;
        }
        Ok(table)
    }

    /// The lowest address in `[virt, last]` that a present leaf covers, if any.
    fn first_mapped(&self, virt: u64, last: u64) -> Option<u64> {
        let mut addr = virt;
        'outer: loop {
            let mut table = self.pml4;
            for level in (1..=4).rev() {
                let e = self.read(table, index(addr, level));
                let leaf = level == 1 || (level <= 3 && huge(e));
                if present(e) && leaf {
                    return Some(addr);
                }
                if !present(e) || huge(e) {
                    // Nothing mapped in the rest of this entry's span.
                    let next = (addr | (span(level) - 1)).checked_add(1)?;
                    if next > last {
                        return None;
                    }
                    addr = next;
                    continue 'outer;
                }
                table = e & ADDR_MASK;
            }
        }
    }

    /// Physical address and leaf flags for `virt` (handles 4 KiB, 2 MiB and 1 GiB leaves). The
    /// flags are the leaf entry's own; `HUGE_PAGE` in them marks a 2 MiB / 1 GiB leaf.
    pub fn translate(&self, virt: u64) -> Option<(u64, PageTableFlags)> {
        if !is_canonical(virt) {
            return None;
        }
        let mut table = self.pml4;
        for level in (1..=4).rev() {
            let e = self.read(table, index(virt, level));
            if !present(e) {
                return None;
            }
            let size = span(level);
            if level == 1 || (huge(e) && (level == 2 || level == 3)) {
                let base = e & ADDR_MASK & !(size - 1);
                return Some((base + (virt & (size - 1)), flags_of(e)));
            }
            if huge(e) {
                return None; // HUGE_PAGE in a PML4 entry is reserved.
            }
            table = e & ADDR_MASK;
        }
        None
    }

    /// Unmap one 4 KiB page (used to punch guard pages) and return its old physical address.
    /// `virt` is rounded down to its page. Returns `None` when the page is not mapped or is part
    /// of a huge leaf (huge pages are not split). Tables are not freed; the TLB is not flushed.
    pub fn unmap_4k(&mut self, virt: u64) -> Option<u64> {
        if !is_canonical(virt) {
            return None;
        }
        let mut table = self.pml4;
        for level in (2..=4).rev() {
            let e = self.read(table, index(virt, level));
            if !present(e) || huge(e) {
                return None;
            }
            table = e & ADDR_MASK;
        }
        let i = index(virt, 1);
        let e = self.read(table, i);
        if !present(e) {
            return None;
        }
        self.write(table, i, 0);
        Some(e & ADDR_MASK)
    }

    /// Visit every present leaf in address order: `(virt, phys, size, flags)` with `size` 4 KiB,
    /// 2 MiB or 1 GiB and the leaf entry's own flags (as [`translate`](Self::translate)).
    pub fn for_each_leaf(&self, f: &mut dyn FnMut(u64, u64, u64, PageTableFlags)) {
        self.walk(self.pml4, 4, 0, f);
    }

    fn walk(&self, table: u64, level: u32, base: u64, f: &mut dyn FnMut(u64, u64, u64, PageTableFlags)) {
        let size = span(level);
        for i in 0..ENTRIES {
            let e = self.read(table, i);
            if !present(e) {
                continue;
            }
            let virt = sign_extend(base + i as u64 * size);
            if level == 1 || (huge(e) && (level == 2 || level == 3)) {
                f(virt, e & ADDR_MASK & !(size - 1), size, flags_of(e));
            } else if !huge(e) {
                self.walk(e & ADDR_MASK, level - 1, virt, f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::UnsafeCell;
    use proptest::prelude::*;
    use std::boxed::Box;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    const POOL_BASE: u64 = 0x7_0000_0000;
    const SIZE_1G: u64 = 1 << 30;

    /// Fake physical memory: a pool of tables at `POOL_BASE`.
    struct Pool {
        tables: Box<[UnsafeCell<PageTable>]>,
    }

    impl Pool {
        fn new(n: usize) -> Self {
            Self { tables: (0..n).map(|_| UnsafeCell::new(PageTable::new())).collect() }
        }
    }

    impl PhysMem for &Pool {
        fn table_ptr(&self, phys: u64) -> *mut PageTable {
            assert_eq!(phys % SIZE_4K, 0);
            let i = usize::try_from((phys - POOL_BASE) / SIZE_4K).unwrap();
            self.tables[i].get()
        }
    }

    /// A frame source handing out pool frames 1.. in order.
    fn source(pool: &Pool) -> impl FnMut() -> Option<u64> + '_ {
        let mut next = 1u64;
        move || {
            (next < pool.tables.len() as u64).then(|| {
                next += 1;
                POOL_BASE + (next - 1) * SIZE_4K
            })
        }
    }

    fn mapper(pool: &Pool) -> Mapper<&Pool> {
        // SAFETY: frame 0 of the pool is a zeroed table, and all frames handed out by `source`
        // come from the same pool.
        unsafe { Mapper::new(POOL_BASE, pool) }
    }

    fn leaves(m: &Mapper<&Pool>) -> Vec<(u64, u64, u64, PageTableFlags)> {
        let mut v = Vec::new();
        m.for_each_leaf(&mut |a, b, c, d| v.push((a, b, c, d)));
        v
    }

    const RW: PageTableFlags = PageTableFlags::WRITABLE.union(PageTableFlags::NO_EXECUTE);

    #[test]
    fn huge_and_small_pages() {
        let pool = Pool::new(32);
        let mut m = mapper(&pool);
        let mut frames = source(&pool);
        // 4 KiB + 2 MiB + 4 KiB, with matching 2 MiB alignment in the middle.
        let virt = 0xffff_8000_0000_0000 + SIZE_2M - SIZE_4K;
        let phys = 0x4000_0000 + SIZE_2M - SIZE_4K;
        m.map(virt, phys, SIZE_2M + 2 * SIZE_4K, RW, true, &mut frames).unwrap();
        let l = leaves(&m);
        assert_eq!(l.len(), 3);
        assert_eq!((l[0].0, l[0].1, l[0].2), (virt, phys, SIZE_4K));
        assert_eq!((l[1].0, l[1].1, l[1].2), (virt + SIZE_4K, phys + SIZE_4K, SIZE_2M));
        assert!(l[1].3.contains(PageTableFlags::HUGE_PAGE | RW | PageTableFlags::PRESENT));
        assert_eq!(m.translate(virt + SIZE_4K + 0x12345), Some((phys + SIZE_4K + 0x12345, l[1].3)));
        assert_eq!(m.translate(virt - 1), None);
        // No huge page without permission.
        m.map(0x20_0000, 0x20_0000, SIZE_2M, PageTableFlags::empty(), false, &mut frames).unwrap();
        assert_eq!(leaves(&m).len(), 3 + 512);
        assert_eq!(m.translate(0x20_0000 + 5), Some((0x20_0005, PageTableFlags::PRESENT)));
    }

    #[test]
    fn refusals_change_nothing() {
        let pool = Pool::new(16);
        let mut m = mapper(&pool);
        let mut frames = source(&pool);
        let rwx = PageTableFlags::WRITABLE;
        assert_eq!(
            m.map(0x1000, 0x1000, 0x1000, rwx, true, &mut frames),
            Err(MapError::WriteAndExecute { virt: 0x1000 })
        );
        assert_eq!(
            m.map(0x1001, 0x1000, 0x1000, RW, true, &mut frames),
            Err(MapError::Misaligned { virt: 0x1001, phys: 0x1000 })
        );
        assert_eq!(
            m.map(0x1000, 0x10, 0x1000, RW, true, &mut frames),
            Err(MapError::Misaligned { virt: 0x1000, phys: 0x10 })
        );
        assert_eq!(
            m.map(0x1000, PHYS_LIMIT - 0x1000, 0x2000, RW, true, &mut frames),
            Err(MapError::Misaligned { virt: 0x1000, phys: PHYS_LIMIT - 0x1000 })
        );
        assert_eq!(m.map(1 << 47, 0, 0x1000, RW, true, &mut frames), Err(MapError::NonCanonical { virt: 1 << 47 }));
        assert_eq!(
            m.map((1 << 47) - 0x1000, 0, 0x2000, RW, true, &mut frames),
            Err(MapError::NonCanonical { virt: 1 << 47 })
        );
        assert_eq!(
            m.map(0xffff_ffff_ffff_f000, 0, 0x2000, RW, true, &mut frames),
            Err(MapError::NonCanonical { virt: 0xffff_ffff_ffff_f000 })
        );
        assert!(leaves(&m).is_empty());
        assert_eq!(frames(), Some(POOL_BASE + SIZE_4K), "no frame was consumed");
        // The very last page of the address space is fine.
        m.map(0xffff_ffff_ffff_f000, 0x5000, 0x1000, PageTableFlags::empty(), true, &mut frames).unwrap();
        assert_eq!(m.translate(0xffff_ffff_ffff_ffff), Some((0x5fff, PageTableFlags::PRESENT)));
        assert!(std::format!("{}", MapError::WriteAndExecute { virt: 0x1000 }).contains("0x1000"));
    }

    #[test]
    fn already_mapped_and_out_of_frames() {
        let pool = Pool::new(8);
        let mut m = mapper(&pool);
        let mut frames = source(&pool);
        m.map(0x4000_0000, 0, SIZE_2M, RW, true, &mut frames).unwrap();
        assert_eq!(
            m.map(0x4000_0000 + 0x3000, 0, 0x1000, RW, true, &mut frames),
            Err(MapError::AlreadyMapped { virt: 0x4000_3000 })
        );
        assert_eq!(
            m.map(0x4000_0000 - 0x2000, 0, 0x4000, RW, true, &mut frames),
            Err(MapError::AlreadyMapped { virt: 0x4000_0000 })
        );
        let mut none = || None;
        assert_eq!(m.map(0x8000_0000, 0, 0x1000, RW, true, &mut none), Err(MapError::OutOfFrames));
        let mut bad = || Some(0x123);
        assert_eq!(m.map(0x8000_0000, 0, 0x1000, RW, true, &mut bad), Err(MapError::OutOfFrames));
    }

    #[test]
    fn unmap_punches_guard_pages() {
        let pool = Pool::new(16);
        let mut m = mapper(&pool);
        let mut frames = source(&pool);
        m.map(0x10_0000, 0x80_0000, 4 * SIZE_4K, RW, true, &mut frames).unwrap();
        assert_eq!(m.unmap_4k(0x10_1000 + 7), Some(0x80_1000));
        assert_eq!(m.unmap_4k(0x10_1000), None);
        assert_eq!(m.translate(0x10_1000), None);
        assert_eq!(m.translate(0x10_2000).map(|t| t.0), Some(0x80_2000));
        m.map(0x10_1000, 0x90_0000, SIZE_4K, RW, true, &mut frames).unwrap();
        assert_eq!(m.translate(0x10_1000).map(|t| t.0), Some(0x90_0000));
        // Huge leaves are not split.
        m.map(0x4000_0000, 0, SIZE_2M, RW, true, &mut frames).unwrap();
        assert_eq!(m.unmap_4k(0x4000_1000), None);
        assert_eq!(m.translate(0x4000_1000).map(|t| t.0), Some(0x1000));
        // A 2 MiB map over an emptied page table falls back to 4 KiB pages.
        for k in 0..4 {
            m.unmap_4k(0x10_0000 + k * SIZE_4K);
        }
        m.map(0, 0, SIZE_2M, RW, true, &mut frames).unwrap();
        assert!(leaves(&m).iter().filter(|l| l.0 < SIZE_2M).all(|l| l.2 == SIZE_4K));
    }

    #[test]
    fn gigabyte_leaf_and_existing_tables() {
        let pool = Pool::new(16);
        // Hand-build PML4[0] → PDPT (frame 1) with a 1 GiB leaf at PDPT[1].
        // SAFETY: the pool is exclusively ours and no mapper exists yet.
        unsafe {
            let pml4 = &mut *pool.tables[0].get();
            pml4[0].set_addr(x86_64::PhysAddr::new(POOL_BASE + SIZE_4K), PageTableFlags::PRESENT);
            let pdpt = &mut *pool.tables[1].get();
            pdpt[1].set_addr(x86_64::PhysAddr::new(0x1_0000_0000), PageTableFlags::PRESENT | PageTableFlags::HUGE_PAGE);
        }
        let mut m = mapper(&pool);
        let mut next = 2u64;
        let mut frames = move || {
            next += 1;
            Some(POOL_BASE + (next - 1) * SIZE_4K)
        };
        let t = m.translate(SIZE_1G + 0x1234_5678).unwrap();
        assert_eq!(t.0, 0x1_1234_5678);
        assert_eq!(leaves(&m), [(SIZE_1G, 0x1_0000_0000, SIZE_1G, t.1)]);
        assert_eq!(
            m.map(SIZE_1G + SIZE_2M, 0, 0x1000, RW, true, &mut frames),
            Err(MapError::AlreadyMapped { virt: SIZE_1G + SIZE_2M })
        );
        // Mapping writable under the read-only PML4 entry makes the intermediate writable.
        m.map(0x1000, 0x1000, 0x1000, RW | PageTableFlags::USER_ACCESSIBLE, true, &mut frames).unwrap();
        // SAFETY: the mapper only touches the pool through short-lived raw accesses.
        let pml4e = unsafe { (&*pool.tables[0].get())[0].flags() };
        assert!(pml4e.contains(PageTableFlags::WRITABLE | PageTableFlags::USER_ACCESSIBLE));
        assert!(!pml4e.contains(PageTableFlags::NO_EXECUTE));
    }

    #[derive(Clone, Debug)]
    struct Req {
        virt: u64,
        phys: u64,
        pages: u64,
        huge: bool,
        flags: PageTableFlags,
    }

    fn req() -> impl Strategy<Value = Req> {
        let bases = prop_oneof![Just(0x4000_0000u64), Just(0xffff_8000_0000_0000), Just(0x7fff_f000_0000)];
        let flags = prop_oneof![
            Just(PageTableFlags::empty()),
            Just(RW),
            Just(PageTableFlags::NO_EXECUTE),
            Just(RW | PageTableFlags::GLOBAL),
            Just(PageTableFlags::USER_ACCESSIBLE),
        ];
        (bases, 0u64..4096, 1u64..1100, any::<bool>(), any::<bool>(), 0u64..64, flags).prop_map(
            |(base, slot, pages, huge, same_align, pslot, flags)| {
                let virt = base + slot * SIZE_4K;
                let phys = if same_align { pslot * SIZE_2M + virt % SIZE_2M } else { pslot * 0x7000 };
                Req { virt, phys, pages, huge, flags }
            },
        )
    }

    proptest! {
        #[test]
        fn map_translate_leaves_agree(reqs in proptest::collection::vec(req(), 1..8), probes in proptest::collection::vec(0u64..SIZE_4K, 8)) {
            let pool = Pool::new(160);
            let mut m = mapper(&pool);
            let mut frames = source(&pool);
            let mut model: BTreeMap<u64, (u64, PageTableFlags)> = BTreeMap::new();
            for r in &reqs {
                let len = r.pages * SIZE_4K;
                let first = (0..r.pages).map(|k| r.virt + k * SIZE_4K).find(|p| model.contains_key(p));
                let got = m.map(r.virt, r.phys, len, r.flags, r.huge, &mut frames);
                match first {
                    Some(v) => prop_assert_eq!(got, Err(MapError::AlreadyMapped { virt: v })),
                    None => {
                        prop_assert_eq!(got, Ok(()));
                        for k in 0..r.pages {
                            model.insert(r.virt + k * SIZE_4K, (r.phys + k * SIZE_4K, r.flags | PageTableFlags::PRESENT));
                        }
                    }
                }
            }
            // translate(map(x)) == x
            for (i, (&v, &(p, fl))) in model.iter().enumerate() {
                let off = probes[i % probes.len()];
                let (tp, tf) = m.translate(v + off).expect("mapped page translates");
                prop_assert_eq!(tp, p + off);
                prop_assert_eq!(tf - PageTableFlags::HUGE_PAGE, fl);
            }
            // for_each_leaf covers exactly what was mapped, and never W+X.
            let mut seen: BTreeMap<u64, (u64, PageTableFlags)> = BTreeMap::new();
            m.for_each_leaf(&mut |v, p, size, fl| {
                assert!(!fl.contains(PageTableFlags::WRITABLE) || fl.contains(PageTableFlags::NO_EXECUTE), "W+X leaf");
                assert_eq!(v % size, 0);
                assert_eq!(p % size, 0);
                for k in 0..size / SIZE_4K {
                    assert!(seen.insert(v + k * SIZE_4K, (p + k * SIZE_4K, fl - PageTableFlags::HUGE_PAGE)).is_none());
                }
            });
            prop_assert_eq!(seen, model.clone());
            // Unmapped neighbours stay unmapped.
            for r in &reqs {
                let before = r.virt.wrapping_sub(SIZE_4K);
                if is_canonical(before) && !model.contains_key(&before) {
                    prop_assert_eq!(m.translate(before), None);
                }
            }
        }
    }
}
