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
pub mod rounds;
pub mod state;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use log::{debug, error, info, warn};

use crate::config::{SteeringConfig, SteeringThresholds, WanStateConfig};
use crate::engine::connectivity::{Connectivity, FailureKind};
use crate::engine::health::{Json, py_float, round_to};
use crate::engine::history::{MetricRow, SteeringChange, SteeringRecord, steering_rows};
use crate::engine::stats::LogLimiter;
use crate::time::Instant;
use crate::wire::routeros::QueueStats;

pub use confidence::{Controller, Decision, FlapBrake, ScoreInputs, compute_score};
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

/// The autorate daemon's download zone, from the `congestion.dl_state` key it adds to its
/// state file (WAN awareness, newer upstream 1.11+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WanZone {
    /// GREEN.
    Green,
    /// YELLOW.
    Yellow,
    /// SOFT_RED.
    SoftRed,
    /// RED.
    Red,
}

impl WanZone {
    /// From the state file's string; `None` for anything else.
    pub fn parse(s: &str) -> Option<WanZone> {
        match s {
            "GREEN" => Some(WanZone::Green),
            "YELLOW" => Some(WanZone::Yellow),
            "SOFT_RED" => Some(WanZone::SoftRed),
            "RED" => Some(WanZone::Red),
            _ => None,
        }
    }

    /// The state file's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WanZone::Green => "GREEN",
            WanZone::Yellow => "YELLOW",
            WanZone::SoftRed => "SOFT_RED",
            WanZone::Red => "RED",
        }
    }

    fn is_red(self) -> bool {
        matches!(self, WanZone::Red | WanZone::SoftRed)
    }
}

/// What the shell measured this cycle.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Measurements {
    /// `ewma.baseline_rtt` from the autorate state file, already read and parsed; `None` if
    /// the file was missing or unusable. Bounds are checked here.
    pub baseline_ms: Option<f64>,
    /// Median of the ping replies that arrived this cycle (any round, each matched to its
    /// own probe, see [`rounds`]); `None` if none arrived.
    pub rtt_ms: Option<f64>,
    /// No reply arrived this cycle but probes are still within the ping timeout (the RTT is
    /// longer than the cycle, or a round was lost): the engine holds, it is not a failure.
    pub rtt_pending: bool,
    /// The autorate download zone and the age of the state file it came from; `None` if
    /// the file or the key is missing.
    pub wan_zone: Option<(WanZone, Duration)>,
    /// CAKE counters of the primary download queue; `None` if not read or the read failed.
    pub cake: Option<CakeReading>,
    /// The CAKE read was attempted and failed.
    pub cake_read_failed: bool,
}

/// The two CAKE figures steering uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CakeReading {
    /// Cumulative dropped packets (the engine takes per-cycle deltas).
    pub dropped: u64,
    /// Instantaneous backlog, packets.
    pub queued_packets: u64,
}

impl CakeReading {
    /// From a queue read-back; `None` without a `dropped` counter. A missing
    /// `queued-packets` reads as 0, as the original.
    pub fn from_stats(q: &QueueStats) -> Option<CakeReading> {
        Some(CakeReading { dropped: q.dropped?, queued_packets: q.queued_packets.unwrap_or(0) })
    }
}

/// What the shell must do on the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Enable (`true`) or disable the mangle rule found by `mangle_rule.comment`, then
    /// verify it; report with [`SteeringEngine::on_action_result`].
    SetSteering {
        /// Desired rule state.
        enable: bool,
    },
}

/// How a cycle went (a failure counts toward the watchdog and health).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CycleOutcome {
    /// Measured and decided.
    Ok,
    /// The primary was unmeasurable; the steering state was held.
    Failed(&'static str),
    /// Replies are still on their way (RTT longer than the cycle): counters held, not a
    /// failure.
    Held,
}

/// The CAKE-aware congestion assessment (STEERING.md §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Congestion {
    /// Healthy.
    Green,
    /// Early warning: no action, resets the RED count.
    Yellow,
    /// Confirmed congestion: delay, drops and queue together.
    Red,
}

impl Congestion {
    /// The state-file / log string.
    pub fn as_str(self) -> &'static str {
        match self {
            Congestion::Green => "GREEN",
            Congestion::Yellow => "YELLOW",
            Congestion::Red => "RED",
        }
    }
}

/// Health and history code of a congestion state string: GREEN 0, YELLOW 1, RED 2,
/// anything else 3 (health) — history rows use 0 for "other".
pub fn state_code(state: &str) -> u8 {
    match state {
        "GREEN" => 0,
        "YELLOW" => 1,
        "RED" => 2,
        _ => 3,
    }
}

/// Prometheus code: GREEN 1, YELLOW 2, RED 4 (the original's gauge), anything else 0.
fn prometheus_code(state: &str) -> u8 {
    match state {
        "GREEN" => 1,
        "YELLOW" => 2,
        "RED" => 4,
        _ => 0,
    }
}

/// RED needs all three signals; YELLOW either the delay or the queue; else GREEN.
/// wanctl addition (issue 12): a severe delay is RED on its own (see [`assess_with`]; here
/// the EWMA stands for the raw delta too).
pub fn assess(th: &SteeringThresholds, rtt_delta_ewma: f64, drops: u64, queued: u64) -> Congestion {
    assess_with(th, rtt_delta_ewma, rtt_delta_ewma, drops, queued, None, false)
}

/// The assessment with every signal:
/// * the original's rule: RED = delay EWMA above `red_rtt_ms` **and** drops **and** a
///   backlog; YELLOW = delay above `yellow_rtt_ms` or a backlog of `min_queue_yellow`;
/// * **severe delay** (wanctl): this cycle's delta above `severe_rtt_ms` with the EWMA
///   above `red_rtt_ms` is RED without CAKE's agreement (`red_samples_required` such cycles
///   in a row steer). When the line collapses below the autorate floor the queue builds in
///   the ISP's buffer, upstream of CAKE, which then drops nothing and holds no backlog: the
///   original's rule could never say RED while RTT stood at 600 ms;
/// * **WAN zone** (newer upstream's WAN awareness, `wan_state.enabled`, fresh state file,
///   after the grace period): with the autorate daemon in RED or SOFT_RED, a delay above
///   `red_rtt_ms` is RED (two independent signals agree); with `wan_override` a RED zone
///   is RED alone; and GREEN becomes YELLOW while the zone is RED or SOFT_RED, so a
///   recovery waits for the autorate daemon to clear too.
pub fn assess_with(
    th: &SteeringThresholds,
    rtt_delta_ewma: f64,
    raw_delta: f64,
    drops: u64,
    queued: u64,
    zone: Option<WanZone>,
    wan_override: bool,
) -> Congestion {
    let own = if (rtt_delta_ewma > th.red_rtt_ms && drops >= th.min_drops_red && queued >= th.min_queue_red)
        || (raw_delta > th.severe_rtt_ms && rtt_delta_ewma > th.red_rtt_ms)
    {
        Congestion::Red
    } else if rtt_delta_ewma > th.yellow_rtt_ms || queued >= th.min_queue_yellow {
        Congestion::Yellow
    } else {
        Congestion::Green
    };
    match zone {
        Some(z) if z.is_red() => {
            if own == Congestion::Red || rtt_delta_ewma > th.red_rtt_ms || (wan_override && z == WanZone::Red)
            {
                Congestion::Red
            } else {
                Congestion::Yellow
            }
        }
        _ => own,
    }
}

/// The original's EWMA: seeds from the input when the current value is exactly 0.0;
/// inputs are clamped to `±bound` and non-finite inputs ignored (the original raised).
pub fn ewma(current: f64, value: f64, alpha: f64, bound: f64) -> f64 {
    if !value.is_finite() {
        return current;
    }
    let value = value.clamp(-bound, bound);
    let alpha = alpha.clamp(0.0, 1.0);
    if current == 0.0 { value } else { (1.0 - alpha) * current + alpha * value }
}

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

    /// Prometheus text: the original's `wanctl_steering_enabled`, `wanctl_congestion_state`
    /// (GREEN 1, YELLOW 2, RED 4) and `wanctl_steering_transitions_total{from,to,wan}`
    /// (lower-cased), plus wanctl's additions; same layout as the autorate exposition.
    pub fn metrics_text(&self) -> String {
        let wan = escape_label(&self.primary_wan.to_lowercase());
        let mut out = String::with_capacity(1024);
        let mut family = |name: &str, help: &str, kind: &str, series: &[(String, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in series {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let one = |v: f64| vec![(format!("{{wan=\"{wan}\"}}"), py_float(v))];
        family(
            "wanctl_congestion_state",
            "Steering congestion state (1=GREEN, 2=YELLOW, 4=RED)",
            "gauge",
            &one(f64::from(prometheus_code(&self.state.congestion_state))),
        );
        if let Some(c) = &self.controller {
            family(
                "wanctl_steering_confidence_score",
                "Steering confidence score (0-100)",
                "gauge",
                &one(f64::from(c.score())),
            );
        }
        family(
            "wanctl_steering_enabled",
            "Steering rule enabled (1) or not (0)",
            "gauge",
            &one(if self.is_steering() { 1.0 } else { 0.0 }),
        );
        family(
            "wanctl_steering_flap_brake_active",
            "Flap brake penalty in force (1) or not (0)",
            "gauge",
            &one(if self.flap.is_active(self.last_now) { 1.0 } else { 0.0 }),
        );
        let count = |v: u64| vec![(format!("{{wan=\"{wan}\"}}"), v.to_string())];
        family(
            "wanctl_steering_action_failures_total",
            "Steering rule changes the router did not confirm",
            "counter",
            &count(self.action_failures),
        );
        family(
            "wanctl_steering_cycles_failed_total",
            "Steering cycles without a usable measurement",
            "counter",
            &count(self.failed_cycles),
        );
        let transitions: Vec<(String, String)> = self
            .transitions_total
            .iter()
            .map(|((from, to), n)| {
                (
                    format!("{{from=\"{}\",to=\"{}\",wan=\"{wan}\"}}", escape_label(from), escape_label(to)),
                    n.to_string(),
                )
            })
            .collect();
        if !transitions.is_empty() {
            family(
                "wanctl_steering_transitions_total",
                "Steering state transitions",
                "counter",
                &transitions,
            );
        }
        out
    }

    // -----------------------------------------------------------------------------------
    // Cycle steps
    // -----------------------------------------------------------------------------------

    /// CAKE figures for this cycle: (drops since the last good read, queued packets).
    fn read_cake(&mut self, m: &Measurements) -> (u64, u64) {
        if !self.cake_aware {
            return (0, 0);
        }
        match m.cake {
            Some(r) => {
                if self.state.cake_read_failures > 0 {
                    info!(
                        target: TARGET,
                        "CAKE stats readable again after {} failures", self.state.cake_read_failures
                    );
                }
                self.state.cake_read_failures = 0;
                let drops = match self.prev_dropped {
                    None => 0,
                    Some(prev) if r.dropped >= prev => r.dropped - prev,
                    Some(_) => r.dropped,
                };
                self.prev_dropped = Some(r.dropped);
                push_bounded(&mut self.state.cake_drops_history, drops, self.history_size);
                push_bounded(&mut self.state.queue_depth_history, r.queued_packets, self.history_size);
                (drops, r.queued_packets)
            }
            None if m.cake_read_failed => {
                self.prev_dropped = None;
                let s = &mut self.state;
                s.cake_read_failures = s.cake_read_failures.saturating_add(1);
                match s.cake_read_failures {
                    1 => warn!(
                        target: TARGET,
                        "CAKE stats read failed, using RTT-only decisions (failure 1)"
                    ),
                    3 => error!(
                        target: TARGET,
                        "CAKE stats read failed 3 times, entering degraded mode (RTT-only decisions)"
                    ),
                    _ => {}
                }
                (0, 0)
            }
            None => (0, 0),
        }
    }

    fn update_baseline(&mut self, value: Option<f64>, now: Instant) {
        let Some(v) = value.filter(|v| v.is_finite()) else {
            return;
        };
        let (min, max) = (self.th.baseline_min_ms, self.th.baseline_max_ms);
        if !(min..=max).contains(&v) {
            if let Some(suppressed) = self.logs.baseline.allow(now) {
                warn!(
                    target: TARGET,
                    "Baseline RTT out of bounds [{min}, {max}]: {v} ms, ignoring (possible autorate compromise){}",
                    suppressed_note(suppressed)
                );
            }
            return;
        }
        match self.state.baseline_rtt {
            None => info!(target: TARGET, "Initialized baseline RTT: {v:.2} ms"),
            Some(old) if (v - old).abs() > BASELINE_LOG_MOVE_MS => {
                info!(target: TARGET, "Baseline RTT updated: {old:.2} ms -> {v:.2} ms")
            }
            Some(_) => {}
        }
        self.state.baseline_rtt = Some(v);
    }

    /// The WAN zone to use this cycle: `None` when WAN awareness is off, in its grace period
    /// after start, or the state file is older than `staleness_threshold_sec` (upstream reads
    /// a stale zone as GREEN; no zone is the same here).
    fn update_zone(&mut self, now: Instant, read: Option<(WanZone, Duration)>) -> Option<WanZone> {
        self.wan_zone = None;
        self.wan_zone_stale = false;
        if !self.wan.enabled || now.saturating_since(self.started_at) < self.wan.grace_period {
            return None;
        }
        let (zone, age) = read?;
        if age > self.wan.staleness {
            self.wan_zone_stale = true;
            return None;
        }
        self.wan_zone = Some(zone);
        Some(zone)
    }

    /// Upstream's confidence weights for the zone: `red_weight` (kept below the steer
    /// threshold unless `wan_override`, as upstream clamps it) for RED, 48 % for SOFT_RED.
    fn wan_points(&self, zone: Option<WanZone>) -> u32 {
        let mut red = self.wan.red_weight.max(1);
        if !self.wan.wan_override && f64::from(red) >= self.steer_threshold {
            red = (self.steer_threshold as u32).saturating_sub(1).max(1);
        }
        match zone {
            Some(WanZone::Red) => red,
            Some(WanZone::SoftRed) => (f64::from(red) * 0.48) as u32,
            _ => 0,
        }
    }

    /// No reply this cycle, probes still within their timeout: the replies are slow, not
    /// absent. Nothing is counted either way (a recovery needs consecutive clean samples,
    /// so the GREEN count restarts); not a failure.
    fn hold(&mut self, now: Instant) -> CycleOutcome {
        self.held_cycles += 1;
        self.state.good_count = 0;
        self.maybe_reconcile(now);
        debug!(target: TARGET, "replies still on their way (RTT above the cycle), holding {}", self.state.current_state);
        CycleOutcome::Held
    }

    /// Nothing came back within the ping timeout. With other evidence of congestion this
    /// is a RED (legacy: bad) sample: CAKE dropping at the RED minimum or holding the RED
    /// backlog, or the autorate daemon's zone RED/SOFT_RED (WAN awareness). Probes lost in a
    /// congested queue are the congestion, not a measuring fault. Without such evidence it
    /// is unmeasurable: the state is held (an outage is not congestion, a dead reflector
    /// must not steer traffic).
    fn lost(&mut self, now: Instant, drops: u64, queued: u64, zone: Option<WanZone>) -> CycleOutcome {
        let cake = self.cake_aware && (drops >= self.th.min_drops_red || queued >= self.th.min_queue_red);
        let autorate = zone.is_some_and(WanZone::is_red);
        if !(cake || autorate) {
            return self.gap(now, "no RTT measurement");
        }
        self.lost_congested_cycles += 1;
        self.last_measured_at = Some(now);
        self.logs.unmeasurable.reset();
        let congestion = self.cake_aware.then_some(Congestion::Red);
        if let Some(c) = congestion {
            self.state.congestion_state = c.as_str().to_string();
            push_bounded(&mut self.state.cake_state_history, c.as_str().to_string(), CAKE_STATE_HISTORY_LEN);
        }
        if let Some(c) = &mut self.controller {
            c.on_gap();
        }
        // A delta beyond every threshold stands for "no reply within the timeout".
        let delta = f64::INFINITY;
        let signal = self.state.rtt_delta_ewma;
        self.hysteresis(now, delta, signal, drops, queued, congestion);
        self.maybe_reconcile(now);
        debug!(
            target: TARGET,
            "no reply within the ping timeout while {}: counted as congestion",
            if cake { "CAKE drops/queues" } else { "the autorate daemon reports RED" }
        );
        CycleOutcome::Ok
    }

    /// An unmeasurable cycle: hold the steering state (see the module docs).
    fn gap(&mut self, now: Instant, reason: &'static str) -> CycleOutcome {
        self.failed_cycles += 1;
        self.state.good_count = 0;
        if let Some(c) = &mut self.controller {
            c.on_gap();
        }
        self.maybe_reconcile(now);
        if let Some(suppressed) = self.logs.unmeasurable.allow(now) {
            warn!(
                target: TARGET,
                "primary WAN unmeasurable ({reason}), holding {}{}",
                self.state.current_state,
                suppressed_note(suppressed)
            );
        }
        CycleOutcome::Failed(reason)
    }

    /// The asymmetric hysteresis (STEERING.md §4.3), with the flap brake's sample counts.
    fn hysteresis(
        &mut self,
        now: Instant,
        delta: f64,
        signal: f64,
        drops: u64,
        queued: u64,
        congestion: Option<Congestion>,
    ) {
        let steering = self.is_steering();
        let zone = self.wan_zone;
        // Legacy mode and the WAN zone (see `assess_with`): with `wan_override` a RED zone is
        // a bad sample; a recovered sample needs the zone out of RED and SOFT_RED.
        let zone_red = zone.is_some_and(WanZone::is_red);
        let zone_bad = self.wan.wan_override && zone == Some(WanZone::Red);
        let wan = self.primary_wan.to_uppercase();
        let (bad, good, need_bad, need_good) = match congestion {
            Some(c) => (
                c == Congestion::Red,
                c == Congestion::Green,
                self.flap.samples(self.th.red_samples_required, now),
                self.flap.samples(self.th.green_samples_required, now),
            ),
            None => (
                delta > self.th.bad_threshold_ms || zone_bad,
                delta < self.th.recovery_threshold_ms && !zone_red,
                self.flap.samples(self.th.bad_samples, now),
                self.flap.samples(self.th.good_samples, now),
            ),
        };
        let s = &mut self.state;
        if !steering {
            s.good_count = 0;
            let count = if congestion.is_some() { &mut s.red_count } else { &mut s.bad_count };
            if !bad {
                *count = 0;
                return;
            }
            *count = count.saturating_add(1);
            let n = *count;
            if n >= need_bad && self.request(now, true, Source::Hysteresis) {
                warn!(
                    target: TARGET,
                    "{wan} DEGRADED detected - delta={delta:.1}ms ewma={signal:.1}ms drops={drops} q={queued} (sustained {n} samples, {need_bad} required)"
                );
            }
        } else {
            s.red_count = 0;
            s.bad_count = 0;
            if !good {
                s.good_count = 0;
                return;
            }
            s.good_count = s.good_count.saturating_add(1);
            let n = s.good_count;
            if n >= need_good && self.request(now, false, Source::Hysteresis) {
                info!(
                    target: TARGET,
                    "{wan} RECOVERED - delta={delta:.1}ms ewma={signal:.1}ms (sustained {n} samples, {need_good} required)"
                );
            }
        }
    }

    /// Queues an action unless one is outstanding or the retry back-off runs. An unpolled
    /// action for the other direction (a reconcile) is replaced.
    fn request(&mut self, now: Instant, enable: bool, source: Source) -> bool {
        if let Some(p) = &self.pending
            && (p.polled || p.enable == enable)
        {
            return false;
        }
        if self.retry_after.is_some_and(|t| now < t) {
            return false;
        }
        self.pending = Some(Pending { enable, polled: false, source });
        true
    }

    /// After a failed action the router's state is unknown: assert ours.
    fn maybe_reconcile(&mut self, now: Instant) {
        if self.router_uncertain && self.pending.is_none() {
            let enable = self.is_steering();
            self.request(now, enable, Source::Reconcile);
        }
    }

    /// A router-confirmed transition.
    fn transition(&mut self, now: Instant, wall_iso: &str, enable: bool) {
        let from = self.state.current_state.clone();
        let to = if enable { self.degraded.clone() } else { self.good.clone() };
        let s = &mut self.state;
        s.transitions.push_back(TransitionRecord {
            timestamp: wall_iso.to_string(),
            from: from.clone(),
            to: to.clone(),
            bad_count: s.bad_count,
            good_count: s.good_count,
        });
        while s.transitions.len() > self.history_size {
            s.transitions.pop_front();
        }
        s.last_transition_time = Some(wall_iso.to_string());
        s.current_state = to.clone();
        s.red_count = 0;
        s.bad_count = 0;
        s.good_count = 0;
        self.last_transition_at = Some(now);
        *self.transitions_total.entry((from.to_lowercase(), to.to_lowercase())).or_default() += 1;
        self.flap.record(now);
        self.flap.update(now);
        if let Some(c) = &mut self.controller {
            c.on_transition(enable);
        }
        warn!(
            target: TARGET,
            "State transition: {from} -> {to} (steering {})",
            if enable { "enabled: latency-sensitive traffic to the alternate WAN" } else { "disabled" }
        );
        self.confirmed.push(Change { enabled: enable, from, to });
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

// ---------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------

/// Config thresholds mirrored in `/health`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthThresholds {
    /// `green_rtt_ms`.
    pub green_rtt_ms: f64,
    /// `yellow_rtt_ms`.
    pub yellow_rtt_ms: f64,
    /// `red_rtt_ms`.
    pub red_rtt_ms: f64,
    /// `red_samples_required` (configured, without the flap penalty).
    pub red_samples_required: u32,
    /// `green_samples_required` (configured).
    pub green_samples_required: u32,
}

/// The flap brake in `/health` (wanctl addition).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlapHealth {
    /// Flap detection configured on.
    pub enabled: bool,
    /// Penalty in force.
    pub active: bool,
    /// Confirmed transitions in the current window.
    pub transitions_in_window: usize,
    /// `max_toggles`.
    pub max_toggles: usize,
    /// Seconds of penalty left.
    pub penalty_remaining_seconds: Option<f64>,
    /// Confidence steer threshold in force (with a confidence controller).
    pub steer_threshold: Option<f64>,
    /// Samples in force to enable steering (RED, or legacy bad samples).
    pub samples_to_enable: u32,
    /// Samples in force to disable steering (GREEN, or legacy good samples).
    pub samples_to_disable: u32,
}

/// What `/health` shows of the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct SteeringHealth {
    /// Current state is not the GOOD name.
    pub enabled: bool,
    /// Current state name.
    pub state: String,
    /// `dry_run` with a dry-run confidence controller, else `active`.
    pub mode: &'static str,
    /// Last congestion assessment.
    pub congestion_state: String,
    /// ISO time of the last transition (state file value).
    pub last_transition_time: Option<String>,
    /// Since the last transition of this process, or since start (monotonic).
    pub time_in_state_seconds: f64,
    /// RED count.
    pub red_count: u32,
    /// GREEN count.
    pub good_count: u32,
    /// Consecutive failed CAKE reads.
    pub cake_read_failures: u32,
    /// Confidence score, only with a controller.
    pub confidence_score: Option<u32>,
    /// Config thresholds.
    pub thresholds: HealthThresholds,
    /// Flap brake (addition).
    pub flap: FlapHealth,
    /// Baseline in use (addition).
    pub baseline_rtt_ms: Option<f64>,
    /// Last RTT (addition).
    pub last_rtt_ms: Option<f64>,
    /// Delta EWMA (addition).
    pub rtt_delta_ewma_ms: f64,
    /// Desired rule state of an outstanding action (addition).
    pub action_in_flight: Option<bool>,
    /// Router actions not confirmed (addition).
    pub action_failures: u64,
    /// Dry-run (would enable, would disable) counts, with a dry-run controller (addition).
    pub dry_run_decisions: Option<(u64, u64)>,
    /// Cycles run (addition).
    pub cycles: u64,
    /// Cycles that failed: unmeasurable (addition).
    pub failed_cycles: u64,
    /// Cycles held while replies were on their way (addition, issue 12).
    pub held_cycles: u64,
    /// Cycles without any reply counted as congestion on other evidence (addition).
    pub lost_congested_cycles: u64,
    /// Since the last measurement (or the start), seconds (addition).
    pub unmeasured_seconds: f64,
    /// `unmeasured_seconds` from which `/health` says degraded (addition).
    pub unmeasured_limit_seconds: f64,
    /// `wan_state.enabled`.
    pub wan_awareness: bool,
    /// The autorate zone used in the last cycle, if any.
    pub wan_zone: Option<&'static str>,
    /// The autorate state file was too old to use in the last cycle.
    pub wan_zone_stale: bool,
}

/// The router connectivity figures `/health` shows (the shell owns the [`Connectivity`]
/// and feeds it from every router exchange: CAKE reads and rule changes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouterStatus {
    /// Reachable.
    pub is_reachable: bool,
    /// Consecutive failures.
    pub consecutive_failures: u32,
    /// Last failure kind.
    pub last_failure_type: Option<&'static str>,
    /// Monotonic seconds of the last failure (as the original: not wall time).
    pub last_failure_time: Option<f64>,
    /// Current outage length (s).
    pub outage_duration_seconds: Option<f64>,
}

impl RouterStatus {
    /// The figures of `c` at `now`.
    pub fn of(c: &Connectivity, now: Instant) -> RouterStatus {
        RouterStatus {
            is_reachable: c.is_reachable(),
            consecutive_failures: c.consecutive_failures(),
            last_failure_type: c.last_failure().map(|(k, _)| k.as_str()),
            last_failure_time: c.last_failure().map(|(_, t)| t.as_secs_f64()),
            outage_duration_seconds: c.outage_duration(now).map(|d| d.as_secs_f64()),
        }
    }
}

/// The steering `/health` response: (HTTP status, JSON body). v1.8 fields in the
/// original's order (INTERFACES.md §2.3), then wanctl's additions. 200 iff the router is
/// reachable and the last measurement is younger than `unmeasured_limit_seconds` (at least
/// [`UNMEASURED_DEGRADED_AFTER`]); else 503 with `degraded`: the daemon cannot do its job.
/// A congested primary is not degraded (the original said 503 after 3 failed cycles, which
/// with its ping handling meant "the primary is at its worst").
/// `router` is the shell's router reachability (fed by every router exchange), read at `now`.
pub fn render_health(
    h: &SteeringHealth,
    uptime_s: f64,
    version: &str,
    pid: u32,
    consecutive_failures: u32,
    router: &Connectivity,
    now: Instant,
) -> (u16, String) {
    render_health_with(h, uptime_s, version, pid, consecutive_failures, &RouterStatus::of(router, now))
}

/// [`render_health`] with the router figures already taken.
pub fn render_health_with(
    h: &SteeringHealth,
    uptime_s: f64,
    version: &str,
    pid: u32,
    consecutive_failures: u32,
    router: &RouterStatus,
) -> (u16, String) {
    let healthy = router.is_reachable && h.unmeasured_seconds < h.unmeasured_limit_seconds;
    let mut j = Json::default();
    j.open();
    j.key("status").str(if healthy { "healthy" } else { "degraded" });
    j.key("uptime_seconds").float(round_to(uptime_s, 1));
    j.key("version").str(version);
    j.key("steering").open();
    j.key("enabled").bool(h.enabled);
    j.key("state").str(&h.state);
    j.key("mode").str(h.mode);
    j.close();
    j.key("congestion").open();
    j.key("primary").open();
    j.key("state").str(&h.congestion_state);
    j.key("state_code").int(i128::from(state_code(&h.congestion_state)));
    j.close();
    j.close();
    j.key("decision").open();
    j.key("last_transition_time");
    match &h.last_transition_time {
        Some(t) => j.str(t),
        None => j.null(),
    };
    j.key("time_in_state_seconds").float(round_to(h.time_in_state_seconds, 1));
    j.close();
    j.key("counters").open();
    j.key("red_count").int(i128::from(h.red_count));
    j.key("good_count").int(i128::from(h.good_count));
    j.key("cake_read_failures").int(i128::from(h.cake_read_failures));
    j.close();
    if let Some(score) = h.confidence_score {
        j.key("confidence").open();
        j.key("primary").int(i128::from(score));
        j.close();
    }
    j.key("errors").open();
    j.key("consecutive_failures").int(i128::from(consecutive_failures));
    j.key("cake_read_failures").int(i128::from(h.cake_read_failures));
    j.close();
    j.key("thresholds").open();
    j.key("green_rtt_ms").float(h.thresholds.green_rtt_ms);
    j.key("yellow_rtt_ms").float(h.thresholds.yellow_rtt_ms);
    j.key("red_rtt_ms").float(h.thresholds.red_rtt_ms);
    j.key("red_samples_required").int(i128::from(h.thresholds.red_samples_required));
    j.key("green_samples_required").int(i128::from(h.thresholds.green_samples_required));
    j.close();
    j.key("router_connectivity").open();
    j.key("is_reachable").bool(router.is_reachable);
    j.key("consecutive_failures").int(i128::from(router.consecutive_failures));
    j.key("last_failure_type");
    match router.last_failure_type {
        Some(t) => j.str(t),
        None => j.null(),
    };
    j.key("last_failure_time").opt_float(router.last_failure_time);
    j.key("outage_duration_seconds").opt_float(router.outage_duration_seconds.map(|d| round_to(d, 1)));
    j.close();
    j.key("pid").int(i128::from(pid));
    j.key("router_reachable").bool(router.is_reachable);
    // wanctl additions.
    let f = &h.flap;
    j.key("flap_brake").open();
    j.key("enabled").bool(f.enabled);
    j.key("active").bool(f.active);
    j.key("transitions_in_window").int(f.transitions_in_window as i128);
    j.key("max_toggles").int(f.max_toggles as i128);
    j.key("penalty_remaining_seconds").opt_float(f.penalty_remaining_seconds.map(|s| round_to(s, 1)));
    j.key("steer_threshold").opt_float(f.steer_threshold);
    j.key("samples_to_enable").int(i128::from(f.samples_to_enable));
    j.key("samples_to_disable").int(i128::from(f.samples_to_disable));
    j.close();
    j.key("measurement").open();
    j.key("baseline_rtt_ms").opt_float(h.baseline_rtt_ms.map(|v| round_to(v, 2)));
    j.key("last_rtt_ms").opt_float(h.last_rtt_ms.map(|v| round_to(v, 2)));
    j.key("rtt_delta_ewma_ms").float(round_to(h.rtt_delta_ewma_ms, 2));
    j.close();
    j.key("router_action").open();
    j.key("in_flight");
    match h.action_in_flight {
        Some(true) => j.str("enable"),
        Some(false) => j.str("disable"),
        None => j.null(),
    };
    j.key("failures").int(i128::from(h.action_failures));
    j.close();
    if let Some((en, dis)) = h.dry_run_decisions {
        j.key("dry_run_decisions").open();
        j.key("would_enable").int(i128::from(en));
        j.key("would_disable").int(i128::from(dis));
        j.close();
    }
    j.key("cycles").int(i128::from(h.cycles));
    j.key("failed_cycles").int(i128::from(h.failed_cycles));
    j.key("held_cycles").int(i128::from(h.held_cycles));
    j.key("lost_congested_cycles").int(i128::from(h.lost_congested_cycles));
    j.key("unmeasured_seconds").float(round_to(h.unmeasured_seconds, 1));
    j.key("wan_awareness").open();
    j.key("enabled").bool(h.wan_awareness);
    j.key("zone");
    match h.wan_zone {
        Some(z) => j.str(z),
        None => j.null(),
    };
    j.key("stale").bool(h.wan_zone_stale);
    j.close();
    j.close();
    (if healthy { 200 } else { 503 }, j.finish())
}

#[cfg(test)]
mod tests;
