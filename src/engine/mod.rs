//! The engine: every decision wanctl makes, without I/O. Pure: inputs and `now` in,
//! decisions out; no clock, no sockets, no files.
//!
//! * [`controller`]: the per-direction zone state machines (faithful to the original);
//! * [`baseline`]: load and baseline EWMAs;
//! * [`writer`]: which decisions reach the router, and when (write budget);
//! * [`connectivity`]: router reachability tracking;
//! * [`wan`]: one WAN's whole cycle, tying the above together.

pub mod alerts;
pub mod audit;
pub mod baseline;
pub mod calibrate;
pub mod connectivity;
pub mod controller;
pub mod daemon;
pub mod health;
pub mod history;
pub mod load;
pub mod metrics;
pub mod prober;
pub mod router;
pub mod state;
pub mod stats;
pub mod steering;
pub mod wan;
pub mod writer;

#[cfg(test)]
mod tests;
