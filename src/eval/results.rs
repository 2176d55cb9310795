//! `eval.csv`: one row per (task, split, episode, policy) with the episode's return and length,
//! columns exactly `task,split,episode,return,steps,policy`. `policy` is `model`, `source`,
//! `random` or `optimal` for RL tasks, and for in-context RLHF also `model_reset` (the model
//! with its context emptied every iteration) and `marginal` (completions drawn from the
//! training data); `steps` is empty for reference values (`optimal`, `marginal`), which no
//! policy played. `task` is a task index, or a reward function's name for RLHF self-play.
//! Written atomically, in one piece.

use super::rollout::Episode;
use crate::tasks::Split;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const HEADER: &str = "task,split,episode,return,steps,policy";

/// The policies compared in one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    Model,
    /// The model with its context reset every iteration: it cannot learn in context.
    ModelReset,
    Source,
    Random,
    Optimal,
    /// The reward of completions drawn from the training histories.
    Marginal,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 6] = [
        PolicyKind::Model,
        PolicyKind::ModelReset,
        PolicyKind::Source,
        PolicyKind::Random,
        PolicyKind::Optimal,
        PolicyKind::Marginal,
    ];
    /// The policies an RL evaluation plays.
    pub const RL: [PolicyKind; 4] = [
        PolicyKind::Model,
        PolicyKind::Source,
        PolicyKind::Random,
        PolicyKind::Optimal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Model => "model",
            PolicyKind::ModelReset => "model_reset",
            PolicyKind::Source => "source",
            PolicyKind::Random => "random",
            PolicyKind::Optimal => "optimal",
            PolicyKind::Marginal => "marginal",
        }
    }
}

/// The `task` column: an RL task's index, or a named task such as a reward function. Indices
/// order numerically and come before names; a name that reads as a number is an index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TaskId {
    Index(usize),
    Name(String),
}

impl From<usize> for TaskId {
    fn from(i: usize) -> Self {
        TaskId::Index(i)
    }
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskId::Index(i) => write!(f, "{i}"),
            TaskId::Name(n) => f.write_str(n),
        }
    }
}

/// One row of `eval.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    pub task: TaskId,
    pub split: Split,
    pub episode: usize,
    #[serde(rename = "return")]
    pub ret: f32,
    pub steps: Option<usize>,
    pub policy: PolicyKind,
}

impl EvalRow {
    pub fn from_episodes(episodes: &[Episode], split: Split, policy: PolicyKind) -> Vec<EvalRow> {
        episodes
            .iter()
            .map(|e| EvalRow {
                task: e.task.into(),
                split,
                episode: e.episode,
                ret: e.ret,
                steps: (policy != PolicyKind::Optimal).then_some(e.steps),
                policy,
            })
            .collect()
    }
}

/// The CSV text of `rows` (header included).
pub fn to_csv(rows: &[EvalRow]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r)?;
    }
    if rows.is_empty() {
        return Ok(format!("{HEADER}\n").into_bytes());
    }
    w.into_inner().context("writing eval.csv")
}

/// Writes `eval.csv` atomically.
pub fn write(path: &Path, rows: &[EvalRow]) -> Result<()> {
    crate::fsutil::write_atomic(path, &to_csv(rows)?)
}

/// Reads an `eval.csv`.
pub fn read(path: &Path) -> Result<Vec<EvalRow>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    r.deserialize()
        .collect::<Result<Vec<EvalRow>, _>>()
        .with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_the_contract_header_and_round_trips() {
        let rows = vec![
            EvalRow {
                task: 3.into(),
                split: Split::Test,
                episode: 0,
                ret: 1.5,
                steps: Some(20),
                policy: PolicyKind::Model,
            },
            EvalRow {
                task: 3.into(),
                split: Split::Test,
                episode: 0,
                ret: 2.0,
                steps: None,
                policy: PolicyKind::Optimal,
            },
            EvalRow {
                task: TaskId::Name("topic_water".into()),
                split: Split::Test,
                episode: 1,
                ret: 0.5,
                steps: Some(4),
                policy: PolicyKind::ModelReset,
            },
        ];
        let text = String::from_utf8(to_csv(&rows).unwrap()).unwrap();
        assert_eq!(
            text,
            "task,split,episode,return,steps,policy\n3,test,0,1.5,20,model\n3,test,0,2.0,,optimal\n\
             topic_water,test,1,0.5,4,model_reset\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eval.csv");
        write(&path, &rows).unwrap();
        assert_eq!(read(&path).unwrap(), rows);
    }
}
