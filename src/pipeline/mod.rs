//! The stages of one run: resolve the device, generate or load the learning histories,
//! train, evaluate in context (when `eval.enabled`). Each stage checks for an interrupt
//! before it starts; an evaluation error fails the run like any other stage's.
//!
//! The glue of one run sits here, above every stage: [`job`] (the run directory's lifecycle),
//! [`resume`] (what may be continued), this file (the stage order), [`evaluate`] and
//! [`rlhf_run`] (a run directory's checkpoint, data and held-out set handed to `eval`).
//!
//! Architecture invariant: the stages below (tasks, formats, models, train, eval) never import
//! one another sideways; what one stage hands the next goes through here or the run directory.

pub mod evaluate;
pub mod job;
pub mod resume;
pub mod rlhf_run;
pub mod rlhf_self_play;

use crate::formats::config::FormatConfig;
use crate::models::ModelConfig;
use crate::runs::{RunDir, RunMeta};
use crate::schema::LoadedConfig;
use crate::train::lm_learner::LmLearner;
use crate::train::rl_learner::RlLearner;
use crate::train::trainer::{train, Learner};
use anyhow::{Context, Result};
use std::io::IsTerminal;

/// Runs every stage. `resume` continues training from `dir`'s checkpoint if it has one.
pub fn run_pipeline(
    loaded: &LoadedConfig,
    dir: &RunDir,
    meta: &mut RunMeta,
    resume: bool,
) -> Result<()> {
    let cfg = &loaded.typed;
    crate::interrupt::check()?;
    let request = crate::device::DeviceRequest::parse(&cfg.device).map_err(anyhow::Error::msg)?;
    let device = request.resolve()?;
    meta.device = Some(crate::device::describe(&device));
    dir.write_meta(meta)?;

    crate::interrupt::check()?;
    let progress = std::io::stderr().is_terminal();
    if cfg.task.is_rlhf() {
        return run_rlhf(cfg, dir, resume, &device, progress);
    }
    let cache = crate::tasks::cache::ensure(cfg.task.rl()?, &cfg.paths.data, progress)?;
    tracing::info!(
        "learning histories: {} ({} histories, {} steps{})",
        cache.dir.display(),
        cache.n_histories,
        cache.n_steps,
        if cache.reused { ", reused" } else { "" }
    );
    crate::interrupt::check()?;

    let dataset = crate::tasks::cache::check::load_checked(&cache.dir)?;
    let suite = dataset.suite()?;
    let resume = resume || cfg.train.resume;
    if let ModelConfig::RlHeads(m) = &cfg.model {
        let longest = dataset.histories.iter().map(|h| h.len()).max().unwrap_or(0);
        crate::models::size::check_context(m, longest)?;
    }
    check_size(cfg, &device)?;
    match (&cfg.model, &cfg.format) {
        (ModelConfig::RlHeads(m), FormatConfig::Rl(_)) => {
            let mut learner =
                RlLearner::new(m, suite.spec(), &dataset.histories, cfg.seed, &device)?;
            fit(&mut learner, cfg, dir, resume)?;
        }
        (ModelConfig::CausalLm(m), FormatConfig::Language(f)) => {
            let mut learner = LmLearner::new(
                m,
                f,
                suite.spec(),
                &dataset.histories,
                &cache.dir,
                None,
                cfg.seed,
                &device,
            )?;
            fit(&mut learner, cfg, dir, resume)?;
        }
        (model, format) => anyhow::bail!(
            "model.kind `{}` cannot learn format.kind `{}` yet",
            model.kind(),
            format.kind()
        ),
    }
    drop(dataset);

    let eval = cfg.eval.as_ref().filter(|e| e.enabled);
    if let Some(eval) = eval {
        crate::interrupt::check()?;
        tracing::info!(
            "in-context evaluation: {} episodes on {} held-out and {} training tasks",
            eval.episodes,
            eval.tasks,
            eval.train_tasks
        );
        let summary = evaluate::evaluate_run(cfg, dir).context("in-context evaluation")?;
        tracing::info!("{}", crate::eval::summary_line(&summary));
    }
    Ok(())
}

/// The stages for RLHF histories: source runs (generated or read) → causal LM on their text
/// → reward prediction and in-context RLHF evaluation.
fn run_rlhf(
    cfg: &crate::schema::AdlabConfig,
    dir: &RunDir,
    resume: bool,
    device: &candle_core::Device,
    progress: bool,
) -> Result<()> {
    let data = rlhf_run::rlhf_dataset(&cfg.task, &cfg.paths.data, progress)?;
    let held_out = data.indices(crate::tasks::Split::Test).len();
    tracing::info!(
        "RLHF histories: {} source runs ({} held out), {} rollouts, {}",
        data.runs.len(),
        held_out,
        data.runs.iter().map(|r| r.n_rollouts()).sum::<usize>(),
        data.cache_dir.display()
    );
    crate::interrupt::check()?;
    check_size(cfg, device)?;
    if let (ModelConfig::RlHeads(m), FormatConfig::Rl(f)) = (&cfg.model, &cfg.format) {
        let (runs, splits) = data.histories();
        let (spec, histories) =
            crate::rlhf::token_steps::token_histories(&runs, &splits, f.positions)?;
        let mut learner = RlLearner::new(m, &spec, &histories, cfg.seed, device)?;
        fit(&mut learner, cfg, dir, resume || cfg.train.resume)?;
        if cfg.eval.as_ref().is_some_and(|e| e.enabled) {
            // Acting in context means writing completions: only a causal LM can.
            tracing::warn!(
                "rl_heads on RLHF histories: training metrics only (token-level action and \
                 reward accuracy); in-context RLHF evaluation needs model=causal_lm"
            );
        }
        return Ok(());
    }
    let (ModelConfig::CausalLm(m), FormatConfig::RlhfText(f)) = (&cfg.model, &cfg.format) else {
        anyhow::bail!(
            "RLHF histories are learned by model.kind `causal_lm` in format.kind `rlhf_text`, or \
             by `rl_heads` in `rl` (got `{}` / `{}`)",
            cfg.model.kind(),
            cfg.format.kind()
        );
    };
    let (histories, splits) = data.histories();
    let mut learner = LmLearner::for_rlhf(
        m,
        f,
        &histories,
        &splits,
        &data.cache_dir,
        None,
        cfg.seed,
        device,
    )?;
    // Evaluation must hold out exactly these runs, whatever the logs hold by then.
    rlhf_run::write_held_out(dir, &data)?;
    fit(&mut learner, cfg, dir, resume || cfg.train.resume)?;
    drop(learner);
    drop(data);
    if cfg.eval.as_ref().is_some_and(|e| e.enabled) {
        crate::interrupt::check()?;
        let summary =
            rlhf_run::evaluate_rlhf_run(cfg, dir).context("in-context RLHF evaluation")?;
        tracing::info!("{}", crate::eval::summary_line(&summary));
    }
    Ok(())
}

/// Refuses a model that cannot fit in this machine's memory before anything is allocated (on
/// a GPU the host's memory says nothing, so only the CPU is checked).
fn check_size(cfg: &crate::schema::AdlabConfig, device: &candle_core::Device) -> Result<()> {
    if !device.is_cpu() {
        return Ok(());
    }
    let micro = (cfg.train.batch_size / cfg.train.grad_accum.max(1)).max(1);
    crate::models::size::check_fits(&cfg.model, micro, crate::models::size::available_bytes())
}

/// Logs the model's size and trains it as `cfg.train` and `cfg.optimizer` say.
fn fit(
    learner: &mut dyn Learner,
    cfg: &crate::schema::AdlabConfig,
    dir: &RunDir,
    resume: bool,
) -> Result<()> {
    let params = learner.params();
    tracing::info!(
        "model: {} parameter tensors, {} parameters",
        params.len(),
        params.numel()
    );
    train(learner, &cfg.train, &cfg.optimizer, cfg.seed, dir, resume)?;
    Ok(())
}
