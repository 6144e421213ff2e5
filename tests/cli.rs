//! The binary's command line: exit codes and messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn wanctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wanctl"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("ROUTER_PASSWORD")
        .output()
        .expect("run wanctl")
}

fn files(dir: &str, prefix: &str, ext: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with(prefix) && name.ends_with(ext)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn check_config_accepts_every_shipped_example() {
    let cfgs = files("config", "", ".yaml");
    assert!(cfgs.len() >= 4);
    let args: Vec<&str> =
        std::iter::once("check-config").chain(cfgs.iter().map(|p| p.to_str().expect("utf8"))).collect();
    let out = wanctl(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout {stdout}\nstderr {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches(": OK").count(), cfgs.len());
}

#[test]
fn check_config_rejects_each_bad_file_with_exit_2_naming_the_key() {
    let bad = files("tests/fixtures/config", "bad-", ".yaml");
    assert!(bad.len() >= 12);
    for path in bad {
        let out = wanctl(&["check-config", path.to_str().expect("utf8")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", path.display());
        let expected = std::fs::read_to_string(path.with_extension("err")).expect("golden .err");
        // The golden text names the file by basename; the binary by the path given.
        let first_problem = expected.lines().nth(1).unwrap_or("").trim_start_matches("  - ");
        assert!(stderr.contains(first_problem), "{}: expected {first_problem:?} in {stderr}", path.display());
    }
}

#[test]
fn validate_config_keeps_the_original_flag_and_exit_codes() {
    let good = wanctl(&["--config", "config/cable.yaml", "--validate-config"]);
    assert_eq!(good.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&good.stdout).starts_with("Configuration valid: config/cable.yaml"));
    let bad = wanctl(&["--config", "tests/fixtures/config/bad-ranges.yaml", "--validate-config"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("Configuration INVALID"));
}

#[test]
fn missing_file_is_reported_with_its_path() {
    let out = wanctl(&["check-config", "/nonexistent/wan9.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("read /nonexistent/wan9.yaml"));
}

#[test]
fn unknown_flags_suggest_the_closest_and_exit_2() {
    let out = wanctl(&["--config", "x.yaml", "--dryrun"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean --dry-run?"));
}

#[test]
fn version_and_help() {
    let v = wanctl(&["--version"]);
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("wanctl "));
    let h = wanctl(&["--help"]);
    assert!(String::from_utf8_lossy(&h.stdout).contains("check-config"));
}

#[test]
fn sim_runs_every_scenario_and_holds_the_invariants() {
    let out = wanctl(&["sim", "--seed", "7"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for name in ["step", "burst", "reflectors", "router", "lte"] {
        assert!(stdout.lines().any(|l| l.starts_with(name)), "{name} missing from\n{stdout}");
    }
}
