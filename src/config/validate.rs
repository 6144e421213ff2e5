//! Raw YAML tree to typed config, collecting every problem. Pure: no I/O, no clock; the
//! environment is reached only through the `env` lookup the caller passes (for `${VAR}`
//! passwords).
//!
//! Each block is read by one function that asks for every key of its schema before it
//! gives up on anything, so one pass reports all problems. Keys keep the original's types,
//! inclusive bounds and ordering rules (docs/CONFIGURATION.md); where the original was
//! silent, crashed, or failed only at runtime, the check happens here at load time and is
//! listed in docs/COMPAT.md.

use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::raw::{self, Map, Num, Range, Report, fmt_plain, quote};
use super::rules;
use super::{
    AlertingConfig, AnyConfig, AutorateConfig, ConfidenceConfig, ConfigError, ConfigErrors, DirectionConfig,
    Endpoint, FallbackChecks, FallbackMode, Loaded, Logging, Monitoring, NOMINAL_CYCLE, ProbeBinding, Queues,
    RouterConfig, Scheme, Secret, SteeringConfig, SteeringThresholds, Storage, Thresholds, Transport,
    WanStateConfig, derived_state_path,
};
use crate::units::Bps;

/// The environment lookup used for `${VAR}` password expansion.
type Env<'e> = &'e dyn Fn(&str) -> Option<String>;

/// The only schema version there is (the original's `CURRENT_SCHEMA_VERSION`).
const SCHEMA_VERSION: &str = "1.0";

/// Parse a file of either kind, told apart by its top-level keys: a steering file has
/// `topology` or `mangle_rule`, an autorate file `continuous_monitoring` or `queues`.
pub fn parse(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded<AnyConfig>, ConfigErrors> {
    let root = document(text, file)?;
    match kind_of(&root) {
        Ok(Kind::Autorate) => {
            let loaded = walk(file, &root, |m, r| autorate(m, r, env))?;
            Ok(Loaded { config: AnyConfig::Autorate(Box::new(loaded.config)), warnings: loaded.warnings })
        }
        Ok(Kind::Steering) => {
            let loaded = walk(file, &root, |m, r| steering(m, r, env))?;
            Ok(Loaded { config: AnyConfig::Steering(Box::new(loaded.config)), warnings: loaded.warnings })
        }
        Err(problem) => Err(one_error(file, problem)),
    }
}

/// Parse an autorate (per-WAN) file.
pub fn parse_autorate(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded<AutorateConfig>, ConfigErrors> {
    let root = document(text, file)?;
    if let Ok(Kind::Steering) = kind_of(&root) {
        return Err(one_error(
            file,
            "this is a steering config (it has \"topology\" or \"mangle_rule\"), expected an autorate config",
        ));
    }
    walk(file, &root, |m, r| autorate(m, r, env))
}

/// Parse a steering file.
pub fn parse_steering(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded<SteeringConfig>, ConfigErrors> {
    let root = document(text, file)?;
    if let Ok(Kind::Autorate) = kind_of(&root) {
        return Err(one_error(
            file,
            "this is an autorate config (it has \"continuous_monitoring\" or \"queues\"), expected a steering config",
        ));
    }
    walk(file, &root, |m, r| steering(m, r, env))
}

fn one_error(file: &str, problem: impl Into<String>) -> ConfigErrors {
    ConfigErrors {
        file: file.to_string(),
        errors: vec![ConfigError { path: String::new(), problem: problem.into() }],
    }
}

fn document(text: &str, file: &str) -> Result<Mapping, ConfigErrors> {
    raw::parse_document(text).map_err(|e| ConfigErrors { file: file.to_string(), errors: vec![e] })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Autorate,
    Steering,
}

fn kind_of(root: &Mapping) -> Result<Kind, String> {
    let has = |k: &str| root.iter().any(|(key, _)| key.as_str() == Some(k));
    let steering = has("topology") || has("mangle_rule");
    let autorate = has("continuous_monitoring") || has("queues");
    match (autorate, steering) {
        (true, false) => Ok(Kind::Autorate),
        (false, true) => Ok(Kind::Steering),
        (true, true) => Err("cannot tell the config kind: it has keys of both an autorate config \
             (\"continuous_monitoring\", \"queues\") and a steering config (\"topology\", \"mangle_rule\")"
            .into()),
        (false, false) => Err("cannot tell the config kind: an autorate config has \"continuous_monitoring\" \
             or \"queues\", a steering config has \"topology\" or \"mangle_rule\", and this file has none of them"
            .into()),
    }
}

/// Run one walk over the root and turn the report into the result.
fn walk<T>(
    file: &str,
    root: &Mapping,
    build: impl FnOnce(&mut Map<'_>, &mut Report) -> Option<T>,
) -> Result<Loaded<T>, ConfigErrors> {
    let mut r = Report::default();
    let mut m = Map::root(root);
    let built = build(&mut m, &mut r);
    m.finish(&mut r);
    match built {
        Some(config) if r.errors.is_empty() => Ok(Loaded { config, warnings: r.warnings }),
        _ => {
            if r.errors.is_empty() {
                // Every `None` above comes with an error; this keeps a slip from loading a
                // half-read config.
                r.error("", "invalid configuration");
            }
            Err(ConfigErrors { file: file.to_string(), errors: r.errors })
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shared helpers

/// A required string that must pass `check`.
fn req_checked(
    m: &mut Map<'_>,
    r: &mut Report,
    key: &'static str,
    check: fn(&str) -> Result<(), String>,
) -> Option<String> {
    let path = m.child_path(key);
    let s = m.req_str(r, key)?;
    apply(r, &path, s, check)
}

/// An optional string that must pass `check`; `default` when absent.
fn opt_checked(
    m: &mut Map<'_>,
    r: &mut Report,
    key: &'static str,
    check: fn(&str) -> Result<(), String>,
    default: &str,
) -> Option<String> {
    let path = m.child_path(key);
    match m.opt_str(r, key)? {
        Some(s) => apply(r, &path, s, check),
        None => Some(default.to_string()),
    }
}

fn apply(r: &mut Report, path: &str, s: &str, check: fn(&str) -> Result<(), String>) -> Option<String> {
    match check(s) {
        Ok(()) => Some(s.to_string()),
        Err(problem) => {
            r.error(path, problem);
            None
        }
    }
}

/// An optional string that must be one of `choices`.
fn opt_choice<T: Copy>(
    m: &mut Map<'_>,
    r: &mut Report,
    key: &'static str,
    choices: &[(&str, T)],
    default: T,
) -> Option<T> {
    let path = m.child_path(key);
    let s = m.opt_str(r, key)?;
    let Some(s) = s else { return Some(default) };
    if let Some((_, v)) = choices.iter().find(|(name, _)| *name == s) {
        return Some(*v);
    }
    let names: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    let list = match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    };
    r.error(&path, format!("must be {list}, got {}", quote(s)));
    None
}

fn secs(f: f64) -> Duration {
    Duration::from_secs_f64(f)
}

/// `tau = 0.05 / alpha`, picking among the nanosecond neighbours one for which the engine's
/// `NOMINAL_CYCLE / tau` gives back exactly `alpha`, when there is one (so 0.02 → 2.5 s
/// round-trips bit for bit). When `0.05 / alpha` has no exact nanosecond value (0.015 →
/// 3.333… s) tau is truncated to the nanosecond: about 1e-8 relative at worst.
pub(crate) fn tau_from_alpha(alpha: f64) -> Duration {
    let cycle = NOMINAL_CYCLE.as_secs_f64();
    let base = Duration::from_secs_f64(cycle / alpha);
    let exact = |d: Duration| cycle / d.as_secs_f64() == alpha;
    if exact(base) {
        return base;
    }
    for k in 1..=4u64 {
        let up = base + Duration::from_nanos(k);
        if exact(up) {
            return up;
        }
        if let Some(down) = base.checked_sub(Duration::from_nanos(k)) {
            if exact(down) {
                return down;
            }
        }
    }
    base
}

fn schema_version(m: &mut Map<'_>, r: &mut Report) -> String {
    let f = m.get("schema_version");
    match f.value {
        None => SCHEMA_VERSION.to_string(),
        Some(Value::String(s)) => {
            if s != SCHEMA_VERSION {
                r.warn(
                    &f.path,
                    format!(
                        "schema version {} is not the supported \"1.0\"; read as 1.0 (there is no migration)",
                        quote(s)
                    ),
                );
            }
            s.clone()
        }
        Some(other) => {
            r.warn(
                &f.path,
                format!(
                    "is {} rather than the string \"1.0\"; read as 1.0 (quote it: \"1.0\")",
                    raw::describe(other)
                ),
            );
            match other {
                Value::Number(_) => raw::fmt_yaml_number(other),
                Value::Bool(b) => b.to_string(),
                _ => SCHEMA_VERSION.to_string(),
            }
        }
    }
}

fn wan_name(m: &mut Map<'_>, r: &mut Report) -> Option<String> {
    req_checked(m, r, "wan_name", rules::check_identifier)
}

/// `router.*`, shared by both kinds.
fn router(m: &mut Map<'_>, r: &mut Report, env: Env<'_>) -> Option<RouterConfig> {
    let mut rm = m.get("router").required_map(r);
    let host = req_checked(&mut rm, r, "host", rules::check_host);
    let user = req_checked(&mut rm, r, "user", rules::check_router_user);
    let ssh_key = req_checked(&mut rm, r, "ssh_key", rules::check_ssh_key);
    let transport = opt_choice(
        &mut rm,
        r,
        "transport",
        &[("rest", Transport::Rest), ("ssh", Transport::Ssh)],
        Transport::Ssh,
    );
    let password_path = rm.child_path("password");
    let password =
        rm.opt_str(r, "password").map(|p| expand_password(p.unwrap_or(""), &password_path, env, r));
    let port = rm.opt_int(r, "port", Range::between(1.0, 65535.0), 443).map(|p| p as u16);
    let scheme_given = rm.has("scheme");
    let scheme = opt_choice(
        &mut rm,
        r,
        "scheme",
        &[("http", Some(Scheme::Http)), ("https", Some(Scheme::Https))],
        None,
    );
    let verify_ssl = rm.opt_bool(r, "verify_ssl", false);
    let ca_path = rm.child_path("ca_file");
    let ca_file = match rm.opt_str(r, "ca_file") {
        Some(Some(s)) => apply(r, &ca_path, s, rules::check_path).map(Some),
        Some(None) => Some(None),
        None => None,
    };
    let cert_path = rm.child_path("cert_sha256");
    let cert_sha256 = match rm.opt_str(r, "cert_sha256") {
        Some(Some(s)) => match parse_fingerprint(s) {
            Ok(fp) => Some(Some(fp)),
            Err(problem) => {
                r.error(&cert_path, problem);
                None
            }
        },
        Some(None) => Some(None),
        None => None,
    };
    // New: how often a failed primary transport is tried again while the fallback is used.
    let failback = rm.opt_num(r, "failback_interval_sec", Num::Number, Range::between(1.0, 3600.0), 30.0);
    // Written by the original's calibrate tool, never read.
    rm.ignore(&["type"]);

    let (port, scheme, verify_ssl, ca_file, cert_sha256, password) =
        (port?, scheme?, verify_ssl?, ca_file?, cert_sha256?, password?);
    // The original's rule: HTTPS only on port 443 (so 8443 meant plain HTTP).
    let scheme = scheme.unwrap_or(if port == 443 { Scheme::Https } else { Scheme::Http });
    if scheme == Scheme::Http {
        let tls_keys = [
            ("verify_ssl", verify_ssl),
            ("ca_file", ca_file.is_some()),
            ("cert_sha256", cert_sha256.is_some()),
        ];
        for (key, set) in tls_keys {
            if set {
                r.warn(&rm.child_path(key), "has no effect: the REST scheme is http");
            }
        }
        if !password.0.is_empty() {
            let (key, why) = if scheme_given {
                ("scheme", "")
            } else {
                ("port", " (the port is not 443, so the scheme is http)")
            };
            r.warn(
                &rm.child_path(key),
                format!("REST over plain HTTP{why} sends the router password in clear text"),
            );
        }
    } else if ca_file.is_some() && !verify_ssl {
        r.warn(&rm.child_path("ca_file"), "has no effect unless verify_ssl is true");
    }
    rm.finish(r);
    Some(RouterConfig {
        host: host?,
        user: user?,
        ssh_key: ssh_key?,
        transport: transport?,
        password,
        port,
        scheme,
        verify_ssl,
        ca_file,
        cert_sha256,
        failback_interval: std::time::Duration::from_secs_f64(failback?),
    })
}

/// `${NAME}` as the whole value → the environment variable (unset → empty, with a warning).
/// Anything else is used verbatim: no partial interpolation, as the original.
fn expand_password(p: &str, path: &str, env: Env<'_>, r: &mut Report) -> Secret {
    if p.len() >= 3 && p.starts_with("${") && p.ends_with('}') {
        let name = &p[2..p.len() - 1];
        match env(name) {
            Some(v) => Secret(v),
            None => {
                r.warn(
                    path,
                    format!("environment variable {} is not set; the REST password is empty", quote(name)),
                );
                Secret(String::new())
            }
        }
    } else {
        Secret(p.to_string())
    }
}

/// 64 hex digits, optionally separated by colons (`AB:CD:…` as browsers print it).
fn parse_fingerprint(s: &str) -> Result<[u8; 32], String> {
    let digits: Vec<u32> =
        s.chars().filter(|c| *c != ':').map(|c| c.to_digit(16).unwrap_or(u32::MAX)).collect();
    if digits.len() != 64 || digits.iter().any(|d| *d > 15) {
        return Err(format!(
            "expected a SHA-256 fingerprint (64 hex digits, colons allowed), got {}",
            quote(s)
        ));
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks(2)) {
        *byte = (pair[0] << 4 | pair[1]) as u8;
    }
    Ok(out)
}

/// `logging.main_log` / `logging.debug_log` from an open `logging` block.
fn logging(lm: &mut Map<'_>, r: &mut Report) -> Option<Logging> {
    let main_log = req_checked(lm, r, "main_log", rules::check_path);
    let debug_log = req_checked(lm, r, "debug_log", rules::check_path);
    Some(Logging { main_log: main_log?, debug_log: debug_log? })
}

/// `lock_file` and `lock_timeout` (1–3600 s).
fn lock(m: &mut Map<'_>, r: &mut Report) -> (Option<String>, Option<Duration>) {
    let lock_file = req_checked(m, r, "lock_file", |s| {
        rules::check_path(s)?;
        if s.ends_with('/') {
            return Err(format!("must name a file, not a directory, got {}", quote(s)));
        }
        Ok(())
    });
    let lock_timeout =
        m.req_int(r, "lock_timeout", Range::between(1.0, 3600.0)).map(|s| Duration::from_secs(s as u64));
    (lock_file, lock_timeout)
}

/// An HTTP endpoint block (`health_check`, `metrics`).
fn endpoint(
    m: &mut Map<'_>,
    r: &mut Report,
    key: &'static str,
    enabled: bool,
    port: u16,
) -> Option<Endpoint> {
    let mut em = m.get(key).map(r);
    let enabled = em.opt_bool(r, "enabled", enabled);
    let host = opt_checked(&mut em, r, "host", rules::check_host, "127.0.0.1");
    let port = em.opt_int(r, "port", Range::between(1.0, 65535.0), i64::from(port));
    em.finish(r);
    Some(Endpoint { enabled: enabled?, host: host?, port: port? as u16 })
}

/// `storage.*`: SQLite history, on by default as in the original.
fn storage(m: &mut Map<'_>, r: &mut Report) -> Option<Storage> {
    let mut sm = m.get("storage").map(r);
    let path = sm.child_path("db_path");
    let db_path = if sm.is_null("db_path") {
        Some(None)
    } else {
        match sm.opt_str(r, "db_path") {
            Some(Some("")) => Some(None),
            Some(Some(p)) => apply(r, &path, p, rules::check_path).map(Some),
            Some(None) => Some(Some("/var/lib/wanctl/metrics.db".to_string())),
            None => None,
        }
    };
    let retention_days = sm.opt_int(r, "retention_days", Range::between(1.0, 365.0), 7);
    let max_size_mb = sm.opt_int(r, "max_size_mb", Range::between(1.0, 1_048_576.0), 64);
    let flush = sm.opt_num(r, "flush_interval_sec", Num::Number, Range::between(0.5, 300.0), 5.0);
    sm.finish(r);
    Some(Storage {
        db_path: db_path?,
        retention_days: retention_days? as u32,
        max_size_mb: max_size_mb? as u32,
        flush_interval: secs(flush?),
    })
}

// ---------------------------------------------------------------------------------------
// Autorate

fn autorate(m: &mut Map<'_>, r: &mut Report, env: Env<'_>) -> Option<AutorateConfig> {
    let schema_version = schema_version(m, r);
    let wan_name = wan_name(m, r);
    let router = router(m, r, env);

    let mut qm = m.get("queues").required_map(r);
    let download = req_checked(&mut qm, r, "download", rules::check_identifier);
    let upload = req_checked(&mut qm, r, "upload", rules::check_identifier);
    qm.finish(r);

    let monitoring = monitoring(m, r);

    let mut lm = m.get("logging").required_map(r);
    let logging = logging(&mut lm, r);
    // Some hand-written autorate files copy steering's logging block.
    lm.ignore(&["log_cake_stats"]);
    lm.finish(r);

    let (lock_file, lock_timeout) = lock(m, r);

    let mut tm = m.get("timeouts").map(r);
    let router_timeout = tm.opt_num(r, "ssh_command", Num::Number, Range::between(0.1, 3600.0), 15.0);
    let ping_timeout = tm.opt_num(r, "ping", Num::Number, Range::between(0.01, 60.0), 1.0);
    tm.finish(r);

    let health = endpoint(m, r, "health_check", true, 9101);
    let metrics = endpoint(m, r, "metrics", false, 9100);
    let storage = storage(m, r);
    let alerting = alerting(m, r, env);

    let state_path = m.child_path("state_file");
    let state_file_key = m.opt_str(r, "state_file").map(|s| s.map(str::to_string));

    let lock_file = lock_file?;
    let state_file_key = state_file_key?;
    if let Some(key) = &state_file_key {
        let derived = derived_state_path(&lock_file);
        if *key != derived {
            r.warn(
                &state_path,
                format!(
                    "ignored, as in the original: the state file is {derived} (derived from lock_file), not {}",
                    quote(key)
                ),
            );
        }
    }
    Some(AutorateConfig {
        schema_version,
        wan_name: wan_name?,
        router: router?,
        queues: Queues { download: download?, upload: upload? },
        monitoring: monitoring?,
        logging: logging?,
        lock_file,
        lock_timeout: lock_timeout?,
        router_timeout: secs(router_timeout?),
        ping_timeout: secs(ping_timeout?),
        health: health?,
        metrics: metrics?,
        storage: storage?,
        state_file_key,
        alerting: alerting?,
    })
}

/// `alerting` (newer upstream 1.15+ keys, plus wanctl's delivery settings). The URL may be
/// `${VAR}` as a whole (as the router password); it is a secret: errors never repeat it.
fn alerting(m: &mut Map<'_>, r: &mut Report, env: Env<'_>) -> Option<AlertingConfig> {
    use crate::engine::alerts::{ALL_KINDS, AlertSettings, Format, Severity, WebhookUrl};
    let d = AlertingConfig::default();
    let mut am = m.get("alerting").map(r);
    let enabled = am.opt_bool(r, "enabled", false);
    let url_path = am.child_path("webhook_url");
    let url = am.opt_str(r, "webhook_url");
    let secs_range = Range::between(0.0, 86_400.0);
    let cooldown = am.opt_num(r, "default_cooldown_sec", Num::Number, secs_range, 300.0);
    let sustain = am.opt_num(r, "default_sustained_sec", Num::Number, secs_range, 60.0);
    let timeout = am.opt_num(r, "timeout_sec", Num::Number, Range::between(0.5, 60.0), 5.0);
    let max_queue = am.opt_int(r, "max_queue", Range::between(1.0, 1000.0), d.max_queue as i64);
    let max_attempts = am.opt_int(r, "max_attempts", Range::between(1.0, 20.0), i64::from(d.max_attempts));
    let flap_n = am.opt_int(r, "flap_transitions", Range::between(2.0, 1000.0), 6);
    let flap_window = am.opt_num(r, "flap_window_sec", Num::Number, Range::between(1.0, 86_400.0), 60.0);
    let verify_ssl = am.opt_bool(r, "verify_ssl", true);
    let format_path = am.child_path("format");
    let format = am.opt_str(r, "format");
    let mut settings =
        AlertSettings::defaults(secs(cooldown.unwrap_or(300.0)), secs(sustain.unwrap_or(60.0)));
    let mut rm = am.get("rules").map(r);
    for kind in ALL_KINDS {
        if !rm.has(kind.name()) {
            continue;
        }
        let mut km = rm.get(kind.name()).map(r);
        let rule = *settings.rule(kind);
        let en = km.opt_bool(r, "enabled", rule.enabled);
        let cd = km.opt_num(r, "cooldown_sec", Num::Number, secs_range, rule.cooldown.as_secs_f64());
        let su = km.opt_num(r, "sustained_sec", Num::Number, secs_range, rule.sustain.as_secs_f64());
        let sev_path = km.child_path("severity");
        let sev = km.opt_str(r, "severity");
        km.finish(r);
        let target = settings.rule_mut(kind);
        target.enabled = en.unwrap_or(target.enabled);
        target.cooldown = cd.map_or(target.cooldown, secs);
        target.sustain = su.map_or(target.sustain, secs);
        if let Some(Some(v)) = sev {
            match Severity::parse(v) {
                Some(x) => target.severity = x,
                None => r.error(
                    &sev_path,
                    format!("expected info, recovery, warning or critical, got {}", quote(v)),
                ),
            }
        }
    }
    rm.finish(r);
    am.finish(r);
    settings.flap_transitions = flap_n? as u32;
    settings.flap_window = secs(flap_window?);
    let url_text = match url? {
        Some(u) if u.len() >= 3 && u.starts_with("${") && u.ends_with('}') => {
            let name = &u[2..u.len() - 1];
            match env(name) {
                Some(v) => v,
                None => {
                    if enabled == Some(true) {
                        r.warn(
                            &url_path,
                            format!("environment variable {} is not set; alerts are off", quote(name)),
                        );
                    }
                    String::new()
                }
            }
        }
        Some(u) => u.to_string(),
        None => String::new(),
    };
    let url = if url_text.is_empty() {
        if enabled == Some(true) {
            r.warn(&url_path, "empty: alerts are off (set a webhook URL)".to_string());
        }
        None
    } else {
        match WebhookUrl::parse(&url_text) {
            Ok(u) => Some(u),
            // The URL is a secret: the message says what is wrong, never the value.
            Err(e) => {
                r.error(&url_path, format!("not a usable webhook URL: {e}"));
                None
            }
        }
    };
    #[cfg(not(feature = "tls"))]
    if url.as_ref().is_some_and(|u| u.https) && enabled == Some(true) {
        r.error(&url_path, "https needs a build with the tls feature".to_string());
    }
    let format = match format? {
        None | Some("auto") => {
            if url.as_ref().is_some_and(WebhookUrl::is_discord) {
                Format::Discord
            } else {
                Format::Json
            }
        }
        Some("json") => Format::Json,
        Some("discord") => Format::Discord,
        Some(other) => {
            r.error(&format_path, format!("expected auto, json or discord, got {}", quote(other)));
            Format::Json
        }
    };
    let enabled = enabled? && url.is_some();
    Some(AlertingConfig {
        enabled,
        url: if enabled { url } else { None },
        format,
        settings,
        timeout: secs(timeout?),
        max_queue: max_queue? as usize,
        max_attempts: max_attempts? as u32,
        verify_ssl: verify_ssl?,
    })
}

fn monitoring(m: &mut Map<'_>, r: &mut Report) -> Option<Monitoring> {
    let mut cm = m.get("continuous_monitoring").required_map(r);
    let enabled_path = cm.child_path("enabled");
    let enabled = cm.req_bool(r, "enabled");
    if enabled == Some(false) {
        r.warn(
            &enabled_path,
            "false has no effect: the controller always runs (the original ignored it too)",
        );
    }
    let initial_path = cm.child_path("baseline_rtt_initial");
    let initial = cm.req_num(r, "baseline_rtt_initial", Num::Number, Range::between(1.0, 500.0));
    let ping_hosts = ping_hosts(&mut cm, r);
    let median_path = cm.child_path("use_median_of_three");
    let use_median_of_three = cm.opt_bool(r, "use_median_of_three", false);
    if let (Some(true), Some(hosts)) = (use_median_of_three, &ping_hosts) {
        if hosts.len() < 3 {
            r.warn(&median_path, format!("has no effect with {} ping host(s); it needs 3", hosts.len()));
        }
    }

    let mut dm = cm.get("download").required_map(r);
    let download = direction(&mut dm, r, true);
    dm.finish(r);
    let mut um = cm.get("upload").required_map(r);
    let upload = direction(&mut um, r, false);
    let ul_path = um.child_path("warn_bloat_ms");
    let (ul_target, ul_warn) = upload_thresholds(&mut um, r);
    um.finish(r);

    let mut tm = cm.get("thresholds").required_map(r);
    let thresholds = thresholds(&mut tm, r);
    tm.finish(r);
    let thresholds = thresholds.map(|mut t| {
        t.upload_target_bloat_ms = ul_target.flatten();
        t.upload_warn_bloat_ms = ul_warn.flatten();
        // (A bad upload value was reported where it was read.)
        let (lo, hi) = (
            t.upload_target_bloat_ms.unwrap_or(t.target_bloat_ms),
            t.upload_warn_bloat_ms.unwrap_or(t.warn_bloat_ms),
        );
        if (t.upload_target_bloat_ms.is_some() || t.upload_warn_bloat_ms.is_some()) && lo >= hi {
            r.error(
                &ul_path,
                format!(
                    "upload warn_bloat_ms ({}) must be greater than its target_bloat_ms ({})",
                    fmt_plain(hi),
                    fmt_plain(lo)
                ),
            );
        }
        t
    });

    let fallback = fallback_checks(&mut cm, r);
    let binding = probe_binding(&mut cm, r);
    // Upstream 1.22's top-level `ping_source_ip` is our `probe_binding.source`.
    let psi_path = m.child_path("ping_source_ip");
    let binding = match (binding, m.opt_str(r, "ping_source_ip")) {
        (Some(b), Some(Some(ip))) if !ip.is_empty() => {
            if !(rules::is_ipv4_literal(ip) || rules::is_ipv6_literal(ip)) {
                r.error(&psi_path, format!("expected an IPv4 or IPv6 address, got {ip:?}"));
                None
            } else if b.source.as_deref().is_some_and(|s| s != ip) {
                r.error(
                    &psi_path,
                    "conflicts with continuous_monitoring.probe_binding.source; set one of them",
                );
                None
            } else {
                Some(ProbeBinding { source: Some(ip.to_string()), ..b })
            }
        }
        (b, _) => b,
    };
    let load = load_control(&mut cm, r);
    let pool = reflector_pool(&mut cm, r);
    let budget = cm.opt_num(
        r,
        "write_budget_per_minute",
        Num::Number,
        Range::between(1.0, 1200.0),
        crate::config::DEFAULT_WRITE_BUDGET_PER_MIN,
    );
    cm.finish(r);

    let thresholds = thresholds?;
    let initial = initial?;
    if initial < thresholds.baseline_min_ms || initial > thresholds.baseline_max_ms {
        let side = if initial < thresholds.baseline_min_ms { "below" } else { "above" };
        r.warn(
            &initial_path,
            format!(
                "{} is {side} thresholds.baseline_rtt_bounds ({} to {} ms): baseline updates outside the bounds are rejected, so the baseline may never update",
                fmt_plain(initial),
                fmt_plain(thresholds.baseline_min_ms),
                fmt_plain(thresholds.baseline_max_ms)
            ),
        );
    }
    enabled?;
    Some(Monitoring {
        baseline_rtt_initial_ms: initial,
        ping_hosts: ping_hosts?,
        use_median_of_three: use_median_of_three?,
        download: download?,
        upload: upload?,
        thresholds,
        fallback: fallback?,
        binding: binding?,
        load: load?,
        write_budget_per_min: budget?,
        reflectors: pool?,
    })
}

/// `continuous_monitoring.reflectors` (new): the reflector pool.
fn reflector_pool(cm: &mut Map<'_>, r: &mut Report) -> Option<crate::config::ReflectorPool> {
    use crate::config::ReflectorPool;
    let d = ReflectorPool::default();
    let mut pm = cm.get("reflectors").map(r);
    let pool = if pm.has("pool") { ping_list(&mut pm, r, "pool").map(Some) } else { Some(None) };
    let active_path = pm.child_path("active");
    let active = if pm.has("active") {
        pm.opt_int(r, "active", Range::between(1.0, 8.0), 3).map(|v| Some(v as usize))
    } else {
        Some(None)
    };
    let quorum_path = pm.child_path("quorum");
    let quorum = if pm.has("quorum") {
        pm.opt_int(r, "quorum", Range::between(1.0, 8.0), 2).map(|v| Some(v as usize))
    } else {
        Some(None)
    };
    let outlier = pm.opt_num(r, "outlier_ms", Num::Number, Range::between(2.0, 500.0), d.outlier_ms);
    let outlier_after =
        pm.opt_num(r, "replace_outlier_after_sec", Num::Number, Range::between(1.0, 3600.0), 30.0);
    let dead_after = pm.opt_num(r, "replace_dead_after_sec", Num::Number, Range::between(0.5, 60.0), 2.0);
    let backoff = pm.opt_bool(r, "idle_backoff", d.idle_backoff);
    let idle_hz = pm.opt_num(r, "idle_rate_hz", Num::Number, Range::between(0.2, 20.0), d.idle_rate_hz);
    let idle_after = pm.opt_num(r, "idle_after_sec", Num::Number, Range::between(1.0, 3600.0), 30.0);
    pm.finish(r);
    let (pool, active, quorum) = (pool?, active?, quorum?);
    if let (Some(p), Some(a)) = (&pool, active)
        && a > p.len()
    {
        r.error(&active_path, format!("must be ≤ the pool size ({}), got {a}", p.len()));
        return None;
    }
    if let (Some(q), a) = (quorum, active.unwrap_or(3))
        && q > a
    {
        r.error(&quorum_path, format!("must be ≤ active ({a}), got {q}"));
        return None;
    }
    let secs = std::time::Duration::from_secs_f64;
    Some(ReflectorPool {
        pool,
        active,
        quorum,
        outlier_ms: outlier?,
        outlier_after: secs(outlier_after?),
        dead_after: secs(dead_after?),
        idle_backoff: backoff?,
        idle_rate_hz: idle_hz?,
        idle_after: secs(idle_after?),
    })
}

/// `continuous_monitoring.load_control` (new): queue counters as a second signal.
fn load_control(cm: &mut Map<'_>, r: &mut Report) -> Option<crate::config::LoadControl> {
    use crate::config::LoadControl;
    let d = LoadControl::default();
    let mut lm = cm.get("load_control").map(r);
    let enabled = lm.opt_bool(r, "enabled", d.enabled);
    let interval =
        lm.opt_num(r, "interval_sec", Num::Number, Range::between(0.1, 60.0), d.interval.as_secs_f64());
    let loaded_path = lm.child_path("loaded_ratio");
    let loaded = lm.opt_num(r, "loaded_ratio", Num::Number, Range::between(0.05, 1.0), d.loaded_ratio);
    let saturated =
        lm.opt_num(r, "saturated_ratio", Num::Number, Range::between(0.3, 1.0), d.saturated_ratio);
    let stale_given = lm.has("stale_after_sec");
    let stale_path = lm.child_path("stale_after_sec");
    let stale = lm.opt_num(r, "stale_after_sec", Num::Number, Range::between(0.2, 600.0), 2.0);
    lm.finish(r);
    let (interval, loaded, saturated, stale) = (interval?, loaded?, saturated?, stale?);
    if loaded > saturated {
        r.error(
            &loaded_path,
            format!("must be ≤ saturated_ratio ({}), got {}", fmt_plain(saturated), fmt_plain(loaded)),
        );
        return None;
    }
    let stale = if stale_given {
        if stale < interval * 2.0 {
            r.error(
                &stale_path,
                format!(
                    "must be at least two read intervals ({} s), got {}",
                    fmt_plain(interval * 2.0),
                    fmt_plain(stale)
                ),
            );
            return None;
        }
        stale
    } else {
        (interval * 4.0).max(2.0)
    };
    Some(LoadControl {
        enabled: enabled?,
        interval: std::time::Duration::from_secs_f64(interval),
        loaded_ratio: loaded,
        saturated_ratio: saturated,
        stale_after: std::time::Duration::from_secs_f64(stale),
    })
}

/// `continuous_monitoring.probe_binding` (new): interface, source address, fwmark.
fn probe_binding(cm: &mut Map<'_>, r: &mut Report) -> Option<ProbeBinding> {
    let mut bm = cm.get("probe_binding").map(r);
    let device_path = bm.child_path("device");
    let device = match bm.opt_str(r, "device") {
        Some(Some(d)) => {
            let ok = !d.is_empty()
                && d.len() < 16
                && d.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-@:".contains(&b));
            if !ok {
                r.error(
                    &device_path,
                    format!("expected an interface name (1-15 of A-Z a-z 0-9 . _ - @ :), got {d:?}"),
                );
            }
            ok.then(|| Some(d.to_string()))
        }
        Some(None) => Some(None),
        None => None,
    };
    let source_path = bm.child_path("source");
    let source = match bm.opt_str(r, "source") {
        Some(Some(s)) if rules::is_ipv4_literal(s) || rules::is_ipv6_literal(s) => Some(Some(s.to_string())),
        Some(Some(s)) => {
            r.error(&source_path, format!("expected an IPv4 or IPv6 address, got {s:?}"));
            None
        }
        Some(None) => Some(None),
        None => None,
    };
    let fwmark = if bm.has("fwmark") {
        bm.opt_int(r, "fwmark", Range::between(1.0, 4_294_967_295.0), 0).map(|v| Some(v as u32))
    } else {
        Some(None)
    };
    bm.finish(r);
    Some(ProbeBinding { device: device?, source: source?, fwmark: fwmark? })
}

fn ping_hosts(cm: &mut Map<'_>, r: &mut Report) -> Option<Vec<String>> {
    ping_list(cm, r, "ping_hosts")
}

/// A required, non-empty list of hosts under `key`.
fn ping_list(cm: &mut Map<'_>, r: &mut Report, key: &'static str) -> Option<Vec<String>> {
    let f = cm.get(key);
    f.required(r)?;
    let items = f.list(r)?;
    if items.is_empty() {
        r.error(&f.path, "must list at least one host");
        return None;
    }
    let mut hosts = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}[{i}]", f.path);
        match item {
            Value::String(s) => match rules::check_host(s) {
                Ok(()) => hosts.push(s.clone()),
                Err(problem) => {
                    r.error(&path, problem);
                    ok = false;
                }
            },
            other => {
                r.error(&path, format!("expected a string, got {}", raw::describe(other)));
                ok = false;
            }
        }
    }
    ok.then_some(hosts)
}

/// One rate key in a floor-ordering chain: its name and (valid) value in Mbit/s.
type Link = (&'static str, Option<f64>);

/// `a ≤ b ≤ …` over the keys that read correctly; an error on the lower key of each
/// violated neighbouring pair.
fn check_chain(dm: &Map<'_>, r: &mut Report, chain: &[Link]) {
    let valid: Vec<(&str, f64)> = chain.iter().filter_map(|(k, v)| v.map(|v| (*k, v))).collect();
    for pair in valid.windows(2) {
        let ((lo_key, lo), (hi_key, hi)) = (pair[0], pair[1]);
        if lo > hi {
            r.error(
                &dm.child_path(lo_key),
                format!("must be at most {hi_key} ({}), got {}", fmt_plain(hi), fmt_plain(lo)),
            );
        }
    }
}

fn direction(dm: &mut Map<'_>, r: &mut Report, is_download: bool) -> Option<DirectionConfig> {
    let max = if is_download { 10000.0 } else { 1000.0 };
    let ceiling = dm.req_num(r, "ceiling_mbps", Num::Number, Range::between(1.0, max));
    let step_up = dm.req_num(r, "step_up_mbps", Num::Number, Range::between(0.1, 100.0));
    let factor_down = dm.req_num(r, "factor_down", Num::Float, Range::between(0.1, 1.0));
    let (yellow_range, yellow_default) =
        if is_download { (Range::between(0.8, 1.0), 0.96) } else { (Range::between(0.9, 1.0), 0.94) };
    let factor_down_yellow = dm.opt_num(r, "factor_down_yellow", Num::Float, yellow_range, yellow_default);
    let green_required = dm.opt_int(r, "green_required", Range::between(1.0, 10.0), 5);
    let adaptive = dm.opt_bool(r, "adaptive", true);

    // Floors: the original never type- or range-checked them (a missing one was a KeyError).
    let floor_range = Range::between(0.1, max);
    let floors = if dm.has("floor_green_mbps") {
        let green = dm.req_num(r, "floor_green_mbps", Num::Number, floor_range);
        let yellow = state_floor(dm, r, "floor_yellow_mbps", floor_range);
        let red = state_floor(dm, r, "floor_red_mbps", floor_range);
        let soft_red_given = dm.has("floor_soft_red_mbps");
        let soft_red = if !is_download {
            dm.get("floor_soft_red_mbps");
            if soft_red_given {
                r.warn(
                    &dm.child_path("floor_soft_red_mbps"),
                    "ignored: upload has no SOFT_RED state (its floor is floor_yellow_mbps)",
                );
            }
            yellow
        } else if soft_red_given {
            dm.req_num(r, "floor_soft_red_mbps", Num::Number, floor_range)
        } else {
            dm.get("floor_soft_red_mbps");
            yellow
        };
        if dm.has("floor_mbps") {
            dm.get("floor_mbps");
            r.warn(
                &dm.child_path("floor_mbps"),
                "ignored because floor_green_mbps is set (state-based floors)",
            );
        }
        let mut chain: Vec<Link> = vec![("floor_red_mbps", red)];
        if is_download && soft_red_given {
            chain.push(("floor_soft_red_mbps", soft_red));
        }
        chain.extend([("floor_yellow_mbps", yellow), ("floor_green_mbps", green), ("ceiling_mbps", ceiling)]);
        check_chain(dm, r, &chain);
        (green, yellow, soft_red, red)
    } else {
        let floor = if dm.has("floor_mbps") {
            dm.req_num(r, "floor_mbps", Num::Number, floor_range)
        } else {
            dm.missing(
                r,
                "floor_mbps",
                "required key is missing (set floor_mbps, or floor_green_mbps with floor_yellow_mbps and floor_red_mbps)",
            );
            None
        };
        for key in ["floor_yellow_mbps", "floor_soft_red_mbps", "floor_red_mbps"] {
            if dm.has(key) {
                r.warn(
                    &dm.child_path(key),
                    "ignored because floor_green_mbps is not set (floor_mbps applies to every state)",
                );
            }
        }
        dm.ignore(&["floor_yellow_mbps", "floor_soft_red_mbps", "floor_red_mbps", "floor_green_mbps"]);
        check_chain(dm, r, &[("floor_mbps", floor), ("ceiling_mbps", ceiling)]);
        (floor, floor, floor, floor)
    };
    let (green, yellow, soft_red, red) = floors;
    Some(DirectionConfig {
        ceiling: Bps::from_mbps(ceiling?),
        step_up: Bps::from_mbps(step_up?),
        factor_down: factor_down?,
        factor_down_yellow: factor_down_yellow?,
        green_required: green_required? as u32,
        adaptive: adaptive?,
        floor_green: Bps::from_mbps(green?),
        floor_yellow: Bps::from_mbps(yellow?),
        floor_soft_red: Bps::from_mbps(soft_red?),
        floor_red: Bps::from_mbps(red?),
    })
}

/// A floor that `floor_green_mbps` makes mandatory (the original raised a bare KeyError).
fn state_floor(dm: &mut Map<'_>, r: &mut Report, key: &'static str, range: Range) -> Option<f64> {
    if dm.has(key) {
        return dm.req_num(r, key, Num::Number, range);
    }
    dm.missing(
        r,
        key,
        "required key is missing (floor_green_mbps is set, so floor_yellow_mbps and floor_red_mbps are required too)",
    );
    None
}

/// One EWMA: a time constant or a raw alpha (the time constant wins when both are given).
/// Returns the time constant and, when the raw alpha was used, the alpha.
fn smoothing(
    tm: &mut Map<'_>,
    r: &mut Report,
    tc_key: &'static str,
    tc_range: Range,
    alpha_key: &'static str,
    alpha_range: Range,
) -> (Option<Duration>, Option<f64>) {
    let tc_given = tm.has(tc_key);
    let alpha_given = tm.has(alpha_key);
    let tc = tm.get(tc_key).number(r, Num::Number, tc_range);
    let alpha = tm.get(alpha_key).number(r, Num::Float, alpha_range);
    if tc_given {
        if alpha_given {
            r.warn(
                &tm.child_path(alpha_key),
                format!("ignored because {tc_key} is set (the time constant wins, as in the original)"),
            );
        }
        (tc.map(secs), None)
    } else if alpha_given {
        (alpha.map(tau_from_alpha), alpha)
    } else {
        tm.missing(r, tc_key, &format!("required key is missing (set {tc_key}, or the older {alpha_key})"));
        (None, None)
    }
}

fn thresholds(tm: &mut Map<'_>, r: &mut Report) -> Option<Thresholds> {
    let target = tm.req_num(r, "target_bloat_ms", Num::Number, Range::between(1.0, 100.0));
    let warn = tm.req_num(r, "warn_bloat_ms", Num::Number, Range::between(1.0, 200.0));
    let hard_red = tm.opt_num(r, "hard_red_bloat_ms", Num::Number, Range::between(1.0, 1000.0), 80.0);
    let (baseline_tau, _) = smoothing(
        tm,
        r,
        "baseline_time_constant_sec",
        Range::between(1.0, 600.0),
        "alpha_baseline",
        Range::between(0.0001, 1.0),
    );
    let (load_tau, raw_alpha_load) = smoothing(
        tm,
        r,
        "load_time_constant_sec",
        Range::between(0.05, 10.0),
        "alpha_load",
        Range::between(0.001, 1.0),
    );
    if let (Some(alpha), Some(tau)) = (raw_alpha_load, load_tau) {
        if tau.as_secs_f64() > 5.0 {
            r.warn(
                &tm.child_path("alpha_load"),
                format!(
                    "{} means a {:.1} s load time constant at the 50 ms cycle, too slow to react to congestion; set load_time_constant_sec instead (e.g. 0.1)",
                    raw::fmt_float(alpha),
                    tau.as_secs_f64()
                ),
            );
        }
    }
    let update = tm.opt_num(r, "baseline_update_threshold_ms", Num::Number, Range::between(0.1, 100.0), 3.0);
    let accel = tm.opt_num(r, "accel_threshold_ms", Num::Number, Range::between(5.0, 50.0), 15.0);
    let (bmin, bmax) = baseline_bounds(tm, r);
    // Upstream 1.24 hysteresis keys; defaults keep the 1.7/1.8 behaviour.
    let dwell = tm.opt_int(r, "dwell_cycles", Range::between(0.0, 100.0), 0);
    let deadband = tm.opt_num(r, "deadband_ms", Num::Number, Range::between(0.0, 50.0), 0.0);
    let confirm = tm.opt_int(r, "accel_confirm_cycles", Range::between(1.0, 20.0), 1);

    let ordered = [("target_bloat_ms", target), ("warn_bloat_ms", warn), ("hard_red_bloat_ms", hard_red)];
    let valid: Vec<(&str, f64)> = ordered.iter().filter_map(|(k, v)| v.map(|v| (*k, v))).collect();
    for pair in valid.windows(2) {
        let ((lo_key, lo), (hi_key, hi)) = (pair[0], pair[1]);
        if lo >= hi {
            r.error(
                &tm.child_path(hi_key),
                format!("must be greater than {lo_key} ({}), got {}", fmt_plain(lo), fmt_plain(hi)),
            );
        }
    }
    Some(Thresholds {
        target_bloat_ms: target?,
        warn_bloat_ms: warn?,
        hard_red_bloat_ms: hard_red?,
        baseline_tau: baseline_tau?,
        load_tau: load_tau?,
        baseline_update_threshold_ms: update?,
        accel_threshold_ms: accel?,
        baseline_min_ms: bmin?,
        baseline_max_ms: bmax?,
        dwell_cycles: dwell? as u32,
        deadband_ms: deadband?,
        accel_confirm_cycles: confirm? as u32,
        upload_target_bloat_ms: None,
        upload_warn_bloat_ms: None,
    })
}

/// `continuous_monitoring.upload.target_bloat_ms` / `.warn_bloat_ms` (upstream): the
/// upload's own thresholds, each falling back to the global one when absent.
fn upload_thresholds(um: &mut Map<'_>, r: &mut Report) -> (Option<Option<f64>>, Option<Option<f64>>) {
    let mut one = |key: &'static str, range: Range| {
        if um.has(key) { um.opt_num(r, key, Num::Number, range, 0.0).map(Some) } else { Some(None) }
    };
    let target = one("target_bloat_ms", Range::between(1.0, 100.0));
    let warn = one("warn_bloat_ms", Range::between(1.0, 200.0));
    (target, warn)
}

/// `baseline_rtt_bounds.{min,max}` (1–100 / 10–500, default 10 / 60, min < max).
fn baseline_bounds(tm: &mut Map<'_>, r: &mut Report) -> (Option<f64>, Option<f64>) {
    let mut bm = tm.get("baseline_rtt_bounds").map(r);
    let min = bm.opt_num(r, "min", Num::Number, Range::between(1.0, 100.0), 10.0);
    let max = bm.opt_num(r, "max", Num::Number, Range::between(10.0, 500.0), 60.0);
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo >= hi {
            r.error(
                &bm.child_path("max"),
                format!("must be greater than min ({}), got {}", fmt_plain(lo), fmt_plain(hi)),
            );
        }
    }
    bm.finish(r);
    (min, max)
}

fn fallback_checks(cm: &mut Map<'_>, r: &mut Report) -> Option<FallbackChecks> {
    let mut fm = cm.get("fallback_checks").map(r);
    let enabled = fm.opt_bool(r, "enabled", true);
    let check_gateway = fm.opt_bool(r, "check_gateway", true);
    let check_tcp = fm.opt_bool(r, "check_tcp", true);
    let gateway_given = fm.has("gateway_ip");
    let gateway_ip = opt_checked(&mut fm, r, "gateway_ip", rules::check_host, "10.10.110.1");
    if !gateway_given && enabled == Some(true) && check_gateway == Some(true) {
        r.warn(
            &fm.child_path("gateway_ip"),
            "not set: the gateway check pings the original's site-specific default 10.10.110.1; set your gateway (or check_gateway: false)",
        );
    }
    let tcp_targets = tcp_targets(&mut fm, r);
    let mode = opt_choice(
        &mut fm,
        r,
        "fallback_mode",
        &[
            ("freeze", FallbackMode::Freeze),
            ("use_last_rtt", FallbackMode::UseLastRtt),
            ("graceful_degradation", FallbackMode::GracefulDegradation),
        ],
        FallbackMode::GracefulDegradation,
    );
    let max_cycles = fm.opt_int(r, "max_fallback_cycles", Range::between(0.0, 1000.0), 3);
    fm.finish(r);
    Some(FallbackChecks {
        enabled: enabled?,
        check_gateway: check_gateway?,
        check_tcp: check_tcp?,
        gateway_ip: gateway_ip?,
        tcp_targets: tcp_targets?,
        mode: mode?,
        max_fallback_cycles: max_cycles? as u32,
    })
}

fn tcp_targets(fm: &mut Map<'_>, r: &mut Report) -> Option<Vec<(String, u16)>> {
    let f = fm.get("tcp_targets");
    if f.value.is_none() {
        return Some(vec![("1.1.1.1".into(), 443), ("8.8.8.8".into(), 443)]);
    }
    let items = f.list(r)?;
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}[{i}]", f.path);
        let pair = match item {
            Value::Sequence(s) if s.len() == 2 => (&s[0], &s[1]),
            other => {
                r.error(&path, format!("expected a [host, port] pair, got {}", describe_pair(other)));
                ok = false;
                continue;
            }
        };
        let host = match pair.0 {
            Value::String(h) => match rules::check_host(h) {
                Ok(()) => Some(h.clone()),
                Err(problem) => {
                    r.error(&path, format!("host {problem}"));
                    None
                }
            },
            other => {
                r.error(&path, format!("host: expected a string, got {}", raw::describe(other)));
                None
            }
        };
        let port = match pair.1 {
            Value::Number(n) if !n.is_f64() => match n.as_i64() {
                Some(p @ 1..=65535) => Some(p as u16),
                _ => {
                    r.error(&path, format!("port must be between 1 and 65535, got {n}"));
                    None
                }
            },
            other => {
                r.error(&path, format!("port: expected an integer, got {}", raw::describe(other)));
                None
            }
        };
        match (host, port) {
            (Some(h), Some(p)) => out.push((h, p)),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn describe_pair(v: &Value) -> String {
    match v {
        Value::Sequence(s) => format!("a list of {} item(s)", s.len()),
        other => raw::describe(other),
    }
}

// ---------------------------------------------------------------------------------------
// Steering

/// Python's `str.capitalize()` for ASCII names: `wan1` → `Wan1`, `WAN2` → `Wan2`.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars.flat_map(char::to_lowercase)).collect(),
        None => String::new(),
    }
}

fn steering(m: &mut Map<'_>, r: &mut Report, env: Env<'_>) -> Option<SteeringConfig> {
    let schema_version = schema_version(m, r);
    let wan_name = wan_name(m, r);
    let router = router(m, r, env);

    let mut tm = m.get("topology").required_map(r);
    let primary_wan = req_checked(&mut tm, r, "primary_wan", rules::check_identifier);
    let primary_wan_config = req_checked(&mut tm, r, "primary_wan_config", rules::check_path);
    let alternate_wan = req_checked(&mut tm, r, "alternate_wan", rules::check_path);
    tm.finish(r);

    let mut mm = m.get("mangle_rule").required_map(r);
    let mangle_comment = req_checked(&mut mm, r, "comment", rules::check_comment);
    mm.finish(r);

    let mut me = m.get("measurement").required_map(r);
    let interval = me.req_num(r, "interval_seconds", Num::Number, Range::between(0.01, 60.0));
    let ping_host = req_checked(&mut me, r, "ping_host", rules::check_host);
    let ping_count = me.req_int(r, "ping_count", Range::between(1.0, 20.0));
    me.finish(r);

    let mut sm = m.get("state").required_map(r);
    let state_file = req_checked(&mut sm, r, "file", rules::check_path);
    let history_size = sm.req_int(r, "history_size", Range::between(1.0, 3000.0));
    sm.finish(r);

    let mut lm = m.get("logging").required_map(r);
    let logging = logging(&mut lm, r);
    let log_cake_stats = lm.opt_bool(r, "log_cake_stats", true);
    lm.finish(r);

    let (lock_file, lock_timeout) = lock(m, r);

    let thresholds = steering_thresholds(m, r);

    let (primary_state_file, primary_download_queue, primary_upload_queue) =
        steering_sources(m, r, primary_wan.as_deref());

    let mut mo = m.get("mode").map(r);
    let cake_aware = mo.opt_bool(r, "cake_aware", true);
    let scoring_path = mo.child_path("use_confidence_scoring");
    let use_confidence = mo.opt_bool(r, "use_confidence_scoring", false);
    let enable_yellow_state = mo.opt_bool(r, "enable_yellow_state", true);
    mo.ignore(&["reset_counters"]);
    mo.finish(r);

    let confidence = if use_confidence == Some(true) {
        confidence(m, r).map(Some)
    } else {
        if m.has("confidence") {
            r.warn(
                &m.child_path("confidence"),
                format!("ignored because {scoring_path} is not true (the confidence controller is off)"),
            );
        }
        m.ignore(&["confidence"]);
        Some(None)
    };

    let mut to = m.get("timeouts").map(r);
    let router_timeout = to.opt_num(r, "ssh_command", Num::Number, Range::between(0.1, 3600.0), 30.0);
    let ping_timeout = to.opt_num(r, "ping", Num::Number, Range::between(0.01, 60.0), 2.0);
    let ping_total = to.opt_num(r, "ping_total", Num::Number, Range::between(0.1, 3600.0), 10.0);
    to.finish(r);

    let metrics = endpoint(m, r, "metrics", false, 9103);
    let health = endpoint(m, r, "health_check", true, 9102);
    let storage = storage(m, r);
    let wan_state = wan_state(m, r);
    let alerting = alerting(m, r, env);

    use_confidence?;
    Some(SteeringConfig {
        schema_version,
        wan_name: wan_name?,
        router: router?,
        primary_wan: primary_wan?,
        primary_wan_config: primary_wan_config?,
        alternate_wan: alternate_wan?,
        mangle_comment: mangle_comment?,
        interval: secs(interval?),
        ping_host: ping_host?,
        ping_count: ping_count? as u32,
        state_file: state_file?,
        history_size: history_size? as u32,
        logging: logging?,
        log_cake_stats: log_cake_stats?,
        lock_file: lock_file?,
        lock_timeout: lock_timeout?,
        thresholds: thresholds?,
        primary_state_file: primary_state_file?,
        primary_download_queue: primary_download_queue?,
        primary_upload_queue: primary_upload_queue?,
        cake_aware: cake_aware?,
        enable_yellow_state: enable_yellow_state?,
        confidence: confidence?,
        router_timeout: secs(router_timeout?),
        ping_timeout: secs(ping_timeout?),
        ping_total_timeout: secs(ping_total?),
        wan_state: wan_state?,
        alerting: alerting?,
        metrics: metrics?,
        health: health?,
        storage: storage?,
    })
}

/// `cake_state_sources` and `cake_queues`, with the legacy `spectrum*` aliases (used only
/// when the `primary*` key is absent) and the original's defaults.
fn steering_sources(
    m: &mut Map<'_>,
    r: &mut Report,
    primary_wan: Option<&str>,
) -> (Option<String>, Option<String>, Option<String>) {
    let mut cs = m.get("cake_state_sources").map(r);
    let state = aliased(&mut cs, r, "primary", "spectrum", rules::check_path);
    cs.finish(r);
    let state = match state {
        Some(Some(s)) => Some(s),
        Some(None) => primary_wan.map(|wan| {
            let default = format!("/var/lib/wanctl/{wan}_state.json");
            r.warn(
                &cs_path(m, "cake_state_sources.primary"),
                format!(
                    "not set: defaulting to {default}, which is not where wanctl writes it (<lock_file dir>/<lock_file stem>_state.json, e.g. /run/wanctl/{wan}_state.json); set it"
                ),
            );
            default
        }),
        None => None,
    };

    let mut cq = m.get("cake_queues").map(r);
    let download = aliased(&mut cq, r, "primary_download", "spectrum_download", rules::check_identifier);
    let upload = aliased(&mut cq, r, "primary_upload", "spectrum_upload", rules::check_identifier);
    let download = queue_default(&cq, r, download, primary_wan, "primary_download", "WAN-Download-");
    let upload = queue_default(&cq, r, upload, primary_wan, "primary_upload", "WAN-Upload-");
    cq.finish(r);
    (state, download, upload)
}

fn cs_path(m: &Map<'_>, rest: &str) -> String {
    m.child_path(rest)
}

/// `primary` if present, else the legacy alias; `Some(None)` when neither is set.
fn aliased(
    m: &mut Map<'_>,
    r: &mut Report,
    key: &'static str,
    alias: &'static str,
    check: fn(&str) -> Result<(), String>,
) -> Option<Option<String>> {
    if m.has(key) {
        if m.has(alias) {
            r.warn(&m.child_path(alias), format!("ignored because {key} is set (it is the legacy name)"));
        }
        m.ignore(&[alias]);
        let path = m.child_path(key);
        let s = m.req_str(r, key)?;
        apply(r, &path, s, check).map(Some)
    } else if m.has(alias) {
        m.get(key);
        let path = m.child_path(alias);
        let s = m.req_str(r, alias)?;
        apply(r, &path, s, check).map(Some)
    } else {
        m.get(key);
        m.ignore(&[alias]);
        Some(None)
    }
}

/// `WAN-Download-<Primary_wan capitalised>` when the queue is not configured.
fn queue_default(
    m: &Map<'_>,
    r: &mut Report,
    value: Option<Option<String>>,
    primary_wan: Option<&str>,
    key: &str,
    prefix: &str,
) -> Option<String> {
    match value? {
        Some(q) => Some(q),
        None => {
            let q = format!("{prefix}{}", capitalize(primary_wan?));
            match rules::check_identifier(&q) {
                Ok(()) => Some(q),
                Err(problem) => {
                    r.error(
                        &m.child_path(key),
                        format!(
                            "not set, and the default {} (from topology.primary_wan) {problem}; set it",
                            quote(&q)
                        ),
                    );
                    None
                }
            }
        }
    }
}

fn steering_thresholds(m: &mut Map<'_>, r: &mut Report) -> Option<SteeringThresholds> {
    // Must be a mapping, may be empty (as the original).
    let mut tm = m.get("thresholds").required_map(r);
    let ms = Range::between(0.0, 1000.0);
    let count = Range::at_least(1.0, u32::MAX as f64);
    let packets = Range::at_least(0.0, i64::MAX as f64);
    let green = tm.opt_num(r, "green_rtt_ms", Num::Number, ms, 5.0);
    let yellow = tm.opt_num(r, "yellow_rtt_ms", Num::Number, ms, 15.0);
    let red = tm.opt_num(r, "red_rtt_ms", Num::Number, ms, 15.0);
    let min_drops_red = tm.opt_int(r, "min_drops_red", Range::at_least(1.0, i64::MAX as f64), 1);
    let min_queue_yellow = tm.opt_int(r, "min_queue_yellow", packets, 10);
    let min_queue_red = tm.opt_int(r, "min_queue_red", packets, 50);
    let red_samples = tm.opt_int(r, "red_samples_required", count, 2);
    let green_samples = tm.opt_int(r, "green_samples_required", count, 15);
    let rtt_alpha = tm.opt_num(r, "rtt_ewma_alpha", Num::Float, Range::between(0.0, 1.0), 0.3);
    let queue_alpha = tm.opt_num(r, "queue_ewma_alpha", Num::Float, Range::between(0.0, 1.0), 0.4);
    let bad_threshold = tm.opt_num(r, "bad_threshold_ms", Num::Number, ms, 25.0);
    let recovery_threshold = tm.opt_num(r, "recovery_threshold_ms", Num::Number, ms, 12.0);
    let bad_samples = tm.opt_int(r, "bad_samples", count, 8);
    let good_samples = tm.opt_int(r, "good_samples", count, 15);
    let (bmin, bmax) = baseline_bounds(&mut tm, r);
    let severe = tm.opt_num(r, "severe_rtt_ms", Num::Number, Range::between(1.0, 10_000.0), 120.0);
    if let (Some(s), Some(rd)) = (severe, red)
        && s < rd
    {
        r.error(
            &tm.child_path("severe_rtt_ms"),
            format!("must be at least red_rtt_ms ({}), got {}", fmt_plain(rd), fmt_plain(s)),
        );
    }

    // The original asserted these when the daemon object was built; here they are errors.
    if let (Some(g), Some(y)) = (green, yellow) {
        if g >= y {
            r.error(
                &tm.child_path("yellow_rtt_ms"),
                format!("must be greater than green_rtt_ms ({}), got {}", fmt_plain(g), fmt_plain(y)),
            );
        }
    }
    if let (Some(y), Some(rd)) = (yellow, red) {
        if y > rd {
            r.error(
                &tm.child_path("red_rtt_ms"),
                format!("must be at least yellow_rtt_ms ({}), got {}", fmt_plain(y), fmt_plain(rd)),
            );
        }
    }
    tm.finish(r);
    Some(SteeringThresholds {
        green_rtt_ms: green?,
        yellow_rtt_ms: yellow?,
        red_rtt_ms: red?,
        min_drops_red: min_drops_red? as u64,
        min_queue_yellow: min_queue_yellow? as u64,
        min_queue_red: min_queue_red? as u64,
        red_samples_required: red_samples? as u32,
        green_samples_required: green_samples? as u32,
        rtt_ewma_alpha: rtt_alpha?,
        queue_ewma_alpha: queue_alpha?,
        bad_threshold_ms: bad_threshold?,
        recovery_threshold_ms: recovery_threshold?,
        bad_samples: bad_samples? as u32,
        good_samples: good_samples? as u32,
        baseline_min_ms: bmin?,
        baseline_max_ms: bmax?,
        severe_rtt_ms: severe?,
    })
}

/// `wan_state` (newer upstream 1.11+), with upstream's defaults and its clamp of
/// `red_weight` below the confidence `steer_threshold` unless `wan_override`.
fn wan_state(m: &mut Map<'_>, r: &mut Report) -> Option<WanStateConfig> {
    let d = WanStateConfig::default();
    let mut wm = m.get("wan_state").map(r);
    let enabled = wm.opt_bool(r, "enabled", d.enabled);
    let red_weight = wm.opt_int(r, "red_weight", Range::between(1.0, 100.0), i64::from(d.red_weight));
    let staleness = wm.opt_num(r, "staleness_threshold_sec", Num::Number, Range::between(0.1, 3600.0), 5.0);
    let grace = wm.opt_num(r, "grace_period_sec", Num::Number, Range::between(0.0, 86400.0), 30.0);
    let wan_override = wm.opt_bool(r, "wan_override", d.wan_override);
    wm.finish(r);
    Some(WanStateConfig {
        enabled: enabled?,
        red_weight: red_weight? as u32,
        staleness: secs(staleness?),
        grace_period: secs(grace?),
        wan_override: wan_override?,
    })
}

fn confidence(m: &mut Map<'_>, r: &mut Report) -> Option<ConfidenceConfig> {
    let mut cm = m.get("confidence").map(r);
    let score = Range::between(0.0, 100.0);
    let span = Range::between(0.0, 86400.0);
    let steer = cm.opt_num(r, "steer_threshold", Num::Number, score, 55.0);
    let recovery = cm.opt_num(r, "recovery_threshold", Num::Number, score, 20.0);
    if let (Some(s), Some(rc)) = (steer, recovery) {
        if rc >= s {
            r.error(
                &cm.child_path("recovery_threshold"),
                format!("must be less than steer_threshold ({}), got {}", fmt_plain(s), fmt_plain(rc)),
            );
        }
    }
    let sustain = cm.opt_num(r, "sustain_duration_sec", Num::Number, span, 2.0);
    let recovery_sustain = cm.opt_num(r, "recovery_sustain_sec", Num::Number, span, 3.0);
    let hold_down = cm.opt_num(r, "hold_down_duration_sec", Num::Number, span, 30.0);
    let flap_enabled = cm.opt_bool(r, "flap_detection_enabled", true);
    let flap_window = cm.opt_num(r, "flap_window_minutes", Num::Number, Range::between(0.1, 1440.0), 5.0);
    let max_toggles = cm.opt_int(r, "max_toggles", Range::between(1.0, 1000.0), 4);
    let penalty = cm.opt_num(r, "penalty_duration_sec", Num::Number, span, 60.0);
    let penalty_add = cm.opt_num(r, "penalty_threshold_add", Num::Number, score, 15.0);
    let dry_run = cm.opt_bool(r, "dry_run", true);
    cm.finish(r);
    Some(ConfidenceConfig {
        steer_threshold: steer?,
        recovery_threshold: recovery?,
        sustain_duration: secs(sustain?),
        recovery_sustain: secs(recovery_sustain?),
        hold_down_duration: secs(hold_down?),
        flap_detection_enabled: flap_enabled?,
        flap_window: secs(flap_window? * 60.0),
        max_toggles: max_toggles? as u32,
        penalty_duration: secs(penalty?),
        penalty_threshold_add: penalty_add?,
        dry_run: dry_run?,
    })
}
