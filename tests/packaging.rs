//! Packaging: `make install` lays out the tree and the links, the systemd units carry the
//! directives the init contract needs (INTERFACES.md §10 plus issue 8), the init and cross
//! scripts parse, and `version_long()` has its documented shape. No network, no root: the
//! install goes into a temporary DESTDIR, using the test build of the binary.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// A scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("wanctl-packaging-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `make <args>` in the repository, isolated from an outer make (jobserver flags) and from
/// variables that would change the install.
fn make(args: &[&str]) -> Output {
    Command::new("make")
        .args(args)
        .current_dir(repo())
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .env_remove("DESTDIR")
        .env_remove("PREFIX")
        .env_remove("BINARY")
        .env_remove("TARGET")
        .output()
        .expect("run make (is it installed?)")
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn install_into(dest: &Path, prefix: &str) {
    let out = make(&[
        "-s",
        "install",
        &format!("DESTDIR={}", dest.display()),
        &format!("PREFIX={prefix}"),
        &format!("BINARY={}", env!("CARGO_BIN_EXE_wanctl")),
    ]);
    assert_success("make install", &out);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode()
        & 0o7777
}

/// The example configs shipped in config/: every one must be installed as `.example`.
fn config_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("config"))
        .expect("read config/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    names
}

#[test]
fn make_install_lays_out_binary_links_configs_units_and_scripts() {
    let tmp = TempDir::new("install");
    let dest = &tmp.0;
    install_into(dest, "/usr");

    let bin = dest.join("usr/bin/wanctl");
    assert_eq!(mode(&bin), 0o755, "binary mode");
    let want_len = std::fs::metadata(env!("CARGO_BIN_EXE_wanctl")).expect("test binary").len();
    assert_eq!(std::fs::metadata(&bin).expect("installed binary").len(), want_len, "binary copied whole");

    for link in ["wanctl-steering", "wanctl-history"] {
        let path = dest.join("usr/bin").join(link);
        let meta = std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{link}: {e}"));
        assert!(meta.file_type().is_symlink(), "{link} is a symlink");
        assert_eq!(
            std::fs::read_link(&path).expect("read link"),
            Path::new("wanctl"),
            "{link} → wanctl (relative)"
        );
    }

    let names = config_names();
    assert!(!names.is_empty(), "config/ has example configs");
    for name in &names {
        let example = dest.join("etc/wanctl").join(format!("{name}.example"));
        assert_eq!(mode(&example), 0o644, "{name}.example mode");
        assert_eq!(std::fs::read_to_string(&example).expect("example"), read(&format!("config/{name}")));
        assert!(!dest.join("etc/wanctl").join(name).exists(), "a real config {name} is never written");
    }

    for unit in ["wanctl@.service", "wanctl-steering.service"] {
        let path = dest.join("usr/lib/systemd/system").join(unit);
        assert_eq!(mode(&path), 0o644, "{unit} mode");
        assert_eq!(
            std::fs::read_to_string(&path).expect("unit"),
            read(&format!("init/{unit}")),
            "{unit} unchanged for PREFIX=/usr"
        );
    }
    assert_eq!(mode(&dest.join("etc/logrotate.d/wanctl")), 0o644);
    for script in ["wanctl.openrc", "wanctl.procd"] {
        assert_eq!(mode(&dest.join("usr/share/wanctl/init").join(script)), 0o755, "{script} mode");
    }

    // The installed binary runs, also through a link.
    for name in ["wanctl", "wanctl-steering"] {
        let out = Command::new(dest.join("usr/bin").join(name))
            .arg("--version")
            .output()
            .expect("run installed binary");
        assert_success(&format!("{name} --version"), &out);
        assert!(String::from_utf8_lossy(&out.stdout).contains("wanctl"), "{name} --version");
    }
}

#[test]
fn make_install_with_local_prefix_points_units_and_scripts_at_it() {
    let tmp = TempDir::new("prefix");
    let dest = &tmp.0;
    install_into(dest, "/usr/local");
    assert!(dest.join("usr/local/bin/wanctl").is_file());
    assert!(dest.join("etc/wanctl").is_dir(), "configs go to /etc, not PREFIX/etc");

    let unit =
        std::fs::read_to_string(dest.join("usr/local/lib/systemd/system/wanctl@.service")).expect("unit");
    assert!(unit.contains("\nExecStart=/usr/local/bin/wanctl --config /etc/wanctl/%i.yaml\n"), "{unit}");
    let steering = std::fs::read_to_string(dest.join("usr/local/lib/systemd/system/wanctl-steering.service"))
        .expect("unit");
    assert!(
        steering.contains("\nExecStart=/usr/local/bin/wanctl-steering --config /etc/wanctl/steering.yaml\n")
    );
    for file in [
        "usr/local/lib/systemd/system/wanctl@.service",
        "usr/local/lib/systemd/system/wanctl-steering.service",
        "usr/local/share/wanctl/init/wanctl.openrc",
        "usr/local/share/wanctl/init/wanctl.procd",
    ] {
        let text = std::fs::read_to_string(dest.join(file)).expect("installed file");
        assert!(!text.contains("/usr/bin/wanctl"), "{file} still names /usr/bin/wanctl");
    }
}

#[test]
fn make_install_defaults_to_usr_local_and_builds_without_binary() {
    let out = make(&["-n", "install"]);
    assert_success("make -n install", &out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("build --release"), "{text}");
    assert!(text.contains("cross/install.sh \"\" \"/usr/local\" \"target/release/wanctl\""), "{text}");
}

#[test]
fn install_script_refuses_a_relative_prefix() {
    let tmp = TempDir::new("relative");
    let out = Command::new("sh")
        .arg(repo().join("cross/install.sh"))
        .args([tmp.0.to_str().expect("utf-8"), "usr", env!("CARGO_BIN_EXE_wanctl")])
        .output()
        .expect("run install.sh");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PREFIX must be an absolute path"));
}

/// `(section, key, value)` for every directive of a unit file (comments and blanks skipped).
fn directives(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("not a directive: {line}"));
        out.push((section.clone(), k.to_owned(), v.to_owned()));
    }
    out
}

fn check_unit(file: &str, exec_start: &str) {
    let text = read(file);
    let all = directives(&text);
    let want = [
        ("Unit", "StartLimitBurst", "5"),
        ("Unit", "StartLimitIntervalSec", "300"),
        ("Service", "Type", "notify"),
        ("Service", "NotifyAccess", "main"),
        ("Service", "WatchdogSec", "30s"),
        ("Service", "ExecStart", exec_start),
        ("Service", "ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Service", "Restart", "on-failure"),
        ("Service", "RestartSec", "5s"),
        ("Service", "EnvironmentFile", "-/etc/wanctl/secrets"),
        ("Service", "User", "wanctl"),
        ("Service", "Group", "wanctl"),
        ("Service", "RuntimeDirectory", "wanctl"),
        ("Service", "AmbientCapabilities", "CAP_NET_RAW"),
        ("Service", "CapabilityBoundingSet", "CAP_NET_RAW"),
        ("Service", "NoNewPrivileges", "yes"),
        ("Service", "ProtectSystem", "strict"),
        ("Service", "ProtectHome", "yes"),
        ("Service", "PrivateTmp", "yes"),
        ("Service", "ReadWritePaths", "/var/lib/wanctl /var/log/wanctl /run/wanctl"),
        ("Install", "WantedBy", "multi-user.target"),
    ];
    for (section, key, value) in want {
        let found: Vec<&str> =
            all.iter().filter(|(s, k, _)| s == section && k == key).map(|(_, _, v)| v.as_str()).collect();
        assert_eq!(found, vec![value], "{file}: [{section}] {key}");
    }
    // CAP_NET_RAW is the only capability anywhere in the unit.
    for (_, key, value) in &all {
        for word in value.split_whitespace().filter(|w| w.contains("CAP_")) {
            assert_eq!(word, "CAP_NET_RAW", "{file}: {key}={value}");
        }
    }
    // Sandboxing that would break ICMP, SO_MARK or ssh must stay out.
    for (_, key, value) in &all {
        assert!(
            !matches!(key.as_str(), "PrivateNetwork" | "PrivateUsers" | "IPAddressDeny" | "ProcSubset"),
            "{file}: {key}={value} breaks the network side"
        );
        if key == "RestrictAddressFamilies" {
            for family in ["AF_UNIX", "AF_INET", "AF_INET6"] {
                assert!(value.split_whitespace().any(|f| f == family), "{file}: {key} lacks {family}");
            }
        }
    }
}

#[test]
fn systemd_units_carry_the_required_directives() {
    check_unit("init/wanctl@.service", "/usr/bin/wanctl --config /etc/wanctl/%i.yaml");
    check_unit("init/wanctl-steering.service", "/usr/bin/wanctl-steering --config /etc/wanctl/steering.yaml");
}

/// The interpreter named on a script's first line (`sh` for rc scripts run by a shell).
fn parse_check(rel: &str) {
    let text = read(rel);
    let first = text.lines().next().unwrap_or_default();
    let shell = if first.contains("bash") { "bash" } else { "sh" };
    let out = Command::new(shell).arg("-n").arg(repo().join(rel)).output().expect("run shell");
    assert_success(&format!("{shell} -n {rel}"), &out);
}

#[test]
fn every_init_and_cross_script_parses() {
    let mut scripts =
        vec!["init/wanctl.openrc".to_owned(), "init/wanctl.procd".to_owned(), ".ci/packaging".to_owned()];
    let mut cross: Vec<String> = std::fs::read_dir(repo().join("cross"))
        .expect("read cross/")
        .map(|e| format!("cross/{}", e.expect("entry").file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".sh"))
        .collect();
    cross.sort();
    assert!(cross.iter().any(|s| s == "cross/build.sh"), "{cross:?}");
    scripts.extend(cross);
    for script in &scripts {
        parse_check(script);
    }
}

#[test]
fn procd_script_respawns_logs_to_syslog_and_reloads_with_hup() {
    let text = read("init/wanctl.procd");
    assert!(text.starts_with("#!/bin/sh /etc/rc.common\n"));
    for needle in [
        "\nUSE_PROCD=1\n",
        "procd_set_param command \"$3\" --config \"$2\"",
        "procd_set_param respawn",
        "procd_set_param stdout 1",
        "procd_set_param stderr 1",
        "procd_set_param reload_signal HUP",
        "start_service()",
    ] {
        assert!(text.contains(needle), "init/wanctl.procd lacks {needle:?}");
    }
}

#[test]
fn openrc_script_supervises_one_instance_per_link() {
    let text = read("init/wanctl.openrc");
    assert!(text.starts_with("#!/sbin/openrc-run\n"));
    for needle in [
        "supervisor=supervise-daemon",
        "instance=${RC_SVCNAME#wanctl}",
        "cfgfile=${WANCTL_CONFIG:-/etc/wanctl/${instance}.yaml}",
        "command_args=\"--config $cfgfile",
        "capabilities=\"^cap_net_raw\"",
        "--signal HUP",
    ] {
        assert!(text.contains(needle), "init/wanctl.openrc lacks {needle:?}");
    }
}

#[test]
fn logrotate_policy_rotates_and_signals_instead_of_copytruncate() {
    let text = read("init/logrotate-wanctl");
    let body: Vec<&str> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert_eq!(body.first().copied(), Some("/var/log/wanctl/*.log {"));
    for directive in [
        "daily",
        "maxsize 200M",
        "rotate 7",
        "compress",
        "missingok",
        "notifempty",
        "postrotate",
        "endscript",
    ] {
        assert!(body.contains(&directive), "logrotate-wanctl lacks {directive}");
    }
    assert!(!body.contains(&"copytruncate"), "wanctl reopens on SIGHUP: no copytruncate");
    assert!(body.iter().any(|l| l.contains("HUP")), "postrotate sends SIGHUP");
}

#[test]
fn version_long_names_version_rev_target_and_features() {
    let v = wanctl::version_long();
    let rest = v.strip_prefix(&format!("wanctl {} (", wanctl::VERSION)).unwrap_or_else(|| panic!("{v}"));
    let (rev, rest) = rest.split_once(") ").unwrap_or_else(|| panic!("{v}"));
    assert!(
        rev == "unknown" || (rev.len() >= 4 && rev.bytes().all(|b| b.is_ascii_hexdigit())),
        "rev {rev:?} in {v}"
    );
    let (target, features) = rest.split_once(' ').unwrap_or_else(|| panic!("{v}"));
    assert_eq!(target, wanctl::TARGET);
    assert!(target.contains("-linux-"), "target triple {target:?}");
    let want = if cfg!(feature = "tls") { "features: tls" } else { "features: no-tls" };
    assert_eq!(features, want);
}
