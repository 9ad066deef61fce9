//! Linux's device lines through the co-kernel (the pv irqchip, ABI minor 2): which IO-APIC input
//! each of Linux's ISA IRQs arrives on, with which trigger and polarity, and when the input must be
//! masked.
//!
//! The co-kernel owns the IO-APIC. Linux asks for a line with `IRQ_UNMASK`, gives it up with
//! `IRQ_MASK`, and ends each interrupt with `IRQ_EOI`. The co-kernel acknowledges every interrupt
//! at the local APIC the moment it arrives (a real-time interrupt must never wait behind Linux's
//! handler), so a level-triggered input still asserted would fire again at once, however long
//! Linux keeps its virtual flag off: such a line is masked from its arrival until Linux's EOI.
//! An edge-triggered line needs nothing (its next edge is a new event).
//!
//! Pure state here (host-tested); `guest::irqchip` writes the redirection entries.
#![forbid(unsafe_code)]

use hauki_abi::guest::{ISA_LINES, ISA_VECTOR_BASE};

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
    /// Not an ISA IRQ (0..15).
    NoSuchLine,
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
}

impl Line {
    /// Whether the IO-APIC input must be masked now.
    pub fn hw_masked(&self) -> bool {
        self.linux_masked || self.in_service
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

/// Linux's 16 ISA lines.
#[derive(Clone, Debug)]
pub struct Lines {
    lines: [Line; ISA_LINES as usize],
}

impl Lines {
    /// The routes the firmware describes; lines in `reserved` (a bit per IRQ) stay the co-kernel's.
    pub fn new(overrides: &[SourceOverride], reserved: u16) -> Lines {
        let mut lines = [Line { route: None, reserved: false, linux_masked: true, in_service: false, count: 0 };
            ISA_LINES as usize];
        for (irq, line) in lines.iter_mut().enumerate() {
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
        Lines { lines }
    }

    /// The state of ISA line `irq`; `None` above 15.
    pub fn line(&self, irq: u32) -> Option<&Line> {
        self.lines.get(irq as usize)
    }

    fn usable(&mut self, irq: u32) -> Result<(&mut Line, Route), Refusal> {
        let line = self.lines.get_mut(irq as usize).ok_or(Refusal::NoSuchLine)?;
        if line.reserved {
            return Err(Refusal::Cokernel);
        }
        let route = line.route.ok_or(Refusal::Shadowed)?;
        Ok((line, route))
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

    /// Linux's `IRQ_EOI`: a level line in service is unmasked (unless Linux masked it meanwhile).
    pub fn eoi(&mut self, irq: u32) -> Result<Action, Refusal> {
        let (line, route) = self.usable(irq)?;
        let before = line.hw_masked();
        line.in_service = false;
        Ok(Self::program(line, route, before))
    }

    /// An interrupt arrived on `vector`: for a level line, mask its input before the local APIC is
    /// acknowledged. `None` when the vector is not one of the lines.
    pub fn arrive(&mut self, vector: u8) -> Option<Action> {
        let irq = u32::from(vector.checked_sub(ISA_VECTOR_BASE)?);
        let (line, route) = self.usable(irq).ok()?;
        line.count += 1;
        if !route.level {
            return Some(Action::None);
        }
        let before = line.hw_masked();
        line.in_service = true;
        Some(Self::program(line, route, before))
    }

    /// A real-time task claims line `irq` (before Linux runs): it becomes the co-kernel's, Linux's
    /// calls on it are refused from now on. Its route, for the claimant to program.
    pub fn claim(&mut self, irq: u32) -> Result<Route, Refusal> {
        let (line, route) = self.usable(irq)?;
        line.reserved = true;
        line.linux_masked = true;
        Ok(route)
    }

    /// The vector line `irq` arrives on.
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
        assert_eq!(l.unmask(16), Err(Refusal::NoSuchLine));
        assert_eq!(l.eoi(99), Err(Refusal::NoSuchLine));
        assert_eq!(l.arrive(Lines::vector(3)), None, "a reserved line's vector is not Linux's");
        assert_eq!(l.arrive(0x20), None);
    }

    #[test]
    fn a_claimed_line_is_the_co_kernels_from_then_on() {
        let mut l = Lines::new(&q35(), 1 << 3);
        assert_eq!(l.claim(5), Ok(Route { gsi: 5, level: true, active_low: false }));
        assert_eq!(l.claim(5), Err(Refusal::Cokernel), "claimed twice");
        assert_eq!(l.unmask(5), Err(Refusal::Cokernel));
        assert_eq!(l.arrive(Lines::vector(5)), None, "a claimed line's vector is not Linux's");
        assert_eq!(l.claim(3), Err(Refusal::Cokernel));
        assert_eq!(l.claim(2), Err(Refusal::Shadowed));
        assert_eq!(l.claim(16), Err(Refusal::NoSuchLine));
    }

    #[test]
    fn edge_line_is_masked_only_by_linux() {
        let mut l = Lines::new(&q35(), 0);
        assert!(l.line(4).unwrap().hw_masked(), "every line starts masked");
        assert_eq!(l.unmask(4), Ok(Action::Program { gsi: 4, masked: false }));
        assert_eq!(l.unmask(4), Ok(Action::None));
        assert_eq!(l.arrive(0x34), Some(Action::None));
        assert_eq!(l.eoi(4), Ok(Action::None));
        assert_eq!(l.line(4).unwrap().count, 1);
        assert_eq!(l.mask(4), Ok(Action::Program { gsi: 4, masked: true }));
    }

    #[test]
    fn level_line_stays_masked_from_arrival_to_eoi() {
        let mut l = Lines::new(&q35(), 0);
        assert_eq!(l.unmask(9), Ok(Action::Program { gsi: 9, masked: false }));
        assert_eq!(l.arrive(0x39), Some(Action::Program { gsi: 9, masked: true }));
        assert!(l.line(9).unwrap().in_service);
        // Linux masks and unmasks inside its handler: the input stays masked until the EOI.
        assert_eq!(l.mask(9), Ok(Action::None));
        assert_eq!(l.unmask(9), Ok(Action::None));
        assert_eq!(l.eoi(9), Ok(Action::Program { gsi: 9, masked: false }));
        // An EOI after Linux masked the line leaves it masked.
        l.arrive(0x39);
        l.mask(9).unwrap();
        assert_eq!(l.eoi(9), Ok(Action::None));
        assert!(l.line(9).unwrap().hw_masked());
    }

    #[test]
    fn redirection_entry_bits() {
        let r = Route { gsi: 9, level: true, active_low: true };
        assert_eq!(redirection_entry(r, 0x39, 0, false), 0x39 | 1 << 13 | 1 << 15);
        let e = Route { gsi: 4, level: false, active_low: false };
        assert_eq!(redirection_entry(e, 0x34, 1, true), 0x34 | 1 << 16 | 1 << 56);
    }
}
