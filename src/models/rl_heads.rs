//! `rl_heads`: the Decision-Transformer / Algorithm-Distillation model. Learning histories
//! enter as RL tuples through separate embeddings (state, action, reward, optional logprob),
//! pass through the shared GPT trunk, and leave through separate heads (action, reward,
//! next state, logprob), each with its own loss weight.
//!
//! Which token predicts what (step t = (s_t, a_t, r_t, logprob_t)):
//!
//! * layout `sar` (AD's): three tokens per step, `[s_0, a_0, r_0, s_1, a_1, r_1, ...]`.
//!   The hidden state at the **s_t token** feeds the action head (predicts a_t); at the
//!   **a_t token** the reward head (r_t) and the logprob head (logprob_t, the source policy's
//!   log-probability of a_t); at the **r_t token** the next-state head (s_{t+1}).
//!   With `embed_logprob`, logprob_t is added to the r_t token's input (after it is predicted).
//! * layout `fused`: one token per step, `s_t + a_{t-1} + r_{t-1}` (a learned `start` vector
//!   replaces the previous action and reward at the first step of the window). The action
//!   head reads h_t; the reward, next-state and logprob heads read `h_t + taken_action(a_t)`
//!   (the action actually taken, teacher-forced), since h_t has not seen a_t.
//!
//! The next-state target of the last step of a window is unknown, so it is masked out.

use super::block::{KvCache, Trunk, TrunkConfig};
use super::layers::{bernoulli_mask, dropout, Conv1D, Embedding};
use super::losses::{masked_cross_entropy, masked_mse, HeadLoss};
use super::params::{read_safetensors, safetensors_bytes, seeded_var_builder, ParamSet};
use anyhow::{bail, Result};
use candle_core::{DType, Tensor};
use candle_nn::{Init, VarMap};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

pub mod batch;
pub mod config;

pub use batch::{
    RewardInput, RewardSpace, RlBatch, RlLoss, RlMetrics, RlOutputs, RlSpaces, StateInput,
    StateSpace,
};
pub use config::{LossWeights, PositionEmbedding, RlHeadsConfig, StateEmbeddingKind, TokenLayout};

/// Input projection of a state, discrete or continuous.
enum StateEmbedding {
    Table(Embedding),
    Linear(Conv1D),
    /// `tables[j]` embeds coordinate j; `coord_of[j]` (`u32 [n_states]`) maps a state id to it.
    Coords {
        tables: Vec<Embedding>,
        coord_of: Vec<Tensor>,
    },
}

/// Per-coordinate tables for [`StateEmbeddingKind::Coords`].
fn coordinate_embedding(
    coords: &[Vec<u32>],
    d: usize,
    std: f64,
    vb: candle_nn::VarBuilder,
) -> Result<StateEmbedding> {
    let k = coords.first().map_or(0, Vec::len);
    if k == 0 || coords.iter().any(|c| c.len() != k) {
        bail!("model.state_embedding = coords needs every state to have the same coordinates");
    }
    let mut tables = Vec::with_capacity(k);
    let mut coord_of = Vec::with_capacity(k);
    for j in 0..k {
        let column: Vec<u32> = coords.iter().map(|c| c[j]).collect();
        let size = column.iter().max().map_or(1, |&m| m as usize + 1);
        tables.push(Embedding::new(size, d, std, vb.pp(format!("coord{j}")))?);
        coord_of.push(Tensor::from_vec(column, coords.len(), vb.device())?);
    }
    Ok(StateEmbedding::Coords { tables, coord_of })
}

enum RewardEmbedding {
    Table(Embedding),
    Linear(Conv1D),
}

pub struct RlHeadsModel {
    // Embeddings (`embed.*`).
    state_embed: StateEmbedding,
    action_embed: Embedding,
    reward_embed: RewardEmbedding,
    logprob_embed: Option<Conv1D>,
    position_embed: Embedding,
    /// Learned replacement for masked-out input tokens (only when token_mask_prob > 0).
    mask_embed: Option<Tensor>,
    /// `fused` only: stands in for the previous action and reward at a window's first step.
    start_embed: Option<Tensor>,
    trunk: Trunk,
    // Heads (`head.*`).
    action_head: Conv1D,
    reward_head: Option<Conv1D>,
    next_state_head: Option<Conv1D>,
    logprob_head: Option<Conv1D>,
    /// `fused` only: embedding of the action taken, added to h_t for the non-action heads.
    taken_action: Option<Embedding>,
    pub cfg: RlHeadsConfig,
    pub spaces: RlSpaces,
    varmap: VarMap,
}

impl RlHeadsModel {
    pub fn new(cfg: &RlHeadsConfig, spaces: &RlSpaces, init_rng: ChaCha8Rng) -> Result<Self> {
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, init_rng);
        let (d, std) = (cfg.d_model, cfg.init_std);
        let w = &cfg.loss_weights;
        let e = vb.pp("embed");
        let state_embed = match spaces.states {
            StateSpace::Discrete { n } => match (cfg.state_embedding, &spaces.state_coords) {
                (StateEmbeddingKind::Table, _) => {
                    StateEmbedding::Table(Embedding::new(n, d, std, e.pp("state"))?)
                }
                (StateEmbeddingKind::Coords, Some(coords)) if coords.len() == n => {
                    coordinate_embedding(coords, d, std, e.pp("state"))?
                }
                (StateEmbeddingKind::Coords, _) => bail!(
                    "model.state_embedding = coords: this environment's states have no \
                     coordinates (use table)"
                ),
            },
            StateSpace::Continuous { dim } => {
                StateEmbedding::Linear(Conv1D::new(dim, d, std, e.pp("state"))?)
            }
        };
        let action_embed = Embedding::new(spaces.n_actions, d, std, e.pp("action"))?;
        let reward_embed = match &spaces.rewards {
            RewardSpace::Classes(values) => {
                RewardEmbedding::Table(Embedding::new(values.len(), d, std, e.pp("reward"))?)
            }
            RewardSpace::Continuous => {
                RewardEmbedding::Linear(Conv1D::new(1, d, std, e.pp("reward"))?)
            }
        };
        let logprob_embed = if cfg.embed_logprob {
            Some(Conv1D::new(1, d, std, e.pp("logprob"))?)
        } else {
            None
        };
        let n_positions = match (cfg.position, cfg.layout) {
            (PositionEmbedding::PerToken, TokenLayout::Sar) => 3 * cfg.context_steps,
            _ => cfg.context_steps,
        };
        let position_embed = Embedding::new(n_positions, d, std, e.pp("position"))?;
        let normal = Init::Randn {
            mean: 0.0,
            stdev: std,
        };
        let mask_embed = if cfg.token_mask_prob > 0.0 {
            Some(e.get_with_hints(d, "mask", normal)?)
        } else {
            None
        };
        let fused = cfg.layout == TokenLayout::Fused;
        let start_embed = if fused {
            Some(e.get_with_hints(d, "start", normal)?)
        } else {
            None
        };
        let trunk_cfg = TrunkConfig {
            d_model: d,
            n_layers: cfg.n_layers,
            n_heads: cfg.n_heads,
            d_ff: cfg.d_ff,
            activation: cfg.activation,
            dropout: cfg.dropout,
            attn_dropout: cfg.attn_dropout,
            layer_norm_eps: cfg.layer_norm_eps,
            init_std: std,
        };
        let trunk = Trunk::new(&trunk_cfg, vb.pp("transformer"))?;
        let h = vb.pp("head");
        if w.action <= 0.0 {
            bail!("model.loss_weights.action must be > 0 (the action head is what AD evaluates)");
        }
        let action_head = Conv1D::new(d, spaces.n_actions, std, h.pp("action"))?;
        let reward_head = if w.reward > 0.0 {
            let out = match &spaces.rewards {
                RewardSpace::Classes(values) => values.len(),
                RewardSpace::Continuous => 1,
            };
            Some(Conv1D::new(d, out, std, h.pp("reward"))?)
        } else {
            None
        };
        let next_state_head = if w.next_state > 0.0 {
            let out = match spaces.states {
                StateSpace::Discrete { n } => n,
                StateSpace::Continuous { dim } => dim,
            };
            Some(Conv1D::new(d, out, std, h.pp("next_state"))?)
        } else {
            None
        };
        let logprob_head = if w.logprob > 0.0 {
            Some(Conv1D::new(d, 1, std, h.pp("logprob"))?)
        } else {
            None
        };
        let needs_taken =
            reward_head.is_some() || next_state_head.is_some() || logprob_head.is_some();
        let taken_action = if fused && needs_taken {
            Some(Embedding::new(
                spaces.n_actions,
                d,
                std,
                h.pp("taken_action"),
            )?)
        } else {
            None
        };
        Ok(Self {
            state_embed,
            action_embed,
            reward_embed,
            logprob_embed,
            position_embed,
            mask_embed,
            start_embed,
            trunk,
            action_head,
            reward_head,
            next_state_head,
            logprob_head,
            taken_action,
            cfg: cfg.clone(),
            spaces: spaces.clone(),
            varmap,
        })
    }

    pub fn params(&self) -> ParamSet {
        ParamSet::from_varmap(&self.varmap)
    }

    /// Writes the weights as safetensors (names = module paths, e.g. `head.reward.weight`).
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        let bytes = safetensors_bytes(&self.params().named_tensors(), None)?;
        crate::fsutil::write_atomic(path, &bytes)
    }

    /// Loads weights saved by [`RlHeadsModel::save_weights`] (or a checkpoint's
    /// `model.safetensors`) into a model built with the same config and spaces.
    pub fn load_weights(&self, path: &Path) -> Result<()> {
        self.params().load_named(&read_safetensors(path)?, path)
    }

    pub fn new_cache(&self) -> KvCache {
        self.trunk.new_cache()
    }

    /// Tokens per step in the chosen layout.
    pub fn tokens_per_step(&self) -> usize {
        match self.cfg.layout {
            TokenLayout::Sar => 3,
            TokenLayout::Fused => 1,
        }
    }

    pub(crate) fn embed_states(&self, states: &StateInput) -> Result<Tensor> {
        Ok(match (&self.state_embed, states) {
            (StateEmbedding::Table(e), StateInput::Discrete(ids)) => e.forward(ids)?,
            (StateEmbedding::Coords { tables, coord_of }, StateInput::Discrete(ids)) => {
                let flat = ids.flatten_all()?;
                let mut sum: Option<Tensor> = None;
                for (table, of) in tables.iter().zip(coord_of) {
                    let x = table.forward(&of.index_select(&flat, 0)?)?;
                    sum = Some(match sum {
                        None => x,
                        Some(s) => (s + x)?,
                    });
                }
                let mut dims = ids.dims().to_vec();
                dims.push(self.cfg.d_model);
                sum.expect("at least one coordinate").reshape(dims)?
            }
            (StateEmbedding::Linear(l), StateInput::Continuous(x)) => l.forward(x)?,
            _ => bail!(
                "state input does not match the model's state space {:?}",
                self.spaces.states
            ),
        })
    }

    pub(crate) fn embed_actions(&self, actions: &Tensor) -> Result<Tensor> {
        Ok(self.action_embed.forward(actions)?)
    }

    /// Reward embedding of each step, plus the logprob embedding when `embed_logprob`.
    pub(crate) fn embed_rewards(&self, rewards: &RewardInput, logprobs: &Tensor) -> Result<Tensor> {
        let r = match (&self.reward_embed, rewards) {
            (RewardEmbedding::Table(e), RewardInput::Classes(ids)) => e.forward(ids)?,
            (RewardEmbedding::Linear(l), RewardInput::Values(v)) => l.forward(&v.unsqueeze(2)?)?,
            _ => bail!("reward input does not match the model's reward space"),
        };
        Ok(match &self.logprob_embed {
            Some(l) => (r + l.forward(&logprobs.unsqueeze(2)?)?)?,
            None => r,
        })
    }

    /// Input tokens `[B, L, d]` (without positions) of `T` complete steps.
    pub(crate) fn embed_steps(&self, batch: &RlBatch) -> Result<Tensor> {
        let (b, t) = batch.dims()?;
        let d = self.cfg.d_model;
        let s = self.embed_states(&batch.states)?;
        let a = self.embed_actions(&batch.actions)?;
        let r = self.embed_rewards(&batch.rewards, &batch.logprobs)?;
        Ok(match self.cfg.layout {
            TokenLayout::Sar => Tensor::stack(&[s, a, r], 2)?.reshape((b, 3 * t, d))?,
            TokenLayout::Fused => {
                let start = self.start_embedding(b)?;
                let prev = if t > 1 {
                    let ar = (a + r)?.narrow(1, 0, t - 1)?;
                    Tensor::cat(&[&start, &ar], 1)?
                } else {
                    start.contiguous()?
                };
                (s + prev)?
            }
        })
    }

    /// `fused` only: the `[B, 1, d]` start vector standing in for "no previous step".
    pub(crate) fn start_embedding(&self, b: usize) -> Result<Tensor> {
        let Some(start) = &self.start_embed else {
            bail!("the start embedding exists only in the fused layout");
        };
        let d = self.cfg.d_model;
        Ok(start.reshape((1, 1, d))?.broadcast_as((b, 1, d))?)
    }

    /// Learned position embeddings `[B, n, d]` of the window's tokens `first..first + n`
    /// (looked up per row: the backward of a broadcast over the batch is a slow path).
    pub(crate) fn positions(&self, first: usize, n: usize, b: usize) -> Result<Tensor> {
        let ids: Vec<u32> = (first..first + n)
            .map(|i| match (self.cfg.position, self.cfg.layout) {
                (PositionEmbedding::PerStep, TokenLayout::Sar) => (i / 3) as u32,
                _ => i as u32,
            })
            .collect();
        let n_pos = self.position_embed.weight.dim(0)?;
        if first + n > 0 && ids[ids.len() - 1] as usize >= n_pos {
            bail!(
                "window of {} tokens exceeds model.context_steps = {}",
                first + n,
                self.cfg.context_steps
            );
        }
        let ids = Tensor::from_vec(ids.repeat(b), (b, n), &candle_core::Device::Cpu)?;
        Ok(self.position_embed.forward(&ids)?)
    }

    /// Runs the trunk over `tokens` (positions `first..`) and returns hidden states.
    pub(crate) fn run_trunk(
        &self,
        tokens: &Tensor,
        first: usize,
        cache: Option<&mut KvCache>,
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        let (b, n, _) = tokens.dims3()?;
        let mut x = tokens.clone();
        if let (Some(mask_embed), Some(rng)) = (&self.mask_embed, rng.as_deref_mut()) {
            let m = bernoulli_mask(&[b, n, 1], self.cfg.token_mask_prob, rng, DType::F32)?;
            let keep = m.affine(-1.0, 1.0)?;
            x = (x.broadcast_mul(&keep)? + m.broadcast_mul(mask_embed)?)?;
        }
        let x = (x + self.positions(first, n, b)?)?;
        let x = dropout(&x, self.cfg.dropout, rng.as_deref_mut())?;
        Ok(self.trunk.forward(&x, cache, rng)?)
    }

    /// Predictions of every head for every step of `batch` (T <= context_steps).
    /// `dropout_rng = None` is evaluation mode (no dropout, no token masking).
    pub fn forward(
        &self,
        batch: &RlBatch,
        dropout_rng: Option<&mut ChaCha8Rng>,
    ) -> Result<RlOutputs> {
        let (b, t) = batch.dims()?;
        let d = self.cfg.d_model;
        let tokens = self.embed_steps(batch)?;
        let hidden = self.run_trunk(&tokens, 0, None, dropout_rng)?;
        let (h_action, h_reward, h_state) = match self.cfg.layout {
            TokenLayout::Sar => {
                let per_step = hidden.reshape((b, t, 3, d))?;
                let at = |k: usize| -> Result<Tensor> {
                    Ok(per_step.narrow(2, k, 1)?.squeeze(2)?.contiguous()?)
                };
                // s_t token -> a_t; a_t token -> r_t, logprob_t; r_t token -> s_{t+1}.
                let (h_s, h_a, h_r) = (at(0)?, at(1)?, at(2)?);
                (h_s, h_a, h_r)
            }
            TokenLayout::Fused => {
                let cond = match &self.taken_action {
                    Some(e) => (&hidden + e.forward(&batch.actions)?)?,
                    None => hidden.clone(),
                };
                (hidden, cond.clone(), cond)
            }
        };
        Ok(RlOutputs {
            action_logits: self.action_head.forward(&h_action)?,
            reward: self
                .reward_head
                .as_ref()
                .map(|h| h.forward(&h_reward))
                .transpose()?,
            next_state: self
                .next_state_head
                .as_ref()
                .map(|h| h.forward(&h_state))
                .transpose()?,
            logprob: self
                .logprob_head
                .as_ref()
                .map(|h| h.forward(&h_reward))
                .transpose()?,
        })
    }

    /// Action logits `[B, A]` from hidden states at the tokens that predict actions.
    pub(crate) fn action_logits(&self, h: &Tensor) -> Result<Tensor> {
        Ok(self.action_head.forward(h)?)
    }

    /// Weighted total loss and per-head metrics of `outputs` against `batch`.
    pub fn loss(&self, outputs: &RlOutputs, batch: &RlBatch) -> Result<RlLoss> {
        let (b, t) = batch.dims()?;
        let n = b * t;
        let w = &self.cfg.loss_weights;
        let mask = batch.loss_mask.flatten_all()?;
        let flat = |x: &Tensor, rows: usize| -> Result<Tensor> {
            let k = x.elem_count() / rows;
            Ok(x.reshape((rows, k))?)
        };
        let action = masked_cross_entropy(
            &flat(&outputs.action_logits, n)?,
            &batch.actions.flatten_all()?,
            &mask,
            self.cfg.label_smoothing,
        )?;
        let mut total = (&action.loss * w.action)?;
        let mut metrics = RlMetrics {
            action_loss: action.loss_value,
            action_acc: action.accuracy,
            ..Default::default()
        };
        let mut add = |head: &HeadLoss, weight: f64| -> Result<()> {
            total = (&total + (&head.loss * weight)?)?;
            Ok(())
        };
        if let Some(pred) = &outputs.reward {
            let head = match &batch.rewards {
                RewardInput::Classes(ids) => {
                    masked_cross_entropy(&flat(pred, n)?, &ids.flatten_all()?, &mask, 0.0)?
                }
                RewardInput::Values(v) => masked_mse(
                    &flat(pred, n)?,
                    &v.reshape((n, 1))?,
                    &mask,
                    self.cfg.reward_tolerance,
                )?,
            };
            add(&head, w.reward)?;
            metrics.reward_loss = Some(head.loss_value);
            metrics.reward_acc = Some(head.accuracy);
        }
        if let (Some(pred), true) = (&outputs.next_state, t > 1) {
            // Prediction at step t targets s_{t+1}: drop the last prediction and first state.
            let m = (batch.loss_mask.narrow(1, 0, t - 1)?
                * batch.loss_mask.narrow(1, 1, t - 1)?)?
            .flatten_all()?;
            let rows = b * (t - 1);
            let pred = flat(&pred.narrow(1, 0, t - 1)?.contiguous()?, rows)?;
            let head = match &batch.states {
                StateInput::Discrete(ids) => {
                    masked_cross_entropy(&pred, &ids.narrow(1, 1, t - 1)?.flatten_all()?, &m, 0.0)?
                }
                StateInput::Continuous(x) => masked_mse(
                    &pred,
                    &flat(&x.narrow(1, 1, t - 1)?.contiguous()?, rows)?,
                    &m,
                    self.cfg.state_tolerance,
                )?,
            };
            add(&head, w.next_state)?;
            metrics.state_loss = Some(head.loss_value);
            metrics.state_acc = Some(head.accuracy);
        }
        if let Some(pred) = &outputs.logprob {
            let head = masked_mse(
                &flat(pred, n)?,
                &batch.logprobs.reshape((n, 1))?,
                &mask,
                f32::INFINITY,
            )?;
            add(&head, w.logprob)?;
            metrics.logprob_mse = Some(head.loss_value);
        }
        metrics.loss = total.to_scalar::<f32>()?;
        Ok(RlLoss { total, metrics })
    }
}
