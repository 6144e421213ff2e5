//! The one integration-test binary (as ripgrep): each module below is a test area.

// Shell code: the pure-module bans of clippy.toml do not apply here.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod alerts;
mod bench;
mod calibrate;
mod check_router;
mod cli;
mod config_files;
mod contract;
mod daemon;
mod e2e;
mod fake_router_selftest;
mod fuzz;
mod health;
mod history;
mod hostile;
mod packaging;
mod pool;
mod purity;
mod robustness;
mod sim;
mod soak;
mod status_page;
mod steering;
mod steering_e2e;
mod steering_sim;
mod support;
mod sys;
mod tls;
mod transport;
