//! `eval.csv`: one row per (task, split, episode, policy) with the episode's return and length,
//! columns exactly `task,split,episode,return,steps,policy`. `policy` is `model`, `source`,
//! `random` or `optimal`; `steps` is empty for `optimal` (a reference value, not an episode
//! that was played). Written atomically, in one piece.

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
    Source,
    Random,
    Optimal,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 4] = [
        PolicyKind::Model,
        PolicyKind::Source,
        PolicyKind::Random,
        PolicyKind::Optimal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Model => "model",
            PolicyKind::Source => "source",
            PolicyKind::Random => "random",
            PolicyKind::Optimal => "optimal",
        }
    }
}

/// One row of `eval.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    pub task: usize,
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
                task: e.task,
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
                task: 3,
                split: Split::Test,
                episode: 0,
                ret: 1.5,
                steps: Some(20),
                policy: PolicyKind::Model,
            },
            EvalRow {
                task: 3,
                split: Split::Test,
                episode: 0,
                ret: 2.0,
                steps: None,
                policy: PolicyKind::Optimal,
            },
        ];
        let text = String::from_utf8(to_csv(&rows).unwrap()).unwrap();
        assert_eq!(
            text,
            "task,split,episode,return,steps,policy\n3,test,0,1.5,20,model\n3,test,0,2.0,,optimal\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eval.csv");
        write(&path, &rows).unwrap();
        assert_eq!(read(&path).unwrap(), rows);
    }
}
