//! SVG charts of the history. Pure: rows or series in, one self-contained SVG document out
//! (no scripts, no external references, no fonts beyond the generic `sans-serif`).
//!
//! Per WAN, stacked panels share the time axis: RTT and baseline (ms), download and upload
//! rate (Mbit/s), and the download zone as a coloured band. Each panel has y-axis ticks and a
//! legend; the time axis is labelled under each WAN's band.
//!
//! Size control: lines break where the gap between samples exceeds [`GAP_FACTOR`] times the
//! series' typical sample spacing, and a series with more than [`MAX_POINTS_PER_SERIES`]
//! points is decimated by min/max bucketing (each of 1 000 time buckets keeps its lowest and
//! highest sample, so spikes survive). The zone band is drawn per pixel column, the worst
//! zone of the column winning, and runs of equal columns merge into one rectangle.
//!
//! Users: `wanctl history --plot`, and later the status page and `wanctl demo`. Out of
//! scope: reading the database, files, the clock (the caller passes the UTC offset).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::engine::history::{self, MetricRow};

/// Points kept per series after decimation (about; segments add at most one point each).
pub const MAX_POINTS_PER_SERIES: usize = 2000;

/// A line breaks where consecutive samples are more than this many typical spacings apart.
pub const GAP_FACTOR: f64 = 5.0;

/// One sample: `t` in seconds (Unix time, or elapsed seconds with [`TimeLabels::Elapsed`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Time (s).
    pub t: f64,
    /// Value.
    pub v: f64,
}

/// Everything plotted for one WAN. Points need not be sorted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WanSeries {
    /// WAN name (the block heading).
    pub name: String,
    /// Measured RTT (ms).
    pub rtt_ms: Vec<Point>,
    /// Baseline RTT (ms).
    pub baseline_ms: Vec<Point>,
    /// Download rate (Mbit/s).
    pub download_mbps: Vec<Point>,
    /// Upload rate (Mbit/s).
    pub upload_mbps: Vec<Point>,
    /// Download zone code (GREEN 0, YELLOW 1, SOFT_RED 2, RED 3).
    pub state: Vec<Point>,
}

impl WanSeries {
    /// Groups history rows by WAN (sorted by name). `wanctl_state` rows count when they are
    /// the download zone: labels NULL (downsampled) or `"direction": "download"`; upload
    /// transitions and steering states are left out.
    pub fn from_rows(rows: &[MetricRow]) -> Vec<WanSeries> {
        let mut by_wan: BTreeMap<&str, WanSeries> = BTreeMap::new();
        for r in rows {
            let s = by_wan
                .entry(r.wan_name.as_str())
                .or_insert_with(|| WanSeries { name: r.wan_name.clone(), ..WanSeries::default() });
            let p = Point { t: r.timestamp as f64, v: r.value };
            match r.metric_name.as_ref() {
                history::RTT_MS => s.rtt_ms.push(p),
                history::RTT_BASELINE_MS => s.baseline_ms.push(p),
                history::RATE_DOWNLOAD_MBPS => s.download_mbps.push(p),
                history::RATE_UPLOAD_MBPS => s.upload_mbps.push(p),
                history::STATE
                    if r.labels.as_deref().is_none_or(|l| l.contains(r#""direction": "download""#)) =>
                {
                    s.state.push(p)
                }
                _ => {}
            }
        }
        by_wan.into_values().collect()
    }

    fn is_empty(&self) -> bool {
        self.all().iter().all(|s| s.is_empty())
    }

    fn all(&self) -> [&[Point]; 5] {
        [&self.rtt_ms, &self.baseline_ms, &self.download_mbps, &self.upload_mbps, &self.state]
    }
}

/// How the time axis is labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeLabels {
    /// `t` is Unix time; labels are local clock time at this offset (seconds east of UTC).
    Wall {
        /// The local zone's offset.
        utc_offset_secs: i64,
    },
    /// `t` is seconds since some start; labels are `30s`, `5m`, `2h`.
    Elapsed,
}

/// Chart options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlotOptions<'a> {
    /// The heading and the document's `<title>`.
    pub title: &'a str,
    /// Axis labelling.
    pub time_labels: TimeLabels,
    /// Width in pixels (clamped to 320–4000).
    pub width: u32,
}

impl Default for PlotOptions<'_> {
    fn default() -> Self {
        PlotOptions {
            title: "wanctl history",
            time_labels: TimeLabels::Wall { utc_offset_secs: 0 },
            width: 960,
        }
    }
}

/// Zone colours, indexed by code.
pub const ZONE_COLOURS: [(&str, &str); 4] =
    [("GREEN", "#2ca02c"), ("YELLOW", "#e6b800"), ("SOFT_RED", "#ff7f0e"), ("RED", "#d62728")];
const UNKNOWN_ZONE_COLOUR: &str = "#999999";
const RTT_COLOUR: &str = "#1f77b4";
const BASELINE_COLOUR: &str = "#7f7f7f";
const DOWNLOAD_COLOUR: &str = "#2ca02c";
const UPLOAD_COLOUR: &str = "#9467bd";

const MARGIN_LEFT: f64 = 64.0;
const MARGIN_RIGHT: f64 = 16.0;
const TITLE_HEIGHT: f64 = 40.0;
const PANEL_HEIGHT: f64 = 140.0;
const BAND_HEIGHT: f64 = 16.0;
/// Space above a panel for its caption and legend.
const CAPTION_HEIGHT: f64 = 18.0;
/// Heading (20) + caption + RTT panel + caption + rates panel + gap (10) + band + tick
/// labels (26).
const BLOCK_HEIGHT: f64 =
    20.0 + CAPTION_HEIGHT + PANEL_HEIGHT + CAPTION_HEIGHT + PANEL_HEIGHT + 10.0 + BAND_HEIGHT + 26.0;

/// Renders history rows (any order) as one SVG document.
pub fn render_rows(rows: &[MetricRow], opts: &PlotOptions<'_>) -> String {
    render_svg(&WanSeries::from_rows(rows), opts)
}

/// Renders the series as one SVG document; without any point, a small "no data" document.
pub fn render_svg(wans: &[WanSeries], opts: &PlotOptions<'_>) -> String {
    let width = f64::from(opts.width.clamp(320, 4000));
    let wans: Vec<&WanSeries> = wans.iter().filter(|w| !w.is_empty()).collect();
    let Some((t0, t1)) = time_range(&wans) else {
        return no_data(width, opts.title);
    };
    let height = TITLE_HEIGHT + BLOCK_HEIGHT * wans.len() as f64 + 8.0;
    let mut svg = String::with_capacity(64 * 1024);
    header(&mut svg, width, height, opts.title);
    // Zone legend, once, at the right of the title line.
    let mut x = width - MARGIN_RIGHT;
    for (name, colour) in ZONE_COLOURS.iter().rev() {
        let w = 13.0 + 7.0 * name.len() as f64;
        x -= w + 14.0;
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="16" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="25">{name}</text>"#,
            x,
            x + 13.0
        );
    }
    svg.push('\n');
    let plot = Frame { left: MARGIN_LEFT, right: width - MARGIN_RIGHT, t0, t1 };
    let ticks = time_ticks(t0, t1, opts.time_labels);
    for (i, wan) in wans.iter().enumerate() {
        let top = TITLE_HEIGHT + BLOCK_HEIGHT * i as f64;
        wan_block(&mut svg, wan, &plot, &ticks, top);
    }
    svg.push_str("</svg>\n");
    svg
}

fn header(svg: &mut String, width: f64, height: f64, title: &str) {
    let title = xml_escape(title);
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <title>{title}</title>\n\
         <rect x=\"0\" y=\"0\" width=\"{width:.0}\" height=\"{height:.0}\" fill=\"#ffffff\"/>\n\
         <text x=\"{MARGIN_LEFT:.0}\" y=\"25\" font-size=\"15\" font-weight=\"bold\">{title}</text>\n"
    );
}

fn no_data(width: f64, title: &str) -> String {
    let mut svg = String::new();
    header(&mut svg, width, 120.0, title);
    let _ = write!(
        svg,
        "<text x=\"{:.0}\" y=\"76\" text-anchor=\"middle\" fill=\"#666666\">No data for the selected time range</text>\n</svg>\n",
        width / 2.0
    );
    svg
}

/// The earliest and latest finite sample time; a single instant is widened by 30 s each way.
fn time_range(wans: &[&WanSeries]) -> Option<(f64, f64)> {
    let mut range: Option<(f64, f64)> = None;
    for w in wans {
        for p in w.all().iter().flat_map(|s| s.iter()).filter(|p| p.t.is_finite() && p.v.is_finite()) {
            range = Some(range.map_or((p.t, p.t), |(a, b)| (a.min(p.t), b.max(p.t))));
        }
    }
    range.map(|(a, b)| if b > a { (a, b) } else { (a - 30.0, b + 30.0) })
}

/// The horizontal mapping shared by every panel.
struct Frame {
    left: f64,
    right: f64,
    t0: f64,
    t1: f64,
}

impl Frame {
    fn x(&self, t: f64) -> f64 {
        self.left + (t - self.t0) / (self.t1 - self.t0) * (self.right - self.left)
    }
}

/// A panel's vertical mapping.
struct Panel {
    top: f64,
    bottom: f64,
    lo: f64,
    hi: f64,
}

impl Panel {
    fn y(&self, v: f64) -> f64 {
        self.bottom - (v - self.lo) / (self.hi - self.lo) * (self.bottom - self.top)
    }
}

struct Series<'a> {
    label: &'a str,
    colour: &'a str,
    dashed: bool,
    points: &'a [Point],
}

fn wan_block(svg: &mut String, wan: &WanSeries, frame: &Frame, ticks: &[(f64, String)], top: f64) {
    let _ = writeln!(
        svg,
        r#"<text x="{:.0}" y="{:.1}" font-size="13" font-weight="bold">{}</text>"#,
        frame.left,
        top + 15.0,
        xml_escape(&wan.name)
    );
    let rtt_top = top + 20.0 + CAPTION_HEIGHT;
    panel(
        svg,
        frame,
        ticks,
        rtt_top,
        "RTT (ms)",
        &[
            Series { label: "RTT", colour: RTT_COLOUR, dashed: false, points: &wan.rtt_ms },
            Series { label: "baseline", colour: BASELINE_COLOUR, dashed: true, points: &wan.baseline_ms },
        ],
    );
    let rate_top = rtt_top + PANEL_HEIGHT + CAPTION_HEIGHT;
    panel(
        svg,
        frame,
        ticks,
        rate_top,
        "rate (Mbit/s)",
        &[
            Series { label: "download", colour: DOWNLOAD_COLOUR, dashed: false, points: &wan.download_mbps },
            Series { label: "upload", colour: UPLOAD_COLOUR, dashed: false, points: &wan.upload_mbps },
        ],
    );
    let band_top = rate_top + PANEL_HEIGHT + 10.0;
    zone_band(svg, frame, band_top, &wan.state);
    // Time-axis labels under the band.
    for (t, label) in ticks {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            frame.x(*t),
            band_top + BAND_HEIGHT + 14.0,
            xml_escape(label)
        );
    }
    svg.push('\n');
}

fn panel(
    svg: &mut String,
    frame: &Frame,
    ticks: &[(f64, String)],
    top: f64,
    caption: &str,
    series: &[Series<'_>],
) {
    let values = series.iter().flat_map(|s| s.points.iter()).map(|p| p.v).filter(|v| v.is_finite());
    let (lo, hi) = values.fold((0.0f64, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let hi = if hi.is_finite() && hi > lo { hi } else { lo + 1.0 };
    let step = nice_step((hi - lo) / 4.0);
    let p = Panel {
        top,
        bottom: top + PANEL_HEIGHT,
        lo: (lo / step).floor() * step,
        hi: (hi / step).ceil() * step,
    };
    let _ = write!(
        svg,
        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{PANEL_HEIGHT:.0}\" fill=\"none\" stroke=\"#cccccc\"/>",
        frame.left,
        top,
        frame.right - frame.left
    );
    // Horizontal grid and y labels; the loop is bounded by the tick count (≤ ~10).
    let mut v = p.lo;
    for _ in 0..12 {
        if v > p.hi + step / 2.0 {
            break;
        }
        let y = p.y(v);
        let _ = write!(
            svg,
            "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eeeeee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            frame.left,
            frame.right,
            frame.left - 6.0,
            y + 4.0,
            history::format_value(v)
        );
        v += step;
    }
    for (t, _) in ticks {
        let x = frame.x(*t);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#eeeeee\"/>",
            p.top, p.bottom
        );
    }
    let _ =
        write!(svg, r##"<text x="{:.1}" y="{:.1}" fill="#444444">{caption}</text>"##, frame.left, top - 5.0);
    // Legend above the panel's right edge.
    let mut x = frame.right;
    for s in series.iter().rev() {
        x -= 22.0 + 6.5 * s.label.len() as f64 + 10.0;
        let dash = if s.dashed { r#" stroke-dasharray="4 3""# } else { "" };
        let _ = write!(
            svg,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            x,
            top - 9.0,
            x + 18.0,
            top - 9.0,
            s.colour,
            x + 22.0,
            top - 5.0,
            s.label
        );
    }
    svg.push('\n');
    for s in series {
        line(svg, frame, &p, s);
    }
}

fn line(svg: &mut String, frame: &Frame, p: &Panel, s: &Series<'_>) {
    let points = decimate(&sorted_finite(s.points), frame.t0, frame.t1);
    if points.is_empty() {
        return;
    }
    let dash = if s.dashed { r#" stroke-dasharray="4 3""# } else { "" };
    let mut d = String::with_capacity(points.iter().map(Vec::len).sum::<usize>() * 14);
    for segment in &points {
        if let [only] = segment.as_slice() {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{}"/>"#,
                frame.x(only.t),
                p.y(only.v),
                s.colour
            );
            continue;
        }
        for (i, pt) in segment.iter().enumerate() {
            let _ = write!(d, "{}{:.1} {:.1}", if i == 0 { "M" } else { "L" }, frame.x(pt.t), p.y(pt.v));
        }
    }
    if !d.is_empty() {
        let _ = write!(
            svg,
            r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.2" stroke-linejoin="round"{dash}/>"#,
            s.colour
        );
    }
    svg.push('\n');
}

fn sorted_finite(points: &[Point]) -> Vec<Point> {
    let mut v: Vec<Point> = points.iter().copied().filter(|p| p.t.is_finite() && p.v.is_finite()).collect();
    v.sort_by(|a, b| a.t.total_cmp(&b.t));
    v
}

/// The spacing beyond which a line breaks: [`GAP_FACTOR`] × the median positive spacing
/// (raw rows share whole seconds, so zero spacings are ignored); infinite when unknown.
fn gap_threshold(sorted: &[Point]) -> f64 {
    let mut gaps: Vec<f64> = sorted.windows(2).map(|w| w[1].t - w[0].t).filter(|d| *d > 0.0).collect();
    if gaps.is_empty() {
        return f64::INFINITY;
    }
    gaps.sort_by(f64::total_cmp);
    gaps[gaps.len() / 2] * GAP_FACTOR
}

/// Splits a sorted series at gaps, then, if it is longer than [`MAX_POINTS_PER_SERIES`],
/// keeps each time bucket's minimum and maximum (in time order).
pub fn decimate(sorted: &[Point], t0: f64, t1: f64) -> Vec<Vec<Point>> {
    let threshold = gap_threshold(sorted);
    let mut segments: Vec<Vec<Point>> = Vec::new();
    let mut prev: Option<f64> = None;
    for p in sorted {
        if prev.is_none_or(|t| p.t - t > threshold) {
            segments.push(Vec::new());
        }
        if let Some(seg) = segments.last_mut() {
            seg.push(*p);
        }
        prev = Some(p.t);
    }
    if sorted.len() <= MAX_POINTS_PER_SERIES {
        return segments;
    }
    let buckets = (MAX_POINTS_PER_SERIES / 2) as f64;
    let width = ((t1 - t0) / buckets).max(f64::MIN_POSITIVE);
    let bucket = |t: f64| ((t - t0) / width).floor().clamp(0.0, buckets - 1.0) as usize;
    segments
        .into_iter()
        .map(|seg| {
            let mut out = Vec::new();
            let mut i = 0;
            while i < seg.len() {
                let b = bucket(seg[i].t);
                let run = seg[i..].iter().take_while(|p| bucket(p.t) == b).count();
                let chunk = &seg[i..i + run];
                let (mut lo, mut hi) = (0, 0);
                for (k, p) in chunk.iter().enumerate() {
                    if p.v < chunk[lo].v {
                        lo = k;
                    }
                    if p.v > chunk[hi].v {
                        hi = k;
                    }
                }
                out.push(chunk[lo.min(hi)]);
                if lo != hi {
                    out.push(chunk[lo.max(hi)]);
                }
                i += run;
            }
            out
        })
        .collect()
}

fn zone_colour(code: f64) -> &'static str {
    if code.fract() == 0.0 && (0.0..4.0).contains(&code) {
        ZONE_COLOURS[code as usize].1
    } else {
        UNKNOWN_ZONE_COLOUR
    }
}

/// The zone band: each sample lasts until the next (or one typical spacing before a gap or
/// at the end); per pixel column the worst zone wins; equal neighbours merge.
fn zone_band(svg: &mut String, frame: &Frame, top: f64, state: &[Point]) {
    let _ = write!(
        svg,
        "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{BAND_HEIGHT:.0}\" fill=\"#f4f4f4\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">zone</text>",
        frame.left,
        frame.right - frame.left,
        frame.left - 6.0,
        top + 12.0
    );
    let sorted = sorted_finite(state);
    let threshold = gap_threshold(&sorted);
    let spacing = if threshold.is_finite() { threshold / GAP_FACTOR } else { 0.0 };
    let columns = (frame.right - frame.left).ceil() as usize;
    let mut worst: Vec<Option<f64>> = vec![None; columns];
    for (i, p) in sorted.iter().enumerate() {
        let end = match sorted.get(i + 1) {
            Some(next) if next.t - p.t <= threshold => next.t,
            _ => p.t + spacing,
        };
        let a = (frame.x(p.t) - frame.left).floor().max(0.0) as usize;
        let b = ((frame.x(end) - frame.left).ceil() as usize).max(a + 1).min(columns);
        for col in worst.iter_mut().take(b).skip(a) {
            *col = Some(col.map_or(p.v, |c: f64| c.max(p.v)));
        }
    }
    let mut c = 0;
    while c < columns {
        let run = worst[c..].iter().take_while(|w| **w == worst[c]).count();
        if let Some(code) = worst[c] {
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{top:.1}" width="{run}" height="{BAND_HEIGHT:.0}" fill="{}"/>"#,
                frame.left + c as f64,
                zone_colour(code)
            );
        }
        c += run;
    }
    svg.push('\n');
}

/// 1, 2 or 5 × a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let f = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    f * mag
}

/// Tick steps (s) for the time axis: the first giving at most eight ticks wins.
const TIME_STEPS: [i64; 21] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800,
    604_800, 2_419_200,
];

/// Tick positions and labels, aligned to whole steps of local (or elapsed) time.
fn time_ticks(t0: f64, t1: f64, labels: TimeLabels) -> Vec<(f64, String)> {
    let span = t1 - t0;
    let step = TIME_STEPS.iter().copied().find(|s| span / *s as f64 <= 8.0).unwrap_or_else(|| {
        let weeks = (span / 604_800.0 / 8.0).ceil().max(1.0);
        weeks as i64 * 604_800
    });
    let offset = match labels {
        TimeLabels::Wall { utc_offset_secs } => utc_offset_secs,
        TimeLabels::Elapsed => 0,
    };
    // Saturating: absurd timestamps in a damaged database must not overflow.
    let first =
        (((t0 + offset as f64) / step as f64).ceil() as i64).saturating_mul(step).saturating_sub(offset);
    let mut ticks = Vec::new();
    let mut t = first;
    for _ in 0..16 {
        if t as f64 > t1 || ticks.last().is_some_and(|(prev, _)| *prev == t as f64) {
            break;
        }
        let label = match labels {
            TimeLabels::Wall { utc_offset_secs } => {
                let full = history::local_datetime(t, utc_offset_secs); // YYYY-MM-DD HH:MM:SS
                if step < 60 {
                    full[11..].to_string()
                } else if span > 86_400.0 {
                    format!("{} {}", &full[5..10], &full[11..16])
                } else {
                    full[11..16].to_string()
                }
            }
            TimeLabels::Elapsed if step % 3600 == 0 => format!("{}h", t / 3600),
            TimeLabels::Elapsed if step % 60 == 0 => format!("{}m", t / 60),
            TimeLabels::Elapsed => format!("{t}s"),
        };
        ticks.push((t as f64, label));
        t = t.saturating_add(step);
    }
    ticks
}

/// Escapes text for XML content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tags balance: every opening tag is closed in order, self-closing ones aside.
    fn assert_balanced(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        let mut guard = 0;
        while let Some(start) = rest.find('<') {
            guard += 1;
            assert!(guard < 1_000_000, "runaway");
            let end = rest[start..].find('>').expect("tag closes") + start;
            let tag = &rest[start + 1..end];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().expect("name").to_string());
            }
            rest = &rest[end + 1..];
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
    }

    fn rows(n: i64, step: i64) -> Vec<MetricRow> {
        let mut v = Vec::new();
        for i in 0..n {
            let t = 1_769_349_600 + i * step;
            v.push(MetricRow::raw(t, "wan1", history::RTT_MS, 20.0 + (i % 7) as f64, None));
            v.push(MetricRow::raw(t, "wan1", history::RTT_BASELINE_MS, 19.5, None));
            v.push(MetricRow::raw(t, "wan1", history::RATE_DOWNLOAD_MBPS, 900.0, None));
            v.push(MetricRow::raw(t, "wan1", history::RATE_UPLOAD_MBPS, 38.0, None));
            v.push(MetricRow::raw(
                t,
                "wan1",
                history::STATE,
                (i / 10 % 4) as f64,
                Some(r#"{"direction": "download"}"#.into()),
            ));
        }
        v
    }

    #[test]
    fn empty_data_is_a_no_data_document() {
        let svg = render_rows(&[], &PlotOptions::default());
        assert!(svg.starts_with("<svg "));
        assert!(svg.contains("No data"));
        assert_balanced(&svg);
    }

    #[test]
    fn one_point_draws_markers() {
        let svg = render_rows(&rows(1, 1), &PlotOptions::default());
        assert_balanced(&svg);
        assert!(svg.contains("<circle"));
        assert!(svg.contains(ZONE_COLOURS[0].1));
    }

    #[test]
    fn series_legend_and_zones_present() {
        let mut r = rows(200, 1);
        r.push(MetricRow::raw(1_769_349_600, "wan2 <&>", history::RTT_MS, 5.0, None));
        let svg = render_rows(&r, &PlotOptions { title: "t & t", ..PlotOptions::default() });
        assert_balanced(&svg);
        for s in [
            "RTT",
            "baseline",
            "download",
            "upload",
            "wan1",
            "wan2 &lt;&amp;&gt;",
            "t &amp; t",
            "rate (Mbit/s)",
        ] {
            assert!(svg.contains(s), "{s}");
        }
        for (_, colour) in ZONE_COLOURS {
            assert!(svg.contains(colour), "{colour}");
        }
        assert_eq!(svg.matches("http").count(), 1, "only the namespace");
        assert!(!svg.contains("<script"));
    }

    #[test]
    fn gaps_break_the_line() {
        let pts: Vec<Point> = (0..10)
            .map(|i| Point { t: f64::from(i), v: 1.0 })
            .chain((100..110).map(|i| Point { t: f64::from(i), v: 2.0 }))
            .collect();
        let segs = decimate(&pts, 0.0, 109.0);
        assert_eq!(segs.len(), 2);
        // Same-second samples (raw rows) do not count as spacing.
        let same: Vec<Point> = (0..40).map(|i| Point { t: f64::from(i / 20), v: 1.0 }).collect();
        assert_eq!(decimate(&same, 0.0, 1.0).len(), 1);
    }

    #[test]
    fn many_points_are_decimated_keeping_extremes() {
        let mut pts: Vec<Point> = (0..100_000).map(|i| Point { t: f64::from(i) / 20.0, v: 10.0 }).collect();
        pts[54_321].v = 500.0;
        let segs = decimate(&pts, 0.0, 99_999.0 / 20.0);
        let total: usize = segs.iter().map(Vec::len).sum();
        assert!(total <= MAX_POINTS_PER_SERIES + segs.len(), "{total}");
        assert!(segs.iter().flatten().any(|p| p.v == 500.0), "spike kept");
        let svg = render_svg(
            &[WanSeries { name: "w".into(), rtt_ms: pts, ..WanSeries::default() }],
            &PlotOptions::default(),
        );
        assert!(svg.len() < 120_000, "{} bytes", svg.len());
        assert_balanced(&svg);
    }

    #[test]
    fn upload_transitions_and_steering_states_are_not_the_band() {
        let r = vec![
            MetricRow::raw(
                0,
                "w",
                history::STATE,
                3.0,
                Some(r#"{"direction": "upload", "reason": "x"}"#.into()),
            ),
            MetricRow::raw(0, "w", history::STATE, 2.0, Some(r#"{"source": "steering"}"#.into())),
            MetricRow::raw(0, "w", history::STATE, 1.0, None),
        ];
        let w = WanSeries::from_rows(&r);
        assert_eq!(w[0].state, vec![Point { t: 0.0, v: 1.0 }]);
    }

    #[test]
    fn absurd_timestamps_do_not_panic() {
        for t in [i64::MAX, i64::MIN, 0] {
            let r = [
                MetricRow::raw(t, "w", history::RTT_MS, 1.0, None),
                MetricRow::raw(t / 2, "w", history::STATE, 9.0, None),
            ];
            assert_balanced(&render_rows(&r, &PlotOptions::default()));
        }
    }

    #[test]
    fn time_ticks_are_aligned_and_labelled() {
        let t =
            time_ticks(1_769_349_600.0, 1_769_349_600.0 + 3600.0, TimeLabels::Wall { utc_offset_secs: 3600 });
        assert_eq!(t.first().map(|x| x.1.as_str()), Some("15:00"));
        assert!(t.len() <= 9);
        let e = time_ticks(0.0, 90.0, TimeLabels::Elapsed);
        assert_eq!(
            e.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
            ["0s", "15s", "30s", "45s", "60s", "75s", "90s"]
        );
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(230.0), 500.0);
    }
}
