//! The in-memory form of RLHF learning histories, independent of any file layout.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// One PPO rollout: a prompt, the policy's completion, and what PPO logged about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// Prompt token ids, padding stripped.
    pub query_ids: Vec<u32>,
    /// Generated token ids (the actions, one per token).
    pub response_ids: Vec<u32>,
    pub query_text: String,
    pub response_text: String,
    /// Per response token: the behaviour policy's log-probability of the token.
    pub logprobs: Option<Vec<f32>>,
    /// Per response token: the value head's estimate.
    pub values: Option<Vec<f32>>,
    /// Per response token: the KL penalty; the last token also carries the score. `None` for
    /// text-only logs (newer TRLx), which cannot train reward prediction.
    pub rewards: Option<Vec<f32>>,
    /// The reward model's score of the completion alone, when the log has it.
    pub score: Option<f32>,
}

impl Rollout {
    /// Score plus KL penalty: the total reward PPO optimised for this rollout.
    pub fn total_reward(&self) -> Option<f32> {
        self.rewards.as_ref().map(|r| r.iter().sum())
    }
}

/// The rollouts of one PPO epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RlhfEpoch {
    /// The unix time in the epoch file's name (`epoch-<time>.json`, fractional seconds
    /// allowed); epochs are ordered by it numerically.
    pub timestamp: f64,
    pub rollouts: Vec<Rollout>,
}

/// One source PPO run: a learning history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RlhfRun {
    /// The run directory's name without `run-` (TRLx's uuid).
    pub id: String,
    /// The run's PPO config as logged (its hyperparameters are the history's metadata).
    pub config: serde_json::Value,
    /// In chronological order.
    pub epochs: Vec<RlhfEpoch>,
}

impl RlhfRun {
    pub fn n_rollouts(&self) -> usize {
        self.epochs.iter().map(|e| e.rollouts.len()).sum()
    }

    /// Every rollout in chronological order, with its epoch index.
    pub fn rollouts(&self) -> impl Iterator<Item = (usize, &Rollout)> {
        self.epochs
            .iter()
            .enumerate()
            .flat_map(|(i, e)| e.rollouts.iter().map(move |r| (i, r)))
    }

    /// Mean score per epoch (the source's learning curve); `None` where no rollout has one.
    pub fn score_curve(&self) -> Vec<Option<f32>> {
        self.epochs
            .iter()
            .map(|e| {
                let s: Vec<f32> = e.rollouts.iter().filter_map(|r| r.score).collect();
                (!s.is_empty()).then(|| s.iter().sum::<f32>() / s.len() as f32)
            })
            .collect()
    }
}

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

/// `task.keep_per_epoch`, shared by both RLHF tasks: at least 1, or `null` for all rollouts.
pub fn check_keep_per_epoch(keep: Option<usize>) -> Result<()> {
    match keep {
        Some(0) => bail!(
            "invalid `task.keep_per_epoch` = 0: expected at least 1 rollout per epoch, or null \
             for all"
        ),
        _ => Ok(()),
    }
}
