//! Health: the read-only [`Snapshot`] of a running daemon, the original's `/health` JSON
//! rendered from it, and the tiny HTTP/1.1 request parser and response writer of the
//! built-in responder. Pure: strings in and out, no sockets.
//!
//! The JSON keeps the original's v1.8 fields in the original order with Python's
//! `json.dumps(indent=2)` layout and number style (`940.0`, `3`), so existing monitors and
//! scripts keep working; wanctl's additions follow the original fields.

use std::fmt::Write as _;

/// One reflector's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ReflectorSnapshot {
    /// Address.
    pub host: String,
    /// Smoothed RTT (ms).
    pub srtt_ms: Option<f64>,
    /// Last RTT (ms).
    pub last_rtt_ms: Option<f64>,
    /// Recent loss (0..1).
    pub loss: f64,
    /// Requests sent.
    pub sent: u64,
    /// Replies.
    pub received: u64,
    /// Pool state (`active`, `warming`, `standby`, `benched`).
    pub state: &'static str,
    /// Its own baseline (ms).
    pub baseline_ms: Option<f64>,
    /// Smoothed delta above the other active reflectors' median (ms).
    pub offset_ms: Option<f64>,
    /// Smoothed jitter (ms).
    pub jitter_ms: Option<f64>,
}

/// The queue-counter signal of one WAN (`engine::load`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadSnapshot {
    /// `off`, `starting`, `ok`, `queue_missing`, `read_failed`, `stale`.
    pub status: &'static str,
    /// `load` (counters in use) or `rtt` (the RTT-only law).
    pub law: &'static str,
    /// Achieved download rate over the last counter interval (Mbit/s), if known.
    pub download_mbps: Option<f64>,
    /// Achieved upload rate (Mbit/s), if known.
    pub upload_mbps: Option<f64>,
    /// Reads started.
    pub reads: u64,
    /// Reads that failed or lacked a queue.
    pub failures: u64,
    /// Counter resets seen.
    pub resets: u64,
}

/// One WAN.
#[derive(Debug, Clone, PartialEq)]
pub struct WanSnapshot {
    /// Queue counters and the control law in use (new).
    pub load: LoadSnapshot,
    /// Healthy active reflectors and the quorum (new).
    pub quorum: (usize, usize),
    /// `wan_name`.
    pub name: String,
    /// Baseline (ms).
    pub baseline_rtt_ms: f64,
    /// Load EWMA (ms).
    pub load_rtt_ms: f64,
    /// Last measured RTT (ms).
    pub last_rtt_ms: Option<f64>,
    /// Download rate (Mbit/s) and streak-derived state string.
    pub download: (f64, &'static str),
    /// Upload rate (Mbit/s) and state string.
    pub upload: (f64, &'static str),
    /// Download / upload zone of the last cycle (Prometheus codes 1–4).
    pub zone_codes: (u8, u8),
    /// Router reachable.
    pub is_reachable: bool,
    /// Consecutive router failures.
    pub router_failures: u32,
    /// Last failure kind string.
    pub last_failure_type: Option<&'static str>,
    /// Monotonic seconds of the last failure.
    pub last_failure_time: Option<f64>,
    /// Current outage length (s).
    pub outage_duration_seconds: Option<f64>,
    /// Transport in use (`rest`/`ssh`), if known.
    pub transport: Option<&'static str>,
    /// Router writes confirmed.
    pub router_updates: u64,
    /// Router writes that failed.
    pub router_write_failures: u64,
    /// Increases held back by the write budget.
    pub rate_limit_events: u64,
    /// Cycles that entered ICMP-failure handling.
    pub ping_failures: u64,
    /// Cycles run.
    pub cycles: u64,
    /// Reflectors.
    pub reflectors: Vec<ReflectorSnapshot>,
    /// Router request latency (submit to result).
    pub router_latency: crate::engine::stats::Histogram,
}

/// The whole daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Seconds since start.
    pub uptime_seconds: f64,
    /// Package version.
    pub version: &'static str,
    /// Consecutive failed cycles.
    pub consecutive_failures: u32,
    /// WANs in config order.
    pub wans: Vec<WanSnapshot>,
    /// Process id.
    pub pid: u32,
    /// Tick lateness quantiles and max (µs).
    pub tick_late_us: (u64, u64, u64),
    /// Ticks run and missed.
    pub ticks: (u64, u64),
    /// Tick lateness histogram.
    pub lateness: crate::engine::stats::Histogram,
}

impl Snapshot {
    /// Every WAN's router reachable (true with no WANs, as the original).
    pub fn router_reachable(&self) -> bool {
        self.wans.iter().all(|w| w.is_reachable)
    }

    /// v1.8 rule: fewer than `FAILURE_LIMIT` (3) failures and every router reachable.
    pub fn is_healthy(&self) -> bool {
        self.consecutive_failures < crate::engine::daemon::FAILURE_LIMIT && self.router_reachable()
    }
}

/// Python's `repr` of a float (`json.dumps` writes floats this way): one implementation,
/// `engine::history::py_float_repr`, so health, metrics and history agree (`1e-05`, not
/// `0.00001`).
pub fn py_float(v: f64) -> String {
    crate::engine::history::py_float_repr(v)
}

/// Python's `round(v, n)` for display (half away from zero is close enough at these
/// precisions; values are measurements, not money).
pub fn round_to(v: f64, decimals: i32) -> f64 {
    let p = 10f64.powi(decimals);
    (v * p).round() / p
}

/// A pretty JSON writer with Python's `indent=2` layout.
#[derive(Debug, Default)]
pub struct Json {
    out: String,
    depth: usize,
    first: Vec<bool>,
}

impl Json {
    fn newline(&mut self) {
        self.out.push('\n');
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn item(&mut self) {
        if let Some(first) = self.first.last_mut() {
            if !*first {
                self.out.push(',');
            }
            *first = false;
            self.newline();
        }
    }

    /// `{`
    pub fn open(&mut self) -> &mut Self {
        self.out.push('{');
        self.depth += 1;
        self.first.push(true);
        self
    }

    /// `}`
    pub fn close(&mut self) -> &mut Self {
        self.depth -= 1;
        let empty = self.first.pop().unwrap_or(true);
        if !empty {
            self.newline();
        }
        self.out.push('}');
        self
    }

    /// `[`
    pub fn open_list(&mut self) -> &mut Self {
        self.out.push('[');
        self.depth += 1;
        self.first.push(true);
        self
    }

    /// `]`
    pub fn close_list(&mut self) -> &mut Self {
        self.depth -= 1;
        let empty = self.first.pop().unwrap_or(true);
        if !empty {
            self.newline();
        }
        self.out.push(']');
        self
    }

    /// `"key": ` (object member start).
    pub fn key(&mut self, k: &str) -> &mut Self {
        self.item();
        self.string_raw(k);
        self.out.push_str(": ");
        self
    }

    /// A list element start.
    pub fn elem(&mut self) -> &mut Self {
        self.item();
        self
    }

    fn string_raw(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                c if (c as u32) < 0x20 || !c.is_ascii() => {
                    let mut b = [0u16; 2];
                    for u in c.encode_utf16(&mut b) {
                        let _ = write!(self.out, "\\u{u:04x}");
                    }
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    /// A string value.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.string_raw(s);
        self
    }

    /// A float value, Python style.
    pub fn float(&mut self, v: f64) -> &mut Self {
        self.out.push_str(&py_float(v));
        self
    }

    /// An integer value.
    pub fn int(&mut self, v: i128) -> &mut Self {
        let _ = write!(self.out, "{v}");
        self
    }

    /// `true` / `false`.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.out.push_str(if v { "true" } else { "false" });
        self
    }

    /// `null`.
    pub fn null(&mut self) -> &mut Self {
        self.out.push_str("null");
        self
    }

    /// An optional float (`null` when absent).
    pub fn opt_float(&mut self, v: Option<f64>) -> &mut Self {
        match v {
            Some(v) => self.float(v),
            None => self.null(),
        }
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// The `/health` body: the original's v1.8 fields in order, then wanctl's additions.
pub fn render_health(s: &Snapshot) -> String {
    let mut j = Json::default();
    j.open();
    j.key("status").str(if s.is_healthy() { "healthy" } else { "degraded" });
    j.key("uptime_seconds").float(round_to(s.uptime_seconds, 1));
    j.key("version").str(s.version);
    j.key("consecutive_failures").int(i128::from(s.consecutive_failures));
    j.key("wan_count").int(s.wans.len() as i128);
    j.key("wans").open_list();
    for w in &s.wans {
        j.elem().open();
        j.key("name").str(&w.name);
        j.key("baseline_rtt_ms").float(round_to(w.baseline_rtt_ms, 2));
        j.key("load_rtt_ms").float(round_to(w.load_rtt_ms, 2));
        j.key("download").open();
        j.key("current_rate_mbps").float(round_to(w.download.0, 1));
        j.key("state").str(w.download.1);
        j.close();
        j.key("upload").open();
        j.key("current_rate_mbps").float(round_to(w.upload.0, 1));
        j.key("state").str(w.upload.1);
        j.close();
        j.key("router_connectivity").open();
        j.key("is_reachable").bool(w.is_reachable);
        j.key("consecutive_failures").int(i128::from(w.router_failures));
        j.key("last_failure_type");
        match w.last_failure_type {
            Some(t) => j.str(t),
            None => j.null(),
        };
        j.key("last_failure_time").opt_float(w.last_failure_time);
        j.key("outage_duration_seconds").opt_float(w.outage_duration_seconds.map(|d| round_to(d, 1)));
        j.close();
        // wanctl additions.
        j.key("transport");
        match w.transport {
            Some(t) => j.str(t),
            None => j.null(),
        };
        j.key("last_rtt_ms").opt_float(w.last_rtt_ms.map(|v| round_to(v, 2)));
        j.key("router_updates").int(i128::from(w.router_updates));
        j.key("router_write_failures").int(i128::from(w.router_write_failures));
        j.key("reflector_quorum").open();
        j.key("healthy").int(w.quorum.0 as i128);
        j.key("needed").int(w.quorum.1 as i128);
        j.key("ok").bool(w.quorum.0 >= w.quorum.1);
        j.close();
        j.key("load_control").open();
        j.key("status").str(w.load.status);
        j.key("law").str(w.load.law);
        j.key("download_achieved_mbps").opt_float(w.load.download_mbps.map(|v| round_to(v, 2)));
        j.key("upload_achieved_mbps").opt_float(w.load.upload_mbps.map(|v| round_to(v, 2)));
        j.key("reads").int(i128::from(w.load.reads));
        j.key("read_failures").int(i128::from(w.load.failures));
        j.key("counter_resets").int(i128::from(w.load.resets));
        j.close();
        j.key("reflectors").open_list();
        for r in &w.reflectors {
            j.elem().open();
            j.key("host").str(&r.host);
            j.key("rtt_ms").opt_float(r.srtt_ms.map(|v| round_to(v, 2)));
            j.key("last_rtt_ms").opt_float(r.last_rtt_ms.map(|v| round_to(v, 2)));
            j.key("loss").float(round_to(r.loss, 4));
            j.key("sent").int(i128::from(r.sent));
            j.key("received").int(i128::from(r.received));
            j.key("state").str(r.state);
            j.key("baseline_ms").opt_float(r.baseline_ms.map(|v| round_to(v, 2)));
            j.key("offset_ms").opt_float(r.offset_ms.map(|v| round_to(v, 2)));
            j.key("jitter_ms").opt_float(r.jitter_ms.map(|v| round_to(v, 2)));
            j.close();
        }
        j.close_list();
        j.close();
    }
    j.close_list();
    j.key("router_reachable").bool(s.router_reachable());
    j.key("pid").int(i128::from(s.pid));
    j.key("tick_lateness_us").open();
    j.key("p50").int(i128::from(s.tick_late_us.0));
    j.key("p99").int(i128::from(s.tick_late_us.1));
    j.key("max").int(i128::from(s.tick_late_us.2));
    j.close();
    j.key("ticks").int(i128::from(s.ticks.0));
    j.key("missed_ticks").int(i128::from(s.ticks.1));
    j.close();
    j.finish()
}

/// A parsed request line (the only part the responder needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string (after `?`), if any.
    pub query: Option<String>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Head longer than [`MAX_REQUEST_HEAD`].
    TooLarge,
    /// Not an HTTP/1.x request line.
    Malformed,
}

/// Longest request head accepted.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Parses a request head from what has arrived: `Ok(None)` until the blank line.
pub fn parse_request(buf: &[u8]) -> Result<Option<HttpRequest>, HttpError> {
    let end =
        buf.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| buf.windows(2).position(|w| w == b"\n\n"));
    let Some(end) = end else {
        return if buf.len() > MAX_REQUEST_HEAD { Err(HttpError::TooLarge) } else { Ok(None) };
    };
    if end > MAX_REQUEST_HEAD {
        return Err(HttpError::TooLarge);
    }
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| HttpError::Malformed)?;
    let line = head.lines().next().ok_or(HttpError::Malformed)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed);
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') || method.is_empty() {
        return Err(HttpError::Malformed);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    Ok(Some(HttpRequest { method: method.to_string(), path, query }))
}

/// A complete HTTP/1.1 response that closes the connection.
pub fn response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// `{"error": "<text>"}` with the given status.
pub fn json_error(status: u16, text: &str) -> Vec<u8> {
    let mut j = Json::default();
    j.open();
    j.key("error").str(text);
    j.close();
    response(status, "application/json", j.finish().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Snapshot {
        Snapshot {
            uptime_seconds: 12.345,
            version: "0.1.0",
            consecutive_failures: 0,
            wans: vec![WanSnapshot {
                quorum: (3, 2),
                load: LoadSnapshot {
                    status: "ok",
                    law: "load",
                    download_mbps: Some(12.5),
                    ..Default::default()
                },
                name: "wan1".into(),
                baseline_rtt_ms: 24.831,
                load_rtt_ms: 25.409,
                last_rtt_ms: Some(25.0),
                download: (940.0, "GREEN"),
                upload: (38.0, "GREEN"),
                zone_codes: (1, 1),
                is_reachable: true,
                router_failures: 0,
                last_failure_type: None,
                last_failure_time: None,
                outage_duration_seconds: None,
                transport: Some("rest"),
                router_updates: 3,
                router_write_failures: 0,
                rate_limit_events: 0,
                ping_failures: 0,
                cycles: 100,
                reflectors: vec![],
                router_latency: Default::default(),
            }],
            pid: 42,
            tick_late_us: (250, 500, 900),
            ticks: (100, 0),
            lateness: Default::default(),
        }
    }

    #[test]
    fn health_json_has_the_original_fields_in_order_and_python_numbers() {
        let text = render_health(&sample());
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["status"], "healthy");
        assert_eq!(v["wans"][0]["download"]["current_rate_mbps"], 940.0);
        assert!(text.contains("\"current_rate_mbps\": 940.0"), "{text}");
        assert!(text.contains("\"baseline_rtt_ms\": 24.83"), "{text}");
        let order = [
            "\"status\"",
            "\"uptime_seconds\"",
            "\"version\"",
            "\"consecutive_failures\"",
            "\"wan_count\"",
            "\"wans\"",
            "\"router_reachable\"",
        ];
        let pos: Vec<usize> = order.iter().map(|k| text.find(k).expect(k)).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(text.starts_with("{\n  \"status\": \"healthy\",\n  \"uptime_seconds\": 12.3,"), "{text}");
    }

    #[test]
    fn degraded_when_a_router_is_unreachable_or_three_failures() {
        let mut s = sample();
        s.wans[0].is_reachable = false;
        assert!(!s.is_healthy());
        let mut s = sample();
        s.consecutive_failures = 3;
        assert!(render_health(&s).contains("\"status\": \"degraded\""));
    }

    #[test]
    fn request_parsing_and_limits() {
        assert_eq!(parse_request(b"GET /health HTTP/1.1\r\nHost: x"), Ok(None));
        let r =
            parse_request(b"GET /metrics/history?range=1h HTTP/1.1\r\n\r\n").expect("ok").expect("complete");
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.query.as_deref()),
            ("GET", "/metrics/history", Some("range=1h"))
        );
        assert_eq!(parse_request(b"garbage\r\n\r\n"), Err(HttpError::Malformed));
        assert_eq!(parse_request(&vec![b'a'; MAX_REQUEST_HEAD + 1]), Err(HttpError::TooLarge));
    }

    #[test]
    fn python_floats() {
        assert_eq!(py_float(940.0), "940.0");
        assert_eq!(py_float(0.1), "0.1");
        assert_eq!(py_float(25.41), "25.41");
        // Issue 17: health printed 0.00001 where Python (and history) print 1e-05.
        assert_eq!(py_float(0.00001), "1e-05");
        assert_eq!(py_float(1e16), "1e+16");
        assert_eq!(py_float(f64::NAN), "NaN");
    }
}
