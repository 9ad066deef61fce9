//! Architecture glue, selected by target. Only x86_64 exists; the module names are the ones a second
//! architecture would have to provide.

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod x86_64;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub use self::x86_64::*;
