//! `summary.json`: the figures a report reads from one evaluation, computed from the rows of
//! `eval.csv` alone.
//!
//! ```text
//! {
//!   "episodes": 100,          episodes per task
//!   "k": 20,                  episodes averaged at each end (eval.summary_k, capped at episodes)
//!   "temperature": 0.0,
//!   "splits": {
//!     "test":  {              held-out tasks ("train": training tasks, same shape)
//!       "tasks": [200, ...],  task indices
//!       "policies": {
//!         "model": {          also "source", "random", "optimal"
//!           "first_k_return": 0.41,   mean return over tasks × the first k episodes
//!           "last_k_return":  0.78,   ... the last k episodes
//!           "improvement":    0.37,   last_k_return − first_k_return (in-context improvement)
//!           "first_k_score":  0.12,   normalised score of the first k episodes
//!           "last_k_score":   0.85,
//!           "score_improvement": 0.73,
//!           "curve":       [..],      mean return over tasks, per episode
//!           "score_curve": [..],      mean normalised score over tasks, per episode
//!           "tasks_above_half_optimal": 13,   tasks whose last-k mean return ≥ ½ optimum
//!           "fraction_above_half_optimal": 0.81,
//!           "tasks_reaching_half_optimal": 14, tasks whose k-episode running mean ever
//!           "mean_episodes_to_half_optimal": 23.5,  reaches ½ optimum; mean first episode
//!           "per_task": [{"task": 3, "first_k_return": .., "last_k_return": ..,
//!                         "optimal": .., "episodes_to_half_optimal": 17 | null}, ..]
//!       } },
//!       "decoding": {         causal_lm only: constrained decoding over the action strings
//!         "steps": 320, "off_format": 3, "off_format_rate": 0.009
//! } } } }                     (steps where greedy unconstrained output was no action)
//! ```
//!
//! Normalised score of a return on task i: `(return − random_i) / (optimal_i − random_i)`,
//! where `random_i` is the mean return of the random policy over all its episodes on task i
//! (0 = random, 1 = optimal). A score averages this over tasks; tasks where
//! `optimal_i − random_i < 1e-6` (nothing to gain) are left out, and a score is `null` when no
//! task remains (or the random baseline is missing).

use super::policy::DecodingStats;
use super::results::{EvalRow, PolicyKind, TaskId};
use super::reward_prediction::RewardPrediction;
use super::state_prediction::StatePrediction;
use crate::tasks::Split;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub episodes: usize,
    pub k: usize,
    pub temperature: f64,
    /// By split name: `test`, then `train`.
    pub splits: IndexMap<String, SplitSummary>,
    /// For runs on RLHF histories: what the evaluation points are, and reward prediction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rlhf: Option<RlhfSummary>,
    /// For RL histories: how well the model predicts rewards and next states of held-out
    /// histories under teacher forcing (read back from its text, for a causal LM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<HeldOutPrediction>,
    /// Model tokens one step of learning history costs (mean over the dataset's histories,
    /// for text formats), what a context of a given length buys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_step: Option<f64>,
}

/// Teacher-forced predictions on held-out learning histories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOutPrediction {
    /// Windows of held-out history the figures come from.
    pub windows: usize,
    pub reward: RewardPrediction,
    /// Continuous states only (`None` for discrete ones, whose accuracy `metrics.csv` has).
    pub state: Option<StatePrediction>,
}

impl Summary {
    /// Every policy's per-episode return curve, tagged `in_context/<split>/<policy>` (what the
    /// TensorBoard event file shows).
    pub fn in_context_curves(&self) -> Vec<(String, Vec<f64>)> {
        self.splits
            .iter()
            .flat_map(|(split, s)| {
                s.policies.iter().map(move |(policy, p)| {
                    (format!("in_context/{split}/{policy}"), p.curve.clone())
                })
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitSummary {
    pub tasks: Vec<TaskId>,
    /// By policy name: `model`, `source`, `random`, `optimal` (those present).
    pub policies: IndexMap<String, PolicySummary>,
    /// For a model that writes text (causal_lm): how often its unconstrained output would
    /// not have been an action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoding: Option<DecodingStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicySummary {
    pub first_k_return: f64,
    pub last_k_return: f64,
    pub improvement: f64,
    pub first_k_score: Option<f64>,
    pub last_k_score: Option<f64>,
    pub score_improvement: Option<f64>,
    pub curve: Vec<f64>,
    pub score_curve: Vec<Option<f64>>,
    /// Tasks whose last-k mean return is at least half their optimal return (`null` without
    /// the optimal baseline).
    #[serde(default)]
    pub tasks_above_half_optimal: Option<usize>,
    #[serde(default)]
    pub fraction_above_half_optimal: Option<f64>,
    /// Tasks whose k-episode running mean return reaches half the optimum at some point.
    #[serde(default)]
    pub tasks_reaching_half_optimal: Option<usize>,
    /// Mean over those tasks of the first episode of that k-episode window.
    #[serde(default)]
    pub mean_episodes_to_half_optimal: Option<f64>,
    #[serde(default)]
    pub per_task: Vec<TaskFigures>,
}

/// One task's figures under one policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskFigures {
    pub task: TaskId,
    pub first_k_return: f64,
    pub last_k_return: f64,
    pub optimal: Option<f64>,
    /// First episode from which the mean return over the next k episodes reaches half the
    /// optimum (`null`: never).
    pub episodes_to_half_optimal: Option<usize>,
}

/// Below this gap between optimal and random a task cannot be normalised.
const MIN_GAP: f64 = 1e-6;

fn mean(xs: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (mut s, mut n) = (0.0, 0usize);
    for x in xs {
        s += x;
        n += 1;
    }
    (n > 0).then(|| s / n as f64)
}

/// Builds the summary of `rows` (several splits and policies mixed) with `k` episodes at
/// each end.
pub fn summarise(rows: &[EvalRow], k: usize, temperature: f64) -> Summary {
    let episodes = rows.iter().map(|r| r.episode + 1).max().unwrap_or(0);
    let k = k.min(episodes).max(1);
    let mut splits = IndexMap::new();
    for split in [Split::Test, Split::Train] {
        let in_split: Vec<&EvalRow> = rows.iter().filter(|r| r.split == split).collect();
        if in_split.is_empty() {
            continue;
        }
        let mut tasks: Vec<TaskId> = in_split.iter().map(|r| r.task.clone()).collect();
        tasks.sort_unstable();
        tasks.dedup();
        // Per task: mean random return and optimal return.
        let per_task = |p: PolicyKind| -> BTreeMap<TaskId, f64> {
            let mut acc: BTreeMap<TaskId, (f64, usize)> = BTreeMap::new();
            for r in in_split.iter().filter(|r| r.policy == p) {
                let e = acc.entry(r.task.clone()).or_default();
                e.0 += f64::from(r.ret);
                e.1 += 1;
            }
            acc.into_iter()
                .map(|(t, (s, n))| (t, s / n as f64))
                .collect()
        };
        let random = per_task(PolicyKind::Random);
        let optimal = per_task(PolicyKind::Optimal);
        let normalise = |task: &TaskId, ret: f64| -> Option<f64> {
            let (lo, hi) = (random.get(task)?, optimal.get(task)?);
            (hi - lo >= MIN_GAP).then(|| (ret - lo) / (hi - lo))
        };
        let mut policies = IndexMap::new();
        for p in PolicyKind::ALL {
            let prows: Vec<&&EvalRow> = in_split.iter().filter(|r| r.policy == p).collect();
            if prows.is_empty() {
                continue;
            }
            let n_ep = prows.iter().map(|r| r.episode + 1).max().unwrap_or(0);
            let curve: Vec<f64> = (0..n_ep)
                .map(|e| {
                    mean(
                        prows
                            .iter()
                            .filter(|r| r.episode == e)
                            .map(|r| f64::from(r.ret)),
                    )
                    .unwrap_or(f64::NAN)
                })
                .collect();
            let score_curve: Vec<Option<f64>> = (0..n_ep)
                .map(|e| {
                    mean(
                        prows
                            .iter()
                            .filter(|r| r.episode == e)
                            .filter_map(|r| normalise(&r.task, f64::from(r.ret))),
                    )
                })
                .collect();
            let ends = |first: bool| -> Vec<&&&EvalRow> {
                let kk = k.min(n_ep);
                prows
                    .iter()
                    .filter(|r| {
                        if first {
                            r.episode < kk
                        } else {
                            r.episode + kk >= n_ep
                        }
                    })
                    .collect()
            };
            let ret_of =
                |rs: &[&&&EvalRow]| mean(rs.iter().map(|r| f64::from(r.ret))).unwrap_or(0.0);
            // A score is the mean over tasks of the task's mean normalised return.
            let score_of = |rs: &[&&&EvalRow]| -> Option<f64> {
                let mut by_task: BTreeMap<&TaskId, Vec<f64>> = BTreeMap::new();
                for r in rs {
                    by_task.entry(&r.task).or_default().push(f64::from(r.ret));
                }
                mean(
                    by_task
                        .into_iter()
                        .filter_map(|(t, v)| normalise(t, mean(v).unwrap_or(0.0))),
                )
            };
            let per_task_figures = task_figures(&prows, &tasks, k.min(n_ep), &optimal);
            let with_opt: Vec<&TaskFigures> = per_task_figures
                .iter()
                .filter(|t| t.optimal.is_some())
                .collect();
            let above = (!with_opt.is_empty()).then(|| {
                with_opt
                    .iter()
                    .filter(|t| t.last_k_return >= 0.5 * t.optimal.unwrap_or(0.0))
                    .count()
            });
            let reached: Vec<f64> = with_opt
                .iter()
                .filter_map(|t| t.episodes_to_half_optimal.map(|e| e as f64))
                .collect();
            let (first, last) = (ends(true), ends(false));
            let (fr, lr) = (ret_of(&first), ret_of(&last));
            let (fs, ls) = (score_of(&first), score_of(&last));
            policies.insert(
                p.as_str().to_string(),
                PolicySummary {
                    first_k_return: fr,
                    last_k_return: lr,
                    improvement: lr - fr,
                    first_k_score: fs,
                    last_k_score: ls,
                    score_improvement: fs.zip(ls).map(|(f, l)| l - f),
                    curve,
                    score_curve,
                    tasks_above_half_optimal: above,
                    fraction_above_half_optimal: above
                        .map(|a| a as f64 / with_opt.len().max(1) as f64),
                    tasks_reaching_half_optimal: (!with_opt.is_empty()).then_some(reached.len()),
                    mean_episodes_to_half_optimal: mean(reached.iter().copied()),
                    per_task: per_task_figures,
                },
            );
        }
        splits.insert(
            split.as_str().to_string(),
            SplitSummary {
                tasks,
                policies,
                decoding: None,
            },
        );
    }
    Summary {
        episodes,
        k,
        temperature,
        splits,
        rlhf: None,
        prediction: None,
        tokens_per_step: None,
    }
}

/// Each task's first/last-k returns and the episode its k-episode running mean first reaches
/// half the optimum, from one policy's rows.
fn task_figures(
    rows: &[&&EvalRow],
    tasks: &[TaskId],
    k: usize,
    optimal: &BTreeMap<TaskId, f64>,
) -> Vec<TaskFigures> {
    let k = k.max(1);
    tasks
        .iter()
        .filter_map(|task| {
            let mut by_episode: BTreeMap<usize, f32> = BTreeMap::new();
            for r in rows.iter().filter(|r| &r.task == task) {
                by_episode.insert(r.episode, r.ret);
            }
            let curve: Vec<f64> = by_episode.values().map(|&v| f64::from(v)).collect();
            if curve.is_empty() {
                return None;
            }
            let kk = k.min(curve.len());
            let opt = optimal.get(task).copied();
            let episodes_to_half_optimal = opt.and_then(|o| {
                (0..=curve.len() - kk)
                    .find(|&e| mean(curve[e..e + kk].iter().copied()).unwrap_or(0.0) >= 0.5 * o)
            });
            Some(TaskFigures {
                task: task.clone(),
                first_k_return: mean(curve[..kk].iter().copied()).unwrap_or(0.0),
                last_k_return: mean(curve[curve.len() - kk..].iter().copied()).unwrap_or(0.0),
                optimal: opt,
                episodes_to_half_optimal,
            })
        })
        .collect()
}

/// A short fixed-width table of the summary (one line per split and policy).
pub fn table(s: &Summary) -> String {
    let mut out = format!(
        "{:<6} {:<8} {:>10} {:>10} {:>8} {:>10} {:>10}\n",
        "split",
        "policy",
        format!("first{}", s.k),
        format!("last{}", s.k),
        "gain",
        "score_1st",
        "score_last"
    );
    let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
    for (split, ss) in &s.splits {
        for (name, p) in &ss.policies {
            out.push_str(&format!(
                "{:<6} {:<8} {:>10.3} {:>10.3} {:>8.3} {:>10} {:>10}\n",
                split,
                name,
                p.first_k_return,
                p.last_k_return,
                p.improvement,
                f(p.first_k_score),
                f(p.last_k_score)
            ));
        }
    }
    out
}

/// The `rlhf` section of `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RlhfSummary {
    /// Epochs in context at each evaluation point (the `episode` index of `eval.csv`).
    pub context_epochs: Vec<usize>,
    pub prompts: usize,
    /// Rewards of the held-out runs' rollouts, predicted under teacher forcing.
    pub reward_prediction: Option<RewardPrediction>,
    /// Why the in-context curve is missing, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_context_skipped: Option<String>,
    /// Self-play on reward functions (then `eval.csv` holds it, and the curve of reading a
    /// source's history is `read_curve`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_play: Option<super::rlhf_self_play::SelfPlaySummary>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_curve: Vec<ReadPoint>,
}

/// One point of the curve of writing after a source run's first `epochs` epochs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadPoint {
    pub run: String,
    pub split: String,
    pub reward: Option<String>,
    pub epochs: usize,
    pub model: f64,
    pub source: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(task: usize, episode: usize, ret: f32, policy: PolicyKind) -> EvalRow {
        EvalRow {
            task: task.into(),
            split: Split::Test,
            episode,
            ret,
            steps: Some(1),
            policy,
        }
    }

    #[test]
    fn normalised_scores_on_hand_made_numbers() {
        use PolicyKind::*;
        // Task 0: random returns 1 and 3 (mean 2), optimal 10.
        // Task 1: random 0 and 0 (mean 0), optimal 4.
        // Task 2: optimal = random = 5: cannot be normalised, left out of scores.
        let mut rows = vec![
            row(0, 0, 1.0, Random),
            row(0, 1, 3.0, Random),
            row(1, 0, 0.0, Random),
            row(1, 1, 0.0, Random),
            row(2, 0, 5.0, Random),
            row(2, 1, 5.0, Random),
        ];
        for t in 0..3 {
            let opt = [10.0, 4.0, 5.0][t];
            rows.push(row(t, 0, opt, Optimal));
            rows.push(row(t, 1, opt, Optimal));
        }
        // The model: task 0 returns 2 then 10 (score 0 then 1); task 1: 1 then 3
        // (0.25 then 0.75); task 2: anything.
        rows.extend([
            row(0, 0, 2.0, Model),
            row(0, 1, 10.0, Model),
            row(1, 0, 1.0, Model),
            row(1, 1, 3.0, Model),
            row(2, 0, 7.0, Model),
            row(2, 1, 1.0, Model),
        ]);
        let s = summarise(&rows, 1, 0.0);
        assert_eq!((s.episodes, s.k), (2, 1));
        let test = &s.splits["test"];
        assert_eq!(test.tasks, vec![0.into(), 1.into(), 2.into()]);
        let m = &test.policies["model"];
        assert!((m.first_k_return - 10.0 / 3.0).abs() < 1e-9);
        assert!((m.last_k_return - 14.0 / 3.0).abs() < 1e-9);
        assert!((m.improvement - 4.0 / 3.0).abs() < 1e-9);
        assert!((m.first_k_score.unwrap() - 0.125).abs() < 1e-9);
        assert!((m.last_k_score.unwrap() - 0.875).abs() < 1e-9);
        assert!((m.score_improvement.unwrap() - 0.75).abs() < 1e-9);
        assert_eq!(m.score_curve, vec![Some(0.125), Some(0.875)]);
        assert_eq!(m.curve.len(), 2);
        // Random scores 0 and optimal 1 on average, by construction.
        let r = &test.policies["random"];
        let o = &test.policies["optimal"];
        let both = r.first_k_score.unwrap() + r.last_k_score.unwrap();
        assert!(both.abs() < 1e-9, "{r:?}");
        assert!((o.last_k_score.unwrap() - 1.0).abs() < 1e-9);
        assert!(!s.splits.contains_key("train"));
        assert!(table(&s).contains("model"));
        // Per task: task 0 ends at 10 ≥ ½·10, task 1 at 3 ≥ ½·4, task 2 at 1 < ½·5.
        assert_eq!(m.tasks_above_half_optimal, Some(2));
        assert!((m.fraction_above_half_optimal.unwrap() - 2.0 / 3.0).abs() < 1e-9);
        let per: Vec<(TaskId, Option<usize>)> = m
            .per_task
            .iter()
            .map(|t| (t.task.clone(), t.episodes_to_half_optimal))
            .collect();
        // Task 2 reaches 7 ≥ 2.5 at episode 0.
        assert_eq!(
            per,
            vec![
                (0.into(), Some(1)),
                (1.into(), Some(1)),
                (2.into(), Some(0))
            ]
        );
        assert_eq!(m.tasks_reaching_half_optimal, Some(3));
        assert!((m.mean_episodes_to_half_optimal.unwrap() - 2.0 / 3.0).abs() < 1e-9);
    }
}
