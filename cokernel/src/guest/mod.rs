//! The Linux guest: the patched Linux 6.12 that runs as the co-kernel's idle task.
//!
//! This module holds the pure, host-testable logic of the guest. Today that is the loader:
//! [`elf`] validates and loads an uncompressed x86_64 `vmlinux`, [`bootparams`] builds Linux's
//! "zero page" (`struct boot_params`) and its e820 map from the co-kernel's memory map, and
//! [`modules`] finds Linux, its initramfs and its command line among the boot modules; [`lines`] is
//! the state of Linux's interrupt lines behind the paravirtual irqchip, and [`watchdog`] judges
//! whether Linux still takes its events; [`calls`] decodes and checks Linux's calls to the
//! co-kernel and the IDT they register.
//!
//! Invariant shared by every submodule: all input (ELF images, boot modules, cpio archives,
//! Linux's calls and what they point to) is untrusted; parsers never panic, never index out of bounds and never overflow, and report
//! malformed input as a typed error. There is no `unsafe` here.

pub mod bootparams;
pub mod calls;
pub mod elf;
pub mod lines;
pub mod modules;
pub mod watchdog;
