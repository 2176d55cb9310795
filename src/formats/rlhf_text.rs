//! The text format of RLHF learning histories, the original project's template:
//!
//! ```text
//! prompt: Dan went down to the shops.
//! completion: He smiled as he walked - the sun was shining.
//! reward: 0.9975
//! ###
//! ```
//!
//! Field names, the separator, the reward's precision and which reward is shown (the reward
//! model's `score`, or `total` = score plus the per-token KL penalties PPO optimised) are
//! configurable. The completion is the step's *action* and the number its *reward*, so the
//! LM windows, masks and accuracies of `formats::lm_window` apply unchanged. Each field is
//! kept to one line (newlines inside a prompt or completion are written as spaces) so a
//! completion ends at the first newline when the model writes one.

use super::config::{RlhfRewardKind, RlhfTextFormatConfig};
use super::corpus::StepText;
use super::fields::format_decimal;
use crate::rlhf::{RlhfRun, Rollout};
use anyhow::{Context, Result};

#[derive(Debug, Clone)]
pub struct RlhfTextFormat {
    config: RlhfTextFormatConfig,
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

impl RlhfTextFormat {
    pub fn new(config: &RlhfTextFormatConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }

    pub fn config(&self) -> &RlhfTextFormatConfig {
        &self.config
    }

    /// The reward the format shows for `rollout` (`None` if the log lacks it).
    pub fn reward_of(&self, rollout: &Rollout) -> Option<f32> {
        match self.config.reward {
            RlhfRewardKind::Score => rollout.score,
            RlhfRewardKind::Total => rollout.total_reward(),
        }
    }

    /// The text before the completion: what the model reads before it writes one. The
    /// completion (with its leading space) follows directly.
    pub fn completion_prompt(&self, prompt: &str) -> String {
        let c = &self.config;
        format!(
            "{}: {}\n{}:",
            c.prompt_field,
            one_line(prompt),
            c.completion_field
        )
    }

    /// The reward as written (without the leading space).
    pub fn reward_text(&self, reward: f32) -> String {
        format_decimal(reward, self.config.precision)
    }

    /// One rollout as a step: action = ` completion`, reward = ` number`.
    pub fn render(&self, prompt: &str, completion: &str, reward: f32) -> StepText {
        let c = &self.config;
        let mut text = self.completion_prompt(prompt);
        let a = text.len();
        text.push(' ');
        text.push_str(&one_line(completion));
        let b = text.len();
        text.push_str(&format!("\n{}:", c.reward_field));
        let r = text.len();
        text.push(' ');
        text.push_str(&self.reward_text(reward));
        let r_end = text.len();
        text.push('\n');
        text.push_str(&c.separator);
        StepText {
            text,
            edges: [a, b, r, r_end],
        }
    }

    /// Every rollout of `run` in chronological order (across epochs) as steps with the shown
    /// reward; action ids are 0 (a completion is text, not a choice among a few).
    pub fn render_run(&self, run: &RlhfRun) -> Result<Vec<(StepText, u32, f32)>> {
        run.epochs
            .iter()
            .enumerate()
            .flat_map(|(epoch, e)| {
                e.rollouts
                    .iter()
                    .enumerate()
                    .map(move |(i, r)| (epoch, i, r))
            })
            .map(|(epoch, i, r)| {
                let reward = self.reward_of(r).with_context(|| {
                    format!(
                        "run `{}`, epoch {epoch}, rollout {i}: no {} logged (format.reward = \
                         {}; text-only logs cannot train reward prediction, and a log without \
                         `score` can only show `total`)",
                        run.id,
                        match self.config.reward {
                            RlhfRewardKind::Score => "score",
                            RlhfRewardKind::Total => "rewards",
                        },
                        match self.config.reward {
                            RlhfRewardKind::Score => "score",
                            RlhfRewardKind::Total => "total",
                        },
                    )
                })?;
                Ok((
                    self.render(&r.query_text, &r.response_text, reward),
                    0,
                    reward,
                ))
            })
            .collect()
    }

    /// What ends a completion the model writes: the newline before the reward field.
    pub fn completion_end(&self) -> char {
        '\n'
    }

    /// Tolerance of reward accuracy: half a unit in the last written decimal.
    pub fn tolerance(&self) -> f32 {
        0.5 * 10f32.powi(-(self.config.precision as i32)) + 1e-6
    }

    /// Reads a predicted reward text back (`None` if it is not a number).
    pub fn parse_reward(&self, text: &str) -> Option<f32> {
        let t = text.trim();
        let n = super::fields::scan_number(t, None)?;
        (n == t.len() && !t.is_empty())
            .then(|| t.parse().ok())
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::config::TokenizerConfig;

    pub(crate) fn config() -> RlhfTextFormatConfig {
        RlhfTextFormatConfig {
            name: "rlhf_text".into(),
            prompt_field: "prompt".into(),
            completion_field: "completion".into(),
            reward_field: "reward".into(),
            separator: "###\n".into(),
            precision: 4,
            reward: RlhfRewardKind::Score,
            tokenizer: TokenizerConfig::Byte,
        }
    }

    #[test]
    fn renders_the_original_template_with_exact_spans() {
        let f = RlhfTextFormat::new(&config());
        let step = f.render(
            "Dan went down to the shops.",
            "He smiled as he walked\n- the sun was shining.",
            0.99751,
        );
        assert_eq!(
            step.text,
            "prompt: Dan went down to the shops.\ncompletion: He smiled as he walked - the sun \
             was shining.\nreward: 0.9975\n###\n"
        );
        let [before, action, between, reward, after] = step.segments();
        assert_eq!(before, "prompt: Dan went down to the shops.\ncompletion:");
        assert_eq!(action, " He smiled as he walked - the sun was shining.");
        assert_eq!(between, "\nreward:");
        assert_eq!(f.parse_reward(reward), Some(0.9975));
        assert_eq!(after, "\n###\n");
        assert_eq!(f.completion_prompt("Dan went down to the shops."), before);
        assert_eq!(f.parse_reward(" -0.5x"), None);
    }

    #[test]
    fn the_shown_reward_is_the_score_or_the_total() {
        let r = Rollout {
            query_ids: vec![],
            response_ids: vec![1, 2],
            query_text: "q".into(),
            response_text: "r".into(),
            logprobs: None,
            values: None,
            rewards: Some(vec![-0.25, 0.75]),
            score: Some(1.0),
        };
        let mut c = config();
        assert_eq!(RlhfTextFormat::new(&c).reward_of(&r), Some(1.0));
        c.reward = RlhfRewardKind::Total;
        assert_eq!(RlhfTextFormat::new(&c).reward_of(&r), Some(0.5));
    }
}
