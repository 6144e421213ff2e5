//! `wanctl check-router --config FILE... [--json]` (also argv[0] `wanctl-check-router`):
//! drives the pure [`Audit`] over the configured transport. Shell code: it resolves the
//! router, runs a [`RouterLink`] without failover through [`RouterIo`] in a small `poll(2)`
//! loop in which every wait has a deadline, and prints what the audit found.
//!
//! The audit only reads (GET over REST, `print` on the console); nothing here can write.
//! This is a one-shot command, so blocking in `poll` is fine; it never runs in the daemon.

use std::path::Path;
use std::time::Duration;

use crate::config::{AnyConfig, RouterConfig};
use crate::engine::audit::{Audit, AuditTarget, Finding, QueueTarget, Severity};
use crate::engine::router::{LinkOutput, LinkSettings, RouterLink};
use crate::shell::router_io::RouterIo;
use crate::shell::startup::resolve;
use crate::sys::clock;
use crate::sys::poll::{Events, PollSet};

/// The whole audit of one router ends by this deadline, whatever the router does.
pub const AUDIT_DEADLINE: Duration = Duration::from_secs(20);
/// Longest single `poll` wait (so child exits are noticed without SIGCHLD).
const POLL_SLICE: Duration = Duration::from_millis(50);

/// What to audit from one config file.
pub fn target_of(cfg: &AnyConfig) -> (RouterConfig, Duration, AuditTarget) {
    match cfg {
        AnyConfig::Autorate(c) => {
            let (down, up) = c.cake_queue_types();
            let queues = vec![
                QueueTarget {
                    name: c.queues.download.clone(),
                    written_type: down,
                    ceiling: c.monitoring.download.ceiling,
                },
                QueueTarget {
                    name: c.queues.upload.clone(),
                    written_type: up,
                    ceiling: c.monitoring.upload.ceiling,
                },
            ];
            (c.router.clone(), c.router_timeout, base_target(&c.router, queues, vec![]))
        }
        AnyConfig::Steering(c) => (
            c.router.clone(),
            c.router_timeout,
            base_target(&c.router, vec![], vec![c.mangle_comment.clone()]),
        ),
    }
}

fn base_target(r: &RouterConfig, queues: Vec<QueueTarget>, mangle_comments: Vec<String>) -> AuditTarget {
    AuditTarget {
        transport: r.transport,
        scheme: r.scheme,
        port: r.port,
        user: r.user.clone(),
        queues,
        mangle_comments,
    }
}

/// Runs the audit of `target` against the router of `r`; never fails (a failure is a
/// finding).
pub fn audit(r: &RouterConfig, router_timeout: Duration, target: AuditTarget) -> Vec<Finding> {
    let mut audit = Audit::new(target);
    let ip = match resolve(&r.host) {
        Ok(ip) => ip,
        Err(e) => {
            return vec![Finding {
                severity: Severity::Error,
                check: "api",
                message: format!("cannot resolve router host {}: {e}", r.host),
                fix: None,
            }];
        }
    };
    let mut rio = RouterIo::new("check-router", std::net::SocketAddr::new(ip, r.port), &r.host, 0);
    rio.hide_from_children(&r.password.0);
    #[cfg(feature = "tls")]
    if r.scheme == crate::config::Scheme::Https {
        match crate::shell::tls::client_config(
            r.verify_ssl,
            r.ca_file.as_deref().map(Path::new),
            r.cert_sha256,
        ) {
            Ok(tls) => rio.set_tls(tls),
            Err(e) => {
                return vec![Finding {
                    severity: Severity::Error,
                    check: "api",
                    message: format!("router TLS setup: {e}"),
                    fix: None,
                }];
            }
        }
    }
    #[cfg(not(feature = "tls"))]
    let _ = Path::new("");
    let mut link = RouterLink::without_failover(LinkSettings::from_config(r, router_timeout));
    let mut poll = PollSet::with_capacity(8);
    let mut events = Events::with_capacity(8);
    let started = clock::now();
    let deadline = started + AUDIT_DEADLINE;
    let mut waiting = false;
    let mut timed_out = false;
    // Bounded twice: by the deadline, and by a cap on iterations.
    for _ in 0..100_000 {
        let now = clock::now();
        if !waiting {
            match audit.next_command() {
                Some(cmd) => {
                    link.submit(now, cmd);
                    waiting = true;
                }
                None => break,
            }
        }
        link.handle_timeout(now);
        rio.execute(&mut link, &mut poll, now);
        rio.ssh_reap(&mut link, &mut poll, now);
        for c in rio.take_completions() {
            if let LinkOutput::Done(result) = c {
                audit.on_result(*result);
                waiting = false;
            }
        }
        if !waiting {
            continue;
        }
        if now >= deadline {
            timed_out = true;
            break;
        }
        let wait = link.poll_timeout().map_or(POLL_SLICE, |t| t.saturating_since(now)).min(POLL_SLICE);
        if poll.poll(&mut events, Some(wait)).is_err() {
            // EINTR and friends: go round again; the deadline still bounds the loop.
            continue;
        }
        let now = clock::now();
        for ev in &events {
            if rio.owns(ev.token) {
                rio.on_event(&mut link, &mut poll, now, ev);
            }
        }
    }
    rio.shutdown(&mut poll, Duration::from_secs(1));
    let mut findings = audit.findings().to_vec();
    if timed_out || waiting {
        findings.push(Finding {
            severity: Severity::Error,
            check: "api",
            message: format!("audit did not finish within {} s", AUDIT_DEADLINE.as_secs()),
            fix: None,
        });
    }
    findings
}
