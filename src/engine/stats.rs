//! Small fixed-size statistics for health and metrics: a latency histogram and a log
//! limiter. Pure, allocation-free after construction.

use std::time::Duration;

use crate::time::Instant;

/// Upper bucket bounds (µs) of [`Histogram`]; the last bucket is unbounded.
pub const BUCKETS_US: [u64; 10] = [100, 250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000];

/// A latency histogram with fixed buckets (Prometheus-style cumulative export).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    counts: [u64; BUCKETS_US.len() + 1],
    count: u64,
    sum_us: u64,
    max_us: u64,
}

impl Histogram {
    /// Records one observation.
    pub fn record(&mut self, d: Duration) {
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
        let i = BUCKETS_US.iter().position(|&b| us <= b).unwrap_or(BUCKETS_US.len());
        self.counts[i] += 1;
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of observations (µs).
    pub fn sum_us(&self) -> u64 {
        self.sum_us
    }

    /// Largest observation (µs).
    pub fn max_us(&self) -> u64 {
        self.max_us
    }

    /// Per-bucket counts (not cumulative); the last is `> 100 ms`.
    pub fn buckets(&self) -> &[u64] {
        &self.counts
    }

    /// Upper bound (µs) of the bucket holding the `q` quantile (0..1); the max for the
    /// open bucket.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return BUCKETS_US.get(i).copied().unwrap_or(self.max_us).min(self.max_us);
            }
        }
        self.max_us
    }
}

/// Rate-limits a repeated log condition: the first occurrence is logged, later ones are
/// counted and summarised at most once per `every`.
#[derive(Debug, Clone)]
pub struct LogLimiter {
    every: Duration,
    last_logged: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    /// A limiter that lets one line through per `every`.
    pub fn new(every: Duration) -> LogLimiter {
        LogLimiter { every, last_logged: None, suppressed: 0 }
    }

    /// Returns `Some(suppressed_since_last)` if this occurrence should be logged.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last_logged {
            Some(t) if now.saturating_since(t) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last_logged = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// Forget the condition (it cleared): the next occurrence logs at once.
    pub fn reset(&mut self) {
        self.last_logged = None;
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_bucket_bounds() {
        let mut h = Histogram::default();
        for _ in 0..98 {
            h.record(Duration::from_micros(80));
        }
        h.record(Duration::from_micros(1500));
        h.record(Duration::from_millis(300));
        assert_eq!(h.quantile_us(0.5), 100);
        assert_eq!(h.quantile_us(0.99), 2_000);
        assert_eq!(h.quantile_us(1.0), 300_000);
        assert_eq!(h.max_us(), 300_000);
        assert_eq!(h.count(), 100);
    }

    #[test]
    fn limiter_logs_first_then_summarises() {
        let mut l = LogLimiter::new(Duration::from_secs(60));
        assert_eq!(l.allow(Instant::from_secs(0)), Some(0));
        assert_eq!(l.allow(Instant::from_secs(1)), None);
        assert_eq!(l.allow(Instant::from_secs(2)), None);
        assert_eq!(l.allow(Instant::from_secs(61)), Some(2));
        l.reset();
        assert_eq!(l.allow(Instant::from_secs(62)), Some(0));
    }
}
