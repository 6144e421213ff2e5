//! Timerfd expirations → `Input::Tick`. Shell code; the arithmetic is tested here.
//!
//! The periodic timerfd returns how many 50 ms expirations passed since the last read.
//! Missed cycles are never replayed (STYLE.md 1.3), but they are counted, measured and
//! reported: `late` runs from the *first* expiry not yet handled, so a loop stalled for
//! 33 s records a 33 s lateness (issue 18: it recorded ≤ 50 ms, the time since the last
//! expiry), and a stall is logged as a warning (rate-limited).

use std::time::Duration;

use crate::engine::stats::LogLimiter;
use crate::time::Instant;

/// How often a stall warning may be logged; the others are counted into the next one.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Tracks the timer's schedule.
#[derive(Debug)]
pub struct TickPacer {
    next_expiry: Instant,
    period: Duration,
    warn: LogLimiter,
}

/// One wakeup's tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickRead {
    /// Expirations skipped.
    pub missed: u64,
    /// How long after the first unhandled expiry this wakeup came.
    pub late: Duration,
    /// A warning to log, if ticks were missed and the limiter allows it.
    pub warning: Option<String>,
}

impl TickPacer {
    /// A timer of `period` whose first expiry is `first`.
    pub fn new(first: Instant, period: Duration) -> TickPacer {
        TickPacer { next_expiry: first, period, warn: LogLimiter::new(WARN_EVERY) }
    }

    /// `n` (≥ 1) expirations read at `now`.
    pub fn on_expirations(&mut self, n: u64, now: Instant) -> TickRead {
        let n = n.max(1);
        let late = now.saturating_since(self.next_expiry);
        self.next_expiry += self.period.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
        let missed = n - 1;
        let warning = if missed > 0 {
            self.warn.allow(now).map(|suppressed| {
                format!(
                    "control loop stalled: {missed} ticks missed, {} ms late{}",
                    late.as_millis(),
                    if suppressed > 0 {
                        format!(" ({suppressed} similar suppressed)")
                    } else {
                        String::new()
                    }
                )
            })
        } else {
            None
        };
        TickRead { missed, late, warning }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(50);

    #[test]
    fn on_time_tick_is_not_late_and_not_warned() {
        let mut p = TickPacer::new(Instant::from_millis(50), TICK);
        let r = p.on_expirations(1, Instant::from_millis(51));
        assert_eq!(r, TickRead { missed: 0, late: Duration::from_millis(1), warning: None });
        let r = p.on_expirations(1, Instant::from_millis(100));
        assert_eq!(r.late, Duration::ZERO);
    }

    #[test]
    fn issue_18_a_stalled_loop_counts_its_whole_stall_as_lateness_and_warns() {
        // 33.5 s without a wakeup: 670 expirations at the next read.
        let mut p = TickPacer::new(Instant::from_millis(50), TICK);
        let r = p.on_expirations(670, Instant::from_millis(50 + 33_500));
        assert_eq!(r.missed, 669);
        assert_eq!(r.late, Duration::from_millis(33_500), "lateness from the first missed expiry");
        let w = r.warning.expect("a stall is logged");
        assert!(w.contains("669 ticks missed") && w.contains("33500 ms late"), "{w}");
        // The schedule continues after the stall.
        let r = p.on_expirations(1, Instant::from_millis(50 + 33_500 + 2));
        assert_eq!((r.missed, r.late, r.warning), (0, Duration::from_millis(2), None));
        // A second stall within the minute is counted, not logged.
        let r = p.on_expirations(3, Instant::from_millis(50 + 33_500 + 150));
        assert_eq!((r.missed, r.warning.is_none()), (2, true));
    }
}
