//! Pictures of one run, drawn into its `plots/` after evaluation: what the model did in
//! context and what it was asked to distil.
//!
//! * [`visitation`]: grid tasks (Dark Room, Key-to-Door, FrozenLake): a heat map of the
//!   states the model visited in its early traced episodes beside its late ones, on held-out
//!   tasks, goal (key, door, holes) and fixed start marked;
//! * [`lander`]: the lunar lander: an early and a late episode drawn over the task's terrain
//!   and pad, with the path, engine firings, the lander's outline and how the episode ended;
//! * [`source_curves`]: the source algorithm's return per episode over the cached learning
//!   histories (mean ± s.e.), training and held-out tasks apart;
//! * [`render`]: SVG and PNG from one drawing; [`font`]: the embedded font (the report's plots
//!   use it too).
//!
//! The inputs are in memory (the suite, the histories, the evaluation's traces); the pipeline
//! hands them over. Every file is written atomically.

pub mod font;
pub mod lander;
pub mod render;
pub mod source_curves;
pub mod visitation;

use crate::eval::trace::Trace;
use crate::tasks::{LearningHistory, TaskSuite};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// Held-out tasks drawn per picture kind (the first ones traced).
pub const MAX_TASKS: usize = 2;

/// Draws every picture the run's data allows into `dir` (created if missing); returns the
/// files written.
pub fn draw_run(
    suite: &TaskSuite,
    histories: &[LearningHistory],
    traces: &[Trace],
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    if let Some(chart) = source_curves::chart(suite, histories) {
        written.extend(render::write(dir, "source_curves", &chart)?);
    }
    for map in visitation::maps(suite, traces, MAX_TASKS) {
        written.extend(render::write(dir, &map.stem(), &map)?);
    }
    for pic in lander::pictures(suite, traces, MAX_TASKS) {
        written.extend(render::write(dir, &pic.stem(), &pic)?);
    }
    Ok(written)
}

/// The traces of held-out tasks, grouped by task (ascending), each sorted by episode, split
/// into early (the first half) and late (the rest); at most `max_tasks` tasks.
pub(crate) fn early_late(traces: &[Trace], max_tasks: usize) -> Vec<(Vec<&Trace>, Vec<&Trace>)> {
    let mut tasks: Vec<usize> = traces
        .iter()
        .filter(|t| t.split == crate::tasks::Split::Test)
        .map(|t| t.task)
        .collect();
    tasks.sort_unstable();
    tasks.dedup();
    tasks
        .into_iter()
        .take(max_tasks)
        .map(|task| {
            let mut mine: Vec<&Trace> = traces.iter().filter(|t| t.task == task).collect();
            mine.sort_by_key(|t| t.episode);
            let late = mine.split_off(mine.len().div_ceil(2));
            (mine, late)
        })
        .collect()
}

/// "episodes 1–3" (1-based, as people count), or "episode 4".
pub(crate) fn episode_span(traces: &[&Trace]) -> String {
    match (traces.first(), traces.last()) {
        (Some(a), Some(b)) if a.episode != b.episode => {
            format!("episodes {}–{}", a.episode + 1, b.episode + 1)
        }
        (Some(a), _) => format!("episode {}", a.episode + 1),
        _ => "no episodes".into(),
    }
}

#[cfg(test)]
mod tests;
