//! The one integration-test binary (as ripgrep): each module below is a test area.

mod bench;
mod check_router;
mod cli;
mod config_files;
mod contract;
mod daemon;
mod e2e;
mod fake_router_selftest;
mod health;
mod history;
mod packaging;
mod purity;
mod robustness;
mod sim;
mod status_page;
mod steering;
mod steering_sim;
mod support;
mod sys;
mod tls;
mod transport;
