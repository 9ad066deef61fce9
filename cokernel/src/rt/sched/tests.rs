use super::*;
use proptest::prelude::*;

/// Spawns and runs the task's set-up up to its first wait, as the real task code does.
fn spawn_waiting(s: &mut Scheduler, spec: Spec) -> TaskId {
    let t = s.spawn(spec, 0).unwrap();
    let wait = match spec.kind {
        Kind::Periodic { .. } => Wait::Period,
        _ => Wait::Event,
    };
    s.block(t, wait);
    t
}

fn periodic(name: &'static str, prio: u8, period: u64, first: u64) -> Spec {
    Spec { name, prio, kind: Kind::Periodic { period, deadline: period, budget: 0 }, first_release: first }
}

fn event(name: &'static str, prio: u8, port: u16) -> Spec {
    Spec { name, prio, kind: Kind::Event { port }, first_release: 0 }
}

#[test]
fn idle_runs_when_nothing_else_is_ready() {
    let mut s = Scheduler::new(0);
    assert_eq!(s.schedule(0), IDLE);
    let t = spawn_waiting(&mut s, periodic("a", 10, 100, 50));
    assert_eq!(s.next_expiry(), Some(50));
    s.expire(49);
    assert_eq!(s.schedule(49), IDLE);
    s.expire(50);
    assert_eq!(s.schedule(50), t);
    assert_eq!(s.task(t).release, 50);
    assert_eq!(s.next_expiry(), Some(150));
    assert_eq!(s.complete_job(60).unwrap(), Outcome::Blocked);
    assert_eq!(s.schedule(60), IDLE);
    assert_eq!(s.task(t).stats.worst_response, 10);
}

#[test]
fn highest_priority_first_fifo_among_equals() {
    let mut s = Scheduler::new(0);
    let lo = spawn_waiting(&mut s, periodic("lo", 5, 100, 0));
    let hi = spawn_waiting(&mut s, periodic("hi", 9, 100, 0));
    let eq1 = spawn_waiting(&mut s, periodic("eq1", 7, 100, 0));
    let eq2 = spawn_waiting(&mut s, periodic("eq2", 7, 100, 0));
    s.expire(0);
    let mut order = Vec::new();
    for now in 1..=4 {
        let t = s.schedule(now);
        order.push(t);
        s.complete_job(now).unwrap();
    }
    assert_eq!(order, vec![hi, eq1, eq2, lo]);
    assert_eq!(s.schedule(5), IDLE);
}

#[test]
fn release_preempts_a_lower_priority_task() {
    let mut s = Scheduler::new(0);
    let lo = spawn_waiting(&mut s, periodic("lo", 5, 1000, 0));
    let hi = spawn_waiting(&mut s, periodic("hi", 9, 1000, 100));
    s.expire(0);
    assert_eq!(s.schedule(0), lo);
    s.expire(100);
    assert_eq!(s.schedule(100), hi, "the release preempts");
    s.complete_job(110).unwrap();
    assert_eq!(s.schedule(110), lo, "the preempted task resumes");
    assert_eq!(s.task(hi).stats.worst_response, 10);
    assert_eq!(s.task(lo).stats.cpu_time, 100);
}

#[test]
fn late_release_counts_a_miss_and_queues_the_job() {
    let mut s = Scheduler::new(0);
    let t = spawn_waiting(&mut s, periodic("t", 5, 100, 0));
    s.expire(0);
    s.schedule(0);
    s.expire(100); // next release while job 0 still runs
    s.expire(150);
    assert_eq!(s.task(t).stats.misses, 0, "not late yet at its own deadline edge");
    s.expire(200);
    assert_eq!(s.task(t).pending, 2);
    assert_eq!(s.task(t).stats.misses, 1, "one miss per late job, counted once");
    assert_eq!(s.complete_job(210).unwrap(), Outcome::Done(100), "queued job starts at once");
    assert_eq!(s.task(t).stats.misses, 1);
    assert_eq!(s.complete_job(220).unwrap(), Outcome::Done(200));
    assert_eq!(s.task(t).stats.misses, 2, "the job released at 100 finished at 220");
    assert_eq!(s.complete_job(230).unwrap(), Outcome::Blocked);
    assert_eq!(s.task(t).stats.completions, 3);
    assert_eq!(s.task(t).stats.releases, 3);
}

#[test]
fn budget_overrun_is_counted() {
    let mut s = Scheduler::new(0);
    let t = spawn_waiting(
        &mut s,
        Spec { name: "b", prio: 5, kind: Kind::Periodic { period: 100, deadline: 100, budget: 10 }, first_release: 0 },
    );
    s.expire(0);
    s.schedule(0);
    s.complete_job(5).unwrap();
    assert_eq!(s.task(t).stats.overruns, 0);
    s.expire(100);
    s.schedule(100);
    s.complete_job(120).unwrap();
    assert_eq!(s.task(t).stats.overruns, 1);
    assert_eq!(s.task(t).stats.misses, 0);
}

#[test]
fn events_are_counted_not_lost() {
    let mut s = Scheduler::new(0);
    let t = spawn_waiting(&mut s, event("e", 8, 3));
    assert_eq!(s.schedule(0), IDLE);
    s.post(3, 1).unwrap();
    assert_eq!(s.schedule(1), t);
    assert_eq!(s.task_mut(t).wake_value.take(), Some(1));
    s.post(3, 1).unwrap();
    s.post(3, 2).unwrap();
    assert_eq!(s.wait_event().unwrap(), Outcome::Done(3));
    assert_eq!(s.wait_event().unwrap(), Outcome::Blocked);
    // Two wake-ups by events (the first post, then the two waiting at wait_event): two releases.
    assert_eq!(s.task(t).stats.releases, 2);
    assert_eq!(s.schedule(2), IDLE);
    assert_eq!(s.post(4, 1), Err(Error::NoSuchObject));
    assert_eq!(s.spawn(event("dup", 8, 3), 0), Err(Error::PortInUse));
}

/// The classic inversion: L holds m, H wants m, M is ready. With inheritance L runs (at H's
/// priority) until it releases m, then H; M only after H.
#[test]
fn priority_inheritance_prevents_inversion() {
    let mut s = Scheduler::new(0);
    let m = s.mutex_create().unwrap();
    let l = spawn_waiting(&mut s, event("L", 2, 0));
    let mid = spawn_waiting(&mut s, event("M", 5, 1));
    let h = spawn_waiting(&mut s, event("H", 9, 2));
    s.post(0, 1).unwrap();
    assert_eq!(s.schedule(0), l);
    assert_eq!(s.mutex_lock(m).unwrap(), Outcome::Done(0));
    s.post(2, 1).unwrap();
    s.post(1, 1).unwrap();
    assert_eq!(s.schedule(1), h);
    assert_eq!(s.mutex_lock(m).unwrap(), Outcome::Blocked);
    assert_eq!(s.task(l).prio, 9, "owner inherits the waiter's priority");
    assert_eq!(s.schedule(2), l, "L, not M, runs while H waits");
    s.mutex_unlock(m).unwrap();
    assert_eq!(s.task(l).prio, 2, "back to base after release");
    assert_eq!(s.mutex_owner(m), Some(h));
    assert_eq!(s.schedule(3), h);
    assert_eq!(s.mutex_unlock(m), Ok(Outcome::Done(0)));
    assert_eq!(s.wait_event().unwrap(), Outcome::Blocked);
    assert_eq!(s.schedule(4), mid);
}

#[test]
fn inheritance_is_transitive() {
    let mut s = Scheduler::new(0);
    let (m1, m2) = (s.mutex_create().unwrap(), s.mutex_create().unwrap());
    let a = spawn_waiting(&mut s, event("A", 1, 0));
    let b = spawn_waiting(&mut s, event("B", 3, 1));
    let c = spawn_waiting(&mut s, event("C", 7, 2));
    s.post(0, 1).unwrap();
    s.schedule(0);
    s.mutex_lock(m1).unwrap(); // A holds m1
    s.post(1, 1).unwrap();
    assert_eq!(s.schedule(1), b);
    s.mutex_lock(m2).unwrap(); // B holds m2
    assert_eq!(s.mutex_lock(m1).unwrap(), Outcome::Blocked); // B waits on A
    assert_eq!(s.task(a).prio, 3);
    s.post(2, 1).unwrap();
    assert_eq!(s.schedule(2), c);
    assert_eq!(s.mutex_lock(m2).unwrap(), Outcome::Blocked); // C waits on B waits on A
    assert_eq!((s.task(b).prio, s.task(a).prio), (7, 7));
    assert_eq!(s.schedule(3), a);
    s.mutex_unlock(m1).unwrap();
    assert_eq!(s.task(a).prio, 1);
    assert_eq!(s.schedule(4), b, "B got m1 and still carries C's priority");
    assert_eq!(s.task(b).prio, 7);
    s.mutex_unlock(m2).unwrap();
    assert_eq!(s.task(b).prio, 3);
    assert_eq!(s.schedule(5), c);
}

#[test]
fn mutex_errors() {
    let mut s = Scheduler::new(0);
    let m = s.mutex_create().unwrap();
    let _t = spawn_waiting(&mut s, event("t", 4, 0));
    s.post(0, 1).unwrap();
    s.schedule(0);
    assert_eq!(s.mutex_unlock(m), Err(Error::NotOwner));
    s.mutex_lock(m).unwrap();
    assert_eq!(s.mutex_lock(m), Err(Error::AlreadyOwner));
    assert_eq!(s.mutex_lock(99), Err(Error::NoSuchObject));
}

#[test]
fn semaphore_wakes_highest_waiter_first() {
    let mut s = Scheduler::new(0);
    let sem = s.sem_create(0, 4).unwrap();
    let lo = spawn_waiting(&mut s, event("lo", 2, 0));
    let hi = spawn_waiting(&mut s, event("hi", 6, 1));
    s.post(0, 1).unwrap();
    assert_eq!(s.schedule(0), lo);
    assert_eq!(s.sem_wait(sem).unwrap(), Outcome::Blocked);
    s.post(1, 1).unwrap();
    assert_eq!(s.schedule(1), hi);
    assert_eq!(s.sem_wait(sem).unwrap(), Outcome::Blocked);
    assert_eq!(s.schedule(2), IDLE);
    s.sem_post(sem).unwrap();
    assert_eq!(s.schedule(3), hi);
    s.sem_post(sem).unwrap();
    s.sem_post(sem).unwrap();
    assert_eq!(s.sem_count(sem), Some(1));
    assert_eq!(s.sem_try_wait(sem).unwrap(), Outcome::Done(1));
    assert_eq!(s.sem_try_wait(sem).unwrap(), Outcome::Done(0));
    assert_eq!(s.task(lo).state, State::Ready);
}

#[test]
fn spawn_refuses_bad_specs() {
    let mut s = Scheduler::new(0);
    assert_eq!(s.spawn(periodic("p0", 0, 100, 0), 0), Err(Error::BadPriority));
    assert_eq!(s.spawn(periodic("z", 3, 0, 0), 0), Err(Error::BadParameters));
    assert_eq!(s.spawn(event("big", 3, MAX_PORTS as u16), 0), Err(Error::BadParameters));
    for i in 1..MAX_TASKS {
        spawn_waiting(&mut s, periodic("x", 3, 100 + i as u64, 0));
    }
    assert_eq!(s.spawn(periodic("full", 3, 100, 0), 0), Err(Error::NoFreeTask));
}

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Complete,
    Post(u16),
    WaitEvent,
    Lock(u16),
    Unlock(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u64..300).prop_map(Op::Advance),
        Just(Op::Complete),
        (0u16..4).prop_map(Op::Post),
        Just(Op::WaitEvent),
        (0u16..2).prop_map(Op::Lock),
        (0u16..2).prop_map(Op::Unlock),
    ]
}

proptest! {
    /// Whatever happens, the running task has the highest effective priority among Ready tasks,
    /// every Ready task is findable, and inherited priorities equal their definition.
    #[test]
    fn running_task_is_always_the_most_urgent(
        prios in proptest::collection::vec(1u8..20, 4),
        periods in proptest::collection::vec(50u64..500, 3),
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        let mut s = Scheduler::new(0);
        s.mutex_create().unwrap();
        s.mutex_create().unwrap();
        for (i, &p) in periods.iter().enumerate() {
            spawn_waiting(&mut s, periodic("p", prios[i], p, 0));
        }
        for port in 0..4u16 {
            s.spawn(event("e", prios[usize::from(port)], port), 0).unwrap();
        }
        let mut now = 0;
        for o in ops {
            let _ = match o {
                Op::Advance(d) => { now += d; s.expire(now); Ok(Outcome::Done(0)) }
                Op::Complete => s.complete_job(now),
                Op::Post(p) => s.post(p, 1).map(|_| Outcome::Done(0)),
                Op::WaitEvent => s.wait_event(),
                Op::Lock(m) => s.mutex_lock(m),
                Op::Unlock(m) => s.mutex_unlock(m),
            };
            let cur = s.schedule(now);
            let best = s.task_ids().filter(|&t| s.task(t).state == State::Ready).map(|t| s.task(t).prio).max().unwrap();
            prop_assert_eq!(s.task(cur).state, State::Ready);
            prop_assert_eq!(s.task(cur).prio, best);
            for t in s.task_ids() {
                prop_assert_eq!(s.task(t).prio, s.inherited_prio(t));
            }
        }
    }
}

#[test]
fn a_new_task_runs_its_set_up_first_and_keeps_early_releases_and_events() {
    let mut s = Scheduler::new(0);
    let p = s.spawn(periodic("p", 5, 100, 0), 0).unwrap();
    let e = s.spawn(event("e", 4, 0), 0).unwrap();
    assert_eq!(s.schedule(0), p, "new tasks are ready to run their set-up");
    s.post(0, 2).unwrap(); // before the event task waits: counted
    s.expire(0); // the first release arrives before the periodic task waits: queued
    assert_eq!(s.complete_job(5).unwrap(), Outcome::Done(0), "first wait returns the queued release");
    assert_eq!(s.complete_job(6).unwrap(), Outcome::Blocked);
    assert_eq!(s.schedule(6), e);
    assert_eq!(s.wait_event().unwrap(), Outcome::Done(2));
    assert_eq!(s.wait_event().unwrap(), Outcome::Blocked);
    assert_eq!(s.schedule(7), IDLE);
    s.expire(100);
    assert_eq!(s.schedule(100), p);
    assert_eq!(s.task(p).stats.misses, 0);
}
