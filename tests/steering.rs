//! The steering daemon against the fake RouterOS, over REST and over SSH: congestion of the
//! primary enables the mangle rule (verified by reading it back), recovery disables it, and
//! the health endpoint answers throughout. Needs root; skips otherwise.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::health::http_get;
use crate::support::fake_router::{FakeRouterOs, FakeSsh};
use crate::support::netns::is_root;
use crate::support::reflector::Rig;

const PRIMARY: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
const REST_COMMENT: &str = "ADAPTIVE: steer LATENCY_SENSITIVE to WAN2";
const SSH_COMMENT: &str = "ADAPTIVE: Steer latency-sensitive to WAN2";

fn config(dir: &Path, router: &FakeRouterOs, transport: &str, comment: &str) -> String {
    let d = dir.display();
    format!(
        r#"schema_version: "1.0"
wan_name: "steering"
topology: {{primary_wan: "wan1", primary_wan_config: "{d}/wan1.yaml", alternate_wan: "wan2"}}
router:
  host: "127.0.0.1"
  user: "{user}"
  password: "${{ROUTER_PASSWORD}}"
  ssh_key: /nonexistent/key
  transport: {transport}
  port: {port}
mangle_rule: {{comment: "{comment}"}}
cake_state_sources: {{primary: "{d}/wan1_state.json"}}
cake_queues: {{primary_download: "WAN-Download-1", primary_upload: "WAN-Upload-1"}}
measurement: {{interval_seconds: 0.2, ping_host: "198.18.0.1", ping_count: 1}}
thresholds:
  bad_threshold_ms: 25
  recovery_threshold_ms: 12
  bad_samples: 3
  good_samples: 5
mode: {{cake_aware: false, use_confidence_scoring: false}}
state: {{file: "{d}/steering_state.json", history_size: 60}}
logging: {{main_log: "{d}/steering.log", debug_log: "{d}/steering_debug.log"}}
lock_file: "{d}/steering.lock"
lock_timeout: 300
timeouts: {{ssh_command: 2, ping: 1, ping_total: 2}}
health_check: {{enabled: true, host: 127.0.0.1, port: 9102}}
storage: {{db_path: ""}}
"#,
        user = router.user(),
        port = router.port(),
    )
}

struct Steering {
    rig: Rig,
    router: FakeRouterOs,
    ssh: FakeSsh,
    dir: PathBuf,
    child: Option<Child>,
}

impl Steering {
    fn start(name: &str, transport: &str, comment: &str) -> Steering {
        let rig = Rig::start(&[(PRIMARY, Some(Duration::from_millis(20)))]).expect("rig");
        let router = rig.ns().run_in(FakeRouterOs::start).expect("router");
        let ssh = FakeSsh::new().expect("fake ssh");
        let dir = std::env::temp_dir().join(format!("wanctl-steering-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        // The autorate daemon's state file, as the original writes it: baseline 20 ms.
        std::fs::write(
            dir.join("wan1_state.json"),
            r#"{"download":{"green_streak":0,"soft_red_streak":0,"red_streak":0,"current_rate":100000000},"upload":{"green_streak":0,"soft_red_streak":0,"red_streak":0,"current_rate":20000000},"ewma":{"baseline_rtt":20.0,"load_rtt":20.0},"last_applied":{"dl_rate":null,"ul_rate":null},"timestamp":"2026-01-26T06:13:10"}"#,
        )
        .expect("autorate state");
        std::fs::write(dir.join("steering.yaml"), config(&dir, &router, transport, comment)).expect("config");
        let child = rig
            .ns()
            .command(env!("CARGO_BIN_EXE_wanctl"))
            .args(["steering", "--config", dir.join("steering.yaml").to_str().expect("utf8"), "--debug"])
            .env("ROUTER_PASSWORD", router.password())
            .env("PATH", ssh.path_env())
            .envs(ssh.envs())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).expect("stderr"))
            .spawn()
            .expect("spawn steering");
        Steering { rig, router, ssh, dir, child: Some(child) }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// Waits for `f` while checking that /health answers at least every poll.
    fn wait_healthy_until(&self, limit: Duration, mut f: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            let h = http_get(&self.rig, 9102, "/health");
            if start.elapsed() > Duration::from_secs(2) {
                assert!(h.is_some(), "health endpoint did not answer\n{}", self.log());
            }
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn health(&self) -> serde_json::Value {
        http_get(&self.rig, 9102, "/health")
            .and_then(|(_, body)| serde_json::from_str(&body).ok())
            .unwrap_or_default()
    }

    fn stop(&mut self) -> i32 {
        let mut c = self.child.take().expect("running");
        kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM).expect("term");
        let start = Instant::now();
        loop {
            if let Some(s) = c.try_wait().expect("wait") {
                return s.code().unwrap_or(-1);
            }
            if start.elapsed() > Duration::from_secs(5) {
                let _ = c.kill();
                panic!("steering did not stop\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Steering {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(transport: &str, comment: &str, rule_disabled: &dyn Fn(&Steering) -> Option<bool>) {
    let mut s = Steering::start(transport, transport, comment);
    assert_eq!(rule_disabled(&s), Some(true), "the rule starts disabled");
    assert!(
        s.wait_healthy_until(Duration::from_secs(5), || s.health()["steering"]["state"] == "WAN1_GOOD"),
        "{}",
        s.log()
    );
    // Congest the primary: RTT 80 ms against a 20 ms baseline.
    s.rig.set_delay(PRIMARY, Some(Duration::from_millis(80)));
    assert!(
        s.wait_healthy_until(Duration::from_secs(8), || rule_disabled(&s) == Some(false)),
        "rule not enabled on the router\n{}",
        s.log()
    );
    assert!(s.wait_healthy_until(Duration::from_secs(3), || s.health()["steering"]["enabled"] == true));
    assert_eq!(s.health()["steering"]["state"], "WAN1_DEGRADED");
    // Recovery: the rule is disabled again.
    s.rig.set_delay(PRIMARY, Some(Duration::from_millis(20)));
    assert!(
        s.wait_healthy_until(Duration::from_secs(10), || rule_disabled(&s) == Some(true)),
        "rule not disabled after recovery\n{}",
        s.log()
    );
    assert!(s.wait_healthy_until(Duration::from_secs(3), || s.health()["steering"]["enabled"] == false));
    assert_eq!(s.stop(), 0);
    // Written at most once a second while running, and at shutdown.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.dir.join("steering_state.json")).expect("state file"))
            .expect("JSON");
    assert_eq!(state["current_state"], "WAN1_GOOD", "{state}\n{}", s.log());
    assert_eq!(state["transitions"].as_array().map(Vec::len), Some(2), "{state}");
    assert!(!s.log().contains(&s.router.password()), "password in the log");
}

#[test]
fn steering_over_rest_enables_and_disables_the_rule_and_verifies_it() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespace and TUN)");
        return;
    }
    run("rest", REST_COMMENT, &|s: &Steering| s.router.mangle_disabled(REST_COMMENT));
}

#[test]
fn steering_over_ssh_enables_and_disables_the_rule_and_verifies_it() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespace and TUN)");
        return;
    }
    run("ssh", SSH_COMMENT, &|s: &Steering| s.ssh.mangle_disabled(SSH_COMMENT));
}
