//! Episode traces: the steps of a few selected episodes of the model's in-context run (the
//! first and the last `eval.trace_episodes` on each evaluated task), for pictures of what the
//! model did. `traces.jsonl` holds one [`Trace`] per line, with the task's parameters, so the
//! file is self-contained.

use crate::tasks::{Split, TaskParams};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One recorded episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Index of the task in the suite.
    pub task: usize,
    pub split: Split,
    /// What distinguishes the task (goal, key and door, lander physics, …).
    pub params: TaskParams,
    /// 0-based index of the episode in the model's run on the task.
    pub episode: usize,
    #[serde(rename = "return")]
    pub ret: f32,
    /// The episode ended in a terminal state (not by the time limit).
    pub terminated: bool,
    /// Discrete state id each action was taken in (empty for continuous states).
    pub states: Vec<u32>,
    /// Feature vector each action was taken in (empty for discrete states).
    pub features: Vec<Vec<f32>>,
    pub actions: Vec<u32>,
    pub rewards: Vec<f32>,
    /// The state the last step led to (discrete id; 0 for continuous states).
    pub final_state: u32,
    /// The features the last step led to (empty for discrete states).
    pub final_features: Vec<f32>,
}

impl Trace {
    pub fn steps(&self) -> usize {
        self.actions.len()
    }
}

/// Which episodes of `episodes` are traced: the first `n` and the last `n` (none for `n` = 0).
pub fn is_traced(episode: usize, episodes: usize, n: usize) -> bool {
    n > 0 && (episode < n || episode + n >= episodes)
}

/// The traces as JSON lines.
pub fn to_jsonl(traces: &[Trace]) -> Result<String> {
    let mut out = String::new();
    for t in traces {
        out.push_str(&serde_json::to_string(t).context("serialising an episode trace")?);
        out.push('\n');
    }
    Ok(out)
}

/// Writes `traces.jsonl` atomically.
pub fn write(path: &Path, traces: &[Trace]) -> Result<()> {
    crate::fsutil::write_atomic(path, to_jsonl(traces)?.as_bytes())
}

/// Reads a `traces.jsonl`.
pub fn read(path: &Path) -> Result<Vec<Trace>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not an episode trace", path.display(), i + 1))
        })
        .collect()
}
