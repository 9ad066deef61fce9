//! Just enough ELF64 (little-endian) to read program headers, for the image-size bench.

/// `PT_LOAD`.
pub const PT_LOAD: u32 = 1;

/// One program header (the fields the benches use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phdr {
    /// `p_type`.
    pub p_type: u32,
    /// `p_flags`.
    pub flags: u32,
    /// `p_paddr`.
    pub paddr: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `p_memsz`.
    pub memsz: u64,
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, String> {
    b.get(off..off + 2).map(|s| u16::from_le_bytes([s[0], s[1]])).ok_or_else(|| format!("truncated at {off:#x}"))
}
fn u32_at(b: &[u8], off: usize) -> Result<u32, String> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| format!("truncated at {off:#x}"))
}
fn u64_at(b: &[u8], off: usize) -> Result<u64, String> {
    b.get(off..off + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| format!("truncated at {off:#x}"))
}

/// The program headers of an ELF64 little-endian image.
pub fn program_headers(b: &[u8]) -> Result<Vec<Phdr>, String> {
    if b.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    if b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return Err("not ELF64 little-endian".into());
    }
    let phoff = u64_at(b, 0x20)? as usize;
    let phentsize = u16_at(b, 0x36)? as usize;
    let phnum = u16_at(b, 0x38)? as usize;
    if phnum > 0 && phentsize < 56 {
        return Err(format!("program header entry size {phentsize} < 56"));
    }
    (0..phnum)
        .map(|i| {
            let p = phoff + i * phentsize;
            Ok(Phdr {
                p_type: u32_at(b, p)?,
                flags: u32_at(b, p + 4)?,
                paddr: u64_at(b, p + 24)?,
                filesz: u64_at(b, p + 32)?,
                memsz: u64_at(b, p + 40)?,
            })
        })
        .collect()
}

/// Bytes the loader copies from the file: the sum of PT_LOAD `p_filesz` (the image proper).
pub fn image_size(phdrs: &[Phdr]) -> u64 {
    phdrs.iter().filter(|p| p.p_type == PT_LOAD).map(|p| p.filesz).sum()
}

/// Memory the loaded image occupies: the sum of PT_LOAD `p_memsz` (image plus .bss, boot stack
/// included).
pub fn loaded_size(phdrs: &[Phdr]) -> u64 {
    phdrs.iter().filter(|p| p.p_type == PT_LOAD).map(|p| p.memsz).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header plus `phdrs` (type, memsz).
    fn image(phdrs: &[(u32, u64)]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for &(t, memsz) in phdrs {
            let mut p = vec![0u8; 56];
            p[..4].copy_from_slice(&t.to_le_bytes());
            p[4..8].copy_from_slice(&5u32.to_le_bytes());
            p[24..32].copy_from_slice(&0x10_0000u64.to_le_bytes());
            p[32..40].copy_from_slice(&(memsz / 2).to_le_bytes());
            p[40..48].copy_from_slice(&memsz.to_le_bytes());
            b.extend(p);
        }
        b
    }

    #[test]
    fn sums_load_segments_only() {
        let ph = program_headers(&image(&[(PT_LOAD, 0x1000), (4, 0x30), (PT_LOAD, 0x2345)])).unwrap();
        assert_eq!(ph.len(), 3);
        assert_eq!(ph[0].paddr, 0x10_0000);
        assert_eq!(ph[2].filesz, 0x2345 / 2);
        assert_eq!(ph[1].flags, 5);
        assert_eq!(loaded_size(&ph), 0x1000 + 0x2345);
        assert_eq!(image_size(&ph), ph.iter().filter(|p| p.p_type == PT_LOAD).map(|p| p.filesz).sum::<u64>());
        assert!(image_size(&ph) < loaded_size(&ph));
    }

    #[test]
    fn rejects_garbage() {
        assert!(program_headers(b"MZ\x90\x00").is_err());
        let mut b = image(&[(PT_LOAD, 1)]);
        b[4] = 1;
        assert!(program_headers(&b).is_err());
        let b = image(&[(PT_LOAD, 1)]);
        assert!(program_headers(&b[..100]).unwrap_err().contains("truncated"));
    }

    #[test]
    fn reads_a_real_elf() {
        // The test binary itself is an ELF64 LE on x86_64 Linux.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let ph = program_headers(&exe).unwrap();
        assert!(loaded_size(&ph) > 0);
    }
}
