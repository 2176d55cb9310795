//! Learning-history generation: every task × `histories.per_task` source runs, in parallel
//! over tasks with rayon. Each (task, history) pair draws from its own derived seeds and the
//! results are collected in task order, so the output does not depend on thread scheduling.

use super::history::LearningHistory;
use super::source::{run_source_with, RunLength};
use super::suite::TaskSuite;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use std::io::IsTerminal;

/// A progress bar over tasks, drawn only when asked and stderr is a terminal.
fn progress_bar(n: usize, progress: bool, label: &str) -> ProgressBar {
    let target = if progress && std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(n as u64), target);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} tasks ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_string());
    bar
}

/// Generates all histories of the suite, ordered by (task, history index).
pub fn generate(suite: &TaskSuite, progress: bool) -> Result<Vec<LearningHistory>> {
    let cfg = suite.config();
    let h = &cfg.histories;
    let length = RunLength {
        episodes: h.episodes,
        keep_every: h.keep_every,
        max_steps: None,
    };
    let bar = progress_bar(suite.len(), progress, &format!("generating {}", cfg.name));
    let per_task: Vec<Vec<LearningHistory>> = (0..suite.len())
        .into_par_iter()
        .map(|task| {
            let runs = (0..h.per_task)
                .map(|history| run_source_with(cfg, suite, task, history, length))
                .collect::<Result<Vec<_>>>();
            bar.inc(1);
            runs
        })
        .collect::<Result<_>>()?;
    bar.finish_and_clear();
    Ok(per_task.into_iter().flatten().collect())
}
