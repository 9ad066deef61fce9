//! The hardware layer, selected by target: `x86_64` (for `x86_64-unknown-none`), re-exported
//! here so the layers above name `crate::arch::<module>`, never the architecture. On the host
//! this module is empty: the pure modules that build there do not touch hardware.

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod x86_64;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub use self::x86_64::*;
