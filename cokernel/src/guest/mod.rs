//! The Linux guest: the patched Linux 6.12 that runs as the co-kernel's idle task.
//!
//! Two kinds of module live here. The runtime (co-kernel target only) sits on the hardware layer
//! and below the kernel: [`vcpu`] is Linux's virtual CPU (its soft interrupt flag, the events logged
//! for it and their forwarding to its gates), [`vtimer`] its clock event, [`irqchip`] its interrupt
//! lines on the IO-APIC, [`loader`] puts Linux in memory and enters it, and [`supervisor`] notices
//! when Linux dies or is stuck and restarts it. It knows nothing of tasks: the kernel tells it
//! which context was interrupted.
//!
//! The rest is pure, host-testable logic:
//! [`elf`] validates and loads an uncompressed x86_64 `vmlinux`, [`bootparams`] builds Linux's
//! "zero page" (`struct boot_params`) and its e820 map from the co-kernel's memory map, and
//! [`modules`] finds Linux, its initramfs and its command line among the boot modules; [`lines`] is
//! the state of Linux's interrupt lines behind the paravirtual irqchip, and [`watchdog`] judges
//! whether Linux still takes its events; [`calls`] decodes and checks Linux's calls to the
//! co-kernel and the IDT they register.
//!
//! Invariant shared by every submodule: all input (ELF images, boot modules, cpio archives,
//! Linux's calls and what they point to) is untrusted; parsers never panic, never index out of
//! bounds and never overflow, and report malformed input as a typed error. The pure modules
//! forbid `unsafe`.

pub mod acpi_view;
pub mod bootparams;
pub mod calls;
pub mod elf;
pub mod lines;
pub mod modules;
pub mod ring;
pub mod watchdog;

#[cfg(target_os = "none")]
pub mod irqchip;
#[cfg(target_os = "none")]
pub mod loader;
#[cfg(target_os = "none")]
pub mod supervisor;
#[cfg(target_os = "none")]
pub mod vcpu;
#[cfg(target_os = "none")]
pub mod vtimer;
