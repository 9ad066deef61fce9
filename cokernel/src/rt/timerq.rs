//! The timer queue: an indexed binary min-heap of (expiry, task), at most one entry per task.
//!
//! Only tasks with a pending timer (a periodic release or a timeout) are in it, so tasks waiting
//! on events cost nothing; insert, re-arm and cancel are O(log n) in the armed timers, and the
//! earliest expiry is O(1). `pos` maps a task to its heap slot so cancellation needs no search.
//! Equal expiries pop in the order they were armed (a sequence number breaks ties), so tasks
//! released at the same instant become ready first-come, first-served.

use super::prio::{NIL, TaskId};

pub struct TimerQueue<const N: usize> {
    heap: [TaskId; N],
    len: usize,
    when: [u64; N],
    seq: [u64; N],
    pos: [u16; N],
    next_seq: u64,
}

const NOT_QUEUED: u16 = u16::MAX;

impl<const N: usize> Default for TimerQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> TimerQueue<N> {
    pub const fn new() -> Self {
        TimerQueue { heap: [NIL; N], len: 0, when: [0; N], seq: [0; N], pos: [NOT_QUEUED; N], next_seq: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_armed(&self, t: TaskId) -> bool {
        self.pos[usize::from(t)] != NOT_QUEUED
    }

    /// When `t`'s timer expires, if armed.
    pub fn expiry(&self, t: TaskId) -> Option<u64> {
        self.is_armed(t).then(|| self.when[usize::from(t)])
    }

    /// Arms (or re-arms) `t`'s timer for `when`.
    pub fn arm(&mut self, t: TaskId, when: u64) {
        let ti = usize::from(t);
        self.seq[ti] = self.next_seq;
        self.next_seq += 1;
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

    /// The earliest (expiry, task).
    #[inline]
    pub fn peek(&self) -> Option<(u64, TaskId)> {
        (self.len > 0).then(|| (self.when[usize::from(self.heap[0])], self.heap[0]))
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Arm(u8, u64),
        Cancel(u8),
        Pop(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..32, 0u64..1000).prop_map(|(t, w)| Op::Arm(t, w)),
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
                prop_assert_eq!(q.peek().map(|p| p.0), r.values().min().copied());
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
}
