//! `wanctl history` and `wanctl-history`: the original's history CLI (INTERFACES.md §5.4)
//! plus `--csv` and `--plot FILE.svg`. Shell code: parses flags, reads the clock and the
//! time zone once, queries the [`Reader`], writes the output. All formatting is pure and
//! lives in `engine::history` and `plot`.
//!
//! Exit codes as the original: 0 (including "no data"), 1 (database missing or output
//! failed), 2 (usage, with argparse-style messages). Long options may be abbreviated to any
//! unique prefix, as argparse allows (`--sum`).
//!
//! Local time: naive `--from`/`--to` and table timestamps use the zone offset of *now*;
//! the original used the rules at each timestamp, which differs across a DST change.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::engine::history::{
    self, DEFAULT_WINDOW_SECS, Granularity, HistoryQuery, format_cli_json, format_csv, format_summary,
    format_table, parse_cli_timestamp, parse_duration,
};
use crate::plot::{self, PlotOptions, TimeLabels};
use crate::shell::store::{DEFAULT_DB_PATH, Reader};

/// The usage line printed with every usage error.
pub const USAGE: &str = "usage: wanctl-history [-h] [--last DURATION] [--from TIMESTAMP] [--to TIMESTAMP] \
[--metrics NAMES] [--wan NAME] [--json | --csv | --summary] [-v] [--db PATH] [--plot FILE.svg]";

/// `--help`.
pub const HELP: &str = "\
usage: wanctl-history [-h] [--last DURATION] [--from TIMESTAMP] [--to TIMESTAMP]
                      [--metrics NAMES] [--wan NAME] [--json | --csv | --summary]
                      [-v] [--db PATH] [--plot FILE.svg]

Query and display metrics history from wanctl database

options:
  -h, --help          show this help message and exit
  --db PATH           Database path (default: /var/lib/wanctl/metrics.db)

Time Range:
  --last DURATION     Relative time range (e.g., 1h, 30m, 7d, 2w)
  --from TIMESTAMP    Start time (ISO 8601 or 'YYYY-MM-DD HH:MM')
  --to TIMESTAMP      End time (ISO 8601 or 'YYYY-MM-DD HH:MM')

Filters:
  --metrics NAMES     Comma-separated metric names to filter
  --wan NAME          Filter by WAN name (e.g., spectrum, att)

Output:
  --json              Output as JSON instead of table
  --csv               Output as CSV (ISO UTC timestamps)
  --summary           Show summary statistics (min/max/avg/p95) instead of raw data
  -v, --verbose       Show extra columns (wan, labels, granularity)
  --plot FILE.svg     Draw RTT, rates and zones as an SVG chart ('-' = stdout);
                      rows are then printed only with --json, --csv, --summary or -v

Precedence: --json, then --csv, then --summary, then the table. The window is
--last if given, else --from (to --to or now), else the last hour; the data tier
follows the window (< 6 h raw, < 24 h 1m, < 7 d 5m, else 1h).

Examples:
  wanctl-history --last 1h
  wanctl-history --last 24h --metrics wanctl_rtt_ms,wanctl_state
  wanctl-history --from \"2026-01-25 14:00\" --to \"2026-01-25 15:00\"
  wanctl-history --last 7d --summary
  wanctl-history --last 1h --json
  wanctl-history --last 1h --wan spectrum -v
  wanctl-history --last 6h --plot /tmp/wan.svg
";

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The tabulate "simple" table.
    #[default]
    Table,
    /// Per-metric statistics.
    Summary,
    /// CSV.
    Csv,
    /// Pretty JSON with integer timestamps.
    Json,
}

/// Parsed flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryArgs {
    /// `--last` in seconds.
    pub last_secs: Option<u64>,
    /// `--from` (Unix seconds).
    pub from: Option<i64>,
    /// `--to` (Unix seconds).
    pub to: Option<i64>,
    /// `--metrics` as given.
    pub metrics: Option<String>,
    /// `--wan`.
    pub wan: Option<String>,
    /// The winning output format.
    pub format: Format,
    /// `-v`.
    pub verbose: bool,
    /// `--db`.
    pub db: PathBuf,
    /// `--plot`.
    pub plot: Option<PathBuf>,
}

impl Default for HistoryArgs {
    fn default() -> Self {
        HistoryArgs {
            last_secs: None,
            from: None,
            to: None,
            metrics: None,
            wan: None,
            format: Format::Table,
            verbose: false,
            db: PathBuf::from(DEFAULT_DB_PATH),
            plot: None,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Print [`HELP`].
    Help,
    /// Query.
    Run(HistoryArgs),
}

const LONG_FLAGS: &[&str] =
    &["help", "last", "from", "to", "metrics", "wan", "json", "csv", "summary", "verbose", "db", "plot"];

/// argparse's prefix matching: an exact name, or the one flag the prefix starts.
fn resolve_long(given: &str) -> Result<&'static str, String> {
    if let Some(exact) = LONG_FLAGS.iter().find(|f| **f == given) {
        return Ok(exact);
    }
    let matches: Vec<&&str> = LONG_FLAGS.iter().filter(|f| f.starts_with(given)).collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("unrecognized arguments: --{given}")),
        many => Err(format!(
            "ambiguous option: --{given} could match {}",
            many.iter().map(|f| format!("--{f}")).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Parses the arguments after the program name (or after `history`). Naive timestamps
/// are local at `utc_offset_secs`. `Err` is the argparse-style message (exit 2).
pub fn parse_args(args: Vec<OsString>, utc_offset_secs: i64) -> Result<Parsed, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut a = HistoryArgs::default();
    let (mut json, mut csv, mut summary) = (false, false, false);
    let value = |p: &mut lexopt::Parser, flag: &str| -> Result<String, String> {
        p.value()
            .map(|v| v.to_string_lossy().into_owned())
            .map_err(|_| format!("argument --{flag}: expected one argument"))
    };
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        let flag = match arg {
            Short('h') => "help",
            Short('v') => "verbose",
            Short(c) => return Err(format!("unrecognized arguments: -{c}")),
            Long(name) => resolve_long(name)?,
            Value(v) => return Err(format!("unrecognized arguments: {}", v.to_string_lossy())),
        };
        match flag {
            "help" => return Ok(Parsed::Help),
            "verbose" => a.verbose = true,
            "json" => json = true,
            "csv" => csv = true,
            "summary" => summary = true,
            "last" => {
                let v = value(&mut p, flag)?;
                a.last_secs = Some(parse_duration(&v).ok_or_else(|| {
                    format!("argument --last: Invalid duration: '{v}'. Use format like '1h', '30m', '7d'")
                })?);
            }
            "from" | "to" => {
                let v = value(&mut p, flag)?;
                let ts = parse_cli_timestamp(&v).map(|t| t.to_unix(utc_offset_secs)).ok_or_else(|| {
                    format!("argument --{flag}: Invalid timestamp: '{v}'. Use ISO 8601 or 'YYYY-MM-DD HH:MM' format")
                })?;
                if flag == "from" {
                    a.from = Some(ts);
                } else {
                    a.to = Some(ts);
                }
            }
            "metrics" => a.metrics = Some(value(&mut p, flag)?),
            "wan" => a.wan = Some(value(&mut p, flag)?),
            "db" => a.db = PathBuf::from(value(&mut p, flag)?),
            "plot" => a.plot = Some(PathBuf::from(value(&mut p, flag)?)),
            other => return Err(format!("unrecognized arguments: --{other}")),
        }
    }
    a.format = if json {
        Format::Json
    } else if csv {
        Format::Csv
    } else if summary {
        Format::Summary
    } else {
        Format::Table
    };
    Ok(Parsed::Run(a))
}

impl HistoryArgs {
    /// The query at `now`, with the original's truthiness: `--last 0s` and `--from` at the
    /// epoch count as absent, as does `--to` at the epoch.
    pub fn query(&self, now: i64) -> HistoryQuery {
        let (start, end) = match (self.last_secs.filter(|s| *s > 0), self.from.filter(|f| *f != 0)) {
            (Some(last), _) => (now.saturating_sub(i64::try_from(last).unwrap_or(i64::MAX)), now),
            (None, Some(from)) => (from, self.to.filter(|t| *t != 0).unwrap_or(now)),
            (None, None) => (now - DEFAULT_WINDOW_SECS, now),
        };
        HistoryQuery {
            start,
            end,
            metrics: self
                .metrics
                .as_deref()
                .filter(|m| !m.is_empty())
                .map(|m| m.split(',').map(|s| s.trim().to_string()).collect()),
            wan: self.wan.clone(),
            granularity: Granularity::for_window(start, end),
        }
    }
}

/// What the process needs from outside: wall-clock now and the local zone offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Env {
    /// Wall-clock Unix seconds.
    pub now: i64,
    /// Local offset, seconds east of UTC.
    pub utc_offset_secs: i64,
}

/// Entry point for `wanctl history ARGS` and argv[0] `wanctl-history`: `args` excludes the
/// program name (and the `history` word). Returns the exit code.
pub fn main(args: Vec<OsString>) -> u8 {
    let env = Env {
        now: crate::sys::clock::wall_unix_secs(),
        utc_offset_secs: crate::sys::clock::local_offset_secs(),
    };
    let stdout = io::stdout();
    let stderr = io::stderr();
    run(args, &env, &mut stdout.lock(), &mut stderr.lock())
}

/// [`main`] with the clock, the zone and the streams passed in (tests).
pub fn run(args: Vec<OsString>, env: &Env, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let args = match parse_args(args, env.utc_offset_secs) {
        Ok(Parsed::Help) => return finish(out.write_all(HELP.as_bytes()), err),
        Ok(Parsed::Run(a)) => a,
        Err(msg) => {
            let _ = writeln!(err, "{USAGE}\nwanctl-history: error: {msg}");
            return 2;
        }
    };
    let query = args.query(env.now);
    if !args.db.exists() {
        let _ = writeln!(err, "Database not found: {}. Run wanctl to generate data.", args.db.display());
        return 1;
    }
    // The original logs a warning and treats an unreadable database as empty.
    let rows = match Reader::open(&args.db).and_then(|r| r.query(&query, None, 0)) {
        Ok(rows) => rows,
        Err(e) => {
            let _ = writeln!(err, "warning: {e}");
            Vec::new()
        }
    };
    if rows.is_empty() {
        return finish(writeln!(out, "No data found for the specified time range."), err);
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "wanctl history {} to {} ({})",
            history::local_datetime(query.start, env.utc_offset_secs),
            history::local_datetime(query.end, env.utc_offset_secs),
            query.granularity
        );
        let opts = PlotOptions {
            title: &title,
            time_labels: TimeLabels::Wall { utc_offset_secs: env.utc_offset_secs },
            ..PlotOptions::default()
        };
        let svg = plot::render_rows(&rows, &opts);
        if path == Path::new("-") {
            return finish(out.write_all(svg.as_bytes()), err);
        }
        if let Err(e) = std::fs::write(path, svg) {
            let _ = writeln!(err, "error: write plot {}: {e}", path.display());
            return 1;
        }
        if args.format == Format::Table && !args.verbose {
            return finish(writeln!(out, "Plot written to {} ({} rows)", path.display(), rows.len()), err);
        }
    }
    let text = match args.format {
        Format::Json => format_cli_json(&rows) + "\n",
        Format::Csv => format_csv(&rows),
        Format::Summary => format_summary(&rows) + "\n",
        Format::Table => format_table(&rows, args.verbose, env.utc_offset_secs) + "\n",
    };
    finish(out.write_all(text.as_bytes()).and_then(|()| out.flush()), err)
}

/// Exit code of a finished write: a closed pipe (`| head`) is not an error.
fn finish(result: io::Result<()>, err: &mut dyn Write) -> u8 {
    match result {
        Ok(()) => 0,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            let _ = writeln!(err, "error: write output: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Parsed, String> {
        parse_args(s.split_whitespace().map(OsString::from).collect(), 0)
    }

    #[test]
    fn flags_and_precedence() {
        let Ok(Parsed::Run(a)) =
            parse("--last 2h --json --summary -v --db /tmp/x.db --wan att --metrics a,b")
        else {
            panic!()
        };
        assert_eq!(a.last_secs, Some(7200));
        assert_eq!(a.format, Format::Json);
        assert!(a.verbose);
        assert_eq!(a.db, PathBuf::from("/tmp/x.db"));
        let Ok(Parsed::Run(a)) = parse("--sum --csv") else { panic!() };
        assert_eq!(a.format, Format::Csv);
        let Ok(Parsed::Run(a)) = parse("--summ") else { panic!() };
        assert_eq!(a.format, Format::Summary);
        assert_eq!(parse("-h"), Ok(Parsed::Help));
        assert_eq!(parse("--he"), Ok(Parsed::Help));
    }

    #[test]
    fn usage_errors() {
        let cases: &[(&str, &str)] = &[
            ("--last 1x", "argument --last: Invalid duration: '1x'. Use format like '1h', '30m', '7d'"),
            (
                "--from yesterday",
                "argument --from: Invalid timestamp: 'yesterday'. Use ISO 8601 or 'YYYY-MM-DD HH:MM' format",
            ),
            ("--bogus", "unrecognized arguments: --bogus"),
            ("extra", "unrecognized arguments: extra"),
            ("--last", "argument --last: expected one argument"),
        ];
        for (args, want) in cases {
            assert_eq!(parse(args), Err((*want).to_string()), "{args}");
        }
    }

    #[test]
    fn window_rules() {
        let now = 1_769_349_600;
        let q = |s: &str| match parse(s) {
            Ok(Parsed::Run(a)) => a.query(now),
            other => panic!("{other:?}"),
        };
        assert_eq!((q("").start, q("").end, q("").granularity), (now - 3600, now, Granularity::Raw));
        assert_eq!(q("--last 6h").granularity, Granularity::Minute);
        assert_eq!(q("--last 1d").granularity, Granularity::FiveMinutes);
        assert_eq!(q("--last 1w").granularity, Granularity::Hour);
        assert_eq!(q("--last 0s").start, now - 3600, "zero duration is absent");
        let w = q("--last 1h --from 2026-01-25T10:00:00Z");
        assert_eq!(w.start, now - 3600, "--last wins");
        let w = q("--from 2026-01-25T10:00:00Z --to 2026-01-25T12:00:00Z");
        assert_eq!((w.start, w.end), (now - 4 * 3600, now - 2 * 3600));
        let w = q("--to 2026-01-25T12:00:00Z");
        assert_eq!((w.start, w.end), (now - 3600, now), "--to alone is ignored");
        assert_eq!(q("--metrics a,,b").metrics, Some(vec!["a".into(), String::new(), "b".into()]));
    }
}
