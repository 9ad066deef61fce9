//! The co-kernel's end of a channel ring (`hauki_abi::channel`): the logic of sending records or
//! bytes to Linux and receiving them from Linux, over memory Linux can write at any moment.
//!
//! Guarantees, for any value Linux writes at any time:
//! - the co-kernel keeps its own index in its own memory and only *publishes* it (again at every
//!   operation, so a copy Linux overwrote is restored); Linux's index is
//!   read once per operation and used only after `own − theirs` (or `theirs − own`) is checked
//!   against the ring's capacity: a value out of range is refused ([`Refusal`]), counted by the
//!   caller, and nothing is read or written because of it;
//! - a record's length is checked against `record_size` before a byte of it is copied; a record
//!   too long is consumed (so the ring moves on) and refused, never followed;
//! - every access stays inside the ring: the [`RingMem`] implementation is given offsets below
//!   [`Geometry::bytes`] only (checked by the host tests, whose memory panics otherwise);
//! - a send never waits: a full ring is reported at once ([`SendError::Full`]).
//!
//! Pure logic over [`RingMem`], so the host tests model-check it against a queue and the fuzz
//! targets feed it arbitrary memory.
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::mem::offset_of;

use hauki_abi::channel::{KIND_MESSAGE, KIND_STREAM, Ring, SLOT_HEADER};

/// Offset of `head` in a ring.
pub const HEAD: usize = offset_of!(Ring, head);
/// Offset of `tail` in a ring.
pub const TAIL: usize = offset_of!(Ring, tail);
/// Offset of the first slot (or byte) in a ring.
pub const DATA: usize = size_of::<Ring>();

/// A ring's memory, as the co-kernel reaches it (shared with Linux).
pub trait RingMem {
    /// Reads the `u32` at `off` (acquire: what the other side wrote before it is visible).
    fn load(&self, off: usize) -> u32;
    /// Writes the `u32` at `off` (release: what this side wrote before it is visible first).
    fn store(&mut self, off: usize, v: u32);
    /// Copies `dst.len()` bytes from `off`.
    fn read(&self, off: usize, dst: &mut [u8]);
    /// Copies `src` to `off`.
    fn write(&mut self, off: usize, src: &[u8]);
}

/// A ring's shape, fixed when the channel is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// `KIND_MESSAGE` or `KIND_STREAM`.
    pub kind: u8,
    /// Slots (messages) or bytes (streams); a power of two.
    pub slots: u32,
    /// Largest record (messages); 0 for streams.
    pub record_size: u32,
}

/// Why a geometry cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeometryError {
    /// `slots` is not a power of two between 2 and 2^24.
    Slots(u32),
    /// A message channel's records must be 1 to 65536 bytes.
    RecordSize(u32),
    /// The kind is neither message nor stream.
    Kind(u8),
}

impl core::fmt::Display for GeometryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            GeometryError::Slots(n) => write!(f, "{n} slots: a ring needs a power of two from 2 to 16777216"),
            GeometryError::RecordSize(n) => write!(f, "records of {n} bytes: a message channel takes 1 to 65536"),
            GeometryError::Kind(k) => write!(f, "channel kind {k} is neither message (1) nor stream (2)"),
        }
    }
}

/// Largest record a message channel may declare.
pub const MAX_RECORD: u32 = 65536;
/// Most slots (or bytes) of a ring.
pub const MAX_SLOTS: u32 = 1 << 24;

impl Geometry {
    /// A message ring of `slots` records of at most `record_size` bytes.
    pub fn message(slots: u32, record_size: u32) -> Result<Geometry, GeometryError> {
        Geometry { kind: KIND_MESSAGE, slots, record_size }.checked()
    }

    /// A byte ring of `bytes` bytes.
    pub fn stream(bytes: u32) -> Result<Geometry, GeometryError> {
        Geometry { kind: KIND_STREAM, slots: bytes, record_size: 0 }.checked()
    }

    fn checked(self) -> Result<Geometry, GeometryError> {
        if !self.slots.is_power_of_two() || !(2..=MAX_SLOTS).contains(&self.slots) {
            return Err(GeometryError::Slots(self.slots));
        }
        match self.kind {
            KIND_MESSAGE if !(1..=MAX_RECORD).contains(&self.record_size) => {
                Err(GeometryError::RecordSize(self.record_size))
            }
            KIND_MESSAGE | KIND_STREAM => Ok(self),
            k => Err(GeometryError::Kind(k)),
        }
    }

    /// Bytes of one slot (1 for streams).
    pub fn slot_size(&self) -> u32 {
        if self.kind == KIND_MESSAGE { hauki_abi::channel::slot_size(self.record_size) } else { 1 }
    }

    /// Bytes of the whole ring: indices and data.
    pub fn bytes(&self) -> usize {
        DATA + self.slots as usize * self.slot_size() as usize
    }

    fn slot(&self, index: u32) -> usize {
        DATA + (index & (self.slots - 1)) as usize * self.slot_size() as usize
    }
}

/// A value Linux wrote that the co-kernel refused (the caller counts it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Linux's index claims more records (bytes) than the ring holds: `own`, `theirs`.
    Index {
        /// The co-kernel's index.
        own: u32,
        /// The index Linux wrote.
        theirs: u32,
    },
    /// A record's length is above `record_size` (the record was consumed and dropped).
    Length(u32),
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Refusal::Index { own, theirs } => {
                write!(f, "Linux's ring index {theirs} is out of range of the co-kernel's {own}")
            }
            Refusal::Length(n) => write!(f, "a record of {n} bytes is longer than the channel's records"),
        }
    }
}

/// Why a send did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The ring is full (Linux has not consumed).
    Full,
    /// The record is longer than the channel's `record_size`.
    TooLong,
    /// Linux's `tail` is out of range: nothing was sent.
    Refused(Refusal),
}

/// Why a receive returned nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// The buffer is shorter than the channel's records (nothing consumed).
    BufferTooSmall,
    /// Linux wrote something out of range (see [`Refusal`]).
    Refused(Refusal),
}

/// The producing end (real-time → Linux). Its `head` lives here; the ring's copy is published.
#[derive(Debug)]
pub struct Producer {
    geo: Geometry,
    head: u32,
}

impl Producer {
    /// A producer of an empty ring; writes its `head` (0) and Linux's `tail` (0) to start.
    pub fn new(geo: Geometry, mem: &mut impl RingMem) -> Producer {
        mem.store(HEAD, 0);
        mem.store(TAIL, 0);
        Producer { geo, head: 0 }
    }

    /// The ring's shape.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// Records (bytes) the ring holds now, by Linux's `tail` if it is in range. Publishes the
    /// co-kernel's `head` first: whatever Linux wrote over the copy, every operation restores it.
    fn used(&self, mem: &mut impl RingMem) -> Result<u32, Refusal> {
        mem.store(HEAD, self.head);
        let theirs = mem.load(TAIL);
        let used = self.head.wrapping_sub(theirs);
        if used > self.geo.slots {
            return Err(Refusal::Index { own: self.head, theirs });
        }
        Ok(used)
    }

    /// Sends one record (message rings): never waits.
    pub fn send(&mut self, mem: &mut impl RingMem, record: &[u8]) -> Result<(), SendError> {
        debug_assert_eq!(self.geo.kind, KIND_MESSAGE);
        let used = self.used(mem).map_err(SendError::Refused)?;
        if record.len() > self.geo.record_size as usize {
            return Err(SendError::TooLong);
        }
        if used == self.geo.slots {
            return Err(SendError::Full);
        }
        let at = self.geo.slot(self.head);
        let mut header = [0u8; SLOT_HEADER as usize];
        header[..4].copy_from_slice(&(record.len() as u32).to_le_bytes());
        mem.write(at, &header);
        mem.write(at + SLOT_HEADER as usize, record);
        self.head = self.head.wrapping_add(1);
        mem.store(HEAD, self.head);
        Ok(())
    }

    /// Writes as many bytes of `data` as fit (stream rings); how many. Never waits.
    pub fn write_bytes(&mut self, mem: &mut impl RingMem, data: &[u8]) -> Result<usize, Refusal> {
        debug_assert_eq!(self.geo.kind, KIND_STREAM);
        let free = (self.geo.slots - self.used(mem)?) as usize;
        let n = data.len().min(free);
        let mut done = 0;
        while done < n {
            let at = (self.head.wrapping_add(done as u32) & (self.geo.slots - 1)) as usize;
            let run = (n - done).min(self.geo.slots as usize - at);
            mem.write(DATA + at, &data[done..done + run]);
            done += run;
        }
        self.head = self.head.wrapping_add(n as u32);
        mem.store(HEAD, self.head);
        Ok(n)
    }

    /// Room left (records or bytes), by Linux's `tail` if it is in range.
    pub fn room(&self, mem: &mut impl RingMem) -> Result<u32, Refusal> {
        Ok(self.geo.slots - self.used(mem)?)
    }
}

/// The consuming end (Linux → real-time). Its `tail` lives here; the ring's copy is published.
#[derive(Debug)]
pub struct Consumer {
    geo: Geometry,
    tail: u32,
}

impl Consumer {
    /// A consumer of an empty ring; writes Linux's `head` (0) and its `tail` (0) to start.
    pub fn new(geo: Geometry, mem: &mut impl RingMem) -> Consumer {
        mem.store(HEAD, 0);
        mem.store(TAIL, 0);
        Consumer { geo, tail: 0 }
    }

    /// The ring's shape.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// Records (bytes) waiting, by Linux's `head` if it is in range. Publishes the co-kernel's
    /// `tail` first: whatever Linux wrote over the copy, every operation restores it.
    pub fn pending(&self, mem: &mut impl RingMem) -> Result<u32, Refusal> {
        mem.store(TAIL, self.tail);
        let theirs = mem.load(HEAD);
        let n = theirs.wrapping_sub(self.tail);
        if n > self.geo.slots {
            return Err(Refusal::Index { own: self.tail, theirs });
        }
        Ok(n)
    }

    /// Takes the next record into `buf` (message rings); its length, or `None` when the ring is
    /// empty. `buf` must hold `record_size` bytes. A record longer than `record_size` is consumed
    /// and refused.
    pub fn recv(&mut self, mem: &mut impl RingMem, buf: &mut [u8]) -> Result<Option<usize>, RecvError> {
        debug_assert_eq!(self.geo.kind, KIND_MESSAGE);
        let pending = self.pending(mem).map_err(RecvError::Refused)?;
        if buf.len() < self.geo.record_size as usize {
            return Err(RecvError::BufferTooSmall);
        }
        if pending == 0 {
            return Ok(None);
        }
        let at = self.geo.slot(self.tail);
        let mut header = [0u8; 4];
        mem.read(at, &mut header);
        let len = u32::from_le_bytes(header);
        let result = if len > self.geo.record_size {
            Err(RecvError::Refused(Refusal::Length(len)))
        } else {
            mem.read(at + SLOT_HEADER as usize, &mut buf[..len as usize]);
            Ok(Some(len as usize))
        };
        self.tail = self.tail.wrapping_add(1);
        mem.store(TAIL, self.tail);
        result
    }

    /// Takes up to `buf.len()` bytes (stream rings); how many (0: empty).
    pub fn read_bytes(&mut self, mem: &mut impl RingMem, buf: &mut [u8]) -> Result<usize, Refusal> {
        debug_assert_eq!(self.geo.kind, KIND_STREAM);
        let n = (self.pending(mem)? as usize).min(buf.len());
        let mut done = 0;
        while done < n {
            let at = (self.tail.wrapping_add(done as u32) & (self.geo.slots - 1)) as usize;
            let run = (n - done).min(self.geo.slots as usize - at);
            mem.read(DATA + at, &mut buf[done..done + run]);
            done += run;
        }
        self.tail = self.tail.wrapping_add(n as u32);
        mem.store(TAIL, self.tail);
        Ok(n)
    }
}

/// A ring in ordinary memory with bounds-checked accesses: the host tests' and fuzz targets'
/// [`RingMem`] (an access outside the ring panics, so a test catches any stray offset).
#[derive(Clone, Debug)]
pub struct VecRing(pub Vec<u8>);

impl VecRing {
    /// Zeroed memory for a ring of shape `geo`.
    pub fn new(geo: &Geometry) -> VecRing {
        VecRing(alloc::vec![0; geo.bytes()])
    }
}

impl RingMem for VecRing {
    fn load(&self, off: usize) -> u32 {
        let b = &self.0[off..off + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    fn store(&mut self, off: usize, v: u32) {
        self.0[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn read(&self, off: usize, dst: &mut [u8]) {
        dst.copy_from_slice(&self.0[off..off + dst.len()]);
    }
    fn write(&mut self, off: usize, src: &[u8]) {
        self.0[off..off + src.len()].copy_from_slice(src);
    }
}

/// Linux's end, as the patch's driver implements it, for the host tests: an honest peer.
#[cfg(any(test, feature = "fuzz"))]
pub mod peer {
    use super::*;

    /// Linux consumes one record from a real-time → Linux message ring.
    pub fn linux_recv(geo: &Geometry, mem: &mut VecRing) -> Option<Vec<u8>> {
        let (head, tail) = (mem.load(HEAD), mem.load(TAIL));
        if head == tail {
            return None;
        }
        let at = geo.slot(tail);
        let len = mem.load(at) as usize;
        let mut v = alloc::vec![0; len];
        mem.read(at + SLOT_HEADER as usize, &mut v);
        mem.store(TAIL, tail.wrapping_add(1));
        Some(v)
    }

    /// Linux produces one record into a Linux → real-time message ring; false when full.
    pub fn linux_send(geo: &Geometry, mem: &mut VecRing, record: &[u8]) -> bool {
        let (head, tail) = (mem.load(HEAD), mem.load(TAIL));
        if head.wrapping_sub(tail) == geo.slots {
            return false;
        }
        let at = geo.slot(head);
        mem.store(at, record.len() as u32);
        mem.store(at + 4, 0);
        mem.write(at + SLOT_HEADER as usize, record);
        mem.store(HEAD, head.wrapping_add(1));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::peer::*;
    use super::*;
    use alloc::collections::VecDeque;
    use proptest::prelude::*;

    #[test]
    fn geometry_refuses_what_cannot_be_a_ring() {
        assert_eq!(Geometry::message(3, 16), Err(GeometryError::Slots(3)));
        assert_eq!(Geometry::message(1, 16), Err(GeometryError::Slots(1)));
        assert_eq!(Geometry::message(8, 0), Err(GeometryError::RecordSize(0)));
        assert_eq!(Geometry::message(8, MAX_RECORD + 1), Err(GeometryError::RecordSize(MAX_RECORD + 1)));
        assert_eq!(Geometry::stream(1 << 25), Err(GeometryError::Slots(1 << 25)));
        let g = Geometry::message(8, 13).unwrap();
        assert_eq!((g.slot_size(), g.bytes()), (24, DATA + 8 * 24));
        assert!(GeometryError::Slots(3).to_string().contains("power of two"));
    }

    #[test]
    fn a_full_ring_refuses_the_next_send_at_once() {
        let g = Geometry::message(4, 8).unwrap();
        let mut m = VecRing::new(&g);
        let mut p = Producer::new(g, &mut m);
        for i in 0..4u8 {
            p.send(&mut m, &[i]).unwrap();
        }
        assert_eq!(p.send(&mut m, &[9]), Err(SendError::Full));
        assert_eq!(p.send(&mut m, &[0; 9]), Err(SendError::TooLong));
        assert_eq!(linux_recv(&g, &mut m), Some(alloc::vec![0]));
        p.send(&mut m, &[4]).unwrap();
        let got: Vec<_> = core::iter::from_fn(|| linux_recv(&g, &mut m)).collect();
        assert_eq!(got, [[1], [2], [3], [4]].map(|a| a.to_vec()));
    }

    #[test]
    fn a_hostile_tail_is_refused_and_nothing_is_written() {
        let g = Geometry::message(4, 8).unwrap();
        let mut m = VecRing::new(&g);
        let mut p = Producer::new(g, &mut m);
        p.send(&mut m, b"ok").unwrap();
        m.store(TAIL, 7); // Linux claims to have read records never sent
        let before = m.0.clone();
        assert_eq!(p.send(&mut m, b"x"), Err(SendError::Refused(Refusal::Index { own: 1, theirs: 7 })));
        assert_eq!(m.0, before, "a refused send wrote to the ring");
        m.store(TAIL, 0); // Linux comes back to its senses
        p.send(&mut m, b"x").unwrap();
    }

    #[test]
    fn a_hostile_head_or_length_is_refused_never_followed() {
        let g = Geometry::message(4, 8).unwrap();
        let mut m = VecRing::new(&g);
        let mut c = Consumer::new(g, &mut m);
        let mut buf = [0u8; 8];
        m.store(HEAD, 5);
        assert_eq!(c.recv(&mut m, &mut buf), Err(RecvError::Refused(Refusal::Index { own: 0, theirs: 5 })));
        assert_eq!(m.load(TAIL), 0, "a refused head moved the tail");
        m.store(HEAD, 0);
        assert!(linux_send(&g, &mut m, b"abc"));
        m.store(DATA, 1000); // the record's length, rewritten after the fact
        assert!(linux_send(&g, &mut m, b"next"));
        assert_eq!(c.recv(&mut m, &mut buf), Err(RecvError::Refused(Refusal::Length(1000))));
        assert_eq!(c.recv(&mut m, &mut buf), Ok(Some(4)));
        assert_eq!(&buf[..4], b"next");
        assert_eq!(c.recv(&mut m, &mut [0u8; 4]), Err(RecvError::BufferTooSmall));
    }

    #[test]
    fn streams_wrap_around_the_end_of_the_ring() {
        let g = Geometry::stream(8).unwrap();
        let mut m = VecRing::new(&g);
        let mut p = Producer::new(g, &mut m);
        assert_eq!(p.write_bytes(&mut m, b"abcdef"), Ok(6));
        // Linux reads 5 bytes.
        m.store(TAIL, 5);
        assert_eq!(p.write_bytes(&mut m, b"0123456789"), Ok(7));
        assert_eq!(&m.0[DATA..DATA + 8], b"23456f01");
        let mut c = Consumer { geo: g, tail: 5 };
        let mut buf = [0u8; 16];
        assert_eq!(c.read_bytes(&mut m, &mut buf), Ok(8));
        assert_eq!(&buf[..8], b"f0123456");
    }

    /// What the two sides do, one step at a time.
    #[derive(Clone, Debug)]
    enum Op {
        RtSend(Vec<u8>),
        LinuxRecv,
        LinuxSend(Vec<u8>),
        RtRecv,
        /// Linux scribbles a value over an index or a byte of the ring.
        Scribble {
            at: usize,
            value: u32,
        },
    }

    fn op(record: u32) -> impl Strategy<Value = Op> {
        let rec = proptest::collection::vec(any::<u8>(), 0..=record as usize);
        prop_oneof![
            4 => rec.clone().prop_map(Op::RtSend),
            3 => Just(Op::LinuxRecv),
            4 => rec.prop_map(Op::LinuxSend),
            3 => Just(Op::RtRecv),
            1 => (any::<usize>(), any::<u32>()).prop_map(|(at, value)| Op::Scribble { at, value }),
        ]
    }

    proptest! {
        /// Against an honest Linux, both directions behave exactly as a bounded queue: nothing
        /// lost, duplicated or reordered, full exactly at capacity. With scribbles, the
        /// co-kernel's ends never panic or touch memory outside the ring, every record it
        /// receives fits `record_size`, and every refusal is reported.
        #[test]
        fn rings_are_bounded_queues_and_survive_scribbles(
            slots in prop_oneof![Just(2u32), Just(4), Just(8)],
            record in 1u32..24,
            ops in proptest::collection::vec(op(23), 1..200),
        ) {
            let g = Geometry::message(slots, record).unwrap();
            let (mut out_mem, mut in_mem) = (VecRing::new(&g), VecRing::new(&g));
            let mut p = Producer::new(g, &mut out_mem);
            let mut c = Consumer::new(g, &mut in_mem);
            let (mut to_linux, mut from_linux) = (VecDeque::new(), VecDeque::new());
            let mut scribbled = false;
            let mut buf = alloc::vec![0u8; record as usize];
            for op in ops {
                match op {
                    Op::RtSend(r) => match p.send(&mut out_mem, &r) {
                        Ok(()) => to_linux.push_back(r),
                        Err(SendError::TooLong) => prop_assert!(r.len() > record as usize),
                        Err(SendError::Full) => prop_assert!(scribbled || to_linux.len() == slots as usize),
                        Err(SendError::Refused(_)) => prop_assert!(scribbled),
                    },
                    Op::LinuxRecv if !scribbled => {
                        prop_assert_eq!(linux_recv(&g, &mut out_mem), to_linux.pop_front());
                    }
                    Op::LinuxSend(r) if !scribbled && r.len() <= record as usize => {
                        let sent = linux_send(&g, &mut in_mem, &r);
                        prop_assert_eq!(sent, from_linux.len() < slots as usize);
                        if sent { from_linux.push_back(r); }
                    }
                    Op::RtRecv => match c.recv(&mut in_mem, &mut buf) {
                        Ok(Some(n)) => {
                            prop_assert!(n <= record as usize);
                            if !scribbled { prop_assert_eq!(Some(buf[..n].to_vec()), from_linux.pop_front()); }
                        }
                        Ok(None) => prop_assert!(scribbled || from_linux.is_empty()),
                        Err(RecvError::Refused(_)) => prop_assert!(scribbled),
                        Err(RecvError::BufferTooSmall) => prop_assert!(false, "the buffer holds a record"),
                    },
                    Op::Scribble { at, value } => {
                        scribbled = true;
                        let mem = if value % 2 == 0 { &mut out_mem } else { &mut in_mem };
                        let at = at % (mem.0.len() - 3);
                        mem.store(at, value);
                    }
                    Op::LinuxRecv | Op::LinuxSend(_) => {}
                }
            }
        }
    }
}
