//! In-kernel tests (feature `ktest`): run on the real machine state after boot, print KTAP version 1
//! on COM1, and end QEMU through `isa-debug-exit` (SUCCESS only if every test passed).
//!
//! These check what host tests cannot: that the live page tables really enforce W^X and guard
//! pages (through fault probes), that the interrupt hardware is in the state bring-up promised,
//! and that the one-shot timer really fires.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use crate::arch::{self, apic, cpu, exceptions, idt, ioapic, mm, pic, timer, tsc};
use x86_64::structures::paging::PageTableFlags as F;

type TestResult = Result<(), alloc::string::String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(alloc::format!($($fmt)+));
        }
    };
}

type Test = (&'static str, fn() -> TestResult);

const TESTS: &[Test] = &[
    ("idt_covers_all_vectors", idt_covers_all_vectors),
    ("breakpoint_is_reported_and_resumes", breakpoint_resumes),
    ("text_is_not_writable", text_not_writable),
    ("rodata_is_not_writable_or_executable", rodata_protected),
    ("data_is_not_executable", data_not_executable),
    ("text_is_executable", text_executable),
    ("boot_stack_guard_page_is_unmapped", boot_stack_guard),
    ("ist_stack_guard_pages_are_unmapped", ist_stack_guards),
    ("null_page_and_identity_map_are_unmapped", low_memory_unmapped),
    ("no_mapping_is_writable_and_executable", no_wx_anywhere),
    ("heap_allocates_and_frees", heap_works),
    ("frame_allocator_hands_out_unique_free_frames", frames_unique),
    ("legacy_pic_is_masked", pic_masked),
    ("every_ioapic_pin_is_masked", ioapic_masked),
    ("apic_mode_matches_cpuid", apic_mode_matches),
    ("tsc_frequency_is_plausible", tsc_plausible),
    ("oneshot_timer_fires_once_not_early", timer_fires),
    ("timer_cancel_prevents_expiry", timer_cancel),
    ("secondary_cpus_are_parked", secondaries_parked),
];

/// Runs every test; true if all passed.
pub fn run() -> bool {
    arch::console::console_write(format_args!("KTAP version 1\n1..{}\n", TESTS.len()));
    let mut failed = 0;
    for (i, (name, t)) in TESTS.iter().enumerate() {
        match t() {
            Ok(()) => arch::console::console_write(format_args!("ok {} {name}\n", i + 1)),
            Err(why) => {
                failed += 1;
                arch::console::console_write(format_args!("# {name}: {why}\nnot ok {} {name}\n", i + 1));
            }
        }
    }
    arch::console::console_write(format_args!("# {} passed, {failed} failed\n", TESTS.len() - failed));
    failed == 0
}

fn idt_covers_all_vectors() -> TestResult {
    let idtr = x86_64::instructions::tables::sidt();
    ensure!(idtr.limit == 256 * 16 - 1, "IDT limit {:#x}, want {:#x}", idtr.limit, 256 * 16 - 1);
    Ok(())
}

fn breakpoint_resumes() -> TestResult {
    let before = idt::count(3);
    x86_64::instructions::interrupts::int3();
    ensure!(idt::count(3) == before + 1, "int3 was not taken exactly once");
    Ok(())
}

fn text_not_writable() -> TestResult {
    let addr = text_not_writable as *const () as u64;
    ensure!(exceptions::probe_write(addr) == Err(14), "write to text at {addr:#x} did not page-fault");
    ensure!(exceptions::probe_read(addr).is_ok(), "text is not readable");
    Ok(())
}

static RODATA_RET: [u8; 1] = [0xc3];

fn rodata_protected() -> TestResult {
    let addr = RODATA_RET.as_ptr() as u64;
    let l = mm::image_layout();
    ensure!((l.rodata.0..l.rodata.1).contains(&addr), "probe byte {addr:#x} is not in .rodata");
    ensure!(exceptions::probe_write(addr) == Err(14), "write to rodata did not page-fault");
    // SAFETY: the byte is a `ret`, so executing it (if NX failed) returns straight back.
    ensure!(unsafe { exceptions::probe_exec(addr) } == Err(14), "rodata is executable");
    Ok(())
}

static mut DATA_RET: [u8; 1] = [0];

fn data_not_executable() -> TestResult {
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

fn text_executable() -> TestResult {
    // SAFETY: a real function: executing it returns.
    ensure!(unsafe { exceptions::probe_exec(just_return as *const () as u64) }.is_ok(), "text is not executable");
    Ok(())
}

fn boot_stack_guard() -> TestResult {
    let g = mm::image_layout().boot_stack_guard;
    ensure!(exceptions::probe_read(g) == Err(14), "guard page {g:#x} is readable");
    ensure!(exceptions::probe_read(g + 4095) == Err(14), "end of guard page is readable");
    ensure!(exceptions::probe_read(g + 4096).is_ok(), "stack bottom is not mapped");
    ensure!(mm::describe_fault_address(g + 8).is_some_and(|h| h.contains("stack overflow")), "no overflow hint");
    Ok(())
}

fn ist_stack_guards() -> TestResult {
    for slot in 0..3u64 {
        let base = mm::STACKS_BASE + slot * mm::STACK_STRIDE;
        ensure!(exceptions::probe_read(base) == Err(14), "guard of stack slot {slot} is readable");
        ensure!(exceptions::probe_write(base + 4096) .is_ok(), "stack slot {slot} bottom not writable");
        ensure!(exceptions::probe_write(base + 4096 + mm::STACK_SIZE - 8).is_ok(), "stack slot {slot} top not writable");
    }
    Ok(())
}

fn low_memory_unmapped() -> TestResult {
    ensure!(exceptions::probe_read(0) == Err(14), "the null page is mapped");
    ensure!(exceptions::probe_read(mm::KERNEL_PHYS_BASE) == Err(14), "the boot identity map is still there");
    ensure!(exceptions::probe_read(mm::KERNEL_VIRT_BASE) == Err(14), "the boot alias of low memory is still there");
    Ok(())
}

fn no_wx_anywhere() -> TestResult {
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

fn heap_works() -> TestResult {
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

fn frames_unique() -> TestResult {
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

fn pic_masked() -> TestResult {
    let (m, s) = pic::masks();
    ensure!((m, s) == (0xff, 0xff), "PIC masks {m:#x}/{s:#x}");
    Ok(())
}

fn ioapic_masked() -> TestResult {
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

fn apic_mode_matches() -> TestResult {
    let r = arch::boot_report();
    let forced = crate::cmdline::get(&r.cmdline, "hauki.apic") == Some("xapic");
    let want = if r.cpu.x2apic && !forced { apic::Mode::X2Apic } else { apic::Mode::XApic };
    ensure!(apic::mode() == Some(want), "APIC mode {:?}, CPUID x2apic={}", apic::mode(), r.cpu.x2apic);
    ensure!(apic::id() == u32::from(r.cpu.initial_apic_id), "APIC ID {} != CPUID's {}", apic::id(), r.cpu.initial_apic_id);
    Ok(())
}

fn tsc_plausible() -> TestResult {
    let hz = tsc::hz();
    ensure!((100_000_000..=10_000_000_000).contains(&hz), "TSC {hz} Hz is implausible");
    let a = cpu::rdtsc();
    let b = cpu::rdtsc();
    ensure!(b > a, "TSC not increasing");
    ensure!(timer::lapic_hz() > 1_000_000, "LAPIC timer {} Hz is implausible", timer::lapic_hz());
    Ok(())
}

fn wait_fired(before: u64, spins: u64) -> bool {
    for _ in 0..spins {
        if timer::FIRED.load(Ordering::Relaxed) > before {
            return true;
        }
        arch::idle_once();
    }
    false
}

fn timer_fires() -> TestResult {
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

fn timer_cancel() -> TestResult {
    let before = timer::FIRED.load(Ordering::Relaxed);
    timer::arm_at(cpu::rdtsc() + tsc::ns_to_ticks(100_000));
    timer::cancel();
    let t = cpu::rdtsc() + tsc::ns_to_ticks(400_000);
    while cpu::rdtsc() < t {
        core::hint::spin_loop();
    }
    ensure!(timer::FIRED.load(Ordering::Relaxed) == before, "cancelled timer fired");
    Ok(())
}

fn secondaries_parked() -> TestResult {
    let r = arch::boot_report();
    let listed = r.platform.cpus.iter().filter(|c| c.enabled || c.online_capable).count() as u32;
    ensure!(r.cpus.cpus == listed, "{} CPUs counted, MADT lists {listed}", r.cpus.cpus);
    ensure!(r.cpus.parked == listed - 1, "{} parked of {} secondaries", r.cpus.parked, listed - 1);
    arch::console::console_write(format_args!("# {} CPU(s), {} parked\n", r.cpus.cpus, r.cpus.parked));
    Ok(())
}
