//! Boot modules: the cpio bundle (cpio_entries, select_bundle) and role-named modules (classify, select) (`cokernel::fuzz::modules`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cokernel::fuzz::modules(data));
