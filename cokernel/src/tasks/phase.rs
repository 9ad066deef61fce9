//! The phase-engine task: a bank of numerically controlled oscillators advanced at 1 kHz with
//! branchless transforms, and a group of equal-period workers whose first releases are staggered
//! by golden-ratio (Weyl) offsets so their jobs rarely coincide. `hauki.stagger=off` releases them
//! all at the same phase instead, for comparison.

use crate::phase::{ct, nco::Nco, weyl};
use crate::rt::prio::TaskId;
use crate::rt::sched::Error;
use crate::tasks::api::{self, Periodic, Shared};

/// The oscillator bank's period: 1 ms (its tick rate is 1 kHz).
pub const PERIOD_NS: u64 = 1_000_000;
/// Oscillator frequencies in mHz.
pub const NCO_MILLIHZ: [u64; 4] = [500, 1000, 2500, 7000];
/// Equal-period workers.
pub const WORKERS: usize = 4;
/// The workers' common period.
pub const WORKER_PERIOD_NS: u64 = 1_000_000;
/// What each worker's job spins for.
pub const WORKER_WORK_NS: u64 = 20_000;

/// The oscillator bank after its latest tick, for telemetry and the display.
#[derive(Clone, Copy, Debug, Default)]
pub struct State {
    /// Each oscillator's phase (0.32 fraction of a cycle).
    pub phases: [u32; 4],
    /// Its sine, Q1.30.
    pub sines: [i32; 4],
    /// Its triangle wave (`phase::ct::triangle`).
    pub triangles: [u32; 4],
    /// Ticks so far (0: not run yet).
    pub steps: u64,
}

/// The latest [`State`], written by the phase task every tick.
pub static STATE: Shared<State> = Shared::new(State { phases: [0; 4], sines: [0; 4], triangles: [0; 4], steps: 0 });
/// Each worker's task and release offset (ns after the group's epoch), once started.
pub static WORKER_IDS: Shared<[Option<(TaskId, u64)>; WORKERS]> = Shared::new([None; WORKERS]);
/// Whether the workers' releases are staggered by golden-ratio offsets (`hauki.stagger`).
pub static STAGGERED: Shared<bool> = Shared::new(true);

/// Starts the phase task and the workers, staggered or all at one phase.
pub fn start(stagger: bool) -> Result<(), Error> {
    STAGGERED.with(|s| *s = stagger);
    Periodic::new("phase").priority(super::PRIO_PHASE).period_ns(PERIOD_NS).spawn(run)?;
    const NAMES: [&str; WORKERS] = ["worker0", "worker1", "worker2", "worker3"];
    // One epoch for the group, far enough ahead for all of them to be set up.
    let epoch = api::now_tsc() + crate::arch::tsc::ns_to_ticks(WORKER_PERIOD_NS);
    for (k, name) in NAMES.iter().enumerate() {
        let phase = if stagger { weyl::offset(k as u64, WORKER_PERIOD_NS) } else { 0 };
        let t = Periodic::new(name)
            .priority(super::PRIO_WORKERS + k as u8)
            .period_ns(WORKER_PERIOD_NS)
            .epoch_tsc(epoch)
            .phase_ns(phase)
            .spawn(worker)?;
        WORKER_IDS.with(|w| w[k] = Some((t, phase)));
    }
    Ok(())
}

fn run(_: usize) -> ! {
    let mut bank = NCO_MILLIHZ.map(|f| Nco::from_frequency(f, 1_000_000_000 / PERIOD_NS));
    let mut steps = 0u64;
    loop {
        api::wait_next_period();
        let mut s = State { steps, ..State::default() };
        for (i, n) in bank.iter_mut().enumerate() {
            let p = n.advance();
            s.phases[i] = p;
            s.sines[i] = ct::sine(p);
            s.triangles[i] = ct::triangle(p);
        }
        steps += 1;
        s.steps = steps;
        STATE.with(|x| *x = s);
    }
}

fn worker(_: usize) -> ! {
    loop {
        api::wait_next_period();
        api::spin_ns(WORKER_WORK_NS);
    }
}
