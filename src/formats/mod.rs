//! Formats: how learning histories are presented to a model.
//!
//! - RL format ([`window`]): windows of consecutive (state, action, reward, logprob) steps as
//!   host arrays for the RL-heads transformer.
//! - Language format ([`language`], [`parse`], [`lm_window`], with
//!   [`crate::tokenizer`]): steps rendered as
//!   text by a YAML-configured template, tokenised, cut into windows of whole steps with
//!   action/reward token masks for a causal language model.
//!
//! Both kinds take training windows from train-split histories only and validation windows
//! (a fixed set) from test-split histories only.
//!
//! Architecture invariant: this module produces plain host data (no tensors, no devices) and
//! knows nothing about models or training loops.
pub mod config;
pub mod corpus;
pub mod fields;
pub mod format_tokenizer;
pub mod language;
pub mod lm_window;
pub mod parse;
pub mod rlhf_text;
pub mod starts;
pub mod values;
pub mod window;
pub mod windows;

pub use config::{FormatConfig, LanguageFormatConfig, RlFormatConfig, TokenizerConfig};
pub use corpus::StepText;
pub use language::{LanguageFormat, RenderedHistory, StateRef, StepFrame, StepPosition, StepSpans};
pub use lm_window::{LmStepTargets, LmWindowBatch, LmWindows, StepTokens};
pub use parse::{parse_history, ParsedStep};
pub use starts::{StartTable, WindowStart};
pub use window::{RlWindowBatch, RlWindows};
pub use windows::Windows;

#[cfg(test)]
pub(crate) mod testdata;
