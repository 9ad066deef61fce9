//! Fault injection: writing into the channels' shared region what a hostile or broken Linux could
//! write (an index out of range, a record longer than its channel allows), so tests can show the
//! co-kernel refusing and counting it while its real-time tasks keep their deadlines.
//!
//! The patched Linux shows the region as it is in debugfs, `hauki/channel-region` (root only, no
//! ABI). Nothing here is for a normal program: the driver behind `/dev/hauki/NAME` is the only
//! honest writer of the region. [`Scribble::plan`] is pure (it reads a copy of the directory and
//! the ring it aims at), so the host tests check every offset it writes.

use std::fs::OpenOptions;
use std::mem::offset_of;
use std::os::unix::fs::FileExt;
use std::path::Path;

use hauki_abi::channel::{Desc, Directory, KIND_MESSAGE, MAGIC, NAME_LEN, Ring};

/// Where debugfs shows the region.
pub const REGION_FILE: &str = "/sys/kernel/debug/hauki/channel-region";

/// What to scribble over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The `head` of the ring from Linux (Linux produces it).
    Head,
    /// The `tail` of the ring to Linux (Linux consumes it).
    Tail,
    /// A record from Linux whose length word is the value: written into the slot at the ring's
    /// head, then published (head + 1). Message channels only.
    Length,
}

/// A value: absolute, or relative to the index it replaces (`+N`, `-N`, wrapping as indices do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// This value.
    Set(u32),
    /// The current index plus this (wrapping).
    Add(u32),
    /// The current index minus this (wrapping).
    Sub(u32),
}

impl std::str::FromStr for Value {
    type Err = String;
    fn from_str(s: &str) -> Result<Value, String> {
        let num = |t: &str| {
            let v = match t.strip_prefix("0x") {
                Some(h) => u32::from_str_radix(h, 16),
                None => t.parse(),
            };
            v.map_err(|_| format!("{s:?} is not a 32-bit value (N, 0xN, +N or -N)"))
        };
        match (s.strip_prefix('+'), s.strip_prefix('-')) {
            (Some(t), _) => num(t).map(Value::Add),
            (_, Some(t)) => num(t).map(Value::Sub),
            _ => num(s).map(Value::Set),
        }
    }
}

/// The 32-bit writes one scribble makes, in order: (offset in the region, old value, new value).
#[derive(Debug, PartialEq, Eq)]
pub struct Scribble {
    /// The writes.
    pub writes: Vec<(u64, u32, u32)>,
}

const DESCS: usize = offset_of!(Directory, descs);
const DESC_SIZE: usize = size_of::<Desc>();

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

impl Scribble {
    /// Plans the writes for `field` of channel `name`, from the region's directory `dir` and
    /// `read(offset)`, which reads one 32-bit word of the region.
    pub fn plan(
        dir: &[u8],
        name: &str,
        field: Field,
        value: Value,
        read: &mut dyn FnMut(u64) -> std::io::Result<u32>,
    ) -> Result<Scribble, String> {
        if u64_at(dir, offset_of!(Directory, magic)) != Some(MAGIC) {
            return Err("the region has no channel directory (wrong magic)".into());
        }
        let count = u32_at(dir, offset_of!(Directory, count)).unwrap_or(0) as usize;
        let desc = (0..count.min(hauki_abi::channel::MAX_CHANNELS))
            .map(|i| DESCS + i * DESC_SIZE)
            .find(|&d| dir.get(d..d + NAME_LEN).is_some_and(|n| n.split(|&b| b == 0).next() == Some(name.as_bytes())))
            .ok_or_else(|| format!("no channel {name:?} in the region's directory"))?;
        let field_u64 = |f: usize| u64_at(dir, desc + f).unwrap_or(0);
        let field_u32 = |f: usize| u32_at(dir, desc + f).unwrap_or(0);
        let (ring, which) = match field {
            Field::Head | Field::Length => (field_u64(offset_of!(Desc, from_linux)), "from Linux"),
            Field::Tail => (field_u64(offset_of!(Desc, to_linux)), "to Linux"),
        };
        if ring == 0 {
            return Err(format!("channel {name:?} has no ring {which}"));
        }
        let io = |e: std::io::Error| format!("reading the region: {e}");
        let apply = |old: u32| match value {
            Value::Set(v) => v,
            Value::Add(d) => old.wrapping_add(d),
            Value::Sub(d) => old.wrapping_sub(d),
        };
        let head_at = ring + offset_of!(Ring, head) as u64;
        let writes = match field {
            Field::Head => {
                let old = read(head_at).map_err(io)?;
                vec![(head_at, old, apply(old))]
            }
            Field::Tail => {
                let at = ring + offset_of!(Ring, tail) as u64;
                let old = read(at).map_err(io)?;
                vec![(at, old, apply(old))]
            }
            Field::Length => {
                if dir[desc + offset_of!(Desc, kind)] != KIND_MESSAGE {
                    return Err(format!("channel {name:?} is a byte channel: its records have no length"));
                }
                let (slots, slot_size) = (field_u32(offset_of!(Desc, slots)), field_u32(offset_of!(Desc, slot_size)));
                if !slots.is_power_of_two() {
                    return Err(format!("channel {name:?} has {slots} slots, not a power of two"));
                }
                let head = read(head_at).map_err(io)?;
                let slot = ring + size_of::<Ring>() as u64 + u64::from(head & (slots - 1)) * u64::from(slot_size);
                let old = read(slot).map_err(io)?;
                vec![(slot, old, apply(old)), (head_at, head, head.wrapping_add(1))]
            }
        };
        Ok(Scribble { writes })
    }
}

/// Scribbles over `field` of channel `name` in the region file (debugfs' `hauki/channel-region`);
/// the writes made.
pub fn scribble(file: &Path, name: &str, field: Field, value: Value) -> Result<Scribble, String> {
    let what =
        |e: std::io::Error| format!("{}: {e} (root, debugfs mounted, a Hauki Linux with channels?)", file.display());
    let f = OpenOptions::new().read(true).write(true).open(file).map_err(what)?;
    let mut dir = vec![0u8; size_of::<Directory>()];
    f.read_exact_at(&mut dir, 0).map_err(what)?;
    let mut read = |off: u64| {
        let mut w = [0u8; 4];
        f.read_exact_at(&mut w, off).map(|()| u32::from_le_bytes(w))
    };
    let plan = Scribble::plan(&dir, name, field, value, &mut read)?;
    for &(off, _, new) in &plan.writes {
        f.write_all_at(&new.to_le_bytes(), off).map_err(what)?;
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hauki_abi::channel::{KIND_STREAM, slot_size};

    /// A region with one message channel "echo" (16 slots of 256-byte records) at the given ring
    /// offsets, and one byte channel "log".
    fn region() -> Vec<u8> {
        let mut r = vec![0u8; 0x8000];
        r[..8].copy_from_slice(&MAGIC.to_le_bytes());
        r[offset_of!(Directory, count)..][..4].copy_from_slice(&2u32.to_le_bytes());
        let put = |r: &mut Vec<u8>, i: usize, name: &str, kind: u8, slots: u32, ss: u32, to: u64, from: u64| {
            let d = DESCS + i * DESC_SIZE;
            r[d..d + name.len()].copy_from_slice(name.as_bytes());
            r[d + offset_of!(Desc, kind)] = kind;
            r[d + offset_of!(Desc, slots)..][..4].copy_from_slice(&slots.to_le_bytes());
            r[d + offset_of!(Desc, slot_size)..][..4].copy_from_slice(&ss.to_le_bytes());
            r[d + offset_of!(Desc, to_linux)..][..8].copy_from_slice(&to.to_le_bytes());
            r[d + offset_of!(Desc, from_linux)..][..8].copy_from_slice(&from.to_le_bytes());
        };
        put(&mut r, 0, "echo", KIND_MESSAGE, 16, slot_size(256), 0x2000, 0x4000);
        put(&mut r, 1, "log", KIND_STREAM, 4096, 1, 0x7000, 0);
        r[0x4000..0x4004].copy_from_slice(&21u32.to_le_bytes()); // from Linux: head 21
        r[0x2040..0x2044].copy_from_slice(&7u32.to_le_bytes()); // to Linux: tail 7
        r
    }

    fn plan(name: &str, field: Field, value: &str) -> Result<Scribble, String> {
        let r = region();
        let mut read = |off: u64| Ok(u32_at(&r, off as usize).expect("read inside the region"));
        Scribble::plan(&r[..size_of::<Directory>()], name, field, value.parse()?, &mut read)
    }

    #[test]
    fn indices_are_written_where_the_ring_keeps_them() {
        assert_eq!(plan("echo", Field::Head, "+1000").unwrap().writes, [(0x4000, 21, 1021)]);
        assert_eq!(plan("echo", Field::Head, "-22").unwrap().writes, [(0x4000, 21, u32::MAX)]);
        assert_eq!(plan("echo", Field::Tail, "0xdeadbeef").unwrap().writes, [(0x2040, 7, 0xdead_beef)]);
    }

    #[test]
    fn a_length_goes_into_the_slot_at_the_head_which_is_then_published() {
        // head 21 & 15 = slot 5; slots start after the ring's two index lines.
        let at = 0x4000 + 0x80 + 5 * u64::from(slot_size(256));
        assert_eq!(plan("echo", Field::Length, "65535").unwrap().writes, [(at, 0, 65535), (0x4000, 21, 22)]);
    }

    #[test]
    fn what_cannot_be_scribbled_is_refused_with_a_reason() {
        assert!(plan("nope", Field::Head, "1").unwrap_err().contains("no channel \"nope\""));
        assert!(plan("log", Field::Head, "1").unwrap_err().contains("no ring from Linux"));
        assert!(plan("log", Field::Length, "1").is_err());
        assert!(plan("echo", Field::Head, "x").unwrap_err().contains("not a 32-bit value"));
        let mut r = region();
        r[0] ^= 1;
        let mut read = |_| Ok(0);
        let e =
            Scribble::plan(&r[..size_of::<Directory>()], "echo", Field::Head, Value::Set(1), &mut read).unwrap_err();
        assert!(e.contains("magic"), "{e}");
    }
}
