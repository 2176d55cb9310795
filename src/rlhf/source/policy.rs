//! The PPO policy: the project's GPT-2 [`CausalLm`] plus a value head on its final hidden
//! states (TRLx's `AutoModelForCausalLMWithValueHead`: Linear(d, 2d), ReLU, Linear(2d, 1)),
//! the frozen reference copy, and the supervised pretraining on grammar stories that stands
//! in for starting from a pretrained LM.
//!
//! Sequence layout shared by pretraining, generation and PPO: the prompt is left-padded with
//! end-of-text to [`PROMPT_TOKENS`] (its first real token is an end-of-text, the
//! beginning-of-sequence), then the response. The same padded layout is used everywhere, so
//! logprobs at generation and in the PPO update come from identical inputs.

use super::config::PolicyConfig;
use super::story::{Grammar, MAX_CONTINUATION_WORDS, PROMPT_TOKENS};
use crate::models::layers::{Activation, Conv1D};
use crate::models::params::seeded_var_builder;
use crate::models::{CausalLm, CausalLmConfig, ParamSet};
use crate::optim::clip::clip_global_norm;
use crate::optim::{AdamW, Gradients, OptimizerConfig, ScheduleKind};
use crate::tokenizer::TextTokenizer;
use anyhow::{bail, Result};
use candle_core::{Device, Tensor, D};
use candle_nn::VarMap;
use std::collections::HashMap;
use std::path::Path;

/// AdamW settings shared by pretraining and PPO (TRLx's defaults: betas (0.9, 0.95), no
/// schedule); the learning rate is passed per step.
pub fn adamw_config(lr: f64) -> OptimizerConfig {
    OptimizerConfig {
        name: "adamw".into(),
        lr,
        betas: [0.9, 0.95],
        eps: 1e-8,
        weight_decay: 1e-6,
        decay_embeddings: false,
        schedule: ScheduleKind::Constant,
        warmup_steps: 0,
        min_lr: 0.0,
        grad_clip: 1.0,
    }
}

/// The LM's config for a `task.policy` section (ReLU, no dropout: PPO's ratio must be 1 on
/// the data it was just computed on).
pub fn lm_config(cfg: &PolicyConfig) -> CausalLmConfig {
    CausalLmConfig {
        name: "sentiment_policy".into(),
        d_model: cfg.d_model,
        n_layers: cfg.n_layers,
        n_heads: cfg.n_heads,
        d_ff: cfg.d_ff,
        context_tokens: cfg.context,
        activation: Activation::Relu,
        dropout: 0.0,
        attn_dropout: 0.0,
        layer_norm_eps: 1e-5,
        init_std: 0.02,
        init_from: None,
    }
}

/// Left-pads prompt ids (without beginning-of-sequence) to `PROMPT_TOKENS`.
pub fn pad_prompt(ids: &[u32], eos: u32) -> Result<Vec<u32>> {
    if ids.len() + 1 > PROMPT_TOKENS {
        bail!(
            "a prompt of {} tokens exceeds the {} a prompt may have",
            ids.len(),
            PROMPT_TOKENS - 1
        );
    }
    let mut out = vec![eos; PROMPT_TOKENS - ids.len()];
    out.extend_from_slice(ids);
    Ok(out)
}

/// Log-probabilities of `targets: u32 [B, R]` under the LM head applied to `hidden: [B, R, d]`.
pub fn token_logprobs(lm: &CausalLm, hidden: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(&lm.lm_head(hidden)?, D::Minus1)?;
    Ok(logp.gather(&targets.unsqueeze(2)?, 2)?.squeeze(2)?)
}

/// Hidden states at the positions that predict the `r` response tokens of `ids: [B, P + r]`.
fn response_hidden(lm: &CausalLm, ids: &Tensor, r: usize) -> Result<Tensor> {
    let total = ids.dim(1)?;
    let inputs = ids.narrow(1, 0, total - 1)?;
    let hidden = lm.forward_hidden(&inputs, None)?;
    Ok(hidden.narrow(1, total - 1 - r, r)?)
}

/// Response-token logprobs `[B, r]` of a model without value head (the reference policy).
pub fn response_logprobs(lm: &CausalLm, ids: &Tensor, r: usize) -> Result<Tensor> {
    let targets = ids.narrow(1, ids.dim(1)? - r, r)?.contiguous()?;
    token_logprobs(lm, &response_hidden(lm, ids, r)?, &targets)
}

/// A [`CausalLm`] with a value head.
pub struct Policy {
    pub lm: CausalLm,
    head_vars: VarMap,
    v_hidden: Conv1D,
    v_out: Conv1D,
}

impl Policy {
    pub fn new(cfg: &PolicyConfig, vocab_size: usize, seed: u64) -> Result<Self> {
        let lm = CausalLm::new(
            &lm_config(cfg),
            vocab_size,
            crate::seed::rng(seed, "rlhf-policy-init", &[]),
        )?;
        let head_vars = VarMap::new();
        let vb = seeded_var_builder(&head_vars, crate::seed::rng(seed, "rlhf-vhead-init", &[]));
        let vb = vb.pp("v_head");
        let d = cfg.d_model;
        Ok(Policy {
            lm,
            v_hidden: Conv1D::new(d, 2 * d, 0.02, vb.pp("0"))?,
            v_out: Conv1D::new(2 * d, 1, 0.02, vb.pp("2"))?,
            head_vars,
        })
    }

    /// Every trainable parameter (LM and value head), sorted by name.
    pub fn params(&self) -> ParamSet {
        let lm = self.lm.params();
        let head = ParamSet::from_varmap(&self.head_vars);
        let mut all: Vec<(String, candle_core::Var)> = lm
            .names
            .into_iter()
            .zip(lm.vars)
            .chain(head.names.into_iter().zip(head.vars))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let (names, vars) = all.into_iter().unzip();
        ParamSet { names, vars }
    }

    /// Value estimates `[..]` from hidden states `[.., d]`.
    pub fn values(&self, hidden: &Tensor) -> Result<Tensor> {
        let h = self.v_hidden.forward_with(hidden, Some(Activation::Relu))?;
        Ok(self.v_out.forward(&h)?.squeeze(D::Minus1)?)
    }

    /// `ids: u32 [B, P + r]` -> (logprobs, values), each `[B, r]`: the logprob of each
    /// response token and the value of the state it was chosen in (TRLx's alignment).
    pub fn evaluate(&self, ids: &Tensor, r: usize) -> Result<(Tensor, Tensor)> {
        let hidden = response_hidden(&self.lm, ids, r)?;
        let targets = ids.narrow(1, ids.dim(1)? - r, r)?.contiguous()?;
        let logprobs = token_logprobs(&self.lm, &hidden, &targets)?;
        Ok((logprobs, self.values(&hidden)?))
    }

    /// An independent copy of the LM (no value head): the frozen reference policy.
    pub fn frozen_copy(&self) -> Result<CausalLm> {
        let copy = CausalLm::new(
            &self.lm.cfg,
            self.lm.vocab_size,
            crate::seed::rng(0, "rlhf-ref-init", &[]),
        )?;
        let tensors: HashMap<String, Tensor> =
            self.lm.params().named_tensors().into_iter().collect();
        copy.params().load_named(&tensors, Path::new("<policy>"))?;
        Ok(copy)
    }

    /// An independent copy of the whole policy (each PPO run fine-tunes its own).
    pub fn try_clone(&self, cfg: &PolicyConfig) -> Result<Policy> {
        let copy = Policy::new(cfg, self.lm.vocab_size, 0)?;
        let tensors: HashMap<String, Tensor> = self.params().named_tensors().into_iter().collect();
        copy.params().load_named(&tensors, Path::new("<policy>"))?;
        Ok(copy)
    }
}

/// Supervised next-token training on fresh grammar stories (prompt + continuation +
/// end-of-text, in the PPO layout). Returns the last step's loss. Only the LM is trained.
pub fn pretrain(
    policy: &Policy,
    tokenizer: &TextTokenizer,
    cfg: &PolicyConfig,
    seed: u64,
) -> Result<f32> {
    let grammar = Grammar::new();
    let eos = tokenizer.end_of_text_id();
    let params = policy.lm.params();
    let mut opt = AdamW::new(&adamw_config(cfg.pretrain_lr), &params)?;
    let width = PROMPT_TOKENS + MAX_CONTINUATION_WORDS + 1;
    let batch = cfg.pretrain_batch;
    let mut rng = crate::seed::rng(seed, "rlhf-pretrain", &[]);
    let mut last = f32::NAN;
    for _ in 0..cfg.pretrain_steps {
        let (mut ids, mut mask) = (Vec::with_capacity(batch * width), Vec::new());
        for _ in 0..batch {
            let prompt = tokenizer.encode(&grammar.prompt(&mut rng))?;
            let mut row = pad_prompt(&prompt, eos)?;
            let start = PROMPT_TOKENS - prompt.len();
            row.extend(tokenizer.encode(&grammar.continuation(&mut rng))?);
            row.push(eos);
            let len = row.len();
            row.resize(width, eos);
            // Target j is token j + 1: learn every real token after the beginning-of-sequence.
            mask.extend((1..width).map(|j| f32::from(u8::from(j >= start && j < len))));
            ids.extend(row);
        }
        let ids = Tensor::from_vec(ids, (batch, width), &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, (batch, width - 1), &Device::Cpu)?;
        let inputs = ids.narrow(1, 0, width - 1)?;
        let targets = ids.narrow(1, 1, width - 1)?.contiguous()?;
        let logits = policy.lm.forward(&inputs, None)?;
        let loss = policy.lm.loss(&logits, &targets, &mask)?;
        let mut grads = Gradients::from_store(&loss.loss.backward()?, &params)?;
        clip_global_norm(&mut grads, 1.0);
        opt.step(&params, &grads, cfg.pretrain_lr)?;
        last = loss.loss_value;
    }
    Ok(last)
}
