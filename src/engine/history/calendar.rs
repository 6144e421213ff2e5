//! The civil calendar, timestamps (ISO 8601, naive local) and durations. Pure.

#![allow(unused_imports)] // each part takes the shared imports of `engine::history`
use super::*;

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

pub(super) fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub(super) fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

pub(super) fn split_datetime(ts: i64) -> (i64, u32, u32, i64, i64, i64) {
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
pub(super) fn fixed_digits(s: &[u8], n: usize) -> Option<u32> {
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
pub(super) fn parse_clock(s: &str) -> Option<(u32, u32, u32, u32)> {
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
pub(super) fn parse_utc_offset(s: &str) -> Option<i64> {
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

pub(super) fn parse_strptime(text: &str) -> Option<CivilTime> {
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
