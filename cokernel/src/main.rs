//! The co-kernel image without an application: the system tasks only (the latency tool,
//! telemetry, Linux's watchdog). The in-kernel tests run in this image; applications are the
//! examples (`cargo xtask apps`). Entry is `_start_mb2` / `_start_pvh` in boot/entry.S, which calls
//! `hauki_entry`.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
cokernel::app! {
    about: "no application: the system tasks only",
    start: |_| Ok(()),
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the co-kernel runs on bare metal: build it with `cargo xtask build`");
    std::process::exit(2);
}
