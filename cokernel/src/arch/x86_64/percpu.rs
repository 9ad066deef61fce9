//! Which CPU this is: the co-kernel's dense CPU index (0 = the boot CPU, then the secondaries in
//! the order they were started), found from the local APIC ID.
//!
//! The index is read on every trap, so it must not depend on anything Linux owns: on a shared
//! core Linux's GS base and `IA32_TSC_AUX` hold Linux's per-CPU data, never ours. The local
//! APIC ID is the one thing only the hardware sets. While only the boot CPU runs, [`this`] is 0
//! without reading anything, so a single-CPU system pays nothing.

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicUsize, Ordering};

use super::apic;

pub use super::cpu::MAX_CPUS;

/// Set (before the first secondary starts) once more than one CPU may run co-kernel code.
static SMP: AtomicBool = AtomicBool::new(false);
/// Index + 1 by APIC ID (0: not a co-kernel CPU). APIC IDs above 255 are not started.
static BY_APIC: [AtomicU8; 256] = [const { AtomicU8::new(0) }; 256];
/// APIC ID by index.
static APIC_OF: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(u32::MAX) }; MAX_CPUS];
/// CPUs registered (the boot CPU is registered by `smp::start_secondaries`).
static COUNT: AtomicUsize = AtomicUsize::new(1);

/// This CPU's index (0 on the boot CPU).
#[inline(always)]
pub fn this() -> usize {
    if !SMP.load(Ordering::Relaxed) {
        return 0;
    }
    this_slow()
}

#[inline(never)]
fn this_slow() -> usize {
    let id = apic::id();
    usize::from(BY_APIC.get(id as usize).map_or(0, |b| b.load(Ordering::Relaxed)).saturating_sub(1))
}

/// Gives the CPU with `apic_id` the next index; `None` when [`MAX_CPUS`] are registered or the
/// ID cannot be indexed. The boot CPU must be registered first (index 0).
pub fn register(apic_id: u32) -> Option<usize> {
    if apic_id > 255 {
        return None;
    }
    let i = if APIC_OF[0].load(Ordering::Relaxed) == u32::MAX { 0 } else { COUNT.load(Ordering::Relaxed) };
    if i >= MAX_CPUS {
        return None;
    }
    APIC_OF[i].store(apic_id, Ordering::Relaxed);
    BY_APIC[apic_id as usize].store(i as u8 + 1, Ordering::Relaxed);
    COUNT.store(i + 1, Ordering::Release);
    Some(i)
}

/// From now on [`this`] reads the APIC ID (call before a secondary runs co-kernel code).
pub fn enable_smp() {
    SMP.store(true, Ordering::SeqCst);
}

/// CPUs registered.
pub fn count() -> usize {
    COUNT.load(Ordering::Acquire)
}

/// The index of the CPU with local APIC ID `apic_id`, if it is registered.
pub fn of_apic(apic_id: u32) -> Option<usize> {
    let b = BY_APIC.get(usize::try_from(apic_id).ok()?)?.load(Ordering::Relaxed);
    (b != 0).then(|| usize::from(b - 1))
}

/// The APIC ID of CPU `cpu`, if it is registered.
pub fn apic_id(cpu: usize) -> Option<u32> {
    APIC_OF.get(cpu).map(|a| a.load(Ordering::Relaxed)).filter(|&a| a != u32::MAX)
}
