//! Format settings (the `format` config group): how learning histories are shown to a model —
//! as RL tuples, or as text rendered by a template a researcher writes in YAML.

use crate::config::{ConfigError, Node};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FormatConfig {
    /// (state, action, reward, logprob) tensors for the RL-heads model.
    Rl(RlFormatConfig),
    /// Text for a causal language model.
    Language(LanguageFormatConfig),
}

impl FormatConfig {
    pub fn name(&self) -> &str {
        match self {
            FormatConfig::Rl(c) => &c.name,
            FormatConfig::Language(c) => &c.name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            FormatConfig::Rl(_) => "rl",
            FormatConfig::Language(_) => "language",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RlFormatConfig {
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageFormatConfig {
    pub name: String,
    /// Template (minijinja) rendering one step. Variables: `state` (list of strings: grid
    /// coordinates, or features with `precision` decimals), `state_names` (e.g. `[x, y]`),
    /// `action` (the action's name), `action_id`, `action_symbol` (first letter if unique
    /// across actions, else the index), `reward` (formatted), `step` (index within the
    /// episode, from 0), `episode`. The action (through one of its three variables) and the
    /// reward must each appear exactly once, unfiltered, action first (see
    /// `formats::language`).
    pub step: String,
    /// Text written after each episode's last step.
    pub episode_separator: String,
    /// Decimal places of continuous values (rewards, continuous states).
    pub precision: usize,
    pub tokenizer: TokenizerConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenizerConfig {
    /// One token per byte (plus special tokens): needs no training, never out of vocabulary.
    Byte,
    /// Byte-level BPE trained on the rendered corpus and cached beside the data.
    Bpe { vocab_size: usize },
    /// A Hugging Face `tokenizer.json`.
    File { path: PathBuf },
}

/// A format must suit the model: RL tuples feed `rl_heads`, text feeds `causal_lm`.
pub fn check_compatible<M>(
    format: &FormatConfig,
    _model: &M,
    tree: &Node,
) -> Result<(), ConfigError> {
    let model_kind = tree
        .get("model.kind")
        .map(|n| n.value.to_inline())
        .unwrap_or_default();
    let wanted = match model_kind.as_str() {
        "rl_heads" => "rl",
        "causal_lm" => "language",
        _ => return Ok(()),
    };
    if format.kind() != wanted {
        let node = tree.get("format.kind");
        return Err(ConfigError::InvalidValue {
            key: "format.kind".into(),
            value: format.kind().into(),
            expected: format!(
                "`{wanted}` for model.kind `{model_kind}` (pick a {wanted} format, e.g. `format=auto`)"
            ),
            origin: node.map(|n| n.source.to_string()).unwrap_or_default(),
        });
    }
    Ok(())
}
