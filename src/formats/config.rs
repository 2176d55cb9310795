//! Format settings (the `format` config group): how learning histories are shown to a model —
//! as RL tuples, or as text rendered by a template a researcher writes in YAML.

pub use super::values::ValueText;
use crate::config::{ConfigError, Node};
pub use crate::tokenizer::TokenizerConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FormatConfig {
    /// (state, action, reward, logprob) tensors for the RL-heads model.
    Rl(RlFormatConfig),
    /// Text for a causal language model.
    Language(LanguageFormatConfig),
    /// RLHF rollouts as text (`prompt: … completion: … reward: …`) for a causal LM.
    RlhfText(RlhfTextFormatConfig),
}

impl FormatConfig {
    pub fn name(&self) -> &str {
        match self {
            FormatConfig::Rl(c) => &c.name,
            FormatConfig::Language(c) => &c.name,
            FormatConfig::RlhfText(c) => &c.name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            FormatConfig::Rl(_) => "rl",
            FormatConfig::Language(_) => "language",
            FormatConfig::RlhfText(_) => "rlhf_text",
        }
    }

    /// The tokenizer of a text format (`None` for RL tuples).
    pub fn tokenizer(&self) -> Option<&TokenizerConfig> {
        match self {
            FormatConfig::Rl(_) => None,
            FormatConfig::Language(c) => Some(&c.tokenizer),
            FormatConfig::RlhfText(c) => Some(&c.tokenizer),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RlFormatConfig {
    pub name: String,
    /// RLHF histories only: response positions told apart in the token-level state
    /// (`token · positions + min(t, positions − 1)`, see `rlhf::token_steps`).
    #[serde(default = "default_positions")]
    pub positions: usize,
}

fn default_positions() -> usize {
    16
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
    /// Decimal places of continuous values (rewards, and continuous states written as
    /// decimals).
    pub precision: usize,
    /// How continuous state values are written: decimals (default), scaled integers or bins
    /// (see `formats::values`).
    #[serde(default)]
    pub values: ValueText,
    pub tokenizer: TokenizerConfig,
}

/// The text format of RLHF rollouts (see `formats::rlhf_text`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RlhfTextFormatConfig {
    pub name: String,
    pub prompt_field: String,
    pub completion_field: String,
    pub reward_field: String,
    /// Written after each rollout.
    pub separator: String,
    /// Decimals of the written reward (reward accuracy counts a match at this precision).
    pub precision: usize,
    /// Which reward is written: the reward model's `score`, or `total` (score plus KL).
    pub reward: RlhfRewardKind,
    pub tokenizer: TokenizerConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RlhfRewardKind {
    Score,
    Total,
}

/// `<data cache dir>/bpe-<format name>-<12 hex>`: the hash covers everything that changes the
/// training corpus or the vocabulary (template, separator, precision, vocab size), so two
/// formats never share a trained tokenizer by accident.
pub fn bpe_cache_dir(data_cache_dir: &Path, format: &LanguageFormatConfig) -> PathBuf {
    let mut key = serde_json::json!({
        "step": format.step,
        "episode_separator": format.episode_separator,
        "precision": format.precision,
        "tokenizer": format.tokenizer,
    });
    // Only when set, so decimal formats keep the cache directories they had.
    if !format.values.is_decimal() {
        key["values"] = serde_json::json!(format.values);
    }
    crate::tokenizer::bpe_cache_dir_for(data_cache_dir, &format.name, &key)
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
    // RLHF text is text too; whether it suits the task is checked with the task.
    let text_for_lm = wanted == "language" && format.kind() == "rlhf_text";
    if format.kind() != wanted && !text_for_lm {
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
