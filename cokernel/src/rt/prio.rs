//! O(1) priority selection: a two-level bitmap over 256 priorities (255 = most urgent) and
//! doubly-linked FIFO ready lists threaded through the task table.
//!
//! Invariant: bit `p` is set exactly when list `p` is non-empty; `highest` is two
//! leading-zero counts whatever the number of tasks.

/// Number of priority levels. 0 is the idle level (the idle context: the co-kernel's idle loop,
/// or Linux when it runs as the guest).
pub const LEVELS: usize = 256;

/// A set of priorities 0..=255: one bit per priority in four 64-bit groups, and a bit per
/// non-empty group in `top`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrioBitmap {
    top: u64,
    groups: [u64; 4],
}

impl PrioBitmap {
    /// The empty set.
    pub const fn new() -> Self {
        PrioBitmap { top: 0, groups: [0; 4] }
    }

    /// Adds `p`.
    #[inline]
    pub fn set(&mut self, p: u8) {
        let g = usize::from(p >> 6);
        self.groups[g] |= 1 << (p & 63);
        self.top |= 1 << g;
    }

    /// Removes `p`.
    #[inline]
    pub fn clear(&mut self, p: u8) {
        let g = usize::from(p >> 6);
        self.groups[g] &= !(1 << (p & 63));
        if self.groups[g] == 0 {
            self.top &= !(1 << g);
        }
    }

    /// Whether `p` is in the set.
    #[inline]
    pub fn is_set(&self, p: u8) -> bool {
        self.groups[usize::from(p >> 6)] & (1 << (p & 63)) != 0
    }

    /// The highest set priority.
    #[inline]
    pub fn highest(&self) -> Option<u8> {
        if self.top == 0 {
            return None;
        }
        let g = 63 - self.top.leading_zeros();
        let b = 63 - self.groups[g as usize].leading_zeros();
        Some((g * 64 + b) as u8)
    }
}

/// Index of a task in the task table.
pub type TaskId = u16;
/// "No task" in the intrusive links.
pub const NIL: TaskId = TaskId::MAX;

/// Links of one task in its ready list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Links {
    /// The task before it at its level ([`NIL`]: it is the head).
    pub prev: TaskId,
    /// The task after it at its level ([`NIL`]: it is the tail).
    pub next: TaskId,
}

impl Links {
    /// In no list.
    pub const UNLINKED: Links = Links { prev: NIL, next: NIL };
}

/// Per-priority FIFO lists of ready tasks; the links live in a caller-provided slice (one per task).
pub struct ReadyLists {
    bitmap: PrioBitmap,
    head: [TaskId; LEVELS],
    tail: [TaskId; LEVELS],
}

impl Default for ReadyLists {
    fn default() -> Self {
        Self::new()
    }
}

impl ReadyLists {
    /// Every level empty.
    pub const fn new() -> Self {
        ReadyLists { bitmap: PrioBitmap::new(), head: [NIL; LEVELS], tail: [NIL; LEVELS] }
    }

    /// Appends `t` at the tail of level `p` (a task that became ready, or yields).
    pub fn push_back(&mut self, links: &mut [Links], p: u8, t: TaskId) {
        let l = usize::from(p);
        links[usize::from(t)] = Links { prev: self.tail[l], next: NIL };
        if self.tail[l] == NIL {
            self.head[l] = t;
        } else {
            links[usize::from(self.tail[l])].next = t;
        }
        self.tail[l] = t;
        self.bitmap.set(p);
    }

    /// Puts `t` at the head of level `p` (a preempted task resumes before its equals).
    pub fn push_front(&mut self, links: &mut [Links], p: u8, t: TaskId) {
        let l = usize::from(p);
        links[usize::from(t)] = Links { prev: NIL, next: self.head[l] };
        if self.head[l] == NIL {
            self.tail[l] = t;
        } else {
            links[usize::from(self.head[l])].prev = t;
        }
        self.head[l] = t;
        self.bitmap.set(p);
    }

    /// Unlinks `t` from level `p`.
    pub fn remove(&mut self, links: &mut [Links], p: u8, t: TaskId) {
        let l = usize::from(p);
        let Links { prev, next } = links[usize::from(t)];
        if prev == NIL {
            self.head[l] = next;
        } else {
            links[usize::from(prev)].next = next;
        }
        if next == NIL {
            self.tail[l] = prev;
        } else {
            links[usize::from(next)].prev = prev;
        }
        links[usize::from(t)] = Links::UNLINKED;
        if self.head[l] == NIL {
            self.bitmap.clear(p);
        }
    }

    /// The first task of the highest non-empty level.
    #[inline]
    pub fn first(&self) -> Option<TaskId> {
        self.bitmap.highest().map(|p| self.head[usize::from(p)])
    }

    /// The highest non-empty level.
    pub fn highest_level(&self) -> Option<u8> {
        self.bitmap.highest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bitmap_matches_a_reference(ops in proptest::collection::vec((any::<u8>(), any::<bool>()), 0..300)) {
            let mut b = PrioBitmap::new();
            let mut set = std::collections::BTreeSet::new();
            for (p, on) in ops {
                if on { b.set(p); set.insert(p); } else { b.clear(p); set.remove(&p); }
                prop_assert_eq!(b.highest(), set.iter().next_back().copied());
                prop_assert_eq!(b.is_set(p), set.contains(&p));
            }
        }

        #[test]
        fn lists_are_fifo_per_level(prios in proptest::collection::vec(any::<u8>(), 1..64)) {
            let mut links = vec![Links::UNLINKED; prios.len()];
            let mut r = ReadyLists::new();
            for (i, &p) in prios.iter().enumerate() {
                r.push_back(&mut links, p, i as TaskId);
            }
            // Popping in order yields highest priority first, FIFO within a level.
            let mut order: Vec<(u8, usize)> = prios.iter().enumerate().map(|(i, &p)| (p, i)).collect();
            order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            for (p, i) in order {
                let t = r.first().unwrap();
                prop_assert_eq!(t as usize, i);
                r.remove(&mut links, p, t);
            }
            prop_assert_eq!(r.first(), None);
        }
    }

    #[test]
    fn front_and_middle_removal() {
        let mut links = vec![Links::UNLINKED; 4];
        let mut r = ReadyLists::new();
        r.push_back(&mut links, 5, 0);
        r.push_back(&mut links, 5, 1);
        r.push_back(&mut links, 5, 2);
        r.remove(&mut links, 5, 1);
        r.push_front(&mut links, 5, 3);
        assert_eq!(r.first(), Some(3));
        r.remove(&mut links, 5, 3);
        assert_eq!(r.first(), Some(0));
        r.remove(&mut links, 5, 0);
        assert_eq!(r.first(), Some(2));
        r.remove(&mut links, 5, 2);
        assert_eq!(r.first(), None);
        assert_eq!(r.highest_level(), None);
    }
}
