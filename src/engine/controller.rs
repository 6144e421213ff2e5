//! The per-direction rate state machines of the original (`QueueController.adjust_4state`
//! for download, `adjust` for upload). Pure: deltas in, zone and rate out.
//!
//! These reproduce ALGORITHM.md §8–§9 cycle for cycle, including the emergent behaviours
//! that golden tests pin down: per-state floors are minimums that can *raise* the rate,
//! `green_streak` is not reset after a step-up (every further GREEN cycle steps again),
//! YELLOW decays every cycle, SOFT_RED holds. What the router eventually receives is decided
//! elsewhere (`engine::writer`), so this module stays a faithful, testable copy.
//!
//! Deliberate changes, each behind an explicit input so the faithful path stays testable:
//! * `spike`: the original's acceleration detector "forced RED" by setting a streak that the
//!   state machine immediately recomputed away, so it only delayed step-ups. Here a spike
//!   really forces one RED cycle, but only when the delta is already above the GREEN band
//!   (a jump that leaves the load within `target_bloat_ms` is jitter, not bloat).
//! * [`Hints::draining`] and [`Hints::cut_to`]: the original cut by `factor_down` every
//!   cycle for as long as the (lagging) delta stayed high, so after a capacity drop it kept
//!   cutting while the queue was already draining and ended far below capacity. See
//!   `engine::wan` for how the hints are computed and docs/COMPAT.md.

use std::fmt;

use crate::config::DirectionConfig;
use crate::units::Bps;

/// Congestion zone of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Zone {
    /// Delta within `target_bloat_ms`.
    Green,
    /// Above target.
    Yellow,
    /// Download only: above `warn_bloat_ms`.
    SoftRed,
    /// Above `hard_red_bloat_ms` (download) or `warn_bloat_ms` (upload).
    Red,
}

impl Zone {
    /// Upper-case name used in logs, health and state (`SOFT_RED`).
    pub fn as_str(self) -> &'static str {
        match self {
            Zone::Green => "GREEN",
            Zone::Yellow => "YELLOW",
            Zone::SoftRed => "SOFT_RED",
            Zone::Red => "RED",
        }
    }

    /// SQLite history encoding (GREEN 0 … RED 3).
    pub fn history_code(self) -> u8 {
        match self {
            Zone::Green => 0,
            Zone::Yellow => 1,
            Zone::SoftRed => 2,
            Zone::Red => 3,
        }
    }

    /// Prometheus encoding (GREEN 1 … RED 4).
    pub fn metrics_code(self) -> u8 {
        self.history_code() + 1
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a zone changed: the original's transition reason, kept as data and rendered on
/// demand (only history rows need the text).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    /// Previous zone.
    pub from: Zone,
    /// New zone.
    pub to: Zone,
    /// `load - baseline` at the transition (ms).
    pub delta_ms: f64,
    /// Which threshold was crossed and its value.
    pub threshold: (ThresholdName, f64),
    /// True if the delta rose above the threshold, false if it fell below it.
    pub exceeded: bool,
}

/// The threshold names used in reason strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdName {
    /// Download hard red.
    HardRed,
    /// Download soft red (`warn_bloat_ms`).
    SoftRed,
    /// Download green (`target_bloat_ms`).
    Green,
    /// Upload warn.
    Warn,
    /// Upload target.
    Target,
}

impl ThresholdName {
    fn as_str(self) -> &'static str {
        match self {
            ThresholdName::HardRed => "hard_red",
            ThresholdName::SoftRed => "soft_red",
            ThresholdName::Green => "green",
            ThresholdName::Warn => "warn",
            ThresholdName::Target => "target",
        }
    }
}

/// Formats a float as Python's `str()` would for a YAML value: integral values without a
/// fractional part (YAML `80` loads as an int upstream), others with the shortest repr.
pub fn py_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

impl fmt::Display for Transition {
    /// `RTT delta 23.4ms exceeded green threshold 15ms` (ALGORITHM.md §8, §9).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.exceeded { "exceeded" } else { "fell below" };
        write!(
            f,
            "RTT delta {:.1}ms {verb} {} threshold {}ms",
            self.delta_ms,
            self.threshold.0.as_str(),
            py_number(self.threshold.1)
        )
    }
}

/// Result of one cycle of one direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adjustment {
    /// Zone after this cycle.
    pub zone: Zone,
    /// Rate after this cycle.
    pub rate: Bps,
    /// Set when the zone differs from the previous cycle's.
    pub transition: Option<Transition>,
}

/// The download thresholds (ms) as the state machine uses them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZoneThresholds {
    /// GREEN→YELLOW.
    pub target_ms: f64,
    /// YELLOW→SOFT_RED (download) / YELLOW→RED (upload).
    pub warn_ms: f64,
    /// SOFT_RED→RED (download only).
    pub hard_red_ms: f64,
}

/// What the WAN cycle knows beyond the delta (see `engine::wan`). [`Hints::NONE`] gives the
/// original's behaviour exactly.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Hints {
    /// The load jumped by more than `accel_threshold_ms` this cycle.
    pub spike: bool,
    /// The queue is already draining fast enough (the load is falling): a further cut
    /// would only cost throughput, so RED and YELLOW hold instead of cutting.
    pub draining: bool,
    /// A rate estimated from how fast the queue grows at the router's current rate: a cut
    /// goes straight to it (bounded by [`MAX_CUT`]) instead of stepping down by
    /// `factor_down` per cycle.
    pub cut_to: Option<Bps>,
}

impl Hints {
    /// No hints: the original state machine.
    pub const NONE: Hints = Hints { spike: false, draining: false, cut_to: None };
}

/// The deepest single cut a capacity estimate may cause (new rate ≥ rate × MAX_CUT).
pub const MAX_CUT: f64 = 0.3;

/// One direction's controller: rate, streak counters and last zone.
#[derive(Debug, Clone)]
pub struct QueueController {
    cfg: DirectionConfig,
    rate: Bps,
    /// Consecutive GREEN cycles.
    pub green_streak: u32,
    /// Consecutive SOFT_RED cycles (download only).
    pub soft_red_streak: u32,
    /// Consecutive RED cycles.
    pub red_streak: u32,
    last_zone: Zone,
    soft_red_required: u32,
    /// Upstream 1.24 `dwell_cycles` (0/1: off).
    dwell_cycles: u32,
    /// Upstream 1.24 `deadband_ms` (0: off).
    deadband_ms: f64,
    /// Consecutive cycles above target while GREEN (the dwell count).
    yellow_dwell: u32,
}

impl QueueController {
    /// A controller at its ceiling with zeroed streaks, as the original starts.
    pub fn new(cfg: DirectionConfig) -> QueueController {
        QueueController {
            rate: cfg.ceiling,
            cfg,
            green_streak: 0,
            soft_red_streak: 0,
            red_streak: 0,
            last_zone: Zone::Green,
            soft_red_required: 1,
            dwell_cycles: 0,
            deadband_ms: 0.0,
            yellow_dwell: 0,
        }
    }

    /// The newer upstream's hysteresis (1.24, `thresholds.dwell_cycles` / `deadband_ms`):
    /// GREEN→YELLOW only after `dwell_cycles` consecutive cycles above target (the rate
    /// holds meanwhile), and YELLOW→GREEN only once the delta is below `target −
    /// min(deadband_ms, target/2)`. Zeros (the default) keep the original's behaviour.
    /// Unlike upstream, the dwell gates only GREEN→YELLOW: falling from SOFT_RED or RED into
    /// the YELLOW band is YELLOW at once (upstream would hold GREEN there).
    pub fn with_hysteresis(mut self, dwell_cycles: u32, deadband_ms: f64) -> QueueController {
        self.dwell_cycles = dwell_cycles;
        self.deadband_ms = deadband_ms.max(0.0);
        self
    }

    /// Applies dwell and deadband to the raw zone; returns the zone and whether it is a
    /// GREEN held by the dwell (no GREEN streak, rate holds).
    fn hysteresis(&mut self, raw: Zone, delta_ms: f64, target_ms: f64) -> (Zone, bool) {
        match (raw, self.last_zone) {
            (Zone::Yellow, Zone::Green) if self.dwell_cycles > 1 => {
                self.yellow_dwell = self.yellow_dwell.saturating_add(1);
                if self.yellow_dwell >= self.dwell_cycles {
                    self.yellow_dwell = 0;
                    (Zone::Yellow, false)
                } else {
                    (Zone::Green, true)
                }
            }
            (Zone::Green, Zone::Yellow)
                if self.deadband_ms > 0.0
                    && delta_ms >= target_ms - self.deadband_ms.min(target_ms * 0.5) =>
            {
                (Zone::Yellow, false)
            }
            (z, _) => {
                self.yellow_dwell = 0;
                (z, false)
            }
        }
    }

    /// Overrides the SOFT_RED sustain (the original hard-codes 1; tests raise it).
    pub fn with_soft_red_required(mut self, n: u32) -> QueueController {
        self.soft_red_required = n.max(1);
        self
    }

    /// The current rate.
    pub fn rate(&self) -> Bps {
        self.rate
    }

    /// The limits this controller works within.
    pub fn limits(&self) -> &DirectionConfig {
        &self.cfg
    }

    /// The zone of the last cycle (GREEN before the first).
    pub fn last_zone(&self) -> Zone {
        self.last_zone
    }

    /// Restores persisted counters and rate (state file). Unlike the original the rate is
    /// clamped into `[floor_red, ceiling]`: a state file from another config must not
    /// push the router outside the configured limits.
    pub fn restore(&mut self, rate: Bps, green: u32, soft_red: u32, red: u32) {
        self.rate = rate.clamp(self.cfg.floor_red, self.cfg.ceiling);
        self.green_streak = green;
        self.soft_red_streak = soft_red;
        self.red_streak = red;
    }

    /// Lowers the internal rate to at most `max` (never below `floor_red`). Used by the
    /// write policy to keep the controller from running far ahead of what the router has.
    pub fn cap_rate(&mut self, max: Bps) {
        if self.rate > max {
            self.rate = max.max(self.cfg.floor_red);
        }
    }

    /// The state string the original's health endpoint derived from streaks (INTERFACES.md
    /// §2.1): RED if red_streak > 0, SOFT_RED if soft_red_streak ≥ 1, GREEN if
    /// green_streak > 0, else YELLOW.
    pub fn streak_state(&self) -> Zone {
        if self.red_streak > 0 {
            Zone::Red
        } else if self.soft_red_streak >= 1 {
            Zone::SoftRed
        } else if self.green_streak > 0 {
            Zone::Green
        } else {
            Zone::Yellow
        }
    }

    /// Download: the 4-state machine (ALGORITHM.md §8). `spike` forces a RED cycle when the
    /// delta is above the GREEN band (see the module doc).
    pub fn adjust_4state(&mut self, delta_ms: f64, t: ZoneThresholds, spike: bool) -> Adjustment {
        self.adjust_4state_with(delta_ms, t, Hints { spike, ..Hints::NONE })
    }

    /// A cut from the current rate: to the estimate if there is one (holding if the rate is
    /// already at or below it, never deeper than [`MAX_CUT`] in one cycle), else by the
    /// configured factor.
    fn cut(&self, factor: f64, h: Hints) -> Bps {
        match h.cut_to {
            Some(target) if self.rate <= target => self.rate,
            Some(target) => target.max(self.rate.scale(MAX_CUT)),
            None => self.rate.scale(factor),
        }
    }

    /// [`QueueController::adjust_4state`] with all hints (see [`Hints`]).
    pub fn adjust_4state_with(&mut self, delta_ms: f64, t: ZoneThresholds, h: Hints) -> Adjustment {
        let spike = h.spike;
        let raw = if delta_ms > t.hard_red_ms || (spike && delta_ms > t.target_ms) {
            Zone::Red
        } else if delta_ms > t.warn_ms {
            Zone::SoftRed
        } else if delta_ms > t.target_ms {
            Zone::Yellow
        } else {
            Zone::Green
        };
        let (raw, held) = self.hysteresis(raw, delta_ms, t.target_ms);
        let zone = match raw {
            Zone::Red => {
                self.green_streak = 0;
                self.soft_red_streak = 0;
                self.red_streak = self.red_streak.saturating_add(1);
                Zone::Red
            }
            Zone::SoftRed => {
                self.green_streak = 0;
                self.soft_red_streak = self.soft_red_streak.saturating_add(1);
                self.red_streak = 0;
                if self.soft_red_streak >= self.soft_red_required { Zone::SoftRed } else { Zone::Yellow }
            }
            Zone::Yellow => {
                self.green_streak = 0;
                self.soft_red_streak = 0;
                self.red_streak = 0;
                Zone::Yellow
            }
            Zone::Green => {
                self.green_streak = if held { 0 } else { self.green_streak.saturating_add(1) };
                self.soft_red_streak = 0;
                self.red_streak = 0;
                Zone::Green
            }
        };
        let c = &self.cfg;
        let (rate, floor) = if self.red_streak >= 1 {
            (if h.draining { self.rate } else { self.cut(c.factor_down, h) }, c.floor_red)
        } else if zone == Zone::SoftRed {
            (self.rate, c.floor_soft_red)
        } else if self.green_streak >= c.green_required {
            (Bps(self.rate.0 + c.step_up.0), c.floor_green)
        } else if zone == Zone::Yellow {
            (if h.draining { self.rate } else { self.cut(c.factor_down_yellow, h) }, c.floor_yellow)
        } else {
            (self.rate, c.floor_green)
        };
        self.rate = if c.adaptive { rate.max(floor).min(c.ceiling) } else { c.ceiling };
        let transition = self.transition(zone, delta_ms, |to| match to {
            Zone::Red => (ThresholdName::HardRed, t.hard_red_ms),
            Zone::SoftRed => (ThresholdName::SoftRed, t.warn_ms),
            _ => (ThresholdName::Green, t.target_ms),
        });
        Adjustment { zone, rate: self.rate, transition }
    }

    /// Upload: the 3-state machine (ALGORITHM.md §9). RED at `warn_ms`; only `floor_red`
    /// bounds the rate.
    pub fn adjust_3state(&mut self, delta_ms: f64, t: ZoneThresholds) -> Adjustment {
        self.adjust_3state_with(delta_ms, t, Hints::NONE)
    }

    /// [`QueueController::adjust_3state`] with hints (`spike` is ignored: upload never had
    /// spike detection).
    pub fn adjust_3state_with(&mut self, delta_ms: f64, t: ZoneThresholds, h: Hints) -> Adjustment {
        let raw = if delta_ms > t.warn_ms {
            Zone::Red
        } else if delta_ms > t.target_ms {
            Zone::Yellow
        } else {
            Zone::Green
        };
        let (zone, held) = self.hysteresis(raw, delta_ms, t.target_ms);
        match zone {
            Zone::Red => {
                self.red_streak = self.red_streak.saturating_add(1);
                self.green_streak = 0;
            }
            Zone::Green => {
                self.green_streak = if held { 0 } else { self.green_streak.saturating_add(1) };
                self.red_streak = 0;
            }
            _ => {
                self.red_streak = 0;
                self.green_streak = 0;
            }
        }
        let c = &self.cfg;
        let rate = if self.red_streak >= 1 {
            if h.draining { self.rate } else { self.cut(c.factor_down, h) }
        } else if self.green_streak >= c.green_required {
            Bps(self.rate.0 + c.step_up.0)
        } else if zone == Zone::Yellow {
            if h.draining { self.rate } else { self.cut(c.factor_down_yellow, h) }
        } else {
            self.rate
        };
        // `adaptive: false`: measured and reported, never moved from the ceiling.
        self.rate = if c.adaptive { rate.max(c.floor_red).min(c.ceiling) } else { c.ceiling };
        let transition = self.transition(zone, delta_ms, |to| match to {
            Zone::Red => (ThresholdName::Warn, t.warn_ms),
            _ => (ThresholdName::Target, t.target_ms),
        });
        Adjustment { zone, rate: self.rate, transition }
    }

    fn transition(
        &mut self,
        zone: Zone,
        delta_ms: f64,
        threshold_of: impl Fn(Zone) -> (ThresholdName, f64),
    ) -> Option<Transition> {
        let from = self.last_zone;
        self.last_zone = zone;
        if from == zone {
            return None;
        }
        // Rising: name the threshold of the new zone. Falling to GREEN: the green/target
        // threshold the delta fell below. Falling to a non-GREEN zone: the threshold that
        // still holds it there, "exceeded" (the original reports the zone's own reason).
        let exceeded = zone != Zone::Green;
        Some(Transition { from, to: zone, delta_ms, threshold: threshold_of(zone), exceeded })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: ZoneThresholds = ZoneThresholds { target_ms: 9.0, warn_ms: 45.0, hard_red_ms: 60.0 };

    fn dir() -> DirectionConfig {
        let mb = Bps::from_mbps;
        DirectionConfig {
            ceiling: mb(100.0),
            step_up: mb(5.0),
            factor_down: 0.85,
            factor_down_yellow: 0.96,
            green_required: 5,
            adaptive: true,
            floor_green: mb(10.0),
            floor_yellow: mb(10.0),
            floor_soft_red: mb(10.0),
            floor_red: mb(10.0),
        }
    }

    fn zones(q: &mut QueueController, deltas: &[f64], upload: bool) -> (Vec<Zone>, Vec<u64>) {
        let (mut z, mut r) = (vec![], vec![]);
        for &d in deltas {
            let a = if upload { q.adjust_3state(d, T) } else { q.adjust_4state(d, T, false) };
            z.push(a.zone);
            r.push(a.rate.0 / 1_000_000);
        }
        (z, r)
    }

    use Zone::{Green as G, Red as R, Yellow as Y};

    #[test]
    fn golden_dwell_holds_green_and_the_rate_until_confirmed() {
        let deltas = [12.0, 12.0, 12.0, 12.0, 12.0, 12.0, 4.0, 12.0, 12.0, 50.0];
        for upload in [false, true] {
            let mut q = QueueController::new(dir());
            let (z, r) = zones(&mut q, &deltas, upload);
            assert_eq!(&z[..3], &[Y, Y, Y], "no dwell: YELLOW at once");
            assert_eq!(r[0], 96);
            let mut q = QueueController::new(dir()).with_hysteresis(5, 0.0);
            let (z, r) = zones(&mut q, &deltas, upload);
            let want_last = if upload { R } else { Zone::SoftRed };
            assert_eq!(z, vec![G, G, G, G, Y, Y, G, G, G, want_last], "upload {upload}");
            assert_eq!(&r[..5], &[100, 100, 100, 100, 96], "the rate holds during the dwell");
        }
    }

    #[test]
    fn golden_deadband_keeps_yellow_just_below_target() {
        // target 9, deadband 3: YELLOW→GREEN below 6 ms only.
        let deltas = [12.0, 8.0, 6.5, 5.9, 8.0];
        let mut q = QueueController::new(dir()).with_hysteresis(0, 3.0);
        let (z, _) = zones(&mut q, &deltas, false);
        assert_eq!(z, vec![Y, Y, Y, G, G]);
        // A deadband above target/2 is capped at target/2 (4.5 ms: GREEN below 4.5).
        let mut q = QueueController::new(dir()).with_hysteresis(0, 20.0);
        let (z, _) = zones(&mut q, &[12.0, 5.0, 4.4], true);
        assert_eq!(z, vec![Y, Y, G]);
        // Without the keys: the original's immediate GREEN.
        let mut q = QueueController::new(dir());
        let (z, _) = zones(&mut q, &deltas, false);
        assert_eq!(z, vec![Y, G, G, G, G]);
    }
}
