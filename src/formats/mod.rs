//! Formats: how learning histories are presented to a model (RL tuples or text).
pub mod config;
