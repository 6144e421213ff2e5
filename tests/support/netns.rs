//! A throw-away network namespace for tests that need their own routes, addresses and
//! sysctls (CI runs as root; the kernel has `ip netns`, veth and TUN, but no netem).
//!
//! [`Netns::new`] runs `ip netns add wanctl-t<pid>-<n>` and `Drop` runs `ip netns del`.
//! Namespaces left behind by a test binary that was killed are removed by the next
//! [`Netns::new`] (their pid no longer exists). Every external command is bounded by
//! [`COMMAND_TIMEOUT`] and killed after it.
//!
//! Two ways to work inside:
//! - [`Netns::run_in`]: a closure on a fresh thread that has `setns(2)`-ed into the
//!   namespace. Sockets and TUN devices it creates live there; other threads are untouched.
//! - [`Netns::command`]: `ip netns exec NAME program …`, for running the `wanctl` binary.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use wanctl::sys::netns;

/// The longest any `ip` command may take before it is killed and reported.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

const PREFIX: &str = "wanctl-t";
const NETNS_DIR: &str = "/run/netns";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Whether the tests run as root (effective uid 0). Rig tests skip otherwise.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Runs `cmd` to completion with a deadline; kills it and fails with `TimedOut` after
/// `timeout`. Output is captured (commands here print little, so the pipes never fill).
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> io::Result<Output> {
    let shown = format!("{cmd:?}");
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            return child.wait_with_output();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{shown}: no exit within {timeout:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `cmd` bounded and fails unless it exits 0; the error carries its stderr.
pub fn run_ok(cmd: &mut Command) -> io::Result<()> {
    let shown = format!("{cmd:?}");
    let out = run_bounded(cmd, COMMAND_TIMEOUT)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{shown}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a fresh namespace with loopback up. Needs root.
    pub fn new() -> io::Result<Netns> {
        remove_stale();
        let name = format!("{PREFIX}{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        run_ok(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (as `ip netns list` shows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's bind-mount, which `setns(2)` accepts.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.name)
    }

    /// Runs `ip -n NAME args…` and fails unless it exits 0.
    pub fn ip(&self, args: &[&str]) -> io::Result<()> {
        run_ok(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// A command that runs `program` inside the namespace (`ip netns exec NAME program`).
    /// Add arguments, env and stdio as usual; bound it with [`run_bounded`] or a deadline.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `f` on a new thread inside the namespace and returns its result. A panic in
    /// `f` is re-raised here.
    pub fn run_in<R: Send>(&self, f: impl FnOnce() -> R + Send) -> io::Result<R> {
        let ns = File::open(self.path())?;
        std::thread::scope(|s| {
            let handle = s.spawn(move || -> io::Result<R> {
                netns::enter(ns.as_fd())?;
                Ok(f())
            });
            match handle.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Writes a sysctl of this namespace (`key` like `net/ipv4/ping_group_range`), from a
    /// thread inside it: `/proc/sys/net` shows the writer's namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        let path = PathBuf::from("/proc/sys").join(key);
        self.run_in(|| std::fs::write(&path, value))?
            .map_err(|e| io::Error::new(e.kind(), format!("write {}: {e}", path.display())))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run_ok(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("warning: could not delete network namespace {}: {e}", self.name);
        }
    }
}

/// Deletes `wanctl-t<pid>-<n>` namespaces whose test process is gone.
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else { return };
    for entry in entries.flatten().take(1000) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|rest| rest.split('-').next()) else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = run_ok(Command::new("ip").args(["netns", "del", &name]));
        }
    }
}
