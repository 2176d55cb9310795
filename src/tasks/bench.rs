//! Throughput of the source algorithms: environment steps per second on one thread,
//! including recording the learning history — the number that decides how long a cache takes
//! to build. Used by `benches/generate.rs`.

use super::config::{SourceConfig, TaskConfig};
use super::source::{run_source_with, RunLength};
use super::suite::TaskSuite;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Throughput {
    /// Case label, e.g. `darkroom/q_learning`.
    pub case: String,
    pub steps: u64,
    pub seconds: f64,
    pub steps_per_sec: f64,
}

/// Runs the config's source on its task 0, history after history (every episode recorded),
/// until `min_seconds` have passed; counts environment steps.
pub fn measure(case: &str, cfg: &TaskConfig, min_seconds: f64) -> Result<Throughput> {
    let suite = TaskSuite::from_config(cfg).with_context(|| format!("bench case {case}"))?;
    let length = RunLength {
        episodes: cfg.histories.episodes,
        keep_every: 1,
        max_steps: None,
    };
    let mut history = 0;
    timed(case, min_seconds, || {
        let h = run_source_with(cfg, &suite, 0, history, length)?;
        history += 1;
        Ok(h.len() as u64)
    })
}

/// Calls `work` (which returns the environment steps it took) until `min_seconds` have
/// passed.
fn timed(
    case: &str,
    min_seconds: f64,
    mut work: impl FnMut() -> Result<u64>,
) -> Result<Throughput> {
    let start = Instant::now();
    let mut steps = 0u64;
    loop {
        steps += work()?;
        let seconds = start.elapsed().as_secs_f64();
        if seconds >= min_seconds {
            return Ok(Throughput {
                case: case.to_string(),
                steps,
                seconds,
                steps_per_sec: steps as f64 / seconds,
            });
        }
    }
}

/// The environment alone: task 0 of the config stepped with uniformly random actions (reset
/// at every episode end, nothing recorded) until `min_seconds` have passed — the physics
/// cost that a source's learning adds to.
pub fn measure_env(case: &str, cfg: &TaskConfig, min_seconds: f64) -> Result<Throughput> {
    use super::env::Environment;
    use rand::Rng;
    let suite = TaskSuite::from_config(cfg).with_context(|| format!("bench case {case}"))?;
    let mut env = suite.make_env(0)?;
    let mut rng = crate::seed::rng(0, "bench-env", &[]);
    let n = env.n_actions();
    env.reset(&mut rng);
    timed(case, min_seconds, || {
        for _ in 0..1000 {
            let a = rng.random_range(0..n);
            if env.step(a, &mut rng).done() {
                env.reset(&mut rng);
            }
        }
        Ok(1000)
    })
}

/// The standard cases: every RL `conf/task/*.yaml` with its configured source, plus the other
/// sources that fit (PPO on darkroom, Thompson sampling on bandit), sorted by name.
pub fn standard_cases(conf_task_dir: &Path) -> Result<Vec<(String, TaskConfig)>> {
    let mut files: Vec<_> = std::fs::read_dir(conf_task_dir)
        .with_context(|| format!("reading {}", conf_task_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    // RLHF task files (`kind: sentiment_rlhf`, `trlx_logs`) have no RL source to time.
    files.retain(|p| {
        std::fs::read_to_string(p).is_ok_and(|t| t.lines().any(|l| l.trim() == "kind: rl"))
    });
    let ppo = files.iter().find_map(|p| {
        let text = std::fs::read_to_string(p).ok()?;
        match TaskConfig::from_yaml(&text).ok()?.source {
            s @ SourceConfig::Ppo(_) => Some(s),
            _ => None,
        }
    });
    for path in &files {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let cfg =
            TaskConfig::from_yaml(&text).with_context(|| format!("parsing {}", path.display()))?;
        cases.push((
            format!("{}/{}", cfg.name, cfg.source.algo_name()),
            cfg.clone(),
        ));
        if cfg.name == "darkroom" {
            if let Some(p) = &ppo {
                cases.push((
                    "darkroom/ppo".into(),
                    TaskConfig {
                        source: p.clone(),
                        ..cfg.clone()
                    },
                ));
            }
        }
        if cfg.name == "bandit" {
            let ts = SourceConfig::Thompson(super::config::ThompsonConfig {
                prior_alpha: 1.0,
                prior_beta: 1.0,
                logprob_samples: 32,
            });
            cases.push((
                "bandit/thompson".into(),
                TaskConfig {
                    source: ts,
                    ..cfg.clone()
                },
            ));
        }
    }
    Ok(cases)
}

/// Time to generate a config's whole dataset on one thread, then the size of its cache file
/// and the time to write and read it back.
#[derive(Debug, Clone)]
pub struct GenerationTime {
    pub name: String,
    pub histories: usize,
    pub steps: u64,
    pub seconds: f64,
    /// Size of `histories.safetensors`.
    pub cache_bytes: u64,
    pub write_seconds: f64,
    pub load_seconds: f64,
}

pub fn generation_time(cfg: &TaskConfig) -> Result<GenerationTime> {
    let suite = TaskSuite::from_config(cfg)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .context("building a one-thread pool")?;
    let start = Instant::now();
    let histories = pool.install(|| super::generate::generate(&suite, false))?;
    let seconds = start.elapsed().as_secs_f64();
    let dir = tempfile::tempdir().context("creating a temporary cache directory")?;
    let start = Instant::now();
    super::cache::write(dir.path(), &suite, &histories)?;
    let write_seconds = start.elapsed().as_secs_f64();
    let cache_bytes = std::fs::metadata(dir.path().join(super::cache::HISTORIES_FILE))?.len();
    let start = Instant::now();
    let loaded = super::cache::load(dir.path())?;
    let load_seconds = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        loaded.histories.len() == histories.len(),
        "cache read back short"
    );
    Ok(GenerationTime {
        name: cfg.name.clone(),
        histories: histories.len(),
        steps: histories.iter().map(|h| h.len() as u64).sum(),
        seconds,
        cache_bytes,
        write_seconds,
        load_seconds,
    })
}
