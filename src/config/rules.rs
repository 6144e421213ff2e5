//! Security validators for strings that end up in RouterOS commands, ssh arguments, URLs or
//! file names. Pure: no I/O. Addresses are parsed by hand, since the standard library's
//! network module is off limits in pure code.
//!
//! Each check returns `Err(problem)` with the text that follows the key path in a
//! [`ConfigError`](super::ConfigError). Every rule is anchored at both ends of the string
//! (the original's Python `$` also matched before a trailing newline, so `"wan1\n"` passed).
//! The rules are ASCII-only on purpose: look-alike letters, zero-width, bidi and other
//! invisible characters are rejected because they make a name that reads right and
//! matches nothing (or something else) on the router.

use super::raw::quote;

/// `wan_name`, `queues.*`, steering `cake_queues.*` and `topology.primary_wan`: 1–64 of
/// `A-Z a-z 0-9 _ . -` (the original's identifier rule).
pub fn check_identifier(s: &str) -> Result<(), String> {
    check_charset(
        s,
        64,
        |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'),
        "A-Z, a-z, 0-9, \"_\", \".\" and \"-\"",
    )
}

/// `mangle_rule.comment`: 1–128 of `A-Z a-z 0-9 _ . - :` and space (the original's rule).
/// The comment is matched with `comment~"..."` on the router, so quotes, `$`, brackets and
/// backslashes must never get through.
pub fn check_comment(s: &str) -> Result<(), String> {
    check_charset(
        s,
        128,
        |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':' | ' '),
        "A-Z, a-z, 0-9, \"_\", \".\", \"-\", \":\" and spaces",
    )
}

/// `router.user`: 1–64 of `A-Z a-z 0-9 _ . - @ +`, not starting with `-`. The user goes
/// into an ssh argument and into HTTP Basic auth, where a `:` would split it; an allow-list
/// rather than a deny-list keeps quotes, `;`, `$`, backticks, `|`, `&`, `<>`, `/`,
/// whitespace and control characters out by construction.
pub fn check_router_user(s: &str) -> Result<(), String> {
    check_charset(
        s,
        64,
        |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@' | '+'),
        "A-Z, a-z, 0-9, \"_\", \".\", \"-\", \"@\" and \"+\"",
    )?;
    if s.starts_with('-') {
        return Err(format!("must not start with \"-\" (it would read as an ssh option), got {}", quote(s)));
    }
    Ok(())
}

/// Hosts: `router.host`, `ping_hosts` entries, steering `measurement.ping_host`,
/// `fallback_checks.gateway_ip`, TCP targets and bind addresses. An IPv4 or IPv6 literal or
/// an RFC 1123 hostname (dot-separated labels of 1–63 letters, digits and inner hyphens),
/// at most 256 characters (the original's ping-host rule). `256.1.1.1` passes as a
/// hostname, as in the original.
pub fn check_host(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    let n = s.chars().count();
    if n > 256 {
        return Err(format!("is too long ({n} characters, at most 256)"));
    }
    if is_ipv4_literal(s) || is_ipv6_literal(s) || is_hostname(s) {
        Ok(())
    } else {
        Err(format!(
            "must be an IPv4 or IPv6 address or a hostname (dot-separated labels of letters, digits and inner hyphens), got {}",
            quote(s)
        ))
    }
}

/// File paths (logs, lock, state, database, key, CA bundle): not empty, no control
/// characters (a NUL or newline in a path is never intended).
pub fn check_path(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!("must not contain control characters ({c:?}), got {}", quote(s)));
    }
    Ok(())
}

/// `router.ssh_key`: a path that cannot be taken for an ssh option.
pub fn check_ssh_key(s: &str) -> Result<(), String> {
    check_path(s)?;
    if s.starts_with('-') {
        return Err(format!("must not start with \"-\" (it would read as an ssh option), got {}", quote(s)));
    }
    Ok(())
}

fn check_charset(s: &str, max: usize, allowed: fn(char) -> bool, what: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    let n = s.chars().count();
    if n > max {
        return Err(format!("is too long ({n} characters, at most {max})"));
    }
    if let Some(bad) = s.chars().find(|&c| !allowed(c)) {
        return Err(format!("may contain only {what}, got {} ({bad:?} is not allowed)", quote(s)));
    }
    Ok(())
}

/// Dotted-quad IPv4: four decimal octets 0–255 without leading zeros (as Python's
/// `ipaddress` since 3.9.5).
pub fn is_ipv4_literal(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4 && parts.iter().all(|p| is_octet(p))
}

fn is_octet(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 3
        && p.bytes().all(|b| b.is_ascii_digit())
        && (p == "0" || !p.starts_with('0'))
        && p.parse::<u16>().is_ok_and(|v| v <= 255)
}

/// IPv6 text form (RFC 4291 section 2.2): eight groups of 1–4 hex digits, at most one `::`
/// standing for one or more zero groups, an optional dotted-quad tail. Zone ids (`%eth0`)
/// are not accepted.
pub fn is_ipv6_literal(s: &str) -> bool {
    if !s.contains(':') || s.len() > 45 {
        return false;
    }
    let (sides, compressed): (Vec<&str>, bool) = match s.find("::") {
        Some(i) => {
            let rest = &s[i + 2..];
            if rest.contains("::") {
                return false;
            }
            (vec![&s[..i], rest], true)
        }
        None => (vec![s], false),
    };
    let mut groups = 0usize;
    let last_side = sides.len() - 1;
    for (side_index, side) in sides.iter().enumerate() {
        if side.is_empty() {
            continue;
        }
        let parts: Vec<&str> = side.split(':').collect();
        let last = parts.len() - 1;
        for (i, p) in parts.iter().enumerate() {
            if side_index == last_side && i == last && p.contains('.') {
                if !is_ipv4_literal(p) {
                    return false;
                }
                groups += 2;
            } else if !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_hexdigit()) {
                groups += 1;
            } else {
                return false;
            }
        }
    }
    if compressed { groups < 8 } else { groups == 8 }
}

/// RFC 1123 hostname: dot-separated labels of 1–63 ASCII letters, digits and hyphens, not
/// starting or ending with a hyphen. No trailing dot.
pub fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}
