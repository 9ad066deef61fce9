//! The contract shared by the Hauki co-kernel, its host tools (`xtask`) and the patched Linux guest.
//!
//! Everything here is plain data: fixed-width integers, no `bool`, `usize` or Rust enums on any wire. A
//! number once given a meaning is never reused for another (retired numbers stay reserved).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// QEMU's `isa-debug-exit` device: the co-kernel ends a test run by writing a code to this port.
///
/// QEMU then exits with status `(code << 1) | 1`; see [`debug_exit::qemu_status`].
pub mod debug_exit {
    /// I/O port of the device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
    pub const PORT: u16 = 0xf4;
    /// Everything asked for ran and passed.
    pub const SUCCESS: u32 = 0x10;
    /// A test failed, or the co-kernel stopped on a fatal error.
    pub const FAILURE: u32 = 0x11;

    /// The process exit status QEMU reports for a code written to [`PORT`].
    pub const fn qemu_status(code: u32) -> i32 {
        ((code << 1) | 1) as i32
    }

    /// The QEMU argument that adds the device.
    pub const QEMU_DEVICE: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";
}

/// The serial ports: COM1 is the console (Linux's, once Linux runs), COM2 the co-kernel's telemetry.
pub mod serial {
    /// COM1: the user's console.
    pub const CONSOLE_PORT: u16 = 0x3f8;
    /// COM2: JSON Lines telemetry; human-readable lines on it never start with `{`.
    pub const TELEMETRY_PORT: u16 = 0x2f8;
}

/// Telemetry records on COM2 (JSON Lines). The schema is documented in `docs/telemetry.md`.
pub mod telemetry {
    /// Bumped when a record loses or changes a field; adding a field does not bump it.
    pub const SCHEMA_VERSION: u32 = 1;

    /// Emitted once at the end of boot.
    pub const EVENT_BOOT: &str = "boot";
    /// A CPU exception taken in the co-kernel or a context it runs.
    pub const EVENT_EXCEPTION: &str = "exception";
    /// The co-kernel stopped: what was wrong and what to do.
    pub const EVENT_FATAL: &str = "fatal";
    /// A secondary CPU found in the MADT and parked.
    pub const EVENT_CPU: &str = "cpu";
}

/// Co-kernel command-line keys (documented in `docs/cmdline.md`).
pub mod cmdline {
    /// `hauki.debug_exit=1`: end QEMU through `isa-debug-exit` on a fatal stop or an `exit` request.
    pub const DEBUG_EXIT: &str = "hauki.debug_exit";
    /// `hauki.exit_after_boot=1`: exit with SUCCESS right after the boot record (benchmarks, tests).
    pub const EXIT_AFTER_BOOT: &str = "hauki.exit_after_boot";
    /// `hauki.inject=pf|gp|ud|de|bp|df|stack`: raise this exception after boot (tests of the report path).
    pub const INJECT: &str = "hauki.inject";
    /// `hauki.latency_period_us=N`: period of the latency task (default 100 µs).
    pub const LATENCY_PERIOD_US: &str = "hauki.latency_period_us";
    /// `hauki.icount_pace_us=N`: an emulator aid for QEMU `-icount` with several CPUs (never on
    /// hardware): no CPU's one-shot timer is armed more than N µs ahead, so QEMU's round-robin of
    /// vCPUs (each gets a share of the instructions up to the next timer) switches at least that
    /// often and a CPU's interrupt waits for another vCPU's turn at most about N µs.
    pub const ICOUNT_PACE_US: &str = "hauki.icount_pace_us";
    /// `hauki.report_ms=N`: telemetry reporting period (default 1000 ms).
    pub const REPORT_MS: &str = "hauki.report_ms";
    /// `hauki.exit_after_reports=N`: exit with SUCCESS after N telemetry reports.
    pub const EXIT_AFTER_REPORTS: &str = "hauki.exit_after_reports";
    /// `hauki.app=off` (or `0`): start only the system tasks (latency, telemetry, watchdog), not
    /// the image's application.
    pub const APP: &str = "hauki.app";
    /// `hauki.stagger=off`: release equal-period workers at the same instant.
    pub const STAGGER: &str = "hauki.stagger";
    /// `hauki.bench=1`: run the in-kernel benchmarks instead of the tasks, then exit (`smp`: only
    /// the posts within a CPU and across CPUs).
    pub const BENCH: &str = "hauki.bench";
    /// `hauki.linux=guest|handover`: what to do with a loaded Linux (absent: load and check only).
    pub const LINUX: &str = "hauki.linux";
    /// `hauki.linux_failure=restart|halt`: what follows a Linux panic, reboot, fault or lock-up.
    pub const LINUX_FAILURE: &str = "hauki.linux_failure";
    /// `hauki.linux_watchdog_ms=N`: how long Linux may go without taking an event (0: no watchdog).
    pub const LINUX_WATCHDOG_MS: &str = "hauki.linux_watchdog_ms";
    /// `hauki.linux_boot_watchdog_ms=N`: the same limit until Linux takes its first event.
    pub const LINUX_BOOT_WATCHDOG_MS: &str = "hauki.linux_boot_watchdog_ms";
    /// `hauki.linux_max_restarts=N`: restarts before Linux is left halted.
    pub const LINUX_MAX_RESTARTS: &str = "hauki.linux_max_restarts";
    /// `hauki.line_storm_limit=N`: arrivals on one of Linux's level lines within 100 µs that make
    /// an interrupt storm, which the co-kernel throttles (default 8; 0: never throttle).
    pub const LINE_STORM_LIMIT: &str = "hauki.line_storm_limit";
    /// `hauki.rt_cpus=LIST`: the co-kernel CPUs (indexes, `1,3` or `1-3`) that run only real-time
    /// tasks, never Linux (default: the last CPU when there are at least two; CPU 0 is Linux's).
    pub const RT_CPUS: &str = "hauki.rt_cpus";
    /// `hauki.linux_smp=on|off`: Linux runs on every shared CPU (on, the default), or on CPU 0
    /// only (off).
    pub const LINUX_SMP: &str = "hauki.linux_smp";
    /// `hauki.pool_mib=N`: memory the co-kernel keeps for itself when Linux is loaded.
    pub const POOL_MIB: &str = "hauki.pool_mib";
    /// `hauki.channels_kib=N`: KiB of the region shared with Linux for channels (16 to 4096, default 256).
    pub const CHANNELS_KIB: &str = "hauki.channels_kib";
    /// `hauki.apic=xapic`: use xAPIC mode even where x2APIC exists.
    pub const APIC: &str = "hauki.apic";
    /// `hauki.timer=lapic`: use the LAPIC one-shot timer even where TSC-deadline exists.
    pub const TIMER: &str = "hauki.timer";
    /// `hauki.timing=emulated|virtual`: what the clock is, said beside every latency figure (the
    /// status page, the console's latency line, the `boot` record). `emulated`: an emulator's
    /// clock that follows the host (QEMU TCG without `-icount`): latencies and misses are the
    /// emulator's, not Hauki's. `virtual`: QEMU's `-icount`, deterministic. Absent: hardware.
    pub const TIMING: &str = "hauki.timing";
    /// `hauki.ktest_clock=virtual`: the in-kernel tests run under instruction counting, so the tests
    /// that judge timing (the constant-time check) are judged; on a host-timed clock they are skipped.
    pub const KTEST_CLOCK: &str = "hauki.ktest_clock";
}

/// The soft-cli contract between the co-kernel and the Linux guest (version 1).
///
/// The co-kernel fills one [`guest::Handoff`] page before it enters Linux and passes its physical
/// address in `boot_params.hdr.hardware_subarch_data`, with `hardware_subarch` =
/// [`guest::SUBARCH_HAUKI`]. Linux's interrupt flag is the `mask` byte of its CPU's
/// [`guest::Vcpu`]; events the co-kernel logs for Linux are bits of `pending`.
///
/// This module is the one source of truth: the C header `linux-patch/hauki_abi.h` is generated
/// from [`guest::LAYOUT`] by `cargo xtask abi`, and `cargo xtask test` fails when the committed
/// header differs. Field offsets are asserted here (below) and again in C (`static_assert` on `offsetof`).
pub mod guest {
    use super::channel::{self, Desc, Ring, State};
    use core::mem::{align_of, offset_of, size_of};

    /// `"HAUKIABI"` little-endian.
    pub const MAGIC: u64 = u64::from_le_bytes(*b"HAUKIABI");
    /// Incompatible layout or semantics change: both sides refuse a different major.
    pub const VERSION_MAJOR: u16 = 1;
    /// Compatible additions (new fields in reserved space, new calls).
    pub const VERSION_MINOR: u16 = 5;
    /// `boot_params.hdr.hardware_subarch` for a Linux started by Hauki (upstream uses 0..=4).
    pub const SUBARCH_HAUKI: u32 = 5;
    /// The first of the co-kernel's PML4 slots (Linux's guard hole, `0xffff_8000_0000_0000`):
    /// Linux copies [`Handoff::pgd`] into slots `FIRST_PGD_SLOT..FIRST_PGD_SLOT + PGD_SLOTS` of
    /// every page table it builds.
    pub const FIRST_PGD_SLOT: u32 = 256;
    /// How many PML4 slots the co-kernel's range spans (16 × 512 GiB).
    pub const PGD_SLOTS: usize = 16;
    /// Most vCPUs the handoff describes.
    pub const MAX_VCPUS: u32 = 64;

    /// Linux's `int` into the co-kernel when it turns its virtual flag on with events pending
    /// (also sent as a self-IPI when its hardware flag is off): the co-kernel replays them.
    /// Linux must not allocate this vector, nor the other `VECTOR_*`.
    pub const VECTOR_UPCALL: u8 = 0xf3;
    /// The vector the co-kernel raises for Linux's clock-event device ([`call::SET_TIMER`]);
    /// Linux's handler for it is its clock event's.
    pub const VECTOR_LINUX_TIMER: u8 = 0xed;
    /// The vector the co-kernel raises for Linux when a channel has news for it (a record or bytes
    /// to read, room freed for writing, the real-time side's state changed): the channels'
    /// doorbell into Linux (minor 3). Hyper-V's re-enlightenment vector upstream.
    pub const VECTOR_LINUX_CHANNEL: u8 = 0xee;
    /// The co-kernel's own one-shot timer (LAPIC timer or TSC deadline); never Linux's.
    pub const VECTOR_COKERNEL_TIMER: u8 = 0xf0;
    /// The co-kernel's wake-up self-IPI (no handler work: it brings a pass through the
    /// scheduler); never Linux's.
    pub const VECTOR_COKERNEL_WAKEUP: u8 = 0xf1;
    /// The co-kernel's vector for the MSIs of devices real-time tasks own (minor 3); never
    /// Linux's (AMD's deferred-error vector upstream, which Linux as Hauki's guest never enables).
    pub const VECTOR_COKERNEL_DEVICE: u8 = 0xf4;
    /// Kernel calls of the co-kernel's real-time tasks (`int 0xf2`); never Linux's.
    pub const VECTOR_COKERNEL_KCALL: u8 = 0xf2;
    /// Linux's device line `n` (ISA IRQ 0..15, minor 2) arrives on vector `ISA_VECTOR_BASE + n`:
    /// Linux's own `ISA_IRQ_VECTOR(n)`, so its legacy vector table needs no change.
    pub const ISA_VECTOR_BASE: u8 = 0x30;
    /// The ISA lines the pv irqchip routes (IRQ 0..15, on fixed vectors).
    pub const ISA_LINES: u32 = 16;
    /// Every line the pv irqchip routes (minor 4): the ISA lines, then the IO-APIC inputs 16..23
    /// of the PCI interrupt lines (`_PRT` in APIC mode), which Linux binds with
    /// [`call::GSI_BIND`]. Line `n` is GSI `n`.
    pub const LINES: u32 = 24;
    /// The co-kernel's telemetry UART (COM2: `serial::TELEMETRY_PORT`, 8 ports) and its line are
    /// not Linux's: Linux claims neither.
    pub const TELEMETRY_IRQ: u32 = 3;

    /// [`Handoff::features`] bit: the co-kernel runs the local APIC in x2APIC mode; Linux then
    /// sends its upcall on the way back to user or kernel code as a self-IPI through the x2APIC
    /// MSR (in xAPIC mode that MSR write would fault, so the bit is clear there even when the CPU
    /// has x2APIC, e.g. with `hauki.apic=xapic`).
    pub const FEATURE_X2APIC: u64 = 1 << 0;
    /// [`Handoff::features`] bit: the CPU has the TSC-deadline timer mode.
    pub const FEATURE_TSC_DEADLINE: u64 = 1 << 1;
    /// [`Handoff::features`] bit: the TSC runs at a constant rate in every power state
    /// (CPUID 0x80000007 EDX bit 8), so it may serve as Linux's clocksource.
    pub const FEATURE_INVARIANT_TSC: u64 = 1 << 2;

    /// [`Vcpu::mask`] value: Linux's virtual interrupt flag is on (events may be delivered).
    pub const MASK_ENABLED: u8 = 0;
    /// [`Vcpu::mask`] value: Linux's virtual interrupt flag is off (events are logged). The
    /// co-kernel treats every non-zero byte as off.
    pub const MASK_DISABLED: u8 = 1;

    /// Calls from Linux into the co-kernel (`Handoff::call_gate`, RDI = number). Numbers are never
    /// reused once retired.
    pub mod call {
        /// RSI = Linux's virtual address of a `struct desc_ptr` (Linux's IDT): Linux's gates go
        /// live. The descriptor must lie inside Linux's kernel image (where `idt_descr` is), the
        /// IDT inside it or at its read-only alias (`CPU_ENTRY_AREA_RO_IDT`); anything else is
        /// refused with u64::MAX (the co-kernel's `guest::calls`).
        pub const LOAD_IDT: u32 = 1;
        /// RSI = absolute TSC deadline for Linux's clock-event device (u64::MAX cancels; minor 2).
        /// The co-kernel raises [`super::VECTOR_LINUX_TIMER`] once, at or after the deadline,
        /// when Linux's virtual flag allows (logged and replayed otherwise). Returns 0.
        pub const SET_TIMER: u32 = 2;
        /// RSI = ISA IRQ 0..15 (minor 2), or a bound PCI line 16..23 (minor 4): Linux masks one of its device lines. The three line
        /// calls (`IRQ_MASK`, [`IRQ_UNMASK`], [`IRQ_EOI`]) drive the paravirtual irqchip: the
        /// co-kernel owns the IO-APIC, applies the firmware's source overrides, delivers line `n`
        /// on `ISA_VECTOR_BASE + n`, and keeps a level-triggered line masked from its arrival
        /// until Linux's `IRQ_EOI`. Each returns 0, or u64::MAX for a line it does not give Linux
        /// (no IO-APIC pin, or the co-kernel's own).
        pub const IRQ_MASK: u32 = 3;
        /// RSI = ISA IRQ 0..15 (minor 2): Linux takes the line; the co-kernel unmasks its IO-APIC
        /// input unless a level-triggered interrupt on it still waits for Linux's
        /// [`IRQ_EOI`]. Returns as [`IRQ_MASK`] does.
        pub const IRQ_UNMASK: u32 = 4;
        /// RSI = ISA IRQ 0..15 (minor 2): Linux finished handling an interrupt of the line; a
        /// level-triggered line's input, masked since the interrupt arrived, is unmasked again
        /// unless Linux masked the line. Returns as [`IRQ_MASK`] does.
        pub const IRQ_EOI: u32 = 5;
        /// Deliver pending events now (the virtual flag was just turned on).
        pub const REPLAY: u32 = 6;
        /// Linux stops (minor 2): RSI = one of the `SHUTDOWN_*` reasons. Never returns: the
        /// co-kernel restarts Linux or halts it, as configured, while its tasks run on.
        pub const SHUTDOWN: u32 = 7;
        /// Linux powered itself off.
        pub const SHUTDOWN_OFF: u32 = 0;
        /// Linux reboots (`reboot`, or `panic=-1` restarting).
        pub const SHUTDOWN_REBOOT: u32 = 1;
        /// Linux panicked.
        pub const SHUTDOWN_PANIC: u32 = 2;
        /// Linux's vCPU block moved (per-CPU areas): RSI = new physical address.
        pub const REGISTER_VCPU: u32 = 8;
        /// Rings the doorbell of channel RSI (its index in the channel directory, minor 3): the
        /// co-kernel posts an event to the port of the task that serves the channel. Refused
        /// (counted) for an index with no channel.
        pub const CHANNEL_NOTIFY: u32 = 9;
        /// Binds PCI line RSI bits 0–7 (a GSI 16..23, minor 4) to Linux's vector RSI bits 8–15,
        /// level-triggered if bit 16 is set, active low if bit 17 is set; vector 0 unbinds it
        /// (masked). The co-kernel programs the IO-APIC input masked; Linux then drives it with
        /// the line calls as an ISA line. Refused (u64::MAX, counted) for a line outside 16..23,
        /// one with no IO-APIC input, a vector outside 0x20..=0xeb, an ISA vector, the
        /// co-kernel's, or one another line has.
        pub const GSI_BIND: u32 = 10;
        /// [`GSI_BIND`] argument bit: level-triggered.
        pub const GSI_BIND_LEVEL: u64 = 1 << 16;
        /// [`GSI_BIND`] argument bit: active low.
        pub const GSI_BIND_ACTIVE_LOW: u64 = 1 << 17;
        /// RSI = a local APIC ID (minor 5): the virtual address (shared range) of that CPU's vCPU
        /// block, which Linux makes that CPU's before it starts it with [`CPU_START`] (the boot
        /// CPU's is [`super::Handoff::vcpu_virt`]). Refused (u64::MAX, counted) for a CPU that is
        /// not one of Linux's (the MADT the co-kernel gives Linux lists exactly those).
        pub const VCPU_OF: u32 = 11;
        /// Starts one of Linux's secondary CPUs (minor 5): RSI bits 0–31 = its local APIC ID,
        /// bits 32–63 = the physical address to start at, below 1 MiB (Linux's
        /// `trampoline_start64`). The co-kernel enters Linux on that CPU there as its idle task:
        /// 64-bit mode, interrupts off, CS = 0x10, a page table that identity-maps the low 4 GiB
        /// and maps the co-kernel's range. Returns 0 once the CPU was asked (Linux then waits for
        /// it to come up as after any wake-up). Refused (u64::MAX, counted) for a CPU that is not
        /// Linux's, one Linux already runs on, or an address at or above 1 MiB.
        pub const CPU_START: u32 = 12;
    }

    /// The handoff page (one per boot). All fields little-endian, fixed width. The co-kernel
    /// writes it once, before it first enters Linux, and never changes it afterwards (a restarted
    /// Linux gets the same page again); Linux only reads it.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Handoff {
        /// [`MAGIC`]; anything else means this is not a Hauki handoff.
        /* 0x00 */
        pub magic: u64,
        /// [`VERSION_MAJOR`] of the writer; the reader refuses another major.
        /* 0x08 */
        pub version_major: u16,
        /// [`VERSION_MINOR`] of the writer; fields and calls marked "minor n" exist from n on.
        /* 0x0a */
        pub version_minor: u16,
        /// Bytes of this structure as the writer knows it (at least `size_of::<Handoff>()`).
        /* 0x0c */
        pub size: u32,
        /// Bytes of one [`Vcpu`] block (`size_of::<Vcpu>()`, 0x80).
        /* 0x10 */
        pub vcpu_size: u32,
        /// Linux's CPUs (at most [`MAX_VCPUS`]), each with a vCPU block: the boot CPU's at
        /// [`Handoff::vcpu_phys`], the others' from [`call::VCPU_OF`] (minor 5; before, one).
        /* 0x14 */
        pub nr_vcpus: u32,
        /// `FEATURE_*` bits: what the CPU offers that Linux may rely on.
        /* 0x18 */
        pub features: u64,
        /// The TSC rate the co-kernel calibrated, in kHz (Linux's TSC clocksource uses it instead
        /// of calibrating again).
        /* 0x20 */
        pub tsc_khz: u64,
        /// Physical address of the first vCPU block.
        /* 0x28 */
        pub vcpu_phys: u64,
        /// Virtual address (in the co-kernel's shared range) Linux calls with RDI = a
        /// [`call`] number and RSI = its argument; the result comes back in RAX.
        /* 0x30 */
        pub call_gate: u64,
        /// Lowest physical address of the memory the co-kernel withholds from Linux (its image,
        /// pool and boot information, and the boot modules it keeps for restarts). Those ranges
        /// are reserved in Linux's e820 map; this and `cokernel_phys_end` are their hull.
        /* 0x38 */
        pub cokernel_phys_start: u64,
        /// One past the highest physical address the co-kernel keeps for itself.
        /* 0x40 */
        pub cokernel_phys_end: u64,
        /// [`VECTOR_UPCALL`].
        /* 0x48 */
        pub upcall_vector: u8,
        /// [`VECTOR_LINUX_TIMER`].
        /* 0x49 */
        pub linux_timer_vector: u8,
        /// The vectors Linux must leave alone besides the two above: the co-kernel's timer,
        /// wake-up and kernel-call vectors, then zeros.
        /* 0x4a */
        pub reserved_vectors: [u8; 6],
        /// The co-kernel's top-level page-table entries for PML4 slots
        /// [`FIRST_PGD_SLOT`]`..+`[`PGD_SLOTS`]; every entry points at a table the co-kernel
        /// owns, so mappings it adds later show in Linux's page tables too.
        /* 0x50 */
        pub pgd: [u64; PGD_SLOTS],
        /// Virtual address (in the co-kernel's shared range) of the vCPU blocks (minor 1).
        /* 0xd0 */
        pub vcpu_virt: u64,
        /// Virtual address (shared range) of the co-kernel's [`Status`] page (minor 2; 0: none).
        /* 0xd8 */
        pub status_virt: u64,
        /// Virtual address (shared range) of the channel region, which starts with a
        /// [`super::channel::Directory`] (minor 3; 0: no channels).
        /* 0xe0 */
        pub channels_virt: u64,
        /// Bytes of the channel region (minor 3): every ring lies inside it.
        /* 0xe8 */
        pub channels_size: u64,
        /// Virtual address (shared range) of the [`super::devices::Claimed`] table: the devices
        /// real-time tasks own, which Linux must not see (minor 3; 0: none).
        /* 0xf0 */
        pub claimed_virt: u64,
        /// Zero; room for fields of later minor versions.
        /* 0xf8 */
        pub reserved: [u64; 1],
    }

    /// Bytes of text a [`Status`] page holds.
    pub const STATUS_TEXT: usize = 4096 - 16;

    /// The co-kernel's state as text for Linux to show (debugfs `hauki/status`, and `/proc/hauki/status`), rewritten by the
    /// co-kernel once per report period. A seqlock: `seq` is odd while the co-kernel writes;
    /// a reader copies `len` bytes of `text` and retries if `seq` was odd or changed meanwhile.
    #[repr(C, align(4096))]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Status {
        /// The seqlock's sequence: odd while the co-kernel rewrites the page, bumped by 2 per
        /// rewrite.
        /* 0x00 */
        pub seq: u64,
        /// Bytes of `text` in use (at most [`STATUS_TEXT`]).
        /* 0x08 */
        pub len: u32,
        /// Zero.
        /* 0x0c */
        pub reserved: u32,
        /// UTF-8 text, lines ending in `\n`, not NUL-terminated.
        /* 0x10 */
        pub text: [u8; STATUS_TEXT],
    }

    /// One virtual CPU of Linux: its soft interrupt flag, the events logged for it, its IDT.
    ///
    /// Shared memory on the one CPU both kernels run on: Linux writes `mask`; the co-kernel
    /// writes `pending_any` and `timer_deadline`, with interrupts off. Neither side trusts what
    /// the other wrote beyond the byte it reads.
    #[repr(C, align(64))]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Vcpu {
        /// Linux's virtual interrupt flag: [`MASK_ENABLED`] or [`MASK_DISABLED`] (written by
        /// Linux's `local_irq_*`; read by the co-kernel at every event for Linux).
        /* 0x00 */
        pub mask: u8,
        /// Non-zero while the co-kernel holds events logged for Linux; Linux reads it when it
        /// turns its flag on and then raises [`VECTOR_UPCALL`].
        /* 0x01 */
        pub pending_any: u8,
        /// Zero (alignment).
        /* 0x02 */
        pub pad0: [u8; 6],
        /// A bitmap of vectors (bit `v % 64` of word `v / 64`) for the logged events. The
        /// co-kernel keeps the bitmap it acts on in its own memory and leaves this zero.
        /* 0x08 */
        pub pending: [u64; 4],
        /// Base of the IDT Linux registered. The co-kernel keeps the registered IDT in its own
        /// memory and leaves this zero.
        /* 0x28 */
        pub idt_base: u64,
        /// Limit of the IDT Linux registered (kept by the co-kernel as `idt_base` is; zero).
        /* 0x30 */
        pub idt_limit: u16,
        /// Zero (alignment).
        /* 0x32 */
        pub pad1: [u8; 6],
        /// Linux's armed clock-event deadline (absolute TSC; `u64::MAX`: none), as the co-kernel
        /// holds it: set by [`call::SET_TIMER`], back to `u64::MAX` when it fires.
        /* 0x38 */
        pub timer_deadline: u64,
        /// Counter slot for events delivered to Linux at once; the co-kernel reports its
        /// counters on COM2 and leaves this zero.
        /* 0x40 */
        pub forwarded: u64,
        /// Counter slot for events logged and replayed later (zero, as `forwarded`).
        /* 0x48 */
        pub replayed: u64,
        /// Counter slot for upcalls (zero, as `forwarded`).
        /* 0x50 */
        pub upcalls: u64,
        /// Slot for the longest hardware-interrupts-off window in TSC ticks (zero: the co-kernel
        /// measures those windows itself, from late timer interrupts).
        /* 0x58 */
        pub hard_cli_max_tsc: u64,
        /// Zero; room for fields of later minor versions.
        /* 0x60 */
        pub reserved: [u64; 4],
    }

    const _: () = {
        assert!(size_of::<Handoff>() == 0x100);
        assert!(align_of::<Handoff>() == 8);
        assert!(offset_of!(Handoff, version_major) == 0x08);
        assert!(offset_of!(Handoff, size) == 0x0c);
        assert!(offset_of!(Handoff, features) == 0x18);
        assert!(offset_of!(Handoff, vcpu_phys) == 0x28);
        assert!(offset_of!(Handoff, call_gate) == 0x30);
        assert!(offset_of!(Handoff, upcall_vector) == 0x48);
        assert!(offset_of!(Handoff, pgd) == 0x50);
        assert!(offset_of!(Handoff, vcpu_virt) == 0xd0);
        assert!(offset_of!(Handoff, status_virt) == 0xd8);
        assert!(offset_of!(Handoff, channels_virt) == 0xe0);
        assert!(offset_of!(Handoff, claimed_virt) == 0xf0);
        assert!(offset_of!(Handoff, reserved) == 0xf8);
        assert!(size_of::<Status>() == 4096);
        assert!(offset_of!(Status, text) == 0x10);
        assert!(size_of::<Vcpu>() == 0x80);
        assert!(align_of::<Vcpu>() == 64);
        assert!(offset_of!(Vcpu, pending) == 0x08);
        assert!(offset_of!(Vcpu, idt_base) == 0x28);
        assert!(offset_of!(Vcpu, idt_limit) == 0x30);
        assert!(offset_of!(Vcpu, timer_deadline) == 0x38);
        assert!(offset_of!(Vcpu, forwarded) == 0x40);
        assert!(offset_of!(Vcpu, reserved) == 0x60);
    };

    /// Why a handoff was refused.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum AbiError {
        /// `magic` is not [`MAGIC`] (the value found).
        BadMagic(u64),
        /// `version_major` is not this side's [`VERSION_MAJOR`].
        MajorMismatch {
            /// The handoff's major version.
            found: u16,
            /// This side's.
            expected: u16,
        },
        /// `size` is smaller than this side's [`Handoff`].
        TooSmall {
            /// The handoff's `size`.
            size: u32,
            /// `size_of::<Handoff>()` on this side.
            expected: u32,
        },
        /// `vcpu_size` is not this side's `size_of::<Vcpu>()`.
        VcpuSize {
            /// The handoff's `vcpu_size`.
            found: u32,
            /// `size_of::<Vcpu>()` on this side.
            expected: u32,
        },
        /// `nr_vcpus` is above [`MAX_VCPUS`] (the value found).
        TooManyVcpus(u32),
    }

    impl core::fmt::Display for AbiError {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match *self {
                AbiError::BadMagic(m) => write!(f, "handoff magic is {m:#018x}, not \"HAUKIABI\" ({MAGIC:#018x})"),
                AbiError::MajorMismatch { found, expected } => write!(
                    f,
                    "ABI major version {found} is not the {expected} this side speaks; build the co-kernel and the Linux patch series from the same tree"
                ),
                AbiError::TooSmall { size, expected } => {
                    write!(f, "handoff is {size} bytes, the ABI needs at least {expected}")
                }
                AbiError::VcpuSize { found, expected } => {
                    write!(f, "vCPU block is {found} bytes, the ABI says {expected}")
                }
                AbiError::TooManyVcpus(n) => write!(f, "{n} vCPUs, at most {MAX_VCPUS}"),
            }
        }
    }

    impl Handoff {
        /// A handoff of this ABI version with everything else zero.
        pub const fn new() -> Handoff {
            Handoff {
                magic: MAGIC,
                version_major: VERSION_MAJOR,
                version_minor: VERSION_MINOR,
                size: size_of::<Handoff>() as u32,
                vcpu_size: size_of::<Vcpu>() as u32,
                nr_vcpus: 0,
                features: 0,
                tsc_khz: 0,
                vcpu_phys: 0,
                call_gate: 0,
                cokernel_phys_start: 0,
                cokernel_phys_end: 0,
                upcall_vector: VECTOR_UPCALL,
                linux_timer_vector: VECTOR_LINUX_TIMER,
                reserved_vectors: [
                    VECTOR_COKERNEL_TIMER,
                    VECTOR_COKERNEL_WAKEUP,
                    VECTOR_COKERNEL_KCALL,
                    VECTOR_COKERNEL_DEVICE,
                    0,
                    0,
                ],
                pgd: [0; PGD_SLOTS],
                vcpu_virt: 0,
                status_virt: 0,
                channels_virt: 0,
                channels_size: 0,
                claimed_virt: 0,
                reserved: [0; 1],
            }
        }

        /// What the receiving side checks before it trusts anything else in the page.
        pub fn check(&self) -> Result<(), AbiError> {
            if self.magic != MAGIC {
                return Err(AbiError::BadMagic(self.magic));
            }
            if self.version_major != VERSION_MAJOR {
                return Err(AbiError::MajorMismatch { found: self.version_major, expected: VERSION_MAJOR });
            }
            if (self.size as usize) < size_of::<Handoff>() {
                return Err(AbiError::TooSmall { size: self.size, expected: size_of::<Handoff>() as u32 });
            }
            if self.vcpu_size as usize != size_of::<Vcpu>() {
                return Err(AbiError::VcpuSize { found: self.vcpu_size, expected: size_of::<Vcpu>() as u32 });
            }
            if self.nr_vcpus > MAX_VCPUS {
                return Err(AbiError::TooManyVcpus(self.nr_vcpus));
            }
            Ok(())
        }
    }

    impl Default for Handoff {
        fn default() -> Self {
            Self::new()
        }
    }

    /// A C type for the header generator: the kernel's fixed-width unsigned integer types.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum CType {
        /// `u8`, 1 byte.
        U8,
        /// `u16`, 2 bytes.
        U16,
        /// `u32`, 4 bytes.
        U32,
        /// `u64`, 8 bytes.
        U64,
    }

    /// One field: name, element type, array length (1 = scalar), offset.
    #[derive(Clone, Copy, Debug)]
    pub struct Field {
        /// The field's name, the same in Rust and C.
        pub name: &'static str,
        /// Its element type.
        pub ty: CType,
        /// Elements (1: a scalar, more: an array).
        pub len: usize,
        /// Byte offset from the start of the struct (`offset_of!`).
        pub offset: usize,
    }

    /// One struct: C name, size, alignment, fields in order.
    #[derive(Clone, Copy, Debug)]
    pub struct Struct {
        /// The C struct's tag (`struct <c_name>`).
        pub c_name: &'static str,
        /// `size_of` the Rust type, asserted in C too.
        pub size: usize,
        /// `align_of` the Rust type (`__aligned()` in C).
        pub align: usize,
        /// Every field in offset order; together they cover every byte (tested).
        pub fields: &'static [Field],
    }

    macro_rules! f {
        ($s:ty, $name:ident, $ty:ident, $len:expr) => {
            Field { name: stringify!($name), ty: CType::$ty, len: $len, offset: offset_of!($s, $name) }
        };
    }

    /// The layouts the C header is generated from (checked against the Rust types in tests).
    pub const LAYOUT: &[Struct] = &[
        Struct {
            c_name: "hauki_handoff",
            size: size_of::<Handoff>(),
            align: align_of::<Handoff>(),
            fields: &[
                f!(Handoff, magic, U64, 1),
                f!(Handoff, version_major, U16, 1),
                f!(Handoff, version_minor, U16, 1),
                f!(Handoff, size, U32, 1),
                f!(Handoff, vcpu_size, U32, 1),
                f!(Handoff, nr_vcpus, U32, 1),
                f!(Handoff, features, U64, 1),
                f!(Handoff, tsc_khz, U64, 1),
                f!(Handoff, vcpu_phys, U64, 1),
                f!(Handoff, call_gate, U64, 1),
                f!(Handoff, cokernel_phys_start, U64, 1),
                f!(Handoff, cokernel_phys_end, U64, 1),
                f!(Handoff, upcall_vector, U8, 1),
                f!(Handoff, linux_timer_vector, U8, 1),
                f!(Handoff, reserved_vectors, U8, 6),
                f!(Handoff, pgd, U64, PGD_SLOTS),
                f!(Handoff, vcpu_virt, U64, 1),
                f!(Handoff, status_virt, U64, 1),
                f!(Handoff, channels_virt, U64, 1),
                f!(Handoff, channels_size, U64, 1),
                f!(Handoff, claimed_virt, U64, 1),
                f!(Handoff, reserved, U64, 1),
            ],
        },
        Struct {
            c_name: "hauki_status",
            size: size_of::<Status>(),
            align: align_of::<Status>(),
            fields: &[
                f!(Status, seq, U64, 1),
                f!(Status, len, U32, 1),
                f!(Status, reserved, U32, 1),
                f!(Status, text, U8, STATUS_TEXT),
            ],
        },
        Struct {
            c_name: "hauki_vcpu",
            size: size_of::<Vcpu>(),
            align: align_of::<Vcpu>(),
            fields: &[
                f!(Vcpu, mask, U8, 1),
                f!(Vcpu, pending_any, U8, 1),
                f!(Vcpu, pad0, U8, 6),
                f!(Vcpu, pending, U64, 4),
                f!(Vcpu, idt_base, U64, 1),
                f!(Vcpu, idt_limit, U16, 1),
                f!(Vcpu, pad1, U8, 6),
                f!(Vcpu, timer_deadline, U64, 1),
                f!(Vcpu, forwarded, U64, 1),
                f!(Vcpu, replayed, U64, 1),
                f!(Vcpu, upcalls, U64, 1),
                f!(Vcpu, hard_cli_max_tsc, U64, 1),
                f!(Vcpu, reserved, U64, 4),
            ],
        },
        Struct {
            c_name: "hauki_claimed",
            size: size_of::<super::devices::Claimed>(),
            align: align_of::<super::devices::Claimed>(),
            fields: &[
                f!(super::devices::Claimed, count, U32, 1),
                f!(super::devices::Claimed, isa_lines, U32, 1),
                f!(super::devices::Claimed, pci, U32, super::devices::MAX_PCI),
                f!(super::devices::Claimed, reserved, U64, 7),
            ],
        },
        Struct {
            c_name: "hauki_channel_desc",
            size: size_of::<Desc>(),
            align: align_of::<Desc>(),
            fields: &[
                f!(Desc, name, U8, channel::NAME_LEN),
                f!(Desc, kind, U8, 1),
                f!(Desc, policy, U8, 1),
                f!(Desc, pad, U8, 2),
                f!(Desc, record_size, U32, 1),
                f!(Desc, slots, U32, 1),
                f!(Desc, slot_size, U32, 1),
                f!(Desc, to_linux, U64, 1),
                f!(Desc, from_linux, U64, 1),
                f!(Desc, reserved, U64, 8),
            ],
        },
        Struct {
            c_name: "hauki_channel_state",
            size: size_of::<State>(),
            align: align_of::<State>(),
            fields: &[
                f!(State, rt_state, U32, 1),
                f!(State, linux_state, U32, 1),
                f!(State, sent, U64, 1),
                f!(State, received, U64, 1),
                f!(State, full, U64, 1),
                f!(State, refused, U64, 1),
                f!(State, reserved, U64, 3),
            ],
        },
        Struct {
            c_name: "hauki_channel_ring",
            size: size_of::<Ring>(),
            align: align_of::<Ring>(),
            fields: &[f!(Ring, head, U32, 1), f!(Ring, pad0, U32, 15), f!(Ring, tail, U32, 1), f!(Ring, pad1, U32, 15)],
        },
    ];

    /// Constants exported to C as `#define HAUKI_<NAME> <value>`.
    pub const CONSTANTS: &[(&str, u64)] = &[
        ("ABI_MAGIC", MAGIC),
        ("ABI_VERSION_MAJOR", VERSION_MAJOR as u64),
        ("ABI_VERSION_MINOR", VERSION_MINOR as u64),
        ("SUBARCH", SUBARCH_HAUKI as u64),
        ("FIRST_PGD_SLOT", FIRST_PGD_SLOT as u64),
        ("PGD_SLOTS", PGD_SLOTS as u64),
        ("MAX_VCPUS", MAX_VCPUS as u64),
        ("VECTOR_UPCALL", VECTOR_UPCALL as u64),
        ("VECTOR_LINUX_TIMER", VECTOR_LINUX_TIMER as u64),
        ("VECTOR_LINUX_CHANNEL", VECTOR_LINUX_CHANNEL as u64),
        ("VECTOR_COKERNEL_TIMER", VECTOR_COKERNEL_TIMER as u64),
        ("VECTOR_COKERNEL_WAKEUP", VECTOR_COKERNEL_WAKEUP as u64),
        ("VECTOR_COKERNEL_KCALL", VECTOR_COKERNEL_KCALL as u64),
        ("VECTOR_COKERNEL_DEVICE", VECTOR_COKERNEL_DEVICE as u64),
        ("ISA_VECTOR_BASE", ISA_VECTOR_BASE as u64),
        ("ISA_LINES", ISA_LINES as u64),
        ("LINES", LINES as u64),
        ("STATUS_TEXT", STATUS_TEXT as u64),
        ("TELEMETRY_PORT", super::serial::TELEMETRY_PORT as u64),
        ("TELEMETRY_IRQ", TELEMETRY_IRQ as u64),
        ("VCPU_MASK", offset_of!(Vcpu, mask) as u64),
        ("VCPU_PENDING_ANY", offset_of!(Vcpu, pending_any) as u64),
        ("FEATURE_X2APIC", FEATURE_X2APIC),
        ("FEATURE_TSC_DEADLINE", FEATURE_TSC_DEADLINE),
        ("FEATURE_INVARIANT_TSC", FEATURE_INVARIANT_TSC),
        ("CALL_LOAD_IDT", call::LOAD_IDT as u64),
        ("CALL_SET_TIMER", call::SET_TIMER as u64),
        ("CALL_IRQ_MASK", call::IRQ_MASK as u64),
        ("CALL_IRQ_UNMASK", call::IRQ_UNMASK as u64),
        ("CALL_IRQ_EOI", call::IRQ_EOI as u64),
        ("CALL_REPLAY", call::REPLAY as u64),
        ("CALL_SHUTDOWN", call::SHUTDOWN as u64),
        ("SHUTDOWN_OFF", call::SHUTDOWN_OFF as u64),
        ("SHUTDOWN_REBOOT", call::SHUTDOWN_REBOOT as u64),
        ("SHUTDOWN_PANIC", call::SHUTDOWN_PANIC as u64),
        ("CALL_REGISTER_VCPU", call::REGISTER_VCPU as u64),
        ("CALL_CHANNEL_NOTIFY", call::CHANNEL_NOTIFY as u64),
        ("CALL_GSI_BIND", call::GSI_BIND as u64),
        ("CALL_VCPU_OF", call::VCPU_OF as u64),
        ("CALL_CPU_START", call::CPU_START as u64),
        ("GSI_BIND_LEVEL", call::GSI_BIND_LEVEL),
        ("GSI_BIND_ACTIVE_LOW", call::GSI_BIND_ACTIVE_LOW),
        ("CLAIMED_MAX_PCI", super::devices::MAX_PCI as u64),
        ("CHANNEL_MAGIC", channel::MAGIC),
        ("CHANNEL_MAX", channel::MAX_CHANNELS as u64),
        ("CHANNEL_NAME_LEN", channel::NAME_LEN as u64),
        ("CHANNEL_SLOT_HEADER", channel::SLOT_HEADER as u64),
        ("CHANNEL_KIND_MESSAGE", channel::KIND_MESSAGE as u64),
        ("CHANNEL_KIND_STREAM", channel::KIND_STREAM as u64),
        ("CHANNEL_POLICY_REFUSE", channel::POLICY_REFUSE as u64),
        ("CHANNEL_POLICY_DROP", channel::POLICY_DROP as u64),
        ("CHANNEL_RT_ABSENT", channel::RT_ABSENT as u64),
        ("CHANNEL_RT_READY", channel::RT_READY as u64),
        ("CHANNEL_DIR_COUNT", offset_of!(channel::Directory, count) as u64),
        ("CHANNEL_DIR_DESCS", offset_of!(channel::Directory, descs) as u64),
        ("CHANNEL_DIR_STATES", offset_of!(channel::Directory, states) as u64),
        ("CHANNEL_DIR_SIZE", size_of::<channel::Directory>() as u64),
    ];
}

/// Devices real-time tasks own (ABI minor 3): Linux must behave as if they were not there.
///
/// The co-kernel writes the [`Claimed`] table once, before Linux first runs. Linux's PCI
/// configuration accesses to a claimed function read as all-ones (no device) and writes are
/// dropped, so Linux never enumerates it, binds no driver to it and has no BAR of it to map; the
/// co-kernel refuses Linux's calls for a claimed ISA line.
pub mod devices {
    use core::mem::{offset_of, size_of};

    /// PCI functions a table names at most.
    pub const MAX_PCI: usize = 16;

    /// A PCI function's address in segment 0: `bus << 8 | device << 3 | function`.
    pub const fn bdf(bus: u8, device: u8, function: u8) -> u32 {
        (bus as u32) << 8 | ((device as u32) & 0x1f) << 3 | (function as u32) & 7
    }

    /// The devices real-time tasks own.
    #[repr(C, align(64))]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Claimed {
        /// Entries of `pci` in use (at most [`MAX_PCI`]).
        /* 0x00 */
        pub count: u32,
        /// ISA lines (bit `n`: line `n`) real-time tasks own.
        /* 0x04 */
        pub isa_lines: u32,
        /// Claimed PCI functions of segment 0, as [`bdf`] gives them.
        /* 0x08 */
        pub pci: [u32; MAX_PCI],
        /// Zero.
        /* 0x48 */
        pub reserved: [u64; 7],
    }

    const _: () = {
        assert!(size_of::<Claimed>() == 0x80);
        assert!(offset_of!(Claimed, pci) == 0x08);
    };
}

/// Channels between real-time tasks and Linux programs (ABI minor 3).
///
/// The co-kernel lays out one region in its shared range ([`guest::Handoff::channels_virt`],
/// `channels_size`): a [`Directory`] (two pages: a header, one [`Desc`] and one [`State`] per
/// channel), then the rings. Each channel has up to two single-producer/single-consumer
/// [`Ring`]s: `to_linux` (a real-time task produces, Linux consumes) and `from_linux` (Linux
/// produces, a real-time task consumes).
///
/// - **Message channels** carry records of at most `record_size` bytes. A ring has `slots` slots
///   (a power of two) of `slot_size` bytes: a `u32` length, a `u32` zero, then the payload.
///   `head` and `tail` count records (wrapping `u32`); slot `i % slots` holds record `i`.
/// - **Stream channels** carry bytes. A ring holds `slots` bytes (a power of two); `head` and
///   `tail` count bytes; byte `i` is at `i % slots`.
///
/// Who writes what: the co-kernel writes the directory's header and descriptors once, before
/// Linux first runs, and never reads them back; Linux writes only `head` of `from_linux` rings,
/// `tail` of `to_linux` rings, the slots of `from_linux` rings and [`State::linux_state`]. The
/// co-kernel checks every one of those before use (`head − tail` at most the ring's capacity, a
/// length at most `record_size`), counts what it refuses in [`State::refused`] and never follows
/// a value it has not checked. A producer publishes its slot before its `head` (release order);
/// a consumer reads `head` before the slot (acquire order).
///
/// Doorbells: Linux calls [`guest::call::CHANNEL_NOTIFY`] with the channel's index after it
/// produced or consumed; the co-kernel raises [`guest::VECTOR_LINUX_CHANNEL`] for Linux after a
/// real-time task did, or when a channel's `rt_state` changed.
pub mod channel {
    use core::mem::{align_of, offset_of, size_of};

    /// `"HKCHAN01"` little-endian: the first 8 bytes of the region.
    pub const MAGIC: u64 = u64::from_le_bytes(*b"HKCHAN01");
    /// Channels a directory describes at most.
    pub const MAX_CHANNELS: usize = 32;
    /// Bytes of a channel's name, NUL-padded (`[a-z0-9_-]`, 1 to 31 characters).
    pub const NAME_LEN: usize = 32;
    /// Bytes before a message slot's payload (its length and a zero word).
    pub const SLOT_HEADER: u32 = 8;

    /// A channel of records (one per `read`/`write` on Linux's side).
    pub const KIND_MESSAGE: u8 = 1;
    /// A channel of bytes.
    pub const KIND_STREAM: u8 = 2;

    /// When a real-time task sends into a full ring, the send is refused: the task sees
    /// `Full` and decides (counted in [`State::full`]).
    pub const POLICY_REFUSE: u8 = 1;
    /// When a real-time task sends into a full ring, the record is dropped and counted in
    /// [`State::full`]; the task sees success (for telemetry-like data where the newest record
    /// matters less than never stalling).
    pub const POLICY_DROP: u8 = 2;

    /// `rt_state`: no real-time task serves the channel (Linux's writes get `EPIPE`).
    pub const RT_ABSENT: u32 = 0;
    /// `rt_state`: a real-time task serves the channel.
    pub const RT_READY: u32 = 1;

    /// The region's first two pages. Written by the co-kernel except `states[i].linux_state`.
    #[repr(C, align(4096))]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Directory {
        /// [`MAGIC`].
        /* 0x0000 */
        pub magic: u64,
        /// Channels described (at most [`MAX_CHANNELS`]); `descs[count..]` are zero.
        /* 0x0008 */
        pub count: u32,
        /// `size_of::<Desc>()` (0x80).
        /* 0x000c */
        pub desc_size: u32,
        /// Bytes of the whole region (the same as the handoff's `channels_size`).
        /* 0x0010 */
        pub region_size: u64,
        /// Zero.
        /* 0x0018 */
        pub reserved: [u64; 5],
        /// One descriptor per channel.
        /* 0x0040 */
        pub descs: [Desc; MAX_CHANNELS],
        /// One state line per channel (the state table).
        /* 0x1040 */
        pub states: [State; MAX_CHANNELS],
        /// Zero (up to the end of the second page).
        /* 0x1840 */
        pub tail_pad: [u64; 248],
    }

    /// One channel's shape, written once by the co-kernel.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Desc {
        /// The channel's name, NUL-padded: Linux shows it as `/dev/hauki/<name>`.
        /* 0x00 */
        pub name: [u8; NAME_LEN],
        /// [`KIND_MESSAGE`] or [`KIND_STREAM`].
        /* 0x20 */
        pub kind: u8,
        /// [`POLICY_REFUSE`] or [`POLICY_DROP`]: what a real-time send into a full ring does.
        /* 0x21 */
        pub policy: u8,
        /// Zero.
        /* 0x22 */
        pub pad: [u8; 2],
        /// Message channels: the largest record in bytes. Stream channels: 0.
        /* 0x24 */
        pub record_size: u32,
        /// Message channels: slots per ring. Stream channels: bytes per ring. A power of two.
        /* 0x28 */
        pub slots: u32,
        /// Message channels: bytes per slot ([`SLOT_HEADER`] + `record_size`, rounded up to 8).
        /// Stream channels: 1.
        /* 0x2c */
        pub slot_size: u32,
        /// Offset of the real-time → Linux [`Ring`] from the region's start (0: none).
        /* 0x30 */
        pub to_linux: u64,
        /// Offset of the Linux → real-time [`Ring`] from the region's start (0: none).
        /* 0x38 */
        pub from_linux: u64,
        /// Zero.
        /* 0x40 */
        pub reserved: [u64; 8],
    }

    /// One channel's line in the state table: each side shows whether it is there, and the
    /// co-kernel's counters for it.
    #[repr(C, align(64))]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct State {
        /// [`RT_READY`] while a real-time task serves the channel, else [`RT_ABSENT`]
        /// (co-kernel writes).
        /* 0x00 */
        pub rt_state: u32,
        /// Non-zero while a Linux program has the channel open (Linux writes; the co-kernel only
        /// reports it).
        /* 0x04 */
        pub linux_state: u32,
        /// Records (bytes for streams) real-time tasks sent to Linux (co-kernel writes).
        /* 0x08 */
        pub sent: u64,
        /// Records (bytes) real-time tasks received from Linux (co-kernel writes).
        /* 0x10 */
        pub received: u64,
        /// Real-time sends that found the `to_linux` ring full: refused or dropped by the
        /// channel's policy (co-kernel writes).
        /* 0x18 */
        pub full: u64,
        /// Values Linux wrote that the co-kernel refused: an index out of range, a record longer
        /// than `record_size` (co-kernel writes).
        /* 0x20 */
        pub refused: u64,
        /// Zero.
        /* 0x28 */
        pub reserved: [u64; 3],
    }

    /// A ring's indices, each on its own cache line; the slots (or bytes) follow at offset
    /// `size_of::<Ring>()`.
    #[repr(C, align(64))]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Ring {
        /// Records (bytes) produced, wrapping: written by the producer only.
        /* 0x00 */
        pub head: u32,
        /// Zero.
        /* 0x04 */
        pub pad0: [u32; 15],
        /// Records (bytes) consumed, wrapping: written by the consumer only.
        /* 0x40 */
        pub tail: u32,
        /// Zero.
        /* 0x44 */
        pub pad1: [u32; 15],
    }

    /// Bytes of a message slot for records of at most `record_size` bytes.
    pub const fn slot_size(record_size: u32) -> u32 {
        (SLOT_HEADER + record_size).next_multiple_of(8)
    }

    const _: () = {
        assert!(size_of::<Directory>() == 0x2000);
        assert!(offset_of!(Directory, descs) == 0x40);
        assert!(offset_of!(Directory, states) == 0x1040);
        assert!(offset_of!(Directory, tail_pad) == 0x1840);
        assert!(size_of::<Desc>() == 0x80);
        assert!(offset_of!(Desc, kind) == 0x20);
        assert!(offset_of!(Desc, record_size) == 0x24);
        assert!(offset_of!(Desc, to_linux) == 0x30);
        assert!(size_of::<State>() == 0x40);
        assert!(align_of::<State>() == 64);
        assert!(offset_of!(State, refused) == 0x20);
        assert!(size_of::<Ring>() == 0x80);
        assert!(offset_of!(Ring, tail) == 0x40);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_status_matches_isa_debug_exit() {
        // QEMU exits with (value << 1) | 1; 0 and 1 stay free for QEMU's own meanings.
        assert_eq!(debug_exit::qemu_status(debug_exit::SUCCESS), 33);
        assert_eq!(debug_exit::qemu_status(debug_exit::FAILURE), 35);
        assert!(debug_exit::QEMU_DEVICE.contains("iobase=0xf4"));
        assert_eq!(debug_exit::PORT, 0xf4);
    }

    #[test]
    fn layout_table_covers_every_byte_of_each_struct() {
        for st in guest::LAYOUT {
            let mut at = 0;
            for f in st.fields {
                assert_eq!(f.offset, at, "{}.{} is not where the previous field ends", st.c_name, f.name);
                let el = match f.ty {
                    guest::CType::U8 => 1,
                    guest::CType::U16 => 2,
                    guest::CType::U32 => 4,
                    guest::CType::U64 => 8,
                };
                at += el * f.len;
            }
            assert_eq!(at, st.size, "{} fields do not add up to its size", st.c_name);
        }
    }

    #[test]
    fn handoff_check_refuses_each_kind_of_mismatch() {
        use guest::*;
        let good = Handoff::new();
        assert_eq!(good.check(), Ok(()));
        let mut h = good;
        h.magic = 0;
        assert!(matches!(h.check(), Err(AbiError::BadMagic(0))));
        let mut h = good;
        h.version_major = 2;
        assert_eq!(h.check(), Err(AbiError::MajorMismatch { found: 2, expected: 1 }));
        let mut h = good;
        h.version_minor = 9; // compatible
        assert_eq!(h.check(), Ok(()));
        let mut h = good;
        h.size = 16;
        assert!(matches!(h.check(), Err(AbiError::TooSmall { .. })));
        let mut h = good;
        h.vcpu_size = 64;
        assert!(matches!(h.check(), Err(AbiError::VcpuSize { .. })));
        let mut h = good;
        h.nr_vcpus = 65;
        assert!(matches!(h.check(), Err(AbiError::TooManyVcpus(65))));
        let msg = format!("{}", AbiError::MajorMismatch { found: 2, expected: 1 });
        assert!(msg.contains("major version 2"));
    }

    #[test]
    fn com_ports_are_the_pc_standard_ones() {
        assert_eq!((serial::CONSOLE_PORT, serial::TELEMETRY_PORT), (0x3f8, 0x2f8));
    }
}
