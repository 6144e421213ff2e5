//! wanctl: adaptive CAKE bandwidth control for MikroTik RouterOS.
//!
//! The crate is split the sans-IO way (see docs/ARCHITECTURE.md):
//!
//! | pure (no syscalls, no clock, no randomness of its own) | shell (thin, no policy) |
//! |---|---|
//! | [`config`], [`engine`], [`sim`], [`time`], [`units`], [`rng`] | `main.rs`, `cli` |
//!
//! Pure modules receive `now` and bytes as arguments and return decisions; `make purity`
//! fails the build if one of them reads a clock, opens a file or socket, spawns, or uses a
//! `HashMap`.

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod engine;
pub mod plot;
pub mod rng;
pub mod shell;
pub mod sim;
pub mod sys;
pub mod time;
pub mod units;
pub mod wire;

/// The version string printed by `--version` and reported in health output.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision the binary was built from (`git rev-parse --short HEAD`), or `unknown`
/// when it was built without git (set by `build.rs`).
pub const GIT_REV: &str = env!("WANCTL_GIT_REV");

/// The target triple the binary was built for (set by `build.rs`).
pub const TARGET: &str = env!("WANCTL_TARGET");

/// The long version line: `wanctl <version> (<git rev>) <target> features: tls|no-tls`,
/// e.g. `wanctl 0.1.0 (ae67125) armv7-unknown-linux-musleabihf features: tls`. It names the
/// target and the TLS feature because a binary copied onto a router carries no other label.
pub fn version_long() -> String {
    let features = if cfg!(feature = "tls") { "tls" } else { "no-tls" };
    format!("wanctl {VERSION} ({GIT_REV}) {TARGET} features: {features}")
}
