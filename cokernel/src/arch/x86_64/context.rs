//! Which context the CPU is running, for exception reports ("which context faulted").

use core::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Context {
    /// Bring-up, before the boot record.
    Boot = 0,
    /// The co-kernel's idle loop.
    Idle = 1,
    /// The in-kernel test runner.
    Test = 2,
    /// A fault raised on purpose (`hauki.inject=`).
    Inject = 3,
}

const NAMES: [&str; 4] = ["cokernel-boot", "cokernel-idle", "cokernel-ktest", "cokernel-inject"];

static CURRENT: AtomicU8 = AtomicU8::new(Context::Boot as u8);

pub fn set(c: Context) {
    CURRENT.store(c as u8, Ordering::Relaxed);
}

/// The running context: a real-time task's name once tasks run, else the co-kernel phase.
pub fn current() -> &'static str {
    if let Some(name) = super::rt::current_name().filter(|n| *n != "idle") {
        return name;
    }
    NAMES.get(usize::from(CURRENT.load(Ordering::Relaxed))).copied().unwrap_or("unknown")
}
