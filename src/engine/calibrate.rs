//! `wanctl calibrate` (issue 14): the measurement plan, without I/O. The shell
//! (`shell::calibrate`) feeds RTTs, queue byte counters and write confirmations with `now`,
//! and carries out what [`Calibrator::poll`] asks: set the two `max-limit`s, print progress,
//! finish. Restoring the router's original limits is the shell's job on every exit path;
//! this plan only ever asks for limits between 30 % of the raw rate and the ceiling.
//!
//! ```text
//!  Baseline (idle line, `baseline` long: 10th percentile of the RTTs)
//!  per direction (download, then upload):
//!    Open     shaper at the configured ceiling, the other at its original limit;
//!             wait for the user's transfer (achieved rate ≥ 5 % of the ceiling over 1 s),
//!             at most `wait_load`; none seen: the direction is skipped (its keys kept)
//!    Raw      one step at the ceiling: raw rate R = bytes delivered / time
//!    Search   `iterations` steps of a binary search in [0.3 R, R]: set the middle, wait
//!             one step, judge the second half of the step: good when its median added
//!             delay is within the target or the delay is falling (a queue left by the
//!             previous step draining: the rate is below capacity)
//!    the best good rate is the optimum (0.3 R if none was good)
//!  Done: the report; the shell restores the originals, writes the files.
//! ```
//! The original's tool measured raw throughput with netperf against a public server and
//! assumed 100/20 Mbit/s without it; here the load is the user's own transfer (or anything
//! that saturates the line), measured by the queue counters the daemon uses.

use std::collections::VecDeque;
use std::time::Duration;

use crate::time::Instant;
use crate::units::Bps;

/// What the plan needs.
#[derive(Debug, Clone, PartialEq)]
pub struct CalSettings {
    /// Idle baseline measurement.
    pub baseline: Duration,
    /// One search step.
    pub step: Duration,
    /// Added delay allowed at the optimum (ms).
    pub target_bloat_ms: f64,
    /// Binary-search steps per direction.
    pub iterations: u32,
    /// How long to wait for the user's transfer per direction.
    pub wait_load: Duration,
    /// Configured ceilings (download, upload): the open shaper.
    pub ceilings: [Bps; 2],
    /// The router's limits before calibration (download, upload).
    pub originals: [Bps; 2],
    /// Directions to calibrate (download, upload).
    pub directions: [bool; 2],
}

/// A direction's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DirResult {
    /// Raw rate under load with the shaper open.
    pub raw: Bps,
    /// The highest rate whose added delay stayed within the target.
    pub optimal: Bps,
    /// Median added delay (ms) measured at the optimum.
    pub bloat_ms: f64,
}

/// The whole result.
#[derive(Debug, Clone, PartialEq)]
pub struct CalReport {
    /// Idle baseline RTT (ms).
    pub baseline_ms: f64,
    /// Download and upload; `None` when skipped (no transfer seen, or not asked for).
    pub dirs: [Option<DirResult>; 2],
}

/// What the shell does next.
#[derive(Debug, Clone, PartialEq)]
pub enum CalStep {
    /// Set `max-limit` of (download, upload).
    Set([Bps; 2]),
    /// A line for the user.
    Progress(String),
    /// Generate load in this direction (0 download, 1 upload) from now on, or stop
    /// (`None`); a shell without a load URL for it leaves the load to the user.
    Load(Option<usize>),
    /// Finished.
    Done(CalReport),
    /// Cannot go on.
    Fail(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Baseline,
    /// Waiting for the write of the open shaper, then for load.
    Open,
    Raw,
    Search {
        lo: f64,
        hi: f64,
        mid: f64,
        iter: u32,
    },
    Finished,
}

const NAMES: [&str; 2] = ["download", "upload"];

/// The plan (see the module docs).
#[derive(Debug, Clone)]
pub struct Calibrator {
    s: CalSettings,
    phase: Phase,
    dir: usize,
    phase_start: Instant,
    /// A write was asked for and not confirmed yet: the step starts at the confirmation.
    awaiting_write: bool,
    rtts: Vec<(Instant, f64)>,
    /// (time, download bytes, upload bytes) readings of the current phase.
    counters: Vec<(Instant, u64, u64)>,
    baseline: Option<f64>,
    raw: f64,
    best: Option<(f64, f64)>,
    results: [Option<DirResult>; 2],
    out: VecDeque<CalStep>,
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

impl Calibrator {
    /// Starts with the baseline phase at `now`.
    pub fn new(s: CalSettings, now: Instant) -> Calibrator {
        let mut c = Calibrator {
            s,
            phase: Phase::Baseline,
            dir: 0,
            phase_start: now,
            awaiting_write: false,
            rtts: Vec::new(),
            counters: Vec::new(),
            baseline: None,
            raw: 0.0,
            best: None,
            results: [None, None],
            out: VecDeque::new(),
        };
        c.say(format!(
            "measuring the idle baseline RTT for {:.0} s: keep the line idle",
            c.s.baseline.as_secs_f64()
        ));
        c
    }

    fn say(&mut self, text: String) {
        self.out.push_back(CalStep::Progress(text));
    }

    /// The next thing to do.
    pub fn poll(&mut self) -> Option<CalStep> {
        self.out.pop_front()
    }

    /// Whether the plan has ended (done or failed).
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// An RTT sample (ms).
    pub fn on_rtt(&mut self, now: Instant, ms: f64) {
        if ms.is_finite() && ms >= 0.0 && !self.awaiting_write {
            self.rtts.push((now, ms));
        }
    }

    /// Queue byte counters (download, upload) read at `now`.
    pub fn on_counters(&mut self, now: Instant, dl: u64, ul: u64) {
        if !self.awaiting_write {
            self.counters.push((now, dl, ul));
        }
    }

    /// The last `Set` reached the router: the step's clock starts now.
    pub fn on_applied(&mut self, now: Instant) {
        if self.awaiting_write {
            self.awaiting_write = false;
            self.restart(now);
        }
    }

    fn restart(&mut self, now: Instant) {
        self.phase_start = now;
        self.rtts.clear();
        self.counters.clear();
    }

    fn set(&mut self, rate: f64) {
        let mut limits = self.s.originals;
        limits[self.dir] = Bps(rate.max(1.0) as u64);
        self.awaiting_write = true;
        self.out.push_back(CalStep::Set(limits));
    }

    /// Achieved rate (bit/s) of the current direction over the readings since `from`.
    fn achieved_since(&self, from: Instant) -> Option<f64> {
        let pick = |c: &(Instant, u64, u64)| if self.dir == 0 { c.1 } else { c.2 };
        let first = self.counters.iter().find(|c| c.0 >= from)?;
        let last = self.counters.last()?;
        let dt = last.0.saturating_since(first.0).as_secs_f64();
        (dt >= 0.2).then(|| pick(last).saturating_sub(pick(first)) as f64 * 8.0 / dt)
    }

    fn fail(&mut self, why: String) {
        self.phase = Phase::Finished;
        self.out.push_back(CalStep::Fail(why));
    }

    /// Advances the plan.
    pub fn tick(&mut self, now: Instant) {
        if self.awaiting_write || self.phase == Phase::Finished {
            return;
        }
        let elapsed = now.saturating_since(self.phase_start);
        match self.phase {
            Phase::Baseline => {
                if elapsed < self.s.baseline {
                    return;
                }
                let mut v: Vec<f64> = self.rtts.iter().map(|r| r.1).collect();
                if v.is_empty() {
                    return self.fail("no reflector answered during the baseline measurement".into());
                }
                v.sort_by(f64::total_cmp);
                let b = v[(v.len() - 1) / 10];
                self.baseline = Some(b);
                self.say(format!("idle baseline RTT {b:.1} ms ({} samples)", v.len()));
                self.next_direction(now);
            }
            Phase::Open => {
                let window = now.saturating_sub(Duration::from_secs(1)).max(self.phase_start);
                let threshold = (self.s.ceilings[self.dir].0 as f64 * 0.05).max(500_000.0);
                if elapsed >= Duration::from_secs(1)
                    && self.achieved_since(window).is_some_and(|r| r >= threshold)
                {
                    self.say(format!("{}: load seen, measuring the raw rate", NAMES[self.dir]));
                    self.phase = Phase::Raw;
                    self.restart(now);
                } else if elapsed >= self.s.wait_load {
                    self.say(format!(
                        "{}: no transfer seen within {:.0} s: skipped (its ceiling and floors are kept)",
                        NAMES[self.dir],
                        self.s.wait_load.as_secs_f64()
                    ));
                    self.dir += 1;
                    self.next_direction(now);
                }
            }
            Phase::Raw => {
                if elapsed < self.s.step {
                    return;
                }
                let Some(r) = self.achieved_since(self.phase_start) else {
                    return self.fail(format!("{}: the queue counters did not move", NAMES[self.dir]));
                };
                self.raw = r;
                self.best = None;
                self.say(format!(
                    "{}: raw {:.1} Mbit/s with the shaper open; searching 30-100 %",
                    NAMES[self.dir],
                    r / 1e6
                ));
                let (lo, hi) = (0.3 * r, r);
                let mid = (lo + hi) / 2.0;
                self.phase = Phase::Search { lo, hi, mid, iter: 0 };
                self.set(mid);
            }
            Phase::Search { lo, hi, mid, iter } => {
                if elapsed < self.s.step {
                    return;
                }
                let half = self.phase_start + self.s.step / 2;
                let early: Vec<f64> = self.rtts.iter().filter(|r| r.0 < half).map(|r| r.1).collect();
                let mut late: Vec<f64> = self.rtts.iter().filter(|r| r.0 >= half).map(|r| r.1).collect();
                let base = self.baseline.unwrap_or(0.0);
                let Some(late_med) = median(&mut late) else {
                    return self.fail("no RTT samples during a search step".into());
                };
                let early_med = median(&mut early.clone()).unwrap_or(late_med);
                let added = late_med - base;
                let falling = late_med < early_med - 2.0;
                let good = added <= self.s.target_bloat_ms || falling;
                self.say(format!(
                    "{}: step {}/{} at {:.1} Mbit/s: added delay {added:.1} ms{} -> {}",
                    NAMES[self.dir],
                    iter + 1,
                    self.s.iterations,
                    mid / 1e6,
                    if falling { " (falling)" } else { "" },
                    if good { "ok" } else { "too much" }
                ));
                let (lo, hi) = if good {
                    if self.best.is_none_or(|b| mid > b.0) {
                        self.best = Some((mid, added.max(0.0)));
                    }
                    (mid, hi)
                } else {
                    (lo, mid)
                };
                if iter + 1 >= self.s.iterations {
                    let (opt, bloat) = self.best.unwrap_or((0.3 * self.raw, f64::NAN));
                    self.results[self.dir] = Some(DirResult {
                        raw: Bps(self.raw as u64),
                        optimal: Bps(opt as u64),
                        bloat_ms: bloat,
                    });
                    self.say(format!("{}: optimum {:.1} Mbit/s", NAMES[self.dir], opt / 1e6));
                    self.dir += 1;
                    // Back to the original limit before the next direction.
                    self.next_direction(now);
                } else {
                    let mid = (lo + hi) / 2.0;
                    self.phase = Phase::Search { lo, hi, mid, iter: iter + 1 };
                    self.set(mid);
                }
            }
            Phase::Finished => {}
        }
    }

    fn next_direction(&mut self, now: Instant) {
        while self.dir < 2 && !self.s.directions[self.dir] {
            self.dir += 1;
        }
        self.out.push_back(CalStep::Load(None));
        if self.dir >= 2 {
            self.phase = Phase::Finished;
            let report = CalReport { baseline_ms: self.baseline.unwrap_or(0.0), dirs: self.results };
            self.out.push_back(CalStep::Set(self.s.originals));
            self.out.push_back(CalStep::Done(report));
            return;
        }
        self.say(format!(
            "{}: shaper opened to {:.1} Mbit/s; start a large {} now (waiting up to {:.0} s)",
            NAMES[self.dir],
            self.s.ceilings[self.dir].0 as f64 / 1e6,
            NAMES[self.dir],
            self.s.wait_load.as_secs_f64()
        ));
        self.phase = Phase::Open;
        self.restart(now);
        self.out.push_back(CalStep::Load(Some(self.dir)));
        let ceiling = self.s.ceilings[self.dir].0 as f64;
        self.set(ceiling);
    }
}

/// The config values the original's calibration tool derived from a result (CONFIG.md §7):
/// `(dotted key, value)`, whole numbers except the baseline.
pub fn recommended_keys(r: &CalReport) -> Vec<(&'static str, f64)> {
    let mb = |b: Bps| b.0 as f64 / 1e6;
    let round = |v: f64| v.round().max(1.0);
    let mut keys =
        vec![("continuous_monitoring.baseline_rtt_initial", (r.baseline_ms * 10.0).round() / 10.0)];
    if let Some(d) = r.dirs[0] {
        let o = mb(d.optimal);
        keys.extend([
            ("continuous_monitoring.download.ceiling_mbps", round(1.05 * o)),
            ("continuous_monitoring.download.floor_green_mbps", round(0.6 * o)),
            ("continuous_monitoring.download.floor_yellow_mbps", round(0.4 * o)),
            ("continuous_monitoring.download.floor_soft_red_mbps", round(0.3 * o)),
            ("continuous_monitoring.download.floor_red_mbps", round((0.2 * o).max(10.0).min(0.3 * o))),
            ("continuous_monitoring.download.step_up_mbps", round((0.01 * o).max(5.0).min(0.1 * o))),
        ]);
    }
    if let Some(u) = r.dirs[1] {
        let o = mb(u.optimal);
        keys.extend([
            ("continuous_monitoring.upload.ceiling_mbps", round(1.05 * o)),
            ("continuous_monitoring.upload.floor_mbps", round((0.2 * o).max(2.0).min(0.5 * o))),
            ("continuous_monitoring.upload.step_up_mbps", round((0.02 * o).max(1.0).min(0.1 * o))),
        ]);
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_micros(ms * 1000)
    }

    /// A tiny line model: capacity `cap`, the queue grows when the shaper exceeds it.
    struct Line {
        cap: f64,
        shaper: f64,
        queue_s: f64,
        bytes: u64,
        loaded: bool,
    }

    impl Line {
        fn step(&mut self, dt: f64) {
            if self.loaded {
                let sent = self.shaper.min(self.cap);
                self.bytes += (sent * dt / 8.0) as u64;
                self.queue_s = (self.queue_s + (self.shaper - self.cap) / self.cap * dt).clamp(0.0, 0.6);
            } else {
                self.queue_s = 0.0;
            }
        }
    }

    fn run(cap: f64, load_from_ms: u64) -> (CalReport, Vec<String>, Vec<[Bps; 2]>) {
        let s = CalSettings {
            baseline: Duration::from_secs(2),
            step: Duration::from_millis(1500),
            target_bloat_ms: 15.0,
            iterations: 5,
            wait_load: Duration::from_secs(10),
            ceilings: [Bps(100_000_000), Bps(20_000_000)],
            originals: [Bps(90_000_000), Bps(18_000_000)],
            directions: [true, false],
        };
        let mut c = Calibrator::new(s, at(0));
        let mut line = Line { cap, shaper: 90e6, queue_s: 0.0, bytes: 0, loaded: false };
        let (mut log, mut sets) = (vec![], vec![]);
        for t in (0..200_000).step_by(50) {
            line.loaded = t >= load_from_ms;
            line.step(0.05);
            c.on_rtt(at(t), 20.0 + line.queue_s * 1000.0);
            if t % 500 == 0 {
                c.on_counters(at(t), line.bytes, 0);
            }
            c.tick(at(t));
            while let Some(step) = c.poll() {
                match step {
                    CalStep::Set(l) => {
                        line.shaper = l[0].0 as f64;
                        sets.push(l);
                        c.on_applied(at(t));
                    }
                    CalStep::Progress(p) => log.push(p),
                    CalStep::Load(_) => {}
                    CalStep::Done(r) => return (r, log, sets),
                    CalStep::Fail(e) => panic!("failed: {e}\n{log:#?}"),
                }
            }
        }
        panic!("did not finish: {log:#?}");
    }

    #[test]
    fn finds_the_capacity_within_a_few_percent_and_ends_at_the_originals() {
        let (r, log, sets) = run(70e6, 3_000);
        let d = r.dirs[0].expect("download calibrated");
        let opt = d.optimal.0 as f64 / 1e6;
        assert!((62.0..=70.0).contains(&opt), "optimum {opt} Mbit/s for a 70 Mbit/s line\n{log:#?}");
        assert!((r.baseline_ms - 20.0).abs() < 1.0, "{}", r.baseline_ms);
        assert_eq!(sets.last(), Some(&[Bps(90_000_000), Bps(18_000_000)]), "ends at the originals");
        assert!(sets.iter().all(|s| s[1] == Bps(18_000_000)), "the upload is never touched");
        let keys = recommended_keys(&r);
        let ceiling = keys.iter().find(|k| k.0.ends_with("download.ceiling_mbps")).expect("ceiling").1;
        assert!((ceiling - 70.0).abs() <= 7.0, "ceiling {ceiling}");
    }

    #[test]
    fn no_transfer_skips_the_direction() {
        let (r, log, _) = run(70e6, u64::MAX);
        assert_eq!(r.dirs, [None, None]);
        assert!(log.iter().any(|l| l.contains("no transfer seen")), "{log:#?}");
    }
}
