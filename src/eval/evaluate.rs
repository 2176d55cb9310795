//! Evaluation of one run directory: load its checkpoint and data cache, let the model act in
//! context on held-out (and some training) tasks, run the baselines on the same tasks, and
//! write `eval.csv` and `summary.json` into the run directory.

use super::baselines;
use super::lm_policy::{DecodingStats, LmPolicy};
use super::results::{self, EvalRow, PolicyKind};
use super::rl_policy::RlHeadsPolicy;
use super::rollout::{roll_out, Acting};
use super::summary::{summarise, Summary};
use crate::formats::config::{FormatConfig, TokenizerConfig};
use crate::formats::language::LanguageFormat;
use crate::formats::tokenizer::{TextTokenizer, TOKENIZER_FILE};
use crate::models::{CausalLm, ModelConfig, RlHeadsModel};
use crate::runs::RunDir;
use crate::schema::{AdlabConfig, EvalConfig};
use crate::tasks::{Split, TaskSuite};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The weights file of the run's last checkpoint (or of the copy a crash mid-save leaves).
pub fn checkpoint_weights(dir: &RunDir) -> Result<PathBuf> {
    let main = dir.checkpoint_dir();
    let candidates = [main.clone(), main.with_file_name("checkpoint.old")];
    candidates
        .iter()
        .map(|d| d.join("model.safetensors"))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{} holds no checkpoint (no {}): train the run first",
                dir.path.display(),
                main.join("model.safetensors").display()
            )
        })
}

/// The evaluated tasks of a split: the first `n` of the split, in index order.
fn pick(suite: &TaskSuite, split: Split, n: usize) -> Vec<usize> {
    suite.indices(split).into_iter().take(n).collect()
}

/// Evaluates the run in `dir` as `cfg.eval` says; writes `eval.csv` and `summary.json`.
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
    let weights = checkpoint_weights(dir)?;
    let rows = match &cfg.model {
        ModelConfig::RlHeads(m) => {
            let spaces = crate::train::rl_learner::spaces_of(suite.spec());
            // The init stream does not matter: every weight is overwritten by the checkpoint.
            let model =
                RlHeadsModel::new(m, &spaces, crate::seed::rng(cfg.seed, "model-init", &[]))?;
            model
                .load_weights(&weights)
                .with_context(|| format!("loading {}", weights.display()))?;
            evaluate_policy(&suite, eval, cfg.seed, |rows| {
                Ok(Box::new(RlHeadsPolicy::new(&model, rows)))
            })?
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
            let tokenizer = run_tokenizer(&f.tokenizer, checkpoint)?;
            let model = CausalLm::from_pretrained(
                checkpoint,
                m,
                crate::seed::rng(cfg.seed, "model-init", &[]),
            )
            .with_context(|| format!("loading {}", checkpoint.display()))?;
            evaluate_policy(&suite, eval, cfg.seed, |rows| {
                Ok(Box::new(LmPolicy::new(&model, &format, &tokenizer, rows)?))
            })?
        }
    };
    results::write(&dir.eval_path(), &rows.rows)?;
    let mut summary = summarise(&rows.rows, eval.summary_k, eval.temperature);
    for (split, stats) in rows.decoding {
        if let Some(s) = summary.splits.get_mut(split.as_str()) {
            s.decoding = Some(stats);
        }
    }
    crate::fsutil::write_json_atomic(&dir.summary_path(), &summary)?;
    crate::tensorboard::log_in_context(&dir.path, &summary);
    Ok(summary)
}

/// The tokenizer a causal-LM run was trained with: the checkpoint's `tokenizer.json`
/// (written for BPE and file tokenizers), else the byte tokenizer.
pub(crate) fn run_tokenizer(config: &TokenizerConfig, checkpoint: &Path) -> Result<TextTokenizer> {
    let saved = checkpoint.join(TOKENIZER_FILE);
    match config {
        TokenizerConfig::Byte => Ok(TextTokenizer::byte()),
        _ if saved.is_file() => TextTokenizer::from_file(&saved),
        _ => bail!(
            "{} is missing: the run's tokenizer cannot be restored",
            saved.display()
        ),
    }
}

/// What [`evaluate_policy`] measured.
pub struct Evaluation {
    /// The rows of `eval.csv`.
    pub rows: Vec<EvalRow>,
    /// Per split, the text policy's decoding figures (none for rl_heads).
    pub decoding: Vec<(Split, DecodingStats)>,
}

/// Runs the model (a fresh policy per split, from `make_policy(rows)`) and the baselines on
/// the configured tasks of both splits.
pub fn evaluate_policy<'m>(
    suite: &TaskSuite,
    eval: &EvalConfig,
    seed: u64,
    make_policy: impl Fn(usize) -> Result<Box<dyn super::InContextPolicy + 'm>>,
) -> Result<Evaluation> {
    let mut rows = Vec::new();
    let mut decoding = Vec::new();
    for (split, n) in [(Split::Test, eval.tasks), (Split::Train, eval.train_tasks)] {
        let tasks = pick(suite, split, n);
        if tasks.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        let mut policy = make_policy(tasks.len())?;
        let acting = Acting {
            temperature: eval.temperature,
            seed,
            label: "eval",
        };
        let model = roll_out(policy.as_mut(), suite, &tasks, eval.episodes, acting)?;
        if let Some(stats) = policy.decoding_stats() {
            tracing::info!(
                "eval {}: {} of {} steps off-format under unconstrained greedy decoding",
                split.as_str(),
                stats.off_format,
                stats.steps
            );
            decoding.push((split, stats));
        }
        drop(policy);
        tracing::info!(
            "eval {}: model played {} episodes on {} tasks in {:.1}s",
            split.as_str(),
            eval.episodes,
            tasks.len(),
            started.elapsed().as_secs_f64()
        );
        let ep = eval.episodes;
        let source = baselines::source(suite, &tasks, ep, seed)?;
        let random = baselines::random(suite, &tasks, ep, seed)?;
        let optimal = baselines::optimal(suite, &tasks, ep)?;
        for (episodes, kind) in [
            (model, PolicyKind::Model),
            (source, PolicyKind::Source),
            (random, PolicyKind::Random),
            (optimal, PolicyKind::Optimal),
        ] {
            rows.extend(EvalRow::from_episodes(&episodes, split, kind));
        }
    }
    Ok(Evaluation { rows, decoding })
}

/// One log line: the held-out model's figures beside the source's.
pub fn summary_line(s: &Summary) -> String {
    let Some((split, ss)) = s.splits.first() else {
        return "eval: no tasks evaluated".into();
    };
    let f = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.3}"));
    let part = |name: &str| {
        ss.policies.get(name).map_or(String::new(), |p| {
            format!(
                "{name} return {:.3} -> {:.3} (score {} -> {})",
                p.first_k_return,
                p.last_k_return,
                f(p.first_k_score),
                f(p.last_k_score)
            )
        })
    };
    format!(
        "eval {split} ({} tasks, first/last {} of {} episodes): {}; {}",
        ss.tasks.len(),
        s.k,
        s.episodes,
        part("model"),
        part("source")
    )
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
