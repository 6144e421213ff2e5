//! The steering state file (STEERING.md §7): encoded and decoded, compatible both ways with
//! the original's files. Pure: bytes in and out; the shell does the locking, the atomic
//! replace, the `.backup` copy and the `.corrupt` handling.
//!
//! Format: one compact JSON object (`json.dump(..., separators=(",", ":"))`, as the
//! original's `atomic_write_json`), keys in the original schema's order:
//! `current_state, bad_count, good_count, baseline_rtt, history_rtt, history_delta,
//! transitions, last_transition_time, rtt_delta_ewma, queue_ewma, cake_drops_history,
//! queue_depth_history, cake_state_history, red_count, congestion_state, cake_read_failures`.
//!
//! Decoding follows the original's `StateSchema.validate_state`: every known field is
//! coerced to its default's type (an integer field accepts `2.0` and `"2"`), a field that
//! cannot be coerced falls back to its default with a warning, unknown fields are dropped.
//! Deliberate differences, each a fix of a documented quirk:
//! * `baseline_rtt` and `last_transition_time` are restored (the original nulled them on
//!   every load because their default is `null`); the engine re-checks the baseline bounds;
//! * every history is bounded on load **and** on a cold start (the original left the lists
//!   unbounded until the next restart when no file existed);
//! * list elements of the wrong type are skipped instead of crashing a later cycle.
//!
//! A missing or non-string `current_state` decodes as the empty string; the engine restores
//! that as the GOOD state (the field's default), and normalises legacy names.

use std::collections::VecDeque;
use std::fmt::Write as _;

use serde_json::Value;

use crate::engine::history::py_float_repr;

/// `cake_state_history` keeps the last 10 states (the original's fixed bound).
pub const CAKE_STATE_HISTORY_LEN: usize = 10;

/// One entry of `transitions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRecord {
    /// Local wall-clock ISO-8601 time of the transition (`datetime.now().isoformat()`).
    pub timestamp: String,
    /// State left.
    pub from: String,
    /// State entered.
    pub to: String,
    /// `bad_count` when the transition happened (legacy mode's enable counter).
    pub bad_count: u32,
    /// `good_count` when the transition happened.
    pub good_count: u32,
}

/// The persisted steering state. Field meanings as STEERING.md §7.
#[derive(Debug, Clone, PartialEq)]
pub struct SteeringState {
    /// `<PRIMARY>_GOOD` (steering off) or `<PRIMARY>_DEGRADED` (steering on); legacy names
    /// are accepted on load and normalised by the engine.
    pub current_state: String,
    /// Legacy (RTT-only) mode: consecutive degraded samples.
    pub bad_count: u32,
    /// Consecutive recovered (GREEN) samples while DEGRADED.
    pub good_count: u32,
    /// Last accepted autorate baseline (ms).
    pub baseline_rtt: Option<f64>,
    /// Measured RTTs (ms), oldest first, bounded by `history_size`.
    pub history_rtt: VecDeque<f64>,
    /// RTT − baseline (ms, ≥ 0), bounded by `history_size`.
    pub history_delta: VecDeque<f64>,
    /// Confirmed transitions, oldest first, bounded by `history_size`.
    pub transitions: VecDeque<TransitionRecord>,
    /// ISO timestamp of the last transition.
    pub last_transition_time: Option<String>,
    /// EWMA of the RTT delta (CAKE-aware mode).
    pub rtt_delta_ewma: f64,
    /// EWMA of the queue depth (stored, not used by the assessment, as the original).
    pub queue_ewma: f64,
    /// Per-cycle CAKE drop deltas, bounded by `history_size`.
    pub cake_drops_history: VecDeque<u64>,
    /// Per-cycle queued packets, bounded by `history_size`.
    pub queue_depth_history: VecDeque<u64>,
    /// Last 10 congestion assessments (`GREEN`/`YELLOW`/`RED`).
    pub cake_state_history: VecDeque<String>,
    /// CAKE-aware mode: consecutive RED samples while GOOD.
    pub red_count: u32,
    /// Last congestion assessment.
    pub congestion_state: String,
    /// Consecutive failed CAKE reads.
    pub cake_read_failures: u32,
}

impl SteeringState {
    /// The original's defaults with `current_state` set to the configured GOOD name.
    pub fn new(good_state: &str) -> SteeringState {
        SteeringState {
            current_state: good_state.to_string(),
            bad_count: 0,
            good_count: 0,
            baseline_rtt: None,
            history_rtt: VecDeque::new(),
            history_delta: VecDeque::new(),
            transitions: VecDeque::new(),
            last_transition_time: None,
            rtt_delta_ewma: 0.0,
            queue_ewma: 0.0,
            cake_drops_history: VecDeque::new(),
            queue_depth_history: VecDeque::new(),
            cake_state_history: VecDeque::new(),
            red_count: 0,
            congestion_state: "GREEN".to_string(),
            cake_read_failures: 0,
        }
    }

    /// Trims every history to its bound (`history_size`, 10 for `cake_state_history`),
    /// dropping the oldest entries.
    pub fn bound(&mut self, history_size: usize) {
        let n = history_size.max(1);
        trim(&mut self.history_rtt, n);
        trim(&mut self.history_delta, n);
        trim(&mut self.transitions, n);
        trim(&mut self.cake_drops_history, n);
        trim(&mut self.queue_depth_history, n);
        trim(&mut self.cake_state_history, CAKE_STATE_HISTORY_LEN);
    }

    /// Compact JSON in the original's key order.
    pub fn encode(&self) -> Vec<u8> {
        let mut o = String::with_capacity(256 + 24 * self.history_rtt.len() * 2);
        o.push('{');
        key(&mut o, "current_state", true);
        string(&mut o, &self.current_state);
        key(&mut o, "bad_count", false);
        let _ = write!(o, "{}", self.bad_count);
        key(&mut o, "good_count", false);
        let _ = write!(o, "{}", self.good_count);
        key(&mut o, "baseline_rtt", false);
        match self.baseline_rtt {
            Some(v) => float(&mut o, v),
            None => o.push_str("null"),
        }
        key(&mut o, "history_rtt", false);
        list(&mut o, &self.history_rtt, |o, v| float(o, *v));
        key(&mut o, "history_delta", false);
        list(&mut o, &self.history_delta, |o, v| float(o, *v));
        key(&mut o, "transitions", false);
        list(&mut o, &self.transitions, |o, t| {
            o.push('{');
            key(o, "timestamp", true);
            string(o, &t.timestamp);
            key(o, "from", false);
            string(o, &t.from);
            key(o, "to", false);
            string(o, &t.to);
            key(o, "bad_count", false);
            let _ = write!(o, "{}", t.bad_count);
            key(o, "good_count", false);
            let _ = write!(o, "{}", t.good_count);
            o.push('}');
        });
        key(&mut o, "last_transition_time", false);
        match &self.last_transition_time {
            Some(s) => string(&mut o, s),
            None => o.push_str("null"),
        }
        key(&mut o, "rtt_delta_ewma", false);
        float(&mut o, self.rtt_delta_ewma);
        key(&mut o, "queue_ewma", false);
        float(&mut o, self.queue_ewma);
        key(&mut o, "cake_drops_history", false);
        list(&mut o, &self.cake_drops_history, |o, v| {
            let _ = write!(o, "{v}");
        });
        key(&mut o, "queue_depth_history", false);
        list(&mut o, &self.queue_depth_history, |o, v| {
            let _ = write!(o, "{v}");
        });
        key(&mut o, "cake_state_history", false);
        list(&mut o, &self.cake_state_history, |o, s| string(o, s));
        key(&mut o, "red_count", false);
        let _ = write!(o, "{}", self.red_count);
        key(&mut o, "congestion_state", false);
        string(&mut o, &self.congestion_state);
        key(&mut o, "cake_read_failures", false);
        let _ = write!(o, "{}", self.cake_read_failures);
        o.push('}');
        o.into_bytes()
    }

    /// Parses a state file and bounds its histories. `Err` only when the bytes are not a
    /// JSON object (the shell then tries `.backup` and keeps a `.corrupt` copy); field
    /// problems fall back to defaults (see [`SteeringState::decode_with_warnings`]).
    pub fn decode(bytes: &[u8], history_size: usize) -> Result<SteeringState, String> {
        Self::decode_with_warnings(bytes, history_size).map(|(s, _)| s)
    }

    /// As [`SteeringState::decode`], also returning one warning per field that fell back
    /// to its default (the original logged `State field '<f>' validation failed ...`).
    pub fn decode_with_warnings(
        bytes: &[u8],
        history_size: usize,
    ) -> Result<(SteeringState, Vec<String>), String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let Value::Object(map) = v else {
            return Err("state file is not a JSON object".into());
        };
        let mut s = SteeringState::new("");
        let mut warnings = Vec::new();
        let mut field = |name: &str, ok: bool| {
            if !ok {
                warnings.push(format!("state field '{name}' has an unusable value, using the default"));
            }
        };
        for (name, value) in &map {
            if value.is_null() {
                // `None` passes the original's validation and later means "default".
                continue;
            }
            match name.as_str() {
                "current_state" => field(name, set(&mut s.current_state, as_string(value))),
                "bad_count" => field(name, set(&mut s.bad_count, as_u32(value))),
                "good_count" => field(name, set(&mut s.good_count, as_u32(value))),
                "red_count" => field(name, set(&mut s.red_count, as_u32(value))),
                "cake_read_failures" => field(name, set(&mut s.cake_read_failures, as_u32(value))),
                "baseline_rtt" => {
                    let v = as_f64(value).filter(|v| *v > 0.0);
                    field(name, v.is_some());
                    s.baseline_rtt = v;
                }
                "last_transition_time" => {
                    let v = as_string(value);
                    field(name, v.is_some());
                    s.last_transition_time = v;
                }
                "rtt_delta_ewma" => field(name, set(&mut s.rtt_delta_ewma, as_f64(value))),
                "queue_ewma" => field(name, set(&mut s.queue_ewma, as_f64(value))),
                "congestion_state" => field(name, set(&mut s.congestion_state, as_string(value))),
                "history_rtt" => field(name, set(&mut s.history_rtt, as_list(value, as_f64))),
                "history_delta" => field(name, set(&mut s.history_delta, as_list(value, as_f64))),
                "cake_drops_history" => field(name, set(&mut s.cake_drops_history, as_list(value, as_count))),
                "queue_depth_history" => {
                    field(name, set(&mut s.queue_depth_history, as_list(value, as_count)))
                }
                "cake_state_history" => {
                    field(name, set(&mut s.cake_state_history, as_list(value, as_string)))
                }
                "transitions" => field(name, set(&mut s.transitions, as_list(value, as_transition))),
                _ => {} // Unknown fields are dropped, as the original.
            }
        }
        s.bound(history_size);
        Ok((s, warnings))
    }
}

fn trim<T>(d: &mut VecDeque<T>, n: usize) {
    while d.len() > n {
        d.pop_front();
    }
}

fn set<T>(slot: &mut T, v: Option<T>) -> bool {
    match v {
        Some(v) => {
            *slot = v;
            true
        }
        None => false,
    }
}

/// Python `int(x)` for the shapes a JSON file can hold, clamped to the counter range.
fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            f.is_finite().then(|| f.trunc().clamp(i64::MIN as f64, i64::MAX as f64) as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

fn as_u32(v: &Value) -> Option<u32> {
    as_i64(v).map(|i| i.clamp(0, i64::from(u32::MAX)) as u32)
}

fn as_count(v: &Value) -> Option<u64> {
    as_i64(v).map(|i| i.max(0) as u64)
}

/// Python `float(x)`, finite values only.
fn as_f64(v: &Value) -> Option<f64> {
    let f = match v {
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    f.is_finite().then_some(f)
}

fn as_string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn as_list<T>(v: &Value, each: fn(&Value) -> Option<T>) -> Option<VecDeque<T>> {
    v.as_array().map(|items| items.iter().filter_map(each).collect())
}

fn as_transition(v: &Value) -> Option<TransitionRecord> {
    let o = v.as_object()?;
    let text = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let count = |k: &str| o.get(k).and_then(as_u32).unwrap_or(0);
    Some(TransitionRecord {
        timestamp: text("timestamp"),
        from: text("from"),
        to: text("to"),
        bad_count: count("bad_count"),
        good_count: count("good_count"),
    })
}

fn key(o: &mut String, k: &str, first: bool) {
    if !first {
        o.push(',');
    }
    string(o, k);
    o.push(':');
}

fn float(o: &mut String, v: f64) {
    // Never written non-finite (Python would write `NaN`, which strict readers reject).
    o.push_str(&py_float_repr(if v.is_finite() { v } else { 0.0 }));
}

fn list<T>(o: &mut String, items: &VecDeque<T>, each: impl Fn(&mut String, &T)) {
    o.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        each(o, item);
    }
    o.push(']');
}

/// A JSON string as Python's `json.dumps` writes it (`ensure_ascii=True`).
fn string(o: &mut String, s: &str) {
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '\u{8}' => o.push_str("\\b"),
            '\u{c}' => o.push_str("\\f"),
            c if (c as u32) < 0x20 || !c.is_ascii() => {
                let mut b = [0u16; 2];
                for u in c.encode_utf16(&mut b) {
                    let _ = write!(o, "\\u{u:04x}");
                }
            }
            c => o.push(c),
        }
    }
    o.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file as the original writes it (v1.7 schema, CAKE-aware mode, after one enable).
    const ORIGINAL: &str = r#"{"current_state":"WAN1_DEGRADED","bad_count":0,"good_count":0,"baseline_rtt":24.5,"history_rtt":[25.1,44.0],"history_delta":[0.6,19.5],"transitions":[{"timestamp":"2026-01-26T06:13:10.123456","from":"WAN1_GOOD","to":"WAN1_DEGRADED","bad_count":0,"good_count":0}],"last_transition_time":"2026-01-26T06:13:10.123456","rtt_delta_ewma":16.2,"queue_ewma":58.0,"cake_drops_history":[0,3],"queue_depth_history":[2,80],"cake_state_history":["GREEN","RED"],"red_count":0,"congestion_state":"RED","cake_read_failures":0}"#;

    #[test]
    fn round_trips_the_original_format_byte_for_byte() {
        let s = SteeringState::decode(ORIGINAL.as_bytes(), 50).expect("decodes");
        assert_eq!(s.current_state, "WAN1_DEGRADED");
        assert_eq!(s.baseline_rtt, Some(24.5));
        assert_eq!(s.last_transition_time.as_deref(), Some("2026-01-26T06:13:10.123456"));
        assert_eq!(s.transitions.len(), 1);
        assert_eq!(String::from_utf8(s.encode()).expect("utf8"), ORIGINAL);
    }

    #[test]
    fn python_reads_what_we_write() {
        // The shape Python's json.loads needs: valid JSON, the schema's keys, no NaN.
        let mut s = SteeringState::new("WAN1_GOOD");
        s.history_rtt.extend([25.0, 1e-5]);
        s.rtt_delta_ewma = f64::NAN;
        s.current_state = "Ünïcode\"".into();
        let text = String::from_utf8(s.encode()).expect("utf8");
        assert!(text.is_ascii(), "{text}");
        let v: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["current_state"], "Ünïcode\"");
        assert_eq!(v["rtt_delta_ewma"], 0.0);
        assert!(text.contains("\"history_rtt\":[25.0,1e-05]"), "{text}");
        assert!(text.starts_with("{\"current_state\":"), "{text}");
    }

    #[test]
    fn fields_are_coerced_like_the_originals_schema() {
        type Case = (&'static str, &'static str, fn(&SteeringState) -> bool, bool);
        let cases: &[Case] = &[
            ("int_from_float", r#"{"red_count":2.7}"#, |s| s.red_count == 2, false),
            ("int_from_string", r#"{"good_count":"7"}"#, |s| s.good_count == 7, false),
            ("int_from_bool", r#"{"bad_count":true}"#, |s| s.bad_count == 1, false),
            ("negative_clamped", r#"{"red_count":-3}"#, |s| s.red_count == 0, false),
            ("bad_int_defaults", r#"{"red_count":"x"}"#, |s| s.red_count == 0, true),
            ("float_from_int", r#"{"rtt_delta_ewma":3}"#, |s| s.rtt_delta_ewma == 3.0, false),
            ("list_wrong_type", r#"{"history_rtt":"abc"}"#, |s| s.history_rtt.is_empty(), true),
            (
                "list_bad_elements_skipped",
                r#"{"history_rtt":[1.5,"x",null,2]}"#,
                |s| s.history_rtt == [1.5, 2.0],
                false,
            ),
            ("null_means_default", r#"{"congestion_state":null}"#, |s| s.congestion_state == "GREEN", false),
            ("unknown_dropped", r#"{"spectrum_extra":1}"#, |s| *s == SteeringState::new(""), false),
            ("missing_state_is_empty", r#"{}"#, |s| s.current_state.is_empty(), false),
            ("baseline_restored", r#"{"baseline_rtt":"24.5"}"#, |s| s.baseline_rtt == Some(24.5), false),
            (
                "bad_transition_skipped",
                r#"{"transitions":[1,{"from":"A","to":"B"}]}"#,
                |s| s.transitions.len() == 1 && s.transitions[0].to == "B",
                false,
            ),
        ];
        for (name, text, ok, warns) in cases {
            let (s, w) = SteeringState::decode_with_warnings(text.as_bytes(), 50).expect(name);
            assert!(ok(&s), "{name}: {s:?}");
            assert_eq!(!w.is_empty(), *warns, "{name}: {w:?}");
        }
    }

    #[test]
    fn histories_are_bounded_on_load() {
        let many: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let states: Vec<String> = (0..30).map(|_| "\"GREEN\"".to_string()).collect();
        let text = format!(
            r#"{{"history_rtt":[{0}],"history_delta":[{0}],"cake_drops_history":[{0}],"queue_depth_history":[{0}],"cake_state_history":[{1}]}}"#,
            many.join(","),
            states.join(",")
        );
        let s = SteeringState::decode(text.as_bytes(), 20).expect("decodes");
        assert_eq!(s.history_rtt.len(), 20);
        assert_eq!(s.history_rtt.front(), Some(&80.0), "the newest entries are kept");
        assert_eq!(s.history_delta.len(), 20);
        assert_eq!(s.cake_drops_history.len(), 20);
        assert_eq!(s.queue_depth_history.len(), 20);
        assert_eq!(s.cake_state_history.len(), CAKE_STATE_HISTORY_LEN);
    }

    #[test]
    fn corrupt_files_are_errors() {
        assert!(SteeringState::decode(b"{not json", 10).is_err());
        assert!(SteeringState::decode(b"[1,2]", 10).is_err());
        assert!(SteeringState::decode(b"", 10).is_err());
    }
}
