//! Build script: stamps the binary with what `wanctl --version` reports beyond the crate
//! version, so a file copied onto a router can be traced back to its source and target.
//!
//! * `WANCTL_GIT_REV`: `git rev-parse --short HEAD`, or `unknown` when git or the
//!   repository is missing (a crates.io tarball, a build inside a container without git, a
//!   checkout owned by another user). The build never fails for lack of git.
//! * `WANCTL_TARGET`: the target triple cargo builds for (`TARGET`), e.g.
//!   `armv7-unknown-linux-musleabihf`.
//!
//! Reruns only when HEAD moves (`.git/HEAD`, the branch ref it names, `packed-refs`),
//! not on every source change.

// A build script is shell code: the pure-module bans of clippy.toml do not apply.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=WANCTL_GIT_REV");

    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    // An explicit WANCTL_GIT_REV wins: packagers building from a tarball know the rev.
    let rev = std::env::var("WANCTL_GIT_REV")
        .ok()
        .filter(|r| is_rev(r))
        .or_else(|| git(&manifest_dir, &["rev-parse", "--short", "HEAD"]).filter(|r| is_rev(r)))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=WANCTL_GIT_REV={rev}");

    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=WANCTL_TARGET={target}");

    if let Some(git_dir) = git(&manifest_dir, &["rev-parse", "--absolute-git-dir"]) {
        watch_head(Path::new(&git_dir));
    }
}

/// Runs git in `dir`; `None` on any failure (no git, not a repository, dubious ownership).
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// A short hex object name (guards against odd output ending up in `--version`).
fn is_rev(s: &str) -> bool {
    (4..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Emits rerun-if-changed for HEAD and what it points to. Only existing paths are named:
/// cargo treats a missing rerun-if-changed path as always stale.
fn watch_head(git_dir: &Path) {
    let head = git_dir.join("HEAD");
    if !head.exists() {
        return;
    }
    println!("cargo:rerun-if-changed={}", head.display());
    if let Ok(text) = std::fs::read_to_string(&head) {
        if let Some(reference) = text.trim().strip_prefix("ref: ") {
            let ref_path = git_dir.join(reference);
            if ref_path.exists() {
                println!("cargo:rerun-if-changed={}", ref_path.display());
            }
        }
    }
    let packed = git_dir.join("packed-refs");
    if packed.exists() {
        println!("cargo:rerun-if-changed={}", packed.display());
    }
}
