//! The probe scheduler and the reflector pool: which reflectors are probed, the sequence →
//! send-time table, matching replies, timeouts, per-reflector baselines and scores,
//! rotation, quorum, idle back-off. Pure: the shell sends what [`Prober::poll_send`] yields
//! and feeds back what arrives.
//!
//! **Pool.** The configured hosts (`reflectors.pool`, else `ping_hosts`; IPv4 and IPv6
//! together) form a pool of which `active` (default 3) are probed every tick, starting from
//! a seeded random subset. Each reply is timed from its own send time (a late reply is
//! still a sample; a probe older than the timeout is lost), matched by sequence number.
//!
//! **Per-reflector baselines.** Reflectors sit at different distances, so each keeps its own
//! baseline (fast down, slow up, and up only while its delta is under the baseline update
//! threshold, as the controller's own baseline). A round's measurement is the median of the
//! active reflectors' deltas added to a reference RTT that moves slowly; a reflector joining
//! the active set first learns its baseline (`WARMUP` replies) and only then counts. So a
//! rotation never looks like bufferbloat.
//!
//! **Scores and rotation.** An active reflector is replaced (benched) when it stops
//! answering for `dead_after` or loses half its probes while others answer, or when its
//! smoothed delta sits `outlier_ms` above the median of the others' for `outlier_after`
//! (its path changed, or it deprioritises ICMP). A benched reflector is re-probed once
//! every `REPROBE` and returns to the standby pool after `BENCH` if it answers again.
//! Nothing is replaced when no active reflector answers: that is the path, not the
//! reflectors.
//!
//! **Quorum.** A measurement needs `quorum` healthy active reflectors (warmed up, not
//! dead); below it the prober gives no sample (the controller holds) and says so once.
//!
//! **Idle back-off.** While the queue counters show both directions idle for
//! `idle_after`, the active set is probed `idle_rate_hz` times a second instead of every
//! tick; the first tick after the counters show load probes at full rate again.

use core::net::IpAddr;
use std::collections::VecDeque;
use std::time::Duration;

use crate::engine::wan::{Fallback, Sample};
use crate::rng::Rng;
use crate::time::Instant;

/// Probes remembered per reflector (in flight at once): one per tick for the longest
/// timeout we allow (20 × 50 ms = 1 s; longer timeouts just forget earlier).
const IN_FLIGHT: usize = 64;
/// Window for per-reflector loss statistics (probes).
const LOSS_WINDOW: u32 = 200;
/// Replies a reflector joining the active set needs before its samples count.
const WARMUP: u32 = 20;
/// How long a replaced reflector is benched before it may return.
const BENCH: Duration = Duration::from_secs(60);
/// A benched reflector gets one probe this often.
const REPROBE: Duration = Duration::from_secs(5);
/// Smoothing of a reflector's delta for the outlier test (per reply).
const DELTA_ALPHA: f64 = 0.05;
/// Upward drift of a reflector's baseline per reply (about 60 s at 20 Hz), taken only while
/// its delta is under the update threshold.
const BASE_UP: f64 = 0.001;
/// Downward correction of a reflector's baseline per reply.
const BASE_DOWN: f64 = 0.5;
/// Drift of the reference RTT towards the median of the active baselines, per sample.
const REFERENCE_ALPHA: f64 = 0.001;
/// Most pending events kept (older ones are dropped: they are only log lines).
const EVENTS: usize = 32;

/// A request the shell must send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Index of the reflector in the pool.
    pub reflector: usize,
    /// Destination.
    pub addr: IpAddr,
    /// ICMP sequence number.
    pub seq: u16,
}

/// Statistics of one reflector (health and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ReflectorStats {
    /// Requests sent.
    pub sent: u64,
    /// Replies matched.
    pub received: u64,
    /// Probes that timed out.
    pub lost: u64,
    /// Last RTT (ms).
    pub last_rtt_ms: Option<f64>,
    /// Smoothed RTT (ms, alpha 0.1).
    pub srtt_ms: Option<f64>,
    /// Loss over the recent window (0..1).
    pub recent_loss: f64,
}

/// Where a reflector is in the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReflectorState {
    /// Probed every round and counted.
    Active,
    /// Probed every round, learning its baseline (not counted yet).
    Warming,
    /// In the pool, not probed; may replace an active one.
    Standby,
    /// Replaced for misbehaving; re-probed now and then.
    Benched,
}

impl ReflectorState {
    /// Lower-case name for health and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ReflectorState::Active => "active",
            ReflectorState::Warming => "warming",
            ReflectorState::Standby => "standby",
            ReflectorState::Benched => "benched",
        }
    }
}

/// One reflector's score, for health, metrics and `--once`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReflectorScore {
    /// Pool state.
    pub state: ReflectorState,
    /// Its own baseline (ms).
    pub base_ms: Option<f64>,
    /// Smoothed delta above the median of the other active reflectors' (ms).
    pub offset_ms: Option<f64>,
    /// Smoothed jitter (mean absolute change between replies, ms).
    pub jitter_ms: Option<f64>,
}

/// Why a reflector was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// It stopped answering (or lost half its probes) while others answered.
    Silent,
    /// Its RTT sat well above the others'.
    Outlier,
}

/// Log-worthy pool events, drained with [`Prober::poll_event`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PoolEvent {
    /// `old` was benched; `new` (if the pool had one) took its place.
    Replaced {
        /// The benched reflector.
        old: IpAddr,
        /// Its replacement.
        new: Option<IpAddr>,
        /// Why.
        why: Misbehaviour,
    },
    /// A benched reflector answered again and is back in the standby pool.
    Restored(IpAddr),
    /// Fewer healthy active reflectors than the quorum: measurements held.
    QuorumLost {
        /// Healthy now.
        healthy: usize,
        /// Needed.
        needed: usize,
    },
    /// The quorum is back.
    QuorumRegained,
}

/// The pool's settings (`continuous_monitoring.reflectors`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolSettings {
    /// Reflectors probed at once.
    pub active: usize,
    /// Healthy active reflectors a measurement needs.
    pub quorum: usize,
    /// Outlier threshold (ms).
    pub outlier_ms: f64,
    /// How long an outlier may persist.
    pub outlier_after: Duration,
    /// How long an active reflector may stay silent while others answer.
    pub dead_after: Duration,
    /// Back off while idle.
    pub idle_backoff: bool,
    /// Time between rounds while backing off.
    pub idle_interval: Duration,
    /// Idle this long before backing off.
    pub idle_after: Duration,
    /// A reflector's baseline moves up only while its delta is under this (ms).
    pub update_threshold_ms: f64,
    /// Seed of the random start and replacements.
    pub seed: u64,
}

impl PoolSettings {
    /// The settings of a config for a pool of `pool_len` hosts (`seed` from the daemon).
    pub fn from_config(m: &crate::config::Monitoring, pool_len: usize, seed: u64) -> PoolSettings {
        let r = &m.reflectors;
        let active = r.active.unwrap_or(3).clamp(1, pool_len.max(1));
        let quorum = r.quorum.unwrap_or(active / 2 + 1).clamp(1, active);
        PoolSettings {
            active,
            quorum,
            outlier_ms: r.outlier_ms,
            outlier_after: r.outlier_after,
            dead_after: r.dead_after,
            idle_backoff: r.idle_backoff,
            idle_interval: Duration::from_secs_f64(1.0 / r.idle_rate_hz.max(0.01)),
            idle_after: r.idle_after,
            update_threshold_ms: m.thresholds.baseline_update_threshold_ms,
            seed,
        }
    }

    /// A fixed set of `active` reflectors with the documented defaults (tests).
    pub fn fixed(active: usize) -> PoolSettings {
        PoolSettings {
            active,
            quorum: active / 2 + 1,
            outlier_ms: 15.0,
            outlier_after: Duration::from_secs(30),
            dead_after: Duration::from_secs(2),
            idle_backoff: true,
            idle_interval: Duration::from_millis(500),
            idle_after: Duration::from_secs(30),
            update_threshold_ms: 3.0,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone)]
struct Reflector {
    addr: IpAddr,
    in_flight: [(u16, Instant, bool); IN_FLIGHT],
    stats: ReflectorStats,
    window_sent: u32,
    window_lost: u32,
    state: ReflectorState,
    since: Instant,
    warm_replies: u32,
    base_ms: Option<f64>,
    delta_ms: Option<f64>,
    jitter_ms: Option<f64>,
    last_reply_at: Option<Instant>,
    outlier_since: Option<Instant>,
    next_reprobe: Instant,
    reprobe_answered: u32,
}

impl Reflector {
    fn new(addr: IpAddr, now: Instant) -> Reflector {
        Reflector {
            addr,
            in_flight: [(0, Instant::ZERO, false); IN_FLIGHT],
            stats: ReflectorStats::default(),
            window_sent: 0,
            window_lost: 0,
            state: ReflectorState::Standby,
            since: now,
            warm_replies: 0,
            base_ms: None,
            delta_ms: None,
            jitter_ms: None,
            last_reply_at: None,
            outlier_since: None,
            next_reprobe: now,
            reprobe_answered: 0,
        }
    }

    fn is_probed(&self) -> bool {
        matches!(self.state, ReflectorState::Active | ReflectorState::Warming)
    }

    fn activate(&mut self, now: Instant) {
        self.state = ReflectorState::Warming;
        self.since = now;
        self.warm_replies = 0;
        self.delta_ms = None;
        self.outlier_since = None;
        self.window_sent = 0;
        self.window_lost = 0;
        self.stats.recent_loss = 0.0;
    }

    fn answered_within(&self, now: Instant, span: Duration) -> bool {
        self.last_reply_at.is_some_and(|t| now.saturating_since(t) < span)
    }
}

/// The prober of one WAN.
#[derive(Debug, Clone)]
pub struct Prober {
    reflectors: Vec<Reflector>,
    settings: PoolSettings,
    timeout: Duration,
    next_seq: u16,
    sends: Vec<usize>,
    /// Counted replies of the newest round seen since the last sample: (sent_at, delta_ms).
    fresh: [(Instant, f64); 8],
    fresh_len: usize,
    reference_ms: Option<f64>,
    last_reply_at: Option<Instant>,
    started_at: Instant,
    rng: Rng,
    idle_since: Option<Instant>,
    next_round_at: Instant,
    quorum_lost: bool,
    events: VecDeque<PoolEvent>,
    rounds: u64,
}

impl Prober {
    /// A prober for the pool `addrs`; the first active set is a seeded random subset.
    pub fn new(
        addrs: &[IpAddr],
        settings: PoolSettings,
        timeout: Duration,
        first_seq: u16,
        now: Instant,
    ) -> Prober {
        let mut reflectors: Vec<Reflector> = addrs.iter().map(|&a| Reflector::new(a, now)).collect();
        let mut rng = Rng::new(settings.seed ^ 0x7265_666c);
        let active = settings.active.min(reflectors.len());
        // A seeded partial Fisher-Yates over the indices: the first `active` are the set.
        let mut order: Vec<usize> = (0..reflectors.len()).collect();
        for i in 0..active {
            let j = i + (rng.next_u64() as usize) % (order.len() - i);
            order.swap(i, j);
        }
        // The first set counts at once: there is no reference yet that a new baseline could
        // disturb (warming up matters for a reflector joining a running set).
        for &i in &order[..active] {
            reflectors[i].activate(now);
            reflectors[i].state = ReflectorState::Active;
        }
        Prober {
            sends: Vec::with_capacity(reflectors.len()),
            reflectors,
            settings,
            timeout,
            next_seq: first_seq,
            fresh: [(Instant::ZERO, 0.0); 8],
            fresh_len: 0,
            reference_ms: None,
            last_reply_at: None,
            started_at: now,
            rng,
            idle_since: None,
            next_round_at: now,
            quorum_lost: false,
            events: VecDeque::with_capacity(EVENTS),
            rounds: 0,
        }
    }

    /// The reflectors probed every round (active and warming).
    pub fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.reflectors.iter().filter(|r| r.is_probed()).map(|r| r.addr)
    }

    /// Per-reflector statistics, in pool order (every reflector of the pool).
    pub fn stats(&self) -> impl Iterator<Item = (IpAddr, ReflectorStats)> + '_ {
        self.reflectors.iter().map(|r| (r.addr, r.stats))
    }

    /// Per-reflector scores, in pool order.
    pub fn scores(&self) -> impl Iterator<Item = (IpAddr, ReflectorScore)> + '_ {
        let deltas = self.active_deltas();
        self.reflectors.iter().enumerate().map(move |(i, r)| {
            let others = median_except(&deltas, i);
            (
                r.addr,
                ReflectorScore {
                    state: r.state,
                    base_ms: r.base_ms,
                    offset_ms: r.delta_ms.zip(others).map(|(d, o)| d - o),
                    jitter_ms: r.jitter_ms,
                },
            )
        })
    }

    /// (healthy active reflectors, quorum).
    pub fn quorum(&self, now: Instant) -> (usize, usize) {
        (self.healthy(now), self.settings.quorum)
    }

    /// Echo rounds started so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// True while probing at the idle rate.
    pub fn is_backing_off(&self, now: Instant) -> bool {
        self.settings.idle_backoff
            && self.idle_since.is_some_and(|t| now.saturating_since(t) >= self.settings.idle_after)
    }

    /// What the queue counters say this tick: `Some(true)` both directions idle,
    /// `Some(false)` traffic, `None` no counters (no back-off, no stall detection).
    pub fn set_traffic(&mut self, now: Instant, idle: Option<bool>) {
        match idle {
            Some(true) => {
                self.idle_since.get_or_insert(now);
            }
            _ => {
                if self.idle_since.take().is_some() {
                    // Load: the next tick probes at full rate.
                    self.next_round_at = now;
                }
            }
        }
    }

    /// True when nothing answers while the counters show no traffic: a stalled path or
    /// probe socket, not bufferbloat.
    pub fn is_stalled(&self, now: Instant) -> bool {
        self.idle_since.is_some() && self.is_silent(now)
    }

    /// The next pool event.
    pub fn poll_event(&mut self) -> Option<PoolEvent> {
        self.events.pop_front()
    }

    fn event(&mut self, e: PoolEvent) {
        if self.events.len() == EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    /// Starts a round (unless backing off and not due), drained with [`Prober::poll_send`];
    /// also runs the pool's housekeeping (timeouts, replacements, re-probes).
    pub fn on_tick(&mut self, now: Instant) {
        self.expire(now);
        self.rotate(now);
        self.sends.clear();
        let due = !self.is_backing_off(now) || now >= self.next_round_at;
        if due {
            self.next_round_at = now + self.settings.idle_interval;
            self.rounds += 1;
        }
        for (i, r) in self.reflectors.iter_mut().enumerate() {
            if r.is_probed() && due {
                self.sends.push(i);
            } else if r.state == ReflectorState::Benched && now >= r.next_reprobe {
                r.next_reprobe = now + REPROBE;
                self.sends.push(i);
            }
        }
        // Pop from the back: keep pool order.
        self.sends.reverse();
    }

    /// The next request of the current round.
    pub fn poll_send(&mut self, now: Instant) -> Option<Probe> {
        let i = self.sends.pop()?;
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let r = &mut self.reflectors[i];
        let slot = usize::from(seq) % IN_FLIGHT;
        if r.in_flight[slot].2 {
            Self::count_lost(r);
        }
        r.in_flight[slot] = (seq, now, true);
        r.stats.sent += 1;
        r.window_sent += 1;
        Some(Probe { reflector: i, addr: r.addr, seq })
    }

    /// The shell could not send a request (socket error): counts as lost at once.
    pub fn on_send_failed(&mut self, probe: Probe) {
        if let Some(r) = self.reflectors.get_mut(probe.reflector) {
            let slot = usize::from(probe.seq) % IN_FLIGHT;
            if r.in_flight[slot].2 && r.in_flight[slot].0 == probe.seq {
                r.in_flight[slot].2 = false;
                Self::count_lost(r);
            }
        }
    }

    fn count_lost(r: &mut Reflector) {
        r.stats.lost += 1;
        r.window_lost += 1;
        if r.window_sent >= LOSS_WINDOW {
            r.stats.recent_loss = f64::from(r.window_lost) / f64::from(r.window_sent);
            r.window_sent = 0;
            r.window_lost = 0;
        }
    }

    /// An echo reply from `from` with `seq` arrived at `at` (kernel timestamp if known).
    /// Returns the RTT (ms) if it matched an outstanding probe.
    pub fn on_reply(&mut self, at: Instant, from: IpAddr, seq: u16) -> Option<f64> {
        let threshold = self.settings.update_threshold_ms;
        let i = self.reflectors.iter().position(|r| r.addr == from)?;
        let r = &mut self.reflectors[i];
        let slot = usize::from(seq) % IN_FLIGHT;
        let (s, sent_at, live) = r.in_flight[slot];
        if !live || s != seq {
            return None;
        }
        r.in_flight[slot].2 = false;
        if at.saturating_since(sent_at) >= self.timeout {
            return None; // already counted lost by expire(), or about to be
        }
        let rtt = at.saturating_since(sent_at).as_secs_f64() * 1000.0;
        r.stats.received += 1;
        if let Some(last) = r.stats.last_rtt_ms {
            let change = (rtt - last).abs();
            r.jitter_ms = Some(r.jitter_ms.map_or(change, |j| 0.9 * j + 0.1 * change));
        }
        r.stats.last_rtt_ms = Some(rtt);
        r.stats.srtt_ms = Some(r.stats.srtt_ms.map_or(rtt, |s| 0.9 * s + 0.1 * rtt));
        if r.window_sent >= LOSS_WINDOW {
            r.stats.recent_loss = f64::from(r.window_lost) / f64::from(r.window_sent);
            r.window_sent = 0;
            r.window_lost = 0;
        }
        r.last_reply_at = Some(at);
        // Its own baseline: fast down, slow up (and up only while not loaded).
        let base = match r.base_ms {
            None => rtt,
            Some(b) if rtt < b => b + BASE_DOWN * (rtt - b),
            Some(b) if rtt - b < threshold => b + BASE_UP * (rtt - b),
            Some(b) => b,
        };
        r.base_ms = Some(base);
        let delta = rtt - base;
        r.delta_ms = Some(r.delta_ms.map_or(delta, |d| d + DELTA_ALPHA * (delta - d)));
        match r.state {
            ReflectorState::Benched => {
                r.reprobe_answered += 1;
                return Some(rtt);
            }
            ReflectorState::Warming => {
                r.warm_replies += 1;
                if r.warm_replies >= WARMUP {
                    r.state = ReflectorState::Active;
                }
                self.last_reply_at = Some(at);
                return Some(rtt);
            }
            ReflectorState::Standby => return Some(rtt),
            ReflectorState::Active => {}
        }
        self.last_reply_at = Some(at);
        // Keep only the newest round's replies for the next sample.
        let newest = self.fresh[..self.fresh_len].iter().map(|f| f.0).max();
        match newest {
            Some(n) if sent_at < n => {}
            Some(n) if sent_at > n => {
                self.fresh[0] = (sent_at, delta);
                self.fresh_len = 1;
            }
            _ if self.fresh_len < self.fresh.len() => {
                self.fresh[self.fresh_len] = (sent_at, delta);
                self.fresh_len += 1;
            }
            _ => {}
        }
        Some(rtt)
    }

    fn expire(&mut self, now: Instant) {
        let timeout = self.timeout;
        for r in &mut self.reflectors {
            for i in 0..IN_FLIGHT {
                let (_, sent_at, live) = r.in_flight[i];
                if live && now.saturating_since(sent_at) >= timeout {
                    r.in_flight[i].2 = false;
                    Self::count_lost(r);
                }
            }
        }
    }

    fn active_deltas(&self) -> [Option<f64>; 16] {
        let mut out = [None; 16];
        for (i, r) in self.reflectors.iter().enumerate().take(16) {
            if r.state == ReflectorState::Active {
                out[i] = r.delta_ms;
            }
        }
        out
    }

    /// Silent for `dead_after` (a reflector that answers is healthy for the quorum).
    fn is_quiet(&self, i: usize, now: Instant) -> bool {
        let r = &self.reflectors[i];
        let span = self.settings.dead_after;
        now.saturating_since(r.since) >= span && !r.answered_within(now, span)
    }

    /// Quiet, or losing half its probes over the loss window: to be replaced.
    fn is_dead(&self, i: usize, now: Instant) -> bool {
        self.is_quiet(i, now) || self.reflectors[i].stats.recent_loss >= 0.5
    }

    fn healthy(&self, now: Instant) -> usize {
        (0..self.reflectors.len())
            .filter(|&i| self.reflectors[i].state == ReflectorState::Active && !self.is_quiet(i, now))
            .count()
    }

    /// Replacements, re-probes and the quorum.
    fn rotate(&mut self, now: Instant) {
        let any_answering =
            self.reflectors.iter().any(|r| r.is_probed() && r.answered_within(now, self.settings.dead_after));
        let deltas = self.active_deltas();
        for i in 0..self.reflectors.len() {
            if !self.reflectors[i].is_probed() {
                continue;
            }
            let others_answering =
                self.reflectors.iter().enumerate().any(|(j, r)| {
                    j != i && r.is_probed() && r.answered_within(now, self.settings.dead_after)
                });
            let mut why = None;
            if others_answering && any_answering && self.is_dead(i, now) {
                why = Some(Misbehaviour::Silent);
            } else if self.reflectors[i].state == ReflectorState::Active {
                let others = median_except(&deltas, i);
                let r = &mut self.reflectors[i];
                let high = r.delta_ms.zip(others).is_some_and(|(d, o)| d - o > self.settings.outlier_ms);
                if high {
                    let since = *r.outlier_since.get_or_insert(now);
                    if now.saturating_since(since) >= self.settings.outlier_after {
                        why = Some(Misbehaviour::Outlier);
                    }
                } else {
                    r.outlier_since = None;
                }
            }
            if let Some(why) = why {
                self.replace(i, now, why);
            }
        }
        // Benched reflectors that answer again come back to the standby pool.
        for r in &mut self.reflectors {
            if r.state == ReflectorState::Benched
                && now.saturating_since(r.since) >= BENCH
                && r.reprobe_answered >= 2
            {
                r.state = ReflectorState::Standby;
                let addr = r.addr;
                if self.events.len() == EVENTS {
                    self.events.pop_front();
                }
                self.events.push_back(PoolEvent::Restored(addr));
            }
        }
        let (healthy, needed) = self.quorum(now);
        let warming_up = now.saturating_since(self.started_at) < Duration::from_secs(2);
        if healthy < needed && !self.quorum_lost && !warming_up {
            self.quorum_lost = true;
            self.event(PoolEvent::QuorumLost { healthy, needed });
        } else if healthy >= needed && self.quorum_lost {
            self.quorum_lost = false;
            self.event(PoolEvent::QuorumRegained);
        }
    }

    fn replace(&mut self, i: usize, now: Instant, why: Misbehaviour) {
        let standby: Vec<usize> = (0..self.reflectors.len())
            .filter(|&j| self.reflectors[j].state == ReflectorState::Standby)
            .collect();
        let new = if standby.is_empty() {
            None
        } else {
            Some(standby[(self.rng.next_u64() as usize) % standby.len()])
        };
        let Some(j) = new else {
            // Nothing to replace it with: keep probing it (it may come back); the quorum
            // says whether its silence matters.
            self.reflectors[i].outlier_since = None;
            return;
        };
        let old = &mut self.reflectors[i];
        old.state = ReflectorState::Benched;
        old.since = now;
        old.next_reprobe = now + REPROBE;
        old.reprobe_answered = 0;
        old.outlier_since = None;
        let old_addr = old.addr;
        self.reflectors[j].activate(now);
        let new_addr = self.reflectors[j].addr;
        self.event(PoolEvent::Replaced { old: old_addr, new: Some(new_addr), why });
    }

    /// The sample for this tick (call once per tick, before [`Prober::on_tick`]): the
    /// newest round's median delta on the reference RTT, `Waiting` while replies may still
    /// come or the quorum is lost, `Lost` once nothing answered for a whole timeout.
    pub fn take_sample(&mut self, now: Instant, fallback: Fallback) -> Sample {
        if self.fresh_len > 0 {
            let (healthy, needed) = self.quorum(now);
            let sent_at = self.fresh[0].0;
            let n = self.fresh_len;
            self.fresh_len = 0;
            if healthy < needed {
                return Sample::Waiting;
            }
            let mut v = [0.0f64; 8];
            for (d, f) in v.iter_mut().zip(&self.fresh[..n]) {
                *d = f.1;
            }
            let v = &mut v[..n];
            v.sort_by(f64::total_cmp);
            let delta = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
            let bases = self.median_active_base();
            let reference = match (self.reference_ms, bases) {
                (None, Some(b)) => b,
                (Some(r), Some(b)) => r + REFERENCE_ALPHA * (b - r),
                (Some(r), None) => r,
                (None, None) => 0.0,
            };
            self.reference_ms = Some(reference);
            return Sample::Timed { rtt_ms: reference + delta, sent_at };
        }
        let silent_since = self.last_reply_at.unwrap_or(self.started_at);
        let patience = self.timeout.max(self.settings.idle_interval * 2);
        if self.reflectors.is_empty() || now.saturating_since(silent_since) >= patience {
            Sample::Lost(fallback)
        } else {
            Sample::Waiting
        }
    }

    fn median_active_base(&self) -> Option<f64> {
        let mut v = [0.0f64; 16];
        let mut n = 0;
        for r in self.reflectors.iter().filter(|r| r.state == ReflectorState::Active).take(16) {
            if let Some(b) = r.base_ms {
                v[n] = b;
                n += 1;
            }
        }
        median(&mut v[..n])
    }

    /// True when nothing has answered for a whole timeout (fallback checks should run).
    pub fn is_silent(&self, now: Instant) -> bool {
        let patience = self.timeout.max(self.settings.idle_interval * 2);
        now.saturating_since(self.last_reply_at.unwrap_or(self.started_at)) >= patience
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// The median of the known values except index `skip`.
fn median_except(values: &[Option<f64>; 16], skip: usize) -> Option<f64> {
    let mut v = [0.0f64; 16];
    let mut n = 0;
    for (i, x) in values.iter().enumerate() {
        if let (Some(x), true) = (x, i != skip) {
            v[n] = *x;
            n += 1;
        }
    }
    median(&mut v[..n])
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, n))
    }

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn round(p: &mut Prober, now: Instant) -> Vec<Probe> {
        p.on_tick(now);
        std::iter::from_fn(|| p.poll_send(now)).collect()
    }

    /// Runs `ticks` rounds from `start`, answering each probe after `rtt(addr)` ms (None =
    /// silent); returns the samples taken.
    fn run(p: &mut Prober, start: u64, ticks: u64, rtt: impl Fn(IpAddr, u64) -> Option<u64>) -> Vec<Sample> {
        let mut out = Vec::new();
        let mut pending: Vec<(u64, IpAddr, u16)> = Vec::new();
        for k in 0..ticks {
            let now = start + k * 50;
            pending.sort_by_key(|x| x.0);
            let due: Vec<_> = pending.iter().filter(|x| x.0 <= now).copied().collect();
            pending.retain(|x| x.0 > now);
            for (at, addr, seq) in due {
                p.on_reply(ms(at), addr, seq);
            }
            out.push(p.take_sample(ms(now), Fallback::Pending));
            for probe in round(p, ms(now)) {
                if let Some(d) = rtt(probe.addr, now) {
                    pending.push((now + d, probe.addr, probe.seq));
                }
            }
        }
        out
    }

    fn warm(addrs: &[IpAddr], active: usize) -> Prober {
        Prober::new(addrs, PoolSettings::fixed(active), Duration::from_secs(1), 0, ms(0))
    }

    #[test]
    fn median_of_three_deltas_on_the_reference() {
        let mut p = warm(&[ip(1), ip(2), ip(3)], 3);
        // Three reflectors at different distances: the sample is the reference plus the
        // median delta, so it is flat while nothing queues.
        let s = run(&mut p, 0, 60, |a, _| {
            Some(match a {
                x if x == ip(1) => 10,
                x if x == ip(2) => 20,
                _ => 30,
            })
        });
        let timed: Vec<f64> = s
            .iter()
            .filter_map(|s| match s {
                Sample::Timed { rtt_ms, .. } => Some(*rtt_ms),
                _ => None,
            })
            .collect();
        assert!(timed.len() > 20, "samples after the warm-up: {s:?}");
        for v in &timed {
            assert!((v - 20.0).abs() < 0.5, "{timed:?}");
        }
        // The first active set counts from its first replies.
        assert!(matches!(s[2], Sample::Timed { .. }), "{:?}", &s[..4]);
    }

    #[test]
    fn single_active_probes_one_host() {
        let mut p = warm(&[ip(1), ip(2), ip(3)], 1);
        assert_eq!(round(&mut p, ms(0)).len(), 1);
    }

    #[test]
    fn late_replies_still_count_and_dead_reflectors_become_lost() {
        let t = Duration::from_secs(1);
        let mut p = Prober::new(&[ip(1)], PoolSettings::fixed(1), t, 65_530, ms(0));
        // Warm up on 20 ms replies.
        run(&mut p, 0, 25, |_, _| Some(20));
        let first = round(&mut p, ms(1250))[0];
        round(&mut p, ms(1300));
        // 600 ms late: still a sample, timed from its own send time (baseline 20 ms).
        assert_eq!(p.on_reply(ms(1850), ip(1), first.seq), Some(600.0));
        match p.take_sample(ms(1850), Fallback::Pending) {
            Sample::Timed { rtt_ms, sent_at } => {
                assert!((rtt_ms - 600.0).abs() < 1.0, "{rtt_ms}");
                assert_eq!(sent_at, ms(1250));
            }
            other => panic!("{other:?}"),
        }
        for i in 0..40u64 {
            round(&mut p, ms(1900 + i * 50));
        }
        assert_eq!(p.take_sample(ms(3900), Fallback::Connected), Sample::Lost(Fallback::Connected));
        // Wrong reflector, unknown seq and duplicates are ignored.
        assert_eq!(p.on_reply(ms(3900), ip(9), 1), None);
        assert_eq!(p.on_reply(ms(3900), ip(1), first.seq), None);
    }

    #[test]
    fn a_silent_reflector_is_replaced_within_three_seconds_and_no_sample_jumps() {
        let pool = [ip(1), ip(2), ip(3), ip(4), ip(5)];
        let mut p = warm(&pool, 3);
        let active: Vec<IpAddr> = p.addrs().collect();
        let victim = active[0];
        let base = |a: IpAddr| {
            10 + u64::from(match a {
                IpAddr::V4(v) => v.octets()[3],
                IpAddr::V6(_) => 0,
            }) * 5
        };
        run(&mut p, 0, 100, |a, _| Some(base(a)));
        let s = run(&mut p, 5000, 100, |a, _| (a != victim).then(|| base(a)));
        let replaced_at = std::iter::from_fn(|| p.poll_event()).find_map(|e| match e {
            PoolEvent::Replaced { old, why: Misbehaviour::Silent, .. } if old == victim => Some(()),
            _ => None,
        });
        assert!(replaced_at.is_some(), "victim replaced");
        assert!(!p.addrs().any(|a| a == victim));
        // Rotation never looks like bloat: every sample stays at the reference.
        for x in &s {
            if let Sample::Timed { rtt_ms, .. } = x {
                assert!((rtt_ms - p.reference_ms.unwrap_or(0.0)).abs() < 2.0, "{x:?}");
            }
        }
    }

    #[test]
    fn a_reflector_whose_path_grew_30_ms_is_replaced_within_a_minute_without_moving_the_median() {
        let pool = [ip(1), ip(2), ip(3), ip(4)];
        let mut p = warm(&pool, 3);
        let victim = p.addrs().next().expect("active");
        run(&mut p, 0, 100, |_, _| Some(20));
        let s = run(&mut p, 5000, 1200, |a, _| Some(if a == victim { 50 } else { 20 }));
        let replaced = std::iter::from_fn(|| p.poll_event()).any(
            |e| matches!(e, PoolEvent::Replaced { old, why: Misbehaviour::Outlier, .. } if old == victim),
        );
        assert!(replaced, "outlier replaced within 60 s");
        for x in &s {
            if let Sample::Timed { rtt_ms, .. } = x {
                assert!(*rtt_ms < 22.0, "the outlier moved the measurement: {x:?}");
            }
        }
    }

    #[test]
    fn below_quorum_no_sample_and_it_is_said_once() {
        let pool = [ip(1), ip(2), ip(3)];
        let mut p = warm(&pool, 3);
        run(&mut p, 0, 100, |_, _| Some(20));
        let alive = p.addrs().next().expect("active");
        let s = run(&mut p, 5000, 100, |a, _| (a == alive).then_some(20));
        let lost = std::iter::from_fn(|| p.poll_event())
            .filter(|e| matches!(e, PoolEvent::QuorumLost { .. }))
            .count();
        assert_eq!(lost, 1);
        assert_eq!(p.quorum(ms(10_000)), (1, 2));
        assert!(s[60..].iter().all(|x| matches!(x, Sample::Waiting)), "held below the quorum");
    }

    #[test]
    fn nothing_is_replaced_when_every_reflector_is_silent() {
        let pool = [ip(1), ip(2), ip(3), ip(4), ip(5), ip(6)];
        let mut p = warm(&pool, 3);
        run(&mut p, 0, 100, |_, _| Some(20));
        let before: Vec<IpAddr> = p.addrs().collect();
        p.set_traffic(ms(5000), Some(true));
        run(&mut p, 5000, 400, |_, _| None);
        assert!(!std::iter::from_fn(|| p.poll_event()).any(|e| matches!(e, PoolEvent::Replaced { .. })));
        assert_eq!(p.addrs().collect::<Vec<_>>(), before);
        assert!(p.is_stalled(ms(25_000)));
    }

    #[test]
    fn idle_back_off_probes_at_the_idle_rate_and_returns_at_once() {
        let mut p = warm(&[ip(1), ip(2), ip(3)], 3);
        run(&mut p, 0, 40, |_, _| Some(20));
        p.set_traffic(ms(2000), Some(true));
        let r0 = p.rounds();
        run(&mut p, 2000, 600, |_, _| Some(20)); // 30 s to the back-off
        let r1 = p.rounds();
        run(&mut p, 32_000, 1200, |_, _| Some(20)); // 60 s backed off at 2 Hz
        let r2 = p.rounds();
        assert_eq!(r1 - r0, 600);
        assert!((119..=121).contains(&(r2 - r1)), "{} rounds in 60 s", r2 - r1);
        p.set_traffic(ms(92_000), Some(false));
        assert_eq!(round(&mut p, ms(92_000)).len(), 3, "full rate on the first tick with load");
        assert_eq!(round(&mut p, ms(92_050)).len(), 3);
    }

    #[test]
    fn benched_reflectors_are_reprobed_and_come_back() {
        let pool = [ip(1), ip(2), ip(3), ip(4)];
        let mut p = warm(&pool, 3);
        let victim = p.addrs().next().expect("active");
        run(&mut p, 0, 100, |_, _| Some(20));
        run(&mut p, 5000, 100, |a, _| (a != victim).then_some(20));
        assert!(!p.addrs().any(|a| a == victim));
        run(&mut p, 10_000, 1400, |_, _| Some(20));
        let restored = std::iter::from_fn(|| p.poll_event()).any(|e| e == PoolEvent::Restored(victim));
        assert!(restored);
        let state = p.scores().find(|(a, _)| *a == victim).map(|(_, s)| s.state);
        assert_eq!(state, Some(ReflectorState::Standby));
    }
}
