//! The confidence controller ("Phase 2B", STEERING.md §5) and the flap brake. Pure.
//!
//! ```text
//!            score ≥ steer (+penalty)              hold-down runs out
//!  GOOD ──── degrade timer: start, −dt … ≤ 0 ──▶ ENABLE ──▶ DEGRADED ── hold-down (−dt) ──┐
//!   ▲        (score below: timer reset)                                                   │
//!   └── DISABLE ◀── recovery timer: start, −dt … ≤ 0 ◀── score ≤ recovery, GREEN, ◀───────┘
//!                   (any condition violated: reset)       delta < 10 ms, no drops
//! ```
//!
//! Differences from the original, on purpose:
//! * the timers run on the real elapsed time between evaluations, not a fixed 0.05 s step
//!   (with a 2 s interval the original's "2 s" sustain took 82 s). A sustain timer takes at
//!   most two intervals from one evaluation, so a stalled cycle cannot fake a sustained
//!   condition; the hold-down is plain time and takes the whole gap;
//! * the hold-down starts when the engine confirms the router is steering (any path), not
//!   on a dry-run "would enable" while still GOOD;
//! * in live mode a decision stays armed (the timer stays expired) until the router
//!   confirms the transition, so a failed router call is retried; in dry-run the timer
//!   restarts after each logged decision, as the original;
//! * the flap brake counts router-confirmed transitions of both paths, and its penalty is
//!   applied (the original computed it and dropped it), see [`FlapBrake`].

use std::collections::VecDeque;
use std::time::Duration;

use log::{error, info, warn};

use crate::config::ConfidenceConfig;
use crate::time::Instant;

const TARGET: &str = "wanctl::steering";

/// Score weights (the original's `ConfidenceWeights`).
const RED_STATE: u32 = 50;
const SOFT_RED_SUSTAINED: u32 = 25;
const YELLOW_STATE: u32 = 10;
const RTT_DELTA_HIGH: u32 = 15;
const RTT_DELTA_SEVERE: u32 = 25;
const DROPS_INCREASING: u32 = 10;
const QUEUE_HIGH_SUSTAINED: u32 = 10;

/// Recovery eligibility limits (hard-coded in the original).
const RECOVERY_MAX_DELTA_MS: f64 = 10.0;
const RECOVERY_MAX_DROPS: f64 = 0.001;

/// What the score is computed from, as the original's daemon wires it (STEERING.md §5.1).
#[derive(Debug, Clone, Copy)]
pub struct ScoreInputs<'a> {
    /// The congestion state of the **previous** cycle (the assessment runs later).
    pub cake_state: &'a str,
    /// This cycle's raw RTT delta (ms).
    pub rtt_delta_ms: f64,
    /// This cycle's drop delta (called "per second" upstream; it is per cycle).
    pub drops: f64,
    /// This cycle's queued packets (called "percent" upstream; it is packets).
    pub queue: f64,
    /// Last congestion states.
    pub cake_state_history: &'a VecDeque<String>,
    /// Per-cycle drop deltas.
    pub drops_history: &'a VecDeque<u64>,
    /// Per-cycle queued packets.
    pub queue_history: &'a VecDeque<u64>,
    /// Points for the autorate daemon's zone (WAN awareness, newer upstream 1.11+):
    /// `wan_state.red_weight` for RED, 48 % of it for SOFT_RED, 0 otherwise or when off.
    pub wan_points: u32,
}

/// The 0–100 score and its contributor labels, recomputed from scratch every cycle.
pub fn compute_score(i: &ScoreInputs<'_>) -> (u32, Vec<String>) {
    let mut score = 0u32;
    let mut why = Vec::new();
    match i.cake_state {
        "RED" => {
            score += RED_STATE;
            why.push("RED".to_string());
        }
        "SOFT_RED" => {
            let n = i.cake_state_history.len();
            if n >= 3 && i.cake_state_history.iter().skip(n - 3).all(|s| s == "SOFT_RED") {
                score += SOFT_RED_SUSTAINED;
                why.push("SOFT_RED_sustained".to_string());
            }
        }
        "YELLOW" => {
            score += YELLOW_STATE;
            why.push("YELLOW".to_string());
        }
        _ => {}
    }
    if i.rtt_delta_ms > 120.0 {
        score += RTT_DELTA_SEVERE;
        why.push(format!("rtt_delta={:.1}ms(severe)", i.rtt_delta_ms));
    } else if i.rtt_delta_ms > 80.0 {
        score += RTT_DELTA_HIGH;
        why.push(format!("rtt_delta={:.1}ms(high)", i.rtt_delta_ms));
    }
    let d = i.drops_history.len();
    if d >= 3 {
        let (first, last) = (i.drops_history[d - 3], i.drops_history[d - 1]);
        if last > first && last > 0 {
            score += DROPS_INCREASING;
            why.push(format!("drops_increasing({:.1}/s)", last as f64));
        }
    }
    let q = i.queue_history.len();
    if q >= 2 && i.queue_history.iter().skip(q - 2).all(|&v| v > 50) {
        score += QUEUE_HIGH_SUSTAINED;
        why.push(format!("queue_high({:.0}%)", i.queue));
    }
    if i.wan_points > 0 {
        score += i.wan_points;
        why.push(format!("wan_zone(+{})", i.wan_points));
    }
    (score.min(100), why)
}

/// A decision of the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Steer latency-sensitive traffic to the alternate WAN.
    Enable,
    /// Stop steering.
    Disable,
}

/// The confidence controller's timers and last score.
#[derive(Debug, Clone)]
pub struct Controller {
    cfg: ConfidenceConfig,
    /// Longest step a sustain timer takes from one evaluation (two intervals).
    max_sustain_step: f64,
    interval: f64,
    score: u32,
    contributors: Vec<String>,
    degrade_timer: Option<f64>,
    hold_down: Option<f64>,
    recovery_timer: Option<f64>,
    last_eval: Option<Instant>,
    would_enable: u64,
    would_disable: u64,
}

impl Controller {
    /// A controller with no timers running; `interval` is the measurement period.
    pub fn new(cfg: &ConfidenceConfig, interval: Duration) -> Controller {
        let interval = interval.as_secs_f64();
        Controller {
            cfg: cfg.clone(),
            max_sustain_step: 2.0 * interval,
            interval,
            score: 0,
            contributors: Vec::new(),
            degrade_timer: None,
            hold_down: None,
            recovery_timer: None,
            last_eval: None,
            would_enable: 0,
            would_disable: 0,
        }
    }

    /// Log-only mode.
    pub fn is_dry_run(&self) -> bool {
        self.cfg.dry_run
    }

    /// The last score (0–100).
    pub fn score(&self) -> u32 {
        self.score
    }

    /// Dry-run decisions logged so far: (would enable, would disable).
    pub fn would_decisions(&self) -> (u64, u64) {
        (self.would_enable, self.would_disable)
    }

    /// Seconds left on the hold-down, if running.
    pub fn hold_down_remaining(&self) -> Option<f64> {
        self.hold_down
    }

    /// One evaluation. `steering` is the confirmed router state, `steer_threshold` the
    /// threshold in force (the flap penalty included). Returns a decision only in live
    /// mode; dry-run decisions are logged and counted.
    pub fn evaluate(
        &mut self,
        now: Instant,
        inputs: &ScoreInputs<'_>,
        steering: bool,
        steer_threshold: f64,
    ) -> Option<Decision> {
        let real_dt = self.last_eval.map_or(self.interval, |t| now.saturating_since(t).as_secs_f64());
        self.last_eval = Some(now);
        let dt = real_dt.min(self.max_sustain_step);
        let (score, why) = compute_score(inputs);
        self.score = score;
        self.contributors = why;
        let decision = if steering {
            self.degrade_timer = None;
            self.evaluate_degraded(inputs, real_dt, dt)
        } else {
            self.hold_down = None;
            self.recovery_timer = None;
            self.evaluate_good(steer_threshold, dt)
        }?;
        if !self.cfg.dry_run {
            return Some(decision);
        }
        let signals = self.contributors.join(", ");
        match decision {
            Decision::Enable => {
                self.would_enable += 1;
                self.degrade_timer = None;
                warn!(
                    target: TARGET,
                    "[CONFIDENCE][DRY-RUN] WOULD_ENABLE_STEERING confidence={score} signals=[{signals}]; actual routing unchanged"
                );
            }
            Decision::Disable => {
                self.would_disable += 1;
                self.recovery_timer = None;
                info!(
                    target: TARGET,
                    "[CONFIDENCE][DRY-RUN] WOULD_DISABLE_STEERING confidence={score}; actual routing unchanged"
                );
            }
        }
        None
    }

    fn evaluate_good(&mut self, steer_threshold: f64, dt: f64) -> Option<Decision> {
        if f64::from(self.score) < steer_threshold {
            if self.degrade_timer.take().is_some() {
                info!(target: TARGET, "[CONFIDENCE] confidence={} degrade_timer_reset reason=below_threshold", self.score);
            }
            return None;
        }
        match self.degrade_timer {
            None => {
                // The starting evaluation does not count down (the original's order).
                self.degrade_timer = Some(self.cfg.sustain_duration.as_secs_f64());
                info!(
                    target: TARGET,
                    "[CONFIDENCE] confidence={} signals=[{}] degrade_timer_start={:.2}s",
                    self.score,
                    self.contributors.join(", "),
                    self.cfg.sustain_duration.as_secs_f64()
                );
                None
            }
            Some(t) => {
                let t = t - dt;
                self.degrade_timer = Some(t);
                (t <= 0.0).then_some(Decision::Enable)
            }
        }
    }

    fn evaluate_degraded(&mut self, i: &ScoreInputs<'_>, real_dt: f64, dt: f64) -> Option<Decision> {
        if let Some(h) = self.hold_down {
            let h = h - real_dt;
            if h > 0.0 {
                self.hold_down = Some(h);
                self.recovery_timer = None;
                return None;
            }
            self.hold_down = None;
            info!(target: TARGET, "[CONFIDENCE] hold_down_expired resume_evaluation");
        }
        let score_ok = f64::from(self.score) <= self.cfg.recovery_threshold;
        let state_ok = i.cake_state == "GREEN";
        let delta_ok = i.rtt_delta_ms < RECOVERY_MAX_DELTA_MS;
        let drops_ok = i.drops < RECOVERY_MAX_DROPS;
        if !(score_ok && state_ok && delta_ok && drops_ok) {
            if self.recovery_timer.take().is_some() {
                let mut why = Vec::new();
                if !score_ok {
                    why.push(format!("confidence={}", self.score));
                }
                if !state_ok {
                    why.push(format!("state={}", i.cake_state));
                }
                if !delta_ok {
                    why.push(format!("rtt_delta={:.1}ms", i.rtt_delta_ms));
                }
                if !drops_ok {
                    why.push(format!("drops={:.3}", i.drops));
                }
                info!(target: TARGET, "[CONFIDENCE] recovery_timer_reset reason=[{}]", why.join(", "));
            }
            return None;
        }
        match self.recovery_timer {
            None => {
                self.recovery_timer = Some(self.cfg.recovery_sustain.as_secs_f64());
                None
            }
            Some(t) => {
                let t = t - dt;
                self.recovery_timer = Some(t);
                (t <= 0.0).then_some(Decision::Disable)
            }
        }
    }

    /// The router confirmed a transition: entering DEGRADED starts the hold-down, and the
    /// timers of the state left are cleared.
    pub fn on_transition(&mut self, steering: bool) {
        self.degrade_timer = None;
        self.recovery_timer = None;
        self.hold_down = steering.then_some(self.cfg.hold_down_duration.as_secs_f64());
    }

    /// A cycle without a measurement: nothing was observed, so no condition was sustained.
    /// The sustain timers restart; the hold-down keeps running on real time.
    pub fn on_gap(&mut self) {
        self.degrade_timer = None;
        self.recovery_timer = None;
    }
}

/// The flap brake (STEERING.md §5.3, with the penalty applied).
///
/// Every router-confirmed transition is recorded with its instant; entries older than the
/// window are pruned. The brake **engages as soon as the window holds `max_toggles`
/// transitions**, i.e. before a transition that would make it *more than* `max_toggles`,
/// and stays engaged for `penalty_duration`; if the window is still full when the penalty
/// runs out, it is re-armed (the original re-engaged the same way). While engaged:
/// * the confidence controller's steer threshold is raised by `penalty_threshold_add`;
/// * the hysteresis sample counts (RED/GREEN, legacy bad/good) are multiplied by
///   `(steer_threshold + penalty_threshold_add) / steer_threshold`, rounded up: the same
///   proportion by which the penalty raises the score needed to steer (defaults 55 + 15:
///   ×1.27, so 2 RED → 3 and 15 GREEN → 20). Both directions are scaled: a flapping link
///   holds whichever state it is in for longer.
///
/// This damps flapping whose episodes are shorter than the scaled counts; a link whose
/// congestion episodes outlast them is switched as usual.
#[derive(Debug, Clone)]
pub struct FlapBrake {
    enabled: bool,
    window: Duration,
    max_toggles: usize,
    penalty: Duration,
    threshold_add: f64,
    factor: f64,
    toggles: VecDeque<Instant>,
    until: Option<Instant>,
    engagements: u64,
}

impl FlapBrake {
    /// A brake configured from the `confidence` block, or its documented defaults when
    /// absent (the brake protects the plain hysteresis mode too).
    pub fn new(cfg: Option<&ConfidenceConfig>) -> FlapBrake {
        let defaults = ConfidenceConfig::default();
        let c = cfg.unwrap_or(&defaults);
        FlapBrake {
            enabled: c.flap_detection_enabled,
            window: c.flap_window,
            max_toggles: c.max_toggles.max(1) as usize,
            penalty: c.penalty_duration,
            threshold_add: c.penalty_threshold_add,
            factor: 1.0 + c.penalty_threshold_add.max(0.0) / c.steer_threshold.max(1.0),
            toggles: VecDeque::new(),
            until: None,
            engagements: 0,
        }
    }

    /// Flap detection configured on.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Records a confirmed transition.
    pub fn record(&mut self, now: Instant) {
        if !self.enabled {
            return;
        }
        self.toggles.push_back(now);
        self.prune(now);
        // Bounded even with a huge window (the original kept at most 20).
        while self.toggles.len() > self.max_toggles.max(20) {
            self.toggles.pop_front();
        }
    }

    fn prune(&mut self, now: Instant) {
        while self.toggles.front().is_some_and(|&t| now.saturating_since(t) >= self.window) {
            self.toggles.pop_front();
        }
    }

    /// Advances the brake to `now` (call once per cycle, before deciding).
    pub fn update(&mut self, now: Instant) {
        if !self.enabled {
            return;
        }
        self.prune(now);
        let full = self.toggles.len() >= self.max_toggles;
        match self.until {
            Some(u) if now < u => {}
            Some(_) if full => {
                self.until = Some(now + self.penalty);
                info!(target: TARGET, "[FLAP-BRAKE] still flapping, penalty extended by {:.0}s", self.penalty.as_secs_f64());
            }
            Some(_) => {
                self.until = None;
                warn!(target: TARGET, "[FLAP-BRAKE] disengaged, thresholds back to normal");
            }
            None if full => {
                self.until = Some(now + self.penalty);
                self.engagements += 1;
                error!(
                    target: TARGET,
                    "[FLAP-BRAKE] ENGAGED: {} transitions within {:.0}s (max {}); steer threshold +{}, sample counts ×{:.2} for {:.0}s",
                    self.toggles.len(),
                    self.window.as_secs_f64(),
                    self.max_toggles,
                    self.threshold_add,
                    self.factor,
                    self.penalty.as_secs_f64()
                );
            }
            None => {}
        }
    }

    /// Penalty in force at `now`.
    pub fn is_active(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }

    /// Seconds of penalty left.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.until.filter(|&u| now < u).map(|u| u.saturating_since(now))
    }

    /// Transitions recorded in the window ending at `now`.
    pub fn in_window(&self, now: Instant) -> usize {
        self.toggles.iter().filter(|&&t| now.saturating_since(t) < self.window).count()
    }

    /// `max_toggles`.
    pub fn max_toggles(&self) -> usize {
        self.max_toggles
    }

    /// Times the brake engaged (re-arming while still flapping is not counted).
    pub fn engagements(&self) -> u64 {
        self.engagements
    }

    /// The confidence steer threshold in force.
    pub fn steer_threshold(&self, base: f64, now: Instant) -> f64 {
        if self.is_active(now) { base + self.threshold_add } else { base }
    }

    /// A hysteresis sample count in force.
    pub fn samples(&self, base: u32, now: Instant) -> u32 {
        if self.is_active(now) { (f64::from(base) * self.factor).ceil() as u32 } else { base }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dry_run: bool) -> ConfidenceConfig {
        ConfidenceConfig { dry_run, ..ConfidenceConfig::default() }
    }

    struct Hist {
        states: VecDeque<String>,
        drops: VecDeque<u64>,
        queue: VecDeque<u64>,
    }

    fn hist(states: &[&str], drops: &[u64], queue: &[u64]) -> Hist {
        Hist {
            states: states.iter().map(|s| s.to_string()).collect(),
            drops: drops.iter().copied().collect(),
            queue: queue.iter().copied().collect(),
        }
    }

    fn inputs<'a>(state: &'a str, delta: f64, drops: f64, h: &'a Hist) -> ScoreInputs<'a> {
        ScoreInputs {
            cake_state: state,
            rtt_delta_ms: delta,
            drops,
            queue: h.queue.back().map_or(0.0, |&q| q as f64),
            cake_state_history: &h.states,
            drops_history: &h.drops,
            queue_history: &h.queue,
            wan_points: 0,
        }
    }

    #[test]
    fn score_table() {
        let cases: &[(&str, &str, f64, Hist, u32)] = &[
            ("green_quiet", "GREEN", 0.0, hist(&[], &[], &[]), 0),
            ("red", "RED", 0.0, hist(&[], &[], &[]), 50),
            ("yellow", "YELLOW", 0.0, hist(&[], &[], &[]), 10),
            ("soft_red_unsustained", "SOFT_RED", 0.0, hist(&["SOFT_RED", "SOFT_RED"], &[], &[]), 0),
            (
                "soft_red_sustained",
                "SOFT_RED",
                0.0,
                hist(&["GREEN", "SOFT_RED", "SOFT_RED", "SOFT_RED"], &[], &[]),
                25,
            ),
            ("delta_high", "GREEN", 80.1, hist(&[], &[], &[]), 15),
            ("delta_80_is_not_high", "GREEN", 80.0, hist(&[], &[], &[]), 0),
            ("delta_severe", "GREEN", 120.1, hist(&[], &[], &[]), 25),
            ("drops_increasing", "GREEN", 0.0, hist(&[], &[1, 0, 2], &[]), 10),
            ("drops_flat", "GREEN", 0.0, hist(&[], &[2, 5, 2], &[]), 0),
            ("drops_two_samples", "GREEN", 0.0, hist(&[], &[0, 2], &[]), 0),
            ("queue_sustained", "GREEN", 0.0, hist(&[], &[], &[10, 51, 51]), 10),
            ("queue_once", "GREEN", 0.0, hist(&[], &[], &[51, 50]), 0),
            ("everything_clamped", "RED", 130.0, hist(&[], &[0, 1, 9], &[60, 60]), 95),
        ];
        for (name, state, delta, h, want) in cases {
            let (got, _) = compute_score(&inputs(state, *delta, 0.0, h));
            assert_eq!(got, *want, "{name}");
        }
    }

    /// Evaluations (1-based) until the controller decides, with a fixed step.
    fn evaluations_until(c: &mut Controller, step: Duration, steering: bool, state: &str, delta: f64) -> u32 {
        let h = hist(&[], &[], &[]);
        let mut now = Instant::from_secs(100);
        for n in 1..=100_000 {
            if c.evaluate(now, &inputs(state, delta, 0.0, &h), steering, 55.0).is_some() {
                return n;
            }
            now += step;
        }
        panic!("no decision");
    }

    #[test]
    fn degrade_timer_fires_on_the_41st_evaluation_at_50ms() {
        let mut c = Controller::new(&cfg(false), Duration::from_millis(50));
        assert_eq!(evaluations_until(&mut c, Duration::from_millis(50), false, "RED", 130.0), 41);
        // 3.0 s needs one more than 1 + 60 because of the f64 residue (as the original).
        let mut c = Controller::new(
            &ConfidenceConfig { sustain_duration: Duration::from_secs(3), ..cfg(false) },
            Duration::from_millis(50),
        );
        assert_eq!(evaluations_until(&mut c, Duration::from_millis(50), false, "RED", 130.0), 62);
    }

    #[test]
    fn timers_use_real_time_not_a_fixed_step() {
        // Issue 6: with a 2 s interval, "2 s sustained" is two evaluations, not 41.
        let mut c = Controller::new(&cfg(false), Duration::from_secs(2));
        assert_eq!(evaluations_until(&mut c, Duration::from_secs(2), false, "RED", 130.0), 2);
    }

    #[test]
    fn a_stalled_cycle_cannot_fake_a_sustained_condition() {
        let mut c = Controller::new(&cfg(false), Duration::from_millis(50));
        let h = hist(&[], &[], &[]);
        let i = inputs("RED", 130.0, 0.0, &h);
        assert_eq!(c.evaluate(Instant::from_secs(1), &i, false, 55.0), None);
        // 30 s later: only two intervals (0.1 s) of the 2 s sustain are taken.
        assert_eq!(c.evaluate(Instant::from_secs(31), &i, false, 55.0), None);
    }

    #[test]
    fn hold_down_expires_after_600_evaluations_then_recovery_runs() {
        let mut c = Controller::new(&cfg(false), Duration::from_millis(50));
        c.on_transition(true);
        let h = hist(&[], &[], &[]);
        let i = inputs("GREEN", 0.0, 0.0, &h);
        let mut now = Instant::from_secs(10);
        let mut n = 0;
        while c.hold_down_remaining().is_some() {
            n += 1;
            assert_eq!(c.evaluate(now, &i, true, 55.0), None);
            now += Duration::from_millis(50);
        }
        assert_eq!(n, 600);
        // The expiring evaluation already started the recovery timer (3 s): 60 more.
        let mut m = 0;
        while c.evaluate(now, &i, true, 55.0).is_none() {
            m += 1;
            now += Duration::from_millis(50);
        }
        assert!((59..=61).contains(&m), "{m}");
    }

    #[test]
    fn recovery_needs_all_four_conditions_and_resets_on_violation() {
        let h = hist(&[], &[], &[]);
        let step = Duration::from_millis(50);
        for (name, state, delta, drops) in
            [("yellow", "YELLOW", 0.0, 0.0), ("delta", "GREEN", 10.0, 0.0), ("drops", "GREEN", 0.0, 1.0)]
        {
            let mut c = Controller::new(&cfg(false), step);
            let mut now = Instant::from_secs(1);
            for _ in 0..200 {
                assert_eq!(c.evaluate(now, &inputs(state, delta, drops, &h), true, 55.0), None, "{name}");
                now += step;
            }
        }
        // A violation in the middle restarts the timer.
        let mut c = Controller::new(&cfg(false), step);
        let mut now = Instant::from_secs(1);
        for _ in 0..30 {
            assert_eq!(c.evaluate(now, &inputs("GREEN", 0.0, 0.0, &h), true, 55.0), None);
            now += step;
        }
        assert_eq!(c.evaluate(now, &inputs("RED", 0.0, 0.0, &h), true, 55.0), None);
        let mut n = 0;
        loop {
            now += step;
            n += 1;
            if c.evaluate(now, &inputs("GREEN", 0.0, 0.0, &h), true, 55.0).is_some() {
                break;
            }
        }
        assert!(n > 60, "timer restarted: {n}");
    }

    #[test]
    fn dry_run_counts_and_returns_nothing() {
        let mut c = Controller::new(&cfg(true), Duration::from_millis(50));
        let h = hist(&[], &[], &[]);
        let mut now = Instant::ZERO;
        for _ in 0..200 {
            assert_eq!(c.evaluate(now, &inputs("RED", 130.0, 0.0, &h), false, 55.0), None);
            now += Duration::from_millis(50);
        }
        assert_eq!(c.would_decisions(), (4, 0), "a would-decision every 41 evaluations");
        assert_eq!(c.hold_down_remaining(), None, "no hold-down while still GOOD");
    }

    #[test]
    fn live_decision_stays_armed_until_confirmed() {
        let mut c = Controller::new(&cfg(false), Duration::from_millis(50));
        let h = hist(&[], &[], &[]);
        let mut now = Instant::ZERO;
        let i = inputs("RED", 130.0, 0.0, &h);
        while c.evaluate(now, &i, false, 55.0).is_none() {
            now += Duration::from_millis(50);
        }
        now += Duration::from_millis(50);
        assert_eq!(c.evaluate(now, &i, false, 55.0), Some(Decision::Enable), "retried next cycle");
        c.on_transition(true);
        assert!(c.hold_down_remaining().is_some());
    }

    #[test]
    fn flap_brake_engages_at_max_toggles_and_scales_thresholds() {
        let mut b = FlapBrake::new(None);
        let t = Instant::from_secs(1000);
        for i in 0..3 {
            b.record(t + Duration::from_secs(i * 10));
        }
        b.update(t + Duration::from_secs(31));
        assert!(!b.is_active(t + Duration::from_secs(31)), "3 of 4: not yet");
        b.record(t + Duration::from_secs(40));
        let now = t + Duration::from_secs(41);
        b.update(now);
        assert!(b.is_active(now));
        assert_eq!(b.steer_threshold(55.0, now), 70.0);
        assert_eq!(b.samples(2, now), 3);
        assert_eq!(b.samples(15, now), 20);
        assert_eq!(b.samples(8, now), 11);
        // Re-armed every penalty period while the window is still full, released once it
        // has drained: the last toggle (t+40) leaves the 300 s window at t+340.
        let mut released = None;
        for s in 42..=500u64 {
            let at = t + Duration::from_secs(s);
            b.update(at);
            if !b.is_active(at) {
                released = Some(s);
                break;
            }
        }
        assert_eq!(released, Some(341));
        let end = t + Duration::from_secs(341);
        assert_eq!(b.samples(2, end), 2);
        assert_eq!(b.steer_threshold(55.0, end), 55.0);
        assert_eq!(b.engagements(), 1);
    }

    #[test]
    fn flap_brake_off_never_engages() {
        let mut b = FlapBrake::new(Some(&ConfidenceConfig {
            flap_detection_enabled: false,
            ..ConfidenceConfig::default()
        }));
        let t = Instant::from_secs(10);
        for i in 0..10 {
            b.record(t + Duration::from_secs(i));
        }
        b.update(t + Duration::from_secs(11));
        assert!(!b.is_active(t + Duration::from_secs(11)));
    }
}
