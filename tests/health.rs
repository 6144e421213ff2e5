//! The health and metrics endpoints of the running binary, from inside the test's network
//! namespace (the daemon binds 127.0.0.1 there). Needs root; skips otherwise.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::netns::is_root;
use crate::support::reflector::Rig;

const FAST: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));

/// A GET from inside the namespace; returns (status, body).
pub fn http_get(rig: &Rig, port: u16, path: &str) -> Option<(u16, String)> {
    let path = path.to_string();
    rig.ns()
        .run_in(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).ok()?;
            let text = String::from_utf8_lossy(&buf).into_owned();
            let status = text.split(' ').nth(1)?.parse().ok()?;
            let body = text.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap_or_default();
            Some((status, body))
        })
        .ok()
        .flatten()
}

pub fn config(dir: &Path, port_base: u16, router: &str) -> String {
    let d = dir.display();
    format!(
        r#"wan_name: wan1
router: {{{router}}}
queues: {{download: WAN-Download-1, upload: WAN-Upload-1}}
continuous_monitoring:
  enabled: true
  baseline_rtt_initial: 20
  ping_hosts: ["198.18.0.1"]
  download: {{ceiling_mbps: 100, step_up_mbps: 5, factor_down: 0.85, floor_mbps: 10}}
  upload: {{ceiling_mbps: 20, step_up_mbps: 1, factor_down: 0.9, floor_mbps: 5}}
  thresholds: {{target_bloat_ms: 15, warn_bloat_ms: 45, baseline_time_constant_sec: 60, load_time_constant_sec: 0.1}}
  fallback_checks: {{enabled: false}}
logging: {{main_log: "{d}/wan1.log", debug_log: "{d}/wan1_debug.log"}}
lock_file: "{d}/wan1.lock"
lock_timeout: 300
health_check: {{enabled: true, host: 127.0.0.1, port: {port_base}}}
metrics: {{enabled: true, host: 127.0.0.1, port: {}}}
storage: {{db_path: ""}}
"#,
        port_base + 1
    )
}

fn wait_http(rig: &Rig, port: u16) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if http_get(rig, port, "/health").is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn health_is_503_during_a_router_outage_and_metrics_parse_as_prometheus() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespace and TUN)");
        return;
    }
    let rig = Rig::start(&[(FAST, Some(Duration::from_millis(10)))]).expect("rig");
    let dir = std::env::temp_dir().join(format!("wanctl-health-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let cfg = dir.join("wan1.yaml");
    let router = r#"host: "127.0.0.1", user: admin, password: "pw-do-not-leak", ssh_key: /nonexistent, transport: rest, port: 9"#;
    std::fs::write(&cfg, config(&dir, 19101, router)).expect("write");
    let stderr = dir.join("stderr.log");
    let mut child = crate::support::child::ChildGuard::new(
        rig.ns()
            .command(env!("CARGO_BIN_EXE_wanctl"))
            .env("WANCTL_SSH", "false")
            .args(["--config", cfg.to_str().expect("utf8")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr"))
            .spawn()
            .expect("spawn"),
    );
    assert!(wait_http(&rig, 19101), "health endpoint never answered");
    // The first router write must have failed; on a loaded machine that can take a moment.
    let start = Instant::now();
    let (status, body) = loop {
        let (status, body) = http_get(&rig, 19101, "/health").expect("health");
        if status == 503 || start.elapsed() > Duration::from_secs(5) {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["status"], "degraded");
    assert_eq!(v["router_reachable"], false);
    assert_eq!(v["wans"][0]["router_connectivity"]["is_reachable"], false);
    let kind = v["wans"][0]["router_connectivity"]["last_failure_type"].as_str().unwrap_or("");
    assert!(["connection_refused", "unknown"].contains(&kind), "{body}");
    for key in [
        "status",
        "uptime_seconds",
        "version",
        "consecutive_failures",
        "wan_count",
        "wans",
        "router_reachable",
        "pid",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {body}");
    }
    assert!(v["wans"][0]["reflectors"][0]["rtt_ms"].is_number(), "{body}");
    assert_eq!(http_get(&rig, 19101, "/").map(|r| r.0), Some(503));
    assert_eq!(http_get(&rig, 19101, "/nope").map(|r| r.0), Some(404));
    assert_eq!(http_get(&rig, 19101, "/health?x=1").map(|r| r.0), Some(404), "the original 404s on a query");

    let (status, text) = http_get(&rig, 19102, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    for name in [
        "wanctl_bandwidth_mbps",
        "wanctl_rtt_baseline_ms",
        "wanctl_rtt_load_ms",
        "wanctl_rtt_delta_ms",
        "wanctl_state",
        "wanctl_cycles_total",
        "wanctl_router_updates_total",
        "wanctl_rate_limit_events_total",
        "wanctl_ping_failures_total",
        "wanctl_tick_lateness_seconds_bucket",
        "wanctl_router_transport",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    let prom = dir.join("metrics.txt");
    std::fs::write(&prom, &text).expect("write");
    let check = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\nfams=list(p(open(sys.argv[1]).read()))\nassert len(fams)>=10, fams\nprint(len(fams))")
        .arg(&prom)
        .output()
        .expect("python3");
    let stderr_text = String::from_utf8_lossy(&check.stderr);
    if stderr_text.contains("No module named 'prometheus_client'") {
        if crate::support::allow_skip() {
            eprintln!(
                "skipped the exposition check (WANCTL_TEST_ALLOW_SKIP): prometheus_client is not installed"
            );
        } else {
            panic!(
                "python3's prometheus_client is not installed: run `make test-deps` (WANCTL_TEST_ALLOW_SKIP=1 skips on purpose)"
            );
        }
    }
    assert!(
        check.status.success() || crate::support::allow_skip(),
        "prometheus_client rejected the exposition: {}\n{text}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(http_get(&rig, 19102, "/health").map(|r| (r.0, r.1)), Some((200, "OK\n".into())));

    // 200 concurrent clients while ticking: every one answered, ticks on time.
    let answered = rig
        .ns()
        .run_in(|| {
            let handles: Vec<_> = (0..200)
                .map(|_| {
                    std::thread::spawn(|| {
                        let mut s = TcpStream::connect(("127.0.0.1", 19101)).ok()?;
                        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
                        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
                        let mut buf = Vec::new();
                        s.read_to_end(&mut buf).ok()?;
                        Some(buf.starts_with(b"HTTP/1.1 503"))
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok().flatten()).filter(|ok| *ok).count()
        })
        .expect("hammer");
    assert_eq!(answered, 200);

    child.stop(Duration::from_secs(3));
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(!log.contains("pw-do-not-leak"), "password in log");
    assert!(!body.contains("pw-do-not-leak"));
    let late_max: u64 = log
        .split_whitespace()
        .find_map(|w| w.strip_prefix("late_max_us="))
        .and_then(|v| v.parse().ok())
        .expect("shutdown stats");
    // Lateness counts missed ticks in full since issue 18 (a hiccup of a loaded machine
    // costs one or two); a loop blocked by the hammer would show seconds.
    assert!(late_max < 250_000, "a tick waited {late_max} us under the hammer\n{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
