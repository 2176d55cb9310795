//! The `sentiment_rlhf` task file (`conf/task/sentiment_rlhf.yaml`): story corpus, policy
//! size and pretraining, PPO hyperparameters (TRLx's names), sampling, reward, number of runs
//! and an optional random search over PPO hyperparameters. Plain serde data with
//! `deny_unknown_fields`, so a typo is an error, plus [`SentimentRlhfConfig::validate`] whose
//! errors name the full key (`task.ppo.cliprange`).

pub use crate::rlhf::family::{RewardConfig, SentimentTarget, WeightedReward};
use crate::tasks::config::{check, check_name};
use anyhow::{bail, Result};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole task file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentimentRlhfConfig {
    /// Contract key `task.name`.
    pub name: String,
    /// Data seed; callers pass it to [`super::generate_runs`].
    pub seed: u64,
    pub corpus: CorpusConfig,
    pub policy: PolicyConfig,
    pub ppo: PpoConfig,
    pub gen: GenConfig,
    /// The reward of every run (or set `family` instead).
    #[serde(default)]
    pub reward: Option<RewardConfig>,
    /// A family of reward functions, `runs` PPO runs on each; the runs of its held-out
    /// rewards are the held-out split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<crate::rlhf::family::RewardFamily>,
    /// Source PPO runs (learning histories), per reward function of a family.
    pub runs: usize,
    /// Which runs are held out for evaluation (with a `family`, the held-out rewards' runs
    /// are; this fraction is then not used).
    pub split: crate::rlhf::rollout::RunSplitConfig,
    /// Rollouts of each epoch that training contexts show (`null`: all): a few per epoch let
    /// one context span most of a PPO run (AD's subsampling of learning histories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_per_epoch: Option<usize>,
    /// Per-run random search over PPO hyperparameters: `key: {uniform|log_uniform: [lo, hi]}`
    /// or `key: {choice: [...]}`; keys are names of `ppo` fields (see [`SEARCHABLE`]).
    #[serde(default)]
    pub search: BTreeMap<String, SearchSpace>,
}

/// The prompt pool PPO samples from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusConfig {
    /// Distinct story openings drawn from the grammar with the seed.
    pub prompts: usize,
}

/// The policy (a GPT-2 `CausalLm` plus a value head) and its supervised pretraining on
/// grammar stories, which stands in for a pretrained LM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    /// Maximum tokens per sequence (prompt + completion).
    pub context: usize,
    pub pretrain_steps: usize,
    pub pretrain_lr: f64,
    pub pretrain_batch: usize,
}

/// PPO hyperparameters, named as in TRLx's `method` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PpoConfig {
    pub lr: f64,
    pub init_kl_coef: f64,
    /// Target KL of the adaptive controller; `null` keeps the KL coefficient fixed.
    #[serde(default)]
    pub target: Option<f64>,
    pub horizon: f64,
    pub gamma: f64,
    pub lam: f64,
    pub cliprange: f64,
    pub cliprange_value: f64,
    pub vf_coef: f64,
    /// Optimisation passes over each epoch's rollouts.
    pub ppo_epochs: usize,
    /// Rollouts generated per epoch.
    pub num_rollouts: usize,
    /// Generation batch.
    pub chunk_size: usize,
    /// PPO minibatch (TRLx's `train.batch_size`).
    pub batch_size: usize,
    /// PPO epochs per run (each one logged as an `RlhfEpoch`).
    pub epochs: usize,
    /// Maximum global gradient norm; 0 disables clipping.
    pub grad_clip: f64,
}

/// Sampling of completions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenConfig {
    pub max_new_tokens: usize,
    /// Keep the k most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Nucleus sampling mass; 1 keeps all.
    pub top_p: f64,
    pub temperature: f64,
}

/// A search range for one PPO hyperparameter: exactly one of `uniform: [lo, hi]`,
/// `log_uniform: [lo, hi]` or `choice: [...]`. A struct of options rather than an enum, so
/// the YAML reads `{log_uniform: [1e-4, 1e-3]}` with every YAML reader (no `!tags`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpace {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uniform: Option<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_uniform: Option<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice: Option<Vec<f64>>,
}

/// The distribution a [`SearchSpace`] names.
#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    Uniform([f64; 2]),
    LogUniform([f64; 2]),
    Choice(Vec<f64>),
}

/// PPO keys `search` may vary (`ppo_epochs` only by `choice` of whole numbers).
pub const SEARCHABLE: [&str; 10] = [
    "lr",
    "init_kl_coef",
    "target",
    "horizon",
    "gamma",
    "lam",
    "cliprange",
    "cliprange_value",
    "vf_coef",
    "ppo_epochs",
];

impl SearchSpace {
    pub fn uniform(lo: f64, hi: f64) -> Self {
        SearchSpace {
            uniform: Some([lo, hi]),
            ..Self::default()
        }
    }

    pub fn choice(values: Vec<f64>) -> Self {
        SearchSpace {
            choice: Some(values),
            ..Self::default()
        }
    }

    /// The one distribution given; `key` (the full key) names errors.
    pub fn distribution(&self, key: &str) -> Result<Distribution> {
        match (&self.uniform, &self.log_uniform, &self.choice) {
            (Some(b), None, None) => Ok(Distribution::Uniform(*b)),
            (None, Some(b), None) => Ok(Distribution::LogUniform(*b)),
            (None, None, Some(v)) => Ok(Distribution::Choice(v.clone())),
            _ => bail!(
                "invalid `{key}`: expected exactly one of `uniform: [lo, hi]`, \
                 `log_uniform: [lo, hi]`, `choice: [...]`"
            ),
        }
    }

    fn validate(&self, key: &str) -> Result<Distribution> {
        let d = self.distribution(key)?;
        match &d {
            Distribution::Uniform([lo, hi]) => check(
                lo.is_finite() && hi.is_finite() && lo <= hi,
                &format!("{key}.uniform"),
                format!("[{lo}, {hi}]"),
                "finite bounds [lo, hi] with lo <= hi",
            )?,
            Distribution::LogUniform([lo, hi]) => check(
                lo.is_finite() && hi.is_finite() && *lo > 0.0 && lo <= hi,
                &format!("{key}.log_uniform"),
                format!("[{lo}, {hi}]"),
                "positive finite bounds [lo, hi] with lo <= hi",
            )?,
            Distribution::Choice(v) => check(
                !v.is_empty() && v.iter().all(|x| x.is_finite()),
                &format!("{key}.choice"),
                format!("{v:?}"),
                "a non-empty list of finite numbers",
            )?,
        }
        Ok(d)
    }
}

impl Distribution {
    /// Draws one value (log-uniform in log space, so each decade is equally likely).
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            Distribution::Uniform([lo, hi]) => lo + (hi - lo) * rng.random::<f64>(),
            Distribution::LogUniform([lo, hi]) => {
                (lo.ln() + (hi.ln() - lo.ln()) * rng.random::<f64>()).exp()
            }
            Distribution::Choice(values) => values[rng.random_range(0..values.len())],
        }
    }

    /// The smallest (`pick = 0`) or largest (`pick = 1`) value it can draw.
    fn end(&self, pick: usize) -> f64 {
        match self {
            Distribution::Uniform(b) | Distribution::LogUniform(b) => b[pick],
            Distribution::Choice(v) if pick == 0 => v.iter().cloned().fold(f64::INFINITY, f64::min),
            Distribution::Choice(v) => v.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

impl PpoConfig {
    /// Sets a searchable key (see [`SEARCHABLE`]).
    pub fn set(&mut self, key: &str, value: f64) -> Result<()> {
        match key {
            "lr" => self.lr = value,
            "init_kl_coef" => self.init_kl_coef = value,
            "target" => self.target = Some(value),
            "horizon" => self.horizon = value,
            "gamma" => self.gamma = value,
            "lam" => self.lam = value,
            "cliprange" => self.cliprange = value,
            "cliprange_value" => self.cliprange_value = value,
            "vf_coef" => self.vf_coef = value,
            "ppo_epochs" => self.ppo_epochs = value as usize,
            _ => bail!("`{key}` is not a searchable PPO hyperparameter"),
        }
        Ok(())
    }

    /// Errors name `{prefix}.<key>`.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let k = |name: &str| format!("{prefix}.{name}");
        check(
            self.lr > 0.0 && self.lr.is_finite(),
            &k("lr"),
            self.lr,
            "a positive number",
        )?;
        check(
            self.init_kl_coef >= 0.0 && self.init_kl_coef.is_finite(),
            &k("init_kl_coef"),
            self.init_kl_coef,
            "a number >= 0",
        )?;
        if let Some(t) = self.target {
            check(
                t > 0.0 && t.is_finite(),
                &k("target"),
                t,
                "a positive KL or null",
            )?;
        }
        check(
            self.horizon > 0.0,
            &k("horizon"),
            self.horizon,
            "a positive number",
        )?;
        for (name, v) in [("gamma", self.gamma), ("lam", self.lam)] {
            check((0.0..=1.0).contains(&v), &k(name), v, "a number in [0, 1]")?;
        }
        for (name, v) in [
            ("cliprange", self.cliprange),
            ("cliprange_value", self.cliprange_value),
            ("vf_coef", self.vf_coef),
        ] {
            check(v > 0.0 && v.is_finite(), &k(name), v, "a positive number")?;
        }
        check(
            self.cliprange < 1.0,
            &k("cliprange"),
            self.cliprange,
            "less than 1",
        )?;
        check(
            self.grad_clip >= 0.0,
            &k("grad_clip"),
            self.grad_clip,
            "a number >= 0",
        )?;
        for (name, v) in [
            ("ppo_epochs", self.ppo_epochs),
            ("num_rollouts", self.num_rollouts),
            ("chunk_size", self.chunk_size),
            ("batch_size", self.batch_size),
            ("epochs", self.epochs),
        ] {
            check(v >= 1, &k(name), v, "at least 1")?;
        }
        Ok(())
    }
}

impl SentimentRlhfConfig {
    /// Parses and validates a task file.
    pub fn from_yaml(text: &str) -> Result<Self> {
        // The file's `kind: sentiment_rlhf` tags it among the task kinds (`schema::TaskSpec`).
        let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)?;
        if let Some(map) = value.as_mapping_mut() {
            map.remove("kind");
        }
        let cfg: Self = serde_yaml_ng::from_value(value)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what serde cannot; errors name the full key (`task.…`).
    pub fn validate(&self) -> Result<()> {
        self.split.validate()?;
        check_name(&self.name)?;
        check(
            self.corpus.prompts >= 1,
            "task.corpus.prompts",
            self.corpus.prompts,
            "at least 1",
        )?;
        check(self.runs >= 1, "task.runs", self.runs, "at least 1")?;
        let p = &self.policy;
        for (name, v) in [
            ("d_model", p.d_model),
            ("n_layers", p.n_layers),
            ("n_heads", p.n_heads),
            ("d_ff", p.d_ff),
            ("pretrain_batch", p.pretrain_batch),
        ] {
            check(v >= 1, &format!("task.policy.{name}"), v, "at least 1")?;
        }
        check(
            p.d_model.is_multiple_of(p.n_heads),
            "task.policy.n_heads",
            p.n_heads,
            "a divisor of task.policy.d_model",
        )?;
        check(
            p.pretrain_lr > 0.0 && p.pretrain_lr.is_finite(),
            "task.policy.pretrain_lr",
            p.pretrain_lr,
            "a positive number",
        )?;
        let needed = super::story::PROMPT_TOKENS + self.gen.max_new_tokens;
        check(
            p.context >= needed,
            "task.policy.context",
            p.context,
            &format!(
                "at least {needed} (the longest prompt, {} tokens, plus gen.max_new_tokens)",
                super::story::PROMPT_TOKENS
            ),
        )?;
        self.ppo.validate("task.ppo")?;
        let g = &self.gen;
        check(
            g.max_new_tokens >= 1,
            "task.gen.max_new_tokens",
            g.max_new_tokens,
            "at least 1",
        )?;
        check(
            g.top_p > 0.0 && g.top_p <= 1.0,
            "task.gen.top_p",
            g.top_p,
            "a number in (0, 1]",
        )?;
        check(
            g.temperature > 0.0 && g.temperature.is_finite(),
            "task.gen.temperature",
            g.temperature,
            "a positive number",
        )?;
        crate::rlhf::rollout::check_keep_per_epoch(self.keep_per_epoch)?;
        let vocabulary = super::story::Grammar::new().vocabulary();
        match (&self.reward, &self.family) {
            (Some(r), None) => r.validate("task.reward", Some(&vocabulary))?,
            (None, Some(f)) => f.validate("task.family", Some(&vocabulary))?,
            (Some(_), Some(_)) => bail!(
                "both `task.reward` and `task.family` are set: set `task.reward=null` to train \
                 on a family of rewards, or drop `task.family`"
            ),
            (None, None) => bail!(
                "neither `task.reward` nor `task.family` is set: PPO needs a reward to optimise"
            ),
        }
        self.validate_search()
    }

    /// The reward functions by name: the family's, or the single reward named by its
    /// description.
    pub fn rewards(&self) -> Vec<(String, RewardConfig)> {
        match (&self.family, &self.reward) {
            (Some(f), _) => f
                .rewards
                .iter()
                .map(|(n, r)| (n.clone(), r.clone()))
                .collect(),
            (None, Some(r)) => vec![(r.describe(), r.clone())],
            (None, None) => Vec::new(),
        }
    }

    /// Source runs in all: `runs` per reward function.
    pub fn n_runs(&self) -> usize {
        self.runs * self.rewards().len().max(1)
    }

    /// The reward (name and model) of run `run`: runs `[i·runs, (i+1)·runs)` optimise the
    /// i-th reward.
    pub fn reward_of_run(&self, run: usize) -> Result<(String, RewardConfig)> {
        let rewards = self.rewards();
        match rewards.get(run / self.runs.max(1)) {
            Some(r) => Ok(r.clone()),
            None => bail!(
                "run {run} is beyond the {} runs of the config",
                self.n_runs()
            ),
        }
    }

    fn validate_search(&self) -> Result<()> {
        let mut dists = Vec::new();
        for (key, space) in &self.search {
            let full = format!("task.search.{key}");
            if !SEARCHABLE.contains(&key.as_str()) {
                bail!(
                    "unknown key `{full}`: expected one of the PPO hyperparameters {}",
                    SEARCHABLE.join(", ")
                );
            }
            let d = space.validate(&full)?;
            if key == "ppo_epochs" {
                let whole = matches!(&d, Distribution::Choice(v)
                    if v.iter().all(|x| *x >= 1.0 && x.fract() == 0.0));
                check(
                    whole,
                    &full,
                    format!("{space:?}"),
                    "`choice` of whole numbers >= 1",
                )?;
            }
            dists.push((key, d));
        }
        // Every value the search can produce must itself be valid: check the range ends.
        for pick in [0usize, 1] {
            let mut ppo = self.ppo.clone();
            for (key, d) in &dists {
                ppo.set(key, d.end(pick))?;
            }
            ppo.validate("task.search")?;
        }
        Ok(())
    }

    /// The PPO hyperparameters of run `run`: `ppo` with the searched keys drawn from the
    /// run's own stream (keys in name order), so adding runs never changes earlier ones.
    pub fn ppo_for_run(&self, seed: u64, run: usize) -> Result<PpoConfig> {
        let mut ppo = self.ppo.clone();
        let mut rng = crate::seed::rng(seed, "rlhf-search", &[run as u64]);
        for (key, space) in &self.search {
            let d = space.distribution(&format!("task.search.{key}"))?;
            ppo.set(key, d.sample(&mut rng))?;
        }
        Ok(ppo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn default_yaml() -> &'static str {
        include_str!("../../../conf/task/sentiment_rlhf.yaml")
    }

    fn with(edit: impl FnOnce(&mut SentimentRlhfConfig)) -> String {
        let mut cfg = SentimentRlhfConfig::from_yaml(default_yaml()).unwrap();
        edit(&mut cfg);
        cfg.validate().unwrap_err().to_string()
    }

    #[test]
    fn default_file_parses_and_rejects_unknown_keys() {
        let cfg = SentimentRlhfConfig::from_yaml(default_yaml()).unwrap();
        assert_eq!(cfg.name, "sentiment_rlhf");
        let bad = default_yaml().replace("cliprange_value:", "clip_value:");
        let err = SentimentRlhfConfig::from_yaml(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("clip_value"), "{err}");
    }

    #[test]
    fn validation_names_the_full_key() {
        assert!(with(|c| c.ppo.cliprange = 0.0).contains("task.ppo.cliprange"));
        assert!(with(|c| c.ppo.gamma = 1.5).contains("task.ppo.gamma"));
        assert!(with(|c| c.gen.top_p = 0.0).contains("task.gen.top_p"));
        assert!(with(|c| c.policy.context = 4).contains("task.policy.context"));
        assert!(with(|c| c.policy.n_heads = 3).contains("task.policy.n_heads"));
        let err = with(|c| {
            c.reward = Some(RewardConfig::Command { command: vec![] });
        });
        assert!(err.contains("task.reward.command"), "{err}");
    }

    #[test]
    fn search_is_validated_and_seeded() {
        let mut cfg = SentimentRlhfConfig::from_yaml(default_yaml()).unwrap();
        cfg.search
            .insert("learning_rate".into(), SearchSpace::choice(vec![1.0]));
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("task.search.learning_rate"), "{err}");
        cfg.search.clear();
        cfg.search
            .insert("gamma".into(), SearchSpace::uniform(0.5, 2.0));
        assert!(cfg.validate().unwrap_err().to_string().contains("gamma"));
        cfg.search.clear();
        cfg.search
            .insert("ppo_epochs".into(), SearchSpace::choice(vec![1.5]));
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("task.search.ppo_epochs"));

        let text = format!(
            "{}\nsearch: {{lr: {{log_uniform: [1.0e-4, 1.0e-3]}}, \
             init_kl_coef: {{choice: [0.05, 0.1, 0.2]}}}}\n",
            default_yaml().split("\nsearch:").next().unwrap()
        );
        let cfg = SentimentRlhfConfig::from_yaml(&text).unwrap();
        let a = cfg.ppo_for_run(3, 0).unwrap();
        assert_eq!(a, cfg.ppo_for_run(3, 0).unwrap());
        assert!((1e-4..=1e-3).contains(&a.lr));
        assert!([0.05, 0.1, 0.2].contains(&a.init_kl_coef));
        let lrs: Vec<f64> = (0..5).map(|r| cfg.ppo_for_run(3, r).unwrap().lr).collect();
        assert!(lrs.windows(2).any(|w| w[0] != w[1]), "{lrs:?}");
        let bad = text.replace("log_uniform", "loguniform");
        assert!(SentimentRlhfConfig::from_yaml(&bad).is_err());
        let two = text.replace("{choice: [0.05", "{uniform: [0.1, 0.2], choice: [0.05");
        let err = SentimentRlhfConfig::from_yaml(&two)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("task.search.init_kl_coef") && err.contains("exactly one"),
            "{err}"
        );
    }
}
