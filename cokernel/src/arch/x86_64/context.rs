//! Which context the CPU is running, for exception reports ("which context faulted").

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// What the CPU runs when no real-time task does: the co-kernel's own phases.
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
/// The kernel's "which task runs" (no lock: called from fault context), once tasks exist.
static TASK_NAME: AtomicUsize = AtomicUsize::new(0);

/// Where [`current`] asks for the running task's name.
pub fn set_task_name_source(f: fn() -> Option<&'static str>) {
    TASK_NAME.store(f as usize, Ordering::Release);
}

fn task_name() -> Option<&'static str> {
    let f = TASK_NAME.load(Ordering::Acquire);
    if f == 0 {
        return None;
    }
    // SAFETY: only `set_task_name_source` stores here, and it stores such a function.
    let f = unsafe { core::mem::transmute::<usize, fn() -> Option<&'static str>>(f) };
    f()
}

/// Records that the CPU now runs `c` (named in exception reports unless a task runs).
pub fn set(c: Context) {
    CURRENT.store(c as u8, Ordering::Relaxed);
}

/// The running context: a real-time task's name once tasks run, else the co-kernel phase.
pub fn current() -> &'static str {
    if let Some(name) = task_name().filter(|n| *n != "idle") {
        return name;
    }
    NAMES.get(usize::from(CURRENT.load(Ordering::Relaxed))).copied().unwrap_or("unknown")
}
