//! Shared test rigs. Each submodule owns one rig; tests pick what they need.
//!
//! - [`netns`]: a throw-away network namespace (`ip netns add`, deleted on drop), commands
//!   and threads inside it. Needs root.
//! - [`reflector`]: ICMP reflectors with per-address delay and loss behind a TUN device in
//!   such a namespace. Needs root.

// Not every test area uses every helper; the rig is here for the later daemon tests too.
#![allow(dead_code)]

pub mod certs;
pub mod child;
pub mod closed_loop;
pub mod fake_router;
pub mod netns;
pub mod reflector;

/// True when the run asked to skip tests whose tools are missing
/// (`WANCTL_TEST_ALLOW_SKIP=1`). By default a missing tool fails its test, so a green
/// `make check` proves every test ran; `make test-deps` installs the tools.
pub fn allow_skip() -> bool {
    std::env::var("WANCTL_TEST_ALLOW_SKIP").is_ok_and(|v| v == "1")
}
