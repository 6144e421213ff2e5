//! Deterministic simulation: the real controller on a virtual clock, a fluid model of a
//! bottleneck link, and a model router. Pure: no sockets, no clock, seeded randomness, so
//! ten simulated minutes take milliseconds and every run replays from its seed.
//!
//! The world drives the real [`Daemon`] (prober, controller, write policy, failure
//! accounting), exactly as the poll loop does, with virtual sockets. Its loop has the shape
//! of quinn's `Pair::drive`: jump to the earliest of the next tick, the next scheduled
//! event (echo reply, router write completion, fallback result) and the daemon's own
//! deadline; integrate the link up to that instant in 1 ms steps; feed the input; execute
//! the outputs against the model.
//!
//! Link model (per direction): traffic leaves the router's CAKE shaper at
//! `min(demand, shaped rate)` (CAKE keeps its own queue short, so excess demand never
//! reaches the bottleneck) and enters the ISP bottleneck of capacity `C(t)` whose buffer
//! holds at most `buffer` of delay (600 ms, a typical bloated modem). Added delay is the
//! bottleneck backlog divided by `C(t)`. An echo sent at `t` comes back after
//! `base RTT + download delay + upload delay + jitter`, or never (loss, dead reflector).

pub mod hysteresis;
pub mod pool;
pub mod scenarios;
pub mod steering;

use std::time::Duration;

use crate::config::{
    AutorateConfig, DirectionConfig, Endpoint, FallbackChecks, FallbackMode, LoadControl, Logging,
    Monitoring, ProbeBinding, Queues, RouterConfig, Scheme, Secret, Storage, Thresholds, Transport,
};
use core::net::IpAddr;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::engine::connectivity::FailureKind;
use crate::engine::daemon::{Daemon, Input, Output, WanSetup};
use crate::engine::wan::{Fallback, TickReport};
use crate::engine::writer::{Rates, WriteOutcome};
use crate::rng::Rng;
use crate::time::Instant;
use crate::units::Bps;

/// The control cadence.
pub const TICK: Duration = Duration::from_millis(50);
/// Fluid-model integration step.
const STEP: Duration = Duration::from_millis(1);

/// The built-in configuration of the simulated link: a 100/20 Mbit/s cable-like line.
pub fn sample_config() -> AutorateConfig {
    let mb = Bps::from_mbps;
    AutorateConfig {
        schema_version: "1.0".into(),
        wan_name: "sim".into(),
        router: RouterConfig {
            host: "192.0.2.1".into(),
            user: "wanctl".into(),
            ssh_key: "/etc/wanctl/ssh/router.key".into(),
            transport: Transport::Rest,
            password: Secret(String::new()),
            port: 80,
            scheme: Scheme::Http,
            verify_ssl: false,
            ca_file: None,
            cert_sha256: None,
            failback_interval: Duration::from_secs(30),
        },
        queues: Queues { download: "WAN-Download-Sim".into(), upload: "WAN-Upload-Sim".into() },
        monitoring: Monitoring {
            baseline_rtt_initial_ms: 20.0,
            ping_hosts: vec!["192.0.2.11".into(), "192.0.2.12".into(), "192.0.2.13".into()],
            use_median_of_three: true,
            download: DirectionConfig {
                ceiling: mb(100.0),
                step_up: mb(2.0),
                factor_down: 0.85,
                factor_down_yellow: 0.96,
                green_required: 5,
                adaptive: true,
                floor_green: mb(30.0),
                floor_yellow: mb(25.0),
                floor_soft_red: mb(20.0),
                floor_red: mb(10.0),
            },
            upload: DirectionConfig {
                ceiling: mb(20.0),
                step_up: mb(0.5),
                factor_down: 0.90,
                factor_down_yellow: 0.94,
                green_required: 5,
                adaptive: true,
                floor_green: mb(4.0),
                floor_yellow: mb(4.0),
                floor_soft_red: mb(4.0),
                floor_red: mb(4.0),
            },
            thresholds: Thresholds {
                target_bloat_ms: 15.0,
                warn_bloat_ms: 45.0,
                hard_red_bloat_ms: 80.0,
                baseline_tau: Duration::from_secs(60),
                load_tau: Duration::from_millis(100),
                baseline_update_threshold_ms: 3.0,
                accel_threshold_ms: 15.0,
                baseline_min_ms: 10.0,
                baseline_max_ms: 60.0,
                dwell_cycles: 0,
                deadband_ms: 0.0,
                accel_confirm_cycles: 1,
                upload_target_bloat_ms: None,
                upload_warn_bloat_ms: None,
            },
            fallback: FallbackChecks {
                enabled: true,
                check_gateway: true,
                check_tcp: true,
                gateway_ip: "192.0.2.1".into(),
                tcp_targets: vec![("192.0.2.11".into(), 443)],
                mode: FallbackMode::GracefulDegradation,
                max_fallback_cycles: 3,
            },
            binding: ProbeBinding::default(),
            load: LoadControl::default(),
            write_budget_per_min: crate::config::DEFAULT_WRITE_BUDGET_PER_MIN,
            reflectors: crate::config::ReflectorPool::default(),
        },
        logging: Logging { main_log: String::new(), debug_log: String::new() },
        lock_file: "/run/wanctl/sim.lock".into(),
        lock_timeout: Duration::from_secs(300),
        router_timeout: Duration::from_secs(15),
        ping_timeout: Duration::from_secs(1),
        health: Endpoint { enabled: false, host: "127.0.0.1".into(), port: 9101 },
        metrics: Endpoint { enabled: false, host: "127.0.0.1".into(), port: 9100 },
        storage: Storage { db_path: None, ..Storage::default() },
        state_file_key: None,
        alerting: crate::config::AlertingConfig::default(),
    }
}

/// A piecewise description of a link over time, evaluated by the world.
#[derive(Debug, Clone)]
pub struct LinkProfile {
    /// Base (propagation) RTT, ms.
    pub base_rtt_ms: f64,
    /// Standard deviation of per-probe jitter, ms.
    pub jitter_ms: f64,
    /// Probability that one echo is lost.
    pub loss: f64,
    /// Bottleneck buffer, as delay at the current capacity.
    pub buffer: Duration,
    /// Download capacity over time (Mbit/s): `(from_second, value)` steps.
    pub dl_capacity: Vec<(f64, f64)>,
    /// Upload capacity over time.
    pub ul_capacity: Vec<(f64, f64)>,
    /// Download demand over time (Mbit/s); 0 = idle.
    pub dl_demand: Vec<(f64, f64)>,
    /// Upload demand over time.
    pub ul_demand: Vec<(f64, f64)>,
    /// Windows `[from, to)` (s) in which no reflector answers.
    pub reflectors_dead: Vec<(f64, f64)>,
    /// What the fallback checks find while reflectors are dead.
    pub fallback_while_dead: Fallback,
    /// Windows `[from, to)` (s) in which the router refuses connections.
    pub router_down: Vec<(f64, f64)>,
    /// Windows `[from, to)` (s) in which counter reads fail (writes still work).
    pub counters_down: Vec<(f64, f64)>,
    /// Instants (s) at which the router's counters reset to zero (reboot, reset-counters).
    pub counter_resets: Vec<f64>,
    /// The capacity drop this run's figures measure from, when the profile draws it
    /// (overrides the scenario's).
    pub drop_at: Option<f64>,
    /// The recovery the figures measure from (overrides the scenario's).
    pub recover_at: Option<f64>,
    /// Reflectors in the pool (0 = as the config's median setting: 3 or 1).
    pub pool: usize,
    /// The pool is IPv6 (documentation range `2001:db8::/32`).
    pub ipv6: bool,
    /// Faults of single reflectors.
    pub reflector_faults: Vec<ReflectorFault>,
    /// Per-reflector extra base RTT (ms), by pool index (missing = 0).
    pub reflector_offsets: Vec<f64>,
}

/// Which reflector a fault hits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultTarget {
    /// The `n`-th reflector of the daemon's active set when the fault starts.
    Active(usize),
    /// Pool index.
    Pool(usize),
}

/// A fault of one reflector over `[from, to)` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReflectorFault {
    /// Which one.
    pub target: FaultTarget,
    /// Start (s).
    pub from: f64,
    /// End (s).
    pub to: f64,
    /// `None` = silent, `Some(ms)` = that much extra RTT.
    pub extra_ms: Option<f64>,
}

/// Value of a step function at `t` seconds.
pub fn step_at(steps: &[(f64, f64)], t: f64) -> f64 {
    let mut v = steps.first().map_or(0.0, |s| s.1);
    for &(from, value) in steps {
        if t >= from {
            v = value;
        } else {
            break;
        }
    }
    v
}

fn in_windows(windows: &[(f64, f64)], t: f64) -> bool {
    windows.iter().any(|&(a, b)| t >= a && t < b)
}

/// A fluid model of one direction of a bottleneck: traffic leaves the shaper at
/// `min(demand, shaped rate)` and queues in front of a link of capacity `C(t)` whose buffer
/// holds at most `buffer` of delay. Also used by the closed-loop testbed in `tests/`.
#[derive(Debug, Clone, Default)]
pub struct Bottleneck {
    backlog_bits: f64,
    /// Bits that left the shaper so far (what an upload queue's counters count).
    pub shaped_bits: f64,
    /// Bits delivered so far (what a download queue's counters count: the router's
    /// ingress shaper sits after the line).
    pub delivered_bits: f64,
    /// Bits the link could have carried so far.
    pub capacity_bits: f64,
}

impl Bottleneck {
    /// Advances the model by `dt` seconds; returns the queueing delay (ms) after it.
    pub fn step(
        &mut self,
        dt: f64,
        capacity_mbps: f64,
        demand_mbps: f64,
        shaped: Bps,
        buffer: Duration,
    ) -> f64 {
        let cap = capacity_mbps * 1e6;
        let arrival = (demand_mbps * 1e6).min(shaped.0 as f64);
        let can_send = cap * dt;
        let total = self.backlog_bits + arrival * dt;
        let sent = total.min(can_send);
        let max_backlog = cap * buffer.as_secs_f64();
        self.backlog_bits = (total - sent).min(max_backlog).max(0.0);
        self.shaped_bits += arrival * dt;
        self.delivered_bits += sent;
        self.capacity_bits += can_send;
        if cap > 0.0 { self.backlog_bits / cap * 1000.0 } else { 0.0 }
    }
}

/// One record of the world's trace, every tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceRow {
    /// Virtual time (s).
    pub t: f64,
    /// Download capacity (Mbit/s).
    pub dl_capacity: f64,
    /// Router's applied download rate (Mbit/s).
    pub dl_rate: f64,
    /// Router's applied upload rate (Mbit/s).
    pub ul_rate: f64,
    /// Added delay (both directions, ms) right now.
    pub added_delay_ms: f64,
    /// The measurement the controller used (ms), if any.
    pub measured_ms: Option<f64>,
    /// Baseline (ms).
    pub baseline_ms: f64,
    /// The controller's tick report.
    pub report: TickReport,
    /// Download demand present (the link is loaded).
    pub loaded: bool,
    /// Write-budget tokens.
    pub tokens: f64,
    /// Upload capacity (Mbit/s).
    pub ul_capacity: f64,
    /// Download and upload queueing delay at the bottleneck (ms).
    pub delay_ms: (f64, f64),
    /// Download and upload demand (Mbit/s).
    pub demand: (f64, f64),
    /// The load-aware law ran this tick (fresh counters).
    pub load_aware: bool,
    /// The rates the model router enforces.
    pub applied: Rates,
    /// The controller's rates (what it wants the router to have).
    pub desired: Rates,
    /// The router is down (refusing connections) at this instant.
    pub router_down: bool,
    /// Echo requests sent so far.
    pub echoes: u64,
    /// The reflector quorum holds.
    pub quorum_ok: bool,
    /// Whether the first reflector fault's target is still probed (if it resolved).
    pub fault_target_probed: Option<bool>,
}

/// A router write seen by the model router.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriteRecord {
    /// When it was applied (s).
    pub t: f64,
    /// What was written.
    pub rates: Rates,
    /// Whether the router accepted it.
    pub applied: bool,
}

/// A scheduled event of the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// An echo reply arrives.
    Reply { from: IpAddr, seq: u16 },
    /// The router finished a write.
    WriteDone { ok: bool },
    /// The router answered a counter read.
    ReadDone { ok: bool },
    /// The fallback checks finished.
    Fallback,
}

/// The `i`-th simulated reflector (documentation ranges, never on the wire).
pub fn pool_addr(i: usize, ipv6: bool) -> IpAddr {
    if ipv6 {
        IpAddr::V6(core::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16 + 1))
    } else {
        IpAddr::V4(core::net::Ipv4Addr::new(198, 51, 100, i as u8 + 1))
    }
}

/// The world: the real `Daemon` (prober, controller, write policy, failure accounting),
/// a fluid link and a model router, on a virtual clock.
#[derive(Debug)]
pub struct SimWorld {
    /// The link description.
    pub profile: LinkProfile,
    /// The daemon under test.
    pub daemon: Daemon,
    rng: Rng,
    now: Instant,
    next_tick: Instant,
    dl: Bottleneck,
    ul: Bottleneck,
    router_rates: Rates,
    writing: Option<Rates>,
    events: BinaryHeap<Reverse<(Instant, u64, Event)>>,
    event_seq: u64,
    delay_ms: (f64, f64),
    /// Counter values subtracted since the last reset (bits), per direction.
    counter_offset: (f64, f64),
    resets_done: usize,
    /// Counter reads the model router answered.
    pub reads: u64,
    /// Echo requests sent.
    pub echoes: u64,
    /// Fallback check rounds started.
    pub fallbacks: u64,
    fault_targets: Vec<Option<IpAddr>>,
    /// Per-tick trace.
    pub trace: Vec<TraceRow>,
    /// Every write the router saw.
    pub writes: Vec<WriteRecord>,
    /// Added-delay samples (ms) taken every millisecond while the link is loaded.
    pub loaded_delay_ms: Vec<f32>,
    loaded_delivered: f64,
    loaded_capacity: f64,
    /// The configured queue names (download, upload), as the model router names them.
    daemon_queues: (String, String),
    load_enabled: bool,
}

/// Router write latency in the model (one REST round trip on a LAN).
const ROUTER_LATENCY: Duration = Duration::from_millis(4);
/// How long the model's fallback checks take.
const FALLBACK_LATENCY: Duration = Duration::from_millis(100);

impl SimWorld {
    /// A world at t = 0 with the router at the ceilings.
    pub fn new(cfg: &AutorateConfig, profile: LinkProfile, seed: u64) -> SimWorld {
        let m = &cfg.monitoring;
        let n = if profile.pool > 0 {
            profile.pool
        } else if m.use_median_of_three {
            3
        } else {
            1
        };
        let mut cfg = cfg.clone();
        let reflectors: Vec<IpAddr> = (0..n).map(|i| pool_addr(i, profile.ipv6)).collect();
        cfg.monitoring.ping_hosts = reflectors.iter().map(IpAddr::to_string).collect();
        cfg.monitoring.reflectors.pool = None;
        let daemon_queues = (cfg.queues.download.clone(), cfg.queues.upload.clone());
        let setup = WanSetup { config: cfg, reflectors };
        SimWorld {
            profile,
            daemon: Daemon::new(vec![setup], vec![None], false, seed, Instant::ZERO),
            rng: Rng::new(seed),
            now: Instant::ZERO,
            next_tick: Instant::ZERO,
            dl: Bottleneck::default(),
            ul: Bottleneck::default(),
            router_rates: Rates { download: m.download.ceiling, upload: m.upload.ceiling },
            writing: None,
            events: BinaryHeap::new(),
            event_seq: 0,
            delay_ms: (0.0, 0.0),
            counter_offset: (0.0, 0.0),
            resets_done: 0,
            reads: 0,
            echoes: 0,
            fallbacks: 0,
            fault_targets: Vec::new(),
            trace: Vec::new(),
            writes: Vec::new(),
            loaded_delay_ms: Vec::new(),
            loaded_delivered: 0.0,
            loaded_capacity: 0.0,
            daemon_queues,
            load_enabled: m.load.enabled,
        }
    }

    /// Virtual now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// True if the daemon runs the load-aware law (counters enabled in its config).
    pub fn daemon_load_enabled(&self) -> bool {
        self.load_enabled
    }

    /// Rates the model router currently enforces.
    pub fn router_rates(&self) -> Rates {
        self.router_rates
    }

    /// Delivered / capacity over the loaded periods (download).
    pub fn utilisation(&self) -> f64 {
        if self.loaded_capacity > 0.0 { self.loaded_delivered / self.loaded_capacity } else { 0.0 }
    }

    fn schedule(&mut self, at: Instant, e: Event) {
        self.event_seq += 1;
        self.events.push(Reverse((at, self.event_seq, e)));
    }

    fn advance_link(&mut self, until: Instant) {
        while self.now < until {
            let dt = STEP.min(until.saturating_since(self.now));
            let t = self.now.as_secs_f64();
            let p = &self.profile;
            let (dl_cap, ul_cap) = (step_at(&p.dl_capacity, t), step_at(&p.ul_capacity, t));
            let (dl_dem, ul_dem) = (step_at(&p.dl_demand, t), step_at(&p.ul_demand, t));
            let before = (self.dl.delivered_bits, self.dl.capacity_bits);
            let d = self.dl.step(dt.as_secs_f64(), dl_cap, dl_dem, self.router_rates.download, p.buffer);
            let u = self.ul.step(dt.as_secs_f64(), ul_cap, ul_dem, self.router_rates.upload, p.buffer);
            self.delay_ms = (d, u);
            if dl_dem > 0.0 {
                self.loaded_delay_ms.push((d + u) as f32);
                self.loaded_delivered += self.dl.delivered_bits - before.0;
                self.loaded_capacity += self.dl.capacity_bits - before.1;
            }
            self.now += dt;
        }
    }

    /// Executes the daemon's outputs against the model.
    fn execute(&mut self) {
        while let Some(out) = self.daemon.poll_output() {
            match out {
                Output::SendEcho { probe, .. } => {
                    self.echoes += 1;
                    let t = self.now.as_secs_f64();
                    let (silent, extra) = self.reflector_fault(probe.addr, t);
                    let dead = silent || in_windows(&self.profile.reflectors_dead, t);
                    let lost = dead || self.rng.chance(self.profile.loss);
                    let jitter = (self.rng.normal() * self.profile.jitter_ms).abs();
                    let offset = self.profile.reflector_offsets.get(probe.reflector).copied().unwrap_or(0.0);
                    let rtt = self.profile.base_rtt_ms
                        + offset
                        + extra
                        + self.delay_ms.0
                        + self.delay_ms.1
                        + jitter;
                    if !lost {
                        let at = self.now + Duration::from_micros((rtt * 1000.0) as u64);
                        self.schedule(at, Event::Reply { from: probe.addr, seq: probe.seq });
                    }
                }
                Output::RouterWrite { rates, .. } => {
                    let up = !in_windows(&self.profile.router_down, self.now.as_secs_f64());
                    self.writing = up.then_some(rates);
                    self.writes.push(WriteRecord { t: self.now.as_secs_f64(), rates, applied: up });
                    self.schedule(self.now + ROUTER_LATENCY, Event::WriteDone { ok: up });
                }
                Output::ReadQueues { .. } => {
                    let t = self.now.as_secs_f64();
                    let ok = !in_windows(&self.profile.router_down, t)
                        && !in_windows(&self.profile.counters_down, t);
                    self.schedule(self.now + ROUTER_LATENCY, Event::ReadDone { ok });
                }
                Output::StartFallback { .. } => {
                    self.fallbacks += 1;
                    self.schedule(self.now + FALLBACK_LATENCY, Event::Fallback);
                }
                Output::SaveState { .. } | Output::Notify(_) | Output::Exit(_) => {}
            }
        }
    }

    fn handle(&mut self, e: Event) {
        let input = match e {
            Event::Reply { from, seq } => Input::EchoReply { wan: 0, from, seq, at: self.now },
            Event::WriteDone { ok } => {
                if let Some(r) = self.writing.take() {
                    self.router_rates = r;
                }
                if ok {
                    Input::WriteDone { wan: 0, outcome: WriteOutcome::Applied, kind: None }
                } else {
                    Input::WriteDone {
                        wan: 0,
                        outcome: WriteOutcome::NotSent,
                        kind: Some(FailureKind::ConnectionRefused),
                    }
                }
            }
            Event::ReadDone { ok } => {
                self.reads += 1;
                if ok {
                    let t = self.now.as_secs_f64();
                    let due = self.profile.counter_resets.iter().filter(|&&r| r <= t).count();
                    if due > self.resets_done {
                        self.resets_done = due;
                        self.counter_offset = (self.dl.delivered_bits, self.ul.shaped_bits);
                    }
                    let q = &self.daemon_queues;
                    let bytes = |bits: f64| Some((bits / 8.0) as u64);
                    let items = vec![
                        crate::wire::routeros::QueueStats {
                            name: Some(q.0.clone()),
                            bytes: bytes(self.dl.delivered_bits - self.counter_offset.0),
                            ..Default::default()
                        },
                        crate::wire::routeros::QueueStats {
                            name: Some(q.1.clone()),
                            bytes: bytes(self.ul.shaped_bits - self.counter_offset.1),
                            ..Default::default()
                        },
                    ];
                    Input::QueuesRead { wan: 0, result: Ok(items) }
                } else {
                    Input::QueuesRead { wan: 0, result: Err(FailureKind::ConnectionRefused) }
                }
            }
            Event::Fallback => Input::FallbackResult { wan: 0, result: self.profile.fallback_while_dead },
        };
        self.daemon.handle_input(self.now, input);
        self.execute();
    }

    fn record(&mut self) {
        let t = self.now.as_secs_f64();
        let (Some(report), Some((_, ctl, prober))) = (self.daemon.last_report(0), self.daemon.wan(0)) else {
            return;
        };
        let quorum = prober.quorum(self.now);
        let fault_target_probed = self.fault_target(0).map(|a| prober.addrs().any(|x| x == a));
        self.trace.push(TraceRow {
            t,
            dl_capacity: step_at(&self.profile.dl_capacity, t),
            dl_rate: self.router_rates.download.as_mbps(),
            ul_rate: self.router_rates.upload.as_mbps(),
            added_delay_ms: self.delay_ms.0 + self.delay_ms.1,
            measured_ms: report.measured_ms,
            baseline_ms: ctl.filter().baseline_ms(),
            report,
            loaded: step_at(&self.profile.dl_demand, t) > 0.0,
            tokens: ctl.writer().tokens(),
            ul_capacity: step_at(&self.profile.ul_capacity, t),
            delay_ms: self.delay_ms,
            demand: (step_at(&self.profile.dl_demand, t), step_at(&self.profile.ul_demand, t)),
            load_aware: ctl.is_load_aware(),
            applied: self.router_rates,
            desired: ctl.desired(),
            router_down: in_windows(&self.profile.router_down, t),
            echoes: self.echoes,
            quorum_ok: quorum.0 >= quorum.1,
            fault_target_probed,
        });
    }

    /// Whether `addr` is silenced at `t`, and its extra RTT (ms). `Active(n)` targets are
    /// resolved to an address when their window opens.
    fn reflector_fault(&mut self, addr: IpAddr, t: f64) -> (bool, f64) {
        let mut silent = false;
        let mut extra = 0.0;
        for (k, f) in self.profile.reflector_faults.iter().enumerate() {
            if t < f.from || t >= f.to {
                continue;
            }
            let target = match f.target {
                FaultTarget::Pool(i) => Some(pool_addr(i, self.profile.ipv6)),
                FaultTarget::Active(n) => {
                    if self.fault_targets.len() <= k {
                        self.fault_targets.resize(k + 1, None);
                    }
                    if self.fault_targets[k].is_none() {
                        self.fault_targets[k] = self.daemon.wan(0).and_then(|(_, _, p)| p.addrs().nth(n));
                    }
                    self.fault_targets[k]
                }
            };
            if target == Some(addr) {
                match f.extra_ms {
                    None => silent = true,
                    Some(ms) => extra += ms,
                }
            }
        }
        (silent, extra)
    }

    /// The address a fault targeting `Active(n)` resolved to, by fault index.
    pub fn fault_target(&self, k: usize) -> Option<IpAddr> {
        self.fault_targets.get(k).copied().flatten()
    }

    /// Runs the world until `end`.
    pub fn run_until(&mut self, end: Instant) {
        while self.now < end {
            let mut next = self.next_tick.min(end);
            if let Some(Reverse((t, _, _))) = self.events.peek() {
                next = next.min(*t);
            }
            if let Some(t) = self.daemon.poll_timeout()
                && t > self.now
            {
                next = next.min(t);
            }
            self.advance_link(next);
            while let Some(Reverse((t, _, e))) = self.events.peek().copied() {
                if t > self.now {
                    break;
                }
                self.events.pop();
                self.handle(e);
            }
            if self.now >= self.next_tick {
                self.next_tick += TICK;
                self.daemon.handle_input(self.now, Input::Tick { missed: 0, late: Duration::ZERO });
                self.execute();
                self.record();
            }
            self.daemon.handle_timeout(self.now);
            self.execute();
        }
    }
}
