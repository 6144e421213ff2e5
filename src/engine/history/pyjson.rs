//! Python-compatible number and JSON formatting (`repr()`, `format(x, "g")`, `json.dumps`).

#![allow(unused_imports)] // each part takes the shared imports of `engine::history`
use super::*;

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
pub(super) fn separator(out: &mut String, indent: Option<usize>, level: usize, first: bool) {
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

pub(super) fn closing(out: &mut String, indent: Option<usize>, level: usize) {
    if let Some(n) = indent {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', n * level));
    }
}

/// A JSON string with `ensure_ascii`: everything outside printable ASCII as `\uXXXX`
/// (UTF-16 surrogate pairs above U+FFFF), the usual short escapes otherwise.
pub(super) fn write_py_str(out: &mut String, s: &str) {
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
pub(super) fn sci_parts(s: &str) -> (bool, String, i32) {
    let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
    let negative = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    (negative, digits, exp.parse().unwrap_or(0))
}

/// The shortest digits that read back as `v`, and among those the closest to `v`, ties to
/// even (David Gay's `dtoa` mode 0, which Python uses). Rust's shortest form can pick the
/// other neighbour of an exact tie (`271065914603534.125` → `…4.13` where Python says
/// `…4.12`), so the count comes from it and the digits from correctly rounded formatting.
pub(super) fn shortest_digits(v: f64) -> (bool, String, i32) {
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

pub(super) fn strip_fraction_zeros(s: &str) -> &str {
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
