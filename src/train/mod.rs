//! Training: one loop ([`trainer`]) over a [`trainer::Learner`] (RL-heads windows or token
//! windows), gradient accumulation, checkpoints, `metrics.csv` and the non-finite-loss guard.
//! The optimizer, clipping and schedule sit below, in [`crate::optim`].
//!
//! Architecture invariant: training takes its own sections (`train`, `optimizer`, the seed),
//! never the whole config, and knows nothing of evaluation.
pub mod checkpoint;
pub mod config;
pub mod guard;
pub mod metrics_log;
pub mod predictions;

pub mod lm_learner;
pub mod rl_learner;
pub mod trainer;

pub use config::TrainConfig;
