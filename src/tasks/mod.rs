//! Tasks: the classic RL environments whose learning histories adlab distils, the source RL
//! algorithms that learn on them, and the generation and caching of those learning histories.
//!
//! Flow: a [`TaskConfig`] (`conf/task/*.yaml`) → [`TaskSuite`] (task list, train/test split,
//! optimal returns, `make_env`) → [`generate::generate`] (every task × history, in parallel)
//! → [`cache`] (`<data_root>/<name>-<hash>/`, safetensors + meta.json) → [`cache::Dataset`]
//! of [`LearningHistory`]s for the formats and the trainer. Evaluation reuses the same
//! [`Environment`]s and can rerun a source from scratch with [`source::run_source`].
//!
//! Architecture invariant: this module knows nothing about models or training; everything it
//! produces is a pure function of the task config (including its seed).

pub mod bench;
pub mod cache;
pub mod config;
pub mod env;
pub mod generate;
pub mod history;
pub mod source;
pub mod suite;

pub use cache::{CacheInfo, CacheMeta, Dataset};
pub use config::{EnvConfig, SourceConfig, TaskConfig};
pub use env::{EnvSpec, Environment, RewardKind, StateSpace, TaskEnv, Transition};
pub use history::LearningHistory;
pub use source::{run_source, Source, SourceAlgorithm};
pub use suite::{Split, TaskParams, TaskSuite};

#[cfg(test)]
mod tests;
