//! The legacy 8259 pair: remapped off the exception vectors (to 0x20..0x2f) and fully masked.
//! Spurious IRQ 7/15 can still arrive on 0x27/0x2f; the trap dispatcher drops them without EOI.

use x86_64::instructions::port::Port;

use super::frame::vectors::PIC_BASE;

/// Reinitialises both 8259s with vector bases 0x20 and 0x28 and masks all 16 lines. Interrupts
/// must be off.
pub fn remap_and_mask() {
    let mut m_cmd = Port::<u8>::new(0x20);
    let mut m_data = Port::<u8>::new(0x21);
    let mut s_cmd = Port::<u8>::new(0xa0);
    let mut s_data = Port::<u8>::new(0xa1);
    let mut delay = Port::<u8>::new(0x80);
    // SAFETY: the standard ICW1..ICW4 sequence on the PC's 8259 ports; port 0x80 is the POST
    // port, written only to wait an I/O cycle.
    unsafe {
        let mut w = |p: &mut Port<u8>, v: u8| {
            p.write(v);
            delay.write(0);
        };
        w(&mut m_cmd, 0x11); // ICW1: init, expect ICW4
        w(&mut s_cmd, 0x11);
        w(&mut m_data, PIC_BASE); // ICW2: vector base
        w(&mut s_data, PIC_BASE + 8);
        w(&mut m_data, 0x04); // ICW3: slave on IRQ2
        w(&mut s_data, 0x02);
        w(&mut m_data, 0x01); // ICW4: 8086 mode
        w(&mut s_data, 0x01);
        w(&mut m_data, 0xff); // mask everything
        w(&mut s_data, 0xff);
    }
}

/// The interrupt mask registers (master, slave).
pub fn masks() -> (u8, u8) {
    // SAFETY: reading the OCW1 (mask) registers has no side effect.
    unsafe { (Port::<u8>::new(0x21).read(), Port::<u8>::new(0xa1).read()) }
}
