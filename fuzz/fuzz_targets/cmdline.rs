//! Command line: get, flag, number and mib against a naive reading (`cokernel::fuzz::cmdline`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cokernel::fuzz::cmdline(data));
