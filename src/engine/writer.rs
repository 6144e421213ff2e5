//! When a computed rate reaches the router: the write policy. Pure.
//!
//! The controller computes a new rate pair every 50 ms; the router stores every `set` in
//! its persistent configuration (flash), so not every change may be written. The original
//! wrote every change until 10 writes had happened in 60 s and then wrote *nothing* until the
//! window slid on: after a capacity drop its ten writes were spent in half a second and the
//! link stayed throttled (or congested) for the rest of the minute.
//!
//! This policy keeps the long-run write rate at or below the original's ceiling while never
//! holding back a cut during congestion:
//!
//! * **Token bucket.** `BUCKET` tokens, refilled at `REFILL_PER_MIN` per minute (the
//!   original's 10 / 60 s). Every write that may have reached the router costs one token.
//! * **Cuts are never held.** A write that lowers either direction goes out at once even
//!   with an empty bucket; the balance goes negative (debt). During YELLOW (not yet
//!   congested, the early-warning band whose 4 % per-cycle decay would otherwise mean 20
//!   writes a second) successive cuts are coalesced to one per `YELLOW_CUT_GAP`; in
//!   SOFT_RED and RED, and for the first cut of an episode, there is no gap.
//! * **Increases wait for a token** and for `INCREASE_GAP` after the previous write, so
//!   debt is repaid by holding increases only. While an increase waits the controller is
//!   capped a probe quantum above the router's rate (see `engine::wan`), so the rate that
//!   is finally written is a measured step, not a jump.
//!
//! Long-run bound: over any span `T`, writes ≤ `BUCKET + REFILL·T + L`, where `L` bounds a
//! run of consecutive cuts with no increase between them. Each such cut lowers the
//! router's rate by at least `1 - factor_down_yellow` (or hits the floor, after which there
//! is no change left to write), so `L ≤ ln(ceiling/floor) / ln(1/factor)`, a constant of the
//! config (about 60 for a 10:1 range at 0.96). The average therefore tends to `REFILL`.
//!
//! Failed writes: a write that provably never reached the router (connect refused, name
//! lookup, connect timeout) gets its token back; one that may have been applied (timeout
//! after sending, 5xx, closed mid-reply) keeps the charge, and the router's rate becomes
//! unknown so the next decision is written regardless of equality. Retries back off from
//! `RETRY_MIN` to `RETRY_MAX`, so a dead router is tried at most a few times a second and a
//! recovered one gets the newest rates within `RETRY_MAX`.

use std::time::Duration;

use crate::time::Instant;
use crate::units::Bps;

/// Burst allowance (tokens).
pub const BUCKET: f64 = 10.0;
/// Long-run writes per minute (the original's limiter ceiling).
pub const REFILL_PER_MIN: f64 = 10.0;
/// Minimum spacing of coalesced YELLOW cuts.
pub const YELLOW_CUT_GAP: Duration = Duration::from_millis(200);
/// Minimum spacing between any write and a following increase.
pub const INCREASE_GAP: Duration = Duration::from_millis(1000);
/// First retry delay after a failed write.
pub const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest retry delay (bounds the time to apply after the router comes back).
pub const RETRY_MAX: Duration = Duration::from_millis(800);

/// A download/upload rate pair: one logical router change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    /// Download queue max-limit.
    pub download: Bps,
    /// Upload queue max-limit.
    pub upload: Bps,
}

impl Rates {
    /// True if either direction is lower in `self` than in `other`.
    pub fn cuts_from(self, other: Rates) -> bool {
        self.download < other.download || self.upload < other.upload
    }
}

/// How urgent a cut is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// No direction above the GREEN band.
    Calm,
    /// Worst direction is YELLOW.
    Warning,
    /// Worst direction is SOFT_RED or RED.
    Congested,
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The router confirmed it.
    Applied,
    /// It never reached the router (refused, unresolvable, connect timeout).
    NotSent,
    /// It may or may not have been applied (timeout after sending, 5xx, cut off).
    Uncertain,
    /// The router refused it (4xx with a message): not applied; do not resend the same.
    Rejected,
}

/// Counters for health and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Writes started.
    pub attempts: u64,
    /// Writes the router confirmed.
    pub applied: u64,
    /// Writes that failed in any way.
    pub failed: u64,
    /// Cycles in which an increase was held back (the original's "rate limit events").
    pub deferred: u64,
}

/// The write policy state.
#[derive(Debug, Clone)]
pub struct WritePolicy {
    applied: Option<Rates>,
    rejected: Option<Rates>,
    in_flight: Option<(Rates, bool)>,
    tokens: f64,
    refilled_at: Instant,
    last_write_at: Option<Instant>,
    last_urgency: Urgency,
    retry_at: Option<Instant>,
    backoff: Duration,
    stats: WriteStats,
}

impl WritePolicy {
    /// A full bucket and an unknown router state (the first decision is always written).
    pub fn new(now: Instant) -> WritePolicy {
        WritePolicy {
            applied: None,
            rejected: None,
            in_flight: None,
            tokens: BUCKET,
            refilled_at: now,
            last_write_at: None,
            last_urgency: Urgency::Calm,
            retry_at: None,
            backoff: RETRY_MIN,
            stats: WriteStats::default(),
        }
    }

    /// Seeds the last applied rates (from the state file), so an unchanged decision after a
    /// restart is not rewritten.
    pub fn assume_applied(&mut self, rates: Rates) {
        self.applied = Some(rates);
    }

    /// What the router is known to have, if anything.
    pub fn applied(&self) -> Option<Rates> {
        self.applied
    }

    /// The write in flight, if any.
    pub fn in_flight(&self) -> Option<Rates> {
        self.in_flight.map(|(r, _)| r)
    }

    /// Current token balance (negative while in debt).
    pub fn tokens(&self) -> f64 {
        self.tokens
    }

    /// Counters.
    pub fn stats(&self) -> WriteStats {
        self.stats
    }

    /// Brings the token balance up to `now` (callers that read [`WritePolicy::tokens`] to
    /// decide something must refresh first).
    pub fn refresh(&mut self, now: Instant) {
        self.refill(now);
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + dt * REFILL_PER_MIN / 60.0).min(BUCKET);
        self.refilled_at = now;
    }

    /// Decides whether `desired` is written now. Returns the rates to send; the caller
    /// must report the result with [`WritePolicy::on_result`].
    pub fn decide(&mut self, now: Instant, desired: Rates, urgency: Urgency) -> Option<Rates> {
        self.decide_with_floor(now, desired, urgency, 1.0)
    }

    /// [`WritePolicy::decide`] where an increase needs only `floor` tokens (may be
    /// negative: a recovery far below any known capacity may borrow down to a fixed debt).
    /// Any fixed floor keeps the long-run bound of the module doc: it only shifts the
    /// constant term.
    pub fn decide_with_floor(
        &mut self,
        now: Instant,
        desired: Rates,
        urgency: Urgency,
        floor: f64,
    ) -> Option<Rates> {
        self.refill(now);
        let previous_urgency = self.last_urgency;
        self.last_urgency = urgency;
        if self.in_flight.is_some() || self.retry_at.is_some_and(|t| now < t) {
            return None;
        }
        if self.rejected == Some(desired) {
            return None;
        }
        let since_write = self.last_write_at.map(|t| now.saturating_since(t));
        let allowed = match self.applied {
            None => true,
            Some(applied) if applied == desired => return None,
            Some(applied) if desired.cuts_from(applied) => match urgency {
                Urgency::Congested => true,
                // The first cut of an episode goes at once; later YELLOW decays coalesce.
                _ if previous_urgency < urgency => true,
                _ => since_write.is_none_or(|s| s >= YELLOW_CUT_GAP),
            },
            Some(_) => self.tokens >= floor && since_write.is_none_or(|s| s >= INCREASE_GAP),
        };
        if !allowed {
            if self.applied.is_some_and(|a| !desired.cuts_from(a)) {
                self.stats.deferred += 1;
            }
            return None;
        }
        self.tokens -= 1.0;
        self.stats.attempts += 1;
        self.last_write_at = Some(now);
        self.in_flight = Some((desired, true));
        Some(desired)
    }

    /// True if an increase is being held back (the caller caps the controller).
    pub fn is_holding_increase(&self, desired: Rates) -> bool {
        match self.applied {
            Some(a) => a != desired && !desired.cuts_from(a),
            None => false,
        }
    }

    /// Reports how the write returned by `decide` ended.
    pub fn on_result(&mut self, now: Instant, outcome: WriteOutcome) {
        let Some((rates, _)) = self.in_flight.take() else { return };
        match outcome {
            WriteOutcome::Applied => {
                self.applied = Some(rates);
                self.rejected = None;
                self.retry_at = None;
                self.backoff = RETRY_MIN;
                self.stats.applied += 1;
            }
            WriteOutcome::Rejected => {
                self.rejected = Some(rates);
                self.stats.failed += 1;
            }
            WriteOutcome::NotSent | WriteOutcome::Uncertain => {
                if outcome == WriteOutcome::NotSent {
                    self.tokens = (self.tokens + 1.0).min(BUCKET);
                } else {
                    self.applied = None;
                }
                self.stats.failed += 1;
                self.retry_at = Some(now + self.backoff);
                self.backoff = (self.backoff * 2).min(RETRY_MAX);
            }
        }
    }

    /// The end of the current retry back-off, if a failed write is waiting for it. Ticks
    /// re-run `decide` every cycle anyway; this lets a retry land between ticks.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        if self.in_flight.is_some() {
            return None;
        }
        self.retry_at.filter(|&t| t > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(d: u64, u: u64) -> Rates {
        Rates { download: Bps(d), upload: Bps(u) }
    }

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn first_decision_is_written_and_equal_ones_are_not() {
        let mut w = WritePolicy::new(ms(0));
        assert_eq!(w.decide(ms(0), r(100, 10), Urgency::Calm), Some(r(100, 10)));
        w.on_result(ms(5), WriteOutcome::Applied);
        assert_eq!(w.decide(ms(50), r(100, 10), Urgency::Calm), None);
        assert_eq!(w.stats().applied, 1);
    }

    #[test]
    fn congested_cuts_are_never_held_even_in_debt() {
        let mut w = WritePolicy::new(ms(0));
        let mut rate = 1000;
        for i in 0..40u64 {
            rate = rate * 9 / 10;
            let now = ms(i * 50);
            assert_eq!(w.decide(now, r(rate, 10), Urgency::Congested), Some(r(rate, 10)), "cycle {i}");
            w.on_result(now, WriteOutcome::Applied);
        }
        assert!(w.tokens() < 0.0);
        // ... and the debt holds increases back.
        assert_eq!(w.decide(ms(3000), r(rate + 1, 10), Urgency::Calm), None);
        assert!(w.stats().deferred > 0);
    }

    #[test]
    fn yellow_cuts_are_coalesced_after_the_first() {
        let mut w = WritePolicy::new(ms(0));
        w.decide(ms(0), r(100, 10), Urgency::Calm);
        w.on_result(ms(1), WriteOutcome::Applied);
        assert!(w.decide(ms(2000), r(96, 10), Urgency::Warning).is_some());
        w.on_result(ms(2001), WriteOutcome::Applied);
        assert!(w.decide(ms(2050), r(92, 10), Urgency::Warning).is_none());
        assert!(w.decide(ms(2200), r(85, 10), Urgency::Warning).is_some());
    }

    #[test]
    fn increases_wait_for_gap_and_token() {
        let mut w = WritePolicy::new(ms(0));
        w.decide(ms(0), r(100, 10), Urgency::Calm);
        w.on_result(ms(1), WriteOutcome::Applied);
        assert!(w.decide(ms(500), r(110, 10), Urgency::Calm).is_none());
        assert!(w.decide(ms(1000), r(110, 10), Urgency::Calm).is_some());
    }

    #[test]
    fn long_run_write_rate_stays_at_refill() {
        // Adversarial: alternate a cut and an increase request every cycle for an hour.
        let mut w = WritePolicy::new(ms(0));
        let mut writes = 0u32;
        for i in 0..72_000u64 {
            let now = ms(i * 50);
            let want = if i % 2 == 0 { r(90, 10) } else { r(100, 10) };
            let urgency = if i % 2 == 0 { Urgency::Congested } else { Urgency::Calm };
            if w.decide(now, want, urgency).is_some() {
                writes += 1;
                w.on_result(now, WriteOutcome::Applied);
            }
        }
        // A cut needs a preceding increase, so cuts ≤ increases + 1 ≤ tokens + 1.
        assert!(writes <= 2 * (600 + BUCKET as u32) + 2, "writes {writes}");
    }

    #[test]
    fn failed_writes_back_off_and_refund_when_not_sent() {
        let mut w = WritePolicy::new(ms(0));
        w.decide(ms(0), r(100, 10), Urgency::Calm);
        w.on_result(ms(1), WriteOutcome::NotSent);
        assert_eq!(w.tokens(), BUCKET);
        assert!(w.decide(ms(50), r(100, 10), Urgency::Calm).is_none());
        assert!(w.decide(ms(150), r(100, 10), Urgency::Calm).is_some());
        w.on_result(ms(151), WriteOutcome::NotSent);
        assert!(w.decide(ms(300), r(100, 10), Urgency::Calm).is_none());
        assert!(w.decide(ms(360), r(100, 10), Urgency::Calm).is_some());
    }
}
