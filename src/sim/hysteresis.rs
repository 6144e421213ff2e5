//! The newer upstream's hysteresis keys (`thresholds.dwell_cycles`, `deadband_ms`, 1.24) on
//! a jittery idle cable line: how many GREEN→YELLOW transitions (each a rate cut the line
//! did not need) the real engine makes with and without them. Pure: the seeded
//! [`super::SimWorld`], no I/O.
//!
//! The line: 24 ms base RTT, DOCSIS-like per-probe jitter (σ 5 ms, half-normal), 100/20
//! Mbit/s with a light 5/1 Mbit/s of traffic (never queued), `target_bloat_ms: 9` as in the
//! upstream cable example. Any YELLOW here is a false alarm.

use std::fmt::Write as _;
use std::time::Duration;

use super::scenarios::{Scenario, run, with_law};
use super::{LinkProfile, sample_config};
use crate::engine::controller::Zone;
use crate::engine::wan::Fallback;
use crate::rng::Rng;

/// One variant's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct HysteresisRow {
    /// `none`, `dwell 5`, `dwell 5 + deadband 3`.
    pub label: &'static str,
    /// Download GREEN→YELLOW transitions per simulated minute.
    pub transitions_per_min: f64,
    /// Share of ticks with the download outside GREEN.
    pub non_green_share: f64,
    /// Mean applied download rate (Mbit/s).
    pub mean_dl_rate: f64,
}

fn idle_cable(_: &mut Rng) -> LinkProfile {
    LinkProfile {
        base_rtt_ms: 24.0,
        jitter_ms: 5.0,
        loss: 0.0,
        buffer: Duration::from_millis(600),
        dl_capacity: vec![(0.0, 100.0)],
        ul_capacity: vec![(0.0, 20.0)],
        dl_demand: vec![(0.0, 5.0)],
        ul_demand: vec![(0.0, 1.0)],
        reflectors_dead: vec![],
        fallback_while_dead: Fallback::Connected,
        router_down: vec![],
        counters_down: vec![],
        counter_resets: vec![],
        drop_at: None,
        recover_at: None,
        pool: 0,
        ipv6: false,
        reflector_faults: vec![],
        reflector_offsets: vec![],
    }
}

/// The scenario (not in the main table: it measures false alarms, not recovery).
pub const IDLE_CABLE: Scenario = Scenario {
    name: "idle-cable",
    about: "idle DOCSIS line, 24 ms base, 5 ms jitter, target 9 ms",
    duration_s: 120.0,
    drop_at: None,
    recover_at: None,
    profile: idle_cable,
};

/// Runs the three variants for `seed`.
pub fn rows(seed: u64) -> Vec<HysteresisRow> {
    let variants: [(&'static str, u32, f64); 3] =
        [("none", 0, 0.0), ("dwell 5", 5, 0.0), ("dwell 5 + deadband 3", 5, 3.0)];
    variants
        .iter()
        .map(|&(label, dwell, deadband)| {
            let mut cfg = with_law(&sample_config(), false);
            let t = &mut cfg.monitoring.thresholds;
            t.target_bloat_ms = 9.0;
            t.dwell_cycles = dwell;
            t.deadband_ms = deadband;
            let w = run(&IDLE_CABLE, &cfg, seed);
            let mut transitions = 0usize;
            let mut non_green = 0usize;
            let mut rate_sum = 0.0;
            let mut prev = Zone::Green;
            for r in &w.trace {
                let z = r.report.download.zone;
                if prev == Zone::Green && z == Zone::Yellow {
                    transitions += 1;
                }
                if z != Zone::Green {
                    non_green += 1;
                }
                rate_sum += r.dl_rate;
                prev = z;
            }
            let n = w.trace.len().max(1) as f64;
            HysteresisRow {
                label,
                transitions_per_min: transitions as f64 / (IDLE_CABLE.duration_s / 60.0),
                non_green_share: non_green as f64 / n,
                mean_dl_rate: rate_sum / n,
            }
        })
        .collect()
}

/// The printed figure.
pub fn table(seed: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Hysteresis on an {} (seed {seed}, RTT-only law):", IDLE_CABLE.about);
    let _ = writeln!(
        out,
        "  {:<22} {:>16} {:>10} {:>14}",
        "upstream keys", "GREEN→YELLOW/min", "non-GREEN", "mean DL Mbit/s"
    );
    for r in rows(seed) {
        let _ = writeln!(
            out,
            "  {:<22} {:>16.1} {:>9.1}% {:>14.1}",
            r.label,
            r.transitions_per_min,
            r.non_green_share * 100.0,
            r.mean_dl_rate
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "prints the figure: cargo test --lib hysteresis -- --ignored --nocapture"]
    fn print_figure() {
        for seed in [1, 2, 3] {
            print!("{}", table(seed));
        }
    }

    #[test]
    fn dwell_and_deadband_cut_false_alarms_on_an_idle_jittery_line() {
        for seed in [1, 2, 3] {
            let r = rows(seed);
            assert!(r[0].transitions_per_min > 0.0, "seed {seed}: the jitter must cross 9 ms: {r:?}");
            assert!(
                r[1].transitions_per_min < r[0].transitions_per_min * 0.5,
                "seed {seed}: dwell 5 must at least halve false alarms: {r:?}"
            );
            assert!(r[1].mean_dl_rate >= r[0].mean_dl_rate, "seed {seed}: {r:?}");
            assert!(r[2].transitions_per_min <= r[1].transitions_per_min + 0.5, "seed {seed}: {r:?}");
        }
    }
}
