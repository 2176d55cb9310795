//! The typed config: what every key means, its type, and the checks that go beyond types.
//! Each section rejects unknown keys, so a typo is an error that names the key.

use crate::config::{
    self, extract, ComposeOptions, Composed, ConfigError, ConfigRepo, Node, Override,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use crate::eval::EvalConfig;
pub use crate::formats::config::FormatConfig;
pub use crate::launch::config::LauncherConfig;
pub use crate::models::ModelConfig;
pub use crate::optim::OptimizerConfig;
pub use crate::tasks::TaskConfig;
pub use crate::train::TrainConfig;

/// The whole experiment configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdlabConfig {
    /// Run name: the folder under `paths.runs`.
    pub name: String,
    /// Seed of the run (model init, batching, evaluation). The data seed is `task.seed`.
    pub seed: u64,
    /// `cpu`, `cuda:N`, or `auto` (CUDA if built with it and present, else CPU).
    pub device: String,
    pub paths: PathsConfig,
    pub task: TaskSpec,
    pub format: FormatConfig,
    pub model: ModelConfig,
    pub optimizer: OptimizerConfig,
    pub launcher: LauncherConfig,
    pub train: TrainConfig,
    /// In-context evaluation; absent (`~eval`) means no evaluation.
    #[serde(default)]
    pub eval: Option<EvalConfig>,
}

/// The `task` group: what produces the learning histories, selected by `task.kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskSpec {
    /// A classic RL environment and source algorithm (darkroom, bandit, …).
    Rl(TaskConfig),
    /// The built-in RLHF source: PPO on a small LM with a sentiment reward.
    SentimentRlhf(crate::rlhf::source::SentimentRlhfConfig),
    /// RLHF histories read from TRLx rollout logs (`task.path`).
    TrlxLogs(crate::rlhf::task::TrlxLogsTask),
}

impl TaskSpec {
    pub fn name(&self) -> &str {
        match self {
            TaskSpec::Rl(t) => &t.name,
            TaskSpec::SentimentRlhf(t) => &t.name,
            TaskSpec::TrlxLogs(t) => &t.name,
        }
    }

    pub fn is_rlhf(&self) -> bool {
        !matches!(self, TaskSpec::Rl(_))
    }

    /// The RL task, or an error naming what this task is instead.
    pub fn rl(&self) -> anyhow::Result<&TaskConfig> {
        match self {
            TaskSpec::Rl(t) => Ok(t),
            _ => anyhow::bail!(
                "task `{}` produces RLHF histories, not RL ones: this needs an RL task \
                 (e.g. task=darkroom)",
                self.name()
            ),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        match self {
            TaskSpec::Rl(t) => t.validate(),
            TaskSpec::SentimentRlhf(t) => t.validate(),
            TaskSpec::TrlxLogs(t) => t.validate(),
        }
    }
}

/// Where runs and data caches go (relative paths are relative to the working directory).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathsConfig {
    pub runs: PathBuf,
    pub data: PathBuf,
}

/// A config composed, resolved and typed, with what produced it.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub composed: Composed,
    pub typed: AdlabConfig,
    pub overrides: Vec<Override>,
    pub config_dir: PathBuf,
}

impl LoadedConfig {
    /// The resolved config as YAML.
    pub fn yaml(&self) -> String {
        config::yaml::to_yaml_string(&self.composed.config)
    }
}

/// Composes, resolves, types and validates the config of `config_dir` with `overrides`.
pub fn load(config_dir: &Path, overrides: &[Override]) -> Result<LoadedConfig, ConfigError> {
    let repo = ConfigRepo::new(config_dir)?;
    let composed = config::compose(&repo, overrides, ComposeOptions::default())?;
    let typed = typed_config(&composed.config)?;
    Ok(LoadedConfig {
        composed,
        typed,
        overrides: overrides.to_vec(),
        config_dir: config_dir.to_path_buf(),
    })
}

/// Types and validates a resolved config tree.
pub fn typed_config(tree: &Node) -> Result<AdlabConfig, ConfigError> {
    let typed: AdlabConfig = extract::extract(tree)?;
    validate(&typed, tree)?;
    Ok(typed)
}

/// Checks beyond types: ranges and combinations, each naming the key.
fn validate(c: &AdlabConfig, tree: &Node) -> Result<(), ConfigError> {
    let fail = |key: &str, expected: &str| {
        Err(ConfigError::InvalidValue {
            key: key.to_string(),
            value: tree
                .get(key)
                .map(|n| n.value.to_inline())
                .unwrap_or_default(),
            expected: expected.to_string(),
            origin: tree
                .get(key)
                .map(|n| n.source.to_string())
                .unwrap_or_default(),
        })
    };
    if c.name.is_empty()
        || c.name.contains(['/', '\\'])
        || c.name.chars().any(char::is_control)
        || c.name == "."
        || c.name == ".."
    {
        return fail(
            "name",
            "a non-empty run name without path separators or control characters (newlines, tabs)",
        );
    }
    if crate::device::DeviceRequest::parse(&c.device).is_err() {
        return fail("device", "`cpu`, `cuda:N` or `auto`");
    }
    if c.train.steps == 0 {
        return fail("train.steps", "at least 1");
    }
    if c.train.batch_size == 0 {
        return fail("train.batch_size", "at least 1");
    }
    if c.train.grad_accum == 0 || !c.train.batch_size.is_multiple_of(c.train.grad_accum) {
        return fail(
            "train.grad_accum",
            "at least 1 and a divisor of train.batch_size",
        );
    }
    if c.train.log_every == 0 {
        return fail("train.log_every", "at least 1");
    }
    if c.train.threads == crate::train::config::Threads::Count(0) {
        return fail("train.threads", "at least 1");
    }
    if let Some(e) = &c.eval {
        if e.temperature < 0.0 || !e.temperature.is_finite() {
            return fail("eval.temperature", "a finite number >= 0 (0 = greedy)");
        }
        if e.enabled && e.episodes == 0 {
            return fail("eval.episodes", "at least 1 when eval.enabled");
        }
        if !(0.0..1.0).contains(&e.context_kept) {
            return fail(
                "eval.context_kept",
                "a fraction in [0, 1) of the context kept when the window slides",
            );
        }
        if e.summary_k == 0 {
            return fail(
                "eval.summary_k",
                "at least 1 (episodes averaged at each end)",
            );
        }
        if let TaskSpec::Rl(t) = &c.task {
            if e.enabled && e.tasks > 0 && t.split.test_fraction <= 0.0 {
                return fail(
                    "task.split.test_fraction",
                    "more than 0 when evaluating on held-out tasks (eval.tasks > 0): with 0 no \
                     task is held out; set eval.tasks=0 or eval.enabled=false to evaluate without",
                );
            }
        }
    }
    let ranges = crate::schema_checks::check_model(&c.model)
        .and_then(|()| crate::schema_checks::check_optimizer(&c.optimizer));
    if let Err((key, expected)) = ranges {
        return fail(key, &expected);
    }
    crate::formats::config::check_compatible(&c.format, &c.model, tree)?;
    match (c.task.is_rlhf(), c.format.kind()) {
        (false, "rlhf_text") => {
            return fail(
                "format.kind",
                "a format of RL histories (rl or language): `rlhf_text` is for RLHF tasks",
            )
        }
        (true, "language") => {
            return fail(
                "format.kind",
                "`rlhf_text` for an RLHF task with model=causal_lm (or `rl`, token by token, \
                 with model=rl_heads)",
            )
        }
        _ => {}
    }
    c.task.validate().map_err(|e| constraint(e, tree))?;
    if let Some(sp) = c
        .eval
        .as_ref()
        .and_then(|e| e.rlhf.as_ref())
        .and_then(|r| r.self_play.as_ref())
    {
        sp.validate().map_err(|e| constraint(e, tree))?;
    }
    // A template or value setting that cannot render this task's steps fails here, before
    // any data is generated.
    if let (FormatConfig::Language(f), Ok(rl)) = (&c.format, c.task.rl()) {
        crate::formats::language::LanguageFormat::new(f, &rl.env.spec())
            .map_err(|e| constraint(e, tree))?;
    }
    c.optimizer.validate().map_err(|e| constraint(e, tree))?;
    Ok(())
}

/// Wraps a section's own validation error, adding where the key it names came from.
fn constraint(e: anyhow::Error, tree: &Node) -> ConfigError {
    let message = format!("{e:#}");
    // The first dotted word of the message that is a key of the tree.
    let origin = message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter(|w| w.contains('.'))
        .find_map(|w| tree.get(w.trim_matches('.')))
        .map(|n| n.source.to_string())
        .unwrap_or_else(|| "the composed config".into());
    ConfigError::Constraint { message, origin }
}
