//! The systemd notify protocol (`sd_notify(3)`) without libsystemd. Shell code.
//!
//! When systemd starts us with `Type=notify`, `NOTIFY_SOCKET` names a unix datagram
//! socket: a path, or an abstract name written `@name`. Each message is one datagram of
//! newline-separated `KEY=VALUE` lines (`READY=1`, `WATCHDOG=1`, `STATUS=…`, `STOPPING=1`).
//! Without `NOTIFY_SOCKET` (procd, a terminal) every call is a no-op, so the loop never
//! asks which init system it runs under.
//!
//! The socket is non-blocking: if systemd's queue is full the send fails with
//! `WouldBlock` and the caller logs it; the loop never waits for init.
//!
//! `NOTIFY_SOCKET` is left in the environment (removing it is `unsafe` in Rust 2024 and
//! races with threads); the `ssh` child is spawned with it removed instead.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where notifications go: nowhere, or a unix datagram socket.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr, String)>,
}

impl Notifier {
    /// A notifier that does nothing.
    pub fn disabled() -> Notifier {
        Notifier { target: None }
    }

    /// From `NOTIFY_SOCKET`: disabled if it is unset or empty.
    pub fn from_env() -> io::Result<Notifier> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(v) if !v.is_empty() => Notifier::from_socket_value(&v),
            _ => Ok(Notifier::disabled()),
        }
    }

    /// From a `NOTIFY_SOCKET` value: `/path/to/socket` or `@abstract-name`.
    pub fn from_socket_value(value: &OsStr) -> io::Result<Notifier> {
        let shown = value.to_string_lossy().into_owned();
        let ctx = |e: io::Error| io::Error::new(e.kind(), format!("systemd notify socket {shown}: {e}"));
        let bytes = value.as_bytes();
        let addr = match bytes.split_first() {
            Some((b'@', name)) => SocketAddr::from_abstract_name(name).map_err(ctx)?,
            Some((b'/', _)) => SocketAddr::from_pathname(value).map_err(ctx)?,
            _ => {
                return Err(ctx(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "must be an absolute path or start with '@'",
                )));
            }
        };
        let sock = UnixDatagram::unbound().map_err(ctx)?;
        sock.set_nonblocking(true).map_err(ctx)?;
        Ok(Notifier { target: Some((sock, addr, shown)) })
    }

    /// Whether messages are sent anywhere.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one raw message (`KEY=VALUE` lines). No-op when disabled.
    pub fn notify(&self, message: &str) -> io::Result<()> {
        self.send(message.as_bytes())
    }

    /// `READY=1`: startup finished (config loaded, sockets open, first tick armed).
    pub fn ready(&self) -> io::Result<()> {
        self.send(b"READY=1")
    }

    /// `WATCHDOG=1`: the loop is alive. Send every [`watchdog_interval`] / 2.
    pub fn watchdog(&self) -> io::Result<()> {
        self.send(b"WATCHDOG=1")
    }

    /// `STOPPING=1`: shutdown began (failsafe rates are being written).
    pub fn stopping(&self) -> io::Result<()> {
        self.send(b"STOPPING=1")
    }

    /// `STATUS=text`, shown by `systemctl status`. Newlines would start a new assignment,
    /// so they become spaces.
    pub fn status(&self, text: &str) -> io::Result<()> {
        if self.target.is_none() {
            return Ok(());
        }
        let mut msg = Vec::with_capacity(7 + text.len());
        msg.extend_from_slice(b"STATUS=");
        msg.extend(text.bytes().map(|b| if b == b'\n' { b' ' } else { b }));
        self.send(&msg)
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        let Some((sock, addr, shown)) = &self.target else {
            return Ok(());
        };
        sock.send_to_addr(msg, addr)
            .map(|_| ())
            .map_err(|e| io::Error::new(e.kind(), format!("notify systemd at {shown}: {e}")))
    }
}

/// The watchdog period systemd expects (`WatchdogSec=`), from `WATCHDOG_USEC`; `None` if
/// unset, invalid, zero, or meant for another process (`WATCHDOG_PID`).
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// [`watchdog_interval`] over given values (as `sd_watchdog_enabled(3)` reads them).
pub fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, my_pid: u32) -> Option<Duration> {
    if let Some(p) = pid {
        if p.trim().parse::<u32>().ok()? != my_pid {
            return None;
        }
    }
    let us: u64 = usec?.trim().parse().ok()?;
    (us > 0).then(|| Duration::from_micros(us))
}
