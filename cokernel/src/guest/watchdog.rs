//! The judgement of Linux's watchdog: is Linux still taking its events?
//!
//! Linux is alive when it takes the events the co-kernel has for it (interrupts delivered to its
//! gates). To make sure there is always something to take, the co-kernel keeps a *heartbeat*
//! pending: at a check where Linux has taken nothing since the last one and nothing is pending,
//! it logs one (a spare clock event, which Linux's clock-event code treats as early and harmless).
//! A Linux that spins or halts with its virtual flag off, loops in faults, or never registers its
//! IDT never takes it.
//!
//! Linux is judged stuck only when all three hold:
//! - it has taken no event for `limit` TSC ticks (`boot_limit` before it took its first event:
//!   early boot runs long with interrupts off);
//! - at least `checks` consecutive checks found it had been *given the CPU* since the previous
//!   one (the idle context was resumed) and had still taken nothing;
//! - since its last event it has *run* for at least half that limit (the CPU time the scheduler
//!   accounted to the idle context).
//!
//! With Linux on several CPUs, a fourth rule: every other CPU Linux runs on has also run Linux
//! for half the limit since this one's last event. Linux's CPUs wait for each other with
//! interrupts off (a spinlock taken with `spin_lock_irqsave`, a TLB shootdown); when the real-time
//! tasks on one shared CPU leave its Linux no time, Linux on another CPU can wait for it, taking
//! nothing, for as long as that lasts. That is lock-holder preemption, not a Linux failure: the
//! CPU Linux waits *for* is the one to judge, and it is judged by its own checks once it runs.
//! (An idle Linux CPU halts in its own context, so its time counts: a real lock-up beside an
//! idle CPU is still caught within the limit.)
//!
//! The second rule keeps a stalled host (an emulator descheduled for seconds: the TSC jumps, no
//! code ran) from counting as Linux's fault, the third real-time overload (Linux resumed often but
//! for moments: on a slow or busy machine a 10 kHz task can take nearly all of the CPU). The worst
//! detection time is `limit` plus one check period while the real-time tasks leave Linux at least
//! half the CPU; under heavier real-time load it is the time Linux needs to get `limit / 2` of CPU.
//! The checks run every `limit / checks`.
//!
//! A soft lock-up (Linux's flag on, preemption off) is not the co-kernel's business: Linux takes
//! its events and its own detector reports it.

#![forbid(unsafe_code)]

/// Most CPUs Linux can run on (the co-kernel's own limit).
pub const CPUS: usize = 16;

/// What one check sees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// TSC now.
    pub now: u64,
    /// Events Linux has taken since it was entered (monotonic).
    pub taken: u64,
    /// TSC when it last took one (its entry time before the first).
    pub taken_at: u64,
    /// Times the idle context (Linux) was resumed (monotonic).
    pub resumes: u64,
    /// An event is logged for Linux and not yet taken.
    pub pending: bool,
    /// CPU time (TSC ticks) the idle context (Linux) has run, as the scheduler accounts it
    /// (monotonic).
    pub cpu: u64,
    /// The same for Linux's other CPUs, by CPU index: `None` for this CPU and for CPUs Linux
    /// does not run on.
    pub others: [Option<u64>; CPUS],
}

/// What the caller does after a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    Alive,
    /// Log a heartbeat event for Linux.
    Heartbeat,
    /// Linux is stuck: the caller takes the idle context over.
    Stuck {
        /// TSC ticks since Linux last took an event (or was entered).
        waited: u64,
        /// Linux has taken no event since it was entered (judged by the boot limit).
        booting: bool,
    },
}

/// The watchdog's state across checks (one per Linux; `Watchdog::new` again after a restart).
#[derive(Clone, Debug)]
pub struct Watchdog {
    limit: u64,
    boot_limit: u64,
    checks: u32,
    last_taken: u64,
    last_resumes: u64,
    /// Linux's CPU time when it last took an event (or was entered).
    cpu_at_taken: u64,
    /// Linux's other CPUs' CPU time then.
    others_at_taken: [Option<u64>; CPUS],
    quiet: u32,
    started: bool,
    excused: bool,
}

impl Watchdog {
    /// A watchdog for a Linux entered when `o` was observed (events taken, resumes and CPU time
    /// counted so far). `limit` and `boot_limit` are TSC ticks; `checks` ≥ 1.
    pub fn new(limit: u64, boot_limit: u64, checks: u32, o: Observation) -> Watchdog {
        Watchdog {
            limit,
            boot_limit,
            checks: checks.max(1),
            last_taken: o.taken,
            last_resumes: o.resumes,
            cpu_at_taken: o.cpu,
            others_at_taken: o.others,
            quiet: 0,
            started: false,
            excused: false,
        }
    }

    /// The last check would have judged Linux stuck here but another of its CPUs had not had
    /// half the limit of CPU time since (the fourth rule).
    pub fn excused(&self) -> bool {
        self.excused
    }

    /// Checks done in a row that found Linux had the CPU and took nothing.
    pub fn quiet_checks(&self) -> u32 {
        self.quiet
    }

    /// One check.
    pub fn check(&mut self, o: Observation) -> Verdict {
        self.excused = false;
        if o.taken != self.last_taken {
            self.last_taken = o.taken;
            self.last_resumes = o.resumes;
            self.cpu_at_taken = o.cpu;
            self.others_at_taken = o.others;
            self.quiet = 0;
            self.started = true;
            return Verdict::Alive;
        }
        if o.resumes != self.last_resumes {
            self.last_resumes = o.resumes;
            self.quiet = self.quiet.saturating_add(1);
        }
        let waited = o.now.saturating_sub(o.taken_at);
        let limit = if self.started { self.limit } else { self.boot_limit };
        let ran = o.cpu.saturating_sub(self.cpu_at_taken);
        if self.quiet >= self.checks && waited >= limit && ran >= limit / 2 {
            // A CPU that joined Linux since (no time then) is not waited for.
            let starved = o.others.iter().zip(&self.others_at_taken).any(|pair| match pair {
                (Some(now), Some(then)) => now.saturating_sub(*then) < limit / 2,
                _ => false,
            });
            if !starved {
                return Verdict::Stuck { waited, booting: !self.started };
            }
            self.excused = true;
        }
        if o.pending { Verdict::Alive } else { Verdict::Heartbeat }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 1000;
    const BOOT: u64 = 10_000;
    const CHECKS: u32 = 4;
    const PERIOD: u64 = LIMIT / CHECKS as u64;

    /// A simulated Linux: how it responds to events, checked every PERIOD.
    struct Sim {
        w: Watchdog,
        now: u64,
        taken: u64,
        taken_at: u64,
        resumes: u64,
        pending: bool,
        cpu: u64,
        /// The share of each period Linux runs when it runs (per mille).
        share: u64,
        /// Linux on another CPU (CPU 1): its CPU time, and the share of each period it gets.
        sibling: Option<u64>,
        sibling_share: u64,
    }

    impl Sim {
        fn new() -> Sim {
            Sim {
                w: Watchdog::new(LIMIT, BOOT, CHECKS, Observation::default()),
                now: 0,
                taken: 0,
                taken_at: 0,
                resumes: 0,
                pending: false,
                cpu: 0,
                share: 900,
                sibling: None,
                sibling_share: 1000,
            }
        }
        /// Advances one period; Linux gets the CPU if `runs`, takes what is pending if `takes`.
        fn period(&mut self, runs: bool, takes: bool) -> Verdict {
            self.now += PERIOD;
            if let Some(t) = &mut self.sibling {
                *t += PERIOD * self.sibling_share / 1000;
            }
            if runs {
                self.resumes += 3;
                self.cpu += PERIOD * self.share / 1000;
                if takes && self.pending {
                    self.pending = false;
                    self.taken += 1;
                    self.taken_at = self.now - 1;
                }
            }
            let v = self.w.check(Observation {
                now: self.now,
                taken: self.taken,
                taken_at: self.taken_at,
                resumes: self.resumes,
                pending: self.pending,
                cpu: self.cpu,
                others: core::array::from_fn(|c| if c == 1 { self.sibling } else { None }),
            });
            if v == Verdict::Heartbeat {
                self.pending = true;
            }
            v
        }
    }

    fn first_stuck(sim: &mut Sim, runs: bool, takes: bool, max: usize) -> Option<(usize, Verdict)> {
        (1..=max).find_map(|i| match sim.period(runs, takes) {
            v @ Verdict::Stuck { .. } => Some((i, v)),
            _ => None,
        })
    }

    #[test]
    fn a_healthy_idle_linux_only_gets_heartbeats() {
        let mut s = Sim::new();
        for _ in 0..1000 {
            assert!(!matches!(s.period(true, true), Verdict::Stuck { .. }));
        }
        assert!(s.taken > 400, "heartbeats were taken: {}", s.taken);
    }

    /// Linux, from now on taking nothing, is judged stuck within the limit plus a period of its
    /// last event.
    fn assert_caught_within_the_limit(s: &mut Sim) {
        let t0 = s.taken_at;
        let (_, v) = first_stuck(s, true, false, 100).expect("caught");
        assert!(matches!(v, Verdict::Stuck { booting: false, .. }));
        assert!(s.now - t0 >= LIMIT && s.now - t0 <= LIMIT + 2 * PERIOD, "caught after {}", s.now - t0);
    }

    #[test]
    fn a_linux_that_takes_nothing_is_stuck_within_limit_plus_a_period() {
        let mut s = Sim::new();
        for _ in 0..10 {
            s.period(true, true);
        }
        assert_caught_within_the_limit(&mut s);
    }

    #[test]
    fn a_linux_that_never_takes_an_event_is_caught_by_the_boot_limit() {
        let mut s = Sim::new();
        let (_, v) = first_stuck(&mut s, true, false, 1000).expect("caught");
        assert!(matches!(v, Verdict::Stuck { booting: true, .. }));
        assert!(s.now >= BOOT && s.now <= BOOT + PERIOD);
    }

    #[test]
    fn real_time_overload_is_not_linux_s_fault() {
        let mut s = Sim::new();
        s.period(true, true);
        s.period(true, true);
        // Linux gets no CPU for 20 limits, then takes its events at once.
        assert!(first_stuck(&mut s, false, false, 80).is_none());
        assert!(!matches!(s.period(true, true), Verdict::Stuck { .. }));
        assert!(first_stuck(&mut s, true, true, 100).is_none());
    }

    #[test]
    fn a_linux_starved_by_real_time_tasks_is_not_stuck_until_it_had_half_the_limit_of_cpu() {
        let mut s = Sim::new();
        for _ in 0..5 {
            s.period(true, true);
        }
        while s.taken_at != s.now - 1 {
            s.period(true, true); // until Linux has just taken an event
        }
        // Resumed at every check but for 1% of the time (a 10 kHz task on a slow host): not
        // Linux's fault for 10 limits...
        s.share = 10;
        let t0 = s.taken_at;
        assert!(first_stuck(&mut s, true, false, 10 * CHECKS as usize).is_none());
        // ...and once it runs again and still takes nothing, caught when it has had limit/2.
        s.share = 1000;
        let (_, v) = first_stuck(&mut s, true, false, 100).expect("caught");
        assert!(matches!(v, Verdict::Stuck { booting: false, .. }));
        assert!(s.now - t0 > 10 * LIMIT);
    }

    #[test]
    fn a_host_stall_is_not_linux_s_fault() {
        let mut s = Sim::new();
        for _ in 0..5 {
            s.period(true, true);
        }
        // The emulator stops for 50 limits: one check sees the TSC jump, Linux ran once before.
        s.now += 50 * LIMIT;
        assert!(!matches!(s.period(true, false), Verdict::Stuck { .. }));
        assert!(!matches!(s.period(true, true), Verdict::Stuck { .. }));
        assert!(first_stuck(&mut s, true, true, 100).is_none());
    }

    /// A Sim with Linux on a second CPU, both having just taken events.
    fn with_sibling() -> Sim {
        let mut s = Sim::new();
        s.sibling = Some(0);
        s.w = Watchdog::new(
            LIMIT,
            BOOT,
            CHECKS,
            Observation { others: core::array::from_fn(|c| (c == 1).then_some(0)), ..Observation::default() },
        );
        for _ in 0..5 {
            s.period(true, true);
        }
        while s.taken_at != s.now - 1 {
            s.period(true, true);
        }
        s
    }

    #[test]
    fn a_cpu_waiting_for_a_starved_sibling_is_not_stuck_until_the_sibling_has_run() {
        let mut s = with_sibling();
        // The real-time tasks on CPU 1 leave its Linux nothing for 20 limits; Linux here waits
        // for it with interrupts off (it runs, takes nothing): excused, not stuck.
        s.sibling_share = 0;
        assert!(first_stuck(&mut s, true, false, 20 * CHECKS as usize).is_none());
        assert!(s.w.excused(), "the last check excused Linux here");
        // CPU 1 runs again but Linux here still takes nothing: caught once CPU 1 has had half
        // the limit (two periods at full share), not before.
        s.sibling_share = 1000;
        let (i, v) = first_stuck(&mut s, true, false, 100).expect("caught");
        assert!(matches!(v, Verdict::Stuck { booting: false, .. }));
        assert_eq!(i as u64, LIMIT / 2 / PERIOD, "caught after {i} periods of the sibling running");
        assert!(!s.w.excused());
    }

    #[test]
    fn a_lock_up_beside_an_idle_sibling_is_caught_within_the_limit() {
        // An idle Linux CPU halts in its own context: its time counts in full.
        let mut s = with_sibling();
        assert_caught_within_the_limit(&mut s);
    }

    #[test]
    fn a_cpu_that_joins_linux_later_is_not_waited_for() {
        let mut s = Sim::new();
        for _ in 0..5 {
            s.period(true, true);
        }
        // CPU 1 starts Linux after this CPU's last event and gets no time: not a reason to wait.
        s.sibling = Some(0);
        s.sibling_share = 0;
        assert!(first_stuck(&mut s, true, false, 100).is_some());
    }

    #[test]
    fn a_pending_event_is_not_doubled_by_a_heartbeat() {
        let mut w = Watchdog::new(LIMIT, BOOT, CHECKS, Observation { taken: 5, resumes: 7, ..Observation::default() });
        let o = Observation { now: 10, taken: 5, taken_at: 0, resumes: 8, pending: true, ..Observation::default() };
        assert_eq!(w.check(o), Verdict::Alive);
        assert_eq!(w.check(Observation { pending: false, ..o }), Verdict::Heartbeat);
        assert_eq!(w.quiet_checks(), 1);
    }
}
