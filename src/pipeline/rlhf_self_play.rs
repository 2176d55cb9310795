//! Self-play on the reward functions of an RLHF run's task (see
//! [`crate::eval::rlhf_self_play`]): for each held-out (and some training) reward, the model
//! learning from its own history beside its context-reset control, PPO from scratch on the
//! same reward after the same number of rollouts, and the reward of completions drawn from
//! the training data. Rows for `eval.csv` (`task` = the reward's name, `episode` = the
//! iteration), lines for `completions.jsonl`, and the figures of `summary.json`.

use crate::eval::config::EvalConfig;
use crate::eval::results::{EvalRow, PolicyKind, TaskId};
use crate::eval::rlhf_eval::InContextWriter;
use crate::eval::rlhf_self_play::{
    self_play, Iteration, SelfPlayConfig, SelfPlayFigures, SelfPlaySummary,
};
use crate::rlhf::dataset::RlhfDataset;
use crate::rlhf::source::{build_reward, RewardModel};
use crate::schema::{AdlabConfig, TaskSpec};
use crate::tasks::Split;
use anyhow::Result;
use rand::seq::{IndexedRandom, SliceRandom};

/// Training completions scored for the `marginal` reference.
const MARGINAL_SAMPLE: usize = 1024;

pub struct SelfPlayOutcome {
    pub rows: Vec<EvalRow>,
    pub completions: String,
    pub summary: SelfPlaySummary,
}

fn mean(xs: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (s, n) = xs
        .into_iter()
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// A stable number for a reward's name (seeds its prompt and sampling streams).
fn name_key(name: &str) -> u64 {
    crate::seed::derive_seed(0, name, &[])
}

/// The prompts of every iteration of one self-play run: fresh grammar prompts for the
/// built-in source, else a seeded draw from the reward's own runs' prompts.
fn prompt_pool(
    cfg: &AdlabConfig,
    data: &RlhfDataset,
    runs: &[usize],
    name: &str,
    repeat: usize,
    n: usize,
) -> Vec<String> {
    let label = format!("rlhf-self-play-prompts/{name}/{repeat}");
    if let TaskSpec::SentimentRlhf(_) = &cfg.task {
        return crate::rlhf::source::prompts(cfg.seed, &label, n);
    }
    let all: Vec<String> = runs
        .iter()
        .flat_map(|&i| data.runs[i].rollouts().map(|(_, r)| r.query_text.clone()))
        .collect();
    if all.is_empty() {
        return Vec::new();
    }
    let mut rng = crate::seed::rng(cfg.seed, &label, &[]);
    (0..n)
        .map(|_| all.choose(&mut rng).cloned().unwrap_or_default())
        .collect()
}

/// PPO's learning curve on a reward: per epoch, the mean score over its runs, with the
/// rollouts each epoch generated.
fn ppo_curve(data: &RlhfDataset, runs: &[usize]) -> (Vec<f64>, usize) {
    let curves: Vec<Vec<Option<f32>>> = runs.iter().map(|&i| data.runs[i].score_curve()).collect();
    let epochs = curves.iter().map(Vec::len).min().unwrap_or(0);
    let curve = (0..epochs)
        .map(|e| mean(curves.iter().filter_map(|c| c[e].map(f64::from))).unwrap_or(f64::NAN))
        .collect();
    let per_epoch = runs
        .first()
        .and_then(|&i| data.runs[i].epochs.first())
        .map_or(0, |e| e.rollouts.len());
    (curve, per_epoch)
}

/// Mean score of up to [`MARGINAL_SAMPLE`] completions drawn from the training runs.
fn marginal(
    data: &RlhfDataset,
    reward: &mut dyn RewardModel,
    seed: u64,
    name: &str,
) -> Result<Option<f64>> {
    let mut pairs: Vec<(String, String)> = data
        .indices(Split::Train)
        .into_iter()
        .flat_map(|i| {
            data.runs[i]
                .rollouts()
                .map(|(_, r)| (r.query_text.clone(), r.response_text.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    pairs.shuffle(&mut crate::seed::rng(
        seed,
        "rlhf-marginal",
        &[name_key(name)],
    ));
    pairs.truncate(MARGINAL_SAMPLE);
    if pairs.is_empty() {
        return Ok(None);
    }
    let scores = reward.score(&pairs)?;
    Ok(mean(scores.iter().map(|&s| f64::from(s))))
}

/// Self-play on the rewards of both splits (`eval.tasks` held-out ones, `eval.train_tasks`
/// training ones).
pub fn run(
    cfg: &AdlabConfig,
    eval: &EvalConfig,
    sp: &SelfPlayConfig,
    data: &RlhfDataset,
    writer: &InContextWriter,
) -> Result<SelfPlayOutcome> {
    sp.validate()?;
    let p = sp.prompts_per_iteration;
    let window = ((sp.iterations as f64 * 0.2).round() as usize).clamp(1, sp.iterations);
    let mut rows = Vec::new();
    let mut completions = String::new();
    let mut figures = Vec::new();
    for (split, n) in [(Split::Test, eval.tasks), (Split::Train, eval.train_tasks)] {
        for (name, runs) in data.tasks(split).into_iter().take(n) {
            let Some(reward_cfg) = data.reward(Some(&name)) else {
                tracing::warn!(
                    "self-play skipped on reward `{name}`: the task has no reward model for it \
                     (task.reward or task.family.rewards)"
                );
                continue;
            };
            let mut reward = build_reward(reward_cfg)?;
            let task = TaskId::Name(name.clone());
            // Per policy: mean score per iteration over repeats.
            let mut curves: Vec<(PolicyKind, Vec<f64>)> = Vec::new();
            for (policy, reset) in [(PolicyKind::Model, false), (PolicyKind::ModelReset, true)] {
                let mut sums = vec![0.0f64; sp.iterations];
                for repeat in 0..sp.repeats {
                    let pool = prompt_pool(cfg, data, &runs, &name, repeat, sp.iterations * p);
                    if pool.len() < sp.iterations * p {
                        anyhow::bail!("reward `{name}` has no prompts to play on");
                    }
                    let stream = [name_key(&name), repeat as u64];
                    let (played, _) = self_play(
                        writer,
                        reward.as_mut(),
                        sp.iterations,
                        |it| pool[it * p..(it + 1) * p].to_vec(),
                        reset,
                        &stream,
                    )?;
                    for (it, iteration) in played.iter().enumerate() {
                        sums[it] += f64::from(iteration.mean_score());
                        push_lines(
                            &mut completions,
                            &name,
                            split,
                            policy,
                            repeat,
                            it,
                            iteration,
                        )?;
                    }
                }
                let curve: Vec<f64> = sums.iter().map(|s| s / sp.repeats as f64).collect();
                tracing::info!(
                    "self-play on {} reward `{name}`, {}: {}",
                    split.as_str(),
                    policy.as_str(),
                    curve
                        .iter()
                        .map(|x| format!("{x:.2}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                curves.push((policy, curve));
            }
            let (ppo, per_epoch) = ppo_curve(data, &runs);
            let ppo_at = |rollouts: usize| -> Option<f64> {
                (per_epoch > 0)
                    .then(|| ppo.get(rollouts / per_epoch).copied())
                    .flatten()
                    .filter(|x| x.is_finite())
            };
            let source: Vec<Option<f64>> = (0..sp.iterations).map(|it| ppo_at(it * p)).collect();
            let marginal = marginal(data, reward.as_mut(), cfg.seed, &name)?;
            for (policy, curve) in &curves {
                for (it, &ret) in curve.iter().enumerate() {
                    rows.push(row(&task, split, it, ret, Some(p), *policy));
                }
            }
            for (it, s) in source.iter().enumerate() {
                if let Some(s) = s {
                    rows.push(row(&task, split, it, *s, Some(p), PolicyKind::Source));
                }
                if let Some(m) = marginal {
                    rows.push(row(&task, split, it, m, None, PolicyKind::Marginal));
                }
            }
            let ends = |c: &[f64]| {
                let first = mean(c[..window].iter().copied()).unwrap_or(f64::NAN);
                let last = mean(c[c.len() - window..].iter().copied()).unwrap_or(f64::NAN);
                (first, last)
            };
            let (mf, ml) = ends(&curves[0].1);
            let (rf, rl) = ends(&curves[1].1);
            figures.push(SelfPlayFigures {
                reward: name.clone(),
                split: split.as_str().to_string(),
                window,
                model_first: mf,
                model_last: ml,
                model_gain: ml - mf,
                reset_first: rf,
                reset_last: rl,
                reset_gain: rl - rf,
                ppo_at_same_rollouts: ppo_at(sp.iterations * p),
                ppo_final: ppo.last().copied().filter(|x| x.is_finite()),
                marginal,
                source_runs: runs.len(),
            });
        }
    }
    Ok(SelfPlayOutcome {
        rows,
        completions,
        summary: SelfPlaySummary {
            iterations: sp.iterations,
            prompts_per_iteration: p,
            repeats: sp.repeats,
            rewards: figures,
        },
    })
}

fn row(
    task: &TaskId,
    split: Split,
    episode: usize,
    ret: f64,
    steps: Option<usize>,
    policy: PolicyKind,
) -> EvalRow {
    EvalRow {
        task: task.clone(),
        split,
        episode,
        ret: ret as f32,
        steps,
        policy,
    }
}

fn push_lines(
    out: &mut String,
    name: &str,
    split: Split,
    policy: PolicyKind,
    repeat: usize,
    it: usize,
    iteration: &Iteration,
) -> Result<()> {
    for ((prompt, completion), score) in iteration
        .prompts
        .iter()
        .zip(&iteration.completions)
        .zip(&iteration.scores)
    {
        out.push_str(&serde_json::to_string(&serde_json::json!({
            "reward": name, "split": split.as_str(), "policy": policy.as_str(),
            "repeat": repeat, "iteration": it,
            "rollouts_in_context": iteration.rollouts_in_context,
            "prompt": prompt, "completion": completion, "score": score,
        }))?);
        out.push('\n');
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::rlhf_eval::RlhfEvalConfig;
    use crate::formats::config::{RlhfTextFormatConfig, TokenizerConfig};
    use crate::formats::lm_window::LmWindows;
    use crate::formats::rlhf_text::RlhfTextFormat;
    use crate::formats::windows::Windows;
    use crate::models::CausalLmConfig;
    use crate::optim::{AdamW, Gradients, OptimizerConfig};
    use crate::rlhf::source::config::RewardConfig;
    use crate::rlhf::{RlhfEpoch, RlhfRun, Rollout};
    use crate::train::lm_learner::LmLearner;
    use crate::train::trainer::Learner;
    use candle_core::Device;
    use rand::seq::SliceRandom;
    use rand::Rng;

    const WORDS: [&str; 4] = ["lake", "castle", "forest", "market"];
    const PROMPT: &str = "go";

    fn format() -> RlhfTextFormatConfig {
        RlhfTextFormatConfig {
            name: "tiny".into(),
            prompt_field: "p".into(),
            completion_field: "c".into(),
            reward_field: "r".into(),
            separator: "#\n".into(),
            precision: 0,
            reward: crate::formats::config::RlhfRewardKind::Score,
            tokenizer: TokenizerConfig::Byte,
        }
    }

    fn rewarded(word: &str) -> RewardConfig {
        RewardConfig::Words {
            words: vec![word.to_string()],
        }
    }

    /// PPO epoch `t` holding one scored rollout.
    fn epoch(t: usize, prompt: &str, completion: &str, score: f32) -> RlhfEpoch {
        RlhfEpoch {
            timestamp: t as f64,
            rollouts: vec![Rollout {
                query_ids: vec![],
                response_ids: vec![],
                query_text: prompt.into(),
                response_text: completion.into(),
                logprobs: None,
                values: None,
                rewards: None,
                score: Some(score),
            }],
        }
    }

    /// A learning history on the reward that favours `target`: one rollout per epoch, an
    /// elimination bandit over the four words: untried words in a random order until one is
    /// rewarded, then that word, with a random word one time in ten.
    fn history(target: &str, index: usize, len: usize) -> RlhfRun {
        let mut rng = crate::seed::rng(7, "tiny-history", &[index as u64]);
        let mut reward = build_reward(&rewarded(target)).unwrap();
        let mut untried: Vec<&str> = WORDS.to_vec();
        untried.shuffle(&mut rng);
        let mut best: Option<&str> = None;
        let epochs = (0..len)
            .map(|t| {
                let word = match best {
                    Some(w) if !rng.random_bool(0.1) => w,
                    Some(_) => WORDS[rng.random_range(0..WORDS.len())],
                    None => untried.pop().unwrap_or(WORDS[0]),
                };
                let score = reward
                    .score(&[(PROMPT.to_string(), word.to_string())])
                    .unwrap()[0];
                if score > 0.5 {
                    best = Some(word);
                }
                epoch(t, PROMPT, word, score)
            })
            .collect();
        RlhfRun {
            id: format!("{target}-{index}"),
            config: serde_json::json!({ "reward": target }),
            epochs,
        }
    }

    fn tiny_model() -> CausalLmConfig {
        let crate::models::ModelConfig::CausalLm(mut m) =
            serde_yaml_ng::from_str(include_str!("../../conf/model/causal_lm.yaml")).unwrap()
        else {
            unreachable!("conf/model/causal_lm.yaml is a causal_lm")
        };
        m.d_model = 32;
        m.n_layers = 2;
        m.n_heads = 2;
        m.d_ff = 64;
        m.context_tokens = 160;
        m
    }

    /// An untrained tiny byte-level LM over `runs` (all training histories).
    fn tiny_learner(runs: &[RlhfRun]) -> LmLearner {
        let splits = vec![crate::tasks::Split::Train; runs.len()];
        // The byte tokenizer caches nothing, so the directory may go once built.
        let dir = tempfile::tempdir().unwrap();
        LmLearner::for_rlhf(
            &tiny_model(),
            &format(),
            runs,
            &splits,
            dir.path(),
            None,
            0,
            &Device::Cpu,
        )
        .unwrap()
    }

    fn writer_parts() -> (RlhfTextFormat, RlhfEvalConfig) {
        let cfg = RlhfEvalConfig {
            max_new_tokens: 10,
            ..Default::default()
        };
        (RlhfTextFormat::new(&format()), cfg)
    }

    /// Two rewards that favour different single words. After training on histories of both,
    /// a model writing from its own history finds the rewarded word and keeps writing it;
    /// reset every iteration it cannot, and stays at the training data's mix. A broken
    /// self-play context (not appended, wrongly rendered, not read) leaves the two equal.
    #[test]
    fn self_play_improves_above_the_context_reset_control() {
        let runs: Vec<RlhfRun> = (0..120).map(|i| history(WORDS[i % 2], i, 16)).collect();
        let mut learner = tiny_learner(&runs);
        let mut opt_cfg: OptimizerConfig =
            serde_yaml_ng::from_str(include_str!("../../conf/optimizer/adamw.yaml")).unwrap();
        opt_cfg.lr = 3e-3;
        let params = learner.params();
        let mut opt = AdamW::new(&opt_cfg, &params).unwrap();
        let (mut data_rng, mut drop_rng) = (
            crate::seed::rng(0, "tiny-data", &[]),
            crate::seed::rng(0, "tiny-dropout", &[]),
        );
        for _ in 0..1000 {
            let (loss, _) = learner
                .train_batch(16, &mut data_rng, &mut drop_rng)
                .unwrap();
            let grads = Gradients::from_store(&loss.backward().unwrap(), &params).unwrap();
            opt.step(&params, &grads, opt_cfg.lr).unwrap();
        }
        let (format, eval_cfg) = writer_parts();
        let writer = InContextWriter {
            model: &learner.model,
            tokenizer: &learner.tokenizer,
            format: &format,
            config: &eval_cfg,
            temperature: 1.0,
            seed: 3,
        };
        let (iterations, last) = (12, 4);
        let mut totals = [0.0f64; 2];
        for target in ["lake", "castle"] {
            let mut reward = build_reward(&rewarded(target)).unwrap();
            for repeat in 0..8u64 {
                for (i, reset) in [false, true].into_iter().enumerate() {
                    let (played, _) = self_play(
                        &writer,
                        reward.as_mut(),
                        iterations,
                        |_| vec![PROMPT.to_string()],
                        reset,
                        &[repeat],
                    )
                    .unwrap();
                    totals[i] += played[iterations - last..]
                        .iter()
                        .map(|it| f64::from(it.mean_score()))
                        .sum::<f64>();
                }
            }
        }
        let n = (2 * 8 * last) as f64;
        let (model, reset) = (totals[0] / n, totals[1] / n);
        eprintln!("self-play {model:.3}, context reset {reset:.3} (last {last} iterations)");
        assert!(
            model > reset + 0.15,
            "self-play {model:.3} vs context reset {reset:.3} over the last {last} iterations"
        );
    }

    /// What the model reads of its own history is exactly what training read of a source's:
    /// the self-play tokens equal the training windows' tokens of the same triples.
    #[test]
    fn self_play_history_is_rendered_exactly_as_training_renders_it() {
        let learner = tiny_learner(&[history("lake", 0, 6)]);
        let (format, eval_cfg) = writer_parts();
        let writer = InContextWriter {
            model: &learner.model,
            tokenizer: &learner.tokenizer,
            format: &format,
            config: &eval_cfg,
            temperature: 1.0,
            seed: 0,
        };
        let mut reward = build_reward(&rewarded("lake")).unwrap();
        let (played, history) = self_play(
            &writer,
            reward.as_mut(),
            5,
            |it| vec![format!("{PROMPT} {it}")],
            false,
            &[0],
        )
        .unwrap();
        // The same triples as a logged run, through the training path.
        let run = RlhfRun {
            id: "offline".into(),
            config: serde_json::Value::Null,
            epochs: played
                .iter()
                .enumerate()
                .map(|(t, it)| epoch(t, &it.prompts[0], &it.completions[0], it.scores[0]))
                .collect(),
        };
        let steps = format.render_run(&run).unwrap();
        let windows = LmWindows::from_steps(
            [(crate::tasks::Split::Train, steps)],
            &learner.tokenizer,
            4096,
        )
        .unwrap();
        let batch = windows.batch(&windows.tiling(crate::tasks::Split::Train));
        let trained: Vec<u32> = batch.targets[..history.iter().map(Vec::len).sum()].to_vec();
        assert_eq!(history.concat(), trained);
        assert_eq!(played[1].rollouts_in_context, 1);
    }
}
