//! The steering `/health` document: the figures the engine exposes and their rendering.
//! Pure.

use crate::engine::connectivity::Connectivity;
use crate::engine::health::{Json, round_to};
use crate::time::Instant;

use super::state_code;

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
