//! A started process that is stopped on every path: SIGTERM with a bounded wait, then
//! SIGKILL, and always reaped, also when the test panics (Drop).

use std::ops::{Deref, DerefMut};
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Owns a child process; dropping it stops and reaps it.
#[derive(Debug)]
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    /// Guards `child`.
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard(Some(child))
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; returns the exit code (-1 if killed or
    /// already stopped).
    pub fn stop(&mut self, grace: Duration) -> i32 {
        let Some(mut child) = self.0.take() else { return -1 };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        -1
    }
}

impl Deref for ChildGuard {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("invariant: the child is taken only by stop or drop")
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("invariant: the child is taken only by stop or drop")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}
