//! YAML text to a key-tracking walker. Pure: no I/O, no clock, no environment.
//!
//! In scope: YAML syntax (via `serde_yaml`, the crate's only user, so a swap touches this
//! file only), the shape of the document (a mapping at the top), typed reads of scalars with
//! the original's type rules, inclusive range checks, and unknown-key detection.
//! Out of scope: what the keys mean (see `validate`).
//!
//! A [`Map`] remembers every key it was asked about, whether or not the key was present:
//! that list is the schema of the mapping, so when the walk of a mapping is
//! [`finish`](Map::finish)ed every key that nobody asked about becomes a warning, with a
//! "did you mean" suggestion when a known key is a small edit away.
//!
//! Type rules (CONFIG.md section 1.4): float and number keys accept integers; integer keys
//! reject floats (`10.0` too); booleans are rejected for numeric keys (the original accepted
//! them as 0/1, an intentional tightening); a present key whose value is YAML null counts as
//! missing for required keys and as absent (default) for optional ones.

use serde_yaml::{Mapping, Value};

use super::{ConfigError, ConfigWarning};

/// The problem text of an absent (or null) required key; longer variants start with it.
pub(crate) const MISSING: &str = "required key is missing";

/// Errors and warnings collected during one walk.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Fatal problems, in walk order.
    pub(crate) errors: Vec<ConfigError>,
    /// Non-fatal findings, in walk order.
    pub(crate) warnings: Vec<ConfigWarning>,
}

impl Report {
    /// Record a problem at `path`.
    pub(crate) fn error(&mut self, path: &str, problem: impl Into<String>) {
        self.errors.push(ConfigError { path: path.to_string(), problem: problem.into() });
    }

    /// Record a warning at `path`.
    pub(crate) fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(ConfigWarning { path: path.to_string(), message: message.into() });
    }
}

/// The largest config file parsed (the examples are about 5 KB).
pub const MAX_CONFIG_BYTES: usize = 256 * 1024;
/// The deepest nesting of flow collections (`{`, `[`) accepted.
pub const MAX_FLOW_NESTING: usize = 32;

/// Refuses texts whose parse could take long, before parsing (issue 18: 64 KB of nested
/// `{` took serde_yaml 11 s, quadratic in the depth, and SIGHUP parses on the control
/// loop). Quoted scalars and comments are skipped when counting the depth.
fn check_shape(text: &str) -> Result<(), ConfigError> {
    let err = |problem: String| ConfigError { path: String::new(), problem };
    if text.len() > MAX_CONFIG_BYTES {
        return Err(err(format!(
            "the file is {} bytes; at most {MAX_CONFIG_BYTES} are accepted",
            text.len()
        )));
    }
    let (mut depth, mut quote, mut comment, mut prev) = (0usize, None::<char>, false, '\n');
    let mut escaped = false;
    for c in text.chars() {
        match (quote, c) {
            _ if comment => comment = c != '\n',
            (Some('"'), _) if escaped => escaped = false,
            (Some('"'), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            // A quote opens a quoted scalar only where a scalar can start (not in `don't`).
            (None, '"' | '\'') if prev.is_whitespace() || matches!(prev, ':' | ',' | '[' | '{' | '-') => {
                quote = Some(c)
            }
            (None, '#') if prev.is_whitespace() => comment = true,
            (None, '{' | '[') => {
                depth += 1;
                if depth > MAX_FLOW_NESTING {
                    return Err(err(format!("collections are nested more than {MAX_FLOW_NESTING} deep")));
                }
            }
            (None, '}' | ']') => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = c;
    }
    Ok(())
}

/// Parse YAML text into its top-level mapping.
///
/// Errors: a syntax error (with line and column), more than one document, an empty document
/// (the original's loader got `None` and failed), or a top level that is not a mapping.
pub(crate) fn parse_document(text: &str) -> Result<Mapping, ConfigError> {
    check_shape(text)?;
    let mut value: Value = serde_yaml::from_str(text).map_err(|e| syntax_error(&e))?;
    // PyYAML's safe loader resolves `<<: *anchor` merge keys; serde_yaml leaves them as keys.
    value.apply_merge().map_err(|e| syntax_error(&e))?;
    match value {
        Value::Mapping(m) => Ok(m),
        Value::Null => Err(ConfigError {
            path: String::new(),
            problem: "the file is empty (expected a mapping of configuration keys)".into(),
        }),
        other => Err(ConfigError {
            path: String::new(),
            problem: format!(
                "the top level must be a mapping of configuration keys, got {}",
                describe(&other)
            ),
        }),
    }
}

/// `YAML syntax error at line L, column C: <msg>` without serde_yaml's own location suffix.
fn syntax_error(e: &serde_yaml::Error) -> ConfigError {
    let full = e.to_string();
    let problem = match e.location() {
        Some(loc) => {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            let msg = match full.find(&suffix) {
                Some(i) => format!("{}{}", &full[..i], &full[i + suffix.len()..]),
                None => full,
            };
            format!("YAML syntax error at line {}, column {}: {}", loc.line(), loc.column(), msg)
        }
        None => format!("YAML syntax error: {full}"),
    };
    ConfigError { path: String::new(), problem }
}

/// How a value is described in "expected X, got Y" messages: its type and, for scalars,
/// the value itself (strings quoted and escaped so control characters are visible).
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => {
            if n.is_f64() {
                format!("a number ({})", fmt_yaml_number(v))
            } else {
                format!("an integer ({n})")
            }
        }
        Value::String(s) => format!("a string ({})", quote(s)),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("a value with the YAML tag {}", t.tag),
    }
}

/// Keys whose values are secrets: a message names their type, never their value (issue
/// 18: `password: 73918264` was echoed by check-config and into the journal).
const SECRET_KEYS: [&str; 5] = ["password", "passphrase", "secret", "token", "api_key"];

/// [`describe`] for the value at `path`: the type only when the key is a secret.
pub(crate) fn describe_at(path: &str, v: &Value) -> String {
    let key = path.rsplit('.').next().unwrap_or(path);
    if !SECRET_KEYS.contains(&key) {
        return describe(v);
    }
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a value with a YAML tag",
    }
    .into()
}

/// A string in double quotes, escaped, cut after 60 characters.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut:?}…")
    } else {
        format!("{s:?}")
    }
}

/// A YAML number as written: integers plainly, floats with a decimal point (`10.0`).
pub(crate) fn fmt_yaml_number(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => n.as_f64().map(fmt_float).unwrap_or_else(|| n.to_string()),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// A float the way Python's `repr` prints it for ordinary magnitudes: `10.0`, `0.85`.
pub(crate) fn fmt_float(f: f64) -> String {
    if f.is_nan() {
        ".nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { ".inf".into() } else { "-.inf".into() }
    } else if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// A float without a trailing `.0` when it is whole: bounds of number keys (`1` to `10000`).
pub(crate) fn fmt_plain(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e16 { format!("{f:.0}") } else { fmt_float(f) }
}

/// How a numeric key is typed and how its bounds print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Num {
    /// The original's "float": ints are coerced; bounds print as `1.0`.
    Float,
    /// The original's "number": int or float; whole bounds print as `1`.
    Number,
}

/// Inclusive bounds of a numeric key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Range {
    lo: f64,
    hi: f64,
    /// Only a lower bound matters to the user; `hi` just keeps the value in its type.
    open: bool,
}

impl Range {
    /// `lo ≤ v ≤ hi`: "must be between lo and hi".
    pub(crate) const fn between(lo: f64, hi: f64) -> Range {
        Range { lo, hi, open: false }
    }

    /// `lo ≤ v`, capped at `cap` so the value fits its integer type: "must be at least lo".
    pub(crate) const fn at_least(lo: f64, cap: f64) -> Range {
        Range { lo, hi: cap, open: true }
    }

    /// `Err("must be between …, got …")` when `v` is outside.
    fn check(self, v: f64, fmt: fn(f64) -> String, got: &str) -> Result<(), String> {
        if v >= self.lo && v <= self.hi {
            Ok(())
        } else if !self.open {
            Err(format!("must be between {} and {}, got {got}", fmt(self.lo), fmt(self.hi)))
        } else if v < self.lo {
            Err(format!("must be at least {}, got {got}", fmt(self.lo)))
        } else {
            Err(format!("must be at most {}, got {got}", fmt(self.hi)))
        }
    }
}

/// A key looked up in a [`Map`]: its dotted path and its value (`None` when absent or null).
#[derive(Debug, Clone)]
pub(crate) struct Field<'a> {
    /// Dotted path of the key.
    pub(crate) path: String,
    /// The value; `None` for an absent key or YAML null.
    pub(crate) value: Option<&'a Value>,
    /// The parent was missing or malformed (already reported): don't report children.
    quiet: bool,
}

impl<'a> Field<'a> {
    /// The value, or a "required key is missing" error.
    pub(crate) fn required(&self, r: &mut Report) -> Option<&'a Value> {
        if self.value.is_none() && !self.quiet {
            r.error(&self.path, MISSING);
        }
        self.value
    }

    /// The value as a number of kind `kind` in `range` (an error otherwise).
    pub(crate) fn number(&self, r: &mut Report, kind: Num, range: Range) -> Option<f64> {
        let v = self.value?;
        let Some(f) = (match v {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }) else {
            r.error(&self.path, format!("expected a number, got {}", describe_at(&self.path, v)));
            return None;
        };
        if !f.is_finite() {
            r.error(&self.path, format!("must be a finite number, got {}", fmt_yaml_number(v)));
            return None;
        }
        let fmt = match kind {
            Num::Float => fmt_float,
            Num::Number => fmt_plain,
        };
        match range.check(f, fmt, &fmt_yaml_number(v)) {
            Ok(()) => Some(f),
            Err(problem) => {
                r.error(&self.path, problem);
                None
            }
        }
    }

    /// The value as an integer in `range` (floats such as `10.0` are rejected).
    pub(crate) fn integer(&self, r: &mut Report, range: Range) -> Option<i64> {
        let v = self.value?;
        let i = match v {
            // A u64 beyond i64 is out of every range; saturate so the range check says so.
            Value::Number(n) if !n.is_f64() => n.as_i64().or(Some(i64::MAX)),
            _ => None,
        };
        let Some(i) = i else {
            r.error(&self.path, format!("expected an integer, got {}", describe_at(&self.path, v)));
            return None;
        };
        match range.check(i as f64, fmt_plain, &fmt_yaml_number(v)) {
            Ok(()) => Some(i),
            Err(problem) => {
                r.error(&self.path, problem);
                None
            }
        }
    }

    /// The value as a boolean. Besides YAML 1.2 `true`/`false`, the YAML 1.1 words PyYAML
    /// reads as booleans (`yes`/`no`/`on`/`off`) are accepted so old files keep loading.
    pub(crate) fn boolean(&self, r: &mut Report) -> Option<bool> {
        let v = self.value?;
        let b = match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) => match s.as_str() {
                "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
                "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
                _ => None,
            },
            _ => None,
        };
        if b.is_none() {
            r.error(
                &self.path,
                format!("expected a boolean (true or false), got {}", describe_at(&self.path, v)),
            );
        }
        b
    }

    /// The value as a string (numbers and booleans are not converted).
    pub(crate) fn string(&self, r: &mut Report) -> Option<&'a str> {
        let v = self.value?;
        match v {
            Value::String(s) => Some(s.as_str()),
            _ => {
                r.error(&self.path, format!("expected a string, got {}", describe_at(&self.path, v)));
                None
            }
        }
    }

    /// The value as a list.
    pub(crate) fn list(&self, r: &mut Report) -> Option<&'a [Value]> {
        let v = self.value?;
        match v {
            Value::Sequence(s) => Some(s.as_slice()),
            _ => {
                r.error(&self.path, format!("expected a list, got {}", describe_at(&self.path, v)));
                None
            }
        }
    }

    /// The value as a mapping to walk. Absent → an empty map (defaults apply); wrong type →
    /// an error and a quiet map (its required keys are not reported again).
    pub(crate) fn map(&self, r: &mut Report) -> Map<'a> {
        match self.value {
            Some(Value::Mapping(m)) => Map::new(self.path.clone(), Some(m), self.quiet),
            Some(v) => {
                r.error(&self.path, format!("expected a mapping, got {}", describe_at(&self.path, v)));
                Map::new(self.path.clone(), None, true)
            }
            None => Map::new(self.path.clone(), None, self.quiet),
        }
    }

    /// Like [`map`](Self::map) for a required block: absent → "required key is missing" and
    /// a quiet map, so the block's own keys are not listed as missing one by one.
    pub(crate) fn required_map(&self, r: &mut Report) -> Map<'a> {
        if self.value.is_none() {
            if !self.quiet {
                r.error(&self.path, MISSING);
            }
            return Map::new(self.path.clone(), None, true);
        }
        self.map(r)
    }
}

/// A YAML mapping being walked: remembers the keys asked for, to report the others.
#[derive(Debug)]
pub(crate) struct Map<'a> {
    path: String,
    entries: Option<&'a Mapping>,
    quiet: bool,
    known: Vec<&'static str>,
}

impl<'a> Map<'a> {
    fn new(path: String, entries: Option<&'a Mapping>, quiet: bool) -> Map<'a> {
        Map { path, entries, quiet, known: Vec::new() }
    }

    /// The document root.
    pub(crate) fn root(m: &'a Mapping) -> Map<'a> {
        Map::new(String::new(), Some(m), false)
    }

    /// Dotted path of a child key.
    pub(crate) fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_string() } else { format!("{}.{key}", self.path) }
    }

    /// Report `key` as missing with a longer explanation (`problem` starts with
    /// [`MISSING`]); marks it known; silent inside a missing or malformed block.
    pub(crate) fn missing(&mut self, r: &mut Report, key: &'static str, problem: &str) {
        self.mark(key);
        if !self.quiet {
            r.error(&self.child_path(key), problem);
        }
    }

    /// Whether `key` is present with a non-null value (does not mark it known).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.raw(key).is_some_and(|v| !v.is_null())
    }

    fn raw(&self, key: &str) -> Option<&'a Value> {
        self.entries?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
    }

    fn mark(&mut self, key: &'static str) {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
    }

    /// Look `key` up and mark it known. Null reads as absent.
    pub(crate) fn get(&mut self, key: &'static str) -> Field<'a> {
        self.mark(key);
        Field { path: self.child_path(key), value: self.raw(key).filter(|v| !v.is_null()), quiet: self.quiet }
    }

    /// Whether `key` is present with YAML null as its value (marks it known).
    pub(crate) fn is_null(&mut self, key: &'static str) -> bool {
        self.mark(key);
        self.raw(key).is_some_and(Value::is_null)
    }

    /// Keys that are part of the schema but deliberately not read.
    pub(crate) fn ignore(&mut self, keys: &[&'static str]) {
        for k in keys {
            self.mark(k);
        }
    }

    // Typed shorthands: read, check and report in one call.

    /// A required number in `range`.
    pub(crate) fn req_num(
        &mut self,
        r: &mut Report,
        key: &'static str,
        kind: Num,
        range: Range,
    ) -> Option<f64> {
        let f = self.get(key);
        f.required(r)?;
        f.number(r, kind, range)
    }

    /// An optional number in `range`, `default` when absent; `None` only when invalid.
    pub(crate) fn opt_num(
        &mut self,
        r: &mut Report,
        key: &'static str,
        kind: Num,
        range: Range,
        default: f64,
    ) -> Option<f64> {
        let f = self.get(key);
        if f.value.is_none() {
            return Some(default);
        }
        f.number(r, kind, range)
    }

    /// A required integer in `range`.
    pub(crate) fn req_int(&mut self, r: &mut Report, key: &'static str, range: Range) -> Option<i64> {
        let f = self.get(key);
        f.required(r)?;
        f.integer(r, range)
    }

    /// An optional integer in `range`, `default` when absent.
    pub(crate) fn opt_int(
        &mut self,
        r: &mut Report,
        key: &'static str,
        range: Range,
        default: i64,
    ) -> Option<i64> {
        let f = self.get(key);
        if f.value.is_none() {
            return Some(default);
        }
        f.integer(r, range)
    }

    /// A required boolean.
    pub(crate) fn req_bool(&mut self, r: &mut Report, key: &'static str) -> Option<bool> {
        let f = self.get(key);
        f.required(r)?;
        f.boolean(r)
    }

    /// An optional boolean, `default` when absent.
    pub(crate) fn opt_bool(&mut self, r: &mut Report, key: &'static str, default: bool) -> Option<bool> {
        let f = self.get(key);
        if f.value.is_none() {
            return Some(default);
        }
        f.boolean(r)
    }

    /// A required string.
    pub(crate) fn req_str(&mut self, r: &mut Report, key: &'static str) -> Option<&'a str> {
        let f = self.get(key);
        f.required(r)?;
        f.string(r)
    }

    /// An optional string: `Some(None)` when absent, `None` when invalid.
    pub(crate) fn opt_str(&mut self, r: &mut Report, key: &'static str) -> Option<Option<&'a str>> {
        let f = self.get(key);
        if f.value.is_none() {
            return Some(None);
        }
        f.string(r).map(Some)
    }

    /// Warn about every key of this mapping that nobody asked for.
    pub(crate) fn finish(self, r: &mut Report) {
        let Some(entries) = self.entries else { return };
        for (k, _) in entries {
            let (name, shown) = match k {
                Value::String(s) => (s.as_str(), s.clone()),
                other => ("", fmt_key(other)),
            };
            if !name.is_empty() && self.known.contains(&name) {
                continue;
            }
            let message = match suggest(name, &self.known) {
                Some(s) => {
                    // A typo of a required key also shows up next to the "missing" error,
                    // because warnings are not shown when loading fails.
                    let target = self.child_path(s);
                    if let Some(e) =
                        r.errors.iter_mut().find(|e| e.path == target && e.problem.starts_with(MISSING))
                    {
                        e.problem.push_str(&format!("; is the unknown key \"{shown}\" a typo for it?"));
                    }
                    format!("unknown key (did you mean \"{s}\"?)")
                }
                None => "unknown key (ignored)".to_string(),
            };
            r.warn(&self.child_path(&shown), message);
        }
    }
}

/// A non-string mapping key as the user wrote it.
fn fmt_key(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        Value::Number(_) => fmt_yaml_number(v),
        Value::Null => "~".into(),
        _ => "<complex key>".into(),
    }
}

/// The closest known key, if it is close enough to be a plausible typo: at most two edits
/// (a swap of neighbours counts as one) and fewer than half the candidate's length, so
/// `host` is not offered for `port`. Comparison ignores ASCII case.
pub(crate) fn suggest(key: &str, known: &[&'static str]) -> Option<&'static str> {
    if key.is_empty() {
        return None;
    }
    let lower = key.to_ascii_lowercase();
    let mut best: Option<(usize, &'static str)> = None;
    for &cand in known {
        let d = edit_distance(&lower, &cand.to_ascii_lowercase());
        if d <= 2 && d * 2 < cand.chars().count() && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of
/// adjacent characters each cost one.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1).min(d[i * w + j - 1] + 1).min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// Test support: `text` with the value at dotted `path` replaced by the YAML `value` (or
/// removed when `value` is `None`), creating mappings on the way. Lives here because this
/// file is the crate's only serde_yaml user.
#[cfg(test)]
pub(crate) fn edit(text: &str, path: &str, value: Option<&str>) -> String {
    fn set(node: &mut Value, keys: &[&str], value: Option<Value>) {
        let Some((first, rest)) = keys.split_first() else { return };
        if !node.is_mapping() {
            *node = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(m) = node else { return };
        let key = Value::String((*first).to_string());
        if rest.is_empty() {
            match value {
                Some(v) => {
                    m.insert(key, v);
                }
                None => {
                    m.remove(&key);
                }
            }
        } else {
            let child = m.entry(key).or_insert(Value::Null);
            set(child, rest, value);
        }
    }
    let mut doc: Value = serde_yaml::from_str(text).expect("test base is valid YAML");
    let value = value.map(|v| serde_yaml::from_str::<Value>(v).expect("test value is valid YAML"));
    let keys: Vec<&str> = path.split('.').collect();
    set(&mut doc, &keys, value);
    serde_yaml::to_string(&doc).expect("serialise")
}
