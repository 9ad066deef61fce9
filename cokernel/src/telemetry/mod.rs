//! Telemetry: JSON Lines records on COM2 (schema in `docs/telemetry.md`).
//!
//! [`json`] is the record builder (pure, host-tested). The sink that writes to the UART is
//! `arch::console`; records are written whole, one per line, and human log lines never start
//! with `{`.
#![forbid(unsafe_code)]

pub mod json;
