//! The poll(2) loop: the only caller of the clock, the executor of the engine's outputs.
//!
//! One thread. Each wakeup: read the clock once, drain every ready fd until it would block
//! and hand what arrived to the `Daemon`, let it handle deadlines, then execute its outputs.
//! Nothing here blocks: sockets are non-blocking, the timerfd paces ticks (missed
//! expirations are counted, never replayed), signals arrive through a signalfd, and every
//! wait (fallback checks, shutdown) has a deadline owned by the engine or by this loop.

use core::net::IpAddr;
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

use log::{debug, error, info, warn};

use crate::config::{self, AutorateConfig};
use crate::engine::connectivity::FailureKind;
use crate::engine::controller::Zone;
use crate::engine::daemon::{Daemon, Input, Notify, Output, WanSetup};
use crate::engine::health::{self, HttpRequest};
use crate::engine::history::{self as hist, CycleRecord, ZoneChange};
use crate::engine::router::{LinkOutput, LinkSettings, RouterLink, transport_name};
use crate::engine::state::StateFile;
use crate::engine::stats::Histogram;
use crate::engine::stats::LogLimiter;
use crate::engine::wan::{Outcome, fallback_verdict};
use crate::engine::writer::WriteOutcome;
use crate::rng::Rng;
use crate::shell::files::{self, LoadedState, LockFile};
use crate::shell::history_query::{self, HistoryJob, Step};
use crate::shell::http_server::{ConnId, HttpServer, Reply};
use crate::shell::router_io::{RouterIo, TOKENS_PER_ROUTER};
use crate::shell::store::Store;
use crate::shell::ticks::TickPacer;
use crate::sys::clock;
use crate::sys::notify::Notifier;
use crate::sys::poll::{Events, Interest, PollSet, Token};
use crate::sys::signalfd::{Signal, SignalFd};
use crate::sys::socket::{BindOptions, ConnectState, IcmpSocket, take_socket_error, tcp_connect_nonblocking};
use crate::sys::timerfd::Timer;
use crate::time::Instant;
use crate::wire::icmp::{self, Family, Framing};
use crate::wire::routeros::{Command as RouterCommand, Direction, QueueLimit, Reply as RouterReply};

/// The control cadence.
pub const TICK: Duration = Duration::from_millis(50);
const TOKEN_TIMER: Token = 0;
const TOKEN_SIGNAL: Token = 1;
const TOKEN_ICMP_BASE: Token = 16;
const TOKEN_ROUTER_BASE: Token = 1024;
const TOKEN_HEALTH_BASE: Token = 2048;
const TOKEN_METRICS_BASE: Token = 2304;
const TOKEN_WEBHOOK_BASE: Token = 3840;
const TOKEN_TCP_BASE: Token = 4096;
/// How long the original allowed one TCP fallback handshake.
const TCP_CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// How the process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Until SIGTERM.
    Daemon,
    /// One measurement and decision, monitoring-plugin exit codes.
    Once {
        /// Print JSON instead of the human line.
        json: bool,
    },
    /// The original's `--oneshot`: one cycle, exit 0 whatever happened.
    Oneshot,
}

/// What `run` needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Config file names (for reload and messages), one per WAN.
    pub files: Vec<String>,
    /// The parsed configs, same order.
    pub configs: Vec<AutorateConfig>,
    /// Never write to the router.
    pub dry_run: bool,
    /// How to run.
    pub mode: Mode,
    /// Seed for the engine's randomness (logged; `--seed` replays).
    pub seed: u64,
}

pub use crate::shell::startup::{StartupError, resolve};

fn startup(code: u8, message: String) -> StartupError {
    StartupError { message, code }
}

fn family_of(ip: IpAddr) -> Family {
    if ip.is_ipv4() { Family::V4 } else { Family::V6 }
}

struct WanSocket {
    family: Family,
    socket: IcmpSocket,
    ident: u16,
}

struct FallbackRun {
    deadline: Instant,
    gateway: Option<(IpAddr, u16)>,
    gateway_ok: bool,
    tcp: Vec<(TcpStream, Instant, bool)>,
    rtts: Vec<f64>,
}

struct WanIo {
    name: String,
    sockets: Vec<WanSocket>,
    state_path: PathBuf,
    gateway: Option<IpAddr>,
    tcp_targets: Vec<SocketAddr>,
    check_gateway: bool,
    check_tcp: bool,
    ping_timeout: Duration,
    binding: BindOptions,
    fallback: Option<FallbackRun>,
    gateway_seq: u16,
    /// Ping host names resolved at startup: a reload reuses them instead of asking DNS on
    /// the loop.
    resolved: Vec<(String, IpAddr)>,
}

/// Opens everything for one WAN: resolves reflectors and fallback targets, opens the ICMP
/// sockets of the families in use with the WAN's binding.
fn setup_wan(cfg: &AutorateConfig, index: usize) -> Result<(WanSetup, WanIo), StartupError> {
    let m = &cfg.monitoring;
    let mut reflectors = Vec::new();
    let mut resolved = Vec::new();
    for host in m.pool_hosts() {
        let ip = resolve(host)
            .map_err(|e| startup(1, format!("{}: resolve ping host {host}: {e}", cfg.wan_name)))?;
        reflectors.push(ip);
        resolved.push((host.clone(), ip));
    }
    let fb = &m.fallback;
    let gateway = if fb.enabled && fb.check_gateway {
        match resolve(&fb.gateway_ip) {
            Ok(ip) => Some(ip),
            Err(e) => {
                warn!(target: "wanctl::startup", "{}: gateway {}: {e}; gateway check disabled", cfg.wan_name, fb.gateway_ip);
                None
            }
        }
    } else {
        None
    };
    let mut tcp_targets = Vec::new();
    if fb.enabled && fb.check_tcp {
        for (host, port) in &fb.tcp_targets {
            match resolve(host) {
                Ok(ip) => tcp_targets.push(SocketAddr::new(ip, *port)),
                Err(e) => {
                    warn!(target: "wanctl::startup", "{}: TCP target {host}: {e}; skipped", cfg.wan_name)
                }
            }
        }
    }
    let binding = BindOptions {
        device: m.binding.device.clone(),
        source: m.binding.source.as_deref().and_then(|s| s.parse().ok()),
        mark: m.binding.fwmark,
    };
    let mut families: Vec<Family> =
        reflectors.iter().chain(gateway.iter()).map(|&ip| family_of(ip)).collect();
    families.sort_by_key(|f| *f == Family::V6);
    families.dedup();
    let mut sockets = Vec::new();
    for family in families {
        let mut opts = binding.clone();
        if opts.source.is_some_and(|s| family_of(s) != family) {
            opts.source = None;
        }
        let socket =
            IcmpSocket::open(family, &opts).map_err(|e| startup(1, format!("{}: {e}", cfg.wan_name)))?;
        let wanted = (std::process::id() as u16).wrapping_add(index as u16 * 7919);
        let ident = socket.reply_ident(wanted);
        info!(target: "wanctl::startup", "{}: {:?} ICMP socket ({:?})", cfg.wan_name, family, socket.kind());
        sockets.push(WanSocket { family, socket, ident });
    }
    let io = WanIo {
        name: cfg.wan_name.clone(),
        sockets,
        state_path: PathBuf::from(cfg.state_file_path()),
        gateway,
        tcp_targets,
        check_gateway: fb.check_gateway,
        check_tcp: fb.check_tcp,
        ping_timeout: cfg.ping_timeout,
        binding,
        fallback: None,
        gateway_seq: 0xF000,
        resolved,
    };
    Ok((WanSetup { config: cfg.clone(), reflectors }, io))
}

/// Naive local ISO-8601 time for the state file (microseconds omitted when zero); UTC
/// when the local offset is unknown.
fn state_timestamp() -> String {
    let us = clock::wall_now_micros() + clock::local_offset_secs() * 1_000_000;
    let (date, sod) = crate::shell::logger::civil_from_unix(us.div_euclid(1_000_000));
    let frac = us.rem_euclid(1_000_000);
    let (h, m, s) = (sod / 3600, sod / 60 % 60, sod % 60);
    if frac == 0 {
        format!("{date}T{h:02}:{m:02}:{s:02}")
    } else {
        format!("{date}T{h:02}:{m:02}:{s:02}.{frac:06}")
    }
}

/// Monitoring-plugin status labels by exit code.
const STATUS_LABELS: [&str; 4] = ["OK", "WARNING", "CRITICAL", "UNKNOWN"];

/// The result of `--once`.
#[derive(Debug, Clone, PartialEq)]
pub struct OnceResult {
    /// 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub code: u8,
    /// The human line.
    pub line: String,
    /// The JSON document.
    pub json: String,
}

fn once_result(daemon: &Daemon, measured_only: bool, now: Instant) -> OnceResult {
    let mut worst = 0u8;
    let mut parts = Vec::new();
    let mut perf = Vec::new();
    let mut wans = Vec::new();
    for i in 0..daemon.wan_count() {
        let Some((setup, ctl, prober)) = daemon.wan(i) else { continue };
        let (healthy, needed) = prober.quorum(now);
        let name = &setup.config.wan_name;
        let report = daemon.last_report(i);
        let (code, text) = match report {
            Some(r) if r.outcome == Outcome::Adjusted => {
                let zone = r.download.zone.max(r.upload.zone);
                let code = match zone {
                    Zone::Green => 0,
                    Zone::Yellow | Zone::SoftRed => 1,
                    Zone::Red => 2,
                };
                let reach = ctl.connectivity().is_reachable();
                let code = if reach { code } else { 2 };
                (
                    code,
                    format!(
                        "{name}: {} rtt={:.1}ms baseline={:.1}ms delta={:.1}ms DL={:.1}M UL={:.1}M{}",
                        zone,
                        r.measured_ms.unwrap_or(f64::NAN),
                        ctl.filter().baseline_ms(),
                        ctl.filter().delta_ms(),
                        r.download.rate.as_mbps(),
                        r.upload.rate.as_mbps(),
                        if reach { "" } else { " router unreachable" }
                    ),
                )
            }
            _ if healthy < needed => (
                2,
                format!("{name}: no RTT measurement (reflector quorum lost: {healthy} of {needed} healthy)"),
            ),
            _ => (2, format!("{name}: no RTT measurement (all reflectors silent)")),
        };
        worst = worst.max(code);
        if let Some(r) = report {
            perf.push(format!(
                "{name}_rtt={:.1}ms {name}_delta={:.1}ms {name}_dl={:.1} {name}_ul={:.1} {name}_reflectors_healthy={healthy};;{needed}:",
                r.measured_ms.unwrap_or(0.0),
                ctl.filter().delta_ms(),
                r.download.rate.as_mbps(),
                r.upload.rate.as_mbps()
            ));
        }
        let status = STATUS_LABELS[usize::from(code.min(3))];
        wans.push(serde_json::json!({
            "name": name,
            "status": status,
            "rtt_ms": report.and_then(|r| r.measured_ms),
            "baseline_rtt_ms": ctl.filter().baseline_ms(),
            "load_rtt_ms": ctl.filter().load_ms(),
            "download": {"state": report.map(|r| r.download.zone.as_str()), "rate_mbps": ctl.download().rate().as_mbps()},
            "upload": {"state": report.map(|r| r.upload.zone.as_str()), "rate_mbps": ctl.upload().rate().as_mbps()},
            "router_reachable": ctl.connectivity().is_reachable(),
            "reflector_quorum": {"healthy": healthy, "needed": needed, "ok": healthy >= needed},
            "reflectors": prober.scores().zip(prober.stats()).map(|((addr, sc), (_, st))| serde_json::json!({
                "host": addr.to_string(),
                "state": sc.state.as_str(),
                "baseline_ms": sc.base_ms,
                "offset_ms": sc.offset_ms,
                "rtt_ms": st.srtt_ms,
                "sent": st.sent,
                "received": st.received,
            })).collect::<Vec<_>>(),
        }));
        parts.push(text);
    }
    let label = STATUS_LABELS[usize::from(worst.min(3))];
    let suffix = if measured_only { " (measured only)" } else { "" };
    let line = format!("WANCTL {label} - {}{suffix} | {}", parts.join("; "), perf.join(" "));
    let json =
        serde_json::json!({"status": label, "code": worst, "measured_only": measured_only, "wans": wans})
            .to_string();
    OnceResult { code: worst, line, json }
}

/// Runs the daemon (or one cycle). Returns the exit code.
pub fn run(opts: Options) -> Result<u8, StartupError> {
    let lock_timeout = opts.configs.first().map_or(Duration::from_secs(300), |c| c.lock_timeout);
    // Locks: held for life in daemon mode; around the cycle otherwise. A busy lock in
    // --once means a daemon is running: measure only.
    let mut locks = Vec::new();
    let mut measured_only = false;
    for cfg in &opts.configs {
        match LockFile::acquire(std::path::Path::new(&cfg.lock_file), lock_timeout) {
            Ok(l) => locks.push(l),
            Err(e) if matches!(opts.mode, Mode::Once { .. }) => {
                info!(target: "wanctl::startup", "{e}; measuring without writing");
                measured_only = true;
            }
            Err(e) => return Err(startup(1, format!("{}: {e}", cfg.wan_name))),
        }
    }
    let mut setups = Vec::new();
    let mut ios = Vec::new();
    let mut states = Vec::new();
    for (i, cfg) in opts.configs.iter().enumerate() {
        let (setup, io) = setup_wan(cfg, i)?;
        let state = match files::load_state(&io.state_path) {
            Ok(LoadedState::Valid(s)) => Some(s),
            Ok(LoadedState::Missing) => None,
            Ok(LoadedState::Corrupt { reason, moved_to }) => {
                warn!(target: "wanctl::startup", "{}: state file {} is corrupt ({reason}); kept as {} and starting from defaults", cfg.wan_name, io.state_path.display(), moved_to.display());
                None
            }
            Err(e) => {
                warn!(target: "wanctl::startup", "{}: cannot read state file {}: {e}; starting from defaults", cfg.wan_name, io.state_path.display());
                None
            }
        };
        states.push(state);
        setups.push(setup);
        ios.push(io);
    }
    let dry_run = opts.dry_run || measured_only;
    let mut links = Vec::new();
    let mut routers = Vec::new();
    for (w, cfg) in opts.configs.iter().enumerate() {
        let r = &cfg.router;
        let ip = resolve(&r.host)
            .map_err(|e| startup(1, format!("{}: resolve router host {}: {e}", cfg.wan_name, r.host)))?;
        let addr = SocketAddr::new(ip, r.port);
        #[allow(unused_mut)]
        let mut io = RouterIo::new(&cfg.wan_name, addr, &r.host, TOKEN_ROUTER_BASE + w * TOKENS_PER_ROUTER);
        io.hide_from_children(&r.password.0);
        if r.scheme == config::Scheme::Https {
            #[cfg(feature = "tls")]
            {
                let tls = crate::shell::tls::client_config(
                    r.verify_ssl,
                    r.ca_file.as_deref().map(std::path::Path::new),
                    r.cert_sha256,
                )
                .map_err(|e| startup(1, format!("{}: router TLS: {e}", cfg.wan_name)))?;
                if !r.verify_ssl && r.cert_sha256.is_none() {
                    warn!(target: "wanctl::startup", "{}: {}", cfg.wan_name, crate::shell::tls::INSECURE_WARNING);
                }
                io.set_tls(tls);
            }
            #[cfg(not(feature = "tls"))]
            return Err(startup(
                2,
                format!("{}: router.scheme is https but this build has no TLS (feature `tls`)", cfg.wan_name),
            ));
        }
        info!(
            target: "wanctl::startup",
            "{}: router {} via {} ({}), fallback {}",
            cfg.wan_name,
            addr,
            transport_name(r.transport),
            if r.scheme == config::Scheme::Https { "https" } else { "http" },
            transport_name(match r.transport { config::Transport::Rest => config::Transport::Ssh, config::Transport::Ssh => config::Transport::Rest })
        );
        links.push(RouterLink::new(LinkSettings::from_config(r, cfg.router_timeout)));
        routers.push(io);
    }
    let now = clock::now();
    let mut daemon = Daemon::new(setups, states, dry_run, opts.seed, now);
    let timer = Timer::periodic(TICK).map_err(|e| startup(1, format!("create tick timer: {e}")))?;
    let signals = SignalFd::open(&Signal::DAEMON).map_err(|e| startup(1, format!("open signalfd: {e}")))?;
    let notifier = Notifier::from_env().unwrap_or_else(|e| {
        warn!(target: "wanctl::startup", "systemd notify socket unusable: {e}");
        Notifier::disabled()
    });
    let mut poll = PollSet::with_capacity(32);
    poll.register(timer.as_fd(), TOKEN_TIMER, Interest::READABLE)
        .map_err(|e| startup(1, format!("poll timer: {e}")))?;
    poll.register(signals.as_fd(), TOKEN_SIGNAL, Interest::READABLE)
        .map_err(|e| startup(1, format!("poll signalfd: {e}")))?;
    for (w, io) in ios.iter().enumerate() {
        for (k, s) in io.sockets.iter().enumerate() {
            poll.register(s.socket.as_fd(), TOKEN_ICMP_BASE + w * 2 + k, Interest::READABLE)
                .map_err(|e| startup(1, format!("poll ICMP socket: {e}")))?;
        }
    }
    info!(
        target: "wanctl::startup",
        "wanctl {} running {} WAN(s) every {} ms{} (seed {})",
        crate::VERSION,
        ios.len(),
        TICK.as_millis(),
        if dry_run { ", dry run" } else { "" },
        opts.seed
    );
    let mut rng = Rng::new(opts.seed ^ 0xa5a5);
    let mut events = Events::with_capacity(32);
    let mut inputs: VecDeque<Input> = VecDeque::with_capacity(64);
    let mut pacer = TickPacer::new(now + TICK, TICK);
    let mut recv_buf = [0u8; 2048];
    let mut send_buf = [0u8; 64];
    let mut save_log = LogLimiter::new(Duration::from_secs(300));
    let started = now;
    let mut latency: Vec<Histogram> = vec![Histogram::default(); links.len()];
    let mut submitted: Vec<VecDeque<(RouterJob, Instant)>> = vec![VecDeque::with_capacity(2); links.len()];
    let mut health_server = None;
    let mut metrics_server = None;
    let mut history = if opts.mode == Mode::Daemon {
        opts.configs.first().and_then(|c| History::open(c, now))
    } else {
        None
    };
    let history_path = history.as_ref().map(|h| h.path.clone());
    let mut pending_history: Option<PendingHistory> = None;
    let mut recent = crate::shell::status_page::RecentHistory::default();
    if opts.mode == Mode::Daemon
        && let Some(cfg) = opts.configs.first()
    {
        if cfg.health.enabled {
            match HttpServer::bind("health", &cfg.health.host, cfg.health.port, TOKEN_HEALTH_BASE, &mut poll)
            {
                Ok(s) => {
                    info!(target: "wanctl::startup", "health on http://{}", s.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()));
                    health_server = Some(s);
                }
                Err(e) => warn!(target: "wanctl::startup", "health endpoint disabled: {e}"),
            }
        }
        if cfg.metrics.enabled {
            match HttpServer::bind(
                "metrics",
                &cfg.metrics.host,
                cfg.metrics.port,
                TOKEN_METRICS_BASE,
                &mut poll,
            ) {
                Ok(s) => {
                    info!(target: "wanctl::startup", "metrics on http://{}/metrics", s.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()));
                    metrics_server = Some(s);
                }
                Err(e) => warn!(target: "wanctl::startup", "metrics endpoint disabled: {e}"),
            }
        }
    }
    let once_deadline = opts.configs.iter().map(|c| c.ping_timeout).max().unwrap_or(Duration::from_secs(1))
        + Duration::from_millis(500);
    let mut once_done = false;
    let mut exit_code: Option<u8> = None;
    // Webhook alerts (issue 14): off unless a config enables them; hosts resolved now.
    let mut alerts = crate::shell::alerting::WanAlerts::new(&opts.configs, TOKEN_WEBHOOK_BASE)
        .map_err(|e| startup(1, e))?;

    // Executes the daemon's outputs and turns finished router commands into inputs.
    macro_rules! pump {
        ($now:expr) => {
            execute(
                &mut daemon,
                &mut ios,
                &mut poll,
                &notifier,
                &mut inputs,
                &mut exit_code,
                $now,
                ExecCtx {
                    send_buf: &mut send_buf,
                    rng: &mut rng,
                    save_log: &mut save_log,
                    measured_only,
                    links: &mut links,
                    routers: &mut routers,
                    submitted: &mut submitted,
                },
            );
            collect_completions(&mut routers, &mut inputs, $now, &mut submitted, &mut latency);
        };
    }
    while exit_code.is_none() {
        let now = clock::now();
        let mut deadline = daemon.poll_timeout();
        for io in &ios {
            if let Some(f) = &io.fallback {
                deadline = Some(deadline.map_or(f.deadline, |d| d.min(f.deadline)));
            }
        }
        for l in &links {
            if let Some(t) = l.poll_timeout() {
                deadline = Some(deadline.map_or(t, |d| d.min(t)));
            }
        }
        for srv in health_server.iter().chain(metrics_server.iter()) {
            if let Some(t) = srv.next_deadline() {
                deadline = Some(deadline.map_or(t, |d| d.min(t)));
            }
        }
        if let Some(h) = &history {
            let t = h.next_deadline();
            deadline = Some(deadline.map_or(t, |d| d.min(t)));
        }
        if let Some(t) = alerts.next_deadline() {
            deadline = Some(deadline.map_or(t, |d| d.min(t)));
        }
        // Inputs produced by the last pass, and a history query in progress, are handled
        // without waiting.
        let timeout = if inputs.is_empty() && pending_history.is_none() {
            deadline.map(|d| d.saturating_since(now))
        } else {
            Some(Duration::ZERO)
        };
        if let Err(e) = poll.poll(&mut events, timeout) {
            error!(target: "wanctl::loop", "poll: {e}");
            return Err(startup(1, format!("poll: {e}")));
        }
        let now = clock::now();
        for ev in &events {
            match ev.token {
                TOKEN_TIMER => match timer.read() {
                    Ok(0) => {}
                    Ok(n) => {
                        let t = pacer.on_expirations(n, now);
                        if let Some(w) = t.warning {
                            warn!(target: "wanctl::loop", "{w}");
                        }
                        inputs.push_back(Input::Tick { missed: t.missed, late: t.late });
                    }
                    Err(e) => warn!(target: "wanctl::loop", "read timerfd: {e}"),
                },
                TOKEN_SIGNAL => loop {
                    match signals.read() {
                        Ok(Some(Signal::Term | Signal::Int)) => inputs.push_back(Input::Shutdown),
                        Ok(Some(Signal::Hup)) => {
                            crate::shell::logger::reopen();
                            match reload(&opts.files, &ios) {
                                Ok(setups) => inputs.push_back(Input::Reload(setups)),
                                Err(e) => {
                                    error!(target: "wanctl::reload", "reload rejected, keeping the running configuration: {e}")
                                }
                            }
                        }
                        Ok(Some(Signal::Chld)) => {
                            for (l, r) in links.iter_mut().zip(routers.iter_mut()) {
                                r.ssh_reap(l, &mut poll, now);
                            }
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(e) => {
                            warn!(target: "wanctl::loop", "read signalfd: {e}");
                            break;
                        }
                    }
                },
                t if (TOKEN_ROUTER_BASE..TOKEN_HEALTH_BASE).contains(&t) => {
                    let w = (t - TOKEN_ROUTER_BASE) / TOKENS_PER_ROUTER;
                    if let (Some(l), Some(r)) = (links.get_mut(w), routers.get_mut(w)) {
                        r.on_event(l, &mut poll, now, ev);
                    }
                }
                t if (TOKEN_ICMP_BASE..TOKEN_ROUTER_BASE).contains(&t) => {
                    let (w, k) = ((t - TOKEN_ICMP_BASE) / 2, (t - TOKEN_ICMP_BASE) % 2);
                    let Some(io) = ios.get_mut(w) else { continue };
                    drain_icmp(io, w, k, now, &mut recv_buf, &mut inputs);
                }
                t if health_server.as_ref().is_some_and(|s| s.owns(t)) => {
                    let snapshot = || snapshot_of(&daemon, now, started, &links, &latency);
                    let db = history_path.clone();
                    let recent = &recent;
                    let pending = &mut pending_history;
                    let mut handler = |req: &HttpRequest, id: ConnId| {
                        if req.path == "/status" && (req.method == "GET" || req.method == "HEAD") {
                            let page = recent.render(&snapshot(), clock::local_offset_secs());
                            return Reply::Now(health::response(
                                200,
                                "text/html; charset=utf-8",
                                page.as_bytes(),
                            ));
                        }
                        if req.path.starts_with("/metrics/history")
                            && (req.method == "GET" || req.method == "HEAD")
                        {
                            return start_history(req, id, db.as_deref(), pending, now);
                        }
                        Reply::Now(health_response(req, &snapshot))
                    };
                    if let Some(srv) = health_server.as_mut() {
                        srv.on_event_deferrable(ev, now, &mut poll, &mut handler);
                    }
                }
                t if metrics_server.as_ref().is_some_and(|s| s.owns(t)) => {
                    let snapshot = || snapshot_of(&daemon, now, started, &links, &latency);
                    let mut handler = |req: &HttpRequest| metrics_response(req, &snapshot);
                    if let Some(srv) = metrics_server.as_mut() {
                        srv.on_event(ev, now, &mut poll, &mut handler);
                    }
                }
                t if alerts.owns(t) => alerts.on_event(now, &mut poll, ev),
                t if t >= TOKEN_TCP_BASE => {
                    let (w, k) = ((t - TOKEN_TCP_BASE) / 64, (t - TOKEN_TCP_BASE) % 64);
                    if let Some(io) = ios.get_mut(w)
                        && let Some(run) = io.fallback.as_mut()
                        && let Some((stream, started_at, done)) = run.tcp.get_mut(k)
                        && !*done
                    {
                        *done = true;
                        if let Ok(None) = take_socket_error(stream.as_fd()) {
                            run.rtts.push(now.saturating_since(*started_at).as_secs_f64() * 1000.0);
                        }
                        poll.deregister(t);
                    }
                }
                _ => {}
            }
        }
        for srv in health_server.iter_mut().chain(metrics_server.iter_mut()) {
            srv.expire(now, &mut poll);
        }
        // Fallback runs that are complete or past their deadline.
        for (w, io) in ios.iter_mut().enumerate() {
            let finished = io.fallback.as_ref().is_some_and(|f| {
                now >= f.deadline || (f.tcp.iter().all(|t| t.2) && (f.gateway.is_none() || f.gateway_ok))
            });
            if finished && let Some(mut f) = io.fallback.take() {
                for k in 0..f.tcp.len() {
                    poll.deregister(TOKEN_TCP_BASE + w * 64 + k);
                }
                let result = fallback_verdict(&mut f.rtts, f.gateway_ok);
                debug!(target: "wanctl::fallback", "{}: fallback checks: {result:?}", io.name);
                inputs.push_back(Input::FallbackResult { wan: w, result });
            }
        }
        for (l, r) in links.iter_mut().zip(routers.iter_mut()) {
            l.handle_timeout(now);
            r.execute(l, &mut poll, now);
        }
        collect_completions(&mut routers, &mut inputs, now, &mut submitted, &mut latency);
        while let Some(input) = inputs.pop_front() {
            daemon.handle_input(now, input);
            pump!(now);
        }
        if let Some(h) = history.as_mut() {
            h.record(&daemon);
            h.service(now, false);
        }
        if health_server.is_some() {
            recent.record(&daemon, clock::wall_unix_secs());
        }
        daemon.handle_timeout(now);
        pump!(now);
        if alerts.is_active() {
            alerts.observe(&daemon, now, clock::wall_unix_secs());
            alerts.pump(now, &mut poll);
        }
        // After this pass's tick work: one slice of a history query, bounded in time.
        if let (Some(p), Some(srv)) = (pending_history.as_mut(), health_server.as_mut()) {
            let answer = if !srv.is_waiting(p.conn) {
                Some(None)
            } else if now >= p.deadline {
                Some(Some((503, history_query::unavailable_body())))
            } else {
                match p.job.step(now + history_query::STEP_BUDGET) {
                    Step::More => None,
                    Step::Done(status, body) => Some(Some((status, body))),
                }
            };
            if let Some(answer) = answer {
                if let Some((status, body)) = answer {
                    srv.complete(
                        p.conn,
                        health::response(status, "application/json", body.as_bytes()),
                        &mut poll,
                    );
                }
                pending_history = None;
            }
        } else {
            pending_history = None;
        }
        if !inputs.is_empty() {
            continue;
        }
        if matches!(opts.mode, Mode::Once { .. } | Mode::Oneshot) && !once_done && !daemon.is_stopping() {
            let all_measured = (0..daemon.wan_count()).all(|i| {
                daemon
                    .last_report(i)
                    .is_some_and(|r| matches!(r.outcome, Outcome::Adjusted | Outcome::Failed))
            });
            let writes_idle = (0..daemon.wan_count())
                .all(|i| daemon.wan(i).is_some_and(|(_, c, _)| c.writer().in_flight().is_none()));
            if (all_measured && writes_idle) || now.saturating_since(started) >= once_deadline {
                once_done = true;
                inputs.push_back(Input::Shutdown);
            }
        }
    }
    if let Some(h) = history.as_mut() {
        h.record(&daemon);
        h.service(clock::now(), true);
    }
    drop(locks);
    let code = exit_code.unwrap_or(1);
    match opts.mode {
        Mode::Daemon => Ok(code),
        Mode::Oneshot => Ok(0),
        Mode::Once { json } => {
            let r = once_result(&daemon, measured_only, clock::now());
            println!("{}", if json { &r.json } else { &r.line });
            Ok(r.code)
        }
    }
}

struct ExecCtx<'a> {
    send_buf: &'a mut [u8; 64],
    rng: &'a mut Rng,
    save_log: &'a mut LogLimiter,
    measured_only: bool,
    links: &'a mut [RouterLink],
    routers: &'a mut [RouterIo],
    submitted: &'a mut [VecDeque<(RouterJob, Instant)>],
}

/// What a command handed to a WAN's router link was for; completions come back in the
/// order of submission (the daemon keeps at most one read and one write outstanding, and
/// the link runs one command and keeps one waiting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouterJob {
    Write,
    ReadQueues,
}

/// Turns finished router commands into daemon inputs and logs transport changes.
fn collect_completions(
    routers: &mut [RouterIo],
    inputs: &mut VecDeque<Input>,
    now: Instant,
    submitted: &mut [VecDeque<(RouterJob, Instant)>],
    latency: &mut [Histogram],
) {
    for (wan, r) in routers.iter_mut().enumerate() {
        for c in r.take_completions() {
            match c {
                LinkOutput::Done(result) => {
                    let job = submitted.get_mut(wan).and_then(VecDeque::pop_front);
                    if let Some((RouterJob::ReadQueues, _)) = job {
                        let result = match *result {
                            Ok(RouterReply::Queues(items)) => Ok(items),
                            Ok(_) => Err(FailureKind::Unknown),
                            Err(e) => {
                                debug!(target: "wanctl::load", "{}: queue counter read failed: {e}", r.name);
                                Err(e.kind)
                            }
                        };
                        inputs.push_back(Input::QueuesRead { wan, result });
                        continue;
                    }
                    if let (Some((_, at)), Some(h)) = (job, latency.get_mut(wan)) {
                        h.record(now.saturating_since(at));
                    }
                    let (outcome, kind) = match *result {
                        Ok(_) => (WriteOutcome::Applied, None),
                        Err(e) => {
                            debug!(target: "wanctl::router", "{}: rate write failed: {e}", r.name);
                            (e.outcome, Some(e.kind))
                        }
                    };
                    inputs.push_back(Input::WriteDone { wan, outcome, kind });
                }
                LinkOutput::TransportChanged { from, to, reason } => {
                    warn!(
                        target: "wanctl::router",
                        "{}: router transport {} -> {}: {reason}",
                        r.name,
                        transport_name(from),
                        transport_name(to)
                    );
                }
                _ => {}
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn execute(
    daemon: &mut Daemon,
    ios: &mut [WanIo],
    poll: &mut PollSet,
    notifier: &Notifier,
    inputs: &mut VecDeque<Input>,
    exit_code: &mut Option<u8>,
    now: Instant,
    ctx: ExecCtx<'_>,
) {
    while let Some(out) = daemon.poll_output() {
        match out {
            Output::SendEcho { wan, probe } => {
                let Some(io) = ios.get(wan) else { continue };
                let family = family_of(probe.addr);
                let Some(s) = io.sockets.iter().find(|s| s.family == family) else {
                    inputs.push_back(Input::EchoSendFailed { wan, probe });
                    continue;
                };
                let sent = icmp::emit_request(family, s.ident, probe.seq, now, 16, ctx.send_buf)
                    .map_err(|e| io::Error::other(e.to_string()))
                    .and_then(|len| s.socket.send_to(&ctx.send_buf[..len], probe.addr));
                if let Err(e) = sent {
                    debug!(target: "wanctl::prober", "{}: send echo to {}: {e}", io.name, probe.addr);
                    inputs.push_back(Input::EchoSendFailed { wan, probe });
                }
            }
            Output::RouterWrite { wan, rates } => {
                let (Some(link), Some(rio), Some((setup, _, _))) =
                    (ctx.links.get_mut(wan), ctx.routers.get_mut(wan), daemon.wan(wan))
                else {
                    continue;
                };
                let cfg = &setup.config;
                debug!(
                    target: "wanctl::router",
                    "{}: set DL={:.1}M UL={:.1}M",
                    cfg.wan_name,
                    rates.download.as_mbps(),
                    rates.upload.as_mbps()
                );
                let command = RouterCommand::SetQueueLimits {
                    download: QueueLimit::with_cake_type(
                        &cfg.queues.download,
                        Direction::Download,
                        &cfg.wan_name,
                        rates.download,
                    ),
                    upload: QueueLimit::with_cake_type(
                        &cfg.queues.upload,
                        Direction::Upload,
                        &cfg.wan_name,
                        rates.upload,
                    ),
                };
                link.submit(now, command);
                if let Some(jobs) = ctx.submitted.get_mut(wan) {
                    jobs.push_back((RouterJob::Write, now));
                }
                rio.execute(link, poll, now);
            }
            Output::ReadQueues { wan } => {
                let (Some(link), Some(rio)) = (ctx.links.get_mut(wan), ctx.routers.get_mut(wan)) else {
                    continue;
                };
                link.submit(now, RouterCommand::ListQueueStats);
                if let Some(jobs) = ctx.submitted.get_mut(wan) {
                    jobs.push_back((RouterJob::ReadQueues, now));
                }
                rio.execute(link, poll, now);
            }
            Output::StartFallback { wan } => {
                if let Some(io) = ios.get_mut(wan) {
                    start_fallback(io, wan, poll, now, ctx.send_buf);
                }
            }
            Output::SaveState { wan, mut state } => {
                if ctx.measured_only {
                    continue;
                }
                let Some(io) = ios.get(wan) else { continue };
                save_state(io, &mut state, ctx.rng.next_u64(), now, ctx.save_log);
            }
            Output::Notify(n) => {
                let r = match &n {
                    Notify::Ready => notifier.ready(),
                    Notify::Watchdog => notifier.watchdog(),
                    Notify::Status(s) => notifier.status(s),
                    Notify::Stopping => notifier.stopping(),
                };
                if let Err(e) = r {
                    debug!(target: "wanctl::notify", "systemd notify {n:?}: {e}");
                }
            }
            Output::Exit(code) => *exit_code = Some(code),
        }
    }
}

fn save_state(io: &WanIo, state: &mut StateFile, nonce: u64, now: Instant, limiter: &mut LogLimiter) {
    state.timestamp = state_timestamp();
    if let Err(e) = files::write_atomic(&io.state_path, &state.encode(), nonce)
        && let Some(n) = limiter.allow(now)
    {
        warn!(
            target: "wanctl::state",
            "{}: write state file {}: {e}{}",
            io.name,
            io.state_path.display(),
            if n > 0 { format!(" ({n} similar suppressed)") } else { String::new() }
        );
    }
}

fn drain_icmp(
    io: &mut WanIo,
    w: usize,
    k: usize,
    now: Instant,
    buf: &mut [u8],
    inputs: &mut VecDeque<Input>,
) {
    let gateway = io.gateway;
    let gw_seq = io.gateway_seq;
    let Some(s) = io.sockets.get_mut(k) else { return };
    let framing: Framing = s.socket.framing();
    let raw = s.socket.kernel_ident().is_none();
    for _ in 0..256 {
        match s.socket.recv(buf) {
            Ok(Some(rx)) => {
                let Ok(reply) = icmp::parse_reply(s.family, framing, &buf[..rx.len]) else { continue };
                if raw && reply.ident != s.ident {
                    continue; // another program's (or another WAN's) echo
                }
                // The kernel stamp can be later than our clock read (src/sys/clock.rs): clamp it.
                let at = rx.kernel_time.map_or(now, |k| k.min(now));
                if Some(rx.from) == gateway && reply.seq_no == gw_seq {
                    if let Some(f) = io.fallback.as_mut() {
                        f.gateway_ok = true;
                    }
                    continue;
                }
                inputs.push_back(Input::EchoReply { wan: w, from: rx.from, seq: reply.seq_no, at });
            }
            Ok(None) => break,
            Err(e) => {
                debug!(target: "wanctl::prober", "{}: recv: {e}", io.name);
                break;
            }
        }
    }
}

fn start_fallback(io: &mut WanIo, w: usize, poll: &mut PollSet, now: Instant, send_buf: &mut [u8; 64]) {
    if io.fallback.is_some() {
        return;
    }
    io.gateway_seq = io.gateway_seq.wrapping_add(1) | 0xF000;
    let mut run = FallbackRun {
        deadline: now + io.ping_timeout.max(TCP_CHECK_TIMEOUT),
        gateway: None,
        gateway_ok: false,
        tcp: Vec::new(),
        rtts: Vec::new(),
    };
    if io.check_gateway
        && let Some(gw) = io.gateway
        && let Some(s) = io.sockets.iter().find(|s| s.family == family_of(gw))
        && let Ok(len) = icmp::emit_request(s.family, s.ident, io.gateway_seq, now, 16, send_buf)
        && s.socket.send_to(&send_buf[..len], gw).is_ok()
    {
        run.gateway = Some((gw, io.gateway_seq));
    }
    if io.check_tcp {
        for (k, addr) in io.tcp_targets.iter().enumerate().take(64) {
            match tcp_connect_nonblocking(*addr, &io.binding) {
                Ok((stream, ConnectState::Connected)) => {
                    run.rtts.push(0.0);
                    run.tcp.push((stream, now, true));
                }
                Ok((stream, ConnectState::InProgress)) => {
                    let token = TOKEN_TCP_BASE + w * 64 + k;
                    if poll.register(stream.as_fd(), token, Interest::WRITABLE).is_ok() {
                        run.tcp.push((stream, now, false));
                    }
                }
                Err(e) => debug!(target: "wanctl::fallback", "{}: TCP check {addr}: {e}", io.name),
            }
        }
    }
    // A run with nothing to wait for ends at the next loop pass.
    io.fallback = Some(run);
}

fn reload(files: &[String], ios: &[WanIo]) -> Result<Vec<WanSetup>, String> {
    if files.len() != ios.len() {
        return Err("the number of WANs cannot change on reload; restart instead".into());
    }
    let env = |k: &str| std::env::var(k).ok();
    let mut setups = Vec::new();
    for (file, io) in files.iter().zip(ios) {
        // Bounded and non-blocking (a FIFO or a huge file must not hold the loop); the
        // parser then refuses deep nesting before parsing (config::raw::check_shape).
        let bytes = files::read_small_regular_following(
            std::path::Path::new(file),
            crate::config::MAX_CONFIG_BYTES as u64,
        )
        .map_err(|e| format!("read {file}: {e}"))?;
        let text = String::from_utf8(bytes).map_err(|_| format!("read {file}: not UTF-8"))?;
        let loaded = config::parse_autorate(&text, file, &env).map_err(|e| e.to_string())?;
        for w in &loaded.warnings {
            warn!(target: "wanctl::reload", "{file}: {w}");
        }
        let cfg = loaded.config;
        if cfg.wan_name != io.name {
            return Err(format!(
                "{file}: wan_name changed from {} to {}; restart instead",
                io.name, cfg.wan_name
            ));
        }
        let mut reflectors = Vec::new();
        for host in cfg.monitoring.pool_hosts() {
            // A reload never resolves DNS on the control loop (issue 18): names known from
            // startup keep their addresses, IP literals need no lookup, and a new name is
            // refused with the way out.
            let known = io.resolved.iter().find(|(h, _)| h == host).map(|(_, ip)| *ip);
            let ip = match (known, host.parse::<IpAddr>()) {
                (Some(ip), _) | (None, Ok(ip)) => ip,
                (None, Err(_)) => {
                    return Err(format!(
                        "{file}: ping host {host} is a new name and a reload never looks names up (it would block the control loop); use its IP address or restart wanctl"
                    ));
                }
            };
            if !io.sockets.iter().any(|s| s.family == family_of(ip)) {
                return Err(format!(
                    "{file}: ping host {host} needs an address family not open; restart instead"
                ));
            }
            reflectors.push(ip);
        }
        setups.push(WanSetup { config: cfg, reflectors });
    }
    info!(target: "wanctl::reload", "configuration re-read and valid: {}", files.join(", "));
    Ok(setups)
}

/// A `/metrics/history` request being answered a slice per loop pass.
struct PendingHistory {
    conn: ConnId,
    job: HistoryJob,
    deadline: Instant,
}

/// Starts a `/metrics/history` request: one at a time (others get 503), answered later by
/// the loop's history slices; bad parameters are answered at once.
fn start_history(
    req: &HttpRequest,
    id: ConnId,
    db: Option<&std::path::Path>,
    pending: &mut Option<PendingHistory>,
    now: Instant,
) -> Reply {
    let json =
        |status: u16, body: String| Reply::Now(health::response(status, "application/json", body.as_bytes()));
    if pending.is_some() {
        return json(503, history_query::busy_body());
    }
    // The original read the built-in default path whatever storage.db_path said; we
    // read the configured database (docs/COMPAT.md).
    let path = db.unwrap_or(std::path::Path::new(crate::shell::store::DEFAULT_DB_PATH));
    let target = match &req.query {
        Some(q) => format!("{}?{q}", req.path),
        None => req.path.clone(),
    };
    match HistoryJob::start(path, &target, clock::wall_unix_secs(), clock::local_offset_secs(), clock::now) {
        Err((status, body)) => json(status, body),
        Ok(job) => {
            let deadline = now + history_query::JOB_DEADLINE;
            *pending = Some(PendingHistory { conn: id, job, deadline });
            Reply::Later { until: deadline + Duration::from_secs(1) }
        }
    }
}

/// Answers the health port: `/` and `/health` (the original's JSON, 200 healthy / 503
/// degraded); anything else is a JSON error.
fn health_response(req: &HttpRequest, snapshot: &dyn Fn() -> health::Snapshot) -> Vec<u8> {
    if req.method != "GET" && req.method != "HEAD" {
        return health::json_error(405, "Method not allowed");
    }
    match (req.path.as_str(), &req.query) {
        ("/" | "/health", None) => {
            let snap = snapshot();
            let status = if snap.is_healthy() { 200 } else { 503 };
            health::response(status, "application/json", health::render_health(&snap).as_bytes())
        }
        _ => health::json_error(404, "Not found"),
    }
}

/// Answers the metrics port as the original: `/metrics` (Prometheus text), `/health`
/// (`OK`), else 404.
fn metrics_response(req: &HttpRequest, snapshot: &dyn Fn() -> health::Snapshot) -> Vec<u8> {
    if req.method != "GET" && req.method != "HEAD" {
        return health::response(405, "text/plain", b"Method Not Allowed\n");
    }
    match req.path.as_str() {
        "/metrics" => health::response(
            200,
            crate::engine::metrics::CONTENT_TYPE,
            crate::engine::metrics::render(&snapshot()).as_bytes(),
        ),
        "/health" => health::response(200, "text/plain", b"OK\n"),
        _ => health::response(404, "text/plain", b"Not Found\n"),
    }
}

/// How often the history database gets one bounded maintenance step while work remains,
/// and how often it is checked for new work otherwise.
const MAINTENANCE_BUSY_EVERY: Duration = Duration::from_secs(1);
const MAINTENANCE_IDLE_EVERY: Duration = Duration::from_secs(600);
/// Rows one maintenance step may touch: about one downsampling unit, a few milliseconds on
/// a router CPU (see shell::store).
const MAINTENANCE_BUDGET: usize = 500;

/// The SQLite history as the loop drives it: rows buffered per tick, one transaction per
/// flush interval, bounded maintenance steps, degradation to a warning on any error.
struct History {
    store: Store,
    path: PathBuf,
    retention_days: u32,
    flush_every: Duration,
    last_flush: Instant,
    next_maintenance: Instant,
    warn: LogLimiter,
    last_tick: u64,
}

impl History {
    fn open(cfg: &AutorateConfig, now: Instant) -> Option<History> {
        let path = PathBuf::from(cfg.storage.db_path.as_deref()?);
        match Store::open(&path, cfg.storage.max_size_mb) {
            Ok(mut store) => {
                let row = hist::config_snapshot_row(
                    clock::wall_unix_secs(),
                    &cfg.wan_name,
                    Some(&hist::AutorateSnapshot {
                        baseline_rtt_initial: hist::PyJson::num(cfg.monitoring.baseline_rtt_initial_ms),
                        download_ceiling_mbps: hist::PyJson::num(cfg.monitoring.download.ceiling.as_mbps()),
                        upload_ceiling_mbps: hist::PyJson::num(cfg.monitoring.upload.ceiling.as_mbps()),
                        target_bloat_ms: hist::PyJson::num(cfg.monitoring.thresholds.target_bloat_ms),
                        warn_bloat_ms: hist::PyJson::num(cfg.monitoring.thresholds.warn_bloat_ms),
                    }),
                    None,
                );
                if let Err(e) = store.write_batch(&[row]) {
                    warn!(target: "wanctl::history", "history: config snapshot: {e}");
                }
                info!(target: "wanctl::startup", "history in {}", path.display());
                Some(History {
                    store,
                    path,
                    retention_days: cfg.storage.retention_days,
                    flush_every: cfg.storage.flush_interval,
                    last_flush: now,
                    next_maintenance: now + Duration::from_secs(5),
                    warn: LogLimiter::new(Duration::from_secs(300)),
                    last_tick: 0,
                })
            }
            Err(e) => {
                warn!(target: "wanctl::startup", "history disabled: {e}");
                None
            }
        }
    }

    /// After a tick: the original's rows for every WAN whose cycle ran.
    fn record(&mut self, daemon: &Daemon) {
        let ticks = daemon.stats().ticks;
        if ticks == self.last_tick {
            return;
        }
        self.last_tick = ticks;
        let ts = clock::wall_unix_secs();
        for i in 0..daemon.wan_count() {
            let (Some(report), Some((setup, ctl, _))) = (daemon.last_report(i), daemon.wan(i)) else {
                continue;
            };
            if report.outcome != Outcome::Adjusted {
                continue;
            }
            let Some(measured) = report.measured_ms else { continue };
            let dl_reason = report.download.transition.map(|t| t.to_string());
            let ul_reason = report.upload.transition.map(|t| t.to_string());
            let rec = CycleRecord {
                wan: &setup.config.wan_name,
                measured_rtt_ms: measured,
                baseline_ms: ctl.filter().baseline_ms(),
                delta_ms: ctl.filter().delta_ms(),
                dl_rate_bps: report.download.rate,
                ul_rate_bps: report.upload.rate,
                dl_zone_code: report.download.zone.history_code(),
                dl_transition: dl_reason
                    .as_deref()
                    .map(|reason| ZoneChange { zone_code: report.download.zone.history_code(), reason }),
                ul_transition: ul_reason
                    .as_deref()
                    .map(|reason| ZoneChange { zone_code: report.upload.zone.history_code(), reason }),
            };
            self.store.append(hist::cycle_rows(ts, &rec));
        }
    }

    /// Flushes when due and runs one maintenance step when due.
    fn service(&mut self, now: Instant, force: bool) {
        if force || now.saturating_since(self.last_flush) >= self.flush_every {
            self.last_flush = now;
            if let Err(e) = self.store.flush()
                && let Some(n) = self.warn.allow(now)
            {
                warn!(target: "wanctl::history", "history write failed (rows kept for retry): {e}{}", if n > 0 { format!(" ({n} similar suppressed)") } else { String::new() });
            }
        }
        if !force && now >= self.next_maintenance {
            match self.store.maintenance_step(
                clock::wall_unix_secs(),
                self.retention_days,
                MAINTENANCE_BUDGET,
            ) {
                Ok(r) => {
                    self.next_maintenance =
                        now + if r.more { MAINTENANCE_BUSY_EVERY } else { MAINTENANCE_IDLE_EVERY };
                    if r.did_work() {
                        debug!(target: "wanctl::history", "history maintenance: {r:?}");
                    }
                }
                Err(e) => {
                    self.next_maintenance = now + MAINTENANCE_IDLE_EVERY;
                    if self.warn.allow(now).is_some() {
                        warn!(target: "wanctl::history", "history maintenance failed: {e}");
                    }
                }
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        (self.last_flush + self.flush_every).min(self.next_maintenance)
    }
}

/// The daemon's snapshot completed with what only the shell knows: pid, active transport
/// and router latency per WAN.
fn snapshot_of(
    daemon: &Daemon,
    now: Instant,
    started: Instant,
    links: &[RouterLink],
    latency: &[Histogram],
) -> health::Snapshot {
    let mut snap = daemon.snapshot(now, started);
    snap.pid = std::process::id();
    for (i, w) in snap.wans.iter_mut().enumerate() {
        w.transport = links.get(i).map(|l| transport_name(l.active()));
        if let Some(h) = latency.get(i) {
            w.router_latency = h.clone();
        }
    }
    snap
}
