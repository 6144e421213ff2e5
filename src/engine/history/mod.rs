//! The SQLite history, minus the SQLite. Pure: no clock, no I/O; every function takes the
//! wall-clock `now` (Unix seconds) and the local UTC offset as arguments.
//!
//! In scope (INTERFACES.md §2.2, §5):
//! * the rows the original writes: the per-cycle batch, zone-transition rows, steering rows
//!   and the startup config snapshot, with `labels` as JSON text in Python's default style;
//! * retention and downsampling *planning*: cutoffs, bucket alignment, AVG vs MODE, and the
//!   rule that only complete buckets are aggregated (so no source row is lost);
//! * `wanctl-history`'s parsing and output: durations, timestamps, granularity choice,
//!   the tabulate "simple" table, `--json`, `--csv`, `--summary` with the exclusive
//!   percentile method;
//! * `GET /metrics/history`: query-string parsing with the original's 400 texts and the JSON
//!   response.
//!
//! Out of scope: the database itself (`shell::store`), reading the clock or the time zone
//! (`sys::clock`), and SVG plots (`plot`).
//!
//! Python compatibility notes. `labels` and the HTTP bodies are `json.dumps` output:
//! `ensure_ascii`, `", "`/`": "` separators (or `indent=2`), floats as `repr()`. The CLI's
//! table is `tabulate(tablefmt="simple")`, which re-parses numeric strings and formats a
//! float column with `format(x, "g")`; [`format_table`] reproduces that, including its
//! decimal-point alignment. Naive timestamps are local time: the caller passes the current
//! UTC offset (the original used the zone rules at each timestamp; the two differ only for
//! timestamps on the other side of a DST change).
//!
//! The parts: [`pyjson`] (Python-compatible formatting), [`calendar`] (dates and times),
//! [`query`] (the HTTP endpoint), [`retention`] (downsampling plans), [`report`] (CLI output).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use crate::units::Bps;

mod calendar;
mod pyjson;
mod query;
mod report;
mod retention;

pub use calendar::*;
pub use pyjson::*;
pub use query::*;
pub use report::*;
pub use retention::*;

// ---------------------------------------------------------------------------------------
// Metric names and rows
// ---------------------------------------------------------------------------------------

/// Measured RTT (ms), per cycle.
pub const RTT_MS: &str = "wanctl_rtt_ms";
/// Baseline RTT (ms), per cycle.
pub const RTT_BASELINE_MS: &str = "wanctl_rtt_baseline_ms";
/// Load minus baseline (ms, signed for autorate), per cycle.
pub const RTT_DELTA_MS: &str = "wanctl_rtt_delta_ms";
/// Download rate (Mbit/s), per cycle.
pub const RATE_DOWNLOAD_MBPS: &str = "wanctl_rate_download_mbps";
/// Upload rate (Mbit/s), per cycle.
pub const RATE_UPLOAD_MBPS: &str = "wanctl_rate_upload_mbps";
/// Zone code: GREEN 0, YELLOW 1, SOFT_RED 2, RED 3 (steering: RED 2).
pub const STATE: &str = "wanctl_state";
/// Steering: 1.0 while traffic is steered away (DEGRADED).
pub const STEERING_ENABLED: &str = "wanctl_steering_enabled";
/// Steering: 1.0 on enable, 0.0 on disable.
pub const STEERING_TRANSITION: &str = "wanctl_steering_transition";
/// Startup snapshot of key config values; value = the Unix timestamp.
pub const CONFIG_SNAPSHOT: &str = "wanctl_config_snapshot";

/// The `granularity` column: which downsampling tier a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Granularity {
    /// One row per cycle (`raw`).
    Raw,
    /// One row per series per 60 s bucket (`1m`).
    Minute,
    /// One row per series per 300 s bucket (`5m`).
    FiveMinutes,
    /// One row per series per 3600 s bucket (`1h`).
    Hour,
}

impl Granularity {
    /// The text stored in the column.
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Raw => "raw",
            Granularity::Minute => "1m",
            Granularity::FiveMinutes => "5m",
            Granularity::Hour => "1h",
        }
    }

    /// The inverse of [`Granularity::as_str`].
    pub fn parse(s: &str) -> Option<Granularity> {
        match s {
            "raw" => Some(Granularity::Raw),
            "1m" => Some(Granularity::Minute),
            "5m" => Some(Granularity::FiveMinutes),
            "1h" => Some(Granularity::Hour),
            _ => None,
        }
    }

    /// The tier a query window reads (the original's `select_granularity`): under 6 h
    /// `raw`, under 24 h `1m`, under 7 d `5m`, else `1h`.
    pub fn for_window(start: i64, end: i64) -> Granularity {
        let span = end.saturating_sub(start);
        if span < 6 * 3600 {
            Granularity::Raw
        } else if span < 86_400 {
            Granularity::Minute
        } else if span < 7 * 86_400 {
            Granularity::FiveMinutes
        } else {
            Granularity::Hour
        }
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the `metrics` table (without its `id`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    /// Wall-clock Unix seconds.
    pub timestamp: i64,
    /// WAN name as configured (steering: `topology.primary_wan`).
    pub wan_name: String,
    /// One of the constants above for rows we write; anything when read back.
    pub metric_name: Cow<'static, str>,
    /// The value (`REAL NOT NULL`).
    pub value: f64,
    /// JSON text in Python's default style, or `None` (SQL NULL).
    pub labels: Option<String>,
    /// Downsampling tier.
    pub granularity: Granularity,
}

impl MetricRow {
    /// A `raw` row.
    pub fn raw(
        timestamp: i64,
        wan_name: &str,
        metric_name: &'static str,
        value: f64,
        labels: Option<String>,
    ) -> MetricRow {
        MetricRow {
            timestamp,
            wan_name: wan_name.to_string(),
            metric_name: Cow::Borrowed(metric_name),
            value,
            labels,
            granularity: Granularity::Raw,
        }
    }
}

/// A zone change in one direction, for its extra `wanctl_state` row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZoneChange<'a> {
    /// The new zone's history code (GREEN 0 … RED 3).
    pub zone_code: u8,
    /// The transition reason (`controller::Transition`'s `Display`).
    pub reason: &'a str,
}

/// What one autorate cycle reports to the history (INTERFACES.md §5.2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CycleRecord<'a> {
    /// WAN name as configured.
    pub wan: &'a str,
    /// The RTT used this cycle (ICMP, or the TCP / last-RTT substitute).
    pub measured_rtt_ms: f64,
    /// Baseline RTT.
    pub baseline_ms: f64,
    /// Load RTT minus baseline, signed.
    pub delta_ms: f64,
    /// Download rate after the cycle.
    pub dl_rate_bps: Bps,
    /// Upload rate after the cycle.
    pub ul_rate_bps: Bps,
    /// Download zone code (GREEN 0 … RED 3).
    pub dl_zone_code: u8,
    /// Set when the download zone changed this cycle.
    pub dl_transition: Option<ZoneChange<'a>>,
    /// Set when the upload zone changed this cycle.
    pub ul_transition: Option<ZoneChange<'a>>,
}

/// The rows one autorate cycle writes, in the original's order: RTT, baseline, delta,
/// download and upload rate (Mbit/s = bit/s ÷ 10⁶), download state; then one labelled
/// `wanctl_state` row per direction whose zone changed.
pub fn cycle_rows(timestamp: i64, rec: &CycleRecord<'_>) -> Vec<MetricRow> {
    let mut rows = Vec::with_capacity(8);
    let row = |name: &'static str, value: f64, labels: Option<String>| {
        MetricRow::raw(timestamp, rec.wan, name, value, labels)
    };
    rows.push(row(RTT_MS, rec.measured_rtt_ms, None));
    rows.push(row(RTT_BASELINE_MS, rec.baseline_ms, None));
    rows.push(row(RTT_DELTA_MS, rec.delta_ms, None));
    rows.push(row(RATE_DOWNLOAD_MBPS, rec.dl_rate_bps.0 as f64 / 1e6, None));
    rows.push(row(RATE_UPLOAD_MBPS, rec.ul_rate_bps.0 as f64 / 1e6, None));
    rows.push(row(STATE, f64::from(rec.dl_zone_code), labels(&[("direction", PyJson::str("download"))])));
    for (direction, change) in [("download", rec.dl_transition), ("upload", rec.ul_transition)] {
        if let Some(c) = change {
            let l = labels(&[("direction", PyJson::str(direction)), ("reason", PyJson::str(c.reason))]);
            rows.push(row(STATE, f64::from(c.zone_code), l));
        }
    }
    rows
}

/// A steering state change, for the `wanctl_steering_transition` row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SteeringChange<'a> {
    /// True when steering was enabled (traffic moved to the alternate WAN).
    pub enabled: bool,
    /// The state name left.
    pub from_state: &'a str,
    /// The state name entered.
    pub to_state: &'a str,
}

/// What one successful steering cycle reports (INTERFACES.md §5.2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SteeringRecord<'a> {
    /// `topology.primary_wan`.
    pub primary_wan: &'a str,
    /// Ping RTT.
    pub rtt_ms: f64,
    /// Baseline RTT.
    pub baseline_ms: f64,
    /// RTT minus baseline, ≥ 0.
    pub delta_ms: f64,
    /// Whether the current state is the DEGRADED one.
    pub steering_enabled: bool,
    /// Congestion state: GREEN 0, YELLOW 1, RED 2.
    pub state_code: u8,
    /// Set on a transition this cycle.
    pub transition: Option<SteeringChange<'a>>,
}

/// The rows one steering cycle writes.
pub fn steering_rows(timestamp: i64, rec: &SteeringRecord<'_>) -> Vec<MetricRow> {
    let row = |name: &'static str, value: f64, labels: Option<String>| {
        MetricRow::raw(timestamp, rec.primary_wan, name, value, labels)
    };
    let mut rows = vec![
        row(RTT_MS, rec.rtt_ms, None),
        row(RTT_BASELINE_MS, rec.baseline_ms, None),
        row(RTT_DELTA_MS, rec.delta_ms, None),
        row(STEERING_ENABLED, if rec.steering_enabled { 1.0 } else { 0.0 }, None),
        row(STATE, f64::from(rec.state_code), labels(&[("source", PyJson::str("steering"))])),
    ];
    if let Some(t) = rec.transition {
        let l = labels(&[
            ("reason", PyJson::Str(format!("Transitioned from {} to {}", t.from_state, t.to_state))),
            ("from_state", PyJson::str(t.from_state)),
            ("to_state", PyJson::str(t.to_state)),
        ]);
        rows.push(row(STEERING_TRANSITION, if t.enabled { 1.0 } else { 0.0 }, l));
    }
    rows
}

/// Autorate values in the config snapshot, as they were written in the YAML (an integer
/// stays an integer: use [`PyJson::num`] or the exact variant; absent → [`PyJson::Null`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AutorateSnapshot {
    /// `continuous_monitoring.baseline_rtt_initial`.
    pub baseline_rtt_initial: PyJson,
    /// `continuous_monitoring.download.ceiling_mbps`.
    pub download_ceiling_mbps: PyJson,
    /// `continuous_monitoring.upload.ceiling_mbps`.
    pub upload_ceiling_mbps: PyJson,
    /// `continuous_monitoring.thresholds.target_bloat_ms`.
    pub target_bloat_ms: PyJson,
    /// `continuous_monitoring.thresholds.warn_bloat_ms`.
    pub warn_bloat_ms: PyJson,
}

/// Steering values in the config snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SteeringSnapshot {
    /// `thresholds.bad_threshold_ms`.
    pub bad_threshold_ms: PyJson,
    /// `thresholds.recovery_threshold_ms`.
    pub recovery_threshold_ms: PyJson,
    /// `thresholds.green_rtt_ms`.
    pub green_rtt_ms: PyJson,
    /// `thresholds.red_rtt_ms`.
    pub red_rtt_ms: PyJson,
    /// `topology.primary_wan`.
    pub primary_wan: PyJson,
    /// `topology.alternate_wan`.
    pub alternate_wan: PyJson,
}

/// The startup `wanctl_config_snapshot` row: value = `timestamp`, labels
/// `{"trigger": "startup", "autorate": {…} | null, "steering": {…} | null}`.
pub fn config_snapshot_row(
    timestamp: i64,
    wan: &str,
    autorate: Option<&AutorateSnapshot>,
    steering: Option<&SteeringSnapshot>,
) -> MetricRow {
    let autorate = autorate.map_or(PyJson::Null, |a| {
        PyJson::object(&[
            ("baseline_rtt_initial", a.baseline_rtt_initial.clone()),
            ("download_ceiling_mbps", a.download_ceiling_mbps.clone()),
            ("upload_ceiling_mbps", a.upload_ceiling_mbps.clone()),
            ("target_bloat_ms", a.target_bloat_ms.clone()),
            ("warn_bloat_ms", a.warn_bloat_ms.clone()),
        ])
    });
    let steering = steering.map_or(PyJson::Null, |s| {
        PyJson::object(&[
            ("bad_threshold_ms", s.bad_threshold_ms.clone()),
            ("recovery_threshold_ms", s.recovery_threshold_ms.clone()),
            ("green_rtt_ms", s.green_rtt_ms.clone()),
            ("red_rtt_ms", s.red_rtt_ms.clone()),
            ("primary_wan", s.primary_wan.clone()),
            ("alternate_wan", s.alternate_wan.clone()),
        ])
    });
    let l = labels(&[("trigger", PyJson::str("startup")), ("autorate", autorate), ("steering", steering)]);
    MetricRow::raw(timestamp, wan, CONFIG_SNAPSHOT, timestamp as f64, l)
}

/// `json.dumps(labels) if labels else None`.
pub fn labels(pairs: &[(&str, PyJson)]) -> Option<String> {
    if pairs.is_empty() { None } else { Some(PyJson::object(pairs).compact()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        let cases: &[(&str, f64, &str)] = &[
            ("integral", 25.0, "25.0"),
            ("one_decimal", 25.3, "25.3"),
            ("small", 0.0001, "0.0001"),
            ("tiny_exponent", 0.00001, "1e-05"),
            ("mantissa_exponent", 1.5e-7, "1.5e-07"),
            ("large_positional", 1e15, "1000000000000000.0"),
            ("large_exponent", 1e16, "1e+16"),
            ("big", 1.2345678901234568e17, "1.2345678901234568e+17"),
            ("negative", -2.5, "-2.5"),
            ("neg_zero", -0.0, "-0.0"),
            ("third", 1.0 / 3.0, "0.3333333333333333"),
            ("rate", 920.0, "920.0"),
            ("nan", f64::NAN, "NaN"),
            ("inf", f64::NEG_INFINITY, "-Infinity"),
        ];
        for (name, v, want) in cases {
            assert_eq!(py_float_repr(*v), *want, "{name}");
        }
    }

    #[test]
    fn format_g_matches_python() {
        let cases: &[(&str, f64, &str)] = &[
            ("int", 25.0, "25"),
            ("frac", 25.5, "25.5"),
            ("three", 0.123, "0.123"),
            ("rounded", 1234.567, "1234.57"),
            ("timestamp", 1_769_349_600.0, "1.76935e+09"),
            ("million", 1e6, "1e+06"),
            ("below", 999_999.0, "999999"),
            ("rounds_up", 999_999.5, "1e+06"),
            ("small", 0.0001, "0.0001"),
            ("smaller", 0.00001234, "1.234e-05"),
            ("neg", -0.5, "-0.5"),
        ];
        for (name, v, want) in cases {
            assert_eq!(py_format_g(*v), *want, "{name}");
        }
    }

    #[test]
    fn format_value_rules() {
        let cases: &[(&str, f64, &str)] = &[
            ("half", 25.5, "25.5"),
            ("integral", 25.0, "25"),
            ("three_decimals", 0.123, "0.123"),
            ("rounds", 0.12345, "0.123"),
            ("strips_zeros", 1.10, "1.1"),
            ("tiny_to_zero", 0.0004, "0"),
            ("neg_tiny", -0.0004, "-0"),
            ("neg_zero", -0.0, "0"),
            ("large", 1e20, "100000000000000000000"),
        ];
        for (name, v, want) in cases {
            assert_eq!(format_value(*v), *want, "{name}");
        }
    }

    #[test]
    fn json_compact_and_pretty_follow_python() {
        let v = PyJson::object(&[
            ("direction", PyJson::str("download")),
            ("reason", PyJson::str("caf\u{e9} \"q\"\n\u{1F600}")),
            ("n", PyJson::Int(3)),
            ("x", PyJson::Float(2.0)),
            ("none", PyJson::Null),
            ("l", PyJson::List(vec![])),
        ]);
        assert_eq!(
            v.compact(),
            r#"{"direction": "download", "reason": "caf\u00e9 \"q\"\n\ud83d\ude00", "n": 3, "x": 2.0, "none": null, "l": []}"#
        );
        let p = PyJson::object(&[(
            "a",
            PyJson::List(vec![PyJson::Int(1), PyJson::object(&[("b", PyJson::Null)])]),
        )]);
        assert_eq!(p.pretty(), "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ]\n}");
    }

    #[test]
    fn cycle_rows_have_the_original_names_and_labels() {
        let rec = CycleRecord {
            wan: "spectrum",
            measured_rtt_ms: 25.3,
            baseline_ms: 24.0,
            delta_ms: -1.5,
            dl_rate_bps: Bps(920_000_000),
            ul_rate_bps: Bps(38_500_000),
            dl_zone_code: 1,
            dl_transition: Some(ZoneChange {
                zone_code: 1,
                reason: "RTT delta 16.2ms exceeded green threshold 15ms",
            }),
            ul_transition: None,
        };
        let rows = cycle_rows(1_769_349_600, &rec);
        let names: Vec<&str> = rows.iter().map(|r| r.metric_name.as_ref()).collect();
        assert_eq!(
            names,
            [RTT_MS, RTT_BASELINE_MS, RTT_DELTA_MS, RATE_DOWNLOAD_MBPS, RATE_UPLOAD_MBPS, STATE, STATE]
        );
        assert_eq!(rows[3].value, 920.0);
        assert_eq!(rows[4].value, 38.5);
        assert_eq!(rows[5].labels.as_deref(), Some(r#"{"direction": "download"}"#));
        assert_eq!(
            rows[6].labels.as_deref(),
            Some(r#"{"direction": "download", "reason": "RTT delta 16.2ms exceeded green threshold 15ms"}"#)
        );
        assert!(rows.iter().all(|r| r.granularity == Granularity::Raw && r.wan_name == "spectrum"));
        assert!(rows[..5].iter().all(|r| r.labels.is_none()));
    }

    #[test]
    fn steering_and_snapshot_rows() {
        let rows = steering_rows(
            100,
            &SteeringRecord {
                primary_wan: "spectrum",
                rtt_ms: 30.0,
                baseline_ms: 25.0,
                delta_ms: 5.0,
                steering_enabled: true,
                state_code: 2,
                transition: Some(SteeringChange {
                    enabled: true,
                    from_state: "SPECTRUM_GOOD",
                    to_state: "SPECTRUM_DEGRADED",
                }),
            },
        );
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[3].metric_name, STEERING_ENABLED);
        assert_eq!(rows[4].labels.as_deref(), Some(r#"{"source": "steering"}"#));
        assert_eq!(
            rows[5].labels.as_deref(),
            Some(
                r#"{"reason": "Transitioned from SPECTRUM_GOOD to SPECTRUM_DEGRADED", "from_state": "SPECTRUM_GOOD", "to_state": "SPECTRUM_DEGRADED"}"#
            )
        );
        let snap = AutorateSnapshot {
            baseline_rtt_initial: PyJson::num(24.0),
            download_ceiling_mbps: PyJson::num(940.0),
            upload_ceiling_mbps: PyJson::Float(38.0),
            target_bloat_ms: PyJson::num(15.0),
            warn_bloat_ms: PyJson::Null,
        };
        let row = config_snapshot_row(1_769_349_600, "spectrum", Some(&snap), None);
        assert_eq!(row.value, 1_769_349_600.0);
        assert_eq!(
            row.labels.as_deref(),
            Some(
                r#"{"trigger": "startup", "autorate": {"baseline_rtt_initial": 24, "download_ceiling_mbps": 940, "upload_ceiling_mbps": 38.0, "target_bloat_ms": 15, "warn_bloat_ms": null}, "steering": null}"#
            )
        );
    }

    #[test]
    fn durations() {
        let cases: &[(&str, &str, Option<u64>)] = &[
            ("seconds", "30s", Some(30)),
            ("minutes", "30m", Some(1800)),
            ("hours", "1h", Some(3600)),
            ("upper", "2H", Some(7200)),
            ("days", "7d", Some(604_800)),
            ("weeks", "2w", Some(1_209_600)),
            ("zero", "0h", Some(0)),
            ("newline", "1h\n", Some(3600)),
            ("word", "abc", None),
            ("no_unit", "10", None),
            ("no_number", "h", None),
            ("space", " 1h", None),
            ("sign", "-1h", None),
            ("fraction", "1.5h", None),
            ("month", "1y", None),
            ("empty", "", None),
            ("huge", "99999999999999999999w", None),
        ];
        for (name, s, want) in cases {
            assert_eq!(parse_duration(s), *want, "{name}");
        }
    }

    #[test]
    fn iso_and_cli_timestamps() {
        let utc = |s: &str| parse_iso8601(s).map(|t| t.to_unix(0));
        assert_eq!(utc("2026-01-25T14:00:00+00:00"), Some(1_769_349_600));
        assert_eq!(utc("2026-01-25T14:00:00Z"), Some(1_769_349_600));
        assert_eq!(utc("2026-01-25T15:00:00+01:00"), Some(1_769_349_600));
        assert_eq!(utc("2026-01-25T09:00-0500"), Some(1_769_349_600));
        assert_eq!(utc("2026-01-25 14:00"), Some(1_769_349_600));
        assert_eq!(utc("2026-01-25T14"), Some(1_769_349_600));
        assert_eq!(utc("20260125T140000"), Some(1_769_349_600));
        assert_eq!(utc("2026-01-25T14:00:00.999"), Some(1_769_349_600));
        assert_eq!(utc("2026-01-25"), Some(1_769_299_200));
        for bad in [
            "not-a-date",
            "2026-02-30",
            "2026-13-01",
            "2026-01-25T25:00",
            "2026-01-25T14:00:00+25:00",
            "",
            "2026-1-5",
        ] {
            assert_eq!(utc(bad), None, "{bad}");
        }
        // Naive = local: 15:00 at UTC+1 is 14:00 UTC.
        assert_eq!(parse_iso8601("2026-01-25T15:00:00").map(|t| t.to_unix(3600)), Some(1_769_349_600));
        // strptime fallback: one-digit fields.
        assert_eq!(parse_cli_timestamp("2026-1-25 14:0").map(|t| t.to_unix(0)), Some(1_769_349_600));
        assert_eq!(parse_cli_timestamp("2026-01-25  14:00:00").map(|t| t.to_unix(0)), Some(1_769_349_600));
        assert_eq!(parse_cli_timestamp("yesterday"), None);
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000i64, -1, 0, 1, 59, 60, 365, 11_016, 20_478, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(iso_utc(1_769_349_600), "2026-01-25T14:00:00+00:00");
        assert_eq!(local_datetime(1_769_349_600, -5 * 3600), "2026-01-25 09:00:00");
    }

    #[test]
    fn granularity_boundaries() {
        let cases = [
            (0, Granularity::Raw),
            (6 * 3600 - 1, Granularity::Raw),
            (6 * 3600, Granularity::Minute),
            (86_399, Granularity::Minute),
            (86_400, Granularity::FiveMinutes),
            (7 * 86_400 - 1, Granularity::FiveMinutes),
            (7 * 86_400, Granularity::Hour),
        ];
        for (span, want) in cases {
            assert_eq!(Granularity::for_window(1000, 1000 + span), want, "span {span}");
        }
    }

    #[test]
    fn http_params_errors_have_the_original_texts() {
        let cases: &[(&str, &str)] = &[
            ("range=abc", "Invalid duration format: 'abc'. Use format like '1h', '30m', '7d'"),
            ("from=not-a-date", "Invalid timestamp format: 'not-a-date'. Use ISO 8601 format"),
            ("to=2026-99-01", "Invalid timestamp format: '2026-99-01'. Use ISO 8601 format"),
            ("limit=abc", "Invalid limit value: 'abc'"),
            ("limit=0", "limit must be between 1 and 10000"),
            ("limit=10001", "limit must be between 1 and 10000"),
            ("limit=1.5", "Invalid limit value: '1.5'"),
            ("offset=xyz", "Invalid offset value: 'xyz'"),
            ("offset=-1", "offset must be non-negative"),
            ("range=abc&limit=0", "Invalid duration format: 'abc'. Use format like '1h', '30m', '7d'"),
        ];
        for (q, want) in cases {
            assert_eq!(HistoryParams::parse(q, 0), Err(ParamError((*want).into())), "{q}");
        }
        assert_eq!(
            error_body(&ParamError("limit must be between 1 and 10000".into())),
            r#"{"error": "limit must be between 1 and 10000"}"#
        );
    }

    #[test]
    fn http_params_window_and_filters() {
        let now = 1_769_349_600;
        let p = HistoryParams::parse("/metrics/history", 0).expect("valid");
        assert_eq!(p.window(now), (now - 3600, now));
        assert_eq!((p.limit, p.offset), (1000, 0));
        let p =
            HistoryParams::parse("/metrics/history?range=0h&from=2026-01-25T13:00:00Z", 0).expect("valid");
        assert_eq!(p.window(now), (now - 3600, now), "zero range is absent");
        let p = HistoryParams::parse("range=7d&from=2026-01-25T13:00:00Z", 0).expect("valid");
        assert_eq!(p.query(now).granularity, Granularity::Hour);
        let p = HistoryParams::parse("from=2026-01-25T13:00:00%2B00:00&to=2026-01-25T13:30:00Z", 0)
            .expect("valid");
        assert_eq!(p.window(now), (now - 3600, now - 1800));
        let p = HistoryParams::parse(
            "?metrics=wanctl_rtt_ms,+wanctl_state,,&wan=att&limit=+5&offset=1_0&range=",
            0,
        )
        .expect("valid");
        assert_eq!(p.metrics, Some(vec!["wanctl_rtt_ms".to_string(), "wanctl_state".to_string()]));
        assert_eq!(p.wan.as_deref(), Some("att"));
        assert_eq!((p.limit, p.offset, p.range_secs), (5, 10, None));
        // to without from is ignored.
        let p = HistoryParams::parse("to=2026-01-25T13:30:00Z", 0).expect("valid");
        assert_eq!(p.window(now), (now - 3600, now));
        assert_eq!(unquote_plus("a%2"), "a%2");
        assert_eq!(unquote_plus("%zz%41"), "%zzA");
    }

    #[test]
    fn http_response_shape() {
        let p = HistoryParams::parse("range=1h&wan=wan1", 0).expect("valid");
        let q = p.query(1_769_349_600);
        let rows =
            [MetricRow::raw(1_769_349_600, "wan1", STATE, 1.0, Some(r#"{"direction": "download"}"#.into()))];
        let body = render_history_response(&p, &q, &rows, 7);
        let want = r#"{
  "data": [
    {
      "timestamp": "2026-01-25T14:00:00+00:00",
      "wan_name": "wan1",
      "metric_name": "wanctl_state",
      "value": 1.0,
      "labels": "{\"direction\": \"download\"}",
      "granularity": "raw"
    }
  ],
  "metadata": {
    "total_count": 7,
    "returned_count": 1,
    "granularity": "raw",
    "limit": 1000,
    "offset": 0,
    "query": {
      "start": "2026-01-25T13:00:00+00:00",
      "end": "2026-01-25T14:00:00+00:00",
      "metrics": null,
      "wan": "wan1"
    }
  }
}"#;
        assert_eq!(body, want);
        let empty = render_history_response(&p, &q, &[], 0);
        assert!(empty.starts_with("{\n  \"data\": [],\n  \"metadata\""), "{empty}");
    }

    #[test]
    fn percentiles_use_the_exclusive_method() {
        // Python: statistics.quantiles([1, 2], n=100) → p50 1.5, p95 2.0 (clamped), p99 2.0.
        // Python: statistics.quantiles([1.0, 2.0], n=100) → [49] 1.5, [94] 2.85, [98] 2.97
        // (the exclusive method extrapolates past the largest value).
        let s = summary_stats(&[2.0, 1.0]).expect("two");
        assert_eq!((s.min, s.max, s.avg, s.p50, s.p95, s.p99), (1.0, 2.0, 1.5, 1.5, 2.85, 2.97));
        // n = 10: i·m = 95·11 = 1045, j = 10 → clamped to 9, δ = 145 → 10.45 (Python too).
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = summary_stats(&v).expect("ten");
        assert_eq!(s.p50, 5.5);
        assert_eq!(s.p95, 10.45);
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        let s = summary_stats(&v).expect("many");
        // m = 201: p50 j = 100, δ = 50 → 100.5; p95 j = 190, δ = 95 → 190.95; p99 j = 198, δ = 99.
        assert_eq!(s.p50, 100.5);
        assert_eq!(s.p95, (190.0 * 5.0 + 191.0 * 95.0) / 100.0);
        assert_eq!(s.p99, (198.0 * 1.0 + 199.0 * 99.0) / 100.0);
        let one = summary_stats(&[7.5]).expect("one");
        assert_eq!((one.min, one.p99, one.avg), (7.5, 7.5, 7.5));
        assert_eq!(summary_stats(&[]), None);
    }

    #[test]
    fn aggregates() {
        assert_eq!(Aggregate::for_metric(STATE), Aggregate::Mode);
        assert_eq!(Aggregate::for_metric(STEERING_ENABLED), Aggregate::Mode);
        assert_eq!(Aggregate::for_metric(RTT_MS), Aggregate::Mean);
        assert_eq!(Aggregate::Mode.apply(&[0.0, 1.0, 1.0, 3.0, 3.0, 1.0]), Some(1.0));
        assert_eq!(Aggregate::Mode.apply(&[3.0, 0.0, 3.0, 0.0]), Some(0.0), "ties go to the smallest");
        assert_eq!(Aggregate::Mean.apply(&[1.0, 2.0, 4.0]), Some(7.0 / 3.0));
        assert_eq!(Aggregate::Mean.apply(&[]), None);
        assert_eq!(mean(&[0.1; 10]), 0.1);
    }

    #[test]
    fn downsample_planning_keeps_partial_buckets() {
        let step = DOWNSAMPLE_STEPS[0];
        assert_eq!(step.label(), "raw->1m");
        let now = 10_000 * 60 + 30; // cutoff = now − 3600 falls mid-bucket
        assert_eq!(step.cutoff(now), now - 3600);
        assert_eq!(step.complete_before(now), (now - 3600) / 60 * 60);
        assert!(step.complete_before(now) < step.cutoff(now));
        let aligned = 10_000 * 60;
        assert_eq!(step.complete_before(aligned), aligned - 3600);
        assert_eq!(step.bucket_of(125), (120, 180));
        assert_eq!(DOWNSAMPLE_STEPS[1].label(), "1m->5m");
        assert_eq!(DOWNSAMPLE_STEPS[2].label(), "5m->1h");
        let row = step.bucket_row("wan1", STATE, 120, &[1.0, 1.0, 0.0]).expect("row");
        assert_eq!(
            (row.timestamp, row.value, row.granularity, row.labels),
            (120, 1.0, Granularity::Minute, None)
        );
        assert_eq!(retention_cutoff(1_000_000, 7), 1_000_000 - 604_800);
    }

    #[test]
    fn summary_output() {
        let mut rows = Vec::new();
        for (i, z) in [0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 0.0, 0.0].iter().enumerate() {
            rows.push(MetricRow::raw(i as i64, "w", STATE, *z, None));
        }
        for v in [10.0, 20.0, 30.5] {
            rows.push(MetricRow::raw(0, "w", RTT_MS, v, None));
        }
        let want = "\nwanctl_rtt_ms (3 samples)\n----------------------------------------\n  min: 10\n  max: 30.5\n  avg: 20.167\n  p50: 20\n  p95: 38.9\n  p99: 40.58\n\nwanctl_state (8 samples)\n----------------------------------------\n  GREEN: 62.5%\n  YELLOW: 12.5%\n  SOFT_RED: 12.5%\n  RED: 12.5%";
        assert_eq!(format_summary(&rows), want);
        // A "state" metric with a non-integer value gets numeric stats instead.
        let rows = [MetricRow::raw(0, "w", STATE, 0.5, None), MetricRow::raw(0, "w", STATE, 11.0, None)];
        assert!(format_summary(&rows).contains("  min: 0.5"));
    }

    #[test]
    fn table_matches_tabulate_simple() {
        let rows = [
            MetricRow::raw(1_769_349_600, "wan1", RTT_MS, 25.5, None),
            MetricRow::raw(1_769_349_599, "wan1", RATE_DOWNLOAD_MBPS, 25.0, None),
            MetricRow::raw(1_769_349_598, "wan1", RTT_DELTA_MS, 0.123, None),
        ];
        let want = "\
Timestamp            Metric                       Value
-------------------  -------------------------  -------
2026-01-25 14:00:00  wanctl_rtt_ms               25.5
2026-01-25 13:59:59  wanctl_rate_download_mbps   25
2026-01-25 13:59:58  wanctl_rtt_delta_ms          0.123";
        assert_eq!(format_table(&rows, false, 0), want);
        // All-integer value column: right-aligned, no decimal padding.
        let ints = [MetricRow::raw(0, "w", STATE, 1.0, None), MetricRow::raw(0, "w", STATE, 10.0, None)];
        assert_eq!(
            format_table(&ints, false, 0),
            "Timestamp            Metric          Value\n-------------------  ------------  -------\n1970-01-01 00:00:00  wanctl_state        1\n1970-01-01 00:00:00  wanctl_state       10"
        );
        // A float column reformats big integers with "g", as tabulate does.
        let mixed = [
            MetricRow::raw(0, "w", CONFIG_SNAPSHOT, 1_769_349_600.0, None),
            MetricRow::raw(0, "w", RTT_MS, 1.5, None),
        ];
        let want = "\
Timestamp            Metric                        Value
-------------------  ----------------------  -----------
1970-01-01 00:00:00  wanctl_config_snapshot  1.76935e+09
1970-01-01 00:00:00  wanctl_rtt_ms           1.5";
        assert_eq!(format_table(&mixed, false, 0), want);
    }

    #[test]
    fn verbose_table_adds_columns() {
        let rows = [
            MetricRow::raw(0, "wan1", STATE, 1.0, Some(r#"{"direction": "download"}"#.into())),
            MetricRow::raw(0, "wan1", RTT_MS, 3.0, None),
        ];
        let want = "\
Timestamp            Metric           Value  WAN    Labels                     Granularity
-------------------  -------------  -------  -----  -------------------------  -------------
1970-01-01 00:00:00  wanctl_state         1  wan1   {\"direction\": \"download\"}  raw
1970-01-01 00:00:00  wanctl_rtt_ms        3  wan1                              raw";
        assert_eq!(format_table(&rows, true, 0), want);
    }

    #[test]
    fn csv_and_cli_json() {
        let rows =
            [MetricRow::raw(1_769_349_600, "wan,1", STATE, 1.0, Some(r#"{"direction": "download"}"#.into()))];
        assert_eq!(
            format_csv(&rows),
            "timestamp,wan_name,metric_name,value,labels,granularity\n2026-01-25T14:00:00+00:00,\"wan,1\",wanctl_state,1.0,\"{\"\"direction\"\": \"\"download\"\"}\",raw\n"
        );
        let json = format_cli_json(&[MetricRow::raw(5, "w", RTT_MS, 25.3, None)]);
        assert_eq!(
            json,
            "[\n  {\n    \"timestamp\": 5,\n    \"wan_name\": \"w\",\n    \"metric_name\": \"wanctl_rtt_ms\",\n    \"value\": 25.3,\n    \"labels\": null,\n    \"granularity\": \"raw\"\n  }\n]"
        );
    }
}
