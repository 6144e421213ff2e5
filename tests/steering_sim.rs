//! The steering simulation as a test (issue 6): every scenario, several seeds, every
//! invariant. A failure names the scenario and the seed that replays it.

use wanctl::sim::steering::{all, check, run};

const SEEDS: std::ops::RangeInclusive<u64> = 1..=5;

#[test]
fn every_steering_scenario_holds_its_invariants_across_seeds() {
    for s in all() {
        for seed in SEEDS {
            let w = run(&s, seed);
            let bad = check(&s, &w, seed);
            assert!(bad.is_empty(), "steering scenario {} failed with seed {seed}: {bad:#?}", s.name);
        }
    }
}

#[test]
fn same_seed_same_run() {
    for s in all() {
        let a = run(&s, 7);
        let b = run(&s, 7);
        assert_eq!(a.trace, b.trace, "{}", s.name);
        assert_eq!(a.router.calls, b.router.calls, "{}", s.name);
    }
}

#[test]
fn flapping_is_damped_compared_with_the_brake_off() {
    let s = all().into_iter().find(|s| s.name == "flapping").expect("flapping scenario");
    let damped = run(&s, 3);
    let mut off = s.clone();
    off.config = || {
        let mut c = (all().into_iter().find(|s| s.name == "flapping").expect("flapping").config)();
        if let Some(conf) = c.confidence.as_mut() {
            conf.flap_detection_enabled = false;
        }
        c
    };
    let undamped = run(&off, 3);
    assert!(
        damped.transitions.len() * 3 < undamped.transitions.len(),
        "damped {} vs undamped {} transitions",
        damped.transitions.len(),
        undamped.transitions.len()
    );
}
