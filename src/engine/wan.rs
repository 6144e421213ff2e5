//! One WAN's control cycle (ALGORITHM.md §3): measurement → EWMAs → spike check →
//! download and upload state machines → write policy, plus ICMP-failure handling (§5) and
//! router connectivity (§12). Pure: every call takes `now`; I/O results come in as
//! arguments and the rates to write come out.
//!
//! Calling protocol, per WAN:
//! 1. every tick: [`WanController::on_tick`] with what the prober saw since the last tick;
//! 2. then [`WanController::poll_write`]: `Some(rates)` means "send this to the router now";
//!    at most one write is in flight;
//! 3. when the write ends: [`WanController::on_write_result`], then `poll_write` again (a
//!    newer decision may be waiting; stale ones are never queued);
//! 4. [`WanController::poll_timeout`] gives the next instant at which `poll_write` may have
//!    something without a new tick (retry back-off);
//! 5. drain [`WanController::poll_event`] for log-worthy events.

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::{AutorateConfig, FallbackMode};
use crate::engine::baseline::{BaselineUpdate, RttFilter};
use crate::engine::connectivity::{Connectivity, FailureKind, Reconnected};
use crate::engine::controller::{
    Adjustment, Hints, MAX_CUT, QueueController, Transition, Zone, ZoneThresholds,
};
use crate::engine::load::LoadSample;
use crate::engine::writer::{Rates, Urgency, WriteOutcome, WritePolicy};
use crate::time::Instant;
use crate::units::Bps;

/// How many consecutive probe doublings an increase may grow by (quantum × 2^n).
const MAX_PROBE_DOUBLINGS: u32 = 4;
/// The queue-growth slope is measured over samples sent at least this far apart.
const SLOPE_WINDOW: Duration = Duration::from_millis(50);
/// Least time between a cut and the next probe near a known capacity.
const NEAR_PROBE_PATIENCE: Duration = Duration::from_secs(2);
/// Probes near a known capacity draw on their own allowance: this many at once (right after
/// the capacity dropped, when it is most likely to come back)...
const PROBE_BURST: f64 = 3.0;
/// ...refilled at this share of the write budget, counted in writes (a failed probe costs
/// two: up and back). 0.8 keeps a steady saturated line at or under the budget on average
/// even with the initial bucket spent (e.g. 8 writes a minute at the default 10, plus the
/// burst), leaving the rest for cuts when the capacity falls.
const PROBE_SHARE: f64 = 0.8;
/// A direction whose achieved rate is below this share of its shaper rate, while loaded,
/// is limited by the line, not by the shaper: its achieved rate is the line's capacity.
const CAPACITY_LIMITED: f64 = 0.95;
/// Probe size near a known capacity, as a fraction of it.
const NEAR_PROBE: f64 = 0.1;
/// GREEN this long after an increase confirms it.
const PROBE_CONFIRM: Duration = Duration::from_secs(1);
/// How long a capacity estimate guides probing.
const HINT_LIFETIME: Duration = Duration::from_secs(60);
/// Growth (seconds of queue per second) below which no capacity estimate is made:
/// jitter alone gives slopes of a few hundredths.
const MIN_GROWTH: f64 = 0.04;
/// How fast a backlog should drain after a cut: the cut goes this much further below the
/// estimated capacity per second of backlog (bounded by `MAX_CUT`).
const DRAIN_TIME: f64 = 1.0;
/// The load counts as draining when it falls at a pace that would empty the backlog within
/// this horizon (and by at least `MIN_DRAIN_MS` per cycle).
const DRAIN_HORIZON: f64 = 2.0;
/// See `DRAIN_HORIZON`.
const MIN_DRAIN_MS: f64 = 0.3;
/// Recent measurements kept for the slope.
const HISTORY: usize = 8;

/// What the prober saw for this WAN since the previous tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    /// An RTT (ms): the reply, or the median of the replies, that arrived. The send time
    /// is taken as `now - rtt`.
    Rtt(f64),
    /// An RTT with the time its echo request was sent (the prober knows it exactly; it
    /// matters for the queue-growth estimate, which must pair a sample with the rate that
    /// was in force when it crossed the bottleneck).
    Timed {
        /// Round-trip time (ms).
        rtt_ms: f64,
        /// When the request left.
        sent_at: Instant,
    },
    /// Nothing arrived, but probes are outstanding and not yet timed out: no new
    /// information (a slow reflector costs a late sample, never a decision on stale data).
    Waiting,
    /// Every outstanding probe timed out; `Fallback` is the latest connectivity check result.
    Lost(Fallback),
    /// No reflector answers while the queue counters show no traffic: the path or the
    /// probe socket stalled; nothing is known about queues, so everything holds (counts as
    /// success, no fallback checks).
    Stalled,
}

/// Result of the ICMP-failure fallback checks (gateway ping, TCP handshakes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fallback {
    /// Checks not finished yet.
    Pending,
    /// A TCP handshake RTT (ms) is available: used as the measurement.
    TcpRtt(f64),
    /// The path works (gateway answered) but no RTT is available.
    Connected,
    /// Neither ICMP nor TCP nor the gateway answered (or fallback is disabled).
    NoConnectivity,
}

/// What one tick did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// The controllers ran.
    Adjusted,
    /// No new measurement: nothing changed.
    Waiting,
    /// ICMP lost, fallback says freeze: nothing changed (counts as success).
    Frozen,
    /// ICMP lost beyond the graceful allowance, or total connectivity loss.
    Failed,
}

/// Per-tick figures for health, metrics and history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TickReport {
    /// What happened.
    pub outcome: Outcome,
    /// The measurement used (ms), if the controllers ran.
    pub measured_ms: Option<f64>,
    /// Download zone and rate after the tick.
    pub download: Adjustment,
    /// Upload zone and rate after the tick.
    pub upload: Adjustment,
}

/// The load-aware law's settings (`continuous_monitoring.load_control`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct LoadLaw {
    enabled: bool,
    loaded_ratio: f64,
    saturated_ratio: f64,
}

/// One direction's load as the law sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DirectionShare {
    /// Achieved rate over the last counter interval.
    pub achieved: Bps,
    /// Achieved rate / the shaper rate in force during the interval.
    pub share: f64,
}

/// Log-worthy events, drained with [`WanController::poll_event`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WanEvent {
    /// Download zone changed.
    DownloadTransition(Transition),
    /// Upload zone changed.
    UploadTransition(Transition),
    /// A baseline candidate outside the bounds was discarded.
    BaselineOutOfBounds {
        /// The rejected candidate (ms).
        candidate_ms: f64,
    },
    /// The load jumped by more than `accel_threshold_ms` in one cycle.
    Spike {
        /// The jump (ms).
        accel_ms: f64,
        /// Whether it forced a RED cycle.
        forced_red: bool,
    },
    /// Every probe was lost; fallback checks take over.
    IcmpLost,
    /// ICMP answered again after a loss period.
    IcmpRecovered {
        /// How long ICMP was unavailable.
        after: Duration,
    },
    /// A router write failed.
    RouterFailed {
        /// Classified cause.
        kind: FailureKind,
        /// Consecutive failures so far.
        count: u32,
    },
    /// The router answered again.
    RouterReconnected(Reconnected),
    /// An increase was held back by the write budget (first of an episode only).
    WriteThrottled,
    /// The queue counters became usable (`true`) or stale (`false`, the RTT-only law
    /// runs until they are back).
    LoadSignal(bool),
}

/// One WAN's controller.
#[derive(Debug, Clone)]
pub struct WanController {
    filter: RttFilter,
    download: QueueController,
    upload: QueueController,
    thresholds: ZoneThresholds,
    /// The upload's thresholds (upstream per-direction keys; else the global ones).
    ul_thresholds: ZoneThresholds,
    accel_threshold_ms: f64,
    /// `accel_confirm_cycles`: consecutive spike cycles before a spike forces RED.
    accel_confirm_cycles: u32,
    spike_streak: u32,
    fallback_mode: FallbackMode,
    max_fallback_cycles: u32,
    ping_timeout: Duration,
    writer: WritePolicy,
    connectivity: Connectivity,
    last_sample_at: Option<Instant>,
    icmp_lost_since: Option<Instant>,
    probe_doublings: u32,
    pending_write: Option<Rates>,
    throttled: bool,
    recent: [(Instant, f64); HISTORY],
    /// Rates the router confirmed, newest last, with when they took effect.
    applied_log: [(Instant, Rates); HISTORY],
    applied_log_len: usize,
    last_cut_at: Option<Instant>,
    capacity_hint: Option<(Bps, Instant)>,
    /// An increase not yet confirmed by a second of GREEN: the rates before it and when
    /// it took effect. If ICMP goes silent before the confirmation, the probe is undone
    /// (freezing a probe that overshot would hold the link congested for the whole outage).
    unconfirmed: Option<(Rates, Instant)>,
    recent_len: usize,
    recent_head: usize,
    events: VecDeque<WanEvent>,
    last_report: TickReport,
    law: LoadLaw,
    /// The latest fresh queue-counter sample (`None`: the RTT-only law runs).
    load: Option<LoadSample>,
    load_was_available: bool,
    /// Allowance for probes near a known capacity (see `PROBE_BURST`), and when it was
    /// last brought up to date.
    probe_credit: (f64, Instant),
}

impl WanController {
    /// A controller at the ceilings with both EWMAs at `baseline_rtt_initial`.
    pub fn new(cfg: &AutorateConfig, now: Instant) -> WanController {
        let m = &cfg.monitoring;
        let t = &m.thresholds;
        let download =
            QueueController::new(m.download.clone()).with_hysteresis(t.dwell_cycles, t.deadband_ms);
        let upload = QueueController::new(m.upload.clone()).with_hysteresis(t.dwell_cycles, t.deadband_ms);
        let idle = |q: &QueueController| Adjustment { zone: Zone::Green, rate: q.rate(), transition: None };
        let last_report = TickReport {
            outcome: Outcome::Waiting,
            measured_ms: None,
            download: idle(&download),
            upload: idle(&upload),
        };
        WanController {
            filter: RttFilter::new(m.baseline_rtt_initial_ms, t),
            download,
            upload,
            thresholds: ZoneThresholds {
                target_ms: t.target_bloat_ms,
                warn_ms: t.warn_bloat_ms,
                hard_red_ms: t.hard_red_bloat_ms,
            },
            ul_thresholds: ZoneThresholds {
                target_ms: t.upload_target_bloat_ms.unwrap_or(t.target_bloat_ms),
                warn_ms: t.upload_warn_bloat_ms.unwrap_or(t.warn_bloat_ms),
                hard_red_ms: t.hard_red_bloat_ms,
            },
            accel_threshold_ms: t.accel_threshold_ms,
            accel_confirm_cycles: t.accel_confirm_cycles.max(1),
            spike_streak: 0,
            fallback_mode: m.fallback.mode,
            max_fallback_cycles: m.fallback.max_fallback_cycles,
            ping_timeout: cfg.ping_timeout.max(Duration::from_millis(50)),
            writer: WritePolicy::with_budget(now, m.write_budget_per_min),
            connectivity: Connectivity::new(),
            last_sample_at: None,
            icmp_lost_since: None,
            probe_doublings: 0,
            pending_write: None,
            throttled: false,
            recent: [(Instant::ZERO, 0.0); HISTORY],
            applied_log: [(Instant::ZERO, Rates { download: m.download.ceiling, upload: m.upload.ceiling });
                HISTORY],
            applied_log_len: 0,
            last_cut_at: None,
            capacity_hint: None,
            unconfirmed: None,
            recent_len: 0,
            recent_head: 0,
            events: VecDeque::with_capacity(16),
            last_report,
            law: LoadLaw {
                enabled: m.load.enabled,
                loaded_ratio: m.load.loaded_ratio,
                saturated_ratio: m.load.saturated_ratio,
            },
            load: None,
            load_was_available: false,
            probe_credit: (PROBE_BURST, now),
        }
    }

    /// The latest queue counters, if fresh (`engine::load`); call before every
    /// [`WanController::on_tick`]. `None` runs the RTT-only law.
    pub fn set_load(&mut self, load: Option<LoadSample>) {
        let load = load.filter(|_| self.law.enabled);
        let available = load.is_some();
        if available != self.load_was_available && self.law.enabled {
            self.events.push_back(WanEvent::LoadSignal(available));
        }
        self.load_was_available = available;
        self.load = load;
    }

    /// True while the load-aware law runs (counters fresh).
    pub fn is_load_aware(&self) -> bool {
        self.load.is_some()
    }

    /// Each direction's achieved rate and its share of the shaper rate in force during the
    /// last counter interval (the larger of the rates at its start and end), if fresh.
    pub fn load_shares(&self) -> Option<(DirectionShare, DirectionShare)> {
        let l = self.load?;
        let start = self.applied_at(l.at.saturating_sub(l.span))?;
        let end = self.applied_at(l.at)?;
        let share = |achieved: Bps, a: Bps, b: Bps| DirectionShare {
            achieved,
            share: achieved.0 as f64 / a.max(b).0.max(1) as f64,
        };
        Some((
            share(l.download.achieved, start.download, end.download),
            share(l.upload.achieved, start.upload, end.upload),
        ))
    }

    /// The RTT filters.
    pub fn filter(&self) -> &RttFilter {
        &self.filter
    }

    /// Mutable filters (state restore).
    pub fn filter_mut(&mut self) -> &mut RttFilter {
        &mut self.filter
    }

    /// The download controller.
    pub fn download(&self) -> &QueueController {
        &self.download
    }

    /// The upload controller.
    pub fn upload(&self) -> &QueueController {
        &self.upload
    }

    /// Mutable controllers (state restore): (download, upload).
    pub fn controllers_mut(&mut self) -> (&mut QueueController, &mut QueueController) {
        (&mut self.download, &mut self.upload)
    }

    /// The write policy (applied rates, budget, counters).
    pub fn writer(&self) -> &WritePolicy {
        &self.writer
    }

    /// Mutable write policy (state restore of `last_applied`).
    pub fn writer_mut(&mut self) -> &mut WritePolicy {
        &mut self.writer
    }

    /// Router reachability.
    pub fn connectivity(&self) -> &Connectivity {
        &self.connectivity
    }

    /// The last tick's report.
    pub fn last_report(&self) -> &TickReport {
        &self.last_report
    }

    /// The rates the controllers want now.
    pub fn desired(&self) -> Rates {
        Rates { download: self.download.rate(), upload: self.upload.rate() }
    }

    /// One control cycle.
    pub fn on_tick(&mut self, now: Instant, sample: Sample) -> TickReport {
        let mut sent_at = None;
        let measured = match sample {
            Sample::Rtt(_) | Sample::Timed { .. } => {
                if let Some(since) = self.icmp_lost_since.take() {
                    self.events.push_back(WanEvent::IcmpRecovered { after: now.saturating_since(since) });
                }
                match sample {
                    Sample::Timed { rtt_ms, sent_at: at } => {
                        sent_at = Some(at);
                        Some(rtt_ms)
                    }
                    Sample::Rtt(ms) => Some(ms),
                    _ => None,
                }
            }
            Sample::Waiting => None,
            Sample::Stalled => return self.finish(Outcome::Frozen),
            Sample::Lost(fallback) => {
                let since = *self.icmp_lost_since.get_or_insert_with(|| {
                    self.events.push_back(WanEvent::IcmpLost);
                    now
                });
                if let Some((before, _)) = self.unconfirmed.take() {
                    // Undo an unconfirmed probe before flying blind.
                    self.download.cap_rate(before.download);
                    self.upload.cap_rate(before.upload);
                    self.decide(now);
                }
                match self.on_icmp_lost(now, since, fallback) {
                    Ok(Some(ms)) => Some(ms),
                    Ok(None) => return self.finish(Outcome::Frozen),
                    Err(()) => return self.finish(Outcome::Failed),
                }
            }
        };
        let Some(measured) = measured else {
            return self.finish(Outcome::Waiting);
        };
        let dt = self.last_sample_at.map_or(crate::config::NOMINAL_CYCLE, |t| now.saturating_since(t));
        self.last_sample_at = Some(now);
        let (baseline, accel) = self.filter.on_sample(measured, dt);
        if let BaselineUpdate::OutOfBounds(candidate_ms) = baseline {
            self.events.push_back(WanEvent::BaselineOutOfBounds { candidate_ms });
        }
        let delta = self.filter.delta_ms();
        // `accel_confirm_cycles` (upstream 1.24): a spike counts once it has lasted that many
        // consecutive cycles (1, the default: at once).
        self.spike_streak =
            if accel > self.accel_threshold_ms { self.spike_streak.saturating_add(1) } else { 0 };
        let spike = self.spike_streak >= self.accel_confirm_cycles;
        if spike {
            let forced_red = delta > self.thresholds.target_ms;
            self.events.push_back(WanEvent::Spike { accel_ms: accel, forced_red });
        }
        // The sample left `measured` ms ago: it shows the queue as it was then, which grew
        // at the rate in force then.
        let sent_at = sent_at.unwrap_or_else(|| {
            now.saturating_sub(Duration::from_micros((measured.max(0.0) * 1000.0) as u64))
        });
        let growth = self.record_and_slope(sent_at, measured);
        let draining = -accel >= (delta.max(0.0) * dt.as_secs_f64() / DRAIN_HORIZON).max(MIN_DRAIN_MS);
        // Which direction's queue is growing? RTT cannot tell; the counters can exonerate
        // one: a direction carrying less than `loaded_ratio` of its shaper rate is not cut
        // for the other's congestion. With neither loaded, the download is the suspect (a
        // line limited below the shaper delivers little, yet its queue is the one growing).
        let shares = self.load_shares();
        let (dl_suspect, ul_suspect) = match shares {
            Some((d, u)) => {
                let ul = u.share >= self.law.loaded_ratio;
                (d.share >= self.law.loaded_ratio || !ul, ul)
            }
            None => (true, true),
        };
        let rates_then = self.applied_at(sent_at);
        let rate_then = if dl_suspect || !ul_suspect {
            rates_then.map(|r| r.download)
        } else {
            rates_then.map(|r| r.upload)
        };
        let mut capacity = growth.zip(rate_then).map(|(g, r)| Bps((r.0 as f64 / (1.0 + g)) as u64));
        // A loaded download delivering clearly less than its shaper rate is limited by the
        // line: what it delivers is the line's capacity (cake-autorate's achieved-rate cut).
        if let (Some((d, _)), true) = (shares, dl_suspect)
            && delta > self.thresholds.target_ms
            && d.share >= self.law.loaded_ratio
            && d.share < CAPACITY_LIMITED
        {
            capacity = Some(capacity.map_or(d.achieved, |c| c.min(d.achieved)));
        }
        if let Some(c) = capacity {
            self.capacity_hint = Some((c, now));
        }
        // Cut below the estimated capacity by enough to drain the backlog in DRAIN_TIME. The
        // backlog now is what the sample saw plus what has grown since it was sent.
        let seen = (measured - self.filter.baseline_ms()).max(0.0) / 1000.0;
        let backlog_s = growth.map_or(if capacity.is_some() { seen } else { 0.0 }, |g| {
            seen + g * now.saturating_since(sent_at).as_secs_f64()
        });
        let cut_to = capacity.map(|c| c.scale((1.0 - backlog_s / DRAIN_TIME).max(MAX_CUT)));
        // Congestion right after an unconfirmed probe: the rate before the probe was fine,
        // so go back to it (one write, and it drains the probe's queue).
        let cut_to = match (cut_to, self.unconfirmed.map(|(before, _)| before.download)) {
            (Some(c), Some(before)) => Some(c.min(before)),
            (None, Some(before)) => Some(before),
            (c, None) => c,
        };
        // A sample sent before the last cut took effect cannot show that cut working:
        // cutting again on it would compound one congestion signal into several cuts (the
        // original's overshoot to the floor after a drop). Wait for fresh samples.
        // (Until two samples sent after it, a window apart, give a fresh growth estimate.)
        let awaiting_effect = self.last_cut_at.is_some_and(|t| sent_at < t + SLOPE_WINDOW);
        let hold = draining || awaiting_effect;
        let (dl_hints, ul_hints) = if shares.is_some() && ul_suspect && !dl_suspect {
            // Only the upload carries load: the estimate is the upload's, the download holds.
            (
                Hints { spike: false, draining: true, cut_to: None },
                Hints { spike: false, draining: hold, cut_to },
            )
        } else {
            // A growth estimate attributes the bloat to the download queue (its rate explains
            // it); the upload then holds instead of being cut for the download's queue, and
            // so it does when the counters show it idle.
            (
                Hints { spike, draining: hold || !dl_suspect, cut_to },
                Hints { spike: false, draining: hold || cut_to.is_some() || !ul_suspect, cut_to: None },
            )
        };
        let dl = self.download.adjust_4state_with(delta, self.thresholds, dl_hints);
        let ul = self.upload.adjust_3state_with(delta, self.ul_thresholds, ul_hints);
        if let Some(t) = dl.transition {
            self.events.push_back(WanEvent::DownloadTransition(t));
        }
        if let Some(t) = ul.transition {
            self.events.push_back(WanEvent::UploadTransition(t));
        }
        if dl.zone != Zone::Green || ul.zone != Zone::Green {
            self.probe_doublings = 0;
            self.unconfirmed = None;
        } else if self.unconfirmed.is_some_and(|(_, at)| now.saturating_since(at) >= PROBE_CONFIRM) {
            self.unconfirmed = None;
            // A probe past the estimate that stayed GREEN shows the capacity grew: forget
            // the estimate and climb freely again.
            if let (Some((c, _)), Some(applied)) = (self.capacity_hint, self.writer.applied())
                && applied.download > c.scale(1.02)
            {
                self.capacity_hint = None;
            }
        }
        self.last_report =
            TickReport { outcome: Outcome::Adjusted, measured_ms: Some(measured), download: dl, upload: ul };
        self.decide(now);
        self.last_report
    }

    /// The rates the router had at `t`, if known.
    fn applied_at(&self, t: Instant) -> Option<Rates> {
        let log = &self.applied_log[..self.applied_log_len];
        let before = log.iter().rev().find(|(at, _)| *at <= t).or(log.first());
        before.map(|&(_, r)| r).or(self.writer.applied())
    }

    fn log_applied(&mut self, now: Instant, rate: Rates) {
        if self.applied_log_len == HISTORY {
            self.applied_log.copy_within(1.., 0);
            self.applied_log_len -= 1;
        }
        self.applied_log[self.applied_log_len] = (now, rate);
        self.applied_log_len += 1;
    }

    /// Stores the measurement by send time and returns the queue growth (seconds of queue
    /// per second) between samples sent since the router's last rate change, at least
    /// `SLOPE_WINDOW` apart, if it is clearly positive.
    fn record_and_slope(&mut self, sent_at: Instant, measured: f64) -> Option<f64> {
        self.recent[self.recent_head] = (sent_at, measured);
        self.recent_head = (self.recent_head + 1) % HISTORY;
        self.recent_len = (self.recent_len + 1).min(HISTORY);
        let changed_at = self.applied_log[..self.applied_log_len].last().map(|&(t, _)| t);
        let candidates = (1..self.recent_len)
            .map(|back| self.recent[(self.recent_head + HISTORY - 1 - back) % HISTORY])
            .take_while(|(t, _)| changed_at.is_none_or(|c| *t >= c))
            .filter(|(t, _)| sent_at.saturating_since(*t) >= SLOPE_WINDOW);
        // The shortest span reacts first to a sudden drop; the longest (up to HISTORY
        // samples) averages out jitter on a slow overshoot. Take the larger growth.
        let mut growth: Option<f64> = None;
        for (t, v) in candidates {
            let g = (measured - v) / 1000.0 / sent_at.saturating_since(t).as_secs_f64();
            growth = Some(growth.map_or(g, |x: f64| x.max(g)));
        }
        growth.filter(|&g| g >= MIN_GROWTH)
    }

    fn finish(&mut self, outcome: Outcome) -> TickReport {
        self.last_report.outcome = outcome;
        self.last_report.measured_ms = None;
        self.last_report.download.transition = None;
        self.last_report.upload.transition = None;
        self.last_report
    }

    /// ALGORITHM.md §5 with "cycles" measured in probe timeouts: the original's lost cycle
    /// lasted at least one ping timeout, ours are 50 ms, so counting ticks would give up
    /// twenty times sooner. `Ok(Some)` = substitute measurement, `Ok(None)` = freeze.
    fn on_icmp_lost(&mut self, now: Instant, since: Instant, fallback: Fallback) -> Result<Option<f64>, ()> {
        let period = (now.saturating_since(since).as_micros() / self.ping_timeout.as_micros()) as u32 + 1;
        match fallback {
            Fallback::TcpRtt(ms) => Ok(Some(ms)),
            Fallback::NoConnectivity => Err(()),
            Fallback::Pending => Ok(None),
            Fallback::Connected => match self.fallback_mode {
                FallbackMode::Freeze => Ok(None),
                FallbackMode::UseLastRtt => Ok(Some(self.filter.load_ms())),
                FallbackMode::GracefulDegradation if period == 1 => Ok(Some(self.filter.load_ms())),
                FallbackMode::GracefulDegradation if period <= self.max_fallback_cycles => Ok(None),
                FallbackMode::GracefulDegradation => Err(()),
            },
        }
    }

    /// Brings the near-capacity probe allowance up to `now` and returns it.
    fn refresh_probe_credit(&mut self, now: Instant) -> f64 {
        let (credit, at) = self.probe_credit;
        let per_s = self.writer.budget_per_min() * PROBE_SHARE / 2.0 / 60.0;
        let credit = (credit + now.saturating_since(at).as_secs_f64() * per_s).min(PROBE_BURST);
        self.probe_credit = (credit, now);
        credit
    }

    fn urgency(&self) -> Urgency {
        let worst = self.last_report.download.zone.max(self.last_report.upload.zone);
        match worst {
            Zone::Green => Urgency::Calm,
            Zone::Yellow => Urgency::Warning,
            Zone::SoftRed | Zone::Red => Urgency::Congested,
        }
    }

    /// Runs the write policy on the current desired rates; caps the controllers while an
    /// increase is held back so the eventual write is a bounded probe, not a jump.
    fn decide(&mut self, now: Instant) {
        if self.pending_write.is_some() {
            return;
        }
        self.writer.refresh(now);
        let mut desired = self.desired();
        let mut floor = 1.0;
        let mut near_hint_probe = false;
        if let Some(reference) = self.writer.in_flight().or(self.writer.applied())
            && !desired.cuts_from(reference)
            && desired != reference
        {
            // Never raise a limit blind: while every probe is lost (the original's
            // "use last RTT" and freeze modes), only cuts may be written.
            if self.icmp_lost_since.is_some() {
                self.download.cap_rate(reference.download);
                self.upload.cap_rate(reference.upload);
                return;
            }
            // The load-aware law raises only a saturated direction, and only while both are
            // GREEN (the original's state floors, which raise the rate in YELLOW, do not
            // apply): an idle direction is never raised blind.
            if let Some((d, u)) = self.load_shares() {
                let green = self.last_report.download.zone == Zone::Green
                    && self.last_report.upload.zone == Zone::Green;
                if !(green && d.share >= self.law.saturated_ratio) {
                    self.download.cap_rate(reference.download);
                }
                if !(green && u.share >= self.law.saturated_ratio) {
                    self.upload.cap_rate(reference.upload);
                }
                if self.desired() == reference {
                    return;
                }
            }
            // Probing: a quantum of `green_required` steps above the router's rate, doubling
            // with each successful probe; but near a recent capacity estimate, one quantum
            // only, and below it, straight up to just under it.
            let hint = self.capacity_hint.filter(|&(_, at)| now.saturating_since(at) <= HINT_LIFETIME);
            // "Near" includes just under 95 % of the estimate by less than a probe quantum:
            // climbing that sliver would cost a write for nothing measurable.
            let dl_step = self
                .download
                .limits()
                .step_up
                .0
                .saturating_mul(u64::from(self.download.limits().green_required.max(1)));
            let mut near_hint = self.desired().download > reference.download
                && hint.is_some_and(|(c, _)| {
                    reference.download.0.saturating_add(dl_step) >= c.scale(0.95).0
                        && reference.download <= c.scale(1.1)
                });
            // Near a known capacity, probe not sooner than NEAR_PROBE_PATIENCE after the last
            // cut and only with the probe allowance: about one
            // probe (up, and back if it fails) per patience, which stretches from
            // NEAR_PROBE_MIN_PATIENCE with a full bucket to 2.5 token intervals at the
            // reserve, so steady probing stays under the budget. Until then the download
            // stays at the router's rate.
            let since_cut = self.last_cut_at.map_or(Duration::MAX, |t| now.saturating_since(t));
            let credit = self.refresh_probe_credit(now);
            if near_hint && (since_cut < NEAR_PROBE_PATIENCE || credit < 1.0) {
                // A probe past the estimate is being confirmed (GREEN for PROBE_CONFIRM
                // clears the estimate): the controller climbs its next quantum meanwhile,
                // unwritten, so the increase goes out the tick the estimate is cleared
                // instead of a climb later (issue 11: recovery after a step).
                if self.unconfirmed.is_some() && hint.is_some_and(|(c, _)| reference.download > c.scale(1.02))
                {
                    let k = 1u64 << self.probe_doublings.min(MAX_PROBE_DOUBLINGS);
                    let ahead = Bps(reference.download.0.saturating_add(dl_step.saturating_mul(k)))
                        .min(self.download.limits().ceiling);
                    self.download.cap_rate(ahead);
                    self.upload.cap_rate(reference.upload);
                    return;
                }
                self.download.cap_rate(reference.download);
                near_hint = false;
                if self.desired() == reference {
                    return;
                }
            }
            // Every increase may borrow to the debt cap, so none is held longer than one
            // token interval (engine::writer, bound 1); probes near a known capacity are
            // paced by their own allowance instead, which keeps a steady line under the
            // budget.
            floor = self.writer.recovery_floor();
            near_hint_probe = near_hint;
            let k = if near_hint { 1 } else { 1u64 << self.probe_doublings.min(MAX_PROBE_DOUBLINGS) };
            let quantum = |q: &QueueController| {
                let l = q.limits();
                Bps(l.step_up.0.saturating_mul(u64::from(l.green_required.max(1))).saturating_mul(k))
            };
            let mut dl_quantum = quantum(&self.download);
            if let Some((c, _)) = hint.filter(|_| near_hint) {
                dl_quantum = dl_quantum.min(c.scale(NEAR_PROBE)).max(self.download.limits().step_up);
            }
            let mut cap_dl = Bps(reference.download.0.saturating_add(dl_quantum.0));
            if let Some((c, _)) = hint
                && reference.download < c.scale(0.95)
            {
                cap_dl = c.scale(0.95);
            }
            let cap_dl = cap_dl.max(reference.download).min(self.download.limits().ceiling);
            let cap_ul = Bps(reference.upload.0.saturating_add(quantum(&self.upload).0))
                .max(reference.upload)
                .min(self.upload.limits().ceiling);
            self.download.cap_rate(cap_dl);
            self.upload.cap_rate(cap_ul);
            desired = self.desired();
            // Write an increase only once a direction has climbed its whole probe quantum:
            // a token buys one measured step, not a sliver of one.
            let dl_ready = desired.download > reference.download && desired.download >= cap_dl;
            let ul_ready = desired.upload > reference.upload && desired.upload >= cap_ul;
            if !dl_ready && !ul_ready {
                return;
            }
            // A direction that has not climbed its whole step stays where it is: no
            // sliver increases riding along on the other direction's write.
            if !dl_ready {
                self.download.cap_rate(reference.download);
            }
            if !ul_ready {
                self.upload.cap_rate(reference.upload);
            }
            desired = self.desired();
        }
        let was_increase = self.writer.is_holding_increase(desired);
        let near_probe = near_hint_probe;
        match self.writer.decide_with_floor(now, desired, self.urgency(), floor) {
            Some(rates) => {
                if was_increase {
                    self.probe_doublings = self.probe_doublings.saturating_add(1);
                    if near_probe {
                        self.probe_credit.0 -= 1.0;
                    }
                }
                self.throttled = false;
                self.pending_write = Some(rates);
            }
            None if was_increase => {
                if !self.throttled && self.writer.in_flight().is_none() && self.writer.tokens() < 1.0 {
                    self.throttled = true;
                    self.events.push_back(WanEvent::WriteThrottled);
                }
                // An increase the writer holds back is not believed in: the controller stays
                // at the router's rate (health, state and history show what the router has)
                // and climbs its quantum again when asked next. The hold itself is bounded
                // (engine::writer, bound 1).
                if let Some(reference) = self.writer.in_flight().or(self.writer.applied()) {
                    self.download.cap_rate(reference.download);
                    self.upload.cap_rate(reference.upload);
                }
            }
            None => {}
        }
    }

    /// The rates to send to the router now, if any. Each `Some` must be followed by
    /// exactly one [`WanController::on_write_result`].
    pub fn poll_write(&mut self) -> Option<Rates> {
        self.pending_write.take()
    }

    /// How the last write ended; `kind` classifies a failure.
    pub fn on_write_result(&mut self, now: Instant, outcome: WriteOutcome, kind: Option<FailureKind>) {
        let written = self.writer.in_flight();
        let previous = self.writer.applied();
        self.writer.on_result(now, outcome);
        if let (WriteOutcome::Applied, Some(r)) = (outcome, written) {
            let before = self.applied_at(now);
            if before.is_some_and(|b| r.cuts_from(b)) {
                self.last_cut_at = Some(now);
                self.unconfirmed = None;
            } else if let Some(p) = previous.filter(|p| *p != r && !r.cuts_from(*p)) {
                self.unconfirmed = Some((p, now));
            }
            self.log_applied(now, r);
        }
        match outcome {
            WriteOutcome::Applied | WriteOutcome::Rejected => {
                if let Some(r) = self.connectivity.record_success(now) {
                    self.events.push_back(WanEvent::RouterReconnected(r));
                }
            }
            WriteOutcome::NotSent | WriteOutcome::Uncertain => {
                let kind = kind.unwrap_or(FailureKind::Unknown);
                let count = self.connectivity.record_failure(now, kind);
                self.events.push_back(WanEvent::RouterFailed { kind, count });
            }
        }
        self.decide(now);
    }

    /// Reports a router exchange that was not a rate write (a reachability probe).
    pub fn on_router_probe(&mut self, now: Instant, ok: Result<(), FailureKind>) {
        match ok {
            Ok(()) => {
                if let Some(r) = self.connectivity.record_success(now) {
                    self.events.push_back(WanEvent::RouterReconnected(r));
                }
            }
            Err(kind) => {
                let count = self.connectivity.record_failure(now, kind);
                self.events.push_back(WanEvent::RouterFailed { kind, count });
            }
        }
    }

    /// The next instant at which a retry may be due without a tick.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        if self.pending_write.is_some() || self.writer.applied() == Some(self.desired()) {
            return None;
        }
        self.writer.next_deadline(now)
    }

    /// A deadline from `poll_timeout` passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.decide(now);
    }

    /// The next log-worthy event.
    pub fn poll_event(&mut self) -> Option<WanEvent> {
        self.events.pop_front()
    }
}

impl WanController {
    /// The persisted view (INTERFACES.md §6); `timestamp` is the naive local time string.
    pub fn to_state(&self, timestamp: String) -> crate::engine::state::StateFile {
        use crate::engine::state::{Congestion, DirectionState, EwmaState, LastApplied, StateFile};
        let dir = |q: &QueueController| DirectionState {
            green_streak: q.green_streak,
            soft_red_streak: q.soft_red_streak,
            red_streak: q.red_streak,
            current_rate: q.rate().0,
        };
        let applied = self.writer.applied();
        StateFile {
            download: Some(dir(&self.download)),
            upload: Some(dir(&self.upload)),
            ewma: Some(EwmaState {
                baseline_rtt: self.filter.baseline_ms(),
                load_rtt: self.filter.load_ms(),
            }),
            last_applied: LastApplied {
                dl_rate: applied.map(|r| r.download.0),
                ul_rate: applied.map(|r| r.upload.0),
            },
            congestion: Some(Congestion {
                dl_state: self.last_report.download.zone.as_str().to_string(),
                ul_state: self.last_report.upload.zone.as_str().to_string(),
            }),
            timestamp,
        }
    }

    /// Restores a persisted state; missing sections keep their defaults. Rates are clamped
    /// to the configured limits (see `QueueController::restore`).
    pub fn restore(&mut self, s: &crate::engine::state::StateFile) {
        if let Some(d) = s.download {
            self.download.restore(Bps(d.current_rate), d.green_streak, d.soft_red_streak, d.red_streak);
        }
        if let Some(u) = s.upload {
            self.upload.restore(Bps(u.current_rate), u.green_streak, u.soft_red_streak, u.red_streak);
        }
        if let Some(e) = s.ewma
            && let Some(bad) = self.filter.restore(e.baseline_rtt, e.load_rtt)
        {
            log::warn!(
                target: "wanctl::state",
                "restored baseline RTT {bad} ms is outside baseline_rtt_bounds; starting from {} ms",
                self.filter.baseline_ms()
            );
        }
        if let (Some(dl), Some(ul)) = (s.last_applied.dl_rate, s.last_applied.ul_rate) {
            self.writer.assume_applied(Rates { download: Bps(dl), upload: Bps(ul) });
        }
    }
}

/// The verdict of one round of fallback checks (ALGORITHM.md §5): a TCP handshake RTT
/// (median of the successes) wins; else a gateway answer means "connected"; else nothing.
pub fn fallback_verdict(tcp_rtts_ms: &mut [f64], gateway_answered: bool) -> Fallback {
    if !tcp_rtts_ms.is_empty() {
        tcp_rtts_ms.sort_by(f64::total_cmp);
        let n = tcp_rtts_ms.len();
        let median =
            if n % 2 == 1 { tcp_rtts_ms[n / 2] } else { (tcp_rtts_ms[n / 2 - 1] + tcp_rtts_ms[n / 2]) / 2.0 };
        Fallback::TcpRtt(median)
    } else if gateway_answered {
        Fallback::Connected
    } else {
        Fallback::NoConnectivity
    }
}
