//! System layer: thin, safe wrappers over the syscalls the shell needs, one file per family.
//! Shell code: it touches the OS and makes no decisions.
//!
//! This is the only module allowed to use `unsafe` (smoltcp allows it again only in
//! `phy/sys`). Every `unsafe {}` block carries a `// SAFETY:` line naming the invariant it
//! relies on. Raw fds become `OwnedFd` at once, and nothing here is an `unsafe fn`: callers
//! get `io::Result`s and owned handles. `nix` provides most wrappers; `libc` fills the gaps
//! (`ppoll`, `getrandom`, `setns`, the TUN ioctl).
//!
//! | file | owns |
//! |---|---|
//! | [`clock`] | CLOCK_MONOTONIC → [`crate::time::Instant`]; wall time for row stamps |
//! | [`poll`] | the poll set: fd + token + interest, reused buffers |
//! | [`timerfd`] | the periodic 50 ms cadence; expiration counts |
//! | [`signalfd`] | TERM/INT/HUP/CHLD/USR1 as readable events |
//! | [`socket`] | ICMP echo sockets (ping socket, raw fallback), non-blocking TCP connect |
//! | [`notify`] | systemd `sd_notify` protocol without libsystemd |
//! | [`random`] | a `getrandom(2)` seed for [`crate::rng::Rng`] |
//! | [`process`] | non-blocking child pipes, `waitpid(WNOHANG)` |
//! | [`tun`] | TUN devices (`/dev/net/tun`), for the test rig |
//! | [`netns`] | `setns(2)` for one thread, for the test rig |

// Shell code: the pure-module bans of clippy.toml do not apply here.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
#![allow(unsafe_code)]

/// Calls a `libc` function and maps a `-1` return to `io::Error::last_os_error()`
/// (mio's `sys/unix/mod.rs` has the same macro). The call itself is unsafe, so the
/// invocation must sit inside an `unsafe {}` block with a `// SAFETY:` comment.
macro_rules! syscall {
    ($fn: ident ( $($arg: expr),* $(,)* ) ) => {{
        let res = libc::$fn($($arg, )*);
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

pub mod clock;
pub mod netns;
pub mod notify;
pub mod poll;
pub mod process;
pub mod random;
pub mod signalfd;
pub mod socket;
pub mod timerfd;
pub mod tun;

/// Converts a `nix` error into the `io::Error` every function here returns.
fn from_nix(e: nix::Error) -> std::io::Error {
    std::io::Error::from(e)
}
