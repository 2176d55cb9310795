//! Launcher settings (the `launcher` config group).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum LauncherConfig {
    Local(LocalLauncherConfig),
    Slurm(SlurmLauncherConfig),
}

impl LauncherConfig {
    pub fn name(&self) -> &'static str {
        match self {
            LauncherConfig::Local(_) => "local",
            LauncherConfig::Slurm(_) => "slurm",
        }
    }
}

/// Runs jobs as child processes on this machine, packing device slots.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalLauncherConfig {
    /// `auto`, or a list such as `[cpu]` or `[cuda:0, cuda:1]`.
    pub devices: serde_json::Value,
    /// Concurrent jobs per device; `null` = as many as cores allow on CPU, 1 per GPU.
    pub runs_per_device: Option<usize>,
    /// Compute threads of each job.
    pub threads_per_run: usize,
    /// Upper bound on concurrent jobs; `null` = no bound beyond the slots.
    pub max_parallel: Option<usize>,
}

/// Submits a sweep as one SLURM job array.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmLauncherConfig {
    pub partition: Option<String>,
    /// `--time`, e.g. `01:00:00`.
    pub time_limit: String,
    pub cpus_per_task: usize,
    /// `--mem`, e.g. `4G`.
    pub mem: Option<String>,
    pub gpus_per_task: Option<usize>,
    pub gres: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// `%K` of `--array=0-N%K`: how many array tasks run at once; `null` = no limit.
    pub array_parallelism: Option<usize>,
    /// Any further sbatch flags (`{constraint: v100}` -> `--constraint=v100`).
    #[serde(default)]
    pub additional_parameters: BTreeMap<String, serde_json::Value>,
    /// Shell lines run before each job (e.g. `module load cuda`).
    #[serde(default)]
    pub setup: Vec<String>,
    /// Block until every task ends, showing progress.
    pub wait: bool,
    /// Seconds between state polls while waiting.
    pub poll_seconds: f64,
}
