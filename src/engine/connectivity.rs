//! Router reachability tracking (ALGORITHM.md §12.1), without the original's flip-flop.
//! Pure.
//!
//! The original marked the router reachable again whenever a cycle *queued* a rate while
//! unreachable, so during an outage cycles alternated fail/success and the outage was
//! logged as "reconnected after 0.0s" every other cycle. Here only a real, successful router
//! exchange ends an outage.

use std::fmt;
use std::time::Duration;

use crate::time::Instant;

/// Failure classification, with the original's strings (health `last_failure_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No answer within the deadline.
    Timeout,
    /// TCP connection refused.
    ConnectionRefused,
    /// No route / network unreachable.
    NetworkUnreachable,
    /// Name resolution failed.
    DnsFailure,
    /// Credentials rejected.
    AuthFailure,
    /// Anything else (bad reply, TLS, 5xx, ssh died).
    Unknown,
}

impl FailureKind {
    /// The original's string for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::ConnectionRefused => "connection_refused",
            FailureKind::NetworkUnreachable => "network_unreachable",
            FailureKind::DnsFailure => "dns_failure",
            FailureKind::AuthFailure => "auth_failure",
            FailureKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a call to [`Connectivity::record_success`] observed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reconnected {
    /// How long the router was unreachable.
    pub outage: Duration,
    /// Failed attempts during the outage.
    pub failures: u32,
}

/// Router reachability of one WAN's router link.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Connectivity {
    consecutive_failures: u32,
    last_failure: Option<(FailureKind, Instant)>,
    outage_start: Option<Instant>,
}

impl Connectivity {
    /// Reachable, no failures.
    pub fn new() -> Connectivity {
        Connectivity::default()
    }

    /// True until a failure, and again only after a real success.
    pub fn is_reachable(&self) -> bool {
        self.consecutive_failures == 0
    }

    /// Failures since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Kind and time of the last failure.
    pub fn last_failure(&self) -> Option<(FailureKind, Instant)> {
        self.last_failure
    }

    /// How long the current outage has lasted, if unreachable.
    pub fn outage_duration(&self, now: Instant) -> Option<Duration> {
        self.outage_start.map(|s| now.saturating_since(s))
    }

    /// Records a failed exchange; returns the new failure count.
    pub fn record_failure(&mut self, now: Instant, kind: FailureKind) -> u32 {
        if self.consecutive_failures == 0 {
            self.outage_start = Some(now);
        }
        self.consecutive_failures += 1;
        self.last_failure = Some((kind, now));
        self.consecutive_failures
    }

    /// Records a successful exchange; returns the outage it ended, if any.
    pub fn record_success(&mut self, now: Instant) -> Option<Reconnected> {
        let ended = self
            .outage_start
            .map(|s| Reconnected { outage: now.saturating_since(s), failures: self.consecutive_failures });
        *self = Connectivity::default();
        ended
    }

    /// The original logs a failure when the count is 1, 3 or a multiple of 10.
    pub fn should_log_failure(count: u32) -> bool {
        count == 1 || count == 3 || count % 10 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_lasts_until_a_real_success() {
        let mut c = Connectivity::new();
        assert!(c.is_reachable());
        assert_eq!(c.record_failure(Instant::from_secs(1), FailureKind::Timeout), 1);
        assert_eq!(c.record_failure(Instant::from_secs(2), FailureKind::ConnectionRefused), 2);
        assert!(!c.is_reachable());
        assert_eq!(c.outage_duration(Instant::from_secs(4)), Some(Duration::from_secs(3)));
        assert_eq!(c.last_failure().map(|f| f.0.as_str()), Some("connection_refused"));
        let r = c.record_success(Instant::from_secs(5)).expect("an outage ended");
        assert_eq!(r.outage, Duration::from_secs(4));
        assert_eq!(r.failures, 2);
        assert!(c.is_reachable());
        assert_eq!(c.record_success(Instant::from_secs(6)), None);
    }

    #[test]
    fn failure_logging_cadence_matches_the_original() {
        let logged: Vec<u32> = (1..=30).filter(|&n| Connectivity::should_log_failure(n)).collect();
        assert_eq!(logged, vec![1, 3, 10, 20, 30]);
    }
}
