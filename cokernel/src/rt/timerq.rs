//! The timer queue: when each task's next release or timeout is due.
//!
//! Two structures, so that the cost of a release does not grow with the number of tasks:
//!
//! - **Release calendars**, one per distinct period: a FIFO of the periodic tasks with that period,
//!   ordered by next release. Every task of a calendar has exactly one release pending within one
//!   period, so a task re-armed after its release (`when + period`) always goes to the tail: O(1).
//!   The earliest release is the earliest calendar head; with at most [`MAX_CALENDARS`] distinct
//!   periods that is a bounded scan, cached between changes. The tail append holds as long as
//!   every calendar entry was armed as "a release just handled + period", so a task's *first*
//!   release (which may be any distance away) goes to the one-shot heap, and the scheduler moves
//!   the task into its calendar when that release fires.
//! - **A one-shot heap** (indexed binary min-heap) for sleeps, and for periodic tasks beyond
//!   [`MAX_CALENDARS`] distinct periods: O(log n) in the timers it holds.
//!
//! Tasks waiting for events have no timer and cost nothing. Equal expiries pop in the order they
//! were armed (a sequence number breaks ties), so tasks released at the same instant become ready
//! first-come, first-served. At most one timer per task.

use super::prio::{NIL, TaskId};

/// Indexed binary min-heap of one-shot timers.
struct OneShots<const N: usize> {
    heap: [TaskId; N],
    len: usize,
    when: [u64; N],
    seq: [u64; N],
    pos: [u16; N],
}

const NOT_QUEUED: u16 = u16::MAX;

impl<const N: usize> OneShots<N> {
    pub const fn new() -> Self {
        OneShots { heap: [NIL; N], len: 0, when: [0; N], seq: [0; N], pos: [NOT_QUEUED; N] }
    }

    /// Arms (or re-arms) `t`'s timer for `when`; `seq` orders equal expiries.
    pub fn arm(&mut self, t: TaskId, when: u64, seq: u64) {
        let ti = usize::from(t);
        self.seq[ti] = seq;
        if self.pos[ti] == NOT_QUEUED {
            let i = self.len;
            self.len += 1;
            self.heap[i] = t;
            self.pos[ti] = i as u16;
            self.when[ti] = when;
            self.sift_up(i);
        } else {
            self.when[ti] = when;
            let i = usize::from(self.pos[ti]);
            self.sift_up(i);
            self.sift_down(i);
        }
    }

    /// Disarms `t`'s timer (no effect if not armed).
    pub fn cancel(&mut self, t: TaskId) {
        let ti = usize::from(t);
        if self.pos[ti] == NOT_QUEUED {
            return;
        }
        let i = usize::from(self.pos[ti]);
        self.pos[ti] = NOT_QUEUED;
        self.len -= 1;
        if i != self.len {
            let last = self.heap[self.len];
            self.heap[i] = last;
            self.pos[usize::from(last)] = i as u16;
            self.sift_down(i);
            self.sift_up(i);
        }
    }

    /// The earliest (expiry, sequence, task).
    #[inline]
    pub fn peek(&self) -> Option<(u64, u64, TaskId)> {
        (self.len > 0).then(|| {
            let t = self.heap[0];
            (self.when[usize::from(t)], self.seq[usize::from(t)], t)
        })
    }

    fn key(&self, i: usize) -> (u64, u64) {
        let t = usize::from(self.heap[i]);
        (self.when[t], self.seq[t])
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[usize::from(self.heap[a])] = a as u16;
        self.pos[usize::from(self.heap[b])] = b as u16;
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.key(i) >= self.key(parent) {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < self.len && self.key(l) < self.key(m) {
                m = l;
            }
            if r < self.len && self.key(r) < self.key(m) {
                m = r;
            }
            if m == i {
                break;
            }
            self.swap(i, m);
            i = m;
        }
    }
}

/// Distinct periods with their own release calendar.
pub const MAX_CALENDARS: usize = 16;

#[derive(Clone, Copy, Debug)]
struct Calendar {
    period: u64,
    head: TaskId,
    tail: TaskId,
}

/// Where a task's timer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    None,
    Calendar(u8),
    Heap,
}

/// At most one timer per task `0..N` (its next release, or a sleep's end), in release
/// calendars and a one-shot heap; see the module documentation.
pub struct TimerQueue<const N: usize> {
    oneshots: OneShots<N>,
    calendars: heapless::Vec<Calendar, MAX_CALENDARS>,
    slot: [Slot; N],
    when: [u64; N],
    seq: [u64; N],
    next: [TaskId; N],
    prev: [TaskId; N],
    next_seq: u64,
    len: usize,
    /// The earliest timer (when, seq, task), recomputed after a change.
    earliest: Option<(u64, u64, TaskId)>,
    dirty: bool,
}

impl<const N: usize> Default for TimerQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> TimerQueue<N> {
    /// No timer armed.
    pub const fn new() -> Self {
        TimerQueue {
            oneshots: OneShots::new(),
            calendars: heapless::Vec::new(),
            slot: [Slot::None; N],
            when: [0; N],
            seq: [0; N],
            next: [NIL; N],
            prev: [NIL; N],
            next_seq: 0,
            len: 0,
            earliest: None,
            dirty: false,
        }
    }

    /// Armed timers (one per task at most).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether task `t` has an armed timer.
    pub fn is_armed(&self, t: TaskId) -> bool {
        self.slot[usize::from(t)] != Slot::None
    }

    /// When `t`'s timer expires, if armed.
    pub fn expiry(&self, t: TaskId) -> Option<u64> {
        self.is_armed(t).then(|| self.when[usize::from(t)])
    }

    /// How many release calendars exist (distinct periods seen).
    pub fn calendars(&self) -> usize {
        self.calendars.len()
    }

    fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// Arms `t` as a one-shot timer (a sleep) for `when`, replacing any timer it had.
    pub fn arm(&mut self, t: TaskId, when: u64) {
        self.cancel(t);
        let seq = self.take_seq();
        let ti = usize::from(t);
        self.when[ti] = when;
        self.seq[ti] = seq;
        self.slot[ti] = Slot::Heap;
        self.oneshots.arm(t, when, seq);
        self.len += 1;
        self.dirty = true;
    }

    /// Arms `t`'s next periodic release at `when` in the calendar of `period`, replacing any timer
    /// it had. O(1) when `when` is not earlier than the calendar's last entry (every re-arm after
    /// a release); falls back to the one-shot heap past MAX_CALENDARS distinct periods.
    pub fn arm_periodic(&mut self, t: TaskId, when: u64, period: u64) {
        self.cancel(t);
        let c = match self.calendars.iter().position(|c| c.period == period) {
            Some(c) => c,
            None => {
                if self.calendars.push(Calendar { period, head: NIL, tail: NIL }).is_err() {
                    return self.arm(t, when);
                }
                self.calendars.len() - 1
            }
        };
        let seq = self.take_seq();
        let ti = usize::from(t);
        self.when[ti] = when;
        self.seq[ti] = seq;
        self.slot[ti] = Slot::Calendar(c as u8);
        // Walk back from the tail to the last entry not later than `when` (O(1) on re-arm).
        let mut after = self.calendars[c].tail;
        while after != NIL && self.when[usize::from(after)] > when {
            after = self.prev[usize::from(after)];
        }
        let before = if after == NIL { self.calendars[c].head } else { self.next[usize::from(after)] };
        self.prev[ti] = after;
        self.next[ti] = before;
        if after == NIL {
            self.calendars[c].head = t;
        } else {
            self.next[usize::from(after)] = t;
        }
        if before == NIL {
            self.calendars[c].tail = t;
        } else {
            self.prev[usize::from(before)] = t;
        }
        self.len += 1;
        self.dirty = true;
    }

    /// Disarms `t`'s timer (no effect if not armed).
    pub fn cancel(&mut self, t: TaskId) {
        let ti = usize::from(t);
        match self.slot[ti] {
            Slot::None => return,
            Slot::Heap => self.oneshots.cancel(t),
            Slot::Calendar(c) => {
                let c = usize::from(c);
                let (p, n) = (self.prev[ti], self.next[ti]);
                if p == NIL {
                    self.calendars[c].head = n;
                } else {
                    self.next[usize::from(p)] = n;
                }
                if n == NIL {
                    self.calendars[c].tail = p;
                } else {
                    self.prev[usize::from(n)] = p;
                }
                self.prev[ti] = NIL;
                self.next[ti] = NIL;
            }
        }
        self.slot[ti] = Slot::None;
        self.len -= 1;
        self.dirty = true;
    }

    fn recompute(&mut self) {
        let mut best = self.oneshots.peek();
        for c in &self.calendars {
            if c.head != NIL {
                let h = usize::from(c.head);
                let cand = (self.when[h], self.seq[h], c.head);
                if best.is_none_or(|b| (cand.0, cand.1) < (b.0, b.1)) {
                    best = Some(cand);
                }
            }
        }
        self.earliest = best;
        self.dirty = false;
    }

    /// The earliest (expiry, task).
    #[inline]
    pub fn peek(&mut self) -> Option<(u64, TaskId)> {
        if self.dirty {
            self.recompute();
        }
        self.earliest.map(|(w, _, t)| (w, t))
    }

    /// The earliest expiry without updating the cache (for read-only callers); O(calendars).
    pub fn peek_ro(&self) -> Option<u64> {
        if !self.dirty {
            return self.earliest.map(|e| e.0);
        }
        let mut best = self.oneshots.peek().map(|e| e.0);
        for c in &self.calendars {
            if c.head != NIL {
                let w = self.when[usize::from(c.head)];
                best = Some(best.map_or(w, |b| b.min(w)));
            }
        }
        best
    }

    /// Removes and returns the earliest timer if it expires at or before `now`.
    pub fn pop_expired(&mut self, now: u64) -> Option<(u64, TaskId)> {
        let (w, t) = self.peek()?;
        if w > now {
            return None;
        }
        self.cancel(t);
        Some((w, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Arm(u8, u64),
        ArmPeriodic(u8, u64, u64),
        Cancel(u8),
        Pop(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..32, 0u64..1000).prop_map(|(t, w)| Op::Arm(t, w)),
            // Few distinct periods, and more than MAX_CALENDARS in all so the fallback is used.
            (0u8..32, 0u64..1000, 0u64..20).prop_map(|(t, w, p)| Op::ArmPeriodic(t, w, p * 7 + 1)),
            (0u8..32).prop_map(Op::Cancel),
            (0u64..1000).prop_map(Op::Pop),
        ]
    }

    proptest! {
        /// Against a reference map: same earliest timer, pops in order, never early.
        #[test]
        fn matches_reference(ops in proptest::collection::vec(op(), 0..400)) {
            let mut q: TimerQueue<32> = TimerQueue::new();
            let mut r: std::collections::BTreeMap<u8, u64> = Default::default();
            for o in ops {
                match o {
                    Op::Arm(t, w) => { q.arm(TaskId::from(t), w); r.insert(t, w); }
                    Op::ArmPeriodic(t, w, p) => { q.arm_periodic(TaskId::from(t), w, p); r.insert(t, w); }
                    Op::Cancel(t) => { q.cancel(TaskId::from(t)); r.remove(&t); }
                    Op::Pop(now) => {
                        while let Some((w, t)) = q.pop_expired(now) {
                            prop_assert!(w <= now);
                            prop_assert_eq!(r.remove(&(t as u8)), Some(w));
                            let min = r.values().min().copied();
                            prop_assert!(q.peek().is_none_or(|(nw, _)| nw >= w));
                            prop_assert!(min.is_none_or(|m| m >= w), "popped {} before {:?}", w, min);
                        }
                        prop_assert!(r.values().all(|&w| w > now));
                    }
                }
                prop_assert_eq!(q.len(), r.len());
                prop_assert_eq!(q.peek_ro(), r.values().min().copied());
                prop_assert_eq!(q.peek().map(|p| p.0), r.values().min().copied());
                for (&t, &w) in &r {
                    prop_assert_eq!(q.expiry(TaskId::from(t)), Some(w));
                }
            }
        }
    }
}

#[cfg(test)]
mod order_tests {
    use super::*;

    #[test]
    fn equal_expiries_pop_in_arming_order() {
        let mut q: TimerQueue<8> = TimerQueue::new();
        for t in [5, 2, 7, 1] {
            q.arm(t, 100);
        }
        q.arm(2, 100); // re-armed: now last
        let order: Vec<TaskId> = core::iter::from_fn(|| q.pop_expired(100).map(|x| x.1)).collect();
        assert_eq!(order, vec![5, 7, 1, 2]);
    }

    #[test]
    fn equal_releases_across_calendars_pop_in_arming_order() {
        let mut q: TimerQueue<8> = TimerQueue::new();
        q.arm_periodic(3, 50, 100);
        q.arm_periodic(1, 50, 30);
        q.arm(4, 50);
        q.arm_periodic(2, 50, 100);
        let order: Vec<TaskId> = core::iter::from_fn(|| q.pop_expired(50).map(|x| x.1)).collect();
        assert_eq!(order, vec![3, 1, 4, 2]);
        assert_eq!(q.calendars(), 2);
    }

    #[test]
    fn rearming_after_release_appends_to_the_calendar() {
        let mut q: TimerQueue<8> = TimerQueue::new();
        for (t, phase) in [(0u16, 0u64), (1, 30), (2, 60)] {
            q.arm_periodic(t, phase, 100);
        }
        let mut seen = Vec::new();
        for now in (0..400).step_by(10) {
            while let Some((w, t)) = q.pop_expired(now) {
                seen.push((w, t));
                q.arm_periodic(t, w + 100, 100);
            }
        }
        let want: Vec<(u64, TaskId)> =
            (0..4).flat_map(|k| [(k * 100, 0), (k * 100 + 30, 1), (k * 100 + 60, 2)]).filter(|x| x.0 < 400).collect();
        assert_eq!(seen, want);
    }
}
