//! In-kernel tests (feature `ktest`): run on the real machine state after boot, print KTAP version 1
//! on COM1, and end QEMU through `isa-debug-exit` (SUCCESS only if every test passed).
//!
//! These check what host tests cannot, one file per area: the hardware (the live page tables
//! really enforce W^X and guard pages, through fault probes; the interrupt hardware is in the
//! state bring-up promised; the one-shot timer really fires), the real-time core on real
//! interrupts, forwarding to and replaying for a synthetic guest, Linux's watchdog judging that
//! guest, and the phase engine's constant-time check.

use crate::arch;

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
    crate::cmdline::get(&crate::kmain::boot_report().cmdline, hauki_abi::cmdline::KTEST_CLOCK) == Some("virtual")
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::ktest::Verdict::Fail(alloc::format!($($fmt)+)));
        }
    };
}

type Test = (&'static str, fn() -> TestResult);

/// The test list, in the order they run (later tests build on the tasks earlier ones started): each
/// test is named once, by its function (`area::name` runs as `name`).
macro_rules! tests {
    ($($area:ident :: $name:ident),* $(,)?) => {
        &[$((stringify!($name), $area::$name as fn() -> TestResult)),*]
    };
}

mod guest;
mod hardware;
mod phase;
mod rt;
mod smp;
mod watchdog;

const TESTS: &[Test] = tests![
    hardware::idt_covers_all_vectors,
    hardware::an_interrupt_nobody_handles_is_counted_as_unexpected,
    hardware::an_apic_interrupt_on_a_pic_spurious_vector_is_delivered,
    hardware::breakpoint_is_reported_and_resumes,
    hardware::text_is_not_writable,
    hardware::rodata_is_not_writable_or_executable,
    hardware::data_is_not_executable,
    hardware::text_is_executable,
    hardware::boot_stack_guard_page_is_unmapped,
    hardware::ist_stack_guard_pages_are_unmapped,
    hardware::null_page_and_identity_map_are_unmapped,
    hardware::no_mapping_is_writable_and_executable,
    hardware::heap_allocates_and_frees,
    hardware::frame_allocator_hands_out_unique_free_frames,
    hardware::legacy_pic_is_masked,
    hardware::every_ioapic_pin_is_masked,
    hardware::apic_mode_matches_cpuid,
    hardware::tsc_frequency_is_plausible,
    hardware::oneshot_timer_fires_once_not_early,
    hardware::timer_cancel_prevents_expiry,
    smp::secondary_cpus_are_online,
    hardware::pci_function_found_by_address_and_absent_ones_refused,
    hardware::isa_claims_that_cannot_be_are_refused_naming_why,
    rt::rt_ready_tasks_run_in_priority_order,
    rt::rt_timer_release_preempts_a_busy_task,
    rt::rt_priority_inheritance_bounds_inversion,
    rt::rt_deadline_misses_and_overruns_are_detected,
    rt::rt_queue_passes_messages_in_order_with_blocking,
    smp::smp_tasks_run_on_the_cpu_they_were_created_for,
    smp::smp_posts_cross_cpus_through_mailboxes,
    smp::smp_objects_and_tasks_refuse_the_wrong_cpu,
    smp::smp_linux_state_is_per_cpu,
    guest::guest_exception_is_forwarded_with_the_exact_frame,
    guest::guest_interrupt_is_forwarded_when_the_guest_runs,
    guest::guest_interrupt_during_a_task_is_replayed_on_resume,
    guest::guest_timer_event_comes_at_the_deadline_and_cancels,
    guest::guest_leaving_with_the_timer_masked_gives_it_back,
    guest::guest_lines_program_the_ioapic_level_masked_until_eoi,
    guest::guest_pci_lines_bound_by_linux_program_the_ioapic,
    hardware::external_interrupt_frames_carry_the_interrupted_rf,
    watchdog::watchdog_leaves_a_healthy_idle_guest_alone,
    watchdog::watchdog_catches_a_guest_spinning_with_its_flag_off,
    watchdog::watchdog_catches_a_guest_spinning_with_its_timer_armed,
    watchdog::watchdog_catches_a_guest_halted_with_its_flag_off,
    watchdog::watchdog_catches_a_guest_looping_in_faults,
    watchdog::an_interrupt_entry_on_linux_s_exhausted_stack_is_linux_s_failure,
    watchdog::watchdog_catches_a_guest_that_never_registers,
    phase::phase_transform_is_constant_time_dudect,
    phase::phase_dudect_detects_the_branchy_control,
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
