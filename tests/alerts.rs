//! Issue 14, alerts: the autorate daemon on the closed-loop testbed with an `alerting`
//! block pointing at a local receiver in the test's namespace. A collapse below the floor
//! must be delivered within 1 s of its sustain time (generous bound here, the figure is
//! printed), its recovery too; a receiver that accepts and never answers costs retries,
//! never ticks. Needs root; skips otherwise.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::e2e::Testbed;
use crate::health::http_get;
use crate::support::closed_loop::CapacityTrace;
use crate::support::netns::is_root;

/// What the receiver got: (arrival, body).
type Got = Arc<Mutex<Vec<(Instant, String)>>>;

/// A webhook receiver bound inside the testbed's namespace: answers 200 after reading a
/// whole request, or (hang) accepts and never answers. Stops when `stop` is set.
struct Receiver {
    got: Got,
    connections: Arc<Mutex<u32>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// Binds `port` inside the testbed's namespace and serves it.
    fn start_on(bed: &Testbed, port: u16, hang: bool) -> Receiver {
        Receiver::start_tls(bed, port, hang, None)
    }

    /// [`Receiver::start_on`], over TLS with `tls` when given.
    fn start_tls(bed: &Testbed, port: u16, hang: bool, tls: Option<Arc<rustls::ServerConfig>>) -> Receiver {
        let listener = bed
            .rig
            .ns()
            .run_in(move || TcpListener::bind(("127.0.0.1", port)))
            .expect("namespace")
            .expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let got: Got = Arc::default();
        let connections = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, c, st) = (got.clone(), connections.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            // Bounded by `stop` (set in Drop) and a hard 5 minutes.
            let start = Instant::now();
            while !st.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(300) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        *c.lock().expect("lock") += 1;
                        if hang {
                            held.push(s);
                            continue;
                        }
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        const OK: &[u8] = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
                        match &tls {
                            None => {
                                if let Some(body) = read_request(&mut s) {
                                    g.lock().expect("lock").push((Instant::now(), body));
                                    let _ = s.write_all(OK);
                                }
                            }
                            Some(cfg) => {
                                let Ok(conn) = rustls::ServerConnection::new(Arc::clone(cfg)) else {
                                    continue;
                                };
                                let mut t = rustls::StreamOwned::new(conn, s);
                                if let Some(body) = read_request(&mut t) {
                                    g.lock().expect("lock").push((Instant::now(), body));
                                    let _ = t.write_all(OK);
                                    let _ = t.flush();
                                    t.conn.send_close_notify();
                                    let _ = t.flush();
                                }
                            }
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Receiver { got, connections, stop, thread: Some(thread) }
    }

    fn bodies(&self) -> Vec<(Instant, serde_json::Value)> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .map(|(t, b)| (*t, serde_json::from_str(b).unwrap_or(serde_json::Value::Null)))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request with a Content-Length body; returns the body.
fn read_request(s: &mut impl Read) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Bounded by the read timeout and 1 MB.
    while buf.len() < 1 << 20 {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string());
            }
        }
    }
    None
}

fn alerting_block(port: u16, extra: &str) -> String {
    format!(
        "alerting:\n  enabled: true\n  webhook_url: \"http://127.0.0.1:{port}/hooks/SECRET-TOKEN\"\n  timeout_sec: 1\n  max_attempts: 3\n  default_sustained_sec: 3\n{extra}"
    )
}

macro_rules! need_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root (network namespace, TUN and raw ICMP)");
            return;
        }
    };
}

#[test]
fn issue_14_a_sustained_collapse_is_alerted_and_its_recovery_too() {
    need_root!();
    // The port goes into the config before the namespace exists: a fixed port, bound
    // inside the testbed's namespace right after it starts (alerts need 3 s anyway).
    let port = 18_080;
    let mut bed = Testbed::start_cfg("alerts", false, "", &alerting_block(port, ""));
    let rx = Receiver::start_on(&bed, port, false);
    let trace = CapacityTrace::Steps(vec![(0.0, 100.0), (6.0, 5.0), (20.0, 100.0)]);
    let rig = &bed.rig;
    let mut congested_at: Option<f64> = None;
    let mut cleared_at: Option<f64> = None;
    let t0 = Instant::now();
    bed.drive(&trace, 32, |t| {
        let zone = http_get(rig, 9101, "/health").and_then(|(_, b)| {
            let v: serde_json::Value = serde_json::from_str(&b).ok()?;
            v["wans"][0]["download"]["state"].as_str().map(str::to_owned)
        });
        let red = matches!(zone.as_deref(), Some("RED" | "SOFT_RED"));
        if red && congested_at.is_none() {
            congested_at = Some(t);
        }
        if !red && congested_at.is_some() && t > 20.0 && cleared_at.is_none() {
            cleared_at = Some(t);
        }
    });
    let (code, log) = bed.stop();
    assert_eq!(code, 0, "{log}");
    let got = rx.bodies();
    let at = |name: &str| {
        got.iter()
            .find(|(_, v)| v["type"] == name)
            .map(|(t, v)| (t.duration_since(t0).as_secs_f64(), v.clone()))
    };
    let fired = at("congestion_sustained_dl");
    let recovered = at("congestion_recovered_dl");
    println!(
        "zone RED/SOFT_RED seen at {congested_at:?} s, alert at {:?} s (sustain 3 s); cleared at {cleared_at:?} s, recovery alert at {:?} s",
        fired.as_ref().map(|f| f.0),
        recovered.as_ref().map(|f| f.0)
    );
    let (fired_t, body) = fired.unwrap_or_else(|| panic!("no congestion alert: {got:?}\n{log}"));
    let c = congested_at.expect("zone seen");
    // Sustain 3 s; delivered within 1 s of it (2 s of slack here for the shared machine and
    // the 100 ms health polling).
    assert!(fired_t >= c + 3.0 - 0.3 && fired_t <= c + 3.0 + 3.0, "alert at {fired_t}, zone at {c}");
    assert_eq!(body["wan"], "wan1");
    assert_eq!(body["severity"], "critical");
    assert!(body["details"]["rate_mbps"].is_string(), "{body}");
    assert!(recovered.is_some(), "no recovery alert: {got:?}\n{log}");
    assert!(!log.contains("SECRET-TOKEN"), "the webhook path leaked into the log\n{log}");
    assert!(log.contains("alerts go to http://127.0.0.1:18080"), "{log}");
}

#[test]
fn issue_14_a_receiver_that_hangs_costs_retries_not_ticks() {
    need_root!();
    let port = 18_081;
    let mut bed = Testbed::start_cfg(
        "alerts-hang",
        false,
        "",
        &alerting_block(port, "  rules:\n    congestion_sustained_dl: {sustained_sec: 0.5}\n"),
    );
    let rx = Receiver::start_on(&bed, port, true);
    let trace = CapacityTrace::Steps(vec![(0.0, 100.0), (3.0, 5.0)]);
    let rig = &bed.rig;
    let mut worst_health = Duration::ZERO;
    bed.drive(&trace, 14, |_| {
        let t = Instant::now();
        let _ = http_get(rig, 9101, "/health");
        worst_health = worst_health.max(t.elapsed());
    });
    let (code, log) = bed.stop();
    assert_eq!(code, 0, "{log}");
    let connections = *rx.connections.lock().expect("lock");
    let stats = log.lines().find(|l| l.contains("ticks=")).unwrap_or_default().to_string();
    println!(
        "hanging receiver: {connections} connections (attempts); slowest /health {worst_health:?}; {stats}"
    );
    assert!(connections >= 2, "the alert was not retried: {connections} attempts\n{log}");
    let field = |k: &str| {
        stats
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(u64::MAX)
    };
    // Generous (shared machine): the loop never waited for the receiver.
    assert!(field("missed") <= 5, "{stats}\n{log}");
    assert!(field("late_max_us") < 250_000, "{stats}\n{log}");
    assert!(worst_health < Duration::from_millis(1500), "/health took {worst_health:?}");
    assert!(log.contains("webhook http://127.0.0.1:18081"), "failures are logged\n{log}");
    assert!(!log.contains("SECRET-TOKEN"), "{log}");
}

#[test]
fn issue_14_alerts_go_out_over_https() {
    need_root!();
    let port = 18_443;
    let cert = crate::support::certs::TestCert::generate().expect("openssl test certificate");
    let block = format!(
        "alerting:\n  enabled: true\n  webhook_url: \"https://127.0.0.1:{port}/hooks/SECRET-TOKEN\"\n  verify_ssl: false\n  timeout_sec: 2\n  rules:\n    congestion_sustained_dl: {{sustained_sec: 0.5}}\n"
    );
    let mut bed = Testbed::start_cfg("alerts-https", false, "", &block);
    let server =
        crate::support::fake_router::server_config(cert.cert_der.clone(), cert.key_der.clone(), true);
    let rx = Receiver::start_tls(&bed, port, false, Some(server));
    let trace = CapacityTrace::Steps(vec![(0.0, 100.0), (3.0, 5.0)]);
    bed.drive(&trace, 9, |_| {});
    let (code, log) = bed.stop();
    assert_eq!(code, 0, "{log}");
    let got = rx.bodies();
    println!(
        "https receiver got {} alert(s): {:?}",
        got.len(),
        got.iter().map(|(_, v)| v["type"].clone()).collect::<Vec<_>>()
    );
    assert!(got.iter().any(|(_, v)| v["type"] == "congestion_sustained_dl"), "{got:?}\n{log}");
    assert!(!log.contains("SECRET-TOKEN"), "{log}");
}
