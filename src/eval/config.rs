//! The `eval` section: how many tasks and episodes the in-context evaluation plays, and the
//! RLHF evaluation points.

use crate::tasks::config::check;
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// The `eval` section (absent, `~eval`, means no evaluation).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    pub enabled: bool,
    /// Episodes the model plays per task, with its own history as context.
    pub episodes: usize,
    /// Number of held-out (test) tasks to evaluate on.
    pub tasks: usize,
    /// Number of training tasks evaluated too, for comparison.
    #[serde(default)]
    pub train_tasks: usize,
    /// Sampling temperature; 0 = greedy.
    pub temperature: f64,
    /// Episodes averaged for the "first k" / "last k" summary figures.
    #[serde(default = "default_k")]
    pub summary_k: usize,
    /// Fraction of the model's context kept when a full window slides at evaluation: 0.5
    /// rebuilds the window every half context (cheap); values near 1 slide it almost every
    /// step, so the model always sees nearly a full context of its own history.
    #[serde(default = "default_context_kept")]
    pub context_kept: f64,
    /// Held-out windows (the test split's validation set) on which reward and next-state
    /// prediction are measured for `summary.json`'s `prediction` (a causal LM writes them
    /// greedily from the logged history, then they are read back); 0 = skip.
    #[serde(default = "default_prediction_windows")]
    pub prediction_windows: usize,
    /// Episodes traced step by step at each end of the model's run on every evaluated task
    /// (the first and the last this many; 0 = none): `traces.jsonl` and the pictures in
    /// `plots/`.
    #[serde(default = "default_trace_episodes")]
    pub trace_episodes: usize,
    /// In-context RLHF (tasks of RLHF histories): evaluation points and prompts.
    #[serde(default)]
    pub rlhf: Option<RlhfEvalConfig>,
}

fn default_k() -> usize {
    10
}

fn default_prediction_windows() -> usize {
    64
}

fn default_trace_episodes() -> usize {
    3
}

fn default_context_kept() -> f64 {
    0.5
}

/// `eval.rlhf`: the in-context RLHF protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RlhfEvalConfig {
    /// Epochs of the held-out run's history in the context, one evaluation point each.
    pub context_epochs: Vec<usize>,
    /// Completions written (and scored) per point.
    pub prompts: usize,
    pub max_new_tokens: usize,
    /// AD's protocol: the model improves on its own history (see
    /// [`super::rlhf_self_play`]); `null` skips it.
    #[serde(default)]
    pub self_play: Option<SelfPlayConfig>,
}

impl Default for RlhfEvalConfig {
    fn default() -> Self {
        Self {
            context_epochs: vec![0, 1, 2, 4, 8, 16],
            prompts: 16,
            max_new_tokens: 16,
            self_play: None,
        }
    }
}

/// `eval.rlhf.self_play`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfPlayConfig {
    /// Iterations of write → score → append.
    pub iterations: usize,
    /// Completions per iteration (written from the same context, like a PPO batch).
    pub prompts_per_iteration: usize,
    /// Independent self-play runs per reward function (each its own prompts and samples).
    #[serde(default = "one")]
    pub repeats: usize,
}

fn one() -> usize {
    1
}

impl SelfPlayConfig {
    pub fn validate(&self) -> Result<()> {
        for (key, v) in [
            ("iterations", self.iterations),
            ("prompts_per_iteration", self.prompts_per_iteration),
            ("repeats", self.repeats),
        ] {
            check(
                v >= 1,
                &format!("eval.rlhf.self_play.{key}"),
                v,
                "at least 1",
            )?;
        }
        Ok(())
    }
}
