//! Config files on disk: the shipped examples in `config/` load cleanly, every
//! `tests/fixtures/config/bad-*.yaml` fails with exactly the text in its `.err` file, and the
//! original's example files (recreated in `tests/fixtures/config/original/`) still load.
//!
//! `UPDATE_GOLDEN=1 cargo test --test integration config_files` rewrites the `.err` files;
//! review the diff before committing it.

use std::fs;
use std::path::{Path, PathBuf};

use wanctl::config::{self, AnyConfig};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The environment the tests pretend to run in: only `ROUTER_PASSWORD` is set.
fn test_env(name: &str) -> Option<String> {
    (name == "ROUTER_PASSWORD").then(|| "test-password".to_string())
}

/// `*.yaml` files of `dir` whose name starts with `prefix`, sorted.
fn yaml_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with(prefix) && name.ends_with(".yaml")
        })
        .collect();
    files.sort();
    files
}

fn basename(p: &Path) -> String {
    p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string()
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn shipped_configs_are_valid_and_warning_free() {
    let files = yaml_files(&manifest_dir().join("config"), "");
    assert!(files.len() >= 4, "expected the example configs in config/, found {files:?}");
    for file in files {
        let name = basename(&file);
        match config::parse(&read(&file), &name, &test_env) {
            Ok(loaded) => {
                let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
                assert!(warnings.is_empty(), "{name}: unexpected warnings:\n{}", warnings.join("\n"));
                assert!(
                    !config::summary(&loaded.config).contains("test-password"),
                    "{name}: summary leaks the password"
                );
            }
            Err(e) => panic!("config/{name} must be valid:\n{e}"),
        }
    }
}

#[test]
fn shipped_configs_use_rest_and_time_constants() {
    for name in ["cable.yaml", "dsl.yaml", "fiber.yaml"] {
        let text = read(&manifest_dir().join("config").join(name));
        assert!(
            !text.contains("alpha_baseline") && !text.contains("alpha_load"),
            "{name}: use time constants"
        );
        let loaded = config::parse_autorate(&text, name, &test_env).expect("valid");
        assert_eq!(loaded.config.router.transport, config::Transport::Rest, "{name}");
        assert_eq!(
            loaded.config.router.password.0, "test-password",
            "{name}: password comes from ${{ROUTER_PASSWORD}}"
        );
    }
    for name in ["cable.yaml", "fiber.yaml"] {
        let text = read(&manifest_dir().join("config").join(name));
        let cfg = config::parse_autorate(&text, name, &test_env).expect("valid").config;
        let dl = &cfg.monitoring.download;
        assert!(dl.floor_green > dl.floor_red, "{name}: state-based floors");
    }
}

#[test]
fn bad_configs_fail_with_the_golden_text() {
    let dir = manifest_dir().join("tests/fixtures/config");
    let files = yaml_files(&dir, "bad-");
    assert!(files.len() >= 12, "expected at least 12 bad-*.yaml fixtures, found {}", files.len());
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut mismatches = Vec::new();
    for file in files {
        let name = basename(&file);
        let got = match config::parse(&read(&file), &name, &test_env) {
            Ok(_) => panic!("{name} must not load"),
            Err(e) => format!("{e}\n"),
        };
        let golden = file.with_extension("err");
        if update {
            fs::write(&golden, &got).unwrap_or_else(|e| panic!("write {}: {e}", golden.display()));
            continue;
        }
        let want = fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            mismatches.push(format!("{name}:\n--- want ({})\n{want}--- got\n{got}", basename(&golden)));
        }
    }
    assert!(mismatches.is_empty(), "golden mismatch (UPDATE_GOLDEN=1 rewrites):\n{}", mismatches.join("\n"));
}

#[test]
fn original_examples_still_load() {
    let dir = manifest_dir().join("tests/fixtures/config/original");
    let files = yaml_files(&dir, "");
    let names: Vec<String> = files.iter().map(|f| basename(f)).collect();
    assert_eq!(names, ["cable.yaml", "dsl.yaml", "fiber.yaml", "steering.yaml", "wan1.yaml", "wan2.yaml"]);
    for file in &files {
        let name = basename(file);
        let loaded = config::parse(&read(file), &name, &test_env).unwrap_or_else(|e| panic!("{e}"));
        let steering = name == "steering.yaml";
        assert_eq!(matches!(loaded.config, AnyConfig::Steering(_)), steering, "{name}: kind");
        for w in &loaded.warnings {
            // Unknown-key warnings would mean a key of the original is missing from the schema.
            assert!(!w.message.starts_with("unknown key"), "{name}: {w}");
        }
    }
}

#[test]
fn original_fiber_example_loads_with_a_baseline_warning() {
    let file = manifest_dir().join("tests/fixtures/config/original/fiber.yaml");
    let loaded =
        config::parse_autorate(&read(&file), "fiber.yaml", &test_env).expect("the fiber example loads");
    assert_eq!(loaded.config.monitoring.baseline_rtt_initial_ms, 8.0);
    assert_eq!(loaded.config.monitoring.thresholds.baseline_min_ms, 10.0);
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.path == "continuous_monitoring.baseline_rtt_initial"
                && w.message.contains("never update")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn original_wan1_example_validate_report() {
    let file = manifest_dir().join("tests/fixtures/config/original/wan1.yaml");
    let cfg = config::parse_autorate(&read(&file), "wan1.yaml", &test_env).expect("valid").config;
    let want = "\
Configuration valid: /etc/wanctl/wan1.yaml
  WAN: wan1
  Transport: rest
  Router: 192.168.1.1:admin
  Download: 25M - 500M
    Floors: GREEN=100M, YELLOW=75M, SOFT_RED=50M, RED=25M
  Upload: 10M - 50M
    Floors: GREEN=10M, YELLOW=10M, RED=10M
  Thresholds: GREEN<=15ms, SOFT_RED<=45ms, RED>80ms
  Ping hosts: ['1.1.1.1', '8.8.8.8', '9.9.9.9']
  Queue names: WAN-Download-1, WAN-Upload-1
";
    assert_eq!(config::validate_config_report("/etc/wanctl/wan1.yaml", &cfg), want);
}
