//! Command line: lexopt → [`Command`]. Pure parsing (the arguments come in as a list), plus
//! the help text and typo suggestions.
//!
//! The original's flags are kept (`--config FILE [FILE...]`, `--debug`, `--oneshot`,
//! `--validate-config`); subcommands add the tools the original shipped as separate
//! scripts (`check-config`, `history`, `steering`) and new ones (`sim`, `demo`).

use std::ffi::OsString;
use std::fmt;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run the autorate daemon (or one cycle with `once`/`oneshot`).
    Run(RunArgs),
    /// `--validate-config`: the original's per-file report, exit 0/1.
    ValidateConfig(Vec<String>),
    /// `check-config FILE...`: validate autorate and steering files, exit 0/2.
    CheckConfig(Vec<String>),
    /// `sim`: run the simulation scenarios and print the figures.
    Sim(SimArgs),
    /// `demo`: the real engine on a simulated link, shown live, plotted to SVG.
    Demo(DemoOptions),
    /// `history ...` (also argv[0] `wanctl-history`): the history tool's own arguments.
    History(Vec<OsString>),
    /// `steering --config FILE` (also argv[0] `wanctl-steering`).
    Steering(RunArgs),
    /// `check-router --config FILE... [--json]` (also argv[0] `wanctl-check-router`):
    /// read-only audit of the router side.
    CheckRouter {
        /// Autorate and/or steering config files.
        files: Vec<String>,
        /// `--json`.
        json: bool,
    },
    /// `calibrate --config FILE ...` (also argv[0] `wanctl-calibrate`).
    Calibrate(CalibrateArgs),
    /// `--version`.
    Version,
    /// `--help`.
    Help,
}

/// Daemon arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunArgs {
    /// Autorate config files, one per WAN.
    pub configs: Vec<String>,
    /// `--debug`.
    pub debug: bool,
    /// `--oneshot`: the original's single cycle, exit 0 whatever happened.
    pub oneshot: bool,
    /// `--once`: one measurement and decision, monitoring-plugin exit codes.
    pub once: bool,
    /// `--dry-run`: decide but never write to the router.
    pub dry_run: bool,
    /// `--json` (with `--once`).
    pub json: bool,
    /// `--seed N`: replay randomness.
    pub seed: Option<u64>,
}

/// `sim` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimArgs {
    /// Seeds to run (default: one fixed seed).
    pub seeds: Vec<u64>,
    /// Only this scenario.
    pub scenario: Option<String>,
    /// Print the per-tick trace every N ticks.
    pub trace_every: Option<u32>,
}

/// `demo` options.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DemoOptions {
    /// Scenario name.
    pub scenario: Option<String>,
    /// Simulated seconds per real second.
    pub speed: Option<f64>,
    /// Plot file.
    pub svg: Option<String>,
    /// Seed.
    pub seed: Option<u64>,
}

/// A usage error (exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> UsageError {
        UsageError(e.to_string())
    }
}

const FLAGS: &[&str] = &[
    "--config",
    "--debug",
    "--oneshot",
    "--once",
    "--dry-run",
    "--json",
    "--seed",
    "--validate-config",
    "--version",
    "--help",
];
const SUBCOMMANDS: &[&str] =
    &["check-config", "check-router", "calibrate", "sim", "demo", "history", "steering"];

/// `calibrate` options.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrateArgs {
    /// The autorate config.
    pub config: String,
    /// Where the calibrated config goes (default `<config dir>/<wan>.calibrated.yaml`).
    pub output: Option<String>,
    /// Added delay allowed (ms; default the config's `target_bloat_ms`).
    pub target_bloat_ms: Option<f64>,
    /// One search step (s, default 5).
    pub step_secs: f64,
    /// Baseline measurement (s, default 10).
    pub baseline_secs: f64,
    /// How long to wait for a transfer per direction (s, default 120).
    pub wait_load_secs: f64,
    /// Search steps (default 6).
    pub iterations: u32,
    /// Calibrate the download.
    pub download: bool,
    /// Calibrate the upload.
    pub upload: bool,
    /// Download from this URL to load the line (else: the user's own transfer).
    pub load_url: Option<String>,
    /// Upload to this URL to load the line.
    pub upload_url: Option<String>,
    /// Verify the load URLs' TLS certificates (`--insecure` turns it off).
    pub verify_tls: bool,
}

/// The help text.
pub const HELP: &str = "\
wanctl - adaptive CAKE bandwidth controller for MikroTik RouterOS

USAGE:
    wanctl --config FILE [FILE...] [--debug] [--dry-run] [--seed N]   run the daemon
    wanctl --config FILE [FILE...] --once [--json] [--dry-run]        one check, Nagios exit codes
    wanctl --config FILE [FILE...] --oneshot                          one cycle, exit 0 (original)
    wanctl --config FILE [FILE...] --validate-config                  the original's report
    wanctl check-config FILE...        validate autorate and steering files (exit 0 / 2)
    wanctl check-router --config FILE... [--json]
                                       read-only audit of the router: API, credentials,
                                       policy, version, queues, CAKE types, mangle rule;
                                       fix lines; exit 0 / 1 warnings / 2 errors
                                       (also as `wanctl-check-router`)
    wanctl calibrate --config FILE [--output FILE] [--target-bloat MS] [--step-secs S]
                     [--baseline-secs S] [--wait-load-secs S] [--iterations N]
                     [--download-only | --upload-only] [--load-url URL] [--upload-url URL]
                     [--insecure]
                                       measure the idle RTT and, while you run a large
                                       transfer (or it downloads --load-url / uploads to
                                       --upload-url, HTTP or HTTPS), search the max-limit that keeps the added
                                       delay within target; writes a calibrated config and
                                       <wan>_calibration.json; restores the router's limits
                                       on every exit (also as `wanctl-calibrate`)
    wanctl steering --config FILE [--debug] [--dry-run]
                                       the steering daemon (also as `wanctl-steering`)
    wanctl demo [--scenario NAME] [--speed X] [--fast] [--svg FILE] [--seed N]
                                       watch the real engine on a simulated line; writes an SVG
    wanctl sim [--seed N]... [--scenario NAME] [--trace N]
                                       run the controller on simulated links, print figures
    wanctl history [--last DUR | --from TS [--to TS]] [--metrics A,B] [--wan NAME]
                   [--json | --summary | --csv] [-v] [--db PATH] [--plot FILE.svg]
                                       query the SQLite history (also as `wanctl-history`)
    wanctl --version | --help
";

/// Edit distance, for suggestions.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn suggest(word: &str, candidates: &[&str]) -> String {
    let best = candidates.iter().map(|c| (levenshtein(word, c), *c)).min();
    match best {
        Some((d, c)) if d <= 3 => format!(" (did you mean {c}?)"),
        _ => String::new(),
    }
}

fn unknown_flag(flag: &str) -> UsageError {
    UsageError(format!("unknown option {flag}{}; see wanctl --help", suggest(flag, FLAGS)))
}

fn parse_seed(p: &mut lexopt::Parser) -> Result<u64, UsageError> {
    let v = p.value()?;
    let s = v.to_string_lossy();
    s.parse().map_err(|_| UsageError(format!("--seed: expected a whole number, got {s:?}")))
}

/// Parses the arguments after the program name.
pub fn parse(args: Vec<OsString>) -> Result<Command, UsageError> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut run = RunArgs::default();
    let mut validate = false;
    let mut first = true;
    while let Some(arg) = p.next()? {
        match arg {
            Value(v) if first => {
                let word = v.to_string_lossy().into_owned();
                return match word.as_str() {
                    "check-config" => {
                        let files: Vec<String> =
                            p.raw_args()?.map(|a| a.to_string_lossy().into_owned()).collect();
                        if files.is_empty() {
                            return Err(UsageError("check-config: expected at least one FILE".into()));
                        }
                        Ok(Command::CheckConfig(files))
                    }
                    "sim" => parse_sim(&mut p),
                    "demo" => parse_demo(&mut p),
                    "history" => Ok(Command::History(p.raw_args()?.collect())),
                    "steering" => parse_steering(&mut p),
                    "check-router" => parse_check_router(&mut p),
                    "calibrate" => parse_calibrate(&mut p),
                    other => Err(UsageError(format!(
                        "unknown command {other:?}{}; see wanctl --help",
                        suggest(other, SUBCOMMANDS)
                    ))),
                };
            }
            Long("config") | Short('c') => {
                // The original takes `--config a.yaml b.yaml`: every following plain value.
                for v in p.values()? {
                    run.configs.push(v.to_string_lossy().into_owned());
                }
            }
            Long("debug") => run.debug = true,
            Long("oneshot") => run.oneshot = true,
            Long("once") => run.once = true,
            Long("dry-run") => run.dry_run = true,
            Long("json") => run.json = true,
            Long("seed") => run.seed = Some(parse_seed(&mut p)?),
            Long("validate-config") => validate = true,
            Long("version") | Short('V') => return Ok(Command::Version),
            Long("help") | Short('h') => return Ok(Command::Help),
            Long(flag) => return Err(unknown_flag(&format!("--{flag}"))),
            Short(c) => return Err(unknown_flag(&format!("-{c}"))),
            Value(v) => {
                return Err(UsageError(format!(
                    "unexpected argument {:?}; see wanctl --help",
                    v.to_string_lossy()
                )));
            }
        }
        first = false;
    }
    if run.configs.is_empty() {
        return Err(UsageError("missing --config FILE; see wanctl --help".into()));
    }
    if validate {
        return Ok(Command::ValidateConfig(run.configs));
    }
    if run.once && run.oneshot {
        return Err(UsageError("--once and --oneshot exclude each other".into()));
    }
    Ok(Command::Run(run))
}

/// `steering --config FILE [--debug] [--dry-run] [--seed N]` (the original's
/// `wanctl-steering` flags, less `--reset`).
pub fn parse_steering(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    use lexopt::prelude::*;
    let mut run = RunArgs::default();
    while let Some(arg) = p.next()? {
        match arg {
            Long("config") | Short('c') => run.configs.push(p.value()?.to_string_lossy().into_owned()),
            Long("debug") => run.debug = true,
            Long("dry-run") => run.dry_run = true,
            Long("seed") => run.seed = Some(parse_seed(p)?),
            Long("help") | Short('h') => return Ok(Command::Help),
            Long("version") | Short('V') => return Ok(Command::Version),
            Long(flag) => {
                return Err(UsageError(format!(
                    "steering: unknown option --{flag}{}",
                    suggest(&format!("--{flag}"), &["--config", "--debug", "--dry-run", "--seed"])
                )));
            }
            other => return Err(other.unexpected().into()),
        }
    }
    if run.configs.len() != 1 {
        return Err(UsageError("steering: expected exactly one --config FILE".into()));
    }
    Ok(Command::Steering(run))
}

/// `calibrate --config FILE [options]`.
pub fn parse_calibrate(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    use lexopt::prelude::*;
    let mut a = CalibrateArgs {
        config: String::new(),
        output: None,
        target_bloat_ms: None,
        step_secs: 5.0,
        baseline_secs: 10.0,
        wait_load_secs: 120.0,
        iterations: 6,
        download: true,
        upload: true,
        load_url: None,
        upload_url: None,
        verify_tls: true,
    };
    let num = |p: &mut lexopt::Parser, name: &str, lo: f64, hi: f64| -> Result<f64, UsageError> {
        let v = p.value()?.to_string_lossy().into_owned();
        match v.parse::<f64>() {
            Ok(x) if (lo..=hi).contains(&x) => Ok(x),
            _ => Err(UsageError(format!(
                "calibrate: --{name}: expected a number from {lo} to {hi}, got {v:?}"
            ))),
        }
    };
    while let Some(arg) = p.next()? {
        match arg {
            Long("config") | Short('c') => a.config = p.value()?.to_string_lossy().into_owned(),
            Long("output") | Short('o') => a.output = Some(p.value()?.to_string_lossy().into_owned()),
            Long("target-bloat") => a.target_bloat_ms = Some(num(p, "target-bloat", 1.0, 500.0)?),
            Long("step-secs") => a.step_secs = num(p, "step-secs", 0.5, 120.0)?,
            Long("baseline-secs") => a.baseline_secs = num(p, "baseline-secs", 0.5, 600.0)?,
            Long("wait-load-secs") => a.wait_load_secs = num(p, "wait-load-secs", 1.0, 3600.0)?,
            Long("iterations") => a.iterations = num(p, "iterations", 1.0, 20.0)? as u32,
            Long("download-only") => a.upload = false,
            Long("load-url") => a.load_url = Some(p.value()?.to_string_lossy().into_owned()),
            Long("upload-url") => a.upload_url = Some(p.value()?.to_string_lossy().into_owned()),
            Long("insecure") => a.verify_tls = false,
            Long("upload-only") => a.download = false,
            Long("help") | Short('h') => return Ok(Command::Help),
            Long("version") | Short('V') => return Ok(Command::Version),
            Long(flag) => {
                return Err(UsageError(format!(
                    "calibrate: unknown option --{flag}{}",
                    suggest(
                        &format!("--{flag}"),
                        &[
                            "--config",
                            "--output",
                            "--target-bloat",
                            "--step-secs",
                            "--baseline-secs",
                            "--wait-load-secs",
                            "--iterations",
                            "--download-only",
                            "--upload-only",
                            "--load-url",
                            "--upload-url",
                            "--insecure",
                        ]
                    )
                )));
            }
            other => return Err(other.unexpected().into()),
        }
    }
    if a.config.is_empty() {
        return Err(UsageError("calibrate: expected --config FILE".into()));
    }
    if !a.download && !a.upload {
        return Err(UsageError("calibrate: --download-only and --upload-only exclude each other".into()));
    }
    Ok(Command::Calibrate(a))
}

/// `check-router --config FILE [FILE...] [--json]`.
pub fn parse_check_router(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    use lexopt::prelude::*;
    let mut files = Vec::new();
    let mut json = false;
    while let Some(arg) = p.next()? {
        match arg {
            Long("config") | Short('c') => {
                for v in p.values()? {
                    files.push(v.to_string_lossy().into_owned());
                }
            }
            Long("json") => json = true,
            Long("help") | Short('h') => return Ok(Command::Help),
            Long("version") | Short('V') => return Ok(Command::Version),
            Long(flag) => {
                return Err(UsageError(format!(
                    "check-router: unknown option --{flag}{}",
                    suggest(&format!("--{flag}"), &["--config", "--json"])
                )));
            }
            other => return Err(other.unexpected().into()),
        }
    }
    if files.is_empty() {
        return Err(UsageError("check-router: expected --config FILE".into()));
    }
    Ok(Command::CheckRouter { files, json })
}

fn parse_demo(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    use lexopt::prelude::*;
    let mut o = DemoOptions::default();
    while let Some(arg) = p.next()? {
        match arg {
            Long("scenario") => o.scenario = Some(p.value()?.to_string_lossy().into_owned()),
            Long("svg") => o.svg = Some(p.value()?.to_string_lossy().into_owned()),
            Long("seed") => o.seed = Some(parse_seed(p)?),
            Long("fast") => o.speed = Some(0.0),
            Long("speed") => {
                let v = p.value()?.to_string_lossy().into_owned();
                let x: f64 =
                    v.parse().map_err(|_| UsageError(format!("--speed: expected a number, got {v:?}")))?;
                if !(x.is_finite() && x >= 0.0) {
                    return Err(UsageError(format!("--speed: expected a number >= 0, got {v:?}")));
                }
                o.speed = Some(x);
            }
            Long("help") | Short('h') => return Ok(Command::Help),
            Long(flag) => {
                return Err(UsageError(format!(
                    "demo: unknown option --{flag}{}",
                    suggest(&format!("--{flag}"), &["--scenario", "--speed", "--fast", "--svg", "--seed"])
                )));
            }
            other => return Err(other.unexpected().into()),
        }
    }
    Ok(Command::Demo(o))
}

fn parse_sim(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    use lexopt::prelude::*;
    let mut args = SimArgs::default();
    while let Some(arg) = p.next()? {
        match arg {
            Long("seed") => args.seeds.push(parse_seed(p)?),
            Long("scenario") => args.scenario = Some(p.value()?.to_string_lossy().into_owned()),
            Long("trace") => {
                let v = p.value()?.to_string_lossy().into_owned();
                args.trace_every =
                    Some(v.parse().map_err(|_| UsageError(format!("--trace: expected ticks, got {v:?}")))?);
            }
            Long("help") | Short('h') => return Ok(Command::Help),
            Long(flag) => {
                return Err(UsageError(format!(
                    "sim: unknown option --{flag}{}",
                    suggest(&format!("--{flag}"), &["--seed", "--scenario"])
                )));
            }
            other => return Err(other.unexpected().into()),
        }
    }
    Ok(Command::Sim(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Command, UsageError> {
        parse(s.split_whitespace().map(OsString::from).collect())
    }

    #[test]
    fn original_multi_file_config_flag() {
        let Ok(Command::Run(r)) = parse_str("--config a.yaml b.yaml --debug") else { panic!() };
        assert_eq!(r.configs, vec!["a.yaml", "b.yaml"]);
        assert!(r.debug);
        assert_eq!(
            parse_str("--config a.yaml --validate-config"),
            Ok(Command::ValidateConfig(vec!["a.yaml".into()]))
        );
    }

    #[test]
    fn typos_get_suggestions() {
        let e = parse_str("--config a.yaml --onse").unwrap_err();
        assert!(e.0.contains("did you mean --once?"), "{e}");
        let e = parse_str("chek-config x").unwrap_err();
        assert!(e.0.contains("check-config"), "{e}");
    }

    #[test]
    fn check_router_takes_configs_and_json() {
        assert_eq!(
            parse_str("check-router --config a.yaml b.yaml --json"),
            Ok(Command::CheckRouter { files: vec!["a.yaml".into(), "b.yaml".into()], json: true })
        );
        assert!(parse_str("check-router").unwrap_err().0.contains("--config"));
        match parse_str("calibrate --config a.yaml --step-secs 2 --download-only --iterations 4") {
            Ok(Command::Calibrate(c)) => {
                assert_eq!((c.config.as_str(), c.step_secs, c.iterations), ("a.yaml", 2.0, 4));
                assert!(c.download && !c.upload);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_str("calibrate").unwrap_err().0.contains("--config"));
        assert!(parse_str("calibrate --config a --step-secs 0").unwrap_err().0.contains("step-secs"));
        assert!(parse_str("calibrate --config a --download-only --upload-only").is_err());
        assert!(parse_str("calibrate --config a --stepsecs 1").unwrap_err().0.contains("--step-secs"));
        assert!(parse_str("check-router --jsn").unwrap_err().0.contains("--json"));
    }

    #[test]
    fn missing_config_is_a_usage_error() {
        assert!(parse_str("--debug").unwrap_err().0.contains("missing --config"));
    }
}
