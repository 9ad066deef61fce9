//! The co-kernel binary: everything lives in the library; this file only makes the image.
//! Entry is `_start_mb2` / `_start_pvh` in boot/entry.S, which calls `hauki_entry`.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
use cokernel as _;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the co-kernel runs on bare metal: build it with `cargo xtask build`");
    std::process::exit(2);
}
