//! The VGA text screen, used only to show why the co-kernel stopped (when a text screen exists:
//! BIOS boots; UEFI boots have a framebuffer we do not draw on).

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

static PRESENT: AtomicBool = AtomicBool::new(false);

/// Whether a VGA text screen exists at 0xb8000 (the boot information says); without one
/// [`fatal_screen`] draws nothing.
pub fn set_present(p: bool) {
    PRESENT.store(p, Ordering::Relaxed);
}

const COLS: usize = 80;
const ROWS: usize = 25;
const ATTR: u16 = 0x4f00; // white on red

struct Screen {
    base: *mut u16,
    pos: usize,
}

impl Write for Screen {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.pos = (self.pos / COLS + 1) * COLS;
                continue;
            }
            if self.pos >= COLS * ROWS {
                break;
            }
            let c = if (0x20..0x7f).contains(&b) { b } else { b'?' };
            // SAFETY: pos < 80*25, inside the text buffer that `fatal_screen` checked is mapped.
            unsafe { self.base.add(self.pos).write_volatile(ATTR | u16::from(c)) };
            self.pos += 1;
        }
        Ok(())
    }
}

/// Clears the screen to red and writes the message.
pub fn fatal_screen(message: fmt::Arguments<'_>) {
    if !PRESENT.load(Ordering::Relaxed) {
        return;
    }
    let Some(base) = super::mm::phys_to_virt_checked(0xb8000, (COLS * ROWS * 2) as u64) else {
        return;
    };
    let mut s = Screen { base: base as *mut u16, pos: 0 };
    for i in 0..COLS * ROWS {
        // SAFETY: inside the 80x25 text buffer, mapped (checked above).
        unsafe { s.base.add(i).write_volatile(ATTR | u16::from(b' ')) };
    }
    let _ = write!(s, " HAUKI CO-KERNEL STOPPED\n\n ");
    let _ = s.write_fmt(message);
    let _ = write!(s, "\n\n See COM2 (telemetry) for the full report.");
}
