//! Launchers: where the jobs of a sweep run — local child processes, or a SLURM job array.
//! Architecture invariant: a launcher sees only job override lists and run directories; it
//! knows nothing about how a sweep was expanded, and a job is always `adlab run --run-dir`.

pub mod config;
pub mod local;
pub mod slurm;

use crate::runs::RunStatus;
use anyhow::Result;
use config::LauncherConfig;
use std::path::{Path, PathBuf};

/// Where the jobs of a sweep run: the one seam a sweep sees. `local` (child processes) and
/// `slurm` (a job array) implement it.
pub trait Launcher {
    /// Runs (or submits) `jobs`, each as `cmd` says; one result per job, in job order.
    /// `sweep_dir` holds the launcher's own files; `fail_fast` stops launching new jobs after
    /// the first failure.
    fn launch(
        &self,
        jobs: &[JobSpec],
        cmd: &JobCommand,
        sweep_dir: &Path,
        fail_fast: bool,
    ) -> Result<Vec<JobResult>>;
}

/// The launcher the `launcher` group chose.
pub fn launcher(cfg: &LauncherConfig) -> &dyn Launcher {
    match cfg {
        LauncherConfig::Local(c) => c,
        LauncherConfig::Slurm(c) => c,
    }
}

/// How a job ended, as the sweep reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobResult {
    pub index: usize,
    pub status: RunStatus,
    pub error: Option<String>,
    /// The file holding the job's console output.
    pub log: std::path::PathBuf,
}

/// One job of a sweep: its index, its run directory and its overrides.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobSpec {
    pub index: usize,
    pub run_dir: PathBuf,
    pub overrides: Vec<String>,
}

/// How to start `adlab run` for a job.
#[derive(Debug, Clone)]
pub struct JobCommand {
    /// The adlab executable.
    pub exe: PathBuf,
    /// The conf tree the sweep was composed from.
    pub config_dir: PathBuf,
    /// Working directory of the jobs (relative `paths.*` resolve against it).
    pub cwd: PathBuf,
}

impl JobCommand {
    /// The argument vector of a job: `run --config-dir DIR --run-dir DIR OVERRIDES...`.
    pub fn args(&self, job: &JobSpec) -> Vec<String> {
        let mut a = vec![
            "run".to_string(),
            "--config-dir".to_string(),
            self.config_dir.display().to_string(),
            "--run-dir".to_string(),
            job.run_dir.display().to_string(),
        ];
        a.extend(job.overrides.iter().cloned());
        a
    }
}
