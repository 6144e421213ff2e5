//! `wanctl history` output: summary statistics, JSON, CSV and the tabulate "simple" table.

#![allow(unused_imports)] // each part takes the shared imports of `engine::history`
use super::*;

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

pub(super) fn csv_field(s: &str) -> String {
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

pub(super) fn pad(s: &str, width: usize, left: bool) -> String {
    let fill = " ".repeat(width.saturating_sub(s.chars().count()));
    if left { format!("{fill}{s}") } else { format!("{s}{fill}") }
}

/// tabulate's `_isint`: Python `int(s)` succeeds.
pub(super) fn tab_is_int(s: &str) -> bool {
    py_int(s).is_some()
}

/// tabulate's `_isnumber`: Python `float(s)` succeeds, and infinities/NaN only when spelled
/// `inf`, `-inf` or `nan`.
pub(super) fn tab_is_number(s: &str) -> bool {
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
pub(super) fn tab_afterpoint(s: &str) -> i64 {
    if !tab_is_number(s) || tab_is_int(s) {
        return -1;
    }
    let pos = s.rfind('.').or_else(|| s.to_ascii_lowercase().rfind('e'));
    pos.map_or(-1, |p| (s.chars().count() - p - 1) as i64)
}
