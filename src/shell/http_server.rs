//! The built-in HTTP responder (health, metrics, history, status page), inside the poll
//! loop: non-blocking accept, per-connection size and time limits, one request per
//! connection. Shell code: what to answer is decided by the caller's handler.
//!
//! A slow or silent client costs one slot until its deadline; when every slot is taken,
//! newcomers wait in the kernel's accept backlog until a slot frees, so a flood of clients
//! can neither block the loop nor make it drop answered-in-time requests.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use crate::engine::health::{HttpError, HttpRequest, MAX_REQUEST_HEAD, json_error, parse_request};
use crate::sys::poll::{Event, Interest, PollSet, Token};
use crate::time::Instant;

/// Simultaneous connections per server.
pub const MAX_CONNECTIONS: usize = 64;
/// A connection must deliver its request and take its answer within this.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(3);
/// Tokens a server uses: its listener plus one per connection slot.
pub const TOKENS_PER_SERVER: usize = MAX_CONNECTIONS + 1;

struct Conn {
    stream: TcpStream,
    opened: Instant,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
}

/// One listening server.
pub struct HttpServer {
    name: &'static str,
    listener: TcpListener,
    base: Token,
    conns: Vec<Option<Conn>>,
    served: u64,
    dropped: u64,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("name", &self.name)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl HttpServer {
    /// Binds `host:port` (non-blocking) and registers the listener at token `base`.
    pub fn bind(
        name: &'static str,
        host: &str,
        port: u16,
        base: Token,
        poll: &mut PollSet,
    ) -> io::Result<HttpServer> {
        let ip: std::net::IpAddr = host
            .parse()
            .or_else(|_| crate::shell::event_loop::resolve(host))
            .map_err(|e| io::Error::new(e.kind(), format!("bind {name} {host}:{port}: {e}")))?;
        let addr = SocketAddr::new(ip, port);
        let listener = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("bind {name} {addr}: {e}")))?;
        listener.set_nonblocking(true)?;
        poll.register(listener.as_fd(), base, Interest::READABLE)?;
        Ok(HttpServer {
            name,
            listener,
            base,
            conns: (0..MAX_CONNECTIONS).map(|_| None).collect(),
            served: 0,
            dropped: 0,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// True if `token` belongs to this server.
    pub fn owns(&self, token: Token) -> bool {
        (self.base..self.base + TOKENS_PER_SERVER).contains(&token)
    }

    /// Requests answered and connections dropped (for logs and health).
    pub fn counters(&self) -> (u64, u64) {
        (self.served, self.dropped)
    }

    /// The earliest connection deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().flatten().map(|c| c.opened + CONNECTION_DEADLINE).min()
    }

    fn close(&mut self, i: usize, poll: &mut PollSet) {
        if self.conns[i].take().is_some() {
            poll.deregister(self.base + 1 + i);
            let _ = poll.set_interest(self.base, Interest::READABLE);
        }
    }

    /// Drops connections past their deadline.
    pub fn expire(&mut self, now: Instant, poll: &mut PollSet) {
        for i in 0..self.conns.len() {
            if self.conns[i].as_ref().is_some_and(|c| now.saturating_since(c.opened) >= CONNECTION_DEADLINE) {
                self.dropped += 1;
                self.close(i, poll);
            }
        }
    }

    /// Handles readiness; `handler` turns a request into a complete response.
    pub fn on_event(
        &mut self,
        ev: &Event,
        now: Instant,
        poll: &mut PollSet,
        handler: &mut dyn FnMut(&HttpRequest) -> Vec<u8>,
    ) {
        if ev.token == self.base {
            self.accept(now, poll);
            return;
        }
        let i = ev.token - self.base - 1;
        if i >= self.conns.len() {
            return;
        }
        if ev.readable || ev.error || ev.hangup {
            self.read(i, poll, handler);
        }
        if ev.writable {
            self.write(i, poll);
        }
    }

    fn accept(&mut self, now: Instant, poll: &mut PollSet) {
        for _ in 0..256 {
            if self.conns.iter().all(Option::is_some) {
                // Full: leave newcomers in the kernel's backlog until a slot frees (a
                // slot frees on answer or at the connection deadline).
                let _ = poll.set_interest(self.base, Interest::NONE);
                return;
            }
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!(target: "wanctl::http", "{}: accept: {e}", self.name);
                    return;
                }
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let Some(slot) = self.conns.iter().position(Option::is_none) else { return };
            if poll.register(stream.as_fd(), self.base + 1 + slot, Interest::READABLE).is_err() {
                continue;
            }
            self.conns[slot] =
                Some(Conn { stream, opened: now, input: Vec::new(), output: Vec::new(), written: 0 });
        }
    }

    fn read(&mut self, i: usize, poll: &mut PollSet, handler: &mut dyn FnMut(&HttpRequest) -> Vec<u8>) {
        let mut buf = [0u8; 2048];
        let mut closed = false;
        {
            let Some(c) = self.conns[i].as_mut() else { return };
            if !c.output.is_empty() {
                return;
            }
            for _ in 0..16 {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        c.input.extend_from_slice(&buf[..n]);
                        if c.input.len() > MAX_REQUEST_HEAD {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        let Some(c) = self.conns[i].as_mut() else { return };
        let response = match parse_request(&c.input) {
            Ok(Some(req)) => Some(handler(&req)),
            Ok(None) if closed => None,
            Ok(None) => return,
            Err(HttpError::TooLarge) => Some(json_error(413, "Request too large")),
            Err(HttpError::Malformed) => Some(json_error(400, "Bad request")),
        };
        match response {
            Some(r) => {
                c.output = r;
                self.served += 1;
                let _ = poll.set_interest(self.base + 1 + i, Interest::WRITABLE);
                self.write(i, poll);
            }
            None => self.close(i, poll),
        }
    }

    fn write(&mut self, i: usize, poll: &mut PollSet) {
        let done = {
            let Some(c) = self.conns[i].as_mut() else { return };
            loop {
                if c.written >= c.output.len() {
                    break true;
                }
                match c.stream.write(&c.output[c.written..]) {
                    Ok(0) => break true,
                    Ok(n) => c.written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break true,
                }
            }
        };
        if done {
            self.close(i, poll);
        }
    }
}
