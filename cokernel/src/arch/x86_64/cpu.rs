//! What the CPU offers, read once with `raw-cpuid`.

use raw_cpuid::CpuId;

/// CPUs the co-kernel runs on at most (the boot CPU included). Secondaries beyond it are left
/// parked and reported.
pub const MAX_CPUS: usize = 16;

/// The CPU's identity and the features the co-kernel depends on or reports.
#[derive(Clone, Debug)]
pub struct Features {
    /// Vendor string (leaf 0), e.g. `GenuineIntel`; empty if the CPU gives none.
    pub vendor: heapless::String<16>,
    /// Brand string (leaves 0x80000002..4), trimmed; empty if the CPU gives none.
    pub brand: heapless::String<48>,
    /// Display family (leaf 1, extended family folded in).
    pub family: u8,
    /// Display model (leaf 1, extended model folded in).
    pub model: u8,
    /// Stepping (leaf 1).
    pub stepping: u8,
    /// A local APIC exists (leaf 1 EDX bit 9); the co-kernel refuses to boot without one.
    pub apic: bool,
    /// x2APIC mode is available (leaf 1 ECX bit 21).
    pub x2apic: bool,
    /// The LAPIC timer has TSC-deadline mode (leaf 1 ECX bit 24).
    pub tsc_deadline: bool,
    /// The TSC runs at a constant rate in every P-, C- and T-state (leaf 0x80000007 EDX bit 8).
    pub invariant_tsc: bool,
    /// The hypervisor as `raw-cpuid` identifies it (leaf 0x40000000), when there is one.
    pub hypervisor: Option<heapless::String<16>>,
    /// TSC frequency the CPU (leaf 0x15) or hypervisor (leaf 0x40000010) states, if any.
    pub tsc_hz_stated: Option<u64>,
    /// The boot CPU's initial APIC ID (leaf 1 EBX bits 31..24).
    pub initial_apic_id: u8,
}

/// Reads every feature with CPUID (no side effects; callable any time).
pub fn detect() -> Features {
    let id = CpuId::new();
    let mut vendor = heapless::String::new();
    if let Some(v) = id.get_vendor_info() {
        let _ = vendor.push_str(v.as_str());
    }
    let mut brand = heapless::String::new();
    if let Some(b) = id.get_processor_brand_string() {
        let _ = brand.push_str(b.as_str().trim());
    }
    let fi = id.get_feature_info();
    let (family, model, stepping, apic, x2apic, tsc_deadline, initial_apic_id) = match &fi {
        Some(f) => (
            f.family_id(),
            f.model_id(),
            f.stepping_id(),
            f.has_apic(),
            f.has_x2apic(),
            f.has_tsc_deadline(),
            f.initial_local_apic_id(),
        ),
        None => (0, 0, 0, false, false, false, 0),
    };
    let invariant_tsc = id.get_advanced_power_mgmt_info().is_some_and(|p| p.has_invariant_tsc());
    let hv = id.get_hypervisor_info();
    let hypervisor = hv.as_ref().map(|h| {
        let mut s = heapless::String::new();
        let _ = core::fmt::write(&mut s, format_args!("{:?}", h.identify()));
        s
    });
    let mut tsc_hz_stated = id.get_tsc_info().and_then(|t| t.tsc_frequency()).filter(|&hz| hz > 0);
    if tsc_hz_stated.is_none() {
        tsc_hz_stated = hv.and_then(|h| h.tsc_frequency()).map(|khz| u64::from(khz) * 1000).filter(|&hz| hz > 0);
    }
    Features {
        vendor,
        brand,
        family,
        model,
        stepping,
        apic,
        x2apic,
        tsc_deadline,
        invariant_tsc,
        hypervisor,
        tsc_hz_stated,
        initial_apic_id,
    }
}

/// The time-stamp counter: the co-kernel's one clock (ticks at `tsc::hz()`).
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects; CR4.TSD is clear in ring 0 anyway.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The initial APIC ID from CPUID leaf 1 (valid before the LAPIC is touched).
pub fn detect_initial_apic_id() -> u8 {
    CpuId::new().get_feature_info().map_or(0, |f| f.initial_local_apic_id())
}
