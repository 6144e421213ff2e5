//! `wanctl check-router` against the fake RouterOS on 127.0.0.1: a healthy router passes;
//! each seeded fault (REST off, refused, wrong password, no `write` policy, old RouterOS,
//! missing queue, non-CAKE type, `cake-bandwidth` set, `max-limit=0`, missing type,
//! missing mangle rule) is reported with its fix line and the right exit code; the router
//! sees only GETs; each run finishes in under 2 s. Every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::fake_router::{self, FakeRouterOs, Fault};

const DL: &str = fake_router::QUEUE_DOWNLOAD;
const UL: &str = fake_router::QUEUE_UPLOAD;

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wanctl-check-router-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

fn autorate(dir: &Path, router: &FakeRouterOs) -> PathBuf {
    let d = dir.display();
    let text = format!(
        r#"wan_name: wan1
router:
  host: "127.0.0.1"
  port: {port}
  user: "{user}"
  password: "${{WANCTL_TEST_PW}}"
  ssh_key: /nonexistent/key
  transport: rest
queues: {{download: {DL}, upload: {UL}}}
continuous_monitoring:
  enabled: true
  baseline_rtt_initial: 20
  ping_hosts: ["198.18.0.1"]
  download: {{ceiling_mbps: 100, step_up_mbps: 5, factor_down: 0.85, floor_mbps: 10}}
  upload: {{ceiling_mbps: 20, step_up_mbps: 1, factor_down: 0.9, floor_mbps: 5}}
  thresholds: {{target_bloat_ms: 15, warn_bloat_ms: 45, baseline_time_constant_sec: 60, load_time_constant_sec: 0.1}}
logging: {{main_log: "{d}/wan1.log", debug_log: "{d}/wan1_debug.log"}}
lock_file: "{d}/wan1.lock"
lock_timeout: 300
timeouts: {{ssh_command: 1, ping: 1}}
storage: {{db_path: ""}}
"#,
        port = router.port(),
        user = router.user(),
    );
    let path = dir.join("wan1.yaml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn steering(dir: &Path, router: &FakeRouterOs, comment: &str) -> PathBuf {
    let d = dir.display();
    let text = format!(
        r#"wan_name: steering
router:
  host: "127.0.0.1"
  port: {port}
  user: "{user}"
  password: "${{WANCTL_TEST_PW}}"
  ssh_key: /nonexistent/key
  transport: rest
topology: {{primary_wan: wan1, primary_wan_config: "{d}/wan1.yaml", alternate_wan: wan2}}
mangle_rule: {{comment: "{comment}"}}
cake_state_sources: {{primary: "{d}/wan1_state.json"}}
cake_queues: {{primary_download: "{DL}", primary_upload: "{UL}"}}
measurement: {{interval_seconds: 0.5, ping_host: "198.18.0.1", ping_count: 3}}
thresholds: {{bad_threshold_ms: 25, recovery_threshold_ms: 12, bad_samples: 3, good_samples: 5}}
mode: {{cake_aware: false, use_confidence_scoring: false}}
state: {{file: "{d}/steering_state.json", history_size: 240}}
logging: {{main_log: "{d}/steering.log", debug_log: "{d}/steering_debug.log"}}
lock_file: "{d}/steering.lock"
lock_timeout: 60
timeouts: {{ssh_command: 1, ping: 1}}
"#,
        port = router.port(),
        user = router.user(),
    );
    let path = dir.join("steering.yaml");
    std::fs::write(&path, text).expect("write config");
    path
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

fn check(router: &FakeRouterOs, files: &[&Path], json: bool) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wanctl"));
    cmd.arg("check-router").arg("--config").args(files);
    if json {
        cmd.arg("--json");
    }
    // The configured password is the fake's default; a test may change the router's.
    cmd.env("WANCTL_TEST_PW", fake_router::PASSWORD)
        .env("WANCTL_SSH", "/nonexistent/ssh")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let child = cmd.spawn().expect("spawn wanctl");
    let out: Output = wait_bounded(child, Duration::from_secs(30));
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    };
    for pw in [fake_router::PASSWORD.to_owned(), router.password()] {
        assert!(!run.stdout.contains(&pw), "password in output:\n{}", run.stdout);
        assert!(!run.stderr.contains(&pw), "password in stderr:\n{}", run.stderr);
    }
    run
}

/// Waits for `child` at most `limit`, killing it after that (never hangs the suite).
fn wait_bounded(mut child: std::process::Child, limit: Duration) -> Output {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("collect output");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("collect output");
    panic!("check-router did not finish within {limit:?}: {}", String::from_utf8_lossy(&out.stdout));
}

fn assert_read_only(router: &FakeRouterOs) {
    let writes: Vec<String> = router
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "check-router wrote: {writes:?}");
}

#[test]
fn check_router_healthy_router_passes_with_gets_only() {
    let router = FakeRouterOs::start();
    // The types the daemon writes exist as CAKE types (the fake knows cake-down-<wan>).
    let dir = tempdir("healthy");
    let cfg = autorate(&dir, &router);
    let run = check(&router, &[&cfg], false);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("RouterOS 7.16.2"), "{}", run.stdout);
    assert!(run.stdout.contains("all checks passed"), "{}", run.stdout);
    assert!(run.took < Duration::from_secs(2), "took {:?}", run.took);
    assert_read_only(&router);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each seeded fault: (name, set-up, expected check id, expected text in the fix line).
#[test]
fn check_router_each_fault_detected_with_fix_and_no_writes() {
    type Seed = fn(&FakeRouterOs);
    let cases: &[(&str, Seed, &str, &str)] = &[
        ("rest-off", |r| r.set_fault(Fault::Html403), "api", "/ip service set www"),
        ("refused", |r| r.set_fault(Fault::Refuse), "api", "/ip service set www"),
        (
            "wrong-password",
            |r| r.set_credentials(fake_router::USER, "other-secret"),
            "credentials",
            "/user set",
        ),
        ("no-write-policy", |r| r.set_group_policy("read,api,rest-api,!write"), "policy", "/user group set"),
        ("old-routeros", |r| r.set_version("6.49.10 (long-term)"), "version", "/system package update"),
        (
            "missing-queue",
            |r| {
                let _ = r.remove_queue(DL);
            },
            "queue",
            "/queue tree add name=\"WAN-Download-1\"",
        ),
        (
            "max-limit-zero",
            |r| {
                let _ = r.set_queue_max_limit(DL, 0);
            },
            "max-limit",
            "max-limit=100M",
        ),
        (
            "type-not-cake",
            |r| r.set_queue_type_field("cake-down-wan1", "kind", "fq-codel"),
            "queue-type",
            "kind=cake",
        ),
        (
            "cake-bandwidth",
            |r| r.set_queue_type_field("cake-up-wan1", "cake-bandwidth", "20000000"),
            "cake-bandwidth",
            "cake-bandwidth=0",
        ),
        (
            "type-missing",
            |r| r.remove_queue_type("cake-down-wan1"),
            "queue-type",
            "/queue type add name=cake-down-wan1",
        ),
        (
            "current-type-not-cake",
            |r| {
                r.add_queue_type("default-small");
                r.set_queue_field(DL, "queue", "default-small");
            },
            "queue-type",
            "queue=cake-down-wan1",
        ),
    ];
    let mut table = String::new();
    for (name, seed, check_id, fix) in cases {
        let router = FakeRouterOs::start();
        let dir = tempdir(name);
        let cfg = autorate(&dir, &router);
        seed(&router);
        let run = check(&router, &[&cfg], true);
        let v: serde_json::Value = serde_json::from_str(run.stdout.trim())
            .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {}\n{}", run.stdout, run.stderr));
        assert_eq!(run.code, 2, "{name}: {}", run.stdout);
        assert_eq!(v["exit"], 2, "{name}");
        let findings = v["configs"][0]["findings"].as_array().cloned().unwrap_or_default();
        let hit = findings
            .iter()
            .find(|f| f["severity"] == "error" && f["check"] == *check_id)
            .unwrap_or_else(|| panic!("{name}: no error {check_id}: {}", run.stdout));
        let fix_line = hit["fix"].as_str().unwrap_or("");
        assert!(fix_line.contains(fix), "{name}: fix {fix_line:?} lacks {fix:?}");
        assert!(run.took < Duration::from_secs(2), "{name}: took {:?}", run.took);
        router.set_fault(Fault::None);
        assert_read_only(&router);
        table.push_str(&format!(
            "{name:<22} {check_id:<15} {:>4} ms  fix: {fix_line}\n",
            run.took.as_millis()
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
    eprintln!("check-router seeded faults:\n{table}");
}

#[test]
fn check_router_steering_rule_and_disabled_queue_are_reported() {
    let router = FakeRouterOs::start();
    let dir = tempdir("steering");
    let wan = autorate(&dir, &router);
    let good = steering(&dir, &router, fake_router::STEERING_COMMENT);
    let run = check(&router, &[&wan, &good], false);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("mangle rule"), "{}", run.stdout);

    let bad = steering(&dir, &router, "ADAPTIVE: no such rule");
    let run = check(&router, &[&bad], false);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stdout.contains("fix: /ip firewall mangle set <rule number> comment=\"ADAPTIVE: no such rule\""),
        "{}",
        run.stdout
    );

    // A disabled queue is a warning: exit 1.
    router.set_queue_field(DL, "disabled", "true");
    let run = check(&router, &[&wan], false);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("/queue tree enable [find name=\"WAN-Download-1\"]"), "{}", run.stdout);
    assert_read_only(&router);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_router_argv0_alias_and_bad_config() {
    let router = FakeRouterOs::start();
    let dir = tempdir("alias");
    let cfg = autorate(&dir, &router);
    let link = dir.join("wanctl-check-router");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_wanctl"), &link).expect("symlink");
    let child = Command::new(&link)
        .arg("--config")
        .arg(&cfg)
        .env("WANCTL_TEST_PW", router.password())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn alias");
    let out = wait_bounded(child, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));

    let before = router.request_count();
    let broken = dir.join("broken.yaml");
    std::fs::write(&broken, "wan_name: [").expect("write");
    let run = check(&router, &[&broken], false);
    assert_eq!(run.code, 2);
    assert_eq!(router.request_count(), before, "a bad config must not reach the router");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Over the SSH console (the fake `ssh`): the same audit with the console's `print`s; a
/// `cake-bandwidth` set on the queue type is reported with its fix; only `print` lines are
/// sent (read-only).
#[test]
fn check_router_over_ssh_reads_the_console_and_never_writes() {
    let ssh = crate::support::fake_router::FakeSsh::new().expect("fake ssh");
    let dir = tempdir("ssh");
    let d = dir.display();
    let text = format!(
        r#"wan_name: wan1
router: {{host: "127.0.0.1", user: "admin", ssh_key: /nonexistent/key, transport: ssh}}
queues: {{download: {DL}, upload: {UL}}}
continuous_monitoring:
  enabled: true
  baseline_rtt_initial: 20
  ping_hosts: ["198.18.0.1"]
  download: {{ceiling_mbps: 100, step_up_mbps: 5, factor_down: 0.85, floor_mbps: 10}}
  upload: {{ceiling_mbps: 20, step_up_mbps: 1, factor_down: 0.9, floor_mbps: 5}}
  thresholds: {{target_bloat_ms: 15, warn_bloat_ms: 45, baseline_time_constant_sec: 60, load_time_constant_sec: 0.1}}
logging: {{main_log: "{d}/wan1.log", debug_log: "{d}/wan1_debug.log"}}
lock_file: "{d}/wan1.lock"
lock_timeout: 300
timeouts: {{ssh_command: 2, ping: 1}}
storage: {{db_path: ""}}
"#
    );
    let cfg = dir.join("wan1.yaml");
    std::fs::write(&cfg, text).expect("write config");
    let run = |ssh: &crate::support::fake_router::FakeSsh| {
        let started = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_wanctl"))
            .args(["check-router", "--config"])
            .arg(&cfg)
            .env("PATH", ssh.path_env())
            .envs(ssh.envs())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wanctl");
        let out = wait_bounded(child, Duration::from_secs(30));
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            started.elapsed(),
        )
    };
    let (code, out, took) = run(&ssh);
    println!("check-router over ssh ({took:?}):\n{out}");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("RouterOS 7.16.2"), "{out}");
    let lines = ssh.commands();
    assert!(!lines.is_empty(), "nothing reached the console");
    // Only `print`s and the session's `:put` end markers: nothing that changes the router.
    assert!(
        lines.iter().all(|l| l.contains(" print") || l.starts_with(":put \"WANCTL-END-")),
        "check-router wrote: {lines:?}"
    );
    // A second shaper inside the queue type: reported with its fix line, exit 2.
    ssh.update_state(|s| s["queue_type_props"]["cake-down-wan1"]["cake-bandwidth"] = "100.0Mbps".into());
    let (code, out, _) = run(&ssh);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("cake-bandwidth"), "{out}");
    assert!(out.contains("/queue type set"), "the fix line: {out}");
    let _ = std::fs::remove_dir_all(&dir);
}
