//! A small `poll(2)` set: fds registered with a token and an interest, and a reusable
//! list of ready events. Shell code.
//!
//! The vocabulary is mio's (`Token`, `Interest`, `Events`), without mio. [`PollSet`] holds
//! the `pollfd` array; [`Events`] is filled by [`PollSet::poll`] and is a separate value so
//! the loop can register or deregister fds while it walks the events (a new health
//! connection, a closed REST socket). After setup nothing allocates: both vectors keep
//! their capacity between calls.
//!
//! `ppoll(2)` is used rather than `poll(2)` for its nanosecond timeout: a deadline 400 µs
//! away must not round to a 0 ms busy loop or to a late 1 ms. The timeout is rounded *up*
//! to the next microsecond so the loop never wakes before a deadline.
//!
//! As in mio's docs on spurious events and draining readiness: an event is a hint. Read or
//! write until `WouldBlock`, which is not an error; a readable event with nothing to read
//! is possible and harmless.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// Identifies a registered fd in [`Event`]s. Chosen by the caller (mio's `Token`).
pub type Token = usize;

/// What a registered fd is polled for. Errors and hang-ups are always reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    /// Report when a read would not block.
    pub readable: bool,
    /// Report when a write would not block (also: a non-blocking connect finished).
    pub writable: bool,
}

impl Interest {
    /// Readable only.
    pub const READABLE: Interest = Interest { readable: true, writable: false };
    /// Writable only.
    pub const WRITABLE: Interest = Interest { readable: false, writable: true };
    /// Both directions.
    pub const BOTH: Interest = Interest { readable: true, writable: true };
    /// Neither: the fd stays registered but reports only errors and hang-ups.
    pub const NONE: Interest = Interest { readable: false, writable: false };

    fn to_events(self) -> libc::c_short {
        let mut ev = 0;
        if self.readable {
            ev |= libc::POLLIN;
        }
        if self.writable {
            ev |= libc::POLLOUT;
        }
        ev
    }
}

/// One ready fd, as reported by the last [`PollSet::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The token the fd was registered with.
    pub token: Token,
    /// Data (or EOF, or a pending error) can be read without blocking.
    pub readable: bool,
    /// A write would not block; for a connecting socket, the connect finished.
    pub writable: bool,
    /// POLLERR (a socket error is pending: fetch it with `take_socket_error`) or POLLNVAL
    /// (the fd was closed while still registered: a bug in the caller).
    pub error: bool,
    /// POLLHUP: the peer closed (pipe writer gone, TCP fully closed). Reads still drain
    /// buffered data first.
    pub hangup: bool,
}

/// The ready events of the last poll. Reused across calls.
#[derive(Debug, Default)]
pub struct Events {
    list: Vec<Event>,
}

impl Events {
    /// An empty list with room for `capacity` events before it first grows.
    pub fn with_capacity(capacity: usize) -> Events {
        Events { list: Vec::with_capacity(capacity) }
    }

    /// The ready events, in registration order.
    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.list.iter()
    }

    /// Number of ready events.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the last poll timed out or was interrupted.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

/// The registered fds. An fd must stay open while it is registered: close it only after
/// [`PollSet::deregister`] (a closed fd reports `error`, and a reused number would report
/// someone else's readiness).
#[derive(Debug, Default)]
pub struct PollSet {
    fds: Vec<libc::pollfd>,
    tokens: Vec<Token>,
}

impl PollSet {
    /// An empty set.
    pub fn new() -> PollSet {
        PollSet::default()
    }

    /// An empty set with room for `capacity` fds before it first grows.
    pub fn with_capacity(capacity: usize) -> PollSet {
        PollSet { fds: Vec::with_capacity(capacity), tokens: Vec::with_capacity(capacity) }
    }

    /// Adds `fd` under `token`. Fails with `AlreadyExists` if the token is in use.
    pub fn register(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        if self.tokens.contains(&token) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("poll set: token {token} is already registered"),
            ));
        }
        self.fds.push(libc::pollfd { fd: fd.as_raw_fd(), events: interest.to_events(), revents: 0 });
        self.tokens.push(token);
        Ok(())
    }

    /// Changes what `token`'s fd is polled for. Fails with `NotFound` for an unknown token.
    pub fn set_interest(&mut self, token: Token, interest: Interest) -> io::Result<()> {
        let i = self.index(token)?;
        self.fds[i].events = interest.to_events();
        Ok(())
    }

    /// Removes `token`'s fd. Returns whether it was registered.
    pub fn deregister(&mut self, token: Token) -> bool {
        match self.index(token) {
            Ok(i) => {
                self.fds.swap_remove(i);
                self.tokens.swap_remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether `token` is registered.
    pub fn contains(&self, token: Token) -> bool {
        self.tokens.contains(&token)
    }

    /// Number of registered fds.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// Whether no fd is registered.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    fn index(&self, token: Token) -> io::Result<usize> {
        self.tokens.iter().position(|&t| t == token).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("poll set: token {token} is not registered"))
        })
    }

    /// Waits until a registered fd is ready or `timeout` passes (`None`: no limit), then
    /// fills `events`. A signal interrupting the wait (EINTR) is `Ok` with no events, so
    /// the caller simply loops.
    pub fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.list.clear();
        events.list.reserve(self.fds.len());
        let ts = timeout.map(|t| {
            // Round up to whole microseconds: waking early would spin the loop.
            let us = t.as_nanos().div_ceil(1_000);
            let secs = us / 1_000_000;
            libc::timespec {
                tv_sec: libc::time_t::try_from(secs).unwrap_or(libc::time_t::MAX),
                // < 1e9, fits every c_long.
                tv_nsec: ((us % 1_000_000) * 1_000) as libc::c_long,
            }
        });
        let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        let n = self.fds.len() as libc::nfds_t;
        // SAFETY: `fds` points to `n` initialised `pollfd`s that live for the call; `ts_ptr`
        // is null or points to a timespec on this stack frame; a null sigmask leaves the
        // signal mask alone. Raw fd numbers in the array are only read by the kernel: a
        // stale one yields POLLNVAL, never memory unsafety.
        let res = unsafe { syscall!(ppoll(self.fds.as_mut_ptr(), n, ts_ptr, std::ptr::null())) };
        match res {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for (pfd, &token) in self.fds.iter().zip(&self.tokens) {
            let r = pfd.revents;
            if r == 0 {
                continue;
            }
            events.list.push(Event {
                token,
                readable: r & (libc::POLLIN | libc::POLLPRI) != 0,
                writable: r & libc::POLLOUT != 0,
                error: r & (libc::POLLERR | libc::POLLNVAL) != 0,
                hangup: r & libc::POLLHUP != 0,
            });
        }
        Ok(())
    }
}
