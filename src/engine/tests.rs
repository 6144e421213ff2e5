//! Golden tests: the reference numbers of ALGORITHM.md and TESTS.md §2–§3.

use std::time::Duration;

use super::baseline::{BaselineUpdate, RttFilter};
use super::controller::{QueueController, ThresholdName, Zone, ZoneThresholds};
use super::wan::{Fallback, Outcome, Sample, WanController, WanEvent};
use super::writer::WriteOutcome;
use crate::config::{DirectionConfig, FallbackMode, Thresholds};
use crate::sim::sample_config;
use crate::time::Instant;
use crate::units::Bps;

fn mbps(v: f64) -> Bps {
    Bps::from_mbps(v)
}

fn dl(ceiling: f64, floors: [f64; 4], step: f64, factor: f64) -> DirectionConfig {
    DirectionConfig {
        ceiling: mbps(ceiling),
        step_up: mbps(step),
        factor_down: factor,
        factor_down_yellow: 0.96,
        green_required: 5,
        adaptive: true,
        floor_green: mbps(floors[0]),
        floor_yellow: mbps(floors[1]),
        floor_soft_red: mbps(floors[2]),
        floor_red: mbps(floors[3]),
    }
}

const T: ZoneThresholds = ZoneThresholds { target_ms: 15.0, warn_ms: 45.0, hard_red_ms: 80.0 };

fn cable() -> QueueController {
    QueueController::new(dl(940.0, [550.0, 350.0, 275.0, 200.0], 10.0, 0.85))
}

#[test]
fn four_state_classification_boundaries_fall_in_the_lower_state() {
    let cases = [
        (5.0, Zone::Green),
        (15.0, Zone::Green),
        (-3.0, Zone::Green),
        (20.0, Zone::Yellow),
        (45.0, Zone::Yellow),
        (60.0, Zone::SoftRed),
        (80.0, Zone::SoftRed),
        (100.0, Zone::Red),
    ];
    for (delta, want) in cases {
        let mut q = cable();
        assert_eq!(q.adjust_4state(delta, T, false).zone, want, "delta {delta}");
    }
}

#[test]
fn red_at_085_takes_920_to_400_in_6_cycles() {
    let mut q = QueueController::new(dl(920.0, [400.0; 4], 10.0, 0.85));
    let mut rates = vec![];
    for _ in 0..6 {
        rates.push(q.adjust_4state(100.0, T, false).rate.0 / 1_000_000);
    }
    assert_eq!(rates, vec![782, 664, 564, 480, 408, 400]);
}

#[test]
fn green_holds_four_cycles_then_steps_every_cycle() {
    let mut q = cable();
    q.restore(mbps(800.0), 0, 0, 0);
    let rates: Vec<u64> = (0..7).map(|_| q.adjust_4state(0.0, T, false).rate.0 / 1_000_000).collect();
    assert_eq!(rates, vec![800, 800, 800, 800, 810, 820, 830]);
}

#[test]
fn floors_raise_the_rate_on_entering_a_state() {
    // Leaving RED at 300 M into GREEN with floor_green 550 jumps to 550 at once.
    let mut q = cable();
    q.restore(mbps(300.0), 0, 0, 3);
    assert_eq!(q.adjust_4state(0.0, T, false).rate, mbps(550.0));
    // YELLOW raises to floor_yellow, SOFT_RED to floor_soft_red (and then holds).
    let mut q = cable();
    q.restore(mbps(210.0), 0, 0, 0);
    assert_eq!(q.adjust_4state(60.0, T, false).rate, mbps(275.0));
    assert_eq!(q.adjust_4state(60.0, T, false).rate, mbps(275.0));
    assert_eq!(q.adjust_4state(20.0, T, false).rate, mbps(350.0));
}

#[test]
fn yellow_decay_halves_in_about_17_cycles_down_to_the_floor() {
    let mut q = QueueController::new(dl(1000.0, [100.0, 100.0, 100.0, 100.0], 10.0, 0.85));
    let mut n = 0;
    while q.rate() > mbps(500.0) {
        q.adjust_4state(20.0, T, false);
        n += 1;
    }
    assert_eq!(n, 17);
    for _ in 0..200 {
        q.adjust_4state(20.0, T, false);
    }
    assert_eq!(q.rate(), mbps(100.0));
}

#[test]
fn soft_red_holds_and_sustain_can_be_raised() {
    let mut q = cable();
    q.restore(mbps(600.0), 0, 0, 0);
    for _ in 0..5 {
        assert_eq!(q.adjust_4state(60.0, T, false).rate, mbps(600.0));
    }
    let mut q = cable().with_soft_red_required(3);
    assert_eq!(q.adjust_4state(60.0, T, false).zone, Zone::Yellow);
    assert_eq!(q.adjust_4state(60.0, T, false).zone, Zone::Yellow);
    assert_eq!(q.adjust_4state(60.0, T, false).zone, Zone::SoftRed);
}

#[test]
fn upload_goes_red_at_warn_and_uses_only_floor_red() {
    let mut cfg = dl(38.0, [30.0, 20.0, 20.0, 8.0], 1.0, 0.9);
    cfg.factor_down_yellow = 0.94;
    let mut q = QueueController::new(cfg);
    assert_eq!(q.adjust_3state(46.0, T).zone, Zone::Red);
    assert_eq!(q.rate(), Bps(34_200_000));
    for _ in 0..100 {
        q.adjust_3state(20.0, T);
    }
    assert_eq!(q.rate(), mbps(8.0), "yellow decays to floor_red, not floor_yellow");
    assert_eq!(q.adjust_3state(15.0, T).zone, Zone::Green);
}

#[test]
fn transition_reasons_have_the_original_text() {
    let mut q = cable();
    let t = q.adjust_4state(23.44, T, false).transition.expect("GREEN→YELLOW");
    assert_eq!(t.to_string(), "RTT delta 23.4ms exceeded green threshold 15ms");
    assert!(q.adjust_4state(25.0, T, false).transition.is_none());
    let t = q.adjust_4state(90.0, T, false).transition.expect("→RED");
    assert_eq!(t.threshold.0, ThresholdName::HardRed);
    assert_eq!(t.to_string(), "RTT delta 90.0ms exceeded hard_red threshold 80ms");
    let t = q.adjust_4state(2.0, T, false).transition.expect("→GREEN");
    assert_eq!(t.to_string(), "RTT delta 2.0ms fell below green threshold 15ms");
    let mut u = cable();
    let t = u.adjust_3state(50.5, ZoneThresholds { warn_ms: 45.5, ..T }).transition.expect("→RED");
    assert_eq!(t.to_string(), "RTT delta 50.5ms exceeded warn threshold 45.5ms");
}

#[test]
fn streak_state_is_what_the_original_health_reported() {
    let q = cable();
    assert_eq!(q.streak_state(), Zone::Yellow, "a fresh controller reports YELLOW");
    let mut q = cable();
    q.adjust_4state(0.0, T, false);
    assert_eq!(q.streak_state(), Zone::Green);
}

#[test]
fn spike_forces_red_only_above_the_green_band() {
    let mut q = cable();
    q.restore(mbps(800.0), 7, 0, 0);
    assert_eq!(q.adjust_4state(10.0, T, true).zone, Zone::Green, "jitter within the band");
    let a = q.adjust_4state(20.0, T, true);
    assert_eq!(a.zone, Zone::Red);
    assert_eq!(a.rate, Bps(688_500_000), "810 after the GREEN step, then x0.85");
}

fn thresholds(base_tau: f64, load_tau: f64) -> Thresholds {
    Thresholds {
        target_bloat_ms: 15.0,
        warn_bloat_ms: 45.0,
        hard_red_bloat_ms: 80.0,
        baseline_tau: Duration::from_secs_f64(base_tau),
        load_tau: Duration::from_secs_f64(load_tau),
        baseline_update_threshold_ms: 3.0,
        accel_threshold_ms: 15.0,
        baseline_min_ms: 10.0,
        baseline_max_ms: 60.0,
        dwell_cycles: 0,
        deadband_ms: 0.0,
        accel_confirm_cycles: 1,
        upload_target_bloat_ms: None,
        upload_warn_bloat_ms: None,
    }
}

#[test]
fn ewma_matches_the_original_alpha_at_nominal_cadence() {
    let mut f = RttFilter::new(25.0, &thresholds(50.0, 0.1));
    let dt = Duration::from_millis(50);
    f.on_sample(27.0, dt);
    assert!((f.load_ms() - 26.0).abs() < 1e-9, "alpha_load 0.5");
    assert!((f.baseline_ms() - (0.999 * 25.0 + 0.001 * 27.0)).abs() < 1e-9, "alpha_baseline 0.001");
}

#[test]
fn baseline_is_frozen_bit_for_bit_while_loaded() {
    let mut f = RttFilter::new(25.0, &thresholds(50.0, 0.1));
    let dt = Duration::from_millis(50);
    f.on_sample(90.0, dt);
    let frozen = f.baseline_ms();
    for _ in 0..100 {
        assert_eq!(f.on_sample(90.0, dt).0, BaselineUpdate::Frozen);
    }
    assert_eq!(f.baseline_ms().to_bits(), frozen.to_bits());
}

#[test]
fn baseline_threshold_is_strict_and_bounds_inclusive() {
    // load − baseline exactly 3.0 freezes.
    let mut f = RttFilter::new(20.0, &thresholds(50.0, 0.05));
    assert_eq!(f.on_sample(23.0, Duration::from_millis(50)).0, BaselineUpdate::Frozen);
    // A candidate below the min bound is discarded.
    let mut f = RttFilter::new(10.0, &thresholds(0.05, 0.05));
    assert_eq!(f.on_sample(9.0, Duration::from_millis(50)).0, BaselineUpdate::OutOfBounds(9.0));
    assert_eq!(f.baseline_ms(), 10.0);
    assert_eq!(f.on_sample(10.0, Duration::from_millis(50)).0, BaselineUpdate::Updated(10.0));
}

#[test]
fn alpha_scales_with_the_measured_interval() {
    let a50 = RttFilter::alpha(Duration::from_millis(50), 1.0);
    let a100 = RttFilter::alpha(Duration::from_millis(100), 1.0);
    assert!((a100 - 2.0 * a50).abs() < 1e-12);
    assert_eq!(RttFilter::alpha(Duration::from_secs(10), 0.1), 1.0);
}

fn tick(w: &mut WanController, ms: u64, s: Sample) -> Outcome {
    let now = Instant::from_millis(ms);
    let o = w.on_tick(now, s).outcome;
    if w.poll_write().is_some() {
        w.on_write_result(now, WriteOutcome::Applied, None);
    }
    o
}

#[test]
fn graceful_degradation_uses_last_rtt_then_freezes_then_fails() {
    let cfg = sample_config();
    assert_eq!(cfg.monitoring.fallback.mode, FallbackMode::GracefulDegradation);
    let mut w = WanController::new(&cfg, Instant::ZERO);
    tick(&mut w, 0, Sample::Rtt(25.0));
    let lost = Sample::Lost(Fallback::Connected);
    assert_eq!(tick(&mut w, 50, lost), Outcome::Adjusted, "first timeout period: last RTT");
    assert_eq!(tick(&mut w, 1100, lost), Outcome::Frozen);
    assert_eq!(tick(&mut w, 2100, lost), Outcome::Frozen);
    assert_eq!(tick(&mut w, 3100, lost), Outcome::Failed);
    assert_eq!(tick(&mut w, 3150, Sample::Lost(Fallback::TcpRtt(30.0))), Outcome::Adjusted);
    assert_eq!(tick(&mut w, 3200, Sample::Lost(Fallback::NoConnectivity)), Outcome::Failed);
    assert_eq!(tick(&mut w, 3250, Sample::Rtt(25.0)), Outcome::Adjusted);
    let mut saw_recovered = false;
    while let Some(e) = w.poll_event() {
        saw_recovered |= matches!(e, WanEvent::IcmpRecovered { .. });
    }
    assert!(saw_recovered);
}

#[test]
fn waiting_changes_nothing() {
    let cfg = sample_config();
    let mut w = WanController::new(&cfg, Instant::ZERO);
    tick(&mut w, 0, Sample::Rtt(25.0));
    let before = (w.filter().load_ms(), w.desired());
    assert_eq!(tick(&mut w, 50, Sample::Waiting), Outcome::Waiting);
    assert_eq!((w.filter().load_ms(), w.desired()), before);
}

#[test]
fn router_outage_keeps_newest_rates_pending_and_applies_them_on_recovery() {
    let cfg = sample_config();
    let mut w = WanController::new(&cfg, Instant::ZERO);
    let mut now = 0;
    // Initial write fails: router down.
    w.on_tick(Instant::from_millis(now), Sample::Rtt(25.0));
    assert!(w.poll_write().is_some());
    w.on_write_result(Instant::from_millis(now), WriteOutcome::NotSent, None);
    assert!(!w.connectivity().is_reachable());
    let mut attempts = 1;
    // Congestion during the outage: decisions keep being made; retries are spaced.
    for _ in 0..100 {
        now += 50;
        w.on_tick(Instant::from_millis(now), Sample::Rtt(200.0));
        if w.poll_write().is_some() {
            attempts += 1;
            w.on_write_result(Instant::from_millis(now), WriteOutcome::NotSent, None);
        }
        assert!(!w.connectivity().is_reachable(), "no flip-flop: unreachable until a real success");
    }
    assert!(attempts <= 12, "bounded retries over 5 s: {attempts}");
    // Router back: the newest desired rates are written within the retry cap.
    let desired = w.desired();
    let back = now;
    let mut applied_at = None;
    for _ in 0..40 {
        now += 50;
        w.on_tick(Instant::from_millis(now), Sample::Rtt(200.0));
        if let Some(r) = w.poll_write() {
            w.on_write_result(Instant::from_millis(now), WriteOutcome::Applied, None);
            applied_at.get_or_insert((now, r));
        }
    }
    let (at, rates) = applied_at.expect("applied after recovery");
    assert!(at - back <= 1000, "applied {} ms after recovery", at - back);
    assert!(rates.download <= desired.download);
    assert!(w.connectivity().is_reachable());
}

#[test]
fn state_round_trips_through_the_controller() {
    let cfg = sample_config();
    let mut w = WanController::new(&cfg, Instant::ZERO);
    for i in 0..30 {
        tick(&mut w, i * 50, Sample::Rtt(if i > 20 { 90.0 } else { 21.0 }));
    }
    let saved = w.to_state("2026-01-26T06:13:10".into());
    let bytes = saved.encode();
    let mut fresh = WanController::new(&cfg, Instant::ZERO);
    fresh.restore(&crate::engine::state::StateFile::decode(&bytes).expect("valid"));
    // The zones (`congestion`, issue 12) describe the last cycle for steering; they are
    // not restored: the next cycle recomputes them.
    let mut back = fresh.to_state(String::new());
    assert_eq!(back.congestion.as_ref().map(|c| c.dl_state.as_str()), Some("GREEN"));
    back.congestion = saved.congestion.clone();
    assert!(saved.same_content(&back));
}

#[test]
fn issue_18_restored_baseline_outside_the_bounds_is_discarded() {
    use crate::engine::state::{EwmaState, StateFile};
    let cfg = sample_config(); // bounds 10..60 ms, initial 20 ms, ceiling 100 Mbit/s
    let mut w = WanController::new(&cfg, Instant::ZERO);
    let mut state = w.to_state(String::new());
    state.ewma = Some(EwmaState { baseline_rtt: 500.0, load_rtt: 500.0 });
    let bytes = state.encode();
    w.restore(&StateFile::decode(&bytes).expect("valid"));
    assert_eq!(w.filter().baseline_ms(), 20.0, "the configured initial baseline, not 500");
    // Ten simulated minutes at 120 ms: a bloated line is cut, as after a fresh start.
    for i in 1..=12_000 {
        tick(&mut w, i * 50, Sample::Rtt(120.0));
    }
    assert!(w.download().rate() < cfg.monitoring.download.ceiling, "{:?}", w.download().rate());
    let saved = w.to_state(String::new());
    let b = saved.ewma.expect("ewma").baseline_rtt;
    assert!((10.0..=60.0).contains(&b), "written back inside the bounds: {b}");
    // A baseline inside the bounds is kept exactly.
    let mut w = WanController::new(&cfg, Instant::ZERO);
    state.ewma = Some(EwmaState { baseline_rtt: 42.5, load_rtt: 43.0 });
    w.restore(&state);
    assert_eq!((w.filter().baseline_ms(), w.filter().load_ms()), (42.5, 43.0));
}

#[test]
fn issue_18_restored_streaks_at_u32_max_saturate_instead_of_overflowing() {
    let mut q = cable();
    q.restore(mbps(800.0), u32::MAX, u32::MAX, u32::MAX);
    let t = ZoneThresholds { target_ms: 15.0, warn_ms: 45.0, hard_red_ms: 80.0 };
    q.adjust_4state(0.0, t, false);
    assert_eq!(q.green_streak, u32::MAX);
    q.restore(mbps(800.0), 0, u32::MAX, 0);
    q.adjust_4state(50.0, t, false);
    assert_eq!(q.soft_red_streak, u32::MAX);
    q.restore(mbps(800.0), 0, 0, u32::MAX);
    q.adjust_4state(100.0, t, false);
    assert_eq!(q.red_streak, u32::MAX);
    let mut up = cable();
    up.restore(mbps(800.0), u32::MAX, 0, u32::MAX);
    up.adjust_3state(0.0, t);
    up.restore(mbps(800.0), 0, 0, u32::MAX);
    up.adjust_3state(100.0, t);
    assert_eq!(up.red_streak, u32::MAX);
}

#[test]
fn issue_13_a_direction_that_is_not_adaptive_stays_at_its_ceiling_but_reports_its_zone() {
    let mut cfg = dl(940.0, [550.0, 350.0, 275.0, 200.0], 10.0, 0.85);
    cfg.adaptive = false;
    let mut q = QueueController::new(cfg);
    for _ in 0..10 {
        let a = q.adjust_4state(120.0, T, false);
        assert_eq!(a.zone, Zone::Red, "still measured and reported");
        assert_eq!(a.rate, mbps(940.0), "never moved from the ceiling");
    }
    let mut u = QueueController::new(dl(40.0, [10.0, 10.0, 10.0, 10.0], 1.0, 0.9));
    let mut fixed = dl(40.0, [10.0, 10.0, 10.0, 10.0], 1.0, 0.9);
    fixed.adaptive = false;
    let mut uf = QueueController::new(fixed);
    let (a, b) = (u.adjust_3state(60.0, T), uf.adjust_3state(60.0, T));
    assert!(a.rate < mbps(40.0) && b.rate == mbps(40.0) && b.zone == Zone::Red);
}

mod daemon {
    use core::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use crate::engine::daemon::{Daemon, Input, Notify, Output, WanSetup};
    use crate::engine::writer::WriteOutcome;
    use crate::sim::sample_config;
    use crate::time::Instant;

    fn setup() -> WanSetup {
        let reflectors = (1..=3).map(|n| IpAddr::V4(Ipv4Addr::new(198, 18, 0, n))).collect();
        WanSetup { config: sample_config(), reflectors }
    }

    /// Drives the daemon for `ticks` ticks; reflector `dead` never answers; router writes
    /// complete after 2 ms unless `hold_writes`. Returns every output with its time.
    fn drive(d: &mut Daemon, from: u64, ticks: u64, rtt: u64, hold_writes: bool) -> Vec<(u64, Output)> {
        let mut out = vec![];
        let mut replies: Vec<(u64, usize, IpAddr, u16)> = vec![];
        let mut writes: Vec<(u64, usize)> = vec![];
        for k in from..from + ticks {
            let t = k * 50;
            for ms in t..t + 50 {
                let now = Instant::from_millis(ms);
                for &(at, wan, from, seq) in replies.iter().filter(|r| r.0 == ms) {
                    d.handle_input(now, Input::EchoReply { wan, from, seq, at: Instant::from_millis(at) });
                }
                for &(_, wan) in writes.iter().filter(|w| w.0 == ms) {
                    d.handle_input(now, Input::WriteDone { wan, outcome: WriteOutcome::Applied, kind: None });
                }
                if ms == t {
                    d.handle_input(now, Input::Tick { missed: 0, late: Duration::from_micros(300) });
                }
                while let Some(o) = d.poll_output() {
                    match &o {
                        Output::SendEcho { wan, probe } => {
                            replies.push((ms + rtt, *wan, probe.addr, probe.seq))
                        }
                        Output::RouterWrite { wan, .. } if !hold_writes => writes.push((ms + 2, *wan)),
                        _ => {}
                    }
                    out.push((ms, o));
                }
            }
        }
        out
    }

    #[test]
    fn probes_every_reflector_at_20hz_and_saves_state_at_most_once_a_second() {
        let mut d = Daemon::new(vec![setup()], vec![None], false, 1, Instant::ZERO);
        let out = drive(&mut d, 0, 100, 20, false);
        let echoes = out.iter().filter(|o| matches!(o.1, Output::SendEcho { .. })).count();
        assert_eq!(echoes, 300, "3 reflectors × 20 Hz × 5 s");
        let saves: Vec<u64> =
            out.iter().filter(|o| matches!(o.1, Output::SaveState { .. })).map(|o| o.0).collect();
        assert!(!saves.is_empty());
        assert!(saves.windows(2).all(|w| w[1] - w[0] >= 1000), "{saves:?}");
        assert!(out.iter().any(|o| o.1 == Output::Notify(Notify::Ready)));
        assert!(d.stats().replies >= 290);
        assert_eq!(d.consecutive_failures(), 0);
    }

    #[test]
    fn issue_17_reload_keeps_the_icmp_sequence_seed() {
        let seqs = |d: &mut Daemon, t: u64| -> Vec<u16> {
            d.handle_input(Instant::from_millis(t), Input::Tick { missed: 0, late: Duration::ZERO });
            std::iter::from_fn(|| d.poll_output())
                .filter_map(|o| match o {
                    Output::SendEcho { probe, .. } => Some(probe.seq),
                    _ => None,
                })
                .collect()
        };
        let mut d = Daemon::new(vec![setup()], vec![None], false, 0x1234, Instant::ZERO);
        let first = seqs(&mut d, 0);
        d.handle_input(Instant::from_millis(10), Input::Reload(vec![setup()]));
        let after = seqs(&mut d, 50);
        assert_eq!(first.first(), Some(&0x1234));
        assert_eq!(after.first(), Some(&0x1234), "reload restarts from the seeded sequence, not from 0");
    }

    #[test]
    fn shutdown_waits_for_the_write_in_flight_then_saves_and_exits() {
        let mut d = Daemon::new(vec![setup()], vec![None], false, 1, Instant::ZERO);
        let out = drive(&mut d, 0, 2, 20, true);
        assert!(out.iter().any(|o| matches!(o.1, Output::RouterWrite { .. })), "initial write in flight");
        let now = Instant::from_millis(200);
        d.handle_input(now, Input::Shutdown);
        let mut outs = vec![];
        while let Some(o) = d.poll_output() {
            outs.push(o);
        }
        assert_eq!(outs, vec![Output::Notify(Notify::Stopping)], "waits for the write");
        d.handle_input(now, Input::WriteDone { wan: 0, outcome: WriteOutcome::Applied, kind: None });
        let outs: Vec<Output> = std::iter::from_fn(|| d.poll_output()).collect();
        assert!(matches!(outs[0], Output::SaveState { .. }));
        assert_eq!(outs.last(), Some(&Output::Exit(0)));
    }

    #[test]
    fn shutdown_gives_up_on_a_stuck_write_after_the_grace_period() {
        let mut d = Daemon::new(vec![setup()], vec![None], false, 1, Instant::ZERO);
        drive(&mut d, 0, 2, 20, true);
        d.handle_input(Instant::from_millis(100), Input::Shutdown);
        while d.poll_output().is_some() {}
        let deadline = d.poll_timeout().expect("grace deadline");
        assert!(deadline <= Instant::from_millis(2100));
        d.handle_timeout(deadline);
        let outs: Vec<Output> = std::iter::from_fn(|| d.poll_output()).collect();
        assert_eq!(outs.last(), Some(&Output::Exit(0)));
    }

    #[test]
    fn dead_reflectors_lead_to_fallback_checks_then_failures_and_the_watchdog_stops() {
        let mut d = Daemon::new(vec![setup()], vec![None], false, 1, Instant::ZERO);
        drive(&mut d, 0, 20, 20, false);
        // From now on nothing answers (rtt beyond the run) and the fallback finds nothing.
        let out = drive(&mut d, 20, 120, 1_000_000, false);
        assert!(out.iter().any(|o| matches!(o.1, Output::StartFallback { .. })));
        d.handle_input(
            Instant::from_millis(7000),
            Input::FallbackResult { wan: 0, result: crate::engine::wan::Fallback::NoConnectivity },
        );
        let out = drive(&mut d, 141, 80, 1_000_000, false);
        assert!(d.consecutive_failures() >= 3, "{}", d.consecutive_failures());
        assert!(!d.is_healthy());
        assert!(
            out.iter()
                .any(|o| matches!(&o.1, Output::Notify(Notify::Status(s)) if s.starts_with("Degraded")))
        );
        let last_dog = out.iter().rev().find(|o| o.1 == Output::Notify(Notify::Watchdog)).map(|o| o.0);
        let degraded = out
            .iter()
            .find(|o| matches!(&o.1, Output::Notify(Notify::Status(s)) if s.starts_with("Degraded")))
            .map(|o| o.0);
        assert!(last_dog.is_none_or(|w| degraded.is_some_and(|g| w < g)), "no WATCHDOG=1 after degrading");
    }

    #[test]
    fn dry_run_never_asks_for_a_router_write() {
        let mut d = Daemon::new(vec![setup()], vec![None], true, 1, Instant::ZERO);
        let out = drive(&mut d, 0, 100, 20, false);
        assert!(!out.iter().any(|o| matches!(o.1, Output::RouterWrite { .. })));
    }
}

#[test]
fn fallback_verdict_prefers_tcp_rtt_then_gateway() {
    use super::wan::fallback_verdict;
    assert_eq!(fallback_verdict(&mut [30.0, 10.0, 20.0], false), Fallback::TcpRtt(20.0));
    assert_eq!(fallback_verdict(&mut [30.0, 10.0], true), Fallback::TcpRtt(20.0));
    assert_eq!(fallback_verdict(&mut [], true), Fallback::Connected);
    assert_eq!(fallback_verdict(&mut [], false), Fallback::NoConnectivity);
}

/// Golden (issue 14): `accel_confirm_cycles` (upstream 1.24). One cycle with a 40 ms jump
/// (a lone reflector hiccup) and then a sustained jump; with 1 (the original's behaviour)
/// the hiccup already forces RED, with 3 only a jump that lasts three cycles does.
#[test]
fn golden_accel_confirm_cycles_filters_a_single_cycle_spike() {
    let rtts = [20.0, 20.0, 20.0, 60.0, 20.0, 20.0, 20.0, 60.0, 100.0, 140.0, 180.0, 220.0];
    let run = |confirm: u32| {
        let mut cfg = crate::sim::sample_config();
        cfg.monitoring.thresholds.accel_confirm_cycles = confirm;
        let mut w = WanController::new(&cfg, Instant::ZERO);
        let mut spikes = vec![];
        let mut zones = vec![];
        for (i, &r) in rtts.iter().enumerate() {
            tick(&mut w, (i as u64 + 1) * 50, Sample::Rtt(r));
            zones.push(w.last_report().download.zone);
            let mut spike = false;
            while let Some(e) = w.poll_event() {
                spike |= matches!(e, crate::engine::wan::WanEvent::Spike { .. });
            }
            spikes.push(spike);
        }
        (spikes, zones)
    };
    let (s1, z1) = run(1);
    let (s3, z3) = run(3);
    let at = |v: &[bool]| v.iter().enumerate().filter(|x| *x.1).map(|x| x.0).collect::<Vec<_>>();
    use Zone::{Green as G, Red as R, SoftRed as S, Yellow as Y};
    // Cycle 3 is the hiccup, 7.. a jump of 40 ms every cycle.
    assert_eq!(at(&s1), vec![3, 7, 8, 9, 10, 11], "confirm 1: every jump is a spike at once");
    assert_eq!(z1, vec![G, G, G, R, G, G, G, R, R, R, R, R]);
    assert_eq!(at(&s3), vec![9, 10, 11], "confirm 3: the third jump in a row");
    assert_eq!(z3, vec![G, G, G, Y, G, G, G, Y, S, R, R, R], "the hiccup is judged on its delta alone");
}
