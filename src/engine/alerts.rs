//! Alerts (issue 14; the newer upstream's `alerting` block, 1.15+). Pure: conditions and
//! `now` in, alert documents and delivery attempts out; the shell's webhook client
//! (`shell::webhook`) moves the bytes.
//!
//! * [`Alerter`]: one per WAN (and one for the steering daemon). Each tick the shell says
//!   which conditions hold ([`Alerter::observe`]); a condition that has held for its rule's
//!   `sustained_sec` fires once, then not again before `cooldown_sec`; when it clears after
//!   firing, its recovery alert goes out (where the kind has one). Zone transitions feed the
//!   flapping detector ([`Alerter::transition`]).
//! * [`Delivery`]: a bounded queue (the oldest alert is dropped and counted when full), one
//!   attempt in flight, retries of transient failures (timeouts, connection errors, 5xx,
//!   429) with exponential back-off (1 s, 2 s, 4 s … at most 60 s) up to `max_attempts`;
//!   a 4xx other than 408/429 is final.
//! * [`render`]: the JSON body: a generic document (with `content` and `text` lines so chat
//!   webhooks that read those show something) or a Discord embed.

use std::collections::VecDeque;
use std::time::Duration;

use crate::engine::health::Json;
use crate::time::Instant;

/// How bad an alert is (upstream's severities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Informational.
    Info,
    /// A condition cleared.
    Recovery,
    /// Worth a look.
    Warning,
    /// Service affected.
    Critical,
}

impl Severity {
    /// Upstream's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Recovery => "recovery",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// From the config's spelling.
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "info" => Some(Severity::Info),
            "recovery" => Some(Severity::Recovery),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    fn color(self) -> u32 {
        match self {
            Severity::Info => 0x3498DB,
            Severity::Recovery => 0x2ECC71,
            Severity::Warning => 0xF39C12,
            Severity::Critical => 0xE74C3C,
        }
    }
}

/// The conditions wanctl alerts on. Names follow upstream where it has the same alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// Download zone SOFT_RED or RED.
    CongestionDl,
    /// Upload zone RED.
    CongestionUl,
    /// Download rate at its lowest floor.
    FloorDl,
    /// Upload rate at its floor.
    FloorUl,
    /// The router cannot be reached.
    RouterUnreachable,
    /// Fewer healthy reflectors than the quorum.
    QuorumLost,
    /// Download zone changing often.
    FlappingDl,
    /// Upload zone changing often.
    FlappingUl,
    /// Steering sends latency-sensitive traffic to the alternate WAN.
    SteeringActivated,
    /// The steering flap brake is engaged.
    SteeringFlapping,
}

/// Every kind, in rule-table order.
pub const ALL_KINDS: [AlertKind; 10] = [
    AlertKind::CongestionDl,
    AlertKind::CongestionUl,
    AlertKind::FloorDl,
    AlertKind::FloorUl,
    AlertKind::RouterUnreachable,
    AlertKind::QuorumLost,
    AlertKind::FlappingDl,
    AlertKind::FlappingUl,
    AlertKind::SteeringActivated,
    AlertKind::SteeringFlapping,
];

impl AlertKind {
    /// The alert type (also the `alerting.rules` key).
    pub fn name(self) -> &'static str {
        match self {
            AlertKind::CongestionDl => "congestion_sustained_dl",
            AlertKind::CongestionUl => "congestion_sustained_ul",
            AlertKind::FloorDl => "rate_at_floor_dl",
            AlertKind::FloorUl => "rate_at_floor_ul",
            AlertKind::RouterUnreachable => "router_unreachable",
            AlertKind::QuorumLost => "reflector_quorum_lost",
            AlertKind::FlappingDl => "flapping_dl",
            AlertKind::FlappingUl => "flapping_ul",
            AlertKind::SteeringActivated => "steering_activated",
            AlertKind::SteeringFlapping => "steering_flapping",
        }
    }

    /// The alert sent when the condition clears after firing, if any.
    pub fn recovery_name(self) -> Option<&'static str> {
        match self {
            AlertKind::CongestionDl => Some("congestion_recovered_dl"),
            AlertKind::CongestionUl => Some("congestion_recovered_ul"),
            AlertKind::FloorDl => Some("rate_off_floor_dl"),
            AlertKind::FloorUl => Some("rate_off_floor_ul"),
            AlertKind::RouterUnreachable => Some("router_recovered"),
            AlertKind::QuorumLost => Some("reflector_quorum_recovered"),
            AlertKind::SteeringActivated => Some("steering_recovered"),
            AlertKind::FlappingDl | AlertKind::FlappingUl | AlertKind::SteeringFlapping => None,
        }
    }

    /// Default severity.
    pub fn default_severity(self) -> Severity {
        match self {
            AlertKind::CongestionDl | AlertKind::CongestionUl | AlertKind::RouterUnreachable => {
                Severity::Critical
            }
            AlertKind::SteeringActivated => Severity::Warning,
            _ => Severity::Warning,
        }
    }

    /// Default sustain: edge-like conditions fire at once, level conditions after the
    /// block's `default_sustained_sec`.
    pub fn fires_at_once(self) -> bool {
        matches!(
            self,
            AlertKind::SteeringActivated
                | AlertKind::SteeringFlapping
                | AlertKind::FlappingDl
                | AlertKind::FlappingUl
        )
    }

    fn index(self) -> usize {
        ALL_KINDS.iter().position(|&k| k == self).unwrap_or(0)
    }
}

/// One rule (`alerting.rules.<type>`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertRule {
    /// Send this kind.
    pub enabled: bool,
    /// Least time between two alerts of this kind.
    pub cooldown: Duration,
    /// How long the condition must hold.
    pub sustain: Duration,
    /// Severity sent.
    pub severity: Severity,
}

/// The rules of every kind and the flapping detector's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// Indexed like [`ALL_KINDS`].
    pub rules: [AlertRule; 10],
    /// Zone changes within `flap_window` that count as flapping.
    pub flap_transitions: u32,
    /// See `flap_transitions`.
    pub flap_window: Duration,
}

impl AlertSettings {
    /// Upstream's defaults: every rule on, 300 s cooldown, 60 s sustain (at once for the
    /// edge-like kinds), 6 zone changes in 60 s is flapping.
    pub fn defaults(cooldown: Duration, sustain: Duration) -> AlertSettings {
        AlertSettings {
            rules: ALL_KINDS.map(|k| AlertRule {
                enabled: true,
                cooldown,
                sustain: if k.fires_at_once() { Duration::ZERO } else { sustain },
                severity: k.default_severity(),
            }),
            flap_transitions: 6,
            flap_window: Duration::from_secs(60),
        }
    }

    /// The rule of `kind`.
    pub fn rule(&self, kind: AlertKind) -> &AlertRule {
        &self.rules[kind.index()]
    }

    /// The rule of `kind`, to change.
    pub fn rule_mut(&mut self, kind: AlertKind) -> &mut AlertRule {
        &mut self.rules[kind.index()]
    }
}

/// One alert, ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Alert type (`congestion_sustained_dl`, `router_recovered`, …).
    pub name: &'static str,
    /// Severity.
    pub severity: Severity,
    /// WAN (or `steering`).
    pub wan: String,
    /// Unix seconds when it fired.
    pub unix_ts: i64,
    /// One line for people.
    pub summary: String,
    /// Figures (`key`, value as text).
    pub details: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Cond {
    since: Option<Instant>,
    fired: bool,
    last_fired: Option<Instant>,
}

/// The conditions of one WAN (see the module docs).
#[derive(Debug, Clone)]
pub struct Alerter {
    settings: AlertSettings,
    wan: String,
    conds: [Cond; 10],
    flaps: [VecDeque<Instant>; 2],
    out: VecDeque<Alert>,
}

impl Alerter {
    /// An alerter for `wan`.
    pub fn new(settings: AlertSettings, wan: &str) -> Alerter {
        Alerter {
            settings,
            wan: wan.to_string(),
            conds: [Cond::default(); 10],
            flaps: [VecDeque::new(), VecDeque::new()],
            out: VecDeque::new(),
        }
    }

    /// Whether `kind`'s condition holds now. `details` is called only when an alert goes out.
    pub fn observe(
        &mut self,
        now: Instant,
        unix_ts: i64,
        kind: AlertKind,
        active: bool,
        details: impl FnOnce() -> (String, Vec<(&'static str, String)>),
    ) {
        let rule = *self.settings.rule(kind);
        let c = &mut self.conds[kind.index()];
        if !active {
            let fired = c.fired;
            c.since = None;
            c.fired = false;
            if fired
                && rule.enabled
                && let Some(name) = kind.recovery_name()
            {
                let (summary, details) = details();
                self.out.push_back(Alert {
                    name,
                    severity: Severity::Recovery,
                    wan: self.wan.clone(),
                    unix_ts,
                    summary,
                    details,
                });
            }
            return;
        }
        let since = *c.since.get_or_insert(now);
        if c.fired || !rule.enabled || now.saturating_since(since) < rule.sustain {
            return;
        }
        if c.last_fired.is_some_and(|t| now.saturating_since(t) < rule.cooldown) {
            return;
        }
        c.fired = true;
        c.last_fired = Some(now);
        let (summary, mut details) = details();
        details.push(("sustained_sec", format!("{:.1}", now.saturating_since(since).as_secs_f64())));
        self.out.push_back(Alert {
            name: kind.name(),
            severity: rule.severity,
            wan: self.wan.clone(),
            unix_ts,
            summary,
            details,
        });
    }

    /// A zone change of the download (`download`) or upload direction, for flapping.
    pub fn transition(&mut self, now: Instant, download: bool) {
        let q = &mut self.flaps[usize::from(!download)];
        q.push_back(now);
        self.prune(now);
    }

    fn prune(&mut self, now: Instant) {
        let window = self.settings.flap_window;
        for q in &mut self.flaps {
            while q.front().is_some_and(|&t| now.saturating_since(t) > window) {
                q.pop_front();
            }
        }
    }

    /// Zone changes of a direction within the flap window.
    pub fn flaps(&mut self, now: Instant, download: bool) -> usize {
        self.prune(now);
        self.flaps[usize::from(!download)].len()
    }

    /// Evaluates the flapping conditions (call once per tick after [`Alerter::transition`]).
    pub fn observe_flapping(&mut self, now: Instant, unix_ts: i64) {
        let need = self.settings.flap_transitions.max(1) as usize;
        let window = self.settings.flap_window.as_secs_f64();
        for (kind, download) in [(AlertKind::FlappingDl, true), (AlertKind::FlappingUl, false)] {
            let n = self.flaps(now, download);
            self.observe(now, unix_ts, kind, n >= need, || {
                (
                    format!(
                        "{} zone changed {n} times in {window:.0} s",
                        if download { "download" } else { "upload" }
                    ),
                    vec![("transitions", n.to_string())],
                )
            });
        }
    }

    /// The next alert to send.
    pub fn poll_alert(&mut self) -> Option<Alert> {
        self.out.pop_front()
    }
}

/// The body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A generic JSON document (also carrying `content` and `text`).
    Json,
    /// A Discord webhook embed (upstream's format).
    Discord,
}

/// Unix seconds → `YYYY-MM-DDTHH:MM:SSZ`.
fn iso(unix_ts: i64) -> String {
    crate::engine::history::iso_utc(unix_ts)
}

/// The request body of `alert`.
pub fn render(alert: &Alert, format: Format, version: &str) -> Vec<u8> {
    let line = format!("[{}] {} ({}): {}", alert.wan, alert.name, alert.severity.as_str(), alert.summary);
    let mut j = Json::default();
    j.open();
    match format {
        Format::Json => {
            j.key("source").str("wanctl");
            j.key("version").str(version);
            j.key("type").str(alert.name);
            j.key("severity").str(alert.severity.as_str());
            j.key("wan").str(&alert.wan);
            j.key("timestamp").str(&iso(alert.unix_ts));
            j.key("summary").str(&alert.summary);
            j.key("details").open();
            for (k, v) in &alert.details {
                j.key(k).str(v);
            }
            j.close();
            j.key("content").str(&line);
            j.key("text").str(&line);
        }
        Format::Discord => {
            j.key("username").str("wanctl");
            j.key("embeds").open_list();
            j.elem().open();
            j.key("title").str(&format!("{} on {}", alert.name, alert.wan));
            j.key("description").str(&alert.summary);
            j.key("color").int(i128::from(alert.severity.color()));
            j.key("timestamp").str(&iso(alert.unix_ts));
            j.key("fields").open_list();
            for (k, v) in std::iter::once(&("severity", alert.severity.as_str().to_string()))
                .chain(alert.details.iter())
            {
                j.elem().open();
                j.key("name").str(k);
                j.key("value").str(v);
                j.key("inline").bool(true);
                j.close();
            }
            j.close_list();
            j.key("footer").open();
            j.key("text").str(&format!("wanctl {version}"));
            j.close();
            j.close();
            j.close_list();
        }
    }
    j.close();
    j.finish().into_bytes()
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Delivered,
    /// Worth retrying: timeout, connection error, 5xx, 408, 429.
    Transient,
    /// Not worth retrying (other 4xx, a request that cannot be built).
    Final,
}

impl Outcome {
    /// From an HTTP status.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            200..=299 => Outcome::Delivered,
            408 | 429 | 500..=599 => Outcome::Transient,
            _ => Outcome::Final,
        }
    }
}

#[derive(Debug, Clone)]
struct Queued {
    name: &'static str,
    body: Vec<u8>,
    attempts: u32,
}

/// Longest back-off between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The delivery queue (see the module docs).
#[derive(Debug, Clone)]
pub struct Delivery {
    queue: VecDeque<Queued>,
    in_flight: Option<Queued>,
    not_before: Option<Instant>,
    max_queue: usize,
    max_attempts: u32,
    /// Delivered.
    pub sent: u64,
    /// Given up after the last attempt or a final error.
    pub failed: u64,
    /// Dropped because the queue was full.
    pub dropped: u64,
    /// Attempts that failed (each retry counts).
    pub attempt_failures: u64,
}

impl Delivery {
    /// A queue of at most `max_queue` alerts, each tried at most `max_attempts` times.
    pub fn new(max_queue: usize, max_attempts: u32) -> Delivery {
        Delivery {
            queue: VecDeque::new(),
            in_flight: None,
            not_before: None,
            max_queue: max_queue.max(1),
            max_attempts: max_attempts.max(1),
            sent: 0,
            failed: 0,
            dropped: 0,
            attempt_failures: 0,
        }
    }

    /// Queues a rendered alert; the oldest waiting one is dropped when full.
    pub fn push(&mut self, name: &'static str, body: Vec<u8>) {
        if self.queue.len() >= self.max_queue {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(Queued { name, body, attempts: 0 });
    }

    /// Alerts waiting (not counting the one in flight).
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// The next body to send now, if nothing is in flight and the back-off has passed.
    pub fn poll_send(&mut self, now: Instant) -> Option<(&'static str, &[u8])> {
        if self.in_flight.is_some() || self.not_before.is_some_and(|t| now < t) {
            return None;
        }
        let q = self.queue.pop_front()?;
        let q = self.in_flight.insert(q);
        Some((q.name, &q.body))
    }

    /// Whether an attempt is under way.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The attempt under way ended.
    pub fn on_result(&mut self, now: Instant, outcome: Outcome) {
        let Some(mut q) = self.in_flight.take() else { return };
        match outcome {
            Outcome::Delivered => {
                self.sent += 1;
                self.not_before = None;
            }
            Outcome::Transient if q.attempts + 1 < self.max_attempts => {
                self.attempt_failures += 1;
                q.attempts += 1;
                let backoff = Duration::from_secs(1u64 << (q.attempts - 1).min(6)).min(MAX_BACKOFF);
                self.not_before = Some(now + backoff);
                self.queue.push_front(q);
            }
            Outcome::Transient | Outcome::Final => {
                self.attempt_failures += 1;
                self.failed += 1;
                self.not_before = None;
            }
        }
    }

    /// When the next attempt may start, if one waits for its back-off.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight.is_none() && !self.queue.is_empty() { self.not_before } else { None }
    }
}

/// A webhook URL: `http://` or `https://`, host, optional port, path. `Display` shows only
/// scheme, host and port: the path and query of a webhook URL are its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    /// HTTPS.
    pub https: bool,
    /// Host (name or address; IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Origin-form target (path and query), at least `/`.
    pub target: String,
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookUrl({self})")
    }
}

impl std::fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl WebhookUrl {
    /// Parses `url`; the error says what is wrong without repeating the URL.
    pub fn parse(url: &str) -> Result<WebhookUrl, String> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("must start with http:// or https://".into());
        };
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return Err("user information in the URL is not supported".into());
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("unclosed [ in the host")?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse::<u16>().map_err(|_| "bad port")?,
                None if after.is_empty() => default_port,
                None => return Err("bad host".into()),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse::<u16>().map_err(|_| "bad port")?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() || port == 0 {
            return Err("no host or port".into());
        }
        if !target.bytes().all(|b| b.is_ascii_graphic()) || !host.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("only visible ASCII is allowed (percent-encode the rest)".into());
        }
        Ok(WebhookUrl { https, host, port, target })
    }

    /// The `Host` header value.
    pub fn host_header(&self) -> String {
        let default = if self.https { 443 } else { 80 };
        let h = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == default { h } else { format!("{h}:{}", self.port) }
    }

    /// Discord's webhook host.
    pub fn is_discord(&self) -> bool {
        let h = self.host.to_ascii_lowercase();
        h == "discord.com" || h == "discordapp.com" || h.ends_with(".discord.com")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_micros(ms * 1000)
    }

    fn settings() -> AlertSettings {
        AlertSettings::defaults(Duration::from_secs(300), Duration::from_secs(60))
    }

    fn details() -> (String, Vec<(&'static str, String)>) {
        ("x".into(), vec![("k", "v".into())])
    }

    #[test]
    fn a_condition_fires_after_its_sustain_once_then_recovers_and_respects_the_cooldown() {
        let mut a = Alerter::new(settings(), "wan1");
        let k = AlertKind::CongestionDl;
        for t in (0..=59_950).step_by(50) {
            a.observe(at(t), 0, k, true, details);
        }
        assert_eq!(a.poll_alert(), None, "not before 60 s");
        a.observe(at(60_000), 0, k, true, details);
        let fired = a.poll_alert().expect("fired at 60 s");
        assert_eq!((fired.name, fired.severity), ("congestion_sustained_dl", Severity::Critical));
        assert!(fired.details.iter().any(|(k, v)| *k == "sustained_sec" && v == "60.0"));
        a.observe(at(61_000), 0, k, true, details);
        assert_eq!(a.poll_alert(), None, "once per episode");
        a.observe(at(62_000), 0, k, false, details);
        assert_eq!(
            a.poll_alert().map(|x| (x.name, x.severity)),
            Some(("congestion_recovered_dl", Severity::Recovery))
        );
        // A new episode inside the cooldown (300 s from 60 s) does not fire; after it, it does.
        for t in (62_050..=200_000).step_by(50) {
            a.observe(at(t), 0, k, true, details);
        }
        assert_eq!(a.poll_alert(), None, "cooldown");
        a.observe(at(360_000), 0, k, true, details);
        assert_eq!(a.poll_alert().map(|x| x.name), Some("congestion_sustained_dl"));
    }

    #[test]
    fn disabled_rules_and_edge_kinds() {
        let mut s = settings();
        s.rule_mut(AlertKind::FloorDl).enabled = false;
        let mut a = Alerter::new(s, "wan1");
        a.observe(at(0), 0, AlertKind::FloorDl, true, details);
        a.observe(at(100_000), 0, AlertKind::FloorDl, true, details);
        assert_eq!(a.poll_alert(), None);
        a.observe(at(0), 0, AlertKind::SteeringActivated, true, details);
        assert_eq!(a.poll_alert().map(|x| x.name), Some("steering_activated"), "at once");
        a.observe(at(5_000), 0, AlertKind::SteeringActivated, false, details);
        assert_eq!(a.poll_alert().map(|x| x.name), Some("steering_recovered"));
    }

    #[test]
    fn flapping_counts_zone_changes_in_the_window() {
        let mut a = Alerter::new(settings(), "wan1");
        for i in 0..5 {
            a.transition(at(i * 1000), true);
            a.observe_flapping(at(i * 1000), 0);
        }
        assert_eq!(a.poll_alert(), None);
        a.transition(at(5000), true);
        a.observe_flapping(at(5000), 0);
        assert_eq!(a.poll_alert().map(|x| x.name), Some("flapping_dl"));
        assert_eq!(a.flaps(at(70_000), true), 0, "window slides");
    }

    #[test]
    fn delivery_retries_transient_failures_with_backoff_and_bounds_its_queue() {
        let mut d = Delivery::new(2, 3);
        d.push("a", b"1".to_vec());
        d.push("b", b"2".to_vec());
        d.push("c", b"3".to_vec());
        assert_eq!(d.dropped, 1, "oldest dropped");
        assert_eq!(d.poll_send(at(0)).map(|x| x.0), Some("b"));
        assert_eq!(d.poll_send(at(0)), None, "one in flight");
        d.on_result(at(10), Outcome::Transient);
        assert_eq!(d.poll_timeout(), Some(at(1010)));
        assert_eq!(d.poll_send(at(500)), None, "back-off");
        assert_eq!(d.poll_send(at(1010)).map(|x| x.0), Some("b"), "retried first");
        d.on_result(at(1020), Outcome::Transient);
        assert_eq!(d.poll_timeout(), Some(at(3020)), "2 s");
        assert_eq!(d.poll_send(at(3020)).map(|x| x.0), Some("b"));
        d.on_result(at(3030), Outcome::Transient);
        assert_eq!((d.failed, d.attempt_failures), (1, 3), "gave up after 3 attempts");
        assert_eq!(d.poll_send(at(3030)).map(|x| x.0), Some("c"));
        d.on_result(at(3040), Outcome::Final);
        assert_eq!(d.failed, 2, "a 4xx is final");
        d.push("d", b"4".to_vec());
        assert!(d.poll_send(at(3040)).is_some());
        d.on_result(at(3050), Outcome::Delivered);
        assert_eq!(d.sent, 1);
        assert_eq!(Outcome::of_status(429), Outcome::Transient);
        assert_eq!(Outcome::of_status(404), Outcome::Final);
        assert_eq!(Outcome::of_status(204), Outcome::Delivered);
    }

    #[test]
    fn urls_parse_and_never_show_their_path() {
        let u = WebhookUrl::parse("https://discord.com/api/webhooks/123/SECRET-TOKEN").expect("valid");
        assert!(u.https && u.is_discord());
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("discord.com", 443, "/api/webhooks/123/SECRET-TOKEN")
        );
        assert_eq!(u.to_string(), "https://discord.com:443");
        assert!(!format!("{u:?}").contains("SECRET"));
        let u = WebhookUrl::parse("http://[::1]:8080?x=1").expect("v6");
        assert_eq!((u.host.as_str(), u.port, u.target.as_str()), ("::1", 8080, "/?x=1"));
        assert_eq!(u.host_header(), "[::1]:8080");
        for bad in ["ftp://x/", "http://", "http://a:0/", "http://a:b/", "http://u:p@h/", "http://h/a b"] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bodies_are_json_in_both_formats() {
        let a = Alert {
            name: "router_unreachable",
            severity: Severity::Critical,
            wan: "wan1".into(),
            unix_ts: 1_767_225_600,
            summary: "router \"r\" unreachable".into(),
            details: vec![("since_sec", "12.0".into())],
        };
        let v: serde_json::Value = serde_json::from_slice(&render(&a, Format::Json, "1.0")).expect("json");
        assert_eq!(v["type"], "router_unreachable");
        assert_eq!(v["details"]["since_sec"], "12.0");
        assert!(v["content"].as_str().is_some_and(|c| c.contains("router_unreachable")));
        let v: serde_json::Value = serde_json::from_slice(&render(&a, Format::Discord, "1.0")).expect("json");
        assert_eq!(v["embeds"][0]["color"], 0xE74C3C);
        assert_eq!(v["embeds"][0]["fields"][1]["name"], "since_sec");
    }
}
