//! The RLHF task kinds of the `task` group: `trlx_logs` (real TRLx logs read from
//! `task.path`) and `sentiment_rlhf` (the built-in PPO source, configured in
//! [`crate::rlhf::source::SentimentRlhfConfig`]). Both yield source runs split into train and
//! held-out runs.

use crate::rlhf::source::config::RewardConfig;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which source runs are held out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSplitConfig {
    /// Fraction of source runs held out (at least one when there are two or more runs and
    /// the fraction is positive; always at least one train run).
    pub test_fraction: f64,
}

impl RunSplitConfig {
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.test_fraction) {
            bail!(
                "invalid `task.split.test_fraction` = {}: expected a fraction in [0, 1)",
                self.test_fraction
            );
        }
        Ok(())
    }
}

/// `task=trlx_logs task.path=DIR`: histories from TRLx rollout logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrlxLogsTask {
    pub name: String,
    /// Seeds the train/held-out split of the runs.
    pub seed: u64,
    /// The directory holding `run-*/` (required).
    pub path: Option<PathBuf>,
    /// A `tokenizer.json` to decode logs that carry ids but no texts.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// The left-padding id of `query_tensor` (default: the tokenizer's end-of-text id).
    #[serde(default)]
    pub pad_id: Option<u32>,
    /// Fail on the first unreadable run instead of skipping it.
    #[serde(default)]
    pub strict: bool,
    pub split: RunSplitConfig,
    /// The reward model that scores completions in the in-context evaluation (the logs'
    /// own reward model is not part of them); without it that evaluation is skipped.
    #[serde(default)]
    pub reward: Option<RewardConfig>,
}

impl TrlxLogsTask {
    pub fn validate(&self) -> Result<()> {
        if self.path.is_none() {
            bail!("`task.path` is not set: trlx_logs reads TRLx logs from it (task.path=DIR)");
        }
        self.split.validate()
    }
}
