//! The scenario table, the figures `make sim` prints, and the invariants every run must
//! hold. Pure.

use std::fmt::Write as _;
use std::time::Duration;

use super::{LinkProfile, SimWorld, TraceRow, sample_config, step_at};
use crate::config::AutorateConfig;
use crate::engine::controller::Zone;
use crate::engine::wan::{Fallback, Outcome};
use crate::rng::Rng;
use crate::time::Instant;

/// One named scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short name (`step`, `burst`, …).
    pub name: &'static str,
    /// What it shows.
    pub about: &'static str,
    /// Length of the run (s).
    pub duration_s: f64,
    /// Capacity drop instant, if the scenario has one (s).
    pub drop_at: Option<f64>,
    /// Capacity recovery instant (s).
    pub recover_at: Option<f64>,
    /// Builds the link for a seed.
    pub profile: fn(&mut Rng) -> LinkProfile,
}

fn base_profile() -> LinkProfile {
    LinkProfile {
        base_rtt_ms: 20.0,
        jitter_ms: 1.0,
        loss: 0.002,
        buffer: Duration::from_millis(600),
        dl_capacity: vec![(0.0, 100.0)],
        ul_capacity: vec![(0.0, 20.0)],
        dl_demand: vec![(0.0, 1000.0)],
        ul_demand: vec![(0.0, 2.0)],
        reflectors_dead: vec![],
        fallback_while_dead: Fallback::Connected,
        router_down: vec![],
    }
}

/// All scenarios, in report order.
pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "step",
            about: "capacity 100 -> 40 Mbit/s at 20 s, back to 100 at 80 s, saturating download",
            duration_s: 120.0,
            drop_at: Some(20.0),
            recover_at: Some(80.0),
            profile: |_| LinkProfile {
                dl_capacity: vec![(0.0, 100.0), (20.0, 40.0), (80.0, 100.0)],
                ..base_profile()
            },
        },
        Scenario {
            name: "burst",
            about: "ceiling above a 90 Mbit/s line; 15 s download bursts from idle",
            duration_s: 90.0,
            drop_at: None,
            recover_at: None,
            profile: |_| LinkProfile {
                dl_capacity: vec![(0.0, 90.0)],
                dl_demand: vec![(0.0, 0.0), (10.0, 1000.0), (25.0, 0.0), (50.0, 1000.0), (65.0, 0.0)],
                ..base_profile()
            },
        },
        Scenario {
            name: "reflectors",
            about: "all reflectors silent 20-45 s (gateway answers), capacity 60 Mbit/s",
            duration_s: 70.0,
            drop_at: None,
            recover_at: None,
            profile: |_| LinkProfile {
                dl_capacity: vec![(0.0, 60.0)],
                reflectors_dead: vec![(20.0, 45.0)],
                ..base_profile()
            },
        },
        Scenario {
            name: "router",
            about: "router unreachable 20-40 s; capacity drops to 50 at 25 s, inside the outage",
            duration_s: 70.0,
            drop_at: Some(25.0),
            recover_at: None,
            profile: |_| LinkProfile {
                dl_capacity: vec![(0.0, 100.0), (25.0, 50.0)],
                router_down: vec![(20.0, 40.0)],
                ..base_profile()
            },
        },
        Scenario {
            name: "lte",
            about: "LTE-like random walk 15-90 Mbit/s every 2 s, 3 ms jitter, 1% loss",
            duration_s: 300.0,
            drop_at: None,
            recover_at: None,
            profile: |rng| {
                let mut cap = vec![];
                let mut c = 60.0f64;
                let mut t = 0.0;
                while t < 300.0 {
                    cap.push((t, c));
                    c = (c * rng.uniform(0.75, 1.3)).clamp(15.0, 90.0);
                    t += 2.0;
                }
                LinkProfile { dl_capacity: cap, jitter_ms: 3.0, loss: 0.01, ..base_profile() }
            },
        },
    ]
}

/// The figures of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Scenario name.
    pub name: &'static str,
    /// Seed of the run.
    pub seed: u64,
    /// Added delay percentiles while loaded (ms).
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Delivered / capacity while loaded.
    pub utilisation: f64,
    /// Router writes (attempts).
    pub writes: usize,
    /// Writes per minute of run.
    pub writes_per_min: f64,
    /// Time from the drop to the first cut the router applied (s).
    pub first_cut_s: Option<f64>,
    /// Time from the drop until added delay fell back under 10 ms (s).
    pub drain_s: Option<f64>,
    /// Time from recovery until the rate was back at 90 % of capacity (s).
    pub back_to_90_s: Option<f64>,
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// Scenario.
    pub scenario: &'static str,
    /// Seed that reproduces it.
    pub seed: u64,
    /// What went wrong.
    pub what: String,
}

fn percentile(sorted: &[f32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)])
}

/// Runs one scenario with one seed on `cfg`; returns the world for inspection.
pub fn run(s: &Scenario, cfg: &AutorateConfig, seed: u64) -> SimWorld {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let profile = (s.profile)(&mut rng);
    let mut w = SimWorld::new(cfg, profile, seed);
    w.run_until(Instant::from_micros((s.duration_s * 1e6) as u64));
    w
}

/// Computes the report figures of a finished run.
pub fn figures(s: &Scenario, w: &SimWorld, seed: u64) -> Figures {
    let mut d = w.loaded_delay_ms.clone();
    d.sort_by(f32::total_cmp);
    let applied: Vec<_> = w.writes.iter().filter(|x| x.applied).collect();
    let first_cut_s = s.drop_at.and_then(|drop| {
        let before = step_at(&w.profile.dl_capacity, drop - 0.001);
        applied.iter().find(|x| x.t >= drop && x.rates.download.as_mbps() < before).map(|x| x.t - drop)
    });
    let drain_s = s.drop_at.and_then(|drop| {
        let after: Vec<&TraceRow> = w.trace.iter().filter(|r| r.t >= drop).collect();
        let onset = after.iter().position(|r| r.added_delay_ms > 10.0)?;
        after[onset..].iter().find(|r| r.added_delay_ms <= 10.0).map(|r| r.t - drop)
    });
    let back_to_90_s = s.recover_at.and_then(|rec| {
        w.trace.iter().find(|r| r.t >= rec && r.dl_rate >= 0.9 * r.dl_capacity).map(|r| r.t - rec)
    });
    let writes = w.writes.len();
    Figures {
        name: s.name,
        seed,
        p50_ms: percentile(&d, 50.0),
        p95_ms: percentile(&d, 95.0),
        p99_ms: percentile(&d, 99.0),
        utilisation: w.utilisation(),
        writes,
        writes_per_min: writes as f64 / (s.duration_s / 60.0),
        first_cut_s,
        drain_s,
        back_to_90_s,
    }
}

/// Checks the invariants every scenario must hold.
pub fn check(s: &Scenario, cfg: &AutorateConfig, w: &SimWorld, seed: u64) -> Vec<Violation> {
    let mut v = vec![];
    let mut fail = |what: String| v.push(Violation { scenario: s.name, seed, what });
    let dl = &cfg.monitoring.download;
    let ul = &cfg.monitoring.upload;
    for r in &w.trace {
        let (d, u) = (r.report.download.rate, r.report.upload.rate);
        if d < dl.floor_red || d > dl.ceiling || u < ul.floor_red || u > ul.ceiling {
            fail(format!("t={:.2}s rate out of bounds: dl {d} ul {u}", r.t));
            break;
        }
    }
    for x in &w.writes {
        if x.rates.download < dl.floor_red || x.rates.download > dl.ceiling {
            fail(format!("t={:.2}s wrote out-of-bounds download {}", x.t, x.rates.download));
        }
    }
    // No zone gets stuck: in any 30 s window of a loaded, steady link the download zone
    // must visit GREEN (the controller keeps probing instead of sitting in YELLOW/RED).
    let window = (30.0 / 0.05) as usize;
    if w.trace.len() > window {
        for chunk in w.trace.windows(window).step_by(window / 2) {
            if chunk
                .iter()
                .all(|r| r.report.outcome == Outcome::Adjusted && r.report.download.zone != Zone::Green)
            {
                fail(format!(
                    "download zone never GREEN during {:.0}-{:.0} s",
                    chunk[0].t,
                    chunk[window - 1].t
                ));
                break;
            }
        }
    }
    // Long-run write budget: at most the bucket plus 10 per minute plus one congestion
    // episode's worth of cuts.
    let minutes = s.duration_s / 60.0;
    let budget = 10.0 + 10.0 * minutes + 60.0;
    if w.writes.len() as f64 > budget {
        fail(format!("{} writes in {:.1} min exceeds the budget {budget:.0}", w.writes.len(), minutes));
    }
    let f = figures(s, w, seed);
    if let Some(drop) = s.drop_at {
        let outage = w.profile.router_down.iter().find(|&&(a, b)| drop >= a && drop < b).map(|&(_, b)| b);
        match (f.first_cut_s, outage) {
            (None, _) => fail("capacity dropped but no cut reached the router".into()),
            (Some(c), None) if c > 0.5 => fail(format!("first cut {c:.2} s after the drop (limit 0.5 s)")),
            (Some(c), Some(back)) if drop + c > back + 1.0 => {
                fail(format!("pending cut applied {:.2} s after the router came back", drop + c - back))
            }
            _ => {}
        }
    }
    if s.name == "reflectors" {
        // A reflector outage must not drive the rate to the floor.
        let worst = w
            .trace
            .iter()
            .filter(|r| r.t > 20.0 && r.t < 45.0)
            .map(|r| r.dl_rate)
            .fold(f64::INFINITY, f64::min);
        if worst <= dl.floor_red.as_mbps() {
            fail(format!("reflector outage drove download to the floor ({worst:.1} Mbit/s)"));
        }
    }
    v
}

/// Renders the `make sim` table.
pub fn table(rows: &[Figures]) -> String {
    let opt = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<11} {:>6} {:>7} {:>7} {:>7} {:>6} {:>6} {:>8} {:>9} {:>8} {:>9}",
        "scenario",
        "seed",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "util",
        "writes",
        "writes/m",
        "1st cut s",
        "drain s",
        "to 90% s"
    );
    for f in rows {
        let _ = writeln!(
            out,
            "{:<11} {:>6} {:>7.1} {:>7.1} {:>7.1} {:>6.3} {:>6} {:>8.1} {:>9} {:>8} {:>9}",
            f.name,
            f.seed,
            f.p50_ms,
            f.p95_ms,
            f.p99_ms,
            f.utilisation,
            f.writes,
            f.writes_per_min,
            opt(f.first_cut_s),
            opt(f.drain_s),
            opt(f.back_to_90_s)
        );
    }
    out
}

/// Runs every scenario with `seed`, returning the figures and any violations.
pub fn run_all(seed: u64) -> (Vec<Figures>, Vec<Violation>) {
    let cfg = sample_config();
    let mut figs = vec![];
    let mut bad = vec![];
    for s in all() {
        let w = run(&s, &cfg, seed);
        figs.push(figures(&s, &w, seed));
        bad.extend(check(&s, &cfg, &w, seed));
    }
    (figs, bad)
}
