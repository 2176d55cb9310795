//! Trusting a learning-history cache only after checking it. A cache directory appears only
//! complete (built in a temporary directory and renamed), but a disk error, a truncated copy
//! or a hand-edited tensor can still damage it afterwards. Every loaded history is checked
//! against the task's spaces (actions, states, rewards, features, splits), and an error names
//! the directory to delete so the next run regenerates it. A complete cache is reused without
//! taking the generation lock, so a read-only `data/` still serves it.

use super::{self as cache, CacheInfo, CacheMeta, Dataset};
use crate::tasks::config::TaskConfig;
use crate::tasks::env::{RewardKind, StateSpace};
use crate::tasks::history::LearningHistory;
use crate::tasks::suite::Split;
use anyhow::{bail, Result};
use std::path::Path;

/// Loads the cache in `dir` (see [`cache::load`]); any failure says the cache is damaged and
/// names the directory to delete.
pub fn load_checked(dir: &Path) -> Result<Dataset> {
    cache::load(dir).map_err(|e| damaged(dir, e))
}

/// The error for a cache that cannot be trusted.
pub fn damaged(dir: &Path, e: anyhow::Error) -> anyhow::Error {
    if format!("{e:#}").contains("delete the directory") {
        return e;
    }
    e.context(format!(
        "the learning-history cache {} is damaged; delete the directory to regenerate it",
        dir.display()
    ))
}

/// A complete cache for `cfg` in `dir`, found without the lock: `None` when there is none
/// (or it needs a closer look, which [`cache::ensure`] gives under the lock).
pub fn complete_without_lock(cfg: &TaskConfig, dir: &Path) -> Option<CacheInfo> {
    let text = std::fs::read_to_string(dir.join(cache::META_FILE)).ok()?;
    let meta: CacheMeta = serde_json::from_str(&text).ok()?;
    (meta.format_version == cache::FORMAT_VERSION && meta.task == *cfg).then(|| CacheInfo {
        dir: dir.to_path_buf(),
        reused: true,
        n_histories: meta.n_histories,
        n_steps: meta.n_steps,
    })
}

/// Checks every history against the spaces recorded in `meta`; the error names the tensor,
/// the history, the step and the allowed range.
pub fn check(dir: &Path, meta: &CacheMeta, histories: &[LearningHistory]) -> Result<()> {
    check_histories(meta, histories).map_err(|e| damaged(dir, e))
}

fn check_histories(meta: &CacheMeta, histories: &[LearningHistory]) -> Result<()> {
    if histories.len() != meta.n_histories {
        bail!(
            "meta.json says {} histories but the tensors hold {}",
            meta.n_histories,
            histories.len()
        );
    }
    let n_actions = meta.env.n_actions();
    let n_states = match &meta.env.state {
        StateSpace::Discrete { n_states, .. } => Some(*n_states),
        StateSpace::Continuous { .. } => None,
    };
    let reward_values = match &meta.env.reward {
        RewardKind::Discrete { values } => Some(values.as_slice()),
        RewardKind::Continuous => None,
    };
    for (i, h) in histories.iter().enumerate() {
        let at = |what: &str, t: usize, v: String, allowed: &str| {
            anyhow::anyhow!(
                "tensor `{what}`: history {i} (task {}), step {t}: {v} is outside {allowed}",
                h.task_index
            )
        };
        let task = h.task_index as usize;
        if task >= meta.tasks.len() {
            bail!(
                "tensor `history_task`: history {i} names task {task} but there are {} tasks",
                meta.tasks.len()
            );
        }
        let expected_split = if meta.test_tasks.contains(&task) {
            Split::Test
        } else {
            Split::Train
        };
        if h.split != expected_split {
            bail!(
                "tensor `history_split`: history {i} of task {task} is marked {} but the task is \
                 in the {} split",
                h.split.as_str(),
                expected_split.as_str()
            );
        }
        let len = h.len();
        let lens = [
            ("states", h.states.len()),
            ("rewards", h.rewards.len()),
            ("logprobs", h.logprobs.len()),
            ("dones", h.dones.len()),
            ("episodes", h.episodes.len()),
        ];
        for (what, n) in lens {
            if n != len {
                bail!("tensor `{what}`: history {i} has {n} entries for {len} actions");
            }
        }
        if h.features.len() != len * meta.feature_dim {
            bail!(
                "tensor `features`: history {i} has {} values for {len} steps of {} features",
                h.features.len(),
                meta.feature_dim
            );
        }
        if let Some(t) = h.actions.iter().position(|&a| a as usize >= n_actions) {
            return Err(at(
                "actions",
                t,
                h.actions[t].to_string(),
                &format!("the task's {n_actions} actions (0..{n_actions})"),
            ));
        }
        if let Some(n) = n_states {
            if let Some(t) = h.states.iter().position(|&s| s as usize >= n) {
                return Err(at(
                    "states",
                    t,
                    h.states[t].to_string(),
                    &format!("the task's {n} states (0..{n})"),
                ));
            }
        }
        if let Some(t) = h.rewards.iter().position(|r| !r.is_finite()) {
            return Err(at("rewards", t, h.rewards[t].to_string(), "finite numbers"));
        }
        if let Some(values) = reward_values {
            let known = |r: f32| {
                values
                    .iter()
                    .any(|&v| (v - r).abs() <= 1e-6 * v.abs().max(1.0))
            };
            if let Some(t) = h.rewards.iter().position(|&r| !known(r)) {
                return Err(at(
                    "rewards",
                    t,
                    h.rewards[t].to_string(),
                    &format!("the task's reward values {values:?}"),
                ));
            }
        }
        if let Some(t) = h.logprobs.iter().position(|&l| l.is_nan() || l > 1e-4) {
            return Err(at(
                "logprobs",
                t,
                h.logprobs[t].to_string(),
                "log-probabilities (<= 0)",
            ));
        }
        if let Some(k) = h.features.iter().position(|x| !x.is_finite()) {
            let d = meta.feature_dim.max(1);
            return Err(at(
                "features",
                k / d,
                h.features[k].to_string(),
                "finite numbers",
            ));
        }
        if let Some(t) = h.episodes.windows(2).position(|w| w[1] < w[0]) {
            return Err(at(
                "episodes",
                t + 1,
                h.episodes[t + 1].to_string(),
                &format!(
                    "a non-decreasing episode count (the step before is in episode {})",
                    h.episodes[t]
                ),
            ));
        }
        if let Some(t) = h.episode_returns.iter().position(|r| !r.is_finite()) {
            bail!(
                "tensor `episode_returns`: history {i}, episode {t}: {} is not finite",
                h.episode_returns[t]
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::config::TaskConfig;

    fn small_bandit() -> TaskConfig {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/task/bandit.yaml");
        let mut cfg = TaskConfig::from_yaml(&std::fs::read_to_string(path).unwrap()).unwrap();
        cfg.split.max_tasks = Some(6);
        cfg.histories.episodes = 20;
        cfg
    }

    #[test]
    fn out_of_range_values_name_tensor_history_and_directory() {
        let root = tempfile::tempdir().unwrap();
        let info = cache::ensure(&small_bandit(), root.path(), false).unwrap();
        let mut data = cache::load(&info.dir).unwrap();
        check(&info.dir, &data.meta, &data.histories).unwrap();
        data.histories[1].actions[3] = u32::MAX;
        let e = format!(
            "{:#}",
            check(&info.dir, &data.meta, &data.histories).unwrap_err()
        );
        assert!(
            e.contains("`actions`") && e.contains("history 1") && e.contains("step 3"),
            "{e}"
        );
        assert!(e.contains(&info.dir.display().to_string()) && e.contains("delete"));
        data.histories[1].actions[3] = 0;
        data.histories[0].rewards[0] = 0.5;
        let e = format!(
            "{:#}",
            check(&info.dir, &data.meta, &data.histories).unwrap_err()
        );
        assert!(e.contains("`rewards`"), "{e}");
    }

    #[test]
    fn a_complete_cache_is_reused_without_the_lock() {
        let root = tempfile::tempdir().unwrap();
        let cfg = small_bandit();
        let first = cache::ensure(&cfg, root.path(), false).unwrap();
        let locks = || {
            std::fs::read_dir(root.path())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".lock"))
                .count()
        };
        for e in std::fs::read_dir(root.path()).unwrap().flatten() {
            if e.file_name().to_string_lossy().ends_with(".lock") {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
        let again = cache::ensure(&cfg, root.path(), false).unwrap();
        assert!(again.reused);
        assert_eq!(again.dir, first.dir);
        assert_eq!(
            locks(),
            0,
            "reusing a complete cache must not create a lock file"
        );
    }
}
