//! Prometheus text exposition (format 0.0.4) of a [`Snapshot`]: every metric name and label
//! of the original (INTERFACES.md §3) plus wanctl's additions. Pure.
//!
//! Layout as the original: gauge families first, then counters, each family sorted by
//! `name{labels}` with `# HELP` and `# TYPE`, labels sorted by key, `wan` lower-cased,
//! gauges printed Python-style (`940.0`) and counters as integers. Histograms (additions)
//! come last.

use std::fmt::Write as _;

use crate::engine::health::{Snapshot, py_float};
use crate::engine::stats::{BUCKETS_US, Histogram};

struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    series: Vec<(String, String)>,
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let mut p: Vec<&(&str, &str)> = pairs.iter().collect();
    p.sort_by_key(|(k, _)| *k);
    let inner: Vec<String> = p.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if inner.is_empty() { String::new() } else { format!("{{{}}}", inner.join(",")) }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    base_labels: &[(&str, &str)],
    h: &Histogram,
    header: bool,
) {
    if header {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
    }
    let mut cumulative = 0;
    for (i, c) in h.buckets().iter().enumerate() {
        cumulative += c;
        let le = match BUCKETS_US.get(i) {
            Some(us) => py_float(*us as f64 / 1e6),
            None => "+Inf".to_string(),
        };
        let mut l: Vec<(&str, &str)> = base_labels.to_vec();
        l.push(("le", &le));
        let _ = writeln!(out, "{name}_bucket{} {cumulative}", labels(&l));
    }
    let _ = writeln!(out, "{name}_sum{} {}", labels(base_labels), py_float(h.sum_us() as f64 / 1e6));
    let _ = writeln!(out, "{name}_count{} {}", labels(base_labels), h.count());
}

/// The `/metrics` body.
pub fn render(s: &Snapshot) -> String {
    let mut gauges: Vec<Family> = Vec::new();
    let mut counters: Vec<Family> = Vec::new();
    let mut g =
        |name, help, series: Vec<(String, String)>| gauges.push(Family { name, help, kind: "gauge", series });
    let wans: Vec<(String, &crate::engine::health::WanSnapshot)> =
        s.wans.iter().map(|w| (w.name.to_lowercase(), w)).collect();
    let per = |f: &dyn Fn(&crate::engine::health::WanSnapshot) -> f64| -> Vec<(String, String)> {
        wans.iter().map(|(n, w)| (labels(&[("wan", n)]), py_float(f(w)))).collect()
    };
    let per_dir = |f: &dyn Fn(&crate::engine::health::WanSnapshot, bool) -> f64| -> Vec<(String, String)> {
        let mut v = Vec::new();
        for (n, w) in &wans {
            v.push((labels(&[("direction", "download"), ("wan", n)]), py_float(f(w, true))));
            v.push((labels(&[("direction", "upload"), ("wan", n)]), py_float(f(w, false))));
        }
        v
    };
    g(
        "wanctl_bandwidth_mbps",
        "Current bandwidth limit in Mbps",
        per_dir(&|w, d| if d { w.download.0 } else { w.upload.0 }),
    );
    g("wanctl_rtt_baseline_ms", "Baseline RTT in milliseconds", per(&|w| w.baseline_rtt_ms));
    g("wanctl_rtt_load_ms", "Load RTT (EWMA smoothed) in milliseconds", per(&|w| w.load_rtt_ms));
    g(
        "wanctl_rtt_delta_ms",
        "RTT delta (load - baseline) in milliseconds",
        per(&|w| (w.load_rtt_ms - w.baseline_rtt_ms).max(0.0)),
    );
    g(
        "wanctl_state",
        "Current state (1=GREEN, 2=YELLOW, 3=SOFT_RED, 4=RED)",
        per_dir(&|w, d| f64::from(if d { w.zone_codes.0 } else { w.zone_codes.1 })),
    );
    g(
        "wanctl_router_reachable",
        "Router reachable (1) or not (0)",
        per(&|w| if w.is_reachable { 1.0 } else { 0.0 }),
    );
    let mut transport = Vec::new();
    let mut refl_rtt = Vec::new();
    let mut refl_loss = Vec::new();
    let mut refl_active = Vec::new();
    let mut quorum = Vec::new();
    for (n, w) in &wans {
        for t in ["rest", "ssh"] {
            let v = if w.transport == Some(t) { 1.0 } else { 0.0 };
            transport.push((labels(&[("transport", t), ("wan", n)]), py_float(v)));
        }
        for r in &w.reflectors {
            if let Some(rtt) = r.srtt_ms {
                refl_rtt.push((labels(&[("reflector", &r.host), ("wan", n)]), py_float(rtt)));
            }
            refl_loss.push((labels(&[("reflector", &r.host), ("wan", n)]), py_float(r.loss)));
            refl_active.push((
                labels(&[("reflector", &r.host), ("state", r.state), ("wan", n)]),
                py_float(if r.state == "active" { 1.0 } else { 0.0 }),
            ));
        }
    }
    g("wanctl_router_transport", "Router transport in use (1 = active)", transport);
    let mut achieved = Vec::new();
    let mut law = Vec::new();
    for (n, w) in &wans {
        for (dir, v) in [("download", w.load.download_mbps), ("upload", w.load.upload_mbps)] {
            if let Some(v) = v {
                achieved.push((labels(&[("direction", dir), ("wan", n)]), py_float(v)));
            }
        }
        law.push((labels(&[("wan", n)]), py_float(if w.load.law == "load" { 1.0 } else { 0.0 })));
    }
    g("wanctl_achieved_rate_mbps", "Achieved rate per direction from the queue counters (Mbit/s)", achieved);
    g("wanctl_load_aware", "Load-aware control in use (1) or the RTT-only law (0)", law);
    g("wanctl_reflector_rtt_ms", "Smoothed RTT per reflector in milliseconds", refl_rtt);
    g("wanctl_reflector_loss_ratio", "Recent loss ratio per reflector", refl_loss);
    g(
        "wanctl_reflector_active",
        "Reflector counted in measurements (1) or not (0), with its pool state",
        refl_active,
    );
    for (n, w) in &wans {
        quorum.push((labels(&[("kind", "healthy"), ("wan", n)]), py_float(w.quorum.0 as f64)));
        quorum.push((labels(&[("kind", "needed"), ("wan", n)]), py_float(w.quorum.1 as f64)));
    }
    g("wanctl_reflector_quorum", "Healthy active reflectors and the quorum a measurement needs", quorum);
    let mut c = |name, help, f: &dyn Fn(&crate::engine::health::WanSnapshot) -> u64| {
        let series = wans.iter().map(|(n, w)| (labels(&[("wan", n)]), f(w).to_string())).collect();
        counters.push(Family { name, help, kind: "counter", series });
    };
    c("wanctl_cycles_total", "Total number of autorate cycles", &|w| w.cycles);
    c("wanctl_router_updates_total", "Total router configuration updates", &|w| w.router_updates);
    c("wanctl_rate_limit_events_total", "Total rate limit throttling events", &|w| w.rate_limit_events);
    c("wanctl_ping_failures_total", "Total ping measurement failures", &|w| w.ping_failures);
    c("wanctl_router_write_failures_total", "Total failed router writes", &|w| w.router_write_failures);
    c("wanctl_counter_reads_total", "Queue-counter reads started", &|w| w.load.reads);
    c("wanctl_counter_read_failures_total", "Queue-counter reads that failed or lacked a queue", &|w| {
        w.load.failures
    });
    c("wanctl_counter_resets_total", "Queue-counter resets seen (router reboot, reset-counters)", &|w| {
        w.load.resets
    });
    let mut out = String::with_capacity(4096);
    for fams in [&mut gauges, &mut counters] {
        fams.sort_by_key(|f| f.name);
        for f in fams.iter_mut() {
            if f.series.is_empty() {
                continue;
            }
            f.series.sort();
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
            for (l, v) in &f.series {
                let _ = writeln!(out, "{}{l} {v}", f.name);
            }
        }
    }
    histogram(
        &mut out,
        "wanctl_tick_lateness_seconds",
        "Lateness of 50 ms ticks behind schedule",
        &[],
        &s.lateness,
        true,
    );
    for (i, (n, w)) in wans.iter().enumerate() {
        histogram(
            &mut out,
            "wanctl_router_request_seconds",
            "Router command latency (submit to result)",
            &[("wan", n)],
            &w.router_latency,
            i == 0,
        );
    }
    out
}

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
