//! The steering engine's Prometheus text. Pure.

use std::fmt::Write as _;

use super::{SteeringEngine, escape_label, prometheus_code};
use crate::engine::health::py_float;

impl SteeringEngine {
    /// Prometheus text: the original's `wanctl_steering_enabled`, `wanctl_congestion_state`
    /// (GREEN 1, YELLOW 2, RED 4) and `wanctl_steering_transitions_total{from,to,wan}`
    /// (lower-cased), plus wanctl's additions; same layout as the autorate exposition.
    pub fn metrics_text(&self) -> String {
        let wan = escape_label(&self.primary_wan.to_lowercase());
        let mut out = String::with_capacity(1024);
        let mut family = |name: &str, help: &str, kind: &str, series: &[(String, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in series {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let one = |v: f64| vec![(format!("{{wan=\"{wan}\"}}"), py_float(v))];
        family(
            "wanctl_congestion_state",
            "Steering congestion state (1=GREEN, 2=YELLOW, 4=RED)",
            "gauge",
            &one(f64::from(prometheus_code(&self.state.congestion_state))),
        );
        if let Some(c) = &self.controller {
            family(
                "wanctl_steering_confidence_score",
                "Steering confidence score (0-100)",
                "gauge",
                &one(f64::from(c.score())),
            );
        }
        family(
            "wanctl_steering_enabled",
            "Steering rule enabled (1) or not (0)",
            "gauge",
            &one(if self.is_steering() { 1.0 } else { 0.0 }),
        );
        family(
            "wanctl_steering_flap_brake_active",
            "Flap brake penalty in force (1) or not (0)",
            "gauge",
            &one(if self.flap.is_active(self.last_now) { 1.0 } else { 0.0 }),
        );
        let count = |v: u64| vec![(format!("{{wan=\"{wan}\"}}"), v.to_string())];
        family(
            "wanctl_steering_action_failures_total",
            "Steering rule changes the router did not confirm",
            "counter",
            &count(self.action_failures),
        );
        family(
            "wanctl_steering_cycles_failed_total",
            "Steering cycles without a usable measurement",
            "counter",
            &count(self.failed_cycles),
        );
        let transitions: Vec<(String, String)> = self
            .transitions_total
            .iter()
            .map(|((from, to), n)| {
                (
                    format!("{{from=\"{}\",to=\"{}\",wan=\"{wan}\"}}", escape_label(from), escape_label(to)),
                    n.to_string(),
                )
            })
            .collect();
        if !transitions.is_empty() {
            family(
                "wanctl_steering_transitions_total",
                "Steering state transitions",
                "counter",
                &transitions,
            );
        }
        out
    }
}
