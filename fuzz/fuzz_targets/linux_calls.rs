//! Linux's calls and shared memory: call decoding, the LOAD_IDT desc_ptr, the IDT, gates (`cokernel::fuzz::linux_calls`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cokernel::fuzz::linux_calls(data));
