//! `adlab show [OVERRIDES]`: one learning history of the composed task, printed as the
//! composed format presents it to the model — token boundaries, action and reward targets
//! marked, token counts, and how much of the history one training window covers. The data
//! and tokenizer are built (or reused) exactly as `adlab run` builds them.

pub mod tokens;
pub mod view;

use crate::config::{self, Override};
use crate::formats::config::{FormatConfig, TokenizerConfig};
use crate::formats::format_tokenizer::{language_tokenizer, rlhf_tokenizer};
use crate::formats::language::LanguageFormat;
use crate::formats::rlhf_text::RlhfTextFormat;
use crate::models::rl_heads::TokenLayout;
use crate::models::ModelConfig;
use crate::schema::{AdlabConfig, LoadedConfig};
use crate::tasks::Split;
use anyhow::{bail, Result};
use std::path::Path;
use view::{Context, Shown, Style};

/// What to show.
#[derive(Debug, Clone)]
pub struct ShowRequest {
    pub overrides: Vec<String>,
    /// Index of the history (RLHF: the source run); default the first of the train split.
    pub history: Option<usize>,
    /// Steps printed from each of the start, middle and end.
    pub steps: usize,
    pub colour: bool,
}

/// The printout for `req`.
pub fn show(config_dir: &Path, req: &ShowRequest) -> Result<String> {
    let (loaded, note) = load(config_dir, &req.overrides)?;
    let cfg = &loaded.typed;
    let mut shown = if cfg.task.is_rlhf() {
        rlhf(cfg, req.history)?
    } else {
        rl_task(cfg, req.history)?
    };
    shown.header.push(format!(
        "model {} ({}){}",
        cfg.model.name(),
        cfg.model.kind(),
        note.unwrap_or_default()
    ));
    Ok(shown.render(Style {
        colour: req.colour,
        per_section: req.steps,
    }))
}

/// Composes the config. `show task=darkroom format=coords` means "as a causal LM reads it",
/// so a text format with the default RL-heads model gets `model=causal_lm` rather than the
/// format/model mismatch error `run` gives — unless the command line picked the model.
fn load(config_dir: &Path, args: &[String]) -> Result<(LoadedConfig, Option<String>)> {
    let ovs = config::parse_overrides(args)?;
    let err = match crate::schema::load(config_dir, &ovs) {
        Ok(l) => return Ok((l, None)),
        Err(e) => e,
    };
    let picks_model = args
        .iter()
        .any(|a| a.trim_start_matches('+').starts_with("model="));
    if !picks_model {
        let mut with: Vec<Override> = config::parse_overrides(&["model=causal_lm".to_string()])?;
        with.extend(ovs);
        if let Ok(l) = crate::schema::load(config_dir, &with) {
            if l.typed.format.kind() != "rl" {
                return Ok((
                    l,
                    Some(" — model=causal_lm: the model that reads text".into()),
                ));
            }
        }
    }
    Err(err.into())
}

/// The history to show: `wanted`, else the first train-split one.
fn pick(splits: &[Split], wanted: Option<usize>, what: &str) -> Result<usize> {
    match wanted {
        Some(i) if i < splits.len() => Ok(i),
        Some(i) => bail!(
            "--history {i}: the task has {} {what}s (0–{})",
            splits.len(),
            splits.len().saturating_sub(1)
        ),
        None => Ok(splits.iter().position(|&s| s == Split::Train).unwrap_or(0)),
    }
}

fn context(model: &ModelConfig) -> Context {
    match model {
        ModelConfig::CausalLm(m) => Context::Tokens(m.context_tokens),
        ModelConfig::RlHeads(m) => Context::Steps {
            steps: m.context_steps,
            tokens_per_step: match m.layout {
                TokenLayout::Sar => 3,
                TokenLayout::Fused => 1,
            },
        },
    }
}

fn describe_tokenizer(t: &TokenizerConfig) -> String {
    match t {
        TokenizerConfig::Byte => "byte tokenizer".into(),
        TokenizerConfig::Bpe { vocab_size } => format!("BPE tokenizer (vocab_size {vocab_size})"),
        TokenizerConfig::File { path } => format!("tokenizer {}", path.display()),
    }
}

fn rl_layout(model: &ModelConfig) -> &'static str {
    match model {
        ModelConfig::RlHeads(m) if m.layout == TokenLayout::Fused => {
            "one fused token per step (state, action, reward)"
        }
        _ => "3 tokens per step: state, action, reward",
    }
}

fn rl_task(cfg: &AdlabConfig, wanted: Option<usize>) -> Result<Shown> {
    let task = cfg.task.rl()?;
    let info = crate::tasks::cache::ensure(task, &cfg.paths.data, false)?;
    let data = crate::tasks::cache::check::load_checked(&info.dir)?;
    let suite = data.suite()?;
    let splits: Vec<Split> = data.histories.iter().map(|h| h.split).collect();
    let index = pick(&splits, wanted, "historie")?;
    let h = &data.histories[index];
    let mut header = vec![format!(
        "task {} (env {}): history {index} of {} — task {}, {} split, {} steps",
        task.name,
        suite.spec().kind,
        data.histories.len(),
        h.task_index,
        h.split.as_str(),
        h.len()
    )];
    let (steps, text) = match &cfg.format {
        FormatConfig::Language(f) => {
            let format = LanguageFormat::new(f, suite.spec())?;
            let tok = language_tokenizer(&format, &data.histories, &info.dir)?;
            header.push(format!(
                "format {} (language), {}, vocabulary {} tokens; template {:?}, episode separator {:?}",
                f.name,
                describe_tokenizer(&f.tokenizer),
                tok.vocab_size(),
                f.step,
                f.episode_separator
            ));
            (tokens::language_steps(&format, &tok, h)?, true)
        }
        FormatConfig::Rl(f) => {
            header.push(format!("format {} (rl): {}", f.name, rl_layout(&cfg.model)));
            (tokens::rl_steps(suite.spec(), h, "episode"), false)
        }
        FormatConfig::RlhfText(f) => bail!(
            "format `{}` (rlhf_text) renders RLHF rollouts; task `{}` is an RL task (use \
             format=auto)",
            f.name,
            task.name
        ),
    };
    Ok(Shown {
        header,
        step_noun: "step",
        group_noun: "episode",
        steps,
        context: context(&cfg.model),
        text,
    })
}

fn rlhf(cfg: &AdlabConfig, wanted: Option<usize>) -> Result<Shown> {
    let data = crate::pipeline::rlhf_run::rlhf_dataset(&cfg.task, &cfg.paths.data, false)?;
    // What training reads: with task.keep_per_epoch, the subsampled histories of the runs.
    let (runs, splits) = data.histories();
    let index = pick(&splits, wanted, "source run")?;
    let run = &runs[index];
    let noun = if data.keep_per_epoch.is_some() {
        "subsampled history"
    } else {
        "source run"
    };
    let mut header = vec![format!(
        "task {}: {noun} {index} of {} (`{}`, {} split): {} PPO epochs, {} rollouts",
        cfg.task.name(),
        runs.len(),
        run.id,
        splits[index].as_str(),
        run.epochs.len(),
        run.n_rollouts()
    )];
    match &cfg.format {
        FormatConfig::RlhfText(f) => {
            let format = RlhfTextFormat::new(f);
            let rendered = runs
                .iter()
                .map(|r| format.render_run(r))
                .collect::<Result<Vec<_>>>()?;
            let tok = rlhf_tokenizer(f, &rendered, &splits, &data.cache_dir)?;
            header.push(format!(
                "format {} (rlhf_text), {}, vocabulary {} tokens; a rollout is a step: its \
                 completion the action, its {} the reward",
                f.name,
                describe_tokenizer(&f.tokenizer),
                tok.vocab_size(),
                match f.reward {
                    crate::formats::config::RlhfRewardKind::Score => "score",
                    crate::formats::config::RlhfRewardKind::Total => "total reward",
                }
            ));
            Ok(Shown {
                header,
                step_noun: "rollout",
                group_noun: "PPO epoch",
                steps: tokens::rlhf_steps(&format, &tok, run)?,
                context: context(&cfg.model),
                text: true,
            })
        }
        FormatConfig::Rl(f) => {
            let (spec, histories) =
                crate::rlhf::token_steps::token_histories(&runs, &splits, f.positions)?;
            header.push(format!(
                "format {} (rl): {}; a step generates one response token (state = (previous \
                 token id, position), action = token id), a rollout is an episode",
                f.name,
                rl_layout(&cfg.model)
            ));
            Ok(Shown {
                header,
                step_noun: "step",
                group_noun: "rollout",
                steps: tokens::rl_steps(&spec, &histories[index], "rollout"),
                context: context(&cfg.model),
                text: false,
            })
        }
        FormatConfig::Language(f) => bail!(
            "format `{}` (language) renders RL steps; task `{}` is an RLHF task (use \
             format=rlhf_text or format=auto)",
            f.name,
            cfg.task.name()
        ),
    }
}
