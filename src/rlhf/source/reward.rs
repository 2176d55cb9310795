//! Reward models scoring (prompt, completion) pairs: the built-in lexicon, topic-word and
//! length scorers, weighted mixes of them (a family of reward functions for in-context
//! RLHF), and an external command for any other judge (a real sentiment classifier, a
//! script) without linking it into adlab.

use super::config::{RewardConfig, SentimentTarget};
use super::lexicon::Lexicon;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::process::{Command, Stdio};

/// Scores a batch of `(prompt, completion)` pairs, one score per pair.
pub trait RewardModel {
    fn score(&mut self, batch: &[(String, String)]) -> Result<Vec<f32>>;
}

/// Mean valence of the completion's lexicon words, in [-1, 1]; 0 when it has none. The sign
/// is flipped for `target: negative`. The prompt is ignored (the grammar keeps it neutral).
pub struct LexiconReward {
    sign: f32,
}

impl LexiconReward {
    pub fn new(target: SentimentTarget) -> Self {
        let sign = match target {
            SentimentTarget::Positive => 1.0,
            SentimentTarget::Negative => -1.0,
        };
        LexiconReward { sign }
    }

    pub fn score_one(&self, completion: &str) -> f32 {
        let lex = Lexicon::get();
        let (sum, n) = completion
            .split_whitespace()
            .filter_map(|w| lex.valence(&w.to_lowercase()))
            .fold((0.0f32, 0usize), |(s, n), v| (s + v, n + 1));
        if n == 0 {
            0.0
        } else {
            self.sign * sum / n as f32
        }
    }
}

impl RewardModel for LexiconReward {
    fn score(&mut self, batch: &[(String, String)]) -> Result<Vec<f32>> {
        Ok(batch.iter().map(|(_, c)| self.score_one(c)).collect())
    }
}

/// 1 when the completion uses any of the words (lower-cased), else 0: a topic.
pub struct WordsReward {
    words: std::collections::HashSet<String>,
}

impl RewardModel for WordsReward {
    fn score(&mut self, batch: &[(String, String)]) -> Result<Vec<f32>> {
        Ok(batch
            .iter()
            .map(|(_, c)| {
                let hit = c
                    .split_whitespace()
                    .any(|w| self.words.contains(&w.to_lowercase()));
                f32::from(u8::from(hit))
            })
            .collect())
    }
}

/// `1 − |words − target| / tolerance`, at least 0: a length (style) target.
pub struct LengthReward {
    target: usize,
    tolerance: usize,
}

impl RewardModel for LengthReward {
    fn score(&mut self, batch: &[(String, String)]) -> Result<Vec<f32>> {
        Ok(batch
            .iter()
            .map(|(_, c)| {
                let off = c.split_whitespace().count().abs_diff(self.target);
                (1.0 - off as f32 / self.tolerance as f32).max(0.0)
            })
            .collect())
    }
}

/// A weighted sum of reward models.
pub struct MixReward {
    parts: Vec<(f32, Box<dyn RewardModel + Send>)>,
}

impl RewardModel for MixReward {
    fn score(&mut self, batch: &[(String, String)]) -> Result<Vec<f32>> {
        let mut total = vec![0.0f32; batch.len()];
        for (weight, part) in &mut self.parts {
            for (t, s) in total.iter_mut().zip(part.score(batch)?) {
                *t += *weight * s;
            }
        }
        Ok(total)
    }
}

/// Runs `[program, args...]` once per batch: writes one JSON object
/// `{"prompt": ..., "completion": ...}` per line on its stdin, reads one float per line from
/// its stdout, in order.
pub struct CommandReward {
    command: Vec<String>,
}

impl CommandReward {
    pub fn new(command: Vec<String>) -> Result<Self> {
        if command.first().is_none_or(|p| p.is_empty()) {
            bail!("task.reward.command: expected [program, args...], got {command:?}");
        }
        Ok(CommandReward { command })
    }

    fn describe(&self) -> String {
        format!("reward command {:?}", self.command)
    }
}

impl RewardModel for CommandReward {
    fn score(&mut self, batch: &[(String, String)]) -> Result<Vec<f32>> {
        let mut input = String::new();
        for (prompt, completion) in batch {
            let line = serde_json::json!({"prompt": prompt, "completion": completion});
            input.push_str(&line.to_string());
            input.push('\n');
        }
        let mut child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("{}: cannot start `{}`", self.describe(), self.command[0]))?;
        // Feed stdin from a thread: a scorer that answers line by line would otherwise fill
        // its stdout pipe while we are still blocked writing.
        let mut stdin = child.stdin.take().context("reward command stdin")?;
        let writer = std::thread::spawn(move || {
            // A scorer may exit without reading everything; its exit status tells.
            let _ = stdin.write_all(input.as_bytes());
        });
        let output = child
            .wait_with_output()
            .with_context(|| format!("{}: waiting for it", self.describe()))?;
        let _ = writer.join();
        if !output.status.success() {
            bail!(
                "{} failed ({}); stderr:\n{}",
                self.describe(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            );
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        if lines.len() != batch.len() {
            bail!(
                "{} printed {} lines for {} completions (expected one score per line)",
                self.describe(),
                lines.len(),
                batch.len()
            );
        }
        lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                line.trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .with_context(|| {
                        format!(
                            "{}: line {} of its output is not a finite number: {line:?}",
                            self.describe(),
                            i + 1
                        )
                    })
            })
            .collect()
    }
}

/// The reward model a config asks for.
pub fn build_reward(cfg: &RewardConfig) -> Result<Box<dyn RewardModel + Send>> {
    Ok(match cfg {
        RewardConfig::Lexicon { target } => Box::new(LexiconReward::new(*target)),
        RewardConfig::Words { words } => Box::new(WordsReward {
            words: words.iter().map(|w| w.to_lowercase()).collect(),
        }),
        RewardConfig::Length { target, tolerance } => Box::new(LengthReward {
            target: *target,
            tolerance: (*tolerance).max(1),
        }),
        RewardConfig::Mix { parts } => Box::new(MixReward {
            parts: parts
                .iter()
                .map(|p| Ok((p.weight as f32, build_reward(&p.reward)?)))
                .collect::<Result<_>>()?,
        }),
        RewardConfig::Command { command } => Box::new(CommandReward::new(command.clone())?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(completions: &[&str]) -> Vec<(String, String)> {
        completions
            .iter()
            .map(|c| ("the old fisherman walked to the".to_string(), c.to_string()))
            .collect()
    }

    fn sh(script: &str) -> Box<dyn RewardModel + Send> {
        build_reward(&RewardConfig::Command {
            command: vec!["sh".into(), "-c".into(), script.into()],
        })
        .unwrap()
    }

    #[test]
    fn lexicon_scores_mean_valence_with_the_target_sign() {
        let pos = LexiconReward::new(SentimentTarget::Positive);
        assert!((pos.score_one("harbor and felt happy") - 0.8).abs() < 1e-6);
        assert!((pos.score_one("harbor and felt happy then cried") - 0.05).abs() < 1e-6);
        assert_eq!(pos.score_one("harbor"), 0.0);
        let mut neg = build_reward(&RewardConfig::Lexicon {
            target: SentimentTarget::Negative,
        })
        .unwrap();
        let s = neg
            .score(&batch(&["lake where everyone was sad", "lake"]))
            .unwrap();
        assert_eq!(s, [0.8, 0.0]);
    }

    #[test]
    fn topic_length_and_mixed_rewards_score_what_they_say() {
        let yaml =
            "kind: mix\nparts:\n  - {weight: 0.5, reward: {kind: lexicon, target: negative}}\n  \
                    - {weight: 0.5, reward: {kind: words, words: [lake, river]}}\n";
        let cfg: RewardConfig = serde_yaml_ng::from_str(yaml).unwrap();
        assert_eq!(
            cfg.describe(),
            "mix(0.5*lexicon:negative + 0.5*words:lake,river)"
        );
        let mut mix = build_reward(&cfg).unwrap();
        let s = mix
            .score(&batch(&[
                "lake where everyone was sad",
                "harbor and felt happy",
                "river",
            ]))
            .unwrap();
        assert!(
            (s[0] - 0.9).abs() < 1e-6 && (s[1] + 0.4).abs() < 1e-6,
            "{s:?}"
        );
        assert_eq!(s[2], 0.5);
        let mut len = build_reward(&RewardConfig::Length {
            target: 3,
            tolerance: 4,
        })
        .unwrap();
        let s = len
            .score(&batch(&["lake and smiled", "lake", "a b c d e f g h"]))
            .unwrap();
        assert_eq!(s, [1.0, 0.5, 0.0]);
        let vocab = vec!["lake".to_string()];
        let bad = RewardConfig::Words {
            words: vec!["lake".into(), "ocean".into()],
        };
        let err = bad
            .validate("task.family.rewards.water", Some(&vocab))
            .unwrap_err();
        assert!(
            err.to_string().contains("task.family.rewards.water.words")
                && err.to_string().contains("ocean"),
            "{err}"
        );
    }

    #[test]
    fn command_scorer_reads_one_float_per_json_line() {
        // Score = length of the completion in bytes, read from the JSON line by awk.
        let mut r = sh(r#"awk -F'"completion":"' '{ split($2, a, "\""); print length(a[1]) }'"#);
        let s = r.score(&batch(&["ab", "abcd efg"])).unwrap();
        assert_eq!(s, [2.0, 8.0]);
        assert_eq!(r.score(&[]).unwrap(), Vec::<f32>::new());
    }

    #[test]
    fn command_scorer_errors_are_explicit() {
        let err = |mut r: Box<dyn RewardModel + Send>| {
            format!("{:#}", r.score(&batch(&["a", "b"])).unwrap_err())
        };
        let missing = build_reward(&RewardConfig::Command {
            command: vec!["/nonexistent/adlab-scorer".into()],
        })
        .unwrap();
        let e = err(missing);
        assert!(
            e.contains("cannot start") && e.contains("adlab-scorer"),
            "{e}"
        );
        let e = err(sh("cat >/dev/null; echo broken model >&2; exit 3"));
        assert!(e.contains("failed") && e.contains("broken model"), "{e}");
        let e = err(sh("cat >/dev/null; echo 1"));
        assert!(e.contains("printed 1 lines for 2"), "{e}");
        let e = err(sh("cat >/dev/null; echo 1; echo oops"));
        assert!(e.contains("line 2") && e.contains("oops"), "{e}");
        assert!(build_reward(&RewardConfig::Command { command: vec![] }).is_err());
    }
}
