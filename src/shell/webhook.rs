//! The webhook client (issue 14): one HTTP/1.1 POST at a time over a non-blocking socket in
//! the daemon's own poll loop, HTTPS through rustls (feature `tls`) driven the same way as
//! the router connection. Every attempt has a deadline (`alerting.timeout_sec`): a receiver
//! that never accepts, never answers or trickles its answer costs nothing but that attempt;
//! a tick never waits for it. The host is resolved once at start (no DNS on the loop). The
//! queue, retries and back-off are `engine::alerts::Delivery`'s decisions; the request and
//! response framing are `wire::http`'s.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use log::{info, warn};

use crate::config::AlertingConfig;
use crate::engine::alerts::{Alert, Delivery, Format, Outcome, WebhookUrl, render};
use crate::engine::stats::LogLimiter;
use crate::sys::poll::{Event, Interest, PollSet, Token};
use crate::sys::socket::{BindOptions, ConnectState, take_socket_error, tcp_connect_nonblocking};
use crate::time::Instant;
use crate::wire::http::{Method, Progress, Request, ResponseParser};

struct Conn {
    stream: TcpStream,
    connecting: bool,
    #[cfg(feature = "tls")]
    tls: Option<crate::shell::tls::TlsSession>,
    /// Plain HTTP: request bytes not yet written. TLS: plaintext not yet taken by rustls.
    out: Vec<u8>,
    parser: ResponseParser,
    deadline: Instant,
    name: &'static str,
}

/// Counters for health and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WebhookStats {
    /// Delivered.
    pub sent: u64,
    /// Given up.
    pub failed: u64,
    /// Dropped from a full queue.
    pub dropped: u64,
    /// Waiting.
    pub waiting: usize,
}

/// The client and its delivery queue.
pub struct Webhook {
    url: WebhookUrl,
    addr: SocketAddr,
    token: Token,
    timeout: Duration,
    format: Format,
    #[cfg(feature = "tls")]
    tls_config: Option<std::sync::Arc<rustls::ClientConfig>>,
    delivery: Delivery,
    conn: Option<Conn>,
    warn: LogLimiter,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// The client for `cfg` (None when alerting is off). Resolves the host now: call at start.
    pub fn new(cfg: &AlertingConfig, token: Token) -> Result<Option<Webhook>, String> {
        let Some(url) = cfg.url.clone().filter(|_| cfg.enabled) else { return Ok(None) };
        let ip = crate::shell::startup::resolve(&url.host)
            .map_err(|e| format!("alerting: resolve the webhook host {}: {e}", url.host))?;
        #[cfg(feature = "tls")]
        let tls_config = if url.https {
            Some(
                crate::shell::tls::client_config(cfg.verify_ssl, None, None)
                    .map_err(|e| format!("alerting: {e}"))?,
            )
        } else {
            None
        };
        #[cfg(not(feature = "tls"))]
        if url.https {
            return Err("alerting: an https webhook needs a build with the tls feature".into());
        }
        info!(target: "wanctl::alerts", "alerts go to {url} ({} format)", match cfg.format {
            Format::Json => "json",
            Format::Discord => "discord",
        });
        Ok(Some(Webhook {
            addr: SocketAddr::new(ip, url.port),
            url,
            token,
            timeout: cfg.timeout,
            format: cfg.format,
            #[cfg(feature = "tls")]
            tls_config,
            delivery: Delivery::new(cfg.max_queue, cfg.max_attempts),
            conn: None,
            warn: LogLimiter::new(Duration::from_secs(60)),
        }))
    }

    /// Renders and queues an alert.
    pub fn push(&mut self, alert: &Alert) {
        info!(target: "wanctl::alerts", "alert {} [{}] on {}: {}", alert.name, alert.severity.as_str(), alert.wan, alert.summary);
        self.delivery.push(alert.name, render(alert, self.format, crate::VERSION));
    }

    /// Whether `token` is this client's socket.
    pub fn owns(&self, token: Token) -> bool {
        token == self.token
    }

    /// Counters.
    pub fn stats(&self) -> WebhookStats {
        WebhookStats {
            sent: self.delivery.sent,
            failed: self.delivery.failed,
            dropped: self.delivery.dropped,
            waiting: self.delivery.waiting(),
        }
    }

    /// The next time [`Webhook::pump`] must run: an attempt's deadline or a back-off's end.
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.conn {
            Some(c) => Some(c.deadline),
            None => self.delivery.poll_timeout(),
        }
    }

    /// Expires an attempt past its deadline and starts the next one when due.
    pub fn pump(&mut self, now: Instant, poll: &mut PollSet) {
        if self.conn.as_ref().is_some_and(|c| now >= c.deadline) {
            let name = self.conn.as_ref().map_or("", |c| c.name);
            self.finish(
                now,
                poll,
                Outcome::Transient,
                &format!("{name}: no answer within {:?}", self.timeout),
            );
        }
        if self.conn.is_some() {
            return;
        }
        let Some((name, body)) = self.delivery.poll_send(now) else { return };
        let mut request = Vec::with_capacity(body.len() + 256);
        let host = self.url.host_header();
        let req = Request {
            method: Method::Post,
            path: &self.url.target,
            host: &host,
            auth: None,
            body: Some(body),
        };
        if let Err(e) = req.write(&mut request) {
            self.finish(now, poll, Outcome::Final, &format!("{name}: cannot build the request: {e}"));
            return;
        }
        match tcp_connect_nonblocking(self.addr, &BindOptions::default()) {
            Ok((stream, state)) => {
                if let Err(e) = poll.register(stream.as_fd(), self.token, Interest::BOTH) {
                    self.delivery.on_result(now, Outcome::Transient);
                    self.log_failure(now, &format!("{name}: poll register: {e}"));
                    return;
                }
                self.conn = Some(Conn {
                    stream,
                    connecting: true,
                    #[cfg(feature = "tls")]
                    tls: None,
                    out: request,
                    parser: ResponseParser::new(Method::Post),
                    deadline: now + self.timeout,
                    name,
                });
                if state == ConnectState::Connected {
                    self.on_connected(now, poll);
                }
            }
            Err(e) => {
                self.delivery.on_result(now, Outcome::Transient);
                self.log_failure(now, &format!("{name}: connect: {e}"));
            }
        }
    }

    fn on_connected(&mut self, now: Instant, poll: &mut PollSet) {
        let Some(c) = self.conn.as_mut() else { return };
        c.connecting = false;
        #[cfg(feature = "tls")]
        if self.url.https {
            let Some(cfg) = self.tls_config.clone() else {
                self.finish(now, poll, Outcome::Final, "TLS is not configured");
                return;
            };
            match crate::shell::tls::TlsSession::new(cfg, &self.url.host) {
                Ok(t) => c.tls = Some(t),
                Err(e) => {
                    self.finish(now, poll, Outcome::Final, &format!("TLS: {e}"));
                    return;
                }
            }
        }
        self.flush_out(now, poll);
    }

    /// Moves request bytes towards the socket.
    fn flush_out(&mut self, now: Instant, poll: &mut PollSet) {
        let Some(c) = self.conn.as_mut() else { return };
        let result: io::Result<()> = (|| {
            #[cfg(feature = "tls")]
            if let Some(t) = c.tls.as_mut() {
                while !c.out.is_empty() {
                    let n = t.send_plaintext(&c.out)?;
                    if n == 0 {
                        break;
                    }
                    c.out.drain(..n);
                }
                t.write_tls_to(&mut c.stream)?;
                return Ok(());
            }
            while !c.out.is_empty() {
                match c.stream.write(&c.out) {
                    Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "wrote nothing")),
                    Ok(n) => {
                        c.out.drain(..n);
                    }
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            let name = c.name;
            self.finish(now, poll, Outcome::Transient, &format!("{name}: send: {e}"));
            return;
        }
        self.update_interest(poll);
    }

    fn update_interest(&mut self, poll: &mut PollSet) {
        let Some(c) = self.conn.as_ref() else { return };
        #[cfg(feature = "tls")]
        let tls_wants = c.tls.as_ref().is_some_and(|t| t.wants_write());
        #[cfg(not(feature = "tls"))]
        let tls_wants = false;
        let writable = c.connecting || !c.out.is_empty() || tls_wants;
        let _ = poll.set_interest(self.token, if writable { Interest::BOTH } else { Interest::READABLE });
    }

    /// A poll event on the socket.
    pub fn on_event(&mut self, now: Instant, poll: &mut PollSet, ev: &Event) {
        let Some(c) = self.conn.as_mut() else { return };
        if c.connecting {
            if !(ev.writable || ev.error || ev.hangup) {
                return;
            }
            match take_socket_error(c.stream.as_fd()) {
                Ok(None) => self.on_connected(now, poll),
                Ok(Some(e)) | Err(e) => {
                    let name = c.name;
                    self.finish(now, poll, Outcome::Transient, &format!("{name}: connect: {e}"));
                }
            }
            return;
        }
        if ev.writable {
            self.flush_out(now, poll);
        }
        if ev.readable || ev.hangup || ev.error {
            self.read(now, poll);
        }
    }

    fn read(&mut self, now: Instant, poll: &mut PollSet) {
        let Some(c) = self.conn.as_mut() else { return };
        let mut buf = [0u8; 4096];
        let mut plain = Vec::new();
        let mut eof = false;
        // Bounded: each pass consumes socket bytes or ends; 64 passes at most per event.
        for _ in 0..64 {
            #[cfg(feature = "tls")]
            if let Some(t) = c.tls.as_mut() {
                match t.read_tls_from(&mut c.stream) {
                    Ok(crate::shell::tls::ReadOutcome::Data(_)) => {
                        if let Err(e) = t.recv_plaintext(&mut plain) {
                            if !plain.is_empty() {
                                eof = true;
                                break;
                            }
                            let name = c.name;
                            self.finish(now, poll, Outcome::Transient, &format!("{name}: {e}"));
                            return;
                        }
                        if t.is_eof() {
                            eof = true;
                            break;
                        }
                        continue;
                    }
                    Ok(crate::shell::tls::ReadOutcome::Eof) => {
                        let _ = t.recv_plaintext(&mut plain);
                        eof = true;
                        break;
                    }
                    Ok(crate::shell::tls::ReadOutcome::WouldBlock) => break,
                    Err(e) => {
                        let name = c.name;
                        self.finish(now, poll, Outcome::Transient, &format!("{name}: {e}"));
                        return;
                    }
                }
            }
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => plain.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => break,
                Err(e) => {
                    let name = c.name;
                    self.finish(now, poll, Outcome::Transient, &format!("{name}: receive: {e}"));
                    return;
                }
            }
        }
        #[cfg(feature = "tls")]
        if let Some(t) = c.tls.as_mut()
            && t.wants_write()
        {
            let _ = t.write_tls_to(&mut c.stream);
        }
        let name = c.name;
        let done = match c.parser.feed(&plain) {
            Ok(Progress::Done { .. }) => true,
            Ok(Progress::NeedMore) if eof => c.parser.finish_eof().is_ok(),
            Ok(Progress::NeedMore) => false,
            Err(e) => {
                self.finish(now, poll, Outcome::Transient, &format!("{name}: bad response: {e:?}"));
                return;
            }
        };
        if done {
            let status = c.parser.take_response().map_or(0, |r| r.status);
            let outcome = Outcome::of_status(status);
            self.finish(now, poll, outcome, &format!("{name}: HTTP {status}"));
        } else if eof {
            self.finish(
                now,
                poll,
                Outcome::Transient,
                &format!("{name}: connection closed before a response"),
            );
        } else {
            self.update_interest(poll);
        }
    }

    fn finish(&mut self, now: Instant, poll: &mut PollSet, outcome: Outcome, what: &str) {
        if self.conn.take().is_some() {
            poll.deregister(self.token);
        }
        self.delivery.on_result(now, outcome);
        if outcome != Outcome::Delivered {
            self.log_failure(now, what);
        }
    }

    fn log_failure(&mut self, now: Instant, what: &str) {
        if let Some(suppressed) = self.warn.allow(now) {
            let more =
                if suppressed > 0 { format!(" ({suppressed} similar suppressed)") } else { String::new() };
            warn!(target: "wanctl::alerts", "webhook {}: {what}; will retry per the back-off{more}", self.url);
        }
    }
}
