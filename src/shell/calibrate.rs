//! `wanctl calibrate` (also argv[0] `wanctl-calibrate`): the shell around
//! `engine::calibrate::Calibrator`. A small poll(2) loop, every wait bounded: ICMP echoes to
//! the configured reflectors (one every 100 ms, round robin), the queue counters every
//! 500 ms and the limit writes over the configured router link (REST, SSH fallback),
//! SIGINT/SIGTERM through a signalfd.
//!
//! **The router's limits come back on every exit path.** Before the first write the
//! original `max-limit`s are read and written to a crash note
//! (`<lock_file dir>/<wan>_calibrate_restore.json`); the plan's end, a failure, a router
//! error and SIGINT/SIGTERM all restore them (verified by reading them back) and then
//! delete the note. A run that finds a note (a crash, a kill -9, a power cut) restores from
//! it first and says so. Exit 0 done, 1 failed (limits restored), 130 interrupted.
//!
//! Writes only `max-limit` (`QueueLimit::max_limit_only`), as the original's tool, never
//! the queue type. This is a one-shot operator command, not the daemon.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::CalibrateArgs;
use crate::config::AutorateConfig;
use crate::engine::calibrate::{CalReport, CalSettings, CalStep, Calibrator, recommended_keys};
use crate::engine::router::{LinkOutput, LinkSettings, RouterLink};
use crate::shell::router_io::RouterIo;
use crate::shell::startup::resolve;
use crate::sys::clock;
use crate::sys::poll::{Events, Interest, PollSet, Token};
use crate::sys::signalfd::{Signal, SignalFd};
use crate::sys::socket::{BindOptions, IcmpSocket};
use crate::time::Instant;
use crate::units::Bps;
use crate::wire::icmp::{self, Family};
use crate::wire::routeros::{Command, QueueLimit, Reply};

const TOKEN_SIGNAL: Token = 1;
const TOKEN_ICMP: Token = 2;
const TOKEN_ROUTER: Token = 16;
const TOKEN_LOAD: [Token; 2] = [32, 48];
const PING_EVERY: Duration = Duration::from_millis(100);
const READ_EVERY: Duration = Duration::from_millis(500);
const POLL_SLICE: Duration = Duration::from_millis(20);
/// One router command may take this long before the run gives up.
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);

/// The crash note's path.
pub fn note_path(cfg: &AutorateConfig) -> PathBuf {
    let dir =
        Path::new(&cfg.lock_file).parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    dir.join(format!("{}_calibrate_restore.json", cfg.wan_name))
}

struct Io {
    link: RouterLink,
    rio: RouterIo,
    poll: PollSet,
    events: Events,
    signals: SignalFd,
    interrupted: bool,
    /// Load generators (download, upload) when URLs were given.
    loads: [Option<crate::shell::loadgen::LoadGen>; 2],
}

impl Io {
    /// Runs one router command to completion (bounded), pumping `on_idle` meanwhile.
    fn command(&mut self, cmd: Command, mut on_idle: impl FnMut(&mut Io, Instant)) -> Result<Reply, String> {
        let start = clock::now();
        self.link.submit(start, cmd);
        // Bounded by COMMAND_DEADLINE.
        loop {
            let now = clock::now();
            self.link.handle_timeout(now);
            self.rio.execute(&mut self.link, &mut self.poll, now);
            self.rio.ssh_reap(&mut self.link, &mut self.poll, now);
            for c in self.rio.take_completions() {
                if let LinkOutput::Done(result) = c {
                    return (*result).map_err(|e| e.to_string());
                }
            }
            if now.saturating_since(start) > COMMAND_DEADLINE {
                return Err(format!("the router did not answer within {} s", COMMAND_DEADLINE.as_secs()));
            }
            on_idle(self, now);
            self.wait(now);
        }
    }

    fn wait(&mut self, now: Instant) {
        let t = self.link.poll_timeout().map_or(POLL_SLICE, |t| t.saturating_since(now)).min(POLL_SLICE);
        if self.poll.poll(&mut self.events, Some(t)).is_err() {
            return;
        }
        let now = clock::now();
        let evs: Vec<_> = self.events.iter().copied().collect();
        for ev in &evs {
            if self.rio.owns(ev.token) {
                self.rio.on_event(&mut self.link, &mut self.poll, now, ev);
            } else if let Some(g) = self.loads.iter_mut().flatten().find(|g| g.owns(ev.token)) {
                g.on_event(now, &mut self.poll, ev);
            } else if ev.token == TOKEN_SIGNAL {
                while let Ok(Some(sig)) = self.signals.read() {
                    match sig {
                        Signal::Int | Signal::Term => self.interrupted = true,
                        Signal::Chld => self.rio.ssh_reap(&mut self.link, &mut self.poll, now),
                        _ => {}
                    }
                }
            }
        }
    }

    fn set(&mut self, cfg: &AutorateConfig, limits: [Bps; 2]) -> Result<(), String> {
        let cmd = Command::SetQueueLimits {
            download: QueueLimit::max_limit_only(&cfg.queues.download, limits[0]),
            upload: QueueLimit::max_limit_only(&cfg.queues.upload, limits[1]),
        };
        self.command(cmd, |_, _| {}).map(|_| ())
    }

    fn read_limit(&mut self, name: &str) -> Result<Bps, String> {
        match self.command(Command::GetQueueConfigByName(name.to_owned()), |_, _| {})? {
            Reply::Queue(Some(q)) => q.max_limit.ok_or_else(|| format!("queue {name:?} shows no max-limit")),
            Reply::Queue(None) => Err(format!("queue {name:?} does not exist on the router")),
            other => Err(format!("unexpected reply {other:?}")),
        }
    }

    /// Writes `limits`, reads them back; true when the router has them.
    fn restore(&mut self, cfg: &AutorateConfig, limits: [Bps; 2]) -> Result<(), String> {
        self.set(cfg, limits)?;
        let got = [self.read_limit(&cfg.queues.download)?, self.read_limit(&cfg.queues.upload)?];
        if got == limits { Ok(()) } else { Err(format!("read back {got:?}, expected {limits:?}")) }
    }
}

fn mbps(b: Bps) -> String {
    format!("{:.1}", b.0 as f64 / 1e6)
}

fn write_note(path: &Path, cfg: &AutorateConfig, limits: [Bps; 2]) -> std::io::Result<()> {
    let body = serde_json::json!({
        "wan_name": cfg.wan_name,
        "download_queue": cfg.queues.download,
        "upload_queue": cfg.queues.upload,
        "download_max_limit": limits[0].0,
        "upload_max_limit": limits[1].0,
        "note": "wanctl calibrate was interrupted: these are the router's limits before it; the next `wanctl calibrate` restores them",
    });
    crate::shell::files::write_atomic(path, body.to_string().as_bytes(), crate::sys::random::seed())
}

fn read_note(path: &Path) -> Option<[Bps; 2]> {
    let bytes = crate::shell::files::read_small_regular(path, 64 * 1024).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some([Bps(v["download_max_limit"].as_u64()?), Bps(v["upload_max_limit"].as_u64()?)])
}

/// Runs the calibration; returns the exit code.
pub fn run(a: &CalibrateArgs, text: &str, cfg: &AutorateConfig) -> u8 {
    match run_inner(a, text, cfg) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: calibrate: {e}");
            1
        }
    }
}

fn run_inner(a: &CalibrateArgs, text: &str, cfg: &AutorateConfig) -> Result<u8, String> {
    let r = &cfg.router;
    let ip = resolve(&r.host).map_err(|e| format!("resolve router host {}: {e}", r.host))?;
    let mut rio = RouterIo::new("calibrate", std::net::SocketAddr::new(ip, r.port), &r.host, TOKEN_ROUTER);
    rio.hide_from_children(&r.password.0);
    #[cfg(feature = "tls")]
    if r.scheme == crate::config::Scheme::Https {
        let tls = crate::shell::tls::client_config(
            r.verify_ssl,
            r.ca_file.as_deref().map(Path::new),
            r.cert_sha256,
        )?;
        rio.set_tls(tls);
    }
    let signals = SignalFd::open(&Signal::DAEMON).map_err(|e| format!("signalfd: {e}"))?;
    let mut poll = PollSet::with_capacity(16);
    poll.register(std::os::fd::AsFd::as_fd(&signals), TOKEN_SIGNAL, Interest::READABLE)
        .map_err(|e| format!("poll: {e}"))?;
    let mut io = Io {
        link: RouterLink::new(LinkSettings::from_config(r, cfg.router_timeout)),
        rio,
        poll,
        events: Events::with_capacity(16),
        signals,
        interrupted: false,
        loads: [None, None],
    };
    for (i, url) in [&a.load_url, &a.upload_url].into_iter().enumerate() {
        if let Some(u) = url {
            io.loads[i] = Some(crate::shell::loadgen::LoadGen::new(u, i == 1, a.verify_tls, TOKEN_LOAD[i])?);
        }
    }
    let note = note_path(cfg);
    if let Some(limits) = read_note(&note) {
        println!(
            "a previous calibration did not finish: restoring its saved limits {} / {} Mbit/s first",
            mbps(limits[0]),
            mbps(limits[1])
        );
        io.restore(cfg, limits).map_err(|e| format!("restore from {}: {e}", note.display()))?;
        let _ = std::fs::remove_file(&note);
    }
    let originals = [io.read_limit(&cfg.queues.download)?, io.read_limit(&cfg.queues.upload)?];
    println!(
        "router limits now {} / {} Mbit/s (restored at the end); crash note {}",
        mbps(originals[0]),
        mbps(originals[1]),
        note.display()
    );
    write_note(&note, cfg, originals).map_err(|e| format!("write the crash note {}: {e}", note.display()))?;
    let result = measure(a, cfg, &mut io, originals);
    for g in io.loads.iter_mut().flatten() {
        g.stop(&mut io.poll);
    }
    // Every path from here restores the originals.
    let restored = io.restore(cfg, originals);
    match &restored {
        Ok(()) => {
            let _ = std::fs::remove_file(&note);
            println!("router limits restored to {} / {} Mbit/s", mbps(originals[0]), mbps(originals[1]));
        }
        Err(e) => eprintln!(
            "error: calibrate: could not restore the router's limits ({e}); they are saved in {}: run wanctl calibrate again or set them by hand",
            note.display()
        ),
    }
    io.rio.shutdown(&mut io.poll, Duration::from_secs(1));
    match result {
        Measured::Interrupted => Ok(130),
        Measured::Failed(e) => {
            eprintln!("error: calibrate: {e}");
            Ok(1)
        }
        Measured::Done(report) => {
            if restored.is_err() {
                return Ok(1);
            }
            write_outputs(a, text, cfg, &report)?;
            Ok(0)
        }
    }
}

enum Measured {
    Done(CalReport),
    Failed(String),
    Interrupted,
}

fn measure(a: &CalibrateArgs, cfg: &AutorateConfig, io: &mut Io, originals: [Bps; 2]) -> Measured {
    let hosts: Vec<std::net::IpAddr> =
        cfg.monitoring.ping_hosts.iter().filter_map(|h| resolve(h).ok()).collect();
    let Some(first) = hosts.first().copied() else {
        return Measured::Failed("none of the ping hosts resolves".into());
    };
    let family = if first.is_ipv4() { Family::V4 } else { Family::V6 };
    let hosts: Vec<_> = hosts.into_iter().filter(|h| h.is_ipv4() == first.is_ipv4()).collect();
    let mut sock = match IcmpSocket::open(family, &BindOptions::default()) {
        Ok(s) => s,
        Err(e) => return Measured::Failed(e.to_string()),
    };
    if let Err(e) = io.poll.register(std::os::fd::AsFd::as_fd(&sock), TOKEN_ICMP, Interest::READABLE) {
        return Measured::Failed(format!("poll: {e}"));
    }
    let ident = sock.reply_ident((std::process::id() as u16) ^ 0x3c3c);
    let settings = CalSettings {
        baseline: Duration::from_secs_f64(a.baseline_secs),
        step: Duration::from_secs_f64(a.step_secs),
        target_bloat_ms: a.target_bloat_ms.unwrap_or(cfg.monitoring.thresholds.target_bloat_ms),
        iterations: a.iterations,
        wait_load: Duration::from_secs_f64(a.wait_load_secs),
        ceilings: [cfg.monitoring.download.ceiling, cfg.monitoring.upload.ceiling],
        originals,
        directions: [a.download, a.upload],
    };
    let mut cal = Calibrator::new(settings, clock::now());
    let mut sent: Vec<(u16, Instant)> = Vec::with_capacity(64);
    let mut seq: u16 = 0;
    let mut next_ping = clock::now();
    let mut next_read = clock::now();
    let mut send_buf = [0u8; 64];
    let mut buf = [0u8; 2048];
    let mut k = 0usize;
    // Bounded: each plan phase has a time limit and the whole run ends at `limit`.
    let limit = Duration::from_secs_f64(
        a.baseline_secs + 2.0 * (a.wait_load_secs + a.step_secs * f64::from(a.iterations + 2)) + 60.0,
    );
    let started = clock::now();
    loop {
        if io.interrupted {
            println!("interrupted: restoring the router's limits");
            return Measured::Interrupted;
        }
        let now = clock::now();
        if now.saturating_since(started) > limit {
            return Measured::Failed("the calibration took longer than its plan allows".into());
        }
        // Pings.
        if now >= next_ping {
            next_ping = now + PING_EVERY;
            seq = seq.wrapping_add(1);
            let host = hosts[k % hosts.len()];
            k += 1;
            if let Ok(len) = icmp::emit_request(family, ident, seq, now, 16, &mut send_buf)
                && sock.send_to(&send_buf[..len], host).is_ok()
            {
                if sent.len() >= 64 {
                    sent.remove(0);
                }
                sent.push((seq, now));
            }
        }
        // Replies.
        for _ in 0..64 {
            match sock.recv(&mut buf) {
                Ok(Some(rx)) => {
                    let Ok(reply) = icmp::parse_reply(family, sock.framing(), &buf[..rx.len]) else {
                        continue;
                    };
                    if sock.kernel_ident().is_none() && reply.ident != ident {
                        continue;
                    }
                    if let Some(pos) = sent.iter().position(|s| s.0 == reply.seq_no) {
                        let (_, at) = sent.remove(pos);
                        let arrived = rx.kernel_time.unwrap_or(now);
                        cal.on_rtt(now, arrived.saturating_since(at).as_secs_f64() * 1000.0);
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        // Counters.
        if now >= next_read {
            next_read = now + READ_EVERY;
            match io.command(Command::ListQueueStats, |_, _| {}) {
                Ok(Reply::Queues(qs)) => {
                    let bytes = |name: &str| {
                        qs.iter().find(|q| q.name.as_deref() == Some(name)).and_then(|q| q.bytes)
                    };
                    match (bytes(&cfg.queues.download), bytes(&cfg.queues.upload)) {
                        (Some(d), Some(u)) => cal.on_counters(clock::now(), d, u),
                        _ => {
                            return Measured::Failed(
                                "the queue counters of the configured queues cannot be read".into(),
                            );
                        }
                    }
                }
                Ok(other) => {
                    return Measured::Failed(format!("unexpected reply to a counter read: {other:?}"));
                }
                Err(e) => return Measured::Failed(format!("router: {e}")),
            }
        }
        let now = clock::now();
        for g in io.loads.iter_mut().flatten() {
            g.pump(now, &mut io.poll);
        }
        cal.tick(now);
        while let Some(step) = cal.poll() {
            match step {
                CalStep::Set(limits) => {
                    if let Err(e) = io.set(cfg, limits) {
                        return Measured::Failed(format!("router: {e}"));
                    }
                    cal.on_applied(clock::now());
                }
                CalStep::Progress(p) => println!("{p}"),
                CalStep::Load(dir) => {
                    let now = clock::now();
                    for (i, g) in io.loads.iter_mut().enumerate() {
                        if let Some(g) = g {
                            if dir == Some(i) {
                                println!(
                                    "{}: loading the line from {}",
                                    ["download", "upload"][i],
                                    g.describe()
                                );
                                g.start(now, &mut io.poll);
                            } else {
                                g.stop(&mut io.poll);
                            }
                        }
                    }
                }
                CalStep::Done(r) => return Measured::Done(r),
                CalStep::Fail(e) => return Measured::Failed(e),
            }
        }
        io.wait(clock::now());
    }
}

fn write_outputs(a: &CalibrateArgs, text: &str, cfg: &AutorateConfig, r: &CalReport) -> Result<(), String> {
    let dir = Path::new(&a.config).parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let out =
        a.output.clone().map_or_else(|| dir.join(format!("{}.calibrated.yaml", cfg.wan_name)), PathBuf::from);
    let keys = recommended_keys(r);
    // The four download floors replace a single `floor_mbps`.
    let remove: &[&str] =
        if r.dirs[0].is_some() { &["continuous_monitoring.download.floor_mbps"] } else { &[] };
    let body = crate::config::patch_yaml(text, &keys, remove)?;
    let header = format!(
        "# Written by wanctl calibrate from {} (comments of the original are not kept).\n# Baseline {:.1} ms; changed keys: {}\n",
        a.config,
        r.baseline_ms,
        keys.iter().map(|k| k.0).collect::<Vec<_>>().join(", ")
    );
    std::fs::write(&out, format!("{header}{body}")).map_err(|e| format!("write {}: {e}", out.display()))?;
    let m = |b: Option<crate::engine::calibrate::DirResult>,
             f: fn(&crate::engine::calibrate::DirResult) -> f64| {
        b.as_ref().map_or(serde_json::Value::Null, |d| serde_json::json!((f(d) * 10.0).round() / 10.0))
    };
    let key = |name: &str| keys.iter().find(|k| k.0.ends_with(name)).map(|k| k.1);
    let json = serde_json::json!({
        "wan_name": cfg.wan_name,
        "router_host": cfg.router.host,
        "router_user": cfg.router.user,
        "baseline_rtt_ms": (r.baseline_ms * 10.0).round() / 10.0,
        "raw_download_mbps": m(r.dirs[0], |d| d.raw.0 as f64 / 1e6),
        "raw_upload_mbps": m(r.dirs[1], |d| d.raw.0 as f64 / 1e6),
        "optimal_download_mbps": m(r.dirs[0], |d| d.optimal.0 as f64 / 1e6),
        "optimal_upload_mbps": m(r.dirs[1], |d| d.optimal.0 as f64 / 1e6),
        "download_bloat_ms": m(r.dirs[0], |d| d.bloat_ms),
        "upload_bloat_ms": m(r.dirs[1], |d| d.bloat_ms),
        "floor_download_mbps": key("download.floor_red_mbps"),
        "floor_upload_mbps": key("upload.floor_mbps"),
        "timestamp": crate::engine::history::iso_utc(clock::wall_unix_secs()),
        "target_bloat_ms": a.target_bloat_ms.unwrap_or(cfg.monitoring.thresholds.target_bloat_ms),
    });
    let json_path = dir.join(format!("{}_calibration.json", cfg.wan_name));
    std::fs::write(&json_path, serde_json::to_string_pretty(&json).unwrap_or_default())
        .map_err(|e| format!("write {}: {e}", json_path.display()))?;
    println!("\nreport: baseline {:.1} ms", r.baseline_ms);
    for (i, name) in ["download", "upload"].iter().enumerate() {
        match r.dirs[i] {
            Some(d) => println!(
                "  {name}: raw {} Mbit/s, optimum {} Mbit/s (added delay {:.1} ms)",
                mbps(d.raw),
                mbps(d.optimal),
                d.bloat_ms
            ),
            None => println!("  {name}: not calibrated (configured values kept)"),
        }
    }
    for (k, v) in &keys {
        println!("  {k}: {v}");
    }
    println!("written: {} and {}", out.display(), json_path.display());
    println!("check it with: wanctl check-config {}", out.display());
    Ok(())
}
