//! RLHF learning histories ready for training and evaluation: the source runs of a task,
//! each marked train or held out, and the directory that caches what is derived from them
//! (the built-in source's logs, trained tokenizers).

use super::family::RewardFamily;
use super::source::config::RewardConfig;
use super::source::{generate_runs, SentimentRlhfConfig};
use super::task::TrlxLogsTask;
use super::trlx::{self, ImportOptions};
use super::RlhfRun;
use crate::tasks::Split;
use crate::tokenizer::TextTokenizer;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct RlhfDataset {
    pub runs: Vec<RlhfRun>,
    /// Per run.
    pub splits: Vec<Split>,
    /// Where derived files (tokenizers) are cached.
    pub cache_dir: PathBuf,
    /// Per run: the name of the reward function it optimised (`None` when its log does not
    /// name one).
    pub reward_names: Vec<Option<String>>,
    /// The reward models evaluation can score with, by name; `any` scores every run when
    /// the task has one reward model for all of them.
    pub rewards: BTreeMap<String, RewardConfig>,
    pub any_reward: Option<RewardConfig>,
    /// Rollouts per epoch that training contexts show (`None`: all).
    pub keep_per_epoch: Option<usize>,
}

impl RlhfDataset {
    /// Indices of the runs of `split`.
    pub fn indices(&self, split: Split) -> Vec<usize> {
        (0..self.runs.len())
            .filter(|&i| self.splits[i] == split)
            .collect()
    }

    /// The learning histories as training shows them, with their splits. Without
    /// `keep_per_epoch`, the runs. With it, each run gives `rollouts per epoch / keep`
    /// histories: the i-th takes rollouts `[i·keep, (i+1)·keep)` of every epoch. PPO draws an
    /// epoch's rollouts alike, so each is a faithful, shorter record of the same learning,
    /// and a context of a few thousand tokens spans the whole run (AD's subsampling).
    pub fn histories(&self) -> (Vec<RlhfRun>, Vec<Split>) {
        let Some(keep) = self.keep_per_epoch else {
            return (self.runs.clone(), self.splits.clone());
        };
        let mut runs = Vec::new();
        let mut splits = Vec::new();
        for (run, &split) in self.runs.iter().zip(&self.splits) {
            let per_epoch = run
                .epochs
                .iter()
                .map(|e| e.rollouts.len())
                .min()
                .unwrap_or(0);
            let slices = (per_epoch / keep.max(1)).max(1);
            for i in 0..slices {
                let mut r = run.clone();
                r.id = format!("{}/{i}", run.id);
                for e in &mut r.epochs {
                    let lo = (i * keep).min(e.rollouts.len());
                    let hi = ((i + 1) * keep).min(e.rollouts.len());
                    e.rollouts = e.rollouts[lo..hi].to_vec();
                }
                runs.push(r);
                splits.push(split);
            }
        }
        (runs, splits)
    }

    /// The reward model of the reward named `name` (or the task's one reward model).
    pub fn reward(&self, name: Option<&str>) -> Option<&RewardConfig> {
        name.and_then(|n| self.rewards.get(n))
            .or(self.any_reward.as_ref())
    }

    /// The reward functions of `split`, in name order, with their runs.
    pub fn tasks(&self, split: Split) -> Vec<(String, Vec<usize>)> {
        let mut out: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for i in self.indices(split) {
            let name = self.reward_names[i]
                .clone()
                .unwrap_or_else(|| "reward".to_string());
            out.entry(name).or_default().push(i);
        }
        out.into_iter().collect()
    }
}

/// Reward names per run from the runs' logged configs, and the split: by reward when the
/// task is a family (a run naming no reward of it is an error), else `split_runs`.
fn names_and_splits(
    runs: &[RlhfRun],
    family: Option<&RewardFamily>,
    key: &str,
    test_fraction: f64,
    seed: u64,
) -> Result<(Vec<Option<String>>, Vec<Split>)> {
    let names: Vec<Option<String>> = runs
        .iter()
        .map(|r| super::family::reward_name(&r.config, key))
        .collect();
    let splits = match family {
        None => split_runs(&ids(runs), test_fraction, seed),
        Some(f) => runs
            .iter()
            .zip(&names)
            .map(|(run, name)| match name {
                Some(n) if f.rewards.contains_key(n) => Ok(f.split_of(n)),
                _ => bail!(
                    "run `{}` names reward {:?} under `{key}` in its config, which is not one of \
                     task.family.rewards ({})",
                    run.id,
                    name,
                    f.names().join(", ")
                ),
            })
            .collect::<Result<_>>()?,
    };
    Ok((names, splits))
}

/// A seeded split of the runs `ids`: `round(n · fraction)` held out, at least one if the
/// fraction is positive and there are two runs or more, never all of them. Runs are ranked
/// by a seeded hash of their id, so the split depends on which runs there are, not on the
/// order they were listed in.
pub fn split_runs(ids: &[&str], test_fraction: f64, seed: u64) -> Vec<Split> {
    let n = ids.len();
    let mut n_test = (n as f64 * test_fraction).round() as usize;
    if test_fraction > 0.0 && n >= 2 {
        n_test = n_test.max(1);
    }
    let n_test = n_test.min(n.saturating_sub(1));
    let rank = |id: &str| Sha256::digest(format!("{seed}/run-split/{id}").as_bytes());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (rank(ids[i]), i));
    let mut splits = vec![Split::Train; n];
    for &i in &order[..n_test] {
        splits[i] = Split::Test;
    }
    splits
}

/// The cache key of a task: its config without the keys that do not change the data.
fn hash_of(value: &impl serde::Serialize, ignore: &[&str]) -> Result<String> {
    let mut json = serde_json::to_value(value)?;
    if let Some(map) = json.as_object_mut() {
        for key in ignore {
            map.remove(*key);
        }
    }
    Ok(hex::encode(Sha256::digest(json.to_string().as_bytes()))[..12].to_string())
}

fn ids(runs: &[RlhfRun]) -> Vec<&str> {
    runs.iter().map(|r| r.id.as_str()).collect()
}

/// Reads the logs of a `trlx_logs` task (bad runs skipped unless `task.strict`).
pub fn load_trlx(task: &TrlxLogsTask, data_root: &Path) -> Result<RlhfDataset> {
    task.validate()?;
    let path = task.path.as_ref().expect("validated");
    let tokenizer = task
        .tokenizer
        .as_ref()
        .map(|p| TextTokenizer::from_file(p))
        .transpose()?;
    let opts = ImportOptions {
        tokenizer,
        strict: task.strict,
        pad_id: task.pad_id,
    };
    let import = trlx::read_logs(path, &opts)
        .with_context(|| format!("reading TRLx logs from task.path = {}", path.display()))?;
    for s in &import.skipped {
        tracing::warn!("skipped run {}: {}", s.dir.display(), s.error);
    }
    // Split, strictness, subsampling and the evaluation's reward models do not change the
    // runs read.
    let key = hash_of(
        task,
        &[
            "split",
            "reward",
            "strict",
            "family",
            "reward_key",
            "keep_per_epoch",
        ],
    )?;
    let cache_dir = data_root.join(format!("{}-{key}", task.name));
    std::fs::create_dir_all(&cache_dir)
        .with_context(|| format!("creating {}", cache_dir.display()))?;
    let (reward_names, splits) = names_and_splits(
        &import.runs,
        task.family.as_ref(),
        &task.reward_key,
        task.split.test_fraction,
        task.seed,
    )?;
    Ok(RlhfDataset {
        runs: import.runs,
        splits,
        cache_dir,
        reward_names,
        rewards: task
            .family
            .as_ref()
            .map(|f| f.rewards.clone())
            .unwrap_or_default(),
        any_reward: task.reward.clone(),
        keep_per_epoch: task.keep_per_epoch,
    })
}

/// The built-in source's runs: generated once per config (PPO in parallel), logged in the
/// TRLx layout under `<data_root>/<name>-<hash>/trlx/`, and read back through the same
/// reader as real logs. Concurrent callers wait on a lock; the directory appears complete.
pub fn load_sentiment(
    cfg: &SentimentRlhfConfig,
    data_root: &Path,
    progress: bool,
) -> Result<RlhfDataset> {
    // The split and the subsampling choose among the runs; they do not change them.
    let key = hash_of(cfg, &["split", "keep_per_epoch"])?;
    let cache_dir = data_root.join(format!("{}-{key}", cfg.name));
    let logs = cache_dir.join("trlx");
    // The logs appear only whole (renamed into place), so complete ones are read without the
    // lock: a read-only data/ still serves them.
    if !logs.is_dir() {
        let started = std::time::Instant::now();
        let generated = crate::fsutil::build_once(
            data_root,
            &data_root.join(format!("{}-{key}.lock", cfg.name)),
            &format!(".tmp-{}-", cfg.name),
            || Ok(logs.is_dir().then_some(None)),
            |tmp| {
                let runs = generate_runs(cfg, cfg.seed, progress)?;
                for run in &runs {
                    trlx::write_run(&tmp.join("trlx"), run)?;
                }
                let task = serde_json::to_string_pretty(cfg)?;
                crate::fsutil::write_atomic(&tmp.join("task.json"), task.as_bytes())?;
                Ok(Some(runs.len()))
            },
            |built| {
                if cache_dir.exists() {
                    // A directory without logs (e.g. only tokenizer caches): keep them.
                    std::fs::rename(built.join("trlx"), &logs)?;
                    std::fs::remove_dir_all(&built).ok();
                } else {
                    std::fs::rename(&built, &cache_dir)?;
                }
                Ok(())
            },
        )?;
        if let Some(n) = generated {
            tracing::info!(
                "generated {n} RLHF source runs in {:.1}s: {}",
                started.elapsed().as_secs_f64(),
                logs.display()
            );
        }
    }
    let import = trlx::read_logs(
        &logs,
        &ImportOptions {
            strict: true,
            ..Default::default()
        },
    )?;
    if import.runs.len() != cfg.n_runs() {
        bail!(
            "{} holds {} runs, the config asks for {}: delete it to regenerate",
            logs.display(),
            import.runs.len(),
            cfg.n_runs()
        );
    }
    let (reward_names, splits) = names_and_splits(
        &import.runs,
        cfg.family.as_ref(),
        "reward",
        cfg.split.test_fraction,
        cfg.seed,
    )?;
    Ok(RlhfDataset {
        runs: import.runs,
        splits,
        cache_dir,
        reward_names,
        rewards: cfg.rewards().into_iter().collect(),
        any_reward: None,
        keep_per_epoch: cfg.keep_per_epoch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_sources_runs_round_trip_through_the_trlx_layout() {
        let mut cfg = crate::rlhf::source::tests::small_config();
        cfg.runs = 2;
        cfg.policy.pretrain_steps = 10;
        cfg.ppo.epochs = 2;
        cfg.ppo.num_rollouts = 4;
        cfg.ppo.chunk_size = 4;
        cfg.ppo.batch_size = 4;
        let root = tempfile::tempdir().unwrap();
        let data = load_sentiment(&cfg, root.path(), false).unwrap();
        // What the reader gives back is bit for bit what PPO produced (in run-id order).
        let mut produced = generate_runs(&cfg, cfg.seed, false).unwrap();
        produced.sort_by(|a, b| a.id.cmp(&b.id));
        assert!(
            data.runs == produced,
            "the runs changed on their way through the files"
        );
        assert_eq!(data.splits.len(), 2);
        assert!(data.cache_dir.join("trlx").is_dir());
        // A second load reuses the logs.
        let again = load_sentiment(&cfg, root.path(), false).unwrap();
        assert_eq!(again.runs, data.runs);
    }

    fn run(id: &str, reward: &str, epochs: usize, per_epoch: usize) -> RlhfRun {
        let rollout = |e: usize, i: usize| crate::rlhf::Rollout {
            query_ids: vec![],
            response_ids: vec![],
            query_text: format!("q{e}.{i}"),
            response_text: format!("c{e}.{i}"),
            logprobs: None,
            values: None,
            rewards: None,
            score: Some(e as f32),
        };
        RlhfRun {
            id: id.into(),
            config: serde_json::json!({ "reward_name": reward }),
            epochs: (0..epochs)
                .map(|e| crate::rlhf::RlhfEpoch {
                    timestamp: e as f64,
                    rollouts: (0..per_epoch).map(|i| rollout(e, i)).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_family_splits_runs_by_reward_and_subsamples_each_epoch() {
        let family: RewardFamily = serde_yaml_ng::from_str(
            "rewards: {up: {kind: lexicon, target: positive}, lake: {kind: words, words: [lake]}}\n\
             held_out: [lake]\n",
        )
        .unwrap();
        let runs = vec![
            run("a", "up", 3, 4),
            run("b", "lake", 3, 4),
            run("c", "up", 3, 4),
        ];
        let (names, splits) =
            names_and_splits(&runs, Some(&family), "reward_name", 0.5, 0).unwrap();
        assert_eq!(names[1].as_deref(), Some("lake"));
        assert_eq!(splits, [Split::Train, Split::Test, Split::Train]);
        let err = names_and_splits(&runs, Some(&family), "reward", 0.5, 0).unwrap_err();
        assert!(
            err.to_string().contains("`reward`") && err.to_string().contains("run `a`"),
            "{err}"
        );
        let data = RlhfDataset {
            runs,
            splits,
            cache_dir: PathBuf::new(),
            reward_names: names,
            rewards: family.rewards.clone(),
            any_reward: None,
            keep_per_epoch: Some(2),
        };
        assert_eq!(data.tasks(Split::Train), [("up".to_string(), vec![0, 2])]);
        let (histories, hsplits) = data.histories();
        // 4 rollouts per epoch, 2 kept: two histories per run, disjoint, every epoch in order.
        assert_eq!(histories.len(), 6);
        assert_eq!(hsplits[2..4], [Split::Test, Split::Test]);
        let texts = |h: &RlhfRun| -> Vec<String> {
            h.rollouts().map(|(_, r)| r.query_text.clone()).collect()
        };
        assert_eq!(
            texts(&histories[0]),
            ["q0.0", "q0.1", "q1.0", "q1.1", "q2.0", "q2.1"]
        );
        assert_eq!(
            texts(&histories[1]),
            ["q0.2", "q0.3", "q1.2", "q1.3", "q2.2", "q2.3"]
        );
        assert!(data.reward(Some("lake")).is_some() && data.reward(Some("sea")).is_none());
    }

    #[test]
    fn splits_hold_out_at_least_one_run_but_never_all() {
        let names: Vec<String> = (0..10).map(|i| format!("run{i}")).collect();
        let ids = |n: usize| names[..n].iter().map(String::as_str).collect::<Vec<_>>();
        let count = |s: &[Split]| s.iter().filter(|&&x| x == Split::Test).count();
        assert_eq!(count(&split_runs(&ids(4), 0.25, 0)), 1);
        assert_eq!(count(&split_runs(&ids(2), 0.1, 0)), 1);
        assert_eq!(count(&split_runs(&ids(1), 0.5, 0)), 0);
        assert_eq!(count(&split_runs(&ids(8), 0.0, 0)), 0);
        assert_eq!(count(&split_runs(&ids(10), 0.5, 0)), 5);
        assert_eq!(split_runs(&ids(10), 0.3, 7), split_runs(&ids(10), 0.3, 7));
        // The split follows the ids, not the order they come in.
        let forward = split_runs(&ids(10), 0.3, 7);
        let mut reversed = ids(10);
        reversed.reverse();
        let mut back = split_runs(&reversed, 0.3, 7);
        back.reverse();
        assert_eq!(forward, back);
    }
}
