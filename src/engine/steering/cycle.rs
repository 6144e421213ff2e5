//! The steps of one steering cycle (see the engine's module docs): CAKE counters, the
//! baseline and the WAN zone, held and lost cycles, the hysteresis, router actions and
//! transitions. Pure.

use std::time::Duration;

use log::{debug, error, info, warn};

use super::*;

impl SteeringEngine {
    // -----------------------------------------------------------------------------------
    // Cycle steps
    // -----------------------------------------------------------------------------------

    /// CAKE figures for this cycle: (drops since the last good read, queued packets).
    pub(super) fn read_cake(&mut self, m: &Measurements) -> (u64, u64) {
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

    pub(super) fn update_baseline(&mut self, value: Option<f64>, now: Instant) {
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
    pub(super) fn update_zone(&mut self, now: Instant, read: Option<(WanZone, Duration)>) -> Option<WanZone> {
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
    pub(super) fn wan_points(&self, zone: Option<WanZone>) -> u32 {
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
    pub(super) fn hold(&mut self, now: Instant) -> CycleOutcome {
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
    pub(super) fn lost(
        &mut self,
        now: Instant,
        drops: u64,
        queued: u64,
        zone: Option<WanZone>,
    ) -> CycleOutcome {
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
    pub(super) fn gap(&mut self, now: Instant, reason: &'static str) -> CycleOutcome {
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
    pub(super) fn hysteresis(
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
    pub(super) fn request(&mut self, now: Instant, enable: bool, source: Source) -> bool {
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
    pub(super) fn maybe_reconcile(&mut self, now: Instant) {
        if self.router_uncertain && self.pending.is_none() {
            let enable = self.is_steering();
            self.request(now, enable, Source::Reconcile);
        }
    }

    /// A router-confirmed transition.
    pub(super) fn transition(&mut self, now: Instant, wall_iso: &str, enable: bool) {
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
