//! Linux's ACPI view: the filtered MADT and the XSDT and RSDP around it (`cokernel::fuzz::acpi_view`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cokernel::fuzz::acpi_view(data));
