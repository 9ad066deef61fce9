//! Linux's device lines through the co-kernel (the pv irqchip, ABI minor 2; PCI lines minor 4):
//! which IO-APIC input each of Linux's ISA IRQs and PCI GSIs arrives on, with which trigger and
//! polarity, and when the input must be masked.
//!
//! The co-kernel owns the IO-APIC. Linux asks for a line with `IRQ_UNMASK`, gives it up with
//! `IRQ_MASK`, and ends each interrupt with `IRQ_EOI`. The co-kernel acknowledges every interrupt
//! at the local APIC the moment it arrives (a real-time interrupt must never wait behind Linux's
//! handler), so a level-triggered input still asserted would fire again at once, however long
//! Linux keeps its virtual flag off: such a line is masked from its arrival until Linux's EOI.
//! An edge-triggered line needs nothing (its next edge is a new event).
//!
//! Lines 0–15 are the ISA IRQs, on fixed vectors. Lines 16–23 are the IO-APIC inputs of the PCI
//! interrupt lines (ACPI's `_PRT` in APIC mode: level, shared between devices): Linux binds one
//! with `GSI_BIND`, naming the vector its own vector allocator chose and the trigger and polarity
//! ACPI gave it.
//!
//! A level line that interrupts faster than any device should (a handler that never clears its
//! cause, a device asserting a shared line nobody serves) is an interrupt storm: more than
//! [`STORM_LIMIT`] arrivals within [`STORM_WINDOW_NS`]. The line is throttled — left masked past Linux's EOI for
//! [`THROTTLE_FIRST_NS`], doubling on each repeat up to [`THROTTLE_MAX_NS`] — counted, and
//! released by [`Lines::release_due`]. Each arrival costs the real-time side one trap either way;
//! the throttle bounds how many Linux can cause, whatever its drivers do.
//!
//! Pure state here (host-tested); `guest::irqchip` writes the redirection entries.
#![forbid(unsafe_code)]

use hauki_abi::guest::{ISA_LINES, ISA_VECTOR_BASE, LINES};

/// A storm, by default: more arrivals than this on one line within [`STORM_WINDOW_NS`] (80 000 a
/// second, in a burst no device of Linux's makes: each arrival waits for Linux's EOI).
/// `hauki.line_storm_limit=N` sets it; 0 never throttles. The burst is short because Linux
/// without x2APIC replays logged events on its way back to kernel code with `int`, one interrupt
/// frame deeper per arrival: the throttle bounds that depth (the first limit, 500 in 10 ms, let a
/// storm overflow Linux's stack). With x2APIC, a self-IPI taken after its `iretq` keeps the depth
/// at one (patch 0006).
pub const STORM_LIMIT: u32 = 8;
/// The window arrivals are counted in.
pub const STORM_WINDOW_NS: u64 = 100_000;
/// How long a storming line stays masked the first time.
pub const THROTTLE_FIRST_NS: u64 = 10_000_000;
/// The longest it stays masked (the throttle doubles on each storm in a row).
pub const THROTTLE_MAX_NS: u64 = 1_280_000_000;
/// The lowest vector Linux may bind a PCI line to (Linux's `FIRST_EXTERNAL_VECTOR`).
pub const GSI_VECTOR_MIN: u8 = 0x20;
/// The highest (below Linux's system vectors, which start at 0xec).
pub const GSI_VECTOR_MAX: u8 = 0xeb;

/// One interrupt source override from the MADT (ACPI 5.2.12.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceOverride {
    /// The ISA IRQ (0..15) the override moves.
    pub isa_irq: u8,
    /// The global system interrupt (IO-APIC input) it arrives on instead.
    pub gsi: u32,
    /// MPS INTI flags: bits 0–1 polarity (00 bus default, 01 high, 11 low), bits 2–3 trigger
    /// (00 bus default, 01 edge, 11 level). The ISA default is edge, active high.
    pub flags: u16,
}

/// How one ISA line reaches the IO-APIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The global system interrupt: the IO-APIC input the line arrives on.
    pub gsi: u32,
    /// Level-triggered (ISA default: edge).
    pub level: bool,
    /// Active low (ISA default: active high).
    pub active_low: bool,
}

/// Why a line cannot be given to Linux.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a line (0..23); or, for a bind, not a PCI line (16..23).
    NoSuchLine,
    /// A PCI line Linux has not bound (`GSI_BIND`) yet.
    Unbound,
    /// A bind naming a vector outside Linux's external range, one of the ISA vectors, or one
    /// another line is bound to.
    BadVector,
    /// A bind of a line whose input is not on any IO-APIC.
    NoPin,
    /// Another ISA IRQ is overridden onto this line's input (IRQ 2 when the PIT's IRQ 0 is on GSI 2).
    Shadowed,
    /// The co-kernel keeps this line (its telemetry UART's, for one).
    Cokernel,
}

/// State of one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line {
    /// How it reaches the IO-APIC; `None` when another IRQ is overridden onto its input.
    pub route: Option<Route>,
    /// The co-kernel keeps the line: Linux's calls on it are refused.
    pub reserved: bool,
    /// Linux wants it masked (its `irq_mask`, and the initial state).
    pub linux_masked: bool,
    /// A level-triggered interrupt arrived and Linux has not yet sent its EOI.
    pub in_service: bool,
    /// Interrupts received on the line.
    pub count: u64,
    /// The vector it arrives on (ISA lines: fixed; PCI lines: Linux's, 0 until bound).
    pub vector: u8,
    /// Storm detection and throttling.
    pub storm: Storm,
}

/// A line's storm state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Storm {
    /// When the current counting window began (ns).
    pub window_start: u64,
    /// Arrivals in the current window.
    pub in_window: u32,
    /// Masked by the throttle until this time (ns).
    pub throttled_until: Option<u64>,
    /// How long the next throttle lasts.
    pub next_ns: u64,
    /// Storms detected on the line.
    pub storms: u64,
}

impl Line {
    const UNUSED: Line = Line {
        route: None,
        reserved: false,
        linux_masked: true,
        in_service: false,
        count: 0,
        vector: 0,
        storm: Storm { window_start: 0, in_window: 0, throttled_until: None, next_ns: THROTTLE_FIRST_NS, storms: 0 },
    };

    /// Whether the IO-APIC input must be masked now.
    pub fn hw_masked(&self) -> bool {
        self.linux_masked || self.in_service || self.storm.throttled_until.is_some()
    }
}

/// What the caller must write to the IO-APIC after a state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing changes at the IO-APIC.
    None,
    /// Write the redirection entry of `gsi` with this mask state.
    Program {
        /// The input whose entry is written.
        gsi: u32,
        /// Whether the entry is written masked.
        masked: bool,
    },
}

/// Linux's 16 ISA lines and 8 PCI lines.
#[derive(Clone, Debug)]
pub struct Lines {
    lines: [Line; LINES as usize],
    /// Arrivals within [`STORM_WINDOW_NS`] that make a storm; `u32::MAX`: never throttle.
    storm_limit: u32,
}

/// What an arrival on one of Linux's lines did ([`Lines::arrive`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// The line (IRQ, or GSI for a PCI line).
    pub irq: u32,
    /// What to program at the IO-APIC.
    pub action: Action,
    /// Whether this arrival made the line a storm, now throttled.
    pub throttled: bool,
}

impl Lines {
    /// The routes the firmware describes; lines in `reserved` (a bit per IRQ) stay the co-kernel's.
    pub fn new(overrides: &[SourceOverride], reserved: u16) -> Lines {
        let mut lines = [Line::UNUSED; LINES as usize];
        for (irq, line) in lines.iter_mut().enumerate().take(ISA_LINES as usize) {
            line.vector = ISA_VECTOR_BASE + irq as u8;
            line.reserved = reserved & (1 << irq) != 0;
            let own = overrides.iter().find(|o| usize::from(o.isa_irq) == irq);
            let gsi = own.map_or(irq as u32, |o| o.gsi);
            // Identity-mapped, but another IRQ was moved onto this input: not usable.
            let shadowed = own.is_none() && overrides.iter().any(|o| o.gsi == gsi && usize::from(o.isa_irq) != irq);
            if shadowed {
                continue;
            }
            let flags = own.map_or(0, |o| o.flags);
            line.route = Some(Route { gsi, level: flags & 0b1100 == 0b1100, active_low: flags & 0b11 == 0b11 });
        }
        Lines { lines, storm_limit: STORM_LIMIT }
    }

    /// Sets how many arrivals within [`STORM_WINDOW_NS`] make a storm (0: never throttle).
    pub fn set_storm_limit(&mut self, limit: u32) {
        // Stored as the arrivals it takes: 0 (never) is more than a window can hold.
        self.storm_limit = if limit == 0 { u32::MAX } else { limit };
    }

    /// The state of line `irq`; `None` above 23.
    pub fn line(&self, irq: u32) -> Option<&Line> {
        self.lines.get(irq as usize)
    }

    fn usable(&mut self, irq: u32) -> Result<(&mut Line, Route), Refusal> {
        let line = self.lines.get_mut(irq as usize).ok_or(Refusal::NoSuchLine)?;
        if line.reserved {
            return Err(Refusal::Cokernel);
        }
        let route = line.route.ok_or(if irq < ISA_LINES { Refusal::Shadowed } else { Refusal::Unbound })?;
        Ok((line, route))
    }

    /// Linux's `GSI_BIND`: PCI line `gsi` (16..23) arrives on `vector` with this trigger and
    /// polarity (`has_pin`: the IO-APIC has the input). A line may be bound again while Linux has
    /// it masked (its vector moved). Its route, for the caller to program masked.
    pub fn bind(
        &mut self,
        gsi: u32,
        vector: u8,
        level: bool,
        active_low: bool,
        has_pin: bool,
    ) -> Result<Route, Refusal> {
        if !(ISA_LINES..LINES).contains(&gsi) {
            return Err(Refusal::NoSuchLine);
        }
        if !has_pin {
            return Err(Refusal::NoPin);
        }
        let isa = ISA_VECTOR_BASE..ISA_VECTOR_BASE + ISA_LINES as u8;
        let taken = self.lines.iter().enumerate().any(|(i, l)| i as u32 != gsi && l.vector == vector);
        if !(GSI_VECTOR_MIN..=GSI_VECTOR_MAX).contains(&vector) || isa.contains(&vector) || taken {
            return Err(Refusal::BadVector);
        }
        let line = &mut self.lines[gsi as usize];
        if line.reserved {
            return Err(Refusal::Cokernel);
        }
        let route = Route { gsi, level, active_low };
        line.route = Some(route);
        line.vector = vector;
        line.linux_masked = true;
        line.in_service = false;
        Ok(route)
    }

    /// Linux's `GSI_BIND` with vector 0: the line is masked and forgotten.
    pub fn unbind(&mut self, gsi: u32) -> Result<Action, Refusal> {
        if !(ISA_LINES..LINES).contains(&gsi) {
            return Err(Refusal::NoSuchLine);
        }
        let (line, route) = self.usable(gsi)?;
        let was = line.hw_masked();
        *line = Line {
            count: line.count,
            storm: Storm { storms: line.storm.storms, ..Line::UNUSED.storm },
            ..Line::UNUSED
        };
        Ok(if was { Action::None } else { Action::Program { gsi: route.gsi, masked: true } })
    }

    fn program(line: &Line, route: Route, before: bool) -> Action {
        if line.hw_masked() == before {
            Action::None
        } else {
            Action::Program { gsi: route.gsi, masked: line.hw_masked() }
        }
    }

    /// Linux's `IRQ_MASK`.
    pub fn mask(&mut self, irq: u32) -> Result<Action, Refusal> {
        let (line, route) = self.usable(irq)?;
        let before = line.hw_masked();
        line.linux_masked = true;
        Ok(Self::program(line, route, before))
    }

    /// Linux's `IRQ_UNMASK`. The first unmask programs the entry in full (`Action::Program`).
    pub fn unmask(&mut self, irq: u32) -> Result<Action, Refusal> {
        let (line, route) = self.usable(irq)?;
        let before = line.hw_masked();
        line.linux_masked = false;
        Ok(Self::program(line, route, before))
    }

    /// Linux's `IRQ_EOI`: a level line in service is unmasked (unless Linux masked it meanwhile,
    /// or it is throttled).
    pub fn eoi(&mut self, irq: u32) -> Result<Action, Refusal> {
        let (line, route) = self.usable(irq)?;
        let before = line.hw_masked();
        line.in_service = false;
        Ok(Self::program(line, route, before))
    }

    /// The line arriving on `vector`, if it is one of Linux's.
    pub fn line_of(&self, vector: u8) -> Option<u32> {
        let irq = match vector.checked_sub(ISA_VECTOR_BASE) {
            Some(n) if u32::from(n) < ISA_LINES => u32::from(n),
            _ => (ISA_LINES..LINES).find(|&g| self.lines[g as usize].vector == vector)?,
        };
        let line = &self.lines[irq as usize];
        (!line.reserved && line.route.is_some()).then_some(irq)
    }

    /// An interrupt arrived on `vector` at `now` (ns): a level line's input is masked before the
    /// local APIC is acknowledged, and a level line storming is throttled (left masked past
    /// Linux's EOI until [`Lines::release_due`] lets it go; the device keeps the line asserted,
    /// so nothing is lost). Edge lines are never throttled: masking would lose edges. `None` when
    /// the vector is not one of Linux's lines.
    pub fn arrive(&mut self, vector: u8, now: u64) -> Option<Arrival> {
        let irq = self.line_of(vector)?;
        let limit = self.storm_limit;
        let (line, route) = self.usable(irq).ok()?;
        line.count += 1;
        let before = line.hw_masked();
        if !route.level {
            // An edge is an event of its own: masking the input would lose the next one (and
            // hang its device: a UART waiting for its transmitter-empty interrupt). Only a level
            // line can storm in the sense that matters, asserted with nobody clearing it.
            return Some(Arrival { irq, action: Action::None, throttled: false });
        }
        line.in_service = true;
        let s = &mut line.storm;
        if now.saturating_sub(s.window_start) > STORM_WINDOW_NS {
            // A quiet window: the next storm starts from the shortest throttle again.
            if s.in_window <= limit && s.throttled_until.is_none() {
                s.next_ns = THROTTLE_FIRST_NS;
            }
            s.window_start = now;
            s.in_window = 0;
        }
        s.in_window = s.in_window.saturating_add(1);
        let throttled = s.in_window > limit && s.throttled_until.is_none();
        if throttled {
            s.throttled_until = Some(now.saturating_add(s.next_ns));
            s.next_ns = (s.next_ns * 2).min(THROTTLE_MAX_NS);
            s.storms += 1;
            s.in_window = 0;
            s.window_start = now;
        }
        Some(Arrival { irq, action: Self::program(line, route, before), throttled })
    }

    /// Lets the throttled lines whose time is up go at `now` (ns): calls `apply` for each with
    /// what to program.
    pub fn release_due(&mut self, now: u64, mut apply: impl FnMut(&Lines, u32, Action)) {
        for irq in 0..LINES {
            let line = &mut self.lines[irq as usize];
            let (Some(until), Some(route)) = (line.storm.throttled_until, line.route) else { continue };
            if now < until {
                continue;
            }
            let before = line.hw_masked();
            line.storm.throttled_until = None;
            line.storm.window_start = now;
            line.storm.in_window = 0;
            let a = Self::program(line, route, before);
            apply(self, irq, a);
        }
    }

    /// Whether any line is throttled now (a cheap test before [`Lines::release_due`]).
    pub fn any_throttled(&self) -> bool {
        self.lines.iter().any(|l| l.storm.throttled_until.is_some())
    }

    /// A real-time task claims line `irq` (before Linux runs): it becomes the co-kernel's, Linux's
    /// calls on it are refused from now on. Its route, for the claimant to program.
    pub fn claim(&mut self, irq: u32) -> Result<Route, Refusal> {
        let (line, route) = self.usable(irq)?;
        line.reserved = true;
        line.linux_masked = true;
        Ok(route)
    }

    /// The vector ISA line `irq` arrives on.
    pub fn vector(irq: u32) -> u8 {
        ISA_VECTOR_BASE + irq as u8
    }
}

/// An IO-APIC redirection entry: fixed delivery, physical destination `apic_id`.
pub fn redirection_entry(route: Route, vector: u8, apic_id: u8, masked: bool) -> u64 {
    let mut e = u64::from(vector);
    if route.active_low {
        e |= 1 << 13;
    }
    if route.level {
        e |= 1 << 15;
    }
    if masked {
        e |= 1 << 16;
    }
    e | (u64::from(apic_id) << 56)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU q35's MADT: IRQ 0 → GSI 2, and level/active-high overrides for 5, 9, 10, 11.
    fn q35() -> [SourceOverride; 5] {
        [
            SourceOverride { isa_irq: 0, gsi: 2, flags: 0 },
            SourceOverride { isa_irq: 5, gsi: 5, flags: 0xd },
            SourceOverride { isa_irq: 9, gsi: 9, flags: 0xd },
            SourceOverride { isa_irq: 10, gsi: 10, flags: 0xd },
            SourceOverride { isa_irq: 11, gsi: 11, flags: 0xd },
        ]
    }

    #[test]
    fn routes_follow_the_overrides() {
        let l = Lines::new(&q35(), 1 << 3);
        assert_eq!(l.line(0).unwrap().route, Some(Route { gsi: 2, level: false, active_low: false }));
        assert_eq!(l.line(2).unwrap().route, None, "IRQ 2's input carries IRQ 0");
        assert_eq!(l.line(4).unwrap().route, Some(Route { gsi: 4, level: false, active_low: false }));
        assert_eq!(l.line(9).unwrap().route, Some(Route { gsi: 9, level: true, active_low: false }));
        let low = Lines::new(&[SourceOverride { isa_irq: 9, gsi: 20, flags: 0xf }], 0);
        assert_eq!(low.line(9).unwrap().route, Some(Route { gsi: 20, level: true, active_low: true }));
    }

    #[test]
    fn refusals_say_why() {
        let mut l = Lines::new(&q35(), 1 << 3);
        assert_eq!(l.unmask(3), Err(Refusal::Cokernel));
        assert_eq!(l.unmask(2), Err(Refusal::Shadowed));
        assert_eq!(l.eoi(99), Err(Refusal::NoSuchLine));
        assert_eq!(l.arrive(Lines::vector(3), 0), None, "a reserved line's vector is not Linux's");
        assert_eq!(l.arrive(0x20, 0), None);
        assert_eq!(l.unmask(16), Err(Refusal::Unbound), "a PCI line before Linux binds it");
        assert_eq!(l.unmask(24), Err(Refusal::NoSuchLine));
    }

    #[test]
    fn a_claimed_line_is_the_co_kernels_from_then_on() {
        let mut l = Lines::new(&q35(), 1 << 3);
        assert_eq!(l.claim(5), Ok(Route { gsi: 5, level: true, active_low: false }));
        assert_eq!(l.claim(5), Err(Refusal::Cokernel), "claimed twice");
        assert_eq!(l.unmask(5), Err(Refusal::Cokernel));
        assert_eq!(l.arrive(Lines::vector(5), 0), None, "a claimed line's vector is not Linux's");
        assert_eq!(l.claim(3), Err(Refusal::Cokernel));
        assert_eq!(l.claim(2), Err(Refusal::Shadowed));
        assert_eq!(l.claim(24), Err(Refusal::NoSuchLine));
    }

    #[test]
    fn edge_line_is_masked_only_by_linux() {
        let mut l = Lines::new(&q35(), 0);
        assert!(l.line(4).unwrap().hw_masked(), "every line starts masked");
        assert_eq!(l.unmask(4), Ok(Action::Program { gsi: 4, masked: false }));
        assert_eq!(l.unmask(4), Ok(Action::None));
        assert_eq!(l.arrive(0x34, 0), Some(Arrival { irq: 4, action: Action::None, throttled: false }));
        assert_eq!(l.eoi(4), Ok(Action::None));
        assert_eq!(l.line(4).unwrap().count, 1);
        assert_eq!(l.mask(4), Ok(Action::Program { gsi: 4, masked: true }));
    }

    #[test]
    fn level_line_stays_masked_from_arrival_to_eoi() {
        let mut l = Lines::new(&q35(), 0);
        assert_eq!(l.unmask(9), Ok(Action::Program { gsi: 9, masked: false }));
        assert_eq!(
            l.arrive(0x39, 0),
            Some(Arrival { irq: 9, action: Action::Program { gsi: 9, masked: true }, throttled: false })
        );
        assert!(l.line(9).unwrap().in_service);
        // Linux masks and unmasks inside its handler: the input stays masked until the EOI.
        assert_eq!(l.mask(9), Ok(Action::None));
        assert_eq!(l.unmask(9), Ok(Action::None));
        assert_eq!(l.eoi(9), Ok(Action::Program { gsi: 9, masked: false }));
        // An EOI after Linux masked the line leaves it masked.
        l.arrive(0x39, 0);
        l.mask(9).unwrap();
        assert_eq!(l.eoi(9), Ok(Action::None));
        assert!(l.line(9).unwrap().hw_masked());
    }

    #[test]
    fn pci_lines_are_bound_by_linux_with_checked_vectors() {
        let mut l = Lines::new(&q35(), 1 << 3);
        let pci = Route { gsi: 17, level: true, active_low: true };
        assert_eq!(l.bind(17, 0x41, true, true, true), Ok(pci));
        assert_eq!(l.bind(9, 0x42, true, true, true), Err(Refusal::NoSuchLine), "ISA lines are not bound");
        assert_eq!(l.bind(24, 0x42, true, true, true), Err(Refusal::NoSuchLine));
        assert_eq!(l.bind(18, 0x42, true, true, false), Err(Refusal::NoPin));
        assert_eq!(l.bind(18, 0x41, true, true, true), Err(Refusal::BadVector), "another line's vector");
        assert_eq!(l.bind(18, 0x35, true, true, true), Err(Refusal::BadVector), "an ISA vector");
        assert_eq!(l.bind(18, 0x1f, true, true, true), Err(Refusal::BadVector), "an exception vector");
        assert_eq!(l.bind(18, 0xec, true, true, true), Err(Refusal::BadVector), "a system vector");
        // Rebinding a line to a new vector is fine; its old vector is free again.
        assert_eq!(l.bind(17, 0x51, true, true, true), Ok(pci));
        assert_eq!(l.arrive(0x41, 0), None);
        assert_eq!(l.bind(18, 0x41, true, false, true).map(|r| r.active_low), Ok(false));
        // A bound line behaves like a level ISA line: masked from arrival to EOI.
        assert_eq!(l.unmask(17), Ok(Action::Program { gsi: 17, masked: false }));
        assert_eq!(
            l.arrive(0x51, 0),
            Some(Arrival { irq: 17, action: Action::Program { gsi: 17, masked: true }, throttled: false })
        );
        assert_eq!(l.eoi(17), Ok(Action::Program { gsi: 17, masked: false }));
        assert_eq!(l.line(17).unwrap().count, 1);
        assert_eq!(l.unbind(17), Ok(Action::Program { gsi: 17, masked: true }));
        assert_eq!(l.unmask(17), Err(Refusal::Unbound));
        assert_eq!(l.arrive(0x51, 0), None, "an unbound line's vector is not a line's");
        assert_eq!(l.unbind(18), Ok(Action::None), "never unmasked");
        assert_eq!(l.unbind(18), Err(Refusal::Unbound));
    }

    /// Delivers `n` interrupts on level line `irq` (vector `v`) `gap` ns apart from `t`, each
    /// ended by Linux's EOI; the time after.
    fn storm(l: &mut Lines, irq: u32, v: u8, n: u32, t: u64, gap: u64) -> u64 {
        let mut t = t;
        for _ in 0..n {
            l.arrive(v, t).unwrap();
            l.eoi(irq).unwrap();
            t += gap;
        }
        t
    }

    #[test]
    fn a_storming_line_is_throttled_then_released_with_backoff() {
        let mut l = Lines::new(&q35(), 0);
        l.bind(20, 0x60, true, true, true).unwrap();
        l.unmask(20).unwrap();
        // A busy but sane device: the limit per window, evenly spread, window after window, is
        // never throttled.
        let mut t = 1_000;
        for _ in 0..50 {
            t = storm(&mut l, 20, 0x60, STORM_LIMIT, t, STORM_WINDOW_NS / u64::from(STORM_LIMIT) + 1);
        }
        assert_eq!(l.line(20).unwrap().storm.storms, 0);
        assert!(!l.any_throttled());
        // A storm: one arrival every microsecond. The limit's next arrival throttles the line; its
        // EOI leaves it masked.
        t = storm(&mut l, 20, 0x60, STORM_LIMIT, t, 1_000);
        assert!(!l.line(20).unwrap().hw_masked());
        let a = l.arrive(0x60, t).unwrap();
        assert_eq!(a, Arrival { irq: 20, action: Action::Program { gsi: 20, masked: true }, throttled: true });
        assert_eq!(l.eoi(20), Ok(Action::None), "throttled: the EOI does not unmask");
        assert_eq!(l.line(20).unwrap().storm.storms, 1);
        assert_eq!(l.line(20).unwrap().storm.throttled_until, Some(t + THROTTLE_FIRST_NS));
        // Not yet due: nothing released.
        let mut released = Vec::new();
        l.release_due(t + THROTTLE_FIRST_NS - 1, |_, irq, a| released.push((irq, a)));
        assert!(released.is_empty());
        l.release_due(t + THROTTLE_FIRST_NS, |_, irq, a| released.push((irq, a)));
        assert_eq!(released, [(20, Action::Program { gsi: 20, masked: false })]);
        // The storm goes on: the next throttle lasts twice as long.
        t += THROTTLE_FIRST_NS;
        t = storm(&mut l, 20, 0x60, STORM_LIMIT + 1, t, 1_000);
        assert_eq!(l.line(20).unwrap().storm.storms, 2);
        assert_eq!(l.line(20).unwrap().storm.throttled_until, Some(t - 1_000 + 2 * THROTTLE_FIRST_NS));
        // Linux masking the line meanwhile keeps it masked after the release.
        l.mask(20).unwrap();
        released.clear();
        l.release_due(u64::MAX, |_, irq, a| released.push((irq, a)));
        assert_eq!(released, [(20, Action::None)]);
        assert!(l.line(20).unwrap().hw_masked());
        // Backoff is capped.
        let mut s = Storm { next_ns: THROTTLE_FIRST_NS, ..Storm::default() };
        for _ in 0..20 {
            s.next_ns = (s.next_ns * 2).min(THROTTLE_MAX_NS);
        }
        assert_eq!(s.next_ns, THROTTLE_MAX_NS);
    }

    #[test]
    fn an_edge_line_is_never_throttled() {
        // A UART in an emulator, with no baud rate to pace it, can interrupt faster than the
        // storm limit; masking its edge line would lose the edge it waits for.
        let mut l = Lines::new(&q35(), 0);
        l.unmask(4).unwrap();
        for i in 0..=10 * u64::from(STORM_LIMIT) {
            assert_eq!(l.arrive(0x34, i * 100), Some(Arrival { irq: 4, action: Action::None, throttled: false }));
        }
        assert_eq!(l.line(4).unwrap().storm.storms, 0);
        assert!(!l.line(4).unwrap().hw_masked());
    }

    #[test]
    fn the_storm_limit_is_set_by_the_command_line_and_0_never_throttles() {
        let mut l = Lines::new(&q35(), 0);
        l.bind(20, 0x60, true, true, true).unwrap();
        l.unmask(20).unwrap();
        l.set_storm_limit(2);
        let t = storm(&mut l, 20, 0x60, 2, 0, 1_000);
        assert!(l.arrive(0x60, t).unwrap().throttled, "the third arrival within the window");
        l.release_due(u64::MAX, |_, _, _| {});
        l.eoi(20).unwrap();
        l.set_storm_limit(0);
        let t = storm(&mut l, 20, 0x60, 10_000, t + THROTTLE_MAX_NS, 100);
        assert!(!l.arrive(0x60, t).unwrap().throttled);
        assert_eq!(l.line(20).unwrap().storm.storms, 1, "only the one with a limit");
        assert!(!l.any_throttled());
    }

    #[test]
    fn redirection_entry_bits() {
        let r = Route { gsi: 9, level: true, active_low: true };
        assert_eq!(redirection_entry(r, 0x39, 0, false), 0x39 | 1 << 13 | 1 << 15);
        let e = Route { gsi: 4, level: false, active_low: false };
        assert_eq!(redirection_entry(e, 0x34, 1, true), 0x34 | 1 << 16 | 1 << 56);
    }
}
