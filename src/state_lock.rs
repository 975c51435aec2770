//! One `apply` per state folder at a time. Two runs on one state would
//! each submit what the other had not yet recorded (whatever manifest file
//! or shard each was given: the state is per database); so `apply` takes
//! an exclusive lock in the state folder for as long as it runs, and a
//! second one refuses to start, saying who holds it.
//!
//! The lock is the operating system's (`File::try_lock`), so it ends with
//! the process however that ends: a run killed with -9 leaves a lock file
//! whose lock is gone. The file also holds who took it (pid, host, since);
//! a run that finds that record with the lock free knows the previous run
//! did not finish, says so, and takes over safely (Terraform's state
//! locking is the model, without the need for `force-unlock`).

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Who holds (or held) the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub since: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on host {}, since {}",
            self.pid,
            crate::redact::terminal(&self.host),
            crate::redact::terminal(&self.since)
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another `apply` is running on this state ({holder}); wait for it to end, or use \
         another --state folder (lock: {})",
        path.display()
    )]
    Held { holder: Holder, path: PathBuf },
    #[error("another `apply` is running on this state (lock: {}); who holds it cannot be read", path.display())]
    HeldUnknown { path: PathBuf },
    #[error("cannot take the state lock {}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
}

/// Held until dropped.
pub struct StateLock {
    file: File,
}

/// The lock of a state folder: `<state>/state.lock`.
pub fn path_for(state_dir: &Path) -> PathBuf {
    state_dir.join("state.lock")
}

impl StateLock {
    /// Takes the lock; the second value tells of a previous run that ended
    /// without releasing it.
    pub fn acquire(path: &Path) -> Result<(StateLock, Option<Holder>), LockError> {
        let io = |e: std::io::Error| LockError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = crate::state_file::open(path, &mut options).map_err(io)?;
        let previous = read_holder(&mut file);
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(match previous {
                    Some(holder) => LockError::Held {
                        holder,
                        path: path.to_owned(),
                    },
                    None => LockError::HeldUnknown {
                        path: path.to_owned(),
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let me = Holder {
            pid: std::process::id(),
            host: host_name(),
            since: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        };
        let record = serde_json::to_vec(&me).expect("JSON");
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
            .and_then(|()| file.write_all(&record))
            .and_then(|()| file.flush())
            .map_err(io)?;
        Ok((StateLock { file }, previous))
    }
}

impl Drop for StateLock {
    /// A clean end empties the record, so the next run knows it was clean;
    /// the lock itself goes with the file handle.
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

/// The record in a lock file, if there is a readable one (at most 4 KiB).
fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.take(4096).read_to_string(&mut text).ok()?;
    file.seek(SeekFrom::Start(0)).ok()?;
    serde_json::from_str(text.trim()).ok()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| crate::environment::var("HOSTNAME"))
        .map(|h| h.trim().chars().take(255).collect())
        .filter(|h: &String| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_and_a_clean_release_leaves_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path());
        let (first, previous) = StateLock::acquire(&path).unwrap();
        assert!(previous.is_none());
        match StateLock::acquire(&path) {
            Err(LockError::Held { holder, .. }) => assert_eq!(holder.pid, std::process::id()),
            other => panic!("{:?}", other.err()),
        }
        drop(first);
        let (_, previous) = StateLock::acquire(&path).unwrap();
        assert!(previous.is_none(), "a clean release");
        assert_eq!(path_for(Path::new("/s")), PathBuf::from("/s/state.lock"));
    }
}
