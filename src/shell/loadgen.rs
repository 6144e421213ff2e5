//! Load for `wanctl calibrate --load-url/--upload-url`: a few parallel HTTP(S) streams in
//! the calibration's poll loop, downloading a URL (GET, body discarded, again when it ends)
//! or uploading to one (POST of zeros with a huge `Content-Length`, reconnecting when the
//! server closes). What the line carried is measured by the router's queue counters, not
//! here. Non-blocking sockets, HTTPS through rustls (feature `tls`); the host is resolved at
//! start.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use crate::engine::alerts::WebhookUrl as HttpUrl;
use crate::sys::poll::{Event, Interest, PollSet, Token};
use crate::sys::socket::{BindOptions, ConnectState, take_socket_error, tcp_connect_nonblocking};
use crate::time::Instant;

/// Parallel streams (one TCP flow rarely fills a fast line).
pub const STREAMS: usize = 4;
const RECONNECT_AFTER: Duration = Duration::from_millis(200);
const UPLOAD_LENGTH: u64 = 1_000_000_000_000;

struct Conn {
    stream: TcpStream,
    connecting: bool,
    #[cfg(feature = "tls")]
    tls: Option<crate::shell::tls::TlsSession>,
    head: Vec<u8>,
}

/// The streams of one direction.
pub struct LoadGen {
    url: HttpUrl,
    addr: SocketAddr,
    upload: bool,
    base: Token,
    #[cfg(feature = "tls")]
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    conns: Vec<Option<Conn>>,
    active: bool,
    next_connect: Option<Instant>,
    /// Payload bytes received (download) or sent (upload).
    pub bytes: u64,
    /// Streams that ended with an error.
    pub errors: u64,
}

impl std::fmt::Debug for LoadGen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadGen")
            .field("url", &self.url)
            .field("upload", &self.upload)
            .finish_non_exhaustive()
    }
}

impl LoadGen {
    /// Streams to `url` (tokens `base..base+STREAMS`); resolves the host now.
    pub fn new(url: &str, upload: bool, verify_tls: bool, base: Token) -> Result<LoadGen, String> {
        let url = HttpUrl::parse(url).map_err(|e| format!("load URL: {e}"))?;
        let ip =
            crate::shell::startup::resolve(&url.host).map_err(|e| format!("resolve {}: {e}", url.host))?;
        #[cfg(feature = "tls")]
        let tls = if url.https {
            Some(
                crate::shell::tls::client_config(verify_tls, None, None)
                    .map_err(|e| format!("load URL: {e}"))?,
            )
        } else {
            None
        };
        #[cfg(not(feature = "tls"))]
        {
            let _ = verify_tls;
            if url.https {
                return Err("load URL: https needs a build with the tls feature".into());
            }
        }
        Ok(LoadGen {
            addr: SocketAddr::new(ip, url.port),
            url,
            upload,
            base,
            #[cfg(feature = "tls")]
            tls,
            conns: (0..STREAMS).map(|_| None).collect(),
            active: false,
            next_connect: None,
            bytes: 0,
            errors: 0,
        })
    }

    /// `scheme://host:port` of the URL (its path is not shown) and the direction.
    pub fn describe(&self) -> String {
        format!("{} ({}, {STREAMS} streams)", self.url, if self.upload { "POST" } else { "GET" })
    }

    /// Whether `token` is one of the streams.
    pub fn owns(&self, token: Token) -> bool {
        (self.base..self.base + STREAMS).contains(&token)
    }

    /// Starts (or keeps) the load.
    pub fn start(&mut self, now: Instant, poll: &mut PollSet) {
        self.active = true;
        self.next_connect = Some(now);
        self.pump(now, poll);
    }

    /// Stops the load and closes every stream.
    pub fn stop(&mut self, poll: &mut PollSet) {
        self.active = false;
        for i in 0..STREAMS {
            self.close(i, poll);
        }
    }

    fn close(&mut self, i: usize, poll: &mut PollSet) {
        if self.conns[i].take().is_some() {
            poll.deregister(self.base + i);
        }
    }

    /// (Re)connects the closed streams while active.
    pub fn pump(&mut self, now: Instant, poll: &mut PollSet) {
        if !self.active || self.next_connect.is_some_and(|t| now < t) {
            return;
        }
        self.next_connect = Some(now + RECONNECT_AFTER);
        for i in 0..STREAMS {
            if self.conns[i].is_some() {
                continue;
            }
            let Ok((stream, state)) = tcp_connect_nonblocking(self.addr, &BindOptions::default()) else {
                self.errors += 1;
                continue;
            };
            if poll.register(stream.as_fd(), self.base + i, Interest::BOTH).is_err() {
                continue;
            }
            let host = self.url.host_header();
            let head = if self.upload {
                format!(
                    "POST {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wanctl-calibrate\r\nContent-Type: application/octet-stream\r\nContent-Length: {UPLOAD_LENGTH}\r\n\r\n",
                    self.url.target
                )
            } else {
                format!(
                    "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wanctl-calibrate\r\nAccept: */*\r\nConnection: close\r\n\r\n",
                    self.url.target
                )
            };
            self.conns[i] = Some(Conn {
                stream,
                connecting: true,
                #[cfg(feature = "tls")]
                tls: None,
                head: head.into_bytes(),
            });
            if state == ConnectState::Connected {
                self.connected(i, poll);
            }
        }
    }

    fn connected(&mut self, i: usize, poll: &mut PollSet) {
        let Some(c) = self.conns[i].as_mut() else { return };
        c.connecting = false;
        #[cfg(feature = "tls")]
        if let Some(cfg) = self.tls.clone() {
            match crate::shell::tls::TlsSession::new(cfg, &self.url.host) {
                Ok(t) => c.tls = Some(t),
                Err(_) => {
                    self.errors += 1;
                    self.close(i, poll);
                }
            }
        }
    }

    /// A poll event of stream `ev.token`.
    pub fn on_event(&mut self, _now: Instant, poll: &mut PollSet, ev: &Event) {
        let i = ev.token - self.base;
        let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else { return };
        if c.connecting {
            match take_socket_error(c.stream.as_fd()) {
                Ok(None) if ev.writable || ev.hangup || ev.error => self.connected(i, poll),
                Ok(None) => return,
                _ => {
                    self.errors += 1;
                    self.close(i, poll);
                    return;
                }
            }
        }
        let upload = self.upload;
        let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else { return };
        let result = if ev.writable { write_some(c, upload, &mut self.bytes) } else { Ok(true) };
        let result = result.and_then(|open| {
            if open && (ev.readable || ev.hangup) { read_some(c, upload, &mut self.bytes) } else { Ok(open) }
        });
        match result {
            Ok(true) => {
                // Writable only while there is something to write: a download after its
                // request head waits for data (no busy poll).
                #[cfg(feature = "tls")]
                let tls_wants = c.tls.as_ref().is_some_and(|t| t.wants_write() || t.is_handshaking());
                #[cfg(not(feature = "tls"))]
                let tls_wants = false;
                let writable = upload || !c.head.is_empty() || tls_wants;
                let _ =
                    poll.set_interest(ev.token, if writable { Interest::BOTH } else { Interest::READABLE });
            }
            Ok(false) => self.close(i, poll),
            Err(_) => {
                self.errors += 1;
                self.close(i, poll);
            }
        }
    }
}

const ZEROS: [u8; 16 * 1024] = [0u8; 16 * 1024];

/// Writes the request head, then (upload) zeros while the socket takes them. Ok(false): closed.
fn write_some(c: &mut Conn, upload: bool, bytes: &mut u64) -> io::Result<bool> {
    #[cfg(feature = "tls")]
    if let Some(t) = c.tls.as_mut() {
        if !c.head.is_empty() {
            let n = t.send_plaintext(&c.head)?;
            c.head.drain(..n);
        }
        if c.head.is_empty() && upload && !t.wants_write() {
            let n = t.send_plaintext(&ZEROS)?;
            *bytes += n as u64;
        }
        t.write_tls_to(&mut c.stream)?;
        return Ok(true);
    }
    // Bounded: at most 64 writes per event.
    for _ in 0..64 {
        let buf: &[u8] = if !c.head.is_empty() {
            &c.head
        } else if upload {
            &ZEROS
        } else {
            return Ok(true);
        };
        match c.stream.write(buf) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                if c.head.is_empty() {
                    *bytes += n as u64;
                } else {
                    c.head.drain(..n);
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                return Ok(true);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads and discards what arrived. Ok(false): the server closed.
fn read_some(c: &mut Conn, upload: bool, bytes: &mut u64) -> io::Result<bool> {
    let mut buf = [0u8; 16 * 1024];
    // Bounded: at most 64 reads per event.
    for _ in 0..64 {
        #[cfg(feature = "tls")]
        if let Some(t) = c.tls.as_mut() {
            match t.read_tls_from(&mut c.stream)? {
                crate::shell::tls::ReadOutcome::Data(_) => {
                    let mut plain = Vec::new();
                    let n = t.recv_plaintext(&mut plain).unwrap_or(0);
                    if !upload {
                        *bytes += n as u64;
                    }
                    if t.is_eof() {
                        return Ok(false);
                    }
                    continue;
                }
                crate::shell::tls::ReadOutcome::Eof => return Ok(false),
                crate::shell::tls::ReadOutcome::WouldBlock => return Ok(true),
            }
        }
        match c.stream.read(&mut buf) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                if !upload {
                    *bytes += n as u64;
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                return Ok(true);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
