//! Evaluation of one run directory: load its checkpoint and data cache, let the model act in
//! context on held-out (and some training) tasks (`eval::evaluate`), and write `eval.csv`,
//! `summary.json` and `traces.jsonl` into the run directory, then draw its `plots/`
//! (`crate::pictures`). RLHF runs go to [`super::rlhf_run`].

use crate::eval::evaluate::evaluate_policy;
use crate::eval::lm_policy::LmPolicy;
use crate::eval::results;
use crate::eval::reward_prediction::reward_prediction;
use crate::eval::rl_policy::RlHeadsPolicy;
use crate::eval::state_prediction::state_prediction;
use crate::eval::summary::{summarise, HeldOutPrediction, Summary};
use crate::formats::config::FormatConfig;
use crate::formats::language::LanguageFormat;
use crate::models::{CausalLm, ModelConfig};
use crate::runs::RunDir;
use crate::schema::AdlabConfig;
use crate::tasks::Split;
use crate::train::lm_learner::LmLearner;
use crate::train::predictions::StepPredictions;
use crate::train::rl_learner::RlLearner;
use anyhow::{bail, Context, Result};

/// Evaluates the run in `dir` as `cfg.eval` says; writes `eval.csv`, `summary.json` and
/// `traces.jsonl`, and draws the run's pictures into `plots/` (a picture that cannot be drawn
/// is a warning, not a failed evaluation).
pub fn evaluate_run(cfg: &AdlabConfig, dir: &RunDir) -> Result<Summary> {
    let Some(eval) = &cfg.eval else {
        bail!("the config has no `eval` section: nothing to evaluate");
    };
    if cfg.task.is_rlhf() {
        return super::rlhf_run::evaluate_rlhf_run(cfg, dir);
    }
    if eval.episodes == 0 {
        bail!("eval.episodes = 0: nothing to evaluate");
    }
    crate::interrupt::check()?;
    let cache = crate::tasks::cache::ensure(cfg.task.rl()?, &cfg.paths.data, false)?;
    let dataset = crate::tasks::cache::load(&cache.dir)?;
    let suite = dataset.suite()?;
    let weights = crate::runs::checkpoint_weights(dir)?;
    let device = candle_core::Device::Cpu;
    let has_test = dataset.histories.iter().any(|h| h.split == Split::Test);
    let n_windows = if has_test { eval.prediction_windows } else { 0 };
    let batch_size = cfg.train.batch_size;
    let tokens_per_step;
    let (rows, predictions) = match &cfg.model {
        ModelConfig::RlHeads(m) => {
            // The init stream does not matter: every weight is overwritten by the checkpoint.
            let learner = RlLearner::new(m, suite.spec(), &dataset.histories, cfg.seed, &device)?;
            learner
                .model
                .load_weights(&weights)
                .with_context(|| format!("loading {}", weights.display()))?;
            let predictions = (n_windows > 0)
                .then(|| learner.held_out_predictions(n_windows, batch_size))
                .transpose()?
                .map(|p| (p, m.reward_tolerance));
            tokens_per_step = Some(learner.model.tokens_per_step() as f64);
            let rows = evaluate_policy(&suite, eval, cfg.seed, |rows| {
                Ok(Box::new(RlHeadsPolicy::new(
                    &learner.model,
                    rows,
                    eval.context_kept,
                )))
            })?;
            (rows, predictions)
        }
        ModelConfig::CausalLm(m) => {
            let FormatConfig::Language(f) = &cfg.format else {
                bail!(
                    "model.kind `causal_lm` needs a language format, not `{}`",
                    cfg.format.kind()
                );
            };
            let format = LanguageFormat::new(f, suite.spec())?;
            let checkpoint = weights
                .parent()
                .expect("weights live in a checkpoint directory");
            let tokenizer = crate::tokenizer::run_tokenizer(&f.tokenizer, checkpoint)?;
            let model = CausalLm::from_pretrained(
                checkpoint,
                m,
                crate::seed::rng(cfg.seed, crate::runs::layout::MODEL_INIT_SEED, &[]),
            )
            .with_context(|| format!("loading {}", checkpoint.display()))?;
            let rows = evaluate_policy(&suite, eval, cfg.seed, |rows| {
                Ok(Box::new(LmPolicy::new(
                    &model,
                    &format,
                    &tokenizer,
                    rows,
                    eval.context_kept,
                )?))
            })?;
            let mut learner = LmLearner::new(
                m,
                f,
                suite.spec(),
                &dataset.histories,
                &cache.dir,
                Some(tokenizer),
                cfg.seed,
                &device,
            )?;
            tokens_per_step = Some(learner.tokens_per_step());
            learner.model = model;
            let predictions = (n_windows > 0)
                .then(|| learner.held_out_predictions(n_windows, batch_size))
                .transpose()?
                .map(|p| (p, format.rewards().tolerance()));
            (rows, predictions)
        }
    };
    results::write(&dir.eval_path(), &rows.rows)?;
    let mut summary = summarise(&rows.rows, eval.summary_k, eval.temperature);
    summary.tokens_per_step = tokens_per_step;
    summary.prediction = predictions.map(|(p, tolerance)| held_out_prediction(&p, tolerance));
    for (split, stats) in rows.decoding {
        if let Some(s) = summary.splits.get_mut(split.as_str()) {
            s.decoding = Some(stats);
        }
    }
    crate::fsutil::write_json_atomic(&dir.summary_path(), &summary)?;
    crate::tensorboard::log_in_context(&dir.path, &summary.in_context_curves());
    crate::eval::trace::write(&dir.path.join(crate::runs::layout::TRACES), &rows.traces)?;
    let plots = dir.path.join(crate::runs::layout::PLOTS_DIR);
    match crate::pictures::draw_run(&suite, &dataset.histories, &rows.traces, &plots) {
        Ok(files) => tracing::info!("drew {} pictures into {}", files.len() / 2, plots.display()),
        Err(e) => tracing::warn!(
            "could not draw the run's pictures into {}: {e:#}",
            plots.display()
        ),
    }
    Ok(summary)
}

/// Summarises teacher-forced predictions; logs them.
fn held_out_prediction(p: &StepPredictions, reward_tolerance: f32) -> HeldOutPrediction {
    let reward = reward_prediction(&p.rewards, reward_tolerance);
    let state = (!p.states.is_empty())
        .then(|| state_prediction(&p.states, &p.states_before, p.states_off_format));
    let num = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.4}"));
    tracing::info!(
        "held-out prediction over {} windows: reward MAE {} ({} of {} unreadable){}",
        p.windows,
        num(reward.mae),
        reward.unparsable,
        reward.n,
        state.as_ref().map_or(String::new(), |s| format!(
            ", next-state normalised MAE {} (unchanged state: {}; {} of {} unreadable, {} off \
             the format's precision)",
            num(s.normalised_mae),
            num(s.unchanged_normalised_mae),
            s.unparsable,
            s.n,
            s.off_format
        ))
    );
    HeldOutPrediction {
        windows: p.windows,
        reward,
        state,
    }
}

/// The config of the run in `run_dir` (its `config.yaml`, already composed and resolved) with
/// value overrides applied (`eval.episodes=100`, `++eval.tasks=4`, `~eval`, …).
pub fn run_config(
    run_dir: &std::path::Path,
    overrides: &[crate::config::Override],
) -> Result<AdlabConfig> {
    let path = run_dir.join("config.yaml");
    if !path.is_file() {
        bail!(
            "{} is not a run directory: it has no config.yaml",
            run_dir.display()
        );
    }
    let mut tree = crate::config::yaml::read_config_file(&path)?.body;
    for o in overrides {
        if o.is_sweep() {
            bail!(
                "`{}`: sweep values cannot be used with `adlab eval`",
                o.text
            );
        }
        crate::config::compose::apply_value_override(&mut tree, o)?;
    }
    Ok(crate::schema::typed_config(&tree)?)
}
