//! Crash-safe files: every file adlab produces is written to a temporary file in the
//! same directory and renamed into place, so a crash never leaves a half-written file. Caches
//! that concurrent processes may build are guarded by an exclusive file lock.

use anyhow::{Context, Result};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `bytes` to `path` atomically (temp file in the same directory, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating directory {}", dir.display()))?;
    // 0666 less the umask, as `File::create` gives: the temporary file's mode is what the
    // renamed file keeps, and colleagues on a shared cluster must be able to read results.
    let mut tmp = tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("renaming temporary file to {}", path.display()))?;
    Ok(())
}

/// Opens (creating it) and exclusively locks `path`, waiting for other holders: the guard of
/// a cache that concurrent processes may build. The lock is released when the file drops.
pub fn lock_exclusive(path: &Path) -> Result<std::fs::File> {
    use fs2::FileExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    file.lock_exclusive()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// A temporary directory in `root` (named `prefix...`) to build something in and rename into
/// place; its mode is 0777 less the umask, like `mkdir`, not tempfile's private 0700.
pub fn temp_dir_in(root: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(0o777))
        .tempdir_in(root)
        .with_context(|| format!("creating a temporary directory in {}", root.display()))
}

/// Builds a cache directory once, whichever of several processes gets there first: under the
/// exclusive lock `lock_path`, `existing()` looks again (another process may have built it
/// while this one waited) and its `Some` is returned as is; otherwise `build(tmp)` fills a
/// fresh temporary directory in `root` and `install(tmp)` renames it into place before the
/// lock is released, so the cache only ever appears complete. Callers look for a complete
/// cache without the lock first, so a read-only `data/` still serves one. Shared by the
/// learning-history cache and the RLHF source's logs.
pub fn build_once<T>(
    root: &Path,
    lock_path: &Path,
    tmp_prefix: &str,
    existing: impl FnOnce() -> Result<Option<T>>,
    build: impl FnOnce(&Path) -> Result<T>,
    install: impl FnOnce(std::path::PathBuf) -> Result<()>,
) -> Result<T> {
    std::fs::create_dir_all(root)
        .with_context(|| format!("creating data directory {}", root.display()))?;
    let lock = lock_exclusive(lock_path)?;
    if let Some(found) = existing()? {
        return Ok(found);
    }
    let tmp = temp_dir_in(root, tmp_prefix)?;
    let built = build(tmp.path())?;
    install(tmp.keep())?;
    // The lock is released when `lock` drops, after the rename.
    drop(lock);
    Ok(built)
}

/// `path` made absolute with symlinks resolved as far as it exists (the rest appended as
/// written, `..` and `.` folded), so paths that do not exist yet compare too.
pub fn resolve_path(path: &Path) -> std::io::Result<std::path::PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                match part {
                    std::path::Component::ParentDir => {
                        out.pop();
                    }
                    std::path::Component::CurDir => {}
                    other => out.push(other.as_os_str()),
                }
            }
            return Ok(out);
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => return Ok(abs),
        }
    }
}

/// Fails when writing into `out` could overwrite `input`: `out` is `input`, lies inside it, or
/// contains it. `flag` and `what` name them in the error.
pub fn refuse_overlap(input: &Path, out: &Path, flag: &str, what: &str) -> Result<()> {
    let a = resolve_path(input).with_context(|| format!("resolving {}", input.display()))?;
    let b = resolve_path(out).with_context(|| format!("resolving {}", out.display()))?;
    let relation = if a == b {
        "is"
    } else if a.starts_with(&b) {
        "contains"
    } else if b.starts_with(&a) {
        "is inside"
    } else {
        return Ok(());
    };
    anyhow::bail!(
        "{flag} {} {relation} {what} ({}); writing there would overwrite them. Choose a \
         directory outside {}",
        out.display(),
        input.display(),
        input.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_existing_file_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(entries.len(), 1, "temporary files left behind");
    }

    #[test]
    fn files_and_directories_respect_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: umask only swaps the process's creation mask; restored below. Other tests
        // creating files meanwhile get 022, the common default.
        let old = unsafe { libc::umask(0o022) };
        let path = dir.path().join("r.txt");
        write_atomic(&path, b"x").unwrap();
        let made = temp_dir_in(dir.path(), ".t").unwrap();
        unsafe { libc::umask(old) };
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode(&path),
            0o644,
            "a result file must be readable by others"
        );
        assert_eq!(mode(made.path()), 0o755);
    }

    #[test]
    fn overlapping_output_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(logs.join("run-a")).unwrap();
        let msg = |r: Result<()>| format!("{:#}", r.unwrap_err());
        assert!(msg(refuse_overlap(&logs, &logs, "--out", "the logs")).contains(" is the logs"));
        let dotted = logs.join("run-a/../.");
        assert!(refuse_overlap(&logs, &dotted, "--out", "x").is_err());
        assert!(msg(refuse_overlap(&logs.join("run-a"), &logs, "--out", "x")).contains("contains"));
        assert!(msg(refuse_overlap(&logs, &logs.join("new/sub"), "--out", "x")).contains("inside"));
        assert!(refuse_overlap(&logs, &dir.path().join("logs2"), "--out", "x").is_ok());
    }
}
