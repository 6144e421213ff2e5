//! The steering engine (issue 6): everything the steering daemon decides, without I/O.
//! Pure: measurements and `now` in; router actions, state-file content, health, history
//! rows and metrics out. No clock, no files, no sockets.
//!
//! The daemon watches the primary WAN and, while it is congested, enables a RouterOS mangle
//! rule that sends latency-sensitive new connections to the alternate WAN
//! (STEERING.md). Out of scope here: pinging, reading the autorate state file, reading CAKE
//! counters, talking to the router, writing files (the shell does those and hands the
//! results in).
//!
//! # Calling protocol
//! ```text
//! new(cfg, restored_state, now)          [optionally reconcile(): assert the restored state]
//! every measurement.interval_seconds:
//!     on_cycle(now, wall_iso, &measurements) -> CycleOutcome   (Failed counts toward the watchdog)
//!     while let Some(action) = poll_action() { execute it, then later:
//!         on_action_result(now, wall_iso, Ok(rule_enabled) | Err(kind)) }
//!     history(unix_ts)  (once per on_cycle)     state().encode()  (save)
//! any time: health(now) + render_health(..), metrics_text()
//! ```
//! At most one action is outstanding. `Ok(b)` means the router verifiably has the rule
//! enabled (`true`) or disabled (`false`); the local state follows that truth and nothing
//! else, so the engine never claims a state the router does not have (the original set its
//! state from the command's exit status and a text match). `Err` leaves the state as it was;
//! the engine then retries on a later cycle (after [`RETRY_BACKOFF`]): the transition if it is
//! still wanted, otherwise an action asserting the current state, since after a failed call
//! the router's real state is unknown.
//!
//! # State machine (asymmetric hysteresis, STEERING.md §4)
//! ```text
//!                 RED × red_samples_required (legacy: delta > bad_threshold × bad_samples)
//!   <P>_GOOD ───────────────── SetSteering{enable: true} ── Ok(true) ──▶ <P>_DEGRADED
//!   steering off  YELLOW/GREEN reset the count                          steering on
//!       ▲                                                                    │
//!       └──── Ok(false) ── SetSteering{enable: false} ──── GREEN × green_samples_required
//!                                      (legacy: delta < recovery × good_samples; else reset)
//! ```
//! The confidence controller ([`confidence`]) runs before the hysteresis in the same cycle;
//! in live mode its decision requests the transition and skips the hysteresis for that
//! cycle, in dry-run it only logs. The flap brake ([`confidence::FlapBrake`]) scales both.
//!
//! # Decisions that differ from the original (each documented where it is made)
//! * **Outage is not congestion.** A cycle without RTT or without any baseline fails (it
//!   counts toward the watchdog) and holds the steering state: no transition is requested,
//!   the RED/bad count is kept (no evidence added or lost), the GREEN count restarts (a
//!   recovery needs consecutive clean samples), the confidence sustain timers restart. The
//!   original fell back to the last RTT of its history and kept deciding on it.
//! * **A CAKE read failure is not congestion.** The cycle runs RTT-only with 0 drops and an
//!   empty queue (so it can never be RED), as the original; the next successful read
//!   re-baselines the drop counter instead of charging the drops of the whole failure window
//!   to one cycle. The first read of the process is a baseline too (the original reported
//!   the router's lifetime drop count as the first cycle's drops). A counter that went
//!   backwards (router reboot) counts from zero.
//! * EWMA inputs out of bounds are clamped, not raised (the original exited the daemon).
//! * Confidence timers run on real elapsed time; the flap penalty is applied.
//! * `baseline_rtt` and `last_transition_time` survive a restart; histories are always
//!   bounded; `time_in_state_seconds` is measured on the monotonic clock (the original's
//!   health handler crashed on its own ISO string).

pub mod confidence;
mod cycle;
pub mod health;
mod metrics;
pub mod rounds;
pub mod signals;
pub mod state;

use std::collections::BTreeMap;
use std::time::Duration;

use log::{debug, error, info, warn};

use crate::config::{SteeringConfig, SteeringThresholds, WanStateConfig};
use crate::engine::connectivity::FailureKind;
use crate::engine::history::{MetricRow, SteeringChange, SteeringRecord, steering_rows};
use crate::engine::stats::LogLimiter;
use crate::time::Instant;

pub use confidence::{Controller, Decision, FlapBrake, ScoreInputs, compute_score};
pub use health::{
    FlapHealth, HealthThresholds, RouterStatus, SteeringHealth, render_health, render_health_with,
};
use signals::prometheus_code;
pub use signals::{
    Action, CakeReading, Congestion, CycleOutcome, Measurements, WanZone, assess, assess_with, ewma,
    state_code,
};
pub use state::{CAKE_STATE_HISTORY_LEN, SteeringState, TransitionRecord};

const TARGET: &str = "wanctl::steering";

/// State names from older single-WAN deployments that count as GOOD.
pub const LEGACY_GOOD_STATES: [&str; 3] = ["SPECTRUM_GOOD", "WAN1_GOOD", "WAN2_GOOD"];

/// After a failed router action, no new action is issued before this much time has passed
/// (a refused connection fails in microseconds; at 20 Hz that would be 20 calls a second).
pub const RETRY_BACKOFF: Duration = Duration::from_secs(1);

/// EWMA input bounds (the original raised beyond these; we clamp).
const RTT_EWMA_BOUND: f64 = 1000.0;
const QUEUE_EWMA_BOUND: f64 = 10_000.0;

/// A baseline move larger than this is logged (the original's 5.0 ms).
const BASELINE_LOG_MOVE_MS: f64 = 5.0;

/// How often a repeated warning (bad baseline, unmeasurable primary, router failing) is
/// repeated with a count of the suppressed ones.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// No measurement for this long marks the daemon degraded in `/health` (at least; three
/// ping timeouts if longer): it then cannot do its job. A congested primary is not a
/// degraded steering daemon (issue 12).
pub const UNMEASURED_DEGRADED_AFTER: Duration = Duration::from_secs(10);

/// Which mechanism asked for an action (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Hysteresis,
    Confidence,
    Reconcile,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    enable: bool,
    polled: bool,
    source: Source,
}

/// One successful cycle's figures (history rows).
#[derive(Debug, Clone, Copy)]
struct CycleFigures {
    rtt_ms: f64,
    baseline_ms: f64,
    delta_ms: f64,
    steering: bool,
    state_code: u8,
}

#[derive(Debug, Clone)]
struct Change {
    enabled: bool,
    from: String,
    to: String,
}

#[derive(Debug, Clone)]
struct Limiters {
    baseline: LogLimiter,
    unmeasurable: LogLimiter,
    action: LogLimiter,
}

/// The pure steering engine. See the module docs for the calling protocol.
#[derive(Debug, Clone)]
pub struct SteeringEngine {
    primary_wan: String,
    good: String,
    degraded: String,
    cake_aware: bool,
    th: SteeringThresholds,
    history_size: usize,
    state: SteeringState,
    controller: Option<Controller>,
    steer_threshold: f64,
    flap: FlapBrake,
    prev_dropped: Option<u64>,
    pending: Option<Pending>,
    router_uncertain: bool,
    retry_after: Option<Instant>,
    started_at: Instant,
    last_now: Instant,
    last_transition_at: Option<Instant>,
    last_rtt_ms: Option<f64>,
    cycle: Option<CycleFigures>,
    cycle_changes: Vec<Change>,
    confirmed: Vec<Change>,
    transitions_total: BTreeMap<(String, String), u64>,
    action_failures: u64,
    cycles: u64,
    failed_cycles: u64,
    held_cycles: u64,
    lost_congested_cycles: u64,
    last_measured_at: Option<Instant>,
    unmeasured_limit: Duration,
    wan: WanStateConfig,
    wan_zone: Option<WanZone>,
    wan_zone_stale: bool,
    logs: Limiters,
}

impl SteeringEngine {
    /// An engine for `cfg`, resuming `restored` (the decoded state file) if given.
    /// The restored state name is normalised: the configured GOOD name, an empty name and
    /// the legacy names [`LEGACY_GOOD_STATES`] are GOOD; anything else is DEGRADED.
    pub fn new(cfg: &SteeringConfig, restored: Option<SteeringState>, now: Instant) -> SteeringEngine {
        let good = cfg.good_state_name();
        let degraded = cfg.degraded_state_name();
        let history_size = (cfg.history_size as usize).max(1);
        let mut state = restored.unwrap_or_else(|| SteeringState::new(&good));
        state.bound(history_size);
        state.current_state = normalise_state(&state.current_state, &good, &degraded);
        let th = cfg.thresholds.clone();
        if state.baseline_rtt.is_some_and(|b| !(th.baseline_min_ms..=th.baseline_max_ms).contains(&b)) {
            state.baseline_rtt = None;
        }
        let controller = cfg.confidence.as_ref().map(|c| Controller::new(c, cfg.interval));
        if let Some(c) = &controller {
            info!(target: TARGET, "[CONFIDENCE] confidence scoring enabled (dry_run={})", c.is_dry_run());
        }
        SteeringEngine {
            primary_wan: cfg.primary_wan.clone(),
            good,
            degraded,
            cake_aware: cfg.cake_aware,
            th,
            history_size,
            state,
            controller,
            steer_threshold: cfg.confidence.as_ref().map_or(55.0, |c| c.steer_threshold),
            flap: FlapBrake::new(cfg.confidence.as_ref()),
            prev_dropped: None,
            pending: None,
            router_uncertain: false,
            retry_after: None,
            started_at: now,
            last_now: now,
            last_transition_at: None,
            last_rtt_ms: None,
            cycle: None,
            cycle_changes: Vec::new(),
            confirmed: Vec::new(),
            transitions_total: BTreeMap::new(),
            action_failures: 0,
            cycles: 0,
            failed_cycles: 0,
            held_cycles: 0,
            lost_congested_cycles: 0,
            last_measured_at: None,
            unmeasured_limit: UNMEASURED_DEGRADED_AFTER.max(cfg.ping_timeout * 3),
            wan: cfg.wan_state.clone(),
            wan_zone: None,
            wan_zone_stale: false,
            logs: Limiters {
                baseline: LogLimiter::new(LOG_EVERY),
                unmeasurable: LogLimiter::new(LOG_EVERY),
                action: LogLimiter::new(LOG_EVERY),
            },
        }
    }

    /// True while the current (router-confirmed) state is DEGRADED: steering is on.
    pub fn is_steering(&self) -> bool {
        self.state.current_state == self.degraded
    }

    /// The current state name.
    pub fn current_state(&self) -> &str {
        &self.state.current_state
    }

    /// The action handed out by [`SteeringEngine::poll_action`] and not yet answered.
    pub fn action_in_flight(&self) -> Option<Action> {
        self.pending.filter(|p| p.polled).map(|p| Action::SetSteering { enable: p.enable })
    }

    /// The flap brake (for reports and tests).
    pub fn flap_brake(&self) -> &FlapBrake {
        &self.flap
    }

    /// Asks for an action asserting the current state on the router (use at startup to
    /// align the rule with a restored state, or after `--reset`). It is issued at once if
    /// nothing is outstanding, else on a later cycle.
    pub fn reconcile(&mut self) {
        self.router_uncertain = true;
        if self.pending.is_none() {
            let enable = self.is_steering();
            self.pending = Some(Pending { enable, polled: false, source: Source::Reconcile });
        }
    }

    /// One measurement cycle (see the module docs). `wall_iso` is accepted for symmetry
    /// with [`SteeringEngine::on_action_result`]; transitions are stamped there.
    pub fn on_cycle(&mut self, now: Instant, _wall_iso: &str, m: &Measurements) -> CycleOutcome {
        self.last_now = now;
        self.cycles += 1;
        self.cycle_changes = std::mem::take(&mut self.confirmed);
        self.cycle = None;
        self.flap.update(now);
        let (drops, queued) = self.read_cake(m);
        self.update_baseline(m.baseline_ms, now);
        let zone = self.update_zone(now, m.wan_zone);
        let Some(baseline) = self.state.baseline_rtt else {
            return self.gap(now, "no baseline RTT available");
        };
        let rtt = match m.rtt_ms.filter(|r| r.is_finite() && *r >= 0.0) {
            Some(r) => r,
            None if m.rtt_pending => return self.hold(now),
            None => return self.lost(now, drops, queued, zone),
        };
        self.logs.unmeasurable.reset();
        self.last_measured_at = Some(now);
        self.last_rtt_ms = Some(rtt);
        let delta = (rtt - baseline).max(0.0);
        let signal = if self.cake_aware {
            // The EWMA's input is capped at the severe threshold: beyond it the verdict is
            // RED anyway (on the raw delta), and an uncapped 600 ms sample would hold the
            // EWMA above the YELLOW threshold for a dozen cycles after the delay is gone
            // (issue 12): from the cap it takes 6 cycles at the default alpha.
            let bound = RTT_EWMA_BOUND.min(self.th.severe_rtt_ms);
            let s = &mut self.state;
            s.rtt_delta_ewma = ewma(s.rtt_delta_ewma, delta, self.th.rtt_ewma_alpha, bound);
            s.queue_ewma = ewma(s.queue_ewma, queued as f64, self.th.queue_ewma_alpha, QUEUE_EWMA_BOUND);
            s.rtt_delta_ewma
        } else {
            delta
        };
        push_bounded(&mut self.state.history_rtt, rtt, self.history_size);
        push_bounded(&mut self.state.history_delta, delta, self.history_size);

        // Confidence first, on the previous cycle's congestion state (as wired upstream).
        let steering = self.is_steering();
        let threshold = self.flap.steer_threshold(self.steer_threshold, now);
        let wan_points = self.wan_points(zone);
        let decision = match &mut self.controller {
            Some(c) => {
                let inputs = ScoreInputs {
                    cake_state: &self.state.congestion_state,
                    rtt_delta_ms: delta,
                    drops: drops as f64,
                    queue: queued as f64,
                    cake_state_history: &self.state.cake_state_history,
                    drops_history: &self.state.cake_drops_history,
                    queue_history: &self.state.queue_depth_history,
                    wan_points,
                };
                c.evaluate(now, &inputs, steering, threshold)
            }
            None => None,
        };
        let congestion = self
            .cake_aware
            .then(|| assess_with(&self.th, signal, delta, drops, queued, zone, self.wan.wan_override));
        if let Some(c) = congestion {
            self.state.congestion_state = c.as_str().to_string();
        }
        match decision {
            Some(d) => {
                let enable = d == Decision::Enable;
                if enable != steering && self.request(now, enable, Source::Confidence) {
                    let score = self.controller.as_ref().map_or(0, Controller::score);
                    warn!(
                        target: TARGET,
                        "[CONFIDENCE] {} steering (confidence={score}, threshold={threshold})",
                        if enable { "enabling" } else { "disabling" }
                    );
                }
            }
            None => self.hysteresis(now, delta, signal, drops, queued, congestion),
        }
        if let Some(c) = congestion {
            push_bounded(&mut self.state.cake_state_history, c.as_str().to_string(), CAKE_STATE_HISTORY_LEN);
        }
        self.maybe_reconcile(now);
        debug!(
            target: TARGET,
            "[{}] rtt={rtt:.1}ms delta={delta:.1}ms ewma={signal:.1}ms drops={drops} q={queued} | congestion={} red={} bad={} good={}",
            self.state.current_state,
            self.state.congestion_state,
            self.state.red_count,
            self.state.bad_count,
            self.state.good_count
        );
        self.cycle = Some(CycleFigures {
            rtt_ms: rtt,
            baseline_ms: baseline,
            delta_ms: delta,
            steering: self.is_steering(),
            state_code: match state_code(&self.state.congestion_state) {
                3 => 0,
                c => c,
            },
        });
        CycleOutcome::Ok
    }

    /// The next action for the shell, once. At most one is outstanding.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        match &mut self.pending {
            Some(p) if !p.polled => {
                p.polled = true;
                Some(Action::SetSteering { enable: p.enable })
            }
            _ => None,
        }
    }

    /// The outcome of the outstanding action: `Ok(b)` = the rule is verified enabled
    /// (`true`) / disabled on the router; `Err` = unreachable or not confirmed.
    pub fn on_action_result(&mut self, now: Instant, wall_iso: &str, result: Result<bool, FailureKind>) {
        self.last_now = now;
        let Some(p) = self.pending.take() else {
            warn!(target: TARGET, "router action result without an outstanding action, ignored");
            return;
        };
        let verb = if p.enable { "enable" } else { "disable" };
        match result {
            Ok(enabled) => {
                self.router_uncertain = false;
                self.retry_after = None;
                self.logs.action.reset();
                if enabled != p.enable {
                    self.action_failures += 1;
                    self.retry_after = Some(now + RETRY_BACKOFF);
                    warn!(
                        target: TARGET,
                        "asked the router to {verb} the steering rule ({:?}), it reports the rule {}",
                        p.source,
                        if enabled { "enabled" } else { "disabled" }
                    );
                }
                if enabled != self.is_steering() {
                    self.transition(now, wall_iso, enabled);
                }
            }
            Err(kind) => {
                self.action_failures += 1;
                self.router_uncertain = true;
                self.retry_after = Some(now + RETRY_BACKOFF);
                if let Some(suppressed) = self.logs.action.allow(now) {
                    error!(
                        target: TARGET,
                        "failed to {verb} steering rule ({kind}), staying in {}; will retry{}",
                        self.state.current_state,
                        suppressed_note(suppressed)
                    );
                }
            }
        }
    }

    /// Read-only view for `/health`.
    pub fn health(&self, now: Instant) -> SteeringHealth {
        let since = self.last_transition_at.unwrap_or(self.started_at);
        let legacy = !self.cake_aware;
        let (enable_base, disable_base) = if legacy {
            (self.th.bad_samples, self.th.good_samples)
        } else {
            (self.th.red_samples_required, self.th.green_samples_required)
        };
        SteeringHealth {
            enabled: self.state.current_state != self.good,
            state: self.state.current_state.clone(),
            mode: match &self.controller {
                Some(c) if c.is_dry_run() => "dry_run",
                _ => "active",
            },
            congestion_state: self.state.congestion_state.clone(),
            last_transition_time: self.state.last_transition_time.clone(),
            time_in_state_seconds: now.saturating_since(since).as_secs_f64(),
            red_count: self.state.red_count,
            good_count: self.state.good_count,
            cake_read_failures: self.state.cake_read_failures,
            confidence_score: self.controller.as_ref().map(Controller::score),
            thresholds: HealthThresholds {
                green_rtt_ms: self.th.green_rtt_ms,
                yellow_rtt_ms: self.th.yellow_rtt_ms,
                red_rtt_ms: self.th.red_rtt_ms,
                red_samples_required: self.th.red_samples_required,
                green_samples_required: self.th.green_samples_required,
            },
            flap: FlapHealth {
                enabled: self.flap.is_enabled(),
                active: self.flap.is_active(now),
                transitions_in_window: self.flap.in_window(now),
                max_toggles: self.flap.max_toggles(),
                penalty_remaining_seconds: self.flap.remaining(now).map(|d| d.as_secs_f64()),
                steer_threshold: self
                    .controller
                    .as_ref()
                    .map(|_| self.flap.steer_threshold(self.steer_threshold, now)),
                samples_to_enable: self.flap.samples(enable_base, now),
                samples_to_disable: self.flap.samples(disable_base, now),
            },
            baseline_rtt_ms: self.state.baseline_rtt,
            last_rtt_ms: self.last_rtt_ms,
            rtt_delta_ewma_ms: self.state.rtt_delta_ewma,
            action_in_flight: self.pending.map(|p| p.enable),
            action_failures: self.action_failures,
            dry_run_decisions: self
                .controller
                .as_ref()
                .filter(|c| c.is_dry_run())
                .map(Controller::would_decisions),
            cycles: self.cycles,
            failed_cycles: self.failed_cycles,
            held_cycles: self.held_cycles,
            lost_congested_cycles: self.lost_congested_cycles,
            unmeasured_seconds: now
                .saturating_since(self.last_measured_at.unwrap_or(self.started_at))
                .as_secs_f64(),
            unmeasured_limit_seconds: self.unmeasured_limit.as_secs_f64(),
            wan_awareness: self.wan.enabled,
            wan_zone: self.wan_zone.map(WanZone::as_str),
            wan_zone_stale: self.wan_zone_stale,
        }
    }

    /// The state file content (encode with [`SteeringState::encode`]).
    pub fn state(&self) -> SteeringState {
        self.state.clone()
    }

    /// The state, borrowed.
    pub fn state_ref(&self) -> &SteeringState {
        &self.state
    }

    /// History rows of the last `on_cycle`: the per-cycle batch if it succeeded, plus one
    /// `wanctl_steering_transition` row per transition confirmed since the cycle before
    /// it. Call once per `on_cycle` (repeated calls return the same rows).
    pub fn history(&self, unix_ts: i64) -> Vec<MetricRow> {
        let f = self.cycle.unwrap_or(CycleFigures {
            rtt_ms: 0.0,
            baseline_ms: 0.0,
            delta_ms: 0.0,
            steering: self.is_steering(),
            state_code: 0,
        });
        let record = |transition| SteeringRecord {
            primary_wan: &self.primary_wan,
            rtt_ms: f.rtt_ms,
            baseline_ms: f.baseline_ms,
            delta_ms: f.delta_ms,
            steering_enabled: f.steering,
            state_code: f.state_code,
            transition,
        };
        let mut rows = if self.cycle.is_some() { steering_rows(unix_ts, &record(None)) } else { Vec::new() };
        for c in &self.cycle_changes {
            let change = SteeringChange { enabled: c.enabled, from_state: &c.from, to_state: &c.to };
            if let Some(row) = steering_rows(unix_ts, &record(Some(change))).pop() {
                rows.push(row);
            }
        }
        rows
    }
}

fn normalise_state(name: &str, good: &str, degraded: &str) -> String {
    if name == good || name.is_empty() {
        return good.to_string();
    }
    if LEGACY_GOOD_STATES.contains(&name) {
        warn!(target: TARGET, "Legacy state name '{name}' detected, normalized to '{good}'");
        return good.to_string();
    }
    if name != degraded {
        warn!(target: TARGET, "State name '{name}' is not {good}: treated as {degraded}");
    }
    degraded.to_string()
}

fn push_bounded<T>(d: &mut std::collections::VecDeque<T>, v: T, n: usize) {
    d.push_back(v);
    while d.len() > n {
        d.pop_front();
    }
}

fn suppressed_note(n: u64) -> String {
    if n == 0 { String::new() } else { format!(" ({n} similar suppressed)") }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests;
