//! Channels between real-time tasks and Linux programs (`hauki_abi::channel`): the shared region
//! and its directory, the ends real-time tasks hold, and the two doorbells.
//!
//! - The region is allocated once at boot ([`init`], `hauki.channels_kib`, 256 KiB by default) in
//!   the co-kernel's range, which Linux maps too; its address goes to Linux in the handoff.
//!   Applications [`open`] channels while they start, before Linux first runs; the directory is
//!   then fixed, and a restarted Linux finds the same channels.
//! - A real-time task holds a [`Sender`] (real-time → Linux) or [`Receiver`] (Linux → real-time):
//!   the co-kernel's index lives in it, Linux's index is checked on every use
//!   ([`crate::guest::ring`]); a send never waits; what is refused is counted per channel and
//!   shown in the state table, in telemetry (`channels`) and in Linux's sysfs.
//! - Doorbells: a task's send or receive logs [`VECTOR_LINUX_CHANNEL`] for Linux (delivered when
//!   Linux runs with its flag on); Linux's `CHANNEL_NOTIFY` call posts an event to the port the
//!   channel was opened with, and the task bound to it runs at once if it is more urgent than
//!   Linux (always).

use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use hauki_abi::channel::{
    self as abi, Desc, Directory, MAX_CHANNELS, NAME_LEN, POLICY_DROP, POLICY_REFUSE, RT_ABSENT, RT_READY, State,
};
use hauki_abi::guest::VECTOR_LINUX_CHANNEL;

use crate::arch::{apic, frame::vectors};
use crate::guest::ring::{Consumer, Geometry, GeometryError, Producer, RecvError, Refusal, RingMem, SendError};
use crate::guest::vcpu;

/// The region's default size.
pub const DEFAULT_KIB: u64 = 256;
/// The largest region `hauki.channels_kib` may ask for.
pub const MAX_KIB: u64 = 4096;

/// The region: where it is and how much of it the rings use.
static BASE: AtomicUsize = AtomicUsize::new(0);
static SIZE: AtomicUsize = AtomicUsize::new(0);
static USED: AtomicUsize = AtomicUsize::new(0);
/// Channels opened.
static COUNT: AtomicU32 = AtomicU32::new(0);
/// Per channel: the port Linux's doorbell posts to (`u32::MAX`: none).
static PORTS: [AtomicU32; MAX_CHANNELS] = [const { AtomicU32::new(u32::MAX) }; MAX_CHANNELS];
/// Per channel, the co-kernel's own counts (the state table shows copies Linux could overwrite):
/// sent, received, full, refused.
static COUNTS: [[AtomicU64; 4]; MAX_CHANNELS] = [const { [const { AtomicU64::new(0) }; 4] }; MAX_CHANNELS];
const SENT: usize = 0;
const RECEIVED: usize = 1;
const FULL: usize = 2;
const REFUSED: usize = 3;
/// Linux's doorbells rung, and those refused (no such channel are refused as calls).
static NOTIFIES: AtomicU64 = AtomicU64::new(0);

/// Why a channel cannot be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelError {
    /// The region was not allocated (`init` failed or was not called).
    NoRegion,
    /// Channels are opened while applications start, before Linux runs; this one came later.
    TooLate,
    /// All [`MAX_CHANNELS`] are taken.
    TooMany,
    /// The name is empty, longer than 31 bytes, or has a byte outside `[a-z0-9_-]`.
    BadName,
    /// Another channel has this name.
    Duplicate,
    /// The channel carries nothing: neither direction was asked for.
    NoDirection,
    /// The ring's shape is impossible.
    Geometry(GeometryError),
    /// The rings do not fit in what is left of the region: bytes needed, bytes left.
    NoRoom {
        /// Bytes the channel's rings take.
        needed: usize,
        /// Bytes left in the region.
        left: usize,
    },
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ChannelError::NoRegion => write!(f, "there is no channel region (allocating it failed at boot)"),
            ChannelError::TooLate => write!(f, "channels are opened while applications start, before Linux runs"),
            ChannelError::TooMany => write!(f, "all {MAX_CHANNELS} channels are taken"),
            ChannelError::BadName => write!(f, "a channel name is 1 to 31 characters of [a-z0-9_-]"),
            ChannelError::Duplicate => write!(f, "another channel has this name"),
            ChannelError::NoDirection => write!(f, "a channel needs a ring to Linux, from Linux, or both"),
            ChannelError::Geometry(e) => write!(f, "{e}"),
            ChannelError::NoRoom { needed, left } => write!(
                f,
                "its rings take {needed} bytes and the channel region has {left} left (raise hauki.channels_kib)"
            ),
        }
    }
}

/// What to do when a real-time task sends into a full ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The send fails with [`SendError::Full`]; the task decides.
    Refuse,
    /// The record is dropped; the send succeeds. Counted either way.
    Drop,
}

/// A channel to open.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// Its name (`/dev/hauki/<name>` in Linux).
    pub name: &'static str,
    /// Records or bytes, and each ring's size.
    pub geometry: Geometry,
    /// A ring real-time → Linux.
    pub to_linux: bool,
    /// A ring Linux → real-time.
    pub from_linux: bool,
    /// A full ring to Linux: refuse or drop.
    pub policy: Policy,
    /// The port Linux's doorbell posts to (a task waiting for records from Linux is bound to it).
    pub port: Option<u16>,
}

/// The ends of an open channel a real-time task uses.
#[derive(Debug)]
pub struct Ends {
    /// Real-time → Linux (if the channel has that ring).
    pub tx: Option<Sender>,
    /// Linux → real-time (if the channel has that ring).
    pub rx: Option<Receiver>,
}

/// Allocates the region of `kib` KiB (zeroed, page-aligned) and writes its directory's header.
/// Returns its address and size for the handoff.
pub fn init(kib: u64) -> Option<(u64, u64)> {
    let size = (kib.clamp(16, MAX_KIB) << 10) as usize;
    let layout = core::alloc::Layout::from_size_align(size, 4096).ok()?;
    // SAFETY: a non-zero size; the memory is the region's for the rest of the boot.
    let base = unsafe { alloc::alloc::alloc_zeroed(layout) };
    if base.is_null() {
        return None;
    }
    let dir = base as *mut Directory;
    // SAFETY: the region starts with room for the directory (at least 16 KiB), zeroed above.
    unsafe {
        core::ptr::addr_of_mut!((*dir).magic).write_volatile(abi::MAGIC);
        core::ptr::addr_of_mut!((*dir).desc_size).write_volatile(size_of::<Desc>() as u32);
        core::ptr::addr_of_mut!((*dir).region_size).write_volatile(size as u64);
    }
    BASE.store(base as usize, Ordering::Release);
    SIZE.store(size, Ordering::Relaxed);
    USED.store(size_of::<Directory>(), Ordering::Relaxed);
    Some((base as u64, size as u64))
}

/// Channels opened.
pub fn count() -> u32 {
    COUNT.load(Ordering::Acquire)
}

fn valid_name(name: &str) -> bool {
    (1..NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn dir() -> Option<*mut Directory> {
    let base = BASE.load(Ordering::Acquire);
    (base != 0).then_some(base as *mut Directory)
}

/// Opens a channel (while applications start, before Linux runs).
pub fn open(spec: &Spec) -> Result<Ends, ChannelError> {
    let dir = dir().ok_or(ChannelError::NoRegion)?;
    if vcpu::running() {
        return Err(ChannelError::TooLate);
    }
    if !valid_name(spec.name) {
        return Err(ChannelError::BadName);
    }
    if !spec.to_linux && !spec.from_linux {
        return Err(ChannelError::NoDirection);
    }
    let index = COUNT.load(Ordering::Relaxed) as usize;
    if index >= MAX_CHANNELS {
        return Err(ChannelError::TooMany);
    }
    // SAFETY: `dir` is the region's directory; only this function writes descriptors, once each,
    // before Linux runs (boot is single-threaded here).
    let descs = unsafe { &mut (*dir).descs };
    if descs[..index].iter().any(|d| d.name.split(|&b| b == 0).next() == Some(spec.name.as_bytes())) {
        return Err(ChannelError::Duplicate);
    }
    let geo = spec.geometry;
    let ring_bytes = geo.bytes().next_multiple_of(64);
    let rings = usize::from(spec.to_linux) + usize::from(spec.from_linux);
    let (used, size) = (USED.load(Ordering::Relaxed), SIZE.load(Ordering::Relaxed));
    let needed = ring_bytes * rings;
    if needed > size - used {
        return Err(ChannelError::NoRoom { needed, left: size - used });
    }
    let base = dir as usize;
    let to_linux = spec.to_linux.then_some(used);
    let from_linux = spec.from_linux.then(|| used + ring_bytes * usize::from(spec.to_linux));
    USED.store(used + needed, Ordering::Relaxed);

    let mut name = [0u8; NAME_LEN];
    name[..spec.name.len()].copy_from_slice(spec.name.as_bytes());
    descs[index] = Desc {
        name,
        kind: geo.kind,
        policy: match spec.policy {
            Policy::Refuse => POLICY_REFUSE,
            Policy::Drop => POLICY_DROP,
        },
        pad: [0; 2],
        record_size: geo.record_size,
        slots: geo.slots,
        slot_size: geo.slot_size(),
        to_linux: to_linux.map_or(0, |o| o as u64),
        from_linux: from_linux.map_or(0, |o| o as u64),
        reserved: [0; 8],
    };
    PORTS[index].store(spec.port.map_or(u32::MAX, u32::from), Ordering::Relaxed);
    let shared = |off: usize| SharedRing { base: base + off, len: geo.bytes() };
    let tx = to_linux.map(|off| {
        let mut mem = shared(off);
        Sender { index, producer: Producer::new(geo, &mut mem), mem, policy: spec.policy }
    });
    let rx = from_linux.map(|off| {
        let mut mem = shared(off);
        Receiver { index, consumer: Consumer::new(geo, &mut mem), mem }
    });
    set_rt_state(index, RT_READY);
    // SAFETY: as above; Linux reads `count` once it runs, after every descriptor is written.
    unsafe { core::ptr::addr_of_mut!((*dir).count).write_volatile(index as u32 + 1) };
    COUNT.store(index as u32 + 1, Ordering::Release);
    Ok(Ends { tx, rx })
}

/// No real-time task serves any channel (the application that opened them was refused): Linux's
/// writes get `EPIPE` from here on.
pub fn abandon_all() {
    for (i, port) in PORTS.iter().enumerate().take(count() as usize) {
        set_rt_state(i, RT_ABSENT);
        port.store(u32::MAX, Ordering::Relaxed);
    }
}

fn state(index: usize) -> Option<*mut State> {
    // SAFETY: `index < MAX_CHANNELS`, inside the directory.
    dir().filter(|_| index < MAX_CHANNELS).map(|d| unsafe { core::ptr::addr_of_mut!((*d).states[index]) })
}

fn set_rt_state(index: usize, v: u32) {
    if let Some(s) = state(index) {
        // SAFETY: the state line is in the region; the co-kernel is the only writer of `rt_state`.
        unsafe { core::ptr::addr_of_mut!((*s).rt_state).write_volatile(v) };
    }
}

/// Counts one event of `what` for channel `index` and publishes the count to the state table.
fn count_event(index: usize, what: usize, n: u64) {
    let v = COUNTS[index][what].fetch_add(n, Ordering::Relaxed) + n;
    if let Some(s) = state(index) {
        // SAFETY: the state line is in the region; Linux may overwrite the copy, never the count.
        unsafe {
            let p = match what {
                SENT => core::ptr::addr_of_mut!((*s).sent),
                RECEIVED => core::ptr::addr_of_mut!((*s).received),
                FULL => core::ptr::addr_of_mut!((*s).full),
                _ => core::ptr::addr_of_mut!((*s).refused),
            };
            p.write_volatile(v);
        }
    }
}

/// Rings Linux's doorbell: its channel vector is logged and delivered when Linux runs with its
/// flag on (nothing when Linux is not running), on Linux's boot CPU. From a task on another CPU,
/// that CPU is sent the wake-up IPI, whose switch point replays the event.
fn ring_linux() {
    if vcpu::running() {
        x86_64::instructions::interrupts::without_interrupts(|| {
            vcpu::log_pending_on(vcpu::LINUX_CPU, VECTOR_LINUX_CHANNEL)
        });
    }
}

/// Linux's `CHANNEL_NOTIFY` (in Linux's context, from its call): posts an event to the channel's
/// port and, when a task became ready, sends the wake-up self-IPI so the scheduler takes the CPU
/// from Linux at once.
pub fn notify(index: u32) {
    NOTIFIES.fetch_add(1, Ordering::Relaxed);
    let port = PORTS.get(index as usize).map_or(u32::MAX, |p| p.load(Ordering::Relaxed));
    let Ok(port) = u16::try_from(port) else { return };
    let posted = x86_64::instructions::interrupts::without_interrupts(|| super::sched::post_from_linux(port, 1));
    if posted {
        apic::send_ipi(apic::id(), u32::from(vectors::WAKEUP));
    }
}

/// One channel's counters, for telemetry and the status page.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Records (bytes) sent to Linux.
    pub sent: u64,
    /// Records (bytes) received from Linux.
    pub received: u64,
    /// Sends that found the ring to Linux full.
    pub full: u64,
    /// Values from Linux refused.
    pub refused: u64,
    /// Whether a Linux program has the channel open (Linux's `linux_state`).
    pub linux_open: bool,
}

/// Channel `index`'s name and counters.
pub fn counts(index: usize) -> Option<(&'static str, Counts)> {
    if index >= count() as usize {
        return None;
    }
    let d = dir()?;
    // SAFETY: the descriptor is written once before `count` covers it and never again; the
    // state line's `linux_state` is Linux's, read as a plain number.
    let (name, linux) = unsafe {
        let desc = &*core::ptr::addr_of!((*d).descs[index]);
        let len = desc.name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        let name = core::str::from_utf8(&desc.name[..len]).unwrap_or("?");
        (name, core::ptr::addr_of!((*d).states[index].linux_state).read_volatile())
    };
    let c = &COUNTS[index];
    let get = |i: usize| c[i].load(Ordering::Relaxed);
    Some((
        name,
        Counts {
            sent: get(SENT),
            received: get(RECEIVED),
            full: get(FULL),
            refused: get(REFUSED),
            linux_open: linux != 0,
        },
    ))
}

/// Linux's doorbells rung since boot.
pub fn notifies() -> u64 {
    NOTIFIES.load(Ordering::Relaxed)
}

/// A ring in the shared region: every access is an atomic or volatile one (Linux may write it
/// at any time), at an offset the ring logic keeps below `len`.
#[derive(Debug)]
struct SharedRing {
    base: usize,
    len: usize,
}

impl SharedRing {
    fn at(&self, off: usize, n: usize) -> usize {
        assert!(off + n <= self.len, "ring access outside the ring");
        self.base + off
    }
}

impl RingMem for SharedRing {
    fn load(&self, off: usize) -> u32 {
        // SAFETY: inside this ring (checked), 4-aligned (indices and slot headers are); shared
        // memory both sides access atomically.
        unsafe { AtomicU32::from_ptr(self.at(off, 4) as *mut u32) }.load(Ordering::Acquire)
    }
    fn store(&mut self, off: usize, v: u32) {
        // SAFETY: as in `load`.
        unsafe { AtomicU32::from_ptr(self.at(off, 4) as *mut u32) }.store(v, Ordering::Release)
    }
    fn read(&self, off: usize, dst: &mut [u8]) {
        let src = self.at(off, dst.len()) as *const u8;
        for (i, d) in dst.iter_mut().enumerate() {
            // SAFETY: inside this ring (checked); Linux may write these bytes concurrently, so
            // each is read once, volatile, and the record is judged on the copy.
            *d = unsafe { src.add(i).read_volatile() };
        }
    }
    fn write(&mut self, off: usize, src: &[u8]) {
        let dst = self.at(off, src.len()) as *mut u8;
        for (i, s) in src.iter().enumerate() {
            // SAFETY: inside this ring (checked).
            unsafe { dst.add(i).write_volatile(*s) };
        }
    }
}

/// The real-time end of a ring to Linux.
#[derive(Debug)]
pub struct Sender {
    index: usize,
    producer: Producer,
    mem: SharedRing,
    policy: Policy,
}

impl Sender {
    /// Sends one record (message channels); never waits. A full ring is refused or dropped by the
    /// channel's policy (counted either way).
    pub fn send(&mut self, record: &[u8]) -> Result<(), SendError> {
        match self.producer.send(&mut self.mem, record) {
            Ok(()) => {
                count_event(self.index, SENT, 1);
                ring_linux();
                Ok(())
            }
            Err(SendError::Full) => {
                count_event(self.index, FULL, 1);
                ring_linux(); // in case Linux slept through the last one
                match self.policy {
                    Policy::Refuse => Err(SendError::Full),
                    Policy::Drop => Ok(()),
                }
            }
            Err(SendError::Refused(why)) => {
                refused(self.index, why);
                Err(SendError::Refused(why))
            }
            Err(e) => Err(e),
        }
    }

    /// Writes what fits of `bytes` (stream channels); how many. Never waits; a write that did not
    /// all fit counts as one `full`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<usize, Refusal> {
        let n = self.producer.write_bytes(&mut self.mem, bytes).inspect_err(|&why| refused(self.index, why))?;
        if n > 0 {
            count_event(self.index, SENT, n as u64);
        }
        if n < bytes.len() {
            count_event(self.index, FULL, 1);
        }
        ring_linux();
        Ok(n)
    }

    /// Room left in the ring (records or bytes); 0 when Linux's index is out of range (counted
    /// as refused, as by a send).
    pub fn room(&mut self) -> u32 {
        self.producer.room(&mut self.mem).inspect_err(|&why| refused(self.index, why)).unwrap_or(0)
    }
}

/// The real-time end of a ring from Linux.
#[derive(Debug)]
pub struct Receiver {
    index: usize,
    consumer: Consumer,
    mem: SharedRing,
}

impl Receiver {
    /// Takes the next record into `buf` (which holds the channel's `record_size`); its length,
    /// or `None` when nothing waits. A record Linux wrote wrong is counted and dropped:
    /// `Refused(Length)` consumed it (the next record may follow); `Refused(Index)` means Linux's
    /// head is out of range and nothing can be read until Linux writes a sane one, so a loop must
    /// stop there (retrying at once would spin).
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, RecvError> {
        let r = self.consumer.recv(&mut self.mem, buf);
        match r {
            Ok(Some(_)) => {
                count_event(self.index, RECEIVED, 1);
                ring_linux();
            }
            Err(RecvError::Refused(why)) => {
                refused(self.index, why);
                ring_linux(); // a refused record may have been consumed: room for Linux
            }
            _ => {}
        }
        r
    }

    /// Takes up to `buf.len()` bytes (stream channels); how many.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, Refusal> {
        let r = self.consumer.read_bytes(&mut self.mem, buf);
        match r {
            Ok(0) => {}
            Ok(n) => {
                count_event(self.index, RECEIVED, n as u64);
                ring_linux();
            }
            Err(why) => refused(self.index, why),
        }
        r
    }

    /// Records (bytes) waiting; 0 when Linux's index is out of range (counted as refused, as by
    /// a receive).
    pub fn pending(&mut self) -> u32 {
        self.consumer.pending(&mut self.mem).inspect_err(|&why| refused(self.index, why)).unwrap_or(0)
    }
}

/// The latest refusal per channel, for telemetry's `refused` record: 0 none, else the
/// [`Refusal`] packed as kind (high 32 bits: 1 index, 2 length) and value (low 32 bits).
static LAST_REFUSAL: [AtomicU64; MAX_CHANNELS] = [const { AtomicU64::new(0) }; MAX_CHANNELS];

/// Counts a value Linux wrote that was refused, and keeps it for telemetry (a task never prints:
/// the console belongs to the least urgent task).
fn refused(index: usize, why: Refusal) {
    count_event(index, REFUSED, 1);
    let packed = match why {
        Refusal::Index { theirs, .. } => 1 << 32 | u64::from(theirs),
        Refusal::Length(n) => 2 << 32 | u64::from(n),
    };
    LAST_REFUSAL[index].store(packed, Ordering::Relaxed);
}

/// Channel `index`'s latest refusal: what (`"index"` or `"length"`) and the value Linux wrote.
pub fn last_refusal(index: usize) -> Option<(&'static str, u32)> {
    let v = LAST_REFUSAL.get(index)?.load(Ordering::Relaxed);
    match v >> 32 {
        1 => Some(("index", v as u32)),
        2 => Some(("length", v as u32)),
        _ => None,
    }
}
