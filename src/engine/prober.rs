//! The probe scheduler: which reflector gets an echo request when, the sequence → send-time
//! table, matching replies, timeouts, and per-reflector RTT/loss statistics. Pure: the
//! shell sends what [`Prober::poll_send`] yields and feeds back what arrives.
//!
//! Every tick one echo request goes to each active reflector (the first host, or the first
//! three in median-of-three mode, as the original). Replies are matched by sequence number
//! (the identifier is the socket's, and datagram ping sockets rewrite it, so it is not used
//! for matching). A reply that arrives late is still a sample, timed from its own send
//! time; a probe older than the timeout is counted lost and forgotten. Nothing here ever
//! waits: a dead or slow reflector only costs missing or late samples.

use core::net::IpAddr;
use std::time::Duration;

use crate::engine::wan::{Fallback, Sample};
use crate::time::Instant;

/// Probes remembered per reflector (in flight at once): one per tick for the longest
/// timeout we allow (20 × 50 ms = 1 s; longer timeouts just forget earlier).
const IN_FLIGHT: usize = 64;
/// Window for per-reflector loss statistics (probes).
const LOSS_WINDOW: u32 = 200;

/// A request the shell must send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Index of the reflector in the configured list.
    pub reflector: usize,
    /// Destination.
    pub addr: IpAddr,
    /// ICMP sequence number.
    pub seq: u16,
}

/// Statistics of one reflector (health and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ReflectorStats {
    /// Requests sent.
    pub sent: u64,
    /// Replies matched.
    pub received: u64,
    /// Probes that timed out.
    pub lost: u64,
    /// Last RTT (ms).
    pub last_rtt_ms: Option<f64>,
    /// Smoothed RTT (ms, alpha 0.1).
    pub srtt_ms: Option<f64>,
    /// Loss over the recent window (0..1).
    pub recent_loss: f64,
}

#[derive(Debug, Clone)]
struct Reflector {
    addr: IpAddr,
    in_flight: [(u16, Instant, bool); IN_FLIGHT],
    stats: ReflectorStats,
    window_sent: u32,
    window_lost: u32,
}

/// The prober of one WAN.
#[derive(Debug, Clone)]
pub struct Prober {
    reflectors: Vec<Reflector>,
    median: bool,
    timeout: Duration,
    next_seq: u16,
    pending_sends: usize,
    round_sent_at: Option<Instant>,
    /// Replies of the newest round seen since the last sample: (sent_at, rtt_ms).
    fresh: [(Instant, f64); 8],
    fresh_len: usize,
    last_reply_at: Option<Instant>,
    started_at: Instant,
}

impl Prober {
    /// A prober for `addrs`; with `median` the first three are used together.
    pub fn new(addrs: &[IpAddr], median: bool, timeout: Duration, first_seq: u16, now: Instant) -> Prober {
        let use_n = if median && addrs.len() >= 3 { 3 } else { addrs.len().min(1) };
        let reflectors = addrs[..use_n]
            .iter()
            .map(|&addr| Reflector {
                addr,
                in_flight: [(0, Instant::ZERO, false); IN_FLIGHT],
                stats: ReflectorStats::default(),
                window_sent: 0,
                window_lost: 0,
            })
            .collect();
        Prober {
            reflectors,
            median: use_n == 3,
            timeout,
            next_seq: first_seq,
            pending_sends: 0,
            round_sent_at: None,
            fresh: [(Instant::ZERO, 0.0); 8],
            fresh_len: 0,
            last_reply_at: None,
            started_at: now,
        }
    }

    /// The reflectors in use.
    pub fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.reflectors.iter().map(|r| r.addr)
    }

    /// Per-reflector statistics, in configured order.
    pub fn stats(&self) -> impl Iterator<Item = (IpAddr, ReflectorStats)> + '_ {
        self.reflectors.iter().map(|r| (r.addr, r.stats))
    }

    /// Starts a round: one request per reflector, drained with [`Prober::poll_send`].
    pub fn on_tick(&mut self, now: Instant) {
        self.expire(now);
        self.pending_sends = self.reflectors.len();
        self.round_sent_at = Some(now);
    }

    /// The next request of the current round.
    pub fn poll_send(&mut self, now: Instant) -> Option<Probe> {
        if self.pending_sends == 0 {
            return None;
        }
        let i = self.reflectors.len() - self.pending_sends;
        self.pending_sends -= 1;
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let r = &mut self.reflectors[i];
        let slot = usize::from(seq) % IN_FLIGHT;
        if r.in_flight[slot].2 {
            Self::count_lost(r);
        }
        r.in_flight[slot] = (seq, now, true);
        r.stats.sent += 1;
        r.window_sent += 1;
        Some(Probe { reflector: i, addr: r.addr, seq })
    }

    /// The shell could not send a request (socket error): counts as lost at once.
    pub fn on_send_failed(&mut self, probe: Probe) {
        if let Some(r) = self.reflectors.get_mut(probe.reflector) {
            let slot = usize::from(probe.seq) % IN_FLIGHT;
            if r.in_flight[slot].2 && r.in_flight[slot].0 == probe.seq {
                r.in_flight[slot].2 = false;
                Self::count_lost(r);
            }
        }
    }

    fn count_lost(r: &mut Reflector) {
        r.stats.lost += 1;
        r.window_lost += 1;
        if r.window_sent >= LOSS_WINDOW {
            r.stats.recent_loss = f64::from(r.window_lost) / f64::from(r.window_sent);
            r.window_sent = 0;
            r.window_lost = 0;
        }
    }

    /// An echo reply from `from` with `seq` arrived at `at` (kernel timestamp if known).
    /// Returns the RTT (ms) if it matched an outstanding probe.
    pub fn on_reply(&mut self, at: Instant, from: IpAddr, seq: u16) -> Option<f64> {
        let r = self.reflectors.iter_mut().find(|r| r.addr == from)?;
        let slot = usize::from(seq) % IN_FLIGHT;
        let (s, sent_at, live) = r.in_flight[slot];
        if !live || s != seq {
            return None;
        }
        r.in_flight[slot].2 = false;
        if at.saturating_since(sent_at) >= self.timeout {
            return None; // already counted lost by expire(), or about to be
        }
        let rtt = at.saturating_since(sent_at).as_secs_f64() * 1000.0;
        r.stats.received += 1;
        r.stats.last_rtt_ms = Some(rtt);
        r.stats.srtt_ms = Some(r.stats.srtt_ms.map_or(rtt, |s| 0.9 * s + 0.1 * rtt));
        if r.window_sent >= LOSS_WINDOW {
            r.stats.recent_loss = f64::from(r.window_lost) / f64::from(r.window_sent);
            r.window_sent = 0;
            r.window_lost = 0;
        }
        self.last_reply_at = Some(at);
        // Keep only the newest round's replies for the next sample.
        let newest = self.fresh[..self.fresh_len].iter().map(|f| f.0).max();
        match newest {
            Some(n) if sent_at < n => {}
            Some(n) if sent_at > n => {
                self.fresh[0] = (sent_at, rtt);
                self.fresh_len = 1;
            }
            _ if self.fresh_len < self.fresh.len() => {
                self.fresh[self.fresh_len] = (sent_at, rtt);
                self.fresh_len += 1;
            }
            _ => {}
        }
        Some(rtt)
    }

    fn expire(&mut self, now: Instant) {
        let timeout = self.timeout;
        for r in &mut self.reflectors {
            for i in 0..IN_FLIGHT {
                let (_, sent_at, live) = r.in_flight[i];
                if live && now.saturating_since(sent_at) >= timeout {
                    r.in_flight[i].2 = false;
                    Self::count_lost(r);
                }
            }
        }
    }

    /// The sample for this tick (call once per tick, before [`Prober::on_tick`]):
    /// the newest round's RTT (median of its replies in median mode), `Waiting` while
    /// replies may still come, `Lost` once nothing answered for a whole timeout.
    pub fn take_sample(&mut self, now: Instant, fallback: Fallback) -> Sample {
        if self.fresh_len > 0 {
            let sent_at = self.fresh[0].0;
            let mut v = [0.0f64; 8];
            let n = self.fresh_len;
            for (d, f) in v.iter_mut().zip(&self.fresh[..n]) {
                *d = f.1;
            }
            let v = &mut v[..n];
            v.sort_by(f64::total_cmp);
            let rtt = if self.median && n >= 2 {
                if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
            } else {
                v[n - 1]
            };
            self.fresh_len = 0;
            return Sample::Timed { rtt_ms: rtt, sent_at };
        }
        let silent_since = self.last_reply_at.unwrap_or(self.started_at);
        if self.reflectors.is_empty() || now.saturating_since(silent_since) >= self.timeout {
            Sample::Lost(fallback)
        } else {
            Sample::Waiting
        }
    }

    /// True when nothing has answered for a whole timeout (fallback checks should run).
    pub fn is_silent(&self, now: Instant) -> bool {
        now.saturating_since(self.last_reply_at.unwrap_or(self.started_at)) >= self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, n))
    }

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn round(p: &mut Prober, now: Instant) -> Vec<Probe> {
        p.on_tick(now);
        std::iter::from_fn(|| p.poll_send(now)).collect()
    }

    #[test]
    fn median_of_three_uses_the_newest_round() {
        let mut p = Prober::new(&[ip(1), ip(2), ip(3), ip(4)], true, Duration::from_secs(1), 0, ms(0));
        let sent = round(&mut p, ms(0));
        assert_eq!(sent.len(), 3);
        assert_eq!(p.on_reply(ms(20), ip(1), sent[0].seq), Some(20.0));
        assert_eq!(p.on_reply(ms(30), ip(2), sent[1].seq), Some(30.0));
        assert_eq!(p.on_reply(ms(45), ip(3), sent[2].seq), Some(45.0));
        assert_eq!(p.take_sample(ms(50), Fallback::Pending), Sample::Timed { rtt_ms: 30.0, sent_at: ms(0) });
        assert_eq!(p.take_sample(ms(100), Fallback::Pending), Sample::Waiting);
    }

    #[test]
    fn single_mode_probes_only_the_first_host() {
        let mut p = Prober::new(&[ip(1), ip(2), ip(3)], false, Duration::from_secs(1), 0, ms(0));
        assert_eq!(round(&mut p, ms(0)).len(), 1);
    }

    #[test]
    fn late_replies_still_count_and_dead_reflectors_become_lost() {
        let t = Duration::from_secs(1);
        let mut p = Prober::new(&[ip(1)], false, t, 65_530, ms(0));
        let first = round(&mut p, ms(0))[0];
        round(&mut p, ms(50));
        // 600 ms late: still a sample, timed from its own send time.
        assert_eq!(p.on_reply(ms(600), ip(1), first.seq), Some(600.0));
        assert_eq!(
            p.take_sample(ms(600), Fallback::Pending),
            Sample::Timed { rtt_ms: 600.0, sent_at: ms(0) }
        );
        for i in 2..40u64 {
            round(&mut p, ms(i * 50));
        }
        assert_eq!(p.take_sample(ms(1650), Fallback::Connected), Sample::Lost(Fallback::Connected));
        let s = p.stats().next().expect("one reflector").1;
        assert_eq!(s.received, 1);
        assert!(s.lost >= 10, "{s:?}");
        // Wrong reflector, unknown seq and duplicates are ignored.
        assert_eq!(p.on_reply(ms(1700), ip(9), 1), None);
        assert_eq!(p.on_reply(ms(1700), ip(1), first.seq), None);
    }
}
