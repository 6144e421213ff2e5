//! Reflector-pool scenarios (issue 13): reflectors that go silent or change path, half the
//! pool dying, a silent path on an idle line, an IPv6-only pool, idle probe back-off. Their
//! own table, because what they measure differs from the control scenarios. Pure.

use std::fmt::Write as _;

use super::scenarios::{Scenario, run};
use super::{FaultTarget, LinkProfile, ReflectorFault, SimWorld, TraceRow};
use crate::config::AutorateConfig;
use crate::engine::wan::Outcome;
use crate::rng::Rng;

fn idle_profile() -> LinkProfile {
    LinkProfile {
        dl_demand: vec![(0.0, 0.0)],
        ul_demand: vec![(0.0, 0.0)],
        pool: 6,
        reflector_offsets: vec![0.0, 4.0, 9.0, 2.0, 14.0, 6.0],
        ..super::scenarios::base_profile()
    }
}

/// The pool scenarios, in report order. `drop_at` marks the fault (or load) start and
/// `recover_at` its end where the figures need them.
pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "refl-silent",
            about: "idle line, pool of 6: one active reflector goes silent at 20 s",
            duration_s: 40.0,
            drop_at: Some(20.0),
            recover_at: None,
            profile: |_| LinkProfile {
                reflector_faults: vec![ReflectorFault {
                    target: FaultTarget::Active(0),
                    from: 20.0,
                    to: 1e9,
                    extra_ms: None,
                }],
                ..idle_profile()
            },
        },
        Scenario {
            name: "refl-delay",
            about: "40 Mbit/s of 100 in use, pool of 6: one active reflector's RTT +30 ms at 20 s",
            duration_s: 100.0,
            drop_at: Some(20.0),
            recover_at: None,
            profile: |_| LinkProfile {
                dl_demand: vec![(0.0, 40.0)],
                ul_demand: vec![(0.0, 2.0)],
                reflector_faults: vec![ReflectorFault {
                    target: FaultTarget::Active(0),
                    from: 20.0,
                    to: 1e9,
                    extra_ms: Some(30.0),
                }],
                ..idle_profile()
            },
        },
        Scenario {
            name: "pool-half",
            about: "40 Mbit/s of 100 in use, pool of 6: three pool members (random) die at 20 s",
            duration_s: 60.0,
            drop_at: Some(20.0),
            recover_at: None,
            profile: |rng: &mut Rng| {
                let mut idx: Vec<usize> = (0..6).collect();
                for i in 0..3 {
                    let j = i + (rng.next_u64() as usize) % (6 - i);
                    idx.swap(i, j);
                }
                LinkProfile {
                    dl_demand: vec![(0.0, 40.0)],
                    ul_demand: vec![(0.0, 2.0)],
                    reflector_faults: idx[..3]
                        .iter()
                        .map(|&i| ReflectorFault {
                            target: FaultTarget::Pool(i),
                            from: 20.0,
                            to: 1e9,
                            extra_ms: None,
                        })
                        .collect(),
                    ..idle_profile()
                }
            },
        },
        Scenario {
            name: "silent-idle",
            about: "idle line: every reflector silent 20-40 s",
            duration_s: 60.0,
            drop_at: Some(20.0),
            recover_at: Some(40.0),
            profile: |_| LinkProfile { reflectors_dead: vec![(20.0, 40.0)], ..idle_profile() },
        },
        Scenario {
            name: "ipv6",
            about: "IPv6-only pool of 4; capacity 100 -> 40 at 20 s, back at 50 s",
            duration_s: 80.0,
            drop_at: Some(20.0),
            recover_at: Some(50.0),
            profile: |_| LinkProfile {
                dl_capacity: vec![(0.0, 100.0), (20.0, 40.0), (50.0, 100.0)],
                pool: 4,
                ipv6: true,
                ..super::scenarios::base_profile()
            },
        },
        Scenario {
            name: "idle-load",
            about: "idle 0-90 s (back-off after 30 s), then a saturating download",
            duration_s: 120.0,
            drop_at: Some(90.0),
            recover_at: None,
            profile: |_| LinkProfile {
                dl_demand: vec![(0.0, 0.0), (90.0, 1000.0)],
                ul_demand: vec![(0.0, 0.0), (90.0, 2.0)],
                ..idle_profile()
            },
        },
    ]
}

/// Figures of one pool run.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolFigures {
    /// Scenario.
    pub name: &'static str,
    /// Seed.
    pub seed: u64,
    /// Router writes that lowered either direction.
    pub cuts: usize,
    /// Fallback check rounds started.
    pub fallbacks: u64,
    /// Cycles that failed (health's consecutive-failure accounting).
    pub failed_cycles: usize,
    /// Seconds from the fault until its target was no longer probed.
    pub replaced_s: Option<f64>,
    /// Ticks without the reflector quorum.
    pub quorum_lost_ticks: usize,
    /// Echo requests per minute over the last 30 s before `drop_at` and after it.
    pub echoes_per_min: (f64, f64),
    /// Seconds from `drop_at` to the first tick with a full round (idle-load), or from
    /// `recover_at` to the first measurement (silent-idle).
    pub resume_s: Option<f64>,
}

fn echo_rate(trace: &[TraceRow], from: f64, to: f64) -> f64 {
    let a = trace.iter().find(|r| r.t >= from);
    let b = trace.iter().rev().find(|r| r.t <= to);
    match (a, b) {
        (Some(a), Some(b)) if b.t > a.t => (b.echoes - a.echoes) as f64 / (b.t - a.t) * 60.0,
        _ => 0.0,
    }
}

/// The figures of a finished pool run.
pub fn figures(s: &Scenario, w: &SimWorld, seed: u64) -> PoolFigures {
    let at = w.profile.drop_at.or(s.drop_at).unwrap_or(0.0);
    let applied: Vec<_> = w.writes.iter().filter(|x| x.applied).collect();
    let cuts = applied.windows(2).filter(|p| p[1].rates.cuts_from(p[0].rates)).count();
    let replaced_s =
        w.trace.iter().find(|r| r.t >= at && r.fault_target_probed == Some(false)).map(|r| r.t - at);
    let resume_s = match s.name {
        "idle-load" => {
            let rows: Vec<&TraceRow> = w.trace.iter().filter(|r| r.t >= at).collect();
            rows.windows(2).find(|p| p[1].echoes - p[0].echoes >= 3).map(|p| p[1].t - at)
        }
        _ => s.recover_at.and_then(|rec| {
            w.trace.iter().find(|r| r.t >= rec && r.measured_ms.is_some()).map(|r| r.t - rec)
        }),
    };
    PoolFigures {
        name: s.name,
        seed,
        cuts,
        fallbacks: w.fallbacks,
        failed_cycles: w.trace.iter().filter(|r| r.report.outcome == Outcome::Failed).count(),
        replaced_s,
        quorum_lost_ticks: w.trace.iter().filter(|r| !r.quorum_ok).count(),
        echoes_per_min: (echo_rate(&w.trace, at - 30.0, at), echo_rate(&w.trace, at, at + 30.0)),
        resume_s,
    }
}

/// The invariants of the pool scenarios (the "must show").
pub fn check(
    s: &Scenario,
    _cfg: &AutorateConfig,
    w: &SimWorld,
    seed: u64,
) -> Vec<super::scenarios::Violation> {
    let f = figures(s, w, seed);
    let mut v = vec![];
    let mut fail = |what: String| v.push(super::scenarios::Violation { scenario: s.name, seed, what });
    match s.name {
        "refl-silent" => {
            if f.cuts > 0 || f.fallbacks > 0 {
                fail(format!(
                    "a silent reflector caused {} cuts and {} fallback rounds",
                    f.cuts, f.fallbacks
                ));
            }
            if !f.replaced_s.is_some_and(|r| r <= 3.0) {
                fail(format!("silent reflector replaced after {:?} s (limit 3)", f.replaced_s));
            }
        }
        "refl-delay" => {
            if f.cuts > 0 {
                fail(format!("a reflector's longer path caused {} cuts", f.cuts));
            }
            if !f.replaced_s.is_some_and(|r| r <= 60.0) {
                fail(format!("outlier reflector replaced after {:?} s (limit 60)", f.replaced_s));
            }
        }
        "pool-half" if f.cuts > 0 || f.failed_cycles > 0 => {
            fail(format!("half the pool dying caused {} cuts, {} failed cycles", f.cuts, f.failed_cycles));
        }
        "silent-idle" => {
            if f.cuts > 0 || f.failed_cycles > 0 || f.fallbacks > 0 {
                fail(format!(
                    "a stalled idle path caused {} cuts, {} failed cycles, {} fallback rounds",
                    f.cuts, f.failed_cycles, f.fallbacks
                ));
            }
            if !f.resume_s.is_some_and(|r| r <= 1.0) {
                fail(format!("measurements resumed {:?} s after the replies (limit 1)", f.resume_s));
            }
        }
        "ipv6" if f.cuts == 0 => fail("IPv6 pool: the capacity drop was never cut".into()),
        "idle-load" => {
            // 0.5 s counter interval plus one tick.
            if !f.resume_s.is_some_and(|r| r <= 0.6) {
                fail(format!("full-rate probing resumed {:?} s after the load (limit 0.6)", f.resume_s));
            }
            if f.echoes_per_min.0 > f.echoes_per_min.1 / 5.0 {
                fail(format!("no back-off while idle: {:?} echoes/min", f.echoes_per_min));
            }
        }
        _ => {}
    }
    v
}

/// Runs every pool scenario with `seed` on `cfg`.
pub fn run_all(cfg: &AutorateConfig, seed: u64) -> (Vec<PoolFigures>, Vec<super::scenarios::Violation>) {
    let mut figs = vec![];
    let mut bad = vec![];
    for s in all() {
        let w = run(&s, cfg, seed);
        figs.push(figures(&s, &w, seed));
        bad.extend(check(&s, cfg, &w, seed));
    }
    (figs, bad)
}

/// Renders the pool table.
pub fn table(rows: &[PoolFigures]) -> String {
    let opt = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:>4} {:>5} {:>9} {:>7} {:>11} {:>13} {:>16} {:>16} {:>9}",
        "scenario",
        "seed",
        "cuts",
        "fallbacks",
        "failed",
        "replaced s",
        "no-quorum s",
        "echoes/min before",
        "echoes/min after",
        "resume s"
    );
    for f in rows {
        let _ = writeln!(
            out,
            "{:<12} {:>4} {:>5} {:>9} {:>7} {:>11} {:>13.2} {:>17.0} {:>16.0} {:>9}",
            f.name,
            f.seed,
            f.cuts,
            f.fallbacks,
            f.failed_cycles,
            opt(f.replaced_s),
            f.quorum_lost_ticks as f64 * 0.05,
            f.echoes_per_min.0,
            f.echoes_per_min.1,
            opt(f.resume_s)
        );
    }
    out
}
