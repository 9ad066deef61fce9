//! Memory map: MemoryMap::normalize and Collector against a per-byte oracle, find_free, check_kernel (`cokernel::fuzz::memmap`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cokernel::fuzz::memmap(data));
