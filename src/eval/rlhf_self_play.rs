//! In-context RLHF by self-play, AD's evaluation protocol on a reward function: the model
//! starts from an empty context; each iteration it writes completions for fresh prompts,
//! the task's reward model scores them, and the (prompt, completion, reward) triples are
//! appended to its own context, rendered and tokenised exactly as training rendered the
//! source's rollouts. The context slides by whole rollouts (the most recent that fit). Its
//! control, `model_reset`, empties the context every iteration, so it cannot learn.

use super::rlhf_eval::InContextWriter;
use crate::formats::lm_window::StepTokens;
use crate::rlhf::source::RewardModel;
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub use super::config::SelfPlayConfig;

/// One reward function's self-play figures (`summary.json` → `rlhf.self_play`). Means over
/// the first and the last 20 % of iterations (at least one), over repeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfPlayFigures {
    pub reward: String,
    pub split: String,
    /// Iterations averaged at each end.
    pub window: usize,
    pub model_first: f64,
    pub model_last: f64,
    pub model_gain: f64,
    pub reset_first: f64,
    pub reset_last: f64,
    pub reset_gain: f64,
    /// PPO from scratch on this reward after as many rollouts as the model wrote in all
    /// (mean over the reward's source runs; `null` if they are shorter).
    pub ppo_at_same_rollouts: Option<f64>,
    /// PPO's mean score at its last epoch.
    pub ppo_final: Option<f64>,
    /// Mean reward of completions drawn from the training histories.
    pub marginal: Option<f64>,
    pub source_runs: usize,
}

/// The whole self-play section of `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfPlaySummary {
    pub iterations: usize,
    pub prompts_per_iteration: usize,
    pub repeats: usize,
    pub rewards: Vec<SelfPlayFigures>,
}

/// One iteration of self-play.
#[derive(Debug, Clone, PartialEq)]
pub struct Iteration {
    /// Rollouts of its own history the model read before writing.
    pub rollouts_in_context: usize,
    pub prompts: Vec<String>,
    pub completions: Vec<String>,
    pub scores: Vec<f32>,
}

impl Iteration {
    pub fn mean_score(&self) -> f32 {
        self.scores.iter().sum::<f32>() / self.scores.len().max(1) as f32
    }
}

/// Plays `iterations` iterations on `reward`; `prompts(i)` gives iteration i's prompts;
/// `reset` empties the context every iteration (the control). `stream` seeds the sampling
/// (the same for the model and its control, so they differ only in what they read).
pub fn self_play(
    writer: &InContextWriter,
    reward: &mut dyn RewardModel,
    iterations: usize,
    prompts: impl Fn(usize) -> Vec<String>,
    reset: bool,
    stream: &[u64],
) -> Result<(Vec<Iteration>, Vec<Vec<u32>>)> {
    let mut history: Vec<Vec<u32>> = Vec::new();
    let mut out = Vec::with_capacity(iterations);
    for it in 0..iterations {
        crate::interrupt::check()?;
        let prompts = prompts(it);
        let context: &[Vec<u32>] = if reset { &[] } else { &history };
        let (decoder, kept) = writer.context_of(context, &prompts)?;
        let mut key = stream.to_vec();
        key.push(it as u64);
        let mut rng = crate::seed::rng(writer.seed, "rlhf-self-play", &key);
        let (completions, scores) = writer.write_and_score(&decoder, &prompts, &mut rng, reward)?;
        for ((p, c), s) in prompts.iter().zip(&completions).zip(&scores) {
            let step = writer.format.render(p, c, *s);
            history.push(StepTokens::from_step(&step, writer.tokenizer)?.tokens);
        }
        out.push(Iteration {
            rollouts_in_context: kept,
            prompts,
            completions,
            scores,
        });
    }
    Ok((out, history))
}
