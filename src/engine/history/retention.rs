//! Retention and downsampling planning: cutoffs, bucket alignment, AVG vs MODE.

#![allow(unused_imports)] // each part takes the shared imports of `engine::history`
use super::*;

// ---------------------------------------------------------------------------------------
// Retention and downsampling planning
// ---------------------------------------------------------------------------------------

/// Rows with `timestamp` strictly below this are past retention (a row exactly at the
/// cutoff is kept).
pub fn retention_cutoff(now: i64, retention_days: u32) -> i64 {
    now.saturating_sub(i64::from(retention_days) * 86_400)
}

/// How a bucket's values become one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Arithmetic mean (RTTs, rates).
    Mean,
    /// Most frequent value (states); ties go to the smallest value (the original leaves
    /// ties arbitrary; we make them deterministic).
    Mode,
}

/// Metrics downsampled with [`Aggregate::Mode`]: averaging zone codes would invent zones.
pub const MODE_METRICS: [&str; 2] = [STATE, STEERING_ENABLED];

impl Aggregate {
    /// The method for a metric name.
    pub fn for_metric(name: &str) -> Aggregate {
        if MODE_METRICS.contains(&name) { Aggregate::Mode } else { Aggregate::Mean }
    }

    /// Aggregates `values`; `None` when empty.
    pub fn apply(self, values: &[f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        Some(match self {
            Aggregate::Mean => mean(values),
            Aggregate::Mode => {
                let mut sorted = values.to_vec();
                sorted.sort_by(f64::total_cmp);
                let (mut best, mut best_n) = (sorted[0], 0usize);
                let mut i = 0;
                while i < sorted.len() {
                    let run = sorted[i..].iter().take_while(|v| v.total_cmp(&sorted[i]).is_eq()).count();
                    if run > best_n {
                        (best, best_n) = (sorted[i], run);
                    }
                    i += run;
                }
                best
            }
        })
    }
}

/// Mean with Neumaier-compensated summation, so it matches Python's exact
/// `statistics.mean` to the last bit in all but pathological inputs.
pub fn mean(values: &[f64]) -> f64 {
    let (mut sum, mut comp) = (0.0f64, 0.0f64);
    for &v in values {
        let t = sum + v;
        comp += if sum.abs() >= v.abs() { (sum - t) + v } else { (v - t) + sum };
        sum = t;
    }
    (sum + comp) / values.len() as f64
}

/// One downsampling tier step (INTERFACES.md §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownsampleStep {
    /// Source tier.
    pub from: Granularity,
    /// Destination tier.
    pub to: Granularity,
    /// Source rows older than this (seconds) are due.
    pub min_age_secs: i64,
    /// Bucket width (seconds); buckets are aligned to multiples of it since the epoch.
    pub bucket_secs: i64,
}

/// raw → 1m after 1 h, 1m → 5m after 1 d, 5m → 1h after 7 d.
pub const DOWNSAMPLE_STEPS: [DownsampleStep; 3] = [
    DownsampleStep { from: Granularity::Raw, to: Granularity::Minute, min_age_secs: 3600, bucket_secs: 60 },
    DownsampleStep {
        from: Granularity::Minute,
        to: Granularity::FiveMinutes,
        min_age_secs: 86_400,
        bucket_secs: 300,
    },
    DownsampleStep {
        from: Granularity::FiveMinutes,
        to: Granularity::Hour,
        min_age_secs: 7 * 86_400,
        bucket_secs: 3600,
    },
];

impl DownsampleStep {
    /// The original's result key, `raw->1m`.
    pub fn label(&self) -> String {
        format!("{}->{}", self.from, self.to)
    }

    /// The source-age cutoff: rows older than `now − min_age`.
    pub fn cutoff(&self, now: i64) -> i64 {
        now.saturating_sub(self.min_age_secs)
    }

    /// Source rows with `timestamp` below this lie in complete buckets that end at or
    /// before the cutoff, and only they are aggregated and deleted. Rows between this and
    /// the cutoff wait for their bucket to complete (the original deleted them unaggregated).
    pub fn complete_before(&self, now: i64) -> i64 {
        self.cutoff(now).div_euclid(self.bucket_secs) * self.bucket_secs
    }

    /// `[start, end)` of the bucket holding `ts`.
    pub fn bucket_of(&self, ts: i64) -> (i64, i64) {
        let start = ts.div_euclid(self.bucket_secs) * self.bucket_secs;
        (start, start + self.bucket_secs)
    }

    /// The aggregated row for one series' bucket: timestamp = bucket start, labels NULL.
    /// `None` for an empty bucket.
    pub fn bucket_row(
        &self,
        wan: &str,
        metric: &str,
        bucket_start: i64,
        values: &[f64],
    ) -> Option<MetricRow> {
        let value = Aggregate::for_metric(metric).apply(values)?;
        Some(MetricRow {
            timestamp: bucket_start,
            wan_name: wan.to_string(),
            metric_name: Cow::Owned(metric.to_string()),
            value,
            labels: None,
            granularity: self.to,
        })
    }
}
