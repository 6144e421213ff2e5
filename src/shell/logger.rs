//! A minimal `log` backend (ripgrep's `logger.rs` reasoning: no extra dependency for this).
//!
//! * stderr always (journald and procd add their own timestamps, so stderr lines carry
//!   none): `INFO  wanctl::daemon: message`;
//! * the configured `logging.main_log` files (INFO and above) and, with `--debug`,
//!   `logging.debug_log` (DEBUG and above), in the original's text format
//!   `YYYY-MM-DD HH:MM:SS,mmm [wanctl] [LEVEL] message` (UTC; see docs/COMPAT.md);
//! * `WANCTL_LOG_FORMAT=json` (any case) switches every sink to one JSON object per line:
//!   `{"timestamp":"…Z","level":"INFO","logger":"wanctl::daemon","message":"…"}`.
//!
//! Files are opened in append mode and reopened on SIGHUP ([`reopen`]) so logrotate's
//! `create` mode works as well as `copytruncate`. A file that cannot be written is reported
//! once on stderr and skipped; logging never stops the daemon.
//!
//! # Never on the loop (issue 18)
//! A log call formats its lines and hands them to one writer thread through a bounded queue
//! ([`QUEUE_LINES`]) with `try_send`: it never waits. The thread owns stderr and the files
//! and does nothing but write them. A full queue (a stderr pipe nobody reads, a journald
//! that stalls, a log file on a dead disk) drops the line and counts it; the thread writes
//! "N log lines dropped" as soon as it can write again. Why a thread in a single-threaded
//! design: Linux has no non-blocking write for regular files (O_NONBLOCK is ignored for
//! them; only io_uring or a thread avoid the wait), and stderr may be a pipe or a terminal
//! shared with other processes, whose flags we must not change. The thread makes no
//! decisions and holds no state the loop reads. [`finish`] drains the queue before the
//! process exits (bounded by a deadline).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Sink {
    path: PathBuf,
    min: Level,
    file: Option<File>,
    failed: bool,
}

/// Lines the queue holds before log calls start dropping them (about 1 MB of lines).
pub const QUEUE_LINES: usize = 4096;

enum Job {
    Line {
        level: Level,
        stderr: Option<String>,
        file: String,
    },
    /// Flush the files, then mark flush number `n` done.
    Flush(usize),
    Wake,
}

struct Logger {
    stderr_level: Level,
    json: bool,
    /// Levels each file sink takes (the thread owns the files).
    file_levels: Vec<Level>,
    queue: Queue,
}

/// The bounded queue between log calls and the writer thread (a mutex held only to push or
/// pop, never during I/O; smaller than std's mpsc, which matters in the 3 MB MIPS binary).
struct Queue {
    jobs: Mutex<VecDeque<Job>>,
    /// Signalled when a job is pushed (the writer waits on it) and when a flush is done.
    changed: Condvar,
    /// The writer thread runs.
    alive: AtomicBool,
    /// Highest flush number done.
    flushed: AtomicUsize,
    /// Last flush number handed out.
    flush_seq: AtomicUsize,
}

impl Queue {
    /// Pushes unless full (`Err(job)` back) or the writer is not running.
    fn try_push(&self, job: Job) -> Result<(), (Job, bool)> {
        if !self.alive.load(Ordering::Relaxed) {
            return Err((job, false));
        }
        let Ok(mut q) = self.jobs.lock() else { return Err((job, false)) };
        if q.len() >= QUEUE_LINES {
            return Err((job, true));
        }
        q.push_back(job);
        drop(q);
        self.changed.notify_all();
        Ok(())
    }
}

static LOGGER: OnceLock<Logger> = OnceLock::new();
/// Lines dropped because the queue was full, not yet reported (usize: 32-bit MIPS has no
/// 64-bit atomics).
static DROPPED: AtomicUsize = AtomicUsize::new(0);
/// Lines dropped in all (tests, health).
static DROPPED_TOTAL: AtomicUsize = AtomicUsize::new(0);
/// SIGHUP asked for the files to be reopened.
static REOPEN: AtomicBool = AtomicBool::new(false);

/// Log lines dropped so far because the sink could not keep up.
pub fn dropped_lines() -> u64 {
    DROPPED_TOTAL.load(Ordering::Relaxed) as u64
}

/// Where and how to log.
#[derive(Debug, Clone, Default)]
pub struct LogSetup {
    /// `--debug`: DEBUG to stderr and the debug files.
    pub debug: bool,
    /// INFO+ files.
    pub main_logs: Vec<String>,
    /// DEBUG+ files (used only with `debug`).
    pub debug_logs: Vec<String>,
}

/// True if `WANCTL_LOG_FORMAT` asks for JSON (case-insensitive), as the original.
pub fn json_requested(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("json"))
}

/// Installs the logger (once per process; later calls only update nothing and return
/// false).
pub fn init(setup: &LogSetup) -> bool {
    let json = json_requested(std::env::var("WANCTL_LOG_FORMAT").ok().as_deref());
    let mut sinks = Vec::new();
    let mut add = |path: &str, min: Level| {
        if !path.is_empty() && !sinks.iter().any(|s: &Sink| s.path.as_os_str() == path) {
            sinks.push(Sink { path: PathBuf::from(path), min, file: None, failed: false });
        }
    };
    for p in &setup.main_logs {
        add(p, Level::Info);
    }
    if setup.debug {
        for p in &setup.debug_logs {
            add(p, Level::Debug);
        }
    }
    let stderr_level = if setup.debug { Level::Debug } else { Level::Info };
    // Opened here, before the loop, so an unwritable path is reported at start.
    open_all(&mut sinks);
    let file_levels = sinks.iter().map(|s| s.min).collect();
    let queue = Queue {
        jobs: Mutex::new(VecDeque::with_capacity(64)),
        changed: Condvar::new(),
        alive: AtomicBool::new(false),
        flushed: AtomicUsize::new(0),
        flush_seq: AtomicUsize::new(0),
    };
    let logger = Logger { stderr_level, json, file_levels, queue };
    if LOGGER.set(logger).is_err() {
        return false;
    }
    let Some(l) = LOGGER.get() else { return false };
    // The thread starts with every signal blocked (it inherits the spawning thread's mask):
    // signals are the loop's (signalfd), and a process-directed SIGTERM delivered to a
    // thread that does not block it would kill the process with its default action.
    let all = nix::sys::signal::SigSet::all();
    let mut old = nix::sys::signal::SigSet::empty();
    let blocked = nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&all),
        Some(&mut old),
    );
    l.queue.alive.store(true, Ordering::Relaxed);
    let spawned =
        std::thread::Builder::new().name("wanctl-log".into()).spawn(move || writer(&l.queue, sinks));
    if blocked.is_ok() {
        let _ =
            nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
    if spawned.is_err() {
        l.queue.alive.store(false, Ordering::Relaxed);
        eprintln!("WARN  wanctl::logger: cannot start the log writer; logging to stderr only");
    }
    if log::set_logger(l).is_err() {
        return false;
    }
    log::set_max_level(if setup.debug { LevelFilter::Debug } else { LevelFilter::Info });
    true
}

/// Reopens every log file (SIGHUP): done by the writer thread before its next line.
pub fn reopen() {
    let Some(l) = LOGGER.get() else { return };
    REOPEN.store(true, Ordering::Relaxed);
    // A full queue wakes the thread anyway.
    let _ = l.queue.try_push(Job::Wake);
}

/// Waits (at most `limit`) until every line logged so far is written and the files are
/// flushed. Call before the process exits.
pub fn finish(limit: Duration) {
    let Some(l) = LOGGER.get() else { return };
    let n = l.queue.flush_seq.fetch_add(1, Ordering::Relaxed) + 1;
    let start = Instant::now();
    let mut job = Job::Flush(n);
    loop {
        match l.queue.try_push(job) {
            Ok(()) => break,
            Err((j, true)) if start.elapsed() < limit => {
                job = j;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => return,
        }
    }
    let Ok(mut guard) = l.queue.jobs.lock() else { return };
    // Bounded by `limit`.
    while l.queue.flushed.load(Ordering::Relaxed) < n {
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            return;
        }
        match l.queue.changed.wait_timeout(guard, left) {
            Ok((g, _)) => guard = g,
            Err(_) => return,
        }
    }
}

/// The writer thread: writes what the queue holds, in order, until the process ends.
fn writer(queue: &Queue, mut sinks: Vec<Sink>) {
    let mut err = io::stderr();
    loop {
        let job = {
            let Ok(mut q) = queue.jobs.lock() else { return };
            loop {
                if let Some(j) = q.pop_front() {
                    break j;
                }
                q = match queue.changed.wait(q) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
        };
        if REOPEN.swap(false, Ordering::Relaxed) {
            open_all(&mut sinks);
        }
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let msg = format!("{dropped} log lines dropped: the log sink could not keep up");
            let _ = err.write_all(stderr_line(Level::Warn, "wanctl::logger", &msg).as_bytes());
            let (text_time, _) = format_times(unix_ms_now());
            for s in sinks.iter_mut() {
                if let Some(f) = s.file.as_mut() {
                    let _ = f.write_all(file_line(&text_time, Level::Warn, &msg).as_bytes());
                }
            }
        }
        match job {
            Job::Line { level, stderr, file } => {
                if let Some(line) = stderr {
                    let _ = err.write_all(line.as_bytes());
                }
                for s in sinks.iter_mut().filter(|s| level <= s.min) {
                    let Some(f) = s.file.as_mut() else { continue };
                    if let Err(e) = f.write_all(file.as_bytes())
                        && !s.failed
                    {
                        s.failed = true;
                        let _ = writeln!(
                            err,
                            "WARN  wanctl::logger: cannot write log file {}: {e}",
                            s.path.display()
                        );
                    }
                }
            }
            Job::Flush(n) => {
                let _ = err.flush();
                for s in sinks.iter_mut() {
                    if let Some(f) = s.file.as_mut() {
                        let _ = f.flush();
                    }
                }
                // Under the lock so a waiter cannot miss the notification.
                let guard = queue.jobs.lock();
                queue.flushed.fetch_max(n, Ordering::Relaxed);
                drop(guard);
                queue.changed.notify_all();
            }
            Job::Wake => {}
        }
    }
}

fn unix_ms_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Opens (or reopens) every sink's file.
fn open_all(sinks: &mut [Sink]) {
    for s in sinks.iter_mut() {
        if let Some(dir) = s.path.parent()
            && !dir.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(dir);
        }
        match OpenOptions::new().create(true).append(true).open(&s.path) {
            Ok(f) => {
                s.file = Some(f);
                s.failed = false;
            }
            Err(e) => {
                s.file = None;
                if !s.failed {
                    s.failed = true;
                    eprintln!("WARN  wanctl::logger: cannot open log file {}: {e}", s.path.display());
                }
            }
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS,mmm` (UTC) and `YYYY-MM-DDTHH:MM:SS.mmmZ` from Unix milliseconds.
pub fn format_times(unix_ms: i64) -> (String, String) {
    let (date, secs_of_day) = civil_from_unix(unix_ms.div_euclid(1000));
    let ms = unix_ms.rem_euclid(1000);
    let (h, m, s) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
    (format!("{} {h:02}:{m:02}:{s:02},{ms:03}", date), format!("{}T{h:02}:{m:02}:{s:02}.{ms:03}Z", date))
}

/// Unix seconds → (`YYYY-MM-DD`, seconds of the day), proleptic Gregorian (Howard
/// Hinnant's civil-from-days algorithm).
pub fn civil_from_unix(secs: i64) -> (String, i64) {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (format!("{y:04}-{m:02}-{d:02}"), sod)
}

fn json_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

/// Text-log form of a message: control characters (C0, DEL, C1) escaped as `\n`, `\r`,
/// `\t` or `\xNN`/`\u{NN}`, so a message (router error text, a
/// reflector's name) can neither forge extra log lines nor send terminal escapes
/// (issue 18). Returns the input unchanged when there is nothing to escape.
pub fn escape_text(msg: &str) -> std::borrow::Cow<'_, str> {
    if !msg.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(msg);
    }
    let mut out = String::with_capacity(msg.len() + 8);
    for c in msg.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// One text-format line for stderr.
fn stderr_line(level: log::Level, target: &str, msg: &str) -> String {
    format!("{:<5} {}: {}\n", level.as_str(), escape_text(target), escape_text(msg))
}

/// One text-format line for a log file.
fn file_line(text_time: &str, level: log::Level, msg: &str) -> String {
    format!("{text_time} [wanctl] [{}] {}\n", level.as_str(), escape_text(msg))
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let (text_time, iso_time) = format_times(unix_ms_now());
        let level = record.level();
        let msg = record.args().to_string();
        let json_line = self.json.then(|| {
            let mut s = String::with_capacity(msg.len() + 96);
            s.push_str("{\"timestamp\":\"");
            s.push_str(&iso_time);
            s.push_str("\",\"level\":\"");
            s.push_str(level.as_str());
            s.push_str("\",\"logger\":\"");
            json_escape(record.target(), &mut s);
            s.push_str("\",\"message\":\"");
            json_escape(&msg, &mut s);
            s.push_str("\"}\n");
            s
        });
        let stderr = (level <= self.stderr_level).then(|| match &json_line {
            Some(j) => j.clone(),
            None => stderr_line(level, record.target(), &msg),
        });
        let to_files = self.file_levels.iter().any(|&min| level <= min);
        if stderr.is_none() && !to_files {
            return;
        }
        let file = match json_line {
            Some(j) => j,
            None if to_files => file_line(&text_time, level, &msg),
            None => String::new(),
        };
        match self.queue.try_push(Job::Line { level, stderr, file }) {
            Ok(()) => {}
            Err((_, true)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
                DROPPED_TOTAL.fetch_add(1, Ordering::Relaxed);
            }
            // No writer thread (it could not be started): stderr directly, as before.
            Err((Job::Line { stderr: Some(line), .. }, false)) => {
                let _ = io::stderr().write_all(line.as_bytes());
            }
            Err(_) => {}
        }
    }

    fn flush(&self) {
        finish(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_are_right() {
        assert_eq!(civil_from_unix(0), ("1970-01-01".to_string(), 0));
        assert_eq!(civil_from_unix(1_769_408_000).0, "2026-01-26");
        let (text, iso) = format_times(1_769_408_000_123 + 6 * 3_600_000);
        assert_eq!(text, "2026-01-26 12:13:20,123");
        assert_eq!(iso, "2026-01-26T12:13:20.123Z");
    }

    #[test]
    fn json_switch_is_case_insensitive() {
        assert!(json_requested(Some("JSON")));
        assert!(json_requested(Some("json")));
        assert!(!json_requested(Some("text")));
        assert!(!json_requested(None));
    }

    #[test]
    fn issue_18_text_lines_escape_control_characters() {
        let hostile = "bad\nINFO  wanctl::fake: forged line\r\x1b[2J\x07 \u{85}tab\there \\x";
        let line = stderr_line(log::Level::Warn, "wanctl::router", hostile);
        assert_eq!(
            line,
            "WARN  wanctl::router: bad\\nINFO  wanctl::fake: forged line\\r\\x1b[2J\\x07 \\x85tab\\there \\x\n"
        );
        assert_eq!(line.matches('\n').count(), 1, "one record, one line");
        let line = file_line("2026-01-26 12:13:20,123", log::Level::Error, "a\u{2028}b\u{9b}c");
        assert_eq!(line, "2026-01-26 12:13:20,123 [wanctl] [ERROR] a\u{2028}b\\x9bc\n");
        assert!(matches!(escape_text("plain ünïcode"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn json_escaping() {
        let mut s = String::new();
        json_escape("a\"b\\c\nd\u{1}", &mut s);
        assert_eq!(s, "a\\\"b\\\\c\\nd\\u0001");
    }
}
