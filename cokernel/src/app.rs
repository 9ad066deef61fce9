//! Applications: a user's real-time tasks, channels and devices, built into an image beside the
//! system tasks (the latency tool, telemetry, Linux's watchdog) that every image has.
//!
//! An application is a Cargo example of this crate, `cokernel/examples/<name>.rs`, declared in
//! `cokernel/Cargo.toml` with `required-features = ["app"]`, that names its start function with
//! [`app!`](crate::app!):
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use cokernel::tasks::api::{self, Channel, Periodic};
//!
//! cokernel::app! {
//!     about: "one periodic task and a channel to Linux",
//!     start: start,
//! }
//!
//! fn start(_: &cokernel::app::Boot<'_>) -> Result<(), cokernel::app::AppError> {
//!     let tx = Channel::messages("ticks", 32).to_linux().open()?.tx;
//!     Periodic::new("tick").priority(50).period_us(1000).spawn(|_| loop { api::wait_next_period(); })?;
//!     Ok(())
//! }
//! ```
//!
//! `cargo xtask apps` lists them; `cargo xtask run --app NAME` builds and boots one. The start
//! function runs once at boot, after the system tasks exist and before Linux does: what it
//! cannot have (a priority taken, a channel too large for the region, a device that is absent) is
//! refused there with the reason, reported on COM2 as an `app` record, and the rest of the
//! system runs on without the application.

use core::fmt;

use crate::kernel::channels::ChannelError;
use crate::kernel::devices::DeviceError;
use crate::rt::sched::Error;

/// What an image runs beside the system tasks (written by [`app!`](crate::app!)).
#[derive(Debug)]
pub struct App {
    /// The application's name (its example's name).
    pub name: &'static str,
    /// One line about it (`cargo xtask apps` shows it too).
    pub about: &'static str,
    /// Starts its tasks and opens its channels, once, at boot.
    pub start: fn(&Boot<'_>) -> Result<(), AppError>,
    /// Called by the telemetry task once per reporting period (after the system's records), for
    /// the application's own records (`cokernel::arch::console::record`).
    pub report: Option<fn()>,
}

/// What the start function is told about the boot.
#[derive(Clone, Copy, Debug)]
pub struct Boot<'a> {
    /// The co-kernel's command line (an application may read its own keys).
    pub cmdline: &'a str,
    /// A VGA text screen exists and Linux does not own it.
    pub vga: bool,
}

/// Why an application could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppError {
    /// A task or kernel object was refused (a priority taken, no room for another task, ...).
    Task(Error),
    /// A channel was refused.
    Channel(ChannelError),
    /// A device could not be claimed.
    Device(DeviceError),
    /// The application's own reason.
    Refused(&'static str),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Task(e)
    }
}

impl From<ChannelError> for AppError {
    fn from(e: ChannelError) -> Self {
        AppError::Channel(e)
    }
}

impl From<DeviceError> for AppError {
    fn from(e: DeviceError) -> Self {
        AppError::Device(e)
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Task(e) => write!(f, "a task or kernel object was refused: {e:?}"),
            AppError::Channel(e) => write!(f, "a channel was refused: {e}"),
            AppError::Device(e) => write!(f, "a device could not be claimed: {e}"),
            AppError::Refused(why) => f.write_str(why),
        }
    }
}

/// Declares the image's application: `about` (one line) and `start` (a
/// `fn(&Boot) -> Result<(), AppError>`), optionally `report` (a `fn()` telemetry calls each
/// period). The name is the example's. Also supplies the host build's `main` (an application
/// image runs only on the co-kernel).
#[macro_export]
macro_rules! app {
    (about: $about:expr, start: $start:expr $(, report: $report:expr)? $(,)?) => {
        /// The application this image runs (found by the co-kernel's boot sequence).
        #[unsafe(no_mangle)]
        pub static HAUKI_APP: $crate::app::App = $crate::app::App {
            name: env!("CARGO_CRATE_NAME"),
            about: $about,
            start: $start,
            report: $crate::app!(@report $($report)?),
        };
    };
    (@report) => { None };
    (@report $report:expr) => { Some($report) };
}

#[cfg(target_os = "none")]
unsafe extern "Rust" {
    /// Defined by the image's `app!` (the `cokernel` binary's is `none`).
    static HAUKI_APP: App;
}

/// The image's application.
#[cfg(target_os = "none")]
pub fn this() -> &'static App {
    // SAFETY: every image defines `HAUKI_APP` with `app!` (the link fails otherwise), immutable.
    unsafe { &*core::ptr::addr_of!(HAUKI_APP) }
}
