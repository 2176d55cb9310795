//! The built-in RLHF source `sentiment_rlhf`: PPO fine-tuning of a small GPT-2 to write
//! positive (or negative) story continuations, offline and in minutes on a CPU. It produces
//! RLHF learning histories ([`RlhfRun`]s) without TRLx, a GPU or any download.
//!
//! * [`config`]: the task file (`conf/task/sentiment_rlhf.yaml`) and the hyperparameter search;
//! * [`story`]: the seeded story grammar (prompts and continuations), [`lexicon`]: the embedded
//!   sentiment lexicon it draws sentiment words from;
//! * [`reward`]: reward models (lexicon, external command);
//! * [`policy`]: `CausalLm` + value head, reference copy, pretraining on stories;
//! * [`sample`]: seeded temperature / top-k / top-p generation;
//! * [`kl`], [`ppo`]: TRLx's PPO (KL controllers, clipped losses, runs), with the GAE and
//!   whitening shared with the RL PPO source (`crate::tasks::source::advantage`).
//!
//! [`generate_runs`] pretrains one policy (every run starts from the same "pretrained LM", as
//! TRLx runs start from one checkpoint) and then runs `task.runs` PPO runs in parallel.

pub mod config;
pub mod kl;
pub mod lexicon;
pub mod policy;
pub mod ppo;
pub mod reward;
pub mod sample;
pub mod story;

#[cfg(test)]
pub(crate) mod tests;

pub use config::SentimentRlhfConfig;
pub use reward::{build_reward, RewardModel};
pub use story::{prompts, Grammar};

use crate::rlhf::RlhfRun;
use crate::tokenizer::TextTokenizer;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use std::io::IsTerminal;

/// Label of the prompt pool's stream ([`story::prompts`]).
pub const PROMPT_LABEL: &str = "rlhf-prompts";

/// The policy's tokenizer: word-level over the grammar's vocabulary. Public so that a model
/// trained on the runs, and its evaluation, tokenise exactly as the source did.
pub fn tokenizer() -> Result<TextTokenizer> {
    TextTokenizer::word_level(&Grammar::new().vocabulary())
}

/// The PPO runs of a config: pretraining once, then `cfg.runs` runs in parallel (rayon; set
/// candle to one thread per run, `crate::models::set_compute_threads(1)`, before calling).
/// Same config and seed, same runs, whatever the thread count.
pub fn generate_runs(cfg: &SentimentRlhfConfig, seed: u64, progress: bool) -> Result<Vec<RlhfRun>> {
    cfg.validate()?;
    let tokenizer = tokenizer()?;
    let prompts = story::prompts(seed, PROMPT_LABEL, cfg.corpus.prompts);
    let base = policy::Policy::new(&cfg.policy, tokenizer.vocab_size(), seed)?;
    let loss = policy::pretrain(&base, &tokenizer, &cfg.policy, seed)?;
    tracing::info!(
        "sentiment_rlhf: pretrained the policy ({} steps, final loss {loss:.3}); {} PPO runs",
        cfg.policy.pretrain_steps,
        cfg.n_runs()
    );
    let inputs = ppo::RunInputs {
        cfg,
        seed,
        tokenizer: &tokenizer,
        prompts: &prompts,
        base: &base,
    };
    let bar = progress_bar((cfg.n_runs() * cfg.ppo.epochs) as u64, progress);
    let runs = (0..cfg.n_runs())
        .into_par_iter()
        .map(|run| ppo::run_ppo(&inputs, run, |_| bar.inc(1)))
        .collect::<Result<Vec<_>>>()?;
    bar.finish_and_clear();
    Ok(runs)
}

fn progress_bar(n: u64, progress: bool) -> ProgressBar {
    let target = if progress && std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(n), target);
    if let Ok(style) =
        ProgressStyle::with_template("sentiment_rlhf PPO [{bar:30}] {pos}/{len} epochs ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
