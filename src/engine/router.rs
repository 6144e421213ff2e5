//! `RouterLink`: talking to one RouterOS router over REST (HTTP/HTTPS) with SSH as the
//! fallback, without I/O. Pure: bytes and events in, connection actions and results out.
//!
//! Calling protocol (the same shape as `Daemon`):
//! * [`RouterLink::submit`] a [`Command`] (one at a time: RouterOS serves one request per
//!   user at a time and does not pipeline; the caller sends the newest decision next and
//!   never queues stale ones);
//! * execute what [`RouterLink::poll_output`] yields ([`LinkOutput`]: open/close the REST
//!   connection, send bytes, spawn/kill `ssh`, write its stdin) and feed back what happens
//!   (`on_rest_*`, `on_ssh_*`);
//! * call [`RouterLink::handle_timeout`] at [`RouterLink::poll_timeout`];
//! * a finished command comes out as [`LinkOutput::Done`].
//!
//! Policy:
//! * **Transport choice.** `router.transport` is the primary (the original always used REST
//!   first and never really failed over). A transport-level failure (refused, timeout, TLS,
//!   5xx, closed mid-reply, garbage, authentication) retries the same command once on the
//!   other transport and makes it the active one; a refusal by RouterOS (`Rejected`) does
//!   not fail over (the other transport would be refused too). While the fallback is active
//!   the primary is re-probed every `router.failback_interval_sec` (default [`REPROBE_INTERVAL`]) with a cheap read and used again
//!   once it answers.
//! * **Keep-alive.** One REST connection is reused for everything. If a reused connection
//!   fails before any byte of the response arrived (the router closed it while idle), the
//!   request is retried once on a fresh connection (ROUTEROS.md §1.4).
//! * **Deadlines.** Connect: [`CONNECT_TIMEOUT`] at most. Request: the configured command
//!   timeout capped at [`REQUEST_TIMEOUT_MAX`] (a rate decision that takes longer is stale).
//! * **Read-back.** RouterOS may apply a write it answered with 400 (ROUTEROS.md §1.7), and
//!   a console `set [find name=…]` on a missing name silently does nothing (§4.2). So a
//!   refused REST rate write, and every SSH rate write, is verified by reading both queues.
//! * **SSH session.** One `ssh -T` process per link, fed console lines on stdin; after each
//!   command the link sends `:put "WANCTL-END-<n>"` and the output up to that marker is the
//!   command's. A dead `ssh` is respawned with back-off ([`SSH_BACKOFF_MIN`]..[`SSH_BACKOFF_MAX`]).

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::config::{RouterConfig, Scheme, Transport};
use crate::engine::connectivity::FailureKind;
use crate::engine::writer::WriteOutcome;
use crate::time::Instant;
use crate::wire::http::{BasicAuth, Progress, ResponseParser};
use crate::wire::routeros::{Command, Fault, IdCache, QueueLimit, Reply, RestCall, RouterOsError};

/// Longest connect attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest a single request may take, whatever `timeouts.ssh_command` says.
pub const REQUEST_TIMEOUT_MAX: Duration = Duration::from_secs(5);
/// Default of how often a failed primary transport is tried again while the fallback is in
/// use (`router.failback_interval_sec`).
pub const REPROBE_INTERVAL: Duration = Duration::from_secs(30);
/// First delay before respawning a dead `ssh`.
pub const SSH_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest delay before respawning a dead `ssh`.
pub const SSH_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Stderr kept from `ssh` for classifying its failure.
const STDERR_KEEP: usize = 2048;
/// Stdout kept per SSH command (a print of one queue is well under this).
const STDOUT_MAX: usize = 256 * 1024;

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkError {
    /// Classification for reachability tracking and health.
    pub kind: FailureKind,
    /// Whether a write may have been applied.
    pub outcome: WriteOutcome,
    /// The transport that failed last.
    pub transport: Transport,
    /// Human text (never contains the password).
    pub message: String,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", transport_name(self.transport), self.kind, self.message)
    }
}

/// `rest` / `ssh`.
pub fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Rest => "rest",
        Transport::Ssh => "ssh",
    }
}

fn other(t: Transport) -> Transport {
    match t {
        Transport::Rest => Transport::Ssh,
        Transport::Ssh => Transport::Rest,
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutput {
    /// Open the REST connection (TCP, then TLS if `tls`) and report with
    /// `on_rest_connected` / `on_rest_failed`.
    RestConnect {
        /// Wrap in TLS.
        tls: bool,
    },
    /// Send these bytes on the REST connection (in order, all of them).
    RestSend(Vec<u8>),
    /// Close the REST connection (no report expected).
    RestClose,
    /// Spawn `ssh` with these arguments (no shell); report output and exit.
    SshSpawn {
        /// Arguments after the program name.
        args: Vec<String>,
    },
    /// Write to `ssh`'s stdin.
    SshSend(Vec<u8>),
    /// Kill `ssh` (its exit is still reported).
    SshKill,
    /// A submitted command finished (boxed: a reply can carry queue statistics).
    Done(Box<Result<Reply, LinkError>>),
    /// The active transport changed (for logs and health).
    TransportChanged {
        /// Previous transport.
        from: Transport,
        /// New transport.
        to: Transport,
        /// Why.
        reason: String,
    },
}

#[derive(Debug)]
enum Rest {
    Down,
    Connecting { deadline: Instant },
    Ready { fresh: bool },
    Waiting { deadline: Instant, parser: ResponseParser, got_bytes: bool, fresh: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ssh {
    Down,
    /// Running; `waiting` is the marker number of the command in progress.
    Up {
        waiting: Option<u32>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// The command itself.
    Main,
    /// Reading back a rate write: (limits, which queue is being read, found values).
    ReadBack {
        want: (QueueLimit, QueueLimit),
        reading_upload: bool,
        download_ok: bool,
        refused: Option<String>,
    },
}

#[derive(Debug)]
struct Job {
    command: Command,
    internal: bool,
    transport: Transport,
    tried_other: bool,
    phase: Phase,
    rest: Option<RestCall>,
    deadline: Instant,
    /// Why the first transport failed, when the job moved to the other one.
    failover_reason: Option<String>,
}

/// Static settings of a link. `Debug` is written by hand: it never shows the password.
#[derive(Clone)]
pub struct LinkSettings {
    /// `Host` header value (`host` or `host:port`).
    pub host_header: String,
    /// REST user.
    pub user: String,
    /// REST password (never printed).
    pub password: String,
    /// HTTPS?
    pub tls: bool,
    /// Primary transport.
    pub primary: Transport,
    /// Request deadline.
    pub request_timeout: Duration,
    /// `ssh` arguments (options, key, destination).
    pub ssh_args: Vec<String>,
    /// Re-probe interval of a failed primary.
    pub failback_interval: Duration,
}

impl fmt::Debug for LinkSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkSettings")
            .field("host_header", &self.host_header)
            .field("user", &self.user)
            .field("password", &if self.password.is_empty() { "<empty>" } else { "<redacted>" })
            .field("tls", &self.tls)
            .field("primary", &self.primary)
            .field("request_timeout", &self.request_timeout)
            .field("ssh_args", &self.ssh_args)
            .field("failback_interval", &self.failback_interval)
            .finish()
    }
}

impl LinkSettings {
    /// Settings from the router config; `ssh_args` from [`ssh_args`].
    pub fn from_config(r: &RouterConfig, router_timeout: Duration) -> LinkSettings {
        let default_port = if r.scheme == Scheme::Https { 443 } else { 80 };
        let host = if r.host.contains(':') { format!("[{}]", r.host) } else { r.host.clone() };
        let host_header = if r.port == default_port { host } else { format!("{host}:{}", r.port) };
        LinkSettings {
            host_header,
            user: r.user.clone(),
            password: r.password.0.clone(),
            tls: r.scheme == Scheme::Https,
            primary: r.transport,
            request_timeout: router_timeout.min(REQUEST_TIMEOUT_MAX),
            ssh_args: ssh_args(r, router_timeout),
            failback_interval: r.failback_interval,
        }
    }
}

/// The `ssh` command line (after the program name): no TTY, batch mode (never prompt),
/// bounded connect, keep-alives, the configured key, strict host-key checking (the
/// original rejected unknown hosts), and the login name with `+ct` (console without colours
/// or terminal detection, ROUTEROS.md §4.1).
pub fn ssh_args(r: &RouterConfig, timeout: Duration) -> Vec<String> {
    let connect = timeout.as_secs().clamp(1, 10);
    let mut a: Vec<String> = [
        "-T",
        "-o",
        "BatchMode=yes",
        "-o",
        &format!("ConnectTimeout={connect}"),
        "-o",
        "ServerAliveInterval=10",
        "-o",
        "ServerAliveCountMax=3",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "LogLevel=ERROR",
        "-i",
        &r.ssh_key,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push("--".into());
    a.push(format!("{}+ct@{}", r.user, r.host));
    a
}

/// One router, two transports.
#[derive(Debug)]
pub struct RouterLink {
    s: LinkSettings,
    active: Transport,
    rest: Rest,
    ssh: Ssh,
    ssh_backoff: Duration,
    ssh_retry_at: Option<Instant>,
    ssh_out: Vec<u8>,
    ssh_err: Vec<u8>,
    marker: u32,
    ids: IdCache,
    job: Option<Job>,
    pending: Option<Command>,
    next_reprobe: Option<Instant>,
    reconnect_clears_ids: bool,
    outputs: VecDeque<LinkOutput>,
    buf: Vec<u8>,
    /// Whether a transport failure retries on the other transport (off for audits, which
    /// must report on the configured transport alone).
    failover: bool,
}

impl RouterLink {
    /// A link that will use `settings.primary` first.
    pub fn new(settings: LinkSettings) -> RouterLink {
        RouterLink {
            active: settings.primary,
            s: settings,
            rest: Rest::Down,
            ssh: Ssh::Down,
            ssh_backoff: SSH_BACKOFF_MIN,
            ssh_retry_at: None,
            ssh_out: Vec::new(),
            ssh_err: Vec::new(),
            marker: 0,
            ids: IdCache::new(),
            job: None,
            pending: None,
            next_reprobe: None,
            reconnect_clears_ids: false,
            outputs: VecDeque::with_capacity(8),
            buf: Vec::with_capacity(512),
            failover: true,
        }
    }

    /// A link that never fails over: every command runs on `settings.primary` only and a
    /// transport failure ends it (`wanctl check-router` audits one transport).
    pub fn without_failover(settings: LinkSettings) -> RouterLink {
        RouterLink { failover: false, ..RouterLink::new(settings) }
    }

    /// The transport in use.
    pub fn active(&self) -> Transport {
        self.active
    }

    /// The configured primary.
    pub fn primary(&self) -> Transport {
        self.s.primary
    }

    /// True while a submitted command has not finished.
    pub fn is_busy(&self) -> bool {
        self.job.as_ref().is_some_and(|j| !j.internal) || self.pending.is_some()
    }

    /// Starts `command` now (or right after an internal probe). A command submitted while
    /// another is running replaces any waiting one (newest wins).
    pub fn submit(&mut self, now: Instant, command: Command) {
        if self.job.is_some() {
            self.pending = Some(command);
            return;
        }
        self.start(now, command, false, self.active);
    }

    /// The next action.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<LinkOutput> {
        self.outputs.pop_front()
    }

    /// The next deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.job.as_ref().map(|j| j.deadline);
        let mut consider = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |y| y.min(x)));
            }
        };
        match &self.rest {
            Rest::Connecting { deadline } | Rest::Waiting { deadline, .. } => consider(Some(*deadline)),
            _ => {}
        }
        if self.job.is_none() && self.active != self.s.primary {
            consider(self.next_reprobe);
        }
        t
    }

    fn start(&mut self, now: Instant, command: Command, internal: bool, transport: Transport) {
        let deadline = now + self.s.request_timeout + CONNECT_TIMEOUT;
        self.job = Some(Job {
            command,
            internal,
            transport,
            tried_other: internal,
            phase: Phase::Main,
            rest: None,
            deadline,
            failover_reason: None,
        });
        self.run(now);
    }

    /// Sends the current job's next step on its transport.
    fn run(&mut self, now: Instant) {
        let Some(job) = self.job.as_mut() else { return };
        let command = match &job.phase {
            Phase::Main => job.command.clone(),
            Phase::ReadBack { want, reading_upload, .. } => {
                let name = if *reading_upload { &want.1.name } else { &want.0.name };
                Command::GetQueueConfigByName(name.clone())
            }
        };
        match job.transport {
            Transport::Rest => {
                if job.rest.is_none() {
                    job.rest = Some(RestCall::new(command, &self.ids));
                }
                match self.rest {
                    Rest::Down => {
                        if self.reconnect_clears_ids {
                            self.ids.clear();
                            self.reconnect_clears_ids = false;
                        }
                        self.rest = Rest::Connecting { deadline: now + CONNECT_TIMEOUT };
                        self.outputs.push_back(LinkOutput::RestConnect { tls: self.s.tls });
                    }
                    Rest::Ready { fresh } => self.send_rest(now, fresh),
                    Rest::Connecting { .. } | Rest::Waiting { .. } => {}
                }
            }
            Transport::Ssh => {
                if let Some(at) = self.ssh_retry_at
                    && now < at
                    && self.ssh == Ssh::Down
                {
                    // ssh is resting after a failure: not a new failure, so no transport
                    // change is announced; the other transport gets the command if untried.
                    let left = at.saturating_since(now);
                    let message = format!("ssh restart back-off ({:.1}s left)", left.as_secs_f64());
                    match self.job.as_mut() {
                        Some(job) if !job.tried_other && !job.internal && self.failover => {
                            job.tried_other = true;
                            job.transport = Transport::Rest;
                            job.rest = None;
                            self.run(now);
                        }
                        _ => self.fail(now, FailureKind::Unknown, WriteOutcome::NotSent, message),
                    }
                    return;
                }
                let line = match command.cli_line() {
                    Ok(l) => l,
                    Err(e) => {
                        self.finish(
                            now,
                            Err(LinkError {
                                kind: FailureKind::Unknown,
                                outcome: WriteOutcome::Rejected,
                                transport: Transport::Ssh,
                                message: format!("cannot encode console command: {e}"),
                            }),
                        );
                        return;
                    }
                };
                if self.ssh == Ssh::Down {
                    self.ssh_out.clear();
                    self.ssh_err.clear();
                    self.outputs.push_back(LinkOutput::SshSpawn { args: self.s.ssh_args.clone() });
                    self.ssh = Ssh::Up { waiting: None };
                }
                self.marker = self.marker.wrapping_add(1);
                self.ssh = Ssh::Up { waiting: Some(self.marker) };
                self.ssh_out.clear();
                let text = format!("{line}\r\n:put \"WANCTL-END-{}\"\r\n", self.marker);
                self.outputs.push_back(LinkOutput::SshSend(text.into_bytes()));
                if let Some(job) = self.job.as_mut() {
                    job.deadline = now + self.s.request_timeout + CONNECT_TIMEOUT;
                }
            }
        }
    }

    fn send_rest(&mut self, now: Instant, fresh: bool) {
        let Some(job) = self.job.as_mut() else { return };
        let Some(call) = job.rest.as_mut() else { return };
        let Some(req) = call.poll_request() else { return };
        self.buf.clear();
        let auth = Some(BasicAuth { user: &self.s.user, password: &self.s.password });
        let method = req.method;
        if let Err(e) = req.http(&self.s.host_header, auth).write(&mut self.buf) {
            let message = format!("cannot encode request: {e:?}");
            self.finish(
                now,
                Err(LinkError {
                    kind: FailureKind::Unknown,
                    outcome: WriteOutcome::Rejected,
                    transport: Transport::Rest,
                    message,
                }),
            );
            return;
        }
        self.outputs.push_back(LinkOutput::RestSend(self.buf.clone()));
        self.rest = Rest::Waiting {
            deadline: now + self.s.request_timeout,
            parser: ResponseParser::new(method),
            got_bytes: false,
            fresh,
        };
    }

    /// The REST connection is up.
    pub fn on_rest_connected(&mut self, now: Instant) {
        if matches!(self.rest, Rest::Connecting { .. }) {
            self.rest = Rest::Ready { fresh: true };
            self.send_rest(now, true);
        }
    }

    /// Connecting (TCP or TLS) failed.
    pub fn on_rest_failed(&mut self, now: Instant, kind: FailureKind, message: String) {
        let sent = matches!(self.rest, Rest::Waiting { .. });
        self.rest = Rest::Down;
        self.reconnect_clears_ids = true;
        if self.job.as_ref().is_some_and(|j| j.transport == Transport::Rest) {
            let outcome = if sent { WriteOutcome::Uncertain } else { WriteOutcome::NotSent };
            self.fail(now, kind, outcome, message);
        }
    }

    /// Bytes arrived on the REST connection.
    pub fn on_rest_data(&mut self, now: Instant, data: &[u8]) {
        let Rest::Waiting { parser, got_bytes, .. } = &mut self.rest else {
            // Unsolicited bytes on an idle connection: protocol violation, drop it.
            self.outputs.push_back(LinkOutput::RestClose);
            self.rest = Rest::Down;
            return;
        };
        *got_bytes = true;
        match parser.feed(data) {
            Ok(Progress::NeedMore) => {}
            Ok(Progress::Done { .. }) => {
                if let Some(resp) = parser.take_response() {
                    self.on_response(now, resp.status, &resp.body, resp.keep_alive);
                }
            }
            Err(e) => {
                self.outputs.push_back(LinkOutput::RestClose);
                self.rest = Rest::Down;
                self.fail(
                    now,
                    FailureKind::Unknown,
                    WriteOutcome::Uncertain,
                    format!("bad HTTP response: {e}"),
                );
            }
        }
    }

    /// The peer closed the REST connection (EOF) or it broke (`error`).
    pub fn on_rest_closed(&mut self, now: Instant, error: Option<String>) {
        match std::mem::replace(&mut self.rest, Rest::Down) {
            Rest::Waiting { mut parser, got_bytes, fresh, .. } => {
                if !got_bytes && !fresh {
                    // A reused keep-alive connection the router had closed: retry once fresh.
                    if let Some(job) = self.job.as_mut()
                        && let Some(call) = job.rest.take()
                    {
                        job.rest = Some(RestCall::new(call.command().clone(), &self.ids));
                    }
                    self.rest = Rest::Connecting { deadline: now + CONNECT_TIMEOUT };
                    self.outputs.push_back(LinkOutput::RestConnect { tls: self.s.tls });
                    return;
                }
                // A close-delimited body ends here.
                if parser.finish_eof().is_ok()
                    && let Some(resp) = parser.take_response()
                {
                    self.on_response(now, resp.status, &resp.body, false);
                    return;
                }
                let msg = error.unwrap_or_else(|| "connection closed before the response ended".into());
                self.fail(now, FailureKind::Unknown, WriteOutcome::Uncertain, msg);
            }
            Rest::Connecting { .. } => {
                let msg = error.unwrap_or_else(|| "connection closed".into());
                self.fail(now, FailureKind::ConnectionRefused, WriteOutcome::NotSent, msg);
            }
            _ => {}
        }
    }

    fn on_response(&mut self, now: Instant, status: u16, body: &[u8], keep_alive: bool) {
        self.rest = if keep_alive {
            Rest::Ready { fresh: false }
        } else {
            self.outputs.push_back(LinkOutput::RestClose);
            Rest::Down
        };
        let Some(job) = self.job.as_mut() else { return };
        let Some(call) = job.rest.as_mut() else { return };
        match call.handle_response(status, body, &mut self.ids) {
            Ok(None) => {
                if let Rest::Ready { fresh } = self.rest {
                    self.send_rest(now, fresh);
                } else {
                    self.run(now);
                }
            }
            Ok(Some(reply)) => {
                job.rest = None;
                self.on_reply(now, reply);
            }
            Err(e) => {
                job.rest = None;
                self.on_router_error(now, e);
            }
        }
    }

    fn on_reply(&mut self, now: Instant, reply: Reply) {
        if self.internal_done(now) {
            return;
        }
        let Some(job) = self.job.as_mut() else { return };
        match (&mut job.phase, &job.command, reply) {
            (
                Phase::Main,
                Command::SetQueueLimits { download, upload },
                Reply::QueueLimitsSet { download: d, .. },
            ) if d.is_none() => {
                // Console set: silent on success and on a missing name alike; verify.
                job.phase = Phase::ReadBack {
                    want: (download.clone(), upload.clone()),
                    reading_upload: false,
                    download_ok: false,
                    refused: None,
                };
                self.run(now);
            }
            (Phase::ReadBack { want, reading_upload, download_ok, refused }, _, Reply::Queue(item)) => {
                let target = if *reading_upload { &want.1 } else { &want.0 };
                let ok = item.as_ref().and_then(|q| q.max_limit) == Some(target.max_limit);
                if !*reading_upload {
                    *download_ok = ok;
                    *reading_upload = true;
                    let missing = item.is_none();
                    if missing {
                        let name = want.0.name.clone();
                        self.finish(
                            now,
                            Err(LinkError {
                                kind: FailureKind::Unknown,
                                outcome: WriteOutcome::Rejected,
                                transport: self.active,
                                message: format!("queue {name:?} not found on the router"),
                            }),
                        );
                        return;
                    }
                    self.run(now);
                } else if *download_ok && ok {
                    self.finish(now, Ok(Reply::QueueLimitsSet { download: None, upload: item }));
                } else {
                    let message = refused.clone().unwrap_or_else(|| {
                        format!(
                            "read-back shows the limits were not applied (queue {:?}{})",
                            target.name,
                            if item.is_none() { " not found" } else { "" }
                        )
                    });
                    self.finish(
                        now,
                        Err(LinkError {
                            kind: FailureKind::Unknown,
                            outcome: WriteOutcome::Rejected,
                            transport: self.active,
                            message,
                        }),
                    );
                }
            }
            (_, _, reply) => self.finish(now, Ok(reply)),
        }
    }

    fn on_router_error(&mut self, now: Instant, e: RouterOsError) {
        let Some(job) = self.job.as_mut() else { return };
        match e.fault() {
            Fault::Rejected => {
                if let (Phase::Main, Command::SetQueueLimits { download, upload }) =
                    (&job.phase, &job.command)
                {
                    // A 400 may still have applied (ROUTEROS.md §1.7): read back.
                    job.phase = Phase::ReadBack {
                        want: (download.clone(), upload.clone()),
                        reading_upload: false,
                        download_ok: false,
                        refused: Some(format!("router refused: {e}")),
                    };
                    self.run(now);
                } else {
                    let t = job.transport;
                    self.finish(
                        now,
                        Err(LinkError {
                            kind: FailureKind::Unknown,
                            outcome: WriteOutcome::Rejected,
                            transport: t,
                            message: format!("router refused: {e}"),
                        }),
                    );
                }
            }
            Fault::Auth => {
                self.fail(
                    now,
                    FailureKind::AuthFailure,
                    WriteOutcome::NotSent,
                    format!("authentication: {e}"),
                );
            }
            Fault::Transport => self.fail(now, FailureKind::Unknown, WriteOutcome::Uncertain, e.to_string()),
            Fault::Protocol => {
                self.outputs.push_back(LinkOutput::RestClose);
                if job.transport == Transport::Rest {
                    self.rest = Rest::Down;
                }
                self.fail(now, FailureKind::Unknown, WriteOutcome::Uncertain, e.to_string());
            }
        }
    }

    /// A transport-level failure of the current job: fail over once, else report.
    fn fail(&mut self, now: Instant, kind: FailureKind, outcome: WriteOutcome, message: String) {
        let Some(job) = self.job.as_mut() else { return };
        let failed = job.transport;
        if job.internal {
            // A re-probe of the primary failed: stay on the fallback.
            self.job = None;
            self.next_reprobe = Some(now + self.s.failback_interval);
            self.start_pending(now);
            return;
        }
        if !job.tried_other && self.failover {
            // Retry on the other transport. The active transport changes only if that
            // succeeds (see `finish`), so an outage of both does not flip-flop.
            job.tried_other = true;
            job.transport = other(failed);
            job.rest = None;
            job.phase = Phase::Main;
            job.failover_reason = Some(format!("{} failed ({kind}): {message}", transport_name(failed)));
            self.run(now);
            return;
        }
        let message = match &job.failover_reason {
            Some(first) => format!("{first}; then {} failed ({kind}): {message}", transport_name(failed)),
            None => message,
        };
        self.finish(now, Err(LinkError { kind, outcome, transport: failed, message }));
    }

    fn finish(&mut self, now: Instant, result: Result<Reply, LinkError>) {
        let Some(job) = self.job.take() else { return };
        if result.is_ok() && job.transport == Transport::Ssh {
            self.ssh_backoff = SSH_BACKOFF_MIN;
        }
        if result.is_ok() && job.transport != self.active && !job.internal {
            let from = self.active;
            self.active = job.transport;
            if self.active != self.s.primary {
                self.next_reprobe = Some(now + self.s.failback_interval);
            }
            let reason = job.failover_reason.clone().unwrap_or_else(|| "previous transport failed".into());
            self.outputs.push_back(LinkOutput::TransportChanged { from, to: job.transport, reason });
        }
        if !job.internal {
            self.outputs.push_back(LinkOutput::Done(Box::new(result)));
        }
        self.start_pending(now);
    }

    fn start_pending(&mut self, now: Instant) {
        if let Some(c) = self.pending.take() {
            self.start(now, c, false, self.active);
        }
    }

    /// Bytes from `ssh`'s stdout.
    pub fn on_ssh_stdout(&mut self, now: Instant, data: &[u8]) {
        let Ssh::Up { waiting: Some(n) } = self.ssh else { return };
        if self.ssh_out.len() + data.len() > STDOUT_MAX {
            self.outputs.push_back(LinkOutput::SshKill);
            self.fail(now, FailureKind::Unknown, WriteOutcome::Uncertain, "ssh output too large".into());
            return;
        }
        self.ssh_out.extend_from_slice(data);
        let marker = format!("WANCTL-END-{n}");
        let text = String::from_utf8_lossy(&self.ssh_out);
        let Some(pos) = text.find(&marker) else { return };
        let output = text[..pos].as_bytes().to_vec();
        self.ssh = Ssh::Up { waiting: None };
        self.ssh_out.clear();
        let Some(job) = self.job.as_ref() else { return };
        let command = match &job.phase {
            Phase::Main => job.command.clone(),
            Phase::ReadBack { want, reading_upload, .. } => {
                Command::GetQueueConfigByName(if *reading_upload {
                    want.1.name.clone()
                } else {
                    want.0.name.clone()
                })
            }
        };
        match command.parse_cli_output(&output) {
            Ok(reply) => self.on_reply(now, reply),
            Err(e) => self.on_router_error(now, e),
        }
    }

    /// Bytes from `ssh`'s stderr (kept for classifying its failure).
    pub fn on_ssh_stderr(&mut self, data: &[u8]) {
        let room = STDERR_KEEP.saturating_sub(self.ssh_err.len());
        self.ssh_err.extend_from_slice(&data[..data.len().min(room)]);
    }

    /// `ssh` exited (or could not be spawned: `code` None and `spawn_error` set).
    pub fn on_ssh_exit(&mut self, now: Instant, code: Option<i32>, spawn_error: Option<String>) {
        let was_waiting = matches!(self.ssh, Ssh::Up { waiting: Some(_) });
        self.ssh = Ssh::Down;
        self.ssh_retry_at = Some(now + self.ssh_backoff);
        self.ssh_backoff = (self.ssh_backoff * 2).min(SSH_BACKOFF_MAX);
        let stderr = String::from_utf8_lossy(&self.ssh_err).trim().to_string();
        let message = match (&spawn_error, code) {
            (Some(e), _) => format!("cannot run ssh: {e}"),
            (None, Some(c)) if stderr.is_empty() => format!("ssh exited with status {c}"),
            (None, Some(c)) => format!("ssh exited with status {c}: {stderr}"),
            (None, None) => {
                format!("ssh killed{}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })
            }
        };
        let kind = classify_ssh_stderr(&stderr);
        if self.job.as_ref().is_some_and(|j| j.transport == Transport::Ssh) {
            let outcome = if was_waiting && !self.ssh_out.is_empty() {
                WriteOutcome::Uncertain
            } else {
                WriteOutcome::NotSent
            };
            self.fail(now, kind, outcome, message);
        }
        if self.job.is_none() {
            self.start_pending(now);
        }
    }

    fn on_probe_ok(&mut self, now: Instant) {
        let Some(job) = self.job.take() else { return };
        if job.transport != self.active {
            let from = self.active;
            self.active = job.transport;
            self.outputs.push_back(LinkOutput::TransportChanged {
                from,
                to: job.transport,
                reason: format!("{} answers again", transport_name(job.transport)),
            });
        }
        self.start_pending(now);
    }

    /// Deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &self.rest {
            Rest::Connecting { deadline } if now >= *deadline => {
                self.outputs.push_back(LinkOutput::RestClose);
                self.rest = Rest::Down;
                self.reconnect_clears_ids = true;
                if self.job.as_ref().is_some_and(|j| j.transport == Transport::Rest) {
                    self.fail(now, FailureKind::Timeout, WriteOutcome::NotSent, "connect timed out".into());
                }
                return;
            }
            Rest::Waiting { deadline, .. } if now >= *deadline => {
                self.outputs.push_back(LinkOutput::RestClose);
                self.rest = Rest::Down;
                if self.job.as_ref().is_some_and(|j| j.transport == Transport::Rest) {
                    self.fail(
                        now,
                        FailureKind::Timeout,
                        WriteOutcome::Uncertain,
                        "no response in time".into(),
                    );
                }
                return;
            }
            _ => {}
        }
        if let Some(job) = self.job.as_ref()
            && now >= job.deadline
        {
            if job.transport == Transport::Ssh {
                self.outputs.push_back(LinkOutput::SshKill);
                self.ssh = Ssh::Down;
                self.ssh_retry_at = Some(now + self.ssh_backoff);
            }
            self.fail(now, FailureKind::Timeout, WriteOutcome::Uncertain, "command timed out".into());
            return;
        }
        if self.job.is_none() && self.active != self.s.primary && self.next_reprobe.is_some_and(|t| now >= t)
        {
            self.next_reprobe = Some(now + self.s.failback_interval);
            self.start(now, Command::Probe, true, self.s.primary);
        }
    }

    /// Internal: route a successful internal probe reply (REST path).
    fn internal_done(&mut self, now: Instant) -> bool {
        if self.job.as_ref().is_some_and(|j| j.internal) {
            self.on_probe_ok(now);
            true
        } else {
            false
        }
    }
}

/// Classifies what `ssh` printed on stderr when it failed.
pub fn classify_ssh_stderr(stderr: &str) -> FailureKind {
    let s = stderr.to_ascii_lowercase();
    if s.contains("permission denied")
        || s.contains("authentication failed")
        || s.contains("host key verification failed")
    {
        FailureKind::AuthFailure
    } else if s.contains("connection refused") {
        FailureKind::ConnectionRefused
    } else if s.contains("timed out") {
        FailureKind::Timeout
    } else if s.contains("could not resolve") || s.contains("name or service not known") {
        FailureKind::DnsFailure
    } else if s.contains("no route to host") || s.contains("network is unreachable") {
        FailureKind::NetworkUnreachable
    } else {
        FailureKind::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::Bps;
    use crate::wire::routeros::Direction;

    const GET_DL: &[u8] = include_bytes!("../../tests/fixtures/routeros/rest/queue-tree-get-by-name.json");
    const PATCH_OK: &[u8] =
        include_bytes!("../../tests/fixtures/routeros/rest/queue-tree-patch-max-limit.response.json");
    const PRINT_DETAIL: &[u8] =
        include_bytes!("../../tests/fixtures/routeros/cli/queue-tree-print-where-name.txt");
    const BAD_QUEUE: &[u8] =
        include_bytes!("../../tests/fixtures/routeros/rest/errors/400-input-does-not-match-queue.json");

    fn settings(primary: Transport) -> LinkSettings {
        LinkSettings {
            host_header: "192.0.2.1".into(),
            user: "wanctl".into(),
            password: "hunter2".into(),
            tls: false,
            primary,
            request_timeout: Duration::from_secs(2),
            ssh_args: vec!["-T".into(), "wanctl+ct@192.0.2.1".into()],
            failback_interval: REPROBE_INTERVAL,
        }
    }

    fn set(dl: u64, ul: u64) -> Command {
        Command::SetQueueLimits {
            download: QueueLimit::with_cake_type("WAN-Download-1", Direction::Download, "wan1", Bps(dl)),
            upload: QueueLimit::with_cake_type("WAN-Upload-1", Direction::Upload, "wan1", Bps(ul)),
        }
    }

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn drain(l: &mut RouterLink) -> Vec<LinkOutput> {
        std::iter::from_fn(|| l.poll_output()).collect()
    }

    fn http(status: u16, body: &[u8]) -> Vec<u8> {
        let mut v = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        v.extend_from_slice(body);
        v
    }

    fn item(name: &str, id: &str, max: u64) -> Vec<u8> {
        format!(r#"[{{".id":"{id}","name":"{name}","max-limit":"{max}","queue":"cake-up"}}]"#).into_bytes()
    }

    fn sent_text(o: &[LinkOutput]) -> String {
        o.iter()
            .filter_map(|x| match x {
                LinkOutput::RestSend(b) | LinkOutput::SshSend(b) => {
                    Some(String::from_utf8_lossy(b).into_owned())
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn rest_rate_write_looks_up_ids_once_and_reuses_the_connection() {
        let mut l = RouterLink::new(settings(Transport::Rest));
        l.submit(ms(0), set(450_000_000, 38_000_000));
        assert_eq!(drain(&mut l), vec![LinkOutput::RestConnect { tls: false }]);
        l.on_rest_connected(ms(1));
        assert!(sent_text(&drain(&mut l)).starts_with("GET /rest/queue/tree?name=WAN-Download-1 HTTP/1.1"));
        l.on_rest_data(ms(2), &http(200, GET_DL));
        let patch = sent_text(&drain(&mut l));
        assert!(patch.starts_with("PATCH /rest/queue/tree/*1000000 HTTP/1.1"), "{patch}");
        assert!(!patch.contains("hunter2"), "password is sent base64-encoded only");
        l.on_rest_data(ms(3), &http(200, PATCH_OK));
        assert!(sent_text(&drain(&mut l)).starts_with("GET /rest/queue/tree?name=WAN-Upload-1"));
        l.on_rest_data(ms(4), &http(200, &item("WAN-Upload-1", "*1000001", 1)));
        assert!(sent_text(&drain(&mut l)).starts_with("PATCH /rest/queue/tree/*1000001"));
        let patched =
            br#"{".id":"*1000001","name":"WAN-Upload-1","max-limit":"38000000","queue":"cake-up-wan1"}"#;
        l.on_rest_data(ms(5), &http(200, patched));
        let out = drain(&mut l);
        assert!(matches!(out.last(), Some(LinkOutput::Done(r)) if r.is_ok()), "{out:?}");
        // Second write: ids cached, same connection, two PATCHes only.
        l.submit(ms(100), set(400_000_000, 38_000_000));
        let out = drain(&mut l);
        assert!(!out.contains(&LinkOutput::RestConnect { tls: false }));
        assert!(sent_text(&out).starts_with("PATCH /rest/queue/tree/*1000000"));
    }

    #[test]
    fn refused_rest_falls_over_to_ssh_verifies_by_read_back_and_returns_to_rest() {
        let mut l = RouterLink::new(settings(Transport::Rest));
        l.submit(ms(0), set(450_000_000, 38_000_000));
        drain(&mut l);
        l.on_rest_failed(ms(1), FailureKind::ConnectionRefused, "connect: refused".into());
        let out = drain(&mut l);
        assert!(matches!(&out[0], LinkOutput::SshSpawn { .. }), "{out:?}");
        let line = sent_text(&out);
        assert!(
            line.starts_with(
                "/queue tree set [find name=\"WAN-Download-1\"] queue=cake-down-wan1 max-limit=450000000; "
            ),
            "{line}"
        );
        assert!(line.ends_with(":put \"WANCTL-END-1\"\r\n"));
        l.on_ssh_stdout(ms(5), b"WANCTL-END-1\r\n");
        let readback = sent_text(&drain(&mut l));
        assert!(readback.starts_with("/queue/tree print detail where name=\"WAN-Download-1\""), "{readback}");
        let mut dl = String::from_utf8_lossy(PRINT_DETAIL).replace("940M", "450M").into_bytes();
        dl.extend_from_slice(b"WANCTL-END-2\r\n");
        l.on_ssh_stdout(ms(6), &dl);
        drain(&mut l);
        let ul = b" 0   name=\"WAN-Upload-1\" parent=ether1 max-limit=38M\r\n\r\nWANCTL-END-3\r\n";
        l.on_ssh_stdout(ms(7), ul);
        let out = drain(&mut l);
        assert!(matches!(out.last(), Some(LinkOutput::Done(r)) if r.is_ok()), "{out:?}");
        assert!(
            out.iter().any(|o| matches!(
                o,
                LinkOutput::TransportChanged { from: Transport::Rest, to: Transport::Ssh, .. }
            )),
            "{out:?}"
        );
        assert!(
            out.iter().any(|o| matches!(
                o,
                LinkOutput::TransportChanged { from: Transport::Rest, to: Transport::Ssh, .. }
            )),
            "{out:?}"
        );
        assert_eq!(l.active(), Transport::Ssh);
        // 30 s later the primary is probed and taken back when it answers.
        assert_eq!(l.poll_timeout(), Some(ms(7) + REPROBE_INTERVAL));
        l.handle_timeout(ms(7) + REPROBE_INTERVAL);
        assert_eq!(drain(&mut l), vec![LinkOutput::RestConnect { tls: false }]);
        l.on_rest_connected(ms(30_002));
        assert!(sent_text(&drain(&mut l)).starts_with("GET /rest/system/identity"));
        l.on_rest_data(ms(30_003), &http(200, br#"{"name":"MikroTik"}"#));
        let out = drain(&mut l);
        assert!(matches!(&out[0], LinkOutput::TransportChanged { to: Transport::Rest, .. }), "{out:?}");
        assert_eq!(l.active(), Transport::Rest);
    }

    #[test]
    fn a_rejected_write_is_read_back_and_reported_rejected_without_failover() {
        let mut l = RouterLink::new(settings(Transport::Rest));
        l.submit(ms(0), set(450_000_000, 38_000_000));
        drain(&mut l);
        l.on_rest_connected(ms(1));
        drain(&mut l);
        l.on_rest_data(ms(2), &http(200, GET_DL));
        drain(&mut l);
        l.on_rest_data(ms(3), &http(400, BAD_QUEUE));
        assert!(sent_text(&drain(&mut l)).starts_with("GET /rest/queue/tree?name=WAN-Download-1"));
        l.on_rest_data(ms(4), &http(200, GET_DL)); // still 940M: not applied
        drain(&mut l);
        l.on_rest_data(ms(5), &http(200, &item("WAN-Upload-1", "*2", 38_000_000)));
        let out = drain(&mut l);
        match out.last() {
            Some(LinkOutput::Done(r)) if r.is_err() => {
                let Err(e) = r.as_ref() else { unreachable!() };
                assert_eq!(e.outcome, WriteOutcome::Rejected);
                assert!(e.message.contains("input does not match any value of queue"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(l.active(), Transport::Rest);
    }

    #[test]
    fn stalled_request_times_out_uncertain_and_both_transports_down_reports_not_sent() {
        let mut l = RouterLink::new(settings(Transport::Rest));
        l.submit(ms(0), set(450_000_000, 38_000_000));
        drain(&mut l);
        l.on_rest_connected(ms(1));
        drain(&mut l);
        let t = l.poll_timeout().expect("request deadline");
        assert!(t <= ms(2001));
        l.handle_timeout(t);
        let out = drain(&mut l);
        assert!(out.contains(&LinkOutput::RestClose));
        assert!(out.iter().any(|o| matches!(o, LinkOutput::SshSpawn { .. })), "fails over to ssh: {out:?}");
        l.on_ssh_stderr(b"ssh: connect to host 192.0.2.1 port 22: Connection refused\r\n");
        l.on_ssh_exit(ms(2100), Some(255), None);
        match drain(&mut l).last() {
            Some(LinkOutput::Done(r)) if r.is_err() => {
                let Err(e) = r.as_ref() else { unreachable!() };
                assert_eq!(e.kind, FailureKind::ConnectionRefused);
                assert_eq!(e.transport, Transport::Ssh);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_reused_connection_closed_by_the_router_is_retried_once_fresh() {
        let mut l = RouterLink::new(settings(Transport::Rest));
        l.submit(ms(0), Command::Probe);
        drain(&mut l);
        l.on_rest_connected(ms(1));
        drain(&mut l);
        l.on_rest_data(ms(2), &http(200, br#"{"name":"r"}"#));
        drain(&mut l);
        l.submit(ms(10_000), Command::Probe);
        drain(&mut l);
        l.on_rest_closed(ms(10_001), None);
        assert_eq!(drain(&mut l), vec![LinkOutput::RestConnect { tls: false }]);
        l.on_rest_connected(ms(10_002));
        drain(&mut l);
        l.on_rest_data(ms(10_003), &http(200, br#"{"name":"r"}"#));
        assert!(matches!(drain(&mut l).last(), Some(LinkOutput::Done(r)) if r.is_ok()));
    }

    #[test]
    fn ssh_stderr_classification() {
        assert_eq!(classify_ssh_stderr("Permission denied (publickey)."), FailureKind::AuthFailure);
        assert_eq!(
            classify_ssh_stderr("ssh: connect to host x port 22: Connection timed out"),
            FailureKind::Timeout
        );
        assert_eq!(classify_ssh_stderr("ssh: Could not resolve hostname x"), FailureKind::DnsFailure);
        assert_eq!(classify_ssh_stderr("Host key verification failed."), FailureKind::AuthFailure);
        assert_eq!(classify_ssh_stderr("weird"), FailureKind::Unknown);
    }
}
