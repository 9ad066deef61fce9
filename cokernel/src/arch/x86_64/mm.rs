//! The co-kernel's address space.
//!
//! Layout (all inside PML4 slots 256..271, Linux's "guard hole reserved for hypervisor", so the
//! same top-level entries are copied into every Linux page table: [`share_top_level`], the
//! handoff's `pgd`):
//!
//! | virtual                   | what                                                     |
//! |---------------------------|----------------------------------------------------------|
//! | `0xffff_8000_0000_0000` + phys | the co-kernel image: text RX, rodata R, data/bss RW+NX |
//! | `0xffff_8100_0000_0000`   | heap (RW+NX)                                             |
//! | `0xffff_8200_0000_0000`   | stacks, one per 1 MiB slot, each behind an unmapped guard page |
//! | `0xffff_8400_0000_0000` + phys | direct map of RAM and ACPI memory (RW+NX)           |
//! | `0xffff_8600_0000_0000`   | MMIO and firmware-table windows (NX; MMIO uncached)      |
//!
//! Nothing is both writable and executable (the page-table builder refuses it), and the low
//! identity map of the boot trampoline is gone once [`init`] switches CR3.

use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;
use x86_64::PhysAddr;
use x86_64::registers::control::{Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::structures::paging::{PageTable, PageTableFlags as F, PhysFrame};

use crate::mm::frame::{FRAME_SIZE, FrameAllocator};
use crate::mm::memmap::{MemoryMap, RegionKind};
use crate::mm::paging::{MapError, Mapper, PhysMem};

/// Physical address the co-kernel image is loaded at (1 MiB; `boot/linker.ld`).
pub const KERNEL_PHYS_BASE: u64 = 0x10_0000;
/// Where the image is linked: virtual = `KERNEL_VIRT_BASE` + physical (PML4 slot 256).
pub const KERNEL_VIRT_BASE: u64 = 0xffff_8000_0000_0000;
/// Start of the heap's virtual range.
pub const HEAP_BASE: u64 = 0xffff_8100_0000_0000;
/// Bytes of heap (the `#[global_allocator]`), physically contiguous, mapped by [`init`].
pub const HEAP_SIZE: u64 = 8 << 20;
/// Start of the stack slots: slot `n` spans `STACKS_BASE + n * STACK_STRIDE` and holds a
/// guard page, then a stack of [`STACK_SIZE`].
pub const STACKS_BASE: u64 = 0xffff_8200_0000_0000;
/// Virtual distance between two stack slots.
pub const STACK_STRIDE: u64 = 1 << 20;
/// Bytes of one kernel stack (task stacks, IST stacks, the take-over stack).
pub const STACK_SIZE: u64 = 64 << 10;
/// The direct map: physical address `p` of RAM or ACPI memory is at `PHYS_MAP_BASE + p` after
/// [`init`].
pub const PHYS_MAP_BASE: u64 = 0xffff_8400_0000_0000;
/// Start of the windows onto device registers and firmware tables ([`map_mmio`], [`map_phys`]).
pub const MMIO_BASE: u64 = 0xffff_8600_0000_0000;
/// The boot page tables alias the low 4 GiB at KERNEL_VIRT_BASE.
const BOOT_ALIAS_LIMIT: u64 = 4 << 30;

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __data_end: u8;
    static __boot_stack_guard: u8;
    static __boot_stack_bottom: u8;
    static __boot_stack_top: u8;
    static __guest_test_start: u8;
    static __guest_test_end: u8;
}

macro_rules! sym {
    ($s:ident) => {
        core::ptr::addr_of!($s) as u64
    };
}

/// Linker-defined boundaries of the image (virtual addresses).
#[derive(Clone, Copy, Debug)]
pub struct ImageLayout {
    /// Code: `[start, end)`, mapped read-only and executable.
    pub text: (u64, u64),
    /// Read-only data: `[start, end)`, mapped read-only, not executable.
    pub rodata: (u64, u64),
    /// Data and bss: `[start, end)`, mapped writable, not executable (except the guard page).
    pub data: (u64, u64),
    /// The unmapped page below the boot stack.
    pub boot_stack_guard: u64,
    /// The boot stack: `[bottom, top)`.
    pub boot_stack: (u64, u64),
}

/// The image's boundaries, from the linker script's symbols.
pub fn image_layout() -> ImageLayout {
    ImageLayout {
        text: (sym!(__text_start), sym!(__text_end)),
        rodata: (sym!(__rodata_start), sym!(__rodata_end)),
        data: (sym!(__data_start), sym!(__data_end)),
        boot_stack_guard: sym!(__boot_stack_guard),
        boot_stack: (sym!(__boot_stack_bottom), sym!(__boot_stack_top)),
    }
}

/// Whether `rip` is co-kernel code (the in-kernel tests' synthetic guest excluded).
pub fn is_cokernel_code(rip: u64) -> bool {
    let l = image_layout();
    (l.text.0..l.text.1).contains(&rip) && !(sym!(__guest_test_start)..sym!(__guest_test_end)).contains(&rip)
}

/// Physical bytes the image occupies (boot trampoline included).
pub fn image_phys() -> Range<u64> {
    KERNEL_PHYS_BASE..sym!(__data_end) - KERNEL_VIRT_BASE
}

/// Where physical memory is reachable: the boot alias until `init`, the direct map after.
static PHYS_OFFSET: AtomicU64 = AtomicU64::new(KERNEL_VIRT_BASE);
/// The co-kernel's own top-level page table (physical), once `init` built it.
static KERNEL_PML4: AtomicU64 = AtomicU64::new(0);

/// The co-kernel's own top-level page table (physical).
pub fn kernel_pml4() -> u64 {
    KERNEL_PML4.load(Ordering::Relaxed)
}
static STACK_SLOTS: AtomicU64 = AtomicU64::new(0);

/// Where physical `phys` is reachable now: the boot alias before [`init`], the direct map after.
/// Unchecked: the caller knows the address is mapped (see [`phys_to_virt_checked`]).
pub fn phys_to_virt(phys: u64) -> u64 {
    PHYS_OFFSET.load(Ordering::Relaxed) + phys
}

/// `phys..phys+len` through the boot alias or the direct map, if it is mapped there.
pub fn phys_to_virt_checked(phys: u64, len: u64) -> Option<u64> {
    let end = phys.checked_add(len)?;
    if PHYS_OFFSET.load(Ordering::Relaxed) == KERNEL_VIRT_BASE {
        return (end <= BOOT_ALIAS_LIMIT).then(|| phys_to_virt(phys));
    }
    let space = SPACE.try_lock()?;
    let s = space.as_ref()?;
    s.direct.iter().any(|r| r.start <= phys && end <= r.end).then(|| phys_to_virt(phys))
}

/// The page-table builder's view of physical memory: through [`phys_to_virt`].
#[derive(Clone, Copy)]
pub struct Direct;

impl PhysMem for Direct {
    fn table_ptr(&self, phys: u64) -> *mut PageTable {
        phys_to_virt(phys) as *mut PageTable
    }
}

struct Space {
    mapper: Mapper<Direct>,
    frames: FrameAllocator,
    mmio_next: u64,
    direct: heapless::Vec<Range<u64>, 136>,
}

static SPACE: Mutex<Option<Space>> = Mutex::new(None);

/// What `init` built, for the boot record and the tests.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    /// Physical address of the co-kernel's PML4.
    pub page_table_root: u64,
    /// Bytes the direct map covers (the first MiB, RAM and ACPI memory, page-rounded).
    pub direct_map_bytes: u64,
    /// Frames left in the allocator once the heap and the tables were taken.
    pub free_frames: u64,
    /// Frames the allocator manages.
    pub total_frames: u64,
}

const KERNEL_TEXT: F = F::PRESENT.union(F::GLOBAL);
const KERNEL_RO: F = F::PRESENT.union(F::GLOBAL).union(F::NO_EXECUTE);
const KERNEL_RW: F = F::PRESENT.union(F::GLOBAL).union(F::NO_EXECUTE).union(F::WRITABLE);
const MMIO: F = KERNEL_RW.union(F::NO_CACHE).union(F::WRITE_THROUGH);

/// Builds the real page tables, switches to them, and sets up the heap.
pub fn init(map: &MemoryMap, modules: &[Range<u64>], mut frames: FrameAllocator) -> Result<Stats, MapError> {
    let pml4 = frames.alloc().ok_or(MapError::OutOfFrames)?;
    assert!(pml4 + FRAME_SIZE <= BOOT_ALIAS_LIMIT, "page-table frames must be below 4 GiB at boot");
    // SAFETY: a fresh frame, reachable through the boot alias (checked above).
    unsafe { core::ptr::write_bytes(phys_to_virt(pml4) as *mut u8, 0, FRAME_SIZE as usize) };
    // SAFETY: the root is zeroed, and every frame handed to the mapper comes from the allocator.
    let mut mapper = unsafe { Mapper::new(pml4, Direct) };
    let mut next = || frames.alloc();
    let l = image_layout();
    let v2p = |v: u64| v - KERNEL_VIRT_BASE;

    mapper.map(l.text.0, v2p(l.text.0), l.text.1 - l.text.0, KERNEL_TEXT, false, &mut next)?;
    mapper.map(l.rodata.0, v2p(l.rodata.0), l.rodata.1 - l.rodata.0, KERNEL_RO, false, &mut next)?;
    mapper.map(l.data.0, v2p(l.data.0), l.boot_stack_guard - l.data.0, KERNEL_RW, false, &mut next)?;
    let after_guard = l.boot_stack_guard + FRAME_SIZE;
    mapper.map(after_guard, v2p(after_guard), l.data.1 - after_guard, KERNEL_RW, false, &mut next)?;

    // Direct map: the first MiB (BIOS data, EBDA, VGA text), all RAM and ACPI memory, and the
    // boot modules (RAM the loader put them in, which a firmware map may not call usable: QEMU
    // puts a PVH module right below its ACPI data, past the last usable byte it reports).
    let mut wanted: heapless::Vec<Range<u64>, 136> = heapless::Vec::new();
    let _ = wanted.push(0..0x10_0000);
    for r in map.regions() {
        if matches!(r.kind, RegionKind::Usable | RegionKind::AcpiReclaimable | RegionKind::AcpiNvs) {
            let _ = wanted.push(r.start..r.end);
        }
    }
    for m in modules {
        let _ = wanted.push(m.clone());
    }
    let direct = merge_pages(&mut wanted);
    let mut direct_bytes = 0;
    for r in &direct {
        mapper.map(PHYS_MAP_BASE + r.start, r.start, r.end - r.start, KERNEL_RW, true, &mut next)?;
        direct_bytes += r.end - r.start;
    }

    let heap = frames.alloc_contiguous(HEAP_SIZE / FRAME_SIZE, 2 << 20).ok_or(MapError::OutOfFrames)?;
    let mut next = || frames.alloc();
    mapper.map(HEAP_BASE, heap, HEAP_SIZE, KERNEL_RW, true, &mut next)?;

    // SAFETY: the new tables map the running code (text), this stack (bss) and every static
    // exactly where the boot tables did; only the identity and boot-alias windows disappear, and
    // nothing refers to them after this point (PHYS_OFFSET switches below, before any use).
    unsafe {
        Cr4::update(|f| f.insert(Cr4Flags::PAGE_GLOBAL));
        Cr3::write(PhysFrame::containing_address(PhysAddr::new(pml4)), Cr3Flags::empty());
    }
    PHYS_OFFSET.store(PHYS_MAP_BASE, Ordering::Relaxed);
    KERNEL_PML4.store(pml4, Ordering::Relaxed);
    // SAFETY: the heap range was just mapped RW and is used by nothing else.
    unsafe { super::HEAP.lock().init(HEAP_BASE as *mut u8, HEAP_SIZE as usize) };

    let stats = Stats {
        page_table_root: pml4,
        direct_map_bytes: direct_bytes,
        free_frames: frames.free_frames(),
        total_frames: frames.total_frames(),
    };
    *SPACE.lock() = Some(Space { mapper, frames, mmio_next: MMIO_BASE, direct });
    Ok(stats)
}

fn with_space<R>(f: impl FnOnce(&mut Space) -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut g = SPACE.lock();
        f(g.as_mut().expect("memory management not initialised"))
    })
}

fn map_window(phys: u64, len: u64, flags: F) -> u64 {
    let start = phys & !(FRAME_SIZE - 1);
    let end = (phys + len.max(1) + FRAME_SIZE - 1) & !(FRAME_SIZE - 1);
    with_space(|s| {
        let virt = s.mmio_next;
        let frames = &mut s.frames;
        s.mapper
            .map(virt, start, end - start, flags, false, &mut || frames.alloc())
            .expect("MMIO window: out of page-table frames");
        s.mmio_next = virt + (end - start) + FRAME_SIZE; // an unmapped page between windows
        virt + (phys - start)
    })
}

/// Maps device registers uncached; returns the virtual address of `phys`.
pub fn map_mmio(phys: u64, len: u64) -> u64 {
    map_window(phys, len, MMIO)
}

/// `ranges` widened to whole pages, sorted and merged where they overlap or touch.
fn merge_pages(ranges: &mut [Range<u64>]) -> heapless::Vec<Range<u64>, 136> {
    ranges.sort_unstable_by_key(|r| r.start);
    let mut out: heapless::Vec<Range<u64>, 136> = heapless::Vec::new();
    for r in ranges.iter() {
        let start = r.start & !(FRAME_SIZE - 1);
        let end = (r.end + FRAME_SIZE - 1) & !(FRAME_SIZE - 1);
        if start >= end {
            continue;
        }
        match out.last_mut() {
            Some(last) if start <= last.end => last.end = last.end.max(end),
            _ => {
                let _ = out.push(start..end);
            }
        }
    }
    out
}

/// Maps firmware memory (ACPI tables) read-write cached: the direct map when it covers the range,
/// else a new window.
pub fn map_phys(phys: u64, len: u64) -> u64 {
    phys_to_virt_checked(phys, len).unwrap_or_else(|| map_window(phys, len, KERNEL_RW))
}

/// A new kernel stack of STACK_SIZE behind an unmapped guard page; returns its top.
pub fn alloc_stack() -> u64 {
    let slot = STACK_SLOTS.fetch_add(1, Ordering::Relaxed);
    let bottom = STACKS_BASE + slot * STACK_STRIDE + FRAME_SIZE;
    with_space(|s| {
        let phys =
            s.frames.alloc_contiguous(STACK_SIZE / FRAME_SIZE, FRAME_SIZE).expect("out of memory for a kernel stack");
        let frames = &mut s.frames;
        s.mapper.map(bottom, phys, STACK_SIZE, KERNEL_RW, false, &mut || frames.alloc()).expect("stack mapping");
    });
    bottom + STACK_SIZE
}

/// Whether `[addr, addr+len)` lies inside a mapped co-kernel stack (fault-safe: no locks).
pub fn is_stack_address(addr: u64, len: u64) -> bool {
    let l = image_layout();
    let end = addr.saturating_add(len);
    if addr >= l.boot_stack.0 && end <= l.boot_stack.1 {
        return true;
    }
    let slots = STACK_SLOTS.load(Ordering::Relaxed);
    if addr < STACKS_BASE || addr >= STACKS_BASE + slots * STACK_STRIDE {
        return false;
    }
    let off = (addr - STACKS_BASE) % STACK_STRIDE;
    off >= FRAME_SIZE && off + len <= FRAME_SIZE + STACK_SIZE
}

/// A hint for a faulting address, for the exception report.
pub fn describe_fault_address(addr: u64) -> Option<&'static str> {
    let l = image_layout();
    if addr < FRAME_SIZE {
        return Some("null-pointer access (the first page is never mapped)");
    }
    if (l.boot_stack_guard..l.boot_stack_guard + FRAME_SIZE).contains(&addr) {
        return Some("stack overflow: the access hit the guard page below the boot stack");
    }
    let slots = STACK_SLOTS.load(Ordering::Relaxed);
    if addr >= STACKS_BASE && addr < STACKS_BASE + slots * STACK_STRIDE {
        let off = (addr - STACKS_BASE) % STACK_STRIDE;
        if off < FRAME_SIZE {
            return Some("stack overflow: the access hit the guard page below a co-kernel stack");
        }
    }
    if (l.text.0..l.text.1).contains(&addr) {
        return Some("access to kernel text (read-only, executable)");
    }
    if (l.rodata.0..l.rodata.1).contains(&addr) {
        return Some("access to read-only data");
    }
    None
}

/// Runs `f` over every mapped leaf (virt, phys, size, flags) — for the W^X audit in the tests.
pub fn for_each_leaf(f: &mut dyn FnMut(u64, u64, u64, F)) {
    with_space(|s| s.mapper.for_each_leaf(f));
}

/// Physical address and flags of a mapped virtual address.
pub fn translate(virt: u64) -> Option<(u64, F)> {
    with_space(|s| s.mapper.translate(virt))
}

/// Gives each of the co-kernel's 16 top-level slots (PML4 256..271) a page-directory-pointer
/// table, so that a guest copying these 16 entries once sees every later co-kernel mapping too.
/// Returns the 16 entries.
pub fn share_top_level() -> [u64; 16] {
    with_space(|s| {
        let pml4 = s.mapper.pml4_phys();
        let table = s.mapper.mem().table_ptr(pml4);
        let mut out = [0u64; 16];
        for (i, slot) in (256..272).enumerate() {
            // SAFETY: the live PML4, reached through the direct map; interrupts are off (with_space).
            let e = unsafe { &mut (&mut *table)[slot] };
            if e.is_unused() {
                let f = s.frames.alloc().expect("a frame for a shared page-table level");
                // SAFETY: a fresh frame, cleared before it becomes a table.
                unsafe { core::ptr::write_bytes(phys_to_virt(f) as *mut u8, 0, FRAME_SIZE as usize) };
                e.set_addr(PhysAddr::new(f), F::PRESENT | F::WRITABLE);
            }
            out[i] = e.flags().bits() | e.addr().as_u64();
        }
        out
    })
}

/// The current PML4's physical address.
pub fn root() -> u64 {
    with_space(|s| s.mapper.pml4_phys())
}

/// Allocates one physical frame from the co-kernel's pool (the pages handed to Linux, tests).
pub fn alloc_frame() -> Option<u64> {
    with_space(|s| s.frames.alloc())
}

/// Returns a frame from [`alloc_frame`].
pub fn free_frame(phys: u64) {
    with_space(|s| s.frames.free(phys))
}

/// (free, total) frames.
pub fn frame_counts() -> (u64, u64) {
    with_space(|s| (s.frames.free_frames(), s.frames.total_frames()))
}
