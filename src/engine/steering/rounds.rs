//! Ping rounds of the steering daemon (issue 12). Pure: the shell reports what it sent and
//! what came back, with times; this decides what a cycle measured.
//!
//! The original ran a blocking `ping -c N -W timeout` per cycle and so waited up to the
//! timeout for slow replies. The first version of this daemon closed a round at the next
//! cycle tick and threw every later reply away: with a 0.5 s cycle and a 620 ms RTT (the
//! primary at its worst) every cycle was "unmeasurable" and steering never engaged.
//!
//! Here a probe stays open until `timeout` (the config's `timeouts.ping`, default 2 s); rounds
//! overlap; a reply is matched to its own probe by sequence number, so its RTT is measured
//! from its own send time whatever cycle it lands in. What a cycle measured
//! ([`CycleRtt`]):
//! * **`Measured`**: the median of the RTTs of the replies that arrived since the previous
//!   cycle, from any round. An RTT larger than the cycle interval is a (very bad)
//!   measurement like any other.
//! * **`Pending`**: no reply arrived this cycle, but probes sent within the timeout are
//!   still open (the RTT is at least their age, or they are lost, and nothing can tell the
//!   two apart yet). Not a failure: the engine holds its counters and waits. With rounds
//!   every cycle this only happens while the RTT grows faster than time passes, or when a
//!   whole round is lost.
//! * **`Lost`**: nothing came back for longer than the timeout: every open probe expired
//!   unanswered and no reply arrived. This, and only this, is unmeasurable.
//! * **`Idle`**: nothing was ever sent (the first cycle).
//!
//! Memory is bounded: at most [`MAX_OPEN`] probes are open (the oldest is dropped beyond,
//! counted as expired), replies to unknown or expired sequence numbers are ignored.

use std::collections::VecDeque;
use std::time::Duration;

use crate::time::Instant;

/// Most probes kept open: 16 per cycle for 2 s at 50 ms cycles is 640; real configs
/// (3 probes, 0.5 s, 2 s) need 12.
pub const MAX_OPEN: usize = 1024;

/// What one cycle measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CycleRtt {
    /// Median RTT (ms) of `replies` replies that arrived this cycle.
    Measured {
        /// Median (ms).
        median_ms: f64,
        /// How many replies.
        replies: u32,
    },
    /// No reply this cycle; probes are still within their timeout. `waited_ms` is the age of
    /// the youngest open probe that was sent before this cycle (a lower bound of the RTT if
    /// it is not lost).
    Pending {
        /// Age (ms).
        waited_ms: f64,
    },
    /// No reply within the timeout.
    Lost,
    /// Nothing sent yet.
    Idle,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    seq: u16,
    sent: Instant,
}

/// The open probes and this cycle's replies.
#[derive(Debug, Clone)]
pub struct PingRounds {
    timeout: Duration,
    open: VecDeque<Open>,
    replies: Vec<f64>,
    last_reply_at: Option<Instant>,
    first_sent_at: Option<Instant>,
    ever_sent: bool,
    /// Probes that expired unanswered, in all.
    pub expired: u64,
    /// Replies matched, in all.
    pub matched: u64,
    /// Replies that arrived after the cycle interval (late but counted), in all.
    pub late: u64,
    last_cycle_at: Option<Instant>,
}

impl PingRounds {
    /// Probes count until `timeout`.
    pub fn new(timeout: Duration) -> PingRounds {
        PingRounds {
            timeout: timeout.max(Duration::from_millis(1)),
            open: VecDeque::new(),
            replies: Vec::new(),
            last_reply_at: None,
            first_sent_at: None,
            ever_sent: false,
            expired: 0,
            matched: 0,
            late: 0,
            last_cycle_at: None,
        }
    }

    /// The timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Probes open now.
    pub fn open(&self) -> usize {
        self.open.len()
    }

    /// A probe with `seq` was sent at `now`.
    pub fn on_sent(&mut self, seq: u16, now: Instant) {
        self.ever_sent = true;
        self.first_sent_at.get_or_insert(now);
        if self.open.len() >= MAX_OPEN {
            self.open.pop_front();
            self.expired += 1;
        }
        // A reused sequence number (after 65536 probes) replaces the old entry.
        if let Some(pos) = self.open.iter().position(|o| o.seq == seq) {
            self.open.remove(pos);
        }
        self.open.push_back(Open { seq, sent: now });
    }

    /// An echo reply with `seq` arrived at `at` (the kernel stamp if there is one). Returns
    /// the RTT (ms) if it answered an open probe within the timeout.
    pub fn on_reply(&mut self, seq: u16, at: Instant) -> Option<f64> {
        let pos = self.open.iter().position(|o| o.seq == seq)?;
        let o = self.open.remove(pos)?;
        let rtt = at.saturating_since(o.sent);
        if rtt > self.timeout {
            self.expired += 1;
            return None;
        }
        if self.last_cycle_at.is_some_and(|c| o.sent < c && at.saturating_since(c) > Duration::ZERO) {
            self.late += 1;
        }
        self.matched += 1;
        self.last_reply_at = Some(at);
        let ms = rtt.as_secs_f64() * 1000.0;
        self.replies.push(ms);
        Some(ms)
    }

    /// Closes the cycle at `now`: expires probes older than the timeout and says what the
    /// cycle measured.
    pub fn close_cycle(&mut self, now: Instant) -> CycleRtt {
        let previous = self.last_cycle_at.replace(now);
        while let Some(o) = self.open.front() {
            if now.saturating_since(o.sent) > self.timeout {
                self.open.pop_front();
                self.expired += 1;
            } else {
                break;
            }
        }
        if !self.replies.is_empty() {
            self.replies.sort_by(f64::total_cmp);
            let n = self.replies.len();
            let median = if n % 2 == 1 {
                self.replies[n / 2]
            } else {
                (self.replies[n / 2 - 1] + self.replies[n / 2]) / 2.0
            };
            self.replies.clear();
            return CycleRtt::Measured { median_ms: median, replies: n as u32 };
        }
        if !self.ever_sent {
            return CycleRtt::Idle;
        }
        // Nothing came back for longer than the timeout: lost (new rounds keep probes open,
        // so "open probes" alone cannot say it).
        let silent_since = self.last_reply_at.or(self.first_sent_at).unwrap_or(now);
        if now.saturating_since(silent_since) > self.timeout || self.open.is_empty() {
            return CycleRtt::Lost;
        }
        // The youngest probe sent before this cycle began (probes sent at `now` by the
        // caller come after this call).
        let before = previous.unwrap_or(now);
        match self.open.iter().rev().find(|o| o.sent <= before) {
            Some(o) => CycleRtt::Pending { waited_ms: now.saturating_since(o.sent).as_secs_f64() * 1000.0 },
            // Only probes of this very instant are open (a caller that sends first).
            None => CycleRtt::Pending { waited_ms: 0.0 },
        }
    }

    /// When the last matched reply arrived.
    pub fn last_reply_at(&self) -> Option<Instant> {
        self.last_reply_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Instant {
        Instant::from_micros(v * 1000)
    }

    /// 3 probes a cycle of 500 ms, RTT 620 ms: every cycle after the first two measures
    /// 620 ms; none is lost or pending once the pipe is full.
    #[test]
    fn replies_slower_than_the_cycle_are_measured_in_a_later_cycle() {
        let mut r = PingRounds::new(Duration::from_secs(2));
        let mut seq = 0u16;
        let mut arrivals: Vec<(u64, u16)> = vec![];
        let mut out = vec![];
        for cycle in 0..10u64 {
            let now = cycle * 500;
            // Deliver replies that arrived before this tick.
            arrivals.sort();
            while let Some(&(t, s)) = arrivals.first() {
                if t > now {
                    break;
                }
                arrivals.remove(0);
                r.on_reply(s, ms(t));
            }
            out.push(r.close_cycle(ms(now)));
            for i in 0..3 {
                seq += 1;
                r.on_sent(seq, ms(now));
                arrivals.push((now + 620 + i, seq));
            }
        }
        assert_eq!(out[0], CycleRtt::Idle);
        assert!(matches!(out[1], CycleRtt::Pending { waited_ms } if (waited_ms - 500.0).abs() < 1e-6));
        for c in &out[2..] {
            match c {
                CycleRtt::Measured { median_ms, replies: 3 } => assert!((median_ms - 621.0).abs() < 1e-6),
                other => panic!("expected a 621 ms measurement, got {other:?}"),
            }
        }
        assert_eq!(r.expired, 0);
        assert!(r.late > 0);
    }

    #[test]
    fn nothing_back_within_the_timeout_is_lost_and_late_replies_are_ignored() {
        let mut r = PingRounds::new(Duration::from_millis(1000));
        r.on_sent(1, ms(0));
        assert!(matches!(r.close_cycle(ms(500)), CycleRtt::Pending { .. }));
        assert_eq!(r.close_cycle(ms(1001)), CycleRtt::Lost);
        assert_eq!(r.expired, 1);
        // The reply after its timeout is not a measurement.
        assert_eq!(r.on_reply(1, ms(1200)), None);
        assert_eq!(r.close_cycle(ms(1500)), CycleRtt::Lost);
    }

    #[test]
    fn unknown_and_duplicate_replies_are_ignored_and_the_table_is_bounded() {
        let mut r = PingRounds::new(Duration::from_secs(2));
        r.on_sent(7, ms(0));
        assert_eq!(r.on_reply(8, ms(10)), None);
        assert_eq!(r.on_reply(7, ms(10)), Some(10.0));
        assert_eq!(r.on_reply(7, ms(11)), None);
        for s in 0..(MAX_OPEN as u16 + 10) {
            r.on_sent(s, ms(20));
        }
        assert_eq!(r.open(), MAX_OPEN);
        assert_eq!(r.expired, 10);
    }

    #[test]
    fn partial_loss_still_measures() {
        let mut r = PingRounds::new(Duration::from_secs(2));
        for s in 1..=3 {
            r.on_sent(s, ms(0));
        }
        r.on_reply(2, ms(40));
        assert_eq!(r.close_cycle(ms(500)), CycleRtt::Measured { median_ms: 40.0, replies: 1 });
        // The two lost ones are open until the timeout, then expire; nothing else came.
        assert!(matches!(r.close_cycle(ms(1000)), CycleRtt::Pending { .. }));
        assert_eq!(r.close_cycle(ms(2500)), CycleRtt::Lost);
        assert_eq!(r.expired, 2);
    }
}
