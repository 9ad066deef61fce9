//! ELF (vmlinux) loader: elf::parse, find_note and load on arbitrary images (`cokernel::fuzz::elf`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cokernel::fuzz::elf(data));
