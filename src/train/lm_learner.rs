//! The causal LM learning text-serialised histories: builds the format, the tokenizer and the
//! token windows, and measures what the seed project wished for — action accuracy (every
//! token of the logged action is the argmax under teacher forcing) and reward accuracy (the
//! greedily decoded reward text parses to the logged reward within the format's precision).

use super::trainer::{BatchLoss, BatchMetrics, ValidationStarts, WindowLearner};
use crate::formats::config::LanguageFormatConfig;
use crate::formats::config::RlhfTextFormatConfig;
use crate::formats::fields::RewardText;
use crate::formats::format_tokenizer::{language_tokenizer, rlhf_tokenizer};
use crate::formats::language::LanguageFormat;
use crate::formats::lm_window::{LmWindowBatch, LmWindows};
use crate::formats::rlhf_text::RlhfTextFormat;
use crate::formats::Windows;
use crate::models::{CausalLm, CausalLmConfig, ParamSet};
use crate::rlhf::RlhfRun;
use crate::tasks::Split;
use crate::tasks::{EnvSpec, LearningHistory};
use crate::tokenizer::hf::tokenizer_config_json;
use crate::tokenizer::TextTokenizer;
use anyhow::Result;
use candle_core::{Device, Tensor, D};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

pub struct LmLearner {
    pub model: CausalLm,
    /// Reads the predicted reward texts back.
    rewards: RewardText,
    /// Action accuracy per token (RLHF completions) rather than per whole action.
    token_actions: bool,
    pub tokenizer: TextTokenizer,
    windows: LmWindows,
    device: Device,
    validation: ValidationStarts,
}

impl LmLearner {
    pub fn new(
        model_cfg: &CausalLmConfig,
        format_cfg: &LanguageFormatConfig,
        spec: &EnvSpec,
        histories: &[LearningHistory],
        data_dir: &Path,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let format = LanguageFormat::new(format_cfg, spec)?;
        let tokenizer = language_tokenizer(&format, histories, data_dir)?;
        let windows = LmWindows::new(&format, &tokenizer, histories, model_cfg.context_tokens)?;
        let model = CausalLm::new(
            model_cfg,
            tokenizer.vocab_size(),
            crate::seed::rng(seed, crate::runs::layout::MODEL_INIT_SEED, &[]),
        )?;
        tracing::info!(
            "language format `{}`: vocabulary {} tokens, {} distinct step texts",
            format_cfg.name,
            tokenizer.vocab_size(),
            windows.distinct_steps()
        );
        Ok(LmLearner {
            model,
            rewards: format.rewards().clone(),
            token_actions: false,
            tokenizer,
            windows,
            device: device.clone(),
            validation: ValidationStarts::default(),
        })
    }

    /// The causal LM learning RLHF histories in the `rlhf_text` format: one window row packs
    /// consecutive rollouts of one source run, across its epochs. `splits[i]` says whether
    /// `runs[i]` is trained on or held out.
    /// `tokenizer`: the one a checkpoint was trained with (evaluation); `None` builds it as
    /// the format says (training).
    #[allow(clippy::too_many_arguments)]
    pub fn for_rlhf(
        model_cfg: &CausalLmConfig,
        format_cfg: &RlhfTextFormatConfig,
        runs: &[RlhfRun],
        splits: &[Split],
        data_dir: &Path,
        tokenizer: Option<TextTokenizer>,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let format = RlhfTextFormat::new(format_cfg);
        let steps = runs
            .iter()
            .map(|r| format.render_run(r))
            .collect::<Result<Vec<_>>>()?;
        let tokenizer = match tokenizer {
            Some(t) => t,
            None => rlhf_tokenizer(format_cfg, &steps, splits, data_dir)?,
        };
        let windows = LmWindows::from_steps(
            splits.iter().copied().zip(steps),
            &tokenizer,
            model_cfg.context_tokens,
        )?;
        let model = CausalLm::new(
            model_cfg,
            tokenizer.vocab_size(),
            crate::seed::rng(seed, crate::runs::layout::MODEL_INIT_SEED, &[]),
        )?;
        tracing::info!(
            "RLHF text format `{}`: vocabulary {} tokens, {} rollouts",
            format_cfg.name,
            tokenizer.vocab_size(),
            runs.iter().map(RlhfRun::n_rollouts).sum::<usize>()
        );
        Ok(LmLearner {
            model,
            rewards: RewardText::decimal(format_cfg.precision),
            token_actions: true,
            tokenizer,
            windows,
            device: device.clone(),
            validation: ValidationStarts::default(),
        })
    }

    /// For every step of the `split` histories (each once, in full windows): the reward
    /// the model writes under teacher forcing (greedy per token, read back; `None` when not a
    /// number) and the logged reward.
    pub fn reward_predictions(
        &self,
        split: Split,
        batch_size: usize,
    ) -> Result<Vec<(Option<f32>, f32)>> {
        let mut out = Vec::new();
        for chunk in self.windows.tiling(split).chunks(batch_size.max(1)) {
            let w = self.windows.batch(chunk);
            let ids = Tensor::from_slice(&w.input_ids, (w.batch, w.seq_len), &self.device)?;
            let predicted: Vec<Vec<u32>> = self
                .model
                .forward(&ids, None)?
                .argmax(D::Minus1)?
                .to_vec2()?;
            for (row, steps) in w.steps.iter().enumerate() {
                for s in steps {
                    let text = self.tokenizer.decode(&predicted[row][s.reward.clone()])?;
                    out.push((self.rewards.parse(&text), s.reward_value));
                }
            }
        }
        Ok(out)
    }
}

impl WindowLearner for LmLearner {
    type Windows = LmWindows;

    /// Loss and metrics of a window batch; `dropout_rng = None` is evaluation mode.
    fn evaluate(&self, w: &LmWindowBatch, dropout_rng: Option<&mut ChaCha8Rng>) -> BatchLoss {
        let shape = (w.batch, w.seq_len);
        let ids = Tensor::from_slice(&w.input_ids, shape, &self.device)?;
        let targets = Tensor::from_slice(&w.targets, shape, &self.device)?;
        let mask = Tensor::from_slice(&w.loss_mask, shape, &self.device)?;
        let logits = self.model.forward(&ids, dropout_rng)?;
        let loss = self.model.loss(&logits, &targets, &mask)?;
        let predicted: Vec<Vec<u32>> = logits.argmax(D::Minus1)?.to_vec2()?;
        let (mut steps, mut rewards_ok) = (0usize, 0usize);
        let (mut action_units, mut actions_ok) = (0usize, 0usize);
        for (row, row_steps) in w.steps.iter().enumerate() {
            let pred = &predicted[row];
            let target = &w.targets[row * w.seq_len..(row + 1) * w.seq_len];
            for s in row_steps {
                steps += 1;
                if self.token_actions {
                    action_units += s.action.len();
                    actions_ok += s.action.clone().filter(|&k| pred[k] == target[k]).count();
                } else {
                    action_units += 1;
                    actions_ok += usize::from(s.action.clone().all(|k| pred[k] == target[k]));
                }
                let text = self.tokenizer.decode(&pred[s.reward.clone()])?;
                if self.rewards.matches(&text, s.reward_value) {
                    rewards_ok += 1;
                }
            }
        }
        let frac = |ok: usize, n: usize| (n > 0).then(|| ok as f64 / n as f64);
        let metrics = BatchMetrics {
            loss: f64::from(loss.loss_value),
            action_acc: frac(actions_ok, action_units),
            reward_acc: frac(rewards_ok, steps),
            state_acc: None,
            logprob_mse: None,
            tokens: w.loss_mask.iter().filter(|&&m| m > 0.0).count(),
        };
        Ok((loss.loss, metrics))
    }

    fn params(&self) -> ParamSet {
        self.model.params()
    }

    fn windows(&self) -> (&Self::Windows, &ValidationStarts) {
        (&self.windows, &self.validation)
    }

    /// `config.json` (with the vocabulary's own special-token ids) makes the checkpoint a
    /// loadable Hugging Face GPT-2; `tokenizer.json` and `tokenizer_config.json` go with it.
    fn checkpoint_extras(&self) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let eot = self.tokenizer.end_of_text_id();
        let mut config = self.model.hf_config();
        (
            config.bos_token_id,
            config.eos_token_id,
            config.pad_token_id,
        ) = (Some(eot), Some(eot), Some(eot));
        let mut config = serde_json::to_string_pretty(&config)?;
        config.push('\n');
        let mut out = vec![(crate::runs::layout::MODEL_CONFIG, config.into_bytes())];
        if let Some(json) = self.tokenizer.to_json()? {
            out.push((crate::runs::layout::TOKENIZER_FILE, json));
            out.push((
                crate::runs::layout::TOKENIZER_CONFIG,
                tokenizer_config_json(&self.tokenizer, self.model.hf_config().n_positions)?,
            ));
        }
        Ok(out)
    }
}
