//! Linux's view of ACPI: the firmware's tables, except that the MADT lists only Linux's CPUs.
//!
//! A real-time-only CPU must not exist for Linux: not as a CPU it could start (it would send the
//! co-kernel's CPU an INIT), nor as one it counts. The co-kernel therefore gives Linux its own
//! RSDP (`boot_params.acpi_rsdp_addr`), pointing to its own XSDT: the firmware's root table's
//! entries (an RSDT's widened to 64 bits), with the MADT's replaced by a filtered copy. Every
//! other table is the firmware's own, in place. The filtered MADT keeps the header, the local
//! APIC address and flags and every entry but the processors Linux does not get (Processor Local
//! APIC and Local x2APIC entries of other CPUs) and any multiprocessor-wakeup mailbox.
//!
//! The three tables are built into one page ([`build`]): the RSDP at offset 0, the XSDT at
//! [`XSDT_AT`], the MADT after it. Everything read from the firmware is checked (signatures,
//! lengths, entry bounds) and refused with a [`ViewError`] naming what was wrong; the caller
//! then keeps Linux on CPU 0 by other means.
#![forbid(unsafe_code)]

use core::fmt;

/// An ACPI table header's size.
pub const HEADER: usize = 36;
/// The XSDT's offset in the page (after the 36-byte RSDP, 8-aligned with room to spare).
pub const XSDT_AT: usize = 64;
/// The page the three tables are built into.
pub const PAGE: usize = 4096;
/// MADT entry types.
const MADT_LOCAL_APIC: u8 = 0;
const MADT_LOCAL_X2APIC: u8 = 9;
const MADT_MP_WAKEUP: u8 = 0x10;
/// The MADT's fixed part: the header, the local APIC address and the flags.
const MADT_FIXED: usize = HEADER + 8;

/// What the firmware's tables were found to be wrong in, or what did not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewError {
    /// The root table's signature is neither `RSDT` nor `XSDT`, or not the one the RSDP's
    /// revision names.
    RootSignature,
    /// A table's length field is below its fixed part or beyond the bytes read.
    Length {
        /// `RSDT`/`XSDT` or `APIC`.
        table: &'static str,
        /// The length field.
        length: u32,
    },
    /// The MADT's signature is not `APIC`.
    MadtSignature,
    /// The root table does not list the MADT at the address it was found at.
    MadtNotListed,
    /// A MADT entry at this offset has a length below 2 or runs past the table.
    MadtEntry {
        /// Its offset in the table.
        at: usize,
    },
    /// The tables do not fit in one page.
    TooBig {
        /// Bytes they need.
        need: usize,
    },
}

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ViewError::RootSignature => {
                write!(f, "the ACPI root table is neither the RSDT nor the XSDT its RSDP names")
            }
            ViewError::Length { table, length } => {
                write!(f, "the firmware's {table} says it is {length} bytes long, which cannot be")
            }
            ViewError::MadtSignature => write!(f, "the table found as the MADT is not signed APIC"),
            ViewError::MadtNotListed => write!(f, "the ACPI root table does not list the MADT"),
            ViewError::MadtEntry { at } => {
                write!(f, "the MADT's entry at offset {at} runs past the table or is shorter than 2 bytes")
            }
            ViewError::TooBig { need } => write!(f, "Linux's ACPI tables would need {need} bytes, more than a page"),
        }
    }
}

/// What the firmware gave, as read (the caller reads each table's `length` bytes).
#[derive(Clone, Copy, Debug)]
pub struct Firmware<'a> {
    /// The root table: the XSDT (`xsdt` true) or the RSDT.
    pub root: &'a [u8],
    /// Whether `root` is the XSDT (RSDP revision 2 or later).
    pub xsdt: bool,
    /// The MADT's physical address (as the root table lists it).
    pub madt_phys: u64,
    /// The MADT.
    pub madt: &'a [u8],
    /// The RSDP's OEM ID (copied into Linux's RSDP).
    pub oem_id: [u8; 6],
}

/// What [`build`] made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Built {
    /// Bytes of the page used.
    pub len: usize,
    /// Processor entries kept (Linux's CPUs).
    pub cpus: u32,
    /// Processor entries (and wake-up mailboxes) left out.
    pub dropped: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The byte that makes `b` sum to 0 (mod 256) when stored at `at` (which is counted as 0).
fn fix_checksum(b: &mut [u8], at: usize) {
    b[at] = 0;
    let sum = b.iter().fold(0u8, |s, &x| s.wrapping_add(x));
    b[at] = 0u8.wrapping_sub(sum);
}

/// A table's length field, checked against its fixed part and the bytes read.
fn table_len(b: &[u8], fixed: usize, table: &'static str) -> Result<usize, ViewError> {
    if b.len() < HEADER {
        return Err(ViewError::Length { table, length: b.len() as u32 });
    }
    let length = u32_at(b, 4);
    if (length as usize) < fixed || length as usize > b.len() {
        return Err(ViewError::Length { table, length });
    }
    Ok(length as usize)
}

/// The table addresses a root table (`root`, exactly its length) lists: 64-bit in the XSDT,
/// 32-bit in the RSDT; at most 256.
pub fn root_entries(root: &[u8], xsdt: bool) -> heapless::Vec<u64, 256> {
    let width = if xsdt { 8 } else { 4 };
    root.get(HEADER..)
        .unwrap_or_default()
        .chunks_exact(width)
        .take(256)
        .map(|c| {
            let mut w = [0u8; 8];
            w[..width].copy_from_slice(c);
            u64::from_le_bytes(w)
        })
        .collect()
}

/// Builds Linux's RSDP, XSDT and MADT into `out`, to be placed at physical address `at_phys`:
/// the MADT keeps the processors for which `keep(apic_id)` holds. The RSDP is at offset 0.
pub fn build(
    fw: &Firmware<'_>,
    keep: &dyn Fn(u32) -> bool,
    at_phys: u64,
    out: &mut [u8; PAGE],
) -> Result<Built, ViewError> {
    let root_sig: &[u8; 4] = if fw.xsdt { b"XSDT" } else { b"RSDT" };
    if fw.root.len() < 4 || &fw.root[..4] != root_sig {
        return Err(ViewError::RootSignature);
    }
    let root_len = table_len(fw.root, HEADER, if fw.xsdt { "XSDT" } else { "RSDT" })?;
    let entries = root_entries(&fw.root[..root_len], fw.xsdt);
    if !entries.contains(&fw.madt_phys) {
        return Err(ViewError::MadtNotListed);
    }
    if fw.madt.len() < 4 || &fw.madt[..4] != b"APIC" {
        return Err(ViewError::MadtSignature);
    }
    let madt_len = table_len(fw.madt, MADT_FIXED, "APIC")?;

    let xsdt_len = HEADER + 8 * entries.len();
    let madt_at = (XSDT_AT + xsdt_len).next_multiple_of(8);
    let need = madt_at + madt_len;
    if need > PAGE {
        return Err(ViewError::TooBig { need });
    }
    out.fill(0);

    // The MADT: fixed part, then the entries Linux gets.
    let mut w = madt_at;
    out[w..w + MADT_FIXED].copy_from_slice(&fw.madt[..MADT_FIXED]);
    w += MADT_FIXED;
    let (mut cpus, mut dropped) = (0, 0);
    let mut at = MADT_FIXED;
    while at < madt_len {
        if at + 2 > madt_len {
            return Err(ViewError::MadtEntry { at });
        }
        let (ty, len) = (fw.madt[at], usize::from(fw.madt[at + 1]));
        if len < 2 || at + len > madt_len {
            return Err(ViewError::MadtEntry { at });
        }
        let e = &fw.madt[at..at + len];
        let cpu = match ty {
            MADT_LOCAL_APIC if len >= 8 => Some(u32::from(e[3])),
            MADT_LOCAL_X2APIC if len >= 16 => Some(u32_at(e, 4)),
            _ => None,
        };
        let take = match (ty, cpu) {
            (MADT_MP_WAKEUP, _) => false,
            (_, Some(id)) => keep(id),
            _ => true,
        };
        if take {
            out[w..w + len].copy_from_slice(e);
            w += len;
            cpus += u32::from(cpu.is_some());
        } else {
            dropped += 1;
        }
        at += len;
    }
    let madt = &mut out[madt_at..w];
    put_u32(madt, 4, madt.len() as u32);
    fix_checksum(madt, 9);

    // The XSDT: the firmware's entries, the MADT's now Linux's.
    let xsdt = &mut out[XSDT_AT..XSDT_AT + xsdt_len];
    xsdt[..HEADER].copy_from_slice(&fw.root[..HEADER]);
    xsdt[..4].copy_from_slice(b"XSDT");
    put_u32(xsdt, 4, xsdt_len as u32);
    xsdt[8] = 1; // XSDT revision
    for (i, &e) in entries.iter().enumerate() {
        put_u64(xsdt, HEADER + 8 * i, if e == fw.madt_phys { at_phys + madt_at as u64 } else { e });
    }
    fix_checksum(xsdt, 9);

    // The RSDP (ACPI 2.0: the XSDT only).
    let rsdp = &mut out[..36];
    rsdp[..8].copy_from_slice(b"RSD PTR ");
    rsdp[9..15].copy_from_slice(&fw.oem_id);
    rsdp[15] = 2;
    put_u32(rsdp, 20, 36);
    put_u64(rsdp, 24, at_phys + XSDT_AT as u64);
    rsdp[8] = 0;
    let sum20 = rsdp[..20].iter().fold(0u8, |s, &x| s.wrapping_add(x));
    rsdp[8] = 0u8.wrapping_sub(sum20);
    fix_checksum(rsdp, 32);
    Ok(Built { len: w, cpus, dropped })
}

/// The processors (APIC IDs) a MADT lists, for tests and reports (an entry that runs past the
/// table ends the list).
pub fn madt_cpus(madt: &[u8]) -> heapless::Vec<u32, 64> {
    let mut ids = heapless::Vec::new();
    let Ok(len) = table_len(madt, MADT_FIXED, "APIC") else { return ids };
    let mut at = MADT_FIXED;
    while at + 2 <= len {
        let (ty, l) = (madt[at], usize::from(madt[at + 1]));
        if l < 2 || at + l > len {
            break;
        }
        match ty {
            MADT_LOCAL_APIC if l >= 8 => {
                let _ = ids.push(u32::from(madt[at + 3]));
            }
            MADT_LOCAL_X2APIC if l >= 16 => {
                let _ = ids.push(u32_at(madt, at + 4));
            }
            _ => {}
        }
        at += l;
    }
    ids
}

/// Builders of firmware-like tables for tests and fuzz seeds.
#[cfg(any(test, feature = "fuzz"))]
pub mod sample {
    use alloc::vec::Vec;

    fn header(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(sig);
        t.extend_from_slice(&((super::HEADER + body.len()) as u32).to_le_bytes());
        t.push(1);
        t.push(0);
        t.extend_from_slice(b"BOCHS BXPC    ");
        t.extend_from_slice(&[1, 0, 0, 0, b'B', b'X', b'P', b'C', 1, 0, 0, 0]);
        t.extend_from_slice(body);
        let sum = t.iter().fold(0u8, |s, &x| s.wrapping_add(x));
        t[9] = 0u8.wrapping_sub(sum);
        t
    }

    /// QEMU's MADT for `cpus` CPUs (APIC IDs 0..cpus): a Local APIC entry each, an IO-APIC, two
    /// interrupt source overrides and a Local APIC NMI for all processors; with `x2apic`, the
    /// CPUs as Local x2APIC entries instead.
    pub fn madt(cpus: u32, x2apic: bool) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        for id in 0..cpus {
            if x2apic {
                b.extend_from_slice(&[9, 16, 0, 0]);
                b.extend_from_slice(&id.to_le_bytes());
                b.extend_from_slice(&1u32.to_le_bytes());
                b.extend_from_slice(&id.to_le_bytes());
            } else {
                b.extend_from_slice(&[0, 8, id as u8, id as u8, 1, 0, 0, 0]);
            }
        }
        b.extend_from_slice(&[1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]);
        b.extend_from_slice(&[2, 10, 0, 0, 2, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&[2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0]);
        b.extend_from_slice(&[4, 6, 0xff, 0, 0, 1]);
        header(b"APIC", &b)
    }

    /// A root table listing `entries` (an XSDT, or an RSDT with 32-bit entries).
    pub fn root(entries: &[u64], xsdt: bool) -> Vec<u8> {
        let mut b = Vec::new();
        for &e in entries {
            if xsdt {
                b.extend_from_slice(&e.to_le_bytes());
            } else {
                b.extend_from_slice(&(e as u32).to_le_bytes());
            }
        }
        header(if xsdt { b"XSDT" } else { b"RSDT" }, &b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MADT_AT: u64 = 0x7ffe_1234;
    const PAGE_AT: u64 = 0x20_0000;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |s, &x| s.wrapping_add(x))
    }

    fn view(
        root: &[u8],
        xsdt: bool,
        madt: &[u8],
        keep: &dyn Fn(u32) -> bool,
    ) -> Result<(Built, [u8; PAGE]), ViewError> {
        let mut out = [0u8; PAGE];
        let fw = Firmware { root, xsdt, madt_phys: MADT_AT, madt, oem_id: *b"BOCHS " };
        build(&fw, keep, PAGE_AT, &mut out).map(|b| (b, out))
    }

    /// The RSDP, XSDT and MADT Linux will read, checked as ACPICA checks them.
    fn read_back(out: &[u8; PAGE]) -> (Vec<u64>, &[u8]) {
        assert_eq!(&out[..8], b"RSD PTR ");
        assert_eq!(sum(&out[..20]), 0, "RSDP checksum");
        assert_eq!(sum(&out[..36]), 0, "RSDP extended checksum");
        assert_eq!(out[15], 2);
        let xsdt_phys = u64::from_le_bytes(out[24..32].try_into().unwrap());
        let x = (xsdt_phys - PAGE_AT) as usize;
        assert_eq!(&out[x..x + 4], b"XSDT");
        let xl = u32_at(out, x + 4) as usize;
        assert_eq!(sum(&out[x..x + xl]), 0, "XSDT checksum");
        let entries: Vec<u64> =
            out[x + HEADER..x + xl].chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        let m = entries.iter().find(|&&e| (PAGE_AT..PAGE_AT + PAGE as u64).contains(&e)).expect("the MADT is ours");
        let m = (m - PAGE_AT) as usize;
        let ml = u32_at(out, m + 4) as usize;
        assert_eq!(&out[m..m + 4], b"APIC");
        assert_eq!(sum(&out[m..m + ml]), 0, "MADT checksum");
        (entries, &out[m..m + ml])
    }

    #[test]
    fn linux_sees_only_its_cpus_and_every_other_table() {
        for (xsdt, x2apic) in [(true, false), (false, false), (true, true)] {
            let madt = sample::madt(4, x2apic);
            let root = sample::root(&[0x7ffe_0000, MADT_AT, 0x7ffe_2000], xsdt);
            let (b, out) = view(&root, xsdt, &madt, &|id| id == 0 || id == 2).unwrap();
            assert_eq!((b.cpus, b.dropped), (2, 2));
            let (entries, m) = read_back(&out);
            assert_eq!(entries.len(), 3);
            assert_eq!((entries[0], entries[2]), (0x7ffe_0000, 0x7ffe_2000), "the other tables are the firmware's");
            assert_eq!(madt_cpus(m).as_slice(), &[0, 2]);
            // Everything but the two processors is kept, in order: fixed part, IO-APIC, overrides, NMI.
            let per_cpu = if x2apic { 16 } else { 8 };
            assert_eq!(m.len(), madt.len() - 2 * per_cpu);
            assert_eq!(&m[HEADER..MADT_FIXED], &madt[HEADER..MADT_FIXED]);
            assert_eq!(&m[m.len() - 38..], &madt[madt.len() - 38..]);
            assert!(b.len <= PAGE && out[b.len..].iter().all(|&x| x == 0));
        }
    }

    #[test]
    fn a_wakeup_mailbox_of_the_firmware_s_is_not_linux_s() {
        let mut madt = sample::madt(2, false);
        madt.extend_from_slice(&[0x10, 16, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0]);
        let l = madt.len() as u32;
        put_u32(&mut madt, 4, l);
        let root = sample::root(&[MADT_AT], true);
        let (b, out) = view(&root, true, &madt, &|_| true).unwrap();
        assert_eq!((b.cpus, b.dropped), (2, 1));
        let (_, m) = read_back(&out);
        assert_eq!(m.len(), madt.len() - 16);
    }

    #[test]
    fn bad_firmware_tables_are_refused_by_name() {
        let madt = sample::madt(2, false);
        let root = sample::root(&[MADT_AT], true);
        let all = |_| true;
        assert_eq!(view(&root, false, &madt, &all).unwrap_err(), ViewError::RootSignature);
        assert_eq!(view(&sample::root(&[1], true), true, &madt, &all).unwrap_err(), ViewError::MadtNotListed);
        assert_eq!(view(&root, true, &root, &all).unwrap_err(), ViewError::MadtSignature);
        let mut long = madt.clone();
        put_u32(&mut long, 4, 5000);
        assert_eq!(view(&root, true, &long, &all).unwrap_err(), ViewError::Length { table: "APIC", length: 5000 });
        let mut short_root = root.clone();
        put_u32(&mut short_root, 4, 20);
        assert!(matches!(view(&short_root, true, &madt, &all), Err(ViewError::Length { table: "XSDT", .. })));
        // An entry whose length runs past the table, and one of length 0 (which would loop).
        for bad_len in [200u8, 0] {
            let mut m = madt.clone();
            m[MADT_FIXED + 1] = bad_len;
            assert_eq!(view(&root, true, &m, &all).unwrap_err(), ViewError::MadtEntry { at: MADT_FIXED });
        }
        // More CPUs than a page holds.
        let big = sample::madt(600, false);
        assert!(matches!(view(&root, true, &big, &all), Err(ViewError::TooBig { .. })));
        for e in [ViewError::RootSignature, ViewError::MadtEntry { at: 44 }, ViewError::TooBig { need: 5000 }] {
            assert!(!alloc::format!("{e}").is_empty());
        }
    }
}
