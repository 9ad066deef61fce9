//! A channel's attributes in sysfs, `/sys/kernel/hauki/channels/<name>/`: one value per file.
//!
//! | file | value |
//! |---|---|
//! | `kind` | `message` or `stream` (also read: `1`, `2`, the ABI's numbers) |
//! | `direction` | `to_linux`, `from_linux` or `both` |
//! | `policy` | `refuse` or `drop`: what a real-time send into a full ring does |
//! | `record_size` | message channels: the largest record in bytes (0 for a byte channel) |
//! | `slots` | message channels: records per ring; byte channels: bytes per ring |
//! | `rt_state` | `ready` (a real-time task serves the channel) or `absent` (also `1`, `0`) |
//! | `linux_state` | the number of Linux programs that have the channel open |
//! | `sent`, `received` | records (bytes) real-time tasks sent to Linux, received from it |
//! | `full` | real-time sends that found the ring to Linux full (refused or dropped) |
//! | `refused` | values Linux wrote that the co-kernel refused |
//! | `linux_read`, `linux_written` | records (bytes) Linux programs read and wrote |
//! | `violations` | values from the co-kernel the driver refused |
//!
//! Every file is optional here: a missing or unreadable one is `None`, so an older or newer
//! driver still shows what it has.

use std::path::{Path, PathBuf};

use hauki_abi::channel::{KIND_MESSAGE, KIND_STREAM, RT_ABSENT, RT_READY};

use crate::{Error, Result};

/// Where the channels' directories are.
pub const SYSFS_DIR: &str = "/sys/kernel/hauki/channels";

/// What a channel carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Records: one per `read()`/`write()`.
    Message,
    /// Bytes: a stream.
    Stream,
}

impl Kind {
    /// `message`/`stream` as the driver writes them, or the ABI's numbers (`1`, `2`).
    pub fn parse(text: &str) -> Option<Kind> {
        match text.trim() {
            "message" | "messages" => Some(Kind::Message),
            "stream" | "bytes" | "byte" => Some(Kind::Stream),
            n => match n.parse::<u8>().ok()? {
                KIND_MESSAGE => Some(Kind::Message),
                KIND_STREAM => Some(Kind::Stream),
                _ => None,
            },
        }
    }

    /// `message` or `stream`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Stream => "stream",
        }
    }
}

/// Which rings a channel has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Real-time tasks send, Linux programs read.
    ToLinux,
    /// Linux programs write, real-time tasks receive.
    FromLinux,
    /// Both rings.
    Both,
}

impl Direction {
    /// `to_linux`, `from_linux` or `both` (also with `-` for `_`).
    pub fn parse(text: &str) -> Option<Direction> {
        match text.trim().replace('-', "_").as_str() {
            "to_linux" => Some(Direction::ToLinux),
            "from_linux" => Some(Direction::FromLinux),
            "both" => Some(Direction::Both),
            _ => None,
        }
    }

    /// `to_linux`, `from_linux` or `both`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ToLinux => "to_linux",
            Direction::FromLinux => "from_linux",
            Direction::Both => "both",
        }
    }
}

/// Whether a real-time task serves the channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RtState {
    /// A real-time task serves it.
    Ready,
    /// None does: writes get `EPIPE`.
    Absent,
    /// A value this library does not know, as the file had it.
    Other(String),
}

impl RtState {
    /// `ready`/`absent` as the driver writes them, or the ABI's numbers.
    pub fn parse(text: &str) -> RtState {
        let t = text.trim();
        match t {
            "ready" => RtState::Ready,
            "absent" => RtState::Absent,
            n => match n.parse::<u32>() {
                Ok(RT_READY) => RtState::Ready,
                Ok(RT_ABSENT) => RtState::Absent,
                _ => RtState::Other(t.to_string()),
            },
        }
    }

    /// `ready`, `absent` or the unknown value.
    pub fn as_str(&self) -> &str {
        match self {
            RtState::Ready => "ready",
            RtState::Absent => "absent",
            RtState::Other(s) => s,
        }
    }
}

/// One channel's attributes, as sysfs shows them (each `None` when its file is missing or
/// unreadable).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The channel's name (its directory's).
    pub name: String,
    /// Message or byte channel.
    pub kind: Option<Kind>,
    /// Which rings it has.
    pub direction: Option<Direction>,
    /// `refuse` or `drop`.
    pub policy: Option<String>,
    /// The largest record (message channels).
    pub record_size: Option<u64>,
    /// Records (bytes) per ring.
    pub slots: Option<u64>,
    /// Whether a real-time task serves it.
    pub rt_state: Option<RtState>,
    /// Linux programs that have it open.
    pub linux_openers: Option<u64>,
    /// Records (bytes) real-time tasks sent to Linux.
    pub sent: Option<u64>,
    /// Records (bytes) real-time tasks received from Linux.
    pub received: Option<u64>,
    /// Real-time sends that found the ring to Linux full.
    pub full: Option<u64>,
    /// Values Linux wrote that the co-kernel refused.
    pub refused: Option<u64>,
    /// Records (bytes) Linux programs read.
    pub linux_read: Option<u64>,
    /// Records (bytes) Linux programs wrote.
    pub linux_written: Option<u64>,
    /// Values from the co-kernel the driver refused.
    pub violations: Option<u64>,
}

fn number(text: &str) -> Option<u64> {
    let t = text.trim();
    t.parse::<u64>().ok().or_else(|| t.parse::<i64>().ok().map(|v| v.max(0) as u64))
}

/// `linux_state`: a count of openers; `open`/`closed` read as 1/0.
fn openers(text: &str) -> Option<u64> {
    match text.trim() {
        "open" => Some(1),
        "closed" => Some(0),
        t => number(t),
    }
}

/// The channels' names in `root` (normally [`SYSFS_DIR`]), sorted. [`Error::NoChannels`] when
/// `root` does not exist.
pub fn list(root: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(root).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NoChannels { path: root.to_path_buf() },
        _ => Error::Read { path: root.to_path_buf(), source: e },
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Channel `name`'s attributes in `root`. [`Error::NoChannel`] when it has no directory there.
pub fn read(root: &Path, name: &str) -> Result<ChannelInfo> {
    let dir = root.join(name);
    if !crate::channel::valid_name(name) {
        return Err(Error::BadName { channel: name.to_string() });
    }
    if !dir.is_dir() {
        return Err(if root.is_dir() {
            Error::NoChannel { channel: name.to_string() }
        } else {
            Error::NoChannels { path: root.to_path_buf() }
        });
    }
    let file = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let num = |f: &str| file(f).as_deref().and_then(number);
    Ok(ChannelInfo {
        name: name.to_string(),
        kind: file("kind").as_deref().and_then(Kind::parse),
        direction: file("direction").as_deref().and_then(Direction::parse),
        policy: file("policy").map(|p| p.trim().to_string()).filter(|p| !p.is_empty()),
        record_size: num("record_size"),
        slots: num("slots"),
        rt_state: file("rt_state").as_deref().map(RtState::parse),
        linux_openers: file("linux_state").as_deref().and_then(openers),
        sent: num("sent"),
        received: num("received"),
        full: num("full"),
        refused: num("refused"),
        linux_read: num("linux_read"),
        linux_written: num("linux_written"),
        violations: num("violations"),
    })
}

/// Every channel's attributes in `root`, by name.
pub fn read_all(root: &Path) -> Result<Vec<ChannelInfo>> {
    list(root)?.iter().filter(|n| crate::channel::valid_name(n)).map(|n| read(root, n)).collect()
}

/// [`read_all`] of [`SYSFS_DIR`].
pub fn channels() -> Result<Vec<ChannelInfo>> {
    read_all(Path::new(SYSFS_DIR))
}

/// The sysfs directory of channel `name` under [`SYSFS_DIR`].
pub fn channel_dir(name: &str) -> PathBuf {
    Path::new(SYSFS_DIR).join(name)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A directory under the system's temporary directory, removed on drop.
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new(what: &str) -> TempDir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("haukictl-test-{}-{what}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }

        /// Writes `text` to `rel` under the directory, making its parents.
        pub(crate) fn write(&self, rel: &str, text: &str) {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A channel directory as the driver writes it.
    pub(crate) fn driver_like(dir: &TempDir, name: &str, kind: &str, direction: &str, counters: [u64; 6]) {
        let [sent, received, full, refused, read, written] = counters;
        for (f, v) in [
            ("kind", kind.to_string()),
            ("direction", direction.to_string()),
            ("policy", "refuse".to_string()),
            ("record_size", if kind == "stream" { "0".into() } else { "256".into() }),
            ("slots", if kind == "stream" { "4096".into() } else { "16".into() }),
            ("rt_state", "ready".to_string()),
            ("linux_state", "0".to_string()),
            ("sent", sent.to_string()),
            ("received", received.to_string()),
            ("full", full.to_string()),
            ("refused", refused.to_string()),
            ("linux_read", read.to_string()),
            ("linux_written", written.to_string()),
            ("violations", "0".to_string()),
        ] {
            dir.write(&format!("{name}/{f}"), &format!("{v}\n"));
        }
    }

    #[test]
    fn values_as_the_driver_writes_them_and_as_numbers() {
        assert_eq!(Kind::parse("message\n"), Some(Kind::Message));
        assert_eq!(Kind::parse("stream"), Some(Kind::Stream));
        assert_eq!(Kind::parse("1"), Some(Kind::Message));
        assert_eq!(Kind::parse("2\n"), Some(Kind::Stream));
        assert_eq!(Kind::parse("3"), None);
        assert_eq!(Kind::parse(""), None);
        assert_eq!(Direction::parse("to_linux\n"), Some(Direction::ToLinux));
        assert_eq!(Direction::parse("from-linux"), Some(Direction::FromLinux));
        assert_eq!(Direction::parse("both"), Some(Direction::Both));
        assert_eq!(Direction::parse("sideways"), None);
        assert_eq!(RtState::parse("ready\n"), RtState::Ready);
        assert_eq!(RtState::parse("1"), RtState::Ready);
        assert_eq!(RtState::parse("0"), RtState::Absent);
        assert_eq!(RtState::parse("absent"), RtState::Absent);
        assert_eq!(RtState::parse("7\n"), RtState::Other("7".into()));
        assert_eq!(openers("2\n"), Some(2));
        assert_eq!(openers("open"), Some(1));
        assert_eq!(number("-1"), Some(0));
        assert_eq!(number("x"), None);
    }

    #[test]
    fn a_channel_directory_is_read_whole() {
        let dir = TempDir::new("sysfs");
        driver_like(&dir, "echo", "message", "both", [3, 4, 1, 2, 3, 4]);
        dir.write("echo/linux_state", "1\n");
        let info = read(dir.path(), "echo").unwrap();
        assert_eq!(
            info,
            ChannelInfo {
                name: "echo".into(),
                kind: Some(Kind::Message),
                direction: Some(Direction::Both),
                policy: Some("refuse".into()),
                record_size: Some(256),
                slots: Some(16),
                rt_state: Some(RtState::Ready),
                linux_openers: Some(1),
                sent: Some(3),
                received: Some(4),
                full: Some(1),
                refused: Some(2),
                linux_read: Some(3),
                linux_written: Some(4),
                violations: Some(0),
            }
        );
    }

    #[test]
    fn missing_files_are_none_and_missing_channels_errors() {
        let dir = TempDir::new("sparse");
        dir.write("ctl/kind", "1\n");
        dir.write("ctl/rt_state", "0\n");
        dir.write("ctl/sent", "garbage\n");
        let info = read(dir.path(), "ctl").unwrap();
        assert_eq!(info.kind, Some(Kind::Message));
        assert_eq!(info.rt_state, Some(RtState::Absent));
        assert_eq!((info.sent, info.slots, info.direction), (None, None, None));
        assert!(matches!(read(dir.path(), "other"), Err(Error::NoChannel { .. })));
        assert!(matches!(read(dir.path(), "../x"), Err(Error::BadName { .. })));
        let gone = dir.path().join("nothing-here");
        assert!(matches!(read(&gone, "ctl"), Err(Error::NoChannels { .. })));
        assert!(matches!(list(&gone), Err(Error::NoChannels { .. })));
    }

    #[test]
    fn channels_are_listed_by_name() {
        let dir = TempDir::new("list");
        driver_like(&dir, "setpoint", "message", "from_linux", [0; 6]);
        driver_like(&dir, "control", "message", "to_linux", [10, 0, 0, 0, 10, 0]);
        driver_like(&dir, "echo-log", "stream", "to_linux", [0; 6]);
        dir.write("stray-file", "not a channel");
        assert_eq!(list(dir.path()).unwrap(), ["control", "echo-log", "setpoint"]);
        let all = read_all(dir.path()).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].kind, Some(Kind::Stream));
        assert_eq!(all[2].direction, Some(Direction::FromLinux));
        let empty = TempDir::new("empty");
        assert!(read_all(empty.path()).unwrap().is_empty());
        assert_eq!(channel_dir("echo"), Path::new("/sys/kernel/hauki/channels/echo"));
    }
}
