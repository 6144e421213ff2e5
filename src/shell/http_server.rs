//! The built-in HTTP responder (health, metrics, history, status page), inside the poll
//! loop: non-blocking accept, per-connection size and time limits, one request per
//! connection. Shell code: what to answer is decided by the caller's handler.
//!
//! A slow or silent client costs one slot for at most [`HEAD_DEADLINE`] (the time to
//! deliver a complete request head), and one address keeps at most [`MAX_PER_PEER`]
//! headless connections past [`EVICT_GRACE`]. When every slot is taken, a newcomer evicts
//! the oldest connection that has not delivered its head within [`EVICT_GRACE`] (issue 18:
//! 200 clients trickling a byte a second kept `/health` at 6 s); only when no slot is
//! evictable do newcomers wait in the kernel's accept backlog.
//!
//! A handler may answer later ([`Reply::Later`]: the history query runs a slice per loop
//! pass); the connection then waits, unpolled, until [`HttpServer::complete`] or its
//! extended deadline.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use crate::engine::health::{HttpError, HttpRequest, MAX_REQUEST_HEAD, json_error, parse_request};
use crate::sys::poll::{Event, Interest, PollSet, Token};
use crate::time::Instant;

/// Simultaneous connections per server.
pub const MAX_CONNECTIONS: usize = 64;
/// Simultaneous connections from one address: a single peer cannot take every slot.
pub const MAX_PER_PEER: usize = 16;
/// A connection must deliver its complete request head within this.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(1);
/// A connection without a complete head may be evicted for a newcomer (or beyond its
/// peer's cap) once it is this old: a well-behaved client's head arrives with or right
/// after the handshake, so bursts of good clients are never evicted.
pub const EVICT_GRACE: Duration = Duration::from_millis(100);
/// A connection must deliver its request and take its answer within this.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(3);
/// Tokens a server uses: its listener plus one per connection slot.
pub const TOKENS_PER_SERVER: usize = MAX_CONNECTIONS + 1;

/// A handler's answer.
#[derive(Debug)]
pub enum Reply {
    /// The complete response, sent now.
    Now(Vec<u8>),
    /// Sent later through [`HttpServer::complete`]; the connection is dropped at `until`.
    Later {
        /// The new deadline of the waiting connection.
        until: Instant,
    },
}

/// A connection, as a handler deferring its reply sees it. A closed slot's next occupant
/// gets a different id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnId {
    slot: usize,
    serial: u64,
}

struct Conn {
    stream: TcpStream,
    peer: Option<IpAddr>,
    serial: u64,
    opened: Instant,
    deadline: Instant,
    /// The request head is complete (answered, or waiting for a deferred answer).
    has_head: bool,
    waiting: bool,
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
    next_serial: u64,
    /// Accepting is paused: every slot is taken and none is evictable yet.
    paused: bool,
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

impl Conn {
    fn is_evictable(&self, now: Instant) -> bool {
        !self.has_head && now.saturating_since(self.opened) >= EVICT_GRACE
    }

    fn expires(&self) -> Instant {
        if self.has_head { self.deadline } else { self.deadline.min(self.opened + HEAD_DEADLINE) }
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
            .or_else(|_| crate::shell::startup::resolve(host))
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
            next_serial: 0,
            paused: false,
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

    /// The earliest connection deadline (and, while accepting is paused, the instant the
    /// oldest headless connection becomes evictable).
    pub fn next_deadline(&self) -> Option<Instant> {
        let conns = self.conns.iter().flatten();
        let grace =
            self.paused.then(|| conns.clone().filter(|c| !c.has_head).map(|c| c.opened + EVICT_GRACE));
        conns.map(Conn::expires).chain(grace.into_iter().flatten()).min()
    }

    fn close(&mut self, i: usize, poll: &mut PollSet) {
        if self.conns[i].take().is_some() {
            poll.deregister(self.base + 1 + i);
            self.resume(poll);
        }
    }

    fn resume(&mut self, poll: &mut PollSet) {
        let _ = poll.set_interest(self.base, Interest::READABLE);
        self.paused = false;
    }

    /// The oldest connection without a complete head that may be evicted at `now` (from
    /// `peer` only, if given).
    fn oldest_evictable(&self, now: Instant, peer: Option<IpAddr>) -> Option<usize> {
        self.conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
            .filter(|(_, c)| c.is_evictable(now) && (peer.is_none() || c.peer == peer))
            .min_by_key(|(_, c)| (c.opened, c.serial))
            .map(|(i, _)| i)
    }

    fn conns_of(&self, peer: Option<IpAddr>) -> usize {
        self.conns.iter().flatten().filter(|c| c.peer == peer).count()
    }

    /// Drops connections past their deadline (and those without a complete request head
    /// past [`HEAD_DEADLINE`]), and a peer's oldest headless connections beyond
    /// [`MAX_PER_PEER`].
    pub fn expire(&mut self, now: Instant, poll: &mut PollSet) {
        for i in 0..self.conns.len() {
            if self.conns[i].as_ref().is_some_and(|c| now >= c.expires()) {
                self.dropped += 1;
                self.close(i, poll);
            }
        }
        for i in 0..self.conns.len() {
            let Some(peer) = self.conns[i].as_ref().map(|c| c.peer) else { continue };
            while self.conns_of(peer) > MAX_PER_PEER {
                let Some(victim) = self.oldest_evictable(now, peer) else { break };
                self.dropped += 1;
                self.close(victim, poll);
            }
        }
        if self.paused && self.oldest_evictable(now, None).is_some() {
            self.resume(poll);
        }
    }

    /// Whether `id` still waits for its deferred answer.
    pub fn is_waiting(&self, id: ConnId) -> bool {
        self.conns.get(id.slot).and_then(Option::as_ref).is_some_and(|c| c.serial == id.serial && c.waiting)
    }

    /// Sends the deferred answer of `id` (nothing if it is gone).
    pub fn complete(&mut self, id: ConnId, response: Vec<u8>, poll: &mut PollSet) {
        if !self.is_waiting(id) {
            return;
        }
        if let Some(c) = self.conns[id.slot].as_mut() {
            c.waiting = false;
            c.output = response;
            self.served += 1;
            let _ = poll.set_interest(self.base + 1 + id.slot, Interest::WRITABLE);
            self.write(id.slot, poll);
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
        self.on_event_deferrable(ev, now, poll, &mut |req, _| Reply::Now(handler(req)));
    }

    /// [`HttpServer::on_event`] with a handler that may answer later.
    pub fn on_event_deferrable(
        &mut self,
        ev: &Event,
        now: Instant,
        poll: &mut PollSet,
        handler: &mut dyn FnMut(&HttpRequest, ConnId) -> Reply,
    ) {
        if ev.token == self.base {
            self.accept(now, poll, handler);
            return;
        }
        let i = ev.token - self.base - 1;
        let Some(c) = self.conns.get(i).and_then(Option::as_ref) else { return };
        if c.waiting {
            // Not polled while waiting; a hang-up or error still shows up: the client is
            // gone, and the caller sees `is_waiting` turn false.
            if ev.hangup || ev.error {
                self.close(i, poll);
            }
            return;
        }
        if ev.readable || ev.error || ev.hangup {
            self.read(i, now, poll, handler);
        }
        if ev.writable {
            self.write(i, poll);
        }
    }

    fn accept(
        &mut self,
        now: Instant,
        poll: &mut PollSet,
        handler: &mut dyn FnMut(&HttpRequest, ConnId) -> Reply,
    ) {
        for _ in 0..256 {
            let full = self.conns.iter().all(Option::is_some);
            if full && self.oldest_evictable(now, None).is_none() {
                // Full of complete requests and of connections still in their grace
                // period: leave newcomers in the kernel's backlog until a slot frees or a
                // connection becomes evictable (`next_deadline` wakes the loop for it).
                let _ = poll.set_interest(self.base, Interest::NONE);
                self.paused = true;
                return;
            }
            let (stream, peer) = match self.listener.accept() {
                Ok((s, addr)) => (s, Some(addr.ip())),
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
            // A peer at its cap gives up its oldest headless connection for the newcomer.
            if self.conns_of(peer) >= MAX_PER_PEER
                && let Some(victim) = self.oldest_evictable(now, peer)
            {
                self.dropped += 1;
                self.close(victim, poll);
            }
            let free = self.conns.iter().position(Option::is_none);
            let Some(slot) = free.or_else(|| self.oldest_evictable(now, None)) else { continue };
            if free.is_none() {
                self.dropped += 1;
                self.close(slot, poll);
            }
            if poll.register(stream.as_fd(), self.base + 1 + slot, Interest::READABLE).is_err() {
                continue;
            }
            self.next_serial += 1;
            self.conns[slot] = Some(Conn {
                stream,
                peer,
                serial: self.next_serial,
                opened: now,
                deadline: now + CONNECTION_DEADLINE,
                has_head: false,
                waiting: false,
                input: Vec::new(),
                output: Vec::new(),
                written: 0,
            });
            // The request usually came with the handshake: answer it before the next
            // newcomer could evict it.
            self.read(slot, now, poll, handler);
        }
    }

    fn read(
        &mut self,
        i: usize,
        now: Instant,
        poll: &mut PollSet,
        handler: &mut dyn FnMut(&HttpRequest, ConnId) -> Reply,
    ) {
        let mut buf = [0u8; 2048];
        let mut closed = false;
        {
            let Some(c) = self.conns[i].as_mut() else { return };
            if c.has_head {
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
        let id = ConnId { slot: i, serial: c.serial };
        let response = match parse_request(&c.input) {
            Ok(Some(req)) => {
                c.has_head = true;
                match handler(&req, id) {
                    Reply::Now(r) => Some(r),
                    Reply::Later { until } => {
                        c.waiting = true;
                        c.deadline = until.max(now);
                        c.input = Vec::new();
                        let _ = poll.set_interest(self.base + 1 + i, Interest::NONE);
                        return;
                    }
                }
            }
            Ok(None) if closed => None,
            Ok(None) => return,
            Err(HttpError::TooLarge) => Some(json_error(413, "Request too large")),
            Err(HttpError::Malformed) => Some(json_error(400, "Bad request")),
        };
        match response {
            Some(r) => {
                c.has_head = true;
                c.output = r;
                self.served += 1;
                let _ = poll.set_interest(self.base + 1 + i, Interest::WRITABLE);
                self.write(i, poll);
            }
            None => self.close(i, poll),
        }
    }

    fn write(&mut self, i: usize, poll: &mut PollSet) {
        if self.conns[i].as_ref().is_some_and(|c| c.waiting) {
            return;
        }
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

impl HttpServer {
    /// Open connections (tests and the bench).
    pub fn open_connections(&self) -> usize {
        self.conns.iter().flatten().count()
    }
}

#[cfg(test)]
mod tests {
    //! Real loopback sockets, logical time: `now` only moves when a test says so.
    use std::io::ErrorKind;
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::sys::poll::Events;
    use crate::sys::socket::{BindOptions, tcp_connect_nonblocking};

    fn client(srv: &HttpServer, from: u8, send: &[u8]) -> TcpStream {
        let opts =
            BindOptions { source: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, from))), ..Default::default() };
        let (mut s, _) = tcp_connect_nonblocking(srv.local_addr().expect("addr"), &opts).expect("connect");
        // Loopback connects complete at once or within a poll; wait (bounded) for writable.
        for _ in 0..100 {
            match s.write(send) {
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::NotConnected => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("write: {e}"),
            }
        }
        s
    }

    /// Dispatches events at logical time `now` for a few rounds.
    fn pump(srv: &mut HttpServer, poll: &mut PollSet, now: Instant) {
        let mut events = Events::with_capacity(128);
        for _ in 0..20 {
            poll.poll(&mut events, Some(Duration::from_millis(5))).expect("poll");
            for ev in &events {
                srv.on_event(ev, now, poll, &mut |_req: &HttpRequest| json_error(200, "ok"));
            }
        }
    }

    /// What a client has received: `Some(bytes)` once the server closed, `None` if open.
    fn received(s: &mut TcpStream) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        for _ in 0..100 {
            match s.read(&mut buf) {
                Ok(0) => return Some(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                Err(_) => return Some(out),
            }
        }
        None
    }

    #[test]
    fn issue_18_slow_clients_neither_fill_the_server_nor_outlive_the_head_deadline() {
        let mut poll = PollSet::with_capacity(128);
        let mut srv = HttpServer::bind("test", "127.0.0.1", 0, 100, &mut poll).expect("bind");
        let t0 = Instant::from_secs(100);
        // 64 slow clients (16 from each of four addresses) fill every slot with half a head.
        let mut slow: Vec<TcpStream> =
            (0..MAX_CONNECTIONS).map(|k| client(&srv, 10 + (k / MAX_PER_PEER) as u8, b"GET /hea")).collect();
        pump(&mut srv, &mut poll, t0);
        assert_eq!(srv.open_connections(), MAX_CONNECTIONS);
        // A health check arriving once they have had their grace is answered now: it
        // evicts the oldest slow client.
        let t1 = t0 + EVICT_GRACE;
        srv.expire(t1, &mut poll);
        let mut check = client(&srv, 99, b"GET /health HTTP/1.1\r\n\r\n");
        pump(&mut srv, &mut poll, t1);
        let answer = received(&mut check).expect("answered without waiting for a slot");
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
        assert_eq!(slow.iter_mut().filter_map(received).count(), 1, "exactly one slow client evicted");
        // One address cannot keep more than MAX_PER_PEER headless slots past the grace;
        // its oldest go first, and a burst within the grace is left alone.
        let mut same: Vec<TcpStream> = (0..MAX_PER_PEER + 4).map(|_| client(&srv, 77, b"GET /")).collect();
        pump(&mut srv, &mut poll, t1);
        srv.expire(t1, &mut poll);
        assert!(same.iter_mut().all(|s| received(s).is_none()), "a young burst is not evicted");
        srv.expire(t1 + EVICT_GRACE, &mut poll);
        let closed: Vec<bool> = same.iter_mut().map(|s| received(s).is_some()).collect();
        assert_eq!(closed.iter().filter(|c| **c).count(), 4, "{closed:?}");
        assert!(closed[..4].iter().all(|c| *c), "the oldest are evicted: {closed:?}");
        // No complete head within HEAD_DEADLINE: dropped (well before CONNECTION_DEADLINE).
        srv.expire(t0 + (HEAD_DEADLINE - Duration::from_millis(1)), &mut poll);
        assert!(srv.open_connections() > 0);
        srv.expire(t1 + HEAD_DEADLINE, &mut poll);
        assert_eq!(srv.open_connections(), 0);
    }

    #[test]
    fn a_deferred_reply_is_sent_by_complete_and_a_reused_slot_is_not_answered() {
        let mut poll = PollSet::with_capacity(16);
        let mut srv = HttpServer::bind("test", "127.0.0.1", 0, 100, &mut poll).expect("bind");
        let t0 = Instant::from_secs(100);
        let mut ids = Vec::new();
        let mut a = client(&srv, 1, b"GET /slow HTTP/1.1\r\n\r\n");
        let mut events = Events::with_capacity(16);
        for _ in 0..20 {
            poll.poll(&mut events, Some(Duration::from_millis(5))).expect("poll");
            for ev in &events {
                srv.on_event_deferrable(ev, t0, &mut poll, &mut |_req, id| {
                    ids.push(id);
                    Reply::Later { until: t0 + Duration::from_secs(10) }
                });
            }
        }
        assert_eq!(ids.len(), 1);
        assert!(srv.is_waiting(ids[0]));
        srv.expire(t0 + CONNECTION_DEADLINE, &mut poll);
        assert!(srv.is_waiting(ids[0]), "a deferred answer has its own deadline");
        assert_eq!(received(&mut a), None);
        srv.complete(ids[0], json_error(200, "late"), &mut poll);
        let got = received(&mut a).expect("answered and closed");
        assert!(got.starts_with(b"HTTP/1.1 200"));
        assert!(!srv.is_waiting(ids[0]));
    }
}
