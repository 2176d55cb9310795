//! RLHF learning histories: PPO training of a language model, logged rollout by rollout in
//! TRLx's layout. A [`RlhfRun`] (one source PPO run) is one learning history; its epochs are
//! in chronological order and each holds the rollouts PPO generated in that epoch.
//!
//! Producers: [`trlx`] reads real TRLx logs (`adlab import-trlx`, `task=trlx_logs`) and
//! writes the same layout; the built-in `sentiment_rlhf` source ([`source`]) trains a small
//! causal LM with PPO offline and logs through [`trlx`], so both paths load identically.
//!
//! Architecture invariant: like `tasks`, this module's data is a pure function of its config
//! (and, for imports, of the files read); models appear only inside the built-in source.

pub mod dataset;
pub mod family;
pub mod rollout;
pub mod source;
pub mod task;
pub mod token_steps;
pub mod trlx;

pub use rollout::{RlhfEpoch, RlhfRun, Rollout};
