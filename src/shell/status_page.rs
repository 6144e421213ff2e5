//! The `/status` page: one self-contained HTML document (no scripts, fonts or external
//! references: it must work on a router with no internet) with an inline SVG plot of the
//! last hour per WAN, drawn from an in-memory 1 Hz history the loop keeps. Keeping the last
//! hour in memory (a few hundred kB at most) means the page never runs a database query
//! inside the 50 ms loop, and works with `storage.db_path: ""` too.

use std::collections::VecDeque;
use std::fmt::Write as _;

use crate::engine::daemon::Daemon;
use crate::engine::health::Snapshot;
use crate::plot::{PlotOptions, Point, TimeLabels, WanSeries, render_svg, xml_escape};

/// Seconds of history kept.
pub const WINDOW_SECS: usize = 3600;

#[derive(Debug, Clone, Copy)]
struct Sample {
    t: f64,
    rtt: Option<f64>,
    baseline: f64,
    dl: f64,
    ul: f64,
    zone: u8,
}

/// A drawn plot and what it was drawn for: (recorded second, zone offset).
type CachedPlot = ((i64, i64), std::rc::Rc<str>);

/// The last hour, one sample per second per WAN.
#[derive(Debug, Default)]
pub struct RecentHistory {
    names: Vec<String>,
    samples: Vec<VecDeque<Sample>>,
    last_second: i64,
    /// The plot of the last hour is the costly part of the page (≈ 4.5 ms; 64 concurrent
    /// requests held the loop ≈ 0.3 s, issue 18) and changes once a second: it is drawn
    /// at most once per recorded second and zone offset.
    svg: std::cell::RefCell<Option<CachedPlot>>,
    svg_renders: std::cell::Cell<u64>,
}

impl RecentHistory {
    /// Records the daemon's state once per wall-clock second.
    pub fn record(&mut self, daemon: &Daemon, unix_secs: i64) {
        if unix_secs == self.last_second {
            return;
        }
        self.last_second = unix_secs;
        if self.samples.len() != daemon.wan_count() {
            self.samples = (0..daemon.wan_count()).map(|_| VecDeque::with_capacity(WINDOW_SECS)).collect();
            self.names = (0..daemon.wan_count())
                .filter_map(|i| daemon.wan(i).map(|(s, _, _)| s.config.wan_name.clone()))
                .collect();
        }
        for (i, q) in self.samples.iter_mut().enumerate() {
            let (Some((_, ctl, _)), report) = (daemon.wan(i), daemon.last_report(i)) else { continue };
            if q.len() == WINDOW_SECS {
                q.pop_front();
            }
            q.push_back(Sample {
                t: unix_secs as f64,
                rtt: report.and_then(|r| r.measured_ms),
                baseline: ctl.filter().baseline_ms(),
                dl: ctl.download().rate().as_mbps(),
                ul: ctl.upload().rate().as_mbps(),
                zone: report.map_or(0, |r| r.download.zone.history_code()),
            });
        }
    }

    fn series(&self) -> Vec<WanSeries> {
        self.names
            .iter()
            .zip(&self.samples)
            .map(|(name, q)| {
                let mut s = WanSeries { name: name.clone(), ..WanSeries::default() };
                for x in q {
                    if let Some(r) = x.rtt {
                        s.rtt_ms.push(Point { t: x.t, v: r });
                    }
                    s.baseline_ms.push(Point { t: x.t, v: x.baseline });
                    s.download_mbps.push(Point { t: x.t, v: x.dl });
                    s.upload_mbps.push(Point { t: x.t, v: x.ul });
                    s.state.push(Point { t: x.t, v: f64::from(x.zone) });
                }
                s
            })
            .collect()
    }

    /// How many times the plot was drawn (the rest came from the cache).
    pub fn svg_renders(&self) -> u64 {
        self.svg_renders.get()
    }

    fn svg(&self, utc_offset_secs: i64) -> std::rc::Rc<str> {
        let key = (self.last_second, utc_offset_secs);
        if let Some((k, svg)) = self.svg.borrow().as_ref()
            && *k == key
        {
            return std::rc::Rc::clone(svg);
        }
        let svg: std::rc::Rc<str> = render_svg(
            &self.series(),
            &PlotOptions {
                title: "last hour",
                time_labels: TimeLabels::Wall { utc_offset_secs },
                width: 1100,
            },
        )
        .into();
        self.svg_renders.set(self.svg_renders.get() + 1);
        *self.svg.borrow_mut() = Some((key, std::rc::Rc::clone(&svg)));
        svg
    }

    /// The whole page.
    pub fn render(&self, snap: &Snapshot, utc_offset_secs: i64) -> String {
        let healthy = snap.is_healthy();
        let mut rows = String::new();
        for w in &snap.wans {
            let _ = write!(
                rows,
                "<tr><td>{}</td><td>{:.1} ms</td><td>{:.1} ms</td><td class=\"z{}\">{}</td><td>{:.1}</td><td class=\"z{}\">{}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
                xml_escape(&w.name),
                w.baseline_rtt_ms,
                w.load_rtt_ms,
                w.download.1,
                w.download.1,
                w.download.0,
                w.upload.1,
                w.upload.1,
                w.upload.0,
                w.transport.unwrap_or("-"),
                if w.is_reachable { "reachable" } else { "UNREACHABLE" }
            );
        }
        let svg = self.svg(utc_offset_secs);
        format!(
            r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="15">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wanctl status</title>
<style>
body{{font-family:sans-serif;margin:1em;color:#222;background:#fff}}
h1{{font-size:1.3em;margin:0 0 .4em}} .ok{{color:#2ca02c}} .bad{{color:#d62728}}
table{{border-collapse:collapse;margin:.6em 0}} td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}
th{{background:#f4f4f4}} td:first-child{{text-align:left}}
.zGREEN{{background:#dff0d8}} .zYELLOW{{background:#fcf8e3}} .zSOFT_RED{{background:#fde0c5}} .zRED{{background:#f2dede}}
svg{{max-width:100%;height:auto}}
</style></head>
<body>
<h1>wanctl {version} <span class="{cls}">{status}</span></h1>
<p>up {uptime:.0} s · consecutive failures {fails} · ticks {ticks} (missed {missed}) · tick lateness p99 {p99} µs</p>
<table><tr><th>WAN</th><th>baseline</th><th>load</th><th>download</th><th>Mbit/s</th><th>upload</th><th>Mbit/s</th><th>transport</th><th>router</th></tr>
{rows}</table>
{svg}
</body></html>
"#,
            version = snap.version,
            cls = if healthy { "ok" } else { "bad" },
            status = if healthy { "healthy" } else { "degraded" },
            uptime = snap.uptime_seconds,
            fails = snap.consecutive_failures,
            ticks = snap.ticks.0,
            missed = snap.ticks.1,
            p99 = snap.tick_late_us.1,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_18_the_plot_is_drawn_at_most_once_per_recorded_second() {
        // `render` takes the plot from `svg`; the table around it stays live.
        let recent = RecentHistory::default();
        let plots: Vec<std::rc::Rc<str>> = (0..64).map(|_| recent.svg(0)).collect();
        assert!(plots.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(recent.svg_renders(), 1, "64 requests in one second draw one plot");
        let _ = recent.svg(3600);
        assert_eq!(recent.svg_renders(), 2, "another zone offset is another plot");
    }
}
