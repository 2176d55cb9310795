//! Test fixtures: the shipped format files, small generated datasets and hand-built histories.

use super::config::{FormatConfig, LanguageFormatConfig};
use crate::tasks::generate::generate;
use crate::tasks::{EnvSpec, LearningHistory, Split, TaskConfig, TaskSuite};
use std::path::{Path, PathBuf};

pub fn conf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conf")
}

/// A shipped format (`conf/format/<name>.yaml`).
pub fn format(name: &str) -> FormatConfig {
    let path = conf_dir().join(format!("format/{name}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn language(name: &str) -> LanguageFormatConfig {
    match format(name) {
        FormatConfig::Language(c) => c,
        _ => panic!("{name} is not a language format"),
    }
}

/// Every shipped language format.
pub fn language_formats() -> Vec<LanguageFormatConfig> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(conf_dir().join("format")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        if let Ok(FormatConfig::Language(c)) = serde_yaml_ng::from_str(&text) {
            out.push(c);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(out.len() >= 3, "expected the shipped language formats");
    out
}

/// A small dataset of a shipped task: `tasks` tasks (at least one held out), `episodes` each.
pub fn dataset(task: &str, tasks: usize, episodes: usize) -> (EnvSpec, Vec<LearningHistory>) {
    let text = std::fs::read_to_string(conf_dir().join(format!("task/{task}.yaml"))).unwrap();
    let mut cfg = TaskConfig::from_yaml(&text).unwrap();
    cfg.split.max_tasks = Some(tasks);
    cfg.split.test_fraction = 0.34;
    cfg.histories.per_task = 1;
    cfg.histories.episodes = episodes;
    cfg.histories.keep_every = 1;
    let suite = TaskSuite::from_config(&cfg).unwrap();
    let histories = generate(&suite, false).unwrap();
    assert!(histories.iter().any(|h| h.split == Split::Test));
    (suite.spec().clone(), histories)
}

/// A hand-built darkroom history: `len` steps, episodes of `episode_len` steps, action
/// `t % 5`, state `t % 9`, reward 1 on every third step; `tag` goes into the logprobs so a
/// test can tell histories apart.
pub fn synthetic(len: usize, episode_len: usize, split: Split, tag: f32) -> LearningHistory {
    let mut h = LearningHistory::new(0);
    h.split = split;
    for t in 0..len {
        h.push_step(
            (t % 9) as u32,
            &[],
            (t % 5) as u32,
            if t % 3 == 2 { 1.0 } else { 0.0 },
            tag + t as f32,
            (t + 1) % episode_len == 0 || t + 1 == len,
            (t / episode_len) as u32,
        );
    }
    h
}

pub fn darkroom_spec() -> EnvSpec {
    crate::tasks::env::grid::DarkRoom::spec(9, 20)
}
