//! Optimisation pieces of training: AdamW with checkpointable state, learning-rate schedule,
//! gradient clipping and accumulation, checkpoints, and the non-finite-loss guard.
pub mod checkpoint;
pub mod clip;
pub mod guard;
pub mod metrics_log;
pub mod optim;
pub mod schedule;

pub use optim::OptimizerConfig;
pub mod lm_learner;
pub mod rl_learner;
pub mod trainer;
