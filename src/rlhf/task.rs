//! The RLHF task kinds of the `task` group: `trlx_logs` (real TRLx logs read from
//! `task.path`) and `sentiment_rlhf` (the built-in PPO source, configured in
//! [`crate::rlhf::source::SentimentRlhfConfig`]). Both yield source runs split into train and
//! held-out runs.

use super::family::RewardFamily;
pub use super::rollout::RunSplitConfig;
use super::source::config::RewardConfig;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
    /// Logs of PPO on several reward models: each run's config names its reward under
    /// `reward_key`, `family.rewards` scores them by that name, and the runs of
    /// `family.held_out` are the held-out split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<RewardFamily>,
    /// The key of a run's logged config that names its reward.
    #[serde(default = "default_reward_key")]
    pub reward_key: String,
    /// Rollouts of each epoch that training contexts show (`null`: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_per_epoch: Option<usize>,
}

fn default_reward_key() -> String {
    "reward".into()
}

impl TrlxLogsTask {
    pub fn validate(&self) -> Result<()> {
        crate::tasks::config::check_name(&self.name)?;
        if self.path.is_none() {
            bail!("`task.path` is not set: trlx_logs reads TRLx logs from it (task.path=DIR)");
        }
        crate::rlhf::rollout::check_keep_per_epoch(self.keep_per_epoch)?;
        if let Some(r) = &self.reward {
            r.validate("task.reward", None)?;
        }
        if let Some(f) = &self.family {
            f.validate("task.family", None)?;
        }
        self.split.validate()
    }
}
