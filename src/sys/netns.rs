//! Entering a network namespace on one thread (`setns(2)` with CLONE_NEWNET). Shell code,
//! used by the test rig (`tests/support/netns.rs`).
//!
//! Only the calling thread moves: sockets and TUN devices it creates afterwards belong to
//! the namespace, other threads are unaffected, and fds opened earlier stay where they
//! were created. A test therefore runs its namespace work on a dedicated thread.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Moves the calling thread into the network namespace `ns` (an fd of
/// `/run/netns/NAME` or `/proc/PID/ns/net`). Needs CAP_SYS_ADMIN.
pub fn enter(ns: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns only reads the fd number, which `BorrowedFd` keeps open for the call;
    // CLONE_NEWNET restricts it to a network namespace, which is allowed in a
    // multi-threaded process and affects only this thread.
    unsafe { syscall!(setns(ns.as_raw_fd(), libc::CLONE_NEWNET)) }
        .map(|_| ())
        .map_err(|e| io::Error::new(e.kind(), format!("setns(CLONE_NEWNET): {e}")))
}
