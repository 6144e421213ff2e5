//! The one integration-test binary (as ripgrep): each module below is a test area.

mod cli;
mod config_files;
mod purity;
mod sim;
