//! The sweep directory: `runs/sweeps/<sweep>/<YYYY-MM-DD_HH-MM-SS>/` with `sweep.yaml` (every
//! job and the command line, enough to resume) and one run directory per job,
//! `<NNN>_<override_dirname>`.

use super::spec::ReportOptions;
use crate::launch::JobSpec;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `sweep.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepRecord {
    pub sweep: String,
    pub description: Option<String>,
    pub created: String,
    pub command: Vec<String>,
    pub cwd: PathBuf,
    pub config_dir: PathBuf,
    /// `local` or `slurm`.
    pub launcher: String,
    #[serde(default)]
    pub report: Option<ReportOptions>,
    pub jobs: Vec<JobSpec>,
}

impl SweepRecord {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("sweep.yaml")
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        crate::fsutil::write_atomic(&Self::path(dir), serde_yaml_ng::to_string(self)?.as_bytes())
    }

    pub fn read(dir: &Path) -> Result<SweepRecord> {
        let p = Self::path(dir);
        let text = std::fs::read_to_string(&p).with_context(|| {
            format!(
                "reading {} (is {} a sweep directory?)",
                p.display(),
                dir.display()
            )
        })?;
        serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {}", p.display()))
    }
}

/// Creates a fresh sweep directory under `runs_root/sweeps/<name>/`.
pub fn create_sweep_dir(runs_root: &Path, name: &str) -> Result<PathBuf> {
    let parent = runs_root.join("sweeps").join(name);
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let stamp = chrono::Local::now().format("%Y-%m-%d_%H-%M-%S").to_string();
    for n in 0..1000 {
        let dir = if n == 0 {
            parent.join(&stamp)
        } else {
            parent.join(format!("{stamp}_{n}"))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    anyhow::bail!("no free sweep directory name under {}", parent.display())
}

/// The directory of job `index` in `sweep_dir`.
pub fn job_dir(sweep_dir: &Path, index: usize, dirname: &str) -> PathBuf {
    sweep_dir.join(format!("{index:03}_{dirname}"))
}
