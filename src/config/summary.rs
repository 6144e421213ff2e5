//! Human-readable renderings of a loaded config for the command line. Pure: values in,
//! text out. Neither rendering ever includes the router password.

use std::fmt::Write as _;

use super::raw::{fmt_float, fmt_plain};
use super::{
    AnyConfig, AutorateConfig, DirectionConfig, Endpoint, FallbackMode, RouterConfig, Scheme, SteeringConfig,
    Storage, Transport,
};
use crate::units::Bps;

/// A short multi-line summary (no trailing newline): kind, WAN, router, queues, rates and
/// floors in Mbit/s, thresholds, reflectors, state file.
pub fn summary(cfg: &AnyConfig) -> String {
    match cfg {
        AnyConfig::Autorate(c) => autorate_summary(c),
        AnyConfig::Steering(c) => steering_summary(c),
    }
}

/// The original's `--validate-config` block for one valid file, line for line, ending in a
/// newline:
///
/// ```text
/// Configuration valid: /etc/wanctl/wan1.yaml
///   WAN: wan1
///   Transport: rest
///   Router: 192.168.1.1:admin
///   Download: 25M - 500M
///     Floors: GREEN=100M, YELLOW=75M, SOFT_RED=50M, RED=25M
///   Upload: 10M - 50M
///     Floors: GREEN=10M, YELLOW=10M, RED=10M
///   Thresholds: GREEN<=15ms, SOFT_RED<=45ms, RED>80ms
///   Ping hosts: ['1.1.1.1', '8.8.8.8', '9.9.9.9']
///   Queue names: WAN-Download-1, WAN-Upload-1
/// ```
///
/// Rates print as Python's `{x/1e6:.0f}` (round half to even, which Rust's `{:.0}` also
/// does). Thresholds print as Python printed the YAML value; the typed config no longer
/// knows whether `15` was written `15.0`, so whole values print without `.0`
/// (docs/COMPAT.md).
pub fn validate_config_report(file: &str, cfg: &AutorateConfig) -> String {
    let m = &cfg.monitoring;
    let (dl, ul, t) = (&m.download, &m.upload, &m.thresholds);
    let hosts: Vec<String> = m.ping_hosts.iter().map(|h| py_str_repr(h)).collect();
    let mut s = String::new();
    let _ = writeln!(s, "Configuration valid: {file}");
    let _ = writeln!(s, "  WAN: {}", cfg.wan_name);
    let _ = writeln!(s, "  Transport: {}", transport_name(cfg.router.transport));
    let _ = writeln!(s, "  Router: {}:{}", cfg.router.host, cfg.router.user);
    let _ = writeln!(s, "  Download: {}M - {}M", m0(dl.floor_red), m0(dl.ceiling));
    let _ = writeln!(
        s,
        "    Floors: GREEN={}M, YELLOW={}M, SOFT_RED={}M, RED={}M",
        m0(dl.floor_green),
        m0(dl.floor_yellow),
        m0(dl.floor_soft_red),
        m0(dl.floor_red)
    );
    let _ = writeln!(s, "  Upload: {}M - {}M", m0(ul.floor_red), m0(ul.ceiling));
    let _ = writeln!(
        s,
        "    Floors: GREEN={}M, YELLOW={}M, RED={}M",
        m0(ul.floor_green),
        m0(ul.floor_yellow),
        m0(ul.floor_red)
    );
    let _ = writeln!(
        s,
        "  Thresholds: GREEN<={}ms, SOFT_RED<={}ms, RED>{}ms",
        fmt_plain(t.target_bloat_ms),
        fmt_plain(t.warn_bloat_ms),
        fmt_plain(t.hard_red_bloat_ms)
    );
    let _ = writeln!(s, "  Ping hosts: [{}]", hosts.join(", "));
    let _ = writeln!(s, "  Queue names: {}, {}", cfg.queues.download, cfg.queues.upload);
    s
}

/// `{bps / 1e6:.0f}`.
fn m0(b: Bps) -> String {
    format!("{:.0}", b.0 as f64 / 1e6)
}

/// Python's `repr` of a `str` inside a list: single quotes unless the text has one.
fn py_str_repr(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\'', "\\'"))
    }
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Rest => "rest",
        Transport::Ssh => "ssh",
    }
}

/// Mbit/s with up to three decimals and no trailing zeros: `500`, `0.5`, `37.5`.
fn mbit(b: Bps) -> String {
    let s = format!("{:.3}", b.as_mbps());
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn secs(d: std::time::Duration) -> String {
    let f = d.as_secs_f64();
    // Round away float noise from alpha-derived time constants (2.4999999 s → 2.5 s).
    let r = (f * 1e6).round() / 1e6;
    format!("{} s", fmt_plain(r))
}

fn router_line(r: &RouterConfig) -> String {
    let scheme = match r.scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    let (primary, fallback) = match r.transport {
        Transport::Rest => ("rest", "ssh"),
        Transport::Ssh => ("ssh", "rest"),
    };
    let mut tls = Vec::new();
    if r.scheme == Scheme::Https {
        tls.push(if r.verify_ssl { "certificate verified" } else { "certificate not verified" });
        if r.cert_sha256.is_some() {
            tls.push("certificate pinned");
        }
    }
    let password = if r.password.0.is_empty() { "no password" } else { "password set" };
    let mut line = format!(
        "router: {}@{} port {} ({scheme}), {primary} first, {fallback} fallback, {password}",
        r.user, r.host, r.port
    );
    for t in tls {
        let _ = write!(line, ", {t}");
    }
    line
}

fn direction_line(name: &str, d: &DirectionConfig, with_soft_red: bool) -> String {
    let floors =
        if d.floor_green == d.floor_red && d.floor_yellow == d.floor_red && d.floor_soft_red == d.floor_red {
            format!("floor {}", mbit(d.floor_red))
        } else if with_soft_red {
            format!(
                "floors green {} / yellow {} / soft_red {} / red {}",
                mbit(d.floor_green),
                mbit(d.floor_yellow),
                mbit(d.floor_soft_red),
                mbit(d.floor_red)
            )
        } else {
            format!(
                "floors green {} / yellow {} / red {}",
                mbit(d.floor_green),
                mbit(d.floor_yellow),
                mbit(d.floor_red)
            )
        };
    format!(
        "{name}: {} to {} Mbit/s, {floors}; step +{} after {} green, factor_down {} (yellow {})",
        mbit(d.floor_red),
        mbit(d.ceiling),
        mbit(d.step_up),
        d.green_required,
        fmt_float(d.factor_down),
        fmt_float(d.factor_down_yellow)
    )
}

fn endpoint(e: &Endpoint) -> String {
    if e.enabled { format!("{}:{}", e.host, e.port) } else { "off".into() }
}

fn storage(s: &Storage) -> String {
    match &s.db_path {
        Some(p) => format!("{p} (keep {} days, at most {} MiB)", s.retention_days, s.max_size_mb),
        None => "off".into(),
    }
}

fn autorate_summary(c: &AutorateConfig) -> String {
    let m = &c.monitoring;
    let t = &m.thresholds;
    let (down, up) = c.cake_queue_types();
    let mut lines = vec![
        format!("autorate config for WAN {}", c.wan_name),
        router_line(&c.router),
        format!("queues: download {} ({down}), upload {} ({up})", c.queues.download, c.queues.upload),
        direction_line("download", &m.download, true),
        direction_line("upload", &m.upload, false),
        format!(
            "thresholds: target {} ms, warn {} ms, hard_red {} ms, accel {} ms; baseline tau {}, load tau {}; baseline {} to {} ms (initial {} ms)",
            fmt_plain(t.target_bloat_ms),
            fmt_plain(t.warn_bloat_ms),
            fmt_plain(t.hard_red_bloat_ms),
            fmt_plain(t.accel_threshold_ms),
            secs(t.baseline_tau),
            secs(t.load_tau),
            fmt_plain(t.baseline_min_ms),
            fmt_plain(t.baseline_max_ms),
            fmt_plain(m.baseline_rtt_initial_ms),
        ),
    ];
    let mode = if m.use_median_of_three && m.ping_hosts.len() >= 3 {
        "median of the first three"
    } else {
        "first host"
    };
    lines.push(format!("reflectors: {} ({mode})", m.ping_hosts.join(", ")));
    let f = &m.fallback;
    if f.enabled {
        let mode = match f.mode {
            FallbackMode::Freeze => "freeze",
            FallbackMode::UseLastRtt => "use_last_rtt",
            FallbackMode::GracefulDegradation => "graceful_degradation",
        };
        let gateway = if f.check_gateway { f.gateway_ip.as_str() } else { "off" };
        let tcp: Vec<String> = f.tcp_targets.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        let tcp = if f.check_tcp && !tcp.is_empty() { tcp.join(" ") } else { "off".into() };
        lines.push(format!("ICMP fallback: {mode}, gateway {gateway}, tcp {tcp}"));
    } else {
        lines.push("ICMP fallback: off".into());
    }
    lines.push(format!("state file: {}", c.state_file_path()));
    lines.push(format!(
        "health: {}, metrics: {}, history: {}",
        endpoint(&c.health),
        endpoint(&c.metrics),
        storage(&c.storage)
    ));
    lines.join("\n")
}

fn steering_summary(c: &SteeringConfig) -> String {
    let t = &c.thresholds;
    let mut lines = vec![
        format!(
            "steering config {}: primary WAN {}, alternate {}",
            c.wan_name, c.primary_wan, c.alternate_wan
        ),
        router_line(&c.router),
        format!("mangle rule comment: {:?}", c.mangle_comment),
        format!(
            "measurement: ping {} x{} every {}; autorate state file {}",
            c.ping_host,
            c.ping_count,
            secs(c.interval),
            c.primary_state_file
        ),
        format!("queues: download {}, upload {}", c.primary_download_queue, c.primary_upload_queue),
    ];
    if c.cake_aware {
        lines.push(format!(
            "thresholds: green {} ms, yellow {} ms, red {} ms with {} drop(s) and {} queued (or above {} ms alone); steer after {} red, return after {} green",
            fmt_plain(t.green_rtt_ms),
            fmt_plain(t.yellow_rtt_ms),
            fmt_plain(t.red_rtt_ms),
            t.min_drops_red,
            t.min_queue_red,
            fmt_plain(t.severe_rtt_ms),
            t.red_samples_required,
            t.green_samples_required
        ));
    } else {
        lines.push(format!(
            "thresholds (RTT only): bad {} ms x{}, recovery {} ms x{}",
            fmt_plain(t.bad_threshold_ms),
            t.bad_samples,
            fmt_plain(t.recovery_threshold_ms),
            t.good_samples
        ));
    }
    lines.push(match &c.confidence {
        Some(cc) => format!(
            "confidence scoring: steer at {}, recover at {}{}",
            fmt_plain(cc.steer_threshold),
            fmt_plain(cc.recovery_threshold),
            if cc.dry_run { " (dry run: log only)" } else { "" }
        ),
        None => "confidence scoring: off".into(),
    });
    let w = &c.wan_state;
    lines.push(if w.enabled {
        format!(
            "WAN awareness: on (autorate zone from its state file; stale after {}, ignored for {} after start{})",
            secs(w.staleness),
            secs(w.grace_period),
            if w.wan_override { "; RED zone alone steers" } else { "" }
        )
    } else {
        "WAN awareness: off".into()
    });
    lines.push(format!("replies count for {} (timeouts.ping)", secs(c.ping_timeout)));
    lines.push(format!("state file: {}", c.state_file));
    lines.push(format!(
        "health: {}, metrics: {}, history: {}",
        endpoint(&c.health),
        endpoint(&c.metrics),
        storage(&c.storage)
    ));
    lines.join("\n")
}
