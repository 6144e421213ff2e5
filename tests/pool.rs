//! Issue 13 over real ICMP: a reflector pool of IPv4 and IPv6 TUN reflectors in a namespace
//! the test creates; one active reflector goes silent, another's path grows by 30 ms; both
//! are replaced and the measurement never jumps. An IPv6-only pool measures. Needs root;
//! skips otherwise. Bounds are generous (shared machines): the figures come from `make sim`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::robustness::{DaemonGuard, TempDir};
use crate::support::netns::is_root;
use crate::support::reflector::Rig;

fn v4(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, n))
}

fn v6(n: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, n))
}

fn config(dir: &std::path::Path, port: u16, pool: &[IpAddr], extra: &str) -> String {
    let hosts: Vec<String> = pool.iter().map(|a| format!("\"{a}\"")).collect();
    let router =
        r#"host: "127.0.0.1", user: admin, password: "pw", ssh_key: /nonexistent, transport: rest, port: 9"#;
    crate::health::config(dir, port, router).replace(
        r#"  ping_hosts: ["198.18.0.1"]"#,
        &format!("  ping_hosts: [{}]\n  reflectors: {{active: 3{extra}}}", hosts.join(", ")),
    )
}

fn health(rig: &Rig, port: u16) -> Option<serde_json::Value> {
    let (_, body) = crate::health::http_get(rig, port, "/health")?;
    serde_json::from_str(&body).ok()
}

/// Polls /health until `f` holds (at most `limit`); returns the last document that held.
fn wait_for(
    rig: &Rig,
    port: u16,
    limit: Duration,
    f: impl Fn(&serde_json::Value) -> bool,
) -> Option<serde_json::Value> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(h) = health(rig, port)
            && f(&h)
        {
            return Some(h);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn active(h: &serde_json::Value) -> Vec<String> {
    h["wans"][0]["reflectors"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter(|r| r["state"] == "active")
                .filter_map(|r| r["host"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn state_of(h: &serde_json::Value, host: &str) -> Option<String> {
    h["wans"][0]["reflectors"].as_array()?.iter().find(|r| r["host"] == host)?["state"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn issue_13_silent_and_slow_reflectors_are_replaced_over_real_icmp_v4_and_v6() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespace and TUN)");
        return;
    }
    let pool = [v4(1), v4(2), v4(3), v6(1), v6(2), v6(3)];
    let rig = Rig::start(&pool.map(|a| (a, Some(Duration::from_millis(20))))).expect("rig");
    let dir = TempDir::new("pool");
    let port = 19_231;
    let mut d =
        DaemonGuard::start(&rig, &dir.0, &config(&dir.0, port, &pool, ", replace_outlier_after_sec: 3"));
    let ready = wait_for(&rig, port, Duration::from_secs(10), |h| {
        h["wans"][0]["reflector_quorum"]["ok"] == true && active(h).len() == 3
    })
    .unwrap_or_else(|| panic!("no quorum of 3 active reflectors\n{}", d.stop()));
    // One active reflector goes silent.
    let silent = active(&ready)[0].clone();
    rig.set_loss(silent.parse().expect("ip"), 1.0);
    let after = wait_for(&rig, port, Duration::from_secs(8), |h| {
        state_of(h, &silent).as_deref() == Some("benched") && active(h).len() + 1 >= 3
    });
    assert!(after.is_some(), "silent reflector {silent} not replaced\n{}", d.stop());
    // Another one's path grows by 30 ms: replaced within its outlier time, and the
    // measurement stays near the base RTT meanwhile.
    let h = wait_for(&rig, port, Duration::from_secs(5), |h| {
        active(h).iter().all(|a| *a != silent) && active(h).len() == 3
    })
    .unwrap_or_else(|| panic!("replacement never warmed up\n{}", d.stop()));
    let slow = active(&h)[0].clone();
    rig.set_delay(slow.parse().expect("ip"), Some(Duration::from_millis(50)));
    let start = Instant::now();
    let mut worst: f64 = 0.0;
    let mut replaced = false;
    while start.elapsed() < Duration::from_secs(20) {
        if let Some(h) = health(&rig, port) {
            worst = worst.max(h["wans"][0]["last_rtt_ms"].as_f64().unwrap_or(0.0));
            if state_of(&h, &slow).as_deref() == Some("benched") {
                replaced = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = d.stop();
    assert!(replaced, "outlier {slow} not replaced within 20 s\n{log}");
    assert!(worst < 35.0, "the outlier moved the measurement to {worst} ms\n{log}");
    assert!(log.contains(&format!("reflector {silent} stopped answering; replaced by")), "{log}");
    assert!(log.contains(&format!("reflector {slow} RTT well above the others'")), "{log}");
}

#[test]
fn issue_13_an_ipv6_only_pool_measures() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespace and TUN)");
        return;
    }
    let pool = [v6(4), v6(5), v6(6)];
    let rig = Rig::start(&pool.map(|a| (a, Some(Duration::from_millis(15))))).expect("rig");
    let dir = TempDir::new("pool-v6");
    let port = 19_241;
    let mut d = DaemonGuard::start(&rig, &dir.0, &config(&dir.0, port, &pool, ""));
    let h = wait_for(&rig, port, Duration::from_secs(10), |h| {
        h["wans"][0]["reflector_quorum"]["ok"] == true && h["wans"][0]["last_rtt_ms"].as_f64().is_some()
    });
    let log = d.stop();
    let h = h.unwrap_or_else(|| panic!("no IPv6 measurement\n{log}"));
    let rtt = h["wans"][0]["last_rtt_ms"].as_f64().unwrap_or(0.0);
    assert!((10.0..40.0).contains(&rtt), "rtt {rtt}\n{log}");
    assert_eq!(active(&h).len(), 3, "{h}");
}
