//! Link the bare-metal binary with boot/linker.ld; the host build (pure-logic tests) is untouched.
use std::path::PathBuf;

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let boot = manifest.join("../boot");
    println!("cargo:rerun-if-changed={}", boot.join("linker.ld").display());
    println!("cargo:rerun-if-changed={}", boot.join("entry.S").display());
    if target == "x86_64-unknown-none" {
        // The `cokernel` binary and the applications (examples) are images alike.
        for kind in ["bins", "examples"] {
            println!("cargo:rustc-link-arg-{kind}=-T{}", boot.join("linker.ld").display());
            // PIC code, but a fixed-address (non-PIE) image: no dynamic relocations to apply at boot.
            println!("cargo:rustc-link-arg-{kind}=--no-pie");
            println!("cargo:rustc-link-arg-{kind}=-zmax-page-size=4096");
            println!("cargo:rustc-link-arg-{kind}=--gc-sections");
        }
    }
}
