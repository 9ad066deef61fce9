//! Every failure of the library, named after what it means for a channel.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::channel::Access;

/// What went wrong. Each variant names the channel (or file) it concerns; `Display` gives a
/// one-line message that says what the errno means for a channel, with the errno's name.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// `ENOENT` at open: there is no `/dev/hauki/<channel>` (the image's application did not
    /// open such a channel, or this Linux has no channel driver).
    NoChannel {
        /// The channel asked for.
        channel: String,
    },
    /// The name cannot be a channel's: names are 1 to 31 characters of `a-z`, `0-9`, `_`, `-`.
    BadName {
        /// The name given.
        channel: String,
    },
    /// `EPIPE`: no real-time task serves the channel (its application is not running, was
    /// refused at boot, or was booted with `hauki.app=off`). Writes fail at once; a read fails
    /// once the ring is empty.
    NotServed {
        /// The channel.
        channel: String,
    },
    /// `EMSGSIZE`: the record is larger than the buffer given to `recv` (the record stays in the
    /// channel for a larger buffer), or a record given to `send` is larger than the channel's
    /// record size.
    TooLarge {
        /// The channel.
        channel: String,
        /// `true` for a send (the record was too large), `false` for a receive (the buffer was
        /// too small).
        sending: bool,
        /// The record's length (sending) or the buffer's (receiving).
        len: usize,
        /// The channel's record size, when sysfs tells it.
        record_size: Option<u64>,
    },
    /// `EINVAL` at open: the channel has no ring in the direction asked for (a channel only to
    /// Linux cannot be opened for writing; read-write needs both directions).
    WrongDirection {
        /// The channel.
        channel: String,
        /// The access asked for.
        access: Access,
    },
    /// `EAGAIN`: a non-blocking call found no record (receive) or no room (send).
    WouldBlock {
        /// The channel.
        channel: String,
    },
    /// A call with a time limit found no record (no room) within it.
    TimedOut {
        /// The channel.
        channel: String,
        /// The limit.
        timeout: Duration,
    },
    /// `EIO`: the driver found the shared ring inconsistent (an index or a record length out of
    /// range) and refused it; counted in the channel's `violations`.
    Violation {
        /// The channel.
        channel: String,
    },
    /// `EACCES`/`EPERM`: the device's permissions do not allow this access.
    PermissionDenied {
        /// The channel.
        channel: String,
        /// The access asked for.
        access: Access,
    },
    /// Any other errno from a channel's device.
    Os {
        /// The channel.
        channel: String,
        /// The call: `open`, `read`, `write` or `poll`.
        call: &'static str,
        /// The errno.
        errno: i32,
    },
    /// There is no channel directory in sysfs (`/sys/kernel/hauki/channels`): this Linux has no
    /// Hauki channel driver, or does not run under the co-kernel.
    NoChannels {
        /// The directory looked for.
        path: PathBuf,
    },
    /// Neither `/proc/hauki/status` nor debugfs `hauki/status` exists: this Linux does not run
    /// under the co-kernel (or has no status patch).
    NoStatus {
        /// The first place looked at.
        path: PathBuf,
    },
    /// A file (a sysfs attribute, the status text) could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    /// The channel the error concerns, if it concerns one.
    pub fn channel(&self) -> Option<&str> {
        match self {
            Error::NoChannel { channel }
            | Error::BadName { channel }
            | Error::NotServed { channel }
            | Error::TooLarge { channel, .. }
            | Error::WrongDirection { channel, .. }
            | Error::WouldBlock { channel }
            | Error::TimedOut { channel, .. }
            | Error::Violation { channel }
            | Error::PermissionDenied { channel, .. }
            | Error::Os { channel, .. } => Some(channel),
            Error::NoChannels { .. } | Error::NoStatus { .. } | Error::Read { .. } => None,
        }
    }

    /// The errno behind the error, when there was one.
    pub fn errno(&self) -> Option<i32> {
        Some(match self {
            Error::NoChannel { .. } => ENOENT,
            Error::NotServed { .. } => EPIPE,
            Error::TooLarge { .. } => EMSGSIZE,
            Error::WrongDirection { .. } => EINVAL,
            Error::WouldBlock { .. } => EAGAIN,
            Error::Violation { .. } => EIO,
            Error::PermissionDenied { .. } => EACCES,
            Error::Os { errno, .. } => *errno,
            Error::Read { source, .. } => return source.raw_os_error(),
            Error::NoStatus { .. } => ENOENT,
            Error::BadName { .. } | Error::TimedOut { .. } | Error::NoChannels { .. } => return None,
        })
    }

    /// Is this [`Error::WouldBlock`]?
    pub fn is_would_block(&self) -> bool {
        matches!(self, Error::WouldBlock { .. })
    }

    /// The error for `errno` from `call` (`open`, `read`, `write`, `poll`) on `channel`.
    pub(crate) fn from_errno(channel: &str, call: &'static str, errno: i32, access: Access) -> Error {
        let channel = channel.to_string();
        match errno {
            ENOENT if call == "open" => Error::NoChannel { channel },
            EPIPE => Error::NotServed { channel },
            EINVAL if call == "open" => Error::WrongDirection { channel, access },
            EAGAIN => Error::WouldBlock { channel },
            EIO => Error::Violation { channel },
            EACCES | EPERM => Error::PermissionDenied { channel, access },
            _ => Error::Os { channel, call, errno },
        }
    }
}

// The errno values of Linux x86_64 (asm-generic/errno-base.h, errno.h).
const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const EINTR: i32 = 4;
const EIO: i32 = 5;
const ENXIO: i32 = 6;
const EBADF: i32 = 9;
const EAGAIN: i32 = 11;
const EACCES: i32 = 13;
const EBUSY: i32 = 16;
const ENODEV: i32 = 19;
const EINVAL: i32 = 22;
const EPIPE: i32 = 32;
const EMSGSIZE: i32 = 90;
const ETIMEDOUT: i32 = 110;

/// The symbolic name of a Linux errno (`EPIPE` for 32), or `errno N` for one this library does
/// not name.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        EINTR => "EINTR",
        EIO => "EIO",
        ENXIO => "ENXIO",
        EBADF => "EBADF",
        EAGAIN => "EAGAIN",
        EACCES => "EACCES",
        EBUSY => "EBUSY",
        ENODEV => "ENODEV",
        EINVAL => "EINVAL",
        EPIPE => "EPIPE",
        EMSGSIZE => "EMSGSIZE",
        ETIMEDOUT => "ETIMEDOUT",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
}

/// An I/O error as `No such file or directory (ENOENT)`, without std's `(os error 2)`.
pub(crate) fn io_message(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let text = e.to_string();
            let text = text.strip_suffix(&format!(" (os error {n})")).unwrap_or(&text).to_string();
            format!("{text} ({})", errno_name(n))
        }
        None => e.to_string(),
    }
}

fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) { format!("{} s", ms / 1000) } else { format!("{:.3} s", d.as_secs_f64()) }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoChannel { channel } => {
                write!(f, "no channel {channel} (ENOENT: no /dev/hauki/{channel}); haukictl channels lists them")
            }
            Error::BadName { channel } => write!(
                f,
                "{channel:?} cannot be a channel's name: names are 1 to 31 characters of a-z, 0-9, _ and -; \
                 haukictl channels lists them"
            ),
            Error::NotServed { channel } => write!(
                f,
                "channel {channel}: the real-time side is not there (EPIPE: no real-time task serves the channel; \
                 is its application running?)"
            ),
            Error::TooLarge { channel, sending: true, len, record_size } => {
                write!(f, "channel {channel}: a {len}-byte record is larger than the channel's record size")?;
                match record_size {
                    Some(r) => write!(f, " ({r} bytes) (EMSGSIZE)"),
                    None => write!(f, " (EMSGSIZE)"),
                }
            }
            Error::TooLarge { channel, sending: false, len, record_size } => {
                write!(f, "channel {channel}: the waiting record is larger than the {len}-byte buffer")?;
                if let Some(r) = record_size {
                    write!(f, " (records are up to {r} bytes)")?;
                }
                write!(f, " (EMSGSIZE); it stays in the channel")
            }
            Error::WrongDirection { channel, access } => write!(
                f,
                "channel {channel}: it has no ring for {} (EINVAL); /sys/kernel/hauki/channels/{channel}/direction \
                 says which way it goes",
                access.describe()
            ),
            Error::WouldBlock { channel } => {
                write!(f, "channel {channel}: nothing to read or no room to write just now (EAGAIN)")
            }
            Error::TimedOut { channel, timeout } => {
                write!(f, "channel {channel}: nothing happened within {} (timed out)", seconds(*timeout))
            }
            Error::Violation { channel } => write!(
                f,
                "channel {channel}: the driver found the shared ring inconsistent and refused it (EIO; counted in \
                 the channel's violations)"
            ),
            Error::PermissionDenied { channel, access } => write!(
                f,
                "channel {channel}: permission denied for {} (EACCES: the device's mode allows the channel's \
                 directions only; are you root?)",
                access.describe()
            ),
            Error::Os { channel, call, errno } => {
                write!(
                    f,
                    "channel {channel}: {call} failed: {}",
                    io_message(&std::io::Error::from_raw_os_error(*errno))
                )
            }
            Error::NoChannels { path } => write!(
                f,
                "no {}: this Linux has no Hauki channel driver, or does not run under the co-kernel",
                path.display()
            ),
            Error::NoStatus { path } => {
                write!(f, "no {} (ENOENT): this Linux does not run under the Hauki co-kernel", path.display())
            }
            Error::Read { path, source } => write!(f, "{}: {}", path.display(), io_message(source)),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        use std::io::ErrorKind;
        let kind = match &e {
            Error::NoChannel { .. } | Error::NoChannels { .. } | Error::NoStatus { .. } => ErrorKind::NotFound,
            Error::NotServed { .. } => ErrorKind::BrokenPipe,
            Error::WouldBlock { .. } => ErrorKind::WouldBlock,
            Error::TimedOut { .. } => ErrorKind::TimedOut,
            Error::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            Error::BadName { .. } | Error::WrongDirection { .. } | Error::TooLarge { .. } => ErrorKind::InvalidInput,
            Error::Read { source, .. } => source.kind(),
            Error::Violation { .. } | Error::Os { .. } => ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_values_are_linux_x86_64s() {
        // std knows the host's errno names through its messages; these are Linux's numbers.
        for (n, kind) in [
            (ENOENT, std::io::ErrorKind::NotFound),
            (EPIPE, std::io::ErrorKind::BrokenPipe),
            (EAGAIN, std::io::ErrorKind::WouldBlock),
            (EACCES, std::io::ErrorKind::PermissionDenied),
            (EINVAL, std::io::ErrorKind::InvalidInput),
            (EINTR, std::io::ErrorKind::Interrupted),
            (ETIMEDOUT, std::io::ErrorKind::TimedOut),
        ] {
            assert_eq!(std::io::Error::from_raw_os_error(n).kind(), kind, "{}", errno_name(n));
        }
        assert_eq!(rustix::io::Errno::MSGSIZE.raw_os_error(), EMSGSIZE);
        assert_eq!(rustix::io::Errno::PIPE.raw_os_error(), EPIPE);
        assert_eq!(rustix::io::Errno::IO.raw_os_error(), EIO);
        assert_eq!(errno_name(EMSGSIZE), "EMSGSIZE");
        assert_eq!(errno_name(4095), "errno 4095");
    }

    #[test]
    fn errnos_become_what_they_mean() {
        let e = |call, errno| Error::from_errno("echo", call, errno, Access::Write);
        assert!(matches!(e("open", ENOENT), Error::NoChannel { .. }));
        assert!(matches!(e("write", EPIPE), Error::NotServed { .. }));
        assert!(matches!(e("open", EINVAL), Error::WrongDirection { access: Access::Write, .. }));
        assert!(matches!(e("read", EINVAL), Error::Os { errno: EINVAL, call: "read", .. }));
        assert!(e("read", EAGAIN).is_would_block());
        assert!(matches!(e("read", EIO), Error::Violation { .. }));
        assert!(matches!(e("open", EACCES), Error::PermissionDenied { .. }));
        assert_eq!(e("write", EPIPE).errno(), Some(EPIPE));
        assert_eq!(e("write", EPIPE).channel(), Some("echo"));
    }

    #[test]
    fn messages_name_the_channel_and_the_errno() {
        let no = Error::NoChannel { channel: "ctl".into() };
        assert_eq!(no.to_string(), "no channel ctl (ENOENT: no /dev/hauki/ctl); haukictl channels lists them");
        let pipe = Error::NotServed { channel: "echo".into() }.to_string();
        assert!(pipe.starts_with("channel echo: the real-time side is not there (EPIPE"), "{pipe}");
        let big = Error::TooLarge { channel: "setpoint".into(), sending: true, len: 40, record_size: Some(32) };
        assert_eq!(
            big.to_string(),
            "channel setpoint: a 40-byte record is larger than the channel's record size (32 bytes) (EMSGSIZE)"
        );
        let small = Error::TooLarge { channel: "echo".into(), sending: false, len: 16, record_size: Some(256) };
        assert_eq!(
            small.to_string(),
            "channel echo: the waiting record is larger than the 16-byte buffer (records are up to 256 bytes) \
             (EMSGSIZE); it stays in the channel"
        );
        let t = Error::TimedOut { channel: "c".into(), timeout: Duration::from_millis(1500) };
        assert_eq!(t.to_string(), "channel c: nothing happened within 1.500 s (timed out)");
        let os = Error::Os { channel: "c".into(), call: "read", errno: EBADF }.to_string();
        assert_eq!(os, "channel c: read failed: Bad file descriptor (EBADF)");
        let read = Error::Read { path: "/x".into(), source: std::io::Error::from_raw_os_error(ENOENT) };
        assert_eq!(read.to_string(), "/x: No such file or directory (ENOENT)");
        let status = Error::NoStatus { path: "/proc/hauki/status".into() };
        assert_eq!(
            status.to_string(),
            "no /proc/hauki/status (ENOENT): this Linux does not run under the Hauki co-kernel"
        );
        for e in [no, Error::WouldBlock { channel: "x".into() }] {
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn io_errors_keep_the_kind() {
        let io: std::io::Error = Error::WouldBlock { channel: "x".into() }.into();
        assert_eq!(io.kind(), std::io::ErrorKind::WouldBlock);
        let io: std::io::Error = Error::NotServed { channel: "x".into() }.into();
        assert_eq!(io.kind(), std::io::ErrorKind::BrokenPipe);
        assert!(io.to_string().contains("EPIPE"));
    }
}
