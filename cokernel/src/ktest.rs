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

/// Why a test did not pass: it failed, or it does not apply on this machine (KTAP `# SKIP`).
enum Verdict {
    Fail(alloc::string::String),
    Skip(&'static str),
}

impl From<&str> for Verdict {
    fn from(s: &str) -> Verdict {
        Verdict::Fail(s.into())
    }
}

impl From<alloc::string::String> for Verdict {
    fn from(s: alloc::string::String) -> Verdict {
        Verdict::Fail(s)
    }
}

type TestResult = Result<(), Verdict>;

/// Whether the clock is instruction-counted (`hauki.ktest_clock=virtual`): only then is timing judged.
fn virtual_clock() -> bool {
    crate::cmdline::get(&arch::boot_report().cmdline, hauki_abi::cmdline::KTEST_CLOCK) == Some("virtual")
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(Verdict::Fail(alloc::format!($($fmt)+)));
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
    ("rt_ready_tasks_run_in_priority_order", rt_priority_order),
    ("rt_timer_release_preempts_a_busy_task", rt_preemption),
    ("rt_priority_inheritance_bounds_inversion", rt_priority_inheritance),
    ("rt_deadline_misses_and_overruns_are_detected", rt_deadline_miss),
    ("rt_queue_passes_messages_in_order_with_blocking", rt_queue),
    ("guest_exception_is_forwarded_with_the_exact_frame", guest_exception_forwarded),
    ("guest_interrupt_is_forwarded_when_the_guest_runs", guest_irq_forwarded),
    ("guest_interrupt_during_a_task_is_replayed_on_resume", guest_irq_replayed),
    ("guest_timer_event_comes_at_the_deadline_and_cancels", guest_timer_event),
    ("guest_lines_program_the_ioapic_level_masked_until_eoi", guest_lines_program_ioapic),
    ("external_interrupt_frames_carry_the_interrupted_rf", interrupt_frames_rf_clear),
    ("watchdog_leaves_a_healthy_idle_guest_alone", watchdog_healthy),
    ("watchdog_catches_a_guest_spinning_with_its_flag_off", watchdog_spin),
    ("watchdog_catches_a_guest_spinning_with_its_timer_armed", watchdog_spin_timer),
    ("watchdog_catches_a_guest_halted_with_its_flag_off", watchdog_halted),
    ("watchdog_catches_a_guest_looping_in_faults", watchdog_fault_loop),
    ("watchdog_catches_a_guest_that_never_registers", watchdog_never_registers),
    ("phase_transform_is_constant_time_dudect", dudect_constant_time),
    ("phase_dudect_detects_the_branchy_control", dudect_detects_branchy),
];

/// Runs every test; true if all passed.
pub fn run() -> bool {
    arch::console::console_write(format_args!("KTAP version 1\n1..{}\n", TESTS.len()));
    let mut failed = 0;
    for (i, (name, t)) in TESTS.iter().enumerate() {
        match t() {
            Ok(()) => arch::console::console_write(format_args!("ok {} {name}\n", i + 1)),
            Err(Verdict::Skip(why)) => arch::console::console_write(format_args!("ok {} {name} # SKIP {why}\n", i + 1)),
            Err(Verdict::Fail(why)) => {
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

fn secondaries_parked() -> TestResult {
    let r = arch::boot_report();
    let listed = r.platform.cpus.iter().filter(|c| c.enabled || c.online_capable).count() as u32;
    ensure!(r.cpus.cpus == listed, "{} CPUs counted, MADT lists {listed}", r.cpus.cpus);
    ensure!(r.cpus.parked == listed - 1, "{} parked of {} secondaries", r.cpus.parked, listed - 1);
    arch::console::console_write(format_args!("# {} CPU(s), {} parked\n", r.cpus.cpus, r.cpus.parked));
    Ok(())
}

// ---- real-time core ----

use crate::arch::rt as glue;
use crate::rt::api::{self, Event, Mutex as RtMutex, Periodic, Queue, Shared};

/// Lets tasks run (the test runner is the idle context) until `done` or `timeout_ms` of TSC time.
fn run_until(timeout_ms: u64, done: impl Fn() -> bool) -> bool {
    api::idle_until(timeout_ms * 1_000_000, done)
}

static LOG: Shared<heapless::Vec<u8, 32>> = Shared::new(heapless::Vec::new());

fn log_push(b: u8) {
    LOG.with(|l| {
        let _ = l.push(b);
    });
}

fn log_take() -> heapless::Vec<u8, 32> {
    LOG.with(core::mem::take)
}

fn logger_task(tag: usize) -> ! {
    loop {
        api::wait_event();
        log_push(tag as u8);
    }
}

fn rt_priority_order() -> TestResult {
    let ports = [10u16, 11, 12];
    let prios = [20u8, 40, 30];
    for (i, (&port, &prio)) in ports.iter().zip(&prios).enumerate() {
        Event::new("order", port)
            .priority(prio)
            .spawn_with(logger_task, b'a' as usize + i)
            .map_err(|e| alloc::format!("{e:?}"))?;
    }
    // Make all three ready at once, then let the scheduler choose.
    glue::with(|s| ports.iter().try_for_each(|&p| s.post(p, 1))).map_err(|e| alloc::format!("{e:?}"))?;
    api::yield_now();
    ensure!(run_until(100, || LOG.with(|l| l.len()) == 3), "tasks did not all run");
    let got = log_take();
    ensure!(got.as_slice() == b"bca", "ran in order {:?}, want b (40), c (30), a (20)", core::str::from_utf8(&got));
    Ok(())
}

static HI_RUNS: Shared<u64> = Shared::new(0);
static LO_SAW: Shared<Option<(u64, u64)>> = Shared::new(None);

fn hi_task(_: usize) -> ! {
    loop {
        api::wait_next_period();
        HI_RUNS.with(|n| *n += 1);
    }
}

/// Preemptions the spinner waits for.
const PREEMPTIONS: u64 = 3;

fn lo_spinner(_: usize) -> ! {
    loop {
        api::wait_event();
        let before = HI_RUNS.with(|n| *n);
        let start = cpu::rdtsc();
        let cap = tsc::ns_to_ticks(1_000_000_000);
        // Never blocks: only an interrupt can take the CPU from it. It spins until the 500 us task
        // has run PREEMPTIONS times, or for a second, so a host that stalls the CPU only delays it.
        let mut after = before;
        while after - before < PREEMPTIONS && cpu::rdtsc() - start < cap {
            api::spin_ns(100_000);
            after = HI_RUNS.with(|n| *n);
        }
        let spun = tsc::ticks_to_ns(cpu::rdtsc() - start);
        LO_SAW.with(|s| *s = Some((after - before, spun)));
    }
}

fn rt_preemption() -> TestResult {
    Periodic::new("preempter").priority(60).period_us(500).spawn(hi_task).map_err(|e| alloc::format!("{e:?}"))?;
    Event::new("spinner", 13).priority(50).spawn(lo_spinner).map_err(|e| alloc::format!("{e:?}"))?;
    api::post(13, 1).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(run_until(5000, || LO_SAW.with(|s| s.is_some())), "spinner did not finish");
    let (runs, spun_ns) = LO_SAW.with(|s| s.unwrap_or((0, 0)));
    // The spinner never blocks, so every run of the 500 us task while it spins is a preemption
    // from the timer interrupt.
    ensure!(
        runs >= PREEMPTIONS,
        "the 500 us task ran {runs} times while a lower task spun for {spun_ns} ns: no preemption"
    );
    arch::console::console_write(format_args!("# preempted {runs} times in {} us of spinning\n", spun_ns / 1000));
    Ok(())
}

static PI_MUTEX: spin::Once<RtMutex<u32>> = spin::Once::new();
static PI_PRIO_WHILE_HELD: Shared<u8> = Shared::new(0);

fn pi_low(_: usize) -> ! {
    loop {
        api::wait_event();
        let m = PI_MUTEX.get().expect("mutex");
        let mut g = m.lock();
        *g += 1;
        let _ = api::post(21, 1); // H (30) runs now, blocks on the mutex, and lends L its priority
        let _ = api::post(22, 1); // M (20) is ready, but L now runs at 30
        let me = glue::with(|s| s.task(s.current()).prio);
        PI_PRIO_WHILE_HELD.with(|p| *p = me);
        log_push(b'L');
        drop(g);
    }
}

fn pi_high(_: usize) -> ! {
    loop {
        api::wait_event();
        let g = PI_MUTEX.get().expect("mutex").lock();
        log_push(b'H');
        drop(g);
    }
}

fn rt_priority_inheritance() -> TestResult {
    let _ = log_take();
    PI_MUTEX.call_once(|| RtMutex::new(0).expect("mutex"));
    Event::new("pi-low", 20).priority(10).spawn(pi_low).map_err(|e| alloc::format!("{e:?}"))?;
    Event::new("pi-high", 21).priority(30).spawn(pi_high).map_err(|e| alloc::format!("{e:?}"))?;
    Event::new("pi-mid", 22)
        .priority(20)
        .spawn_with(logger_task, b'M' as usize)
        .map_err(|e| alloc::format!("{e:?}"))?;
    api::post(20, 1).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(run_until(100, || LOG.with(|l| l.len()) == 3), "tasks did not all run");
    let got = log_take();
    ensure!(got.as_slice() == b"LHM", "order {:?}: want L (releasing) then H then M", core::str::from_utf8(&got));
    let p = PI_PRIO_WHILE_HELD.with(|p| *p);
    ensure!(p == 30, "L ran at priority {p} while H waited, want 30");
    Ok(())
}

static LATE_STOP: Shared<bool> = Shared::new(false);

fn late_task(_: usize) -> ! {
    loop {
        api::wait_next_period();
        if !LATE_STOP.with(|s| *s) {
            api::spin_ns(400_000); // deadline 200 us, budget 100 us: late and over budget
        }
    }
}

fn rt_deadline_miss() -> TestResult {
    let t = Periodic::new("late")
        .priority(70)
        .period_us(1000)
        .deadline_ns(200_000)
        .budget_ns(100_000)
        .spawn(late_task)
        .map_err(|e| alloc::format!("{e:?}"))?;
    let stats = || glue::with(|s| s.task(t).stats);
    ensure!(run_until(100, || stats().completions >= 4), "no completions");
    LATE_STOP.with(|s| *s = true);
    let st = stats();
    ensure!(st.misses >= 3, "{} misses in {} jobs of 400 us with a 200 us deadline", st.misses, st.completions);
    ensure!(st.overruns >= 3, "{} overruns in {} jobs of 400 us with a 100 us budget", st.overruns, st.completions);
    ensure!(st.worst_response >= tsc::ns_to_ticks(400_000), "worst response shorter than the work");
    // (That the miss count stops growing once the work stops is a timing property of the host
    // under plain TCG; the scheduler's accounting of it is covered by the host unit tests.)
    Ok(())
}

static QUEUE: spin::Once<Queue<u32, 4>> = spin::Once::new();
static RECEIVED: Shared<heapless::Vec<u32, 16>> = Shared::new(heapless::Vec::new());

fn producer(_: usize) -> ! {
    loop {
        api::wait_event();
        for i in 0..10 {
            QUEUE.get().expect("queue").send(i); // blocks when 4 are queued
        }
    }
}

fn consumer(_: usize) -> ! {
    loop {
        let v = QUEUE.get().expect("queue").recv();
        RECEIVED.with(|r| {
            let _ = r.push(v);
        });
    }
}

fn rt_queue() -> TestResult {
    QUEUE.call_once(|| Queue::new().expect("queue"));
    // The consumer has the lower priority: the producer fills the queue and must block.
    Event::new("consumer", 30).priority(15).spawn(consumer).map_err(|e| alloc::format!("{e:?}"))?;
    Event::new("producer", 31).priority(16).spawn(producer).map_err(|e| alloc::format!("{e:?}"))?;
    api::post(31, 1).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(run_until(100, || RECEIVED.with(|r| r.len()) == 10), "got {} of 10 messages", RECEIVED.with(|r| r.len()));
    let got = RECEIVED.with(|r| r.clone());
    ensure!(got.iter().copied().eq(0..10), "messages out of order: {:?}", got.as_slice());
    Ok(())
}

// ---- constant-time check (dudect) ----

use crate::phase::{ct, dudect};

fn dudect_run(f: fn(u32) -> u32, fixed: u32) -> (f64, u64) {
    const N: usize = 4000;
    let mut rng = dudect::XorShift64::new(0x5eed_1234_abcd_0001);
    let mut samples: Vec<(dudect::Class, u64)> = Vec::with_capacity(N);
    x86_64::instructions::interrupts::without_interrupts(|| {
        for _ in 0..N {
            let class = rng.next_class();
            let input = match class {
                dudect::Class::Fixed => fixed,
                dudect::Class::Random => rng.next_u32(),
            };
            let t0 = cpu::rdtsc();
            core::hint::black_box(f(core::hint::black_box(input)));
            let t1 = cpu::rdtsc();
            samples.push((class, t1 - t0));
        }
    });
    let mut cycles: Vec<u64> = samples.iter().map(|s| s.1).collect();
    let cutoff = dudect::crop_percentile(&mut cycles, 0.95);
    let mut t = dudect::TTest::new();
    for (c, x) in samples {
        t.push_cropped(c, x, cutoff);
    }
    (t.t(), N as u64)
}

fn dudect_constant_time() -> TestResult {
    if !virtual_clock() {
        return Err(Verdict::Skip("timing is judged under -icount only (this clock follows the host)"));
    }
    let (t, n) = dudect_run(ct::triangle, 0xffff_ffff);
    arch::console::console_write(format_args!("# dudect triangle: |t| = {:.2} over {n} runs\n", t.abs()));
    let constant = dudect::TTest::t_is_constant_time(t);
    ensure!(constant, "|t| = {:.2} >= {}", t.abs(), dudect::THRESHOLD);
    Ok(())
}

fn dudect_detects_branchy() -> TestResult {
    if !virtual_clock() {
        return Err(Verdict::Skip("timing is judged under -icount only (this clock follows the host)"));
    }
    let (t, n) = dudect_run(ct::triangle_branchy, 0xffff_ffff);
    arch::console::console_write(format_args!("# dudect branchy control: |t| = {:.2} over {n} runs\n", t.abs()));
    let constant = dudect::TTest::t_is_constant_time(t);
    ensure!(!constant, "the test could not tell a data-dependent loop apart (|t| = {:.2})", t.abs());
    Ok(())
}

// ---- the one IDT: forwarding to a guest (a synthetic one, standing in for Linux) ----

use crate::arch::guest;

core::arch::global_asm!(
    r#"
    .section .guest_test, "ax"
    .global ktest_guest_ud_handler
    .global ktest_guest_irq_handler
    .global ktest_guest_ud
    .global ktest_guest_ud_insn
/* The guest's #UD gate: record the frame as a guest handler sees it, skip the ud2, return. */
ktest_guest_ud_handler:
    movq %rsp, ktest_seen_rsp(%rip)
    movq %r12, ktest_seen_r12(%rip)
    pushq %rax
    movq 8(%rsp), %rax
    movq %rax, ktest_seen_rip(%rip)
    movq 32(%rsp), %rax
    movq %rax, ktest_seen_frame_rsp(%rip)
    addq $2, 8(%rsp)
    incq ktest_ud_count(%rip)
    popq %rax
    iretq
/* The guest's gate for a device vector: count, record the stack, return. */
ktest_guest_irq_handler:
    movq %rsp, ktest_irq_rsp(%rip)
    incq ktest_irq_count(%rip)
    iretq
/* Guest code that faults with known registers: returns RSP at the ud2. */
ktest_guest_ud:
    pushq %r12
    movq $0x5eed5eed, %r12
    movq %rsp, %rax
ktest_guest_ud_insn:
    ud2
    popq %r12
    ret

    .section .data.ktest_guest, "aw"
    .balign 8
    .global ktest_seen_rsp
    .global ktest_seen_r12
    .global ktest_seen_rip
    .global ktest_seen_frame_rsp
    .global ktest_ud_count
    .global ktest_irq_count
    .global ktest_irq_rsp
ktest_seen_rsp: .quad 0
ktest_seen_r12: .quad 0
ktest_seen_rip: .quad 0
ktest_seen_frame_rsp: .quad 0
ktest_ud_count: .quad 0
ktest_irq_count: .quad 0
ktest_irq_rsp: .quad 0
    .section .text
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn ktest_guest_ud_handler();
    fn ktest_guest_irq_handler();
    fn ktest_guest_ud() -> u64;
    static ktest_guest_ud_insn: u8;
    static ktest_seen_rsp: u64;
    static ktest_seen_r12: u64;
    static ktest_seen_rip: u64;
    static ktest_seen_frame_rsp: u64;
    static ktest_ud_count: u64;
    static ktest_irq_count: u64;
}

/// Reads a record the guest handlers write.
macro_rules! rec {
    ($sym:ident) => {
        // SAFETY: a plain, aligned u64 in this image that the guest handlers write; read volatile.
        unsafe { core::ptr::addr_of!($sym).read_volatile() }
    };
}

fn irq_count() -> u64 {
    rec!(ktest_irq_count)
}

const GUEST_IRQ: u8 = 0x40;
const GUEST_IRQ_2: u8 = 0x41;

#[repr(C, align(16))]
struct GuestIdt([u64; 512]);
static mut GUEST_IDT: GuestIdt = GuestIdt([0; 512]);

fn guest_gate(v: u8, target: u64) {
    let lo =
        (target & 0xffff) | (u64::from(arch::gdt::KERNEL_CS) << 16) | (0x8e << 40) | ((target >> 16) & 0xffff) << 48;
    let hi = target >> 32;
    let idt = &raw mut GUEST_IDT;
    // SAFETY: the test's own table, written before it is registered.
    unsafe {
        (*idt).0[usize::from(v) * 2] = lo;
        (*idt).0[usize::from(v) * 2 + 1] = hi;
    }
}

fn guest_on() {
    guest_gate(6, ktest_guest_ud_handler as *const () as u64);
    guest_gate(GUEST_IRQ, ktest_guest_irq_handler as *const () as u64);
    guest_gate(GUEST_IRQ_2, ktest_guest_irq_handler as *const () as u64);
    guest::set_idt((&raw const GUEST_IDT) as u64, 256 * 16 - 1);
    guest::set_active(true);
}

fn guest_off() {
    guest::set_active(false);
}

fn guest_exception_forwarded() -> TestResult {
    guest_on();
    let before = rec!(ktest_ud_count);
    // SAFETY: guest code: its ud2 goes to the guest's #UD gate, which skips it and returns.
    let rsp_at_fault = unsafe { ktest_guest_ud() };
    guest_off();
    let (count, seen_rsp, r12, rip, frame_rsp) = (
        rec!(ktest_ud_count),
        rec!(ktest_seen_rsp),
        rec!(ktest_seen_r12),
        rec!(ktest_seen_rip),
        rec!(ktest_seen_frame_rsp),
    );
    let insn = core::ptr::addr_of!(ktest_guest_ud_insn) as u64;
    ensure!(count == before + 1, "the guest's #UD handler ran {} times", count - before);
    ensure!(rip == insn, "guest saw RIP {rip:#x}, the ud2 is at {insn:#x}");
    ensure!(frame_rsp == rsp_at_fault, "guest saw the interrupted RSP {frame_rsp:#x}, it was {rsp_at_fault:#x}");
    ensure!(
        seen_rsp == (rsp_at_fault & !0xf) - 40,
        "the guest's handler did not start at the exact hardware frame (RSP {seen_rsp:#x})"
    );
    ensure!(r12 == 0x5eed_5eed, "a register changed on the way: r12 = {r12:#x}");
    Ok(())
}

fn guest_irq_forwarded() -> TestResult {
    guest_on();
    let count = irq_count;
    let before = count();
    let fwd = guest::FORWARDED.load(Ordering::Relaxed);
    apic::send_ipi(apic::id(), u32::from(GUEST_IRQ));
    let ok = run_until(50, || count() > before);
    guest_off();
    ensure!(ok, "the guest's gate for vector {GUEST_IRQ:#x} never ran");
    ensure!(guest::FORWARDED.load(Ordering::Relaxed) > fwd, "not counted as forwarded");
    Ok(())
}

static REPLAY_SEEN_DURING_TASK: Shared<Option<(u64, u64)>> = Shared::new(None);

fn replay_task(_: usize) -> ! {
    loop {
        api::wait_event();
        let count = irq_count;
        let before = count();
        apic::send_ipi(apic::id(), u32::from(GUEST_IRQ_2));
        api::spin_ns(200_000); // the interrupt arrives while this task runs: logged, not delivered
        REPLAY_SEEN_DURING_TASK.with(|s| *s = Some((before, count())));
    }
}

fn guest_irq_replayed() -> TestResult {
    Event::new("replay", 40).priority(90).spawn(replay_task).map_err(|e| alloc::format!("{e:?}"))?;
    api::yield_now();
    guest_on();
    let count = irq_count;
    let (logged, replayed) = (guest::LOGGED.load(Ordering::Relaxed), guest::REPLAYED.load(Ordering::Relaxed));
    api::post(40, 1).map_err(|e| alloc::format!("{e:?}"))?;
    let done = run_until(100, || REPLAY_SEEN_DURING_TASK.with(|s| s.is_some()));
    let after_resume = count();
    guest_off();
    ensure!(done, "the task did not run");
    let (before, during) = REPLAY_SEEN_DURING_TASK.with(|s| s.unwrap_or((0, 0)));
    ensure!(during == before, "the guest's handler ran while a real-time task had the CPU");
    ensure!(guest::LOGGED.load(Ordering::Relaxed) > logged, "the event was not logged");
    ensure!(
        after_resume == before + 1,
        "the logged event was delivered {} times after the guest resumed",
        after_resume - before
    );
    ensure!(guest::REPLAYED.load(Ordering::Relaxed) > replayed, "not counted as replayed");
    Ok(())
}

/// Linux's clock event (`SET_TIMER`): raised once at or after the deadline on the Linux timer
/// vector, forwarded to the guest's gate; a cancelled deadline raises nothing.
fn guest_timer_event() -> TestResult {
    use hauki_abi::guest::VECTOR_LINUX_TIMER;
    guest_gate(VECTOR_LINUX_TIMER, ktest_guest_irq_handler as *const () as u64);
    guest_on();
    let count = irq_count;
    let events = glue::LINUX_TIMER_EVENTS.load(Ordering::Relaxed);
    let before = count();
    let deadline = cpu::rdtsc() + tsc::ns_to_ticks(1_000_000);
    glue::set_linux_timer(deadline);
    let fired = run_until(50, || count() > before);
    let seen_at = cpu::rdtsc();
    let once = run_until(3, || count() > before + 1);
    // Cancelled: nothing comes.
    let before2 = count();
    glue::set_linux_timer(cpu::rdtsc() + tsc::ns_to_ticks(1_000_000));
    glue::set_linux_timer(u64::MAX);
    let spurious = run_until(5, || count() > before2);
    guest_off();
    ensure!(fired, "the guest's timer gate never ran");
    ensure!(seen_at >= deadline, "the timer event came before its deadline");
    ensure!(!once, "one deadline raised more than one event");
    ensure!(glue::LINUX_TIMER_EVENTS.load(Ordering::Relaxed) == events + 1, "not counted once");
    ensure!(!spurious, "a cancelled deadline still raised an event");
    Ok(())
}

/// The pv irqchip on the real IO-APIC: a line Linux unmasks is programmed with its vector,
/// trigger and polarity; a level line is masked from its arrival until Linux's EOI; refused lines
/// are refused. Every line is masked again at the end.
fn guest_lines_program_ioapic() -> TestResult {
    use crate::arch::irqchip;
    use crate::guest::lines::Lines;
    let rte = |gsi: u32| ioapic::for_gsi(gsi).map(|(io, pin)| io.redirection(pin));
    const MASKED: u64 = 1 << 16;
    const LEVEL: u64 = 1 << 15;
    // COM1's line, edge.
    ensure!(irqchip::call(Lines::unmask, 4) == 0, "unmask 4 refused");
    let e = rte(4).ok_or("no IO-APIC pin for GSI 4")?;
    ensure!(e & 0xff == 0x34 && e & (MASKED | LEVEL) == 0, "IRQ 4's entry is {e:#x}");
    irqchip::on_arrival(0x34);
    ensure!(rte(4).unwrap_or(0) & MASKED == 0, "an edge line was masked on arrival");
    // The firmware's level line (ACPI's SCI, IRQ 9, on QEMU).
    ensure!(irqchip::call(Lines::unmask, 9) == 0, "unmask 9 refused");
    let l = rte(9).ok_or("no IO-APIC pin for GSI 9")?;
    ensure!(l & 0xff == 0x39 && l & LEVEL != 0 && l & MASKED == 0, "IRQ 9's entry is {l:#x} (want level, unmasked)");
    irqchip::on_arrival(0x39);
    ensure!(rte(9).unwrap_or(0) & MASKED != 0, "a level line stayed unmasked after its arrival");
    irqchip::call(Lines::unmask, 9);
    ensure!(rte(9).unwrap_or(0) & MASKED != 0, "a level line in service was unmasked before its EOI");
    irqchip::call(Lines::eoi, 9);
    ensure!(rte(9).unwrap_or(0) & MASKED == 0, "Linux's EOI did not unmask the level line");
    ensure!(irqchip::call(Lines::unmask, 3) == u64::MAX, "the telemetry UART's line was given away");
    ensure!(irqchip::call(Lines::unmask, 2) == u64::MAX, "IRQ 2 (its input carries IRQ 0) was given away");
    ensure!(irqchip::call(Lines::unmask, 16) == u64::MAX, "a non-ISA line was accepted");
    irqchip::call(Lines::mask, 4);
    irqchip::call(Lines::mask, 9);
    ensure!(rte(4).unwrap_or(0) & MASKED != 0 && rte(9).unwrap_or(0) & MASKED != 0, "mask left a line open");
    Ok(())
}

// ---- Linux's watchdog, judging the synthetic guest in each state a stuck Linux can be in ----

use crate::arch::watchdog::{self, Failure};

/// The watchdog's limits in these tests (ms of TSC time; virtual under icount).
const WD_LIMIT_MS: u64 = 100;
const WD_BOOT_LIMIT_MS: u64 = 300;

core::arch::global_asm!(
    r#"
    .section .guest_test, "ax"
    .global ktest_guest_ud_loop_handler
    .global ktest_guest_ud_loop
/* A #UD gate that returns to the faulting ud2 (a fault loop) until told to stop; it returns with
   the hardware flag on, as Linux's patched return path does. */
ktest_guest_ud_loop_handler:
    orq $0x200, 16(%rsp)
    cmpq $0, ktest_loop_stop(%rip)
    je 1f
    addq $2, (%rsp)
1:  iretq
ktest_guest_ud_loop:
    ud2
    ret

    .section .data.ktest_guest, "aw"
    .balign 8
    .global ktest_loop_stop
ktest_loop_stop: .quad 0
    .section .text
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn ktest_guest_ud_loop_handler();
    fn ktest_guest_ud_loop();
    static mut ktest_loop_stop: u64;
}

/// The guest with its soft flag live and a gate for the heartbeat (Linux's timer vector); returns
/// once it has taken one, so the watchdog judges it as running (past its boot).
fn wd_guest_running() -> TestResult {
    use hauki_abi::guest::VECTOR_LINUX_TIMER;
    watchdog::testing::arm(WD_LIMIT_MS, WD_BOOT_LIMIT_MS);
    let _ = watchdog::testing::take_caught();
    guest_gate(VECTOR_LINUX_TIMER, ktest_guest_irq_handler as *const () as u64);
    guest_on();
    guest::set_soft(true);
    guest::VCPU.set_enabled(true);
    let before = irq_count();
    let hb = watchdog::HEARTBEATS.load(Ordering::Relaxed);
    ensure!(run_until(WD_LIMIT_MS * 20, || irq_count() > before), "the idle guest never took a heartbeat");
    ensure!(watchdog::HEARTBEATS.load(Ordering::Relaxed) > hb, "the event the guest took was not a heartbeat");
    Ok(())
}

/// Back to no guest at all.
fn wd_guest_gone() {
    glue::set_linux_timer(u64::MAX);
    guest::reset();
}

/// Runs `stuck` (the guest's code, interrupts on in hardware) until the watchdog's verdict comes;
/// it must be "stuck", not early, and not long after the limit (`booting`: the boot limit).
fn wd_expect_stuck(what: &str, booting: bool, mut stuck: impl FnMut()) -> TestResult {
    let limit_ms = if booting { WD_BOOT_LIMIT_MS } else { WD_LIMIT_MS };
    let end = cpu::rdtsc() + tsc::ns_to_ticks(limit_ms * 20 * 1_000_000);
    while !watchdog::testing::caught() && cpu::rdtsc() < end {
        stuck();
    }
    wd_guest_gone();
    let (why, waited, was_booting) =
        watchdog::testing::take_caught().ok_or(alloc::format!("not caught within {} ms", limit_ms * 20))?;
    let limit = limit_ms * 1_000_000;
    ensure!(why == Failure::Stuck, "the verdict is {why:?}");
    ensure!(was_booting == booting, "judged as booting: {was_booting}");
    ensure!(waited >= limit, "caught after {waited} ns, before the {limit} ns limit");
    ensure!(
        waited <= 3 * limit,
        "caught only after {waited} ns (limit {limit} ns, checks every {} ns)",
        watchdog::testing::period_ns()
    );
    arch::console::console_write(format_args!(
        "# watchdog: {what}: caught after {}.{:03} ms (limit {limit_ms} ms, checks every {} ms)\n",
        waited / 1_000_000,
        waited / 1000 % 1000,
        watchdog::testing::period_ns() / 1_000_000
    ));
    Ok(())
}

fn watchdog_healthy() -> TestResult {
    wd_guest_running()?;
    let (hb, taken) = (watchdog::HEARTBEATS.load(Ordering::Relaxed), irq_count());
    // Idle (halted with its flag on) for five limits: heartbeats come and are taken. (The
    // synthetic gate does not turn the virtual flag back on as Linux's return path does: the
    // idle loop does.)
    let caught = run_until(WD_LIMIT_MS * 5, || {
        guest::VCPU.set_enabled(true);
        watchdog::testing::caught()
    });
    wd_guest_gone();
    ensure!(!caught, "a healthy idle guest was judged {:?}", watchdog::testing::take_caught());
    ensure!(
        watchdog::HEARTBEATS.load(Ordering::Relaxed) > hb + 2 && irq_count() > taken + 2,
        "no heartbeats while idle"
    );
    Ok(())
}

fn watchdog_spin() -> TestResult {
    wd_guest_running()?;
    guest::VCPU.set_enabled(false);
    wd_expect_stuck("spinning, flag off", false, core::hint::spin_loop)
}

fn watchdog_spin_timer() -> TestResult {
    wd_guest_running()?;
    guest::VCPU.set_enabled(false);
    glue::set_linux_timer(cpu::rdtsc() + tsc::ns_to_ticks(5_000_000));
    wd_expect_stuck("spinning, flag off, timer armed", false, core::hint::spin_loop)
}

fn watchdog_halted() -> TestResult {
    wd_guest_running()?;
    guest::VCPU.set_enabled(false);
    wd_expect_stuck("halted, flag off", false, x86_64::instructions::interrupts::enable_and_hlt)
}

fn stop_fault_loop(_: usize) -> ! {
    loop {
        api::wait_next_period();
        if watchdog::testing::caught() {
            // SAFETY: a plain u64 of this image that the guest's #UD gate reads.
            unsafe { core::ptr::addr_of_mut!(ktest_loop_stop).write_volatile(1) };
        }
    }
}

fn watchdog_fault_loop() -> TestResult {
    wd_guest_running()?;
    // SAFETY: as above.
    unsafe { core::ptr::addr_of_mut!(ktest_loop_stop).write_volatile(0) };
    Periodic::new("wd-probe")
        .priority(80)
        .period_us(1000)
        .spawn(stop_fault_loop)
        .map_err(|e| alloc::format!("{e:?}"))?;
    guest_gate(6, ktest_guest_ud_loop_handler as *const () as u64);
    guest::VCPU.set_enabled(false);
    let faults = idt::count(6);
    // SAFETY: guest code: its ud2 goes to the guest's looping #UD gate, which lets it through once
    // the watchdog has judged.
    unsafe { ktest_guest_ud_loop() };
    let looped = idt::count(6) - faults;
    guest_gate(6, ktest_guest_ud_handler as *const () as u64);
    let r = wd_expect_stuck("looping in faults", false, || {});
    ensure!(looped > 100, "the guest faulted only {looped} times");
    r
}

fn watchdog_never_registers() -> TestResult {
    watchdog::testing::arm(WD_LIMIT_MS, WD_BOOT_LIMIT_MS);
    let _ = watchdog::testing::take_caught();
    // Entered, but no IDT and no vCPU registered: nothing can ever be delivered.
    guest::set_idt(0, 0);
    guest::set_active(true);
    wd_expect_stuck("never registered (boot limit)", true, core::hint::spin_loop)
}

static SEEN_RFLAGS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(u64::MAX);

fn record_rflags(frame: &mut idt::TrapFrame) {
    SEEN_RFLAGS.store(frame.rflags, Ordering::Relaxed);
}

/// An external interrupt's frame carries the RF of the interrupted code (clear: plain kernel code
/// between instructions), whatever the CPU or emulator pushed; Linux's handlers return to user
/// code with it (the sigreturn selftest checks RF in a SIGTRAP frame).
fn interrupt_frames_rf_clear() -> TestResult {
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
