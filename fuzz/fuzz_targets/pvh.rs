//! PVH start info (parse_pvh) and everything it points to, in a fake physical memory (`cokernel::fuzz::pvh`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cokernel::fuzz::pvh(data));
