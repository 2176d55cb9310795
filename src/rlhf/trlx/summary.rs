//! What `adlab import-trlx` prints: per run its size, whether it has rewards and the ends of
//! its learning curve; the config keys that differ across runs (a sweep's hyperparameters);
//! the skipped runs with their errors.

use super::read::Import;
use crate::rlhf::RlhfRun;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The figures of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub id: String,
    pub epochs: usize,
    pub rollouts: usize,
    /// Every rollout has per-token rewards (false for text-only logs).
    pub has_rewards: bool,
    /// What `first`/`last` average: `"score"` when the log has scores, else `"total reward"`
    /// (score plus KL penalty); `None` when it has neither.
    pub metric: Option<&'static str>,
    /// The metric's mean over the first and the last epoch.
    pub first: Option<f32>,
    pub last: Option<f32>,
}

pub fn run_summary(run: &RlhfRun) -> RunSummary {
    let rollouts = run.n_rollouts();
    let has_rewards = rollouts > 0 && run.rollouts().all(|(_, r)| r.rewards.is_some());
    let has_score = run.rollouts().any(|(_, r)| r.score.is_some());
    let (metric, curve) = if has_score {
        (Some("score"), run.score_curve())
    } else if has_rewards {
        (Some("total reward"), total_reward_curve(run))
    } else {
        (None, Vec::new())
    };
    RunSummary {
        id: run.id.clone(),
        epochs: run.epochs.len(),
        rollouts,
        has_rewards,
        metric,
        first: curve.first().copied().flatten(),
        last: curve.last().copied().flatten(),
    }
}

fn total_reward_curve(run: &RlhfRun) -> Vec<Option<f32>> {
    run.epochs
        .iter()
        .map(|e| {
            let t: Vec<f32> = e.rollouts.iter().filter_map(|r| r.total_reward()).collect();
            (!t.is_empty()).then(|| t.iter().sum::<f32>() / t.len() as f32)
        })
        .collect()
}

/// Config keys (dotted paths to leaves) whose values are not the same in every run, with each
/// run's value (`None` where a run lacks the key). Empty for fewer than two runs.
pub fn differing_config_keys(runs: &[RlhfRun]) -> Vec<(String, Vec<Option<String>>)> {
    if runs.len() < 2 {
        return Vec::new();
    }
    let flat: Vec<BTreeMap<String, String>> = runs
        .iter()
        .map(|r| {
            let mut m = BTreeMap::new();
            flatten("", &r.config, &mut m);
            m
        })
        .collect();
    let keys: BTreeSet<&String> = flat.iter().flat_map(|m| m.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let values: Vec<Option<String>> = flat.iter().map(|m| m.get(k).cloned()).collect();
            values
                .iter()
                .any(|v| v != &values[0])
                .then(|| (k.clone(), values))
        })
        .collect()
}

fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

fn fig(v: Option<f32>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"))
}

/// The printed summary of an import.
pub fn render(import: &Import) -> String {
    let mut out = String::new();
    let header = [
        "run", "epochs", "rollouts", "rewards", "metric", "first", "last",
    ];
    let rows: Vec<[String; 7]> = import
        .runs
        .iter()
        .map(run_summary)
        .map(|s| {
            [
                s.id,
                s.epochs.to_string(),
                s.rollouts.to_string(),
                if s.has_rewards { "yes" } else { "no" }.to_string(),
                s.metric.unwrap_or("-").to_string(),
                fig(s.first),
                fig(s.last),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let _ = writeln!(
        out,
        "{} run{} read (first/last: the metric's mean over the first and the last epoch)",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
    let text_only: Vec<&str> = import
        .runs
        .iter()
        .filter(|r| !run_summary(r).has_rewards)
        .map(|r| r.id.as_str())
        .collect();
    if !text_only.is_empty() {
        let _ = writeln!(
            out,
            "no rewards in {}: text-only logs (newer TRLx); usable as text, but they cannot train reward prediction",
            text_only.join(", ")
        );
    }
    let differing = differing_config_keys(&import.runs);
    if !differing.is_empty() {
        let _ = writeln!(out, "config keys that differ across runs:");
        for (key, values) in differing {
            let pairs: Vec<String> = import
                .runs
                .iter()
                .zip(values)
                .map(|(r, v)| format!("{}={}", r.id, v.as_deref().unwrap_or("(unset)")))
                .collect();
            let _ = writeln!(out, "  {key}: {}", pairs.join(", "));
        }
    }
    if !import.skipped.is_empty() {
        let _ = writeln!(out, "skipped {} run(s):", import.skipped.len());
        for s in &import.skipped {
            let _ = writeln!(out, "  {}: {}", s.dir.display(), s.error);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rlhf::trlx::read::SkippedRun;
    use crate::rlhf::{RlhfEpoch, Rollout};
    use serde_json::json;

    fn run(id: &str, config: Value, rewards: &[Option<f32>], score: bool) -> RlhfRun {
        let epochs = rewards
            .iter()
            .enumerate()
            .map(|(i, r)| RlhfEpoch {
                timestamp: i as f64,
                rollouts: vec![Rollout {
                    query_ids: vec![],
                    response_ids: vec![1, 2],
                    query_text: "q".into(),
                    response_text: "r".into(),
                    logprobs: None,
                    values: None,
                    rewards: r.map(|r| vec![-0.5, r]),
                    score: if score { *r } else { None },
                }],
            })
            .collect();
        RlhfRun {
            id: id.into(),
            config,
            epochs,
        }
    }

    #[test]
    fn summaries_use_scores_else_total_rewards() {
        let s = run_summary(&run(
            "a",
            Value::Null,
            &[Some(1.0), Some(2.0), Some(3.0)],
            true,
        ));
        assert_eq!(
            (s.metric, s.first, s.last, s.has_rewards),
            (Some("score"), Some(1.0), Some(3.0), true)
        );
        let s = run_summary(&run("a", Value::Null, &[Some(1.0), Some(3.0)], false));
        assert_eq!(
            (s.metric, s.first, s.last),
            (Some("total reward"), Some(0.5), Some(2.5))
        );
        let s = run_summary(&run("a", Value::Null, &[None], false));
        assert_eq!((s.metric, s.has_rewards), (None, false));
    }

    #[test]
    fn differing_keys_are_the_sweep_hyperparameters() {
        let runs = [
            run(
                "a",
                json!({"method": {"init_kl_coef": 0.05, "gamma": 1}, "model": "gpt2"}),
                &[Some(1.0)],
                true,
            ),
            run(
                "b",
                json!({"method": {"init_kl_coef": 0.1, "gamma": 1}, "model": "gpt2", "seed": 3}),
                &[Some(1.0)],
                true,
            ),
        ];
        let d = differing_config_keys(&runs);
        assert_eq!(
            d,
            [
                (
                    "method.init_kl_coef".to_string(),
                    vec![Some("0.05".into()), Some("0.1".into())]
                ),
                ("seed".to_string(), vec![None, Some("3".into())]),
            ]
        );
        let import = Import {
            runs: runs.to_vec(),
            skipped: vec![SkippedRun {
                dir: "logs/run-c".into(),
                error: "logs/run-c/epoch-1.json:1:2: malformed JSON".into(),
            }],
        };
        let text = render(&import);
        assert!(text.contains("2 runs read"), "{text}");
        assert!(
            text.contains("method.init_kl_coef: a=0.05, b=0.1"),
            "{text}"
        );
        assert!(text.contains("seed: a=(unset), b=3"), "{text}");
        assert!(
            text.contains("skipped 1 run(s):\n  logs/run-c: logs/run-c/epoch-1.json:1:2"),
            "{text}"
        );
        assert!(!text.contains("gamma"), "{text}");
    }
}
