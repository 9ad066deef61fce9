//! A channel's rings as Linux can write them: the co-kernel's ends (`cokernel::fuzz::channel_ring`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cokernel::fuzz::channel_ring(data));
