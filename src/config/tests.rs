//! Unit tests of config loading: one test or table per rule. Files on disk (the shipped
//! examples, the golden `bad-*.yaml`, the original's examples) are covered by
//! `tests/config_files.rs`.

use std::time::Duration;

use super::raw::{edit, edit_distance, suggest};
use super::validate::tau_from_alpha;
use super::*;

/// A complete autorate file (the original's wan1 example, minus optional keys).
const AUTORATE: &str = r#"
schema_version: "1.0"
wan_name: "wan1"
router:
  host: "192.168.1.1"
  user: "admin"
  ssh_key: "/etc/wanctl/ssh/router.key"
queues:
  download: "WAN-Download-1"
  upload: "WAN-Upload-1"
continuous_monitoring:
  enabled: true
  baseline_rtt_initial: 25
  ping_hosts: ["1.1.1.1", "8.8.8.8", "9.9.9.9"]
  download:
    floor_green_mbps: 100
    floor_yellow_mbps: 75
    floor_soft_red_mbps: 50
    floor_red_mbps: 25
    ceiling_mbps: 500
    step_up_mbps: 5
    factor_down: 0.85
  upload:
    floor_mbps: 10
    ceiling_mbps: 50
    step_up_mbps: 1
    factor_down: 0.90
  thresholds:
    target_bloat_ms: 15
    warn_bloat_ms: 45
    baseline_time_constant_sec: 50
    load_time_constant_sec: 0.1
  fallback_checks:
    gateway_ip: "192.0.2.1"
logging:
  main_log: "/var/log/wanctl/wan1.log"
  debug_log: "/var/log/wanctl/wan1_debug.log"
lock_file: "/run/wanctl/wan1.lock"
lock_timeout: 300
"#;

/// A complete steering file with only the required keys.
const STEERING: &str = r#"
wan_name: "steering"
router:
  host: "192.168.1.1"
  user: "admin"
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
  interval_seconds: 2
  ping_host: "1.1.1.1"
  ping_count: 3
state:
  file: "/var/lib/wanctl/steering_state.json"
  history_size: 60
logging:
  main_log: "/var/log/wanctl/steering.log"
  debug_log: "/var/log/wanctl/steering_debug.log"
lock_file: "/run/wanctl/steering.lock"
lock_timeout: 300
thresholds: {}
"#;

fn env(name: &str) -> Option<String> {
    match name {
        "ROUTER_PASSWORD" => Some("s3cret".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn autorate(text: &str) -> Result<Loaded<AutorateConfig>, ConfigErrors> {
    parse_autorate(text, "t.yaml", &env)
}

fn steering(text: &str) -> Result<Loaded<SteeringConfig>, ConfigErrors> {
    parse_steering(text, "t.yaml", &env)
}

fn ok(text: &str) -> Loaded<AutorateConfig> {
    autorate(text).unwrap_or_else(|e| panic!("expected to load:\n{e}"))
}

fn ok_steering(text: &str) -> Loaded<SteeringConfig> {
    steering(text).unwrap_or_else(|e| panic!("expected to load:\n{e}"))
}

/// The single error of a file that must fail with exactly one problem.
fn only_error(res: Result<impl std::fmt::Debug, ConfigErrors>) -> ConfigError {
    match res {
        Ok(v) => panic!("expected an error, loaded {v:?}"),
        Err(e) => {
            assert_eq!(e.errors.len(), 1, "expected one problem:\n{e}");
            e.errors[0].clone()
        }
    }
}

fn set(text: &str, path: &str, value: &str) -> String {
    edit(text, path, Some(value))
}

fn del(text: &str, path: &str) -> String {
    edit(text, path, None)
}

fn warnings<T>(l: &Loaded<T>) -> Vec<String> {
    l.warnings.iter().map(ToString::to_string).collect()
}

// ---------------------------------------------------------------------------------------
// Pieces that other modules rely on

#[test]
fn state_path_derives_from_lock_file() {
    assert_eq!(derived_state_path("/run/wanctl/wan1.lock"), "/run/wanctl/wan1_state.json");
    assert_eq!(derived_state_path("wan1.lock"), "wan1_state.json");
    assert_eq!(derived_state_path("/run/x/a.b.lock"), "/run/x/a.b_state.json");
    assert_eq!(derived_state_path("/run/x/nolock"), "/run/x/nolock_state.json");
}

#[test]
fn secrets_never_print() {
    let s = Secret("hunter2".into());
    assert!(!format!("{s:?}").contains("hunter2"));
}

// ---------------------------------------------------------------------------------------
// Whole files, defaults

#[test]
fn minimal_autorate_loads_with_the_originals_defaults() {
    let l = ok(AUTORATE);
    assert!(l.warnings.is_empty(), "{:?}", warnings(&l));
    let c = l.config;
    assert_eq!(c.schema_version, "1.0");
    assert_eq!(c.wan_name, "wan1");
    assert_eq!(c.router.transport, Transport::Ssh);
    assert_eq!(c.router.port, 443);
    assert_eq!(c.router.scheme, Scheme::Https);
    assert!(!c.router.verify_ssl);
    assert_eq!(c.router.password, Secret(String::new()));
    assert_eq!((c.router.ca_file.clone(), c.router.cert_sha256), (None, None));
    let m = &c.monitoring;
    assert!(!m.use_median_of_three);
    assert_eq!(m.download.factor_down_yellow, 0.96);
    assert_eq!(m.upload.factor_down_yellow, 0.94);
    assert_eq!((m.download.green_required, m.upload.green_required), (5, 5));
    let t = &m.thresholds;
    assert_eq!(t.hard_red_bloat_ms, 80.0);
    assert_eq!(t.baseline_update_threshold_ms, 3.0);
    assert_eq!(t.accel_threshold_ms, 15.0);
    assert_eq!((t.baseline_min_ms, t.baseline_max_ms), (10.0, 60.0));
    let f = &m.fallback;
    assert!(f.enabled && f.check_gateway && f.check_tcp);
    assert_eq!(f.tcp_targets, vec![("1.1.1.1".to_string(), 443), ("8.8.8.8".to_string(), 443)]);
    assert_eq!(f.mode, FallbackMode::GracefulDegradation);
    assert_eq!(f.max_fallback_cycles, 3);
    assert_eq!(c.health, Endpoint { enabled: true, host: "127.0.0.1".into(), port: 9101 });
    assert_eq!(c.metrics, Endpoint { enabled: false, host: "127.0.0.1".into(), port: 9100 });
    assert_eq!(c.storage, Storage::default());
    assert_eq!(c.storage.db_path.as_deref(), Some("/var/lib/wanctl/metrics.db"));
    assert_eq!((c.storage.retention_days, c.storage.max_size_mb), (7, 64));
    assert_eq!(c.storage.flush_interval, Duration::from_secs(5));
    assert_eq!(c.router_timeout, Duration::from_secs(15));
    assert_eq!(c.ping_timeout, Duration::from_secs(1));
    assert_eq!(c.lock_timeout, Duration::from_secs(300));
    assert_eq!(c.state_file_key, None);
    assert_eq!(c.state_file_path(), "/run/wanctl/wan1_state.json");
    assert_eq!(c.cake_queue_types(), ("cake-down-wan1".into(), "cake-up-wan1".into()));
}

#[test]
fn rates_are_decimal_megabits() {
    let c = ok(AUTORATE).config;
    let dl = &c.monitoring.download;
    assert_eq!(dl.ceiling, Bps(500_000_000));
    assert_eq!(dl.step_up, Bps(5_000_000));
    assert_eq!(
        (dl.floor_green, dl.floor_yellow, dl.floor_soft_red, dl.floor_red),
        (Bps(100_000_000), Bps(75_000_000), Bps(50_000_000), Bps(25_000_000))
    );
    let c = ok(&set(AUTORATE, "continuous_monitoring.upload.step_up_mbps", "0.5")).config;
    assert_eq!(c.monitoring.upload.step_up, Bps(500_000));
}

#[test]
fn several_problems_are_reported_together_in_walk_order() {
    let mut t = set(AUTORATE, "continuous_monitoring.download.factor_down", "1.7");
    t = set(&t, "lock_timeout", "10.5");
    t = del(&t, "router.host");
    t = set(&t, "wan_name", "\"wan 1\"");
    let e = autorate(&t).expect_err("invalid");
    let paths: Vec<&str> = e.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["wan_name", "router.host", "continuous_monitoring.download.factor_down", "lock_timeout"]
    );
    let text = e.to_string();
    assert!(text.starts_with("t.yaml: 4 problems\n  - wan_name: "), "{text}");
    assert!(
        text.contains(
            "\n  - continuous_monitoring.download.factor_down: must be between 0.1 and 1.0, got 1.7"
        ),
        "{text}"
    );
}

#[test]
fn one_problem_is_singular() {
    let e = autorate(&del(AUTORATE, "lock_file")).expect_err("invalid");
    assert_eq!(e.to_string(), "t.yaml: 1 problem\n  - lock_file: required key is missing");
}

// ---------------------------------------------------------------------------------------
// Required keys, types

#[test]
fn every_required_key_is_reported_when_missing_or_null() {
    let required = [
        "wan_name",
        "router",
        "router.host",
        "router.user",
        "router.ssh_key",
        "queues",
        "queues.download",
        "queues.upload",
        "continuous_monitoring",
        "continuous_monitoring.enabled",
        "continuous_monitoring.baseline_rtt_initial",
        "continuous_monitoring.ping_hosts",
        "continuous_monitoring.download",
        "continuous_monitoring.upload",
        "continuous_monitoring.thresholds",
        "continuous_monitoring.download.ceiling_mbps",
        "continuous_monitoring.download.step_up_mbps",
        "continuous_monitoring.download.factor_down",
        "continuous_monitoring.upload.ceiling_mbps",
        "continuous_monitoring.thresholds.target_bloat_ms",
        "continuous_monitoring.thresholds.warn_bloat_ms",
        "logging",
        "logging.main_log",
        "logging.debug_log",
        "lock_file",
        "lock_timeout",
    ];
    for path in required {
        for (how, text) in [("absent", del(AUTORATE, path)), ("null", set(AUTORATE, path, "~"))] {
            let e = only_error(autorate(&text));
            assert_eq!(
                (e.path.as_str(), e.problem.as_str()),
                (path, "required key is missing"),
                "{path} {how}"
            );
        }
    }
}

#[test]
fn a_missing_block_is_one_problem_not_one_per_key() {
    let e = only_error(autorate(&del(AUTORATE, "continuous_monitoring")));
    assert_eq!(e.path, "continuous_monitoring");
}

#[test]
fn types_are_checked_with_the_originals_rules() {
    // (name, path, YAML value, expected problem)
    let rows = [
        (
            "string for number",
            "continuous_monitoring.baseline_rtt_initial",
            "\"abc\"",
            "expected a number, got a string (\"abc\")",
        ),
        (
            "bool for number",
            "continuous_monitoring.download.step_up_mbps",
            "true",
            "expected a number, got a boolean (true)",
        ),
        ("float for int", "lock_timeout", "10.5", "expected an integer, got a number (10.5)"),
        (
            "whole float for int",
            "continuous_monitoring.download.green_required",
            "2.0",
            "expected an integer, got a number (2.0)",
        ),
        ("bool for int", "lock_timeout", "false", "expected an integer, got a boolean (false)"),
        ("number for string", "router.user", "42", "expected a string, got an integer (42)"),
        ("list for string", "logging.main_log", "[a]", "expected a string, got a list"),
        (
            "string for bool",
            "continuous_monitoring.enabled",
            "\"maybe\"",
            "expected a boolean (true or false), got a string (\"maybe\")",
        ),
        (
            "number for bool",
            "continuous_monitoring.use_median_of_three",
            "1",
            "expected a boolean (true or false), got an integer (1)",
        ),
        (
            "scalar for mapping",
            "continuous_monitoring.download",
            "5",
            "expected a mapping, got an integer (5)",
        ),
        ("mapping for list", "continuous_monitoring.ping_hosts", "{a: 1}", "expected a list, got a mapping"),
        (
            "string for list",
            "continuous_monitoring.ping_hosts",
            "\"1.1.1.1\"",
            "expected a list, got a string (\"1.1.1.1\")",
        ),
        (
            "infinity",
            "continuous_monitoring.baseline_rtt_initial",
            ".inf",
            "must be a finite number, got .inf",
        ),
        ("nan", "timeouts.ssh_command", ".nan", "must be a finite number, got .nan"),
    ];
    for (name, path, value, want) in rows {
        let e = only_error(autorate(&set(AUTORATE, path, value)));
        assert_eq!((e.path.as_str(), e.problem.as_str()), (path, want), "{name}");
    }
}

#[test]
fn issue_18_a_secret_of_the_wrong_type_is_never_printed() {
    for (value, kind) in [("73918264", "an integer"), ("7391.8264", "a number"), ("true", "a boolean")] {
        let e = only_error(autorate(&set(AUTORATE, "router.password", value)));
        assert_eq!(e.path, "router.password");
        assert_eq!(e.problem, format!("expected a string, got {kind}"));
        assert!(!e.to_string().contains(value), "{e}");
    }
    // Other keys still show the value they got.
    let e = only_error(autorate(&set(AUTORATE, "router.user", "42")));
    assert_eq!(e.problem, "expected a string, got an integer (42)");
}

#[test]
fn issue_18_deep_or_huge_configs_are_refused_before_parsing() {
    // 64 KB of nested `{` took the YAML parser 11 s.
    let deep = format!("{AUTORATE}\nx: {}\n", "{a: ".repeat(16_000));
    let e = only_error(autorate(&deep));
    assert_eq!(e.problem, "collections are nested more than 32 deep");
    let huge = format!("{AUTORATE}\n# {}\n", "x".repeat(300 * 1024));
    let e = only_error(autorate(&huge));
    assert!(
        e.problem.starts_with("the file is ") && e.problem.ends_with("at most 262144 are accepted"),
        "{e}"
    );
    // Braces inside quoted scalars and comments do not count; nesting to the limit is fine.
    let quoted = format!(
        "{AUTORATE}\nx1: \"{}\"\nx2: '{}'\n# {}\nx3: don't {}\nx4: \"a\\\"{}\"\n",
        "{".repeat(100),
        "[".repeat(100),
        "{".repeat(100),
        "{{{ fine",
        "{".repeat(40)
    );
    assert!(autorate(&quoted).is_ok(), "{:?}", autorate(&quoted).err());
    let nested = format!("{AUTORATE}\nx: {}1{}\n", "[".repeat(32), "]".repeat(32));
    assert!(autorate(&nested).is_ok());
}

#[test]
fn integers_are_accepted_for_float_keys() {
    let c = ok(&set(AUTORATE, "continuous_monitoring.download.factor_down", "1")).config;
    assert_eq!(c.monitoring.download.factor_down, 1.0);
}

#[test]
fn yaml_1_1_booleans_are_accepted() {
    for (word, want) in
        [("yes", true), ("on", true), ("True", true), ("no", false), ("off", false), ("FALSE", false)]
    {
        let c = ok(&set(AUTORATE, "continuous_monitoring.use_median_of_three", word)).config;
        assert_eq!(c.monitoring.use_median_of_three, want, "{word}");
    }
}

// ---------------------------------------------------------------------------------------
// Bounds: inclusive at both ends

#[test]
fn bounds_are_inclusive_at_both_ends() {
    // (path, lowest ok, just below, highest ok, just above, printed bounds)
    let rows: [(&str, &str, &str, &str, &str, &str); 24] = [
        ("continuous_monitoring.baseline_rtt_initial", "1", "0.9", "500", "500.5", "1 and 500"),
        ("continuous_monitoring.download.ceiling_mbps", "100", "0", "10000", "10001", "1 and 10000"),
        ("continuous_monitoring.upload.ceiling_mbps", "10", "0.5", "1000", "1000.1", "1 and 1000"),
        ("continuous_monitoring.download.step_up_mbps", "0.1", "0.09", "100", "101", "0.1 and 100"),
        ("continuous_monitoring.download.factor_down", "0.1", "0.09", "1.0", "1.01", "0.1 and 1.0"),
        ("continuous_monitoring.download.factor_down_yellow", "0.8", "0.79", "1.0", "1.01", "0.8 and 1.0"),
        ("continuous_monitoring.upload.factor_down_yellow", "0.9", "0.89", "1", "1.5", "0.9 and 1.0"),
        ("continuous_monitoring.download.green_required", "1", "0", "10", "11", "1 and 10"),
        ("continuous_monitoring.thresholds.target_bloat_ms", "1", "0", "40", "101", "1 and 100"),
        ("continuous_monitoring.thresholds.warn_bloat_ms", "16", "0.5", "79", "201", "1 and 200"),
        ("continuous_monitoring.thresholds.hard_red_bloat_ms", "46", "0", "1000", "1001", "1 and 1000"),
        (
            "continuous_monitoring.thresholds.baseline_time_constant_sec",
            "1",
            "0.5",
            "600",
            "601",
            "1 and 600",
        ),
        (
            "continuous_monitoring.thresholds.load_time_constant_sec",
            "0.05",
            "0.04",
            "10",
            "11",
            "0.05 and 10",
        ),
        ("continuous_monitoring.thresholds.accel_threshold_ms", "5", "4.9", "50", "51", "5 and 50"),
        (
            "continuous_monitoring.thresholds.baseline_update_threshold_ms",
            "0.1",
            "0",
            "100",
            "101",
            "0.1 and 100",
        ),
        ("continuous_monitoring.thresholds.baseline_rtt_bounds.min", "1", "0", "59", "101", "1 and 100"),
        ("continuous_monitoring.thresholds.baseline_rtt_bounds.max", "11", "9", "500", "501", "10 and 500"),
        (
            "continuous_monitoring.fallback_checks.max_fallback_cycles",
            "0",
            "-1",
            "1000",
            "1001",
            "0 and 1000",
        ),
        ("lock_timeout", "1", "0", "3600", "3601", "1 and 3600"),
        ("router.port", "1", "0", "65535", "65536", "1 and 65535"),
        ("health_check.port", "1", "0", "65535", "65536", "1 and 65535"),
        ("storage.retention_days", "1", "0", "365", "366", "1 and 365"),
        ("storage.flush_interval_sec", "0.5", "0.4", "300", "301", "0.5 and 300"),
        ("timeouts.ping", "0.01", "0", "60", "61", "0.01 and 60"),
    ];
    for (path, lo, below, hi, above, bounds) in rows {
        ok(&set(AUTORATE, path, lo));
        ok(&set(AUTORATE, path, hi));
        for bad in [below, above] {
            let e = only_error(autorate(&set(AUTORATE, path, bad)));
            assert_eq!(e.path, path);
            assert_eq!(e.problem, format!("must be between {bounds}, got {bad}"), "{path}");
        }
    }
}

#[test]
fn alpha_bounds_are_inclusive() {
    let base = del(
        &del(AUTORATE, "continuous_monitoring.thresholds.baseline_time_constant_sec"),
        "continuous_monitoring.thresholds.load_time_constant_sec",
    );
    let t = "continuous_monitoring.thresholds";
    for (key, lo, below, hi, above, bounds) in [
        ("alpha_baseline", "0.0001", "0.00009", "1.0", "1.1", "0.0001 and 1.0"),
        ("alpha_load", "0.001", "0.0009", "1", "2", "0.001 and 1.0"),
    ] {
        let other = if key == "alpha_baseline" { ("alpha_load", "0.2") } else { ("alpha_baseline", "0.02") };
        let base = set(&base, &format!("{t}.{}", other.0), other.1);
        let path = format!("{t}.{key}");
        ok(&set(&base, &path, lo));
        ok(&set(&base, &path, hi));
        for bad in [below, above] {
            let e = only_error(autorate(&set(&base, &path, bad)));
            assert_eq!(e.problem, format!("must be between {bounds}, got {bad}"), "{key}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Floors

#[test]
fn legacy_floor_applies_to_every_state() {
    let c = ok(AUTORATE).config;
    let ul = &c.monitoring.upload;
    assert!(
        [ul.floor_green, ul.floor_yellow, ul.floor_soft_red, ul.floor_red]
            .iter()
            .all(|f| *f == Bps(10_000_000))
    );
}

#[test]
fn soft_red_floor_defaults_to_yellow() {
    let c = ok(&del(AUTORATE, "continuous_monitoring.download.floor_soft_red_mbps")).config;
    assert_eq!(c.monitoring.download.floor_soft_red, Bps(75_000_000));
}

#[test]
fn upload_state_floors_ignore_soft_red_with_a_warning() {
    let mut t = del(AUTORATE, "continuous_monitoring.upload.floor_mbps");
    for (k, v) in [
        ("floor_green_mbps", "40"),
        ("floor_yellow_mbps", "30"),
        ("floor_soft_red_mbps", "5"),
        ("floor_red_mbps", "10"),
    ] {
        t = set(&t, &format!("continuous_monitoring.upload.{k}"), v);
    }
    let l = ok(&t);
    let ul = &l.config.monitoring.upload;
    assert_eq!(
        (ul.floor_green, ul.floor_yellow, ul.floor_soft_red, ul.floor_red),
        (Bps(40_000_000), Bps(30_000_000), Bps(30_000_000), Bps(10_000_000))
    );
    assert_eq!(
        warnings(&l),
        [
            "continuous_monitoring.upload.floor_soft_red_mbps: ignored: upload has no SOFT_RED state (its floor is floor_yellow_mbps)"
        ]
    );
}

#[test]
fn floor_mbps_next_to_state_floors_is_ignored_with_a_warning() {
    let l = ok(&set(AUTORATE, "continuous_monitoring.download.floor_mbps", "1"));
    assert_eq!(l.config.monitoring.download.floor_red, Bps(25_000_000));
    assert_eq!(
        warnings(&l),
        [
            "continuous_monitoring.download.floor_mbps: ignored because floor_green_mbps is set (state-based floors)"
        ]
    );
}

#[test]
fn state_floors_without_green_are_ignored_with_a_warning() {
    let l = ok(&set(AUTORATE, "continuous_monitoring.upload.floor_red_mbps", "5"));
    assert_eq!(l.config.monitoring.upload.floor_red, Bps(10_000_000));
    assert_eq!(l.warnings.len(), 1);
    assert!(l.warnings[0].message.contains("floor_green_mbps is not set"));
}

#[test]
fn floor_selection_requires_the_right_keys() {
    let dl = "continuous_monitoring.download";
    for key in ["floor_yellow_mbps", "floor_red_mbps"] {
        let e = only_error(autorate(&del(AUTORATE, &format!("{dl}.{key}"))));
        assert_eq!(e.path, format!("{dl}.{key}"));
        assert!(e.problem.starts_with("required key is missing (floor_green_mbps is set"), "{}", e.problem);
    }
    let e = only_error(autorate(&del(AUTORATE, "continuous_monitoring.upload.floor_mbps")));
    assert_eq!(e.path, "continuous_monitoring.upload.floor_mbps");
    assert_eq!(
        e.problem,
        "required key is missing (set floor_mbps, or floor_green_mbps with floor_yellow_mbps and floor_red_mbps)"
    );
}

#[test]
fn floors_are_type_and_range_checked() {
    let e = only_error(autorate(&set(AUTORATE, "continuous_monitoring.download.floor_red_mbps", "\"25M\"")));
    assert_eq!(e.problem, "expected a number, got a string (\"25M\")");
    let e = only_error(autorate(&set(AUTORATE, "continuous_monitoring.upload.floor_mbps", "0")));
    assert_eq!(e.problem, "must be between 0.1 and 1000, got 0");
}

#[test]
fn floor_ordering_is_checked_for_both_directions() {
    let dl = "continuous_monitoring.download";
    // (name, key, value, error path, problem)
    let rows = [
        (
            "red above soft_red",
            "floor_red_mbps",
            "60",
            "floor_red_mbps",
            "must be at most floor_soft_red_mbps (50), got 60",
        ),
        (
            "soft_red above yellow",
            "floor_soft_red_mbps",
            "80",
            "floor_soft_red_mbps",
            "must be at most floor_yellow_mbps (75), got 80",
        ),
        (
            "yellow above green",
            "floor_yellow_mbps",
            "100.5",
            "floor_yellow_mbps",
            "must be at most floor_green_mbps (100), got 100.5",
        ),
        (
            "green above ceiling",
            "floor_green_mbps",
            "501",
            "floor_green_mbps",
            "must be at most ceiling_mbps (500), got 501",
        ),
    ];
    for (name, key, value, path, problem) in rows {
        let e = only_error(autorate(&set(AUTORATE, &format!("{dl}.{key}"), value)));
        assert_eq!((e.path, e.problem.as_str()), (format!("{dl}.{path}"), problem), "{name}");
    }
    // Equal floors are fine (≤, not <).
    let mut t = AUTORATE.to_string();
    for k in
        ["floor_green_mbps", "floor_yellow_mbps", "floor_soft_red_mbps", "floor_red_mbps", "ceiling_mbps"]
    {
        t = set(&t, &format!("{dl}.{k}"), "100");
    }
    ok(&t);
    // Without soft_red, red is compared with yellow directly.
    let t = set(&del(AUTORATE, &format!("{dl}.floor_soft_red_mbps")), &format!("{dl}.floor_red_mbps"), "80");
    assert_eq!(only_error(autorate(&t)).problem, "must be at most floor_yellow_mbps (75), got 80");
    // Upload, legacy floor above the ceiling.
    let e = only_error(autorate(&set(AUTORATE, "continuous_monitoring.upload.floor_mbps", "51")));
    assert_eq!(
        (e.path.as_str(), e.problem.as_str()),
        ("continuous_monitoring.upload.floor_mbps", "must be at most ceiling_mbps (50), got 51")
    );
    // Upload, state floors: red above yellow.
    let mut t = del(AUTORATE, "continuous_monitoring.upload.floor_mbps");
    for (k, v) in [("floor_green_mbps", "40"), ("floor_yellow_mbps", "20"), ("floor_red_mbps", "30")] {
        t = set(&t, &format!("continuous_monitoring.upload.{k}"), v);
    }
    assert_eq!(only_error(autorate(&t)).problem, "must be at most floor_yellow_mbps (20), got 30");
}

// ---------------------------------------------------------------------------------------
// Thresholds and smoothing

#[test]
fn bloat_thresholds_are_strictly_ordered() {
    let t = "continuous_monitoring.thresholds";
    let rows = [
        (
            "target equals warn",
            "target_bloat_ms",
            "45",
            "warn_bloat_ms",
            "must be greater than target_bloat_ms (45), got 45",
        ),
        (
            "target above warn",
            "target_bloat_ms",
            "50",
            "warn_bloat_ms",
            "must be greater than target_bloat_ms (50), got 45",
        ),
        (
            "warn equals default hard_red",
            "warn_bloat_ms",
            "80",
            "hard_red_bloat_ms",
            "must be greater than warn_bloat_ms (80), got 80",
        ),
        (
            "hard_red below warn",
            "hard_red_bloat_ms",
            "44",
            "hard_red_bloat_ms",
            "must be greater than warn_bloat_ms (45), got 44",
        ),
    ];
    for (name, key, value, path, problem) in rows {
        let e = only_error(autorate(&set(AUTORATE, &format!("{t}.{key}"), value)));
        assert_eq!((e.path, e.problem.as_str()), (format!("{t}.{path}"), problem), "{name}");
    }
}

#[test]
fn time_constants_convert_to_the_originals_alpha() {
    let c = ok(AUTORATE).config;
    let t = &c.monitoring.thresholds;
    assert_eq!(t.baseline_tau, Duration::from_secs(50));
    assert_eq!(t.load_tau, Duration::from_millis(100));
    let cycle = NOMINAL_CYCLE.as_secs_f64();
    assert_eq!(cycle / t.baseline_tau.as_secs_f64(), 0.001);
    assert_eq!(cycle / t.load_tau.as_secs_f64(), 0.5);
}

fn raw_alphas(baseline: &str, load: &str) -> String {
    let t = "continuous_monitoring.thresholds";
    let x = del(
        &del(AUTORATE, &format!("{t}.baseline_time_constant_sec")),
        &format!("{t}.load_time_constant_sec"),
    );
    set(&set(&x, &format!("{t}.alpha_baseline"), baseline), &format!("{t}.alpha_load"), load)
}

#[test]
fn raw_alphas_are_used_verbatim() {
    let l = ok(&raw_alphas("0.02", "0.2"));
    assert!(l.warnings.is_empty(), "{:?}", warnings(&l));
    let t = &l.config.monitoring.thresholds;
    assert_eq!(t.baseline_tau, Duration::from_millis(2500));
    assert_eq!(t.load_tau, Duration::from_millis(250));
}

#[test]
fn raw_alpha_round_trips_at_the_nominal_cycle() {
    let cycle = NOMINAL_CYCLE.as_secs_f64();
    // Exact when 0.05 / alpha is a whole number of nanoseconds...
    let mut misses = Vec::new();
    for alpha in
        [0.0001, 0.001, 0.002, 0.005, 0.01, 0.02, 0.025, 0.04, 0.05, 0.1, 0.2, 0.25, 0.4, 0.5, 0.8, 1.0]
    {
        if cycle / tau_from_alpha(alpha).as_secs_f64() != alpha {
            misses.push(alpha);
        }
    }
    assert!(misses.is_empty(), "not bit-exact: {misses:?}");
    // ...and within a nanosecond of tau otherwise (1e-8 relative at worst, tau = 50 ms).
    for alpha in [0.015, 0.03, 0.07, 0.15, 0.3, 0.33, 0.7, 0.9, 0.0003] {
        let back = cycle / tau_from_alpha(alpha).as_secs_f64();
        assert!(((back - alpha) / alpha).abs() < 2e-8, "{alpha} -> {back}");
    }
}

#[test]
fn the_time_constant_wins_over_a_raw_alpha() {
    let t = "continuous_monitoring.thresholds";
    let text = set(&set(AUTORATE, &format!("{t}.alpha_baseline"), "0.5"), &format!("{t}.alpha_load"), "0.9");
    let l = ok(&text);
    assert_eq!(l.config.monitoring.thresholds.baseline_tau, Duration::from_secs(50));
    assert_eq!(l.config.monitoring.thresholds.load_tau, Duration::from_millis(100));
    assert_eq!(
        warnings(&l),
        [
            format!(
                "{t}.alpha_baseline: ignored because baseline_time_constant_sec is set (the time constant wins, as in the original)"
            ),
            format!(
                "{t}.alpha_load: ignored because load_time_constant_sec is set (the time constant wins, as in the original)"
            ),
        ]
    );
}

#[test]
fn smoothing_needs_a_time_constant_or_an_alpha() {
    let t = "continuous_monitoring.thresholds";
    let e = only_error(autorate(&del(AUTORATE, &format!("{t}.baseline_time_constant_sec"))));
    assert_eq!(e.path, format!("{t}.baseline_time_constant_sec"));
    assert_eq!(
        e.problem,
        "required key is missing (set baseline_time_constant_sec, or the older alpha_baseline)"
    );
    let e = only_error(autorate(&del(AUTORATE, &format!("{t}.load_time_constant_sec"))));
    assert_eq!(e.problem, "required key is missing (set load_time_constant_sec, or the older alpha_load)");
}

#[test]
fn a_slow_raw_alpha_load_warns() {
    let l = ok(&raw_alphas("0.02", "0.005"));
    assert_eq!(l.warnings.len(), 1, "{:?}", warnings(&l));
    assert_eq!(l.warnings[0].path, "continuous_monitoring.thresholds.alpha_load");
    assert!(l.warnings[0].message.contains("10.0 s load time constant"), "{}", l.warnings[0].message);
    assert!(l.warnings[0].message.contains("load_time_constant_sec"));
    // 0.01 is exactly 5 s: not slower than 5 s, no warning (as the original's `>`).
    assert!(ok(&raw_alphas("0.02", "0.01")).warnings.is_empty());
    assert!(ok(&raw_alphas("0.0001", "0.5")).warnings.is_empty());
}

#[test]
fn baseline_bounds_must_be_ordered() {
    let t = "continuous_monitoring.thresholds.baseline_rtt_bounds";
    let e = only_error(autorate(&set(&set(AUTORATE, &format!("{t}.min"), "30"), &format!("{t}.max"), "30")));
    assert_eq!((e.path, e.problem.as_str()), (format!("{t}.max"), "must be greater than min (30), got 30"));
}

#[test]
fn an_initial_baseline_outside_the_bounds_loads_with_a_warning() {
    let l = ok(&set(AUTORATE, "continuous_monitoring.baseline_rtt_initial", "8"));
    assert_eq!(
        warnings(&l),
        [
            "continuous_monitoring.baseline_rtt_initial: 8 is below thresholds.baseline_rtt_bounds (10 to 60 ms): \
          baseline updates outside the bounds are rejected, so the baseline may never update"
        ]
    );
    let l = ok(&set(AUTORATE, "continuous_monitoring.baseline_rtt_initial", "61"));
    assert!(l.warnings[0].message.starts_with("61 is above"), "{:?}", warnings(&l));
}

// ---------------------------------------------------------------------------------------
// Fallback checks, reflectors

#[test]
fn fallback_checks_are_parsed() {
    let f = "continuous_monitoring.fallback_checks";
    let mut t = set(AUTORATE, &format!("{f}.fallback_mode"), "freeze");
    t = set(&t, &format!("{f}.tcp_targets"), "[[\"one.one.one.one\", 443], [\"2606:4700::1111\", 80]]");
    t = set(&t, &format!("{f}.check_tcp"), "false");
    let fb = ok(&t).config.monitoring.fallback;
    assert_eq!(fb.mode, FallbackMode::Freeze);
    assert!(!fb.check_tcp);
    assert_eq!(fb.tcp_targets, vec![("one.one.one.one".into(), 443), ("2606:4700::1111".into(), 80)]);
    assert_eq!(fb.gateway_ip, "192.0.2.1");
    let fb = ok(&set(AUTORATE, &format!("{f}.fallback_mode"), "use_last_rtt")).config.monitoring.fallback;
    assert_eq!(fb.mode, FallbackMode::UseLastRtt);
}

#[test]
fn fallback_checks_are_validated() {
    let f = "continuous_monitoring.fallback_checks";
    let e = only_error(autorate(&set(AUTORATE, &format!("{f}.fallback_mode"), "panic")));
    assert_eq!(e.problem, "must be \"freeze\", \"use_last_rtt\" or \"graceful_degradation\", got \"panic\"");
    let rows = [
        ("[[\"1.1.1.1\"]]", "expected a [host, port] pair, got a list of 1 item(s)"),
        ("[\"1.1.1.1:443\"]", "expected a [host, port] pair, got a string (\"1.1.1.1:443\")"),
        ("[[\"1.1.1.1\", 0]]", "port must be between 1 and 65535, got 0"),
        ("[[\"1.1.1.1\", \"443\"]]", "port: expected an integer, got a string (\"443\")"),
        ("[[\"a b\", 443]]", "host must be an IPv4 or IPv6 address or a hostname"),
        ("[[1, 443]]", "host: expected a string, got an integer (1)"),
    ];
    for (value, want) in rows {
        let e = only_error(autorate(&set(AUTORATE, &format!("{f}.tcp_targets"), value)));
        assert_eq!(e.path, format!("{f}.tcp_targets[0]"));
        assert!(e.problem.starts_with(want), "{value}: {}", e.problem);
    }
    let e = only_error(autorate(&set(AUTORATE, &format!("{f}.gateway_ip"), "\"10.0.0.1;reboot\"")));
    assert_eq!(e.path, format!("{f}.gateway_ip"));
}

#[test]
fn the_site_specific_gateway_default_warns() {
    let l = ok(&del(AUTORATE, "continuous_monitoring.fallback_checks"));
    assert_eq!(l.config.monitoring.fallback.gateway_ip, "10.10.110.1");
    assert_eq!(l.warnings.len(), 1);
    assert!(l.warnings[0].message.contains("10.10.110.1"));
    let off = set(AUTORATE, "continuous_monitoring.fallback_checks", "{check_gateway: false}");
    assert!(ok(&off).warnings.is_empty());
}

#[test]
fn ping_hosts_are_validated() {
    let p = "continuous_monitoring.ping_hosts";
    let e = only_error(autorate(&set(AUTORATE, p, "[]")));
    assert_eq!((e.path.as_str(), e.problem.as_str()), (p, "must list at least one host"));
    let e = only_error(autorate(&set(AUTORATE, p, "[\"1.1.1.1\", \"-f\"]")));
    assert_eq!(e.path, format!("{p}[1]"));
    let e = only_error(autorate(&set(AUTORATE, p, "[\"1.1.1.1\", ~]")));
    assert_eq!((e.path, e.problem.as_str()), (format!("{p}[1]"), "expected a string, got null"));
    let c = ok(&set(AUTORATE, p, "[\"dns.google\", \"2001:4860:4860::8888\"]")).config;
    assert_eq!(c.monitoring.ping_hosts, ["dns.google", "2001:4860:4860::8888"]);
}

#[test]
fn median_of_three_with_fewer_hosts_warns() {
    let t = set(
        &set(AUTORATE, "continuous_monitoring.use_median_of_three", "true"),
        "continuous_monitoring.ping_hosts",
        "[\"1.1.1.1\"]",
    );
    assert_eq!(
        warnings(&ok(&t)),
        ["continuous_monitoring.use_median_of_three: has no effect with 1 ping host(s); it needs 3"]
    );
}

#[test]
fn monitoring_disabled_loads_with_a_warning() {
    let l = ok(&set(AUTORATE, "continuous_monitoring.enabled", "false"));
    assert_eq!(l.warnings.len(), 1);
    assert!(l.warnings[0].message.contains("no effect"));
}

// ---------------------------------------------------------------------------------------
// Security validators

/// Payloads that must never get into a RouterOS command, an ssh argument or a file name.
const INJECTIONS: &[&str] = &[
    "wan1;reboot",
    "wan1`id`",
    "wan1$(id)",
    "wan1|cat",
    "wan1&&x",
    "wan1>out",
    "wan1<in",
    "wan1\"",
    "wan1'",
    "wan1#c",
    "wan 1",
    "wan1\n",
    "wan1\r",
    "wan1\0",
    "wan1\t",
    "w\u{0430}n1",  // Cyrillic a
    "wan\u{03bf}1", // Greek omicron
    "\u{ff37}an1",  // full-width W
    "wan\u{200b}1", // zero-width space
    "wan\u{202e}1", // right-to-left override
    "wan\u{00a0}1", // no-break space
    "wan\u{00ad}1", // soft hyphen
    "\u{feff}wan1", // byte-order mark
    "wa\u{0301}n1", // combining acute accent
    "wan1/..",
    "wan1\\x",
    "wan1*",
    "wan1[find]",
];

#[test]
fn identifier_rule() {
    assert_eq!(check_identifier(&"a".repeat(63)), Ok(()));
    assert_eq!(check_identifier(&"a".repeat(64)), Ok(()));
    assert_eq!(check_identifier(&"a".repeat(65)), Err("is too long (65 characters, at most 64)".into()));
    assert_eq!(check_identifier(""), Err("must not be empty".into()));
    for ok in ["wan1", "WAN-Download-1", "a.b_c-d", "0"] {
        assert_eq!(check_identifier(ok), Ok(()), "{ok:?}");
    }
    for bad in INJECTIONS {
        let e = check_identifier(bad).expect_err(bad);
        assert!(e.starts_with("may contain only A-Z, a-z, 0-9"), "{bad:?}: {e}");
    }
    assert_eq!(
        check_identifier("wan 1"),
        Err("may contain only A-Z, a-z, 0-9, \"_\", \".\" and \"-\", got \"wan 1\" (' ' is not allowed)"
            .into())
    );
}

#[test]
fn identifier_rule_applies_to_names_sent_to_the_router() {
    for path in ["wan_name", "queues.download", "queues.upload"] {
        for bad in ["\"x;y\"", "\"wan1\\n\""] {
            let e = only_error(autorate(&set(AUTORATE, path, bad)));
            assert_eq!(e.path, path);
        }
    }
    for path in ["cake_queues.primary_download", "cake_queues.primary_upload", "topology.primary_wan"] {
        let e = only_error(steering(&set(STEERING, path, "\"$(reboot)\"")));
        assert_eq!(e.path, path);
    }
}

#[test]
fn comment_rule() {
    assert_eq!(check_comment("ADAPTIVE: Steer latency-sensitive to WAN2"), Ok(()));
    assert_eq!(check_comment(&"a".repeat(127)), Ok(()));
    assert_eq!(check_comment(&"a".repeat(128)), Ok(()));
    assert_eq!(check_comment(&"a".repeat(129)), Err("is too long (129 characters, at most 128)".into()));
    assert!(check_comment("").is_err());
    for bad in [
        "a\"b",
        "a'b",
        "a`b`",
        "$(reboot)",
        "$VAR",
        "a\nb",
        "a|b",
        "a;b",
        "a&b",
        "a>b",
        "a<b",
        "(a)",
        "a\\b",
        "a[b]",
        "a{b}",
    ] {
        assert!(check_comment(bad).is_err(), "{bad:?}");
    }
    let e = only_error(steering(&set(STEERING, "mangle_rule.comment", "\"x\\\"; reboot\"")));
    assert_eq!(e.path, "mangle_rule.comment");
}

#[test]
fn host_rule() {
    let good = [
        "1.1.1.1",
        "0.0.0.0",
        "255.255.255.255",
        "256.1.1.1", // not an address, but a valid hostname (as the original)
        "::1",
        "::",
        "2001:db8::1",
        "2001:0db8:0000:0000:0000:ff00:0042:8329",
        "fe80::1:2:3:4",
        "::ffff:192.0.2.1",
        "localhost",
        "dns.google",
        "one.one.one.one",
        "a-b.example.com",
        "1e100.net",
        "EXAMPLE.COM",
    ];
    for h in good {
        assert_eq!(check_host(h), Ok(()), "{h}");
    }
    let label63 = format!("{}.com", "a".repeat(63));
    assert_eq!(check_host(&label63), Ok(()));
    let long_ok = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(64)].join(".");
    assert_eq!(long_ok.len(), 256);
    assert!(check_host(&long_ok).is_err(), "a 64-character label");
    let total_256 =
        ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(62), "e".to_string()].join(".");
    assert_eq!((total_256.len(), check_host(&total_256)), (256, Ok(())));
    let total_257 = format!("{total_256}f");
    assert_eq!(check_host(&total_257), Err("is too long (257 characters, at most 256)".into()));
    let too_long = vec!["a".repeat(63); 5].join(".");
    assert_eq!(check_host(&too_long), Err("is too long (319 characters, at most 256)".into()));
    let bad = [
        "",
        "-a.com",
        "a-.com",
        "a_b.com",
        "a b",
        "a..b",
        ".a",
        "a.",
        &format!("{}.com", "a".repeat(64)),
        "1.1.1.1;reboot",
        "1.1.1.1 -c 1000",
        "-c1000",
        "$(reboot)",
        "`id`",
        "a|b",
        "a&b",
        "a>b",
        "1.1.1.1\n",
        "[::1]",
        "fe80::1%eth0",
        "1::2::3",
        "1:2:3:4:5:6:7:8:9",
        "12345::1",
        "::1.2.3",
        "01.1.1.1:80",
        "http://x",
    ];
    for h in bad {
        assert!(check_host(h).is_err(), "{h:?}");
    }
}

#[test]
fn ping_host_rule_applies_to_steering_measurement() {
    let e = only_error(steering(&set(STEERING, "measurement.ping_host", "\"1.1.1.1; reboot\"")));
    assert_eq!(e.path, "measurement.ping_host");
    let e = only_error(steering(&set(STEERING, "measurement.ping_host", "~")));
    assert_eq!((e.path.as_str(), e.problem.as_str()), ("measurement.ping_host", "required key is missing"));
    let e = only_error(steering(&set(STEERING, "measurement.ping_host", "1")));
    assert_eq!(e.problem, "expected a string, got an integer (1)");
}

#[test]
fn router_user_and_host_cannot_inject() {
    for ok in ["admin", "wanctl", "api.user", "user@example", "a+b", "a-b"] {
        assert_eq!(check_router_user(ok), Ok(()), "{ok}");
    }
    for bad in [
        "-oProxyCommand=x",
        "-l",
        "a b",
        "a;b",
        "a:b",
        "a/b",
        "a\"b",
        "a'b",
        "$USER",
        "a`b",
        "a|b",
        "a&b",
        "a<b",
        "a>b",
        "a\nb",
        "",
        "a\\b",
    ] {
        assert!(check_router_user(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        check_router_user("-x"),
        Err("must not start with \"-\" (it would read as an ssh option), got \"-x\"".into())
    );
    for (path, value) in [
        ("router.user", "\"admin; /system reboot\""),
        ("router.host", "\"-oProxyCommand=sh\""),
        ("router.host", "\"192.168.1.1/rest\""),
        ("router.ssh_key", "\"-F/tmp/evil\""),
        ("router.ssh_key", "\"\""),
    ] {
        let e = only_error(autorate(&set(AUTORATE, path, value)));
        assert_eq!(e.path, path, "{value}");
    }
}

#[test]
fn paths_reject_control_characters() {
    assert_eq!(check_path("/var/log/wanctl/wan1.log"), Ok(()));
    assert!(check_path("").is_err());
    assert!(check_path("/var/log/x\n.log").is_err());
    let e = only_error(autorate(&set(AUTORATE, "lock_file", "\"/run/wanctl/\"")));
    assert_eq!(e.problem, "must name a file, not a directory, got \"/run/wanctl/\"");
}

// ---------------------------------------------------------------------------------------
// Router block: password, transport, scheme, TLS

#[test]
fn password_expansion() {
    let rows = [
        ("set variable", "\"${ROUTER_PASSWORD}\"", "s3cret", 0),
        ("empty variable", "\"${EMPTY}\"", "", 0),
        ("unset variable", "\"${NOPE}\"", "", 1),
        ("prefix", "\"x${ROUTER_PASSWORD}\"", "x${ROUTER_PASSWORD}", 0),
        ("suffix", "\"${ROUTER_PASSWORD}x\"", "${ROUTER_PASSWORD}x", 0),
        ("literal", "\"hunter2\"", "hunter2", 0),
        ("dollar only", "\"$ROUTER_PASSWORD\"", "$ROUTER_PASSWORD", 0),
    ];
    for (name, value, want, n_warnings) in rows {
        let l = ok(&set(AUTORATE, "router.password", value));
        assert_eq!(l.config.router.password.0, want, "{name}");
        assert_eq!(l.warnings.len(), n_warnings, "{name}: {:?}", warnings(&l));
    }
    let l = ok(&set(AUTORATE, "router.password", "\"${NOPE}\""));
    assert_eq!(
        warnings(&l),
        ["router.password: environment variable \"NOPE\" is not set; the REST password is empty"]
    );
}

#[test]
fn transport_selects_the_primary() {
    assert_eq!(ok(&set(AUTORATE, "router.transport", "rest")).config.router.transport, Transport::Rest);
    assert_eq!(ok(&set(AUTORATE, "router.transport", "ssh")).config.router.transport, Transport::Ssh);
    let e = only_error(autorate(&set(AUTORATE, "router.transport", "REST")));
    assert_eq!(e.problem, "must be \"rest\" or \"ssh\", got \"REST\"");
}

#[test]
fn scheme_defaults_to_https_only_on_port_443() {
    assert_eq!(ok(AUTORATE).config.router.scheme, Scheme::Https);
    assert_eq!(ok(&set(AUTORATE, "router.port", "8443")).config.router.scheme, Scheme::Http);
    assert_eq!(ok(&set(AUTORATE, "router.port", "80")).config.router.scheme, Scheme::Http);
    let t = set(&set(AUTORATE, "router.port", "8443"), "router.scheme", "https");
    assert_eq!(ok(&t).config.router.scheme, Scheme::Https);
    let t = set(AUTORATE, "router.scheme", "http");
    assert_eq!(ok(&t).config.router.scheme, Scheme::Http);
}

#[test]
fn plain_http_with_a_password_warns() {
    let t = set(&set(AUTORATE, "router.port", "8080"), "router.password", "\"${ROUTER_PASSWORD}\"");
    let l = ok(&t);
    assert_eq!(l.warnings.len(), 1);
    assert_eq!(l.warnings[0].path, "router.port");
    assert!(l.warnings[0].message.contains("clear text"));
}

#[test]
fn cert_fingerprint_parses_with_or_without_colons() {
    let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    let mut want = [0u8; 32];
    for (i, b) in want.iter_mut().enumerate() {
        *b = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]
            [i % 16];
    }
    let c = ok(&set(AUTORATE, "router.cert_sha256", &format!("\"{hex}\""))).config;
    assert_eq!(c.router.cert_sha256, Some(want));
    let colons: Vec<String> =
        hex.as_bytes().chunks(2).map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    let c = ok(&set(AUTORATE, "router.cert_sha256", &format!("\"{}\"", colons.join(":")))).config;
    assert_eq!(c.router.cert_sha256, Some(want));
    for bad in ["\"abc\"", &format!("\"{}0\"", hex), &format!("\"{}\"", hex.replace('0', "g"))] {
        let e = only_error(autorate(&set(AUTORATE, "router.cert_sha256", bad)));
        assert!(e.problem.starts_with("expected a SHA-256 fingerprint"), "{bad}");
    }
}

#[test]
fn ca_file_without_verification_warns() {
    let l = ok(&set(AUTORATE, "router.ca_file", "\"/etc/wanctl/ca.pem\""));
    assert_eq!(l.config.router.ca_file.as_deref(), Some("/etc/wanctl/ca.pem"));
    assert_eq!(warnings(&l), ["router.ca_file: has no effect unless verify_ssl is true"]);
    let l = ok(&set(&set(AUTORATE, "router.ca_file", "\"/etc/wanctl/ca.pem\""), "router.verify_ssl", "true"));
    assert!(l.warnings.is_empty());
    assert!(l.config.router.verify_ssl);
}

// ---------------------------------------------------------------------------------------
// Unknown and ignored keys

#[test]
fn unknown_keys_warn_with_a_suggestion_when_close() {
    let rows = [
        (
            "continuous_monitoring.download.factor_dwn",
            "continuous_monitoring.download.factor_dwn: unknown key (did you mean \"factor_down\"?)",
        ),
        (
            "continuous_monitoring.thresholds.acel_threshold_ms",
            "continuous_monitoring.thresholds.acel_threshold_ms: unknown key (did you mean \"accel_threshold_ms\"?)",
        ),
        ("router.prot", "router.prot: unknown key (did you mean \"port\"?)"),
        ("router.Host2", "router.Host2: unknown key (did you mean \"host\"?)"),
        ("health_check.enabeld", "health_check.enabeld: unknown key (did you mean \"enabled\"?)"),
        ("irtt", "irtt: unknown key (ignored)"),
        (
            "continuous_monitoring.download.something_else",
            "continuous_monitoring.download.something_else: unknown key (ignored)",
        ),
    ];
    for (path, want) in rows {
        let l = ok(&set(AUTORATE, path, "1"));
        assert_eq!(warnings(&l), [want], "{path}");
    }
}

#[test]
fn a_typo_of_a_required_key_is_named_in_the_error() {
    let t = set(&del(AUTORATE, "lock_timeout"), "lock_timout", "300");
    let e = only_error(autorate(&t));
    assert_eq!(e.problem, "required key is missing; is the unknown key \"lock_timout\" a typo for it?");
}

#[test]
fn suggestions_need_a_small_edit_distance() {
    let known = ["host", "port", "user", "ssh_key", "factor_down"];
    assert_eq!(suggest("prot", &known), Some("port"));
    assert_eq!(suggest("ssh-key", &known), Some("ssh_key"));
    assert_eq!(suggest("factordown", &known), Some("factor_down"));
    assert_eq!(suggest("pass", &known), None);
    assert_eq!(suggest("x", &known), None);
    assert_eq!(suggest("", &known), None);
    assert_eq!(edit_distance("abc", "acb"), 1);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("", "abc"), 3);
}

#[test]
fn known_but_ignored_keys_are_not_unknown() {
    let mut t = set(AUTORATE, "router.type", "routeros");
    t = set(&t, "state_file", "\"/run/wanctl/wan1_state.json\"");
    t = set(&t, "logging.log_cake_stats", "true");
    let l = ok(&t);
    assert!(l.warnings.is_empty(), "{:?}", warnings(&l));
    assert_eq!(l.config.state_file_key.as_deref(), Some("/run/wanctl/wan1_state.json"));

    let s = set(STEERING, "mode.reset_counters", "true");
    assert!(ok_steering(&s).warnings.is_empty());
}

#[test]
fn a_state_file_key_that_differs_from_the_real_path_warns() {
    let l = ok(&set(AUTORATE, "state_file", "\"/var/lib/wanctl/wan1_state.json\""));
    assert_eq!(
        warnings(&l),
        [
            "state_file: ignored, as in the original: the state file is /run/wanctl/wan1_state.json (derived from lock_file), \
          not \"/var/lib/wanctl/wan1_state.json\""
        ]
    );
}

#[test]
fn non_string_keys_are_unknown() {
    let l = ok(&format!("{AUTORATE}\n1: x\n"));
    assert_eq!(warnings(&l), ["1: unknown key (ignored)"]);
}

// ---------------------------------------------------------------------------------------
// Document level

#[test]
fn schema_version_is_informational() {
    assert!(ok(&del(AUTORATE, "schema_version")).warnings.is_empty());
    assert_eq!(ok(&del(AUTORATE, "schema_version")).config.schema_version, "1.0");
    let l = ok(&set(AUTORATE, "schema_version", "\"2.0\""));
    assert_eq!(l.config.schema_version, "2.0");
    assert_eq!(
        warnings(&l),
        [
            "schema_version: schema version \"2.0\" is not the supported \"1.0\"; read as 1.0 (there is no migration)"
        ]
    );
    let l = ok(&set(AUTORATE, "schema_version", "1.0"));
    assert_eq!(l.config.schema_version, "1.0");
    assert_eq!(
        warnings(&l),
        ["schema_version: is a number (1.0) rather than the string \"1.0\"; read as 1.0 (quote it: \"1.0\")"]
    );
}

#[test]
fn yaml_syntax_errors_give_line_and_column() {
    let e = only_error(autorate("wan_name: wan1\nrouter:\n  host: x\n user: y\n"));
    assert_eq!(e.path, "");
    assert!(e.problem.starts_with("YAML syntax error at line 4, column 2: "), "{}", e.problem);
    assert!(!e.problem.contains("at line 4 column 2"), "location printed twice: {}", e.problem);
    let e = only_error(autorate("a: [1\n"));
    assert!(
        e.problem.starts_with("YAML syntax error at line 2, column 1: did not find expected ',' or ']'"),
        "{}",
        e.problem
    );
    let e = only_error(autorate("a: 1\na: 2\n"));
    assert!(e.problem.contains("duplicate entry with key \"a\""), "{}", e.problem);
    let e = only_error(autorate("a: 1\n---\nb: 2\n"));
    assert!(e.problem.starts_with("YAML syntax error: "), "{}", e.problem);
}

#[test]
fn empty_and_non_mapping_documents_are_rejected() {
    for text in ["", "\n# only a comment\n", "~\n", "null\n"] {
        let e = only_error(autorate(text));
        assert_eq!(e.problem, "the file is empty (expected a mapping of configuration keys)", "{text:?}");
    }
    for (text, got) in [("- a\n", "a list"), ("42\n", "an integer (42)"), ("hello\n", "a string (\"hello\")")]
    {
        let e = only_error(autorate(text));
        assert_eq!(e.problem, format!("the top level must be a mapping of configuration keys, got {got}"));
    }
}

#[test]
fn merge_keys_are_resolved_like_pyyaml() {
    let t = AUTORATE.replace(
        "  upload:\n    floor_mbps: 10\n    ceiling_mbps: 50\n    step_up_mbps: 1\n    factor_down: 0.90\n",
        "  upload:\n    <<: &up {floor_mbps: 10, ceiling_mbps: 50, step_up_mbps: 1}\n    factor_down: 0.90\n",
    );
    assert_ne!(t, AUTORATE);
    let l = ok(&t);
    assert!(l.warnings.is_empty(), "{:?}", warnings(&l));
    assert_eq!(l.config.monitoring.upload.ceiling, Bps(50_000_000));
}

#[test]
fn kinds_are_told_apart_by_their_keys() {
    assert!(matches!(parse(AUTORATE, "a.yaml", &env).map(|l| l.config), Ok(AnyConfig::Autorate(_))));
    assert!(matches!(parse(STEERING, "s.yaml", &env).map(|l| l.config), Ok(AnyConfig::Steering(_))));
    let e = only_error(parse("wan_name: x\n", "x.yaml", &env));
    assert!(e.problem.contains("\"continuous_monitoring\" or \"queues\""), "{}", e.problem);
    assert!(e.problem.contains("\"topology\" or \"mangle_rule\""), "{}", e.problem);
    let e = only_error(parse(&format!("{AUTORATE}topology: {{}}\n"), "x.yaml", &env));
    assert!(e.problem.contains("both"), "{}", e.problem);
    let e = only_error(parse_autorate(STEERING, "s.yaml", &env));
    assert!(e.problem.starts_with("this is a steering config"), "{}", e.problem);
    let e = only_error(parse_steering(AUTORATE, "a.yaml", &env));
    assert!(e.problem.starts_with("this is an autorate config"), "{}", e.problem);
}

#[test]
fn the_error_list_names_the_file() {
    let e = parse("", "wan1.yaml", &env).expect_err("empty");
    assert_eq!(e.file, "wan1.yaml");
    assert!(e.to_string().starts_with("wan1.yaml: 1 problem\n  - "));
}

// ---------------------------------------------------------------------------------------
// Storage, endpoints

#[test]
fn storage_can_be_disabled_and_tuned() {
    for off in ["\"\"", "~"] {
        assert_eq!(ok(&set(AUTORATE, "storage.db_path", off)).config.storage.db_path, None, "{off}");
    }
    let mut t = set(AUTORATE, "storage.max_size_mb", "128");
    t = set(&t, "storage.flush_interval_sec", "2.5");
    t = set(&t, "storage.retention_days", "30");
    let s = ok(&t).config.storage;
    assert_eq!((s.max_size_mb, s.flush_interval, s.retention_days), (128, Duration::from_millis(2500), 30));
}

#[test]
fn endpoints_are_validated() {
    let e = only_error(autorate(&set(AUTORATE, "metrics.host", "\"0.0.0.0; x\"")));
    assert_eq!(e.path, "metrics.host");
    let c = ok(&set(&set(AUTORATE, "metrics.enabled", "true"), "metrics.host", "\"::\"")).config;
    assert_eq!(c.metrics, Endpoint { enabled: true, host: "::".into(), port: 9100 });
}

// ---------------------------------------------------------------------------------------
// Steering

#[test]
fn minimal_steering_loads_with_the_originals_defaults() {
    let l = ok_steering(STEERING);
    assert!(l.warnings.is_empty(), "{:?}", warnings(&l));
    let c = l.config;
    assert_eq!(c.good_state_name(), "WAN1_GOOD");
    assert_eq!(c.degraded_state_name(), "WAN1_DEGRADED");
    assert_eq!(c.primary_download_queue, "WAN-Download-Wan1");
    assert_eq!(c.primary_upload_queue, "WAN-Upload-Wan1");
    assert_eq!(c.primary_state_file, "/run/wanctl/wan1_state.json");
    assert!(c.cake_aware && c.enable_yellow_state && c.log_cake_stats);
    assert_eq!(c.confidence, None);
    assert_eq!(c.interval, Duration::from_secs(2));
    assert_eq!((c.ping_count, c.history_size), (3, 60));
    assert_eq!(
        (c.router_timeout, c.ping_timeout, c.ping_total_timeout),
        (Duration::from_secs(30), Duration::from_secs(2), Duration::from_secs(10))
    );
    assert_eq!(c.health, Endpoint { enabled: true, host: "127.0.0.1".into(), port: 9102 });
    assert_eq!(c.metrics, Endpoint { enabled: false, host: "127.0.0.1".into(), port: 9103 });
    assert_eq!(c.storage, Storage::default());
    let t = c.thresholds;
    assert_eq!((t.green_rtt_ms, t.yellow_rtt_ms, t.red_rtt_ms), (5.0, 15.0, 15.0));
    assert_eq!((t.min_drops_red, t.min_queue_yellow, t.min_queue_red), (1, 10, 50));
    assert_eq!((t.red_samples_required, t.green_samples_required), (2, 15));
    assert_eq!((t.rtt_ewma_alpha, t.queue_ewma_alpha), (0.3, 0.4));
    assert_eq!(
        (t.bad_threshold_ms, t.recovery_threshold_ms, t.bad_samples, t.good_samples),
        (25.0, 12.0, 8, 15)
    );
    assert_eq!((t.baseline_min_ms, t.baseline_max_ms), (10.0, 60.0));
}

#[test]
fn steering_required_keys() {
    let required = [
        "wan_name",
        "router.host",
        "topology",
        "topology.primary_wan",
        "topology.primary_wan_config",
        "topology.alternate_wan",
        "mangle_rule",
        "mangle_rule.comment",
        "measurement.interval_seconds",
        "measurement.ping_host",
        "measurement.ping_count",
        "state.file",
        "state.history_size",
        "logging.main_log",
        "lock_file",
        "lock_timeout",
        "thresholds",
    ];
    for path in required {
        let e = only_error(steering(&del(STEERING, path)));
        assert_eq!((e.path.as_str(), e.problem.as_str()), (path, "required key is missing"), "{path}");
    }
}

#[test]
fn queue_defaults_capitalise_the_primary_wan() {
    let t = set(&del(STEERING, "cake_queues"), "topology.primary_wan", "SPECTRUM");
    let c = ok_steering(&t).config;
    assert_eq!(c.primary_download_queue, "WAN-Download-Spectrum");
    assert_eq!(c.good_state_name(), "SPECTRUM_GOOD");
    let t = set(&del(STEERING, "cake_queues"), "topology.primary_wan", &"w".repeat(60));
    let e = steering(&t).expect_err("default queue names too long");
    let paths: Vec<&str> = e.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["cake_queues.primary_download", "cake_queues.primary_upload"]);
    assert!(
        e.errors[0].problem.contains("is too long (73 characters, at most 64); set it"),
        "{}",
        e.errors[0].problem
    );
}

#[test]
fn legacy_spectrum_aliases_are_used_only_without_primary() {
    let mut t = del(STEERING, "cake_state_sources.primary");
    t = set(&t, "cake_state_sources.spectrum", "\"/run/wanctl/spectrum_state.json\"");
    t = set(&t, "cake_queues.spectrum_download", "WAN-Download-Spectrum");
    t = set(&t, "cake_queues.spectrum_upload", "WAN-Upload-Spectrum");
    let l = ok_steering(&t);
    assert!(l.warnings.is_empty(), "{:?}", warnings(&l));
    assert_eq!(l.config.primary_state_file, "/run/wanctl/spectrum_state.json");
    assert_eq!(l.config.primary_download_queue, "WAN-Download-Spectrum");
    assert_eq!(l.config.primary_upload_queue, "WAN-Upload-Spectrum");

    let t = set(&t, "cake_state_sources.primary", "\"/run/wanctl/wan1_state.json\"");
    let t = set(&t, "cake_queues.primary_download", "WAN-Download-1");
    let l = ok_steering(&t);
    assert_eq!(l.config.primary_state_file, "/run/wanctl/wan1_state.json");
    assert_eq!(l.config.primary_download_queue, "WAN-Download-1");
    assert_eq!(l.config.primary_upload_queue, "WAN-Upload-Spectrum");
    assert_eq!(
        warnings(&l),
        [
            "cake_state_sources.spectrum: ignored because primary is set (it is the legacy name)",
            "cake_queues.spectrum_download: ignored because primary_download is set (it is the legacy name)",
        ]
    );
}

#[test]
fn the_default_state_source_warns() {
    let l = ok_steering(&del(STEERING, "cake_state_sources"));
    assert_eq!(l.config.primary_state_file, "/var/lib/wanctl/wan1_state.json");
    assert_eq!(l.warnings.len(), 1);
    assert_eq!(l.warnings[0].path, "cake_state_sources.primary");
}

#[test]
fn steering_threshold_assertions_are_load_errors() {
    let rows = [
        (
            "green equals yellow",
            "green_rtt_ms",
            "15",
            "thresholds.yellow_rtt_ms",
            "must be greater than green_rtt_ms (15), got 15",
        ),
        (
            "red below yellow",
            "red_rtt_ms",
            "14",
            "thresholds.red_rtt_ms",
            "must be at least yellow_rtt_ms (15), got 14",
        ),
        ("no drops", "min_drops_red", "0", "thresholds.min_drops_red", "must be at least 1, got 0"),
        (
            "no red samples",
            "red_samples_required",
            "0",
            "thresholds.red_samples_required",
            "must be at least 1, got 0",
        ),
        (
            "no green samples",
            "green_samples_required",
            "-3",
            "thresholds.green_samples_required",
            "must be at least 1, got -3",
        ),
        (
            "rtt alpha",
            "rtt_ewma_alpha",
            "1.01",
            "thresholds.rtt_ewma_alpha",
            "must be between 0.0 and 1.0, got 1.01",
        ),
        (
            "queue alpha",
            "queue_ewma_alpha",
            "-0.1",
            "thresholds.queue_ewma_alpha",
            "must be between 0.0 and 1.0, got -0.1",
        ),
        ("negative queue", "min_queue_red", "-1", "thresholds.min_queue_red", "must be at least 0, got -1"),
        (
            "string",
            "green_rtt_ms",
            "\"5ms\"",
            "thresholds.green_rtt_ms",
            "expected a number, got a string (\"5ms\")",
        ),
    ];
    for (name, key, value, path, problem) in rows {
        let e = only_error(steering(&set(STEERING, &format!("thresholds.{key}"), value)));
        assert_eq!((e.path.as_str(), e.problem.as_str()), (path, problem), "{name}");
    }
    // yellow == red is allowed (≤), as are the alpha end points.
    for (key, value) in [
        ("red_rtt_ms", "15"),
        ("rtt_ewma_alpha", "0.0"),
        ("rtt_ewma_alpha", "-0.0"),
        ("queue_ewma_alpha", "1.0"),
    ] {
        ok_steering(&set(STEERING, &format!("thresholds.{key}"), value));
    }
    let e = only_error(steering(&set(STEERING, "thresholds", "[]")));
    assert_eq!((e.path.as_str(), e.problem.as_str()), ("thresholds", "expected a mapping, got a list"));
}

#[test]
fn confidence_is_read_only_when_scoring_is_on() {
    let with_block = set(STEERING, "confidence", "{steer_threshold: 200}");
    let l = ok_steering(&with_block);
    assert_eq!(l.config.confidence, None);
    assert_eq!(
        warnings(&l),
        [
            "confidence: ignored because mode.use_confidence_scoring is not true (the confidence controller is off)"
        ]
    );

    let on = set(STEERING, "mode.use_confidence_scoring", "true");
    let c = ok_steering(&on).config.confidence.expect("confidence on");
    assert_eq!((c.steer_threshold, c.recovery_threshold), (55.0, 20.0));
    assert_eq!(
        (c.sustain_duration, c.recovery_sustain, c.hold_down_duration),
        (Duration::from_secs(2), Duration::from_secs(3), Duration::from_secs(30))
    );
    assert!(c.flap_detection_enabled && c.dry_run);
    assert_eq!((c.flap_window, c.max_toggles), (Duration::from_secs(300), 4));
    assert_eq!((c.penalty_duration, c.penalty_threshold_add), (Duration::from_secs(60), 15.0));

    let rows = [
        ("steer above 100", "steer_threshold", "101", "must be between 0 and 100, got 101"),
        ("recovery below 0", "recovery_threshold", "-1", "must be between 0 and 100, got -1"),
        (
            "recovery equals steer",
            "recovery_threshold",
            "55",
            "must be less than steer_threshold (55), got 55",
        ),
        (
            "recovery above steer",
            "recovery_threshold",
            "60",
            "must be less than steer_threshold (55), got 60",
        ),
    ];
    for (name, key, value, problem) in rows {
        let e = only_error(steering(&set(&on, &format!("confidence.{key}"), value)));
        assert_eq!((e.path, e.problem.as_str()), (format!("confidence.{key}"), problem), "{name}");
    }
    ok_steering(&set(&set(&on, "confidence.steer_threshold", "100"), "confidence.recovery_threshold", "0"));
}

#[test]
fn steering_measurement_bounds() {
    for (key, lo, hi, below, above) in
        [("interval_seconds", "0.01", "60", "0.009", "61"), ("ping_count", "1", "20", "0", "21")]
    {
        let path = format!("measurement.{key}");
        ok_steering(&set(STEERING, &path, lo));
        ok_steering(&set(STEERING, &path, hi));
        only_error(steering(&set(STEERING, &path, below)));
        only_error(steering(&set(STEERING, &path, above)));
    }
    ok_steering(&set(STEERING, "state.history_size", "3000"));
    only_error(steering(&set(STEERING, "state.history_size", "3001")));
    assert_eq!(
        ok_steering(&set(STEERING, "measurement.interval_seconds", "0.05")).config.interval,
        Duration::from_millis(50)
    );
}

#[test]
fn steering_legacy_mode_keys_are_read() {
    let mut t = set(STEERING, "mode.cake_aware", "false");
    t = set(&t, "thresholds.bad_samples", "4");
    t = set(&t, "thresholds.good_samples", "20");
    t = set(&t, "thresholds.bad_threshold_ms", "30");
    let c = ok_steering(&t).config;
    assert!(!c.cake_aware);
    assert_eq!(
        (c.thresholds.bad_samples, c.thresholds.good_samples, c.thresholds.bad_threshold_ms),
        (4, 20, 30.0)
    );
}

// ---------------------------------------------------------------------------------------
// Summaries

#[test]
fn validate_config_report_matches_the_original() {
    let c = ok(&set(AUTORATE, "router.transport", "rest")).config;
    let want = "\
Configuration valid: /etc/wanctl/wan1.yaml
  WAN: wan1
  Transport: rest
  Router: 192.168.1.1:admin
  Download: 25M - 500M
    Floors: GREEN=100M, YELLOW=75M, SOFT_RED=50M, RED=25M
  Upload: 10M - 50M
    Floors: GREEN=10M, YELLOW=10M, RED=10M
  Thresholds: GREEN<=15ms, SOFT_RED<=45ms, RED>80ms
  Ping hosts: ['1.1.1.1', '8.8.8.8', '9.9.9.9']
  Queue names: WAN-Download-1, WAN-Upload-1
";
    assert_eq!(validate_config_report("/etc/wanctl/wan1.yaml", &c), want);
}

#[test]
fn validate_config_report_rounds_like_python() {
    // Python's format(x, ".0f") rounds half to even: 2.5 -> "2", 3.5 -> "4", 12.7 -> "13".
    let mut t = set(AUTORATE, "continuous_monitoring.upload.floor_mbps", "2.5");
    t = set(&t, "continuous_monitoring.upload.ceiling_mbps", "3.5");
    t = set(&t, "continuous_monitoring.thresholds.target_bloat_ms", "12.5");
    t = set(&t, "continuous_monitoring.download.floor_green_mbps", "112.7");
    let report = validate_config_report("f", &ok(&t).config);
    assert!(report.contains("\n  Upload: 2M - 4M\n"), "{report}");
    assert!(report.contains("GREEN=113M"), "{report}");
    assert!(report.contains("Thresholds: GREEN<=12.5ms,"), "{report}");
}

#[test]
fn summaries_never_include_the_password() {
    let c = ok(&set(AUTORATE, "router.password", "\"${ROUTER_PASSWORD}\"")).config;
    assert_eq!(c.router.password.0, "s3cret");
    let any = AnyConfig::Autorate(Box::new(c.clone()));
    for text in [summary(&any), validate_config_report("f", &c), format!("{c:?}")] {
        assert!(!text.contains("s3cret"), "{text}");
    }
    let s = ok_steering(&set(STEERING, "router.password", "\"${ROUTER_PASSWORD}\"")).config;
    assert!(!summary(&AnyConfig::Steering(Box::new(s))).contains("s3cret"));
}

#[test]
fn summary_lists_the_essentials() {
    let any = AnyConfig::Autorate(Box::new(ok(AUTORATE).config));
    let s = summary(&any);
    for needle in [
        "autorate config for WAN wan1",
        "admin@192.168.1.1 port 443 (https), ssh first, rest fallback",
        "queues: download WAN-Download-1 (cake-down-wan1), upload WAN-Upload-1 (cake-up-wan1)",
        "download: 25 to 500 Mbit/s, floors green 100 / yellow 75 / soft_red 50 / red 25",
        "upload: 10 to 50 Mbit/s, floor 10",
        "target 15 ms, warn 45 ms, hard_red 80 ms",
        "baseline tau 50 s, load tau 0.1 s",
        "reflectors: 1.1.1.1, 8.8.8.8, 9.9.9.9 (first host)",
        "state file: /run/wanctl/wan1_state.json",
    ] {
        assert!(s.contains(needle), "missing {needle:?} in:\n{s}");
    }
    assert!(!s.ends_with('\n'));
    let st = summary(&AnyConfig::Steering(Box::new(ok_steering(STEERING).config)));
    for needle in [
        "steering config steering: primary WAN wan1, alternate wan2",
        "queues: download WAN-Download-Wan1",
        "confidence scoring: off",
    ] {
        assert!(st.contains(needle), "missing {needle:?} in:\n{st}");
    }
}

mod probe_binding_tests {
    use crate::config::parse_autorate;

    fn with_binding(binding: &str) -> String {
        let base = include_str!("../../config/cable.yaml");
        base.replace(
            "continuous_monitoring:\n",
            &format!("continuous_monitoring:\n  probe_binding:\n{binding}"),
        )
    }

    #[test]
    fn binding_keys_parse_and_validate() {
        let env = |_: &str| Some("pw".to_string());
        let ok = parse_autorate(
            &with_binding("    device: eth1\n    source: 192.0.2.7\n    fwmark: 256\n"),
            "c.yaml",
            &env,
        )
        .expect("valid");
        let b = ok.config.monitoring.binding;
        assert_eq!(b.device.as_deref(), Some("eth1"));
        assert_eq!(b.source.as_deref(), Some("192.0.2.7"));
        assert_eq!(b.fwmark, Some(256));
        let bad = parse_autorate(
            &with_binding("    device: \"eth1;rm\"\n    source: host.example\n    fwmark: 0\n"),
            "c.yaml",
            &env,
        )
        .expect_err("invalid");
        let text = bad.to_string();
        assert!(text.contains("continuous_monitoring.probe_binding.device"), "{text}");
        assert!(text.contains("continuous_monitoring.probe_binding.source"), "{text}");
        assert!(text.contains("continuous_monitoring.probe_binding.fwmark"), "{text}");
    }
}

mod load_control_tests {
    use crate::config::{LoadControl, parse_autorate};
    use std::time::Duration;

    fn with(extra: &str) -> String {
        let base = include_str!("../../config/cable.yaml");
        base.replace("continuous_monitoring:\n", &format!("continuous_monitoring:\n{extra}"))
    }

    #[test]
    fn load_control_defaults_on_and_keys_parse() {
        let env = |_: &str| Some("pw".to_string());
        let plain = parse_autorate(include_str!("../../config/cable.yaml"), "c.yaml", &env).expect("valid");
        assert_eq!(plain.config.monitoring.load, LoadControl::default());
        assert_eq!(plain.config.monitoring.write_budget_per_min, 10.0);
        let ok = parse_autorate(
            &with("  write_budget_per_minute: 30\n  load_control:\n    enabled: false\n    interval_sec: 1\n    loaded_ratio: 0.4\n    saturated_ratio: 0.9\n"),
            "c.yaml",
            &env,
        )
        .expect("valid");
        let l = &ok.config.monitoring.load;
        assert!(!l.enabled);
        assert_eq!((l.interval, l.loaded_ratio, l.saturated_ratio), (Duration::from_secs(1), 0.4, 0.9));
        assert_eq!(l.stale_after, Duration::from_secs(4), "default: four intervals, at least 2 s");
        assert_eq!(ok.config.monitoring.write_budget_per_min, 30.0);
    }

    #[test]
    fn load_control_bad_values_name_their_keys() {
        let env = |_: &str| Some("pw".to_string());
        let bad = parse_autorate(
            &with("  write_budget_per_minute: 0\n  load_control:\n    interval_sec: 0.01\n    loaded_ratio: 0.95\n    saturated_ratio: 0.8\n    stale_after_sec: 0.5\n    bogus: 1\n"),
            "c.yaml",
            &env,
        )
        .expect_err("invalid");
        let text = bad.to_string();
        assert!(text.contains("continuous_monitoring.write_budget_per_minute"), "{text}");
        assert!(text.contains("continuous_monitoring.load_control.interval_sec"), "{text}");
        let bad = parse_autorate(
            &with("  load_control:\n    loaded_ratio: 0.95\n    saturated_ratio: 0.8\n"),
            "c.yaml",
            &env,
        )
        .expect_err("invalid");
        assert!(bad.to_string().contains("continuous_monitoring.load_control.loaded_ratio"), "{bad}");
        let bad = parse_autorate(
            &with("  load_control:\n    interval_sec: 1\n    stale_after_sec: 1\n"),
            "c.yaml",
            &env,
        )
        .expect_err("invalid");
        assert!(bad.to_string().contains("continuous_monitoring.load_control.stale_after_sec"), "{bad}");
    }
}

mod reflector_pool_tests {
    use crate::config::parse_autorate;
    use std::time::Duration;

    fn with(extra: &str) -> String {
        let base = include_str!("../../config/cable.yaml");
        base.replace("continuous_monitoring:\n", &format!("continuous_monitoring:\n{extra}"))
    }

    #[test]
    fn pool_keys_parse_and_default() {
        let env = |_: &str| Some("pw".to_string());
        let plain = parse_autorate(include_str!("../../config/cable.yaml"), "c.yaml", &env).expect("valid");
        let m = &plain.config.monitoring;
        assert_eq!(m.pool_hosts(), &m.ping_hosts[..], "ping_hosts is the pool");
        assert!(m.download.adaptive && m.upload.adaptive);
        let ok = parse_autorate(
            &with("  reflectors:\n    pool: [\"1.1.1.1\", \"2606:4700:4700::1111\", \"9.9.9.9\", \"8.8.8.8\"]\n    active: 2\n    quorum: 1\n    idle_rate_hz: 1\n    idle_after_sec: 60\n    outlier_ms: 20\n"),
            "c.yaml",
            &env,
        )
        .expect("valid");
        let r = &ok.config.monitoring.reflectors;
        assert_eq!(ok.config.monitoring.pool_hosts().len(), 4);
        assert_eq!((r.active, r.quorum, r.idle_rate_hz, r.outlier_ms), (Some(2), Some(1), 1.0, 20.0));
        assert_eq!(r.idle_after, Duration::from_secs(60));
    }

    #[test]
    fn pool_errors_name_their_keys() {
        let env = |_: &str| Some("pw".to_string());
        let bad = parse_autorate(
            &with("  reflectors:\n    pool: [\"1.1.1.1\", \"9.9.9.9\"]\n    active: 3\n"),
            "c.yaml",
            &env,
        )
        .expect_err("active > pool");
        assert!(bad.to_string().contains("continuous_monitoring.reflectors.active"), "{bad}");
        let bad = parse_autorate(&with("  reflectors:\n    active: 2\n    quorum: 3\n"), "c.yaml", &env)
            .expect_err("quorum > active");
        assert!(bad.to_string().contains("continuous_monitoring.reflectors.quorum"), "{bad}");
        let bad = parse_autorate(
            &with("  reflectors:\n    pool: [\"not a host!\"]\n    idle_rate_hz: 0\n"),
            "c.yaml",
            &env,
        )
        .expect_err("bad host and rate");
        let text = bad.to_string();
        assert!(text.contains("continuous_monitoring.reflectors.pool[0]"), "{text}");
        assert!(text.contains("continuous_monitoring.reflectors.idle_rate_hz"), "{text}");
    }
}

#[test]
fn upstream_hysteresis_and_upload_threshold_keys_load() {
    let th = "continuous_monitoring.thresholds";
    let text = set(
        &set(&set(AUTORATE, &format!("{th}.dwell_cycles"), "5"), &format!("{th}.deadband_ms"), "3.0"),
        &format!("{th}.accel_confirm_cycles"),
        "3",
    );
    let text = set(
        &set(&text, "continuous_monitoring.upload.target_bloat_ms", "12"),
        "continuous_monitoring.upload.warn_bloat_ms",
        "30",
    );
    let l = ok(&text);
    assert!(l.warnings.is_empty(), "{:?}", warnings(&l));
    let t = &l.config.monitoring.thresholds;
    assert_eq!((t.dwell_cycles, t.deadband_ms, t.accel_confirm_cycles), (5, 3.0, 3));
    assert_eq!((t.upload_target_bloat_ms, t.upload_warn_bloat_ms), (Some(12.0), Some(30.0)));
    // Defaults keep the original's behaviour.
    let t = ok(AUTORATE).config.monitoring.thresholds;
    assert_eq!((t.dwell_cycles, t.deadband_ms, t.accel_confirm_cycles), (0, 0.0, 1));
    assert_eq!((t.upload_target_bloat_ms, t.upload_warn_bloat_ms), (None, None));
    // Upload ordering is checked against the fallbacks.
    let e = only_error(autorate(&set(AUTORATE, "continuous_monitoring.upload.target_bloat_ms", "60")));
    assert_eq!(e.path, "continuous_monitoring.upload.warn_bloat_ms");
}

#[test]
fn upstream_ping_source_ip_is_the_probe_source() {
    let l = ok(&set(AUTORATE, "ping_source_ip", "\"192.0.2.7\""));
    assert_eq!(l.config.monitoring.binding.source.as_deref(), Some("192.0.2.7"));
    assert!(ok(&set(AUTORATE, "ping_source_ip", "\"\"")).config.monitoring.binding.source.is_none());
    let e = only_error(autorate(&set(AUTORATE, "ping_source_ip", "eth0")));
    assert_eq!(e.path, "ping_source_ip");
    let both = set(
        &set(AUTORATE, "ping_source_ip", "\"192.0.2.7\""),
        "continuous_monitoring.probe_binding.source",
        "\"192.0.2.8\"",
    );
    assert!(only_error(autorate(&both)).problem.contains("conflicts"));
}

#[test]
fn issue_12_wan_state_and_severe_rtt_are_read_and_checked() {
    let c = ok_steering(STEERING).config;
    assert_eq!(c.wan_state, crate::config::WanStateConfig::default());
    assert_eq!(c.thresholds.severe_rtt_ms, 120.0);
    let text = format!(
        "{STEERING}wan_state:\n  enabled: true\n  red_weight: 30\n  staleness_threshold_sec: 2.5\n  grace_period_sec: 0\n  wan_override: true\n"
    );
    let c = ok_steering(&text).config;
    assert!(c.wan_state.enabled && c.wan_state.wan_override);
    assert_eq!(c.wan_state.red_weight, 30);
    assert_eq!(c.wan_state.staleness, Duration::from_millis(2500));
    assert_eq!(c.wan_state.grace_period, Duration::ZERO);
    let e = only_error(steering(&format!("{STEERING}wan_state:\n  enabled: 5\n")));
    assert_eq!(e.path, "wan_state.enabled", "{e}");
    let e = only_error(steering(&format!("{STEERING}wan_state:\n  red_weight: 0\n")));
    assert_eq!(e.path, "wan_state.red_weight", "{e}");
    let l = ok_steering(&format!("{STEERING}wan_state:\n  enabeld: true\n"));
    assert!(warnings(&l).iter().any(|w| w.contains("wan_state.enabeld")), "{:?}", warnings(&l));
    let e = only_error(steering(&set(STEERING, "thresholds.severe_rtt_ms", "10")));
    assert_eq!(e.path, "thresholds.severe_rtt_ms", "{e}");
    assert!(e.to_string().contains("at least red_rtt_ms"), "{e}");
}

#[test]
fn issue_14_alerting_block_is_read_checked_and_keeps_its_secret() {
    use crate::engine::alerts::{AlertKind, Format, Severity};
    let c = ok(AUTORATE).config;
    assert!(!c.alerting.enabled);
    let text = format!(
        "{AUTORATE}alerting:\n  enabled: true\n  webhook_url: \"https://discord.com/api/webhooks/1/TOKEN123\"\n  default_sustained_sec: 30\n  rules:\n    rate_at_floor_dl: {{sustained_sec: 300, severity: critical, cooldown_sec: 10}}\n    flapping_ul: {{enabled: false}}\n"
    );
    let a = ok(&text).config.alerting;
    assert!(a.enabled);
    assert_eq!(a.format, Format::Discord);
    assert_eq!(a.settings.rule(AlertKind::CongestionDl).sustain, Duration::from_secs(30));
    let floor = a.settings.rule(AlertKind::FloorDl);
    assert_eq!(
        (floor.sustain, floor.cooldown, floor.severity),
        (Duration::from_secs(300), Duration::from_secs(10), Severity::Critical)
    );
    assert!(!a.settings.rule(AlertKind::FlappingUl).enabled);
    // `${VAR}` as a whole.
    let env_text = format!("{AUTORATE}alerting:\n  enabled: true\n  webhook_url: \"${{ROUTER_PASSWORD}}\"\n");
    let e = only_error(autorate(&env_text));
    assert_eq!(e.path, "alerting.webhook_url");
    assert!(!e.to_string().contains("s3cret"), "the secret is never printed: {e}");
    // A bad URL: the error says why, never the URL.
    let e = only_error(autorate(&format!(
        "{AUTORATE}alerting:\n  enabled: true\n  webhook_url: \"ftp://h/TOKEN999\"\n"
    )));
    assert!(e.to_string().contains("http:// or https://") && !e.to_string().contains("TOKEN999"), "{e}");
    let e = only_error(autorate(&format!(
        "{AUTORATE}alerting:\n  rules:\n    router_unreachable: {{severity: loud}}\n"
    )));
    assert_eq!(e.path, "alerting.rules.router_unreachable.severity", "{e}");
    let l = ok(&format!("{AUTORATE}alerting:\n  rules:\n    congestion_sustaned_dl: {{enabled: false}}\n"));
    assert!(warnings(&l).iter().any(|w| w.contains("congestion_sustaned_dl")), "{:?}", warnings(&l));
    // Enabled without a URL: off, with a warning.
    let l = ok(&format!("{AUTORATE}alerting:\n  enabled: true\n"));
    assert!(!l.config.alerting.enabled);
    assert!(warnings(&l).iter().any(|w| w.contains("alerting.webhook_url")), "{:?}", warnings(&l));
}
