//! `GET /metrics/history`: query-string parsing with the original's 400 texts, and the JSON
//! response.

#![allow(unused_imports)] // each part takes the shared imports of `engine::history`
use super::*;

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
pub(super) fn py_int(s: &str) -> Option<i128> {
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

pub(super) fn unquote_plus(s: &str) -> String {
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
