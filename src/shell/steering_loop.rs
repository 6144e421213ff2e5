//! The steering daemon's `poll(2)` loop (`wanctl steering --config FILE`, or the binary
//! called `wanctl-steering`). Shell code around the pure `engine::steering::SteeringEngine`:
//! one tick per `measurement.interval_seconds`; each tick closes the previous ping round
//! (median of `ping_count` echo replies), reads the autorate state file for the baseline,
//! hands the latest CAKE statistics of the primary download queue to the engine, and
//! carries out its decision (enable/disable the mangle rule by comment, then verify it by
//! reading it back) over the same REST/SSH router link as the autorate daemon.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::{debug, info, warn};

use crate::config::SteeringConfig;
use crate::engine::connectivity::{Connectivity, FailureKind};
use crate::engine::health::{self, HttpRequest};
use crate::engine::router::{LinkOutput, LinkSettings, RouterLink, transport_name};
use crate::engine::state::StateFile;
use crate::engine::stats::LogLimiter;
use crate::engine::steering::rounds::{CycleRtt, PingRounds};
use crate::engine::steering::{
    Action, CakeReading, Measurements, SteeringEngine, SteeringState, WanZone, render_health,
};
use crate::rng::Rng;
use crate::shell::files::{self, LockFile};
use crate::shell::http_server::HttpServer;
use crate::shell::router_io::RouterIo;
use crate::shell::startup::{StartupError, resolve};
use crate::sys::clock;
use crate::sys::notify::Notifier;
use crate::sys::poll::{Events, Interest, PollSet, Token};
use crate::sys::signalfd::{Signal, SignalFd};
use crate::sys::socket::{BindOptions, IcmpSocket};
use crate::sys::timerfd::Timer;
use crate::time::Instant;
use crate::wire::icmp::{self, Family};
use crate::wire::routeros::{Command, Reply};

const TOKEN_TIMER: Token = 0;
const TOKEN_SIGNAL: Token = 1;
const TOKEN_ICMP: Token = 2;
const TOKEN_ROUTER: Token = 16;
const TOKEN_HEALTH: Token = 64;
const TOKEN_METRICS: Token = 256;
const TOKEN_WEBHOOK: Token = 512;

/// What the router link is doing for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InFlight {
    Cake,
    SetRule { enable: bool },
    VerifyRule { enable: bool },
}

fn startup(code: u8, message: String) -> StartupError {
    StartupError { message, code }
}

/// From one read of the autorate state file: the baseline (`ewma.baseline_rtt`) and the
/// download zone (`congestion.dl_state`, written by wanctl) with the file's age (its
/// modification time against the wall clock; a file from the future counts as fresh).
fn read_autorate_state(path: &Path) -> (Option<f64>, Option<(WanZone, Duration)>) {
    let Ok(bytes) = crate::shell::files::read_small_regular(path, crate::shell::files::MAX_STATE_BYTES)
    else {
        return (None, None);
    };
    let Ok(state) = StateFile::decode(&bytes) else {
        return (None, None);
    };
    let age = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(|t| std::time::SystemTime::now().duration_since(t).unwrap_or(Duration::ZERO));
    let zone = match (state.congestion.as_ref().and_then(|c| WanZone::parse(&c.dl_state)), age) {
        (Some(z), Some(a)) => Some((z, a)),
        _ => None,
    };
    (state.ewma.map(|e| e.baseline_rtt), zone)
}

fn wall_iso() -> String {
    let us = clock::wall_now_micros() + clock::local_offset_secs() * 1_000_000;
    let (date, sod) = crate::shell::logger::civil_from_unix(us.div_euclid(1_000_000));
    format!("{date}T{:02}:{:02}:{:02}.{:06}", sod / 3600, sod / 60 % 60, sod % 60, us.rem_euclid(1_000_000))
}

/// Runs the steering daemon until SIGTERM; returns the exit code.
pub fn run(cfg: SteeringConfig, dry_run: bool, seed: u64) -> Result<u8, StartupError> {
    let lock = LockFile::acquire(Path::new(&cfg.lock_file), cfg.lock_timeout)
        .map_err(|e| startup(1, format!("steering: {e}")))?;
    let ping_ip = resolve(&cfg.ping_host)
        .map_err(|e| startup(1, format!("resolve ping host {}: {e}", cfg.ping_host)))?;
    let family = if ping_ip.is_ipv4() { Family::V4 } else { Family::V6 };
    let mut sock =
        IcmpSocket::open(family, &BindOptions::default()).map_err(|e| startup(1, e.to_string()))?;
    let ident = sock.reply_ident((std::process::id() as u16) ^ 0x5a5a);
    let router_ip = resolve(&cfg.router.host)
        .map_err(|e| startup(1, format!("resolve router host {}: {e}", cfg.router.host)))?;
    #[allow(unused_mut)]
    let mut rio = RouterIo::new(
        &cfg.wan_name,
        std::net::SocketAddr::new(router_ip, cfg.router.port),
        &cfg.router.host,
        TOKEN_ROUTER,
    );
    rio.hide_from_children(&cfg.router.password.0);
    if cfg.router.scheme == crate::config::Scheme::Https {
        #[cfg(feature = "tls")]
        {
            let r = &cfg.router;
            let tls = crate::shell::tls::client_config(
                r.verify_ssl,
                r.ca_file.as_deref().map(Path::new),
                r.cert_sha256,
            )
            .map_err(|e| startup(1, format!("router TLS: {e}")))?;
            if !r.verify_ssl && r.cert_sha256.is_none() {
                warn!(target: "wanctl::startup", "{}", crate::shell::tls::INSECURE_WARNING);
            }
            rio.set_tls(tls);
        }
        #[cfg(not(feature = "tls"))]
        return Err(startup(2, "router.scheme is https but this build has no TLS (feature `tls`)".into()));
    }
    let mut link = RouterLink::new(LinkSettings::from_config(&cfg.router, cfg.router_timeout));
    let state_path = PathBuf::from(&cfg.state_file);
    // Bounded, non-blocking, regular files only (issue 18); its histories make it larger
    // than the autorate file.
    let restored = match crate::shell::files::read_small_regular(
        &state_path,
        16 * crate::shell::files::MAX_STATE_BYTES,
    ) {
        Ok(b) => match SteeringState::decode(&b, cfg.history_size as usize) {
            Ok(s) => Some(s),
            Err(e) => {
                let mut moved = state_path.as_os_str().to_owned();
                moved.push(".corrupt");
                let _ = std::fs::rename(&state_path, &moved);
                warn!(target: "wanctl::steering", "state file {} is corrupt ({e}); kept aside, starting from defaults", state_path.display());
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            warn!(target: "wanctl::steering", "cannot read state file {}: {e}; starting from defaults", state_path.display());
            None
        }
    };
    let now = clock::now();
    let started = now;
    let had_state = restored.is_some();
    let mut engine = SteeringEngine::new(&cfg, restored, now);
    if had_state {
        // Line the router's rule up with the restored state once.
        engine.reconcile();
    }
    let period = cfg.interval.max(Duration::from_millis(10));
    let timer = Timer::periodic(period).map_err(|e| startup(1, format!("create timer: {e}")))?;
    let signals = SignalFd::open(&Signal::DAEMON).map_err(|e| startup(1, format!("open signalfd: {e}")))?;
    let notifier = Notifier::from_env().unwrap_or_else(|_| Notifier::disabled());
    let mut poll = PollSet::with_capacity(16);
    let reg = |p: &mut PollSet, fd, t, what: &str| {
        p.register(fd, t, Interest::READABLE).map_err(|e| startup(1, format!("poll {what}: {e}")))
    };
    reg(&mut poll, timer.as_fd(), TOKEN_TIMER, "timer")?;
    reg(&mut poll, signals.as_fd(), TOKEN_SIGNAL, "signalfd")?;
    reg(&mut poll, sock.as_fd(), TOKEN_ICMP, "ICMP socket")?;
    let mut health_srv = if cfg.health.enabled {
        match HttpServer::bind("steering health", &cfg.health.host, cfg.health.port, TOKEN_HEALTH, &mut poll)
        {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(target: "wanctl::startup", "steering health endpoint disabled: {e}");
                None
            }
        }
    } else {
        None
    };
    let mut metrics_srv = if cfg.metrics.enabled {
        match HttpServer::bind(
            "steering metrics",
            &cfg.metrics.host,
            cfg.metrics.port,
            TOKEN_METRICS,
            &mut poll,
        ) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(target: "wanctl::startup", "steering metrics endpoint disabled: {e}");
                None
            }
        }
    } else {
        None
    };
    let mut store = cfg.storage.db_path.as_deref().and_then(|p| {
        match crate::shell::store::Store::open(Path::new(p), cfg.storage.max_size_mb) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(target: "wanctl::startup", "steering history disabled: {e}");
                None
            }
        }
    });
    info!(
        target: "wanctl::startup",
        "wanctl {} steering for {} (rule {:?}) every {} ms{}",
        crate::VERSION,
        cfg.primary_wan,
        cfg.mangle_comment,
        period.as_millis(),
        if dry_run { ", dry run" } else { "" }
    );

    // Webhook alerts (issue 14): steering toggled, flapping, router unreachable.
    let mut webhook =
        crate::shell::webhook::Webhook::new(&cfg.alerting, TOKEN_WEBHOOK).map_err(|e| startup(1, e))?;
    let mut alerter = crate::engine::alerts::Alerter::new(cfg.alerting.settings.clone(), &cfg.wan_name);
    let mut rng = Rng::new(seed);
    let mut events = Events::with_capacity(16);
    let mut buf = [0u8; 2048];
    let mut send_buf = [0u8; 64];
    let mut rounds = PingRounds::new(cfg.ping_timeout);
    let mut seq: u16 = rng.next_u32() as u16;
    let mut cake: Option<CakeReading> = None;
    let mut cake_failed = false;
    let mut in_flight: Option<InFlight> = None;
    let mut pending_action: Option<Action> = None;
    let mut consecutive_failures: u32 = 0;
    let mut connectivity = Connectivity::new();
    let mut last_saved: Option<Vec<u8>> = None;
    let mut last_save_at: Option<Instant> = None;
    let mut last_flush = now;
    let mut warn_limit = LogLimiter::new(Duration::from_secs(300));
    let mut ready = false;
    let mut stop = false;

    while !stop {
        let now = clock::now();
        let mut deadline = link.poll_timeout();
        for s in health_srv.iter().chain(metrics_srv.iter()) {
            if let Some(t) = s.next_deadline() {
                deadline = Some(deadline.map_or(t, |d| d.min(t)));
            }
        }
        if let Some(t) = webhook.as_ref().and_then(|w| w.next_deadline()) {
            deadline = Some(deadline.map_or(t, |d| d.min(t)));
        }
        poll.poll(&mut events, deadline.map(|d| d.saturating_since(now)))
            .map_err(|e| startup(1, format!("poll: {e}")))?;
        let now = clock::now();
        let mut tick = false;
        for ev in &events {
            match ev.token {
                TOKEN_TIMER => tick |= matches!(timer.read(), Ok(n) if n > 0),
                TOKEN_SIGNAL => {
                    while let Ok(Some(sig)) = signals.read() {
                        match sig {
                            Signal::Term | Signal::Int => stop = true,
                            Signal::Hup => crate::shell::logger::reopen(),
                            Signal::Chld => rio.ssh_reap(&mut link, &mut poll, now),
                            Signal::Usr1 => {}
                        }
                    }
                }
                TOKEN_ICMP => {
                    for _ in 0..64 {
                        match sock.recv(&mut buf) {
                            Ok(Some(rx)) => {
                                let Ok(reply) = icmp::parse_reply(family, sock.framing(), &buf[..rx.len])
                                else {
                                    continue;
                                };
                                if rx.from != ping_ip
                                    || (sock.kernel_ident().is_none() && reply.ident != ident)
                                {
                                    continue;
                                }
                                rounds.on_reply(reply.seq_no, rx.kernel_time.unwrap_or(now));
                            }
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
                t if rio.owns(t) => rio.on_event(&mut link, &mut poll, now, ev),
                t if webhook.as_ref().is_some_and(|w| w.owns(t)) => {
                    if let Some(w) = webhook.as_mut() {
                        w.on_event(now, &mut poll, ev);
                    }
                }
                t if health_srv.as_ref().is_some_and(|s| s.owns(t)) => {
                    let h = engine.health(now);
                    let up = now.saturating_since(started).as_secs_f64();
                    let fails = consecutive_failures;
                    let conn = connectivity.clone();
                    let mut handler = |req: &HttpRequest| {
                        if req.method != "GET" && req.method != "HEAD" {
                            return health::json_error(405, "Method not allowed");
                        }
                        match (req.path.as_str(), &req.query) {
                            ("/" | "/health", None) => {
                                let (status, body) = render_health(
                                    &h,
                                    up,
                                    crate::VERSION,
                                    std::process::id(),
                                    fails,
                                    &conn,
                                    now,
                                );
                                health::response(status, "application/json", body.as_bytes())
                            }
                            _ => health::json_error(404, "Not found"),
                        }
                    };
                    if let Some(s) = health_srv.as_mut() {
                        s.on_event(ev, now, &mut poll, &mut handler);
                    }
                }
                t if metrics_srv.as_ref().is_some_and(|s| s.owns(t)) => {
                    let text = engine.metrics_text();
                    let mut handler = |req: &HttpRequest| match req.path.as_str() {
                        "/metrics" => {
                            health::response(200, crate::engine::metrics::CONTENT_TYPE, text.as_bytes())
                        }
                        "/health" => health::response(200, "text/plain", b"OK\n"),
                        _ => health::response(404, "text/plain", b"Not Found\n"),
                    };
                    if let Some(s) = metrics_srv.as_mut() {
                        s.on_event(ev, now, &mut poll, &mut handler);
                    }
                }
                _ => {}
            }
        }
        for s in health_srv.iter_mut().chain(metrics_srv.iter_mut()) {
            s.expire(now, &mut poll);
        }
        link.handle_timeout(now);
        rio.execute(&mut link, &mut poll, now);
        // Router results.
        for c in rio.take_completions() {
            match c {
                LinkOutput::Done(result) => {
                    let what = in_flight.take();
                    match (*result, what) {
                        (Ok(Reply::Queue(Some(q))), Some(InFlight::Cake)) => {
                            connectivity.record_success(now);
                            cake = CakeReading::from_stats(&q);
                            cake_failed = cake.is_none();
                        }
                        (Ok(_), Some(InFlight::Cake)) => {
                            cake_failed = true;
                            if warn_limit.allow(now).is_some() {
                                warn!(target: "wanctl::steering", "queue {:?} not found on the router", cfg.primary_download_queue);
                            }
                        }
                        (Ok(_), Some(InFlight::SetRule { enable })) => {
                            connectivity.record_success(now);
                            in_flight = Some(InFlight::VerifyRule { enable });
                            link.submit(now, Command::GetMangleByComment(cfg.mangle_comment.clone()));
                        }
                        (Ok(Reply::Mangle(rules)), Some(InFlight::VerifyRule { enable })) => {
                            let ok = !rules.is_empty() && rules.iter().all(|r| r.disabled != enable);
                            let result = if ok { Ok(enable) } else { Err(FailureKind::Unknown) };
                            if !ok {
                                warn!(target: "wanctl::steering", "rule {:?} not verified {} (found {} rules)", cfg.mangle_comment, if enable { "enabled" } else { "disabled" }, rules.len());
                            }
                            engine.on_action_result(now, &wall_iso(), result);
                        }
                        (Ok(_), Some(InFlight::VerifyRule { .. })) => {
                            engine.on_action_result(now, &wall_iso(), Err(FailureKind::Unknown))
                        }
                        (Err(e), Some(w)) => {
                            connectivity.record_failure(now, e.kind);
                            if warn_limit.allow(now).is_some() {
                                warn!(target: "wanctl::steering", "router: {e}");
                            }
                            match w {
                                InFlight::Cake => cake_failed = true,
                                InFlight::SetRule { .. } | InFlight::VerifyRule { .. } => {
                                    engine.on_action_result(now, &wall_iso(), Err(e.kind));
                                }
                            }
                        }
                        _ => {}
                    }
                }
                LinkOutput::TransportChanged { from, to, reason } => {
                    warn!(target: "wanctl::router", "router transport {} -> {}: {reason}", transport_name(from), transport_name(to));
                }
                _ => {}
            }
        }
        if tick {
            // What the open ping rounds measured this cycle (replies count until the ping
            // timeout, whatever cycle they land in: engine::steering::rounds).
            let measured = rounds.close_cycle(now);
            let (baseline_ms, wan_zone) = read_autorate_state(Path::new(&cfg.primary_state_file));
            let m = Measurements {
                baseline_ms,
                rtt_ms: match measured {
                    CycleRtt::Measured { median_ms, .. } => Some(median_ms),
                    _ => None,
                },
                rtt_pending: matches!(measured, CycleRtt::Pending { .. } | CycleRtt::Idle),
                wan_zone,
                cake: if cfg.cake_aware { cake } else { None },
                cake_read_failed: cfg.cake_aware && cake_failed,
            };
            let outcome = engine.on_cycle(now, &wall_iso(), &m);
            match outcome {
                crate::engine::steering::CycleOutcome::Ok | crate::engine::steering::CycleOutcome::Held => {
                    consecutive_failures = 0;
                    if !ready {
                        ready = true;
                        let _ = notifier.ready();
                    }
                    let _ = notifier.watchdog();
                }
                crate::engine::steering::CycleOutcome::Failed(why) => {
                    consecutive_failures += 1;
                    debug!(target: "wanctl::steering", "cycle failed: {why}");
                }
            }
            if let Some(hook) = webhook.as_mut() {
                use crate::engine::alerts::AlertKind;
                let unix = clock::wall_unix_secs();
                let h = engine.health(now);
                alerter.observe(now, unix, AlertKind::SteeringActivated, engine.is_steering(), || {
                    (
                        format!(
                            "{} -> latency-sensitive traffic {}",
                            h.state,
                            if h.enabled { "steered to the alternate WAN" } else { "back on the primary" }
                        ),
                        vec![
                            ("state", h.state.clone()),
                            ("congestion", h.congestion_state.clone()),
                            ("rtt_delta_ewma_ms", format!("{:.1}", h.rtt_delta_ewma_ms)),
                        ],
                    )
                });
                alerter.observe(now, unix, AlertKind::SteeringFlapping, h.flap.active, || {
                    (
                        format!(
                            "flap brake engaged: {} transitions in the window",
                            h.flap.transitions_in_window
                        ),
                        vec![("transitions", h.flap.transitions_in_window.to_string())],
                    )
                });
                alerter.observe(
                    now,
                    unix,
                    AlertKind::RouterUnreachable,
                    !connectivity.is_reachable(),
                    || {
                        (
                            format!("router {} unreachable", cfg.router.host),
                            vec![("consecutive_failures", connectivity.consecutive_failures().to_string())],
                        )
                    },
                );
                while let Some(a) = alerter.poll_alert() {
                    hook.push(&a);
                }
            }
            if let Some(a) = engine.poll_action() {
                if dry_run {
                    info!(target: "wanctl::steering", "dry run: would {:?}", a);
                    let Action::SetSteering { enable } = a;
                    engine.on_action_result(now, &wall_iso(), Ok(enable));
                } else {
                    pending_action = Some(a);
                }
            }
            // New ping round: `ping_count` echoes.
            for _ in 0..cfg.ping_count.max(1) {
                seq = seq.wrapping_add(1);
                if let Ok(len) = icmp::emit_request(family, ident, seq, now, 16, &mut send_buf)
                    && sock.send_to(&send_buf[..len], ping_ip).is_ok()
                {
                    rounds.on_sent(seq, now);
                }
            }
            // State file: when changed, at most once a second.
            let bytes = engine.state_ref().encode();
            if last_saved.as_ref() != Some(&bytes)
                && last_save_at.is_none_or(|t| now.saturating_since(t) >= Duration::from_secs(1))
            {
                if let Err(e) = files::write_atomic(&state_path, &bytes, rng.next_u64()) {
                    if warn_limit.allow(now).is_some() {
                        warn!(target: "wanctl::steering", "write state {}: {e}", state_path.display());
                    }
                } else {
                    last_saved = Some(bytes);
                    last_save_at = Some(now);
                }
            }
            if let Some(st) = store.as_mut() {
                st.append(engine.history(clock::wall_unix_secs()));
                if now.saturating_since(last_flush) >= cfg.storage.flush_interval {
                    last_flush = now;
                    let _ = st.flush();
                }
            }
        }
        if let Some(w) = webhook.as_mut() {
            w.pump(now, &mut poll);
        }
        // One router command at a time: a rule change first, else a CAKE read per cycle.
        if !link.is_busy() && in_flight.is_none() {
            if let Some(Action::SetSteering { enable }) = pending_action.take() {
                in_flight = Some(InFlight::SetRule { enable });
                link.submit(
                    now,
                    Command::SetMangleDisabled { comment: cfg.mangle_comment.clone(), disabled: !enable },
                );
            } else if tick && cfg.cake_aware {
                in_flight = Some(InFlight::Cake);
                link.submit(now, Command::GetQueueByName(cfg.primary_download_queue.clone()));
            }
            rio.execute(&mut link, &mut poll, now);
        }
    }
    let _ = notifier.stopping();
    let _ = files::write_atomic(&state_path, &engine.state_ref().encode(), rng.next_u64());
    if let Some(st) = store.as_mut() {
        let _ = st.flush();
    }
    drop(lock);
    info!(target: "wanctl::steering", "steering shutdown complete");
    Ok(0)
}
