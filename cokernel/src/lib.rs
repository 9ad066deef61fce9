//! The Hauki co-kernel.
//!
//! Layers, each using only those below it: pure logic that builds for the host and is covered by
//! `cargo test` (memory map, frame allocator, page tables, boot information, the command line, the
//! scheduler, telemetry records, and Linux's parsers and judges in `guest`); the hardware layer
//! (`arch`, `x86_64-unknown-none` only); Linux's runtime (`guest`); the kernel, the only layer
//! that knows both tasks and Linux (`kernel`); the tasks (`tasks`); and the boot sequence
//! (`kmain`). docs/architecture.md draws it.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

extern crate alloc;

// Layers, lowest first; each uses only those above it in this list (docs/architecture.md).
// Pure logic, host-tested (no hardware, no `unsafe`):
pub mod bootinfo;
pub mod cmdline;
pub mod mm;
pub mod phase;
pub mod rt;
pub mod telemetry;
// The hardware layer:
pub mod arch;
// Linux's runtime (and its pure parsers and judges):
pub mod guest;
// The kernel: traps, the scheduler, Linux's calls, the counters:
#[cfg(target_os = "none")]
pub mod kernel;
// The tasks (system tasks, the task API, components applications start), the application an
// image runs, then the boot sequence:
#[cfg(target_os = "none")]
pub mod tasks;

#[cfg(target_os = "none")]
pub mod app;

#[cfg(target_os = "none")]
pub mod kmain;

// In-kernel tests and fuzz targets, beside the layers they exercise:
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
#[cfg(all(feature = "ktest", target_os = "none"))]
pub mod ktest;

#[cfg(all(target_os = "none", not(test)))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    arch::fatal::fatal("panic", format_args!("co-kernel panic: {info}"))
}
