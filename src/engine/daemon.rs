//! `Daemon`: the whole autorate program without I/O. Pure.
//!
//! Calling protocol (as quinn-proto's `Connection`):
//! 1. Feed everything that happened with [`Daemon::handle_input`] (ticks from the timerfd,
//!    echo replies, fallback-check results, router write results, signals), all with the
//!    `now` read once per wakeup.
//! 2. Call [`Daemon::handle_timeout`] when [`Daemon::poll_timeout`]'s instant has passed
//!    (calling it early does nothing harmful).
//! 3. Drain [`Daemon::poll_output`] after every `handle_*` call and execute the outputs
//!    (send echoes, start a router write, save state, notify systemd, exit). Failures of
//!    those actions come back as inputs.
//!
//! One tick = one cycle for every WAN in config order: take the prober's sample, run the
//! WAN controller, start its router write if any, send the next round of echoes.

use core::net::IpAddr;
use std::collections::VecDeque;
use std::time::Duration;

use log::{debug, info, warn};

use crate::config::AutorateConfig;
use crate::engine::connectivity::{Connectivity, FailureKind};
use crate::engine::load::{LoadMeter, Reading};
use crate::engine::prober::{Misbehaviour, PoolEvent, PoolSettings, Probe, Prober};
use crate::engine::state::StateFile;
use crate::engine::stats::{Histogram, LogLimiter};
use crate::engine::wan::{Fallback, Outcome, TickReport, WanController, WanEvent};
use crate::engine::writer::{Rates, WriteOutcome};
use crate::time::Instant;
use crate::wire::routeros::QueueStats;

/// Consecutive failed seconds after which the watchdog is abandoned (the original's 3
/// failed cycles; its failing cycles lasted a second or more).
pub const FAILURE_LIMIT: u32 = 3;
/// State is written when it changed, at most this often (the original: 20 times a second).
pub const SAVE_INTERVAL: Duration = Duration::from_secs(1);
/// How long shutdown waits for an in-flight router write.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Period of the one-line INFO summary.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);
/// A direction carrying less than this share of its shaper rate is idle (probe back-off,
/// stall detection).
const IDLE_SHARE: f64 = 0.05;
/// `WATCHDOG=1` at most this often.
const WATCHDOG_INTERVAL: Duration = Duration::from_secs(1);

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The 50 ms timer fired; `missed` expirations were skipped (never replayed) and the
    /// wakeup came `late` after its scheduled instant.
    Tick {
        /// Expirations beyond the first since the last read.
        missed: u64,
        /// Actual minus scheduled time of this wakeup.
        late: Duration,
    },
    /// An echo reply for `wan` arrived (at = kernel timestamp if known, else `now`).
    EchoReply {
        /// WAN index.
        wan: usize,
        /// Source address.
        from: IpAddr,
        /// ICMP sequence.
        seq: u16,
        /// Arrival time.
        at: Instant,
    },
    /// Sending an echo failed.
    EchoSendFailed {
        /// WAN index.
        wan: usize,
        /// The probe.
        probe: Probe,
    },
    /// The ICMP-failure fallback checks finished.
    FallbackResult {
        /// WAN index.
        wan: usize,
        /// What they found.
        result: Fallback,
    },
    /// A router write finished.
    WriteDone {
        /// WAN index.
        wan: usize,
        /// How.
        outcome: WriteOutcome,
        /// Failure classification.
        kind: Option<FailureKind>,
    },
    /// A queue-counter read (`Output::ReadQueues`) finished: every queue-tree item, or
    /// the failure's classification.
    QueuesRead {
        /// WAN index.
        wan: usize,
        /// The items (`ListQueueStats`), or why the read failed.
        result: Result<Vec<QueueStats>, FailureKind>,
    },
    /// SIGTERM / SIGINT.
    Shutdown,
    /// SIGHUP with a validated new configuration (same WAN count and order not required).
    Reload(Vec<WanSetup>),
}

/// systemd notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notify {
    /// `READY=1`.
    Ready,
    /// `WATCHDOG=1`.
    Watchdog,
    /// `STATUS=...`.
    Status(String),
    /// `STOPPING=1`.
    Stopping,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send an echo request.
    SendEcho {
        /// WAN index (selects the socket and its binding).
        wan: usize,
        /// Destination and sequence.
        probe: Probe,
    },
    /// Write these rates to the router; report with `Input::WriteDone`.
    RouterWrite {
        /// WAN index.
        wan: usize,
        /// The rates.
        rates: Rates,
    },
    /// Read every queue's counters (`Command::ListQueueStats`); report with
    /// `Input::QueuesRead`. Issued only while no write is in flight; a write decided while
    /// the read runs is issued at once and must run right after it (the router link takes
    /// one waiting command), so a read delays a write by at most one read.
    ReadQueues {
        /// WAN index.
        wan: usize,
    },
    /// Run the gateway / TCP fallback checks; report with `Input::FallbackResult`.
    StartFallback {
        /// WAN index.
        wan: usize,
    },
    /// Persist this state (the shell fills the timestamp and replaces the file atomically).
    SaveState {
        /// WAN index.
        wan: usize,
        /// The content.
        state: StateFile,
    },
    /// Tell systemd.
    Notify(Notify),
    /// Exit the process with this code after cleanup.
    Exit(u8),
}

/// One WAN as the daemon runs it: its config and resolved reflector addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct WanSetup {
    /// The WAN's config.
    pub config: AutorateConfig,
    /// `ping_hosts`, resolved.
    pub reflectors: Vec<IpAddr>,
}

#[derive(Debug)]
struct Slot {
    setup: WanSetup,
    ctl: WanController,
    prober: Prober,
    fallback: Fallback,
    fallback_running: bool,
    fallback_started: Option<Instant>,
    writing: bool,
    reading: bool,
    stalled: bool,
    load: LoadMeter,
    saved: Option<StateFile>,
    saved_at: Option<Instant>,
    last: Option<TickReport>,
    icmp_log: LogLimiter,
    router_log: LogLimiter,
    cycles: u64,
    ping_failures: u64,
}

impl Slot {
    fn new(setup: WanSetup, now: Instant, seq: u16) -> Slot {
        let m = &setup.config.monitoring;
        let ctl = WanController::new(&setup.config, now);
        let settings = PoolSettings::from_config(m, setup.reflectors.len(), u64::from(seq));
        let prober = Prober::new(&setup.reflectors, settings, setup.config.ping_timeout, seq, now);
        let load = LoadMeter::new(&setup.config.monitoring.load);
        Slot {
            load,
            setup,
            ctl,
            prober,
            fallback: Fallback::Pending,
            fallback_running: false,
            fallback_started: None,
            writing: false,
            reading: false,
            stalled: false,
            saved: None,
            saved_at: None,
            last: None,
            icmp_log: LogLimiter::new(Duration::from_secs(300)),
            router_log: LogLimiter::new(Duration::from_secs(300)),
            cycles: 0,
            ping_failures: 0,
        }
    }
}

/// Counters for health and metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaemonStats {
    /// Ticks run.
    pub ticks: u64,
    /// Timer expirations skipped.
    pub missed_ticks: u64,
    /// Tick lateness.
    pub lateness: Histogram,
    /// Echo requests handed to the shell.
    pub probes_sent: u64,
    /// Replies matched.
    pub replies: u64,
}

/// The daemon.
#[derive(Debug)]
pub struct Daemon {
    wans: Vec<Slot>,
    /// The ICMP sequence seed (`--seed`), reused on reload.
    seq_seed: u16,
    dry_run: bool,
    outputs: VecDeque<Output>,
    consecutive_failures: u32,
    last_failure_counted: Option<Instant>,
    watchdog_enabled: bool,
    last_watchdog: Option<Instant>,
    ready: bool,
    stopping: Option<Instant>,
    exited: bool,
    last_summary: Instant,
    stats: DaemonStats,
}

impl Daemon {
    /// A daemon for `wans`, with their persisted states if any.
    pub fn new(
        wans: Vec<WanSetup>,
        states: Vec<Option<StateFile>>,
        dry_run: bool,
        seed: u64,
        now: Instant,
    ) -> Daemon {
        let slots = wans
            .into_iter()
            .enumerate()
            .map(|(i, setup)| {
                let mut s = Slot::new(setup, now, (seed as u16).wrapping_add((i as u16) << 12));
                if let Some(Some(state)) = states.get(i) {
                    s.ctl.restore(state);
                    s.saved = Some(state.clone());
                }
                s
            })
            .collect();
        Daemon {
            seq_seed: seed as u16,
            wans: slots,
            dry_run,
            outputs: VecDeque::with_capacity(64),
            consecutive_failures: 0,
            last_failure_counted: None,
            watchdog_enabled: true,
            last_watchdog: None,
            ready: false,
            stopping: None,
            exited: false,
            last_summary: now,
            stats: DaemonStats::default(),
        }
    }

    /// Consecutive failed cycles (counted at most once per second, see `FAILURE_LIMIT`).
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Counters.
    pub fn stats(&self) -> &DaemonStats {
        &self.stats
    }

    /// Number of WANs.
    pub fn wan_count(&self) -> usize {
        self.wans.len()
    }

    /// A WAN's controller (read-only, for health and `--once`).
    pub fn wan(&self, i: usize) -> Option<(&WanSetup, &WanController, &Prober)> {
        self.wans.get(i).map(|s| (&s.setup, &s.ctl, &s.prober))
    }

    /// The last tick report of a WAN.
    pub fn last_report(&self, i: usize) -> Option<TickReport> {
        self.wans.get(i).and_then(|s| s.last)
    }

    /// True while shutting down.
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_some()
    }

    /// Healthy: fewer than `FAILURE_LIMIT` failures and every router reachable.
    pub fn is_healthy(&self) -> bool {
        self.consecutive_failures < FAILURE_LIMIT
            && self.wans.iter().all(|s| s.ctl.connectivity().is_reachable())
    }

    /// The next output to execute.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next deadline at which `handle_timeout` has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = self.stopping.map(|s| s + SHUTDOWN_GRACE);
        for s in &self.wans {
            if let Some(d) = s.fallback_started.map(|f| f + s.setup.config.ping_timeout * 3) {
                t = Some(t.map_or(d, |x| x.min(d)));
            }
        }
        t
    }

    /// Handles one input.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        if self.exited {
            return;
        }
        match input {
            Input::Tick { missed, late } => self.on_tick(now, missed, late),
            Input::EchoReply { wan, from, seq, at } => {
                if let Some(s) = self.wans.get_mut(wan)
                    && s.prober.on_reply(at, from, seq).is_some()
                {
                    self.stats.replies += 1;
                }
            }
            Input::EchoSendFailed { wan, probe } => {
                if let Some(s) = self.wans.get_mut(wan) {
                    s.prober.on_send_failed(probe);
                }
            }
            Input::FallbackResult { wan, result } => {
                if let Some(s) = self.wans.get_mut(wan) {
                    s.fallback = result;
                    s.fallback_running = false;
                }
            }
            Input::WriteDone { wan, outcome, kind } => {
                if let Some(s) = self.wans.get_mut(wan) {
                    s.writing = false;
                    s.ctl.on_write_result(now, outcome, kind);
                    Self::drain_events(s, now);
                    if self.stopping.is_none() {
                        Self::start_write(&mut self.outputs, s, wan, self.dry_run, now);
                    }
                }
                if self.stopping.is_some() && self.wans.iter().all(|s| !s.writing) {
                    self.finish(now);
                }
            }
            Input::QueuesRead { wan, result } => {
                if let Some(s) = self.wans.get_mut(wan) {
                    s.reading = false;
                    match result {
                        Ok(items) => {
                            let q = &s.setup.config.queues;
                            s.load.on_reading(now, Reading::pick(&items, &q.download, &q.upload));
                            s.ctl.on_router_probe(now, Ok(()));
                        }
                        Err(kind) => {
                            s.load.on_failed(now);
                            s.ctl.on_router_probe(now, Err(kind));
                        }
                    }
                    Self::drain_events(s, now);
                }
            }
            Input::Shutdown => {
                if self.stopping.is_none() {
                    info!(target: "wanctl::daemon", "shutdown requested");
                    self.stopping = Some(now);
                    self.outputs.push_back(Output::Notify(Notify::Stopping));
                    if self.wans.iter().all(|s| !s.writing) {
                        self.finish(now);
                    }
                }
            }
            Input::Reload(setups) => self.reload(now, setups),
        }
    }

    /// Handles passed deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.exited {
            return;
        }
        if let Some(s) = self.stopping
            && now >= s + SHUTDOWN_GRACE
        {
            warn!(target: "wanctl::daemon", "router write still in flight after {SHUTDOWN_GRACE:?}; exiting without it");
            self.finish(now);
            return;
        }
        for s in &mut self.wans {
            if let Some(started) = s.fallback_started
                && now >= started + s.setup.config.ping_timeout * 3
            {
                s.fallback_started = None;
                if s.fallback_running {
                    s.fallback_running = false;
                    s.fallback = Fallback::NoConnectivity;
                }
            }
        }
        for (i, s) in self.wans.iter_mut().enumerate() {
            if !s.writing && self.stopping.is_none() {
                s.ctl.handle_timeout(now);
                Self::start_write(&mut self.outputs, s, i, self.dry_run, now);
            }
        }
    }

    fn finish(&mut self, _now: Instant) {
        for (wan, s) in self.wans.iter().enumerate() {
            self.outputs.push_back(Output::SaveState { wan, state: s.ctl.to_state(String::new()) });
        }
        let l = &self.stats.lateness;
        info!(
            target: "wanctl::daemon",
            "ticks={} missed={} late_p50_us={} late_p99_us={} late_max_us={} probes_sent={} replies={}",
            self.stats.ticks,
            self.stats.missed_ticks,
            l.quantile_us(0.5),
            l.quantile_us(0.99),
            l.max_us(),
            self.stats.probes_sent,
            self.stats.replies
        );
        info!(target: "wanctl::daemon", "daemon shutdown complete");
        self.outputs.push_back(Output::Exit(0));
        self.exited = true;
    }

    fn start_write(outputs: &mut VecDeque<Output>, s: &mut Slot, wan: usize, dry_run: bool, now: Instant) {
        while let Some(rates) = s.ctl.poll_write() {
            if dry_run {
                info!(
                    target: "wanctl::daemon",
                    "{}: dry run: would set DL={:.1}M UL={:.1}M",
                    s.setup.config.wan_name,
                    rates.download.as_mbps(),
                    rates.upload.as_mbps()
                );
                s.ctl.on_write_result(now, WriteOutcome::Applied, None);
                continue;
            }
            s.writing = true;
            outputs.push_back(Output::RouterWrite { wan, rates });
            break;
        }
    }

    fn on_tick(&mut self, now: Instant, missed: u64, late: Duration) {
        if self.stopping.is_some() {
            return;
        }
        self.stats.ticks += 1;
        self.stats.missed_ticks += missed;
        self.stats.lateness.record(late);
        let mut failed = false;
        let mut router_only_trouble = true;
        for (i, s) in self.wans.iter_mut().enumerate() {
            s.ctl.set_load(s.load.view(now));
            // Both queues (nearly) empty per the counters: idle (probe back-off) and, if no
            // reflector answers either, a stall rather than congestion.
            let idle = s.ctl.load_shares().map(|(d, u)| d.share < IDLE_SHARE && u.share < IDLE_SHARE);
            s.prober.set_traffic(now, idle);
            let stalled = s.prober.is_stalled(now);
            if stalled != s.stalled {
                s.stalled = stalled;
                let wan = &s.setup.config.wan_name;
                if stalled {
                    warn!(target: "wanctl::prober", "{wan}: no reflector answers and the queues carry no traffic: the path or the probe socket stalled; holding the rates");
                } else {
                    info!(target: "wanctl::prober", "{wan}: reflectors answer again after a stall");
                }
            }
            let sample = if stalled {
                crate::engine::wan::Sample::Stalled
            } else {
                s.prober.take_sample(now, s.fallback)
            };
            let lost = matches!(sample, crate::engine::wan::Sample::Lost(_));
            let report = s.ctl.on_tick(now, sample);
            s.last = Some(report);
            s.cycles += 1;
            if lost {
                s.ping_failures += 1;
            }
            if report.outcome == Outcome::Failed {
                failed = true;
            }
            if matches!(report.outcome, Outcome::Adjusted) {
                s.fallback = Fallback::Pending;
                s.icmp_log.reset();
            }
            let enabled = s.setup.config.monitoring.fallback.enabled;
            if !stalled && s.prober.is_silent(now) && !s.fallback_running && s.fallback_started.is_none() {
                if enabled {
                    s.fallback_running = true;
                    s.fallback_started = Some(now);
                    self.outputs.push_back(Output::StartFallback { wan: i });
                } else {
                    s.fallback = Fallback::NoConnectivity;
                }
            }
            if s.fallback_started.is_some_and(|t| now >= t + s.setup.config.ping_timeout)
                && !s.fallback_running
            {
                // Re-run the checks once per probe timeout while ICMP stays silent.
                s.fallback_started = None;
            }
            Self::drain_events(s, now);
            if !s.writing {
                Self::start_write(&mut self.outputs, s, i, self.dry_run, now);
            }
            // A write goes before a read; reads pause while the router is unreachable (the
            // write retries probe it then). A dry run never talks to the router.
            if !self.dry_run
                && !s.writing
                && !s.reading
                && s.ctl.connectivity().is_reachable()
                && s.load.is_due(now)
            {
                s.reading = true;
                s.load.on_started(now);
                self.outputs.push_back(Output::ReadQueues { wan: i });
            }
            s.prober.on_tick(now);
            // The pool's housekeeping (replacements, quorum) ran in on_tick: log it now, not
            // a tick later (a shutdown in between would lose the line).
            Self::drain_events(s, now);
            while let Some(probe) = s.prober.poll_send(now) {
                self.stats.probes_sent += 1;
                self.outputs.push_back(Output::SendEcho { wan: i, probe });
            }
            let c: &Connectivity = s.ctl.connectivity();
            if c.is_reachable() || c.last_failure().is_some_and(|(k, _)| k == FailureKind::AuthFailure) {
                router_only_trouble = false;
            }
            let due = s.saved_at.is_none_or(|t| now.saturating_since(t) >= SAVE_INTERVAL);
            if due {
                let state = s.ctl.to_state(String::new());
                if s.saved.as_ref().is_none_or(|old| !old.same_content(&state)) {
                    s.saved = Some(state.clone());
                    s.saved_at = Some(now);
                    self.outputs.push_back(Output::SaveState { wan: i, state });
                }
            }
        }
        self.account(now, failed, router_only_trouble);
        if now.saturating_since(self.last_summary) >= SUMMARY_INTERVAL {
            self.last_summary = now;
            self.log_summary();
        }
    }

    fn account(&mut self, now: Instant, failed: bool, router_only_trouble: bool) {
        if failed {
            let count_now =
                self.last_failure_counted.is_none_or(|t| now.saturating_since(t) >= Duration::from_secs(1));
            if count_now {
                self.consecutive_failures += 1;
                self.last_failure_counted = Some(now);
                warn!(target: "wanctl::daemon", "cycle failed ({}/{FAILURE_LIMIT})", self.consecutive_failures);
            }
            if self.consecutive_failures >= FAILURE_LIMIT && self.watchdog_enabled {
                self.watchdog_enabled = false;
                log::error!(
                    target: "wanctl::daemon",
                    "sustained failure: {} consecutive failed cycles; stopping watchdog so systemd restarts us",
                    self.consecutive_failures
                );
                self.outputs.push_back(Output::Notify(Notify::Status(
                    "Degraded - consecutive failures exceeded threshold".into(),
                )));
            }
        } else {
            if self.consecutive_failures > 0 {
                info!(target: "wanctl::daemon", "cycles succeed again after {} failed", self.consecutive_failures);
            }
            self.consecutive_failures = 0;
            self.last_failure_counted = None;
            if !self.ready {
                self.ready = true;
                self.outputs.push_back(Output::Notify(Notify::Ready));
                self.outputs.push_back(Output::Notify(Notify::Status("Running".into())));
            }
        }
        // v1.8: a router-only outage (not authentication) keeps the watchdog fed.
        let all_unreachable = self.wans.iter().all(|s| !s.ctl.connectivity().is_reachable());
        let feed = self.watchdog_enabled && (!failed || (all_unreachable && router_only_trouble));
        if feed && self.last_watchdog.is_none_or(|t| now.saturating_since(t) >= WATCHDOG_INTERVAL) {
            self.last_watchdog = Some(now);
            self.outputs.push_back(Output::Notify(Notify::Watchdog));
        }
    }

    fn drain_events(s: &mut Slot, now: Instant) {
        let wan = &s.setup.config.wan_name;
        while let Some(e) = s.prober.poll_event() {
            match e {
                PoolEvent::Replaced { old, new, why } => {
                    let why = match why {
                        Misbehaviour::Silent => "stopped answering",
                        Misbehaviour::Outlier => "RTT well above the others'",
                    };
                    match new {
                        Some(n) => {
                            info!(target: "wanctl::prober", "{wan}: reflector {old} {why}; replaced by {n}")
                        }
                        None => {
                            warn!(target: "wanctl::prober", "{wan}: reflector {old} {why}; no standby reflector left")
                        }
                    }
                }
                PoolEvent::Restored(addr) => {
                    info!(target: "wanctl::prober", "{wan}: reflector {addr} answers again; back in the pool")
                }
                PoolEvent::QuorumLost { healthy, needed } => warn!(
                    target: "wanctl::prober",
                    "{wan}: reflector quorum lost ({healthy} healthy, {needed} needed): holding the rates"
                ),
                PoolEvent::QuorumRegained => {
                    info!(target: "wanctl::prober", "{wan}: reflector quorum regained")
                }
            }
        }
        while let Some(e) = s.ctl.poll_event() {
            match e {
                WanEvent::DownloadTransition(t) => {
                    debug!(target: "wanctl::controller", "{wan}: download {}→{} ({t})", t.from, t.to)
                }
                WanEvent::UploadTransition(t) => {
                    debug!(target: "wanctl::controller", "{wan}: upload {}→{} ({t})", t.from, t.to)
                }
                WanEvent::BaselineOutOfBounds { candidate_ms } => {
                    debug!(target: "wanctl::controller", "{wan}: baseline candidate {candidate_ms:.2} ms outside bounds, ignored")
                }
                WanEvent::Spike { accel_ms, forced_red } => {
                    debug!(target: "wanctl::controller", "{wan}: RTT spike {accel_ms:.1} ms (forced RED: {forced_red})")
                }
                WanEvent::IcmpLost => {
                    if let Some(n) = s.icmp_log.allow(now) {
                        warn!(target: "wanctl::prober", "{wan}: all ICMP probes lost; running fallback checks{}", suppressed(n));
                    }
                }
                WanEvent::IcmpRecovered { after } => {
                    info!(target: "wanctl::prober", "{wan}: ICMP recovered after {:.1}s", after.as_secs_f64())
                }
                WanEvent::RouterFailed { kind, count } => {
                    if Connectivity::should_log_failure(count) && s.router_log.allow(now).is_some() {
                        warn!(target: "wanctl::router", "{wan}: router communication failed ({kind}, {count} consecutive)");
                    }
                }
                WanEvent::RouterReconnected(r) => {
                    s.router_log.reset();
                    info!(
                        target: "wanctl::router",
                        "{wan}: router reconnected after {:.1}s outage ({} failures)",
                        r.outage.as_secs_f64(),
                        r.failures
                    );
                }
                WanEvent::LoadSignal(true) => {
                    info!(target: "wanctl::load", "{wan}: queue counters available; load-aware control on")
                }
                WanEvent::LoadSignal(false) => {
                    warn!(target: "wanctl::load", "{wan}: queue counters stale or unavailable; RTT-only control until they are back")
                }
                WanEvent::WriteThrottled => {
                    debug!(target: "wanctl::writer", "{wan}: write budget exhausted; increases wait for a token")
                }
            }
        }
    }

    fn log_summary(&self) {
        for s in &self.wans {
            let c = &s.ctl;
            let st = c.writer().stats();
            info!(
                target: "wanctl::daemon",
                "{}: [{}/{}] baseline={:.1}ms load={:.1}ms DL={:.0}M UL={:.0}M writes={} failed={} probes={} replies={}",
                s.setup.config.wan_name,
                c.download().last_zone(),
                c.upload().last_zone(),
                c.filter().baseline_ms(),
                c.filter().load_ms(),
                c.download().rate().as_mbps(),
                c.upload().rate().as_mbps(),
                st.applied,
                st.failed,
                self.stats.probes_sent,
                self.stats.replies
            );
        }
    }

    /// The read-only view for health and metrics. `started` is when the process started;
    /// transport and router latency are the shell's to fill in.
    pub fn snapshot(&self, now: Instant, started: Instant) -> crate::engine::health::Snapshot {
        use crate::engine::health::{ReflectorSnapshot, Snapshot, WanSnapshot};
        let wans = self
            .wans
            .iter()
            .map(|s| {
                let c = &s.ctl;
                let conn = c.connectivity();
                let ws = c.writer().stats();
                let last = s.last;
                let ls = s.load.stats();
                let last_load = s.load.last();
                WanSnapshot {
                    quorum: s.prober.quorum(now),
                    load: crate::engine::health::LoadSnapshot {
                        status: s.load.status(now).as_str(),
                        law: if c.is_load_aware() { "load" } else { "rtt" },
                        download_mbps: last_load.map(|l| l.download.achieved.as_mbps()),
                        upload_mbps: last_load.map(|l| l.upload.achieved.as_mbps()),
                        reads: ls.reads,
                        failures: ls.failures,
                        resets: ls.resets,
                    },
                    name: s.setup.config.wan_name.clone(),
                    baseline_rtt_ms: c.filter().baseline_ms(),
                    load_rtt_ms: c.filter().load_ms(),
                    last_rtt_ms: last.and_then(|r| r.measured_ms),
                    download: (c.download().rate().as_mbps(), c.download().streak_state().as_str()),
                    upload: (c.upload().rate().as_mbps(), c.upload().streak_state().as_str()),
                    zone_codes: (
                        last.map_or(1, |r| r.download.zone.metrics_code()),
                        last.map_or(1, |r| r.upload.zone.metrics_code()),
                    ),
                    is_reachable: conn.is_reachable(),
                    router_failures: conn.consecutive_failures(),
                    last_failure_type: conn.last_failure().map(|(k, _)| k.as_str()),
                    last_failure_time: conn.last_failure().map(|(_, t)| t.as_secs_f64()),
                    outage_duration_seconds: conn.outage_duration(now).map(|d| d.as_secs_f64()),
                    transport: None,
                    router_updates: ws.applied,
                    router_write_failures: ws.failed,
                    rate_limit_events: ws.deferred,
                    ping_failures: s.ping_failures,
                    cycles: s.cycles,
                    reflectors: s
                        .prober
                        .stats()
                        .zip(s.prober.scores())
                        .map(|((addr, st), (_, score))| ReflectorSnapshot {
                            state: score.state.as_str(),
                            baseline_ms: score.base_ms,
                            offset_ms: score.offset_ms,
                            jitter_ms: score.jitter_ms,
                            host: addr.to_string(),
                            srtt_ms: st.srtt_ms,
                            last_rtt_ms: st.last_rtt_ms,
                            loss: if st.recent_loss > 0.0 || st.sent < 200 {
                                if st.sent > 0 { st.lost as f64 / st.sent as f64 } else { 0.0 }
                            } else {
                                st.recent_loss
                            },
                            sent: st.sent,
                            received: st.received,
                        })
                        .collect(),
                    router_latency: Default::default(),
                }
            })
            .collect();
        let l = &self.stats.lateness;
        Snapshot {
            uptime_seconds: now.saturating_since(started).as_secs_f64(),
            version: crate::VERSION,
            consecutive_failures: self.consecutive_failures,
            wans,
            pid: 0,
            tick_late_us: (l.quantile_us(0.5), l.quantile_us(0.99), l.max_us()),
            ticks: (self.stats.ticks, self.stats.missed_ticks),
            lateness: l.clone(),
        }
    }

    fn reload(&mut self, now: Instant, setups: Vec<WanSetup>) {
        let mut new_slots = Vec::with_capacity(setups.len());
        for (i, setup) in setups.into_iter().enumerate() {
            let old = self.wans.iter().position(|s| s.setup.config.wan_name == setup.config.wan_name);
            // The same per-WAN sequence seed as at start (issue 17: reload ignored it).
            let mut slot = Slot::new(setup, now, self.seq_seed.wrapping_add((i as u16) << 12));
            if let Some(o) = old {
                let state = self.wans[o].ctl.to_state(String::new());
                slot.ctl.restore(&state);
                slot.saved = self.wans[o].saved.take();
                slot.writing = self.wans[o].writing;
                slot.reading = self.wans[o].reading;
                if slot.reading {
                    // The outstanding read's answer still comes back to this slot.
                    slot.load.on_started(now);
                }
            }
            new_slots.push(slot);
        }
        info!(target: "wanctl::daemon", "configuration reloaded ({} WANs)", new_slots.len());
        self.wans = new_slots;
    }
}

fn suppressed(n: u64) -> String {
    if n == 0 { String::new() } else { format!(" ({n} similar suppressed)") }
}
