//! A channel's device, `/dev/hauki/<name>`: open it, send and receive records (or bytes).
//!
//! A [`Channel`] holds the device open with `O_NONBLOCK`: every call tries once, and the blocking
//! ones wait in `poll()` for the driver's doorbell between tries. So one open channel serves the
//! blocking ([`Channel::recv`], [`Channel::send`]), the non-blocking ([`Channel::try_recv`],
//! [`Channel::try_send`]) and the time-bounded calls alike, and its file descriptor
//! ([`AsFd`]) can go into a program's own `poll`/`epoll` loop (`POLLIN`: a record or bytes
//! wait; `POLLOUT`: room to write; `POLLHUP` to a reader / `POLLERR` to a writer: no real-time
//! task serves the channel).
//!
//! - **Message channels**: one record per call. [`Channel::recv`] needs a buffer as large as the
//!   record ([`Channel::record_size`] is the largest); a smaller one gets [`Error::TooLarge`] and
//!   the record stays for the next call. A record longer than the record size cannot be sent.
//!   A zero-length record is a record.
//! - **Byte channels**: a stream. [`Channel::recv`] returns what is there (at least one byte);
//!   [`Channel::send`] writes everything, waiting for room as needed.
//! - While no real-time task serves the channel, sending fails with [`Error::NotServed`] at once
//!   and receiving fails with it once nothing is left to read. (The driver also raises `SIGPIPE`
//!   on such a write; Rust programs ignore `SIGPIPE` unless they ask otherwise, and see the error.)

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::sysfs::{self, ChannelInfo, Direction, Kind};
use crate::{Error, Result};

/// Where the channels' devices are.
pub const DEV_DIR: &str = "/dev/hauki";

/// The longest channel name (`hauki_abi::channel::NAME_LEN` less its NUL).
pub const NAME_MAX: usize = hauki_abi::channel::NAME_LEN - 1;

/// Which way a program opens a channel. The driver refuses a direction the channel has no ring
/// for ([`Error::WrongDirection`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Receive what real-time tasks send (`O_RDONLY`).
    Read,
    /// Send to real-time tasks (`O_WRONLY`).
    Write,
    /// Both (`O_RDWR`): the channel must have both rings.
    ReadWrite,
}

impl Access {
    fn flags(self) -> OFlags {
        match self {
            Access::Read => OFlags::RDONLY,
            Access::Write => OFlags::WRONLY,
            Access::ReadWrite => OFlags::RDWR,
        }
    }

    /// The access a channel going `direction` is opened with by default.
    pub fn for_direction(direction: Direction) -> Access {
        match direction {
            Direction::ToLinux => Access::Read,
            Direction::FromLinux => Access::Write,
            Direction::Both => Access::ReadWrite,
        }
    }

    /// `reading`, `writing` or `reading and writing` (for messages).
    pub fn describe(self) -> &'static str {
        match self {
            Access::Read => "reading",
            Access::Write => "writing",
            Access::ReadWrite => "reading and writing",
        }
    }
}

/// Is `name` a channel's name: 1 to [`NAME_MAX`] characters of `a-z`, `0-9`, `_`, `-`?
pub fn valid_name(name: &str) -> bool {
    (1..=NAME_MAX).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// How to open a channel: its access and where its device and sysfs directory are.
///
/// ```no_run
/// use hauki_channel::{Access, OpenOptions};
/// let setpoint = OpenOptions::new().access(Access::Write).open("setpoint")?;
/// setpoint.send(b"2.5")?;
/// # Ok::<(), hauki_channel::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    access: Option<Access>,
    dev_dir: PathBuf,
    sysfs_dir: PathBuf,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenOptions {
    /// The defaults: the access the channel's direction calls for (see [`OpenOptions::open`]),
    /// devices in [`DEV_DIR`], sysfs in [`sysfs::SYSFS_DIR`].
    pub fn new() -> Self {
        Self { access: None, dev_dir: PathBuf::from(DEV_DIR), sysfs_dir: PathBuf::from(sysfs::SYSFS_DIR) }
    }

    /// Open for `access` rather than for the channel's direction.
    pub fn access(&mut self, access: Access) -> &mut Self {
        self.access = Some(access);
        self
    }

    /// Look for devices in `dir` rather than `/dev/hauki` (tests, another devtmpfs mount).
    pub fn dev_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.dev_dir = dir.into();
        self
    }

    /// Read channel attributes from `dir` rather than `/sys/kernel/hauki/channels`.
    pub fn sysfs_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.sysfs_dir = dir.into();
        self
    }

    /// Opens channel `name`.
    ///
    /// Without an [`OpenOptions::access`], the access follows the channel's `direction` in sysfs
    /// (read for a channel to Linux, write for one from Linux, both for both); where sysfs does
    /// not say, read-write is tried, then read, then write. The channel's kind and record size
    /// come from sysfs when it has them (for messages and [`Channel::recv_record`]).
    pub fn open(&self, name: &str) -> Result<Channel> {
        if !valid_name(name) {
            return Err(Error::BadName { channel: name.to_string() });
        }
        let info = sysfs::read(&self.sysfs_dir, name).ok();
        let path = self.dev_dir.join(name);
        let fd = match self.access.or_else(|| info.as_ref()?.direction.map(Access::for_direction)) {
            Some(access) => open_fd(&path, name, access).map(|fd| (fd, access)),
            None => {
                let first = open_fd(&path, name, Access::ReadWrite);
                match first {
                    Err(Error::WrongDirection { .. } | Error::PermissionDenied { .. }) => {
                        open_fd(&path, name, Access::Read)
                            .map(|fd| (fd, Access::Read))
                            .or_else(|_| open_fd(&path, name, Access::Write).map(|fd| (fd, Access::Write)))
                            .map_err(|_| first.err().unwrap_or(Error::NoChannel { channel: name.to_string() }))
                    }
                    other => other.map(|fd| (fd, Access::ReadWrite)),
                }
            }
        };
        let (fd, access) = fd?;
        Ok(Channel {
            name: name.to_string(),
            fd,
            access,
            kind: info.as_ref().and_then(|i| i.kind),
            record_size: info.as_ref().and_then(|i| i.record_size),
            sysfs_dir: self.sysfs_dir.clone(),
        })
    }
}

fn open_fd(path: &Path, name: &str, access: Access) -> Result<OwnedFd> {
    let flags = access.flags() | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    loop {
        match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => return Ok(fd),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(Error::from_errno(name, "open", e.raw_os_error(), access)),
        }
    }
}

/// How long a call may wait.
#[derive(Clone, Copy)]
enum Wait {
    /// Not at all: `EAGAIN` is [`Error::WouldBlock`].
    No,
    /// As long as it takes.
    Forever,
    /// Until the instant; then [`Error::TimedOut`] with the duration.
    Until(Instant, Duration),
}

impl Wait {
    fn within(timeout: Duration) -> Wait {
        match Instant::now().checked_add(timeout) {
            Some(t) => Wait::Until(t, timeout),
            None => Wait::Forever,
        }
    }
}

/// An open channel. Closed when dropped.
#[derive(Debug)]
pub struct Channel {
    name: String,
    fd: OwnedFd,
    access: Access,
    kind: Option<Kind>,
    record_size: Option<u64>,
    sysfs_dir: PathBuf,
}

/// A record buffer when sysfs does not tell the record size.
const RECORD_BUFFER_DEFAULT: usize = 64 * 1024;

impl Channel {
    /// Opens channel `name` (`/dev/hauki/<name>`) with the [`OpenOptions`] defaults.
    pub fn open(name: &str) -> Result<Channel> {
        OpenOptions::new().open(name)
    }

    /// Opens channel `name` for `access`.
    pub fn open_with(name: &str, access: Access) -> Result<Channel> {
        OpenOptions::new().access(access).open(name)
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The access it was opened with.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Message or byte channel, when sysfs said at open.
    pub fn kind(&self) -> Option<Kind> {
        self.kind
    }

    /// The largest record in bytes (message channels), when sysfs said at open.
    pub fn record_size(&self) -> Option<u64> {
        self.record_size
    }

    /// The channel's attributes and counters from sysfs, read now.
    pub fn info(&self) -> Result<ChannelInfo> {
        sysfs::read(&self.sysfs_dir, &self.name)
    }

    /// Receives one record (message channel) or what bytes there are (byte channel) into
    /// `buf`, waiting as long as it takes; returns its length. A record larger than `buf` is
    /// [`Error::TooLarge`] and stays in the channel.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.read(buf, Wait::Forever)
    }

    /// As [`Channel::recv`], but [`Error::WouldBlock`] when nothing waits.
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.read(buf, Wait::No)
    }

    /// As [`Channel::recv`], but [`Error::TimedOut`] when nothing came within `timeout`.
    pub fn recv_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.read(buf, Wait::within(timeout))
    }

    /// Receives one record into a new vector sized by the channel's record size (64 KiB when
    /// sysfs does not tell it), waiting up to `timeout` (`None`: as long as it takes).
    pub fn recv_record(&self, timeout: Option<Duration>) -> Result<Vec<u8>> {
        let size = self.record_size.and_then(|r| usize::try_from(r).ok()).unwrap_or(RECORD_BUFFER_DEFAULT);
        let mut buf = vec![0u8; size];
        let n = self.read(&mut buf, timeout.map_or(Wait::Forever, Wait::within))?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Sends `data`: one record on a message channel (at most [`Channel::record_size`] bytes;
    /// empty is an empty record), all of it on a byte channel; waits for room as long as it
    /// takes.
    pub fn send(&self, data: &[u8]) -> Result<()> {
        self.write_all(data, Wait::Forever)
    }

    /// As [`Channel::send`], but [`Error::TimedOut`] when there was no room within `timeout`
    /// (on a byte channel, part of `data` may have gone).
    pub fn send_timeout(&self, data: &[u8], timeout: Duration) -> Result<()> {
        self.write_all(data, Wait::within(timeout))
    }

    /// One try: [`Error::WouldBlock`] when there is no room. Returns the bytes taken: all of
    /// `data` on a message channel, possibly a part on a byte channel.
    pub fn try_send(&self, data: &[u8]) -> Result<usize> {
        self.write_some(data, Wait::No)
    }

    fn read(&self, buf: &mut [u8], wait: Wait) -> Result<usize> {
        let len = buf.len();
        self.retry("read", PollFlags::IN, wait, false, len, |fd| rustix::io::read(fd, &mut *buf))
    }

    fn write_some(&self, data: &[u8], wait: Wait) -> Result<usize> {
        self.retry("write", PollFlags::OUT, wait, true, data.len(), |fd| match rustix::io::write(fd, data) {
            // Nothing taken of a non-empty write: no room after all.
            Ok(0) if !data.is_empty() => Err(Errno::AGAIN),
            other => other,
        })
    }

    fn write_all(&self, data: &[u8], wait: Wait) -> Result<()> {
        let mut done = self.write_some(data, wait)?;
        while done < data.len() {
            done += self.write_some(&data[done..], wait)?;
        }
        Ok(())
    }

    /// Runs `op` until it does something other than `EAGAIN`/`EINTR`, waiting in `poll()` for
    /// `events` in between as `wait` allows.
    fn retry<T>(
        &self,
        call: &'static str,
        events: PollFlags,
        wait: Wait,
        sending: bool,
        len: usize,
        mut op: impl FnMut(BorrowedFd<'_>) -> rustix::io::Result<T>,
    ) -> Result<T> {
        let fail = |e: Errno| match e {
            Errno::MSGSIZE => {
                Error::TooLarge { channel: self.name.clone(), sending, len, record_size: self.record_size }
            }
            e => Error::from_errno(&self.name, call, e.raw_os_error(), self.access),
        };
        loop {
            match op(self.fd.as_fd()) {
                Ok(v) => return Ok(v),
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => {}
                Err(e) => return Err(fail(e)),
            }
            let timeout = match wait {
                Wait::No => return Err(fail(Errno::AGAIN)),
                Wait::Forever => None,
                Wait::Until(t, timeout) => match t.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Err(Error::TimedOut { channel: self.name.clone(), timeout }),
                },
            };
            let ts = timeout.map(|d| Timespec::try_from(d).unwrap_or(Timespec { tv_sec: i64::MAX, tv_nsec: 0 }));
            let mut fds = [PollFd::new(&self.fd, events)];
            match rustix::event::poll(&mut fds, ts.as_ref()) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(Error::from_errno(&self.name, "poll", e.raw_os_error(), self.access)),
            }
            let revents = fds[0].revents();
            if !revents.intersects(events) && revents.intersects(PollFlags::HUP | PollFlags::ERR) {
                // The driver says hang-up or error but the call still finds nothing to do: do not
                // spin on it; the next try decides.
                std::thread::sleep(Duration::from_millis(10).min(timeout.unwrap_or(Duration::MAX)));
            }
        }
    }
}

impl AsFd for Channel {
    /// The device's file descriptor (opened with `O_NONBLOCK` and `O_CLOEXEC`), for `poll`,
    /// `select` or `epoll`.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<Channel> for OwnedFd {
    fn from(c: Channel) -> OwnedFd {
        c.fd
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::tests::TempDir;

    /// A FIFO stands in for a byte channel: same open/read/write/poll paths, no device needed.
    fn fifo(dir: &TempDir, name: &str) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join(name),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }

    #[test]
    fn names_are_checked_before_any_path_is_made() {
        assert!(valid_name("echo-log") && valid_name("a_1") && valid_name(&"x".repeat(31)));
        for bad in ["", "../etc", "Echo", "a b", "a/b", &"x".repeat(32)] {
            assert!(!valid_name(bad), "{bad:?}");
            assert!(matches!(Channel::open(bad), Err(Error::BadName { .. })), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_channel_says_so() {
        let dir = TempDir::new("missing");
        let e = OpenOptions::new().dev_dir(dir.path()).sysfs_dir(dir.path()).open("nope").unwrap_err();
        assert!(matches!(e, Error::NoChannel { ref channel } if channel == "nope"), "{e:?}");
        let e = OpenOptions::new().dev_dir(dir.path()).access(Access::Read).open("nope").unwrap_err();
        assert!(matches!(e, Error::NoChannel { .. }), "{e:?}");
    }

    #[test]
    fn send_recv_would_block_and_time_out() {
        let dir = TempDir::new("fifo");
        fifo(&dir, "pipe");
        let ch = OpenOptions::new().dev_dir(dir.path()).sysfs_dir(dir.path()).open("pipe").unwrap();
        assert_eq!(ch.access(), Access::ReadWrite);
        assert_eq!((ch.kind(), ch.record_size()), (None, None));
        let mut buf = [0u8; 16];
        assert!(ch.try_recv(&mut buf).unwrap_err().is_would_block());
        let t0 = Instant::now();
        let e = ch.recv_timeout(&mut buf, Duration::from_millis(60)).unwrap_err();
        assert!(matches!(e, Error::TimedOut { .. }), "{e:?}");
        assert!(t0.elapsed() >= Duration::from_millis(60));
        ch.send(b"hello").unwrap();
        assert_eq!(ch.try_send(b"!").unwrap(), 1);
        assert_eq!(ch.recv(&mut buf).unwrap(), 6);
        assert_eq!(&buf[..6], b"hello!");
        ch.send_timeout(b"abc", Duration::from_secs(1)).unwrap();
        assert_eq!(ch.recv_record(Some(Duration::from_secs(1))).unwrap(), b"abc");
        assert!(ch.as_raw_fd() >= 0);
    }

    #[test]
    fn a_blocking_recv_wakes_when_data_comes() {
        let dir = TempDir::new("wake");
        fifo(&dir, "pipe");
        let rx = OpenOptions::new().dev_dir(dir.path()).access(Access::ReadWrite).open("pipe").unwrap();
        let path = dir.path().to_path_buf();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let tx = OpenOptions::new().dev_dir(path).access(Access::Write).open("pipe").unwrap();
            tx.send(b"late").unwrap();
        });
        let mut buf = [0u8; 8];
        assert_eq!(rx.recv(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"late");
        writer.join().unwrap();
    }

    #[test]
    fn sysfs_sets_the_access_kind_and_record_size() {
        let dir = TempDir::new("dir");
        fifo(&dir, "ctl");
        dir.write("sys/ctl/direction", "to_linux\n");
        dir.write("sys/ctl/kind", "message\n");
        dir.write("sys/ctl/record_size", "128\n");
        let ch = OpenOptions::new().dev_dir(dir.path()).sysfs_dir(dir.path().join("sys")).open("ctl").unwrap();
        assert_eq!(ch.access(), Access::Read);
        assert_eq!(ch.kind(), Some(Kind::Message));
        assert_eq!(ch.record_size(), Some(128));
        assert_eq!(ch.info().unwrap().record_size, Some(128));
        assert_eq!(Access::for_direction(Direction::FromLinux), Access::Write);
        assert_eq!(Access::for_direction(Direction::Both), Access::ReadWrite);
    }
}
