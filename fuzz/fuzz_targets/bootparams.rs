//! The zero page and its e820 map: e820_from against a per-byte oracle, build, linux_cmdline (`cokernel::fuzz::bootparams`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cokernel::fuzz::bootparams(data));
