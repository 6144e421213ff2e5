//! An in-tree mutational fuzzer for every parser that takes outside input (issue 16): HTTP
//! responses (GET and HEAD framing, chunked bodies, split at random points) and requests,
//! RouterOS REST JSON (every `RestCall` step at several statuses) and console text (every
//! `Reply` decoder), ICMP replies (v4/v6, raw and datagram framing), the YAML config
//! loader (autorate and steering), both state files, the `/metrics/history` query string,
//! `wanctl history` and the top-level command line. Seeded from the fixtures.
//!
//! Why in-tree: `cargo fuzz` needs a nightly toolchain and a crates.io install the CI run
//! would repeat; this driver needs nothing, is deterministic per seed, and still finds the
//! classes that matter here (panics, hangs, outsized allocations).
//!
//! * `fuzz_parsers_short` runs with the suite: a few seconds per target.
//! * `make fuzz` (`FUZZ_SECS` per target, default 60) runs `fuzz_parsers_long` and prints
//!   executions and findings per target.
//!
//! A finding is a panic (caught, with the input in hex), an execution over one second, or a
//! single allocation over `ALLOC_LIMIT` while the target runs (a counting global allocator,
//! armed per thread). Every crash found becomes a regression test in the parser's module.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::OsString;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wanctl::engine::health::parse_request;
use wanctl::engine::history::{HistoryParams, parse_qs};
use wanctl::engine::state::StateFile;
use wanctl::engine::steering::state::SteeringState;
use wanctl::rng::Rng;
use wanctl::units::Bps;
use wanctl::wire::http::{Method, Progress, ResponseParser};
use wanctl::wire::icmp::{Family, Framing, parse_reply};
use wanctl::wire::routeros::{
    Command, Direction, IdCache, ItemId, QueueLimit, RestCall, parse_error_body, parse_mangle_json,
    parse_queue_json,
};

/// The largest single allocation a parser may make for one input (inputs are ≤ 64 KiB).
const ALLOC_LIMIT: usize = 16 << 20;
/// Largest fuzz input.
const MAX_INPUT: usize = 64 << 10;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// Counts the largest single allocation made by an armed thread (a fuzzing one).
struct Tracking;

// The one unsafe block outside src/sys: a global allocator cannot be written without it.
// SAFETY: forwards every call to the system allocator unchanged; the bookkeeping only reads
// a const-initialised thread-local flag (no allocation, no destructor) and an atomic.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(Cell::get) {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: the caller's layout contract is passed through unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.with(Cell::get) {
            LARGEST.fetch_max(new_size, Ordering::Relaxed);
        }
        // SAFETY: ptr came from System with `layout`; the contract is passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

type Target = fn(&[u8]);

struct Spec {
    name: &'static str,
    target: Target,
    seeds: Vec<Vec<u8>>,
}

fn fixture_dir(sub: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(sub);
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push(b);
            }
        }
    }
    out
}

fn configs() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<Vec<u8>> =
        ["config/cable.yaml", "config/dsl.yaml", "config/fiber.yaml", "config/steering.yaml"]
            .iter()
            .filter_map(|p| std::fs::read(dir.join(p)).ok())
            .collect();
    out.extend(fixture_dir("config"));
    out
}

fn http_seeds() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]".to_vec(),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n[{}]\r\n0\r\n\r\n".to_vec(),
        b"HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n{\"error\":404}".to_vec(),
        b"HTTP/1.0 500 x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_vec(),
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n".to_vec(),
    ];
    for body in fixture_dir("routeros/rest").into_iter().take(12) {
        let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        r.extend_from_slice(&body);
        v.push(r);
    }
    v
}

fn request_seeds() -> Vec<Vec<u8>> {
    vec![
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /metrics/history?range=1h&metrics=wanctl_rtt_ms,wanctl_state&wan=wan1&limit=10 HTTP/1.1\r\n\r\n".to_vec(),
        b"POST /health HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc".to_vec(),
        b"GET /status HTTP/1.0\r\n\r\nGET /health HTTP/1.1\r\n\r\n".to_vec(),
    ]
}

fn commands() -> Vec<Command> {
    let limit = |name: &str, d| QueueLimit::with_cake_type(name, d, "wan1", Bps(100_000_000));
    vec![
        Command::SetQueueLimits {
            download: limit("WAN-Download-1", Direction::Download),
            upload: limit("WAN-Upload-1", Direction::Upload),
        },
        Command::GetQueueByName("WAN-Download-1".into()),
        Command::GetQueueConfigByName("WAN-Download-1".into()),
        Command::GetQueueById(ItemId(0x1000000)),
        Command::SetMangleDisabled { comment: "ADAPTIVE: steer".into(), disabled: false },
        Command::GetMangleByComment("ADAPTIVE: steer".into()),
        Command::Probe,
        Command::ListQueueStats,
    ]
}

fn target_http_response(b: &[u8]) {
    let split = b.first().map_or(1, |&x| usize::from(x) % 17 + 1);
    for method in [Method::Get, Method::Head] {
        let mut p = ResponseParser::new(method);
        for chunk in b.chunks(split) {
            match p.feed(chunk) {
                Ok(Progress::Done { .. }) => {
                    let _ = p.take_response();
                    break;
                }
                Ok(Progress::NeedMore) => {}
                Err(_) => break,
            }
        }
        let _ = p.finish_eof();
    }
}

fn target_http_request(b: &[u8]) {
    let _ = parse_request(b);
}

fn target_routeros_rest(b: &[u8]) {
    for cmd in commands() {
        for status in [200u16, 201, 400, 401, 404, 500] {
            let mut ids = IdCache::new();
            ids.remember_queue("WAN-Download-1", ItemId(0x1000000));
            let mut call = RestCall::new(cmd.clone(), &ids);
            // Bounded: a call has at most a handful of steps.
            for _ in 0..8 {
                if call.poll_request().is_none() {
                    break;
                }
                match call.handle_response(status, b, &mut ids) {
                    Ok(None) => {}
                    _ => break,
                }
            }
        }
    }
}

fn target_routeros_json(b: &[u8]) {
    let _ = parse_queue_json(b);
    let _ = parse_mangle_json(b);
    let _ = parse_error_body(400, b);
    let _ = wanctl::wire::json::parse_lenient(b);
}

fn target_routeros_cli(b: &[u8]) {
    for cmd in commands() {
        let _ = cmd.parse_cli_output(b);
    }
}

fn target_icmp(b: &[u8]) {
    for family in [Family::V4, Family::V6] {
        for framing in [Framing::Bare, Framing::Ipv4Header] {
            let _ = parse_reply(family, framing, b);
        }
    }
}

fn target_config(b: &[u8]) {
    let text = String::from_utf8_lossy(b);
    let env = |_: &str| Some("pw".to_string());
    let _ = wanctl::config::parse_autorate(&text, "fuzz.yaml", &env);
    let _ = wanctl::config::parse_steering(&text, "fuzz.yaml", &env);
}

fn target_state(b: &[u8]) {
    let _ = StateFile::decode(b);
    let _ = SteeringState::decode(b, 10);
}

fn target_history_query(b: &[u8]) {
    let text = String::from_utf8_lossy(b);
    let _ = HistoryParams::parse(&text, 3600);
    let _ = parse_qs(&text);
}

fn args_of(b: &[u8]) -> Vec<OsString> {
    use std::os::unix::ffi::OsStringExt;
    b.split(|&c| c == b' ' || c == 0).take(64).map(|a| OsString::from_vec(a.to_vec())).collect()
}

fn target_history_args(b: &[u8]) {
    let _ = wanctl::shell::history_cli::parse_args(args_of(b), 0);
}

fn target_cli(b: &[u8]) {
    let mut args = vec![OsString::from("wanctl")];
    args.extend(args_of(b));
    let _ = wanctl::cli::parse(args);
}

fn specs() -> Vec<Spec> {
    let mut icmp_seeds: Vec<Vec<u8>> = Vec::new();
    for family in [Family::V4, Family::V6] {
        let mut buf = [0u8; 64];
        if let Ok(n) =
            wanctl::wire::icmp::emit_request(family, 7, 9, wanctl::time::Instant::ZERO, 16, &mut buf)
        {
            let mut m = buf[..n].to_vec();
            m[0] = if family == Family::V4 { 0 } else { 129 };
            icmp_seeds.push(m.clone());
            let mut with_ip = vec![0x45, 0, 0, 44, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 0, 1, 198, 18, 0, 254];
            with_ip.extend_from_slice(&m);
            icmp_seeds.push(with_ip);
        }
    }
    let state = vec![
        br#"{"download":{"green_streak":3,"soft_red_streak":0,"red_streak":0,"current_rate":940000000},"upload":{"green_streak":3,"soft_red_streak":0,"red_streak":0,"current_rate":38000000},"ewma":{"baseline_rtt":21.5,"load_rtt":22.0},"last_applied":{"dl_rate":940000000,"ul_rate":38000000},"timestamp":"2026-01-01T00:00:00"}"#.to_vec(),
        br#"{"current_state":"SPECTRUM_GOOD","good_count":5,"bad_count":0,"last_transition_time":"2026-01-01T00:00:00","baseline_rtt":20.0,"history_rtt":[1.0,2.0],"history_delta":[],"transitions":[]}"#.to_vec(),
    ];
    vec![
        Spec { name: "http_response", target: target_http_response, seeds: http_seeds() },
        Spec { name: "http_request", target: target_http_request, seeds: request_seeds() },
        Spec { name: "routeros_rest", target: target_routeros_rest, seeds: fixture_dir("routeros/rest") },
        Spec { name: "routeros_json", target: target_routeros_json, seeds: fixture_dir("routeros/rest") },
        Spec { name: "routeros_cli", target: target_routeros_cli, seeds: fixture_dir("routeros/cli") },
        Spec { name: "icmp", target: target_icmp, seeds: icmp_seeds },
        Spec { name: "config_yaml", target: target_config, seeds: configs() },
        Spec { name: "state_files", target: target_state, seeds: state },
        Spec {
            name: "history_query",
            target: target_history_query,
            seeds: vec![
                b"/metrics/history?range=1h&metrics=wanctl_rtt_ms&wan=wan1&limit=100&offset=5".to_vec(),
                b"from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00%2B02:00".to_vec(),
            ],
        },
        Spec {
            name: "history_args",
            target: target_history_args,
            seeds: vec![
                b"--last 1h --metrics wanctl_rtt_ms,wanctl_state --wan wan1 --json".to_vec(),
                b"--from 2026-01-01 --to 2026-01-02T10:00 --summary --csv".to_vec(),
            ],
        },
        Spec {
            name: "cli",
            target: target_cli,
            seeds: vec![
                b"--config /etc/wanctl/wan1.yaml --once --json".to_vec(),
                b"sim --seed 3 --scenario step --trace 20".to_vec(),
                b"steering --config s.yaml --dry-run".to_vec(),
            ],
        },
    ]
}

/// One mutation of `input`, using `corpus` for splices.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    let rounds = 1 + rng.next_u32() % 4;
    for _ in 0..rounds {
        let len = input.len();
        match rng.next_u32() % 9 {
            0 if len > 0 => {
                let i = rng.next_u32() as usize % len;
                input[i] ^= 1 << (rng.next_u32() % 8);
            }
            1 if len > 0 => {
                let i = rng.next_u32() as usize % len;
                input[i] = rng.next_u32() as u8;
            }
            2 => {
                let i = if len == 0 { 0 } else { rng.next_u32() as usize % (len + 1) };
                let interesting: &[&[u8]] = &[
                    b"\r\n",
                    b"0",
                    b"-1",
                    b"\"",
                    b"{",
                    b"}",
                    b"[",
                    b"]",
                    b"\\",
                    b"\x00",
                    b"\xff",
                    b"%",
                    b"=",
                    b";",
                    b"18446744073709551616",
                    b"\r\n\r\n",
                    b":",
                    b"*",
                ];
                let pick = interesting[rng.next_u32() as usize % interesting.len()];
                input.splice(i..i, pick.iter().copied());
            }
            3 if len > 1 => {
                let a = rng.next_u32() as usize % len;
                let b = (a + 1 + rng.next_u32() as usize % 64).min(len);
                input.drain(a..b);
            }
            4 if len > 1 => {
                // Duplicate a slice (repetition finds quadratic paths and limits).
                let a = rng.next_u32() as usize % len;
                let b = (a + 1 + rng.next_u32() as usize % 256).min(len);
                let piece: Vec<u8> = input[a..b].to_vec();
                let times = 1 + rng.next_u32() as usize % 16;
                for _ in 0..times {
                    input.splice(b..b, piece.iter().copied());
                }
            }
            5 if !corpus.is_empty() => {
                let other = &corpus[rng.next_u32() as usize % corpus.len()];
                if !other.is_empty() {
                    let a = rng.next_u32() as usize % other.len();
                    let b = (a + 1 + rng.next_u32() as usize % 128).min(other.len());
                    let at = if len == 0 { 0 } else { rng.next_u32() as usize % (len + 1) };
                    input.splice(at..at, other[a..b].iter().copied());
                }
            }
            6 if len > 0 => {
                let cut = rng.next_u32() as usize % len;
                input.truncate(cut);
            }
            7 if len > 0 => {
                // A digit run changed into a large or negative number.
                let i = rng.next_u32() as usize % len;
                if input[i].is_ascii_digit() {
                    input.splice(i..i, b"9999999999".iter().copied());
                }
            }
            _ => {
                let i = if len == 0 { 0 } else { rng.next_u32() as usize % (len + 1) };
                input.insert(i, rng.next_u32() as u8);
            }
        }
    }
    input.truncate(MAX_INPUT);
}

#[derive(Debug, Default)]
struct Report {
    executions: u64,
    panics: u64,
    slow: u64,
    largest_alloc: usize,
    first_finding: Option<String>,
}

fn run_target(spec: &Spec, budget: Duration, seed: u64) -> Report {
    let mut rng = Rng::new(seed);
    let mut report = Report::default();
    let corpus = if spec.seeds.is_empty() { vec![Vec::new()] } else { spec.seeds.clone() };
    let start = Instant::now();
    let prev_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    // Bounded by the time budget and by an execution cap.
    while start.elapsed() < budget && report.executions < 50_000_000 {
        let mut input = corpus[rng.next_u32() as usize % corpus.len()].clone();
        if report.executions > 0 {
            mutate(&mut rng, &mut input, &corpus);
        }
        LARGEST.store(0, Ordering::Relaxed);
        ARMED.with(|a| a.set(true));
        let t = Instant::now();
        let outcome = std::panic::catch_unwind(|| (spec.target)(&input));
        let took = t.elapsed();
        ARMED.with(|a| a.set(false));
        report.executions += 1;
        let largest = LARGEST.load(Ordering::Relaxed);
        report.largest_alloc = report.largest_alloc.max(largest);
        let finding = if outcome.is_err() {
            report.panics += 1;
            Some("panic")
        } else if took > Duration::from_secs(1) {
            report.slow += 1;
            Some("over 1 s")
        } else if largest > ALLOC_LIMIT {
            Some("allocation over the limit")
        } else {
            None
        };
        if let (Some(kind), None) = (finding, &report.first_finding) {
            let hex: String = input.iter().take(512).map(|b| format!("{b:02x}")).collect();
            report.first_finding = Some(format!("{kind}: {} bytes, first 512 as hex: {hex}", input.len()));
        }
    }
    std::panic::set_hook(prev_hook);
    report
}

fn run_all(per_target: Duration, seed: u64) -> Vec<(&'static str, Report)> {
    specs().into_iter().map(|s| (s.name, run_target(&s, per_target, seed))).collect()
}

fn print(reports: &[(&'static str, Report)], per_target: Duration) {
    println!();
    println!(
        "fuzz: {:.0} s per target (in-tree mutational driver, seeded from the fixtures)",
        per_target.as_secs_f64()
    );
    println!("{:<15} {:>12} {:>8} {:>6} {:>14}", "target", "executions", "panics", "slow", "largest alloc");
    for (name, r) in reports {
        println!(
            "{:<15} {:>12} {:>8} {:>6} {:>11} kB",
            name,
            r.executions,
            r.panics,
            r.slow,
            r.largest_alloc / 1024
        );
        if let Some(f) = &r.first_finding {
            println!("  first finding: {f}");
        }
    }
}

fn assert_clean(reports: &[(&'static str, Report)]) {
    for (name, r) in reports {
        assert!(r.first_finding.is_none(), "{name}: {}", r.first_finding.as_deref().unwrap_or(""));
    }
}

#[test]
fn fuzz_parsers_short() {
    let per = Duration::from_millis(
        std::env::var("FUZZ_SHORT_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(2500),
    );
    let reports = run_all(per, 0x5eed_f022);
    print(&reports, per);
    assert_clean(&reports);
}

#[test]
#[ignore = "long fuzzing run: make fuzz (FUZZ_SECS per target)"]
fn fuzz_parsers_long() {
    let secs: u64 = std::env::var("FUZZ_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let seed: u64 = std::env::var("FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let per = Duration::from_secs(secs);
    let reports = run_all(per, seed);
    print(&reports, per);
    assert_clean(&reports);
}
