//! Validate, describe and load an uncompressed x86_64 Linux `vmlinux` (ELF64).
//!
//! Linux's `vmlinux` is an ELF64 little-endian `ET_EXEC` image for `EM_X86_64`. Its entry point
//! `e_entry` is the *physical* address of `startup_64` (the linker script says
//! `ENTRY(phys_startup_64)`); each `PT_LOAD` program header carries the physical load address in
//! `p_paddr` (0x1000000 and up by default) and the kernel-map virtual address in `p_vaddr`
//! (0xffffffff81000000 and up). Only `PT_LOAD` headers are loaded; others (`PT_NOTE`,
//! `PT_GNU_STACK`, ...) are ignored, and `PT_LOAD` headers with `p_memsz == 0` are skipped.
//!
//! Invariants of a [`Vmlinux`] returned by [`parse`]:
//! * it has between 1 and [`MAX_SEGMENTS`] segments, in program-header order, each with
//!   `0 < memsz`, `filesz <= memsz`, `file_offset + filesz <= image.len()` (no overflow, and also
//!   when `filesz == 0`: [`load`] accepts every plan `parse` returns for the same image), and
//!   `paddr + memsz`, `vaddr + memsz` representable in 64 bits;
//! * the segments' physical ranges `[paddr, paddr + memsz)` are pairwise disjoint;
//! * `p_align` is 0, 1 or a power of two, and `p_vaddr ≡ p_offset (mod p_align)` (the ELF rule);
//! * `entry_phys` lies inside some segment's physical range;
//! * `[phys_start, phys_end)` is the smallest range covering every segment's physical range.
//!
//! Error variants that carry an `index` name the *program header* index (as `readelf -l` shows
//! it), not the position in [`Vmlinux::segments`].
//!
//! [`find_note`] reads ELF notes from `PT_NOTE` segments (Linux's PVH entry note, for one);
//! [`load`] copies the segments to their physical addresses through caller-supplied callbacks,
//! so this module never touches memory itself.
#![forbid(unsafe_code)]

use core::fmt;

/// Most `PT_LOAD` segments (with a non-zero `p_memsz`) a `vmlinux` may have.
pub const MAX_SEGMENTS: usize = 16;

/// Size of an ELF64 file header.
pub const EHDR_SIZE: usize = 64;
/// Size of an ELF64 program header.
pub const PHDR_SIZE: usize = 56;

/// `e_type` of an executable.
pub const ET_EXEC: u16 = 2;
/// `e_machine` of x86_64.
pub const EM_X86_64: u16 = 62;
/// `p_type` of a loadable segment.
pub const PT_LOAD: u32 = 1;
/// `p_type` of a note segment.
pub const PT_NOTE: u32 = 4;
/// `p_flags` bit: executable.
pub const PF_X: u32 = 1;
/// `p_flags` bit: writable.
pub const PF_W: u32 = 2;
/// `p_flags` bit: readable.
pub const PF_R: u32 = 4;

// ELF64 header field offsets.
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const E_TYPE: u64 = 16;
const E_MACHINE: u64 = 18;
const E_ENTRY: u64 = 24;
const E_PHOFF: u64 = 32;
const E_EHSIZE: u64 = 52;
const E_PHENTSIZE: u64 = 54;
const E_PHNUM: u64 = 56;

// ELF64 program header field offsets.
const P_TYPE: u64 = 0;
const P_FLAGS: u64 = 4;
const P_OFFSET: u64 = 8;
const P_VADDR: u64 = 16;
const P_PADDR: u64 = 24;
const P_FILESZ: u64 = 32;
const P_MEMSZ: u64 = 40;
const P_ALIGN: u64 = 48;

/// One loadable segment of a `vmlinux`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Where the segment's bytes start in the file.
    pub file_offset: u64,
    /// How many bytes come from the file.
    pub filesz: u64,
    /// How many bytes the segment occupies in memory (the tail beyond `filesz` is zeroed).
    pub memsz: u64,
    /// Physical load address.
    pub paddr: u64,
    /// Virtual address in Linux's kernel map.
    pub vaddr: u64,
    /// `p_flags` ([`PF_R`], [`PF_W`], [`PF_X`]).
    pub flags: u32,
}

impl Segment {
    /// One past the last physical byte.
    pub const fn phys_end(&self) -> u64 {
        // Cannot overflow: `parse` checked it.
        self.paddr.saturating_add(self.memsz)
    }
}

/// A validated `vmlinux`; see the module documentation for the invariants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vmlinux {
    /// Physical address of `startup_64` (`e_entry`).
    pub entry_phys: u64,
    /// The `PT_LOAD` segments with a non-zero `p_memsz`, in program-header order.
    pub segments: heapless::Vec<Segment, MAX_SEGMENTS>,
    /// Lowest physical address of any segment.
    pub phys_start: u64,
    /// One past the highest physical byte of any segment (covers all of `memsz`).
    pub phys_end: u64,
}

/// Why an image is not a loadable x86_64 `vmlinux`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than an ELF64 header.
    TooSmall,
    /// Does not start with `\x7fELF`.
    BadMagic,
    /// Not `ELFCLASS64`.
    Not64Bit,
    /// Not `ELFDATA2LSB`.
    NotLittleEndian,
    /// `e_type` is not `ET_EXEC` (the value found).
    NotExecutable(u16),
    /// `e_machine` is not `EM_X86_64` (the value found).
    WrongMachine(u16),
    /// `e_ehsize` is not 64 or `e_phentsize` is not 56.
    BadHeaderSize,
    /// The program header table does not lie within the file.
    ProgramHeadersOutOfFile,
    /// More than [`MAX_SEGMENTS`] non-empty `PT_LOAD` segments.
    TooManySegments,
    /// A segment's file bytes do not lie within the file.
    SegmentOutOfFile {
        /// Program header index.
        index: usize,
    },
    /// A segment's `p_filesz` is larger than its `p_memsz`.
    FileSizeExceedsMemSize {
        /// Program header index.
        index: usize,
    },
    /// `p_paddr + p_memsz` or `p_vaddr + p_memsz` does not fit in 64 bits.
    AddressOverflow {
        /// Program header index.
        index: usize,
    },
    /// Two segments' physical ranges overlap.
    SegmentsOverlap {
        /// Program header index of the first.
        a: usize,
        /// Program header index of the second.
        b: usize,
    },
    /// No `PT_LOAD` segment with a non-zero `p_memsz`.
    NoLoadSegments,
    /// `e_entry` (the value found) is not inside any segment's physical range.
    EntryNotInSegment(u64),
    /// `p_align` is not a power of two, or `p_vaddr` and `p_offset` disagree modulo `p_align`.
    UnalignedSegment {
        /// Program header index.
        index: usize,
    },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooSmall => write!(f, "the Linux image is smaller than an ELF64 header ({EHDR_SIZE:#x} bytes)"),
            Self::BadMagic => write!(
                f,
                "the Linux image is not an ELF file (no \\x7fELF magic); an uncompressed vmlinux is needed, not a bzImage"
            ),
            Self::Not64Bit => write!(f, "the Linux image is not a 64-bit (ELFCLASS64) ELF file"),
            Self::NotLittleEndian => {
                write!(f, "the Linux image is not a little-endian ELF file")
            }
            Self::NotExecutable(t) => {
                write!(f, "the Linux image has ELF type {t:#x}, not an executable (ET_EXEC, 0x2)")
            }
            Self::WrongMachine(m) => {
                write!(f, "the Linux image is for ELF machine {m:#x}, not x86_64 (EM_X86_64, 0x3e)")
            }
            Self::BadHeaderSize => write!(
                f,
                "the Linux image's ELF header or program header size is not the ELF64 size ({EHDR_SIZE:#x} and {PHDR_SIZE:#x} bytes)"
            ),
            Self::ProgramHeadersOutOfFile => {
                write!(f, "the Linux image's program header table runs past the end of the file")
            }
            Self::TooManySegments => write!(f, "the Linux image has more than {MAX_SEGMENTS:#x} loadable segments"),
            Self::SegmentOutOfFile { index } => {
                write!(f, "program header {index:#x} of the Linux image points past the end of the file")
            }
            Self::FileSizeExceedsMemSize { index } => {
                write!(f, "program header {index:#x} of the Linux image has more bytes in the file than in memory")
            }
            Self::AddressOverflow { index } => {
                write!(f, "program header {index:#x} of the Linux image runs past the end of the 64-bit address space")
            }
            Self::SegmentsOverlap { a, b } => {
                write!(f, "program headers {a:#x} and {b:#x} of the Linux image overlap in physical memory")
            }
            Self::NoLoadSegments => {
                write!(f, "the Linux image has no loadable segment")
            }
            Self::EntryNotInSegment(e) => {
                write!(f, "the Linux image's entry point {e:#x} is not inside any loadable segment")
            }
            Self::UnalignedSegment { index } => write!(
                f,
                "program header {index:#x} of the Linux image has a bad alignment (p_align not a power of two, or p_vaddr and p_offset disagree modulo p_align)"
            ),
        }
    }
}

/// Why [`load`] failed; `E` is the callbacks' own error type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError<E> {
    /// The [`Vmlinux`] does not describe `image` (it was parsed from another image or altered);
    /// the `index` inside is the position in [`Vmlinux::segments`].
    Elf(ElfError),
    /// The `write` callback refused a segment's file bytes.
    Write {
        /// Position in [`Vmlinux::segments`].
        segment: usize,
        /// Physical address of the write.
        paddr: u64,
        /// The callback's error.
        why: E,
    },
    /// The `zero` callback refused a segment's zero tail.
    Zero {
        /// Position in [`Vmlinux::segments`].
        segment: usize,
        /// Physical address of the tail.
        paddr: u64,
        /// Length of the tail.
        len: u64,
        /// The callback's error.
        why: E,
    },
}

impl<E: fmt::Display> fmt::Display for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Elf(e) => write!(f, "{e}"),
            Self::Write { segment, paddr, why } => {
                write!(f, "could not copy segment {segment:#x} of the Linux image to {paddr:#x}: {why}")
            }
            Self::Zero { segment, paddr, len, why } => write!(
                f,
                "could not zero {len:#x} bytes at {paddr:#x} for segment {segment:#x} of the Linux image: {why}"
            ),
        }
    }
}

impl<E> From<ElfError> for LoadError<E> {
    fn from(e: ElfError) -> Self {
        Self::Elf(e)
    }
}

/// `N` bytes at `off`, or `None` when they are not all inside `b`.
fn bytes<const N: usize>(b: &[u8], off: u64) -> Option<[u8; N]> {
    let start = usize::try_from(off).ok()?;
    let end = start.checked_add(N)?;
    b.get(start..end)?.try_into().ok()
}

fn u16_at(b: &[u8], off: u64) -> Option<u16> {
    bytes::<2>(b, off).map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], off: u64) -> Option<u32> {
    bytes::<4>(b, off).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], off: u64) -> Option<u64> {
    bytes::<8>(b, off).map(u64::from_le_bytes)
}

/// `b[off..off + len]`, or `None` when it is not all inside `b` (or overflows).
fn slice_at(b: &[u8], off: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(off).ok()?;
    let len = usize::try_from(len).ok()?;
    b.get(start..start.checked_add(len)?)
}

/// A segment's file bytes `image[offset..offset + filesz]`, or `None` when they are not all
/// inside the file. The one rule [`parse`] and [`load`] share: even a segment with no file bytes
/// (`filesz == 0`, all bss) must start at or before the end of the file, so a truncated image is
/// refused by `parse` rather than failing late in `load`.
fn file_bytes(image: &[u8], offset: u64, filesz: u64) -> Option<&[u8]> {
    slice_at(image, offset, filesz)
}

/// One raw program header (the samples build images from it too).
#[derive(Clone, Copy, Debug)]
pub struct Phdr {
    /// `p_type`.
    pub p_type: u32,
    /// `p_flags`.
    pub flags: u32,
    /// `p_offset`.
    pub offset: u64,
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_paddr`.
    pub paddr: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `p_memsz`.
    pub memsz: u64,
    /// `p_align`.
    pub align: u64,
}

/// The file header checks of [`parse`]; returns `(e_phoff, e_phnum, e_entry)` with the whole
/// program header table inside the image.
fn header(image: &[u8]) -> Result<(u64, u16, u64), ElfError> {
    if image.len() < EHDR_SIZE {
        return Err(ElfError::TooSmall);
    }
    if image.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(ElfError::BadMagic);
    }
    if image.get(EI_CLASS) != Some(&ELFCLASS64) {
        return Err(ElfError::Not64Bit);
    }
    if image.get(EI_DATA) != Some(&ELFDATA2LSB) {
        return Err(ElfError::NotLittleEndian);
    }
    // The header is EHDR_SIZE bytes long, so these reads cannot fail; `unwrap_or` keeps it
    // panic-free regardless.
    let e_type = u16_at(image, E_TYPE).unwrap_or(0);
    if e_type != ET_EXEC {
        return Err(ElfError::NotExecutable(e_type));
    }
    let machine = u16_at(image, E_MACHINE).unwrap_or(0);
    if machine != EM_X86_64 {
        return Err(ElfError::WrongMachine(machine));
    }
    let entry = u64_at(image, E_ENTRY).unwrap_or(0);
    let ehsize = u16_at(image, E_EHSIZE).unwrap_or(0);
    let phentsize = u16_at(image, E_PHENTSIZE).unwrap_or(0);
    let phnum = u16_at(image, E_PHNUM).unwrap_or(0);
    if usize::from(ehsize) != EHDR_SIZE || (phnum != 0 && usize::from(phentsize) != PHDR_SIZE) {
        return Err(ElfError::BadHeaderSize);
    }
    let phoff = u64_at(image, E_PHOFF).unwrap_or(0);
    let table = u64::from(phnum) * PHDR_SIZE as u64;
    if slice_at(image, phoff, table).is_none() {
        return Err(ElfError::ProgramHeadersOutOfFile);
    }
    Ok((phoff, phnum, entry))
}

/// The program headers of an image whose table passed [`header`].
fn phdrs(image: &[u8], phoff: u64, phnum: u16) -> impl Iterator<Item = (usize, Phdr)> + '_ {
    (0..usize::from(phnum)).filter_map(move |i| {
        let base = phoff.checked_add(i as u64 * PHDR_SIZE as u64)?;
        let f32 = |o: u64| base.checked_add(o).and_then(|a| u32_at(image, a));
        let f64 = |o: u64| base.checked_add(o).and_then(|a| u64_at(image, a));
        Some((
            i,
            Phdr {
                p_type: f32(P_TYPE)?,
                flags: f32(P_FLAGS)?,
                offset: f64(P_OFFSET)?,
                vaddr: f64(P_VADDR)?,
                paddr: f64(P_PADDR)?,
                filesz: f64(P_FILESZ)?,
                memsz: f64(P_MEMSZ)?,
                align: f64(P_ALIGN)?,
            },
        ))
    })
}

/// Validate `image` as an x86_64 `vmlinux` and describe its loadable segments.
pub fn parse(image: &[u8]) -> Result<Vmlinux, ElfError> {
    let (phoff, phnum, entry) = header(image)?;
    let mut segments: heapless::Vec<Segment, MAX_SEGMENTS> = heapless::Vec::new();
    let mut indices: heapless::Vec<usize, MAX_SEGMENTS> = heapless::Vec::new();
    for (index, ph) in phdrs(image, phoff, phnum) {
        if ph.p_type != PT_LOAD || ph.memsz == 0 {
            continue;
        }
        if file_bytes(image, ph.offset, ph.filesz).is_none() {
            return Err(ElfError::SegmentOutOfFile { index });
        }
        if ph.filesz > ph.memsz {
            return Err(ElfError::FileSizeExceedsMemSize { index });
        }
        if ph.paddr.checked_add(ph.memsz).is_none() || ph.vaddr.checked_add(ph.memsz).is_none() {
            return Err(ElfError::AddressOverflow { index });
        }
        if ph.align > 1 && (!ph.align.is_power_of_two() || (ph.vaddr ^ ph.offset) & (ph.align - 1) != 0) {
            return Err(ElfError::UnalignedSegment { index });
        }
        let seg = Segment {
            file_offset: ph.offset,
            filesz: ph.filesz,
            memsz: ph.memsz,
            paddr: ph.paddr,
            vaddr: ph.vaddr,
            flags: ph.flags,
        };
        segments.push(seg).map_err(|_| ElfError::TooManySegments)?;
        indices.push(index).map_err(|_| ElfError::TooManySegments)?;
    }
    for (i, a) in segments.iter().enumerate() {
        for (j, b) in segments.iter().enumerate().skip(i + 1) {
            if a.paddr < b.phys_end() && b.paddr < a.phys_end() {
                return Err(ElfError::SegmentsOverlap {
                    a: indices.get(i).copied().unwrap_or(i),
                    b: indices.get(j).copied().unwrap_or(j),
                });
            }
        }
    }
    let phys_start = segments.iter().map(|s| s.paddr).min().ok_or(ElfError::NoLoadSegments)?;
    let phys_end = segments.iter().map(Segment::phys_end).max().unwrap_or(phys_start);
    if !segments.iter().any(|s| s.paddr <= entry && entry < s.phys_end()) {
        return Err(ElfError::EntryNotInSegment(entry));
    }
    Ok(Vmlinux { entry_phys: entry, segments, phys_start, phys_end })
}

/// The descriptor of the first note named `name` with type `ty` in any `PT_NOTE` segment of
/// `image`.
///
/// `name` is compared without its terminating NUL (pass `b"Xen"`, not `b"Xen\0"`); a note whose
/// name lacks the NUL also matches. Notes are walked with 4-byte alignment of name and
/// descriptor, as Linux emits them. Returns `None` when `image` fails the ELF header checks of
/// [`parse`], when no note matches, or as soon as a malformed note (one running past its
/// segment) is met.
pub fn find_note<'a>(image: &'a [u8], name: &[u8], ty: u32) -> Option<&'a [u8]> {
    let (phoff, phnum, _) = header(image).ok()?;
    for (_, ph) in phdrs(image, phoff, phnum) {
        if ph.p_type != PT_NOTE {
            continue;
        }
        let mut notes = slice_at(image, ph.offset, ph.filesz)?;
        while notes.len() >= 12 {
            let namesz = u32_at(notes, 0)?;
            let descsz = u32_at(notes, 4)?;
            let n_type = u32_at(notes, 8)?;
            let name_off = 12u64;
            let desc_off = name_off.checked_add(align4(u64::from(namesz))?)?;
            let next = desc_off.checked_add(align4(u64::from(descsz))?)?;
            let n_name = slice_at(notes, name_off, u64::from(namesz))?;
            let desc = slice_at(notes, desc_off, u64::from(descsz))?;
            let trimmed = n_name.strip_suffix(&[0]).unwrap_or(n_name);
            if n_type == ty && trimmed == name {
                return Some(desc);
            }
            // The padding of the last note may be missing; then there is nothing after it.
            notes = notes.get(usize::try_from(next).ok()?..).unwrap_or(&[]);
        }
    }
    None
}

fn align4(x: u64) -> Option<u64> {
    Some(x.checked_add(3)? & !3)
}

/// [`load`]'s copy callback: write these bytes at this physical address, or say why not (the
/// caller's error type `E`; [`core::convert::Infallible`] for memory that cannot refuse).
pub type WriteFn<'a, E> = dyn FnMut(u64, &[u8]) -> Result<(), E> + 'a;
/// [`load`]'s zeroing callback: zero this many bytes at this physical address, or say why not.
pub type ZeroFn<'a, E> = dyn FnMut(u64, u64) -> Result<(), E> + 'a;

/// Copy every segment of `v` from `image` to its physical address with `write(paddr, bytes)`
/// and clear the `memsz - filesz` tail with `zero(paddr, len)`. Callbacks are called in segment
/// order, each at most once per segment and never with an empty range.
///
/// `v` is re-checked against `image` (each segment's file bytes must be inside it), so a
/// `Vmlinux` from another image yields an error, not a panic.
pub fn load<E>(
    image: &[u8],
    v: &Vmlinux,
    write: &mut WriteFn<'_, E>,
    zero: &mut ZeroFn<'_, E>,
) -> Result<(), LoadError<E>> {
    for (segment, s) in v.segments.iter().enumerate() {
        let bytes = file_bytes(image, s.file_offset, s.filesz).ok_or(ElfError::SegmentOutOfFile { index: segment })?;
        if s.filesz > s.memsz {
            return Err(ElfError::FileSizeExceedsMemSize { index: segment }.into());
        }
        let tail_start = s.paddr.checked_add(s.filesz).ok_or(ElfError::AddressOverflow { index: segment })?;
        if s.paddr.checked_add(s.memsz).is_none() {
            return Err(ElfError::AddressOverflow { index: segment }.into());
        }
        if !bytes.is_empty() {
            write(s.paddr, bytes).map_err(|why| LoadError::Write { segment, paddr: s.paddr, why })?;
        }
        let len = s.memsz - s.filesz;
        if len != 0 {
            zero(tail_start, len).map_err(|why| LoadError::Zero { segment, paddr: tail_start, len, why })?;
        }
    }
    Ok(())
}

/// Well-formed images for the tests and the fuzz seeds (`crate::fuzz`).
#[cfg(any(test, feature = "fuzz"))]
pub mod sample {
    use super::*;
    use alloc::vec::Vec;
    use core::convert::Infallible;

    /// A readable, executable `PT_LOAD` header at `paddr`, linked at Linux's kernel map
    /// (`0xffff_ffff_8000_0000 + paddr`), 4 KiB aligned.
    pub fn load_ph(offset: u64, paddr: u64, filesz: u64, memsz: u64) -> Phdr {
        Phdr {
            p_type: PT_LOAD,
            flags: PF_R | PF_X,
            offset,
            vaddr: 0xffff_ffff_8000_0000u64.wrapping_add(paddr),
            paddr,
            filesz,
            memsz,
            align: 0x1000,
        }
    }

    /// An ELF64 image: header, program headers right after it, then `data` at offset 0x1000.
    pub fn image(entry: u64, phs: &[Phdr], data_len: usize) -> Vec<u8> {
        let mut v = alloc::vec![0u8; 0x1000 + data_len];
        v[..4].copy_from_slice(b"\x7fELF");
        v[4] = 2;
        v[5] = 1;
        v[6] = 1;
        v[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        v[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        v[20..24].copy_from_slice(&1u32.to_le_bytes());
        v[24..32].copy_from_slice(&entry.to_le_bytes());
        v[32..40].copy_from_slice(&64u64.to_le_bytes());
        v[52..54].copy_from_slice(&64u16.to_le_bytes());
        v[54..56].copy_from_slice(&56u16.to_le_bytes());
        v[56..58].copy_from_slice(&(phs.len() as u16).to_le_bytes());
        for (i, p) in phs.iter().enumerate() {
            let b = 64 + i * 56;
            v[b..b + 4].copy_from_slice(&p.p_type.to_le_bytes());
            v[b + 4..b + 8].copy_from_slice(&p.flags.to_le_bytes());
            v[b + 8..b + 16].copy_from_slice(&p.offset.to_le_bytes());
            v[b + 16..b + 24].copy_from_slice(&p.vaddr.to_le_bytes());
            v[b + 24..b + 32].copy_from_slice(&p.paddr.to_le_bytes());
            v[b + 32..b + 40].copy_from_slice(&p.filesz.to_le_bytes());
            v[b + 40..b + 48].copy_from_slice(&p.memsz.to_le_bytes());
            v[b + 48..b + 56].copy_from_slice(&p.align.to_le_bytes());
        }
        for (i, byte) in v[0x1000..].iter_mut().enumerate() {
            *byte = (i % 251) as u8 + 1;
        }
        v
    }

    /// A vmlinux-like image: text, data (with bss), a note and a GNU_STACK header.
    pub fn linux_like() -> Vec<u8> {
        let text = load_ph(0x1000, 0x100_0000, 0x2000, 0x2000);
        let mut data = load_ph(0x3000, 0x100_2000, 0x800, 0x3000);
        data.flags = PF_R | PF_W;
        let note =
            Phdr { p_type: PT_NOTE, flags: PF_R, offset: 0x3800, vaddr: 0, paddr: 0, filesz: 0, memsz: 0, align: 4 };
        let stack = Phdr {
            p_type: 0x6474_e551,
            flags: PF_R | PF_W,
            offset: 0,
            vaddr: 0,
            paddr: 0,
            filesz: 0,
            memsz: 0,
            align: 16,
        };
        let empty_load = load_ph(0x1000, 0x200_0000, 0, 0);
        image(0x100_0040, &[text, data, note, stack, empty_load], 0x3000)
    }

    /// One ELF note (`namesz`, `descsz`, `type`, name, descriptor), name and descriptor padded
    /// to 4 bytes; `name` is copied as given (add the NUL for a conforming note).
    pub fn note(name: &[u8], ty: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&ty.to_le_bytes());
        v.extend_from_slice(name);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend_from_slice(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    /// An image with one text segment and a `PT_NOTE` segment holding `notes` at file offset
    /// 0x2000.
    pub fn with_notes(notes: &[u8]) -> Vec<u8> {
        let text = load_ph(0x1000, 0x100_0000, 0x1000, 0x1000);
        let n = Phdr {
            p_type: PT_NOTE,
            flags: PF_R,
            offset: 0x2000,
            vaddr: 0,
            paddr: 0,
            filesz: notes.len() as u64,
            memsz: 0,
            align: 4,
        };
        let mut img = image(0x100_0000, &[text, n], 0x1000 + notes.len());
        img[0x2000..0x2000 + notes.len()].copy_from_slice(notes);
        img
    }

    /// What [`load_recorded`] saw.
    pub struct Loaded {
        /// What [`load`] returned (the recording memory never refuses).
        pub result: Result<(), LoadError<Infallible>>,
        /// The memory standing for `[phys_start, phys_end)`, when it was at most 1 MiB.
        pub memory: Option<Vec<u8>>,
        /// Every call: `'w'` (copy) or `'z'` (zeroing), physical address, length.
        pub calls: Vec<(char, u64, u64)>,
    }

    /// Loads `v` from `image` into memory standing for `[v.phys_start, v.phys_end)` (real memory,
    /// filled with 0xa5 first, when that is at most 1 MiB), recording every call and asserting
    /// that each stays inside that range.
    pub fn load_recorded(image: &[u8], v: &Vmlinux) -> Loaded {
        let (base, end) = (v.phys_start, v.phys_end);
        let span = usize::try_from(end - base).ok().filter(|&n| n <= 1 << 20);
        let memory = core::cell::RefCell::new(span.map(|n| alloc::vec![0xa5u8; n]));
        let calls = core::cell::RefCell::new(Vec::new());
        let at = |kind: char, pa: u64, len: u64| {
            let inside = pa >= base && pa.checked_add(len).is_some_and(|e| e <= end);
            assert!(inside, "{kind} of {len:#x} bytes at {pa:#x} outside {base:#x}..{end:#x}");
            calls.borrow_mut().push((kind, pa, len));
            (pa - base) as usize
        };
        let mut write = |pa: u64, b: &[u8]| {
            let o = at('w', pa, b.len() as u64);
            if let Some(m) = memory.borrow_mut().as_mut() {
                m[o..o + b.len()].copy_from_slice(b);
            }
            Ok::<(), Infallible>(())
        };
        let mut zero = |pa: u64, len: u64| {
            let o = at('z', pa, len);
            if let Some(m) = memory.borrow_mut().as_mut() {
                m[o..o + len as usize].fill(0);
            }
            Ok(())
        };
        let result = load(image, v, &mut write, &mut zero);
        Loaded { result, memory: memory.into_inner(), calls: calls.into_inner() }
    }
}

#[cfg(test)]
mod tests {
    use super::sample::*;
    use super::*;
    use core::convert::Infallible;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn parses_a_linux_like_image() {
        let img = linux_like();
        let v = parse(&img).unwrap();
        assert_eq!(v.entry_phys, 0x100_0040);
        assert_eq!(v.segments.len(), 2);
        assert_eq!(
            v.segments[0],
            Segment {
                file_offset: 0x1000,
                filesz: 0x2000,
                memsz: 0x2000,
                paddr: 0x100_0000,
                vaddr: 0xffff_ffff_8100_0000,
                flags: PF_R | PF_X,
            }
        );
        assert_eq!(v.segments[1].flags, PF_R | PF_W);
        assert_eq!(v.phys_start, 0x100_0000);
        assert_eq!(v.phys_end, 0x100_5000);
    }

    fn set_u16(img: &mut [u8], off: usize, x: u16) {
        img[off..off + 2].copy_from_slice(&x.to_le_bytes());
    }

    #[test]
    fn header_errors() {
        let good = linux_like();
        assert_eq!(parse(&good[..63]), Err(ElfError::TooSmall));
        assert_eq!(parse(&[]), Err(ElfError::TooSmall));
        let mut i = good.clone();
        i[0] = 0x7e;
        assert_eq!(parse(&i), Err(ElfError::BadMagic));
        let mut i = good.clone();
        i[4] = 1;
        assert_eq!(parse(&i), Err(ElfError::Not64Bit));
        let mut i = good.clone();
        i[5] = 2;
        assert_eq!(parse(&i), Err(ElfError::NotLittleEndian));
        let mut i = good.clone();
        set_u16(&mut i, 16, 3);
        assert_eq!(parse(&i), Err(ElfError::NotExecutable(3)));
        let mut i = good.clone();
        set_u16(&mut i, 18, 3);
        assert_eq!(parse(&i), Err(ElfError::WrongMachine(3)));
        let mut i = good.clone();
        set_u16(&mut i, 52, 52);
        assert_eq!(parse(&i), Err(ElfError::BadHeaderSize));
        let mut i = good.clone();
        set_u16(&mut i, 54, 32);
        assert_eq!(parse(&i), Err(ElfError::BadHeaderSize));
        let mut i = good.clone();
        set_u16(&mut i, 56, 0xffff);
        assert_eq!(parse(&i), Err(ElfError::ProgramHeadersOutOfFile));
        let mut i = good.clone();
        i[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse(&i), Err(ElfError::ProgramHeadersOutOfFile));
        let i = image(0, &[], 0);
        assert_eq!(parse(&i), Err(ElfError::NoLoadSegments));
    }

    #[test]
    fn segment_errors() {
        let t = |phs: &[Phdr], entry: u64| parse(&image(entry, phs, 0x3000));
        let ok = load_ph(0x1000, 0x100_0000, 0x1000, 0x1000);
        assert!(t(&[ok], 0x100_0000).is_ok());
        assert_eq!(
            t(&[ok, load_ph(0x1000, 0x200_0000, 0x4000, 0x4000)], 0x100_0000),
            Err(ElfError::SegmentOutOfFile { index: 1 })
        );
        assert_eq!(
            t(&[load_ph(u64::MAX - 1, 0x100_0000, 0x10, 0x10)], 0x100_0000),
            Err(ElfError::SegmentOutOfFile { index: 0 })
        );
        assert_eq!(
            t(&[load_ph(0x1000, 0x100_0000, 0x2000, 0x1000)], 0x100_0000),
            Err(ElfError::FileSizeExceedsMemSize { index: 0 })
        );
        assert_eq!(
            t(&[load_ph(0x1000, u64::MAX - 0xfff, 0x1000, 0x1000)], 0x100_0000),
            Err(ElfError::AddressOverflow { index: 0 })
        );
        let mut v = ok;
        v.vaddr = u64::MAX - 0x10;
        v.align = 0;
        assert_eq!(t(&[v], 0x100_0000), Err(ElfError::AddressOverflow { index: 0 }));
        let mut overlapping = load_ph(0x2000, 0x100_0fff, 0x10, 0x10);
        overlapping.align = 1;
        assert_eq!(t(&[ok, overlapping], 0x100_0000), Err(ElfError::SegmentsOverlap { a: 0, b: 1 }));
        // Touching is fine.
        assert!(t(&[ok, load_ph(0x2000, 0x100_1000, 0x10, 0x10)], 0x100_0000).is_ok());
        assert_eq!(t(&[ok], 0x100_1000), Err(ElfError::EntryNotInSegment(0x100_1000)));
        let mut bad_align = ok;
        bad_align.align = 0x3000;
        assert_eq!(t(&[bad_align], 0x100_0000), Err(ElfError::UnalignedSegment { index: 0 }));
        let mut skew = ok;
        skew.offset = 0x1800;
        skew.filesz = 0x100;
        assert_eq!(t(&[skew], 0x100_0000), Err(ElfError::UnalignedSegment { index: 0 }));
        let many: Vec<Phdr> = (0..17).map(|i| load_ph(0x1000, 0x100_0000 + i * 0x1000, 0x10, 0x10)).collect();
        assert_eq!(t(&many, 0x100_0000), Err(ElfError::TooManySegments));
        assert!(t(&many[..16], 0x100_0000).is_ok());
        // A bss-only segment may start anywhere in the file, up to its very end.
        let bss = load_ph(0x4000, 0x300_0000, 0, 0x1000);
        assert!(t(&[ok, bss], 0x300_0fff).is_ok());
    }

    /// A fuzzing regression: a bss-only `PT_LOAD` whose offset lies past the end of the file. A
    /// truncated vmlinux is refused by `parse`, naming the program header, not later by `load`.
    #[test]
    fn bss_segment_past_the_end_of_the_file_is_refused_by_parse() {
        const REPRODUCER: &str = "7f454c4602010100000000000000000002003e0001000000000000010000000040000000000000000000000000000000000000004000380001004000000000000100000006000000001000000000000000000000000000000000000100000000000000000000000000100000000000000000000000000000";
        let img: Vec<u8> =
            (0..REPRODUCER.len()).step_by(2).map(|i| u8::from_str_radix(&REPRODUCER[i..i + 2], 16).unwrap()).collect();
        assert_eq!(img.len(), 120);
        assert_eq!(parse(&img), Err(ElfError::SegmentOutOfFile { index: 0 }));
        // The same with a real text segment before it.
        let ok = load_ph(0x1000, 0x100_0000, 0x1000, 0x1000);
        let bss = load_ph(0x7fff_f000, 0x300_0000, 0, 0x1000);
        assert_eq!(parse(&image(0x100_0000, &[ok, bss], 0x3000)), Err(ElfError::SegmentOutOfFile { index: 1 }));
    }

    #[test]
    fn display_names_numbers_in_hex() {
        let s = std::format!("{}", ElfError::EntryNotInSegment(0x100_1000));
        assert!(s.contains("0x1001000"), "{s}");
        let s = std::format!("{}", ElfError::SegmentsOverlap { a: 10, b: 11 });
        assert!(s.contains("0xa") && s.contains("0xb"), "{s}");
        let s = std::format!("{}", ElfError::WrongMachine(3));
        assert!(s.contains("0x3"), "{s}");
    }

    #[test]
    fn load_copies_and_zeroes() {
        let img = linux_like();
        let v = parse(&img).unwrap();
        let base = 0x100_0000u64;
        let loaded = load_recorded(&img, &v);
        assert_eq!(loaded.result, Ok(()));
        let mem = loaded.memory.unwrap();
        assert_eq!(mem.len(), 0x5000);
        assert_eq!(&mem[..0x2000], &img[0x1000..0x3000]);
        assert_eq!(&mem[0x2000..0x2800], &img[0x3000..0x3800]);
        assert!(mem[0x2800..0x5000].iter().all(|&b| b == 0));
        assert_eq!(loaded.calls, [('w', base, 0x2000), ('w', base + 0x2000, 0x800), ('z', base + 0x2800, 0x2800)]);

        let mut write = |_: u64, _: &[u8]| Err("no memory there");
        let mut zero = |_: u64, _: u64| Ok(());
        assert_eq!(
            load(&img, &v, &mut write, &mut zero),
            Err(LoadError::Write { segment: 0, paddr: base, why: "no memory there" })
        );
        let mut write = |_: u64, _: &[u8]| Ok(());
        let mut zero = |_: u64, _: u64| Err("nope");
        assert_eq!(
            load(&img, &v, &mut write, &mut zero),
            Err(LoadError::Zero { segment: 1, paddr: base + 0x2800, len: 0x2800, why: "nope" })
        );
        // A description that does not match the image is refused, not followed.
        let mut ok_w = |_: u64, _: &[u8]| Ok::<(), Infallible>(());
        let mut ok_z = |_: u64, _: u64| Ok(());
        assert_eq!(
            load(&img[..0x2000], &v, &mut ok_w, &mut ok_z),
            Err(LoadError::Elf(ElfError::SegmentOutOfFile { index: 0 }))
        );
    }

    #[test]
    fn finds_notes() {
        let mut notes = note(b"GNU\0", 3, &[1, 2, 3, 4, 5]);
        notes.extend(note(b"Xen\0", 18, &0x100_0123u32.to_le_bytes()));
        notes.extend(note(b"Hauki", 1, b"abc"));
        let img = with_notes(&notes);
        assert_eq!(find_note(&img, b"Xen", 18), Some(&0x100_0123u32.to_le_bytes()[..]));
        assert_eq!(find_note(&img, b"GNU", 3), Some(&[1u8, 2, 3, 4, 5][..]));
        assert_eq!(find_note(&img, b"Hauki", 1), Some(&b"abc"[..]));
        assert_eq!(find_note(&img, b"Xen", 17), None);
        assert_eq!(find_note(&img, b"Xe", 18), None);
        assert_eq!(find_note(&img[..0x30], b"Xen", 18), None);
        // A note claiming a huge descriptor ends the walk.
        let mut bad = note(b"Bad\0", 1, &[0; 4]);
        bad[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        bad.extend(note(b"Xen\0", 18, &[9; 4]));
        assert_eq!(find_note(&with_notes(&bad), b"Xen", 18), None);
        // The final note's padding may be cut off.
        let cut = note(b"Xen\0", 18, &[7; 3]);
        assert_eq!(find_note(&with_notes(&cut[..cut.len() - 1]), b"Xen", 18), Some(&[7u8; 3][..]));
    }

    proptest! {
        #[test]
        fn never_panics_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
            let _ = find_note(&bytes, b"Xen", 18);
        }

        #[test]
        fn never_panics_on_mutations(edits in proptest::collection::vec((0usize..0x1100, any::<u8>()), 1..12)) {
            let mut notes = note(b"Xen\0", 18, &[1; 8]);
            notes.extend(note(b"GNU\0", 3, &[2; 20]));
            let mut img = with_notes(&notes);
            for (at, b) in edits {
                if let Some(x) = img.get_mut(at) {
                    *x = b;
                }
            }
            let _ = find_note(&img, b"GNU", 3);
            if let Ok(v) = parse(&img) {
                prop_assert!(v.phys_start < v.phys_end);
                prop_assert!(v.segments.iter().any(|s| s.paddr <= v.entry_phys && v.entry_phys < s.phys_end()));
                let mut ok_w = |_: u64, _: &[u8]| Ok::<(), Infallible>(());
                let mut ok_z = |_: u64, _: u64| Ok(());
                prop_assert_eq!(load(&img, &v, &mut ok_w, &mut ok_z), Ok(()));
            }
        }
    }
}
