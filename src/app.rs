//! The binary's top level: dispatch a parsed [`Command`], read files, print, choose the exit
//! code. Shell code: it touches the file system and stdout, and makes no decisions of its
//! own beyond mapping results to exit codes (2 usage or config, 1 runtime, 0 success).

// Shell code: the pure-module bans of clippy.toml do not apply here.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::ffi::OsString;
use std::fmt::Write as _;
use std::process::ExitCode;

use crate::cli::{self, Command, RunArgs, SimArgs};
use crate::config;
use crate::shell::event_loop::{self, Mode, Options};
use crate::shell::logger::{self, LogSetup};
use crate::sim::scenarios;

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Entry point of the binary; `args` includes the program name.
pub fn main(args: Vec<OsString>) -> ExitCode {
    // Called by another name (an install symlink), behave as that tool.
    let argv0 = args.first().map(std::path::Path::new).and_then(|p| p.file_name()).and_then(|n| n.to_str());
    if argv0 == Some("wanctl-history") {
        return ExitCode::from(crate::shell::history_cli::main(args.into_iter().skip(1).collect()));
    }
    if argv0 == Some("wanctl-steering") {
        let mut p = lexopt::Parser::from_args(args.into_iter().skip(1));
        return match cli::parse_steering(&mut p) {
            Ok(Command::Steering(a)) => steering(&a),
            Ok(Command::Version) => {
                println!("{}", crate::version_long());
                ExitCode::SUCCESS
            }
            Ok(_) => {
                print!("{}", cli::HELP);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    if argv0 == Some("wanctl-check-router") {
        let mut p = lexopt::Parser::from_args(args.into_iter().skip(1));
        return match cli::parse_check_router(&mut p) {
            Ok(Command::CheckRouter { files, json }) => check_router(&files, json),
            Ok(Command::Version) => {
                println!("{}", crate::version_long());
                ExitCode::SUCCESS
            }
            Ok(_) => {
                print!("{}", cli::HELP);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    if argv0 == Some("wanctl-calibrate") {
        let mut p = lexopt::Parser::from_args(args.into_iter().skip(1));
        return match cli::parse_calibrate(&mut p) {
            Ok(Command::Calibrate(a)) => calibrate(&a),
            Ok(Command::Version) => {
                println!("{}", crate::version_long());
                ExitCode::SUCCESS
            }
            Ok(_) => {
                print!("{}", cli::HELP);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    let rest = args.into_iter().skip(1).collect();
    let cmd = match cli::parse(rest) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match cmd {
        Command::Version => {
            println!("{}", crate::version_long());
            ExitCode::SUCCESS
        }
        Command::Help => {
            print!("{}", cli::HELP);
            ExitCode::SUCCESS
        }
        Command::CheckConfig(files) => check_config(&files),
        Command::ValidateConfig(files) => validate_config(&files),
        Command::Sim(args) => sim(&args),
        Command::Run(args) => run(&args),
        Command::Demo(o) => {
            let d = crate::demo::DemoArgs::default();
            let args = crate::demo::DemoArgs {
                scenario: o.scenario.unwrap_or(d.scenario),
                speed: o.speed.unwrap_or(d.speed),
                svg: o.svg.unwrap_or(d.svg),
                seed: o.seed.unwrap_or(d.seed),
            };
            ExitCode::from(crate::demo::run(&args))
        }
        Command::History(args) => ExitCode::from(crate::shell::history_cli::main(args)),
        Command::Steering(args) => steering(&args),
        Command::CheckRouter { files, json } => check_router(&files, json),
        Command::Calibrate(a) => calibrate(&a),
    }
}

/// `calibrate`: load the autorate file (exit 2 on problems), then run the calibration
/// (exit 0 done, 1 failed, 130 interrupted).
fn calibrate(a: &cli::CalibrateArgs) -> ExitCode {
    let loaded = match read(&a.config).and_then(|t| {
        config::parse_autorate(&t, &a.config, &env_lookup).map(|l| (t, l)).map_err(|e| e.to_string())
    }) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    ExitCode::from(crate::shell::calibrate::run(a, &loaded.0, &loaded.1.config))
}

/// `check-router`: load every file (any problem: exit 2 before touching the router), then
/// audit each file's router read-only; exit 0 / 1 (warnings) / 2 (errors).
fn check_router(files: &[String], json: bool) -> ExitCode {
    use crate::engine::audit;
    let mut loaded = Vec::new();
    let mut bad = false;
    for file in files {
        match read(file).and_then(|t| config::parse(&t, file, &env_lookup).map_err(|e| e.to_string())) {
            Ok(l) => loaded.push((file, l.config)),
            Err(e) => {
                eprintln!("error: {e}");
                bad = true;
            }
        }
    }
    if bad {
        return ExitCode::from(2);
    }
    let mut worst = 0u8;
    let mut reports = Vec::new();
    for (file, cfg) in &loaded {
        let (router, timeout, target) = crate::shell::check_router::target_of(cfg);
        let findings = crate::shell::check_router::audit(&router, timeout, target);
        let code = audit::exit_code_of(&findings);
        worst = worst.max(code);
        if json {
            reports.push(serde_json::json!({
                "config": file,
                "router": format!("{}:{}", router.host, router.port),
                "transport": crate::engine::router::transport_name(router.transport),
                "exit": code,
                "findings": audit::findings_json(&findings),
            }));
        } else {
            println!(
                "{file}: router {}:{} over {}",
                router.host,
                router.port,
                crate::engine::router::transport_name(router.transport)
            );
            print!("{}", audit::render_text(&findings));
        }
    }
    if json {
        println!("{}", serde_json::json!({ "exit": worst, "configs": reports }));
    } else {
        let verdict = match worst {
            0 => "all checks passed",
            1 => "warnings found",
            _ => "errors found",
        };
        println!("{verdict}");
    }
    ExitCode::from(worst)
}

/// A config file: regular, at most `config::MAX_CONFIG_BYTES`, opened without blocking
/// (a FIFO at the path must not hang the start; issue 18).
fn read(file: &str) -> Result<String, String> {
    let bytes = crate::shell::files::read_small_regular_following(
        std::path::Path::new(file),
        crate::config::MAX_CONFIG_BYTES as u64,
    )
    .map_err(|e| format!("read {file}: {e}"))?;
    String::from_utf8(bytes).map_err(|_| format!("read {file}: stream did not contain valid UTF-8"))
}

fn check_config(files: &[String]) -> ExitCode {
    let mut ok = true;
    for file in files {
        let text = match read(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                ok = false;
                continue;
            }
        };
        match config::parse(&text, file, &env_lookup) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    eprintln!("warning: {file}: {w}");
                }
                println!("{file}: OK");
                for line in config::summary(&loaded.config).lines() {
                    println!("  {line}");
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                ok = false;
            }
        }
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::from(2) }
}

fn validate_config(files: &[String]) -> ExitCode {
    let mut ok = true;
    for file in files {
        let result = read(file).and_then(|text| {
            config::parse_autorate(&text, file, &env_lookup).map_err(|e| {
                let mut s = String::new();
                for (i, err) in e.errors.iter().enumerate() {
                    let _ = write!(s, "{}{err}", if i > 0 { "; " } else { "" });
                }
                s
            })
        });
        match result {
            Ok(loaded) => print!("{}", config::validate_config_report(file, &loaded.config)),
            Err(e) => {
                ok = false;
                println!("Configuration INVALID: {file}\n  Error: {e}");
            }
        }
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn sim(args: &SimArgs) -> ExitCode {
    let seeds = if args.seeds.is_empty() {
        match std::env::var("SIM_SEED") {
            Ok(s) => match s.parse() {
                Ok(n) => vec![n],
                Err(_) => {
                    eprintln!("error: SIM_SEED: expected a whole number, got {s:?}");
                    return ExitCode::from(2);
                }
            },
            Err(_) => vec![1],
        }
    } else {
        args.seeds.clone()
    };
    let cfg = crate::sim::sample_config();
    let chosen: Vec<_> = scenarios::all()
        .into_iter()
        .filter(|s| args.scenario.as_deref().is_none_or(|n| n == s.name))
        .collect();
    if chosen.is_empty() {
        let names: Vec<_> = scenarios::all().iter().map(|s| s.name).collect();
        eprintln!(
            "error: sim: no scenario named {:?} (have: {})",
            args.scenario.as_deref().unwrap_or(""),
            names.join(", ")
        );
        return ExitCode::from(2);
    }
    let mut rows = vec![];
    let mut bad = vec![];
    for &seed in &seeds {
        for s in &chosen {
            for load in [true, false] {
                let cfg = scenarios::with_law(&cfg, load);
                let w = scenarios::run(s, &cfg, seed);
                if let Some(every) = args.trace_every {
                    for r in w.trace.iter().step_by(every.max(1) as usize) {
                        println!(
                            "{} {:7.2} cap {:5.1} rate {:5.1}/{:4.1} delay {:6.1} meas {:6.1} base {:5.1} dl {:<8} ul {:<8} tokens {:5.1} load {}",
                            if load { "load" } else { "rtt " },
                            r.t,
                            r.dl_capacity,
                            r.dl_rate,
                            r.ul_rate,
                            r.added_delay_ms,
                            r.measured_ms.unwrap_or(f64::NAN),
                            r.baseline_ms,
                            r.report.download.zone.as_str(),
                            r.report.upload.zone.as_str(),
                            r.tokens,
                            r.load_aware
                        );
                    }
                }
                rows.push(scenarios::figures(s, &w, seed));
                bad.extend(scenarios::check(s, &cfg, &w, seed));
            }
        }
    }
    println!("Simulated link: 100/20 Mbit/s line, 20 ms base RTT, 600 ms modem buffer, 50 ms ticks.");
    for s in &chosen {
        println!("  {:<11} {}", s.name, s.about);
    }
    println!();
    print!("{}", scenarios::table(&rows));
    if args.scenario.is_none() {
        let mut pool_rows = vec![];
        for &seed in &seeds {
            let (f, b) = crate::sim::pool::run_all(&cfg, seed);
            pool_rows.extend(f);
            bad.extend(b);
        }
        let (steer_rows, steer_bad) = crate::sim::steering::run_all(&seeds);
        bad.extend(steer_bad.into_iter().map(|what| scenarios::Violation {
            scenario: "steering",
            seed: 0,
            what,
        }));
        println!(
            "\nSteering (issue 12; 'enable s' from the event, 'disable s' from the recovery; 'tick' = the same seed with rounds closed at the next tick, the first version's ping handling):"
        );
        for s in
            crate::sim::steering::all().iter().filter(|s| s.pings != crate::sim::steering::PingModel::Instant)
        {
            println!("  {:<20} {}", s.name, s.about);
        }
        print!("{}", crate::sim::steering::table(&steer_rows));
        println!("\nReflector pool (issue 13; 'before'/'after' = the 30 s around the fault or the load):");
        for s in crate::sim::pool::all() {
            println!("  {:<12} {}", s.name, s.about);
        }
        print!("{}", crate::sim::pool::table(&pool_rows));
        println!(
            "\nRecovery bought with writes (median and worst over seeds {seeds:?}; 'load' = queue counters, 'rtt' = RTT-only law):"
        );
        print!("{}", scenarios::tradeoff(&seeds));
        println!();
        print!("{}", crate::sim::hysteresis::table(seeds[0]));
    }
    if bad.is_empty() {
        println!("\nall invariants held");
        ExitCode::SUCCESS
    } else {
        for v in &bad {
            eprintln!(
                "invariant violated: {} (seed {}): {}  -- replay: SIM_SEED={} make sim",
                v.scenario, v.seed, v.what, v.seed
            );
        }
        ExitCode::from(1)
    }
}

/// Loads every config (all problems of every file, exit 2), sets up logging, runs.
fn run(args: &RunArgs) -> ExitCode {
    let mode = if args.once {
        Mode::Once { json: args.json }
    } else if args.oneshot {
        Mode::Oneshot
    } else {
        Mode::Daemon
    };
    // --once reports UNKNOWN (3) for problems that prevent a check; others use 2.
    let config_fail = if args.once { 3 } else { 2 };
    let mut configs = Vec::new();
    let mut warnings = Vec::new();
    let mut bad = false;
    for file in &args.configs {
        match read(file)
            .and_then(|t| config::parse_autorate(&t, file, &env_lookup).map_err(|e| e.to_string()))
        {
            Ok(loaded) => {
                warnings.extend(loaded.warnings.iter().map(|w| format!("{file}: {w}")));
                configs.push(loaded.config);
            }
            Err(e) => {
                eprintln!("error: {e}");
                bad = true;
            }
        }
    }
    if bad {
        return ExitCode::from(config_fail);
    }
    let mut names: Vec<&str> = configs.iter().map(|c| c.wan_name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        eprintln!("error: two config files use the same wan_name; each WAN needs its own");
        return ExitCode::from(config_fail);
    }
    let setup = LogSetup {
        debug: args.debug,
        main_logs: if args.once {
            vec![]
        } else {
            configs.iter().map(|c| c.logging.main_log.clone()).collect()
        },
        debug_logs: configs.iter().map(|c| c.logging.debug_log.clone()).collect(),
    };
    logger::init(&setup);
    for w in &warnings {
        log::warn!(target: "wanctl::config", "{w}");
    }
    let seed = args.seed.unwrap_or_else(crate::sys::random::seed);
    let opts = Options { files: args.configs.clone(), configs, dry_run: args.dry_run, mode, seed };
    match event_loop::run(opts) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            log::error!(target: "wanctl::startup", "{}", e.message);
            if !log::log_enabled!(log::Level::Error) {
                eprintln!("error: {}", e.message);
            }
            ExitCode::from(if args.once { 3 } else { e.code })
        }
    }
}

/// The steering daemon: load the one steering file (exit 2 on problems), set up logging, run.
fn steering(args: &RunArgs) -> ExitCode {
    let Some(file) = args.configs.first() else {
        eprintln!("error: steering: missing --config FILE");
        return ExitCode::from(2);
    };
    let loaded = match read(file)
        .and_then(|t| config::parse_steering(&t, file, &env_lookup).map_err(|e| e.to_string()))
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = loaded.config;
    logger::init(&LogSetup {
        debug: args.debug,
        main_logs: vec![cfg.logging.main_log.clone()],
        debug_logs: vec![cfg.logging.debug_log.clone()],
    });
    for w in &loaded.warnings {
        log::warn!(target: "wanctl::config", "{file}: {w}");
    }
    let seed = args.seed.unwrap_or_else(crate::sys::random::seed);
    match crate::shell::steering_loop::run(cfg, args.dry_run, seed) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            log::error!(target: "wanctl::startup", "{}", e.message);
            ExitCode::from(e.code)
        }
    }
}
