//! The on-disk cache of learning histories: `<data_root>/<task.name>-<12 hex of sha256 of the
//! task config's JSON>/` holding `histories.safetensors` (columns concatenated over histories,
//! plus offsets) and `meta.json`. Integer columns use the narrowest of u8/u16/u32 that holds
//! their values and discrete rewards are a u8 index into the environment's reward values, so
//! a Dark Room step takes about 9 bytes on disk instead of 21. A cache directory only ever
//! appears complete: it is built in
//! a temporary directory and renamed into place, under an exclusive file lock
//! (`<dir>.lock`) so concurrent generators of the same config wait for one another instead of
//! building twice or interleaving. Nothing time- or host-dependent is written, so the same
//! config produces the same bytes.

pub mod check;

use super::config::TaskConfig;
use super::env::{EnvSpec, RewardKind};
use super::generate::generate;
use super::history::LearningHistory;
use super::suite::{Split, TaskParams, TaskSuite};
use crate::fsutil;
use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Bumped when the file layout changes (old caches are then rejected, not misread).
pub const FORMAT_VERSION: u32 = 2;
pub const HISTORIES_FILE: &str = "histories.safetensors";
pub const META_FILE: &str = "meta.json";

/// `meta.json`: what was generated and from which config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheMeta {
    pub format_version: u32,
    pub adlab_version: String,
    pub task: TaskConfig,
    pub env: EnvSpec,
    /// Parameters of every task, by task index.
    pub tasks: Vec<TaskParams>,
    pub optimal_returns: Vec<f32>,
    pub train_tasks: Vec<usize>,
    pub test_tasks: Vec<usize>,
    pub histories_per_task: usize,
    pub episodes_per_history: usize,
    pub n_histories: usize,
    /// Total recorded steps over all histories.
    pub n_steps: u64,
    pub feature_dim: usize,
}

/// Where the cache is and whether `ensure` built it or found it.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheInfo {
    pub dir: PathBuf,
    pub reused: bool,
    pub n_histories: usize,
    pub n_steps: u64,
}

/// A loaded cache.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub meta: CacheMeta,
    /// Ordered by (task, history index).
    pub histories: Vec<LearningHistory>,
}

impl Dataset {
    /// The task suite the data was generated from (same task list, split, environments).
    pub fn suite(&self) -> Result<TaskSuite> {
        TaskSuite::from_config(&self.meta.task)
    }

    pub fn histories_in(&self, split: Split) -> impl Iterator<Item = &LearningHistory> {
        self.histories.iter().filter(move |h| h.split == split)
    }
}

/// First 12 hex digits of the sha256 of the config's JSON (fields in declaration order).
pub fn config_hash(cfg: &TaskConfig) -> Result<String> {
    let json = serde_json::to_string(cfg).context("serialising the task config")?;
    let digest = Sha256::digest(json.as_bytes());
    Ok(hex::encode(digest)[..12].to_string())
}

/// `<data_root>/<task.name>-<hash>`.
pub fn cache_dir(cfg: &TaskConfig, data_root: &Path) -> Result<PathBuf> {
    Ok(data_root.join(format!("{}-{}", cfg.name, config_hash(cfg)?)))
}

/// Returns the cache for `cfg`, generating it first if it does not exist yet.
pub fn ensure(cfg: &TaskConfig, data_root: &Path, progress: bool) -> Result<CacheInfo> {
    let suite = TaskSuite::from_config(cfg)?;
    let dir = cache_dir(cfg, data_root)?;
    if let Some(info) = check::complete_without_lock(cfg, &dir) {
        return Ok(info);
    }
    // Beside the cache dir, not inside it: the dir must appear only when complete.
    let lock_path = data_root.join(format!("{}-{}.lock", cfg.name, config_hash(cfg)?));
    let info = |meta: &CacheMeta, reused: bool| CacheInfo {
        dir: dir.clone(),
        reused,
        n_histories: meta.n_histories,
        n_steps: meta.n_steps,
    };
    fsutil::build_once(
        data_root,
        &lock_path,
        &format!(".tmp-{}-", cfg.name),
        || {
            if !dir.exists() {
                return Ok(None);
            }
            let meta = read_meta(&dir)?;
            if meta.task != *cfg {
                bail!(
                    "cache {} was generated from a different task config (hash collision or \
                     edited meta.json); delete the directory to regenerate",
                    dir.display()
                );
            }
            Ok(Some(info(&meta, true)))
        },
        |tmp| {
            let histories = generate(&suite, progress)?;
            Ok(info(&write(tmp, &suite, &histories)?, false))
        },
        |built| {
            std::fs::rename(&built, &dir)
                .with_context(|| format!("renaming {} to {}", built.display(), dir.display()))
        },
    )
}

/// The narrowest of u8, u16 and u32 that holds every value of a `u32` column, and its bytes.
fn compact<'a>(
    name: &'a str,
    histories: &[LearningHistory],
    f: fn(&LearningHistory) -> &[u32],
    n_steps: usize,
) -> (&'a str, Dtype, Vec<usize>, Vec<u8>) {
    let values = || histories.iter().flat_map(|h| f(h).iter().copied());
    let max = values().max().unwrap_or(0);
    let (dtype, bytes) = if max <= u32::from(u8::MAX) {
        (Dtype::U8, values().map(|v| v as u8).collect())
    } else if max <= u32::from(u16::MAX) {
        (
            Dtype::U16,
            bytes_of(values().map(|v| v as u16), u16::to_le_bytes),
        )
    } else {
        (Dtype::U32, bytes_of(values(), u32::to_le_bytes))
    };
    (name, dtype, vec![n_steps], bytes)
}

/// Index of a discrete reward among the environment's values.
fn reward_index(values: &[f32], r: f32) -> Result<u8> {
    values
        .iter()
        .position(|&v| v == r)
        .and_then(|i| u8::try_from(i).ok())
        .with_context(|| format!("reward {r} is not one of the environment's rewards {values:?}"))
}

fn bytes_of<T: Copy, const N: usize>(xs: impl Iterator<Item = T>, f: fn(T) -> [u8; N]) -> Vec<u8> {
    xs.flat_map(f).collect()
}

/// Writes `histories.safetensors` and `meta.json` for `histories` into `dir`.
pub fn write(dir: &Path, suite: &TaskSuite, histories: &[LearningHistory]) -> Result<CacheMeta> {
    let cfg = suite.config();
    let feature_dim = suite.spec().state.feature_dim();
    let n_steps: usize = histories.iter().map(|h| h.len()).sum();
    let catf = |f: fn(&LearningHistory) -> &[f32]| -> Vec<u8> {
        bytes_of(
            histories.iter().flat_map(|h| f(h).iter().copied()),
            f32::to_le_bytes,
        )
    };
    let offsets = |len: fn(&LearningHistory) -> usize| -> Vec<u8> {
        let mut acc = 0i64;
        let mut out = vec![0i64];
        for h in histories {
            acc += len(h) as i64;
            out.push(acc);
        }
        bytes_of(out.into_iter(), i64::to_le_bytes)
    };
    let n = histories.len();
    let spec = suite.spec();
    let rewards = match &spec.reward {
        RewardKind::Discrete { values } => (
            Dtype::U8,
            histories
                .iter()
                .flat_map(|h| h.rewards.iter())
                .map(|&r| reward_index(values, r))
                .collect::<Result<Vec<u8>>>()?,
        ),
        RewardKind::Continuous => (Dtype::F32, catf(|h| &h.rewards)),
    };
    let columns: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        compact("states", histories, |h| &h.states, n_steps),
        compact("actions", histories, |h| &h.actions, n_steps),
        compact("episodes", histories, |h| &h.episodes, n_steps),
        ("rewards", rewards.0, vec![n_steps], rewards.1),
        ("logprobs", Dtype::F32, vec![n_steps], catf(|h| &h.logprobs)),
        (
            "features",
            Dtype::F32,
            vec![n_steps, feature_dim],
            catf(|h| &h.features),
        ),
        (
            "dones",
            Dtype::U8,
            vec![n_steps],
            histories
                .iter()
                .flat_map(|h| h.dones.iter().map(|&d| u8::from(d)))
                .collect(),
        ),
        ("offsets", Dtype::I64, vec![n + 1], offsets(|h| h.len())),
        (
            "episode_returns",
            Dtype::F32,
            vec![histories.iter().map(|h| h.episode_returns.len()).sum()],
            catf(|h| &h.episode_returns),
        ),
        (
            "return_offsets",
            Dtype::I64,
            vec![n + 1],
            offsets(|h| h.episode_returns.len()),
        ),
        (
            "history_task",
            Dtype::U32,
            vec![n],
            bytes_of(histories.iter().map(|h| h.task_index), u32::to_le_bytes),
        ),
        (
            "history_index",
            Dtype::U32,
            vec![n],
            bytes_of(histories.iter().map(|h| h.history_index), u32::to_le_bytes),
        ),
        (
            "history_split",
            Dtype::U8,
            vec![n],
            histories
                .iter()
                .map(|h| u8::from(h.split == Split::Test))
                .collect(),
        ),
    ];
    let views = columns
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|v| (*name, v))
                .with_context(|| format!("building tensor `{name}`"))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, None).context("serialising histories")?;
    fsutil::write_atomic(&dir.join(HISTORIES_FILE), &bytes)?;

    let meta = CacheMeta {
        format_version: FORMAT_VERSION,
        adlab_version: env!("CARGO_PKG_VERSION").to_string(),
        task: cfg.clone(),
        env: suite.spec().clone(),
        tasks: suite.tasks().to_vec(),
        optimal_returns: suite.optimal_returns().to_vec(),
        train_tasks: suite.train_tasks(),
        test_tasks: suite.test_tasks(),
        histories_per_task: cfg.histories.per_task,
        episodes_per_history: cfg.histories.episodes,
        n_histories: n,
        n_steps: n_steps as u64,
        feature_dim,
    };
    fsutil::write_json_atomic(&dir.join(META_FILE), &meta)?;
    Ok(meta)
}

fn read_meta(dir: &Path) -> Result<CacheMeta> {
    let path = dir.join(META_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let meta: CacheMeta =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if meta.format_version != FORMAT_VERSION {
        bail!(
            "{}: cache format version {} but this adlab reads version {FORMAT_VERSION}; delete the \
             directory to regenerate",
            path.display(),
            meta.format_version
        );
    }
    Ok(meta)
}

/// Reads a typed column, checking dtype and element count.
fn column<T, const N: usize>(
    st: &SafeTensors,
    name: &str,
    dtype: Dtype,
    len: usize,
    f: fn([u8; N]) -> T,
) -> Result<Vec<T>> {
    let view = st
        .tensor(name)
        .with_context(|| format!("missing tensor `{name}`"))?;
    anyhow::ensure!(
        view.dtype() == dtype,
        "tensor `{name}` has dtype {:?}, expected {dtype:?}",
        view.dtype()
    );
    let count: usize = view.shape().iter().product();
    anyhow::ensure!(
        count == len,
        "tensor `{name}` has {count} elements, expected {len}"
    );
    Ok(view
        .data()
        .chunks_exact(N)
        .map(|c| f(c.try_into().unwrap_or([0; N])))
        .collect())
}

/// An unsigned integer column stored as u8, u16 or u32 (whichever the writer chose).
fn uint_column(st: &SafeTensors, name: &str, len: usize) -> Result<Vec<u32>> {
    let dtype = st
        .tensor(name)
        .with_context(|| format!("missing tensor `{name}`"))?
        .dtype();
    match dtype {
        Dtype::U8 => column(st, name, dtype, len, |[b]: [u8; 1]| u32::from(b)),
        Dtype::U16 => column(st, name, dtype, len, |b: [u8; 2]| {
            u32::from(u16::from_le_bytes(b))
        }),
        _ => column(st, name, Dtype::U32, len, u32::from_le_bytes),
    }
}

fn offsets(st: &SafeTensors, name: &str, n: usize, total: usize) -> Result<Vec<usize>> {
    let raw = column(st, name, Dtype::I64, n + 1, i64::from_le_bytes)?;
    let ok = raw.first() == Some(&0)
        && raw.windows(2).all(|w| w[0] <= w[1])
        && raw.last().copied() == Some(total as i64);
    anyhow::ensure!(
        ok,
        "tensor `{name}` is not a valid offset table over {total} entries"
    );
    Ok(raw.into_iter().map(|o| o as usize).collect())
}

/// Loads a cache directory written by [`ensure`].
pub fn load(dir: &Path) -> Result<Dataset> {
    let meta = read_meta(dir)?;
    let path = dir.join(HISTORIES_FILE);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let histories = decode(&bytes, &meta)
        .with_context(|| format!("invalid history file {}", path.display()))?;
    check::check(dir, &meta, &histories)?;
    Ok(Dataset { meta, histories })
}

fn decode(bytes: &[u8], meta: &CacheMeta) -> Result<Vec<LearningHistory>> {
    let st = SafeTensors::deserialize(bytes).context("not a safetensors file")?;
    let (n, s, d) = (meta.n_histories, meta.n_steps as usize, meta.feature_dim);
    let states = uint_column(&st, "states", s)?;
    let actions = uint_column(&st, "actions", s)?;
    let episodes = uint_column(&st, "episodes", s)?;
    let rewards = match &meta.env.reward {
        RewardKind::Discrete { values } => {
            let idx = column(&st, "rewards", Dtype::U8, s, |[b]: [u8; 1]| b)?;
            idx.into_iter()
                .map(|i| {
                    values.get(usize::from(i)).copied().with_context(|| {
                        format!(
                            "tensor `rewards`: index {i} but the environment has {} rewards",
                            values.len()
                        )
                    })
                })
                .collect::<Result<Vec<f32>>>()?
        }
        RewardKind::Continuous => column(&st, "rewards", Dtype::F32, s, f32::from_le_bytes)?,
    };
    let logprobs = column(&st, "logprobs", Dtype::F32, s, f32::from_le_bytes)?;
    let features = column(&st, "features", Dtype::F32, s * d, f32::from_le_bytes)?;
    let dones = column(&st, "dones", Dtype::U8, s, |[b]: [u8; 1]| b != 0)?;
    let step_off = offsets(&st, "offsets", n, s)?;
    let n_returns = st
        .tensor("episode_returns")
        .context("missing tensor `episode_returns`")?
        .shape()
        .iter()
        .product();
    let returns = column(
        &st,
        "episode_returns",
        Dtype::F32,
        n_returns,
        f32::from_le_bytes,
    )?;
    let ret_off = offsets(&st, "return_offsets", n, n_returns)?;
    let task = column(&st, "history_task", Dtype::U32, n, u32::from_le_bytes)?;
    let index = column(&st, "history_index", Dtype::U32, n, u32::from_le_bytes)?;
    let split = column(&st, "history_split", Dtype::U8, n, |[b]: [u8; 1]| b)?;
    (0..n)
        .map(|i| {
            let (a, b) = (step_off[i], step_off[i + 1]);
            anyhow::ensure!(
                (task[i] as usize) < meta.tasks.len(),
                "history {i} names task {} but there are {} tasks",
                task[i],
                meta.tasks.len()
            );
            Ok(LearningHistory {
                task_index: task[i],
                history_index: index[i],
                split: if split[i] == 0 {
                    Split::Train
                } else {
                    Split::Test
                },
                feature_dim: d,
                states: states[a..b].to_vec(),
                features: features[a * d..b * d].to_vec(),
                actions: actions[a..b].to_vec(),
                rewards: rewards[a..b].to_vec(),
                logprobs: logprobs[a..b].to_vec(),
                dones: dones[a..b].to_vec(),
                episodes: episodes[a..b].to_vec(),
                episode_returns: returns[ret_off[i]..ret_off[i + 1]].to_vec(),
            })
        })
        .collect()
}
