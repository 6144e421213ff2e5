//! `make bench`: figures, never assertions on speed (shared machines make timed
//! assertions flaky). Each bench is `#[ignore]`d so the normal test run skips it; `make
//! bench` runs them with `--ignored --nocapture` and they print one table.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::netns::is_root;
use crate::support::reflector::Rig;

fn bench_secs() -> u64 {
    std::env::var("WANCTL_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30)
}

/// utime + stime (s) and peak RSS (KiB) of a live process, from /proc.
pub fn proc_usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    // After the command name: state is field 3, utime 14, stime 15 (1-based in proc(5)).
    let ticks = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let cpu = (ticks(14) + ticks(15)) as f64 / 100.0; // USER_HZ is 100 on Linux
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (cpu, hwm)
}

fn stat(log: &str, key: &str) -> String {
    log.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .map_or_else(|| "?".into(), str::to_string)
}

#[test]
#[ignore = "benchmark: run with make bench"]
fn bench_daemon_cost() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespace and TUN)");
        return;
    }
    let hosts = [1u8, 2, 3].map(|n| IpAddr::V4(Ipv4Addr::new(198, 18, 0, n)));
    let rig = Rig::start(&[
        (hosts[0], Some(Duration::from_millis(15))),
        (hosts[1], Some(Duration::from_millis(20))),
        (hosts[2], Some(Duration::from_millis(25))),
    ])
    .expect("rig");
    let dir = std::env::temp_dir().join(format!("wanctl-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let d = dir.display();
    let cfg = dir.join("wan1.yaml");
    std::fs::write(
        &cfg,
        format!(
            r#"wan_name: wan1
router: {{host: "127.0.0.1", user: admin, ssh_key: /nonexistent, transport: rest, port: 9}}
queues: {{download: WAN-Download-1, upload: WAN-Upload-1}}
continuous_monitoring:
  enabled: true
  baseline_rtt_initial: 20
  ping_hosts: ["198.18.0.1", "198.18.0.2", "198.18.0.3"]
  use_median_of_three: true
  download: {{ceiling_mbps: 100, step_up_mbps: 5, factor_down: 0.85, floor_mbps: 10}}
  upload: {{ceiling_mbps: 20, step_up_mbps: 1, factor_down: 0.9, floor_mbps: 5}}
  thresholds: {{target_bloat_ms: 15, warn_bloat_ms: 45, baseline_time_constant_sec: 60, load_time_constant_sec: 0.1}}
  fallback_checks: {{enabled: false}}
logging: {{main_log: "{d}/wan1.log", debug_log: "{d}/wan1_debug.log"}}
lock_file: "{d}/wan1.lock"
lock_timeout: 300
storage: {{db_path: ""}}
"#
        ),
    )
    .expect("config");
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
    let secs = bench_secs();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let (cpu, rss) = proc_usage(child.id());
    let wall = start.elapsed().as_secs_f64();
    child.stop(Duration::from_secs(5));
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    let answered: u64 = hosts.iter().map(|&h| rig.replies(h)).sum();
    println!();
    println!("wanctl daemon, {secs} s, 3 reflectors at 20 Hz (median-of-three), release build");
    println!("  CPU time            {:.2} s ({:.2} % of one core)", cpu, cpu / wall * 100.0);
    println!("  peak RSS            {:.2} MB", rss as f64 / 1024.0);
    println!(
        "  tick lateness       p50 {} us, p99 {} us, max {} us ({} ticks, {} missed)",
        stat(&log, "late_p50_us"),
        stat(&log, "late_p99_us"),
        stat(&log, "late_max_us"),
        stat(&log, "ticks"),
        stat(&log, "missed")
    );
    println!(
        "  probes              {} sent, {} answered by the reflectors, {} matched",
        stat(&log, "probes_sent"),
        answered,
        stat(&log, "replies")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Upper bound (s) of the bucket holding quantile `q` of a Prometheus histogram family.
fn prom_quantile(metrics: &str, family: &str, q: f64) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{family}_bucket")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            let count: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    buckets.iter().find(|(_, c)| *c >= total * q).map(|(le, _)| *le)
}

#[test]
#[ignore = "benchmark: run with make bench"]
fn bench_closed_loop() {
    use crate::e2e::{DL, REFLECTORS, Testbed};
    use crate::support::closed_loop::{self, CapacityTrace};
    if !is_root() {
        eprintln!("skipped: needs root (network namespace and TUN)");
        return;
    }
    let secs = bench_secs().max(42);
    let mut bed = Testbed::start("bench");
    // fping on the same reflectors, same rate: the floor reference for CPU and memory.
    let fping = std::process::Command::new("sh")
        .arg("-c")
        .arg("command -v fping")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let mut fping_child = fping.then(|| {
        crate::support::child::ChildGuard::new(
            bed.rig
                .ns()
                .command("fping")
                .args(["-l", "-p", "50", "-q"])
                .args(REFLECTORS.map(|r| r.to_string()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn fping"),
        )
    });
    let trace = CapacityTrace::Steps(vec![(0.0, 100.0), (8.0, 40.0), (26.0, 100.0)]);
    let t0 = Instant::now();
    let hammer_at = 34.0;
    let rig = &bed.rig;
    let mut hammered = 0usize;
    let samples = std::thread::scope(|scope| {
        let mut hammer: Option<std::thread::ScopedJoinHandle<'_, usize>> = None;
        let s = bed.drive(&trace, secs, |t| {
            if t >= hammer_at && hammer.is_none() {
                hammer = Some(scope.spawn(|| {
                    rig.ns()
                        .run_in(|| {
                            let hs: Vec<_> = (0..200)
                                .map(|_| {
                                    std::thread::spawn(|| {
                                        use std::io::{Read, Write};
                                        let mut s = std::net::TcpStream::connect(("127.0.0.1", 9101)).ok()?;
                                        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
                                        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
                                        let mut b = Vec::new();
                                        s.read_to_end(&mut b).ok()?;
                                        Some(b.starts_with(b"HTTP/1.1"))
                                    })
                                })
                                .collect();
                            hs.into_iter().filter_map(|h| h.join().ok().flatten()).filter(|ok| *ok).count()
                        })
                        .unwrap_or(0)
                }));
            }
        });
        if let Some(h) = hammer {
            hammered = h.join().unwrap_or(0);
        }
        s
    });
    let (cpu, rss) = proc_usage(bed.pid());
    let wall = t0.elapsed().as_secs_f64();
    let metrics = crate::health::http_get(&bed.rig, 9101, "/health").map(|r| r.1).unwrap_or_default();
    let health: serde_json::Value = serde_json::from_str(&metrics).unwrap_or_default();
    let router_updates = health["wans"][0]["router_updates"].as_u64().unwrap_or(0);
    let prom = crate::health::http_get(&bed.rig, 9100, "/metrics").map(|r| r.1).unwrap_or_default();
    let rtt = |q| {
        prom_quantile(&prom, "wanctl_router_request_seconds", q)
            .map_or("-".to_string(), |s| format!("{:.1} ms", s * 1000.0))
    };
    let router_rtt = format!("p50 <= {}, p99 <= {} (histogram bucket bounds)", rtt(0.5), rtt(0.99));
    let fping_usage = fping_child.as_ref().map(|c| proc_usage(c.id()));
    if let Some(c) = fping_child.as_mut() {
        c.stop(Duration::ZERO);
    }
    // Counter reads (issue 11) are counted apart from the requests a write costs.
    let all_requests = bed.router.requests();
    let reads = all_requests.iter().filter(|r| r.path.contains(".proplist")).count();
    let requests: Vec<_> = all_requests.into_iter().filter(|r| !r.path.contains(".proplist")).collect();
    let drop_at = t0 + Duration::from_secs(8);
    let reaction = requests
        .iter()
        .filter(|r| r.at >= drop_at && r.method == "PATCH" && r.path.contains("queue/tree"))
        .find(|r| r.body_text().contains("max-limit") && !r.body_text().contains("\"100000000\""))
        .map(|r| r.at.duration_since(drop_at));
    let (code, log) = bed.stop();
    assert_eq!(code, 0, "{log}");
    let all = closed_loop::figures(&samples, 0.0, secs as f64);
    let drain = samples.iter().filter(|x| x.t >= 8.5).find(|x| x.delay_ms < 10.0).map(|x| x.t - 8.0);
    let back = samples.iter().filter(|x| x.t >= 26.0).find(|x| x.shaped >= 90.0).map(|x| x.t - 26.0);
    let size = std::fs::metadata(concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/wanctl"))
        .map(|m| m.len())
        .ok();
    let fmt_opt = |d: Option<f64>| d.map_or("-".to_string(), |v| format!("{v:.2} s"));
    println!();
    println!(
        "closed-loop bench: {secs} s, step trace 100 -> 40 Mbit/s at 8 s, back at 26 s, saturating download,"
    );
    println!(
        "3 reflectors at 20 Hz over a TUN in a namespace, fake RouterOS over REST (keep-alive), release build"
    );
    println!("  wanctl CPU                 {:.2} % of one core ({:.2} s)", cpu / wall * 100.0, cpu);
    println!("  wanctl peak RSS            {:.2} MB", rss as f64 / 1024.0);
    match fping_usage {
        Some((c, r)) => println!(
            "  fping -l -p 50 (3 hosts)   {:.2} % of one core, {:.2} MB peak RSS",
            c / wall * 100.0,
            r as f64 / 1024.0
        ),
        None => println!("  fping -l -p 50             not installed (apt-get install fping)"),
    }
    println!(
        "  tick lateness              p50 {} us, p99 {} us, max {} us ({} ticks, {} missed)",
        stat(&log, "late_p50_us"),
        stat(&log, "late_p99_us"),
        stat(&log, "late_max_us"),
        stat(&log, "ticks"),
        stat(&log, "missed")
    );
    println!(
        "  200-client /health hammer  at {hammer_at} s: {hammered}/200 answered (lateness above includes it)"
    );
    println!(
        "  reaction (drop -> router)  {}",
        reaction.map_or("-".into(), |d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
    );
    println!(
        "  added delay under load     p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        all.p50, all.p95, all.p99
    );
    println!("  utilisation                {:.3}", all.utilisation);
    println!("  drain after the drop       {}", fmt_opt(drain));
    println!("  back to 90 % after recovery {}", fmt_opt(back));
    println!(
        "  router writes              {router_updates} ({:.1} per minute), {} HTTP requests ({:.2} per write)",
        router_updates as f64 / wall * 60.0,
        requests.len(),
        requests.len() as f64 / router_updates.max(1) as f64
    );
    println!("  counter reads              {reads} ({:.2} per second)", reads as f64 / wall);
    println!("  router round trip          {router_rtt}");
    println!(
        "  stripped static binary     {}",
        size.map_or("run `make size` first".into(), |s| format!(
            "{:.2} MB (target/release/wanctl)",
            s as f64 / 1e6
        ))
    );
    let _ = DL;
}

/// Issue 11 on the closed loop: the load-aware law next to the RTT-only law on the same
/// traces (step 100 -> 40 -> 100, collapse to 5 below the 10 Mbit/s floor and back, an
/// LTE-like random walk), REST transport. Prints recovery, delay, utilisation, writes and
/// counter reads per second. Each run is real time (about 4 minutes in all).
#[test]
#[ignore = "benchmark: run with make bench"]
fn bench_load_law() {
    use crate::e2e::Testbed;
    use crate::support::closed_loop::{self, CapacityTrace};
    if !is_root() {
        eprintln!("skipped: needs root (network namespace and TUN)");
        return;
    }
    let runs: [(&str, CapacityTrace, u64, Option<f64>); 3] = [
        ("step", CapacityTrace::Steps(vec![(0.0, 100.0), (8.0, 40.0), (28.0, 100.0)]), 45, Some(28.0)),
        ("collapse", CapacityTrace::Steps(vec![(0.0, 100.0), (8.0, 5.0), (28.0, 100.0)]), 45, Some(28.0)),
        (
            "lte",
            CapacityTrace::RandomWalk { start: 60.0, min: 15.0, max: 90.0, every: 2.0, seed: 3 },
            60,
            None,
        ),
    ];
    println!();
    println!("load-aware law vs RTT-only law on the closed loop (REST, 3 reflectors, budget 10/min)");
    println!(
        "{:<9} {:<4} {:>10} {:>8} {:>8} {:>6} {:>9} {:>8}",
        "trace", "law", "to 90% s", "p50 ms", "p95 ms", "util", "writes/m", "reads/s"
    );
    for (name, trace, secs, recover) in runs {
        for (law, extra) in [("load", ""), ("rtt", "  load_control:\n    enabled: false\n")] {
            let mut bed = Testbed::start_opts(&format!("bench-law-{name}-{law}"), false, extra);
            let s = bed.drive(&trace, secs, |_| {});
            let health = crate::health::http_get(&bed.rig, 9101, "/health").map(|r| r.1).unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&health).unwrap_or_default();
            let writes = v["wans"][0]["router_updates"].as_u64().unwrap_or(0);
            let reads = bed.router.requests().iter().filter(|r| r.path.contains(".proplist")).count();
            let (code, log) = bed.stop();
            assert_eq!(code, 0, "{log}");
            let back = recover.and_then(|r| {
                s.iter().filter(|x| x.t >= r).find(|x| x.shaped >= 0.9 * x.capacity).map(|x| x.t - r)
            });
            let f = closed_loop::figures(&s, 0.0, secs as f64);
            println!(
                "{:<9} {:<4} {:>10} {:>8.1} {:>8.1} {:>6.3} {:>9.1} {:>8.2}",
                name,
                law,
                back.map_or("-".into(), |b| format!("{b:.2}")),
                f.p50,
                f.p95,
                f.utilisation,
                writes as f64 / secs as f64 * 60.0,
                reads as f64 / secs as f64
            );
        }
    }
}

/// p50, p99 and max of `v` (ms), or dashes.
fn latency_figures(v: &mut [f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    format!("p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} probes)", q(0.5), q(0.99), q(1.0), v.len())
}

/// GET /health every `every` until `stop`; latencies (ms) of the answers and how many got none.
fn probe_health(port: u16, every: Duration, stop: &std::sync::atomic::AtomicBool) -> (Vec<f64>, usize) {
    let mut lat = Vec::new();
    let mut failed = 0;
    for _ in 0..100_000 {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let t = Instant::now();
        match crate::robustness::get(port, "/health", Duration::from_secs(10)) {
            Some(_) => lat.push(t.elapsed().as_secs_f64() * 1000.0),
            None => failed += 1,
        }
        std::thread::sleep(every.saturating_sub(t.elapsed()));
    }
    (lat, failed)
}

#[test]
#[ignore = "benchmark: run with make bench"]
fn bench_history_attack() {
    use crate::robustness::{DaemonGuard, FAST, TempDir, config_with_history, get, heavy_history_target};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    if !is_root() {
        eprintln!("skipped: needs root (network namespace and TUN)");
        return;
    }
    let secs = bench_secs().min(20);
    let rig = Rig::start(&[(FAST, Some(Duration::from_millis(10)))]).expect("rig");
    let tmp = TempDir::new("bench-history");
    let db = tmp.0.join("metrics.db");
    let t = Instant::now();
    crate::robustness::history_db(&db, 1_000_000);
    let built = t.elapsed().as_secs_f64();
    let mut daemon = DaemonGuard::start(&rig, &tmp.0, &config_with_history(&tmp.0, 19191, &db));
    assert!(crate::robustness::wait_http(&rig, 19191), "health never answered");
    let heavy = heavy_history_target();
    let stop = AtomicBool::new(false);
    let (ok, refused, failed) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
    let (mut lat, lost) = rig
        .ns()
        .run_in(|| {
            std::thread::scope(|s| {
                for _ in 0..64 {
                    s.spawn(|| {
                        for _ in 0..100_000 {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            match get(19191, &heavy, Duration::from_secs(30)) {
                                Some(200) => ok.fetch_add(1, Ordering::Relaxed),
                                Some(503) => {
                                    // A refused client retries after a short pause, as a
                                    // dashboard would.
                                    std::thread::sleep(Duration::from_millis(20));
                                    refused.fetch_add(1, Ordering::Relaxed)
                                }
                                _ => failed.fetch_add(1, Ordering::Relaxed),
                            };
                        }
                    });
                }
                let probe = s.spawn(|| probe_health(19191, Duration::from_millis(50), &stop));
                std::thread::sleep(Duration::from_secs(secs));
                stop.store(true, Ordering::Relaxed);
                probe.join().unwrap_or_default()
            })
        })
        .expect("clients");
    let (cpu, rss) = proc_usage(daemon.pid());
    let log = daemon.stop();
    println!();
    println!(
        "history attack (issue 18): 64 clients repeating the 1500-name /metrics/history?range=1h query for {secs} s"
    );
    println!("on a 1 000 000-row history ({built:.1} s to build), release build; /health probed every 50 ms");
    println!(
        "  ticks                      {} ticks, {} missed; lateness p50 {} us, p99 {} us, max {} us",
        stat(&log, "ticks"),
        stat(&log, "missed"),
        stat(&log, "late_p50_us"),
        stat(&log, "late_p99_us"),
        stat(&log, "late_max_us")
    );
    println!("  /health                    {} ; {lost} unanswered", latency_figures(&mut lat));
    println!(
        "  heavy requests             {} answered 200, {} refused 503, {} failed otherwise",
        ok.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    println!("  wanctl CPU / peak RSS      {cpu:.2} s / {:.2} MB", rss as f64 / 1024.0);
    println!(
        "  stall warnings logged      {}",
        log.lines().filter(|l| l.contains("control loop stalled")).count()
    );
}

#[test]
#[ignore = "benchmark: run with make bench"]
fn bench_slow_loris() {
    use crate::robustness::{DaemonGuard, FAST, TempDir, config_with_history};
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    if !is_root() {
        eprintln!("skipped: needs root (network namespace and TUN)");
        return;
    }
    let secs = bench_secs().min(20);
    let rig = Rig::start(&[(FAST, Some(Duration::from_millis(10)))]).expect("rig");
    let tmp = TempDir::new("bench-loris");
    let db = tmp.0.join("metrics.db");
    let mut daemon = DaemonGuard::start(&rig, &tmp.0, &config_with_history(&tmp.0, 19195, &db));
    assert!(crate::robustness::wait_http(&rig, 19195), "health never answered");
    let stop = AtomicBool::new(false);
    let connects = AtomicUsize::new(0);
    let (mut lat, lost) = rig
        .ns()
        .run_in(|| {
            std::thread::scope(|s| {
                for _ in 0..200 {
                    s.spawn(|| {
                        // A byte a second, reconnecting whenever the server drops us.
                        for _ in 0..100_000 {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", 19195)) else {
                                std::thread::sleep(Duration::from_millis(100));
                                continue;
                            };
                            connects.fetch_add(1, Ordering::Relaxed);
                            for b in b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" {
                                if stop.load(Ordering::Relaxed) || c.write_all(&[*b]).is_err() {
                                    break;
                                }
                                std::thread::sleep(Duration::from_secs(1));
                            }
                        }
                    });
                }
                std::thread::sleep(Duration::from_secs(2));
                let probe = s.spawn(|| probe_health(19195, Duration::from_millis(100), &stop));
                std::thread::sleep(Duration::from_secs(secs));
                stop.store(true, Ordering::Relaxed);
                probe.join().unwrap_or_default()
            })
        })
        .expect("clients");
    let log = daemon.stop();
    println!();
    println!(
        "slow-loris (issue 18): 200 clients trickling a byte a second for {secs} s, /health probed every 100 ms"
    );
    println!("  /health                    {} ; {lost} unanswered", latency_figures(&mut lat));
    println!("  slow connections opened    {}", connects.load(Ordering::Relaxed));
    println!(
        "  ticks                      {} ticks, {} missed; lateness max {} us",
        stat(&log, "ticks"),
        stat(&log, "missed"),
        stat(&log, "late_max_us")
    );
}

/// Issue 16: the hostile requests of tests/hostile.rs from 8 clients in a loop for 20 s
/// against a running daemon with history; prints tick lateness and RSS before and after.
#[test]
#[ignore = "benchmark: run with make bench"]
fn bench_hostile_clients() {
    use crate::robustness::{DaemonGuard, TempDir, config_with_history, history_db, wait_http};
    if !is_root() {
        eprintln!("skipped: needs root (network namespace and TUN)");
        return;
    }
    let rig = Rig::start(&[(crate::robustness::FAST, Some(Duration::from_millis(10)))]).expect("rig");
    let dir = TempDir::new("bench-hostile");
    let db = dir.0.join("metrics.db");
    history_db(&db, 100_000);
    let port = 19_261;
    let mut d = DaemonGuard::start(&rig, &dir.0, &config_with_history(&dir.0, port, &db));
    assert!(wait_http(&rig, port), "health never answered\n{}", d.stop());
    std::thread::sleep(Duration::from_secs(2));
    let pid = d.pid();
    let rss = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = rss(pid);
    let requests = crate::hostile::hostile_requests();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let sent = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for k in 0..8 {
            let (requests, stop, sent, rig) = (&requests, &stop, &sent, &rig);
            scope.spawn(move || {
                let _ = rig.ns().run_in(|| {
                    // Bounded by the 20 s stop flag and an iteration cap.
                    for i in k..k + 1_000_000 {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        let (_, raw, half) = &requests[i % requests.len()];
                        crate::hostile::exchange(port, raw, *half);
                        sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            });
        }
        std::thread::sleep(Duration::from_secs(20));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let after = rss(pid);
    let log = d.stop();
    println!();
    println!(
        "hostile clients: 8 clients x 20 s cycling {} hostile requests, history of 100 000 rows",
        requests.len()
    );
    println!("  requests sent       {}", sent.load(std::sync::atomic::Ordering::Relaxed));
    println!("  RSS                 {before} kB before, {after} kB after");
    println!(
        "  tick lateness       p50 {} us, p99 {} us, max {} us ({} ticks, {} missed)",
        stat(&log, "late_p50_us"),
        stat(&log, "late_p99_us"),
        stat(&log, "late_max_us"),
        stat(&log, "ticks"),
        stat(&log, "missed")
    );
}

/// Issue 13: idle probe back-off on the closed loop: idle for 50 s (back-off after 30 s),
/// then a saturating download. Prints echo requests per minute idle and loaded, and how
/// soon after the load full-rate probing resumed.
#[test]
#[ignore = "benchmark: run with make bench"]
fn bench_idle_backoff() {
    use crate::e2e::{REFLECTORS, Testbed};
    use crate::support::closed_loop::{CapacityTrace, LinkOptions};
    if !is_root() {
        eprintln!("skipped: needs root (network namespace and TUN)");
        return;
    }
    let bed = Testbed::start("bench-backoff");
    let opts = LinkOptions { demand_mbps: 0.0, demand_from: Some((50.0, 1000.0)), ..LinkOptions::default() };
    let rig = &bed.rig;
    let mut counts: Vec<(f64, u64)> = Vec::new();
    bed.drive_with(&CapacityTrace::Steady(100.0), &opts, 70, |t| {
        counts.push((t, REFLECTORS.iter().map(|&r| rig.requests(r)).sum()));
    });
    let mut bed = bed;
    let (code, log) = bed.stop();
    assert_eq!(code, 0, "{log}");
    let at = |t: f64| counts.iter().find(|c| c.0 >= t).map_or(0, |c| c.1);
    let idle = (at(50.0) - at(40.0)) as f64 * 6.0;
    let loaded = (at(70.0) - at(60.0)) as f64 * 6.0;
    // First 100 ms window after the load with a full round per tick (3 reflectors × 2 ticks).
    let resumed = counts.windows(2).find(|w| w[0].0 >= 50.0 && w[1].1 - w[0].1 >= 5).map(|w| w[1].0 - 50.0);
    println!();
    println!("idle back-off on the closed loop: idle 0-50 s, saturating download from 50 s, 3 reflectors");
    println!(
        "  echo requests       {idle:.0} a minute idle (40-50 s), {loaded:.0} a minute loaded (60-70 s)"
    );
    println!(
        "  full rate again     {} after the load started (counter reads every 0.5 s)",
        resumed.map_or("-".into(), |r| format!("{r:.2} s"))
    );
}
