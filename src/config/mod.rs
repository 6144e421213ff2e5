//! Configuration: the original's YAML files, parsed and validated into immutable typed
//! values. Pure: `&str` in, `Config` or every problem out; no file or environment access
//! (the caller reads the file and passes an environment lookup for `${VAR}` passwords).
//!
//! Pipeline: `raw` turns YAML text into a tree that remembers which keys were read (syntax
//! errors carry line and column); `validate` walks it once per config kind, collecting every
//! problem as a [`ConfigError`] with its dotted key path, and builds the typed config.
//! Keys nobody read become warnings with a "did you mean" suggestion.
//!
//! Units: rates are [`Bps`], RTT thresholds are float milliseconds (as in the original),
//! spans are [`Duration`]. EWMA smoothing is stored as a time constant; a raw `alpha_*` key
//! is converted with the original's fixed 50 ms cycle (`tau = 0.05 / alpha`) so that at the
//! nominal cadence the per-cycle alpha is bit-identical to the original's.

mod patch;
mod raw;
mod rules;
mod summary;
#[cfg(test)]
mod tests;
mod validate;

use std::fmt;
use std::time::Duration;

use crate::units::Bps;

pub use patch::patch_yaml;
pub use raw::{MAX_CONFIG_BYTES, MAX_FLOW_NESTING};
pub use rules::{
    check_comment, check_host, check_identifier, check_path, check_router_user, check_ssh_key, is_hostname,
    is_ipv4_literal, is_ipv6_literal,
};
pub use summary::{summary, validate_config_report};
pub use validate::{parse, parse_autorate, parse_steering};

/// The original's hard-coded cycle: `alpha = CYCLE / tau`.
pub const NOMINAL_CYCLE: Duration = Duration::from_millis(50);

/// A config file of either kind, told apart by its keys.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyConfig {
    /// An autorate (per-WAN) file: has `continuous_monitoring` / `queues`.
    Autorate(Box<AutorateConfig>),
    /// A steering file: has `topology` / `mangle_rule`.
    Steering(Box<SteeringConfig>),
}

/// A parsed config plus the non-fatal findings (unknown keys, odd values).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    /// The validated configuration.
    pub config: T,
    /// Warnings to log at startup (never fatal: old files must keep loading).
    pub warnings: Vec<ConfigWarning>,
}

/// One problem in a config file: the dotted key path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, e.g. `continuous_monitoring.download.factor_down` (list items as
    /// `ping_hosts[1]`); empty for the whole document, including YAML syntax errors, whose
    /// problem text carries the line and column.
    pub path: String,
    /// What was expected and what was found.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "{}: {}", self.path, self.problem)
        }
    }
}

/// Every problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The file name as given by the user (for messages only).
    pub file: String,
    /// All problems, in document order where possible.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(f, "{}: {} problem{}", self.file, n, if n == 1 { "" } else { "s" })?;
        for e in &self.errors {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

/// A non-fatal finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Dotted key path.
    pub path: String,
    /// The message, e.g. `unknown key (did you mean "factor_down"?)`.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Which transport is tried first (`router.transport`; the original ignored the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RouterOS REST API over HTTP(S).
    Rest,
    /// The system `ssh` binary running RouterOS CLI commands.
    Ssh,
}

/// URL scheme of the REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "Secret(<empty>)" } else { "Secret(<redacted>)" })
    }
}

/// `router.*`, shared by both daemons.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterConfig {
    /// Hostname or address (validated: no whitespace or shell/URL metacharacters).
    pub host: String,
    /// RouterOS user.
    pub user: String,
    /// SSH private key file (required by the original even for REST-only use).
    pub ssh_key: String,
    /// Primary transport; the other one is the fallback.
    pub transport: Transport,
    /// REST password after `${VAR}` expansion.
    pub password: Secret,
    /// REST port (default 443).
    pub port: u16,
    /// REST scheme: `router.scheme` if given, else HTTPS iff port 443 (the original's rule).
    pub scheme: Scheme,
    /// Verify the router's TLS certificate (default false, as the original).
    pub verify_ssl: bool,
    /// Extra CA bundle for verification (`router.ca_file`, new).
    pub ca_file: Option<String>,
    /// Pinned SHA-256 of the router's certificate, 32 bytes (`router.cert_sha256`, new).
    pub cert_sha256: Option<[u8; 32]>,
    /// How often a failed primary transport is re-probed while the fallback is in use
    /// (`router.failback_interval_sec`, new, default 30 s).
    pub failback_interval: Duration,
}

/// `queues.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queues {
    /// Download queue-tree name (identifier-validated).
    pub download: String,
    /// Upload queue-tree name (identifier-validated).
    pub upload: String,
}

/// Limits and steps of one direction (`continuous_monitoring.download` / `.upload`).
#[derive(Debug, Clone, PartialEq)]
pub struct DirectionConfig {
    /// Maximum rate.
    pub ceiling: Bps,
    /// Additive increase per sustained-GREEN cycle.
    pub step_up: Bps,
    /// RED multiplier.
    pub factor_down: f64,
    /// YELLOW multiplier (DL default 0.96, UL 0.94).
    pub factor_down_yellow: f64,
    /// Consecutive GREEN cycles before each step-up (default 5).
    pub green_required: u32,
    /// Adapt this direction (default true); `false` keeps it at its ceiling, still measured
    /// and reported (new key `adaptive`, e.g. a fixed download cap on satellite).
    pub adaptive: bool,
    /// Per-state floors; with legacy `floor_mbps` all four are equal. Upload's soft-red
    /// floor equals its yellow floor.
    pub floor_green: Bps,
    /// Floor while YELLOW.
    pub floor_yellow: Bps,
    /// Floor while SOFT_RED (download only).
    pub floor_soft_red: Bps,
    /// Floor while RED.
    pub floor_red: Bps,
}

/// `continuous_monitoring.thresholds`.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// GREEN→YELLOW delta (ms).
    pub target_bloat_ms: f64,
    /// DL YELLOW→SOFT_RED, UL YELLOW→RED delta (ms).
    pub warn_bloat_ms: f64,
    /// DL SOFT_RED→RED delta (ms, default 80).
    pub hard_red_bloat_ms: f64,
    /// Baseline EWMA time constant.
    pub baseline_tau: Duration,
    /// Load EWMA time constant.
    pub load_tau: Duration,
    /// Baseline updates only while `load - baseline` is below this (ms, default 3.0).
    pub baseline_update_threshold_ms: f64,
    /// Load jump per cycle that counts as a spike (ms, default 15.0).
    pub accel_threshold_ms: f64,
    /// Inclusive bounds a baseline candidate must fall in (ms, default 10..60).
    pub baseline_min_ms: f64,
    /// Upper bound, see `baseline_min_ms`.
    pub baseline_max_ms: f64,
    /// `dwell_cycles` (upstream 1.24): cycles above `target_bloat_ms` before GREEN→YELLOW
    /// is confirmed (0 or 1: at once, the 1.7/1.8 behaviour and our default).
    pub dwell_cycles: u32,
    /// `deadband_ms` (upstream 1.24): YELLOW→GREEN needs the delta below `target −
    /// min(deadband, target/2)` (0: at `target`, our default).
    pub deadband_ms: f64,
    /// `accel_confirm_cycles` (upstream 1.24): consecutive spike cycles before a spike
    /// forces RED (1: the first, our default).
    pub accel_confirm_cycles: u32,
    /// `continuous_monitoring.upload.target_bloat_ms` (upstream): the upload's own
    /// GREEN→YELLOW threshold; `None` uses `target_bloat_ms`.
    pub upload_target_bloat_ms: Option<f64>,
    /// `continuous_monitoring.upload.warn_bloat_ms` (upstream): the upload's own
    /// YELLOW→RED threshold; `None` uses `warn_bloat_ms`.
    pub upload_warn_bloat_ms: Option<f64>,
}

/// What to do when every ICMP probe of a cycle failed but the path still works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackMode {
    /// Hold everything (no EWMA, rate or router change).
    Freeze,
    /// Feed the current load EWMA as the measurement.
    UseLastRtt,
    /// First cycle uses the last RTT, then freeze, then fail after `max_fallback_cycles`.
    GracefulDegradation,
}

/// `continuous_monitoring.fallback_checks`.
#[derive(Debug, Clone, PartialEq)]
pub struct FallbackChecks {
    /// Master switch (default true).
    pub enabled: bool,
    /// Ping the gateway (default true).
    pub check_gateway: bool,
    /// TCP handshake probes (default true).
    pub check_tcp: bool,
    /// Gateway address (default the original's site-specific `10.10.110.1`).
    pub gateway_ip: String,
    /// `[host, port]` targets for TCP handshake RTT.
    pub tcp_targets: Vec<(String, u16)>,
    /// Behaviour without a TCP RTT.
    pub mode: FallbackMode,
    /// Graceful mode: cycles before giving up (default 3).
    pub max_fallback_cycles: u32,
}

/// `continuous_monitoring.probe_binding` (new): how this WAN's probes leave the box, so
/// several WANs can be probed from one host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProbeBinding {
    /// SO_BINDTODEVICE interface name.
    pub device: Option<String>,
    /// Source address (IP literal) to bind.
    pub source: Option<String>,
    /// SO_MARK fwmark for policy routing.
    pub fwmark: Option<u32>,
}

/// `continuous_monitoring.load_control` (new): the router's queue counters as a second
/// signal (see `engine::load` and docs/CONFIGURATION.md).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadControl {
    /// Read the counters and use them (default true). `false` restores the RTT-only law.
    pub enabled: bool,
    /// How often the counters are read (default 0.5 s: 2 REST requests a second).
    pub interval: Duration,
    /// A direction carries load when its achieved rate is at least this share of its
    /// shaper rate (default 0.5): only such a direction is cut for RTT congestion.
    pub loaded_ratio: f64,
    /// A direction is saturated when its achieved rate is at least this share of its
    /// shaper rate (default 0.8): only a saturated direction is raised.
    pub saturated_ratio: f64,
    /// Counters older than this are stale and the RTT-only law takes over (default the
    /// larger of 4 read intervals and 2 s).
    pub stale_after: Duration,
}

impl Default for LoadControl {
    fn default() -> LoadControl {
        LoadControl {
            enabled: true,
            interval: Duration::from_millis(500),
            loaded_ratio: 0.5,
            saturated_ratio: 0.8,
            stale_after: Duration::from_secs(2),
        }
    }
}

impl LoadControl {
    /// The RTT-only law of the original (counters never read).
    pub fn off() -> LoadControl {
        LoadControl { enabled: false, ..LoadControl::default() }
    }
}

/// `continuous_monitoring.reflectors` (new): the reflector pool (`engine::prober`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReflectorPool {
    /// The pool (hosts, IPv4 and IPv6 together); `None` = `ping_hosts`.
    pub pool: Option<Vec<String>>,
    /// Reflectors probed at once; `None` = min(3, pool size).
    pub active: Option<usize>,
    /// Healthy active reflectors a decision needs; `None` = a majority of `active`.
    pub quorum: Option<usize>,
    /// An active reflector whose RTT sits this far (ms) above the others' (each against its
    /// own baseline) is misbehaving (default 15).
    pub outlier_ms: f64,
    /// ...and is replaced after misbehaving this long (default 30 s).
    pub outlier_after: Duration,
    /// An active reflector that lost at least half its probes over this window while
    /// others answered is replaced (default 2 s).
    pub dead_after: Duration,
    /// Probe less while both queues are idle (needs the queue counters; default true).
    pub idle_backoff: bool,
    /// Rounds per second while idle (default 2).
    pub idle_rate_hz: f64,
    /// Idle this long before backing off (default 30 s).
    pub idle_after: Duration,
}

impl Default for ReflectorPool {
    fn default() -> ReflectorPool {
        ReflectorPool {
            pool: None,
            active: None,
            quorum: None,
            outlier_ms: 15.0,
            outlier_after: Duration::from_secs(30),
            dead_after: Duration::from_secs(2),
            idle_backoff: true,
            idle_rate_hz: 2.0,
            idle_after: Duration::from_secs(30),
        }
    }
}

/// The default long-run write budget (the original's limiter: 10 writes a minute).
pub const DEFAULT_WRITE_BUDGET_PER_MIN: f64 = 10.0;

/// `continuous_monitoring`.
#[derive(Debug, Clone, PartialEq)]
pub struct Monitoring {
    /// Starting baseline and load EWMA (ms).
    pub baseline_rtt_initial_ms: f64,
    /// Reflectors (validated as IP literals or hostnames).
    pub ping_hosts: Vec<String>,
    /// Median of the first three hosts (effective only with ≥ 3 hosts).
    pub use_median_of_three: bool,
    /// Download limits.
    pub download: DirectionConfig,
    /// Upload limits.
    pub upload: DirectionConfig,
    /// Zone thresholds and smoothing.
    pub thresholds: Thresholds,
    /// ICMP-failure fallback.
    pub fallback: FallbackChecks,
    /// Per-WAN probe binding (new; default: none).
    pub binding: ProbeBinding,
    /// Queue counters as a second signal (new; default on).
    pub load: LoadControl,
    /// Long-run router writes per minute (new, `write_budget_per_minute`; default 10).
    pub write_budget_per_min: f64,
    /// The reflector pool (new; default: `ping_hosts`, 3 active).
    pub reflectors: ReflectorPool,
}

impl Monitoring {
    /// The reflector pool: `reflectors.pool`, else `ping_hosts`.
    pub fn pool_hosts(&self) -> &[String] {
        self.reflectors.pool.as_deref().unwrap_or(&self.ping_hosts)
    }
}

/// An HTTP endpoint (`health_check.*`, `metrics.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Serve it at all.
    pub enabled: bool,
    /// Bind address.
    pub host: String,
    /// Bind port.
    pub port: u16,
}

/// `storage.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    /// SQLite history path; `None` disables history (`""` or null in YAML).
    pub db_path: Option<String>,
    /// Retention in days (default 7).
    pub retention_days: u32,
    /// Size cap of the database file in MiB (`storage.max_size_mb`, new, default 64).
    pub max_size_mb: u32,
    /// How often buffered rows are written in one transaction (`storage.flush_interval_sec`,
    /// new, default 5 s).
    pub flush_interval: Duration,
}

impl Default for Storage {
    /// The original's defaults: history on at `/var/lib/wanctl/metrics.db`, 7 days; plus the
    /// new size cap (64 MiB) and flush interval (5 s).
    fn default() -> Storage {
        Storage {
            db_path: Some("/var/lib/wanctl/metrics.db".into()),
            retention_days: 7,
            max_size_mb: 64,
            flush_interval: Duration::from_secs(5),
        }
    }
}

/// `logging.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    /// INFO+ log file.
    pub main_log: String,
    /// DEBUG log file (with `--debug`).
    pub debug_log: String,
}

/// One autorate (per-WAN) file.
#[derive(Debug, Clone, PartialEq)]
pub struct AutorateConfig {
    /// `schema_version` (informational).
    pub schema_version: String,
    /// WAN name (identifier-validated).
    pub wan_name: String,
    /// Router access.
    pub router: RouterConfig,
    /// Queue-tree names.
    pub queues: Queues,
    /// The control loop's settings.
    pub monitoring: Monitoring,
    /// Log files.
    pub logging: Logging,
    /// Lock file path; the state file path derives from it.
    pub lock_file: String,
    /// Staleness age of PID-less legacy lock files.
    pub lock_timeout: Duration,
    /// Per-command router timeout (`timeouts.ssh_command`, default 15 s).
    pub router_timeout: Duration,
    /// Per-probe timeout (`timeouts.ping`, default 1 s).
    pub ping_timeout: Duration,
    /// Webhook alerts.
    pub alerting: AlertingConfig,
    /// Health responder.
    pub health: Endpoint,
    /// Prometheus endpoint.
    pub metrics: Endpoint,
    /// History database.
    pub storage: Storage,
    /// The `state_file` key, which the original ignored (see docs/COMPAT.md).
    pub state_file_key: Option<String>,
}

impl AutorateConfig {
    /// The state file path: lock file directory + `<lock stem>_state.json`, as the original.
    pub fn state_file_path(&self) -> String {
        derived_state_path(&self.lock_file)
    }

    /// CAKE queue-type names written with every rate change (`cake-down-<wan lower>`).
    pub fn cake_queue_types(&self) -> (String, String) {
        let wan = self.wan_name.to_lowercase();
        (format!("cake-down-{wan}"), format!("cake-up-{wan}"))
    }
}

/// `/run/wanctl/wan1.lock` → `/run/wanctl/wan1_state.json`.
pub fn derived_state_path(lock_file: &str) -> String {
    let (dir, name) = match lock_file.rfind('/') {
        Some(i) => (&lock_file[..=i], &lock_file[i + 1..]),
        None => ("", lock_file),
    };
    let stem = match name.rfind('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    };
    format!("{dir}{stem}_state.json")
}

/// Steering `thresholds`.
#[derive(Debug, Clone, PartialEq)]
pub struct SteeringThresholds {
    /// GREEN below this EWMA delta (ms, default 5).
    pub green_rtt_ms: f64,
    /// YELLOW above this (ms, default 15).
    pub yellow_rtt_ms: f64,
    /// RED above this with drops and queue (ms, default 15).
    pub red_rtt_ms: f64,
    /// Drops needed for RED (default 1).
    pub min_drops_red: u64,
    /// Queue depth for YELLOW (packets, default 10).
    pub min_queue_yellow: u64,
    /// Queue depth for RED (packets, default 50).
    pub min_queue_red: u64,
    /// RED samples before steering (default 2).
    pub red_samples_required: u32,
    /// GREEN samples before un-steering (default 15).
    pub green_samples_required: u32,
    /// RTT delta EWMA alpha (default 0.3).
    pub rtt_ewma_alpha: f64,
    /// Queue EWMA alpha (default 0.4).
    pub queue_ewma_alpha: f64,
    /// Legacy mode: bad threshold (ms, default 25).
    pub bad_threshold_ms: f64,
    /// Legacy mode: recovery threshold (ms, default 12).
    pub recovery_threshold_ms: f64,
    /// Legacy mode: bad samples (default 8).
    pub bad_samples: u32,
    /// Legacy mode: good samples (default 15).
    pub good_samples: u32,
    /// Accepted baseline range read from the autorate state file (ms, default 10..60).
    pub baseline_min_ms: f64,
    /// Upper bound, see `baseline_min_ms`.
    pub baseline_max_ms: f64,
    /// wanctl addition (issue 12): RED on the delay alone when the RTT delta EWMA exceeds
    /// this (ms, default 120, upstream's "severe" delta). A collapse below the autorate
    /// floor queues upstream of CAKE, which then shows no drops and no backlog.
    pub severe_rtt_ms: f64,
}

/// `alerting` (newer upstream 1.15+): webhook alerts (engine::alerts, shell::webhook).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertingConfig {
    /// `enabled` and a usable `webhook_url`.
    pub enabled: bool,
    /// Where to POST; `None` when off. Its `Display` hides the path (the secret).
    pub url: Option<crate::engine::alerts::WebhookUrl>,
    /// Body format (`format`: auto picks Discord for discord.com).
    pub format: crate::engine::alerts::Format,
    /// Rules, cooldowns, sustain times, flapping.
    pub settings: crate::engine::alerts::AlertSettings,
    /// One attempt's deadline (`timeout_sec`, default 5 s).
    pub timeout: Duration,
    /// Alerts waiting at most (`max_queue`, default 32).
    pub max_queue: usize,
    /// Attempts per alert (`max_attempts`, default 4).
    pub max_attempts: u32,
    /// Verify the receiver's certificate (`verify_ssl`, default true).
    pub verify_ssl: bool,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            enabled: false,
            url: None,
            format: crate::engine::alerts::Format::Json,
            settings: crate::engine::alerts::AlertSettings::defaults(
                Duration::from_secs(300),
                Duration::from_secs(60),
            ),
            timeout: Duration::from_secs(5),
            max_queue: 32,
            max_attempts: 4,
            verify_ssl: true,
        }
    }
}

/// `wan_state` (newer upstream 1.11+): the autorate daemon's zone as a steering signal.
#[derive(Debug, Clone, PartialEq)]
pub struct WanStateConfig {
    /// Use the zone (default false, as upstream).
    pub enabled: bool,
    /// Confidence points for a RED zone (default 25; below `steer_threshold` unless
    /// `wan_override`); SOFT_RED gets 48 % of it, as upstream.
    pub red_weight: u32,
    /// A state file older than this is ignored (default 5 s).
    pub staleness: Duration,
    /// The zone is ignored this long after start (default 30 s).
    pub grace_period: Duration,
    /// A RED zone alone is a RED sample (default false).
    pub wan_override: bool,
}

impl Default for WanStateConfig {
    fn default() -> Self {
        WanStateConfig {
            enabled: false,
            red_weight: 25,
            staleness: Duration::from_secs(5),
            grace_period: Duration::from_secs(30),
            wan_override: false,
        }
    }
}

/// Steering `confidence` (only with `mode.use_confidence_scoring`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfidenceConfig {
    /// Score at which to steer (0–100, default 55).
    pub steer_threshold: f64,
    /// Score below which to recover (0–100, < steer, default 20).
    pub recovery_threshold: f64,
    /// Degrade sustain timer.
    pub sustain_duration: Duration,
    /// Recovery sustain timer.
    pub recovery_sustain: Duration,
    /// Cooldown after enabling.
    pub hold_down_duration: Duration,
    /// Flap detection on/off.
    pub flap_detection_enabled: bool,
    /// Flap window.
    pub flap_window: Duration,
    /// Toggles in the window that count as flapping.
    pub max_toggles: u32,
    /// How long the penalty lasts.
    pub penalty_duration: Duration,
    /// Added to the steer threshold while penalised.
    pub penalty_threshold_add: f64,
    /// Log decisions only (default true).
    pub dry_run: bool,
}

impl Default for ConfidenceConfig {
    /// The `confidence` block's documented defaults (CONFIG.md §4.2).
    fn default() -> ConfidenceConfig {
        ConfidenceConfig {
            steer_threshold: 55.0,
            recovery_threshold: 20.0,
            sustain_duration: Duration::from_secs(2),
            recovery_sustain: Duration::from_secs(3),
            hold_down_duration: Duration::from_secs(30),
            flap_detection_enabled: true,
            flap_window: Duration::from_secs(300),
            max_toggles: 4,
            penalty_duration: Duration::from_secs(60),
            penalty_threshold_add: 15.0,
            dry_run: true,
        }
    }
}

/// One steering file.
#[derive(Debug, Clone, PartialEq)]
pub struct SteeringConfig {
    /// `schema_version`.
    pub schema_version: String,
    /// `wan_name` (identifier).
    pub wan_name: String,
    /// Router access.
    pub router: RouterConfig,
    /// `topology.primary_wan`.
    pub primary_wan: String,
    /// `topology.primary_wan_config` (loaded, unused, as the original).
    pub primary_wan_config: String,
    /// `topology.alternate_wan`.
    pub alternate_wan: String,
    /// `mangle_rule.comment` (comment-validated).
    pub mangle_comment: String,
    /// `measurement.interval_seconds`.
    pub interval: Duration,
    /// `measurement.ping_host` (validated).
    pub ping_host: String,
    /// `measurement.ping_count`.
    pub ping_count: u32,
    /// `state.file`.
    pub state_file: String,
    /// `state.history_size`.
    pub history_size: u32,
    /// Log files.
    pub logging: Logging,
    /// `logging.log_cake_stats` (loaded, unused).
    pub log_cake_stats: bool,
    /// Lock file.
    pub lock_file: String,
    /// Legacy lock staleness.
    pub lock_timeout: Duration,
    /// Thresholds.
    pub thresholds: SteeringThresholds,
    /// Autorate state file to read the baseline from.
    pub primary_state_file: String,
    /// Primary download queue whose CAKE stats are read.
    pub primary_download_queue: String,
    /// Primary upload queue (validated, unused).
    pub primary_upload_queue: String,
    /// `mode.cake_aware` (default true).
    pub cake_aware: bool,
    /// `mode.enable_yellow_state` (loaded, unused).
    pub enable_yellow_state: bool,
    /// Present iff `mode.use_confidence_scoring`.
    pub confidence: Option<ConfidenceConfig>,
    /// Router command timeout (default 30 s).
    pub router_timeout: Duration,
    /// Ping timeout (default 2 s): a reply counts until then, whatever cycle it lands in.
    pub ping_timeout: Duration,
    /// Whole ping run timeout (default 10 s).
    pub ping_total_timeout: Duration,
    /// WAN awareness (`wan_state` block).
    pub wan_state: WanStateConfig,
    /// Webhook alerts.
    pub alerting: AlertingConfig,
    /// Metrics (the original never served them; we do on this endpoint when enabled).
    pub metrics: Endpoint,
    /// Health responder (fixed 127.0.0.1:9102 in the original).
    pub health: Endpoint,
    /// History database.
    pub storage: Storage,
}

impl SteeringConfig {
    /// `<PRIMARY>_GOOD`.
    pub fn good_state_name(&self) -> String {
        format!("{}_GOOD", self.primary_wan.to_uppercase())
    }

    /// `<PRIMARY>_DEGRADED`.
    pub fn degraded_state_name(&self) -> String {
        format!("{}_DEGRADED", self.primary_wan.to_uppercase())
    }
}
