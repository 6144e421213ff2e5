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

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use crate::units::Bps;

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

// ---------------------------------------------------------------------------------------
// Python-style JSON
// ---------------------------------------------------------------------------------------

/// A JSON value written the way Python's `json.dumps` writes it: keys in insertion order,
/// `ensure_ascii`, floats as `repr()` (`25.0`, `1e-05`), `NaN`/`Infinity` allowed.
#[derive(Debug, Clone, PartialEq)]
pub enum PyJson {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A Python `int`.
    Int(i64),
    /// A Python `float`.
    Float(f64),
    /// A string.
    Str(String),
    /// A list.
    List(Vec<PyJson>),
    /// A dict, in insertion order.
    Object(Vec<(String, PyJson)>),
}

impl PyJson {
    /// A string value.
    pub fn str(s: &str) -> PyJson {
        PyJson::Str(s.to_string())
    }

    /// A dict from borrowed pairs.
    pub fn object(pairs: &[(&str, PyJson)]) -> PyJson {
        PyJson::Object(pairs.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect())
    }

    /// A config number as YAML most likely spelled it: integral values as `int`
    /// (`ceiling_mbps: 940`), others as `float`. Use the exact variants when known.
    pub fn num(v: f64) -> PyJson {
        if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 {
            PyJson::Int(v as i64)
        } else {
            PyJson::Float(v)
        }
    }

    /// `json.dumps(v)`: one line, `", "` and `": "` separators.
    pub fn compact(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, None, 0);
        out
    }

    /// `json.dumps(v, indent=2)`.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, Some(2), 0);
        out
    }

    fn write(&self, out: &mut String, indent: Option<usize>, level: usize) {
        match self {
            PyJson::Null => out.push_str("null"),
            PyJson::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            PyJson::Int(i) => out.push_str(&i.to_string()),
            PyJson::Float(f) => out.push_str(&py_float_repr(*f)),
            PyJson::Str(s) => write_py_str(out, s),
            PyJson::List(items) => {
                if items.is_empty() {
                    out.push_str("[]");
                    return;
                }
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    separator(out, indent, level + 1, i == 0);
                    item.write(out, indent, level + 1);
                }
                closing(out, indent, level);
                out.push(']');
            }
            PyJson::Object(pairs) => {
                if pairs.is_empty() {
                    out.push_str("{}");
                    return;
                }
                out.push('{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    separator(out, indent, level + 1, i == 0);
                    write_py_str(out, k);
                    out.push_str(": ");
                    v.write(out, indent, level + 1);
                }
                closing(out, indent, level);
                out.push('}');
            }
        }
    }
}

/// Before an item: `", "` compact; `",\n" + indent` pretty (no comma before the first).
fn separator(out: &mut String, indent: Option<usize>, level: usize, first: bool) {
    match indent {
        None if !first => out.push_str(", "),
        None => {}
        Some(n) => {
            if !first {
                out.push(',');
            }
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', n * level));
        }
    }
}

fn closing(out: &mut String, indent: Option<usize>, level: usize) {
    if let Some(n) = indent {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', n * level));
    }
}

/// A JSON string with `ensure_ascii`: everything outside printable ASCII as `\uXXXX`
/// (UTF-16 surrogate pairs above U+FFFF), the usual short escapes otherwise.
fn write_py_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Splits Rust's shortest round-trip scientific form into (negative, digits, exponent):
/// `-2.53e1` → (true, "253", 1), meaning −2.53 × 10¹.
fn sci_parts(s: &str) -> (bool, String, i32) {
    let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
    let negative = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    (negative, digits, exp.parse().unwrap_or(0))
}

/// The shortest digits that read back as `v`, and among those the closest to `v`, ties to
/// even (David Gay's `dtoa` mode 0, which Python uses). Rust's shortest form can pick the
/// other neighbour of an exact tie (`271065914603534.125` → `…4.13` where Python says
/// `…4.12`), so the count comes from it and the digits from correctly rounded formatting.
fn shortest_digits(v: f64) -> (bool, String, i32) {
    let shortest = sci_parts(&format!("{v:e}"));
    let precision = shortest.1.len().saturating_sub(1);
    let rounded = format!("{v:.precision$e}");
    if rounded.parse::<f64>() == Ok(v) {
        let (neg, digits, exp) = sci_parts(&rounded);
        let trimmed = digits.trim_end_matches('0');
        return (neg, if trimmed.is_empty() { "0".into() } else { trimmed.to_string() }, exp);
    }
    shortest
}

/// Python's `repr(float)`: the shortest round-trip digits, positional for decimal
/// exponents in [−4, 16), with at least one fractional digit; otherwise `1e-05`, `1e+16`.
pub fn py_float_repr(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let (negative, digits, exp) = shortest_digits(v);
    let sign = if negative { "-" } else { "" };
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    };
    format!("{sign}{body}")
}

/// Python's `format(v, "g")`: 6 significant digits, trailing zeros removed, exponent form
/// below 1e-4 or from 1e6 (`1.76935e+09`).
pub fn py_format_g(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let (negative, digits, exp) = sci_parts(&format!("{v:.5e}"));
    if (-4..6).contains(&exp) {
        let fixed = format!("{:.*}", (5 - exp) as usize, v);
        return strip_fraction_zeros(&fixed).to_string();
    }
    let sign = if negative { "-" } else { "" };
    let (first, rest) = digits.split_at(1);
    let rest = rest.trim_end_matches('0');
    let frac = if rest.is_empty() { String::new() } else { format!(".{rest}") };
    let esign = if exp < 0 { '-' } else { '+' };
    format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
}

fn strip_fraction_zeros(s: &str) -> &str {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s }
}

/// `wanctl-history`'s `format_value`: integral values without decimals (`25`), others with
/// up to three decimals, trailing zeros removed (`25.5`, `0.123`).
pub fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return py_format_g(v);
    }
    if v == v.trunc() {
        // `str(int(v))`: no sign on zero, every digit of large values.
        return if v == 0.0 { "0".into() } else { format!("{v:.0}") };
    }
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

// ---------------------------------------------------------------------------------------
// Calendar arithmetic, timestamp formatting and parsing
// ---------------------------------------------------------------------------------------

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

fn split_datetime(ts: i64) -> (i64, u32, u32, i64, i64, i64) {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (y, m, d, secs / 3600, secs % 3600 / 60, secs % 60)
}

/// `datetime.fromtimestamp(ts, tz=UTC).isoformat()`: `2026-01-25T14:00:00+00:00`.
pub fn iso_utc(ts: i64) -> String {
    let (y, m, d, hh, mm, ss) = split_datetime(ts);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}+00:00")
}

/// Local `YYYY-MM-DD HH:MM:SS` at the given UTC offset (seconds east).
pub fn local_datetime(ts: i64, utc_offset_secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = split_datetime(ts.saturating_add(utc_offset_secs));
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
}

/// A parsed calendar time; `offset_secs` is `None` for a naive (local) time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// Year.
    pub year: i64,
    /// Month 1–12.
    pub month: u32,
    /// Day 1–31.
    pub day: u32,
    /// Hour 0–23.
    pub hour: u32,
    /// Minute 0–59.
    pub minute: u32,
    /// Second 0–59.
    pub second: u32,
    /// Microseconds.
    pub micros: u32,
    /// UTC offset in seconds east, if the text had one.
    pub offset_secs: Option<i64>,
}

impl CivilTime {
    /// `int(dt.timestamp())`: naive times are local at `local_offset_secs`; the fraction
    /// is truncated toward zero as Python's `int()` does.
    pub fn to_unix(&self, local_offset_secs: i64) -> i64 {
        let offset = self.offset_secs.unwrap_or(local_offset_secs);
        let secs = days_from_civil(self.year, self.month, self.day) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - offset;
        let micros = i128::from(secs) * 1_000_000 + i128::from(self.micros);
        (micros / 1_000_000) as i64
    }

    fn valid(self) -> Option<CivilTime> {
        let ok = (1..=9999).contains(&self.year)
            && (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60;
        ok.then_some(self)
    }
}

/// Reads exactly `n` ASCII digits.
fn fixed_digits(s: &[u8], n: usize) -> Option<u32> {
    if s.len() < n || !s[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s[..n].iter().fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0')))
}

/// Python 3.11's `datetime.fromisoformat`: `YYYY-MM-DD` or `YYYYMMDD`, optionally followed
/// by any one separator character and `HH[:MM[:SS[.f…]]]` (or `HHMM[SS]`), optionally
/// followed by `Z` or `±HH[:MM[:SS]]` / `±HHMM`. Week dates are not accepted.
pub fn parse_iso8601(text: &str) -> Option<CivilTime> {
    let b = text.as_bytes();
    let (year, month, day, rest) = if b.len() >= 10 && b[4] == b'-' && b[7] == b'-' {
        (fixed_digits(b, 4)?, fixed_digits(&b[5..], 2)?, fixed_digits(&b[8..], 2)?, &text[10..])
    } else if b.len() >= 8 && b[..8].iter().all(u8::is_ascii_digit) {
        (fixed_digits(b, 4)?, fixed_digits(&b[4..], 2)?, fixed_digits(&b[6..], 2)?, &text[8..])
    } else {
        return None;
    };
    let mut t = CivilTime {
        year: i64::from(year),
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
        micros: 0,
        offset_secs: None,
    };
    let mut chars = rest.chars();
    if chars.next().is_some() {
        let time = chars.as_str();
        let tz_at = time.find(['Z', '+', '-']).unwrap_or(time.len());
        let (clock, tz) = time.split_at(tz_at);
        let (h, m, s, us) = parse_clock(clock)?;
        (t.hour, t.minute, t.second, t.micros) = (h, m, s, us);
        if !tz.is_empty() {
            t.offset_secs = Some(parse_utc_offset(tz)?);
        }
    }
    t.valid()
}

/// `HH[:MM[:SS[.f…]]]` or `HH[MM[SS[.f…]]]` → (h, m, s, µs).
fn parse_clock(s: &str) -> Option<(u32, u32, u32, u32)> {
    let (main, frac) = match s.find(['.', ',']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let b = main.as_bytes();
    let fields: Vec<u32> = if main.contains(':') {
        let parts: Vec<&str> = main.split(':').collect();
        if parts.len() > 3 || parts.iter().any(|p| p.len() != 2) {
            return None;
        }
        parts.iter().map(|p| fixed_digits(p.as_bytes(), 2)).collect::<Option<_>>()?
    } else {
        if b.is_empty() || b.len() % 2 != 0 || b.len() > 6 {
            return None;
        }
        b.chunks(2).map(|c| fixed_digits(c, 2)).collect::<Option<_>>()?
    };
    let micros = match frac {
        None => 0,
        Some(f) => {
            // Fractions only after seconds; extra digits beyond microseconds are dropped.
            if fields.len() != 3 || f.is_empty() || !f.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let six: String = f.chars().chain(std::iter::repeat('0')).take(6).collect();
            six.parse().ok()?
        }
    };
    Some((fields[0], fields.get(1).copied().unwrap_or(0), fields.get(2).copied().unwrap_or(0), micros))
}

/// `Z` or `±HH[:MM[:SS[.ffffff]]]` / `±HHMM[SS]` → seconds east of UTC (fraction ignored).
fn parse_utc_offset(s: &str) -> Option<i64> {
    if s == "Z" {
        return Some(0);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m, sec, _) = parse_clock(&s[1..])?;
    if h >= 24 || m >= 60 || sec >= 60 {
        return None;
    }
    Some(sign * (i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(sec)))
}

/// `wanctl-history --from/--to`: ISO 8601 first, then `strptime` with `%Y-%m-%d %H:%M:%S`
/// or `%Y-%m-%d %H:%M` (one- or two-digit fields, any run of whitespace between date and
/// time).
pub fn parse_cli_timestamp(text: &str) -> Option<CivilTime> {
    parse_iso8601(text).or_else(|| parse_strptime(text))
}

fn parse_strptime(text: &str) -> Option<CivilTime> {
    let date_end = text.find(|c: char| c.is_whitespace())?;
    let (date, rest) = text.split_at(date_end);
    let clock = rest.trim_start();
    let num = |s: &str, max_len: usize| -> Option<u32> {
        (!s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())?
    };
    let d: Vec<&str> = date.split('-').collect();
    let c: Vec<&str> = clock.split(':').collect();
    if d.len() != 3 || d[0].len() != 4 || !(2..=3).contains(&c.len()) {
        return None;
    }
    CivilTime {
        year: i64::from(num(d[0], 4)?),
        month: num(d[1], 2)?,
        day: num(d[2], 2)?,
        hour: num(c[0], 2)?,
        minute: num(c[1], 2)?,
        second: if c.len() == 3 { num(c[2], 2)? } else { 0 },
        micros: 0,
        offset_secs: None,
    }
    .valid()
}

/// `<int><s|m|h|d|w>`, case-insensitive (the original's `^(\d+)([smhdw])$`, whose `$` also
/// accepts one trailing newline) → seconds. `None` when malformed or beyond Python's
/// `timedelta` range.
pub fn parse_duration(text: &str) -> Option<u64> {
    let t = text.strip_suffix('\n').unwrap_or(text);
    let unit = t.chars().last()?;
    let digits = &t[..t.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mult = match unit.to_ascii_lowercase() {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    // timedelta's maximum is 999 999 999 days.
    let significant = digits.trim_start_matches('0');
    let n: u64 = if significant.is_empty() { 0 } else { significant.parse().ok()? };
    let secs = n.checked_mul(mult)?;
    (secs < 999_999_999 * 86_400).then_some(secs)
}

// ---------------------------------------------------------------------------------------
// Queries and windows
// ---------------------------------------------------------------------------------------

/// A read of the history: inclusive window, optional filters, one tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Inclusive start (Unix seconds).
    pub start: i64,
    /// Inclusive end (Unix seconds).
    pub end: i64,
    /// Metric names; `None` or empty = all (the original's `if metrics:`).
    pub metrics: Option<Vec<String>>,
    /// Exact WAN name; `None` or empty = all.
    pub wan: Option<String>,
    /// The one tier read.
    pub granularity: Granularity,
}

impl HistoryQuery {
    /// The metric filter, if it filters anything.
    pub fn metric_filter(&self) -> Option<&[String]> {
        self.metrics.as_deref().filter(|m| !m.is_empty())
    }

    /// The WAN filter, if it filters anything.
    pub fn wan_filter(&self) -> Option<&str> {
        self.wan.as_deref().filter(|w| !w.is_empty())
    }
}

/// `GET /metrics/history` parameters after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryParams {
    /// `range` in seconds (0 counts as absent).
    pub range_secs: Option<u64>,
    /// `from` (Unix seconds).
    pub from: Option<i64>,
    /// `to` (Unix seconds).
    pub to: Option<i64>,
    /// `metrics` split on commas, blanks dropped (may be empty: then no filter).
    pub metrics: Option<Vec<String>>,
    /// `wan`.
    pub wan: Option<String>,
    /// 1–10000, default 1000.
    pub limit: u32,
    /// ≥ 0, default 0.
    pub offset: u64,
}

/// A 400 from `/metrics/history`; the text is the original's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError(pub String);

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 1000;
/// Largest page size.
pub const MAX_LIMIT: u32 = 10_000;
/// Window when nothing is given: the last hour.
pub const DEFAULT_WINDOW_SECS: i64 = 3600;

impl HistoryParams {
    /// Parses a request target (`/metrics/history?range=1h`) or a bare query string, in the
    /// original's order: range, from, to, metrics, wan, limit, offset; the first bad one
    /// is the error.
    pub fn parse(target: &str, local_offset_secs: i64) -> Result<HistoryParams, ParamError> {
        let query = match target.split_once('?') {
            Some((_, q)) => q,
            None if target.starts_with('/') => "",
            None => target,
        };
        let query = query.split_once('#').map_or(query, |(q, _)| q);
        let pairs = parse_qs(query);
        let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let mut p = HistoryParams {
            range_secs: None,
            from: None,
            to: None,
            metrics: None,
            wan: None,
            limit: DEFAULT_LIMIT,
            offset: 0,
        };
        if let Some(v) = get("range") {
            p.range_secs = Some(parse_duration(v).ok_or_else(|| {
                ParamError(format!("Invalid duration format: '{v}'. Use format like '1h', '30m', '7d'"))
            })?);
        }
        let timestamp = |v: &str| {
            parse_iso8601(v)
                .map(|t| t.to_unix(local_offset_secs))
                .ok_or_else(|| ParamError(format!("Invalid timestamp format: '{v}'. Use ISO 8601 format")))
        };
        if let Some(v) = get("from") {
            p.from = Some(timestamp(v)?);
        }
        if let Some(v) = get("to") {
            p.to = Some(timestamp(v)?);
        }
        if let Some(v) = get("metrics") {
            p.metrics =
                Some(v.split(',').map(str::trim).filter(|m| !m.is_empty()).map(str::to_string).collect());
        }
        p.wan = get("wan").map(str::to_string);
        if let Some(v) = get("limit") {
            let n = py_int(v).ok_or_else(|| ParamError(format!("Invalid limit value: '{v}'")))?;
            if !(1..=i128::from(MAX_LIMIT)).contains(&n) {
                return Err(ParamError("limit must be between 1 and 10000".into()));
            }
            p.limit = n as u32;
        }
        if let Some(v) = get("offset") {
            let n = py_int(v).ok_or_else(|| ParamError(format!("Invalid offset value: '{v}'")))?;
            if n < 0 {
                return Err(ParamError("offset must be non-negative".into()));
            }
            p.offset = u64::try_from(n).unwrap_or(u64::MAX);
        }
        Ok(p)
    }

    /// The window: a non-zero `range` wins (now − range … now); else `from` … (`to` or
    /// now); else the last hour.
    pub fn window(&self, now: i64) -> (i64, i64) {
        match (self.range_secs.filter(|r| *r > 0), self.from) {
            (Some(r), _) => (now.saturating_sub(i64::try_from(r).unwrap_or(i64::MAX)), now),
            (None, Some(from)) => (from, self.to.unwrap_or(now)),
            (None, None) => (now - DEFAULT_WINDOW_SECS, now),
        }
    }

    /// The database query for this request at `now`.
    pub fn query(&self, now: i64) -> HistoryQuery {
        let (start, end) = self.window(now);
        HistoryQuery {
            start,
            end,
            metrics: self.metrics.clone(),
            wan: self.wan.clone(),
            granularity: Granularity::for_window(start, end),
        }
    }
}

/// Python's `int(str)`: optional surrounding whitespace and sign, digits with single
/// underscores between them. Saturates far beyond any limit we check.
fn py_int(s: &str) -> Option<i128> {
    let t = s.trim();
    let (neg, body) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if body.is_empty() || body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return None;
    }
    let mut n: i128 = 0;
    for b in body.bytes() {
        match b {
            b'_' => {}
            b'0'..=b'9' => n = n.saturating_mul(10).saturating_add(i128::from(b - b'0')),
            _ => return None,
        }
    }
    Some(if neg { -n } else { n })
}

/// `urllib.parse.parse_qs(query)`: `&`-separated, `+` is a space, `%XX` decoded (bad
/// escapes kept literally, bad UTF-8 replaced), pairs without `=` or with an empty value
/// dropped. Keeps every pair in order; callers take the first of a name.
pub fn parse_qs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (!v.is_empty()).then(|| (unquote_plus(k), unquote_plus(v)))
        })
        .collect()
}

fn unquote_plus(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The 400 body: `json.dumps({"error": message})`.
pub fn error_body(err: &ParamError) -> String {
    PyJson::object(&[("error", PyJson::Str(err.0.clone()))]).compact()
}

/// The 200 body of `/metrics/history` (INTERFACES.md §2.2), `json.dumps(indent=2)`.
/// `rows` is the page already cut by limit/offset; `total` counts every match.
pub fn render_history_response(
    params: &HistoryParams,
    query: &HistoryQuery,
    rows: &[MetricRow],
    total: u64,
) -> String {
    let data = rows
        .iter()
        .map(|r| {
            PyJson::object(&[
                ("timestamp", PyJson::Str(iso_utc(r.timestamp))),
                ("wan_name", PyJson::str(&r.wan_name)),
                ("metric_name", PyJson::str(&r.metric_name)),
                ("value", PyJson::Float(r.value)),
                ("labels", r.labels.as_deref().map_or(PyJson::Null, PyJson::str)),
                ("granularity", PyJson::str(r.granularity.as_str())),
            ])
        })
        .collect();
    let metrics = params
        .metrics
        .as_ref()
        .map_or(PyJson::Null, |m| PyJson::List(m.iter().map(|s| PyJson::str(s)).collect()));
    let body = PyJson::object(&[
        ("data", PyJson::List(data)),
        (
            "metadata",
            PyJson::object(&[
                ("total_count", PyJson::Int(i64::try_from(total).unwrap_or(i64::MAX))),
                ("returned_count", PyJson::Int(rows.len() as i64)),
                ("granularity", PyJson::str(query.granularity.as_str())),
                ("limit", PyJson::Int(i64::from(params.limit))),
                ("offset", PyJson::Int(i64::try_from(params.offset).unwrap_or(i64::MAX))),
                (
                    "query",
                    PyJson::object(&[
                        ("start", PyJson::Str(iso_utc(query.start))),
                        ("end", PyJson::Str(iso_utc(query.end))),
                        ("metrics", metrics),
                        ("wan", params.wan.as_deref().map_or(PyJson::Null, PyJson::str)),
                    ]),
                ),
            ]),
        ),
    ]);
    body.pretty()
}

// ---------------------------------------------------------------------------------------
// Retention and downsampling planning
// ---------------------------------------------------------------------------------------

/// Rows with `timestamp` strictly below this are past retention (a row exactly at the
/// cutoff is kept).
pub fn retention_cutoff(now: i64, retention_days: u32) -> i64 {
    now.saturating_sub(i64::from(retention_days) * 86_400)
}

/// How a bucket's values become one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Arithmetic mean (RTTs, rates).
    Mean,
    /// Most frequent value (states); ties go to the smallest value (the original leaves
    /// ties arbitrary; we make them deterministic).
    Mode,
}

/// Metrics downsampled with [`Aggregate::Mode`]: averaging zone codes would invent zones.
pub const MODE_METRICS: [&str; 2] = [STATE, STEERING_ENABLED];

impl Aggregate {
    /// The method for a metric name.
    pub fn for_metric(name: &str) -> Aggregate {
        if MODE_METRICS.contains(&name) { Aggregate::Mode } else { Aggregate::Mean }
    }

    /// Aggregates `values`; `None` when empty.
    pub fn apply(self, values: &[f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        Some(match self {
            Aggregate::Mean => mean(values),
            Aggregate::Mode => {
                let mut sorted = values.to_vec();
                sorted.sort_by(f64::total_cmp);
                let (mut best, mut best_n) = (sorted[0], 0usize);
                let mut i = 0;
                while i < sorted.len() {
                    let run = sorted[i..].iter().take_while(|v| v.total_cmp(&sorted[i]).is_eq()).count();
                    if run > best_n {
                        (best, best_n) = (sorted[i], run);
                    }
                    i += run;
                }
                best
            }
        })
    }
}

/// Mean with Neumaier-compensated summation, so it matches Python's exact
/// `statistics.mean` to the last bit in all but pathological inputs.
pub fn mean(values: &[f64]) -> f64 {
    let (mut sum, mut comp) = (0.0f64, 0.0f64);
    for &v in values {
        let t = sum + v;
        comp += if sum.abs() >= v.abs() { (sum - t) + v } else { (v - t) + sum };
        sum = t;
    }
    (sum + comp) / values.len() as f64
}

/// One downsampling tier step (INTERFACES.md §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownsampleStep {
    /// Source tier.
    pub from: Granularity,
    /// Destination tier.
    pub to: Granularity,
    /// Source rows older than this (seconds) are due.
    pub min_age_secs: i64,
    /// Bucket width (seconds); buckets are aligned to multiples of it since the epoch.
    pub bucket_secs: i64,
}

/// raw → 1m after 1 h, 1m → 5m after 1 d, 5m → 1h after 7 d.
pub const DOWNSAMPLE_STEPS: [DownsampleStep; 3] = [
    DownsampleStep { from: Granularity::Raw, to: Granularity::Minute, min_age_secs: 3600, bucket_secs: 60 },
    DownsampleStep {
        from: Granularity::Minute,
        to: Granularity::FiveMinutes,
        min_age_secs: 86_400,
        bucket_secs: 300,
    },
    DownsampleStep {
        from: Granularity::FiveMinutes,
        to: Granularity::Hour,
        min_age_secs: 7 * 86_400,
        bucket_secs: 3600,
    },
];

impl DownsampleStep {
    /// The original's result key, `raw->1m`.
    pub fn label(&self) -> String {
        format!("{}->{}", self.from, self.to)
    }

    /// The source-age cutoff: rows older than `now − min_age`.
    pub fn cutoff(&self, now: i64) -> i64 {
        now.saturating_sub(self.min_age_secs)
    }

    /// Source rows with `timestamp` below this lie in complete buckets that end at or
    /// before the cutoff, and only they are aggregated and deleted. Rows between this and
    /// the cutoff wait for their bucket to complete (the original deleted them unaggregated).
    pub fn complete_before(&self, now: i64) -> i64 {
        self.cutoff(now).div_euclid(self.bucket_secs) * self.bucket_secs
    }

    /// `[start, end)` of the bucket holding `ts`.
    pub fn bucket_of(&self, ts: i64) -> (i64, i64) {
        let start = ts.div_euclid(self.bucket_secs) * self.bucket_secs;
        (start, start + self.bucket_secs)
    }

    /// The aggregated row for one series' bucket: timestamp = bucket start, labels NULL.
    /// `None` for an empty bucket.
    pub fn bucket_row(
        &self,
        wan: &str,
        metric: &str,
        bucket_start: i64,
        values: &[f64],
    ) -> Option<MetricRow> {
        let value = Aggregate::for_metric(metric).apply(values)?;
        Some(MetricRow {
            timestamp: bucket_start,
            wan_name: wan.to_string(),
            metric_name: Cow::Owned(metric.to_string()),
            value,
            labels: None,
            granularity: self.to,
        })
    }
}

// ---------------------------------------------------------------------------------------
// wanctl-history output
// ---------------------------------------------------------------------------------------

/// Summary statistics of one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean.
    pub avg: f64,
    /// 50th percentile.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// The original's `compute_summary`: `None` for no values; one value → every field equals
/// it; otherwise percentiles by [`quantile_exclusive`].
pub fn summary_stats(values: &[f64]) -> Option<Stats> {
    let first = *values.first()?;
    if values.len() == 1 {
        return Some(Stats { min: first, max: first, avg: first, p50: first, p95: first, p99: first });
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(Stats {
        min: sorted[0],
        max: sorted[sorted.len() - 1],
        avg: mean(values),
        p50: quantile_exclusive(&sorted, 50),
        p95: quantile_exclusive(&sorted, 95),
        p99: quantile_exclusive(&sorted, 99),
    })
}

/// Python's `statistics.quantiles(data, n=100, method="exclusive")[i − 1]` on sorted data
/// (n ≥ 2): m = n + 1, j = ⌊i·m/100⌋ clamped to [1, n−1], δ = i·m − 100·j,
/// value = (x[j−1]·(100−δ) + x[j]·δ) / 100, in that floating-point order.
pub fn quantile_exclusive(sorted: &[f64], i: u32) -> f64 {
    let n = sorted.len();
    if n < 2 {
        return sorted.first().copied().unwrap_or(f64::NAN);
    }
    let m = n as i64 + 1;
    let i = i64::from(i);
    let j = (i * m / 100).clamp(1, n as i64 - 1);
    let delta = i * m - j * 100;
    let j = j as usize;
    (sorted[j - 1] * (100 - delta) as f64 + sorted[j] * delta as f64) / 100.0
}

/// Display name of a zone code in the state distribution.
pub fn state_name(code: i64) -> String {
    match code {
        0 => "GREEN".into(),
        1 => "YELLOW".into(),
        2 => "SOFT_RED".into(),
        3 => "RED".into(),
        n => format!("STATE_{n}"),
    }
}

/// `--summary`: per metric name (sorted), a blank line, `<name> (<n> samples)`, 40 dashes,
/// then either the state distribution (`  GREEN: 12.5%`; names containing "state" whose
/// values are all integers 0–10) or min/max/avg/p50/p95/p99. No final newline (the caller
/// prints it).
pub fn format_summary(rows: &[MetricRow]) -> String {
    let mut groups: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in rows {
        groups.entry(&r.metric_name).or_default().push(r.value);
    }
    let mut lines: Vec<String> = Vec::new();
    for (name, values) in &groups {
        lines.push(format!("\n{name} ({} samples)", values.len()));
        lines.push("-".repeat(40));
        let is_state = name.to_lowercase().contains("state")
            && values.iter().all(|v| v.fract() == 0.0 && (0.0..=10.0).contains(v));
        if is_state {
            let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
            for v in values {
                *counts.entry(*v as i64).or_default() += 1;
            }
            for (code, count) in counts {
                let pct = (count as f64 / values.len() as f64) * 100.0;
                lines.push(format!("  {}: {pct:.1}%", state_name(code)));
            }
        } else if let Some(s) = summary_stats(values) {
            for (label, v) in [
                ("min", s.min),
                ("max", s.max),
                ("avg", s.avg),
                ("p50", s.p50),
                ("p95", s.p95),
                ("p99", s.p99),
            ] {
                lines.push(format!("  {label}: {}", format_value(v)));
            }
        }
    }
    lines.join("\n")
}

/// `--json`: `json.dumps(rows, indent=2)` with integer timestamps.
pub fn format_cli_json(rows: &[MetricRow]) -> String {
    PyJson::List(
        rows.iter()
            .map(|r| {
                PyJson::object(&[
                    ("timestamp", PyJson::Int(r.timestamp)),
                    ("wan_name", PyJson::str(&r.wan_name)),
                    ("metric_name", PyJson::str(&r.metric_name)),
                    ("value", PyJson::Float(r.value)),
                    ("labels", r.labels.as_deref().map_or(PyJson::Null, PyJson::str)),
                    ("granularity", PyJson::str(r.granularity.as_str())),
                ])
            })
            .collect(),
    )
    .pretty()
}

/// The CSV header line.
pub const CSV_HEADER: &str = "timestamp,wan_name,metric_name,value,labels,granularity";

/// `--csv`: RFC 4180 quoting where needed, ISO UTC timestamps, values as Python `repr`,
/// NULL labels as an empty field; `\n` line ends, final newline included.
pub fn format_csv(rows: &[MetricRow]) -> String {
    let mut out = String::with_capacity(64 * (rows.len() + 1));
    out.push_str(CSV_HEADER);
    out.push('\n');
    for r in rows {
        let fields = [
            iso_utc(r.timestamp),
            csv_field(&r.wan_name),
            csv_field(&r.metric_name),
            py_float_repr(r.value),
            r.labels.as_deref().map(csv_field).unwrap_or_default(),
            r.granularity.as_str().to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// The default table (`Timestamp`, `Metric`, `Value`; `-v` adds `WAN`, `Labels`,
/// `Granularity`), as `tabulate(rows, headers, tablefmt="simple")`; timestamps local at
/// `utc_offset_secs`. No final newline.
pub fn format_table(rows: &[MetricRow], verbose: bool, utc_offset_secs: i64) -> String {
    let headers: &[&str] = if verbose {
        &["Timestamp", "Metric", "Value", "WAN", "Labels", "Granularity"]
    } else {
        &["Timestamp", "Metric", "Value"]
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut c = vec![
                local_datetime(r.timestamp, utc_offset_secs),
                r.metric_name.to_string(),
                format_value(r.value),
            ];
            if verbose {
                c.push(r.wan_name.clone());
                c.push(r.labels.clone().unwrap_or_default());
                c.push(r.granularity.as_str().to_string());
            }
            c
        })
        .collect();
    tabulate_simple(headers, &cells)
}

/// The subset of `tabulate` 0.9 the CLI uses: `tablefmt="simple"`, number parsing on,
/// `floatfmt="g"`, numbers aligned on the decimal point, strings left-aligned, columns at
/// least header width + 2, two spaces between columns, trailing blanks stripped.
pub fn tabulate_simple(headers: &[&str], rows: &[Vec<String>]) -> String {
    #[derive(Clone, Copy, PartialEq, PartialOrd)]
    enum Kind {
        Int,
        Float,
        Text,
    }
    let ncols = headers.len();
    let mut columns: Vec<Vec<String>> = vec![Vec::with_capacity(rows.len()); ncols];
    for row in rows {
        for (c, col) in columns.iter_mut().enumerate() {
            col.push(row.get(c).cloned().unwrap_or_default());
        }
    }
    let mut out_cols: Vec<(Vec<String>, bool)> = Vec::with_capacity(ncols);
    for (c, col) in columns.into_iter().enumerate() {
        let kind = col
            .iter()
            .map(|s| {
                if tab_is_int(s) {
                    Kind::Int
                } else if tab_is_number(s) {
                    Kind::Float
                } else {
                    Kind::Text
                }
            })
            .fold(None::<Kind>, |acc, k| Some(acc.map_or(k, |a| if k > a { k } else { a })))
            .unwrap_or(Kind::Text);
        let numeric = kind != Kind::Text;
        let col: Vec<String> = match kind {
            Kind::Float => col
                .iter()
                .map(|s| py_format_g(s.trim().replace('_', "").parse().unwrap_or(f64::NAN)))
                .collect(),
            Kind::Int => col,
            Kind::Text => col.iter().map(|s| s.trim().to_string()).collect(),
        };
        let col = if numeric {
            let decimals: Vec<i64> = col.iter().map(|s| tab_afterpoint(s)).collect();
            let max_dec = decimals.iter().copied().max().unwrap_or(-1);
            col.iter()
                .zip(&decimals)
                .map(|(s, d)| format!("{s}{}", " ".repeat((max_dec - d) as usize)))
                .collect()
        } else {
            col
        };
        let min_width = headers[c].chars().count() + 2;
        let width = col.iter().map(|s| s.chars().count()).max().unwrap_or(0).max(min_width);
        let padded = col.iter().map(|s| pad(s, width, numeric)).collect();
        out_cols.push((padded, numeric));
    }
    let widths: Vec<usize> = out_cols
        .iter()
        .zip(headers)
        .map(|((col, _), h)| col.first().map_or(h.chars().count() + 2, |s| s.chars().count()))
        .collect();
    let mut lines = Vec::with_capacity(rows.len() + 2);
    let header_cells: Vec<String> = headers
        .iter()
        .zip(&out_cols)
        .zip(&widths)
        .map(|((h, (_, numeric)), w)| pad(h, *w, *numeric))
        .collect();
    lines.push(header_cells.join("  ").trim_end().to_string());
    lines.push(widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  ").trim_end().to_string());
    for r in 0..rows.len() {
        let cells: Vec<&str> = out_cols.iter().map(|(col, _)| col[r].as_str()).collect();
        lines.push(cells.join("  ").trim_end().to_string());
    }
    lines.join("\n")
}

fn pad(s: &str, width: usize, left: bool) -> String {
    let fill = " ".repeat(width.saturating_sub(s.chars().count()));
    if left { format!("{fill}{s}") } else { format!("{s}{fill}") }
}

/// tabulate's `_isint`: Python `int(s)` succeeds.
fn tab_is_int(s: &str) -> bool {
    py_int(s).is_some()
}

/// tabulate's `_isnumber`: Python `float(s)` succeeds, and infinities/NaN only when spelled
/// `inf`, `-inf` or `nan`.
fn tab_is_number(s: &str) -> bool {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    if ["inf", "-inf", "nan"].contains(&lower.as_str()) {
        return true;
    }
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    if body.is_empty()
        || !body.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-' | b'_'))
    {
        return false;
    }
    matches!(body.replace('_', "").parse::<f64>(), Ok(v) if v.is_finite())
}

/// tabulate's `_afterpoint`: digits after the decimal point (or after `e`), −1 for an
/// integer or non-number.
fn tab_afterpoint(s: &str) -> i64 {
    if !tab_is_number(s) || tab_is_int(s) {
        return -1;
    }
    let pos = s.rfind('.').or_else(|| s.to_ascii_lowercase().rfind('e'));
    pos.map_or(-1, |p| (s.chars().count() - p - 1) as i64)
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
