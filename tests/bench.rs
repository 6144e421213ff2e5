//! `make bench`: figures, never assertions on speed (shared machines make timed
//! assertions flaky). Each bench is `#[ignore]`d so the normal test run skips it; `make
//! bench` runs them with `--ignored --nocapture` and they print one table.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::netns::is_root;
use crate::support::reflector::Rig;

fn bench_secs() -> u64 {
    std::env::var("WANCTL_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30)
}

/// utime + stime (s) and peak RSS (KiB) of a live process, from /proc.
fn proc_usage(pid: u32) -> (f64, u64) {
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
    let mut child = rig
        .ns()
        .command(env!("CARGO_BIN_EXE_wanctl"))
        .env("WANCTL_SSH", "false")
        .args(["--config", cfg.to_str().expect("utf8")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("stderr"))
        .spawn()
        .expect("spawn");
    let secs = bench_secs();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let (cpu, rss) = proc_usage(child.id());
    let wall = start.elapsed().as_secs_f64();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let limit = Instant::now();
    while child.try_wait().expect("try_wait").is_none() && limit.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
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
