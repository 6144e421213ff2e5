//! Alerts of the autorate daemon: per WAN, the engine's [`Alerter`] fed once per tick from
//! the daemon's state, and the WAN's webhook client (its config's `alerting` block). Glue
//! only: the conditions are read from the engine, the rules are `engine::alerts`', the
//! bytes move in `shell::webhook`. The alerting block is read at start; a SIGHUP reload
//! does not change it (restart to change the webhook).

use crate::config::AutorateConfig;
use crate::engine::alerts::{AlertKind, Alerter};
use crate::engine::controller::Zone;
use crate::engine::daemon::Daemon;
use crate::shell::webhook::{Webhook, WebhookStats};
use crate::sys::poll::{Event, PollSet, Token};
use crate::time::Instant;

/// The alerts of every WAN.
#[derive(Debug)]
pub struct WanAlerts {
    wans: Vec<(Alerter, Webhook)>,
    /// Index into `wans` per daemon WAN (None: alerting off for it).
    slot: Vec<Option<usize>>,
    token_base: Token,
    last_tick: u64,
}

impl WanAlerts {
    /// One alerter and client per WAN whose config enables alerting; tokens from
    /// `token_base` on, one per WAN. Resolves webhook hosts (call at start).
    pub fn new(configs: &[AutorateConfig], token_base: Token) -> Result<WanAlerts, String> {
        let mut wans = Vec::new();
        let mut slot = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            match Webhook::new(&c.alerting, token_base + i)? {
                Some(hook) => {
                    slot.push(Some(wans.len()));
                    wans.push((Alerter::new(c.alerting.settings.clone(), &c.wan_name), hook));
                }
                None => slot.push(None),
            }
        }
        Ok(WanAlerts { wans, slot, token_base, last_tick: 0 })
    }

    /// Whether any WAN alerts.
    pub fn is_active(&self) -> bool {
        !self.wans.is_empty()
    }

    /// Delivery counters of daemon WAN `w`.
    pub fn stats(&self, w: usize) -> Option<WebhookStats> {
        let i = (*self.slot.get(w)?)?;
        Some(self.wans[i].1.stats())
    }

    /// Evaluates the conditions once per tick (call after the daemon handled its inputs).
    pub fn observe(&mut self, daemon: &Daemon, now: Instant, unix_ts: i64) {
        let ticks = daemon.stats().ticks;
        if ticks == self.last_tick || self.wans.is_empty() {
            return;
        }
        self.last_tick = ticks;
        for (w, slot) in self.slot.iter().enumerate() {
            let (Some(i), Some((setup, ctl, prober))) = (*slot, daemon.wan(w)) else { continue };
            let (alerter, hook) = &mut self.wans[i];
            let report = ctl.last_report();
            let (dl, ul) = (report.download, report.upload);
            if dl.transition.is_some() {
                alerter.transition(now, true);
            }
            if ul.transition.is_some() {
                alerter.transition(now, false);
            }
            let mbps = |r: crate::units::Bps| format!("{:.1}", r.0 as f64 / 1e6);
            let baseline = ctl.filter().baseline_ms();
            let delay = || report.measured_ms.map(|m| format!("{:.1}", m - baseline)).unwrap_or_default();
            let congested = |z: Zone| matches!(z, Zone::SoftRed | Zone::Red);
            alerter.observe(now, unix_ts, AlertKind::CongestionDl, congested(dl.zone), || {
                (
                    format!("download {} at {} Mbit/s", dl.zone.as_str(), mbps(dl.rate)),
                    vec![
                        ("zone", dl.zone.as_str().into()),
                        ("rate_mbps", mbps(dl.rate)),
                        ("added_delay_ms", delay()),
                    ],
                )
            });
            alerter.observe(now, unix_ts, AlertKind::CongestionUl, congested(ul.zone), || {
                (
                    format!("upload {} at {} Mbit/s", ul.zone.as_str(), mbps(ul.rate)),
                    vec![("zone", ul.zone.as_str().into()), ("rate_mbps", mbps(ul.rate))],
                )
            });
            let (d, u) = (ctl.download(), ctl.upload());
            let dl_floor = d.limits().floor_red;
            let ul_floor = u.limits().floor_red;
            alerter.observe(now, unix_ts, AlertKind::FloorDl, d.rate() <= dl_floor, || {
                (
                    format!("download pinned at its floor {} Mbit/s", mbps(dl_floor)),
                    vec![("rate_mbps", mbps(d.rate())), ("floor_mbps", mbps(dl_floor))],
                )
            });
            alerter.observe(now, unix_ts, AlertKind::FloorUl, u.rate() <= ul_floor, || {
                (
                    format!("upload pinned at its floor {} Mbit/s", mbps(ul_floor)),
                    vec![("rate_mbps", mbps(u.rate())), ("floor_mbps", mbps(ul_floor))],
                )
            });
            let conn = ctl.connectivity();
            alerter.observe(now, unix_ts, AlertKind::RouterUnreachable, !conn.is_reachable(), || {
                (
                    format!("router {} unreachable", setup.config.router.host),
                    vec![("consecutive_failures", conn.consecutive_failures().to_string())],
                )
            });
            let (healthy, needed) = prober.quorum(now);
            alerter.observe(now, unix_ts, AlertKind::QuorumLost, healthy < needed, || {
                (
                    format!("{healthy} healthy reflectors, {needed} needed: measurements held"),
                    vec![("healthy", healthy.to_string()), ("needed", needed.to_string())],
                )
            });
            alerter.observe_flapping(now, unix_ts);
            while let Some(a) = alerter.poll_alert() {
                hook.push(&a);
            }
        }
    }

    /// Whether `token` belongs to a webhook client.
    pub fn owns(&self, token: Token) -> bool {
        token >= self.token_base && token < self.token_base + self.slot.len().max(1)
    }

    /// A poll event of a webhook socket.
    pub fn on_event(&mut self, now: Instant, poll: &mut PollSet, ev: &Event) {
        for (_, hook) in &mut self.wans {
            if hook.owns(ev.token) {
                hook.on_event(now, poll, ev);
            }
        }
    }

    /// Starts due attempts, expires late ones.
    pub fn pump(&mut self, now: Instant, poll: &mut PollSet) {
        for (_, hook) in &mut self.wans {
            hook.pump(now, poll);
        }
    }

    /// The earliest deadline of any client.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.wans.iter().filter_map(|(_, h)| h.next_deadline()).min()
    }
}
