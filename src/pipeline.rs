//! The stages of one run: resolve the device, generate or load the learning histories,
//! train, evaluate in context (when `eval.enabled`). Each stage checks for an interrupt
//! before it starts; an evaluation error fails the run like any other stage's.

use crate::formats::config::FormatConfig;
use crate::models::ModelConfig;
use crate::runs::{RunDir, RunMeta};
use crate::schema::LoadedConfig;
use crate::train::lm_learner::LmLearner;
use crate::train::rl_learner::RlLearner;
use crate::train::trainer::train;
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
    let cache = crate::tasks::cache::ensure(cfg.task.rl()?, &cfg.paths.data, progress)?;
    tracing::info!(
        "learning histories: {} ({} histories, {} steps{})",
        cache.dir.display(),
        cache.n_histories,
        cache.n_steps,
        if cache.reused { ", reused" } else { "" }
    );
    crate::interrupt::check()?;

    let dataset = crate::tasks::cache::load(&cache.dir)?;
    let suite = dataset.suite()?;
    let resume = resume || cfg.train.resume;
    match (&cfg.model, &cfg.format) {
        (ModelConfig::RlHeads(m), FormatConfig::Rl(_)) => {
            let mut learner =
                RlLearner::new(m, suite.spec(), &dataset.histories, cfg.seed, &device)?;
            log_model_size(&learner.model.params());
            train(&mut learner, cfg, dir, resume)?;
        }
        (ModelConfig::CausalLm(m), FormatConfig::Language(f)) => {
            let mut learner = LmLearner::new(
                m,
                f,
                suite.spec(),
                &dataset.histories,
                &cache.dir,
                cfg.seed,
                &device,
            )?;
            log_model_size(&learner.model.params());
            train(&mut learner, cfg, dir, resume)?;
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
        let summary = crate::eval::evaluate_run(cfg, dir).context("in-context evaluation")?;
        tracing::info!("{}", crate::eval::summary_line(&summary));
    }
    Ok(())
}

fn log_model_size(params: &crate::models::ParamSet) {
    tracing::info!(
        "model: {} parameter tensors, {} parameters",
        params.len(),
        params.numel()
    );
}
