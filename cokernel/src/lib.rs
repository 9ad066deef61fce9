//! The Hauki co-kernel.
//!
//! The crate is split so that pure logic (memory map, frame allocator, page-table builder, boot-info
//! parsing, scheduling) builds for the host too and is covered by `cargo test`; everything that touches
//! hardware lives under `arch` and builds only for `x86_64-unknown-none`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod bootinfo;
pub mod cmdline;
pub mod mm;
