//! Run directories: `runs/<name>/<YYYY-MM-DD_HH-MM-SS>_<id>/` holding the composed config,
//! the overrides, `meta.json` (the run's lifecycle), the log, metrics and checkpoints.
//! Architecture invariant: every file here is written atomically; a run directory is
//! created with an exclusive `mkdir`, so two runs never share one.

pub mod layout;
pub mod lock;
pub mod meta;

pub use meta::{RunMeta, RunStatus};

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// A run's directory and the names of the files in it.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// Creates a fresh run directory under `runs_root/name/`, unique even for runs started
    /// in the same second (and by concurrent processes).
    pub fn create(runs_root: &Path, name: &str) -> Result<RunDir> {
        let parent = runs_root.join(name);
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let stamp = chrono::Local::now().format("%Y-%m-%d_%H-%M-%S").to_string();
        for attempt in 0u64..1000 {
            let id = unique_id(attempt);
            let path = parent.join(format!("{stamp}_{id}"));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(RunDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("creating run directory {}", path.display()))
                }
            }
        }
        anyhow::bail!(
            "could not find a free run directory name under {}",
            parent.display()
        )
    }

    /// Uses an existing directory (a sweep job's, or a run being resumed or evaluated).
    pub fn at(path: impl Into<PathBuf>) -> Result<RunDir> {
        let path = path.into();
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(RunDir { path })
    }

    pub fn config_path(&self) -> PathBuf {
        self.path.join("config.yaml")
    }
    pub fn overrides_path(&self) -> PathBuf {
        self.path.join("overrides.yaml")
    }
    pub fn meta_path(&self) -> PathBuf {
        self.path.join("meta.json")
    }
    pub fn log_path(&self) -> PathBuf {
        self.path.join("adlab.log")
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.path.join("metrics.csv")
    }
    pub fn eval_path(&self) -> PathBuf {
        self.path.join("eval.csv")
    }
    pub fn summary_path(&self) -> PathBuf {
        self.path.join("summary.json")
    }
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.path.join(layout::CHECKPOINT_DIR)
    }

    /// Reads `meta.json`, if the run has one.
    pub fn read_meta(&self) -> Result<Option<RunMeta>> {
        let p = self.meta_path();
        if !p.exists() {
            return Ok(None);
        }
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        let meta =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
        Ok(Some(meta))
    }

    pub fn write_meta(&self, meta: &RunMeta) -> Result<()> {
        crate::fsutil::write_json_atomic(&self.meta_path(), meta)
    }
}

/// Six hex digits that differ between processes, calls and attempts.
fn unique_id(attempt: u64) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let h = crate::seed::derive_seed(
        nanos,
        "run-id",
        &[u64::from(std::process::id()), n, attempt],
    );
    format!("{:06x}", h & 0xff_ffff)
}

/// The weights file of the run's last checkpoint (or of the copy a crash mid-save leaves).
pub fn checkpoint_weights(dir: &RunDir) -> Result<PathBuf> {
    let main = dir.checkpoint_dir();
    let candidates = [main.clone(), main.with_file_name("checkpoint.old")];
    candidates
        .iter()
        .map(|d| d.join(layout::MODEL_WEIGHTS))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{} holds no checkpoint (no {}): train the run first",
                dir.path.display(),
                main.join(layout::MODEL_WEIGHTS).display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_dirs_never_collide_within_a_second() {
        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..50)
            .map(|_| RunDir::create(root.path(), "x").unwrap().path)
            .collect();
        let unique: std::collections::HashSet<_> = dirs.iter().collect();
        assert_eq!(unique.len(), 50);
        let name = dirs[0].file_name().unwrap().to_string_lossy().to_string();
        // YYYY-MM-DD_HH-MM-SS_xxxxxx
        assert_eq!(name.len(), 19 + 1 + 6, "{name}");
    }

    #[test]
    fn concurrent_creation_is_exclusive() {
        let root = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        (0..10)
                            .map(|_| RunDir::create(root.path(), "y").unwrap().path)
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let unique: std::collections::HashSet<_> = paths.iter().collect();
        assert_eq!(unique.len(), 80);
    }
}
