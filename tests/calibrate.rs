//! Issue 14, `wanctl calibrate` on the closed-loop testbed: reflectors on a TUN device in a
//! namespace the test creates, the fake RouterOS (REST) whose download `max-limit` shapes
//! the emulated line and whose counters follow it. The line carries 70 Mbit/s (the config's
//! ceiling is 100) with a 20 ms base RTT; the "user's transfer" starts 3 s in. The upload
//! has no load in the link model, so the runs are `--download-only`. Needs root.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::e2e::{DL, REFLECTORS};
use crate::support::child::ChildGuard;
use crate::support::closed_loop::{self, CapacityTrace, LinkOptions};
use crate::support::fake_router::FakeRouterOs;
use crate::support::netns::is_root;
use crate::support::reflector::Rig;

const UL: &str = "WAN-Upload-1";
const ORIGINAL_DL: u64 = 90_000_000;
const ORIGINAL_UL: u64 = 18_000_000;

fn setup(name: &str) -> (Rig, FakeRouterOs, PathBuf) {
    let rig = Rig::start(&REFLECTORS.map(|r| (r, Some(Duration::from_millis(20))))).expect("rig");
    let router = rig.ns().run_in(FakeRouterOs::start).expect("router in namespace");
    router.set_queue_max_limit(DL, ORIGINAL_DL);
    router.set_queue_max_limit(UL, ORIGINAL_UL);
    router.set_counter_step(0, 0);
    let dir = std::env::temp_dir().join(format!("wanctl-calibrate-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let d = dir.display();
    let cfg = format!(
        r#"wan_name: "wan1"
router: {{transport: rest, host: "127.0.0.1", user: "{user}", ssh_key: /nonexistent, password: "${{ROUTER_PASSWORD}}", port: {port}}}
queues: {{download: "{DL}", upload: "{UL}"}}
continuous_monitoring:
  enabled: true
  baseline_rtt_initial: 30
  ping_hosts: ["198.18.0.1", "198.18.0.2", "198.18.0.3"]
  use_median_of_three: true
  download: {{floor_mbps: 10, ceiling_mbps: 100, step_up_mbps: 2, factor_down: 0.85}}
  upload: {{floor_mbps: 4, ceiling_mbps: 20, step_up_mbps: 0.5, factor_down: 0.9}}
  thresholds: {{target_bloat_ms: 15, warn_bloat_ms: 45, hard_red_bloat_ms: 80, baseline_time_constant_sec: 60, load_time_constant_sec: 0.1}}
logging: {{main_log: "{d}/wan1.log", debug_log: "{d}/wan1_debug.log"}}
lock_file: "{d}/wan1.lock"
lock_timeout: 300
storage: {{db_path: ""}}
"#,
        user = router.user(),
        port = router.port(),
    );
    std::fs::write(dir.join("wan1.yaml"), cfg).expect("config");
    (rig, router, dir)
}

fn spawn(rig: &Rig, router: &FakeRouterOs, dir: &Path, extra: &[&str]) -> Child {
    rig.ns()
        .command(env!("CARGO_BIN_EXE_wanctl"))
        .args(["calibrate", "--config", dir.join("wan1.yaml").to_str().expect("utf8")])
        .args(["--download-only", "--baseline-secs", "2", "--step-secs", "1.5", "--wait-load-secs", "20"])
        .args(extra)
        .env("ROUTER_PASSWORD", router.password())
        .env("WANCTL_SSH", "false")
        .stdout(std::fs::File::create(dir.join("stdout.log")).expect("stdout"))
        .stderr(std::fs::File::create(dir.join("stderr.log")).expect("stderr"))
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn wanctl calibrate")
}

fn output(dir: &Path) -> String {
    format!(
        "{}\n--- stderr\n{}",
        std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default(),
        std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
    )
}

/// Waits (bounded) for the child to exit; its code.
fn wait(child: &mut ChildGuard, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s.code().unwrap_or(-1));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn line_opts() -> LinkOptions {
    // Idle for 3 s (the baseline), then the user's saturating transfer.
    LinkOptions { demand_mbps: 0.0, demand_from: Some((3.0, 1000.0)), ..LinkOptions::default() }
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
fn issue_14_calibrate_finds_the_capacity_and_the_baseline_and_restores_the_limits() {
    need_root!();
    let (rig, router, dir) = setup("run");
    let mut child = ChildGuard::new(spawn(&rig, &router, &dir, &[]));
    let started = Instant::now();
    let handle = router.rate_handle(DL);
    closed_loop::drive(
        &rig,
        &REFLECTORS,
        &handle,
        &CapacityTrace::Steady(70.0),
        &line_opts(),
        Duration::from_secs(24),
        |t| {
            let _ = t;
        },
    );
    let code = wait(&mut child, Duration::from_secs(60));
    let took = started.elapsed();
    let out = output(&dir);
    println!("calibrate on a 70 Mbit/s line took {took:?}:\n{out}");
    assert_eq!(code, Some(0), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("wan1_calibration.json")).expect("json"))
            .expect("JSON");
    let baseline = json["baseline_rtt_ms"].as_f64().expect("baseline");
    assert!((baseline - 20.0).abs() <= 2.0, "baseline {baseline} ms for a 20 ms line");
    let cfg_text = std::fs::read_to_string(dir.join("wan1.calibrated.yaml")).expect("calibrated config");
    let v: serde_yaml::Value = serde_yaml::from_str(&cfg_text).expect("YAML");
    let ceiling = v["continuous_monitoring"]["download"]["ceiling_mbps"].as_f64().expect("ceiling");
    assert!((ceiling - 70.0).abs() <= 7.0, "ceiling {ceiling} Mbit/s for a 70 Mbit/s line\n{out}");
    assert_eq!(v["continuous_monitoring"]["upload"]["ceiling_mbps"].as_f64(), Some(20.0), "upload kept");
    // The calibrated file loads.
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_wanctl"))
        .args(["check-config", dir.join("wan1.calibrated.yaml").to_str().expect("utf8")])
        .env("ROUTER_PASSWORD", "x")
        .output()
        .expect("check-config");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    assert_eq!(router.queue_max_limit(DL), Some(ORIGINAL_DL), "download limit restored");
    assert_eq!(router.queue_max_limit(UL), Some(ORIGINAL_UL), "upload limit restored");
    assert!(!dir.join("wan1_calibrate_restore.json").exists(), "crash note removed");
    assert!(took < Duration::from_secs(180));
    assert!(!out.contains(&router.password()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn issue_14_calibrate_restores_the_limits_after_sigint_at_random_moments() {
    need_root!();
    let (rig, router, dir) = setup("sigint");
    let handle = router.rate_handle(DL);
    let mut rng = wanctl::rng::Rng::new(14);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let line = s.spawn(|| {
            // The line runs until the runs are over (bounded: 10 × at most 12 s).
            for _ in 0..12 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                closed_loop::drive(
                    &rig,
                    &REFLECTORS,
                    &handle,
                    &CapacityTrace::Steady(70.0),
                    &line_opts(),
                    Duration::from_secs(10),
                    |_| {},
                );
            }
        });
        let mut moments = vec![];
        for run in 0..10 {
            let at = rng.uniform(0.2, 6.0);
            moments.push(format!("{at:.2}"));
            let mut child = ChildGuard::new(spawn(&rig, &router, &dir, &["--wait-load-secs", "5"]));
            std::thread::sleep(Duration::from_secs_f64(at));
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGINT);
            let code = wait(&mut child, Duration::from_secs(40));
            let out = output(&dir);
            // A run may have finished before the signal (exit 0); otherwise 130.
            assert!(
                matches!(code, Some(130) | Some(0)),
                "run {run} (SIGINT at {at:.2} s): exit {code:?}\n{out}"
            );
            assert_eq!(router.queue_max_limit(DL), Some(ORIGINAL_DL), "run {run} at {at:.2} s\n{out}");
            assert_eq!(router.queue_max_limit(UL), Some(ORIGINAL_UL), "run {run} at {at:.2} s\n{out}");
            assert!(!dir.join("wan1_calibrate_restore.json").exists(), "run {run}: note left\n{out}");
        }
        println!("SIGINT at {} s: limits restored every time", moments.join(", "));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = line.join();
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn issue_14_calibrate_restores_from_a_crash_note_first() {
    need_root!();
    let (rig, router, dir) = setup("note");
    // A crashed run left the router at 30 Mbit/s and its note with the true limits.
    router.set_queue_max_limit(DL, 30_000_000);
    std::fs::write(
        dir.join("wan1_calibrate_restore.json"),
        format!(r#"{{"download_max_limit": {ORIGINAL_DL}, "upload_max_limit": {ORIGINAL_UL}}}"#),
    )
    .expect("note");
    let mut child = ChildGuard::new(spawn(&rig, &router, &dir, &["--wait-load-secs", "1"]));
    std::thread::sleep(Duration::from_millis(1500));
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGINT);
    let code = wait(&mut child, Duration::from_secs(30));
    let out = output(&dir);
    assert!(out.contains("restoring its saved limits"), "{out}");
    assert!(matches!(code, Some(130) | Some(0)), "{code:?}\n{out}");
    assert_eq!(router.queue_max_limit(DL), Some(ORIGINAL_DL), "{out}");
    assert!(!dir.join("wan1_calibrate_restore.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A download server in the namespace: each GET gets an endless body (paced, so loopback
/// does not eat the CPU); `active` is up while at least one client downloads, which is what
/// makes the emulated line carry load.
fn load_server(
    rig: &Rig,
    port: u16,
    active: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u32> {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = rig
        .ns()
        .run_in(move || std::net::TcpListener::bind(("127.0.0.1", port)))
        .expect("namespace")
        .expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let clients = std::sync::Arc::new(AtomicUsize::new(0));
        let mut served = 0u32;
        let start = Instant::now();
        // Bounded by `stop` and 3 minutes.
        while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(180) {
            match listener.accept() {
                Ok((mut s, _)) => {
                    served += 1;
                    let (clients, active, stop) = (clients.clone(), active.clone(), stop.clone());
                    std::thread::spawn(move || {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut head = [0u8; 2048];
                        if s.read(&mut head).unwrap_or(0) == 0 {
                            return;
                        }
                        clients.fetch_add(1, Ordering::Relaxed);
                        active.store(true, Ordering::Relaxed);
                        let _ = s.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\nConnection: close\r\n\r\n",
                        );
                        let chunk = [0u8; 16 * 1024];
                        let t0 = Instant::now();
                        while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(120) {
                            if s.write_all(&chunk).is_err() {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        if clients.fetch_sub(1, Ordering::Relaxed) == 1 {
                            active.store(false, Ordering::Relaxed);
                        }
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        served
    })
}

#[test]
fn issue_14_calibrate_loads_the_line_from_a_url() {
    need_root!();
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (rig, router, dir) = setup("url");
    let active = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let server = load_server(&rig, 18_090, active.clone(), stop.clone());
    let mut child = ChildGuard::new(spawn(
        &rig,
        &router,
        &dir,
        &["--load-url", "http://127.0.0.1:18090/big.bin", "--wait-load-secs", "10"],
    ));
    let handle = router.rate_handle(DL);
    let opts =
        LinkOptions { demand_mbps: 1000.0, demand_flag: Some(active.clone()), ..LinkOptions::default() };
    closed_loop::drive(
        &rig,
        &REFLECTORS,
        &handle,
        &CapacityTrace::Steady(70.0),
        &opts,
        Duration::from_secs(24),
        |_| {},
    );
    let code = wait(&mut child, Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    let served = server.join().unwrap_or(0);
    let out = output(&dir);
    println!("calibrate with --load-url ({served} streams served):\n{out}");
    assert_eq!(code, Some(0), "{out}");
    assert!(served >= 1, "the load URL was never fetched");
    assert!(out.contains("loading the line from http://127.0.0.1:18090"), "{out}");
    assert!(!out.contains("big.bin"), "the URL's path is not printed");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("wan1_calibration.json")).expect("json"))
            .expect("JSON");
    let opt = json["optimal_download_mbps"].as_f64().expect("optimum");
    assert!((opt - 70.0).abs() <= 7.0, "optimum {opt} Mbit/s for a 70 Mbit/s line\n{out}");
    assert_eq!(router.queue_max_limit(DL), Some(ORIGINAL_DL));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The other load paths: an HTTPS download URL and an HTTP upload URL. The link model has no
/// upload and this run drives no model, so both directions end "no transfer seen" by the
/// counters; what is checked is that the streams really ran (a TLS GET answered, bytes
/// POSTed) and that the limits came back.
#[test]
fn issue_14_calibrate_load_streams_over_https_and_upload() {
    need_root!();
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let (rig, router, dir) = setup("streams");
    let cert = crate::support::certs::TestCert::generate().expect("openssl test certificate");
    let tls = crate::support::fake_router::server_config(cert.cert_der.clone(), cert.key_der.clone(), true);
    let stop = Arc::new(AtomicBool::new(false));
    let got_get = Arc::new(AtomicU64::new(0));
    let posted = Arc::new(AtomicU64::new(0));
    let bind = |port: u16| {
        let l = rig
            .ns()
            .run_in(move || std::net::TcpListener::bind(("127.0.0.1", port)))
            .expect("ns")
            .expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        l
    };
    let (https_l, upload_l) = (bind(18_443), bind(18_091));
    let servers = {
        let (stop, got_get, posted) = (stop.clone(), got_get.clone(), posted.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            // Bounded by `stop` and 90 s.
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(90) {
                if let Ok((s, _)) = https_l.accept() {
                    let (tls, stop, got_get) = (tls.clone(), stop.clone(), got_get.clone());
                    std::thread::spawn(move || {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let Ok(conn) = rustls::ServerConnection::new(tls) else { return };
                        let mut t = rustls::StreamOwned::new(conn, s);
                        let mut head = [0u8; 2048];
                        if t.read(&mut head).unwrap_or(0) == 0 {
                            return;
                        }
                        got_get.fetch_add(1, Ordering::Relaxed);
                        let _ = t.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n");
                        let t0 = Instant::now();
                        while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(60) {
                            if t.write_all(&[0u8; 8192]).is_err() {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    });
                }
                if let Ok((mut s, _)) = upload_l.accept() {
                    let (stop, posted) = (stop.clone(), posted.clone());
                    std::thread::spawn(move || {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 16 * 1024];
                        let t0 = Instant::now();
                        while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(60) {
                            match s.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    posted.fetch_add(n as u64, Ordering::Relaxed);
                                }
                            }
                        }
                    });
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let mut child = ChildGuard::new(
        rig.ns()
            .command(env!("CARGO_BIN_EXE_wanctl"))
            .args(["calibrate", "--config", dir.join("wan1.yaml").to_str().expect("utf8")])
            .args(["--baseline-secs", "1", "--wait-load-secs", "3", "--insecure"])
            .args([
                "--load-url",
                "https://127.0.0.1:18443/big",
                "--upload-url",
                "http://127.0.0.1:18091/sink",
            ])
            .env("ROUTER_PASSWORD", router.password())
            .env("WANCTL_SSH", "false")
            .stdout(std::fs::File::create(dir.join("stdout.log")).expect("stdout"))
            .stderr(std::fs::File::create(dir.join("stderr.log")).expect("stderr"))
            .spawn()
            .expect("spawn"),
    );
    let code = wait(&mut child, Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    let _ = servers.join();
    let out = output(&dir);
    let (gets, bytes) = (got_get.load(Ordering::Relaxed), posted.load(Ordering::Relaxed));
    println!("https GETs answered: {gets}, bytes POSTed: {bytes}\n{out}");
    assert_eq!(code, Some(0), "{out}");
    assert!(gets >= 1, "no TLS GET reached the download server\n{out}");
    assert!(bytes > 100_000, "the upload stream sent {bytes} bytes\n{out}");
    assert!(out.contains("no transfer seen"), "{out}");
    assert_eq!(router.queue_max_limit(DL), Some(ORIGINAL_DL));
    assert_eq!(router.queue_max_limit(UL), Some(ORIGINAL_UL));
    let _ = std::fs::remove_dir_all(&dir);
}
