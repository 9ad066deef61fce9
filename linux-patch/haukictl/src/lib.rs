//! Linux programs' side of Hauki's channels, and the co-kernel's status as Linux shows it.
//!
//! A real-time application opens *channels* to Linux (`docs/applications.md`); the patched Linux
//! shows each as a character device, `/dev/hauki/<name>`, with read-only counters in
//! `/sys/kernel/hauki/channels/<name>/`. This library is what a Rust program running on Linux
//! uses to talk to the real-time tasks, and what the `haukictl` command is built on.
//!
//! ```no_run
//! use hauki_channel::{Channel, Error};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Error> {
//! // The echo application: every record written to `echo` comes back unchanged.
//! let echo = Channel::open("echo")?;
//! echo.send(b"ping")?;
//! let mut buf = [0u8; 256];
//! let n = echo.recv_timeout(&mut buf, Duration::from_secs(1))?;
//! assert_eq!(&buf[..n], b"ping");
//!
//! // The demo application's controller state, one JSON object per record, without waiting.
//! let control = Channel::open("control")?;
//! match control.try_recv(&mut buf) {
//!     Ok(n) => println!("{}", String::from_utf8_lossy(&buf[..n])),
//!     Err(Error::WouldBlock { .. }) => println!("nothing yet"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! - [`channel`]: [`Channel`]: open by name, `send`/`recv` one record (or bytes, on a byte
//!   channel), non-blocking and time-bounded variants, the file descriptor for `poll`/`epoll`.
//! - [`sysfs`]: a channel's shape, both sides' presence and counters; the list of channels.
//! - [`status`]: the co-kernel's status text (`/proc/hauki/status`), read and parsed: the
//!   latency summary and histogram, the task table, the channel lines.
//! - [`render`]: the text forms `haukictl` prints (histogram bars, tables, records as text or
//!   hex), for programs that want the same.
//! - [`Error`]: every failure, with the channel it concerns and what the errno means here.
//!
//! The semantics are the driver's (`linux-patch/`, `arch/x86/kernel/hauki_channels.c`): a message
//! channel passes one record per `read()`/`write()` and never splits one (a short read buffer gets
//! `EMSGSIZE` and the record stays); a byte channel passes a stream; `EPIPE` while no real-time
//! task serves the channel; opening a channel for a direction it has no ring for fails with
//! `EINVAL`. C programs have `linux-patch/hauki_channel.h` for the same.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod channel;
mod error;
pub mod region;
pub mod render;
pub mod status;
pub mod sysfs;

pub use channel::{Access, Channel, OpenOptions};
pub use error::{Error, errno_name};
pub use sysfs::{ChannelInfo, Direction, Kind, RtState};

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
