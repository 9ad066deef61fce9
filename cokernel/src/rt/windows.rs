//! Where the hardware interrupt flag was off when a real-time timer interrupt was due.
//!
//! Under the soft-cli contract Linux can delay a real-time interrupt only while the *hardware*
//! flag is off (its entry and exit windows) and the co-kernel only while it runs with interrupts
//! off itself. When the timer interrupt arrives late, the instruction it interrupts is where the
//! flag came back on: the end of the window that held it off, and `lateness` is (a lower bound
//! of) that window's length. Over many samples the largest lateness per site converges on the
//! window's length. This table keeps the worst sites.
//!
//! Pure and fixed-size (no allocation, a short linear scan): it runs in the timer interrupt, and
//! only for arrivals later than a threshold.

/// Where the interrupt landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// Linux user code: the window was Linux's exit to user mode (its `cli` to SYSRET/IRET).
    User,
    /// No interrupt came at all: a switch point found the deadline passed with the timer's
    /// vector not even pending (the guest, which shares the local APIC, masked or reprogrammed
    /// the timer), and `lateness` is how late that switch point was.
    Unseen,
    /// Kernel code at this address (Linux's, or the co-kernel's own): the instruction where the
    /// flag came back on.
    At(u64),
}

impl Site {
    fn key(self) -> u64 {
        match self {
            Site::User => 1,
            Site::Unseen => 2,
            Site::At(rip) => rip,
        }
    }

    /// The site a table key stands for ([`Entry::key`]: 1 is user mode, 2 a lost interrupt,
    /// anything else the address).
    pub fn from_key(k: u64) -> Site {
        match k {
            1 => Site::User,
            2 => Site::Unseen,
            rip => Site::At(rip),
        }
    }
}

/// One site of the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// The site: 1 for Linux user mode, 2 for an interrupt that never came, else the interrupted
    /// kernel address (0: a free entry).
    pub key: u64,
    /// Largest lateness seen here (TSC ticks).
    pub max: u64,
    /// Late arrivals here.
    pub count: u64,
}

/// Sites the table keeps.
pub const SITES: usize = 24;

/// The worst [`SITES`] sites where late timer interrupts landed, with their largest lateness.
#[derive(Clone, Copy, Debug)]
pub struct Windows {
    entries: [Entry; SITES],
    /// Late arrivals not kept (the table held only worse sites).
    pub dropped: u64,
}

impl Default for Windows {
    fn default() -> Self {
        Self::new()
    }
}

impl Windows {
    /// An empty table.
    pub const fn new() -> Windows {
        Windows { entries: [Entry { key: 0, max: 0, count: 0 }; SITES], dropped: 0 }
    }

    /// Records a late arrival at `site`: its entry is updated, or a free entry taken, or the entry
    /// with the smallest maximum replaced if this one is larger.
    pub fn record(&mut self, site: Site, lateness: u64) {
        let key = site.key();
        let mut weakest = 0;
        for i in 0..SITES {
            let e = &mut self.entries[i];
            if e.key == key {
                e.max = e.max.max(lateness);
                e.count += 1;
                return;
            }
            if e.key == 0 {
                *e = Entry { key, max: lateness, count: 1 };
                return;
            }
            if e.max < self.entries[weakest].max {
                weakest = i;
            }
        }
        if lateness > self.entries[weakest].max {
            self.entries[weakest] = Entry { key, max: lateness, count: 1 };
        }
        self.dropped += 1;
    }

    /// The sites, worst first.
    pub fn worst_first(&self) -> heapless::Vec<Entry, SITES> {
        let mut v: heapless::Vec<Entry, SITES> = self.entries.iter().copied().filter(|e| e.key != 0).collect();
        v.sort_unstable_by(|a, b| b.max.cmp(&a.max).then(a.key.cmp(&b.key)));
        v
    }

    /// Forgets every site and the dropped count.
    pub fn clear(&mut self) {
        *self = Windows::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_worst_per_site() {
        let mut w = Windows::new();
        w.record(Site::At(0xffff_ffff_8100_0010), 500);
        w.record(Site::At(0xffff_ffff_8100_0010), 900);
        w.record(Site::User, 300);
        w.record(Site::At(0xffff_8000_0010_0000), 700);
        w.record(Site::Unseen, 200);
        let v = w.worst_first();
        assert_eq!(v.len(), 4);
        assert_eq!((Site::from_key(v[0].key), v[0].max, v[0].count), (Site::At(0xffff_ffff_8100_0010), 900, 2));
        assert_eq!(Site::from_key(v[1].key), Site::At(0xffff_8000_0010_0000));
        assert_eq!(Site::from_key(v[2].key), Site::User);
        assert_eq!((Site::from_key(v[3].key), v[3].max), (Site::Unseen, 200));
    }

    #[test]
    fn a_full_table_replaces_its_mildest_site() {
        let mut w = Windows::new();
        for i in 0..SITES as u64 {
            w.record(Site::At(0x1000 + i), 100 + i);
        }
        w.record(Site::At(0x9999), 50); // milder than all: dropped
        assert!(w.worst_first().iter().all(|e| e.key != 0x9999));
        w.record(Site::At(0x8888), 10_000); // worse than the mildest: replaces 0x1000
        let v = w.worst_first();
        assert_eq!(v[0].key, 0x8888);
        assert!(v.iter().all(|e| e.key != 0x1000));
        assert_eq!(v.len(), SITES);
        assert_eq!(w.dropped, 2);
    }
}
