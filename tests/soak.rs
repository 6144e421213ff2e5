//! `make soak` (SOAK_SECS, default 3600): the release daemon on the closed loop with an
//! LTE-like trace, history on, faults injected periodically (router refusing for 10 s every
//! 5 minutes, all reflectors silent for 5 s every 7 minutes), SIGHUP every 3 minutes. Prints
//! RSS at start (after the first minute), middle and end, open file descriptors, ticks
//! missed, tick lateness, writes per minute and the history database's size. Figures, not
//! assertions: a shared machine makes timed assertions flaky. Needs root.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::e2e::{REFLECTORS, Testbed};
use crate::support::closed_loop::CapacityTrace;
use crate::support::fake_router::Fault;
use crate::support::netns::is_root;

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[derive(Debug, Default, Clone, Copy)]
struct Point {
    t: f64,
    rss_kb: u64,
    fds: usize,
}

#[test]
#[ignore = "soak: run with make soak (SOAK_SECS, default 3600)"]
fn soak_closed_loop() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespace and TUN)");
        return;
    }
    let secs: u64 = std::env::var("SOAK_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(3600).max(120);
    let bed = Testbed::start("soak");
    let pid = bed.pid();
    let trace = CapacityTrace::RandomWalk { start: 60.0, min: 15.0, max: 90.0, every: 2.0, seed: 11 };
    let router = &bed.router;
    let rig = &bed.rig;
    let ns = rig.ns();
    let mut points: Vec<Point> = Vec::new();
    let mut next_point = 60.0;
    let mut hups = 0u32;
    let mut faults = 0u32;
    let mut next_hup = 180.0;
    let mut router_fault: Option<f64> = None;
    let mut reflector_fault: Option<f64> = None;
    let _samples = bed.drive(&trace, secs, |t| {
        if t >= next_point {
            points.push(Point { t, rss_kb: rss_kb(pid), fds: fds(pid) });
            next_point += 60.0;
        }
        if t >= next_hup {
            next_hup += 180.0;
            hups += 1;
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGHUP);
        }
        let five = (t / 300.0).floor();
        if t > 60.0 && router_fault.is_none() && t - five * 300.0 < 0.2 && five >= 1.0 {
            let _ = ns.run_in(|| router.set_fault(Fault::Refuse));
            router_fault = Some(t);
            faults += 1;
        }
        if router_fault.is_some_and(|s| t - s >= 10.0) {
            let _ = ns.run_in(|| router.resume());
            router_fault = None;
        }
        let seven = (t / 420.0).floor();
        if reflector_fault.is_none() && seven >= 1.0 && t - seven * 420.0 < 0.2 {
            for r in REFLECTORS {
                rig.set_loss(r, 1.0);
            }
            reflector_fault = Some(t);
            faults += 1;
        }
        if reflector_fault.is_some_and(|s| t - s >= 5.0) {
            for r in REFLECTORS {
                rig.set_loss(r, 0.0);
            }
            reflector_fault = None;
        }
    });
    points.push(Point { t: secs as f64, rss_kb: rss_kb(pid), fds: fds(pid) });
    let health = crate::health::http_get(&bed.rig, 9101, "/health").map(|r| r.1).unwrap_or_default();
    let h: serde_json::Value = serde_json::from_str(&health).unwrap_or_default();
    let db = std::fs::metadata(bed.dir.join("metrics.db")).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(bed.dir.join("metrics.db-wal")).map(|m| m.len()).unwrap_or(0);
    // Counted at the router (two PATCHes a write): the daemon's own counters restart with
    // every SIGHUP reload.
    let writes = bed.router.requests().iter().filter(|r| r.method == "PATCH").count() as u64 / 2;
    let mut bed = bed;
    let (code, log) = bed.stop();
    let first = points.first().copied().unwrap_or_default();
    let mid = points.get(points.len() / 2).copied().unwrap_or_default();
    let last = points.last().copied().unwrap_or_default();
    let max_rss = points.iter().map(|p| p.rss_kb).max().unwrap_or(0);
    let fd_range =
        (points.iter().map(|p| p.fds).min().unwrap_or(0), points.iter().map(|p| p.fds).max().unwrap_or(0));
    println!();
    println!(
        "soak: {secs} s on the closed loop (LTE walk 15-90 Mbit/s), history on, {hups} SIGHUPs, {faults} faults"
    );
    println!(
        "  RSS                 {} kB at {:.0} s, {} kB at {:.0} s, {} kB at the end (max {} kB; growth after the first minute {} kB)",
        first.rss_kb,
        first.t,
        mid.rss_kb,
        mid.t,
        last.rss_kb,
        max_rss,
        last.rss_kb as i64 - first.rss_kb as i64
    );
    println!("  open fds            {} .. {} (sampled every minute)", fd_range.0, fd_range.1);
    println!(
        "  ticks               {} ({} missed); lateness p50 {} us, p99 {} us, max {} us",
        h["ticks"],
        h["missed_ticks"],
        h["tick_lateness_us"]["p50"],
        h["tick_lateness_us"]["p99"],
        h["tick_lateness_us"]["max"]
    );
    println!("  router writes       {writes} ({:.1} per minute)", writes as f64 / secs as f64 * 60.0);
    println!("  history database    {:.1} MB (with WAL)", db as f64 / 1e6);
    println!("  exit code           {code}");
    assert_eq!(code, 0, "{log}");
}
