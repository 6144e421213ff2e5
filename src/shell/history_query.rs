//! `GET /metrics/history` in slices, so that a query never holds the control loop (issue 18).
//! Shell code: it runs SQL; the only policy is the slice arithmetic below.
//!
//! A [`HistoryJob`] walks the request's window newest first in time slices. Each slice is
//! one `count(*)` over the covering index `(granularity, timestamp, wan_name, metric_name)`
//! and, only for the slices that hold the requested page, one page read. The loop gives the
//! job [`STEP_BUDGET`] per pass ([`HistoryJob::step`]); SQLite's progress handler interrupts
//! a statement that runs past it, the slice is halved and retried on the next pass, and a
//! slice that completes doubles the next one. Rows and counts already gathered are kept, so
//! the job resumes where it stopped.
//!
//! Bounds: the count stops once the page is full and [`COUNT_CAP`] matches are counted
//! (`total_count` is then a lower bound, docs/COMPAT.md); the loop runs one job at a time
//! and answers other history requests 503, and gives up on a job after [`JOB_DEADLINE`].
//! The reader never waits for a lock (busy → 503).
//!
//! Rows inserted while a job runs may or may not be seen (each slice reads its own
//! snapshot): the answer describes the database as it was during the request.

use std::path::Path;
use std::time::Duration;

use crate::engine::history::ParamError;
use crate::engine::history::{HistoryParams, HistoryQuery, MetricRow, error_body, render_history_response};
use crate::shell::store::Reader;
use crate::time::Instant;

/// SQL time one loop pass may spend on a history request.
pub const STEP_BUDGET: Duration = Duration::from_millis(3);
/// A history request not answered by then gets a 503.
pub const JOB_DEADLINE: Duration = Duration::from_secs(10);
/// Counting stops past this many matches once the page is full.
pub const COUNT_CAP: u64 = 100_000;
/// The first slice (seconds of the window); later ones adapt.
const FIRST_SLICE_SECS: i64 = 60;

/// The body of a 503 while another history query runs.
pub fn busy_body() -> String {
    error_body(&ParamError("Another history query is running; retry shortly".into()))
}

/// The body of a 503 when a query ran past [`JOB_DEADLINE`] or the database was locked.
pub fn unavailable_body() -> String {
    error_body(&ParamError("History query took too long or the database is busy; retry later".into()))
}

/// What a step left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Work remains: call [`HistoryJob::step`] again on a later pass.
    More,
    /// The answer: status and JSON body.
    Done(u16, String),
}

/// One `/metrics/history` request in progress.
#[derive(Debug)]
pub struct HistoryJob {
    params: HistoryParams,
    query: HistoryQuery,
    reader: Option<Reader>,
    clock: fn() -> Instant,
    /// Inclusive upper bound of the part of the window not scanned yet.
    hi: i64,
    exhausted: bool,
    slice_secs: i64,
    counted: u64,
    /// Seconds of the window scanned so far.
    scanned_secs: u64,
    rows: Vec<MetricRow>,
    /// Statements interrupted so far (tests and the bench read it).
    interrupted: u32,
}

impl HistoryJob {
    /// Parses the request and opens the database. `Err` is an immediate answer: 400 for bad
    /// parameters, 503 for a locked database. A missing or unreadable database gives a job
    /// that answers 200 with empty data, as the original does. `clock` reads
    /// CLOCK_MONOTONIC (`sys::clock::now`); statements stop when it passes a step's
    /// deadline.
    pub fn start(
        db_path: &Path,
        target: &str,
        now_unix: i64,
        local_offset_secs: i64,
        clock: fn() -> Instant,
    ) -> Result<HistoryJob, (u16, String)> {
        let params = HistoryParams::parse(target, local_offset_secs).map_err(|e| (400, error_body(&e)))?;
        let query = params.query(now_unix);
        let reader = if db_path.exists() {
            match Reader::open_bounded(db_path, clock) {
                Ok(r) => Some(r),
                Err(e) if e.is_busy() => return Err((503, unavailable_body())),
                Err(e) => {
                    log::warn!(target: "wanctl::store", "{e}");
                    None
                }
            }
        } else {
            None
        };
        let hi = query.end;
        let exhausted = query.end < query.start;
        Ok(HistoryJob {
            params,
            query,
            reader,
            clock,
            hi,
            exhausted,
            slice_secs: FIRST_SLICE_SECS,
            counted: 0,
            scanned_secs: 0,
            rows: Vec::new(),
            interrupted: 0,
        })
    }

    /// Statements interrupted at a deadline so far.
    pub fn interrupted(&self) -> u32 {
        self.interrupted
    }

    /// Works until `deadline` (CLOCK_MONOTONIC) or the answer is ready.
    pub fn step(&mut self, deadline: Instant) -> Step {
        let Some(reader) = self.reader.as_ref() else { return self.finish() };
        reader.set_deadline(deadline);
        let limit = u64::from(self.params.limit);
        loop {
            let page_full = self.rows.len() as u64 >= limit;
            if self.exhausted || (page_full && self.counted >= COUNT_CAP) {
                return self.finish();
            }
            if (self.clock)() >= deadline {
                return Step::More;
            }
            if page_full {
                // Aim the next slice at the rest of the count cap, at the density seen so
                // far, so that counting stops near the cap rather than a doubled slice
                // beyond it.
                let per_sec = self.counted / self.scanned_secs.max(1);
                if let Some(left) = COUNT_CAP.saturating_sub(self.counted).checked_div(per_sec) {
                    self.slice_secs = self.slice_secs.min(i64::try_from(left).unwrap_or(i64::MAX).max(1));
                }
            }
            let lo = self.hi.saturating_sub(self.slice_secs - 1).max(self.query.start);
            match self.scan(lo, limit) {
                Ok(()) => {
                    self.scanned_secs = self.scanned_secs.saturating_add(self.hi.abs_diff(lo) + 1);
                    if lo <= self.query.start {
                        self.exhausted = true;
                    } else {
                        self.hi = lo - 1;
                    }
                    self.slice_secs = self.slice_secs.saturating_mul(2);
                }
                Err(e) if e.is_interrupted() => {
                    self.interrupted += 1;
                    self.slice_secs = (self.slice_secs / 2).max(1);
                    return Step::More;
                }
                Err(e) if e.is_busy() => return Step::Done(503, unavailable_body()),
                Err(e) => {
                    // As the original: an unreadable database answers with empty data.
                    log::warn!(target: "wanctl::store", "{e}");
                    self.rows.clear();
                    self.counted = 0;
                    self.reader = None;
                    return self.finish();
                }
            }
        }
    }

    /// One slice `lo..=hi`: its count, and its part of the page if the page starts or
    /// continues there. All or nothing: an interrupted slice changes no state.
    fn scan(&mut self, lo: i64, limit: u64) -> Result<(), crate::shell::store::StoreError> {
        let Some(reader) = self.reader.as_ref() else { return Ok(()) };
        let n = reader.count_between(&self.query, lo, self.hi)?;
        let need = limit.saturating_sub(self.rows.len() as u64);
        let mut got = Vec::new();
        if need > 0 && n > 0 && self.counted + n > self.params.offset {
            let skip = self.params.offset.saturating_sub(self.counted);
            got = reader.query_between(&self.query, lo, self.hi, Some(need), skip)?;
        }
        self.counted += n;
        self.rows.extend(got);
        Ok(())
    }

    fn finish(&self) -> Step {
        Step::Done(200, render_history_response(&self.params, &self.query, &self.rows, self.counted))
    }
}
