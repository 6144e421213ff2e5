//! SQLite history (INTERFACES.md §5, TESTS.md §8–§9): schema, batched writes, retention,
//! downsampling with partial buckets kept, the size cap, the reader, `/metrics/history`
//! and the `wanctl history` CLI, all on real database files in temp directories. Every
//! maintenance loop has an iteration bound.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use wanctl::engine::history::{
    self, CycleRecord, Granularity, HistoryQuery, MetricRow, RATE_DOWNLOAD_MBPS, RTT_MS, STATE, ZoneChange,
    cycle_rows,
};
use wanctl::shell::history_cli::{self, Env};
use wanctl::shell::store::{MaintenanceReport, Reader, Store, history_http};
use wanctl::units::Bps;

/// A temp directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("wanctl-history-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        TempDir(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("sub/dir/metrics.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const NOW: i64 = 1_769_349_600; // 2026-01-25T14:00:00Z, a multiple of 3600

fn row(ts: i64, wan: &str, metric: &'static str, value: f64) -> MetricRow {
    MetricRow::raw(ts, wan, metric, value, None)
}

fn count(db: &Path, sql_where: &str) -> i64 {
    let conn = Connection::open(db).expect("open");
    conn.query_row(&format!("SELECT count(*) FROM metrics WHERE {sql_where}"), [], |r| r.get(0))
        .expect("count")
}

/// Runs maintenance until it reports no more work (at most `max_calls` calls).
fn maintain(
    store: &mut Store,
    now: i64,
    retention_days: u32,
    budget: usize,
    max_calls: usize,
) -> MaintenanceReport {
    let mut total = MaintenanceReport::default();
    for _ in 0..max_calls {
        let r = store.maintenance_step(now, retention_days, budget).expect("maintenance");
        total.retention_deleted += r.retention_deleted;
        total.size_deleted += r.size_deleted;
        for i in 0..3 {
            total.downsampled[i] += r.downsampled[i];
        }
        total.aggregated_rows += r.aggregated_rows;
        if !r.more {
            return total;
        }
    }
    panic!("maintenance did not finish in {max_calls} calls");
}

#[test]
fn schema_indexes_and_pragmas_are_created_idempotently() {
    let tmp = TempDir::new("schema");
    let db = tmp.db();
    drop(Store::open(&db, 64).expect("first open"));
    let mode = std::fs::metadata(db.parent().expect("parent")).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    let store = Store::open(&db, 64).expect("second open is idempotent");
    drop(store);
    let conn = Connection::open(&db).expect("open");
    let mut names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_%' ORDER BY name")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    names.sort();
    assert_eq!(
        names,
        ["idx_metrics_granularity_time_series", "idx_metrics_timestamp", "idx_metrics_wan_metric_time"]
    );
    let cols: Vec<(String, String, bool)> = conn
        .prepare("PRAGMA table_info(metrics)")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? == 1)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let want = [
        ("id", "INTEGER", false),
        ("timestamp", "INTEGER", true),
        ("wan_name", "TEXT", true),
        ("metric_name", "TEXT", true),
        ("value", "REAL", true),
        ("labels", "TEXT", false),
        ("granularity", "TEXT", false),
    ];
    assert_eq!(cols.len(), want.len());
    for ((name, ty, notnull), (wn, wt, wnn)) in cols.iter().zip(want) {
        assert_eq!((name.as_str(), ty.as_str(), *notnull), (wn, wt, wnn));
    }
    let journal: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("pragma");
    assert_eq!(journal, "wal");
    let auto_vacuum: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).expect("pragma");
    assert_eq!(auto_vacuum, 2, "fresh databases vacuum incrementally");
    conn.execute(
        "INSERT INTO metrics (timestamp, wan_name, metric_name, value) VALUES (1, 'w', 'm', 1.0)",
        [],
    )
    .expect("insert");
    let g: String = conn.query_row("SELECT granularity FROM metrics", [], |r| r.get(0)).expect("select");
    assert_eq!(g, "raw", "default granularity");
}

#[test]
fn cycle_rows_round_trip_with_python_style_labels() {
    let tmp = TempDir::new("cycle");
    let db = tmp.db();
    let mut store = Store::open(&db, 64).expect("open");
    let rec = CycleRecord {
        wan: "spectrum",
        measured_rtt_ms: 25.3,
        baseline_ms: 24.1,
        delta_ms: -0.4,
        dl_rate_bps: Bps(940_000_000),
        ul_rate_bps: Bps(38_000_000),
        dl_zone_code: 0,
        dl_transition: Some(ZoneChange {
            zone_code: 0,
            reason: "RTT delta 3.1ms fell below green threshold 15ms",
        }),
        ul_transition: Some(ZoneChange {
            zone_code: 3,
            reason: "RTT delta 50.2ms exceeded warn threshold 45ms",
        }),
    };
    store.append(cycle_rows(NOW, &rec));
    assert_eq!(store.buffered(), 8);
    assert_eq!(store.flush().expect("flush"), 8);
    assert_eq!(store.buffered(), 0);
    let conn = Connection::open(&db).expect("open");
    let labels: Vec<Option<String>> = conn
        .prepare("SELECT labels FROM metrics ORDER BY id")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(labels[..5], [None, None, None, None, None]);
    assert_eq!(labels[5].as_deref(), Some(r#"{"direction": "download"}"#));
    assert_eq!(
        labels[6].as_deref(),
        Some(r#"{"direction": "download", "reason": "RTT delta 3.1ms fell below green threshold 15ms"}"#)
    );
    assert_eq!(
        labels[7].as_deref(),
        Some(r#"{"direction": "upload", "reason": "RTT delta 50.2ms exceeded warn threshold 45ms"}"#)
    );
    let rate: f64 = conn
        .query_row("SELECT value FROM metrics WHERE metric_name = ?1", [RATE_DOWNLOAD_MBPS], |r| r.get(0))
        .expect("rate");
    assert_eq!(rate, 940.0);
}

#[test]
fn a_bad_row_rolls_back_the_whole_batch() {
    let tmp = TempDir::new("atomic");
    let db = tmp.db();
    let mut store = Store::open(&db, 64).expect("open");
    // NaN binds as NULL and violates NOT NULL: the batch must leave nothing behind.
    let batch = [row(NOW, "w", RTT_MS, 1.0), row(NOW, "w", RTT_MS, f64::NAN)];
    let e = store.write_batch(&batch).expect_err("constraint");
    assert!(e.to_string().starts_with(&format!("write history {}: ", db.display())), "{e}");
    assert_eq!(count(&db, "1"), 0);
    // The buffered path refuses NaN up front instead of poisoning every later flush.
    store.append(batch);
    assert_eq!((store.buffered(), store.rejected()), (1, 1));
    assert_eq!(store.flush().expect("flush"), 1);
}

#[test]
fn busy_database_keeps_rows_buffered_and_bounded() {
    let tmp = TempDir::new("busy");
    let db = tmp.db();
    let mut store = Store::open(&db, 64).expect("open");
    store.set_max_buffered(5);
    let blocker = Connection::open(&db).expect("open");
    blocker.execute_batch("BEGIN IMMEDIATE").expect("hold the write lock");
    store.append((0..3).map(|i| row(NOW + i, "w", RTT_MS, 1.0)));
    let e = store.flush().expect_err("busy");
    assert!(e.is_busy(), "{e}");
    assert_eq!(store.buffered(), 3, "rows kept for the next flush");
    store.append((3..8).map(|i| row(NOW + i, "w", RTT_MS, 1.0)));
    assert_eq!((store.buffered(), store.dropped()), (5, 3), "oldest dropped past the bound");
    blocker.execute_batch("COMMIT").expect("release");
    assert_eq!(store.flush().expect("flush"), 5);
    assert_eq!(count(&db, &format!("timestamp >= {}", NOW + 3)), 5, "the newest rows survived");
}

#[test]
fn unwritable_path_is_an_error_naming_the_path() {
    let tmp = TempDir::new("unwritable");
    let file = tmp.0.join("plain-file");
    std::fs::write(&file, b"x").expect("write");
    let e = Store::open(&file.join("metrics.db"), 64).expect_err("parent is a file");
    assert!(e.to_string().contains("plain-file"), "{e}");
}

#[test]
fn retention_keeps_the_cutoff_row_and_deletes_one_second_older() {
    let tmp = TempDir::new("retention");
    let db = tmp.db();
    let mut store = Store::open(&db, 64).expect("open");
    // Recent rows so downsampling has nothing to do; old rows at the boundary.
    let cutoff = NOW - 7 * 86_400;
    store
        .write_batch(&[
            row(cutoff, "w", RTT_MS, 1.0),
            row(cutoff - 1, "w", RTT_MS, 2.0),
            row(NOW, "w", RTT_MS, 3.0),
        ])
        .expect("write");
    let r = store.maintenance_step(NOW, 7, 2000).expect("step");
    assert_eq!(r.retention_deleted, 1);
    assert_eq!(count(&db, &format!("timestamp = {}", cutoff - 1)), 0);
    // The cutoff row survives retention (downsampling has since moved it to the 5m tier,
    // keeping its timestamp).
    assert_eq!(count(&db, &format!("timestamp = {cutoff}")), 1);
    let empty = TempDir::new("retention-empty");
    let mut s = Store::open(&empty.db(), 64).expect("open");
    assert_eq!(s.maintenance_step(NOW, 7, 2000).expect("step"), MaintenanceReport::default());
}

#[test]
fn retention_works_in_bounded_batches() {
    let tmp = TempDir::new("retention-batches");
    let db = tmp.db();
    let mut store = Store::open(&db, 64).expect("open");
    let old: Vec<MetricRow> = (0..2500).map(|i| row(NOW - 30 * 86_400 + i, "w", RTT_MS, 1.0)).collect();
    store.write_batch(&old).expect("write");
    let first = store.maintenance_step(NOW, 7, 1000).expect("step");
    assert_eq!((first.retention_deleted, first.more), (1000, true));
    let second = store.maintenance_step(NOW, 7, 1000).expect("step");
    assert_eq!((second.retention_deleted, second.more), (1000, true));
    let third = store.maintenance_step(NOW, 7, 1000).expect("step");
    assert_eq!((third.retention_deleted, third.more), (500, false));
    assert_eq!(count(&db, "1"), 0);
}

#[test]
fn raw_to_1m_uses_avg_and_mode_and_keeps_partial_buckets() {
    let tmp = TempDir::new("downsample");
    let db = tmp.db();
    let mut store = Store::open(&db, 64).expect("open");
    // now − 1 h falls 30 s into a minute: that minute is partial and must stay raw.
    let now = NOW + 30;
    let cutoff = now - 3600; // = NOW − 3570
    let b0 = NOW - 3600 - 120; // two complete minutes: [b0, b0+60), [b0+60, b0+120)
    let mut rows = Vec::new();
    for wan in ["wan1", "wan2"] {
        for s in 0..60 {
            for k in 0..4 {
                // 20 Hz in the original; 4 rows per second here keeps the test quick.
                rows.push(row(b0 + s, wan, RTT_MS, 10.0 + f64::from(k)));
                rows.push(row(b0 + 60 + s, wan, RTT_MS, 20.0));
            }
            let z = if s < 40 { 1.0 } else { 3.0 };
            rows.push(MetricRow::raw(b0 + s, wan, STATE, z, Some(r#"{"direction": "download"}"#.into())));
        }
        // Partial bucket: before the cutoff but in the minute the cutoff splits.
        rows.push(row(cutoff - 10, wan, RTT_MS, 99.0));
        rows.push(row(cutoff + 5, wan, RTT_MS, 98.0));
        // Recent.
        rows.push(row(now - 10, wan, RTT_MS, 5.0));
    }
    store.write_batch(&rows).expect("write");
    let total = maintain(&mut store, now, 7, 500, 100);
    let raw_sources = 2 * (60 * 4 * 2 + 60);
    assert_eq!(total.downsampled, [raw_sources, 0, 0]);
    assert_eq!(total.aggregated_rows, 2 * 3, "per wan: two rtt minutes and one state minute");
    let conn = Connection::open(&db).expect("open");
    let got: Vec<(String, String, i64, f64, Option<String>)> = conn
        .prepare(
            "SELECT wan_name, metric_name, timestamp, value, labels FROM metrics WHERE granularity = '1m' \
             ORDER BY wan_name, metric_name, timestamp",
        )
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let mut want = Vec::new();
    for wan in ["wan1", "wan2"] {
        want.push((wan.to_string(), RTT_MS.to_string(), b0, 11.5, None));
        want.push((wan.to_string(), RTT_MS.to_string(), b0 + 60, 20.0, None));
        want.push((wan.to_string(), STATE.to_string(), b0, 1.0, None));
    }
    assert_eq!(got, want);
    // Partial bucket and recent rows are still raw; nothing older than the complete
    // buckets' end remains raw.
    assert_eq!(count(&db, "granularity = 'raw'"), 6);
    assert_eq!(count(&db, &format!("granularity = 'raw' AND timestamp = {}", cutoff - 10)), 2);
    assert_eq!(count(&db, &format!("granularity = 'raw' AND timestamp < {}", b0 + 120)), 0);
    // Once the minute completes, the partial bucket is aggregated too.
    let later = maintain(&mut store, now + 60, 7, 500, 100);
    assert_eq!(later.downsampled[0], 4);
    let v: f64 = conn
        .query_row(
            &format!(
                "SELECT value FROM metrics WHERE granularity = '1m' AND wan_name = 'wan1' AND timestamp = {}",
                b0 + 120
            ),
            [],
            |r| r.get(0),
        )
        .expect("late bucket");
    assert_eq!(v, (99.0 + 98.0) / 2.0);
}

#[test]
fn downsampling_cascades_through_5m_and_1h() {
    let tmp = TempDir::new("cascade");
    let db = tmp.db();
    let mut store = Store::open(&db, 64).expect("open");
    let mut rows = Vec::new();
    // 1m rows two days old: ten minutes → two 5m buckets.
    let t5 = NOW - 2 * 86_400;
    for m in 0..10 {
        rows.push(MetricRow {
            granularity: Granularity::Minute,
            ..row(t5 + m * 60, "w", RTT_MS, f64::from(m as i32))
        });
        rows.push(MetricRow {
            granularity: Granularity::Minute,
            ..row(t5 + m * 60, "w", STATE, if m < 3 { 2.0 } else { 0.0 })
        });
    }
    // 5m rows ten days old: one hour → one 1h bucket.
    let t1 = NOW - 10 * 86_400;
    for k in 0..12 {
        rows.push(MetricRow {
            granularity: Granularity::FiveMinutes,
            ..row(t1 + k * 300, "w", RTT_MS, 30.0)
        });
    }
    store.write_batch(&rows).expect("write");
    let total = maintain(&mut store, NOW, 30, 2000, 20);
    assert_eq!(total.downsampled, [0, 20, 12]);
    let conn = Connection::open(&db).expect("open");
    let five: Vec<(String, i64, f64)> = conn
        .prepare("SELECT metric_name, timestamp, value FROM metrics WHERE granularity = '5m' ORDER BY metric_name, timestamp")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let want = [
        (RTT_MS.to_string(), t5, 2.0),       // mean of 0..=4
        (RTT_MS.to_string(), t5 + 300, 7.0), // mean of 5..=9
        (STATE.to_string(), t5, 2.0),        // 2, 2, 2, 0, 0: the mode
        (STATE.to_string(), t5 + 300, 0.0),
    ];
    assert_eq!(five, want);
    let hour: f64 = conn
        .query_row("SELECT value FROM metrics WHERE granularity = '1h'", [], |r| r.get(0))
        .expect("1h row");
    assert_eq!(hour, 30.0);
    assert_eq!(count(&db, "granularity IN ('1m', 'raw')"), 0);
}

#[test]
fn size_cap_deletes_oldest_rows_first() {
    let tmp = TempDir::new("size");
    let db = tmp.db();
    let mut store = Store::open(&db, 1).expect("open");
    // 40 000 rows in the last 50 minutes (14 per second), so downsampling has nothing to do
    // and only the size cap acts.
    let ts = |i: i64| NOW - 3000 + i / 14;
    let rows: Vec<MetricRow> = (0..40_000)
        .map(|i| {
            MetricRow::raw(
                ts(i),
                "wan-with-a-long-name",
                RTT_MS,
                1.0,
                Some("{\"pad\": \"xxxxxxxxxxxxxxxx\"}".into()),
            )
        })
        .collect();
    store.write_batch(&rows).expect("write");
    assert!(store.used_bytes().expect("size") > 1024 * 1024, "the fixture must exceed the cap");
    let total = maintain(&mut store, NOW, 7, 2000, 100);
    assert!(total.size_deleted > 0);
    assert_eq!(total.downsampled, [0, 0, 0]);
    assert!(store.used_bytes().expect("size") <= 1024 * 1024);
    let conn = Connection::open(&db).expect("open");
    let (n, min, max): (i64, i64, i64) = conn
        .query_row("SELECT count(*), min(timestamp), max(timestamp) FROM metrics", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("range");
    let k = total.size_deleted as i64;
    assert_eq!(n, 40_000 - k);
    assert_eq!(max, ts(39_999), "newest kept");
    assert!(min >= ts(k - 1) && min <= ts(k), "the oldest went first: min {min}, deleted {k}");
    // A second pass finds nothing to do.
    assert_eq!(store.maintenance_step(NOW, 7, 2000).expect("step"), MaintenanceReport::default());
}

fn filled_db(tmp: &TempDir) -> PathBuf {
    let db = tmp.db();
    let mut store = Store::open(&db, 64).expect("open");
    let mut rows = Vec::new();
    for i in 0..10 {
        rows.push(row(NOW - 100 + i, "wan1", RTT_MS, 20.0 + f64::from(i as i32) / 2.0));
        rows.push(MetricRow::raw(
            NOW - 100 + i,
            "wan1",
            STATE,
            f64::from((i % 4) as i32),
            Some(r#"{"direction": "download"}"#.into()),
        ));
        rows.push(row(NOW - 100 + i, "wan2", RTT_MS, 40.0));
    }
    rows.push(row(NOW - 7200, "wan1", RTT_MS, 1.0)); // outside the default window
    store.write_batch(&rows).expect("write");
    db
}

#[test]
fn reader_filters_orders_and_pages() {
    let tmp = TempDir::new("reader");
    let db = filled_db(&tmp);
    let reader = Reader::open(&db).expect("reader");
    let q = HistoryQuery {
        start: NOW - 3600,
        end: NOW,
        metrics: Some(vec![RTT_MS.into()]),
        wan: Some("wan1".into()),
        granularity: Granularity::Raw,
    };
    assert_eq!(reader.count(&q).expect("count"), 10);
    let rows = reader.query(&q, Some(3), 2).expect("query");
    assert_eq!(rows.iter().map(|r| r.timestamp).collect::<Vec<_>>(), [NOW - 93, NOW - 94, NOW - 95]);
    let all = reader.query(&HistoryQuery { metrics: None, wan: None, ..q.clone() }, None, 0).expect("all");
    assert_eq!(all.len(), 30);
    assert!(all.windows(2).all(|w| w[0].timestamp >= w[1].timestamp), "newest first");
    let five =
        reader.query(&HistoryQuery { granularity: Granularity::FiveMinutes, ..q }, None, 0).expect("tier");
    assert!(five.is_empty(), "only the chosen tier is read");
    // A database without the table reads as empty.
    let bare = tmp.0.join("bare.db");
    Connection::open(&bare).expect("create").execute_batch("CREATE TABLE other (x)").expect("table");
    let r = Reader::open(&bare).expect("reader");
    let q = HistoryQuery { start: 0, end: NOW, metrics: None, wan: None, granularity: Granularity::Raw };
    assert_eq!((r.count(&q).expect("count"), r.query(&q, None, 0).expect("query").len()), (0, 0));
    assert!(Reader::open(&tmp.0.join("missing.db")).is_err());
}

#[test]
fn http_endpoint_errors_and_json_shape() {
    let tmp = TempDir::new("http");
    let db = filled_db(&tmp);
    for (q, msg) in [
        ("range=abc", "Invalid duration format: 'abc'. Use format like '1h', '30m', '7d'"),
        ("limit=abc", "Invalid limit value: 'abc'"),
        ("offset=xyz", "Invalid offset value: 'xyz'"),
        ("from=not-a-date", "Invalid timestamp format: 'not-a-date'. Use ISO 8601 format"),
        ("limit=0", "limit must be between 1 and 10000"),
        ("limit=10001", "limit must be between 1 and 10000"),
        ("offset=-1", "offset must be non-negative"),
    ] {
        let (status, body) = history_http(&db, &format!("/metrics/history?{q}"), NOW, 0);
        assert_eq!(status, 400, "{q}");
        assert_eq!(body, format!("{{\"error\": \"{msg}\"}}"), "{q}");
    }
    let (status, body) =
        history_http(&db, "/metrics/history?range=1h&metrics=wanctl_state&limit=2&offset=1", NOW, 0);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["metadata"]["total_count"], 10);
    assert_eq!(v["metadata"]["returned_count"], 2);
    assert_eq!(v["metadata"]["granularity"], "raw");
    assert_eq!(v["metadata"]["limit"], 2);
    assert_eq!(v["metadata"]["offset"], 1);
    assert_eq!(v["metadata"]["query"]["start"], "2026-01-25T13:00:00+00:00");
    assert_eq!(v["metadata"]["query"]["metrics"], serde_json::json!(["wanctl_state"]));
    assert_eq!(v["metadata"]["query"]["wan"], serde_json::Value::Null);
    let first = &v["data"][0];
    assert_eq!(first["timestamp"], "2026-01-25T13:58:28+00:00");
    assert_eq!(first["labels"], r#"{"direction": "download"}"#, "labels stay a string");
    assert_eq!(first["value"], 0.0);
    assert!(body.contains("\"value\": 0.0,"), "floats as Python repr");
    // Empty result and missing database: 200 with empty data.
    let (status, body) = history_http(&db, "/metrics/history?wan=nope", NOW, 0);
    assert_eq!(status, 200);
    assert!(body.starts_with("{\n  \"data\": [],"), "{body}");
    let (status, body) = history_http(&tmp.0.join("missing.db"), "/metrics/history", NOW, 0);
    assert_eq!(status, 200);
    assert!(body.contains("\"total_count\": 0"));
}

fn cli(args: &[&str]) -> (u8, String, String) {
    let env = Env { now: NOW, utc_offset_secs: 0 };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = history_cli::run(args.iter().map(OsString::from).collect(), &env, &mut out, &mut err);
    (code, String::from_utf8(out).expect("utf8"), String::from_utf8(err).expect("utf8"))
}

#[test]
fn cli_outputs() {
    let tmp = TempDir::new("cli");
    let db = filled_db(&tmp);
    let db = db.to_str().expect("utf8");

    let (code, out, _) = cli(&["--db", db, "--metrics", "wanctl_rtt_ms", "--wan", "wan1"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Timestamp            Metric           Value");
    assert_eq!(lines[1], "-------------------  -------------  -------");
    assert_eq!(lines[2], "2026-01-25 13:58:29  wanctl_rtt_ms     24.5");
    assert_eq!(lines[3], "2026-01-25 13:58:28  wanctl_rtt_ms     24");
    assert_eq!(lines.len(), 12);

    let (_, out, _) = cli(&["--db", db, "--metrics", "wanctl_state", "-v"]);
    let mut lines = out.lines();
    // Expected text from tabulate 0.10 on the same rows.
    assert_eq!(
        lines.next(),
        Some("Timestamp            Metric          Value  WAN    Labels                     Granularity")
    );
    assert_eq!(
        lines.next(),
        Some("-------------------  ------------  -------  -----  -------------------------  -------------")
    );
    assert_eq!(
        lines.next(),
        Some("2026-01-25 13:58:29  wanctl_state        1  wan1   {\"direction\": \"download\"}  raw")
    );

    let (_, out, _) =
        cli(&["--db", db, "--json", "--summary", "--wan", "wan2", "--metrics", "wanctl_rtt_ms"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(10));
    assert_eq!(v[0]["timestamp"], NOW - 91, "integer timestamps");
    assert!(out.starts_with("[\n  {\n    \"timestamp\": 1769349509,\n    \"wan_name\": \"wan2\",\n"));

    let (_, out, _) = cli(&["--db", db, "--summary", "--wan", "wan1"]);
    // RTT 20.0 … 24.5: percentiles by the exclusive method (n = 10, m = 11).
    let want = "\nwanctl_rtt_ms (10 samples)\n----------------------------------------\n  min: 20\n  max: 24.5\n  avg: 22.25\n  p50: 22.25\n  p95: 24.725\n  p99: 24.945\n\nwanctl_state (10 samples)\n----------------------------------------\n  GREEN: 30.0%\n  YELLOW: 30.0%\n  SOFT_RED: 20.0%\n  RED: 20.0%\n";
    assert_eq!(out, want);

    let (_, out, _) = cli(&["--db", db, "--csv", "--wan", "wan1", "--metrics", "wanctl_state"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("timestamp,wan_name,metric_name,value,labels,granularity"));
    assert_eq!(
        lines.next(),
        Some("2026-01-25T13:58:29+00:00,wan1,wanctl_state,1.0,\"{\"\"direction\"\": \"\"download\"\"}\",raw")
    );

    let svg_path = tmp.0.join("plot.svg");
    let (code, out, _) = cli(&["--db", db, "--plot", svg_path.to_str().expect("utf8")]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Plot written to "), "{out}");
    let svg = std::fs::read_to_string(&svg_path).expect("svg");
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.contains("wan1") && svg.contains("wan2") && svg.contains("<path"));
    assert_eq!(svg.matches("http").count(), 1);
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());

    let (code, out, _) = cli(&["--db", db, "--wan", "nope"]);
    assert_eq!((code, out.as_str()), (0, "No data found for the specified time range.\n"));
}

#[test]
fn cli_errors() {
    let tmp = TempDir::new("cli-errors");
    let missing = tmp.0.join("none.db");
    let (code, out, err) = cli(&["--db", missing.to_str().expect("utf8")]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(err, format!("Database not found: {}. Run wanctl to generate data.\n", missing.display()));
    let (code, _, err) = cli(&["--last", "abc"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("usage: wanctl-history "), "{err}");
    assert!(
        err.ends_with("wanctl-history: error: argument --last: Invalid duration: 'abc'. Use format like '1h', '30m', '7d'\n"),
        "{err}"
    );
    let (code, out, _) = cli(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--plot FILE.svg"));
    // The real entry point, on a missing database.
    let args = vec![OsString::from("--db"), missing.clone().into_os_string()];
    assert_eq!(history_cli::main(args), 1);
}

#[test]
fn config_snapshot_row_is_written_like_the_original() {
    let tmp = TempDir::new("snapshot");
    let db = tmp.db();
    let mut store = Store::open(&db, 64).expect("open");
    let snap = history::SteeringSnapshot {
        bad_threshold_ms: history::PyJson::Int(25),
        recovery_threshold_ms: history::PyJson::Int(12),
        green_rtt_ms: history::PyJson::Float(5.0),
        red_rtt_ms: history::PyJson::Int(15),
        primary_wan: history::PyJson::str("spectrum"),
        alternate_wan: history::PyJson::str("att"),
    };
    store.write_batch(&[history::config_snapshot_row(NOW, "spectrum", None, Some(&snap))]).expect("write");
    let conn = Connection::open(&db).expect("open");
    let (value, labels): (f64, String) = conn
        .query_row(
            "SELECT value, labels FROM metrics WHERE metric_name = 'wanctl_config_snapshot'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("row");
    assert_eq!(value, NOW as f64);
    assert_eq!(
        labels,
        r#"{"trigger": "startup", "autorate": null, "steering": {"bad_threshold_ms": 25, "recovery_threshold_ms": 12, "green_rtt_ms": 5.0, "red_rtt_ms": 15, "primary_wan": "spectrum", "alternate_wan": "att"}}"#
    );
}

#[test]
fn legacy_database_is_opened_as_is_and_compacts_on_request() {
    let tmp = TempDir::new("legacy");
    let db = tmp.0.join("metrics.db");
    {
        // What the original creates: no auto_vacuum, rollback journal until it sets WAL.
        let conn = Connection::open(&db).expect("create");
        conn.execute_batch(
            "CREATE TABLE metrics (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp INTEGER NOT NULL, \
             wan_name TEXT NOT NULL, metric_name TEXT NOT NULL, value REAL NOT NULL, labels TEXT, \
             granularity TEXT DEFAULT 'raw')",
        )
        .expect("schema");
    }
    let mut store = Store::open(&db, 64).expect("open legacy");
    let rows: Vec<MetricRow> = (0..20_000).map(|i| row(NOW - 30 * 86_400 + i, "w", RTT_MS, 1.0)).collect();
    store.write_batch(&rows).expect("write");
    maintain(&mut store, NOW, 7, 5000, 10);
    let pragma = |name: &str| -> i64 {
        Connection::open(&db)
            .expect("open")
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .expect("pragma")
    };
    assert_eq!(pragma("auto_vacuum"), 0, "a legacy file keeps its mode");
    assert!(pragma("freelist_count") > 0, "freed pages stay in the file");
    store.compact().expect("compact");
    assert_eq!((pragma("auto_vacuum"), pragma("freelist_count")), (2, 0));
}

/// Writes `n` raw rows spread over the hour before `NOW`: three WANs, six metrics.
fn big_db(tmp: &TempDir, n: usize) -> PathBuf {
    const METRICS: [&str; 6] =
        [RTT_MS, STATE, RATE_DOWNLOAD_MBPS, "wanctl_rtt_delta_ms", "wanctl_a", "wanctl_b"];
    let db = tmp.db();
    drop(Store::open(&db, 0).expect("open"));
    let mut conn = Connection::open(&db).expect("open");
    let tx = conn.transaction().expect("tx");
    {
        let mut stmt = tx
            .prepare("INSERT INTO metrics (timestamp, wan_name, metric_name, value) VALUES (?1, ?2, ?3, ?4)")
            .expect("prepare");
        for i in 0..n {
            let ts = NOW - 3599 + (i as i64 * 3600 / n as i64);
            let wan = ["wan1", "wan2", "wan3"][i % 3];
            stmt.execute(rusqlite::params![ts, wan, METRICS[(i / 3) % 6], i as f64]).expect("insert");
        }
    }
    tx.commit().expect("commit");
    db
}

static FAKE_US: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_000_000);

/// A clock that advances 100 µs at every read: deterministic budgets for the job.
fn fake_clock() -> wanctl::time::Instant {
    wanctl::time::Instant::from_micros(FAKE_US.fetch_add(100, std::sync::atomic::Ordering::Relaxed))
}

#[test]
fn issue_18_history_job_in_tiny_slices_answers_exactly_as_the_whole_query() {
    use wanctl::shell::history_query::{HistoryJob, Step};
    let tmp = TempDir::new("slices");
    let db = big_db(&tmp, 30_000);
    let many: Vec<String> = (0..300).map(|i| format!("nope_{i}")).collect();
    let queries = [
        "range=1h".to_string(),
        "range=1h&limit=7&offset=12345".into(),
        "range=1h&wan=wan2&metrics=wanctl_state,wanctl_rtt_ms&limit=50&offset=3000".into(),
        "range=30m&limit=10000".into(),
        format!("range=1h&metrics={}", many.join(",")),
        "range=1h&wan=%27%20OR%201%3D1%20--".into(),
        "from=1970-01-01T00:00:00&limit=3".into(),
    ];
    for q in &queries {
        let target = format!("/metrics/history?{q}");
        // The reference: one count and one page query over the whole window.
        let params = history::HistoryParams::parse(&target, 0).expect("params");
        let query = params.query(NOW);
        let reader = Reader::open(&db).expect("reader");
        let rows = reader.query(&query, Some(u64::from(params.limit)), params.offset).expect("rows");
        let total = reader.count(&query).expect("count");
        let whole = (200, history::render_history_response(&params, &query, &rows, total));
        assert_eq!(history_http(&db, &target, NOW, 0), whole, "{q}");
        let mut job = HistoryJob::start(&db, &target, NOW, 0, fake_clock).expect("job");
        let mut steps = 0;
        let answer = loop {
            steps += 1;
            assert!(steps < 100_000, "{q}: no answer after {steps} steps");
            // About 20 deadline checks (≈ 20 000 SQLite instructions) per step.
            if let Step::Done(status, body) = job.step(fake_clock() + std::time::Duration::from_millis(2)) {
                break (status, body);
            }
        };
        assert_eq!(answer, whole, "{q}");
        if q.starts_with("range=1h&metrics=") {
            assert!(job.interrupted() > 0 && steps > 1, "{q}: a heavy query is cut into steps ({steps})");
        }
    }
}

#[test]
fn issue_18_history_count_is_bounded_once_the_page_is_full() {
    use wanctl::shell::history_query::COUNT_CAP;
    let tmp = TempDir::new("countcap");
    let db = big_db(&tmp, 150_000);
    let (status, body) = history_http(&db, "/metrics/history?range=1h&limit=5", NOW, 0);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let total = v["metadata"]["total_count"].as_u64().expect("count");
    assert!((COUNT_CAP..150_000).contains(&total), "counting stops past the cap: {total}");
    assert_eq!(v["metadata"]["returned_count"], 5);
    // A page beyond the cap is still found, and the count reaches it.
    let (_, body) = history_http(&db, "/metrics/history?range=1h&limit=5&offset=140000", NOW, 0);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["metadata"]["returned_count"], 5);
    assert!(v["metadata"]["total_count"].as_u64().expect("count") >= 140_005);
}

#[test]
fn issue_18_loop_reader_never_waits_for_a_lock() {
    let tmp = TempDir::new("busy");
    let db = big_db(&tmp, 100);
    // A writer holding an exclusive lock (rollback journal, so readers are locked out).
    let conn = Connection::open(&db).expect("open");
    conn.execute_batch("PRAGMA journal_mode=DELETE; BEGIN EXCLUSIVE;").expect("lock");
    let start = std::time::Instant::now();
    let r = wanctl::shell::history_query::HistoryJob::start(&db, "/metrics/history", NOW, 0, fake_clock);
    let answer = match r {
        Err(a) => a,
        Ok(mut job) => match job.step(fake_clock() + std::time::Duration::from_secs(3600)) {
            wanctl::shell::history_query::Step::Done(s, b) => (s, b),
            wanctl::shell::history_query::Step::More => panic!("no answer"),
        },
    };
    assert_eq!(answer.0, 503, "{}", answer.1);
    // Not a timed assertion on speed: the old reader waited its 2 s busy timeout.
    assert!(start.elapsed() < std::time::Duration::from_secs(2), "waited for the lock");
    conn.execute_batch("ROLLBACK").expect("unlock");
}
