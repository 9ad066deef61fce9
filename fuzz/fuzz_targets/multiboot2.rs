//! Multiboot2 boot information (parse_multiboot2) in a fake physical memory (`cokernel::fuzz::multiboot2`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cokernel::fuzz::multiboot2(data));
