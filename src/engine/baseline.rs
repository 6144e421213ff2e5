//! RTT smoothing: the load EWMA and the idle-only baseline (ALGORITHM.md §6). Pure.
//!
//! Alpha comes from the configured time constant and the *measured* interval since the
//! previous sample (`alpha = dt / tau`, capped at 1), so a late or missed tick does not
//! change the filters' time constants. At the nominal 50 ms this equals the original's
//! `alpha = 0.05 / tau` and raw alphas are reproduced (config converts them to taus).
//!
//! Baseline invariant (the original's "protected zone"): the baseline moves only while the
//! *already updated* load is less than `baseline_update_threshold_ms` above it, and only to
//! a candidate inside the inclusive bounds. Under load it is frozen bit for bit.

use std::time::Duration;

use crate::config::{NOMINAL_CYCLE, Thresholds};

/// The longest interval one sample may stand for: after a long gap the filters move by at
/// most what two seconds of samples would have moved them.
const MAX_DT: Duration = Duration::from_secs(2);

/// What one sample did to the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BaselineUpdate {
    /// The baseline moved to this value.
    Updated(f64),
    /// The link is loaded (`load - baseline ≥ threshold`): baseline unchanged.
    Frozen,
    /// The candidate fell outside the bounds and was discarded (the original warns).
    OutOfBounds(f64),
}

/// Load EWMA, baseline EWMA and the previous load (for spike detection).
#[derive(Debug, Clone)]
pub struct RttFilter {
    baseline_ms: f64,
    load_ms: f64,
    previous_load_ms: f64,
    baseline_tau: f64,
    load_tau: f64,
    update_threshold_ms: f64,
    bounds: (f64, f64),
}

impl RttFilter {
    /// Both EWMAs start at `initial_ms` (`baseline_rtt_initial`).
    pub fn new(initial_ms: f64, t: &Thresholds) -> RttFilter {
        RttFilter {
            baseline_ms: initial_ms,
            load_ms: initial_ms,
            previous_load_ms: initial_ms,
            baseline_tau: t.baseline_tau.as_secs_f64(),
            load_tau: t.load_tau.as_secs_f64(),
            update_threshold_ms: t.baseline_update_threshold_ms,
            bounds: (t.baseline_min_ms, t.baseline_max_ms),
        }
    }

    /// Restores persisted EWMAs. As in the original, `previous_load` keeps its initial
    /// value, so the first cycle after a restart compares against it.
    ///
    /// A baseline outside the configured bounds is discarded (the filter keeps its
    /// initial baseline, and the load restarts from it too): `on_sample` only ever moves
    /// the baseline to candidates inside the bounds, so an out-of-bounds baseline would
    /// never move again (issue 18: a state file with `baseline_rtt: 500` and bounds 10..60
    /// kept the rate at its ceiling at 120 ms RTT for ever). Such a file comes from the
    /// Python original, another config, or a lowered `baseline_rtt_bounds.max`; the same
    /// check runs on reload. Returns the discarded baseline, if any, for a warning.
    pub fn restore(&mut self, baseline_ms: f64, load_ms: f64) -> Option<f64> {
        let usable = |v: f64| v.is_finite() && v > 0.0;
        if usable(baseline_ms) && !(self.bounds.0..=self.bounds.1).contains(&baseline_ms) {
            self.load_ms = self.baseline_ms;
            return Some(baseline_ms);
        }
        if usable(baseline_ms) {
            self.baseline_ms = baseline_ms;
        }
        if usable(load_ms) {
            self.load_ms = load_ms;
        }
        None
    }

    /// The baseline (ms).
    pub fn baseline_ms(&self) -> f64 {
        self.baseline_ms
    }

    /// The load EWMA (ms).
    pub fn load_ms(&self) -> f64 {
        self.load_ms
    }

    /// `load - baseline` (ms, may be negative).
    pub fn delta_ms(&self) -> f64 {
        self.load_ms - self.baseline_ms
    }

    /// `alpha = dt / tau`, capped at 1.
    pub fn alpha(dt: Duration, tau: f64) -> f64 {
        let dt = dt.min(MAX_DT).as_secs_f64();
        if tau <= 0.0 { 1.0 } else { (dt / tau).min(1.0) }
    }

    /// Feeds one measurement taken `dt` after the previous one: load first, then the
    /// conditional baseline. Returns what happened to the baseline and the acceleration
    /// (`new load - previous load`, ms).
    pub fn on_sample(&mut self, measured_ms: f64, dt: Duration) -> (BaselineUpdate, f64) {
        let a_load = Self::alpha(dt, self.load_tau);
        self.load_ms = (1.0 - a_load) * self.load_ms + a_load * measured_ms;
        let update = if self.load_ms - self.baseline_ms < self.update_threshold_ms {
            let a_base = Self::alpha(dt, self.baseline_tau);
            let candidate = (1.0 - a_base) * self.baseline_ms + a_base * measured_ms;
            if candidate < self.bounds.0 || candidate > self.bounds.1 {
                BaselineUpdate::OutOfBounds(candidate)
            } else {
                self.baseline_ms = candidate;
                BaselineUpdate::Updated(candidate)
            }
        } else {
            BaselineUpdate::Frozen
        };
        let accel = self.load_ms - self.previous_load_ms;
        self.previous_load_ms = self.load_ms;
        (update, accel)
    }
}

/// The nominal per-cycle alpha for a time constant (for logs and `check-config`).
pub fn nominal_alpha(tau: Duration) -> f64 {
    RttFilter::alpha(NOMINAL_CYCLE, tau.as_secs_f64())
}
