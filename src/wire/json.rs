//! Lenient JSON front end for RouterOS REST replies. Pure: no I/O, no clock.
//!
//! RouterOS does not escape control characters inside strings (a DHCP host name with ESC
//! arrives as a raw 0x1B byte, ROUTEROS.md §1.6, terraform-provider-routeros issue #165),
//! and it passes non-UTF-8 bytes of comments through unchanged. `serde_json` rejects both,
//! so before parsing, raw bytes below 0x20 inside strings become `\u00XX` escapes (what the
//! Terraform provider's `EscapeChars` does) and invalid UTF-8 becomes U+FFFD. Structure is
//! untouched: both rewrites only happen inside string literals or on non-ASCII bytes, and
//! JSON's structural characters are ASCII.
//!
//! Out of scope: everything else about the document (the `routeros` codec reads values).

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

/// The body is not JSON even after the lenient rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonError {
    /// 1-based line of the first defect (0 when unknown).
    pub line: usize,
    /// 1-based column of the first defect (0 when unknown).
    pub column: usize,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON at line {} column {}", self.line, self.column)
    }
}

impl std::error::Error for JsonError {}

/// Parses `body` as JSON, tolerating raw control characters in strings and invalid UTF-8.
pub fn parse_lenient(body: &[u8]) -> Result<Value, JsonError> {
    let text = String::from_utf8_lossy(body);
    let text = escape_raw_controls(&text);
    serde_json::from_str(&text).map_err(|e| JsonError { line: e.line(), column: e.column() })
}

/// Rewrites raw control characters inside string literals as `\u00XX`. Outside strings
/// they are left alone (whitespace there is legal; anything else stays an error).
pub fn escape_raw_controls(text: &str) -> Cow<'_, str> {
    if !text.bytes().any(|b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) && !has_control_in_string(text)
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if !in_string {
            in_string = c == '"';
            out.push(c);
        } else if escaped {
            escaped = false;
            out.push(c);
        } else if c == '\\' {
            escaped = true;
            out.push(c);
        } else if c == '"' {
            in_string = false;
            out.push(c);
        } else if (c as u32) < 0x20 {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether a tab, CR or LF sits inside a string literal (the cheap pre-check above lets
/// those through because they are legal between tokens).
fn has_control_in_string(text: &str) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    for b in text.bytes() {
        if !in_string {
            in_string = b == b'"';
        } else if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            in_string = false;
        } else if b < 0x20 {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_controls_inside_strings_are_escaped() {
        let cases: &[(&str, &[u8], Option<&str>)] = &[
            ("esc_in_host_name", b"[{\"host-name\":\"pc\x1bname\"}]", Some("pc\u{1b}name")),
            ("tab_in_string", b"[{\"host-name\":\"a\tb\"}]", Some("a\tb")),
            ("newline_between_tokens", b"[\n{\"host-name\":\"ab\"}\n]", Some("ab")),
            ("escaped_quote_kept", b"[{\"host-name\":\"a\\\"\x01\"}]", Some("a\"\u{1}")),
            ("latin1_byte", b"[{\"host-name\":\"caf\xe9\"}]", Some("caf\u{fffd}")),
            ("control_outside_string", b"[\x01]", None),
            ("html", b"<html></html>", None),
        ];
        for (name, body, want) in cases {
            let got = parse_lenient(body).ok().map(|v| v[0]["host-name"].as_str().map(str::to_owned));
            assert_eq!(got.flatten().as_deref(), *want, "{name}");
        }
    }

    #[test]
    fn clean_input_is_borrowed() {
        assert!(matches!(escape_raw_controls("{\"a\":\"b\"}\n"), Cow::Borrowed(_)));
    }
}
