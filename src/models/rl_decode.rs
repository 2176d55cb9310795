//! Step-by-step decoding of the `rl_heads` model for in-context evaluation: the model acts
//! in an environment, one step at a time, conditioning on its own growing history, with a
//! key/value cache so each step costs one (or two) new tokens instead of a full forward.
//!
//! When the window is full (`context_steps` complete steps), the cache is rebuilt from the
//! most recent `keep_steps` steps (learned absolute positions make sliding cached keys
//! invalid). The action logits returned are always those of an uncached
//! [`RlHeadsModel::forward`] over the steps from [`RlDecoder::window_start`].

use super::block::KvCache;
use super::rl_heads::{RewardInput, RewardSpace, RlBatch, RlHeadsModel, StateInput, TokenLayout};
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};

/// One step's observation for every batch row.
pub enum StateStep<'a> {
    /// One state id per row.
    Discrete(&'a [u32]),
    /// `B * D` features, row-major.
    Continuous(&'a [f32]),
}

pub struct RlDecoder {
    batch: usize,
    cache: KvCache,
    /// Every complete step so far, each a 1-step batch `[B, 1]`.
    steps: Vec<RlBatch>,
    /// Index in `steps` of the first step in the window.
    window_start: usize,
    /// The current step's state, observed but not yet acted on.
    pending_state: Option<StateInput>,
    /// Complete steps kept when a full window slides (less than `context_steps`).
    keep_steps: usize,
}

impl RlDecoder {
    /// A decoder for `batch` rows that, when the window is full, keeps the most recent
    /// `context_kept` fraction of it (at most `context_steps - 1` steps).
    pub fn new(model: &RlHeadsModel, batch: usize, context_kept: f64) -> Self {
        let ctx = model.cfg.context_steps;
        let keep_steps = ((ctx as f64 * context_kept).round() as usize).min(ctx.saturating_sub(1));
        Self {
            batch,
            cache: model.new_cache(),
            steps: Vec::new(),
            window_start: 0,
            pending_state: None,
            keep_steps,
        }
    }

    /// Index of the first complete step the model currently conditions on.
    pub fn window_start(&self) -> usize {
        self.window_start
    }

    /// Steps completed so far (all of them, not only the window).
    pub fn steps_done(&self) -> usize {
        self.steps.len()
    }

    fn state_tensor(&self, state: &StateStep) -> Result<StateInput> {
        let b = self.batch;
        Ok(match state {
            StateStep::Discrete(ids) => {
                StateInput::Discrete(Tensor::from_vec(ids.to_vec(), (b, 1), &Device::Cpu)?)
            }
            StateStep::Continuous(x) => {
                let dim = x.len() / b;
                StateInput::Continuous(Tensor::from_vec(x.to_vec(), (b, 1, dim), &Device::Cpu)?)
            }
        })
    }

    /// Rebuilds the cache from the last `keep_steps` complete steps.
    fn reprime(&mut self, model: &RlHeadsModel) -> Result<()> {
        let keep = self.keep_steps;
        self.window_start = self.steps.len() - keep;
        self.cache.clear();
        if keep > 0 {
            let window = concat_steps(&self.steps[self.window_start..])?;
            let tokens = model.embed_steps(&window)?;
            model.run_trunk(&tokens, 0, Some(&mut self.cache), None)?;
        }
        Ok(())
    }

    /// Observes s_t for every row and returns the action logits `[B, n_actions]` for a_t.
    pub fn observe_state(&mut self, model: &RlHeadsModel, state: StateStep) -> Result<Tensor> {
        if self.pending_state.is_some() {
            bail!("observe_state called twice: call observe_outcome with the action taken first");
        }
        if self.steps.len() - self.window_start >= model.cfg.context_steps {
            self.reprime(model)?;
        }
        let s = self.state_tensor(&state)?;
        let mut token = model.embed_states(&s)?;
        if model.cfg.layout == TokenLayout::Fused {
            // The fused token carries the previous step's action and reward; a window's first
            // step carries the learned start vector instead.
            let prev = if self.steps.len() > self.window_start {
                let last = self.steps.last().expect("non-empty");
                (model.embed_actions(&last.actions)?
                    + model.embed_rewards(&last.rewards, &last.logprobs)?)?
            } else {
                model.start_embedding(self.batch)?
            };
            token = (token + prev)?;
        }
        let first = self.cache.len();
        let h = model.run_trunk(&token, first, Some(&mut self.cache), None)?;
        self.pending_state = Some(s);
        let d = model.cfg.d_model;
        model.action_logits(&h.reshape((self.batch, d))?)
    }

    /// Records the action taken, the reward received and the acting policy's logprob of the
    /// action, completing the current step.
    pub fn observe_outcome(
        &mut self,
        model: &RlHeadsModel,
        actions: &[u32],
        rewards: &[f32],
        logprobs: &[f32],
    ) -> Result<()> {
        let Some(states) = self.pending_state.take() else {
            bail!("observe_outcome called before observe_state");
        };
        let b = self.batch;
        let rewards = match &model.spaces.rewards {
            RewardSpace::Classes(values) => {
                let ids: Vec<u32> = rewards
                    .iter()
                    .map(|r| RewardSpace::class_of(values, *r))
                    .collect();
                RewardInput::Classes(Tensor::from_vec(ids, (b, 1), &Device::Cpu)?)
            }
            RewardSpace::Continuous => {
                RewardInput::Values(Tensor::from_vec(rewards.to_vec(), (b, 1), &Device::Cpu)?)
            }
        };
        let step = RlBatch {
            states,
            actions: Tensor::from_vec(actions.to_vec(), (b, 1), &Device::Cpu)?,
            rewards,
            logprobs: Tensor::from_vec(logprobs.to_vec(), (b, 1), &Device::Cpu)?,
            loss_mask: Tensor::ones((b, 1), candle_core::DType::F32, &Device::Cpu)?,
        };
        if model.cfg.layout == TokenLayout::Sar {
            let a = model.embed_actions(&step.actions)?;
            let r = model.embed_rewards(&step.rewards, &step.logprobs)?;
            let tokens = Tensor::cat(&[a, r], 1)?;
            let first = self.cache.len();
            model.run_trunk(&tokens, first, Some(&mut self.cache), None)?;
        }
        self.steps.push(step);
        Ok(())
    }
}

/// Concatenates 1-step batches along the step axis.
pub fn concat_steps(steps: &[RlBatch]) -> Result<RlBatch> {
    let cat = |f: &dyn Fn(&RlBatch) -> Tensor| -> Result<Tensor> {
        let ts: Vec<Tensor> = steps.iter().map(f).collect();
        Ok(Tensor::cat(&ts, 1)?)
    };
    Ok(RlBatch {
        states: match &steps[0].states {
            StateInput::Discrete(_) => StateInput::Discrete(cat(&|s| match &s.states {
                StateInput::Discrete(t) | StateInput::Continuous(t) => t.clone(),
            })?),
            StateInput::Continuous(_) => StateInput::Continuous(cat(&|s| match &s.states {
                StateInput::Discrete(t) | StateInput::Continuous(t) => t.clone(),
            })?),
        },
        actions: cat(&|s| s.actions.clone())?,
        rewards: match &steps[0].rewards {
            RewardInput::Classes(_) => RewardInput::Classes(cat(&|s| match &s.rewards {
                RewardInput::Classes(t) | RewardInput::Values(t) => t.clone(),
            })?),
            RewardInput::Values(_) => RewardInput::Values(cat(&|s| match &s.rewards {
                RewardInput::Classes(t) | RewardInput::Values(t) => t.clone(),
            })?),
        },
        logprobs: cat(&|s| s.logprobs.clone())?,
        loss_mask: cat(&|s| s.loss_mask.clone())?,
    })
}
