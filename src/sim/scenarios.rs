//! The scenario table, the figures `make sim` prints, and the invariants every run must
//! hold. Pure.

use std::fmt::Write as _;
use std::time::Duration;

use super::{LinkProfile, SimWorld, TraceRow, sample_config, step_at};
use crate::config::AutorateConfig;
use crate::engine::controller::Zone;
use crate::engine::wan::{Fallback, Outcome};
use crate::engine::writer::Rates;
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

pub(crate) fn base_profile() -> LinkProfile {
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

/// A download collapse below the floor: depth 3-8 Mbit/s for 20-40 s from t = 20 s.
fn collapse_profile(rng: &mut Rng) -> LinkProfile {
    let depth = rng.uniform(3.0, 8.0);
    let back = 20.0 + rng.uniform(20.0, 40.0);
    LinkProfile {
        dl_capacity: vec![(0.0, 100.0), (20.0, depth), (back, 100.0)],
        drop_at: Some(20.0),
        recover_at: Some(back),
        ..base_profile()
    }
}

/// Three collapses of random depth (3-20 Mbit/s), length (5-15 s) and spacing (15-30 s).
fn repeated_profile(rng: &mut Rng) -> LinkProfile {
    let mut cap = vec![(0.0, 100.0)];
    let mut t = 15.0;
    let mut last = (None, None);
    for _ in 0..3 {
        let depth = rng.uniform(3.0, 20.0);
        let len = rng.uniform(5.0, 15.0);
        cap.push((t, depth));
        cap.push((t + len, 100.0));
        last = (Some(t), Some(t + len));
        t += len + rng.uniform(15.0, 30.0);
    }
    LinkProfile { dl_capacity: cap, drop_at: last.0, recover_at: last.1, ..base_profile() }
}

/// All scenarios, in report order.
pub fn all() -> Vec<Scenario> {
    let mut v = classic();
    v.extend(load_scenarios());
    v
}

/// The load-aware control scenarios (issue 11): collapses, asymmetric load, counter
/// failures and resets, a long steady line.
fn load_scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "collapse",
            about: "download collapses to 3-8 Mbit/s (below the 10 Mbit/s floor) for 20-40 s, then back to 100",
            duration_s: 100.0,
            drop_at: Some(20.0),
            recover_at: None,
            profile: collapse_profile,
        },
        Scenario {
            name: "repeated",
            about: "three collapses to 3-20 Mbit/s of 5-15 s, 15-30 s apart",
            duration_s: 150.0,
            drop_at: None,
            recover_at: None,
            profile: repeated_profile,
        },
        Scenario {
            name: "asym-dl",
            about: "download saturated (100 -> 40 -> 100 Mbit/s), upload idle (0.5 Mbit/s of 20)",
            duration_s: 90.0,
            drop_at: Some(20.0),
            recover_at: Some(60.0),
            profile: |_| LinkProfile {
                dl_capacity: vec![(0.0, 100.0), (20.0, 40.0), (60.0, 100.0)],
                ul_demand: vec![(0.0, 0.5)],
                drop_at: Some(20.0),
                recover_at: Some(60.0),
                ..base_profile()
            },
        },
        Scenario {
            name: "asym-ul",
            about: "upload saturated (20 -> 8 -> 20 Mbit/s), download idle (1 Mbit/s of 100)",
            duration_s: 90.0,
            drop_at: None,
            recover_at: None,
            profile: |_| LinkProfile {
                ul_capacity: vec![(0.0, 20.0), (20.0, 8.0), (60.0, 20.0)],
                ul_demand: vec![(0.0, 1000.0)],
                dl_demand: vec![(0.0, 1.0)],
                ..base_profile()
            },
        },
        Scenario {
            name: "counters",
            about: "step 100 -> 40 -> 100; counter reads fail 30-50 s, counters reset at 70 s",
            duration_s: 120.0,
            drop_at: Some(20.0),
            recover_at: Some(80.0),
            profile: |_| LinkProfile {
                dl_capacity: vec![(0.0, 100.0), (20.0, 40.0), (80.0, 100.0)],
                counters_down: vec![(30.0, 50.0)],
                counter_resets: vec![70.0],
                ..base_profile()
            },
        },
        Scenario {
            name: "steady",
            about: "10 minutes of a saturated 60 Mbit/s line (ceiling 100)",
            duration_s: 600.0,
            drop_at: None,
            recover_at: None,
            profile: |_| LinkProfile { dl_capacity: vec![(0.0, 60.0)], ..base_profile() },
        },
    ]
}

/// The first round's scenarios.
fn classic() -> Vec<Scenario> {
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
    /// `load` (counters used) or `rtt` (the RTT-only law).
    pub law: &'static str,
    /// Writes the router applied per minute.
    pub applied_per_min: f64,
    /// Longest time (s) the controller's rates and the router's differed while the router
    /// was reachable.
    pub max_lag_s: f64,
    /// Counter reads per second.
    pub reads_per_s: f64,
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
    let drop_at = w.profile.drop_at.or(s.drop_at);
    let recover_at = w.profile.recover_at.or(s.recover_at);
    let first_cut_s = drop_at.and_then(|drop| {
        let before = step_at(&w.profile.dl_capacity, drop - 0.001);
        applied.iter().find(|x| x.t >= drop && x.rates.download.as_mbps() < before).map(|x| x.t - drop)
    });
    let drain_s = drop_at.and_then(|drop| {
        let after: Vec<&TraceRow> = w.trace.iter().filter(|r| r.t >= drop).collect();
        let onset = after.iter().position(|r| r.added_delay_ms > 10.0)?;
        after[onset..].iter().find(|r| r.added_delay_ms <= 10.0).map(|r| r.t - drop)
    });
    let back_to_90_s = recover_at.and_then(|rec| {
        w.trace.iter().find(|r| r.t >= rec && r.dl_rate >= 0.9 * r.dl_capacity).map(|r| r.t - rec)
    });
    let writes = w.writes.len();
    let minutes = s.duration_s / 60.0;
    Figures {
        name: s.name,
        law: if w.daemon_load_enabled() { "load" } else { "rtt" },
        applied_per_min: applied.len() as f64 / minutes,
        max_lag_s: max_lag(w),
        reads_per_s: w.reads as f64 / s.duration_s,
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

/// Longest run of ticks (s) in which the controller's rates differed from the router's
/// while the router was reachable (and for 2 s after an outage, the retry back-off).
pub fn max_lag(w: &SimWorld) -> f64 {
    max_lag_at(w).0
}

/// [`max_lag`] and when that longest run started (s).
pub fn max_lag_at(w: &SimWorld) -> (f64, f64) {
    let mut worst = (0.0f64, 0.0f64);
    let mut since: Option<f64> = None;
    let mut last_down = f64::NEG_INFINITY;
    for r in &w.trace {
        if r.router_down {
            last_down = r.t;
        }
        let reachable = r.t - last_down > 2.0;
        if reachable && r.desired != r.applied {
            let start = *since.get_or_insert(r.t);
            if r.t - start > worst.0 {
                worst = (r.t - start, start);
            }
        } else {
            since = None;
        }
    }
    worst
}

/// The bound on [`max_lag`] (s): an increase waits at most one token interval (60 s /
/// budget) plus the increase gap (`engine::writer`, bound 1), and the controller climbs a
/// probe quantum in at most 2 s before asking.
pub fn lag_bound(cfg: &AutorateConfig) -> f64 {
    60.0 / cfg.monitoring.write_budget_per_min + 1.0 + 2.0
}

/// How soon after a drop the first cut must reach the router: 0.5 s, plus the buffer's
/// delay when the capacity falls to under a fifth (the measurement that shows it is itself
/// that late).
fn first_cut_limit(w: &SimWorld, drop: f64) -> f64 {
    let before = step_at(&w.profile.dl_capacity, drop - 0.001);
    let after = step_at(&w.profile.dl_capacity, drop + 0.001);
    if after < before / 5.0 { 0.5 + w.profile.buffer.as_secs_f64() } else { 0.5 }
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
            // (Unless the line itself is below the floor: then no rate can drain it.)
            let below_floor = chunk.iter().any(|r| r.dl_capacity < dl.floor_red.as_mbps());
            if !below_floor
                && chunk
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
    // Long-run write budget (engine::writer, bound 2): increases the router applied are at
    // most the bucket plus the debt cap plus the refill; on the long scenarios the average
    // of all writes stays at the budget.
    let minutes = s.duration_s / 60.0;
    let b = cfg.monitoring.write_budget_per_min;
    let applied: Vec<_> = w.writes.iter().filter(|x| x.applied).collect();
    let mut increases = 0usize;
    let mut prev = Rates { download: cfg.monitoring.download.ceiling, upload: cfg.monitoring.upload.ceiling };
    for x in &applied {
        if x.rates != prev && !x.rates.cuts_from(prev) {
            increases += 1;
        }
        prev = x.rates;
    }
    let bound = 1.5 * b + b * minutes;
    if increases as f64 > bound {
        fail(format!("{increases} increases in {minutes:.1} min exceed the budget bound {bound:.0}"));
    }
    if s.name == "steady" && applied.len() as f64 / minutes > b {
        fail(format!(
            "{:.1} writes a minute over {minutes:.0} min, budget {b}",
            applied.len() as f64 / minutes
        ));
    }
    // While the router is reachable, what the controller wants reaches it within a bound.
    let (lag, lag_at) = max_lag_at(w);
    if lag > lag_bound(cfg) {
        fail(format!(
            "controller and router rates differed for {lag:.2} s from t={lag_at:.2} s (bound {:.1} s)",
            lag_bound(cfg)
        ));
    }
    // The load-aware law never cuts an idle direction whose own queue is empty for the
    // other direction's congestion (checked while the counters are fresh).
    if w.daemon_load_enabled() {
        let loaded_ratio = cfg.monitoring.load.loaded_ratio;
        let mut prev: Option<&crate::sim::TraceRow> = None;
        for r in &w.trace {
            if let Some(p) = prev
                && p.load_aware
                && r.load_aware
            {
                let cut = |now: crate::units::Bps, before: crate::units::Bps| now < before;
                // Idle now and for the last second (a cut decided while the load was there
                // may land just after it stopped).
                let was = |steps: &[(f64, f64)]| step_at(steps, r.t - 1.0);
                let (dl_before, ul_before) = (was(&w.profile.dl_demand), was(&w.profile.ul_demand));
                let idle = |demand: f64, rate: crate::units::Bps| demand < loaded_ratio * rate.as_mbps();
                let idle_ul = idle(r.demand.1, p.applied.upload) && idle(ul_before, p.applied.upload);
                let idle_dl = idle(r.demand.0, p.applied.download) && idle(dl_before, p.applied.download);
                if cut(r.applied.upload, p.applied.upload) && idle_ul && r.delay_ms.1 < 1.0 {
                    fail(format!("t={:.2}s idle upload cut for the download's congestion", r.t));
                    break;
                }
                if cut(r.applied.download, p.applied.download) && idle_dl && r.delay_ms.0 < 1.0 {
                    fail(format!("t={:.2}s idle download cut for the upload's congestion", r.t));
                    break;
                }
            }
            prev = Some(r);
        }
    }
    let f = figures(s, w, seed);
    if let Some(drop) = w.profile.drop_at.or(s.drop_at) {
        let outage = w.profile.router_down.iter().find(|&&(a, b)| drop >= a && drop < b).map(|&(_, b)| b);
        match (f.first_cut_s, outage) {
            (None, _) => fail("capacity dropped but no cut reached the router".into()),
            // A collapse fills the modem buffer at once, and the samples that show it come
            // back only after that delay: allow it on top.
            (Some(c), None) if c > first_cut_limit(w, drop) => {
                fail(format!("first cut {c:.2} s after the drop (limit {:.2} s)", first_cut_limit(w, drop)))
            }
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
        "{:<10} {:>4} {:<4} {:>6} {:>6} {:>6} {:>6} {:>6} {:>8} {:>6} {:>7} {:>9} {:>7} {:>8}",
        "scenario",
        "seed",
        "law",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "util",
        "writes",
        "applied/m",
        "lag s",
        "reads/s",
        "1st cut s",
        "drain s",
        "to 90% s"
    );
    for f in rows {
        let _ = writeln!(
            out,
            "{:<10} {:>4} {:<4} {:>6.1} {:>6.1} {:>6.1} {:>6.3} {:>6} {:>9.1} {:>6.2} {:>7.2} {:>9} {:>7} {:>8}",
            f.name,
            f.seed,
            f.law,
            f.p50_ms,
            f.p95_ms,
            f.p99_ms,
            f.utilisation,
            f.writes,
            f.applied_per_min,
            f.max_lag_s,
            f.reads_per_s,
            opt(f.first_cut_s),
            opt(f.drain_s),
            opt(f.back_to_90_s)
        );
    }
    out
}

/// The configuration a law runs with: `load` as configured, `rtt` with the counters off.
pub fn with_law(cfg: &AutorateConfig, load: bool) -> AutorateConfig {
    let mut c = cfg.clone();
    if !load {
        c.monitoring.load = crate::config::LoadControl::off();
    }
    c
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// Recovery bought with writes: for write budgets of 10, 30 and 60 a minute, the median
/// and worst time back to 90 % after the recovery and the applied writes a minute, on the
/// step and collapse scenarios, both laws, over `seeds`.
pub fn tradeoff(seeds: &[u64]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:>7} {:<4} {:>12} {:>11} {:>9} {:>11}",
        "scenario", "budget", "law", "to 90% med s", "to 90% max", "applied/m", "p95 ms med"
    );
    for name in ["step", "collapse", "lte"] {
        let Some(s) = all().into_iter().find(|s| s.name == name) else { continue };
        for budget in [10.0, 30.0, 60.0] {
            for load in [true, false] {
                let mut cfg = with_law(&sample_config(), load);
                cfg.monitoring.write_budget_per_min = budget;
                let figs: Vec<Figures> =
                    seeds.iter().map(|&seed| figures(&s, &run(&s, &cfg, seed), seed)).collect();
                let recov: Vec<f64> = figs.iter().map(|f| f.back_to_90_s.unwrap_or(f64::INFINITY)).collect();
                let worst = recov.iter().copied().fold(f64::NAN, f64::max);
                let fmt = |x: Option<f64>| match x {
                    Some(v) if v.is_finite() => format!("{v:.2}"),
                    Some(_) => "never".to_string(),
                    None => "-".to_string(),
                };
                let has_recovery = figs.iter().any(|f| f.back_to_90_s.is_some());
                let _ = writeln!(
                    out,
                    "{:<10} {:>7} {:<4} {:>12} {:>11} {:>9.1} {:>11.1}",
                    name,
                    budget,
                    if load { "load" } else { "rtt" },
                    if has_recovery { fmt(median(recov.clone())) } else { "-".into() },
                    if has_recovery { fmt(Some(worst)) } else { "-".into() },
                    median(figs.iter().map(|f| f.applied_per_min).collect()).unwrap_or(0.0),
                    median(figs.iter().map(|f| f.p95_ms).collect()).unwrap_or(0.0),
                );
            }
        }
    }
    out
}

/// Runs every scenario with `seed`, returning the figures and any violations.
pub fn run_all(seed: u64) -> (Vec<Figures>, Vec<Violation>) {
    let cfg = sample_config();
    let mut figs = vec![];
    let mut bad = vec![];
    for s in all() {
        for load in [true, false] {
            let cfg = with_law(&cfg, load);
            let w = run(&s, &cfg, seed);
            figs.push(figures(&s, &w, seed));
            bad.extend(check(&s, &cfg, &w, seed));
        }
    }
    (figs, bad)
}
