//! Issue 16: hostile clients against the health/metrics/status responder and the history
//! endpoint of a running daemon (in a namespace the test creates): 100 KB header lines,
//! request smuggling (Content-Length with Transfer-Encoding, two Content-Lengths), SQL
//! metacharacters and absurd ranges in the query, a non-UTF-8 target, pipelined requests,
//! a half-closed socket. Every bad request gets a clean 4xx, nothing gets a 5xx but the
//! documented 503s, and the daemon keeps ticking. Needs root; skips otherwise.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use crate::robustness::{DaemonGuard, TempDir, config_with_history, history_db, wait_http};
use crate::support::netns::is_root;
use crate::support::reflector::Rig;

/// Sends `raw`, optionally half-closes, reads until close or 3 s; returns every status code
/// seen in order (empty if the server closed without answering).
pub fn exchange(port: u16, raw: &[u8], half_close: bool) -> Vec<u16> {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return vec![] };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = s.write_all(raw);
    if half_close {
        let _ = s.shutdown(Shutdown::Write);
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    // Bounded: 3 s read timeout per read, at most 4 MiB.
    while buf.len() < 4 << 20 {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    text.match_indices("HTTP/1.1 ").filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok()).collect()
}

/// The hostile requests: (name, bytes, half-close after sending).
pub fn hostile_requests() -> Vec<(&'static str, Vec<u8>, bool)> {
    let long_header = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n", "a".repeat(100_000));
    vec![
        ("100 KB header line", long_header.into_bytes(), false),
        (
            "Content-Length with Transfer-Encoding",
            b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /health HTTP/1.1\r\n\r\n".to_vec(),
            false,
        ),
        (
            "two Content-Lengths",
            b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 30\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n".to_vec(),
            false,
        ),
        (
            "SQL metacharacters",
            b"GET /metrics/history?wan=%27%20OR%201%3D1%20--&metrics=x%27%3B%20DROP%20TABLE%20metrics%3B-- HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            false,
        ),
        (
            "absurd range",
            b"GET /metrics/history?range=999999999999h&limit=99999999999999999999&offset=-5 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            false,
        ),
        ("non-UTF-8 target", b"GET /health\xff\xfe?range=\xc3\x28 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), false),
        (
            "pipelined",
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            false,
        ),
        ("half-closed after the request", b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), true),
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n".to_vec(), false),
    ]
}

#[test]
fn issue_16_hostile_requests_get_clean_4xx_and_the_daemon_keeps_ticking() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespace and TUN)");
        return;
    }
    let rig = Rig::start(&[(crate::robustness::FAST, Some(Duration::from_millis(10)))]).expect("rig");
    let dir = TempDir::new("hostile");
    let db = dir.0.join("metrics.db");
    history_db(&db, 20_000);
    let port = 19_251;
    let mut d = DaemonGuard::start(&rig, &dir.0, &config_with_history(&dir.0, port, &db));
    assert!(wait_http(&rig, port), "health never answered\n{}", d.stop());
    let preds: [fn(&[u16]) -> bool; 9] = [
        |c| c.first().is_some_and(|s| (400..500).contains(s)) || c.is_empty(),
        |c| c.first().is_some_and(|s| (400..500).contains(s)) && !c[1..].contains(&200),
        |c| c.first().is_some_and(|s| (400..500).contains(s)) && !c[1..].contains(&200),
        |c| c.first().is_some_and(|s| *s == 200 || *s == 503 || (400..500).contains(s)),
        |c| c.first().is_some_and(|s| (400..500).contains(s)),
        |c| c.first().is_some_and(|s| (400..500).contains(s)),
        |c| !c.is_empty() && c.iter().all(|s| matches!(s, 200 | 503 | 404)),
        |c| c.first().is_some_and(|s| matches!(s, 200 | 503)),
        |c| c.first().is_some_and(|s| (400..500).contains(s)) || c.is_empty(),
    ];
    let cases = hostile_requests();
    assert_eq!(cases.len(), preds.len());
    let mut failures = Vec::new();
    for ((name, raw, half), ok) in cases.iter().zip(preds) {
        let codes = rig.ns().run_in(|| exchange(port, raw, *half)).expect("in namespace");
        println!("{name:<40} -> {codes:?}");
        if !ok(&codes) {
            failures.push(format!("{name}: {codes:?}"));
        }
    }
    // Still ticking and answering.
    let after =
        rig.ns().run_in(|| exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", false)).expect("ns");
    let log = d.stop();
    assert!(failures.is_empty(), "{failures:#?}\n{log}");
    assert!(
        after.first().is_some_and(|s| matches!(s, 200 | 503)),
        "no answer after the hostile requests\n{log}"
    );
    assert!(log.contains("ticks="), "the daemon did not shut down cleanly\n{log}");
}
