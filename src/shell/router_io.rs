//! Executes a `RouterLink`'s actions: the non-blocking REST connection (TCP, optionally TLS)
//! and the `ssh` child with non-blocking pipes. Shell code: it moves bytes and reports
//! events back to the link; every decision (what to send, when to give up, which transport)
//! is the link's.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::process::{Child, Command as ProcessCommand};

use crate::engine::connectivity::FailureKind;
use crate::engine::router::{LinkOutput, RouterLink};
use crate::sys::poll::{Event, Interest, PollSet, Token};
use crate::sys::process::spawn_piped;
use crate::sys::socket::{BindOptions, ConnectState, take_socket_error, tcp_connect_nonblocking};
use crate::time::Instant;

/// Tokens per router: REST socket, ssh stdout, ssh stderr, ssh stdin.
pub const TOKENS_PER_ROUTER: usize = 4;

#[cfg(feature = "tls")]
type Tls = crate::shell::tls::TlsSession;

struct RestConn {
    stream: TcpStream,
    connecting: bool,
    out: Vec<u8>,
    #[cfg(feature = "tls")]
    tls: Option<Tls>,
    /// TLS requested but the handshake has not finished.
    handshaking: bool,
}

struct SshProc {
    child: Child,
    stdin_buf: Vec<u8>,
    stdout_open: bool,
    stderr_open: bool,
}

/// I/O state of one router link.
pub struct RouterIo {
    /// Name for log lines.
    pub name: String,
    addr: SocketAddr,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    tls_host: String,
    #[cfg(feature = "tls")]
    tls_config: Option<std::sync::Arc<rustls::ClientConfig>>,
    base: Token,
    rest: Option<RestConn>,
    ssh: Option<SshProc>,
    ssh_program: String,
    /// Environment variables the `ssh` child must not inherit (the REST password).
    hidden_env: Vec<std::ffi::OsString>,
    /// Killed children not reaped yet.
    dying: Vec<std::process::Child>,
    buf: Vec<u8>,
    /// Completions (`Done`, `TransportChanged`) waiting for the caller.
    parked: Vec<LinkOutput>,
}

impl std::fmt::Debug for RouterIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterIo").field("name", &self.name).field("addr", &self.addr).finish_non_exhaustive()
    }
}

fn classify_io(e: &io::Error) -> FailureKind {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => FailureKind::ConnectionRefused,
        io::ErrorKind::TimedOut => FailureKind::Timeout,
        _ => match e.raw_os_error() {
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH) => FailureKind::NetworkUnreachable,
            _ => FailureKind::Unknown,
        },
    }
}

/// The environment variables to remove from a child: `ROUTER_PASSWORD` (the documented
/// way to pass the REST password) and any other whose value is `password` (issue 18: the
/// `ssh` child inherited it).
pub fn child_env_removals(
    password: &str,
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = vec!["ROUTER_PASSWORD".into()];
    for (k, v) in vars {
        if !password.is_empty() && v == password && !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// The `ssh` command line with `hidden` variables removed from its environment.
pub fn ssh_command(program: &str, args: &[String], hidden: &[std::ffi::OsString]) -> ProcessCommand {
    let mut cmd = ProcessCommand::new(program);
    cmd.args(args);
    for k in hidden {
        cmd.env_remove(k);
    }
    cmd
}

impl RouterIo {
    /// I/O for a router at `addr` (resolved at startup); `base` is its first poll token.
    pub fn new(name: &str, addr: SocketAddr, tls_host: &str, base: Token) -> RouterIo {
        RouterIo {
            name: name.to_string(),
            addr,
            tls_host: tls_host.to_string(),
            #[cfg(feature = "tls")]
            tls_config: None,
            base,
            rest: None,
            ssh: None,
            ssh_program: std::env::var("WANCTL_SSH").unwrap_or_else(|_| "ssh".into()),
            hidden_env: child_env_removals("", std::env::vars_os()),
            dying: Vec::new(),
            buf: vec![0u8; 16 * 1024],
            parked: Vec::new(),
        }
    }

    /// Keeps `password` out of the `ssh` child's environment: `ROUTER_PASSWORD` and every
    /// variable holding it are removed (ssh authenticates with its key and never needs it).
    pub fn hide_from_children(&mut self, password: &str) {
        self.hidden_env = child_env_removals(password, std::env::vars_os());
    }

    /// Sets the TLS client configuration (HTTPS routers).
    #[cfg(feature = "tls")]
    pub fn set_tls(&mut self, config: std::sync::Arc<rustls::ClientConfig>) {
        self.tls_config = Some(config);
    }

    /// True if `token` belongs to this router.
    pub fn owns(&self, token: Token) -> bool {
        (self.base..self.base + TOKENS_PER_ROUTER).contains(&token)
    }

    fn rest_interest(&self) -> Interest {
        let Some(c) = &self.rest else { return Interest::NONE };
        #[cfg(feature = "tls")]
        let tls_wants = c.tls.as_ref().is_some_and(|t| t.wants_write());
        #[cfg(not(feature = "tls"))]
        let tls_wants = false;
        Interest { readable: !c.connecting, writable: c.connecting || !c.out.is_empty() || tls_wants }
    }

    fn update_interest(&mut self, poll: &mut PollSet) {
        if self.rest.is_some() {
            let _ = poll.set_interest(self.base, self.rest_interest());
        }
        if let Some(p) = &self.ssh {
            let i = if p.stdin_buf.is_empty() { Interest::NONE } else { Interest::WRITABLE };
            let _ = poll.set_interest(self.base + 3, i);
        }
    }

    /// Completions since the last call: `Done` and `TransportChanged`.
    pub fn take_completions(&mut self) -> Vec<LinkOutput> {
        std::mem::take(&mut self.parked)
    }

    /// Executes every pending action of `link`; completions are parked for
    /// [`RouterIo::take_completions`].
    pub fn execute(&mut self, link: &mut RouterLink, poll: &mut PollSet, now: Instant) {
        while let Some(out) = link.poll_output() {
            match out {
                LinkOutput::RestConnect { tls } => self.connect(link, poll, now, tls),
                LinkOutput::RestSend(bytes) => self.rest_send(link, poll, now, &bytes),
                LinkOutput::RestClose => self.rest_close(poll),
                LinkOutput::SshSpawn { args } => self.ssh_spawn(link, poll, now, &args),
                LinkOutput::SshSend(bytes) => {
                    if let Some(p) = self.ssh.as_mut() {
                        p.stdin_buf.extend_from_slice(&bytes);
                        self.flush_stdin(link, poll, now);
                    }
                }
                LinkOutput::SshKill => {
                    if let Some(p) = self.ssh.as_mut() {
                        let _ = p.child.kill();
                    }
                }
                other @ (LinkOutput::Done(_) | LinkOutput::TransportChanged { .. }) => {
                    self.parked.push(other)
                }
            }
        }
        self.update_interest(poll);
    }

    fn connect(&mut self, link: &mut RouterLink, poll: &mut PollSet, now: Instant, tls: bool) {
        self.rest_close(poll);
        #[cfg(not(feature = "tls"))]
        if tls {
            link.on_rest_failed(now, FailureKind::Unknown, "HTTPS needs a build with the tls feature".into());
            return;
        }
        match tcp_connect_nonblocking(self.addr, &BindOptions::default()) {
            Ok((stream, state)) => {
                if let Err(e) = poll.register(stream.as_fd(), self.base, Interest::WRITABLE) {
                    link.on_rest_failed(now, FailureKind::Unknown, format!("poll register: {e}"));
                    return;
                }
                self.rest = Some(RestConn {
                    stream,
                    connecting: true,
                    out: Vec::new(),
                    #[cfg(feature = "tls")]
                    tls: None,
                    handshaking: tls,
                });
                if state == ConnectState::Connected {
                    self.on_connected(link, poll, now);
                }
            }
            Err(e) => link.on_rest_failed(now, classify_io(&e), format!("connect {}: {e}", self.addr)),
        }
    }

    fn on_connected(&mut self, link: &mut RouterLink, poll: &mut PollSet, now: Instant) {
        let Some(c) = self.rest.as_mut() else { return };
        c.connecting = false;
        if !c.handshaking {
            link.on_rest_connected(now);
            return;
        }
        #[cfg(feature = "tls")]
        {
            let Some(cfg) = self.tls_config.clone() else {
                self.rest_close(poll);
                link.on_rest_failed(now, FailureKind::Unknown, "TLS is not configured".into());
                return;
            };
            match Tls::new(cfg, &self.tls_host) {
                Ok(t) => {
                    if let Some(c) = self.rest.as_mut() {
                        c.tls = Some(t);
                    }
                    self.pump_tls_out(link, poll, now);
                }
                Err(e) => {
                    self.rest_close(poll);
                    link.on_rest_failed(now, FailureKind::Unknown, format!("TLS: {e}"));
                }
            }
        }
        #[cfg(not(feature = "tls"))]
        let _ = poll;
    }

    fn rest_send(&mut self, link: &mut RouterLink, poll: &mut PollSet, now: Instant, bytes: &[u8]) {
        let Some(c) = self.rest.as_mut() else { return };
        #[cfg(feature = "tls")]
        if let Some(t) = c.tls.as_mut() {
            if let Err(e) = t.send_plaintext(bytes) {
                self.rest_close(poll);
                link.on_rest_closed(now, Some(format!("TLS: {e}")));
                return;
            }
            self.pump_tls_out(link, poll, now);
            return;
        }
        c.out.extend_from_slice(bytes);
        self.flush_plain(link, poll, now);
    }

    fn flush_plain(&mut self, link: &mut RouterLink, poll: &mut PollSet, now: Instant) {
        let Some(c) = self.rest.as_mut() else { return };
        while !c.out.is_empty() {
            match c.stream.write(&c.out) {
                Ok(0) => break,
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.rest_close(poll);
                    link.on_rest_closed(now, Some(format!("send to {}: {e}", self.addr)));
                    return;
                }
            }
        }
    }

    #[cfg(feature = "tls")]
    fn pump_tls_out(&mut self, link: &mut RouterLink, poll: &mut PollSet, now: Instant) {
        let Some(c) = self.rest.as_mut() else { return };
        let Some(t) = c.tls.as_mut() else { return };
        while t.wants_write() {
            match t.write_tls_to(&mut c.stream) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    self.rest_close(poll);
                    link.on_rest_closed(now, Some(format!("TLS send: {e}")));
                    return;
                }
            }
        }
    }

    fn rest_close(&mut self, poll: &mut PollSet) {
        if self.rest.take().is_some() {
            poll.deregister(self.base);
        }
    }

    fn ssh_spawn(&mut self, link: &mut RouterLink, poll: &mut PollSet, now: Instant, args: &[String]) {
        self.ssh_reap_now(poll);
        let mut cmd = ssh_command(&self.ssh_program, args, &self.hidden_env);
        match spawn_piped(&mut cmd) {
            Ok(child) => {
                let mut ok = true;
                if let Some(o) = &child.stdout {
                    ok &= poll.register(o.as_fd(), self.base + 1, Interest::READABLE).is_ok();
                }
                if let Some(e) = &child.stderr {
                    ok &= poll.register(e.as_fd(), self.base + 2, Interest::READABLE).is_ok();
                }
                if let Some(i) = &child.stdin {
                    ok &= poll.register(i.as_fd(), self.base + 3, Interest::NONE).is_ok();
                }
                self.ssh =
                    Some(SshProc { child, stdin_buf: Vec::new(), stdout_open: true, stderr_open: true });
                if !ok {
                    if let Some(p) = self.ssh.as_mut() {
                        let _ = p.child.kill();
                    }
                }
            }
            Err(e) => link.on_ssh_exit(now, None, Some(e.to_string())),
        }
    }

    fn flush_stdin(&mut self, link: &mut RouterLink, poll: &mut PollSet, now: Instant) {
        let Some(p) = self.ssh.as_mut() else { return };
        let Some(stdin) = p.child.stdin.as_mut() else { return };
        while !p.stdin_buf.is_empty() {
            match stdin.write(&p.stdin_buf) {
                Ok(0) => break,
                Ok(n) => {
                    p.stdin_buf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // Broken pipe: ssh is gone; its exit is reported by the reaper.
                    p.stdin_buf.clear();
                    let _ = p.child.kill();
                    break;
                }
            }
        }
        self.ssh_reap(link, poll, now);
    }

    /// Checks whether `ssh` exited (SIGCHLD, or both output pipes closed).
    pub fn ssh_reap(&mut self, link: &mut RouterLink, poll: &mut PollSet, now: Instant) {
        self.reap_dying();
        let Some(p) = self.ssh.as_mut() else { return };
        match p.child.try_wait() {
            Ok(Some(status)) => {
                // Drain what is left in the pipes first.
                self.read_ssh(link, now, 1);
                self.read_ssh(link, now, 2);
                self.ssh_deregister(poll);
                self.ssh = None;
                link.on_ssh_exit(now, status.code(), None);
            }
            Ok(None) => {}
            Err(e) => {
                self.ssh_deregister(poll);
                self.ssh = None;
                link.on_ssh_exit(now, None, Some(format!("wait: {e}")));
            }
        }
    }

    /// Kills the current child before a new one starts. Never waits: a child that has not
    /// exited yet (SIGKILL is asynchronous, and a process in uninterruptible sleep dies
    /// only when it wakes) is parked and reaped on a later SIGCHLD.
    fn ssh_reap_now(&mut self, poll: &mut PollSet) {
        if let Some(mut p) = self.ssh.take() {
            let _ = p.child.kill();
            if !matches!(p.child.try_wait(), Ok(Some(_))) {
                self.dying.push(p.child);
            }
            self.ssh_deregister(poll);
        }
    }

    /// Kills `ssh` and waits for every child of this link to exit, for at most `limit`
    /// (one-shot commands end while a child may still run; the daemon never calls this).
    pub fn shutdown(&mut self, poll: &mut PollSet, limit: std::time::Duration) {
        self.rest_close(poll);
        self.ssh_reap_now(poll);
        for c in &mut self.dying {
            let _ = c.kill();
        }
        let deadline = crate::sys::clock::now() + limit;
        // Bounded: SIGKILL is asynchronous; poll the children every 5 ms until the limit.
        while !self.dying.is_empty() && crate::sys::clock::now() < deadline {
            self.reap_dying();
            if !self.dying.is_empty() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }

    /// Reaps killed children that have exited since (call on SIGCHLD).
    fn reap_dying(&mut self) {
        self.dying.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    }

    fn ssh_deregister(&mut self, poll: &mut PollSet) {
        for k in 1..4 {
            poll.deregister(self.base + k);
        }
    }

    fn read_ssh(&mut self, link: &mut RouterLink, now: Instant, which: usize) -> bool {
        let Some(p) = self.ssh.as_mut() else { return false };
        let mut closed = false;
        for _ in 0..64 {
            let r = match which {
                1 => match p.child.stdout.as_mut() {
                    Some(s) => s.read(&mut self.buf),
                    None => return false,
                },
                _ => match p.child.stderr.as_mut() {
                    Some(s) => s.read(&mut self.buf),
                    None => return false,
                },
            };
            match r {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    if which == 1 {
                        link.on_ssh_stdout(now, &self.buf[..n]);
                    } else {
                        link.on_ssh_stderr(&self.buf[..n]);
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
        closed
    }

    /// Handles readiness of one of this router's tokens.
    pub fn on_event(&mut self, link: &mut RouterLink, poll: &mut PollSet, now: Instant, ev: &Event) {
        let k = ev.token - self.base;
        let failed = ev.error || ev.hangup;
        match k {
            0 => self.on_rest_event(link, poll, now, ev.readable, ev.writable, failed),
            1 | 2 if ev.readable || failed => self.on_ssh_pipe(link, poll, now, k, ev.token),
            3 => self.flush_stdin(link, poll, now),
            _ => {}
        }
        self.update_interest(poll);
    }

    fn on_ssh_pipe(
        &mut self,
        link: &mut RouterLink,
        poll: &mut PollSet,
        now: Instant,
        which: usize,
        token: Token,
    ) {
        if !self.read_ssh(link, now, which) {
            return;
        }
        poll.deregister(token);
        if let Some(p) = self.ssh.as_mut() {
            if which == 1 {
                p.stdout_open = false;
            } else {
                p.stderr_open = false;
            }
            if !p.stdout_open && !p.stderr_open {
                // Both pipes closed: it is exiting. Make sure; `ssh_reap` below (or the
                // SIGCHLD that follows) reaps it without waiting.
                let _ = p.child.kill();
            }
        }
        self.ssh_reap(link, poll, now);
    }

    fn on_rest_event(
        &mut self,
        link: &mut RouterLink,
        poll: &mut PollSet,
        now: Instant,
        readable: bool,
        writable: bool,
        error: bool,
    ) {
        let Some(c) = self.rest.as_mut() else { return };
        if c.connecting {
            if !(writable || error) {
                return;
            }
            match take_socket_error(c.stream.as_fd()) {
                Ok(None) => self.on_connected(link, poll, now),
                Ok(Some(e)) | Err(e) => {
                    let kind = classify_io(&e);
                    self.rest_close(poll);
                    link.on_rest_failed(now, kind, format!("connect {}: {e}", self.addr));
                }
            }
            return;
        }
        if writable {
            #[cfg(feature = "tls")]
            if c.tls.is_some() {
                self.pump_tls_out(link, poll, now);
            } else {
                self.flush_plain(link, poll, now);
            }
            #[cfg(not(feature = "tls"))]
            self.flush_plain(link, poll, now);
        }
        if readable || error {
            self.read_rest(link, poll, now);
        }
    }

    fn read_rest(&mut self, link: &mut RouterLink, poll: &mut PollSet, now: Instant) {
        for _ in 0..64 {
            let Some(c) = self.rest.as_mut() else { return };
            #[cfg(feature = "tls")]
            if let Some(t) = c.tls.as_mut() {
                use crate::shell::tls::ReadOutcome;
                match t.read_tls_from(&mut c.stream) {
                    Ok(ReadOutcome::Data(_)) => {
                        let was_handshaking = c.handshaking;
                        if c.handshaking && !t.is_handshaking() {
                            c.handshaking = false;
                        }
                        let mut plain = Vec::new();
                        if let Err(e) = t.recv_plaintext(&mut plain) {
                            if !plain.is_empty() {
                                link.on_rest_data(now, &plain);
                            }
                            self.rest_close(poll);
                            link.on_rest_closed(now, Some(format!("TLS: {e}")));
                            self.execute_inline(link, poll, now);
                            return;
                        }
                        self.pump_tls_out(link, poll, now);
                        if was_handshaking && self.rest.as_ref().is_some_and(|c| !c.handshaking) {
                            link.on_rest_connected(now);
                            self.execute_inline(link, poll, now);
                        }
                        if !plain.is_empty() {
                            link.on_rest_data(now, &plain);
                            self.execute_inline(link, poll, now);
                        }
                        continue;
                    }
                    Ok(ReadOutcome::WouldBlock) => return,
                    Ok(ReadOutcome::Eof) => {
                        self.rest_close(poll);
                        link.on_rest_closed(now, None);
                        return;
                    }
                    Err(e) => {
                        let handshaking = c.handshaking;
                        self.rest_close(poll);
                        if handshaking {
                            link.on_rest_failed(
                                now,
                                FailureKind::Unknown,
                                format!("TLS handshake with {}: {e}", self.addr),
                            );
                        } else {
                            link.on_rest_closed(now, Some(format!("TLS: {e}")));
                        }
                        return;
                    }
                }
            }
            match c.stream.read(&mut self.buf) {
                Ok(0) => {
                    self.rest_close(poll);
                    link.on_rest_closed(now, None);
                    return;
                }
                Ok(n) => {
                    link.on_rest_data(now, &self.buf[..n]);
                    self.execute_inline(link, poll, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.rest_close(poll);
                    link.on_rest_closed(now, Some(format!("receive from {}: {e}", self.addr)));
                    return;
                }
            }
        }
    }

    /// Runs the link's actions produced while handling input.
    fn execute_inline(&mut self, link: &mut RouterLink, poll: &mut PollSet, now: Instant) {
        self.execute(link, poll, now);
    }
}
