//! The Hauki co-kernel.
//!
//! The crate is split so that pure logic (memory map, frame allocator, page-table builder, boot-info
//! parsing, telemetry records, and later scheduling) builds for the host too and is covered by
//! `cargo test`; everything that touches hardware lives under `arch` and builds only for
//! `x86_64-unknown-none`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod arch;
pub mod bootinfo;
pub mod cmdline;
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
pub mod guest;
#[cfg(all(feature = "ktest", target_os = "none"))]
pub mod ktest;
pub mod mm;
pub mod phase;
pub mod rt;
pub mod telemetry;

#[cfg(all(target_os = "none", not(test)))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    arch::fatal::fatal("panic", format_args!("co-kernel panic: {info}"))
}
