//! The emulated WAN of the closed-loop testbed: reflectors on the namespace's TUN answer
//! after `base RTT + queueing delay` of a fluid bottleneck (`wanctl::sim::Bottleneck`)
//! whose shaper rate is the fake router's current download `max-limit`. So the daemon's
//! writes change the delay it measures: a closed loop over real ICMP and real HTTP.
//!
//! The driver runs in the calling thread for a bounded time, updating the model every
//! 2 ms, and records what happened for the figures.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use wanctl::rng::Rng;
use wanctl::sim::Bottleneck;
use wanctl::units::Bps;

use super::fake_router::{FakeSsh, RateHandle};
use super::reflector::Rig;

/// Download capacity over time.
#[derive(Debug, Clone)]
pub enum CapacityTrace {
    /// Constant (Mbit/s).
    Steady(f64),
    /// `(from_second, Mbit/s)` steps.
    Steps(Vec<(f64, f64)>),
    /// LTE-like random walk between bounds, a new value every `every` seconds (seeded).
    RandomWalk {
        /// Start (Mbit/s).
        start: f64,
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
        /// Seconds between changes.
        every: f64,
        /// Seed.
        seed: u64,
    },
    /// Cable evening ramp: from `from` down to `to` over `secs`, linearly.
    Ramp {
        /// Start (Mbit/s).
        from: f64,
        /// End (Mbit/s).
        to: f64,
        /// Duration of the ramp.
        secs: f64,
    },
}

impl CapacityTrace {
    fn steps(&self, horizon: f64) -> Vec<(f64, f64)> {
        match self {
            CapacityTrace::Steady(c) => vec![(0.0, *c)],
            CapacityTrace::Steps(s) => s.clone(),
            CapacityTrace::RandomWalk { start, min, max, every, seed } => {
                let mut rng = Rng::new(*seed);
                let (mut c, mut t, mut v) = (*start, 0.0, vec![]);
                while t <= horizon {
                    v.push((t, c));
                    c = (c * rng.uniform(0.75, 1.3)).clamp(*min, *max);
                    t += every;
                }
                v
            }
            CapacityTrace::Ramp { from, to, secs } => {
                (0..=100).map(|i| (secs * i as f64 / 100.0, from + (to - from) * i as f64 / 100.0)).collect()
            }
        }
    }
}

/// What the link did, sampled every 10 ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkSample {
    /// Seconds since the driver started.
    pub t: f64,
    /// Capacity (Mbit/s).
    pub capacity: f64,
    /// Shaper rate the router had (Mbit/s).
    pub shaped: f64,
    /// Added (queueing) delay (ms).
    pub delay_ms: f64,
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// Base RTT (ms).
    pub base_rtt_ms: f64,
    /// Jitter standard deviation (ms).
    pub jitter_ms: f64,
    /// Download demand (Mbit/s); saturating by default.
    pub demand_mbps: f64,
    /// Bottleneck buffer as delay.
    pub buffer: Duration,
    /// Probability that an echo is lost.
    pub loss: f64,
    /// From this second on, the demand is the second value (idle-then-load runs).
    pub demand_from: Option<(f64, f64)>,
    /// When set, the demand is `demand_mbps` only while the flag is up (a test's load
    /// server raises it while a client downloads).
    pub demand_flag: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Default for LinkOptions {
    fn default() -> Self {
        LinkOptions {
            base_rtt_ms: 20.0,
            jitter_ms: 0.5,
            demand_mbps: 1000.0,
            buffer: Duration::from_millis(600),
            loss: 0.0,
            demand_from: None,
            demand_flag: None,
        }
    }
}

/// The router side of the closed loop: where the shaper rate is read and the download
/// queue's counters are written.
pub trait Shaper {
    /// The download queue's `max-limit` (bit/s).
    fn max_limit(&self) -> Option<u64>;
    /// Sets the download queue's counters.
    fn set_counters(&self, c: QueueCounters);
    /// How often to read and write (a file-backed router is slower to touch).
    fn poll_every(&self) -> Duration {
        Duration::ZERO
    }
}

/// The download CAKE queue's counters as the model sees them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QueueCounters {
    /// Bytes delivered through the queue.
    pub bytes: u64,
    /// Packets CAKE dropped.
    pub dropped: u64,
    /// Backlog, bytes.
    pub queued_bytes: u64,
    /// Backlog, packets.
    pub queued_packets: u64,
}

/// CAKE in the model (issue 12): while the offered load exceeds the shaper rate, CAKE is
/// the bottleneck: it keeps a short standing queue (about 1 ms of the shaped rate, its AQM
/// at work) and drops 0.2 % of the packets it passes. Otherwise it is idle. When the line
/// collapses below the shaper rate the queue builds in the modem instead, which CAKE
/// cannot see (the case of a collapse below the autorate floor).
#[derive(Debug, Clone, Copy, Default)]
pub struct CakeModel {
    dropped: f64,
}

const PACKET_BITS: f64 = 1500.0 * 8.0;

impl CakeModel {
    /// Advances by `dt` s with `demand` and `shaped` (bit/s); returns (dropped, backlog packets).
    pub fn step(&mut self, dt: f64, demand: f64, shaped: f64) -> (u64, u64) {
        if shaped > 0.0 && demand > shaped * 1.01 {
            self.dropped += shaped / PACKET_BITS * dt * 0.002;
            (self.dropped as u64, (shaped * 0.001 / PACKET_BITS).ceil() as u64)
        } else {
            (self.dropped as u64, 0)
        }
    }
}

impl Shaper for RateHandle {
    fn max_limit(&self) -> Option<u64> {
        self.bps()
    }

    fn set_counters(&self, c: QueueCounters) {
        RateHandle::set_counters(self, c);
    }
}

/// The fake `ssh` console's state file as the router side (SSH transport tests).
#[derive(Debug)]
pub struct SshShaper<'a> {
    /// The fake ssh.
    pub ssh: &'a FakeSsh,
    /// The download queue's name.
    pub queue: &'a str,
}

impl Shaper for SshShaper<'_> {
    fn max_limit(&self) -> Option<u64> {
        self.ssh.queue_max_limit(self.queue)
    }

    fn set_counters(&self, c: QueueCounters) {
        self.ssh.update_state(|state| {
            let q = &mut state["queues"][self.queue];
            q["bytes"] = c.bytes.into();
            q["dropped"] = c.dropped.into();
            q["queued-bytes"] = c.queued_bytes.into();
            q["queued-packets"] = c.queued_packets.into();
        });
    }

    fn poll_every(&self) -> Duration {
        Duration::from_millis(20)
    }
}

/// Drives the model for `duration`; `on_tick(t)` runs every 100 ms (to inject events).
pub fn drive(
    rig: &Rig,
    reflectors: &[IpAddr],
    router_rate: &dyn Shaper,
    trace: &CapacityTrace,
    opts: &LinkOptions,
    duration: Duration,
    mut on_tick: impl FnMut(f64),
) -> Vec<LinkSample> {
    let steps = trace.steps(duration.as_secs_f64() + 1.0);
    let cap_at = |t: f64| steps.iter().rev().find(|(from, _)| t >= *from).map_or(steps[0].1, |s| s.1);
    let mut link = Bottleneck::default();
    let mut cake = CakeModel::default();
    let mut rng = Rng::new(7);
    for r in reflectors {
        rig.set_loss(*r, opts.loss);
    }
    let start = Instant::now();
    let mut last = start;
    let mut samples = Vec::with_capacity((duration.as_millis() / 10) as usize + 1);
    let mut next_sample = 0.0;
    let mut next_tick = 0.0;
    let (mut next_poll, mut next_counters, mut shaped) = (0.0, 0.0, 0u64);
    // Bounded: the loop ends at `duration`, each pass sleeps 2 ms.
    while start.elapsed() < duration {
        std::thread::sleep(Duration::from_millis(2));
        let now = Instant::now();
        let dt = now.duration_since(last).as_secs_f64();
        last = now;
        let t = now.duration_since(start).as_secs_f64();
        let cap = cap_at(t);
        if t >= next_poll {
            next_poll = t + router_rate.poll_every().as_secs_f64();
            shaped = router_rate.max_limit().unwrap_or(0);
        }
        let demand = match (&opts.demand_flag, opts.demand_from) {
            (Some(flag), _) => {
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    opts.demand_mbps
                } else {
                    0.0
                }
            }
            (None, Some((from, d))) if t >= from => d,
            _ => opts.demand_mbps,
        };
        let delay = link.step(dt, cap, demand, Bps(shaped), opts.buffer);
        let (dropped, queued_packets) = cake.step(dt, demand * 1e6, shaped as f64);
        // The download queue's counters count what the line delivered through the shaper
        // (the router's ingress shaper sits after the line), as the simulator's model does.
        if t >= next_counters {
            next_counters = t + router_rate.poll_every().as_secs_f64().max(0.05);
            router_rate.set_counters(QueueCounters {
                bytes: (link.delivered_bits / 8.0) as u64,
                dropped,
                queued_bytes: queued_packets * 1500,
                queued_packets,
            });
        }
        for r in reflectors {
            let jitter = (rng.normal() * opts.jitter_ms).abs();
            let d = opts.base_rtt_ms + delay + jitter;
            rig.set_delay(*r, Some(Duration::from_micros((d * 1000.0) as u64)));
        }
        if t >= next_sample {
            next_sample += 0.01;
            samples.push(LinkSample { t, capacity: cap, shaped: shaped as f64 / 1e6, delay_ms: delay });
        }
        if t >= next_tick {
            next_tick += 0.1;
            on_tick(t);
        }
    }
    samples
}

/// Figures of a run between `from` and `to` seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkFigures {
    /// Added delay percentiles (ms).
    pub p50: f64,
    /// 95th.
    pub p95: f64,
    /// 99th.
    pub p99: f64,
    /// Mean of min(shaped, capacity)/capacity.
    pub utilisation: f64,
}

/// Percentiles and utilisation over a window.
pub fn figures(samples: &[LinkSample], from: f64, to: f64) -> LinkFigures {
    let w: Vec<&LinkSample> = samples.iter().filter(|s| s.t >= from && s.t < to).collect();
    let mut d: Vec<f64> = w.iter().map(|s| s.delay_ms).collect();
    d.sort_by(f64::total_cmp);
    let pct = |p: f64| if d.is_empty() { 0.0 } else { d[((d.len() - 1) as f64 * p).round() as usize] };
    // Delivered = capacity while a queue stands, else the shaped rate.
    let util = if w.is_empty() {
        0.0
    } else {
        w.iter().map(|s| if s.delay_ms > 0.5 { 1.0 } else { (s.shaped / s.capacity).min(1.0) }).sum::<f64>()
            / w.len() as f64
    };
    LinkFigures { p50: pct(0.5), p95: pct(0.95), p99: pct(0.99), utilisation: util }
}
