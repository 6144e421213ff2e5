//! What the steering engine measures and how a cycle's signals become a congestion verdict
//! (STEERING.md §4.1 and wanctl's additions). Pure.

use std::time::Duration;

use crate::config::SteeringThresholds;
use crate::wire::routeros::QueueStats;

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

    pub(crate) fn is_red(self) -> bool {
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
pub(crate) fn prometheus_code(state: &str) -> u8 {
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
