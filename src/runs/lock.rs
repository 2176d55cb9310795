//! Who is writing a run directory. The adlab process that runs a directory holds an exclusive
//! lock on `<run>/.adlab.lock` from before it writes its first file until the run has ended,
//! so any other process (a second `--run-dir`, `adlab sweep --resume`, `train.resume=true`,
//! `adlab report`) can tell a live run from one whose process died. The kernel drops the lock
//! with the process however it ends (SIGKILL and the OOM killer included), which a status
//! written into `meta.json` cannot do. Where the lock says nothing (a run written before
//! locks existed), `meta.json`'s pid on this host decides.

use super::{RunMeta, RunStatus};
use anyhow::{Context, Result};
use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

/// The lock file inside a run directory.
pub const LOCK_FILE: &str = ".adlab.lock";

/// Held while this process runs a run directory; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Locks `dir` for this process, or fails naming the process that holds it. Waits a
    /// moment first: readers probing liveness hold the lock for microseconds.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let path = dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(RunLock { _file: file }),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    let who = super::RunDir {
                        path: dir.to_path_buf(),
                    }
                    .read_meta()
                    .ok()
                    .flatten()
                    .map(|m| format!(" (pid {} on {})", m.pid, m.host))
                    .unwrap_or_default();
                    anyhow::bail!(
                        "run directory {} is in use by another adlab process{who}; two writers \
                         on one run would corrupt it. Wait for that run to end, or stop it first",
                        dir.display()
                    );
                }
                // Some network filesystems have no locks: run without one (liveness then
                // falls back to the pid in meta.json) rather than not at all.
                Err(TryLockError::Error(e)) => {
                    tracing::warn!(
                        "cannot lock {} ({e}); another process could run this directory too",
                        path.display()
                    );
                    return Ok(RunLock { _file: file });
                }
            }
        }
    }
}

/// Whether the process that runs a directory is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Dead,
    /// Another host's run without a usable lock: nothing here can tell.
    Unknown,
}

/// Whether the run in `dir` (whose `meta.json` is `meta`) has a live process.
pub fn liveness(dir: &Path, meta: &RunMeta) -> Liveness {
    if let Ok(file) = File::open(dir.join(LOCK_FILE)) {
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                return Liveness::Dead;
            }
            Err(TryLockError::WouldBlock) => return Liveness::Alive,
            // Locks unsupported here (some network filesystems): fall back to the pid.
            Err(TryLockError::Error(_)) => {}
        }
    }
    if meta.host == this_host() {
        if pid_alive(meta.pid) {
            Liveness::Alive
        } else {
            Liveness::Dead
        }
    } else {
        Liveness::Unknown
    }
}

/// The status readers should show: a `running` run whose process is gone is `lost`.
pub fn effective_status(dir: &Path, meta: &RunMeta) -> RunStatus {
    match meta.status {
        RunStatus::Running if liveness(dir, meta) == Liveness::Dead => RunStatus::Lost,
        s => s,
    }
}

pub fn this_host() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// Whether `pid` names a live (not zombie) process on this host.
pub fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    // A zombie has ended; only its parent has not reaped it yet.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_for(pid: u32, host: &str) -> RunMeta {
        let mut m = RunMeta::start(None);
        m.pid = pid;
        m.host = host.into();
        m
    }

    #[test]
    fn a_held_lock_is_alive_and_a_released_one_dead() {
        let dir = tempfile::tempdir().unwrap();
        // A pid that cannot be alive, so only the lock can say "alive".
        let meta = meta_for(0, &this_host());
        let lock = RunLock::acquire(dir.path()).unwrap();
        assert_eq!(liveness(dir.path(), &meta), Liveness::Alive);
        assert_eq!(effective_status(dir.path(), &meta), RunStatus::Running);
        drop(lock);
        assert_eq!(liveness(dir.path(), &meta), Liveness::Dead);
        assert_eq!(effective_status(dir.path(), &meta), RunStatus::Lost);
    }

    #[test]
    fn without_a_lock_file_the_pid_on_this_host_decides() {
        let dir = tempfile::tempdir().unwrap();
        let me = meta_for(std::process::id(), &this_host());
        assert_eq!(liveness(dir.path(), &me), Liveness::Alive);
        let gone = meta_for(0, &this_host());
        assert_eq!(liveness(dir.path(), &gone), Liveness::Dead);
        let elsewhere = meta_for(1, "some-other-host");
        assert_eq!(liveness(dir.path(), &elsewhere), Liveness::Unknown);
        assert_eq!(effective_status(dir.path(), &elsewhere), RunStatus::Running);
    }
}
