//! In-context evaluation (AD's protocol): a trained model acts in tasks, held-out and
//! training, for `eval.episodes` episodes with only its own growing history as context, and
//! its returns are written beside those of the source algorithm learning from scratch, a
//! random policy and the optimum (`eval.csv`, `summary.json`).
//!
//! * [`policy`]: the [`InContextPolicy`] seam a model family implements;
//! * [`rl_policy`]: the RL-heads transformer behind it (KV-cache decoding);
//! * [`lm_policy`]: the causal LM behind it (text context, constrained decoding);
//! * [`sampler`]: greedy / seeded temperature sampling of actions;
//! * [`rollout`]: the batched protocol (one row per task, independent episodes);
//! * [`trace`]: the steps of the model's first and last episodes (`traces.jsonl`);
//! * [`baselines`]: source, random and optimal on the same tasks and environment streams;
//! * [`results`]: `eval.csv`; [`summary`]: `summary.json` and the printed table;
//! * [`evaluate`]: the protocol on a suite's tasks of both splits, with the baselines;
//! * [`reward_prediction`], [`rlhf_eval`], [`rlhf_self_play`]: what an RLHF run is scored
//!   by (reading a source's history; improving on its own);
//! * [`config`]: the `eval` section.
//!
//! Loading a run directory (checkpoint, data, held-out runs) and writing its files is the
//! pipeline's (`pipeline::evaluate`, `pipeline::rlhf_run`).
//!
//! Architecture invariant: evaluation reads a run directory (config, checkpoint, data cache)
//! and never trains or changes the model.

pub mod baselines;
pub mod config;
pub mod evaluate;
pub mod lm_policy;
pub mod policy;
pub mod results;
pub mod reward_prediction;
pub mod rl_policy;
pub mod rlhf_eval;
pub mod rlhf_self_play;
pub mod rollout;
pub mod sampler;
pub mod state_prediction;
pub mod summary;
pub mod trace;

pub use config::EvalConfig;
pub use evaluate::summary_line;
pub use policy::{InContextPolicy, StepOutcome, StepStates};
pub use results::{EvalRow, PolicyKind};
pub use summary::{summarise, Summary};

#[cfg(test)]
mod tests;
