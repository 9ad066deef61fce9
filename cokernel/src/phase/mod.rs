//! The phase engine: small, exact building blocks for periodic real-time work.
//!
//! A real-time task that runs "every 1 ms" or produces "a 50 Hz wave" is a phase that advances by
//! a fixed step per tick. This module keeps that phase as an unsigned fixed-point number and does
//! everything else with integer arithmetic, so results are exact, reproducible on the host and on
//! the bare-metal target, and cheap enough to run in an interrupt handler:
//!
//! * [`nco`] — numerically controlled oscillators: a `u32` phase accumulator where `2^32` is one
//!   full cycle. Adding a constant step each tick produces any frequency with a resolution of
//!   `rate / 2^32`; wrap-around of the integer *is* the end of a cycle, so there is no drift and
//!   no division at run time.
//! * [`weyl`] — golden-ratio (Weyl-sequence) offsets. `k·φ mod 1` spreads any number of points
//!   almost evenly around a circle without knowing the count in advance (at most three distinct
//!   gap lengths, the smallest more than a third of the even spacing). Used as release phases, it
//!   staggers tasks that share a period so they stop releasing on the same tick.
//! * [`stagger`] — an exact discrete-event simulator of fixed-priority preemptive scheduling, to
//!   show (and test) what those offsets buy: lower worst-case response times when equal-period
//!   tasks no longer pile up at the same instant.
//! * [`ct`] — branchless transforms of phases (triangle, square, sine, differences, selects) built
//!   from masks and arithmetic only, with no data-dependent branches or table lookups, plus a
//!   deliberately branchy twin as a negative control.
//! * [`dudect`] — the statistics to *check* constant-time behaviour rather than claim it: Welch's
//!   t-test between a fixed-input class and a random-input class of cycle counts, dudect style,
//!   with percentile cropping and a tiny deterministic PRNG.
//!
//! Only [`dudect`] uses floating point (it is statistics, run off the hot path); everything else
//! is integer-only, because the bare-metal target has soft-float only.
#![forbid(unsafe_code)]

pub mod ct;
pub mod dudect;
pub mod nco;
pub mod stagger;
pub mod weyl;
