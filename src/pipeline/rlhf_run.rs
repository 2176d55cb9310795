//! Evaluation of a run trained on RLHF histories: reward prediction on the held-out source
//! runs, then the in-context RLHF curve (see [`super::rlhf_eval`]) on held-out (and some
//! training) runs. Writes `eval.csv` (task = run index, episode = evaluation point, return =
//! mean reward of the completions; policy `model`, and `source` = the run's own mean score at
//! that epoch), `summary.json` (with an `rlhf` section) and `completions.jsonl` (every
//! completion written, with its prompt and score).

use crate::eval::results::{self, EvalRow, PolicyKind};
use crate::eval::reward_prediction::reward_prediction;
use crate::eval::rlhf_eval::InContextWriter;
use crate::eval::summary::{summarise, ReadPoint, RlhfSummary, Summary};
use crate::formats::config::{FormatConfig, RlhfRewardKind};
use crate::formats::rlhf_text::RlhfTextFormat;
use crate::models::{CausalLm, ModelConfig};
use crate::rlhf::dataset::RlhfDataset;
use crate::rlhf::source::build_reward;
use crate::runs::RunDir;
use crate::schema::{AdlabConfig, TaskSpec};
use crate::tasks::Split;
use crate::train::lm_learner::LmLearner;
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;

/// Records which runs the training held out (their ids), so evaluation holds out the same.
pub fn write_held_out(dir: &RunDir, data: &RlhfDataset) -> Result<()> {
    let ids: Vec<&str> = data
        .indices(Split::Test)
        .into_iter()
        .map(|i| data.runs[i].id.as_str())
        .collect();
    crate::fsutil::write_json_atomic(&dir.path.join(crate::runs::layout::HELD_OUT_RUNS), &ids)
}

/// Applies the training's held-out runs (if recorded) to `data`, so that runs added to the
/// logs since are never mistaken for held-out ones; a recorded run now missing is a warning.
fn read_held_out(dir: &RunDir, data: &mut RlhfDataset) -> Result<()> {
    let path = dir.path.join(crate::runs::layout::HELD_OUT_RUNS);
    if !path.is_file() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&path)?;
    let ids: Vec<String> =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    for id in &ids {
        if !data.runs.iter().any(|r| &r.id == id) {
            tracing::warn!("held-out run `{id}` of the training is missing from the logs now");
        }
    }
    for (run, split) in data.runs.iter().zip(data.splits.iter_mut()) {
        *split = if ids.contains(&run.id) {
            Split::Test
        } else {
            Split::Train
        };
    }
    Ok(())
}

/// Loads a task's RLHF dataset (generating the built-in source's runs if needed).
pub fn rlhf_dataset(
    task: &TaskSpec,
    data_root: &std::path::Path,
    progress: bool,
) -> Result<RlhfDataset> {
    match task {
        TaskSpec::SentimentRlhf(c) => crate::rlhf::dataset::load_sentiment(c, data_root, progress),
        TaskSpec::TrlxLogs(t) => crate::rlhf::dataset::load_trlx(t, data_root),
        TaskSpec::Rl(t) => bail!("task `{}` is an RL task, not an RLHF one", t.name),
    }
}

/// Evaluation prompts of run `index`: fresh grammar prompts for the built-in source, else a
/// seeded sample of the run's own prompts.
fn prompts_for(cfg: &AdlabConfig, data: &RlhfDataset, index: usize, n: usize) -> Vec<String> {
    if let TaskSpec::SentimentRlhf(_) = &cfg.task {
        return crate::rlhf::source::prompts(cfg.seed, "rlhf-eval-prompts", n);
    }
    let mut all: Vec<String> = data.runs[index]
        .rollouts()
        .map(|(_, r)| r.query_text.clone())
        .collect();
    all.shuffle(&mut crate::seed::rng(
        cfg.seed,
        "rlhf-eval-prompts",
        &[index as u64],
    ));
    all.truncate(n);
    all
}

pub fn evaluate_rlhf_run(cfg: &AdlabConfig, dir: &RunDir) -> Result<Summary> {
    let Some(eval) = &cfg.eval else {
        bail!("the config has no `eval` section: nothing to evaluate");
    };
    let (ModelConfig::CausalLm(m), FormatConfig::RlhfText(f)) = (&cfg.model, &cfg.format) else {
        bail!(
            "RLHF histories are evaluated with model.kind `causal_lm` and format.kind \
             `rlhf_text`, not `{}` / `{}`",
            cfg.model.kind(),
            cfg.format.kind()
        );
    };
    let rlhf_cfg = eval.rlhf.clone().unwrap_or_default();
    let mut data = rlhf_dataset(&cfg.task, &cfg.paths.data, false)?;
    read_held_out(dir, &mut data)?;
    let checkpoint = crate::runs::checkpoint_weights(dir)?;
    let checkpoint = checkpoint
        .parent()
        .expect("weights live in a checkpoint directory");
    let device = candle_core::Device::Cpu;
    let tokenizer = crate::tokenizer::run_tokenizer(&f.tokenizer, checkpoint)?;
    let (histories, splits) = data.histories();
    let mut learner = LmLearner::for_rlhf(
        m,
        f,
        &histories,
        &splits,
        &data.cache_dir,
        Some(tokenizer),
        cfg.seed,
        &device,
    )?;
    learner.model = CausalLm::from_pretrained(
        checkpoint,
        m,
        crate::seed::rng(cfg.seed, crate::runs::layout::MODEL_INIT_SEED, &[]),
    )
    .with_context(|| format!("loading {}", checkpoint.display()))?;
    let format = RlhfTextFormat::new(f);

    let reward_prediction = if data.indices(Split::Test).is_empty() {
        None
    } else {
        let pairs = learner.reward_predictions(Split::Test, cfg.train.batch_size)?;
        let r = reward_prediction(&pairs, format.tolerance());
        tracing::info!(
            "reward prediction on {} held-out rollouts: exact {:.3}, MAE {}, Spearman {}",
            r.n,
            r.exact,
            r.mae.map_or("-".into(), |x| format!("{x:.4}")),
            r.spearman.map_or("-".into(), |x| format!("{x:.3}"))
        );
        Some(r)
    };

    let has_reward =
        (0..data.runs.len()).any(|i| data.reward(data.reward_names[i].as_deref()).is_some());
    let mut rows = Vec::new();
    let mut read_curve = Vec::new();
    let mut completions = String::new();
    let mut skipped = None;
    let writer = InContextWriter {
        model: &learner.model,
        tokenizer: &learner.tokenizer,
        format: &format,
        config: &rlhf_cfg,
        temperature: eval.temperature,
        seed: cfg.seed,
    };
    if !has_reward {
        let why = "task.reward is not set: the logs' reward model is not part of them, so \
                   completions cannot be scored (set task.reward to a lexicon or a command, or \
                   task.family)";
        tracing::warn!("in-context RLHF evaluation skipped: {why}");
        skipped = Some(why.to_string());
    } else {
        for (split, n) in [(Split::Test, eval.tasks), (Split::Train, eval.train_tasks)] {
            for index in data.indices(split).into_iter().take(n) {
                crate::interrupt::check()?;
                let name = data.reward_names[index].clone();
                let Some(reward_cfg) = data.reward(name.as_deref()) else {
                    continue;
                };
                let mut reward = build_reward(reward_cfg)?;
                let prompts = prompts_for(cfg, &data, index, rlhf_cfg.prompts);
                let run = &data.runs[index];
                if prompts.is_empty() {
                    tracing::warn!("run `{}` has no prompts to evaluate on: skipped", run.id);
                    continue;
                }
                let curve = writer.curve(run, index, &prompts, reward.as_mut())?;
                for p in &curve {
                    let point = rlhf_cfg.context_epochs.iter().position(|&k| k == p.epochs);
                    let row = |ret: f32, policy| EvalRow {
                        task: index.into(),
                        split,
                        episode: point.expect("points come from context_epochs"),
                        ret,
                        steps: Some(p.scores.len()),
                        policy,
                    };
                    rows.push(row(p.mean_score(), PolicyKind::Model));
                    if let Some(s) = p.source_score {
                        rows.push(row(s, PolicyKind::Source));
                    }
                    read_curve.push(ReadPoint {
                        run: run.id.clone(),
                        split: split.as_str().to_string(),
                        reward: name.clone(),
                        epochs: p.epochs,
                        model: f64::from(p.mean_score()),
                        source: p.source_score.map(f64::from),
                    });
                    for ((prompt, completion), score) in
                        prompts.iter().zip(&p.completions).zip(&p.scores)
                    {
                        completions.push_str(&serde_json::to_string(&serde_json::json!({
                            "run": run.id, "split": split.as_str(), "epochs_in_context": p.epochs,
                            "rollouts_in_context": p.rollouts_in_context,
                            "prompt": prompt, "completion": completion, "score": score,
                        }))?);
                        completions.push('\n');
                    }
                }
                let fmt = |xs: Vec<String>| xs.join(" ");
                tracing::info!(
                    "in-context RLHF, {} run {}: epochs in context [{}] -> model reward [{}], source [{}]",
                    split.as_str(),
                    run.id,
                    fmt(curve.iter().map(|p| p.epochs.to_string()).collect()),
                    fmt(curve.iter().map(|p| format!("{:.3}", p.mean_score())).collect()),
                    fmt(curve
                        .iter()
                        .map(|p| p.source_score.map_or("-".into(), |s| format!("{s:.3}")))
                        .collect()),
                );
            }
        }
    }
    let mut self_play = None;
    if let (Some(sp), true) = (&rlhf_cfg.self_play, has_reward) {
        if format.config().reward != RlhfRewardKind::Score {
            bail!(
                "eval.rlhf.self_play writes the reward model's score into the model's context, \
                 but the model was trained on `format.reward: total` (score plus KL penalties); \
                 train with format.reward=score or set eval.rlhf.self_play=null"
            );
        }
        let outcome = super::rlhf_self_play::run(cfg, eval, sp, &data, &writer)?;
        // eval.csv holds self-play; the curve of reading a source stays in summary.json.
        rows = outcome.rows;
        completions.push_str(&outcome.completions);
        self_play = Some(outcome.summary);
    } else {
        read_curve.clear();
    }
    results::write(&dir.eval_path(), &rows)?;
    crate::fsutil::write_atomic(
        &dir.path.join(crate::runs::layout::COMPLETIONS),
        completions.as_bytes(),
    )?;
    let mut summary = summarise(&rows, eval.summary_k, eval.temperature);
    summary.rlhf = Some(RlhfSummary {
        context_epochs: rlhf_cfg.context_epochs.clone(),
        prompts: rlhf_cfg.prompts,
        reward_prediction,
        in_context_skipped: skipped,
        self_play,
        read_curve,
    });
    crate::fsutil::write_json_atomic(&dir.summary_path(), &summary)?;
    crate::tensorboard::log_in_context(&dir.path, &summary.in_context_curves());
    let plots = dir.path.join(crate::runs::layout::PLOTS_DIR);
    let drawn = crate::pictures::source_curves::rlhf_chart(
        cfg.task.name(),
        &data.runs,
        &data.reward_names,
        &data.splits,
    )
    .map(|chart| {
        std::fs::create_dir_all(&plots)?;
        crate::pictures::render::write(&plots, "source_curves", &chart)
    })
    .transpose();
    if let Err(e) = drawn {
        tracing::warn!(
            "could not draw the PPO curves into {}: {e:#}",
            plots.display()
        );
    }
    Ok(summary)
}
