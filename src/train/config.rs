//! The `train` section: how long and how a run trains. `train::train` takes it with the
//! `optimizer` section and the run seed, never the whole config.

use serde::{Deserialize, Serialize};

/// The `train` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer steps.
    pub steps: u64,
    /// Sequences per optimizer step (split into `grad_accum` micro-batches).
    pub batch_size: usize,
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Validation (held-out tasks) every this many steps; 0 = only at the end.
    pub eval_every: u64,
    /// Validation batches per evaluation.
    #[serde(default = "default_val_batches")]
    pub val_batches: usize,
    /// Training metrics every this many steps.
    pub log_every: u64,
    /// Checkpoint every this many steps (and always at the end); 0 = only at the end.
    pub ckpt_every: u64,
    /// Compute threads of this run.
    pub threads: usize,
    /// Continue from the run directory's last checkpoint.
    #[serde(default)]
    pub resume: bool,
    /// A free-form note recorded with the run (shows up in reports).
    #[serde(default)]
    pub note: Option<String>,
}

fn one() -> usize {
    1
}

fn default_val_batches() -> usize {
    4
}
