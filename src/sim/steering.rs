//! Steering simulation: the real [`SteeringEngine`] cycle by cycle on a virtual clock,
//! against a tiny pure world. Pure: no sockets, no clock, seeded jitter; every run replays
//! from its seed.
//!
//! The world is the primary WAN as the steering daemon sees it, one sample per
//! `measurement.interval_seconds`: RTT = base + added delay + |jitter| (or no reply at all),
//! the autorate baseline (or none), and the CAKE queue's cumulative drop counter and
//! backlog (or a failed read), all piecewise over time with optional periodic bursts. A
//! model router holds the mangle rule; during its failure windows it answers with an error,
//! either without touching the rule or after changing it ("applied, not confirmed").
//! Answers arrive `latency_cycles` cycles after the action was issued (0 = the same cycle).
//!
//! Every scenario checks the common invariants in [`check`] plus its own; a violation
//! names the scenario and the seed that replays it.

use std::time::Duration;

use crate::config::{ConfidenceConfig, SteeringConfig, parse_steering};
use crate::engine::connectivity::FailureKind;
use crate::engine::history::iso_utc;
use crate::engine::steering::rounds::{CycleRtt, PingRounds};
use crate::engine::steering::{
    Action, CakeReading, CycleOutcome, Measurements, RETRY_BACKOFF, SteeringEngine,
};
use crate::rng::Rng;
use crate::time::Instant;

/// The built-in steering configuration of the simulated site (wan1 primary, 50 ms cycle,
/// the original's defaults otherwise).
pub fn sample_steering_config() -> SteeringConfig {
    const YAML: &str = r#"
wan_name: "steering"
router:
  host: "192.0.2.1"
  user: "wanctl"
  ssh_key: "/etc/wanctl/ssh/router.key"
topology:
  primary_wan: "wan1"
  primary_wan_config: "/etc/wanctl/wan1.yaml"
  alternate_wan: "wan2"
mangle_rule:
  comment: "ADAPTIVE: Steer latency-sensitive to WAN2"
cake_state_sources:
  primary: "/run/wanctl/wan1_state.json"
measurement:
  interval_seconds: 0.05
  ping_host: "192.0.2.11"
  ping_count: 3
state:
  file: "/var/lib/wanctl/steering_state.json"
  history_size: 240
logging:
  main_log: "/var/log/wanctl/steering.log"
  debug_log: "/var/log/wanctl/steering_debug.log"
lock_file: "/run/wanctl/steering.lock"
lock_timeout: 300
thresholds: {}
"#;
    match parse_steering(YAML, "sim-steering.yaml", &|_| None) {
        Ok(l) => l.config,
        Err(e) => panic!("invariant: the built-in steering config is valid: {e}"),
    }
}

/// What the primary WAN looks like during a stretch of time.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Conditions {
    /// Added delay over the base RTT (ms).
    pub delay_ms: f64,
    /// Packets CAKE drops per cycle.
    pub drops_per_cycle: u64,
    /// Drops grow by one more each cycle (a worsening drop rate).
    pub drops_increasing: bool,
    /// Queue backlog (packets).
    pub queue: u64,
    /// No ping reply at all this cycle.
    pub rtt_lost: bool,
    /// The autorate state file is unreadable.
    pub baseline_lost: bool,
    /// The CAKE counters cannot be read.
    pub cake_fails: bool,
}

/// How the world's pings behave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PingModel {
    /// Every cycle's round is answered within the cycle (the RTT of the conditions is the
    /// cycle's measurement): the decision logic alone.
    Instant,
    /// Real rounds (issue 12): `ping_count` probes per cycle, each answered after the RTT of
    /// the conditions at its send time, through the daemon's own [`PingRounds`] with the
    /// configured ping timeout, or (`old: true`) with rounds closed at the next tick as
    /// the first version did (replies slower than the cycle discarded).
    Rounds {
        /// Close rounds at the next tick.
        old: bool,
    },
}

/// Periodic bursts of other conditions (a flapping link).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bursts {
    /// First burst starts here (s).
    pub from_s: f64,
    /// No burst starts after this (s).
    pub until_s: f64,
    /// Burst period (s).
    pub period_s: f64,
    /// Burst length (s).
    pub length_s: f64,
    /// Conditions inside a burst.
    pub during: Conditions,
}

/// The world over time.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Base RTT (ms), also the autorate baseline.
    pub base_rtt_ms: f64,
    /// Standard deviation of the per-sample jitter (ms, folded to ≥ 0).
    pub jitter_ms: f64,
    /// Step function: `(from_s, conditions)`, ascending.
    pub steps: Vec<(f64, Conditions)>,
    /// Optional bursts, overriding the steps while one runs.
    pub bursts: Option<Bursts>,
}

impl Profile {
    /// Conditions at `t` seconds.
    pub fn at(&self, t: f64) -> Conditions {
        if let Some(b) = self.bursts
            && t >= b.from_s
            && t < b.until_s + b.length_s
        {
            let into = (t - b.from_s) % b.period_s;
            let start = t - into;
            // Tolerance: `t` is a multiple of the interval computed in floats.
            if into < b.length_s - 1e-9 && start <= b.until_s {
                return b.during;
            }
        }
        let mut c = self.steps.first().map_or(Conditions::default(), |s| s.1);
        for &(from, cond) in &self.steps {
            if t >= from - 1e-9 {
                c = cond;
            }
        }
        c
    }
}

/// A window in which the model router fails.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouterFailure {
    /// Start (s).
    pub from_s: f64,
    /// End (s, exclusive).
    pub until_s: f64,
    /// The change lands on the router, only the confirmation fails.
    pub applied: bool,
    /// The error reported.
    pub kind: FailureKind,
}

/// One call the model router served.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouterCall {
    /// Issued at (s).
    pub t: f64,
    /// Cycle it was issued in.
    pub step: u64,
    /// Requested rule state.
    pub enable: bool,
    /// Reported result.
    pub result: Result<bool, FailureKind>,
    /// Cycle the result was delivered in.
    pub delivered_step: u64,
}

/// The model router: the rule, its failure windows, and every call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouterModel {
    /// The mangle rule is enabled.
    pub rule_enabled: bool,
    /// Failure windows.
    pub failures: Vec<RouterFailure>,
    /// Calls served.
    pub calls: Vec<RouterCall>,
}

impl RouterModel {
    fn serve(&mut self, t: f64, enable: bool) -> Result<bool, FailureKind> {
        match self.failures.iter().find(|f| t >= f.from_s && t < f.until_s) {
            Some(f) => {
                if f.applied {
                    self.rule_enabled = enable;
                }
                Err(f.kind)
            }
            None => {
                self.rule_enabled = enable;
                Ok(self.rule_enabled)
            }
        }
    }
}

/// One cycle of the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Cycle number.
    pub step: u64,
    /// Virtual time (s).
    pub t: f64,
    /// The world this cycle.
    pub cond: Conditions,
    /// The engine's verdict.
    pub outcome: CycleOutcome,
    /// Congestion state after the cycle.
    pub congestion: String,
    /// Engine steering at the end of the cycle.
    pub steering: bool,
    /// Router rule at the end of the cycle.
    pub rule_enabled: bool,
    /// Action issued this cycle (desired rule state).
    pub issued: Option<bool>,
    /// Results delivered this cycle: (requested, result).
    pub delivered: Vec<(bool, Result<bool, FailureKind>)>,
    /// An action is outstanding at the end of the cycle.
    pub in_flight: bool,
    /// Flap penalty in force.
    pub flap_active: bool,
    /// Samples needed to enable in force.
    pub samples_to_enable: u32,
    /// Samples needed to disable in force.
    pub samples_to_disable: u32,
}

/// The world and the engine under test.
#[derive(Debug)]
pub struct SteeringWorld {
    /// The engine.
    pub engine: SteeringEngine,
    /// Its configuration.
    pub cfg: SteeringConfig,
    /// The world.
    pub profile: Profile,
    /// The model router.
    pub router: RouterModel,
    /// Per-cycle trace.
    pub trace: Vec<Row>,
    /// Confirmed transitions: (t, steering after).
    pub transitions: Vec<(f64, bool)>,
    rng: Rng,
    step: u64,
    dropped: u64,
    latency_cycles: u64,
    outstanding: Option<(u64, bool, Result<bool, FailureKind>)>,
    pings: PingModel,
    rounds: PingRounds,
    in_air: Vec<(Instant, u16)>,
    seq: u16,
}

/// Unix time of the simulation's t = 0 (for the ISO stamps in the state).
const EPOCH_UNIX: i64 = 1_767_225_600;

impl SteeringWorld {
    /// A world at t = 0 with the rule disabled and a fresh engine.
    pub fn new(
        cfg: SteeringConfig,
        profile: Profile,
        failures: Vec<RouterFailure>,
        latency_cycles: u64,
        seed: u64,
    ) -> SteeringWorld {
        SteeringWorld {
            engine: SteeringEngine::new(&cfg, None, Instant::ZERO),
            cfg,
            profile,
            router: RouterModel { rule_enabled: false, failures, calls: vec![] },
            trace: vec![],
            transitions: vec![],
            rng: Rng::new(seed),
            step: 0,
            dropped: 0,
            latency_cycles,
            outstanding: None,
            pings: PingModel::Instant,
            rounds: PingRounds::new(Duration::from_secs(2)),
            in_air: Vec::new(),
            seq: 0,
        }
    }

    /// Uses `model` for the pings.
    pub fn with_pings(mut self, model: PingModel) -> SteeringWorld {
        self.pings = model;
        let timeout = match model {
            // Just under a cycle: a reply must land before the next tick.
            PingModel::Rounds { old: true } => self.cfg.interval.saturating_sub(Duration::from_micros(1)),
            _ => self.cfg.ping_timeout,
        };
        self.rounds = PingRounds::new(timeout);
        self
    }

    /// Runs the ping rounds for this cycle: delivers replies due by `now`, closes the cycle,
    /// sends the next round. Returns (RTT, pending).
    fn ping_cycle(&mut self, now: Instant, cond: &Conditions, jitter: f64, old: bool) -> (Option<f64>, bool) {
        self.in_air.sort_by_key(|a| a.0);
        let due = self.in_air.iter().take_while(|a| a.0 <= now).count();
        for (at, seq) in self.in_air.drain(..due) {
            self.rounds.on_reply(seq, at);
        }
        let measured = self.rounds.close_cycle(now);
        for i in 0..self.cfg.ping_count.max(1) {
            self.seq = self.seq.wrapping_add(1);
            self.rounds.on_sent(self.seq, now);
            if !cond.rtt_lost {
                let rtt = self.profile.base_rtt_ms + cond.delay_ms + jitter + f64::from(i) * 0.1;
                self.in_air.push((now + Duration::from_micros((rtt * 1000.0) as u64), self.seq));
            }
        }
        match measured {
            CycleRtt::Measured { median_ms, .. } => (Some(median_ms), false),
            CycleRtt::Pending { .. } | CycleRtt::Idle => (None, !old),
            CycleRtt::Lost => (None, false),
        }
    }

    fn interval(&self) -> Duration {
        self.cfg.interval
    }

    /// Virtual time of cycle `step`.
    pub fn time_of(&self, step: u64) -> Instant {
        Instant::from_micros(step * self.interval().as_micros() as u64)
    }

    fn deliver(&mut self, now: Instant, delivered: &mut Vec<(bool, Result<bool, FailureKind>)>) {
        if let Some((due, enable, result)) = self.outstanding
            && due <= self.step
        {
            self.outstanding = None;
            let before = self.engine.is_steering();
            let iso = iso_utc(EPOCH_UNIX + now.as_secs_f64() as i64);
            self.engine.on_action_result(now, &iso, result);
            let after = self.engine.is_steering();
            if after != before {
                self.transitions.push((now.as_secs_f64(), after));
            }
            delivered.push((enable, result));
        }
    }

    /// Runs one cycle.
    pub fn cycle(&mut self) {
        let now = self.time_of(self.step);
        let t = now.as_secs_f64();
        let mut delivered = vec![];
        self.deliver(now, &mut delivered);
        let cond = self.profile.at(t);
        let jitter = (self.rng.normal() * self.profile.jitter_ms).abs();
        let (rtt, rtt_pending) = match self.pings {
            PingModel::Instant => {
                (Some(self.profile.base_rtt_ms + cond.delay_ms + jitter).filter(|_| !cond.rtt_lost), false)
            }
            PingModel::Rounds { old } => self.ping_cycle(now, &cond, jitter, old),
        };
        let mut drops = cond.drops_per_cycle;
        if cond.drops_increasing {
            drops += self.step;
        }
        self.dropped += drops;
        let m = Measurements {
            baseline_ms: (!cond.baseline_lost).then_some(self.profile.base_rtt_ms),
            rtt_ms: rtt,
            rtt_pending,
            wan_zone: None,
            cake: (!cond.cake_fails)
                .then_some(CakeReading { dropped: self.dropped, queued_packets: cond.queue }),
            cake_read_failed: cond.cake_fails,
        };
        let iso = iso_utc(EPOCH_UNIX + t as i64);
        let outcome = self.engine.on_cycle(now, &iso, &m);
        let mut issued = None;
        if let Some(Action::SetSteering { enable }) = self.engine.poll_action() {
            issued = Some(enable);
            let result = self.router.serve(t, enable);
            let due = self.step + self.latency_cycles;
            self.router.calls.push(RouterCall { t, step: self.step, enable, result, delivered_step: due });
            self.outstanding = Some((due, enable, result));
            if self.latency_cycles == 0 {
                self.deliver(now, &mut delivered);
            }
        }
        let h = self.engine.health(now);
        self.trace.push(Row {
            step: self.step,
            t,
            cond,
            outcome,
            congestion: self.engine.state_ref().congestion_state.clone(),
            steering: self.engine.is_steering(),
            rule_enabled: self.router.rule_enabled,
            issued,
            delivered,
            in_flight: self.outstanding.is_some(),
            flap_active: h.flap.active,
            samples_to_enable: h.flap.samples_to_enable,
            samples_to_disable: h.flap.samples_to_disable,
        });
        self.step += 1;
    }

    /// Runs until `end_s`.
    pub fn run_until(&mut self, end_s: f64) {
        while self.time_of(self.step).as_secs_f64() < end_s {
            self.cycle();
        }
    }
}

/// One named scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short name.
    pub name: &'static str,
    /// What it shows.
    pub about: &'static str,
    /// Length (s).
    pub duration_s: f64,
    /// Builds the configuration.
    pub config: fn() -> SteeringConfig,
    /// Builds the world.
    pub profile: fn() -> Profile,
    /// Router failure windows.
    pub router_failures: fn() -> Vec<RouterFailure>,
    /// Cycles until a router answer arrives.
    pub latency_cycles: u64,
    /// How pings behave.
    pub pings: PingModel,
    /// Scenario-specific invariants.
    pub check: fn(&SteeringWorld) -> Vec<String>,
}

const QUIET: Conditions = Conditions {
    delay_ms: 0.0,
    drops_per_cycle: 0,
    drops_increasing: false,
    queue: 0,
    rtt_lost: false,
    baseline_lost: false,
    cake_fails: false,
};

/// Bufferbloat on the primary: delay, drops and a standing queue (RED).
const CONGESTED: Conditions = Conditions { delay_ms: 40.0, drops_per_cycle: 3, queue: 80, ..QUIET };

fn profile(steps: Vec<(f64, Conditions)>) -> Profile {
    Profile { base_rtt_ms: 20.0, jitter_ms: 1.0, steps, bursts: None }
}

fn no_failures() -> Vec<RouterFailure> {
    vec![]
}

fn confidence(dry_run: bool) -> ConfidenceConfig {
    ConfidenceConfig { dry_run, ..ConfidenceConfig::default() }
}

/// All scenarios, in report order.
pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "congestion_on",
            about: "quiet 10 s, then bufferbloat: steering on after exactly red_samples_required RED samples (3)",
            duration_s: 20.0,
            config: || {
                let mut c = sample_steering_config();
                c.thresholds.red_samples_required = 3;
                c
            },
            profile: || profile(vec![(0.0, QUIET), (10.0, CONGESTED)]),
            router_failures: no_failures,
            latency_cycles: 0,
            pings: PingModel::Instant,
            check: check_congestion_on,
        },
        Scenario {
            name: "recovery_off",
            about: "bufferbloat 2-10 s, then clean: steering off after exactly green_samples_required GREEN samples (10)",
            duration_s: 20.0,
            config: || {
                let mut c = sample_steering_config();
                c.thresholds.green_samples_required = 10;
                c
            },
            profile: || profile(vec![(0.0, QUIET), (2.0, CONGESTED), (10.0, QUIET)]),
            router_failures: no_failures,
            latency_cycles: 1,
            pings: PingModel::Instant,
            check: check_recovery_off,
        },
        Scenario {
            name: "dry_run",
            about: "confidence dry-run on a link scoring 55 (YELLOW, 150 ms, rising drops, deep queue) that the hysteresis never sees RED: no action at all",
            duration_s: 30.0,
            config: || {
                let mut c = sample_steering_config();
                c.thresholds.red_rtt_ms = 500.0;
                c.thresholds.severe_rtt_ms = 1000.0;
                c.confidence = Some(confidence(true));
                c
            },
            profile: || {
                let bad = Conditions {
                    delay_ms: 150.0,
                    drops_per_cycle: 1,
                    drops_increasing: true,
                    queue: 100,
                    ..QUIET
                };
                profile(vec![(0.0, QUIET), (2.0, bad)])
            },
            router_failures: no_failures,
            latency_cycles: 0,
            pings: PingModel::Instant,
            check: check_dry_run,
        },
        Scenario {
            name: "flapping",
            about: "1 s cycle; 2 s RED bursts every 22 s for 15 min (2 RED, ~18 GREEN each): the flap brake holds transitions to max_toggles per window",
            duration_s: 900.0,
            config: || {
                let mut c = sample_steering_config();
                c.interval = Duration::from_secs(1);
                c.confidence = Some(confidence(true));
                c
            },
            profile: || Profile {
                bursts: Some(Bursts {
                    from_s: 10.0,
                    until_s: 900.0,
                    period_s: 22.0,
                    length_s: 2.0,
                    during: Conditions { delay_ms: 60.0, drops_per_cycle: 5, queue: 100, ..QUIET },
                }),
                ..profile(vec![(0.0, QUIET)])
            },
            router_failures: no_failures,
            latency_cycles: 0,
            pings: PingModel::Instant,
            check: check_flapping,
        },
        Scenario {
            name: "primary_unmeasurable",
            about: "no baseline for 1 s, congestion 5-10 s (steer), no ping reply 10-40 s on a clean link, baseline file gone 45-47 s: no flap, recovery counted after the outage",
            duration_s: 60.0,
            config: sample_steering_config,
            profile: || {
                profile(vec![
                    (0.0, Conditions { baseline_lost: true, ..QUIET }),
                    (1.0, QUIET),
                    (5.0, CONGESTED),
                    (10.0, Conditions { rtt_lost: true, ..QUIET }),
                    (40.0, QUIET),
                    (45.0, Conditions { baseline_lost: true, ..QUIET }),
                    (47.0, QUIET),
                ])
            },
            router_failures: no_failures,
            latency_cycles: 0,
            pings: PingModel::Instant,
            check: check_unmeasurable,
        },
        Scenario {
            name: "router_failure",
            about: "congestion 5-20 s with the router refusing 4-8 s, then recovery while the router applies but cannot confirm (20.5-21.5 s); answers one cycle late",
            duration_s: 40.0,
            config: sample_steering_config,
            profile: || profile(vec![(0.0, QUIET), (5.0, CONGESTED), (20.0, QUIET)]),
            router_failures: || {
                vec![
                    RouterFailure {
                        from_s: 4.0,
                        until_s: 8.0,
                        applied: false,
                        kind: FailureKind::ConnectionRefused,
                    },
                    RouterFailure { from_s: 20.5, until_s: 21.5, applied: true, kind: FailureKind::Timeout },
                ]
            },
            latency_cycles: 1,
            pings: PingModel::Instant,
            check: check_router_failure,
        },
        Scenario {
            name: "cake_blind",
            about: "RTT bloat with the CAKE counters unreadable 5-15 s: never steered on RTT alone; steered once CAKE confirms (15 s)",
            duration_s: 25.0,
            config: sample_steering_config,
            profile: || {
                profile(vec![
                    (0.0, QUIET),
                    (5.0, Conditions { cake_fails: true, ..CONGESTED }),
                    (15.0, CONGESTED),
                ])
            },
            router_failures: no_failures,
            latency_cycles: 0,
            pings: PingModel::Instant,
            check: check_cake_blind,
        },
        Scenario {
            name: "collapse_cake",
            about: "issue 12, cake_aware, 0.5 s cycles, 3 pings, 2 s timeout: the line collapses below the autorate floor 20-50 s (RTT 620 ms; the queue is upstream of CAKE: no drops, no backlog): on within 5 s, off within green samples + 5 s, nothing unmeasurable",
            duration_s: 80.0,
            config: collapse_config,
            profile: || profile(vec![(0.0, QUIET), (20.0, COLLAPSE), (50.0, QUIET)]),
            router_failures: no_failures,
            latency_cycles: 0,
            pings: PingModel::Rounds { old: false },
            check: check_collapse,
        },
        Scenario {
            name: "collapse_legacy",
            about: "the same collapse with cake_aware false (bad_samples 8, good_samples 15)",
            duration_s: 80.0,
            config: || {
                let mut c = collapse_config();
                c.cake_aware = false;
                c
            },
            profile: || profile(vec![(0.0, QUIET), (20.0, COLLAPSE), (50.0, QUIET)]),
            router_failures: no_failures,
            latency_cycles: 0,
            pings: PingModel::Rounds { old: false },
            check: check_collapse,
        },
        Scenario {
            name: "rtt_over_interval",
            about: "RTT 1.5 s (three cycles, under the 2 s timeout) 20-50 s with CAKE dropping: measured, steered, never unmeasurable",
            duration_s: 80.0,
            config: collapse_config,
            profile: || {
                profile(vec![
                    (0.0, QUIET),
                    (20.0, Conditions { delay_ms: 1480.0, drops_per_cycle: 3, queue: 80, ..QUIET }),
                    (50.0, QUIET),
                ])
            },
            router_failures: no_failures,
            latency_cycles: 0,
            pings: PingModel::Rounds { old: false },
            check: check_collapse,
        },
        Scenario {
            name: "lost_in_congestion",
            about: "every probe lost 20-50 s while CAKE drops and queues at the RED minimum: loss is congestion evidence, steered; the same loss on a clean queue is held (primary_unmeasurable)",
            duration_s: 80.0,
            config: collapse_config,
            profile: || {
                profile(vec![
                    (0.0, QUIET),
                    (20.0, Conditions { rtt_lost: true, drops_per_cycle: 5, queue: 80, ..QUIET }),
                    (50.0, QUIET),
                ])
            },
            router_failures: no_failures,
            latency_cycles: 0,
            pings: PingModel::Rounds { old: false },
            check: check_lost_in_congestion,
        },
    ]
}

/// The issue-12 site: 0.5 s cycles, 3 pings, the original's other defaults.
fn collapse_config() -> SteeringConfig {
    let mut c = sample_steering_config();
    c.interval = Duration::from_millis(500);
    c.ping_count = 3;
    c
}

/// A collapse below the autorate floor: 600 ms of queue in the modem, CAKE idle.
const COLLAPSE: Conditions = Conditions { delay_ms: 600.0, ..QUIET };

/// On within 5 s of the event, off within green samples + 5 s of the recovery, exactly two
/// transitions, no unmeasurable cycle (replies always came within the timeout).
fn check_collapse(w: &SteeringWorld) -> Vec<String> {
    let mut v = vec![];
    let (start, end) = event_times(&w.profile);
    let (start, end) = (start.unwrap_or(0.0), end.unwrap_or(0.0));
    let interval = w.cfg.interval.as_secs_f64();
    let good = if w.cfg.cake_aware {
        w.cfg.thresholds.green_samples_required
    } else {
        w.cfg.thresholds.good_samples
    };
    match w.transitions.iter().find(|t| t.1) {
        Some(&(t, _)) if t - start <= 5.0 => {}
        other => v.push(format!("enabled at {other:?}, not within 5 s of {start} s")),
    }
    // A reply measures the delay at its send time: an RTT of 1.5 s reports the recovery
    // 1.5 s late, whatever the daemon does.
    let worst_rtt = w.profile.steps.iter().map(|s| s.1.delay_ms).fold(0.0, f64::max) / 1000.0;
    let off_limit = f64::from(good) * interval + 5.0 + worst_rtt;
    match w.transitions.iter().find(|t| !t.1 && t.0 >= end) {
        Some(&(t, _)) if t - end <= off_limit => {}
        other => v.push(format!("disabled at {other:?}, not within {off_limit} s of {end} s")),
    }
    if w.transitions.len() != 2 {
        v.push(format!("{} transitions, expected 2", w.transitions.len()));
    }
    let failed = w.trace.iter().filter(|r| matches!(r.outcome, CycleOutcome::Failed(_))).count();
    if failed > 0 {
        v.push(format!("{failed} cycles unmeasurable although every reply came within the timeout"));
    }
    v
}

fn check_lost_in_congestion(w: &SteeringWorld) -> Vec<String> {
    let mut v = vec![];
    match w.transitions.iter().find(|t| t.1) {
        // The timeout (2 s) must pass before a round counts as lost.
        Some(&(t, _)) if (20.0..=20.0 + 2.0 + 5.0).contains(&t) => {}
        other => v.push(format!("enabled at {other:?}, expected within 7 s of 20 s")),
    }
    if !w.transitions.iter().any(|t| !t.1 && t.0 >= 50.0) {
        v.push("never disabled after the loss ended".into());
    }
    v
}

/// Runs a scenario with a seed.
pub fn run(s: &Scenario, seed: u64) -> SteeringWorld {
    run_with(s, s.pings, seed)
}

/// Runs a scenario with a seed and the given ping model.
pub fn run_with(s: &Scenario, pings: PingModel, seed: u64) -> SteeringWorld {
    let mut w =
        SteeringWorld::new((s.config)(), (s.profile)(), (s.router_failures)(), s.latency_cycles, seed)
            .with_pings(pings);
    w.run_until(s.duration_s);
    w
}

/// The figures the steering table prints for one run.
#[derive(Debug, Clone, PartialEq)]
pub struct SteeringFigures {
    /// Scenario.
    pub name: &'static str,
    /// Seed.
    pub seed: u64,
    /// Which ping handling.
    pub pings: &'static str,
    /// Seconds from the scenario's event to the confirmed enable.
    pub enable_s: Option<f64>,
    /// Seconds from the scenario's recovery to the confirmed disable.
    pub disable_s: Option<f64>,
    /// Confirmed transitions.
    pub toggles: usize,
    /// Unmeasurable (failed) cycles.
    pub unmeasurable: usize,
    /// Held cycles (replies on their way).
    pub held: usize,
}

/// The event and recovery times of a scenario (for the table): the first step whose
/// conditions differ from the first, and the next step after it.
fn event_times(p: &Profile) -> (Option<f64>, Option<f64>) {
    let first = p.steps.first().map(|s| s.1);
    let ev = p.steps.iter().position(|s| Some(s.1) != first);
    let start = ev.map(|i| p.steps[i].0);
    let end = ev.and_then(|i| p.steps.get(i + 1)).map(|s| s.0);
    (start, end)
}

/// Figures of a finished run.
pub fn figures(s: &Scenario, w: &SteeringWorld, seed: u64) -> SteeringFigures {
    let (start, end) = event_times(&w.profile);
    let on = w.transitions.iter().find(|t| t.1 && start.is_none_or(|s| t.0 >= s)).map(|t| t.0);
    let off = w.transitions.iter().find(|t| !t.1 && end.is_some_and(|e| t.0 >= e)).map(|t| t.0);
    SteeringFigures {
        name: s.name,
        seed,
        pings: match w.pings {
            PingModel::Instant => "instant",
            PingModel::Rounds { old: false } => "rounds",
            PingModel::Rounds { old: true } => "tick",
        },
        enable_s: on.zip(start).map(|(t, s)| t - s),
        disable_s: off.zip(end).map(|(t, e)| t - e),
        toggles: w.transitions.len(),
        unmeasurable: w.trace.iter().filter(|r| matches!(r.outcome, CycleOutcome::Failed(_))).count(),
        held: w.trace.iter().filter(|r| r.outcome == CycleOutcome::Held).count(),
    }
}

/// The steering table: every scenario and seed; the scenarios with real ping rounds also
/// with the first version's rounds (closed at the next tick) on the same seed.
pub fn table(rows: &[SteeringFigures]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>4} {:<8} {:>9} {:>10} {:>7} {:>12} {:>5}",
        "scenario", "seed", "pings", "enable s", "disable s", "toggles", "unmeasurable", "held"
    );
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
    for r in rows {
        let _ = writeln!(
            out,
            "{:<22} {:>4} {:<8} {:>9} {:>10} {:>7} {:>12} {:>5}",
            r.name,
            r.seed,
            r.pings,
            f(r.enable_s),
            f(r.disable_s),
            r.toggles,
            r.unmeasurable,
            r.held
        );
    }
    out
}

/// Runs every scenario for `seeds`: (figures rows, invariant violations).
pub fn run_all(seeds: &[u64]) -> (Vec<SteeringFigures>, Vec<String>) {
    let (mut rows, mut bad) = (vec![], vec![]);
    for s in all() {
        for &seed in seeds {
            let w = run(&s, seed);
            bad.extend(check(&s, &w, seed));
            rows.push(figures(&s, &w, seed));
            if s.pings != PingModel::Instant {
                let old = run_with(&s, PingModel::Rounds { old: true }, seed);
                rows.push(figures(&s, &old, seed));
            }
        }
    }
    (rows, bad)
}

/// Every invariant of a finished run (common ones, then the scenario's); each message
/// names the scenario and the seed.
pub fn check(s: &Scenario, w: &SteeringWorld, seed: u64) -> Vec<String> {
    let mut v = common(w);
    v.extend((s.check)(w));
    v.into_iter().map(|m| format!("{} (seed {seed}): {m}", s.name)).collect()
}

fn common(w: &SteeringWorld) -> Vec<String> {
    let mut v = vec![];
    let mut last_call_failed = false;
    let mut prev_steering = false;
    let mut prev_lost = false;
    for r in &w.trace {
        // The engine's state changes only on a delivered, successful result reporting it.
        if r.steering != prev_steering && !r.delivered.iter().any(|(_, res)| *res == Ok(r.steering)) {
            v.push(format!(
                "t={:.2}: state changed to steering={} without a router confirmation",
                r.t, r.steering
            ));
        }
        for (_, res) in &r.delivered {
            last_call_failed = res.is_err();
        }
        // It never claims a state the router does not have, unless the router's state is
        // unknown (an unconfirmed call) or a call is under way.
        if r.steering != r.rule_enabled && !last_call_failed && !r.in_flight {
            v.push(format!(
                "t={:.2}: engine steering={} but rule enabled={}",
                r.t, r.steering, r.rule_enabled
            ));
        }
        // Failed cycles are exactly the unmeasurable ones.
        let failed = matches!(r.outcome, CycleOutcome::Failed(_));
        // With real rounds a lost round is only unmeasurable after the ping timeout, and
        // not at all when CAKE shows congestion (lost_in_congestion).
        if r.cond.rtt_lost && !failed && w.pings == PingModel::Instant {
            v.push(format!("t={:.2}: no RTT but the cycle succeeded", r.t));
        }
        // With real rounds a cycle measures the previous cycle's probes.
        let lagged = w.pings != PingModel::Instant && prev_lost;
        prev_lost = r.cond.rtt_lost;
        if failed && !(r.cond.rtt_lost || r.cond.baseline_lost || lagged) {
            v.push(format!("t={:.2}: measurable cycle failed: {:?}", r.t, r.outcome));
        }
        prev_steering = r.steering;
    }
    // At most one action outstanding: a new one only after the previous was answered.
    let calls = &w.router.calls;
    for pair in calls.windows(2) {
        if pair[1].step < pair[0].delivered_step {
            v.push(format!("t={:.2}: action issued while another was outstanding", pair[1].t));
        }
    }
    // Consistent at the end (every scenario ends quiet with the router up).
    if let Some(r) = w.trace.last()
        && r.steering != r.rule_enabled
    {
        v.push(format!("end: engine steering={} but rule enabled={}", r.steering, r.rule_enabled));
    }
    v
}

/// Length of the run of `state` ending at row `i`.
fn run_len(w: &SteeringWorld, i: usize, state: &str) -> usize {
    w.trace[..=i].iter().rev().take_while(|r| r.congestion == state).count()
}

fn first_issue(w: &SteeringWorld, enable: bool) -> Option<usize> {
    w.trace.iter().position(|r| r.issued == Some(enable))
}

fn check_congestion_on(w: &SteeringWorld) -> Vec<String> {
    let mut v = vec![];
    let need = w.cfg.thresholds.red_samples_required as usize;
    match first_issue(w, true) {
        None => v.push("steering never enabled".into()),
        Some(i) => {
            if w.trace[i].t < 10.0 {
                v.push(format!("enabled at {:.2} s, before the congestion", w.trace[i].t));
            }
            let n = run_len(w, i, "RED");
            if n != need {
                v.push(format!("enabled after {n} consecutive RED samples, configured {need}"));
            }
        }
    }
    if !w.trace.last().is_some_and(|r| r.steering && r.rule_enabled) {
        v.push("not steering at the end".into());
    }
    if w.transitions.len() != 1 {
        v.push(format!("{} transitions, expected 1", w.transitions.len()));
    }
    v
}

fn check_recovery_off(w: &SteeringWorld) -> Vec<String> {
    let mut v = vec![];
    let need = w.cfg.thresholds.green_samples_required as usize;
    match first_issue(w, false) {
        None => v.push("steering never disabled".into()),
        Some(i) => {
            let n = run_len(w, i, "GREEN");
            if n != need {
                v.push(format!("disabled after {n} consecutive GREEN samples, configured {need}"));
            }
            if w.trace[i].t < 10.0 {
                v.push(format!("disabled at {:.2} s, during the congestion", w.trace[i].t));
            }
        }
    }
    let states: Vec<bool> = w.transitions.iter().map(|t| t.1).collect();
    if states != [true, false] {
        v.push(format!("transitions {states:?}, expected on then off"));
    }
    v
}

fn check_dry_run(w: &SteeringWorld) -> Vec<String> {
    let mut v = vec![];
    if !w.router.calls.is_empty() {
        v.push(format!("{} router actions in dry-run, expected none", w.router.calls.len()));
    }
    let now = w.time_of(w.trace.len() as u64);
    match w.engine.health(now).dry_run_decisions {
        Some((en, _)) if en > 0 => {}
        other => {
            v.push(format!("the confidence controller never decided (would: {other:?}): scenario too weak"))
        }
    }
    if w.trace.iter().any(|r| r.congestion == "RED") {
        v.push("the hysteresis saw RED: scenario does not isolate the confidence path".into());
    }
    v
}

fn check_flapping(w: &SteeringWorld) -> Vec<String> {
    let mut v = vec![];
    let window = w.cfg.confidence.as_ref().map_or(300.0, |c| c.flap_window.as_secs_f64());
    let max = w.cfg.confidence.as_ref().map_or(4, |c| c.max_toggles) as usize;
    for (i, &(t, _)) in w.transitions.iter().enumerate() {
        let in_window = w.transitions[..=i].iter().filter(|x| t - x.0 < window).count();
        if in_window > max {
            v.push(format!("t={t:.0}: {in_window} transitions within {window:.0} s (max_toggles {max})"));
        }
    }
    let bursts = w.trace.windows(2).filter(|p| p[1].cond.queue > 0 && p[0].cond.queue == 0).count();
    // Undamped, every burst would switch twice.
    if w.transitions.len() > bursts / 2 {
        v.push(format!("{} transitions for {bursts} bursts: not damped", w.transitions.len()));
    }
    if w.transitions.len() < max {
        v.push(format!("only {} transitions: the link never flapped", w.transitions.len()));
    }
    let shown = w.trace.iter().find(|r| r.flap_active);
    match shown {
        None => v.push("the flap penalty never showed in health".into()),
        Some(r) => {
            let base = w.cfg.thresholds.red_samples_required;
            if r.samples_to_enable <= base {
                v.push(format!(
                    "penalty active but samples to enable {} (configured {base})",
                    r.samples_to_enable
                ));
            }
        }
    }
    v
}

fn check_unmeasurable(w: &SteeringWorld) -> Vec<String> {
    let mut v = vec![];
    for r in &w.trace {
        if (r.cond.rtt_lost || matches!(r.outcome, CycleOutcome::Failed(_))) && r.issued.is_some() {
            v.push(format!("t={:.2}: action issued while the primary was unmeasurable", r.t));
        }
        if r.cond.rtt_lost && !r.steering {
            v.push(format!("t={:.2}: steering dropped during the outage", r.t));
        }
        if r.t >= 45.0 && r.t < 47.0 && r.outcome != CycleOutcome::Ok {
            v.push(format!("t={:.2}: cached baseline not used", r.t));
        }
    }
    let failed_at_start = w.trace.iter().filter(|r| r.t < 1.0 && r.outcome != CycleOutcome::Ok).count();
    if failed_at_start != w.trace.iter().filter(|r| r.t < 1.0).count() {
        v.push("cycles without any baseline did not fail".into());
    }
    let need = w.cfg.thresholds.green_samples_required as usize;
    match first_issue(w, false) {
        None => v.push("never recovered after the outage".into()),
        Some(i) => {
            if w.trace[i].t < 40.0 {
                v.push(format!("recovered at {:.2} s, inside the outage", w.trace[i].t));
            }
            // GREEN samples counted from the end of the outage only.
            let since = w.trace[..=i]
                .iter()
                .rev()
                .take_while(|r| !r.cond.rtt_lost && r.congestion == "GREEN")
                .count();
            if since != need {
                v.push(format!("recovered after {since} GREEN samples since the outage, configured {need}"));
            }
        }
    }
    let states: Vec<bool> = w.transitions.iter().map(|t| t.1).collect();
    if states != [true, false] {
        v.push(format!("transitions {states:?}, expected on then off"));
    }
    v
}

fn check_router_failure(w: &SteeringWorld) -> Vec<String> {
    let mut v = vec![];
    let calls = &w.router.calls;
    let failed_enables = calls.iter().filter(|c| c.enable && c.result.is_err()).count();
    if failed_enables < 2 {
        v.push(format!("{failed_enables} failed enable calls: the failure window was not exercised"));
    }
    let gap = RETRY_BACKOFF.as_secs_f64() - 1e-9;
    for pair in calls.windows(2) {
        if pair[0].result.is_err() && pair[1].t - pair[0].t < gap {
            v.push(format!("t={:.2}: retried {:.2} s after a failure", pair[1].t, pair[1].t - pair[0].t));
        }
    }
    // A failed call leaves the local state unchanged.
    for r in &w.trace {
        if r.delivered.iter().any(|(_, res)| res.is_err())
            && let Some(prev) = r.step.checked_sub(1).and_then(|s| w.trace.get(s as usize))
            && prev.steering != r.steering
        {
            v.push(format!("t={:.2}: state changed on a failed call", r.t));
        }
    }
    match w.transitions.first() {
        Some(&(t, true)) if (8.0..9.0).contains(&t) => {}
        other => v.push(format!("first transition {other:?}, expected steering on just after 8 s")),
    }
    match calls.iter().find(|c| !c.enable && c.result.is_err()) {
        None => v.push("no unconfirmed disable: the second failure window was not exercised".into()),
        Some(c) => {
            if !w.transitions.iter().any(|&(t, on)| !on && t > c.t) {
                v.push("steering never turned off after the unconfirmed disable".into());
            }
        }
    }
    v
}

fn check_cake_blind(w: &SteeringWorld) -> Vec<String> {
    let mut v = vec![];
    for r in &w.trace {
        if r.cond.cake_fails && (r.issued.is_some() || r.congestion == "RED") {
            v.push(format!("t={:.2}: CAKE read failure counted as congestion", r.t));
        }
    }
    match w.transitions.first() {
        Some(&(t, true)) if (15.0..15.5).contains(&t) => {}
        other => v.push(format!("first transition {other:?}, expected steering on just after 15 s")),
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_and_steps_evaluate_as_described() {
        let p = Profile {
            bursts: Some(Bursts {
                from_s: 10.0,
                until_s: 60.0,
                period_s: 22.0,
                length_s: 2.0,
                during: CONGESTED,
            }),
            ..profile(vec![(0.0, QUIET), (100.0, CONGESTED)])
        };
        let hits: Vec<u32> = (0..70).filter(|&t| p.at(f64::from(t)) == CONGESTED).collect();
        assert_eq!(hits, vec![10, 11, 32, 33, 54, 55]);
        assert_eq!(p.at(100.0), CONGESTED);
    }

    #[test]
    fn router_model_failure_modes() {
        let mut r = RouterModel {
            failures: vec![
                RouterFailure { from_s: 1.0, until_s: 2.0, applied: false, kind: FailureKind::Timeout },
                RouterFailure { from_s: 3.0, until_s: 4.0, applied: true, kind: FailureKind::Unknown },
            ],
            ..RouterModel::default()
        };
        assert_eq!(r.serve(1.5, true), Err(FailureKind::Timeout));
        assert!(!r.rule_enabled);
        assert_eq!(r.serve(3.5, true), Err(FailureKind::Unknown));
        assert!(r.rule_enabled, "applied, not confirmed");
        assert_eq!(r.serve(5.0, false), Ok(false));
    }
}
