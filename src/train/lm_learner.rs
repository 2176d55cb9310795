//! The causal LM learning text-serialised histories: builds the format, the tokenizer and the
//! token windows, and measures what the seed project wished for — action accuracy (every
//! token of the logged action is the argmax under teacher forcing) and reward accuracy (the
//! greedily decoded reward text parses to the logged reward within the format's precision).

use super::predictions::{has_successor, StepPredictions};
use super::trainer::{BatchLoss, BatchMetrics, ValidationStarts, WindowLearner};
use crate::formats::config::LanguageFormatConfig;
use crate::formats::config::RlhfTextFormatConfig;
use crate::formats::fields::RewardText;
use crate::formats::format_tokenizer::{language_tokenizer, rlhf_tokenizer};
use crate::formats::language::{LanguageFormat, StepPosition};
use crate::formats::lm_window::{LmWindowBatch, LmWindows};
use crate::formats::parse::parse_state;
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
    /// Reads predicted next states back (continuous-state histories only).
    states: Option<StateTargets>,
    /// Action accuracy per token (RLHF completions) rather than per whole action.
    token_actions: bool,
    pub tokenizer: TextTokenizer,
    windows: LmWindows,
    device: Device,
    validation: ValidationStarts,
}

impl LmLearner {
    /// `tokenizer`: the one a checkpoint was trained with (evaluation); `None` builds it as
    /// the format says (training).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model_cfg: &CausalLmConfig,
        format_cfg: &LanguageFormatConfig,
        spec: &EnvSpec,
        histories: &[LearningHistory],
        data_dir: &Path,
        tokenizer: Option<TextTokenizer>,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let format = LanguageFormat::new(format_cfg, spec)?;
        let tokenizer = match tokenizer {
            Some(t) => t,
            None => language_tokenizer(&format, histories, data_dir)?,
        };
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
        let rewards = format.rewards().clone();
        let states = (spec.state.feature_dim() > 0).then(|| StateTargets::new(format, histories));
        Ok(LmLearner {
            model,
            rewards,
            states,
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
            states: None,
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

/// What reading a predicted next state back needs: the format's parser, and per history
/// the logged features and where each step sits in its episode.
struct StateTargets {
    format: LanguageFormat,
    histories: Vec<HistoryStates>,
}

struct HistoryStates {
    features: Vec<f32>,
    dim: usize,
    dones: Vec<bool>,
    positions: Vec<StepPosition>,
}

impl StateTargets {
    fn new(format: LanguageFormat, histories: &[LearningHistory]) -> StateTargets {
        let histories = histories
            .iter()
            .map(|h| {
                let mut positions = Vec::with_capacity(h.len());
                let mut pos = StepPosition {
                    step: 0,
                    episode: h.episodes.first().copied().unwrap_or(0),
                };
                for t in 0..h.len() {
                    pos.episode = h.episodes[t];
                    positions.push(pos);
                    pos = pos.after(h.dones[t]);
                }
                HistoryStates {
                    features: h.features.clone(),
                    dim: h.feature_dim,
                    dones: h.dones.clone(),
                    positions,
                }
            })
            .collect();
        StateTargets { format, histories }
    }
}

impl LmLearner {
    /// Mean tokens per step of the learner's histories in its format.
    pub fn tokens_per_step(&self) -> f64 {
        self.windows.tokens_per_step()
    }

    /// Over `n_windows` fixed held-out windows (the test split's validation set), for every
    /// step after a window's first: the reward the model writes after the logged action, and
    /// for continuous states the state it writes where the step begins (the successor of the
    /// step before). The model writes greedily from the logged history up to that point, a
    /// few tokens more than the logged text has; what it wrote is read back with the format's
    /// parser (the longest start of it that reads as a state, or a number). Reading
    /// per-token teacher-forced guesses instead would splice digits the model never wrote
    /// together.
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
            for (row, steps) in w.steps.iter().enumerate() {
                let input = &w.input_ids[row * w.seq_len..(row + 1) * w.seq_len];
                let mut writer = GreedyWriter::new(&self.model, input, &self.device);
                let h = self
                    .states
                    .as_ref()
                    .map(|st| &st.histories[w.starts[row].history]);
                for s in steps.iter().skip(1) {
                    let j = s.index;
                    if let (Some(st), Some(h)) = (&self.states, h) {
                        if j > 0 && has_successor(&h.dones, j - 1) && !s.before_action.is_empty() {
                            let written = writer
                                .write_at(s.before_action.start, s.before_action.len() + 4)?;
                            let text = self.tokenizer.decode(&written).unwrap_or_default();
                            let read = |lenient: bool| {
                                reading_at_start(&text, |t| {
                                    parse_state(&st.format, t, h.positions[j], lenient)
                                        .ok()
                                        .flatten()
                                })
                            };
                            let mut state = read(false);
                            if state.is_none() {
                                state = read(true);
                                out.states_off_format += usize::from(state.is_some());
                            }
                            if state.is_none() && out.states.iter().all(|s| s.0.is_some()) {
                                tracing::debug!(
                                    "first unreadable next state: the model wrote {text:?}"
                                );
                            }
                            let at = |k: usize| h.features[k * h.dim..(k + 1) * h.dim].to_vec();
                            out.states.push((state, at(j)));
                            out.states_before.push(at(j - 1));
                        }
                    }
                    let written = writer.write_at(s.reward.start, s.reward.len() + 3)?;
                    let text = self.tokenizer.decode(&written).unwrap_or_default();
                    let reward = reading_at_start(&text, |t| self.rewards.parse(t))
                        .filter(|_| !text.is_empty());
                    out.rewards.push((reward, s.reward_value));
                }
            }
        }
        Ok(out)
    }
}

/// The longest start of `text` that `read` accepts (longest, so `-1.23` is not read as
/// `-1`); `None` if none does. The model writes a few tokens past the value, so what follows
/// it is cut off here.
fn reading_at_start<T>(text: &str, read: impl Fn(&str) -> Option<T>) -> Option<T> {
    (1..=text.len())
        .rev()
        .filter(|&i| text.is_char_boundary(i))
        .find_map(|i| read(&text[..i]))
}

/// Greedy writing from points of one window row: feeds the logged tokens into a KV cache up
/// to a point, then writes on a copy of the cache, so each point costs only its own tokens.
struct GreedyWriter<'a> {
    model: &'a CausalLm,
    /// The row's input tokens (end-of-text, then the logged text shifted by one).
    input: &'a [u32],
    cache: crate::models::block::KvCache,
    /// Input tokens in the cache.
    fed: usize,
    /// Logits after the last fed token.
    last: Option<Tensor>,
    device: &'a Device,
}

impl<'a> GreedyWriter<'a> {
    fn new(model: &'a CausalLm, input: &'a [u32], device: &'a Device) -> Self {
        GreedyWriter {
            model,
            input,
            cache: model.new_cache(),
            fed: 0,
            last: None,
            device,
        }
    }

    /// Up to `max_tokens` tokens the model writes greedily in place of the logged target at
    /// `position` (and after), given the logged text before it; fewer where the context ends.
    fn write_at(&mut self, position: usize, max_tokens: usize) -> Result<Vec<u32>> {
        let ctx = self.input.len();
        if self.fed < position + 1 {
            let ids = &self.input[self.fed..position + 1];
            let t = Tensor::from_slice(ids, (1, ids.len()), self.device)?;
            let logits = self.model.forward_cached(&t, &mut self.cache)?;
            self.last = Some(logits.narrow(1, ids.len() - 1, 1)?.flatten_all()?);
            self.fed = position + 1;
        }
        let Some(last) = &self.last else {
            return Ok(Vec::new());
        };
        let mut next = last.argmax(D::Minus1)?.to_scalar::<u32>()?;
        let mut cache = self.cache.clone();
        let mut written = vec![next];
        while written.len() < max_tokens && position + written.len() < ctx {
            let t = Tensor::from_slice(&[next], (1, 1), self.device)?;
            let logits = self.model.forward_cached(&t, &mut cache)?;
            next = logits
                .flatten_all()?
                .argmax(D::Minus1)?
                .to_scalar::<u32>()?;
            written.push(next);
        }
        Ok(written)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::tests::tiny_lm_config;

    #[test]
    fn a_reading_takes_the_longest_start_that_still_reads() {
        let number = |t: &str| RewardText::decimal(2).parse(t);
        assert_eq!(reading_at_start("-1.23 main", number), Some(-1.23));
        assert_eq!(reading_at_start("7\n(0.1", number), Some(7.0));
        assert_eq!(reading_at_start("main 1", number), None);
        assert_eq!(reading_at_start("", number), None);
    }

    #[test]
    fn greedy_writing_from_the_cache_matches_full_forwards() {
        // A random model is a fine oracle: whatever it prefers, the cached writer must write
        // what repeated full forwards of the growing text pick.
        let cfg =
            CausalLm::new(&tiny_lm_config(), 40, crate::seed::rng(3, "test-lm", &[])).unwrap();
        let input: Vec<u32> = (0..12).map(|i| (i * 7 % 40) as u32).collect();
        let device = Device::Cpu;
        let mut writer = GreedyWriter::new(&cfg, &input, &device);
        for (position, n) in [(2usize, 4usize), (5, 3), (9, 5)] {
            let written = writer.write_at(position, n).unwrap();
            let mut text = input[..=position].to_vec();
            let mut expected = Vec::new();
            while expected.len() < n && position + expected.len() < input.len() {
                let ids = Tensor::from_slice(&text, (1, text.len()), &device).unwrap();
                let logits = cfg.forward(&ids, None).unwrap();
                let last = logits
                    .narrow(1, text.len() - 1, 1)
                    .unwrap()
                    .flatten_all()
                    .unwrap();
                let next = last.argmax(D::Minus1).unwrap().to_scalar::<u32>().unwrap();
                expected.push(next);
                text.push(next);
            }
            assert_eq!(written, expected, "writing at {position}");
        }
    }
}
