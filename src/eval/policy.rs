//! The seam between the evaluator and a model family: an [`InContextPolicy`] acts in a batch
//! of environments (one row per task), conditioning on its own growing history.
//!
//! Protocol, per environment step, for every row at once:
//! 1. [`InContextPolicy::action_logits`] sees the rows' current states and returns a score for
//!    every action of every row;
//! 2. the evaluator picks the actions (greedy or seeded sampling, [`super::sampler`]), steps
//!    each row's environment independently, and
//! 3. [`InContextPolicy::observe_outcome`] sees what happened: the actions taken, the rewards,
//!    the log-probabilities of those actions under the policy, and which rows' episodes ended.
//!
//! Rows cross episode boundaries at different times; the policy never sees a reset other than
//! through `dones` (AD's context runs across episodes). A family plugs in by implementing the
//! trait: the RL-heads transformer ([`super::rl_policy::RlHeadsPolicy`]) returns its action
//! head's logits; the causal LM ([`super::lm_policy::LmPolicy`]) renders the state into its text
//! context and returns, for each action, the log-probability of that action's rendering
//! (constrained decoding over the valid actions), then appends the chosen action, reward and
//! episode separator to its text.

use anyhow::Result;
use serde::{Deserialize, Serialize};

/// The rows' observations at one step.
#[derive(Debug, Clone, Copy)]
pub struct StepStates<'a> {
    /// One discrete state id per row (0 for continuous-state environments).
    pub ids: &'a [u32],
    /// `rows * feature_dim` continuous features, row-major (empty for discrete states).
    pub features: &'a [f32],
}

/// What followed the actions of one step.
#[derive(Debug, Clone, Copy)]
pub struct StepOutcome<'a> {
    pub actions: &'a [u32],
    pub rewards: &'a [f32],
    /// The acting policy's log-probability of each action: log-softmax of the logits returned
    /// by `action_logits` (temperature 1), whatever temperature chose the action.
    pub logprobs: &'a [f32],
    /// The step ended the row's episode (its environment has been reset).
    pub dones: &'a [bool],
}

/// A model family acting in context, batched over tasks.
pub trait InContextPolicy {
    /// Number of rows (environments) the policy acts in at once.
    fn rows(&self) -> usize;
    /// Number of actions per row.
    fn n_actions(&self) -> usize;
    /// Scores (logits, unnormalised log-probabilities) of every action for every row given
    /// the current states: `rows * n_actions` values, row-major.
    fn action_logits(&mut self, states: StepStates) -> Result<Vec<f32>>;
    /// Completes the step begun by the last `action_logits` call.
    fn observe_outcome(&mut self, outcome: StepOutcome) -> Result<()>;
    /// For policies that decode text: how often the unconstrained output was off-format.
    fn decoding_stats(&self) -> Option<DecodingStats> {
        None
    }
}

/// How often the unconstrained model would have written something that is not an action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DecodingStats {
    /// Steps decoded.
    pub steps: usize,
    /// Steps at which greedy, unconstrained decoding would not have produced any of the
    /// format's action strings (the constrained choice was used, as always).
    pub off_format: usize,
    /// `off_format / steps`.
    pub off_format_rate: f64,
}
