//! RLHF learning histories ready for training and evaluation: the source runs of a task,
//! each marked train or held out, and the directory that caches what is derived from them
//! (the built-in source's logs, trained tokenizers).

use super::source::{generate_runs, SentimentRlhfConfig};
use super::task::TrlxLogsTask;
use super::trlx::{self, ImportOptions};
use super::RlhfRun;
use crate::tasks::Split;
use crate::tokenizer::TextTokenizer;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub struct RlhfDataset {
    pub runs: Vec<RlhfRun>,
    /// Per run.
    pub splits: Vec<Split>,
    /// Where derived files (tokenizers) are cached.
    pub cache_dir: PathBuf,
}

impl RlhfDataset {
    /// Indices of the runs of `split`.
    pub fn indices(&self, split: Split) -> Vec<usize> {
        (0..self.runs.len())
            .filter(|&i| self.splits[i] == split)
            .collect()
    }
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
    // Split, strictness and the evaluation's reward model do not change the runs read.
    let key = hash_of(task, &["split", "reward", "strict"])?;
    let cache_dir = data_root.join(format!("{}-{key}", task.name));
    std::fs::create_dir_all(&cache_dir)
        .with_context(|| format!("creating {}", cache_dir.display()))?;
    let splits = split_runs(&ids(&import.runs), task.split.test_fraction, task.seed);
    Ok(RlhfDataset {
        runs: import.runs,
        splits,
        cache_dir,
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
    // The split chooses among the runs; it does not change them.
    let key = hash_of(cfg, &["split"])?;
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
    if import.runs.len() != cfg.runs {
        bail!(
            "{} holds {} runs, the config asks for {}: delete it to regenerate",
            logs.display(),
            import.runs.len(),
            cfg.runs
        );
    }
    let splits = split_runs(&ids(&import.runs), cfg.split.test_fraction, cfg.seed);
    Ok(RlhfDataset {
        runs: import.runs,
        splits,
        cache_dir,
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
