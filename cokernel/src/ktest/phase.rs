//! The phase engine's constant-time transform, checked with dudect (judged under `-icount` only).

use alloc::vec::Vec;

use super::{TestResult, Verdict, virtual_clock};
use crate::arch::{self, cpu};
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

pub(super) fn phase_transform_is_constant_time_dudect() -> TestResult {
    if !virtual_clock() {
        return Err(Verdict::Skip("timing is judged under -icount only (this clock follows the host)"));
    }
    let (t, n) = dudect_run(ct::triangle, 0xffff_ffff);
    arch::console::console_write(format_args!("# dudect triangle: |t| = {:.2} over {n} runs\n", t.abs()));
    let constant = dudect::TTest::t_is_constant_time(t);
    ensure!(constant, "|t| = {:.2} >= {}", t.abs(), dudect::THRESHOLD);
    Ok(())
}

pub(super) fn phase_dudect_detects_the_branchy_control() -> TestResult {
    if !virtual_clock() {
        return Err(Verdict::Skip("timing is judged under -icount only (this clock follows the host)"));
    }
    let (t, n) = dudect_run(ct::triangle_branchy, 0xffff_ffff);
    arch::console::console_write(format_args!("# dudect branchy control: |t| = {:.2} over {n} runs\n", t.abs()));
    let constant = dudect::TTest::t_is_constant_time(t);
    ensure!(!constant, "the test could not tell a data-dependent loop apart (|t| = {:.2})", t.abs());
    Ok(())
}
