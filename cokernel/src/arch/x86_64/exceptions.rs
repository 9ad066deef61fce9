//! CPU exceptions: a full report on COM2 instead of a triple fault.
//!
//! Every exception produces one `exception` telemetry record (vector, name, error code, RIP, CR2,
//! CR3, all registers, the faulting context and a frame-pointer backtrace) and human lines. #BP and
//! #DB resume; NMI is reported and resumes; everything else stops the CPU through `fatal`.
//! In-kernel tests use the probes (`probe_read/write/exec`): a fault at a probe resumes at the
//! probe's exit with the vector in RAX.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::frame::TrapFrame;
use super::{console, context, fatal};

const NAMES: [(&str, &str); 32] = [
    ("#DE", "divide-error"),
    ("#DB", "debug"),
    ("NMI", "non-maskable-interrupt"),
    ("#BP", "breakpoint"),
    ("#OF", "overflow"),
    ("#BR", "bound-range"),
    ("#UD", "invalid-opcode"),
    ("#NM", "device-not-available"),
    ("#DF", "double-fault"),
    ("#CSO", "coprocessor-segment-overrun"),
    ("#TS", "invalid-tss"),
    ("#NP", "segment-not-present"),
    ("#SS", "stack-segment-fault"),
    ("#GP", "general-protection"),
    ("#PF", "page-fault"),
    ("#15", "reserved-15"),
    ("#MF", "x87-floating-point"),
    ("#AC", "alignment-check"),
    ("#MC", "machine-check"),
    ("#XM", "simd-floating-point"),
    ("#VE", "virtualization"),
    ("#CP", "control-protection"),
    ("#22", "reserved-22"),
    ("#23", "reserved-23"),
    ("#24", "reserved-24"),
    ("#25", "reserved-25"),
    ("#26", "reserved-26"),
    ("#27", "reserved-27"),
    ("#HV", "hypervisor-injection"),
    ("#VC", "vmm-communication"),
    ("#SX", "security"),
    ("#31", "reserved-31"),
];

/// Exceptions taken, all vectors.
pub static TAKEN: AtomicU64 = AtomicU64::new(0);
/// Set while `probe_exec` runs, so an instruction-fetch fault can be recognised.
static EXEC_PROBE_ARMED: AtomicBool = AtomicBool::new(false);

unsafe extern "C" {
    fn hauki_probe_read(addr: u64) -> u64;
    fn hauki_probe_write(addr: u64) -> u64;
    fn hauki_probe_exec(addr: u64) -> u64;
    static hauki_probe_read_insn: u8;
    static hauki_probe_read_done: u8;
    static hauki_probe_write_insn: u8;
    static hauki_probe_write_done: u8;
}

/// Whether a byte at `addr` can be read: `Ok(())` or `Err(vector)`.
pub fn probe_read(addr: u64) -> Result<(), u8> {
    // SAFETY: the probe reads one byte; a fault there is caught by `fixup` and returned.
    let r = unsafe { hauki_probe_read(addr) };
    if r == 0 { Ok(()) } else { Err((r - 1) as u8) }
}

/// Whether the byte at `addr` can be written (it is rewritten with its own value).
pub fn probe_write(addr: u64) -> Result<(), u8> {
    // SAFETY: the probe writes back the value it read, so a writable byte is unchanged; a fault is
    // caught by `fixup`. Callers must not probe memory another CPU is writing.
    let r = unsafe { hauki_probe_write(addr) };
    if r == 0 { Ok(()) } else { Err((r - 1) as u8) }
}

/// Whether code at `addr` can be executed. `addr` must hold a `ret` (0xc3) if it is executable.
///
/// # Safety
/// If the page is executable, the byte at `addr` is executed: it must be a `ret`.
pub unsafe fn probe_exec(addr: u64) -> Result<(), u8> {
    EXEC_PROBE_ARMED.store(true, Ordering::SeqCst);
    // SAFETY: per this function's contract.
    let r = unsafe { hauki_probe_exec(addr) };
    EXEC_PROBE_ARMED.store(false, Ordering::SeqCst);
    if r == 0 { Ok(()) } else { Err((r - 1) as u8) }
}

/// A fault inside a probe: resume at the probe's exit with RAX = vector + 1.
fn fixup(f: &mut TrapFrame) -> bool {
    let (ri, rd, wi, wd) = (
        core::ptr::addr_of!(hauki_probe_read_insn) as u64,
        core::ptr::addr_of!(hauki_probe_read_done) as u64,
        core::ptr::addr_of!(hauki_probe_write_insn) as u64,
        core::ptr::addr_of!(hauki_probe_write_done) as u64,
    );
    if f.rip == ri {
        f.rip = rd;
    } else if f.rip == wi {
        f.rip = wd;
    } else if f.vector == 14 && f.error_code & 0x10 != 0 && EXEC_PROBE_ARMED.load(Ordering::SeqCst) {
        // Instruction fetch at the probed address: return to hauki_probe_exec as if `ret` ran.
        // SAFETY: the call in hauki_probe_exec pushed this return address on the faulting stack.
        f.rip = unsafe { *(f.rsp as *const u64) };
        f.rsp += 8;
    } else {
        return false;
    }
    f.rax = f.vector + 1;
    true
}

/// A CPU exception (vector < 32) taken in the co-kernel: a probe's fault resumes at the probe's
/// exit; #DB, NMI and #BP are reported and resume; any other is reported and stops the CPU.
pub fn handle(f: &mut TrapFrame) {
    TAKEN.fetch_add(1, Ordering::Relaxed);
    if fixup(f) {
        return;
    }
    let v = f.vector as usize;
    let resumable = matches!(v, 1..=3);
    report(f, !resumable);
    if !resumable {
        fatal::stop_after_report();
    }
}

fn report(f: &TrapFrame, fatal: bool) {
    let v = f.vector as usize;
    let (mnemonic, name) = NAMES[v];
    let cr2 = x86_64::registers::control::Cr2::read_raw();
    let cr3 = x86_64::registers::control::Cr3::read_raw().0.start_address().as_u64();
    let ctx = context::current();
    let hint = super::mm::describe_fault_address(if v == 14 { cr2 } else { f.rsp });
    let mut trace = [0u64; 16];
    let depth = backtrace(f.rbp, &mut trace);
    let regs = [
        ("rax", f.rax),
        ("rbx", f.rbx),
        ("rcx", f.rcx),
        ("rdx", f.rdx),
        ("rsi", f.rsi),
        ("rdi", f.rdi),
        ("rbp", f.rbp),
        ("rsp", f.rsp),
        ("r8", f.r8),
        ("r9", f.r9),
        ("r10", f.r10),
        ("r11", f.r11),
        ("r12", f.r12),
        ("r13", f.r13),
        ("r14", f.r14),
        ("r15", f.r15),
        ("rflags", f.rflags),
        ("cs", f.cs),
        ("ss", f.ss),
    ];
    // The co-kernel's CPU index, as every other record's `cpu`, and the hardware's name for it.
    let (cpu, apic_id) = (super::percpu::this(), super::apic::id());
    let emit = |r: &mut crate::telemetry::json::Record<'_, super::serial::Uart>| {
        r.u64("vector", f.vector)
            .str("mnemonic", mnemonic)
            .str("name", name)
            .u64("error_code", f.error_code)
            .hex("rip", f.rip)
            .hex("cr2", cr2)
            .hex("cr3", cr3)
            .str("context", ctx)
            .u64("cpl", f.cs & 3)
            .u64("cpu", cpu as u64)
            .u64("apic_id", u64::from(apic_id))
            .bool("fatal", fatal)
            .hex_map("regs", &regs)
            .hex_list("backtrace", &trace[..depth]);
        if let Some(h) = hint {
            r.str("hint", h);
        }
    };
    if fatal {
        console::record_forced("exception", emit);
    } else {
        console::record("exception", emit);
    }
    let line = |a: core::fmt::Arguments<'_>| console::line(a, fatal);
    line(format_args!(
        "exception {mnemonic} ({name}, vector {v}) in {ctx} on cpu {cpu} (APIC ID {apic_id}): error code {:#x}, rip {:#x}, cr2 {cr2:#x}{}{}",
        f.error_code,
        f.rip,
        if hint.is_some() { " — " } else { "" },
        hint.unwrap_or("")
    ));
    line(format_args!("  rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}", f.rax, f.rbx, f.rcx, f.rdx));
    line(format_args!("  rsi {:#018x} rdi {:#018x} rbp {:#018x} rsp {:#018x}", f.rsi, f.rdi, f.rbp, f.rsp));
    line(format_args!("  r8  {:#018x} r9  {:#018x} r10 {:#018x} r11 {:#018x}", f.r8, f.r9, f.r10, f.r11));
    line(format_args!("  r12 {:#018x} r13 {:#018x} r14 {:#018x} r15 {:#018x}", f.r12, f.r13, f.r14, f.r15));
    line(format_args!("  rflags {:#x} cs {:#x} ss {:#x} cr3 {cr3:#x}", f.rflags, f.cs, f.ss));
    if fatal {
        super::vga::fatal_screen(format_args!(
            "exception {mnemonic} ({name}) at rip {:#x}, cr2 {cr2:#x}, in {ctx}",
            f.rip
        ));
    }
}

/// Walks the frame-pointer chain from `rbp` while it stays inside mapped co-kernel stacks.
fn backtrace(mut rbp: u64, out: &mut [u64]) -> usize {
    let mut n = 0;
    while n < out.len() && rbp != 0 && rbp.is_multiple_of(8) && super::mm::is_stack_address(rbp, 16) {
        // SAFETY: rbp points into a mapped co-kernel stack (checked above), 16 bytes readable.
        let (next, ret) = unsafe { (*(rbp as *const u64), *((rbp + 8) as *const u64)) };
        out[n] = ret;
        n += 1;
        if next <= rbp {
            break;
        }
        rbp = next;
    }
    n
}
