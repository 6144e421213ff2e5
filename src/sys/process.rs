//! Children with non-blocking pipes (the `ssh` transport), and reaping without waiting.
//! Shell code.
//!
//! `std::process::Command` does the fork/exec; this adds what the poll loop needs: the
//! parent's ends of the pipes are non-blocking (a read returns `WouldBlock` instead of
//! stalling the 50 ms cadence), and exit is collected with `waitpid(WNOHANG)` when SIGCHLD
//! arrives on the signalfd. std resets the child's signal mask before `exec`, so the
//! signals the daemon blocks for its signalfd are not blocked in `ssh`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::process::{Child, Command, Stdio};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::from_nix;

/// Sets O_NONBLOCK on `fd`.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    let flags = OFlag::from_bits_truncate(fcntl(raw, FcntlArg::F_GETFL).map_err(from_nix)?);
    if !flags.contains(OFlag::O_NONBLOCK) {
        fcntl(raw, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map_err(from_nix)?;
    }
    Ok(())
}

/// Spawns `cmd` with stdin, stdout and stderr piped and the parent's ends non-blocking.
/// `NOTIFY_SOCKET` is removed from the child's environment (only we talk to systemd).
pub fn spawn_piped(cmd: &mut Command) -> io::Result<Child> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("spawn {program}: {e}"));
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).env_remove("NOTIFY_SOCKET");
    let mut child = cmd.spawn().map_err(ctx)?;
    let res = (|| {
        if let Some(s) = &child.stdin {
            set_nonblocking(s.as_fd())?;
        }
        if let Some(s) = &child.stdout {
            set_nonblocking(s.as_fd())?;
        }
        if let Some(s) = &child.stderr {
            set_nonblocking(s.as_fd())?;
        }
        Ok(())
    })();
    if let Err(e) = res {
        // Don't leave a child we cannot drive: kill and reap it before reporting.
        let _ = child.kill();
        let _ = child.wait();
        return Err(ctx(e));
    }
    Ok(child)
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by this signal number.
    Signaled(i32),
}

/// Reaps `pid` if it has exited: `Ok(None)` while it still runs. Use it for children not
/// held in a `std::process::Child` (for those, `Child::try_wait` does the same).
pub fn try_reap(pid: u32) -> io::Result<Option<ChildExit>> {
    let pid = i32::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("pid {pid} out of range")))?;
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Some(ChildExit::Exited(code))),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Some(ChildExit::Signaled(sig as i32))),
            Ok(_) => return Ok(None),
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(from_nix(e)),
        }
    }
}
