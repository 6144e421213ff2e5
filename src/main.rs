//! The `wanctl` binary: parse the command line, run, map errors to one stderr line and an
//! exit code (2 usage/config, 1 runtime, 0 success).

// Shell code: the pure-module bans of clippy.toml do not apply here.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = wanctl::app::main(std::env::args_os().collect());
    // Log lines still queued for the writer thread are written before the process ends.
    wanctl::shell::logger::finish(std::time::Duration::from_secs(2));
    code
}
