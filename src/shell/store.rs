//! The SQLite history database (INTERFACES.md §5). Shell code: it executes what
//! `engine::history` plans and decides nothing else.
//!
//! * [`Store`] is the daemon's writer. [`Store::append`] only buffers (bounded: the oldest
//!   rows go first, counted, when the database stays unwritable); [`Store::flush`] writes
//!   the buffer in one transaction with a cached prepared statement; the loop calls it every
//!   `storage.flush_interval` (STYLE.md 1.5). [`Store::maintenance_step`] does a bounded
//!   slice of retention, size-cap and downsampling work per call, so nothing here blocks
//!   the 50 ms loop for long.
//! * [`Reader`] is a read-only connection for `wanctl history` and `GET /metrics/history`
//!   ([`history_http`]).
//!
//! Connection settings. WAL and `synchronous=NORMAL` as in the original. The busy timeout
//! is [`BUSY_TIMEOUT`] (25 ms) instead of the original's 30 s: the writer runs inside the
//! 50 ms control loop, and in WAL mode readers never block it, so only another writer (the
//! steering daemon shares the file) can hold the lock, for one short transaction. A busy
//! flush keeps its rows buffered and the next flush retries. Fresh databases get
//! `auto_vacuum=INCREMENTAL`, so pages freed by retention and the size cap go back to the
//! file system a few at a time; the original's full `VACUUM` (which rewrites the whole file
//! under an exclusive lock) never runs here. A database created by the original keeps
//! `auto_vacuum=NONE`: its file never shrinks, but freed pages are reused, so it stops
//! growing.
//!
//! Downsampling works one (series, bucket) at a time, oldest first, each in its own
//! transaction: read the bucket's values, insert the aggregate, delete exactly those rows.
//! Only buckets that end at or before the tier's cutoff are touched, so rows of a partial
//! bucket stay until the bucket completes (the original deleted them unaggregated).

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params, params_from_iter};

use crate::engine::history::{
    DOWNSAMPLE_STEPS, DownsampleStep, Granularity, HistoryQuery, MetricRow, retention_cutoff,
};
use crate::shell::history_query::{HistoryJob, Step};
use crate::time::Instant;

/// The database path the original's HTTP endpoint and CLI use by default.
pub const DEFAULT_DB_PATH: &str = "/var/lib/wanctl/metrics.db";

/// How long a statement waits for another writer's lock (see the module docs).
pub const BUSY_TIMEOUT: Duration = Duration::from_millis(25);

/// Rows kept in memory while the database is unwritable: about 55 s of three WANs at
/// 20 cycles/s × 6 rows. Beyond it the oldest rows are dropped and counted.
pub const MAX_BUFFERED_ROWS: usize = 20_000;

/// Bookkeeping cost of one downsampling unit beyond its rows (four statements), so sparse
/// tiers do not run thousands of tiny transactions in one step.
const UNIT_OVERHEAD_ROWS: usize = 16;

/// Pages returned to the file system per step when `auto_vacuum=INCREMENTAL` (1 MiB at the
/// default 4 KiB page size).
const VACUUM_PAGES_PER_STEP: u32 = 256;

/// WAL size kept after a checkpoint (the original used 64 MiB; routers have small disks).
const JOURNAL_SIZE_LIMIT: i64 = 8 * 1024 * 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp INTEGER NOT NULL,
    wan_name TEXT NOT NULL,
    metric_name TEXT NOT NULL,
    value REAL NOT NULL,
    labels TEXT,
    granularity TEXT DEFAULT 'raw'
);
CREATE INDEX IF NOT EXISTS idx_metrics_timestamp
    ON metrics(timestamp);
CREATE INDEX IF NOT EXISTS idx_metrics_wan_metric_time
    ON metrics(wan_name, metric_name, timestamp);
CREATE INDEX IF NOT EXISTS idx_metrics_granularity_time_series
    ON metrics(granularity, timestamp, wan_name, metric_name);
DROP INDEX IF EXISTS idx_metrics_granularity_time;
";

const INSERT: &str = "INSERT INTO metrics (timestamp, wan_name, metric_name, value, labels, granularity) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// A failed database operation: what we tried, on which file, and SQLite's or the OS's
/// reason.
#[derive(Debug)]
pub struct StoreError {
    op: &'static str,
    path: PathBuf,
    cause: Cause,
}

#[derive(Debug)]
enum Cause {
    Io(std::io::Error),
    Sqlite(rusqlite::Error),
}

impl StoreError {
    fn sqlite(op: &'static str, path: &Path, e: rusqlite::Error) -> StoreError {
        StoreError { op, path: path.to_path_buf(), cause: Cause::Sqlite(e) }
    }

    /// The operation that failed (`"flush history"`).
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A bounded reader's statement ran into its deadline ([`Reader::set_deadline`]).
    pub fn is_interrupted(&self) -> bool {
        matches!(
            &self.cause,
            Cause::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::OperationInterrupted
        )
    }

    /// Another connection held the lock past [`BUSY_TIMEOUT`]: retrying later is normal.
    pub fn is_busy(&self) -> bool {
        matches!(
            &self.cause,
            Cause::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.op, self.path.display())?;
        match &self.cause {
            Cause::Io(e) => write!(f, "{e}"),
            Cause::Sqlite(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Cause::Io(e) => Some(e),
            Cause::Sqlite(e) => Some(e),
        }
    }
}

/// What one [`Store::maintenance_step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Rows deleted for being older than the retention period.
    pub retention_deleted: u64,
    /// Oldest rows deleted because the database exceeded its size cap.
    pub size_deleted: u64,
    /// Source rows aggregated (and deleted) per step: `raw->1m`, `1m->5m`, `5m->1h`.
    pub downsampled: [u64; 3],
    /// Aggregate rows inserted.
    pub aggregated_rows: u64,
    /// The budget ran out with work left: call again soon.
    pub more: bool,
}

impl MaintenanceReport {
    /// Whether anything changed (the original logs its summary only then).
    pub fn did_work(&self) -> bool {
        self.retention_deleted + self.size_deleted + self.downsampled.iter().sum::<u64>() > 0
    }
}

/// The daemon's history writer.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    buffer: VecDeque<MetricRow>,
    max_buffered: usize,
    dropped: u64,
    rejected: u64,
    max_size_bytes: u64,
    over_size: bool,
    incremental_vacuum: bool,
}

impl Store {
    /// Opens (creating if needed) the database at `path`: parent directories (0755), the
    /// original's schema and indexes (idempotent), WAL, `synchronous=NORMAL`, the short busy
    /// timeout. `max_size_mb` caps the database's used size (0 = no cap).
    pub fn open(path: &Path, max_size_mb: u32) -> Result<Store, StoreError> {
        let err = |e| StoreError::sqlite("open history database", path, e);
        super::files::ensure_parent(path).map_err(|e| StoreError {
            op: "create directory for history database",
            path: path.to_path_buf(),
            cause: Cause::Io(e),
        })?;
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        // auto_vacuum can only change before the first table exists.
        let tables: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(err)?;
        if tables == 0 {
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL").map_err(err)?;
        }
        let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        // A small page cache (256 KiB instead of SQLite's 2 MiB default): writes are
        // appends and maintenance walks one bucket at a time, so memory on a router
        // matters more than cache hits.
        conn.pragma_update(None, "cache_size", "-256").map_err(err)?;
        let _limit: i64 = conn
            .query_row(&format!("PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}"), [], |r| r.get(0))
            .map_err(err)?;
        conn.execute_batch(&format!("BEGIN;{SCHEMA}COMMIT;")).map_err(err)?;
        let auto_vacuum: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).map_err(err)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            buffer: VecDeque::new(),
            max_buffered: MAX_BUFFERED_ROWS,
            dropped: 0,
            rejected: 0,
            max_size_bytes: u64::from(max_size_mb) * 1024 * 1024,
            over_size: false,
            incremental_vacuum: auto_vacuum == 2,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes the in-memory bound (tests; the default is [`MAX_BUFFERED_ROWS`]).
    pub fn set_max_buffered(&mut self, rows: usize) {
        self.max_buffered = rows.max(1);
        self.trim_buffer();
    }

    /// Queues rows for the next [`Store::flush`]. A NaN value is rejected (SQLite would
    /// store it as NULL and the `NOT NULL` constraint would then fail the whole batch
    /// forever); past the bound the oldest buffered rows are dropped.
    pub fn append(&mut self, rows: impl IntoIterator<Item = MetricRow>) {
        for row in rows {
            if row.value.is_nan() {
                self.rejected += 1;
            } else {
                self.buffer.push_back(row);
            }
        }
        self.trim_buffer();
    }

    fn trim_buffer(&mut self) {
        let excess = self.buffer.len().saturating_sub(self.max_buffered);
        if excess > 0 {
            self.buffer.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    /// Rows waiting for a flush.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Rows dropped so far because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Rows refused so far because their value was NaN.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Writes every buffered row in one transaction and returns how many. On error nothing
    /// is written and the rows stay buffered for the next call.
    pub fn flush(&mut self) -> Result<usize, StoreError> {
        if self.buffer.is_empty() {
            return Ok(0);
        }
        insert_rows(&mut self.conn, self.buffer.iter())
            .map_err(|e| StoreError::sqlite("flush history", &self.path, e))?;
        let n = self.buffer.len();
        self.buffer.clear();
        Ok(n)
    }

    /// Writes `rows` now, in one transaction, bypassing the buffer (the startup snapshot:
    /// the original fails startup when it cannot be written). All or nothing.
    pub fn write_batch(&mut self, rows: &[MetricRow]) -> Result<(), StoreError> {
        insert_rows(&mut self.conn, rows.iter())
            .map_err(|e| StoreError::sqlite("write history", &self.path, e))
    }

    /// The bytes the database's live pages take (page count minus free pages, times the
    /// page size): what the size cap limits.
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        used_bytes(&self.conn).map_err(|e| StoreError::sqlite("measure history database", &self.path, e))
    }

    /// One bounded slice of maintenance at wall-clock `now`: retention (rows older than
    /// `retention_days`), the size cap (oldest rows first), then downsampling raw→1m→5m→1h.
    /// Deletes and aggregates about `budget_rows` rows (one downsampling unit may exceed it
    /// by its own size, ≤ 1 200 rows for a 20 Hz series). [`MaintenanceReport::more`] says
    /// whether work remains. Safe to call at any rate; idle calls cost a few index lookups.
    pub fn maintenance_step(
        &mut self,
        now: i64,
        retention_days: u32,
        budget_rows: usize,
    ) -> Result<MaintenanceReport, StoreError> {
        let mut report = MaintenanceReport::default();
        let mut budget = budget_rows.max(1);
        let path = self.path.clone();
        let err = |op: &'static str| {
            let path = &path;
            move |e| StoreError::sqlite(op, path, e)
        };

        // 1. Retention: the oldest rows past the cutoff, in one rowid batch.
        let cutoff = retention_cutoff(now, retention_days);
        let n = self
            .conn
            .prepare_cached(
                "DELETE FROM metrics WHERE id IN (SELECT id FROM metrics WHERE timestamp < ?1 LIMIT ?2)",
            )
            .and_then(|mut s| s.execute(params![cutoff, budget as i64]))
            .map_err(err("apply history retention"))?;
        report.retention_deleted = n as u64;
        budget -= n.min(budget);
        if budget == 0 {
            report.more = true;
            return Ok(report);
        }

        // 2. Size cap.
        if self.max_size_bytes > 0 {
            let used = used_bytes(&self.conn).map_err(err("measure history database"))?;
            if used > self.max_size_bytes {
                if !self.over_size {
                    log::warn!(
                        target: "wanctl::store",
                        "history database {} uses {} MiB, over its {} MiB cap: deleting oldest rows",
                        self.path.display(),
                        used / (1024 * 1024),
                        self.max_size_bytes / (1024 * 1024)
                    );
                }
                self.over_size = true;
                let n = self
                    .conn
                    .prepare_cached(
                        "DELETE FROM metrics WHERE id IN (SELECT id FROM metrics ORDER BY timestamp LIMIT ?1)",
                    )
                    .and_then(|mut s| s.execute(params![budget as i64]))
                    .map_err(err("enforce history size cap"))?;
                report.size_deleted = n as u64;
                budget -= n.min(budget);
                if n > 0 {
                    report.more = true;
                    self.vacuum_some()?;
                    return Ok(report);
                }
            } else {
                self.over_size = false;
            }
        }

        // 3. Downsampling, oldest unit first, tier by tier.
        for (i, step) in DOWNSAMPLE_STEPS.iter().enumerate() {
            while budget > 0 {
                match downsample_unit(&mut self.conn, step, now).map_err(err("downsample history"))? {
                    None => break,
                    Some(rows) => {
                        report.downsampled[i] += rows as u64;
                        report.aggregated_rows += 1;
                        budget = budget.saturating_sub(rows + UNIT_OVERHEAD_ROWS);
                    }
                }
            }
            if budget == 0 {
                report.more = true;
                break;
            }
        }
        if report.did_work() {
            self.vacuum_some()?;
        }
        Ok(report)
    }

    /// Rewrites the whole file (`VACUUM`), first switching it to `auto_vacuum=INCREMENTAL`
    /// so that later maintenance steps can shrink it a little at a time. This is for a
    /// one-off (startup, or an operator command) on a database the original let grow: it
    /// holds an exclusive lock for as long as the copy takes and needs free disk space for
    /// a second copy, so it never runs from [`Store::maintenance_step`].
    pub fn compact(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")
            .map_err(|e| StoreError::sqlite("compact history database", &self.path, e))?;
        self.incremental_vacuum = true;
        Ok(())
    }

    /// Returns a few free pages to the file system (fresh databases only).
    fn vacuum_some(&mut self) -> Result<(), StoreError> {
        if self.incremental_vacuum {
            self.conn
                .execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES_PER_STEP})"))
                .map_err(|e| StoreError::sqlite("vacuum history database", &self.path, e))?;
        }
        Ok(())
    }
}

fn insert_rows<'a>(conn: &mut Connection, rows: impl Iterator<Item = &'a MetricRow>) -> rusqlite::Result<()> {
    // IMMEDIATE takes the write lock up front, so a busy database fails before any work.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(INSERT)?;
        for r in rows {
            stmt.execute(params![
                r.timestamp,
                r.wan_name,
                r.metric_name.as_ref(),
                r.value,
                r.labels,
                r.granularity.as_str()
            ])?;
        }
    }
    tx.commit()
}

fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pragma = |name: &str| conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0));
    let used = pragma("page_count")?.saturating_sub(pragma("freelist_count")?);
    Ok(u64::try_from(used.saturating_mul(pragma("page_size")?)).unwrap_or(0))
}

/// Aggregates the oldest complete (series, bucket) of `step`'s source tier, if any, and
/// returns how many source rows it replaced.
fn downsample_unit(
    conn: &mut Connection,
    step: &DownsampleStep,
    now: i64,
) -> rusqlite::Result<Option<usize>> {
    let before = step.complete_before(now);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let oldest: Option<(String, String, i64)> = tx
        .prepare_cached(
            "SELECT wan_name, metric_name, timestamp FROM metrics \
             WHERE granularity = ?1 AND timestamp < ?2 ORDER BY timestamp LIMIT 1",
        )?
        .query_row(params![step.from.as_str(), before], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((wan, metric, ts)) = oldest else {
        return Ok(None);
    };
    let (start, end) = step.bucket_of(ts);
    let filter =
        "wan_name = ?1 AND metric_name = ?2 AND granularity = ?3 AND timestamp >= ?4 AND timestamp < ?5";
    let args = params![wan, metric, step.from.as_str(), start, end];
    let values: Vec<f64> = tx
        .prepare_cached(&format!("SELECT value FROM metrics WHERE {filter}"))?
        .query_map(args, |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if let Some(row) = step.bucket_row(&wan, &metric, start, &values) {
        tx.prepare_cached(INSERT)?.execute(params![
            row.timestamp,
            row.wan_name,
            row.metric_name.as_ref(),
            row.value,
            row.labels,
            row.granularity.as_str()
        ])?;
    }
    let deleted = tx.prepare_cached(&format!("DELETE FROM metrics WHERE {filter}"))?.execute(args)?;
    tx.commit()?;
    Ok(Some(deleted))
}

/// A read-only connection for the CLI and the HTTP endpoint.
#[derive(Debug)]
pub struct Reader {
    conn: Connection,
    path: PathBuf,
    has_table: bool,
    /// Set for the loop's reader ([`Reader::open_bounded`]): statements stop at this
    /// CLOCK_MONOTONIC instant (µs). A mutex rather than an `AtomicU64`: 32-bit MIPS has
    /// no 64-bit atomics, and nothing contends for it (one thread).
    deadline_us: Option<Arc<Mutex<u64>>>,
}

/// SQLite virtual-machine instructions between two deadline checks of a bounded reader:
/// a few microseconds of work, so a statement overruns its deadline by about that much.
const PROGRESS_OPS: std::ffi::c_int = 1000;

/// The columns of a history row, in the order [`row_of`] reads them.
const ROW_COLUMNS: &str = "timestamp, wan_name, metric_name, value, labels, granularity";

fn row_of(r: &rusqlite::Row<'_>, fallback: Granularity) -> rusqlite::Result<MetricRow> {
    let granularity: Option<String> = r.get(5)?;
    Ok(MetricRow {
        timestamp: r.get(0)?,
        wan_name: r.get(1)?,
        metric_name: r.get::<_, String>(2)?.into(),
        value: r.get(3)?,
        labels: r.get(4)?,
        granularity: granularity.as_deref().and_then(Granularity::parse).unwrap_or(fallback),
    })
}

impl Reader {
    /// Opens `path` read-only. A missing file is an error (the CLI reports it; the HTTP
    /// endpoint answers with empty data); a database without the table reads as empty.
    /// Waits up to 2 s for a lock (the CLI; the loop uses [`Reader::open_bounded`]).
    pub fn open(path: &Path) -> Result<Reader, StoreError> {
        Self::open_with(path, Duration::from_secs(2))
    }

    /// Opens `path` read-only for use inside the poll loop: no busy wait (a locked
    /// database is an immediate [`StoreError::is_busy`] error) and every statement is
    /// interrupted ([`StoreError::is_interrupted`]) once `clock()` passes the instant
    /// given to [`Reader::set_deadline`]. `clock` is `sys::clock::now` in the daemon.
    pub fn open_bounded(path: &Path, clock: fn() -> Instant) -> Result<Reader, StoreError> {
        let mut reader = Self::open_with(path, Duration::ZERO)?;
        let deadline = Arc::new(Mutex::new(u64::MAX));
        let seen = Arc::clone(&deadline);
        reader.conn.progress_handler(
            PROGRESS_OPS,
            // A poisoned lock (impossible: the binary aborts on panic) stops the statement.
            Some(move || seen.lock().map_or(true, |d| clock().as_micros() >= *d)),
        );
        reader.deadline_us = Some(deadline);
        Ok(reader)
    }

    fn open_with(path: &Path, busy: Duration) -> Result<Reader, StoreError> {
        let err = |e| StoreError::sqlite("open history database", path, e);
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(err)?;
        conn.busy_timeout(busy).map_err(err)?;
        let has_table = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'metrics'",
                [],
                |_| Ok(()),
            )
            .optional()
            .map_err(err)?
            .is_some();
        Ok(Reader { conn, path: path.to_path_buf(), has_table, deadline_us: None })
    }

    /// Statements of a bounded reader stop at `deadline` (no effect on [`Reader::open`]).
    pub fn set_deadline(&self, deadline: Instant) {
        if let Some(d) = &self.deadline_us {
            *d.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = deadline.as_micros();
        }
    }

    fn where_between(q: &HistoryQuery, lo: i64, hi: i64) -> (String, Vec<rusqlite::types::Value>) {
        use rusqlite::types::Value;
        // Granularity first: the covering index (granularity, timestamp, wan_name,
        // metric_name) answers counts without touching the table.
        let mut sql = String::from("granularity = ? AND timestamp >= ? AND timestamp <= ?");
        let mut args =
            vec![Value::Text(q.granularity.as_str().into()), Value::Integer(lo), Value::Integer(hi)];
        if let Some(metrics) = q.metric_filter() {
            sql.push_str(" AND metric_name IN (");
            sql.push_str(&vec!["?"; metrics.len()].join(", "));
            sql.push(')');
            args.extend(metrics.iter().map(|m| Value::Text(m.clone())));
        }
        if let Some(wan) = q.wan_filter() {
            sql.push_str(" AND wan_name = ?");
            args.push(Value::Text(wan.to_string()));
        }
        (sql, args)
    }

    /// Rows matching `q`, newest first (ties: newest insert first), at most `limit` after
    /// skipping `offset`.
    pub fn query(
        &self,
        q: &HistoryQuery,
        limit: Option<u64>,
        offset: u64,
    ) -> Result<Vec<MetricRow>, StoreError> {
        self.query_between(q, q.start, q.end, limit, offset)
    }

    /// [`Reader::query`] restricted to `lo <= timestamp <= hi` (one slice of a window).
    pub fn query_between(
        &self,
        q: &HistoryQuery,
        lo: i64,
        hi: i64,
        limit: Option<u64>,
        offset: u64,
    ) -> Result<Vec<MetricRow>, StoreError> {
        if !self.has_table {
            return Ok(Vec::new());
        }
        let (filter, mut args) = Self::where_between(q, lo, hi);
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        args.push(rusqlite::types::Value::Integer(limit.map_or(-1, clamp)));
        args.push(rusqlite::types::Value::Integer(clamp(offset)));
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM metrics WHERE {filter} ORDER BY timestamp DESC, id DESC LIMIT ? OFFSET ?"
        );
        let read = || -> rusqlite::Result<Vec<MetricRow>> {
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(args.iter()), |r| row_of(r, q.granularity))?;
            rows.collect()
        };
        read().map_err(|e| StoreError::sqlite("query history", &self.path, e))
    }

    /// How many rows match `q`.
    pub fn count(&self, q: &HistoryQuery) -> Result<u64, StoreError> {
        self.count_between(q, q.start, q.end)
    }

    /// [`Reader::count`] restricted to `lo <= timestamp <= hi`.
    pub fn count_between(&self, q: &HistoryQuery, lo: i64, hi: i64) -> Result<u64, StoreError> {
        if !self.has_table {
            return Ok(0);
        }
        let (filter, args) = Self::where_between(q, lo, hi);
        self.conn
            .prepare_cached(&format!("SELECT count(*) FROM metrics WHERE {filter}"))
            .and_then(|mut s| s.query_row(params_from_iter(args.iter()), |r| r.get::<_, i64>(0)))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|e| StoreError::sqlite("count history", &self.path, e))
    }
}

/// Serves `GET /metrics/history` (INTERFACES.md §2.2) in one call, without a time budget:
/// `target` is the request target (path and query), `now` wall-clock Unix seconds,
/// `local_offset_secs` the zone offset for naive `from`/`to`. Returns the status and the
/// JSON body. A missing or unreadable database answers 200 with empty data, as the original
/// does. The daemon does not call this: it runs a [`HistoryJob`] a few milliseconds per loop
/// pass (see `shell::history_query`); this is the same job run to the end.
pub fn history_http(db_path: &Path, target: &str, now: i64, local_offset_secs: i64) -> (u16, String) {
    match HistoryJob::start(db_path, target, now, local_offset_secs, crate::sys::clock::now) {
        Err(answer) => answer,
        Ok(mut job) => loop {
            if let Step::Done(status, body) = job.step(Instant::from_micros(u64::MAX)) {
                return (status, body);
            }
        },
    }
}
