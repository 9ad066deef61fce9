//! The live view on the VGA text screen (when one exists): the phase engine's oscillators drawn
//! as a scrolling wave, and the worst release latency of each 50 ms as a bar beneath, with a
//! status line. A low-priority task at 20 Hz; it never delays real-time work.

use crate::arch::mm;
use crate::phase::ct::SINE_ONE;
use crate::rt::sched::Error;
use crate::tasks::api::{self, Periodic};

const COLS: usize = 80;
const WAVE_ROWS: usize = 15;
const BAR_ROW0: usize = 17;
const BAR_ROWS: usize = 6;
const GLYPHS: [u8; 4] = [b'*', b'o', b'+', b'.'];
const COLORS: [u16; 4] = [0x0e00, 0x0b00, 0x0a00, 0x0d00];

/// Starts the view: a periodic task at 20 Hz, [`super::PRIO_DISPLAY`].
pub fn start() -> Result<(), Error> {
    Periodic::new("display").priority(super::PRIO_DISPLAY).period_ns(50_000_000).spawn(run).map(|_| ())
}

fn run(_: usize) -> ! {
    let Some(base) = mm::phys_to_virt_checked(0xb8000, (COLS * 25 * 2) as u64) else {
        loop {
            api::wait_next_period();
        }
    };
    let screen = base as *mut u16;
    let put = |row: usize, col: usize, v: u16| {
        // SAFETY: row < 25 and col < 80 keep the write inside the mapped 80x25 text buffer.
        unsafe { screen.add(row * COLS + col).write_volatile(v) }
    };
    for i in 0..COLS * 25 {
        put(i / COLS, i % COLS, 0x0720);
    }
    let mut col = 0usize;
    let mut window = crate::rt::hist::LatencyStats::new();
    loop {
        api::wait_next_period();
        let ph = super::phase::STATE.with(|s| *s);
        let lat = super::latency::TOTAL[0].with(|s| *s);
        let delta_max = lat.max_ns.max(window.max_ns);
        window = lat;
        // Clear the column and draw each oscillator's sine.
        for row in 0..WAVE_ROWS {
            put(row, col, 0x0720);
        }
        for (i, &s) in ph.sines.iter().enumerate() {
            let y = (i64::from(SINE_ONE) - i64::from(s)) * (WAVE_ROWS as i64 - 1) / (2 * i64::from(SINE_ONE));
            put(y.clamp(0, WAVE_ROWS as i64 - 1) as usize, col, COLORS[i] | u16::from(GLYPHS[i]));
        }
        // Latency bar: log2 of the worst latency so far in µs.
        let us = delta_max / 1000;
        let h = (64 - us.leading_zeros() as usize).min(BAR_ROWS);
        for r in 0..BAR_ROWS {
            let on = BAR_ROWS - r <= h;
            put(BAR_ROW0 + r, col, if on { 0x0cdb } else { 0x0720 });
        }
        col = (col + 1) % COLS;
        for r in 0..WAVE_ROWS {
            put(r, col, 0x08b3); // cursor
        }
        let mut line: heapless::String<80> = heapless::String::new();
        let _ = core::fmt::write(
            &mut line,
            format_args!(
                " hauki  latency max {} ns avg {} ns  samples {}  misses {} ",
                lat.max_ns,
                lat.avg_ns(),
                lat.samples,
                lat.misses
            ),
        );
        for (i, b) in line.bytes().chain(core::iter::repeat(b' ')).take(COLS).enumerate() {
            put(24, i, 0x1f00 | u16::from(b));
        }
    }
}
