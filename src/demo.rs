//! `wanctl demo`: the real engine on the built-in simulated link and router, shown as a
//! compact live timeline and an SVG plot. Shell code (it sleeps to pace the output and
//! writes a file); the run itself is the deterministic simulator.

// Shell code: the pure-module bans of clippy.toml do not apply here.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::io::Write as _;
use std::time::Duration;

use crate::plot::{PlotOptions, Point, TimeLabels, WanSeries, render_svg};
use crate::sim::{SimWorld, TraceRow, sample_config, scenarios};
use crate::time::Instant;

/// Demo options.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoArgs {
    /// Scenario name (default `step`).
    pub scenario: String,
    /// Simulated seconds per real second (0 = as fast as possible).
    pub speed: f64,
    /// Where to write the plot.
    pub svg: String,
    /// Seed.
    pub seed: u64,
}

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs { scenario: "step".into(), speed: 12.0, svg: "wanctl-demo.svg".into(), seed: 1 }
    }
}

fn bar(value: f64, max: f64, width: usize) -> String {
    let n = ((value / max).clamp(0.0, 1.0) * width as f64).round() as usize;
    format!("{}{}", "#".repeat(n), ".".repeat(width - n))
}

fn line(r: &TraceRow, ceiling: f64) -> String {
    format!(
        "{:6.1}s  capacity {:5.1}  shaper {:5.1} Mbit/s [{}]  RTT {:6.1} ms  queue {:5.1} ms  {:<8}",
        r.t,
        r.dl_capacity,
        r.dl_rate,
        bar(r.dl_rate, ceiling, 20),
        r.measured_ms.unwrap_or(f64::NAN),
        r.added_delay_ms,
        r.report.download.zone.as_str()
    )
}

/// Builds the plot series from a trace.
pub fn series(name: &str, trace: &[TraceRow]) -> WanSeries {
    let mut s = WanSeries { name: name.to_string(), ..WanSeries::default() };
    for r in trace {
        if let Some(m) = r.measured_ms {
            s.rtt_ms.push(Point { t: r.t, v: m });
        }
        s.baseline_ms.push(Point { t: r.t, v: r.baseline_ms });
        s.download_mbps.push(Point { t: r.t, v: r.dl_rate });
        s.upload_mbps.push(Point { t: r.t, v: r.ul_rate });
        s.state.push(Point { t: r.t, v: f64::from(r.report.download.zone.history_code()) });
    }
    s
}

/// Runs the demo; returns the exit code.
pub fn run(args: &DemoArgs) -> u8 {
    let Some(s) = scenarios::all().into_iter().find(|s| s.name == args.scenario) else {
        let names: Vec<_> = scenarios::all().iter().map(|s| s.name).collect();
        eprintln!("error: demo: no scenario named {:?} (have: {})", args.scenario, names.join(", "));
        return 2;
    };
    let cfg = sample_config();
    let ceiling = cfg.monitoring.download.ceiling.as_mbps();
    let mut rng = crate::rng::Rng::new(args.seed ^ 0x5eed);
    let profile = (s.profile)(&mut rng);
    let mut world = SimWorld::new(&cfg, profile, args.seed);
    let mut out = std::io::stdout();
    // Output errors (a closed pipe) end the live view quietly; the run and plot go on.
    let mut live = writeln!(
        out,
        "wanctl demo: the real controller on a simulated line (no router, no network needed)\n\
         scenario {}: {}\n\
         line: 100/20 Mbit/s cable-like, 20 ms base RTT, 600 ms modem buffer; download saturated\n",
        s.name, s.about
    )
    .is_ok();
    let chunk = 0.5;
    let mut t = 0.0;
    while t < s.duration_s {
        t = (t + chunk).min(s.duration_s);
        world.run_until(Instant::from_micros((t * 1e6) as u64));
        if live && let Some(r) = world.trace.last() {
            live = writeln!(out, "{}", line(r, ceiling)).and_then(|()| out.flush()).is_ok();
            if live && args.speed > 0.0 {
                std::thread::sleep(Duration::from_secs_f64(chunk / args.speed));
            }
        }
    }
    let f = scenarios::figures(&s, &world, args.seed);
    let _ = write!(out, "\n{}", scenarios::table(std::slice::from_ref(&f)));
    let wan = series("simulated line", &world.trace);
    let title = format!("wanctl demo: {} scenario", s.name);
    let svg =
        render_svg(&[wan], &PlotOptions { title: &title, time_labels: TimeLabels::Elapsed, width: 1100 });
    match std::fs::write(&args.svg, svg) {
        Ok(()) => {
            let _ = writeln!(out, "\nplot written to {} (open it in a browser)", args.svg);
            0
        }
        Err(e) => {
            eprintln!("error: write {}: {e}", args.svg);
            1
        }
    }
}
