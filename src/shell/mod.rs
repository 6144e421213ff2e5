//! The shell: thin I/O around the pure engine. No policy lives here: it reads the clock
//! once per wakeup, moves bytes between sockets and the engine, and executes outputs.

// Shell code: the pure-module bans of clippy.toml do not apply here.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

pub mod alerting;
pub mod calibrate;
pub mod check_router;
pub mod event_loop;
pub mod files;
pub mod history_cli;
pub mod history_query;
pub mod http_server;
pub mod loadgen;
pub mod logger;
pub mod router_io;
pub mod startup;
pub mod status_page;
pub mod steering_loop;
pub mod store;
pub mod ticks;
#[cfg(feature = "tls")]
pub mod tls;
pub mod webhook;
