//! Files: atomic replace, the state file, lock files. Shell code: touches the file system,
//! decides nothing beyond what INTERFACES.md §6–§7 prescribe.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::engine::state::StateFile;

/// Creates the parent directory of `path` (0755) if needed.
pub fn ensure_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => {
            fs::create_dir_all(dir)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        }
        _ => Ok(()),
    }
}

/// Replaces `path` atomically with `bytes`: a temp file in the same directory (mode 0600),
/// fsync, rename. The temp file is removed on error.
pub fn write_atomic(path: &Path, bytes: &[u8], nonce: u64) -> io::Result<()> {
    ensure_parent(path)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = path.with_file_name(format!("{name}.{nonce:016x}.tmp"));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// What loading the state file found.
#[derive(Debug)]
pub enum LoadedState {
    /// No file: defaults.
    Missing,
    /// A valid state.
    Valid(StateFile),
    /// Unparsable: moved aside to the given path; defaults are used.
    Corrupt {
        /// Why it did not parse.
        reason: String,
        /// Where the bad file now is.
        moved_to: PathBuf,
    },
}

/// Reads the autorate state file; a corrupt one is renamed to `<path>.corrupt`.
pub fn load_state(path: &Path) -> io::Result<LoadedState> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LoadedState::Missing),
        Err(e) => return Err(e),
    };
    match StateFile::decode(&bytes) {
        Ok(s) => Ok(LoadedState::Valid(s)),
        Err(reason) => {
            let mut moved = path.as_os_str().to_owned();
            moved.push(".corrupt");
            let moved_to = PathBuf::from(moved);
            fs::rename(path, &moved_to)?;
            Ok(LoadedState::Corrupt { reason, moved_to })
        }
    }
}

/// A held lock file, removed on drop.
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    released: bool,
}

/// Why a lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another live process holds it.
    Held {
        /// The lock path.
        path: PathBuf,
        /// Its PID, if the file had one.
        pid: Option<i32>,
    },
    /// A PID-less legacy lock younger than `lock_timeout`.
    Fresh {
        /// The lock path.
        path: PathBuf,
        /// Its age.
        age: Duration,
    },
    /// File system error.
    Io {
        /// The lock path.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held { path, pid: Some(p) } => {
                write!(f, "lock {}: held by running process {p}; another instance is running", path.display())
            }
            LockError::Held { path, pid: None } => {
                write!(f, "lock {}: held by another process", path.display())
            }
            LockError::Fresh { path, age } => write!(
                f,
                "lock {}: legacy lock without a PID, {}s old (younger than lock_timeout); another instance may be running",
                path.display(),
                age.as_secs()
            ),
            LockError::Io { path, error } => write!(f, "lock {}: {error}", path.display()),
        }
    }
}

/// Whether process `pid` is alive (signal 0 succeeds or is denied) and not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    if pid <= 0 {
        return false;
    }
    let alive = match kill(Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        Err(_) => true, // EPERM or anything unexpected: assume alive, as the original
    };
    alive && !is_zombie(pid)
}

fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // Field 3, after the parenthesised command name (which may contain spaces).
    stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()).is_some_and(|s| s == "Z")
}

impl LockFile {
    /// Takes the lock with the original's semantics (INTERFACES.md §7).
    pub fn acquire(path: &Path, lock_timeout: Duration) -> Result<LockFile, LockError> {
        let io_err = |error| LockError::Io { path: path.to_path_buf(), error };
        ensure_parent(path).map_err(io_err)?;
        for attempt in 0..2 {
            match OpenOptions::new().write(true).create_new(true).mode(0o644).open(path) {
                Ok(mut f) => {
                    writeln!(f, "{}", std::process::id()).map_err(io_err)?;
                    return Ok(LockFile { path: path.to_path_buf(), released: false });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt == 0 => {
                    Self::judge_existing(path, lock_timeout)?;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(LockError::Held { path: path.to_path_buf(), pid: read_pid(path) });
                }
                Err(e) => return Err(io_err(e)),
            }
        }
        Err(LockError::Held { path: path.to_path_buf(), pid: read_pid(path) })
    }

    /// Decides about an existing lock: `Ok` if it was stale and removed.
    fn judge_existing(path: &Path, lock_timeout: Duration) -> Result<(), LockError> {
        match read_pid(path) {
            Some(pid) if pid_alive(pid) => Err(LockError::Held { path: path.to_path_buf(), pid: Some(pid) }),
            Some(pid) => {
                log::warn!(target: "wanctl::lock", "removing stale lock {} of dead process {pid}", path.display());
                remove_if_exists(path)
            }
            None => {
                let age = fs::metadata(path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .unwrap_or(Duration::ZERO);
                if age < lock_timeout {
                    Err(LockError::Fresh { path: path.to_path_buf(), age })
                } else {
                    log::warn!(target: "wanctl::lock", "removing legacy lock {} ({}s old)", path.display(), age.as_secs());
                    remove_if_exists(path)
                }
            }
        }
    }

    /// Removes the lock now.
    pub fn release(mut self) {
        self.remove();
    }

    fn remove(&mut self) {
        if !self.released {
            self.released = true;
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        self.remove();
    }
}

fn remove_if_exists(path: &Path) -> Result<(), LockError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(LockError::Io { path: path.to_path_buf(), error }),
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    let mut s = String::new();
    File::open(path).ok()?.take(64).read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wanctl-files-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("mkdir");
        d
    }

    #[test]
    fn atomic_write_replaces_with_mode_0600() {
        let d = tmpdir("atomic");
        let p = d.join("sub/wan1_state.json");
        write_atomic(&p, b"one", 1).expect("write");
        write_atomic(&p, b"two", 2).expect("write");
        assert_eq!(fs::read(&p).expect("read"), b"two");
        assert_eq!(fs::metadata(&p).expect("meta").permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(p.parent().expect("dir")).expect("ls").count(), 1, "no temp files left");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn corrupt_state_is_moved_aside() {
        let d = tmpdir("corrupt");
        let p = d.join("wan1_state.json");
        fs::write(&p, b"{garbage").expect("write");
        match load_state(&p).expect("load") {
            LoadedState::Corrupt { moved_to, .. } => assert!(moved_to.ends_with("wan1_state.json.corrupt")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(load_state(&p).expect("load"), LoadedState::Missing));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn lock_semantics_follow_the_original() {
        let d = tmpdir("lock");
        let p = d.join("wan1.lock");
        let held = LockFile::acquire(&p, Duration::from_secs(300)).expect("first");
        assert_eq!(read_pid(&p), Some(std::process::id() as i32));
        assert!(matches!(LockFile::acquire(&p, Duration::from_secs(300)), Err(LockError::Held { .. })));
        held.release();
        assert!(!p.exists());
        // Dead PID: stale, taken over.
        fs::write(&p, "999999999\n").expect("write");
        LockFile::acquire(&p, Duration::from_secs(300)).expect("stale pid lock taken").release();
        // Legacy lock without PID: refused while young, taken when older than the timeout.
        fs::write(&p, "").expect("write");
        assert!(matches!(LockFile::acquire(&p, Duration::from_secs(300)), Err(LockError::Fresh { .. })));
        LockFile::acquire(&p, Duration::ZERO).expect("old legacy lock taken").release();
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn pid_liveness() {
        assert!(pid_alive(std::process::id() as i32));
        assert!(!pid_alive(0));
        assert!(!pid_alive(-1));
        assert!(!pid_alive(999_999_999));
    }
}
