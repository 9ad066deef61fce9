//! TSC frequency: stated by the CPU (CPUID 0x15) or hypervisor (0x40000010) when given, else
//! measured against the HPET (when ACPI lists one) or the PIT (always on a PC).
//!
//! Windows are short (1 ms HPET, 2 ms PIT) because boot time counts; both references are exact
//! under QEMU, and on hardware the error is well under 0.1 %.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;

use super::cpu::rdtsc;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);

/// Where the TSC frequency came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Stated by the CPU (leaf 0x15) or the hypervisor (leaf 0x40000010).
    Cpuid,
    /// Measured against the HPET's main counter (median of three 1 ms windows).
    Hpet,
    /// Measured against PIT channel 2 (one 2 ms window).
    Pit,
}

impl Source {
    /// The name the boot record uses (`cpuid`, `hpet`, `pit`).
    pub fn name(self) -> &'static str {
        match self {
            Source::Cpuid => "cpuid",
            Source::Hpet => "hpet",
            Source::Pit => "pit",
        }
    }
}

/// TSC ticks per second, as [`calibrate`] determined it; 0 before.
pub fn hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds in `ticks` TSC ticks.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    let hz = hz().max(1);
    (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64
}

/// TSC ticks in `ns` nanoseconds.
pub fn ns_to_ticks(ns: u64) -> u64 {
    (u128::from(ns) * u128::from(hz()) / 1_000_000_000) as u64
}

/// Determines and records the TSC frequency.
pub fn calibrate(stated: Option<u64>, hpet_phys: Option<u64>) -> (u64, Source) {
    let (hz, src) = if let Some(hz) = stated {
        (hz, Source::Cpuid)
    } else if let Some(hz) = hpet_phys.and_then(by_hpet) {
        (hz, Source::Hpet)
    } else {
        (by_pit(), Source::Pit)
    };
    TSC_HZ.store(hz, Ordering::Relaxed);
    (hz, src)
}

fn by_hpet(phys: u64) -> Option<u64> {
    let base = super::mm::map_mmio(phys, 4096);
    let reg = |off: u64| (base + off) as *mut u64;
    // SAFETY: HPET general registers (capabilities 0x0, configuration 0x10, main counter 0xf0) in
    // the page mapped uncached above.
    unsafe {
        let cap = reg(0x00).read_volatile();
        let period_fs = cap >> 32;
        if period_fs == 0 || period_fs > 100_000_000 {
            return None; // not a sane HPET (the spec caps the period at 100 ns)
        }
        let wide = cap & (1 << 13) != 0;
        let cfg = reg(0x10).read_volatile();
        if cfg & 1 == 0 {
            reg(0x10).write_volatile(cfg | 1);
        }
        let read = || {
            let c = reg(0xf0).read_volatile();
            if wide { c } else { c & 0xffff_ffff }
        };
        let elapsed =
            |from: u64, to: u64| if wide { to.wrapping_sub(from) } else { to.wrapping_sub(from) & 0xffff_ffff };
        let window_ticks = 1_000_000_000_000 / period_fs; // 1 ms
        // A TSC read bracketed by two counter reads at most 10 µs apart, else again: under
        // emulation the host may stop the guest between two reads, and a calibration that
        // straddles such a stall is off by any factor (a 71 MHz TSC was seen on a loaded host).
        let bracket_ticks = window_ticks / 100;
        let sample = || -> Option<(u64, u64)> {
            for _ in 0..1000 {
                let a = read();
                let t = rdtsc();
                let b = read();
                if elapsed(a, b) <= bracket_ticks {
                    return Some((a + elapsed(a, b) / 2, t));
                }
            }
            None
        };
        let mut rates = [0u64; 3];
        for r in &mut rates {
            let (c0, t0) = sample()?;
            while elapsed(c0, read()) < window_ticks {
                core::hint::spin_loop();
            }
            let (c1, t1) = sample()?;
            let fs = u128::from(elapsed(c0, c1)) * u128::from(period_fs);
            *r = (u128::from(t1 - t0) * 1_000_000_000_000_000 / fs) as u64;
        }
        reg(0x10).write_volatile(cfg);
        // The median of three: one window with a stall inside it (not between the bracketed
        // reads) cannot move the result.
        rates.sort_unstable();
        Some(rates[1])
    }
}

fn by_pit() -> u64 {
    const PIT_HZ: u64 = 1_193_182;
    const WINDOW: u64 = PIT_HZ * 2 / 1000; // 2 ms
    const BRACKET: u64 = PIT_HZ / 100_000; // 10 us: a TSC read this close to both counter reads
    let mut p61 = Port::<u8>::new(0x61);
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    // SAFETY: the PIT and port 0x61 are ISA hardware nothing else drives during bring-up; channel
    // 2 (the speaker's, gated through port 0x61 with the speaker off) is restored below.
    unsafe {
        let g = p61.read();
        p61.write((g & !0x02) | 0x01); // gate channel 2 on, speaker off
        // Channel 2 counts down from 0xffff (mode 0, binary): ~55 ms before it wraps.
        cmd.write(0b1011_0000);
        ch2.write(0xff);
        ch2.write(0xff);
        // Latches and reads channel 2's count (it counts down).
        let count = || {
            let (mut cmd, mut ch2) = (Port::<u8>::new(0x43), Port::<u8>::new(0x42));
            cmd.write(0b1000_0000);
            let lo = u64::from(ch2.read());
            let hi = u64::from(ch2.read());
            (hi << 8) | lo
        };
        // A TSC read bracketed by two counter reads at most BRACKET apart, so an emulator stopped
        // between them (a busy host) cannot skew the pair.
        let sample = || -> Option<(u64, u64)> {
            for _ in 0..1000 {
                let a = count();
                let t = rdtsc();
                let b = count();
                if b <= a && a - b <= BRACKET {
                    return Some((a - (a - b) / 2, t));
                }
            }
            None
        };
        let mut rates = [0u64; 3];
        let mut got = 0;
        for r in &mut rates {
            cmd.write(0b1011_0000);
            ch2.write(0xff);
            ch2.write(0xff);
            let Some((c0, t0)) = sample() else { break };
            while c0.saturating_sub(count()) < WINDOW {
                core::hint::spin_loop();
            }
            let Some((c1, t1)) = sample() else { break };
            let ticks = c0.saturating_sub(c1).max(1);
            *r = (u128::from(t1 - t0) * u128::from(PIT_HZ) / u128::from(ticks)) as u64;
            got += 1;
        }
        p61.write(g);
        let rates = &mut rates[..got];
        rates.sort_unstable();
        rates.get(rates.len() / 2).copied().unwrap_or(0)
    }
}
