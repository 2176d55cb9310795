//! The `eval` section: how many tasks and episodes the in-context evaluation plays, and the
//! RLHF evaluation points.

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
    pub rlhf: Option<super::rlhf_eval::RlhfEvalConfig>,
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
