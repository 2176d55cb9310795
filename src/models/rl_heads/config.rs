//! The `model` section of an RL-heads model (`model.kind = rl_heads`): token layout, state
//! and position embeddings, sizes, dropouts and the weight of each head's loss.

use crate::models::layers::Activation;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenLayout {
    /// Three tokens per step: state, action, reward (AD).
    Sar,
    /// One token per step.
    Fused,
}

/// How a discrete state enters the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateEmbeddingKind {
    /// One learned vector per state id.
    #[default]
    Table,
    /// One learned table per coordinate (Dark Room: x and y); a state is the sum of its
    /// coordinates' vectors. States that share a row or column share structure, so "the
    /// reward was at (x, y)" means something for a cell that was never a training goal.
    Coords,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionEmbedding {
    /// One learned position per token.
    PerToken,
    /// One learned position per step, shared by the step's tokens (Decision Transformer's
    /// timestep embedding).
    PerStep,
}

/// Weight of each head's loss in the total. A head with weight 0 is not built at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossWeights {
    pub action: f64,
    pub reward: f64,
    pub next_state: f64,
    pub logprob: f64,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_init_std() -> f64 {
    0.02
}

/// `model.*` keys when `model.kind = rl_heads`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RlHeadsConfig {
    pub name: String,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    /// Steps (not tokens) of learning history the model sees at once.
    pub context_steps: usize,
    /// Steps of a window that only serve as context: the loss counts the positions with at
    /// least this many steps of the window before them (0: every position).
    #[serde(default)]
    pub min_context: usize,
    pub layout: TokenLayout,
    /// Discrete states only: `table` or `coords` (needs an environment with coordinates).
    #[serde(default)]
    pub state_embedding: StateEmbeddingKind,
    pub position: PositionEmbedding,
    pub activation: Activation,
    /// Dropout on embeddings and residual branches.
    pub dropout: f64,
    pub attn_dropout: f64,
    /// AD regulariser: probability of replacing an input token by a learned mask embedding
    /// during training.
    pub token_mask_prob: f64,
    /// AD regulariser: label smoothing of the action cross-entropy.
    pub label_smoothing: f64,
    /// Feed the source policy's logprob of a_t as an input (it is not available when the
    /// model itself acts at in-context evaluation, hence off by default).
    pub embed_logprob: bool,
    pub loss_weights: LossWeights,
    /// A continuous reward prediction counts as correct within this absolute error.
    pub reward_tolerance: f32,
    /// A continuous next-state prediction counts as correct when every feature is within it.
    pub state_tolerance: f32,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_init_std")]
    pub init_std: f64,
}
