//! Find Linux, its initramfs and its command line among the boot modules.
//!
//! Two ways of handing the guest over are supported:
//! * **separate modules** (GRUB's `module2`): [`classify`] decides each module's [`Role`] from its
//!   command line when that names one, else from its first bytes, and [`select`] picks at most
//!   one module per role;
//! * **one bundle module** (QEMU's PVH path passes a single `-initrd` module): a `newc` cpio
//!   archive holding files named `vmlinux`, `initramfs.cpio.gz` and `cmdline`, read by
//!   [`cpio_entries`] and picked apart by [`select_bundle`].
//!
//! Invariants: nothing here allocates or panics; every slice handed out borrows from the input
//! and lies within it; every cpio header field is checked (magic, hex digits, name termination,
//! bounds) before it is used, and the first malformed entry ends the walk with a [`CpioError`].
#![forbid(unsafe_code)]

use core::fmt;

/// What a boot module is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The Linux kernel (`vmlinux`).
    Linux,
    /// The initramfs (compressed or plain cpio).
    Initramfs,
    /// The Linux command line, as text.
    Cmdline,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Linux => "Linux kernel",
            Self::Initramfs => "initramfs",
            Self::Cmdline => "command line",
        })
    }
}

/// The role a word names, case-insensitively.
fn role_word(word: &str) -> Option<Role> {
    const WORDS: [(&str, Role); 5] = [
        ("linux", Role::Linux),
        ("vmlinux", Role::Linux),
        ("initramfs", Role::Initramfs),
        ("initrd", Role::Initramfs),
        ("cmdline", Role::Cmdline),
    ];
    WORDS.iter().find(|(w, _)| w.eq_ignore_ascii_case(word)).map(|&(_, r)| r)
}

/// The role of a module with command line `module_cmdline` whose contents start with
/// `first_bytes`.
///
/// By name first: the first word of the command line (`linux`/`vmlinux`, `initramfs`/`initrd`,
/// `cmdline`, case-insensitive). GRUB puts the module's path before its arguments, so when the
/// first word names no role and contains a `/`, its file name up to the first `.` is tried
/// (`/boot/initrd.img` → initramfs) and then the second word (`/boot/x.bin linux` → Linux).
/// Otherwise by content: ELF magic → Linux; gzip, cpio `newc` (`070701`/`070702`), zstd or xz
/// magic → initramfs. Otherwise `None`.
pub fn classify(module_cmdline: &str, first_bytes: &[u8]) -> Option<Role> {
    let mut words = module_cmdline.split_ascii_whitespace();
    if let Some(first) = words.next() {
        if let Some(r) = role_word(first) {
            return Some(r);
        }
        if first.contains('/') {
            let file = first.rsplit('/').next().unwrap_or("");
            let stem = file.split('.').next().unwrap_or("");
            if let Some(r) = role_word(stem) {
                return Some(r);
            }
            if let Some(r) = words.next().and_then(role_word) {
                return Some(r);
            }
        }
    }
    const INITRAMFS_MAGICS: [&[u8]; 5] =
        [&[0x1f, 0x8b], b"070701", b"070702", &[0x28, 0xb5, 0x2f, 0xfd], &[0xfd, b'7', b'z', b'X', b'Z', 0x00]];
    if first_bytes.starts_with(b"\x7fELF") {
        Some(Role::Linux)
    } else if INITRAMFS_MAGICS.iter().any(|m| first_bytes.starts_with(m)) {
        Some(Role::Initramfs)
    } else {
        None
    }
}

/// Which module (by index) plays which role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// The Linux kernel.
    pub linux: Option<usize>,
    /// The initramfs.
    pub initramfs: Option<usize>,
    /// The command line.
    pub cmdline: Option<usize>,
}

/// A module's name as kept in an error (its command line or file name, truncated).
pub type Name = heapless::String<40>;

fn name(s: &str) -> Name {
    let mut n = Name::new();
    for c in s.chars() {
        if n.push(c).is_err() {
            break;
        }
    }
    n
}

/// Why the guest's modules could not be picked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModuleError {
    /// Two modules (or two bundle files) claim the same role.
    DuplicateRole {
        /// The role.
        role: Role,
        /// Index of the first claimant (module index, or entry index in a bundle).
        first: usize,
        /// Its command line or file name (truncated to 40 bytes).
        first_name: Name,
        /// Index of the second claimant.
        second: usize,
        /// Its command line or file name (truncated to 40 bytes).
        second_name: Name,
    },
    /// The bundle holds no `vmlinux`.
    BundleWithoutLinux,
    /// The bundle's `cmdline` file is not UTF-8.
    CmdlineNotUtf8,
    /// The bundle is not a well-formed cpio archive.
    Cpio(CpioError),
}

impl fmt::Display for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateRole { role, first, first_name, second, second_name } => write!(
                f,
                "both boot module {first} (\"{first_name}\") and boot module {second} (\"{second_name}\") look like the {role}; name each module's role in its command line"
            ),
            Self::BundleWithoutLinux => {
                write!(f, "the boot module is a cpio bundle but holds no file named \"vmlinux\"")
            }
            Self::CmdlineNotUtf8 => {
                write!(f, "the bundle's \"cmdline\" file is not valid UTF-8")
            }
            Self::Cpio(e) => write!(f, "the bundle is not a valid cpio archive: {e}"),
        }
    }
}

impl From<CpioError> for ModuleError {
    fn from(e: CpioError) -> Self {
        Self::Cpio(e)
    }
}

/// Record `index` in `slot` for `role`, or fail when the slot is taken.
fn claim(
    slot: &mut Option<usize>,
    role: Role,
    index: usize,
    name_of: impl Fn(usize) -> Name,
) -> Result<(), ModuleError> {
    match *slot {
        Some(first) => Err(ModuleError::DuplicateRole {
            role,
            first,
            first_name: name_of(first),
            second: index,
            second_name: name_of(index),
        }),
        None => {
            *slot = Some(index);
            Ok(())
        }
    }
}

/// Pick Linux, the initramfs and the command line among `mods` (command line, contents), by
/// [`classify`]. Modules without a role are ignored; a role claimed twice is an error naming
/// both modules. A missing role is not an error here: the caller decides what it needs.
pub fn select(mods: &[(&str, &[u8])]) -> Result<Selection, ModuleError> {
    let mut sel = Selection::default();
    let name_of = |i: usize| name(mods.get(i).map_or("", |m| m.0));
    for (i, &(cmdline, data)) in mods.iter().enumerate() {
        let Some(role) = classify(cmdline, data) else {
            continue;
        };
        let slot = match role {
            Role::Linux => &mut sel.linux,
            Role::Initramfs => &mut sel.initramfs,
            Role::Cmdline => &mut sel.cmdline,
        };
        claim(slot, role, i, name_of)?;
    }
    Ok(sel)
}

/// The parts of a bundle module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bundle<'a> {
    /// The `vmlinux` file.
    pub linux: &'a [u8],
    /// The `initramfs.cpio.gz` file (any name `initramfs` or `initramfs.*`).
    pub initramfs: Option<&'a [u8]>,
    /// The `cmdline` file, without trailing whitespace and NULs.
    pub cmdline: Option<&'a str>,
}

/// Pick the guest's parts out of a bundle: a `newc` cpio archive with regular files named
/// `vmlinux`, `initramfs.cpio.gz` (or `initramfs`, or any `initramfs.*`) and `cmdline` (leading
/// `./` or `/` ignored). Other entries are ignored; the archive must be well-formed up to its
/// trailer, hold a `vmlinux`, and hold each file at most once.
pub fn select_bundle(archive: &[u8]) -> Result<Bundle<'_>, ModuleError> {
    let mut found: [Option<(usize, &[u8])>; 3] = [None; 3];
    let mut names: [&str; 3] = [""; 3];
    let mut entries = cpio_entries(archive);
    for (i, entry) in core::iter::from_fn(|| entries.next_entry()).enumerate() {
        let entry = entry?;
        if !entry.is_regular_file() {
            continue;
        }
        let file = entry.name.trim_start_matches("./").trim_start_matches('/');
        let (slot, role) = match file {
            "vmlinux" => (0, Role::Linux),
            "cmdline" => (2, Role::Cmdline),
            f if f == "initramfs" || f.starts_with("initramfs.") => (1, Role::Initramfs),
            _ => continue,
        };
        if let Some((first, _)) = found.get(slot).copied().flatten() {
            return Err(ModuleError::DuplicateRole {
                role,
                first,
                first_name: name(names.get(slot).copied().unwrap_or("")),
                second: i,
                second_name: name(entry.name),
            });
        }
        if let (Some(f), Some(n)) = (found.get_mut(slot), names.get_mut(slot)) {
            *f = Some((i, entry.data));
            *n = entry.name;
        }
    }
    let [linux, initramfs, cmdline] = found;
    let linux = linux.ok_or(ModuleError::BundleWithoutLinux)?.1;
    let cmdline = match cmdline {
        Some((_, bytes)) => Some(
            core::str::from_utf8(bytes)
                .map_err(|_| ModuleError::CmdlineNotUtf8)?
                .trim_end_matches(|c: char| c.is_whitespace() || c == '\0'),
        ),
        None => None,
    };
    Ok(Bundle { linux, initramfs: initramfs.map(|(_, d)| d), cmdline })
}

/// Size of a `newc` header: 6-byte magic and 13 fields of 8 hex digits.
pub const CPIO_HEADER_SIZE: usize = 110;
/// Name of the entry that ends an archive.
pub const CPIO_TRAILER: &str = "TRAILER!!!";

/// Which header field a [`CpioError::BadHex`] refers to.
const FIELDS: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];

/// Why a cpio archive could not be read. Offsets are from the start of the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpioError {
    /// The archive ends inside the entry whose header starts here.
    Truncated {
        /// Offset of the entry's header.
        offset: usize,
    },
    /// No `070701`/`070702` magic at this header.
    BadMagic {
        /// Offset of the header.
        offset: usize,
    },
    /// A header field is not 8 hex digits.
    BadHex {
        /// Offset of the header.
        offset: usize,
        /// The field's name.
        field: &'static str,
    },
    /// The entry's name is empty, not NUL-terminated or contains a NUL.
    BadName {
        /// Offset of the header.
        offset: usize,
    },
    /// The entry's name is not UTF-8.
    NameNotUtf8 {
        /// Offset of the header.
        offset: usize,
    },
    /// The archive ends without a `TRAILER!!!` entry.
    MissingTrailer,
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { offset } => {
                write!(f, "the archive ends inside the entry at offset {offset:#x}")
            }
            Self::BadMagic { offset } => {
                write!(f, "no newc cpio magic (070701) at offset {offset:#x}")
            }
            Self::BadHex { offset, field } => {
                write!(f, "the {field} field of the entry at offset {offset:#x} is not 8 hex digits")
            }
            Self::BadName { offset } => {
                write!(f, "the name of the entry at offset {offset:#x} is empty or not NUL-terminated")
            }
            Self::NameNotUtf8 { offset } => write!(f, "the name of the entry at offset {offset:#x} is not UTF-8"),
            Self::MissingTrailer => {
                write!(f, "the archive ends without a {CPIO_TRAILER} entry")
            }
        }
    }
}

/// One entry of a cpio archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpioEntry<'a> {
    /// Its name, without the NUL.
    pub name: &'a str,
    /// Its contents.
    pub data: &'a [u8],
    /// Its `mode` (file type and permissions).
    pub mode: u32,
}

impl CpioEntry<'_> {
    /// True for a regular file (`S_IFREG`).
    pub const fn is_regular_file(&self) -> bool {
        self.mode & 0o170_000 == 0o100_000
    }
}

/// Iterator over the entries of a `newc` archive; see [`cpio_entries`].
#[derive(Clone, Debug)]
pub struct CpioEntries<'a> {
    archive: &'a [u8],
    offset: usize,
    done: bool,
}

/// The entries of a `newc` cpio archive (name, data), in order, up to but not including the
/// `TRAILER!!!` entry. The first malformed entry yields one `Err` and ends the iteration; so
/// does an archive that ends without a trailer ([`CpioError::MissingTrailer`]).
pub fn cpio_entries(archive: &[u8]) -> CpioEntries<'_> {
    CpioEntries { archive, offset: 0, done: false }
}

impl<'a> CpioEntries<'a> {
    /// Like the iterator, but with the entry's mode.
    pub fn next_entry(&mut self) -> Option<Result<CpioEntry<'a>, CpioError>> {
        if self.done {
            return None;
        }
        let r = self.read();
        match r {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    /// Read the entry at `self.offset`; `Ok(None)` at the trailer.
    fn read(&mut self) -> Result<Option<CpioEntry<'a>>, CpioError> {
        let offset = self.offset;
        let rest = self.archive.get(offset..).unwrap_or(&[]);
        if rest.is_empty() {
            return Err(CpioError::MissingTrailer);
        }
        let truncated = CpioError::Truncated { offset };
        let header = rest.get(..CPIO_HEADER_SIZE).ok_or(truncated)?;
        if !(header.starts_with(b"070701") || header.starts_with(b"070702")) {
            return Err(CpioError::BadMagic { offset });
        }
        let mut fields = [0u32; 13];
        for (i, (slot, field)) in fields.iter_mut().zip(FIELDS).enumerate() {
            let start = 6 + 8 * i;
            let digits = header.get(start..start + 8).ok_or(truncated)?;
            *slot = hex8(digits).ok_or(CpioError::BadHex { offset, field })?;
        }
        let [_, mode, _, _, _, _, filesize, _, _, _, _, namesize, _] = fields;
        let namesize = namesize as usize;
        let filesize = filesize as usize;
        let name_bytes = rest.get(CPIO_HEADER_SIZE..).and_then(|r| r.get(..namesize)).ok_or(truncated)?;
        let name = match name_bytes.split_last() {
            Some((0, name)) if !name.is_empty() && !name.contains(&0) => name,
            _ => return Err(CpioError::BadName { offset }),
        };
        let name = core::str::from_utf8(name).map_err(|_| CpioError::NameNotUtf8 { offset })?;
        let data_start = align4(CPIO_HEADER_SIZE + namesize).ok_or(truncated)?;
        let data = rest.get(data_start..).and_then(|r| r.get(..filesize)).ok_or(truncated)?;
        if name == CPIO_TRAILER {
            return Ok(None);
        }
        // The padding after the last data may be missing; the next read reports what follows.
        let next =
            data_start.checked_add(filesize).and_then(align4).and_then(|n| n.checked_add(offset)).ok_or(truncated)?;
        self.offset = next;
        Ok(Some(CpioEntry { name, data, mode }))
    }
}

impl<'a> Iterator for CpioEntries<'a> {
    type Item = Result<(&'a str, &'a [u8]), CpioError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry().map(|r| r.map(|e| (e.name, e.data)))
    }
}

fn align4(x: usize) -> Option<usize> {
    Some(x.checked_add(3)? & !3)
}

/// Eight ASCII hex digits (either case) as a number.
fn hex8(digits: &[u8]) -> Option<u32> {
    if digits.len() != 8 {
        return None;
    }
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return None,
        };
        Some((acc << 4) | u32::from(v))
    })
}

/// Well-formed archives for the tests and the fuzz seeds (`crate::fuzz`).
#[cfg(any(test, feature = "fuzz"))]
pub mod sample {
    use super::CPIO_TRAILER;
    use alloc::vec::Vec;

    /// Mode of a regular file.
    pub const REG: u32 = 0o100_644;
    /// Mode of a directory.
    pub const DIR: u32 = 0o040_755;

    /// A minimal `newc` writer: `(name, mode, data)` entries, then the trailer if asked.
    pub fn cpio(entries: &[(&str, u32, &[u8])], trailer: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |name: &str, mode: u32, data: &[u8]| {
            let fields = [1, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, 0, 0, name.len() as u32 + 1, 0];
            out.extend_from_slice(b"070701");
            for f in fields {
                out.extend_from_slice(alloc::format!("{f:08X}").as_bytes());
            }
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            while out.len() % 4 != 0 {
                out.push(0);
            }
            out.extend_from_slice(data);
            while out.len() % 4 != 0 {
                out.push(0);
            }
        };
        for &(n, m, d) in entries {
            put(n, m, d);
        }
        if trailer {
            put(CPIO_TRAILER, 0, &[]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::sample::*;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    const ELF: &[u8] = b"\x7fELF\x02\x01\x01rest-of-kernel";
    const GZ: &[u8] = &[0x1f, 0x8b, 8, 0, 1, 2, 3];

    #[test]
    fn classifies_by_name_then_content() {
        assert_eq!(classify("linux", &[]), Some(Role::Linux));
        assert_eq!(classify("VMLinux console=ttyS0", GZ), Some(Role::Linux));
        assert_eq!(classify("  initrd", ELF), Some(Role::Initramfs));
        assert_eq!(classify("InitRamFS", &[]), Some(Role::Initramfs));
        assert_eq!(classify("cmdline", b"console=ttyS0"), Some(Role::Cmdline));
        assert_eq!(classify("/boot/vmlinux-6.12", ELF), Some(Role::Linux));
        assert_eq!(classify("/boot/initrd.img", &[]), Some(Role::Initramfs));
        assert_eq!(classify("/boot/linux.cmdline", &[]), Some(Role::Linux));
        assert_eq!(classify("/boot/args.txt cmdline", &[]), Some(Role::Cmdline));
        assert_eq!(classify("payload cmdline", &[]), None);
        assert_eq!(classify("", ELF), Some(Role::Linux));
        assert_eq!(classify("something", GZ), Some(Role::Initramfs));
        assert_eq!(classify("", b"070701000000"), Some(Role::Initramfs));
        assert_eq!(classify("", &[0x28, 0xb5, 0x2f, 0xfd, 0]), Some(Role::Initramfs));
        assert_eq!(classify("", &[0xfd, b'7', b'z', b'X', b'Z', 0, 0]), Some(Role::Initramfs));
        assert_eq!(classify("", &[0xfd, b'7', b'z', b'X', b'Z']), None);
        assert_eq!(classify("", &[0x1f]), None);
        assert_eq!(classify("", b"console=ttyS0"), None);
        assert_eq!(classify("", &[]), None);
    }

    #[test]
    fn selects_modules() {
        let mods: [(&str, &[u8]); 4] =
            [("/boot/hauki.cfg", b"x"), ("initrd", GZ), ("", ELF), ("cmdline", b"console=ttyS0")];
        assert_eq!(select(&mods), Ok(Selection { linux: Some(2), initramfs: Some(1), cmdline: Some(3) }));
        assert_eq!(select(&[]), Ok(Selection::default()));
        let dup: [(&str, &[u8]); 3] = [("/boot/a.img", ELF), ("x", b""), ("vmlinux", b"")];
        let err = select(&dup).unwrap_err();
        assert_eq!(
            err,
            ModuleError::DuplicateRole {
                role: Role::Linux,
                first: 0,
                first_name: name("/boot/a.img"),
                second: 2,
                second_name: name("vmlinux"),
            }
        );
        let msg = std::format!("{err}");
        assert!(msg.contains("/boot/a.img") && msg.contains("vmlinux") && msg.contains("Linux"), "{msg}");
        let long = "initrd ".repeat(30);
        let dup: [(&str, &[u8]); 2] = [(&long, b""), ("", GZ)];
        match select(&dup) {
            Err(ModuleError::DuplicateRole { first_name, .. }) => assert_eq!(first_name.len(), 40),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_cpio() {
        let a = cpio(&[(".", DIR, b""), ("a", REG, b"hello"), ("dir/bb", REG, b""), ("c", REG, b"1234")], true);
        let got: Vec<_> = cpio_entries(&a).collect();
        assert_eq!(
            got,
            [Ok((".", &b""[..])), Ok(("a", &b"hello"[..])), Ok(("dir/bb", &b""[..])), Ok(("c", &b"1234"[..])),]
        );
        // Anything after the trailer is not read.
        let mut more = a.clone();
        more.extend_from_slice(b"garbage");
        assert_eq!(cpio_entries(&more).count(), 4);
        // Lower-case hex and the 070702 variant are accepted.
        let mut lc = cpio(&[("x", REG, b"abcdefghijk")], true);
        lc[5] = b'2';
        lc[6 + 6 * 8..6 + 7 * 8].copy_from_slice(b"0000000b");
        assert_eq!(cpio_entries(&lc).next(), Some(Ok(("x", &b"abcdefghijk"[..]))));
        assert_eq!(cpio_entries(&lc).count(), 1);
    }

    #[test]
    fn cpio_errors() {
        let a = cpio(&[("a", REG, b"hello"), ("b", REG, b"world!")], true);
        fn last(bytes: &[u8]) -> Option<Result<(&str, &[u8]), CpioError>> {
            cpio_entries(bytes).last()
        }
        assert_eq!(last(&[]), Some(Err(CpioError::MissingTrailer)));
        let no_trailer = cpio(&[("a", REG, b"hello")], false);
        assert_eq!(
            cpio_entries(&no_trailer).collect::<Vec<_>>(),
            [Ok(("a", &b"hello"[..])), Err(CpioError::MissingTrailer)]
        );
        // Every truncation is an error, never a panic; some are Truncated.
        for cut in 0..a.len() {
            let r = last(&a[..cut]);
            assert!(matches!(r, Some(Err(_))), "cut at {cut}: {r:?}");
        }
        assert_eq!(last(&a[..50]), Some(Err(CpioError::Truncated { offset: 0 })));
        assert_eq!(last(&a[..115]), Some(Err(CpioError::Truncated { offset: 0 })));
        assert_eq!(last(&a[..120]), Some(Err(CpioError::MissingTrailer)));
        let mut bad = a.clone();
        bad[6 + 6 * 8 + 3] = b'g';
        assert_eq!(last(&bad), Some(Err(CpioError::BadHex { offset: 0, field: "filesize" })));
        let mut bad = a.clone();
        bad[0] = b'1';
        assert_eq!(last(&bad), Some(Err(CpioError::BadMagic { offset: 0 })));
        // A name without its NUL.
        let mut bad = a.clone();
        bad[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"00000001");
        assert_eq!(last(&bad), Some(Err(CpioError::BadName { offset: 0 })));
        let mut bad = a.clone();
        bad[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"00000000");
        assert_eq!(last(&bad), Some(Err(CpioError::BadName { offset: 0 })));
        let mut bad = a.clone();
        bad[110] = 0xff;
        assert_eq!(last(&bad), Some(Err(CpioError::NameNotUtf8 { offset: 0 })));
        // A huge file size.
        let mut bad = a.clone();
        bad[6 + 6 * 8..6 + 7 * 8].copy_from_slice(b"FFFFFFFF");
        assert_eq!(last(&bad), Some(Err(CpioError::Truncated { offset: 0 })));
        // The second header is at align4(110 + 2 + 5) = 0x78.
        let mut bad = a.clone();
        bad[0x78] = b'x';
        assert_eq!(last(&bad), Some(Err(CpioError::BadMagic { offset: 0x78 })));
        let s = std::format!("{}", CpioError::BadMagic { offset: 0x78 });
        assert!(s.contains("0x78"), "{s}");
    }

    #[test]
    fn bundles() {
        let a = cpio(
            &[
                (".", DIR, b""),
                ("./vmlinux", REG, ELF),
                ("initramfs.cpio.gz", REG, GZ),
                ("cmdline", REG, b"console=ttyS0 quiet\n\0"),
                ("README", REG, b"hi"),
            ],
            true,
        );
        assert_eq!(
            select_bundle(&a),
            Ok(Bundle { linux: ELF, initramfs: Some(GZ), cmdline: Some("console=ttyS0 quiet") })
        );
        let only = cpio(&[("vmlinux", REG, ELF)], true);
        assert_eq!(select_bundle(&only), Ok(Bundle { linux: ELF, initramfs: None, cmdline: None }));
        let dir = cpio(&[("vmlinux", DIR, b""), ("cmdline", REG, b"x")], true);
        assert_eq!(select_bundle(&dir), Err(ModuleError::BundleWithoutLinux));
        let dup = cpio(&[("vmlinux", REG, ELF), ("initramfs", REG, GZ), ("/initramfs.cpio.zst", REG, b"")], true);
        let err = select_bundle(&dup).unwrap_err();
        assert_eq!(
            err,
            ModuleError::DuplicateRole {
                role: Role::Initramfs,
                first: 1,
                first_name: name("initramfs"),
                second: 2,
                second_name: name("/initramfs.cpio.zst"),
            }
        );
        let bad_utf8 = cpio(&[("vmlinux", REG, ELF), ("cmdline", REG, &[0xff, 0xfe])], true);
        assert_eq!(select_bundle(&bad_utf8), Err(ModuleError::CmdlineNotUtf8));
        let no_trailer = cpio(&[("vmlinux", REG, ELF)], false);
        assert_eq!(select_bundle(&no_trailer), Err(ModuleError::Cpio(CpioError::MissingTrailer)));
        assert_eq!(
            select_bundle(&a[..a.len() - 3]),
            Err(ModuleError::Cpio(CpioError::Truncated { offset: a.len() - 0x7c }))
        );
    }

    proptest! {
        #[test]
        fn cpio_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            edits in proptest::collection::vec((0usize..400, any::<u8>()), 0..8),
        ) {
            let _ = cpio_entries(&bytes).count();
            let _ = select_bundle(&bytes);
            let mut a = cpio(&[("vmlinux", REG, ELF), ("cmdline", REG, b"a b c"), ("x", REG, &[7; 33])], true);
            for (at, b) in edits {
                if let Some(x) = a.get_mut(at) {
                    *x = b;
                }
            }
            for e in cpio_entries(&a).flatten() {
                // Every slice lies within the archive.
                let base = a.as_ptr() as usize;
                let p = e.1.as_ptr() as usize;
                prop_assert!(p >= base && p + e.1.len() <= base + a.len());
            }
            let _ = select_bundle(&a);
        }

        #[test]
        fn cpio_round_trips(files in proptest::collection::vec(("[a-z]{1,12}", proptest::collection::vec(any::<u8>(), 0..40)), 0..6)) {
            let entries: Vec<(&str, u32, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), REG, d.as_slice())).collect();
            let a = cpio(&entries, true);
            let got: Vec<(&str, &[u8])> = cpio_entries(&a).collect::<Result<_, _>>().unwrap();
            let want: Vec<(&str, &[u8])> = entries.iter().map(|&(n, _, d)| (n, d)).collect();
            prop_assert_eq!(got, want);
        }
    }
}
