//! Reward functions (`task.reward`, the `RewardConfig` a reward model is built from) and
//! families of them: the tasks of in-context RLHF. PPO runs on each reward are the learning
//! histories; the runs of the `held_out` rewards are never trained on, so a model evaluated
//! on them meets a reward function that it has never seen.

use crate::tasks::config::check;
use crate::tasks::Split;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which sentiment the lexicon rewards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SentimentTarget {
    Positive,
    Negative,
}

/// The reward model, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RewardConfig {
    /// Mean valence of the completion's lexicon words (sign flipped for `negative`).
    Lexicon { target: SentimentTarget },
    /// A topic: 1 when the completion uses any of `words`, else 0.
    Words { words: Vec<String> },
    /// A length target: `1 − |words − target| / tolerance`, at least 0.
    Length { target: usize, tolerance: usize },
    /// A weighted sum of other rewards.
    Mix { parts: Vec<WeightedReward> },
    /// An external scorer: `[program, args...]`, JSON lines in, one float per line out.
    Command { command: Vec<String> },
}

/// One part of a `mix` reward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedReward {
    pub weight: f64,
    pub reward: RewardConfig,
}

impl RewardConfig {
    /// A short description (`lexicon:positive`, `words:lake,river`, `mix(…)`), logged in each
    /// run's config.
    pub fn describe(&self) -> String {
        match self {
            RewardConfig::Lexicon { target } => match target {
                SentimentTarget::Positive => "lexicon:positive".into(),
                SentimentTarget::Negative => "lexicon:negative".into(),
            },
            RewardConfig::Words { words } => format!("words:{}", words.join(",")),
            RewardConfig::Length { target, tolerance } => {
                format!("length:{target}±{tolerance}")
            }
            RewardConfig::Mix { parts } => {
                let parts: Vec<String> = parts
                    .iter()
                    .map(|p| format!("{}*{}", p.weight, p.reward.describe()))
                    .collect();
                format!("mix({})", parts.join(" + "))
            }
            RewardConfig::Command { command } => format!("command:{}", command.join(" ")),
        }
    }

    /// Checks what serde cannot; `key` is the full key of this reward (`task.reward`).
    /// `vocabulary`, when given, is every word the completions can contain: a topic word
    /// outside it could never be rewarded.
    pub fn validate(&self, key: &str, vocabulary: Option<&[String]>) -> Result<()> {
        match self {
            RewardConfig::Lexicon { .. } => Ok(()),
            RewardConfig::Words { words } => {
                check(
                    !words.is_empty(),
                    &format!("{key}.words"),
                    "[]",
                    "at least one word",
                )?;
                for w in words {
                    let known = vocabulary.is_none_or(|v| v.iter().any(|x| x == w));
                    check(
                        known && !w.is_empty() && !w.contains(char::is_whitespace),
                        &format!("{key}.words"),
                        format!("{w:?}"),
                        "single words that completions can contain",
                    )?;
                }
                Ok(())
            }
            RewardConfig::Length { target, tolerance } => {
                check(
                    *tolerance >= 1,
                    &format!("{key}.tolerance"),
                    tolerance,
                    "at least 1",
                )?;
                check(*target >= 1, &format!("{key}.target"), target, "at least 1")
            }
            RewardConfig::Mix { parts } => {
                check(
                    !parts.is_empty(),
                    &format!("{key}.parts"),
                    "[]",
                    "at least one {weight, reward}",
                )?;
                for (i, p) in parts.iter().enumerate() {
                    check(
                        p.weight.is_finite(),
                        &format!("{key}.parts[{i}].weight"),
                        p.weight,
                        "a finite number",
                    )?;
                    p.reward
                        .validate(&format!("{key}.parts[{i}].reward"), vocabulary)?;
                }
                Ok(())
            }
            RewardConfig::Command { command } => check(
                command.first().is_some_and(|p| !p.is_empty()),
                &format!("{key}.command"),
                format!("{command:?}"),
                "[program, args...] with a non-empty program",
            ),
        }
    }
}

/// `task.family`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardFamily {
    /// Reward functions by name (kept in name order).
    pub rewards: BTreeMap<String, RewardConfig>,
    /// Names of the rewards whose runs are held out.
    pub held_out: Vec<String>,
}

impl RewardFamily {
    /// Errors name `{key}.…`; `vocabulary` as in [`RewardConfig::validate`].
    pub fn validate(&self, key: &str, vocabulary: Option<&[String]>) -> Result<()> {
        for (name, reward) in &self.rewards {
            check(
                !name.is_empty() && !name.contains([',', '\n', '"', '/']),
                &format!("{key}.rewards"),
                format!("{name:?}"),
                "names without commas, quotes, slashes or newlines (they are eval.csv's task column)",
            )?;
            reward.validate(&format!("{key}.rewards.{name}"), vocabulary)?;
        }
        for name in &self.held_out {
            if !self.rewards.contains_key(name) {
                bail!(
                    "invalid `{key}.held_out`: `{name}` is not one of {key}.rewards ({})",
                    self.names().join(", ")
                );
            }
        }
        check(
            self.rewards.len() > self.held_out.len(),
            &format!("{key}.held_out"),
            format!("{:?}", self.held_out),
            "fewer rewards than the family has: at least one must be trained on",
        )
    }

    /// The reward names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.rewards.keys().map(String::as_str).collect()
    }

    /// The split of a run on reward `name`.
    pub fn split_of(&self, name: &str) -> Split {
        if self.held_out.iter().any(|h| h == name) {
            Split::Test
        } else {
            Split::Train
        }
    }
}

/// The reward a run's logged config names under `key` (`None` if it names none).
pub fn reward_name(config: &serde_json::Value, key: &str) -> Option<String> {
    match config.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(held_out: &[&str]) -> RewardFamily {
        let yaml = "rewards:\n  up: {kind: lexicon, target: positive}\n  \
                    down: {kind: lexicon, target: negative}\n  lake: {kind: words, words: [lake]}\n";
        let mut f: RewardFamily =
            serde_yaml_ng::from_str(&format!("{yaml}held_out: []\n")).unwrap();
        f.held_out = held_out.iter().map(|s| s.to_string()).collect();
        f
    }

    #[test]
    fn a_family_splits_by_reward_and_names_bad_keys() {
        let f = family(&["lake"]);
        f.validate("task.family", None).unwrap();
        assert_eq!(f.names(), ["down", "lake", "up"]);
        assert_eq!(f.split_of("lake"), Split::Test);
        assert_eq!(f.split_of("up"), Split::Train);
        let err = family(&["sea"]).validate("task.family", None).unwrap_err();
        assert!(
            err.to_string().contains("task.family.held_out") && err.to_string().contains("sea"),
            "{err}"
        );
        let all = family(&["up", "down", "lake"]).validate("task.family", None);
        assert!(all.unwrap_err().to_string().contains("at least one"));
        let vocab = vec!["river".to_string()];
        let err = f.validate("task.family", Some(&vocab)).unwrap_err();
        assert!(
            err.to_string().contains("task.family.rewards.lake.words"),
            "{err}"
        );
        let cfg = serde_json::json!({"reward": "lake", "n": 3});
        assert_eq!(reward_name(&cfg, "reward").as_deref(), Some("lake"));
        assert_eq!(reward_name(&cfg, "n").as_deref(), Some("3"));
        assert_eq!(reward_name(&cfg, "missing"), None);
    }
}
