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
