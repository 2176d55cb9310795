//! The RL-heads model learning RL-format windows: turns [`RlWindowBatch`]es into the model's
//! tensors and its losses into [`BatchMetrics`].

use super::predictions::{has_successor, StepPredictions};
use super::trainer::{BatchLoss, BatchMetrics, ValidationStarts, WindowLearner};
use crate::formats::window::{RlWindowBatch, RlWindows};
use crate::formats::Windows;
use crate::models::spaces::spaces_of;
use crate::models::{self, ParamSet, RlBatch, RlHeadsConfig, RlHeadsModel};
use crate::tasks::{EnvSpec, LearningHistory, RewardKind, Split};
use anyhow::Result;
use candle_core::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

/// Converts host windows into the model's batch on `device`.
pub fn to_model_batch(w: &RlWindowBatch, device: &Device) -> Result<RlBatch> {
    let (b, t) = (w.batch, w.steps);
    let states = match (&w.states_discrete, &w.features) {
        (Some(ids), _) => models::StateInput::Discrete(Tensor::from_slice(ids, (b, t), device)?),
        (None, Some(f)) => {
            models::StateInput::Continuous(Tensor::from_slice(f, (b, t, w.feature_dim), device)?)
        }
        (None, None) => anyhow::bail!("a window batch without states"),
    };
    let rewards = match &w.reward_classes {
        Some(c) => models::RewardInput::Classes(Tensor::from_slice(c, (b, t), device)?),
        None => models::RewardInput::Values(Tensor::from_slice(&w.rewards, (b, t), device)?),
    };
    Ok(RlBatch {
        states,
        actions: Tensor::from_slice(&w.actions, (b, t), device)?,
        rewards,
        logprobs: Tensor::from_slice(&w.logprobs, (b, t), device)?,
        loss_mask: Tensor::from_slice(&w.loss_mask, (b, t), device)?,
    })
}

fn metrics_of(m: &models::RlMetrics, tokens: usize) -> BatchMetrics {
    BatchMetrics {
        loss: f64::from(m.loss),
        action_acc: Some(f64::from(m.action_acc)),
        reward_acc: m.reward_acc.map(f64::from),
        state_acc: m.state_acc.map(f64::from),
        logprob_mse: m.logprob_mse.map(f64::from),
        tokens,
    }
}

pub struct RlLearner<'a> {
    pub model: RlHeadsModel,
    histories: &'a [LearningHistory],
    /// The reward of each reward class (discrete reward sets).
    reward_values: Option<Vec<f32>>,
    windows: RlWindows<'a>,
    device: Device,
    validation: ValidationStarts,
}

impl<'a> RlLearner<'a> {
    pub fn new(
        cfg: &RlHeadsConfig,
        spec: &EnvSpec,
        histories: &'a [LearningHistory],
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let model = RlHeadsModel::new(
            cfg,
            &spaces_of(spec),
            crate::seed::rng(seed, crate::runs::layout::MODEL_INIT_SEED, &[]),
        )?;
        let windows = RlWindows::new(spec, histories, cfg.context_steps)?
            .with_min_context(cfg.min_context)?;
        Ok(RlLearner {
            model,
            histories,
            reward_values: match &spec.reward {
                RewardKind::Discrete { values } => Some(values.clone()),
                RewardKind::Continuous => None,
            },
            windows,
            device: device.clone(),
            validation: ValidationStarts::default(),
        })
    }
}

impl RlLearner<'_> {
    /// The reward and (continuous) next state the heads predict for every step of
    /// `n_windows` fixed held-out windows (the test split's validation set).
    pub fn held_out_predictions(
        &self,
        n_windows: usize,
        batch_size: usize,
    ) -> Result<StepPredictions> {
        let starts = self.windows.validation_starts(Split::Test, n_windows)?;
        let mut out = StepPredictions {
            windows: starts.len(),
            ..Default::default()
        };
        for chunk in starts.chunks(batch_size.max(1)) {
            let w = self.windows.batch(chunk);
            let batch = to_model_batch(&w, &self.device)?;
            let outputs = self.model.forward(&batch, None)?;
            let rewards: Option<Vec<Vec<Vec<f32>>>> =
                outputs.reward.as_ref().map(|r| r.to_vec3()).transpose()?;
            let states: Option<Vec<Vec<Vec<f32>>>> = match (&outputs.next_state, w.features) {
                (Some(s), Some(_)) => Some(s.to_vec3()?),
                _ => None,
            };
            for (row, start) in chunk.iter().enumerate() {
                let h = &self.histories[start.history];
                for t in 0..w.steps {
                    let i = start.start + t;
                    if w.loss_mask[row * w.steps + t] == 0.0 || i >= h.len() {
                        continue;
                    }
                    if let Some(r) = &rewards {
                        let out_r = &r[row][t];
                        let predicted = match &self.reward_values {
                            Some(values) => values.get(argmax(out_r)).copied(),
                            None => out_r.first().copied(),
                        };
                        out.rewards.push((predicted, h.rewards[i]));
                    }
                    if let Some(s) = &states {
                        if has_successor(&h.dones, i) {
                            out.states
                                .push((Some(s[row][t].clone()), h.features_at(i + 1).to_vec()));
                            out.states_before.push(h.features_at(i).to_vec());
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn argmax(xs: &[f32]) -> usize {
    xs.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

impl<'a> WindowLearner for RlLearner<'a> {
    type Windows = RlWindows<'a>;

    /// Loss and metrics of a window batch; `dropout_rng = None` is evaluation mode.
    fn evaluate(&self, w: &RlWindowBatch, dropout_rng: Option<&mut ChaCha8Rng>) -> BatchLoss {
        let batch = to_model_batch(w, &self.device)?;
        let out = self.model.forward(&batch, dropout_rng)?;
        let loss = self.model.loss(&out, &batch)?;
        let tokens = w.batch * w.steps * self.model.tokens_per_step();
        Ok((loss.total, metrics_of(&loss.metrics, tokens)))
    }

    fn params(&self) -> ParamSet {
        self.model.params()
    }

    fn windows(&self) -> (&Self::Windows, &ValidationStarts) {
        (&self.windows, &self.validation)
    }
}
