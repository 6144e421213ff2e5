//! Signals as readable events: block them, then read them from a signalfd. Shell code.
//!
//! A blocked signal stays pending until the signalfd read consumes it, so no handler runs
//! and nothing is async-signal-unsafe: SIGTERM becomes an ordinary event in the poll loop.
//!
//! The mask is set with `pthread_sigmask` on the calling thread. In the daemon that is the
//! main thread before any other thread exists, which makes it the process mask (threads
//! inherit it). A test can open a [`SignalFd`] on its own thread without disturbing the
//! others. Children started with `std::process::Command` get an empty mask again (std
//! resets it before `exec`), so `ssh` still dies on SIGTERM.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{SigSet, Signal as NixSignal};
use nix::sys::signalfd::{SfdFlags, SignalFd as NixSignalFd};

use super::from_nix;

/// The signals the daemon handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: shut down cleanly (systemd, procd, `kill`).
    Term,
    /// SIGINT: shut down cleanly (Ctrl-C in a terminal).
    Int,
    /// SIGHUP: reload.
    Hup,
    /// SIGCHLD: a child (`ssh`) changed state; reap with `waitpid(WNOHANG)`.
    Chld,
    /// SIGUSR1: no daemon meaning yet; the host tests raise it.
    Usr1,
}

impl Signal {
    /// Every signal the daemon blocks and reads.
    pub const DAEMON: [Signal; 5] = [Signal::Term, Signal::Int, Signal::Hup, Signal::Chld, Signal::Usr1];

    fn to_nix(self) -> NixSignal {
        match self {
            Signal::Term => NixSignal::SIGTERM,
            Signal::Int => NixSignal::SIGINT,
            Signal::Hup => NixSignal::SIGHUP,
            Signal::Chld => NixSignal::SIGCHLD,
            Signal::Usr1 => NixSignal::SIGUSR1,
        }
    }

    fn from_number(signo: u32) -> Option<Signal> {
        let n = i32::try_from(signo).ok()?;
        Signal::DAEMON.into_iter().find(|s| s.to_nix() as i32 == n)
    }

    /// The conventional name, e.g. `"SIGTERM"`, for log lines.
    pub fn name(self) -> &'static str {
        self.to_nix().as_str()
    }
}

/// A non-blocking, close-on-exec signalfd for a set of blocked signals.
#[derive(Debug)]
pub struct SignalFd {
    fd: NixSignalFd,
}

impl SignalFd {
    /// Blocks `signals` on the calling thread and opens a signalfd for them. Call it on the
    /// main thread before spawning threads so the mask is process-wide.
    pub fn open(signals: &[Signal]) -> io::Result<SignalFd> {
        let mut set = SigSet::empty();
        for s in signals {
            set.add(s.to_nix());
        }
        set.thread_block().map_err(from_nix)?;
        let fd = NixSignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(from_nix)?;
        Ok(SignalFd { fd })
    }

    /// The next pending signal, or `None` when none is pending. Call until `None`: several
    /// different signals may be pending at once (the same signal pending twice is merged
    /// into one by the kernel).
    pub fn read(&self) -> io::Result<Option<Signal>> {
        loop {
            match self.fd.read_signal() {
                Ok(Some(info)) => match Signal::from_number(info.ssi_signo) {
                    Some(s) => return Ok(Some(s)),
                    // Only signals in our mask are delivered here; skip anything else.
                    None => continue,
                },
                Ok(None) => return Ok(None),
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(from_nix(e)),
            }
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
