//! What every shell entry point needs before its loop runs: the startup error type and the
//! one place blocking DNS is allowed (before the loop starts; never on it). Its own module
//! so the HTTP server, the steering loop and the operator tools need not depend on the
//! autorate loop (issue 16: no circle between event_loop and http_server).

use std::io;
use std::net::{IpAddr, ToSocketAddrs};

/// A startup failure: one line for stderr and the exit code.
#[derive(Debug)]
pub struct StartupError {
    /// `error: <this>`.
    pub message: String,
    /// 1 runtime, 2 config.
    pub code: u8,
}

/// Resolves a host (IP literal or name) at startup. Blocking DNS happens only here.
pub fn resolve(host: &str) -> io::Result<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    (host, 0)
        .to_socket_addrs()?
        .map(|a| a.ip())
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
}
