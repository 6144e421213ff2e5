//! Files: atomic replace, the state file, lock files. Shell code: touches the file system,
//! decides nothing beyond what INTERFACES.md §6–§7 prescribe.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};

use nix::fcntl::{Flock, FlockArg};
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

/// Reads `path` if it is a regular file of at most `max` bytes (issue 18: a FIFO at the
/// state path hung startup, a huge file grew memory). Opened with `O_NOFOLLOW` (a
/// symlink is an error, ELOOP) and `O_NONBLOCK` (opening a FIFO does not wait for a
/// writer); the type and size are checked on the open descriptor.
pub fn read_small_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    read_checked(path, max, libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
}

fn read_checked(path: &Path, max: u64, flags: i32) -> io::Result<Vec<u8>> {
    let f = OpenOptions::new().read(true).custom_flags(flags).open(path)?;
    let meta = f.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    if meta.len() > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("larger than {max} bytes")));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("larger than {max} bytes")));
    }
    Ok(bytes)
}

/// [`read_small_regular`] that follows symlinks (config files are often linked).
pub fn read_small_regular_following(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    read_checked(path, max, libc::O_NONBLOCK | libc::O_CLOEXEC)
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

/// The largest state file read (ours are about 400 bytes).
pub const MAX_STATE_BYTES: u64 = 64 * 1024;

/// Reads the autorate state file; a corrupt one is renamed to `<path>.corrupt`.
pub fn load_state(path: &Path) -> io::Result<LoadedState> {
    let bytes = match read_small_regular(path, MAX_STATE_BYTES) {
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

/// A held lock file: an exclusive `flock(2)` on it for the life of the value, the PID
/// inside for the original's tools; removed on drop.
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    file: Option<Flock<File>>,
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
    /// Takes the lock (INTERFACES.md §7). Two instances of this program exclude each other
    /// with `flock(2)`, so removing a stale lock and taking it is one atomic step (issue
    /// 18: with remove-then-create, two starting instances could both win). The PID rules
    /// of the original still apply to what the file holds, since the original and older
    /// versions lock by the file's existence only: a live PID other than ours is `Held`, a
    /// PID-less file younger than `lock_timeout` is `Fresh`; anything else is stale and
    /// taken over.
    pub fn acquire(path: &Path, lock_timeout: Duration) -> Result<LockFile, LockError> {
        let io_err = |error| LockError::Io { path: path.to_path_buf(), error };
        ensure_parent(path).map_err(io_err)?;
        for _ in 0..8 {
            let (file, created) =
                match OpenOptions::new().read(true).write(true).create_new(true).mode(0o644).open(path) {
                    Ok(f) => (f, true),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        match OpenOptions::new()
                            .read(true)
                            .write(true)
                            .custom_flags(libc::O_NOFOLLOW)
                            .open(path)
                        {
                            Ok(f) => (f, false),
                            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // released meanwhile
                            Err(e) => return Err(io_err(e)),
                        }
                    }
                    Err(e) => return Err(io_err(e)),
                };
            let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(l) => l,
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(LockError::Held { path: path.to_path_buf(), pid: read_pid(path) });
                }
                Err((_, e)) => return Err(io_err(io::Error::from(e))),
            };
            // The holder may have released (unlinked) the file between our open and our
            // flock: then we locked an orphan inode; start again.
            let ours = lock.metadata().map_err(io_err)?;
            match fs::symlink_metadata(path) {
                Ok(m) if m.ino() == ours.ino() && m.dev() == ours.dev() => {}
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(e)),
            }
            if !created {
                Self::judge_existing(path, lock_timeout)?;
            }
            lock.set_len(0).map_err(io_err)?;
            lock.seek(io::SeekFrom::Start(0)).map_err(io_err)?;
            writeln!(lock, "{}", std::process::id()).map_err(io_err)?;
            return Ok(LockFile { path: path.to_path_buf(), file: Some(lock), released: false });
        }
        Err(LockError::Held { path: path.to_path_buf(), pid: read_pid(path) })
    }

    /// Decides about an existing lock we hold the flock of: `Ok` if it is stale.
    fn judge_existing(path: &Path, lock_timeout: Duration) -> Result<(), LockError> {
        match read_pid(path) {
            Some(pid) if pid != std::process::id() as i32 && pid_alive(pid) => {
                Err(LockError::Held { path: path.to_path_buf(), pid: Some(pid) })
            }
            Some(pid) => {
                log::warn!(target: "wanctl::lock", "taking over stale lock {} of dead process {pid}", path.display());
                Ok(())
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
                    log::warn!(target: "wanctl::lock", "taking over legacy lock {} ({}s old)", path.display(), age.as_secs());
                    Ok(())
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
            // Unlink while still holding the flock, then close: whoever opened the old
            // inode meanwhile sees it is no longer at the path and starts again.
            let _ = fs::remove_file(&self.path);
            self.file = None;
        }
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        self.remove();
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
    fn issue_18_two_instances_never_both_take_a_stale_lock() {
        let d = tmpdir("race");
        let p = d.join("wan1.lock");
        let mut both = 0;
        for _ in 0..300 {
            fs::write(&p, "999999999\n").expect("stale lock of a dead process");
            let go = std::sync::Barrier::new(2);
            let held = std::sync::Barrier::new(2);
            let won = std::thread::scope(|s| {
                let take = || {
                    go.wait();
                    let lock = LockFile::acquire(&p, Duration::from_secs(300)).ok();
                    let won = lock.is_some();
                    held.wait(); // both attempts are over before either lock is released
                    drop(lock);
                    won
                };
                let a = s.spawn(take);
                let b = s.spawn(take);
                [a.join().expect("a"), b.join().expect("b")]
            });
            if won == [true, true] {
                both += 1;
            }
            assert!(won.iter().any(|w| *w), "a stale lock is always taken by someone");
        }
        assert_eq!(both, 0, "two instances held the lock at once in {both} of 300 races");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn issue_18_state_file_must_be_a_small_regular_file() {
        let d = tmpdir("statefile");
        // A FIFO: opening it must not block, and it is refused.
        let fifo = d.join("fifo_state.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        let e = load_state(&fifo).expect_err("a FIFO is not a state file");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        // Too large.
        let big = d.join("big_state.json");
        fs::write(&big, vec![b' '; MAX_STATE_BYTES as usize + 1]).expect("write");
        let e = load_state(&big).expect_err("too large");
        assert!(e.to_string().contains("larger than"), "{e}");
        // A symlink is not followed.
        let real = d.join("real_state.json");
        fs::write(&real, "{}").expect("write");
        let link = d.join("link_state.json");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        assert!(load_state(&link).is_err(), "symlinks are not followed");
        assert!(matches!(load_state(&d.join("none.json")).expect("missing"), LoadedState::Missing));
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
