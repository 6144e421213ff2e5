//! When a computed rate reaches the router: the write policy. Pure.
//!
//! The controller computes a new rate pair every 50 ms; the router stores every `set` in
//! its persistent configuration (flash), so not every change may be written. The original
//! wrote every change until 10 writes had happened in 60 s and then wrote *nothing* until the
//! window slid on: after a capacity drop its ten writes were spent in half a second and the
//! link stayed throttled (or congested) for the rest of the minute.
//!
//! This policy keeps the long-run write rate at a budget (`continuous_monitoring.
//! write_budget_per_minute`, default the original's 10) while never holding back a cut
//! during congestion and never stranding the link below its capacity:
//!
//! * **Token bucket.** `budget` tokens (one minute's worth), refilled at `budget` per
//!   minute. Every write that may have reached the router costs one token.
//! * **Cuts are never held** in congestion (SOFT_RED, RED, or the first cut of an
//!   episode): they go out at once even with an empty bucket, and the balance goes
//!   negative (debt). During YELLOW (the early-warning band whose 4 % per-cycle decay would
//!   otherwise mean 20 writes a second) successive cuts are coalesced to one per
//!   `YELLOW_CUT_GAP`, and to one per token interval (60 s / budget) while the debt is
//!   at its cap.
//! * **The debt is capped** at half a bucket (`-budget / 2` tokens). A congested cut at the cap
//!   is written without deepening the debt. This is what makes stranding impossible: the
//!   original's limiter (and this policy before the cap) could be many tokens in debt
//!   after a long congestion episode and then hold every increase for a minute or more.
//! * **Increases wait for their floor and `INCREASE_GAP`.** The caller gives the balance an
//!   increase needs: `1` for a probe near a known capacity (the controller also paces
//!   those, see `engine::wan`), and `recovery_floor()` (the cap plus one token) for a
//!   climb back towards a capacity that is not known to be there. Debt is repaid by holding
//!   near-capacity probes only.
//!
//! **Bounds.** Let `b` be the budget per minute and `T` any span.
//! 1. *No stranding:* an increase asked for with the recovery floor is written at most
//!    `max(INCREASE_GAP, 60 s / b)` after it is asked for (6 s at the default 10/min; the
//!    balance never sits below `-b/2`, and one token refills in `60 / b` s), plus the retry
//!    back-off while the router does not answer.
//! 2. *Flash wear:* increases over `T` are at most `1.5b + b·T/60` (bucket plus cap plus
//!    refill). Cuts at the cap are free, but each needs congestion measured on samples
//!    sent after the previous cut took effect (`engine::wan`), and a congested cut lowers
//!    the rate by at least `1 - factor_down` (or reaches the floor, after which there is
//!    nothing to write), so a run of cuts with no increase between is at most
//!    `L = ln(ceiling/floor) / ln(1/factor_down)` long (about 14 for a 10:1 range at 0.85),
//!    and the number of runs is at most the number of increases plus one. The simulator
//!    checks the long-run average on every scenario (`src/sim/scenarios.rs`).
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

/// Burst allowance (tokens) at the default budget: one minute's worth.
pub const BUCKET: f64 = crate::config::DEFAULT_WRITE_BUDGET_PER_MIN;
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
    /// Budget: tokens per minute, also the bucket size and the debt cap.
    per_min: f64,
}

impl WritePolicy {
    /// A full bucket at the default budget and an unknown router state (the first
    /// decision is always written).
    pub fn new(now: Instant) -> WritePolicy {
        WritePolicy::with_budget(now, crate::config::DEFAULT_WRITE_BUDGET_PER_MIN)
    }

    /// [`WritePolicy::new`] with a budget of `per_min` writes a minute (≥ 1).
    pub fn with_budget(now: Instant, per_min: f64) -> WritePolicy {
        let per_min = per_min.max(1.0);
        WritePolicy {
            per_min,
            applied: None,
            rejected: None,
            in_flight: None,
            tokens: per_min,
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

    /// The budget (writes per minute); also the bucket size and the debt cap.
    pub fn budget_per_min(&self) -> f64 {
        self.per_min
    }

    /// The balance a recovery increase needs: one token above the debt cap, so such an
    /// increase waits at most one token interval (bound 1 of the module doc).
    pub fn recovery_floor(&self) -> f64 {
        1.0 - self.max_debt()
    }

    /// The deepest the balance goes: half a bucket. The cap, not its depth, is what bounds
    /// the hold of an increase; a shallow cap keeps a start-up or congestion transient
    /// from spending more than one and a half minutes' budget.
    pub fn max_debt(&self) -> f64 {
        self.per_min / 2.0
    }

    /// Seconds for one token to refill.
    pub fn token_interval(&self) -> Duration {
        Duration::from_secs_f64(60.0 / self.per_min)
    }

    /// Brings the token balance up to `now` (callers that read [`WritePolicy::tokens`] to
    /// decide something must refresh first).
    pub fn refresh(&mut self, now: Instant) {
        self.refill(now);
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_min / 60.0).min(self.per_min);
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
                // At the debt cap a YELLOW cut waits for a token's worth of time.
                _ if self.tokens < 1.0 - self.max_debt() => {
                    since_write.is_none_or(|s| s >= self.token_interval().max(YELLOW_CUT_GAP))
                }
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
        // The debt never deepens past the cap (a congested cut there is free).
        self.tokens = (self.tokens - 1.0).max(-self.max_debt()).min(self.tokens);
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
                    self.tokens = (self.tokens + 1.0).min(self.per_min);
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
        // A cut needs a preceding increase, so cuts ≤ increases + 1; increases need a token.
        assert!(writes <= 2 * (600 + BUCKET as u32) + 2, "writes {writes}");
    }

    #[test]
    fn issue_11_debt_is_capped_so_a_recovery_increase_waits_at_most_one_token_interval() {
        let mut w = WritePolicy::new(ms(0));
        w.decide(ms(0), r(1000, 100), Urgency::Calm);
        w.on_result(ms(1), WriteOutcome::Applied);
        // A long congestion episode: 60 congested cuts (the original's stranding case left
        // the bucket 14 tokens in debt after ~24).
        let mut rate = 1000;
        for i in 1..=60u64 {
            rate -= 10;
            assert!(w.decide(ms(i * 100), r(rate, 100), Urgency::Congested).is_some(), "cut {i}");
            w.on_result(ms(i * 100), WriteOutcome::Applied);
        }
        assert_eq!(w.tokens(), -BUCKET / 2.0, "debt capped at half a bucket");
        // The capacity is back: a recovery increase goes out within one token interval.
        let asked = ms(6_000);
        let floor = w.recovery_floor();
        let mut t = asked;
        loop {
            if w.decide_with_floor(t, r(rate * 2, 100), Urgency::Calm, floor).is_some() {
                break;
            }
            assert!(
                t.saturating_since(asked) <= w.token_interval() + Duration::from_millis(50),
                "held past one token interval"
            );
            t += Duration::from_millis(50);
        }
        w.on_result(t, WriteOutcome::Applied);
        // ...and the next one too (the bound holds for every step of the climb).
        let asked = t;
        loop {
            t += Duration::from_millis(50);
            if w.decide_with_floor(t, r(rate * 4, 100), Urgency::Calm, floor).is_some() {
                break;
            }
            assert!(t.saturating_since(asked) <= w.token_interval() + Duration::from_millis(50));
        }
    }

    #[test]
    fn yellow_cuts_at_the_debt_cap_wait_a_token_interval() {
        let mut w = WritePolicy::with_budget(ms(0), 10.0);
        w.decide(ms(0), r(1000, 100), Urgency::Calm);
        w.on_result(ms(1), WriteOutcome::Applied);
        for i in 1..=30u64 {
            w.decide(ms(i * 100), r(1000 - i * 10, 100), Urgency::Congested);
            w.on_result(ms(i * 100), WriteOutcome::Applied);
        }
        assert!(w.decide(ms(3500), r(600, 100), Urgency::Warning).is_none(), "coalesced at the cap");
        assert!(w.decide(ms(3100 + 6000), r(600, 100), Urgency::Warning).is_some());
    }

    #[test]
    fn budget_sets_bucket_refill_and_cap() {
        let mut w = WritePolicy::with_budget(ms(0), 30.0);
        assert_eq!(w.tokens(), 30.0);
        assert_eq!(w.recovery_floor(), -14.0);
        assert_eq!(w.token_interval(), Duration::from_secs(2));
        w.decide(ms(0), r(1, 1), Urgency::Calm);
        w.on_result(ms(0), WriteOutcome::Applied);
        w.refresh(ms(1000));
        assert!((w.tokens() - 29.5).abs() < 1e-9);
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
