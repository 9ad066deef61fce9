//! Exact discrete-event simulation of fixed-priority preemptive scheduling of periodic tasks.
//!
//! Task `i` releases job `j` at `phase + j·period` for every release time in `[0, horizon)`; each
//! job needs `exec` time units and its deadline is its next release (`release + period`). At
//! every instant the processor runs the pending job of the most urgent task — the highest `prio`
//! number, ties broken by the lower task index — and a task's own jobs run in release order.
//! Scheduling costs nothing and time is integral, so the simulation is exact: it jumps from event
//! to event (a release or a completion) instead of ticking.
//!
//! Every released job is simulated until it completes, even past `horizon`, so each result
//! counts all `jobs` released in `[0, horizon)`, the `worst_response` (completion − release) among
//! them, and the `misses` (response > period).
//!
//! Use: with [`super::weyl::offset`] phases, equal-period tasks no longer release together, and
//! the lowest-priority task stops waiting for all the others (see the headline test).
//!
//! Limits: at most `N` tasks are simulated (later ones are ignored); a task with `period == 0`
//! releases no jobs. Integer-only, no allocation; cost is O(events × tasks).

use heapless::Vec;

/// A periodic task for [`simulate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimTask {
    /// Time between releases (also the relative deadline).
    pub period: u64,
    /// First release time.
    pub phase: u64,
    /// Execution time of every job.
    pub exec: u64,
    /// Priority: higher is more urgent.
    pub prio: u8,
}

/// What happened to one task over the simulation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimResult {
    /// Largest completion − release over its jobs (0 if it had none).
    pub worst_response: u64,
    /// Jobs released in `[0, horizon)` (all are simulated to completion).
    pub jobs: u64,
    /// Jobs whose response exceeded the period.
    pub misses: u64,
}

#[derive(Clone, Copy)]
struct State {
    /// Jobs released so far.
    released: u64,
    /// Jobs completed so far (the head pending job is number `done`).
    done: u64,
    /// Jobs to release in total.
    total: u64,
    /// Remaining execution of the head pending job.
    remaining: u64,
}

/// Simulates `tasks` (the first `N` of them) for releases in `[0, horizon)`; one result per
/// simulated task, in task order.
pub fn simulate<const N: usize>(tasks: &[SimTask], horizon: u64) -> Vec<SimResult, N> {
    let tasks = &tasks[..tasks.len().min(N)];
    let mut state: Vec<State, N> = Vec::new();
    let mut results: Vec<SimResult, N> = Vec::new();
    for t in tasks {
        let total = if t.period == 0 || t.phase >= horizon { 0 } else { (horizon - t.phase).div_ceil(t.period) };
        // Cannot fail: at most N tasks.
        let _ = state.push(State { released: 0, done: 0, total, remaining: t.exec });
        let _ = results.push(SimResult { jobs: total, ..SimResult::default() });
    }
    let release_of = |t: &SimTask, j: u64| t.phase + j * t.period; // < horizon for j < total

    let mut now = 0u64;
    loop {
        // Release every job due by now and find the next future release.
        let mut next_release = u64::MAX;
        for (t, s) in tasks.iter().zip(state.iter_mut()) {
            while s.released < s.total && release_of(t, s.released) <= now {
                s.released += 1;
            }
            if s.released < s.total {
                next_release = next_release.min(release_of(t, s.released));
            }
        }
        // Most urgent task with a pending job: highest prio, then lowest index.
        let mut run: Option<usize> = None;
        for (i, (t, s)) in tasks.iter().zip(state.iter()).enumerate() {
            if s.done < s.released && run.is_none_or(|r| t.prio > tasks[r].prio) {
                run = Some(i);
            }
        }
        let Some(i) = run else {
            if next_release == u64::MAX {
                break; // nothing pending, nothing left to release
            }
            now = next_release;
            continue;
        };
        // Run it until it completes or the next release may preempt it.
        let s = &mut state[i];
        let finish = now.saturating_add(s.remaining);
        if finish <= next_release {
            now = finish;
            let response = now - release_of(&tasks[i], s.done);
            let r = &mut results[i];
            r.worst_response = r.worst_response.max(response);
            if response > tasks[i].period {
                r.misses += 1;
            }
            s.done += 1;
            s.remaining = tasks[i].exec;
        } else {
            s.remaining -= next_release - now;
            now = next_release;
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::super::weyl;
    use super::*;
    use proptest::prelude::*;

    fn task(period: u64, phase: u64, exec: u64, prio: u8) -> SimTask {
        SimTask { period, phase, exec, prio }
    }

    #[test]
    fn single_task() {
        let r: Vec<SimResult, 1> = simulate(&[task(10, 3, 4, 0)], 100);
        // Releases at 3, 13, …, 93: 10 jobs, each answered in exactly 4.
        assert_eq!(r[0], SimResult { worst_response: 4, jobs: 10, misses: 0 });
    }

    #[test]
    fn two_tasks_with_preemption() {
        // High: period 5, exec 2. Low: period 10, exec 4, both released at 0.
        // 0-2 H, 2-5 L (3 done), 5-7 H, 7-8 L completes at 8 → response 8.
        let r: Vec<SimResult, 2> = simulate(&[task(5, 0, 2, 2), task(10, 0, 4, 1)], 10);
        assert_eq!(r[0], SimResult { worst_response: 2, jobs: 2, misses: 0 });
        assert_eq!(r[1], SimResult { worst_response: 8, jobs: 1, misses: 0 });
        // The same with the low task given the higher priority: H waits 4 at first.
        let r: Vec<SimResult, 2> = simulate(&[task(5, 0, 2, 1), task(10, 0, 4, 2)], 10);
        assert_eq!(r[0].worst_response, 6);
        assert_eq!(r[0].misses, 1);
        assert_eq!(r[1].worst_response, 4);
    }

    #[test]
    fn ties_go_to_the_lower_index_and_overload_misses() {
        let r: Vec<SimResult, 2> = simulate(&[task(10, 0, 3, 1), task(10, 0, 3, 1)], 10);
        assert_eq!(r[0].worst_response, 3);
        assert_eq!(r[1].worst_response, 6);
        // Overload: utilisation 1.2; the low task's backlog grows and it misses; all jobs finish.
        let r: Vec<SimResult, 2> = simulate(&[task(10, 0, 6, 2), task(10, 0, 6, 1)], 50);
        assert_eq!(r[0], SimResult { worst_response: 6, jobs: 5, misses: 0 });
        assert_eq!(r[1].jobs, 5);
        // High runs 0-6, 10-16, …, 40-46; low gets the gaps: its jobs complete at 18, 30, 48,
        // 54, 60 (responses 18, 20, 28, 24, 20), all late.
        assert_eq!(r[1].misses, 5);
        assert_eq!(r[1].worst_response, 28);
    }

    #[test]
    fn degenerate_inputs() {
        let r: Vec<SimResult, 4> =
            simulate(&[task(0, 0, 5, 1), task(10, 100, 5, 1), task(10, 0, 0, 1), task(1, 0, 1, 0)], 100);
        assert_eq!(r[0].jobs, 0);
        assert_eq!(r[1].jobs, 0);
        assert_eq!(r[2], SimResult { worst_response: 0, jobs: 10, misses: 0 });
        assert_eq!(r[3], SimResult { worst_response: 1, jobs: 100, misses: 0 });
        // More tasks than N: only the first N are simulated.
        let r: Vec<SimResult, 1> = simulate(&[task(10, 0, 1, 0), task(10, 0, 9, 9)], 10);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].worst_response, 1);
    }

    /// The headline: 8 tasks of period 1000 and execution 50 with distinct priorities. Released
    /// together, the lowest-priority task waits for the seven others (response 8 × 50 = 400).
    /// With golden-ratio phases (0, 618, 236, 854, 472, 90, 708, 326) the smallest gap between
    /// releases is 90 > 50, so no job ever waits: every response is 50.
    #[test]
    fn golden_offsets_stagger_equal_periods() {
        const PERIOD: u64 = 1000;
        let naive: [SimTask; 8] = core::array::from_fn(|i| task(PERIOD, 0, 50, 8 - i as u8));
        let golden: [SimTask; 8] =
            core::array::from_fn(|i| task(PERIOD, weyl::offset(i as u64, PERIOD), 50, 8 - i as u8));
        let horizon = 10 * PERIOD;
        let rn: Vec<SimResult, 8> = simulate(&naive, horizon);
        let rg: Vec<SimResult, 8> = simulate(&golden, horizon);
        let worst_n = rn.iter().map(|r| r.worst_response).max().unwrap();
        let worst_g = rg.iter().map(|r| r.worst_response).max().unwrap();
        println!(
            "equal-period staggering, 8 × (period 1000, exec 50): lowest-priority worst response naive {} golden {}",
            rn[7].worst_response, rg[7].worst_response
        );
        assert_eq!(rn[7].worst_response, 400);
        assert_eq!(worst_n, 400);
        for (i, r) in rn.iter().enumerate() {
            assert_eq!(r.worst_response, 50 * (i as u64 + 1));
        }
        assert!(rg[7].worst_response < rn[7].worst_response);
        assert_eq!(worst_g, 50);
        assert!(rg.iter().all(|r| r.jobs == 10 && r.misses == 0));
    }

    /// Staggering still helps when jobs must overlap: 16 tasks of period 1000 and exec 60
    /// (utilisation 0.96). Released together, the last one completes after 16 × 60 = 960.
    #[test]
    fn golden_offsets_with_overlap() {
        const PERIOD: u64 = 1000;
        let mk = |golden: bool| -> [SimTask; 16] {
            core::array::from_fn(|i| {
                let phase = if golden { weyl::offset(i as u64, PERIOD) } else { 0 };
                task(PERIOD, phase, 60, 16 - i as u8)
            })
        };
        let rn: Vec<SimResult, 16> = simulate(&mk(false), 10 * PERIOD);
        let rg: Vec<SimResult, 16> = simulate(&mk(true), 10 * PERIOD);
        let worst = |r: &Vec<SimResult, 16>| r.iter().map(|x| x.worst_response).max().unwrap();
        println!("16 × (period 1000, exec 60): worst response naive {} golden {}", worst(&rn), worst(&rg));
        assert_eq!(worst(&rn), 960);
        assert!(worst(&rg) < worst(&rn));
    }

    fn ll_bound(n: usize) -> f64 {
        n as f64 * (2f64.powf(1.0 / n as f64) - 1.0)
    }

    proptest! {
        #[test]
        fn response_at_least_exec(
            raw in proptest::collection::vec((1u64..50, 0u64..60, 0u64..20, 0u8..4), 1..6),
        ) {
            let tasks: std::vec::Vec<SimTask> =
                raw.iter().map(|&(p, ph, e, pr)| task(p, ph, e, pr)).collect();
            let r: Vec<SimResult, 6> = simulate(&tasks, 300);
            for (t, r) in tasks.iter().zip(r.iter()) {
                if r.jobs > 0 {
                    prop_assert!(r.worst_response >= t.exec);
                }
                prop_assert!(r.misses <= r.jobs);
                prop_assert_eq!(r.jobs, (300 - t.phase.min(300)).div_ceil(t.period));
            }
        }

        /// Liu & Layland: rate-monotonic priorities and utilisation ≤ n(2^(1/n) − 1) ⇒ no misses,
        /// for any phases.
        #[test]
        fn rate_monotonic_under_liu_layland_never_misses(
            raw in proptest::collection::vec((0usize..6, 0u64..100, 1u64..1000), 1..6),
        ) {
            const PERIODS: [u64; 6] = [10, 20, 25, 40, 50, 100];
            let n = raw.len();
            let bound = ll_bound(n);
            // Scale the requested weights so total utilisation is just under the bound.
            let weight: u64 = raw.iter().map(|r| r.2).sum();
            let mut tasks: std::vec::Vec<SimTask> = raw
                .iter()
                .map(|&(pi, ph, w)| {
                    let period = PERIODS[pi];
                    let share = bound * w as f64 / weight as f64;
                    let exec = (share * period as f64).floor() as u64;
                    task(period, ph, exec, 0)
                })
                .collect();
            let u: f64 = tasks.iter().map(|t| t.exec as f64 / t.period as f64).sum();
            prop_assert!(u <= bound + 1e-12);
            // Rate-monotonic: shorter period, higher priority.
            for t in &mut tasks {
                t.prio = 255 - PERIODS.iter().position(|&p| p == t.period).unwrap() as u8;
            }
            let r: Vec<SimResult, 6> = simulate(&tasks, 100 + 3 * 200);
            for r in &r {
                prop_assert_eq!(r.misses, 0);
            }
        }
    }
}
