//! `wanctl check-router`: a read-only audit of the router side, as a pure state machine.
//! Pure: it hands out read-only [`Command`]s one at a time and turns their results into
//! [`Finding`]s, each with a one-line RouterOS fix. The shell drives it over a
//! [`crate::engine::router::RouterLink`] without failover (the configured transport only).
//!
//! In scope: reachability, credentials, user policy, RouterOS version, each queue (exists,
//! enabled, `max-limit` not 0), the CAKE types the daemon writes (`cake-down-<wan>`,
//! `cake-up-<wan>`: exist, `kind=cake`, `cake-bandwidth=0`), the queue's current type, the
//! steering mangle rule. Out of scope: anything that writes; interfaces and routing marks.
//!
//! ```text
//!   Probe ──fail──► stop (unreachable / credentials / service off)
//!     │ ok
//!   Resource (version) ─► User (group) ─► Group (policy) ─► Queue(i) ─► Type(name)… ─► Mangle ─► done
//!   (a failure of a later step is a finding; the audit goes on with the next step)
//! ```
//!
//! Policy is inferred without writing: `/user` of the configured user gives its group and
//! `/user group` that group's `policy` list (a `!` prefix marks a policy not granted). A
//! user whose policy cannot be read (no `read`) is reported as a warning, not guessed.

use std::collections::VecDeque;
use std::fmt::Write as _;

use crate::config::{Scheme, Transport};
use crate::engine::connectivity::FailureKind;
use crate::engine::router::LinkError;
use crate::units::Bps;
use crate::wire::routeros::{Command, PrintItem, PrintMenu, QueueStats, Reply};

/// How bad a finding is. Ordered: the worst decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Checked and fine.
    Ok,
    /// Works, but something is likely to bite (exit 1).
    Warning,
    /// The daemon cannot work like this (exit 2).
    Error,
}

impl Severity {
    /// `ok` / `warning` / `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One result of the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// A stable id of the check (`api`, `credentials`, `policy`, `version`, `queue`,
    /// `queue-type`, `cake-bandwidth`, `max-limit`, `mangle`).
    pub check: &'static str,
    /// What was found (never contains the password).
    pub message: String,
    /// The RouterOS command that fixes it, when there is one.
    pub fix: Option<String>,
}

/// One queue to audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueTarget {
    /// Queue-tree item name.
    pub name: String,
    /// The CAKE type the daemon writes with every rate change (`cake-down-<wan>`).
    pub written_type: String,
    /// The configured ceiling (used in the fix lines).
    pub ceiling: Bps,
}

/// What to audit: from the config files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditTarget {
    /// Transport being audited.
    pub transport: Transport,
    /// REST scheme (for the service fix line).
    pub scheme: Scheme,
    /// REST port.
    pub port: u16,
    /// RouterOS user.
    pub user: String,
    /// Queues.
    pub queues: Vec<QueueTarget>,
    /// Steering mangle comments.
    pub mangle_comments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Probe,
    Resource,
    User,
    Group(String),
    Queue(usize),
    Type { name: String, queue: usize, written: bool },
    Mangle(String),
}

/// The audit state machine. Calling protocol: while [`Audit::next_command`] gives a
/// command, run it and pass its result to [`Audit::on_result`]; then read
/// [`Audit::findings`].
#[derive(Debug)]
pub struct Audit {
    target: AuditTarget,
    todo: VecDeque<Step>,
    current: Option<Step>,
    findings: Vec<Finding>,
    /// Type names already queued (a type shared by queues is read once).
    types_seen: Vec<String>,
}

/// Minimum RouterOS major version: REST exists from 7.1 and CAKE from 7.1beta3.
const MIN_MAJOR: u32 = 7;

impl Audit {
    /// A new audit of `target`.
    pub fn new(target: AuditTarget) -> Audit {
        let mut todo = VecDeque::new();
        todo.push_back(Step::Probe);
        todo.push_back(Step::Resource);
        todo.push_back(Step::User);
        for i in 0..target.queues.len() {
            todo.push_back(Step::Queue(i));
        }
        for c in &target.mangle_comments {
            todo.push_back(Step::Mangle(c.clone()));
        }
        Audit { target, todo, current: None, findings: Vec::new(), types_seen: Vec::new() }
    }

    /// The next command to run, or `None` when the audit is over.
    #[must_use]
    pub fn next_command(&mut self) -> Option<Command> {
        if self.current.is_some() {
            return None;
        }
        let step = self.todo.pop_front()?;
        let command = match &step {
            Step::Probe => Command::Probe,
            Step::Resource => Command::Print { menu: PrintMenu::SystemResource, name: None },
            Step::User => Command::Print { menu: PrintMenu::User, name: Some(self.target.user.clone()) },
            Step::Group(g) => Command::Print { menu: PrintMenu::UserGroup, name: Some(g.clone()) },
            Step::Queue(i) => Command::GetQueueConfigByName(self.target.queues[*i].name.clone()),
            Step::Type { name, .. } => {
                Command::Print { menu: PrintMenu::QueueType, name: Some(name.clone()) }
            }
            Step::Mangle(c) => Command::GetMangleByComment(c.clone()),
        };
        self.current = Some(step);
        Some(command)
    }

    /// The findings so far.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// 0 when every finding is ok, 1 with warnings, 2 with errors.
    pub fn exit_code(&self) -> u8 {
        exit_code_of(&self.findings)
    }

    fn push(&mut self, severity: Severity, check: &'static str, message: String, fix: Option<String>) {
        self.findings.push(Finding { severity, check, message, fix });
    }

    fn service_fix(&self) -> String {
        match (self.target.transport, self.target.scheme) {
            (Transport::Ssh, _) => "/ip service set ssh disabled=no".to_owned(),
            (Transport::Rest, Scheme::Https) => {
                format!(
                    "/ip service set www-ssl disabled=no port={} certificate=<your certificate>",
                    self.target.port
                )
            }
            (Transport::Rest, Scheme::Http) => {
                format!("/ip service set www disabled=no port={}", self.target.port)
            }
        }
    }

    fn needed_policies(&self) -> &'static [&'static str] {
        match self.target.transport {
            Transport::Rest => &["read", "write", "api", "rest-api"],
            Transport::Ssh => &["read", "write", "ssh"],
        }
    }

    /// The result of the command last handed out.
    pub fn on_result(&mut self, result: Result<Reply, LinkError>) {
        let Some(step) = self.current.take() else { return };
        match (step, result) {
            (Step::Probe, Ok(reply)) => {
                let who = match reply {
                    Reply::Alive { identity: Some(id) } => format!(" (identity {id:?})"),
                    _ => String::new(),
                };
                let t = transport_label(self.target.transport);
                self.push(Severity::Ok, "api", format!("{t} reachable{who}"), None);
                self.push(
                    Severity::Ok,
                    "credentials",
                    format!("user {:?} logged in", self.target.user),
                    None,
                );
            }
            (Step::Probe, Err(e)) => {
                self.probe_failed(&e);
                self.todo.clear();
            }
            (Step::Resource, Ok(Reply::Items(items))) => self.on_resource(items.first()),
            (Step::Resource, r) => self.read_failed("version", "/system resource", r),
            (Step::User, Ok(Reply::Items(items))) => {
                let user = self.target.user.clone();
                match items.first().and_then(|u| u.get("group")) {
                    Some(group) => self.todo.push_front(Step::Group(group.clone())),
                    None => self.push(
                        Severity::Warning,
                        "policy",
                        format!("cannot see user {user:?} in /user (policy not checked)"),
                        None,
                    ),
                }
            }
            (Step::User, r) => self.read_failed("policy", "/user", r),
            (Step::Group(g), Ok(Reply::Items(items))) => match items.first().and_then(|i| i.get("policy")) {
                Some(policy) => self.on_policy(&g, policy),
                None => self.push(
                    Severity::Warning,
                    "policy",
                    format!("cannot read the policy of group {g:?} (policy not checked)"),
                    None,
                ),
            },
            (Step::Group(_), r) => self.read_failed("policy", "/user group", r),
            (Step::Queue(i), Ok(Reply::Queue(item))) => self.on_queue(i, item),
            (Step::Queue(i), r) => {
                let what = format!("queue {:?}", self.target.queues[i].name);
                self.read_failed("queue", &what, r);
            }
            (Step::Type { name, queue, written }, Ok(Reply::Items(items))) => {
                self.on_type(&name, queue, written, items.first());
            }
            (Step::Type { name, .. }, r) => {
                self.read_failed("queue-type", &format!("queue type {name:?}"), r)
            }
            (Step::Mangle(c), Ok(Reply::Mangle(rules))) => {
                let fix = format!("/ip firewall mangle set <rule number> comment={}", quoted(&c));
                match rules.len() {
                    0 => self.push(
                        Severity::Error,
                        "mangle",
                        format!("no mangle rule has the comment {c:?} (steering could not switch)"),
                        Some(fix),
                    ),
                    1 => self.push(
                        Severity::Ok,
                        "mangle",
                        format!(
                            "mangle rule {c:?} found ({})",
                            if rules[0].disabled { "disabled" } else { "enabled" }
                        ),
                        None,
                    ),
                    n => self.push(
                        Severity::Warning,
                        "mangle",
                        format!("{n} mangle rules have the comment {c:?}; steering switches all of them"),
                        None,
                    ),
                }
            }
            (Step::Mangle(c), r) => self.read_failed("mangle", &format!("mangle rule {c:?}"), r),
        }
    }

    fn probe_failed(&mut self, e: &LinkError) {
        let t = transport_label(self.target.transport);
        let m = e.message.as_str();
        if e.kind == FailureKind::AuthFailure && m.contains("403") {
            self.push(
                Severity::Error,
                "api",
                format!("{t} answers 403 Forbidden: the REST service is off ({m})"),
                Some(self.service_fix()),
            );
        } else if e.kind == FailureKind::AuthFailure
            && (m.contains("permissions") || m.contains("not allowed"))
        {
            let fix = format!(
                "/user group set [find name=<group of {}>] policy={}",
                quoted(&self.target.user),
                self.needed_policies().join(",")
            );
            self.push(
                Severity::Error,
                "policy",
                format!("logged in, but the group lacks a policy: {m}"),
                Some(fix),
            );
        } else if e.kind == FailureKind::AuthFailure {
            let fix = match self.target.transport {
                Transport::Rest => format!(
                    "/user set [find name={}] password=<the configured password>",
                    quoted(&self.target.user)
                ),
                Transport::Ssh => format!(
                    "/user ssh-keys import user={} public-key-file=<key.pub>",
                    quoted(&self.target.user)
                ),
            };
            self.push(
                Severity::Error,
                "credentials",
                format!(
                    "user {:?} was refused ({m}); for REST its group also needs rest-api",
                    self.target.user
                ),
                Some(fix),
            );
        } else {
            self.push(
                Severity::Error,
                "api",
                format!("{t} not reachable ({}): {m}", e.kind),
                Some(self.service_fix()),
            );
        }
    }

    fn read_failed(&mut self, check: &'static str, what: &str, r: Result<Reply, LinkError>) {
        let message = match r {
            Ok(other) => format!("cannot read {what}: unexpected reply {other:?}"),
            Err(e) => format!("cannot read {what}: {}", e.message),
        };
        self.push(Severity::Warning, check, message, None);
    }

    fn on_resource(&mut self, item: Option<&PrintItem>) {
        let Some(version) = item.and_then(|i| i.get("version")) else {
            self.push(Severity::Warning, "version", "/system resource shows no version".into(), None);
            return;
        };
        let board = item.and_then(|i| i.get("board-name")).map(|b| format!(" on {b}")).unwrap_or_default();
        match parse_major_minor(version) {
            Some((major, _)) if major >= MIN_MAJOR => {
                self.push(Severity::Ok, "version", format!("RouterOS {version}{board}"), None);
            }
            Some(_) => self.push(
                Severity::Error,
                "version",
                format!("RouterOS {version}{board}: REST and CAKE need RouterOS 7.1 or newer"),
                Some("/system package update set channel=stable; /system package update install".into()),
            ),
            None => {
                self.push(Severity::Warning, "version", format!("unrecognised version {version:?}"), None)
            }
        }
    }

    fn on_policy(&mut self, group: &str, policy: &str) {
        let granted: Vec<&str> =
            policy.split(',').map(str::trim).filter(|p| !p.is_empty() && !p.starts_with('!')).collect();
        let missing: Vec<&str> =
            self.needed_policies().iter().copied().filter(|p| !granted.contains(p)).collect();
        if missing.is_empty() {
            self.push(
                Severity::Ok,
                "policy",
                format!("group {group:?} has {}", self.needed_policies().join(", ")),
                None,
            );
            return;
        }
        let mut all: Vec<&str> = granted.clone();
        all.extend(missing.iter().copied());
        self.push(
            Severity::Error,
            "policy",
            format!(
                "group {group:?} of user {:?} lacks {} (rate changes would be refused)",
                self.target.user,
                missing.join(", ")
            ),
            Some(format!("/user group set [find name={}] policy={}", quoted(group), all.join(","))),
        );
    }

    fn on_queue(&mut self, i: usize, item: Option<QueueStats>) {
        let q = self.target.queues[i].clone();
        let Some(item) = item else {
            self.push(
                Severity::Error,
                "queue",
                format!("queue tree item {:?} does not exist", q.name),
                Some(format!(
                    "/queue tree add name={} parent=<wan interface> queue={} max-limit={}",
                    quoted(&q.name),
                    q.written_type,
                    human_rate(q.ceiling)
                )),
            );
            return;
        };
        self.push(Severity::Ok, "queue", format!("queue tree item {:?} exists", q.name), None);
        if item.disabled {
            self.push(
                Severity::Warning,
                "queue",
                format!("queue {:?} is disabled (it shapes nothing)", q.name),
                Some(format!("/queue tree enable [find name={}]", quoted(&q.name))),
            );
        }
        match item.max_limit {
            Some(Bps(0)) => self.push(
                Severity::Error,
                "max-limit",
                format!(
                    "queue {:?} has max-limit=0 (unlimited: nothing is shaped until the first write)",
                    q.name
                ),
                Some(format!(
                    "/queue tree set [find name={}] max-limit={}",
                    quoted(&q.name),
                    human_rate(q.ceiling)
                )),
            ),
            Some(m) => self.push(
                Severity::Ok,
                "max-limit",
                format!("queue {:?} max-limit {}", q.name, human_rate(m)),
                None,
            ),
            None => self.push(
                Severity::Warning,
                "max-limit",
                format!("queue {:?} shows no max-limit", q.name),
                None,
            ),
        }
        let mut types = vec![(q.written_type.clone(), true)];
        if let Some(current) = item.queue_type.filter(|t| *t != q.written_type) {
            types.push((current, false));
        }
        for (name, written) in types.into_iter().rev() {
            if self.types_seen.contains(&name) {
                continue;
            }
            self.types_seen.push(name.clone());
            self.todo.push_front(Step::Type { name, queue: i, written });
        }
    }

    fn on_type(&mut self, name: &str, queue: usize, written: bool, item: Option<&PrintItem>) {
        let q = self.target.queues[queue].clone();
        let qn = quoted(&q.name);
        let Some(item) = item else {
            if written {
                self.push(
                    Severity::Error,
                    "queue-type",
                    format!("queue type {name:?} does not exist; every rate write sets queue={name} and would be refused"),
                    Some(format!("/queue type add name={name} kind=cake cake-bandwidth=0")),
                );
            } else {
                self.push(
                    Severity::Error,
                    "queue-type",
                    format!("queue {:?} uses queue type {name:?}, which does not exist", q.name),
                    Some(format!("/queue tree set [find name={qn}] queue={}", q.written_type)),
                );
            }
            return;
        };
        let kind = item.get("kind").map_or("?", String::as_str);
        if kind != "cake" {
            let fix = if written {
                format!("/queue type set [find name={}] kind=cake cake-bandwidth=0", quoted(name))
            } else {
                format!("/queue tree set [find name={qn}] queue={}", q.written_type)
            };
            self.push(
                Severity::Error,
                "queue-type",
                format!("queue type {name:?} (used by {:?}) is kind {kind}, not cake", q.name),
                Some(fix),
            );
            return;
        }
        let bandwidth = item.get("cake-bandwidth").map(String::as_str).unwrap_or("");
        let shaping = !matches!(bandwidth, "" | "0");
        if shaping {
            self.push(
                Severity::Error,
                "cake-bandwidth",
                format!(
                    "queue type {name:?} has cake-bandwidth={bandwidth}: CAKE shapes too and fights max-limit"
                ),
                Some(format!("/queue type set [find name={}] cake-bandwidth=0", quoted(name))),
            );
        } else {
            self.push(
                Severity::Ok,
                "queue-type",
                format!("queue type {name:?} is CAKE with cake-bandwidth=0"),
                None,
            );
        }
        if !written {
            self.push(
                Severity::Ok,
                "queue-type",
                format!(
                    "queue {:?} is replaced by type {:?} on the first rate write",
                    q.name, q.written_type
                ),
                None,
            );
        }
    }
}

fn transport_label(t: Transport) -> &'static str {
    match t {
        Transport::Rest => "REST API",
        Transport::Ssh => "SSH console",
    }
}

fn quoted(s: &str) -> String {
    crate::wire::routeros::quote(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// A rate as a person types it on the console: `100M`, `512k`, else plain bits/s.
pub fn human_rate(rate: Bps) -> String {
    match rate.0 {
        0 => "0".into(),
        b if b % 1_000_000 == 0 => format!("{}M", b / 1_000_000),
        b if b % 1_000 == 0 => format!("{}k", b / 1_000),
        b => b.to_string(),
    }
}

/// `7.16.2 (stable)` → (7, 16); `6.49.10 (long-term)` → (6, 49).
pub fn parse_major_minor(version: &str) -> Option<(u32, u32)> {
    let v = version.split_whitespace().next()?;
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor_text: String = parts.next().unwrap_or("0").chars().take_while(char::is_ascii_digit).collect();
    Some((major, minor_text.parse().unwrap_or(0)))
}

/// The text report: one line per finding, its fix indented below.
pub fn render_text(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let tag = match f.severity {
            Severity::Ok => "ok   ",
            Severity::Warning => "WARN ",
            Severity::Error => "ERROR",
        };
        let _ = writeln!(out, "{tag} {:<14} {}", f.check, f.message);
        if let Some(fix) = &f.fix {
            let _ = writeln!(out, "      fix: {fix}");
        }
    }
    out
}

/// The findings as JSON: `[{"severity","check","message","fix"}]` (`fix` null when none).
pub fn findings_json(findings: &[Finding]) -> serde_json::Value {
    findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "severity": f.severity.as_str(),
                "check": f.check,
                "message": f.message,
                "fix": f.fix,
            })
        })
        .collect()
}

/// The exit code of a set of findings: 0 all ok, 1 warnings, 2 errors.
pub fn exit_code_of(findings: &[Finding]) -> u8 {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Error) => 2,
        Some(Severity::Warning) => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::writer::WriteOutcome;

    fn target() -> AuditTarget {
        AuditTarget {
            transport: Transport::Rest,
            scheme: Scheme::Https,
            port: 443,
            user: "wanctl".into(),
            queues: vec![QueueTarget {
                name: "WAN-Download-1".into(),
                written_type: "cake-down-wan1".into(),
                ceiling: Bps(940_000_000),
            }],
            mangle_comments: vec![],
        }
    }

    fn item(pairs: &[(&str, &str)]) -> PrintItem {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn queue(max: u64, ty: &str) -> QueueStats {
        QueueStats {
            name: Some("WAN-Download-1".into()),
            queue_type: Some(ty.into()),
            max_limit: Some(Bps(max)),
            ..QueueStats::default()
        }
    }

    fn cake(name: &str, bw: &str) -> Reply {
        Reply::Items(vec![item(&[("name", name), ("kind", "cake"), ("cake-bandwidth", bw)])])
    }

    /// Runs the audit against canned replies, in order.
    fn run(replies: Vec<Result<Reply, LinkError>>) -> Audit {
        let mut a = Audit::new(target());
        let mut replies = replies.into_iter();
        for _ in 0..32 {
            if a.next_command().is_none() {
                break;
            }
            a.on_result(replies.next().unwrap_or_else(|| Ok(Reply::Items(vec![]))));
        }
        a
    }

    fn healthy() -> Vec<Result<Reply, LinkError>> {
        vec![
            Ok(Reply::Alive { identity: Some("MikroTik".into()) }),
            Ok(Reply::Items(vec![item(&[("version", "7.16.2 (stable)")])])),
            Ok(Reply::Items(vec![item(&[("name", "wanctl"), ("group", "api")])])),
            Ok(Reply::Items(vec![item(&[("name", "api"), ("policy", "read,write,api,rest-api,!ftp")])])),
            Ok(Reply::Queue(Some(queue(940_000_000, "cake-down-wan1")))),
            Ok(cake("cake-down-wan1", "0")),
        ]
    }

    fn errors(a: &Audit) -> Vec<&'static str> {
        a.findings().iter().filter(|f| f.severity == Severity::Error).map(|f| f.check).collect()
    }

    #[test]
    fn healthy_router_is_all_ok() {
        let a = run(healthy());
        assert_eq!(a.exit_code(), 0, "{}", render_text(a.findings()));
    }

    #[test]
    fn each_fault_is_an_error_with_a_fix() {
        let err = |kind, message: &str| {
            Err(LinkError {
                kind,
                outcome: WriteOutcome::NotSent,
                transport: Transport::Rest,
                message: message.into(),
            })
        };
        let cases: Vec<(&str, usize, Result<Reply, LinkError>, &str)> = vec![
            ("refused", 0, err(FailureKind::ConnectionRefused, "connect: refused"), "api"),
            (
                "401",
                0,
                err(FailureKind::AuthFailure, "authentication: HTTP 401: Unauthorized"),
                "credentials",
            ),
            ("403", 0, err(FailureKind::AuthFailure, "authentication: HTTP 403: Forbidden"), "api"),
            ("old", 1, Ok(Reply::Items(vec![item(&[("version", "6.49.10 (long-term)")])])), "version"),
            (
                "no write",
                3,
                Ok(Reply::Items(vec![item(&[("policy", "read,!write,api,rest-api")])])),
                "policy",
            ),
            ("missing queue", 4, Ok(Reply::Queue(None)), "queue"),
            ("max 0", 4, Ok(Reply::Queue(Some(queue(0, "cake-down-wan1")))), "max-limit"),
            ("not cake", 5, Ok(Reply::Items(vec![item(&[("kind", "pfifo")])])), "queue-type"),
            ("type missing", 5, Ok(Reply::Items(vec![])), "queue-type"),
            ("bandwidth", 5, Ok(cake("cake-down-wan1", "100000000")), "cake-bandwidth"),
        ];
        for (name, at, reply, check) in cases {
            let mut replies = healthy();
            replies[at] = reply;
            let a = run(replies);
            assert_eq!(a.exit_code(), 2, "{name}: {}", render_text(a.findings()));
            let f = a.findings().iter().find(|f| f.severity == Severity::Error).unwrap();
            assert_eq!(f.check, check, "{name}");
            assert!(f.fix.as_deref().is_some_and(|x| x.starts_with('/')), "{name}: {f:?}");
            assert_eq!(errors(&a).len(), 1, "{name}: {}", render_text(a.findings()));
        }
    }

    #[test]
    fn current_type_other_than_written_is_checked_too() {
        let mut replies = healthy();
        replies[4] = Ok(Reply::Queue(Some(queue(940_000_000, "default-small"))));
        replies.push(Ok(Reply::Items(vec![item(&[("name", "default-small"), ("kind", "pfifo")])])));
        let a = run(replies);
        assert_eq!(errors(&a), vec!["queue-type"], "{}", render_text(a.findings()));
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_major_minor("7.16.2 (stable)"), Some((7, 16)));
        assert_eq!(parse_major_minor("7.1beta3"), Some((7, 1)));
        assert_eq!(parse_major_minor("6.49.10 (long-term)"), Some((6, 49)));
        assert_eq!(parse_major_minor(""), None);
    }
}
