//! What an RL-heads model reads and returns: the task's spaces, a batch of windows as
//! tensors, the heads' outputs, losses and metrics.

use anyhow::Result;
use candle_core::Tensor;

/// What the task's observations are.
#[derive(Debug, Clone, PartialEq)]
pub enum StateSpace {
    Discrete { n: usize },
    Continuous { dim: usize },
}

/// What the task's rewards are: a few known values (predicted by classification) or reals.
#[derive(Debug, Clone, PartialEq)]
pub enum RewardSpace {
    /// Class i is the reward value `values[i]`.
    Classes(Vec<f32>),
    Continuous,
}

impl RewardSpace {
    /// The class whose value is nearest to `value` (for callers holding raw rewards).
    pub fn class_of(values: &[f32], value: f32) -> u32 {
        let mut best = 0;
        for (i, v) in values.iter().enumerate() {
            if (v - value).abs() < (values[best] - value).abs() {
                best = i;
            }
        }
        best as u32
    }
}

/// The task's spaces, filled by the caller from the task / dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct RlSpaces {
    pub states: StateSpace,
    /// Discrete states with coordinates: `state_coords[id]` (each coordinate from 0).
    pub state_coords: Option<Vec<Vec<u32>>>,
    pub n_actions: usize,
    pub rewards: RewardSpace,
}

/// States of a batch: ids `u32 [B, T]` or features `f32 [B, T, D]`.
#[derive(Debug, Clone)]
pub enum StateInput {
    Discrete(Tensor),
    Continuous(Tensor),
}

/// Rewards of a batch: class ids `u32 [B, T]` or values `f32 [B, T]`.
#[derive(Debug, Clone)]
pub enum RewardInput {
    Classes(Tensor),
    Values(Tensor),
}

/// A batch of learning-history windows of T steps.
#[derive(Debug, Clone)]
pub struct RlBatch {
    pub states: StateInput,
    /// `u32 [B, T]`
    pub actions: Tensor,
    pub rewards: RewardInput,
    /// `f32 [B, T]`: the source policy's log-probability of each action.
    pub logprobs: Tensor,
    /// `f32 [B, T]`: 1 where the step counts in the loss (0 for padding).
    pub loss_mask: Tensor,
}

impl RlBatch {
    pub fn dims(&self) -> Result<(usize, usize)> {
        Ok(self.actions.dims2()?)
    }

    /// Steps `start..start + len` of every row.
    pub fn narrow_steps(&self, start: usize, len: usize) -> Result<RlBatch> {
        Ok(RlBatch {
            states: match &self.states {
                StateInput::Discrete(s) => StateInput::Discrete(s.narrow(1, start, len)?),
                StateInput::Continuous(s) => StateInput::Continuous(s.narrow(1, start, len)?),
            },
            actions: self.actions.narrow(1, start, len)?,
            rewards: match &self.rewards {
                RewardInput::Classes(r) => RewardInput::Classes(r.narrow(1, start, len)?),
                RewardInput::Values(r) => RewardInput::Values(r.narrow(1, start, len)?),
            },
            logprobs: self.logprobs.narrow(1, start, len)?,
            loss_mask: self.loss_mask.narrow(1, start, len)?,
        })
    }
}

/// Per-step predictions `[B, T, ...]` of each head (None when the head is not built).
#[derive(Debug, Clone)]
pub struct RlOutputs {
    /// Logits `[B, T, n_actions]` for a_t.
    pub action_logits: Tensor,
    /// Logits `[B, T, n_classes]`, or values `[B, T, 1]` for continuous rewards, for r_t.
    pub reward: Option<Tensor>,
    /// Logits `[B, T, n_states]`, or features `[B, T, D]`, for s_{t+1}.
    pub next_state: Option<Tensor>,
    /// `[B, T, 1]` prediction of logprob_t.
    pub logprob: Option<Tensor>,
}

/// Plain-number metrics of one batch (None where a head is not built).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RlMetrics {
    pub loss: f32,
    pub action_loss: f32,
    pub action_acc: f32,
    pub reward_loss: Option<f32>,
    pub reward_acc: Option<f32>,
    pub state_loss: Option<f32>,
    pub state_acc: Option<f32>,
    pub logprob_mse: Option<f32>,
}

pub struct RlLoss {
    /// Weighted sum of the head losses (call `.backward()` on it).
    pub total: Tensor,
    pub metrics: RlMetrics,
}
