//! The hardware layer: the IDT, the memory protections, the interrupt controllers, the TSC and the
//! one-shot timer, and the frames external interrupts push.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::TestResult;
use super::rt::run_until;
use crate::arch::frame::TrapFrame;
use crate::arch::{self, apic, cpu, exceptions, idt, ioapic, mm, pic, timer, tsc};
use x86_64::structures::paging::PageTableFlags as F;

pub(super) fn idt_covers_all_vectors() -> TestResult {
    let idtr = x86_64::instructions::tables::sidt();
    ensure!(idtr.limit == 256 * 16 - 1, "IDT limit {:#x}, want {:#x}", idtr.limit, 256 * 16 - 1);
    Ok(())
}

pub(super) fn breakpoint_is_reported_and_resumes() -> TestResult {
    let before = idt::count(3);
    x86_64::instructions::interrupts::int3();
    ensure!(idt::count(3) == before + 1, "int3 was not taken exactly once");
    Ok(())
}

pub(super) fn text_is_not_writable() -> TestResult {
    let addr = text_is_not_writable as *const () as u64;
    ensure!(exceptions::probe_write(addr) == Err(14), "write to text at {addr:#x} did not page-fault");
    ensure!(exceptions::probe_read(addr).is_ok(), "text is not readable");
    Ok(())
}

static RODATA_RET: [u8; 1] = [0xc3];

pub(super) fn rodata_is_not_writable_or_executable() -> TestResult {
    let addr = RODATA_RET.as_ptr() as u64;
    let l = mm::image_layout();
    ensure!((l.rodata.0..l.rodata.1).contains(&addr), "probe byte {addr:#x} is not in .rodata");
    ensure!(exceptions::probe_write(addr) == Err(14), "write to rodata did not page-fault");
    // SAFETY: the byte is a `ret`, so executing it (if NX failed) returns straight back.
    ensure!(unsafe { exceptions::probe_exec(addr) } == Err(14), "rodata is executable");
    Ok(())
}

static mut DATA_RET: [u8; 1] = [0];

pub(super) fn data_is_not_executable() -> TestResult {
    let p = &raw mut DATA_RET;
    // SAFETY: a private static only this test touches.
    unsafe { (*p)[0] = 0xc3 };
    let addr = p as u64;
    // SAFETY: the byte is a `ret`.
    ensure!(unsafe { exceptions::probe_exec(addr) } == Err(14), "data at {addr:#x} is executable");
    let stack_byte = [0xc3u8; 1];
    // SAFETY: as above.
    let r = unsafe { exceptions::probe_exec(stack_byte.as_ptr() as u64) };
    ensure!(r == Err(14), "the stack is executable");
    Ok(())
}

extern "C" fn just_return() {}

pub(super) fn text_is_executable() -> TestResult {
    // SAFETY: a real function: executing it returns.
    ensure!(unsafe { exceptions::probe_exec(just_return as *const () as u64) }.is_ok(), "text is not executable");
    Ok(())
}

pub(super) fn boot_stack_guard_page_is_unmapped() -> TestResult {
    let g = mm::image_layout().boot_stack_guard;
    ensure!(exceptions::probe_read(g) == Err(14), "guard page {g:#x} is readable");
    ensure!(exceptions::probe_read(g + 4095) == Err(14), "end of guard page is readable");
    ensure!(exceptions::probe_read(g + 4096).is_ok(), "stack bottom is not mapped");
    ensure!(mm::describe_fault_address(g + 8).is_some_and(|h| h.contains("stack overflow")), "no overflow hint");
    Ok(())
}

pub(super) fn ist_stack_guard_pages_are_unmapped() -> TestResult {
    for slot in 0..4u64 {
        let base = mm::STACKS_BASE + slot * mm::STACK_STRIDE;
        ensure!(exceptions::probe_read(base) == Err(14), "guard of stack slot {slot} is readable");
        ensure!(exceptions::probe_write(base + 4096).is_ok(), "stack slot {slot} bottom not writable");
        ensure!(
            exceptions::probe_write(base + 4096 + mm::STACK_SIZE - 8).is_ok(),
            "stack slot {slot} top not writable"
        );
    }
    Ok(())
}

pub(super) fn null_page_and_identity_map_are_unmapped() -> TestResult {
    ensure!(exceptions::probe_read(0) == Err(14), "the null page is mapped");
    ensure!(exceptions::probe_read(mm::KERNEL_PHYS_BASE) == Err(14), "the boot identity map is still there");
    ensure!(exceptions::probe_read(mm::KERNEL_VIRT_BASE) == Err(14), "the boot alias of low memory is still there");
    Ok(())
}

pub(super) fn no_mapping_is_writable_and_executable() -> TestResult {
    let mut leaves = 0u64;
    let mut bad: Option<u64> = None;
    mm::for_each_leaf(&mut |virt, _phys, _size, flags| {
        leaves += 1;
        if flags.contains(F::WRITABLE) && !flags.contains(F::NO_EXECUTE) && bad.is_none() {
            bad = Some(virt);
        }
    });
    ensure!(leaves > 0, "no leaves visited");
    ensure!(bad.is_none(), "writable and executable mapping at {:#x}", bad.unwrap_or(0));
    Ok(())
}

pub(super) fn heap_allocates_and_frees() -> TestResult {
    let mut v: Vec<u64> = Vec::new();
    for i in 0..50_000 {
        v.push(i);
    }
    ensure!(v.iter().sum::<u64>() == 50_000 * 49_999 / 2, "heap data corrupted");
    let b = Box::new([7u8; 4096]);
    ensure!(b.iter().all(|&x| x == 7), "box contents wrong");
    let addr = v.as_ptr() as u64;
    ensure!((mm::HEAP_BASE..mm::HEAP_BASE + mm::HEAP_SIZE).contains(&addr), "heap block {addr:#x} outside the heap");
    drop(v);
    drop(b);
    let again: Vec<u8> = Vec::with_capacity(mm::HEAP_SIZE as usize / 2);
    ensure!(again.capacity() >= mm::HEAP_SIZE as usize / 2, "freed memory not reusable");
    Ok(())
}

pub(super) fn frame_allocator_hands_out_unique_free_frames() -> TestResult {
    let (free_before, _) = mm::frame_counts();
    let image = mm::image_phys();
    let mut got: Vec<u64> = Vec::new();
    for _ in 0..64 {
        let f = mm::alloc_frame().ok_or_else(|| alloc::string::String::from("out of frames"))?;
        ensure!(f % 4096 == 0, "unaligned frame {f:#x}");
        ensure!(f >= 0x10_0000, "frame {f:#x} below 1 MiB");
        ensure!(!(image.start..image.end).contains(&f), "frame {f:#x} inside the co-kernel image");
        ensure!(!got.contains(&f), "frame {f:#x} handed out twice");
        // The frame is RAM in the direct map: write and read it back.
        let p = mm::phys_to_virt(f) as *mut u64;
        // SAFETY: a frame we own, mapped in the direct map.
        unsafe {
            p.write_volatile(f);
            ensure!(p.read_volatile() == f, "frame {f:#x} does not hold data");
        }
        got.push(f);
    }
    for f in got {
        mm::free_frame(f);
    }
    ensure!(mm::frame_counts().0 == free_before, "free count not restored");
    Ok(())
}

pub(super) fn legacy_pic_is_masked() -> TestResult {
    let (m, s) = pic::masks();
    ensure!((m, s) == (0xff, 0xff), "PIC masks {m:#x}/{s:#x}");
    Ok(())
}

pub(super) fn every_ioapic_pin_is_masked() -> TestResult {
    let all = ioapic::all();
    ensure!(!all.is_empty(), "no IO-APIC registered");
    for io in &all {
        ensure!(io.pins >= 16, "IO-APIC {} reports only {} pins", io.id, io.pins);
        for pin in 0..io.pins {
            ensure!(io.is_masked(pin), "IO-APIC {} pin {pin} is not masked", io.id);
        }
    }
    Ok(())
}

pub(super) fn apic_mode_matches_cpuid() -> TestResult {
    let r = crate::kmain::boot_report();
    let forced = crate::cmdline::get(&r.cmdline, hauki_abi::cmdline::APIC) == Some("xapic");
    let want = if r.cpu.x2apic && !forced { apic::Mode::X2Apic } else { apic::Mode::XApic };
    ensure!(apic::mode() == Some(want), "APIC mode {:?}, CPUID x2apic={}", apic::mode(), r.cpu.x2apic);
    ensure!(
        apic::id() == u32::from(r.cpu.initial_apic_id),
        "APIC ID {} != CPUID's {}",
        apic::id(),
        r.cpu.initial_apic_id
    );
    Ok(())
}

pub(super) fn tsc_frequency_is_plausible() -> TestResult {
    let hz = tsc::hz();
    ensure!((100_000_000..=10_000_000_000).contains(&hz), "TSC {hz} Hz is implausible");
    let a = cpu::rdtsc();
    let b = cpu::rdtsc();
    ensure!(b > a, "TSC not increasing");
    ensure!(timer::lapic_hz() > 1_000_000, "LAPIC timer {} Hz is implausible", timer::lapic_hz());
    Ok(())
}

/// Halts until the timer has fired (at most `spins` halts). The check runs with interrupts off and
/// `idle_once` is `sti; hlt`, so an expiry taken between the check and the halt still ends the
/// halt: with interrupts on during the check, it could be taken there and the halt then waited for
/// an interrupt that never came (a busy host's stall hit that window once).
fn wait_fired(before: u64, spins: u64) -> bool {
    for _ in 0..spins {
        x86_64::instructions::interrupts::disable();
        if timer::FIRED.load(Ordering::Relaxed) > before {
            x86_64::instructions::interrupts::enable();
            return true;
        }
        arch::idle_once();
    }
    timer::FIRED.load(Ordering::Relaxed) > before
}

pub(super) fn oneshot_timer_fires_once_not_early() -> TestResult {
    let before = timer::FIRED.load(Ordering::Relaxed);
    let deadline = cpu::rdtsc() + tsc::ns_to_ticks(200_000);
    timer::arm_at(deadline);
    ensure!(wait_fired(before, 1_000), "timer did not fire");
    let fired_at = timer::LAST_FIRE_TSC.load(Ordering::Relaxed);
    ensure!(fired_at >= deadline, "fired {} ticks early", deadline - fired_at);
    // No second expiry without re-arming (one-shot).
    let t = cpu::rdtsc() + tsc::ns_to_ticks(500_000);
    while cpu::rdtsc() < t {
        core::hint::spin_loop();
    }
    ensure!(timer::FIRED.load(Ordering::Relaxed) == before + 1, "timer fired more than once");
    arch::console::console_write(format_args!(
        "# timer: {} kind, fired {} ns after its deadline\n",
        timer::kind().name(),
        tsc::ticks_to_ns(fired_at - deadline)
    ));
    Ok(())
}

pub(super) fn timer_cancel_prevents_expiry() -> TestResult {
    // Armed and cancelled with interrupts off: however long the host stalls this CPU in between
    // (plain TCG's clocks follow the host), the expiry may reach the hardware but must not reach
    // the callback once `cancel` has returned. Then wait past the deadline, twice over.
    let before = timer::FIRED.load(Ordering::Relaxed);
    let deadline = x86_64::instructions::interrupts::without_interrupts(|| {
        let d = cpu::rdtsc() + tsc::ns_to_ticks(200_000);
        timer::arm_at(d);
        timer::cancel();
        d
    });
    let t = deadline + tsc::ns_to_ticks(400_000);
    while cpu::rdtsc() < t {
        core::hint::spin_loop();
    }
    ensure!(timer::FIRED.load(Ordering::Relaxed) == before, "cancelled timer fired");
    Ok(())
}

static SEEN_RFLAGS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(u64::MAX);

fn record_rflags(frame: &mut TrapFrame) {
    SEEN_RFLAGS.store(frame.rflags, Ordering::Relaxed);
}

/// An external interrupt's frame carries the RF of the interrupted code (clear: plain kernel code
/// between instructions), whatever the CPU or emulator pushed; Linux's handlers return to user
/// code with it (the sigreturn selftest checks RF in a SIGTRAP frame).
pub(super) fn external_interrupt_frames_carry_the_interrupted_rf() -> TestResult {
    const V: u8 = 0x42;
    idt::register(V, record_rflags);
    SEEN_RFLAGS.store(u64::MAX, Ordering::Relaxed);
    apic::send_ipi(apic::id(), u32::from(V));
    let came = run_until(50, || SEEN_RFLAGS.load(Ordering::Relaxed) != u64::MAX);
    let rflags = SEEN_RFLAGS.load(Ordering::Relaxed);
    ensure!(came, "the self-IPI never came");
    ensure!(
        rflags & (1 << 16) == 0,
        "the interrupt's frame has RF set (RFLAGS {rflags:#x}); quirk probed: {}",
        idt::interrupt_rf_quirk()
    );
    ensure!(rflags & (1 << 9) != 0, "the interrupted code had interrupts off? RFLAGS {rflags:#x}");
    Ok(())
}

static SEEN_0X27: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn count_0x27(_frame: &mut TrapFrame) {
    SEEN_0X27.fetch_add(1, Ordering::Relaxed);
}

/// Vectors 0x27 and 0x2f are the masked 8259's spurious IRQ 7 and 15, and also vectors Linux's
/// allocator gives MSIs (it starts at 0x21): an interrupt the local APIC delivers on one reaches
/// its handler and is acknowledged (a second one comes), and is not counted as spurious. Before
/// this, an NVMe disk beside a virtio one lost its interrupts under the co-kernel.
pub(super) fn an_apic_interrupt_on_a_pic_spurious_vector_is_delivered() -> TestResult {
    const V: u8 = 0x27;
    idt::register(V, count_0x27);
    let spurious = crate::kernel::counters::stray().spurious;
    for n in 1..=2 {
        apic::send_ipi(apic::id(), u32::from(V));
        ensure!(
            run_until(50, || SEEN_0X27.load(Ordering::Relaxed) >= n),
            "self-IPI {n} on {V:#x} never reached its handler"
        );
    }
    ensure!(crate::kernel::counters::stray().spurious == spurious, "a delivered interrupt was counted as spurious");
    Ok(())
}

/// An interrupt on a vector nobody handles, while Linux is not running, is acknowledged and counted
/// where telemetry reads it (`stray_irqs`), and the co-kernel goes on.
pub(super) fn an_interrupt_nobody_handles_is_counted_as_unexpected() -> TestResult {
    const V: u8 = 0x44;
    ensure!(!crate::guest::vcpu::active(), "Linux is running; the vector would be Linux's");
    let before = crate::kernel::counters::stray();
    apic::send_ipi(apic::id(), u32::from(V));
    let came = run_until(50, || crate::kernel::counters::stray().unexpected > before.unexpected);
    ensure!(came, "the self-IPI on vector {V:#x} was not counted as unexpected ({before:?} before)");
    ensure!(crate::kernel::counters::stray().spurious == before.spurious, "it was counted as spurious");
    // Acknowledged: a second one arrives too (an unacknowledged one would block its priority class).
    let once = crate::kernel::counters::stray().unexpected;
    apic::send_ipi(apic::id(), u32::from(V));
    ensure!(
        run_until(50, || crate::kernel::counters::stray().unexpected > once),
        "a second interrupt on the vector never came: the first was not acknowledged"
    );
    Ok(())
}

/// A PCI function is found by its address as by its IDs (QEMU's host bridge at 00:00.0), and a
/// claim of an address with nothing there, or that cannot be one, is refused naming it.
pub(super) fn pci_function_found_by_address_and_absent_ones_refused() -> TestResult {
    use crate::kernel::devices::{DeviceError, claim_pci_at};
    let host = arch::pci::at(0, 0, 0).ok_or("nothing answers at 00:00.0")?;
    let (vendor, device) = host.ids();
    ensure!(arch::pci::find(vendor, device) == Some(host), "find({vendor:04x}:{device:04x}) is not 00:00.0");
    ensure!(arch::pci::at(0, 32, 0).is_none() && arch::pci::at(0, 0, 8).is_none(), "an impossible address answered");
    for (bus, dev, func) in [(0, 32, 0), (0, 0, 8), (0xfe, 31, 7)] {
        let e = claim_pci_at(bus, dev, func, 1).map(|_| ()).unwrap_err();
        ensure!(e == DeviceError::AbsentAt { bus, dev, func }, "claim at {bus:02x}:{dev:02x}.{func}: {e}");
    }
    let e = claim_pci_at(0, 0, 0, 1).map(|_| ()).unwrap_err();
    ensure!(e == DeviceError::NoBar, "the host bridge (no memory BAR 0) was not refused as such: {e}");
    Ok(())
}

/// An ISA claim the machine cannot give is refused saying why: the platform's ports, the
/// co-kernel's UARTs, PCI configuration, line 0, the co-kernel's telemetry line, a line another
/// IRQ is routed onto (q35: IRQ 0 on GSI 2), ACPI's SCI (q35: 9).
pub(super) fn isa_claims_that_cannot_be_are_refused_naming_why() -> TestResult {
    use crate::kernel::devices::{DeviceError, claim_isa, ports_claimable};
    for (start, len) in
        [(0x60, 1), (0x3f8, 8), (0x3f0, 16), (0x2f8, 1), (0xcfc, 4), (0x3e8, 0), (0x3e8, 257), (0xfffc, 8)]
    {
        ensure!(!ports_claimable(start, len), "ports {start:#x}+{len} were claimable");
        let e = claim_isa(5, start, len, 1).map(|_| ()).unwrap_err();
        ensure!(e == DeviceError::PortsUnavailable { start, len }, "ports {start:#x}+{len}: {e}");
    }
    ensure!(ports_claimable(0x3e8, 8) && ports_claimable(0x300, 0xf8), "free ports were refused");
    ensure!(crate::guest::irqchip::sci() == Some(9), "q35's SCI is ISA IRQ 9, not {:?}", crate::guest::irqchip::sci());
    for (line, why) in [(0, "PIT"), (16, "1 to 15"), (3, "co-kernel"), (2, "routed onto"), (9, "system control")] {
        match claim_isa(line, 0x3e8, 8, 1).map(|_| ()) {
            Err(e @ DeviceError::LineUnavailable { .. }) => {
                let text = alloc::format!("{e}");
                ensure!(text.contains(why), "line {line}: {text}");
            }
            other => return Err(alloc::format!("line {line}: {other:?}, want LineUnavailable").into()),
        }
    }
    Ok(())
}
