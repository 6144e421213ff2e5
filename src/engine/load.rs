//! The router's queue counters as a second signal: achieved throughput per direction from
//! byte deltas, counter resets, missing queues, failed and stale reads. Pure.
//!
//! Calling protocol, per WAN:
//! 1. [`LoadMeter::is_due`]: a read may start now (the router link is idle and the
//!    interval has passed since the previous read started); then [`LoadMeter::on_started`].
//! 2. When the read ends: [`LoadMeter::on_reading`] with what came back, or
//!    [`LoadMeter::on_failed`].
//! 3. Every tick: [`LoadMeter::view`] gives the latest load if it is fresh, else `None`
//!    (the RTT-only law runs).
//!
//! **Which interval a delta covers.** The router samples its counters while it handles
//! the request, somewhere between our send and the reply's arrival. We take the midpoint
//! of the two, so a delta's interval is wrong by at most half of each read's round trip
//! (≤ a few ms on a LAN against a 500 ms interval: under 1 %). Deltas over less than
//! `MIN_SPAN` (a read that came back right after the previous one) are not used; the
//! previous reading is kept and the next delta spans both.
//!
//! **Resets and wraps.** `bytes` is cumulative and 64-bit; it falls only when the router
//! rebooted or someone ran `reset-counters`. A reading whose counter is lower than the
//! previous one starts over (no rate from that delta) and is counted in `resets`.

use std::time::Duration;

use crate::time::Instant;
use crate::units::Bps;
use crate::wire::routeros::QueueStats;

/// Deltas over a shorter span are not used.
pub const MIN_SPAN: Duration = Duration::from_millis(100);

/// One queue's counters at one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCounters {
    /// Cumulative bytes through the queue.
    pub bytes: u64,
    /// Cumulative packets dropped, if reported.
    pub dropped: Option<u64>,
    /// Instantaneous backlog, if reported.
    pub queued_bytes: Option<u64>,
}

impl QueueCounters {
    /// The counters of an item, if it reported `bytes`.
    pub fn from_stats(q: &QueueStats) -> Option<QueueCounters> {
        Some(QueueCounters { bytes: q.bytes?, dropped: q.dropped, queued_bytes: q.queued_bytes })
    }
}

/// What a read found for this WAN's two queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// The download queue's counters; `None` if no item has its name.
    pub download: Option<QueueCounters>,
    /// The upload queue's counters.
    pub upload: Option<QueueCounters>,
}

impl Reading {
    /// Picks this WAN's queues (exact names) out of a `ListQueueStats` reply.
    pub fn pick(items: &[QueueStats], download: &str, upload: &str) -> Reading {
        let find = |name: &str| {
            items.iter().find(|q| q.name.as_deref() == Some(name)).and_then(QueueCounters::from_stats)
        };
        Reading { download: find(download), upload: find(upload) }
    }
}

/// Load of one direction over the last read interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DirectionLoad {
    /// Achieved throughput (bit/s) through the queue.
    pub achieved: Bps,
    /// Packets dropped per second by the queue (CAKE's own AQM and overflow).
    pub drops_per_s: f64,
    /// Backlog in the queue at the end of the interval (bytes).
    pub queued_bytes: u64,
}

/// The latest load of both directions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadSample {
    /// When the interval ended (router-side estimate).
    pub at: Instant,
    /// How long the interval was.
    pub span: Duration,
    /// Download.
    pub download: DirectionLoad,
    /// Upload.
    pub upload: DirectionLoad,
}

/// The state of the counters, for health, metrics and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterStatus {
    /// `load_control.enabled: false`.
    Off,
    /// No usable delta yet.
    Starting,
    /// Fresh counters.
    Ok,
    /// The last read did not find a queue by its name (renamed or deleted).
    QueueMissing,
    /// The last read failed (the router link's error).
    ReadFailed,
    /// No fresh counters for longer than `stale_after`: the RTT-only law runs.
    Stale,
}

impl CounterStatus {
    /// Lower-case name for health, metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CounterStatus::Off => "off",
            CounterStatus::Starting => "starting",
            CounterStatus::Ok => "ok",
            CounterStatus::QueueMissing => "queue_missing",
            CounterStatus::ReadFailed => "read_failed",
            CounterStatus::Stale => "stale",
        }
    }
}

/// Counters for health and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Reads started.
    pub reads: u64,
    /// Reads that failed (router error, transport) or lacked a queue.
    pub failures: u64,
    /// Counter resets seen (router reboot, `reset-counters`).
    pub resets: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Previous {
    at: Instant,
    download: QueueCounters,
    upload: QueueCounters,
}

/// One WAN's counter reader.
#[derive(Debug, Clone)]
pub struct LoadMeter {
    enabled: bool,
    interval: Duration,
    stale_after: Duration,
    started_at: Option<Instant>,
    in_flight: bool,
    previous: Option<Previous>,
    last: Option<LoadSample>,
    last_problem: Option<CounterStatus>,
    stats: LoadStats,
}

impl LoadMeter {
    /// A meter reading every `interval`, stale after `stale_after`; `enabled: false` never
    /// asks for a read.
    pub fn new(cfg: &crate::config::LoadControl) -> LoadMeter {
        LoadMeter {
            enabled: cfg.enabled,
            interval: cfg.interval,
            stale_after: cfg.stale_after,
            started_at: None,
            in_flight: false,
            previous: None,
            last: None,
            last_problem: None,
            stats: LoadStats::default(),
        }
    }

    /// True when a read should start now (the caller checks that the router link is idle).
    pub fn is_due(&self, now: Instant) -> bool {
        self.enabled
            && !self.in_flight
            && self.started_at.is_none_or(|t| now.saturating_since(t) >= self.interval)
    }

    /// When the next read is due (for the caller's deadline), if reading at all.
    pub fn next_due(&self) -> Option<Instant> {
        if !self.enabled || self.in_flight {
            return None;
        }
        Some(self.started_at.map_or(Instant::ZERO, |t| t + self.interval))
    }

    /// A read was handed to the router link.
    pub fn on_started(&mut self, now: Instant) {
        self.in_flight = true;
        self.started_at = Some(now);
        self.stats.reads += 1;
    }

    /// The read ended with `reading`; it was started at the instant given to
    /// [`LoadMeter::on_started`].
    pub fn on_reading(&mut self, now: Instant, reading: Reading) {
        self.in_flight = false;
        let sent = self.started_at.unwrap_or(now);
        let at = sent + now.saturating_since(sent) / 2;
        let (Some(dl), Some(ul)) = (reading.download, reading.upload) else {
            self.stats.failures += 1;
            self.last_problem = Some(CounterStatus::QueueMissing);
            self.previous = None;
            return;
        };
        self.last_problem = None;
        let current = Previous { at, download: dl, upload: ul };
        let Some(prev) = self.previous else {
            self.previous = Some(current);
            return;
        };
        let span = at.saturating_since(prev.at);
        if span < MIN_SPAN {
            return;
        }
        if dl.bytes < prev.download.bytes || ul.bytes < prev.upload.bytes {
            self.stats.resets += 1;
            self.previous = Some(current);
            return;
        }
        let secs = span.as_secs_f64();
        let direction = |now_c: QueueCounters, then: QueueCounters| DirectionLoad {
            achieved: Bps(((now_c.bytes - then.bytes) as f64 * 8.0 / secs) as u64),
            drops_per_s: match (now_c.dropped, then.dropped) {
                (Some(a), Some(b)) if a >= b => (a - b) as f64 / secs,
                _ => 0.0,
            },
            queued_bytes: now_c.queued_bytes.unwrap_or(0),
        };
        self.last = Some(LoadSample {
            at,
            span,
            download: direction(dl, prev.download),
            upload: direction(ul, prev.upload),
        });
        self.previous = Some(current);
    }

    /// The read failed (router error or transport).
    pub fn on_failed(&mut self, _now: Instant) {
        self.in_flight = false;
        self.stats.failures += 1;
        self.last_problem = Some(CounterStatus::ReadFailed);
    }

    /// Forget an outstanding read (the router link was torn down, e.g. on reload).
    pub fn abandon(&mut self) {
        self.in_flight = false;
    }

    /// The latest load, if it is fresh at `now`.
    pub fn view(&self, now: Instant) -> Option<LoadSample> {
        self.last.filter(|s| now.saturating_since(s.at) <= self.stale_after)
    }

    /// The state for health and metrics.
    pub fn status(&self, now: Instant) -> CounterStatus {
        match (self.enabled, self.view(now).is_some(), self.last.is_some(), self.last_problem) {
            (false, ..) => CounterStatus::Off,
            (true, true, _, problem) => problem.unwrap_or(CounterStatus::Ok),
            (true, false, true, _) => CounterStatus::Stale,
            (true, false, false, Some(problem)) => problem,
            (true, false, false, None) => CounterStatus::Starting,
        }
    }

    /// Counters.
    pub fn stats(&self) -> LoadStats {
        self.stats
    }

    /// The last load sample, fresh or not.
    pub fn last(&self) -> Option<LoadSample> {
        self.last
    }

    /// True if reading at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LoadControl;

    fn ms(v: u64) -> Instant {
        Instant::from_millis(v)
    }

    fn counters(bytes: u64, dropped: u64) -> QueueCounters {
        QueueCounters { bytes, dropped: Some(dropped), queued_bytes: Some(0) }
    }

    fn read(m: &mut LoadMeter, start: u64, end: u64, dl: u64, ul: u64) {
        assert!(m.is_due(ms(start)), "due at {start}");
        m.on_started(ms(start));
        assert!(!m.is_due(ms(start + 10_000)), "one read at a time");
        m.on_reading(ms(end), Reading { download: Some(counters(dl, 0)), upload: Some(counters(ul, 0)) });
    }

    #[test]
    fn achieved_rate_is_the_byte_delta_over_the_midpoints_of_the_reads() {
        let mut m = LoadMeter::new(&LoadControl::default());
        assert_eq!(m.status(ms(0)), CounterStatus::Starting);
        read(&mut m, 0, 10, 1_000_000, 0);
        assert_eq!(m.view(ms(10)), None, "one reading gives no rate");
        assert!(!m.is_due(ms(400)));
        // 500 ms between midpoints (5 → 505), 6.25 MB → 100 Mbit/s; 250 kB → 4 Mbit/s.
        read(&mut m, 500, 510, 7_250_000, 250_000);
        let s = m.view(ms(510)).expect("fresh");
        assert_eq!(s.span, Duration::from_millis(500));
        assert_eq!(s.download.achieved, Bps(100_000_000));
        assert_eq!(s.upload.achieved, Bps(4_000_000));
        assert_eq!(m.status(ms(510)), CounterStatus::Ok);
    }

    #[test]
    fn a_counter_reset_gives_no_rate_and_is_counted() {
        let mut m = LoadMeter::new(&LoadControl::default());
        read(&mut m, 0, 0, 5_000_000, 5_000_000);
        read(&mut m, 500, 500, 6_000_000, 6_000_000);
        let before = m.view(ms(500)).expect("rate");
        read(&mut m, 1000, 1000, 100, 6_100_000);
        assert_eq!(m.stats().resets, 1);
        assert_eq!(m.last(), Some(before), "no rate from the reset delta");
        read(&mut m, 1500, 1500, 625_100, 6_200_000);
        assert_eq!(m.view(ms(1500)).expect("rate").download.achieved, Bps(10_000_000));
    }

    #[test]
    fn missing_queue_and_failed_reads_are_visible_and_go_stale() {
        let cfg = LoadControl::default();
        let mut m = LoadMeter::new(&cfg);
        read(&mut m, 0, 0, 0, 0);
        read(&mut m, 500, 500, 1000, 1000);
        assert!(m.is_due(ms(1000)));
        m.on_started(ms(1000));
        m.on_reading(ms(1005), Reading { download: None, upload: Some(counters(1, 0)) });
        assert_eq!(m.status(ms(1005)), CounterStatus::QueueMissing);
        m.on_started(ms(1500));
        m.on_failed(ms(1600));
        assert_eq!(m.status(ms(1600)), CounterStatus::ReadFailed);
        assert_eq!(m.stats().failures, 2);
        // No fresh delta for longer than stale_after: the law must not use the old one.
        let late = ms(500) + cfg.stale_after + Duration::from_millis(1);
        assert_eq!(m.view(late), None);
        assert_eq!(m.status(late), CounterStatus::Stale);
    }

    #[test]
    fn deltas_over_a_too_short_span_wait_for_the_next_read() {
        let mut m =
            LoadMeter::new(&LoadControl { interval: Duration::from_millis(50), ..LoadControl::default() });
        read(&mut m, 0, 0, 0, 0);
        read(&mut m, 50, 50, 1000, 1000);
        assert_eq!(m.last(), None);
        read(&mut m, 100, 100, 2500, 2500);
        assert_eq!(m.last().expect("rate").download.achieved, Bps(200_000));
    }

    #[test]
    fn drops_per_second_and_backlog_are_reported() {
        let mut m = LoadMeter::new(&LoadControl::default());
        m.on_started(ms(0));
        m.on_reading(ms(0), Reading { download: Some(counters(0, 100)), upload: Some(counters(0, 0)) });
        m.on_started(ms(1000));
        let dl = QueueCounters { bytes: 10, dropped: Some(150), queued_bytes: Some(15_140) };
        m.on_reading(ms(1000), Reading { download: Some(dl), upload: Some(counters(0, 0)) });
        let s = m.view(ms(1000)).expect("rate");
        assert_eq!((s.download.drops_per_s, s.download.queued_bytes), (50.0, 15_140));
    }

    #[test]
    fn disabled_meter_never_reads() {
        let m = LoadMeter::new(&LoadControl::off());
        assert!(!m.is_due(ms(10_000)));
        assert_eq!(m.next_due(), None);
        assert_eq!(m.status(ms(0)), CounterStatus::Off);
    }

    #[test]
    fn reading_picks_queues_by_exact_name() {
        let q = |name: &str, bytes: u64| QueueStats {
            name: Some(name.into()),
            bytes: Some(bytes),
            ..QueueStats::default()
        };
        let items = [q("WAN-Download-10", 1), q("WAN-Download-1", 2), q("WAN-Upload-1", 3)];
        let r = Reading::pick(&items, "WAN-Download-1", "WAN-Upload-1");
        assert_eq!(r.download.map(|c| c.bytes), Some(2));
        assert_eq!(r.upload.map(|c| c.bytes), Some(3));
        assert_eq!(Reading::pick(&items, "nope", "WAN-Upload-1").download, None);
    }
}
