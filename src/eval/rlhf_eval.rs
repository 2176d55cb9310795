//! In-context RLHF: does a causal LM that read RLHF learning histories write better
//! completions the more of a held-out run's history it sees?
//!
//! For each `k` of `eval.rlhf.context_epochs`, the model's context is the rollouts of the
//! run's first `k` epochs (the most recent whole rollouts that fit, rendered and tokenised as
//! in training); after it, the model writes a completion for each evaluation prompt (greedy or
//! sampled at `eval.temperature`, up to `max_new_tokens`, ending at the newline before the
//! reward field), and the completions are scored by the task's reward model. The source's own
//! curve beside it is the run's mean score at epoch `k` — what PPO reached after learning from
//! those `k` epochs.

use super::sampler::choose;
use crate::formats::corpus::StepText;
use crate::formats::lm_window::StepTokens;
use crate::formats::rlhf_text::RlhfTextFormat;
use crate::models::{CausalLm, LmDecoder};
use crate::rlhf::source::RewardModel;
use crate::rlhf::RlhfRun;
use crate::tokenizer::TextTokenizer;
use anyhow::{bail, Result};

pub use super::config::RlhfEvalConfig;

/// One evaluation point of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePoint {
    /// Epochs in context.
    pub epochs: usize,
    /// Rollouts that fitted the context.
    pub rollouts_in_context: usize,
    pub completions: Vec<String>,
    pub scores: Vec<f32>,
    /// The source's mean score at epoch `epochs` (if the run has that epoch and scores).
    pub source_score: Option<f32>,
}

impl CurvePoint {
    pub fn mean_score(&self) -> f32 {
        self.scores.iter().sum::<f32>() / self.scores.len().max(1) as f32
    }
}

/// Writes completions in context for one run.
pub struct InContextWriter<'a> {
    pub model: &'a CausalLm,
    pub tokenizer: &'a TextTokenizer,
    pub format: &'a RlhfTextFormat,
    pub config: &'a RlhfEvalConfig,
    pub temperature: f64,
    pub seed: u64,
}

impl InContextWriter<'_> {
    /// The curve of `run` (dataset index `index`, for the sampling streams) on `prompts`.
    pub fn curve(
        &self,
        run: &RlhfRun,
        index: usize,
        prompts: &[String],
        reward: &mut dyn RewardModel,
    ) -> Result<Vec<CurvePoint>> {
        let steps = self.format.render_run(run)?;
        let source = run.score_curve();
        let mut out = Vec::new();
        for &k in &self.config.context_epochs {
            if k > run.epochs.len() {
                continue;
            }
            let in_context: usize = run.epochs[..k].iter().map(|e| e.rollouts.len()).sum();
            let (decoder, kept) = self.context(&steps[..in_context], prompts)?;
            let mut rng = crate::seed::rng(self.seed, "rlhf-eval", &[index as u64, k as u64]);
            let (completions, scores) =
                self.write_and_score(&decoder, prompts, &mut rng, reward)?;
            out.push(CurvePoint {
                epochs: k,
                rollouts_in_context: kept,
                completions,
                scores,
                source_score: source.get(k).copied().flatten(),
            });
        }
        Ok(out)
    }

    /// The completions the model writes for `prompts` after `context` (each from the same
    /// context), and their scores.
    pub fn write_and_score(
        &self,
        context: &LmDecoder,
        prompts: &[String],
        rng: &mut rand_chacha::ChaCha8Rng,
        reward: &mut dyn RewardModel,
    ) -> Result<(Vec<String>, Vec<f32>)> {
        let completions = prompts
            .iter()
            .map(|p| self.complete(context, p, rng))
            .collect::<Result<Vec<_>>>()?;
        let pairs: Vec<(String, String)> = prompts
            .iter()
            .cloned()
            .zip(completions.iter().cloned())
            .collect();
        let scores = reward.score(&pairs)?;
        if scores.len() != pairs.len() {
            bail!(
                "the reward model gave {} scores for {} completions",
                scores.len(),
                pairs.len()
            );
        }
        Ok((completions, scores))
    }

    /// A decoder that has read end-of-text and the most recent whole rollouts of `steps`
    /// that leave room for the longest prompt and the completion; returns it and how many
    /// rollouts it read.
    fn context(
        &self,
        steps: &[(StepText, u32, f32)],
        prompts: &[String],
    ) -> Result<(LmDecoder, usize)> {
        let rollouts = steps
            .iter()
            .map(|(step, _, _)| Ok(StepTokens::from_step(step, self.tokenizer)?.tokens))
            .collect::<Result<Vec<_>>>()?;
        self.context_of(&rollouts, prompts)
    }

    /// A decoder that has read end-of-text and the most recent whole rollouts (already
    /// tokenised, as training tokenises them) that leave room for the longest of `prompts`
    /// and the completion; returns it and how many rollouts it read.
    pub fn context_of(
        &self,
        rollouts: &[Vec<u32>],
        prompts: &[String],
    ) -> Result<(LmDecoder, usize)> {
        let ctx = self.model.cfg.context_tokens;
        let longest_prompt = prompts
            .iter()
            .map(|p| {
                self.tokenizer
                    .encode(&self.format.completion_prompt(p))
                    .map(|t| t.len())
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .max()
            .unwrap_or(0);
        let reserve = 1 + longest_prompt + self.config.max_new_tokens;
        if reserve > ctx {
            bail!(
                "a prompt and {} new tokens ({reserve} tokens) do not fit model.context_tokens = {ctx}",
                self.config.max_new_tokens
            );
        }
        let mut kept: Vec<&[u32]> = Vec::new();
        let mut used = 0;
        for tokens in rollouts.iter().rev() {
            if used + tokens.len() + reserve > ctx {
                break;
            }
            used += tokens.len();
            kept.push(tokens);
        }
        kept.reverse();
        let mut ids = vec![self.tokenizer.end_of_text_id()];
        ids.extend(kept.iter().flat_map(|t| t.iter()));
        let mut decoder = LmDecoder::new(self.model, 1);
        decoder.feed(self.model, &[ids])?;
        Ok((decoder, kept.len()))
    }

    /// The completion the model writes for `prompt` after `context`.
    pub fn complete(
        &self,
        context: &LmDecoder,
        prompt: &str,
        rng: &mut rand_chacha::ChaCha8Rng,
    ) -> Result<String> {
        let mut decoder = context.clone();
        let ids = self
            .tokenizer
            .encode(&self.format.completion_prompt(prompt))?;
        let mut logits = decoder.feed(self.model, &[ids])?;
        let eot = self.tokenizer.end_of_text_id();
        let mut written: Vec<u32> = Vec::new();
        for _ in 0..self.config.max_new_tokens {
            let row = logits.flatten_all()?.to_vec1::<f32>()?;
            let tok = choose(&row, self.temperature, rng) as u32;
            if tok == eot {
                break;
            }
            written.push(tok);
            if self
                .tokenizer
                .decode(&written)?
                .contains(self.format.completion_end())
            {
                break;
            }
            logits = decoder.feed(self.model, &[vec![tok]])?;
        }
        let text = self.tokenizer.decode(&written)?;
        let line = text
            .split(self.format.completion_end())
            .next()
            .unwrap_or("");
        Ok(line.strip_prefix(' ').unwrap_or(line).to_string())
    }
}
