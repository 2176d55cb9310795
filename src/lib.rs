//! adlab: algorithm distillation on RL and RLHF learning histories.
//! See ARCHITECTURE.md for the map of the modules.

pub mod app;
pub mod cli;
pub mod config;
pub mod device;
pub mod eval;
pub mod formats;
pub mod fsutil;
pub mod interrupt;
pub mod launch;
pub mod logging;
pub mod models;
pub mod optim;
pub mod pictures;
pub mod pipeline;
pub mod report;
pub mod rlhf;
pub mod runs;
pub mod schema;
pub mod schema_checks;
pub mod seed;
pub mod show;
pub mod sweep;
pub mod tasks;
pub mod tensorboard;
pub mod tokenizer;
pub mod train;
