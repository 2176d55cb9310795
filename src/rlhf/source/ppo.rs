//! One PPO run on the policy, as TRLx's `AcceleratePPOTrainer` does it: each epoch samples
//! prompts, generates completions in chunks, scores them, computes per-token rewards (KL
//! penalty against the frozen reference, the score added on the last token), values, GAE
//! advantages, then `ppo_epochs` passes of clipped policy + clipped value loss in shuffled
//! minibatches; the adaptive KL controller updates once per epoch. Every epoch's rollouts are
//! logged with the behaviour policy's logprobs and values.

use super::config::{PpoConfig, SentimentRlhfConfig};
use super::kl::KlController;
use super::policy::{adamw_config, pad_prompt, response_logprobs, Policy};
use super::reward::{build_reward, RewardModel};
use super::sample::generate;
use crate::models::CausalLm;
use crate::optim::clip::clip_global_norm;
use crate::optim::{AdamW, Gradients};
use crate::rlhf::{RlhfEpoch, RlhfRun, Rollout};
use crate::tasks::source::advantage::{gae, whiten};
use crate::tokenizer::TextTokenizer;
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::Rng;

/// Epoch `i` of every run is logged with timestamp `BASE_TIMESTAMP + i`: deterministic (not
/// wall-clock), so the same config and seed give identical runs, and ordered.
pub const BASE_TIMESTAMP: f64 = 1_700_000_000.0;

/// One rollout's training data (behaviour-policy statistics, padded layout).
#[derive(Debug, Clone)]
pub struct Experience {
    /// Padded prompt + response padded with end-of-text to `max_new_tokens`.
    pub ids: Vec<u32>,
    /// Real response tokens (the rest of the row is padding).
    pub n: usize,
    pub logprobs: Vec<f32>,
    pub values: Vec<f32>,
    pub advantages: Vec<f32>,
    pub returns: Vec<f32>,
}

/// The PPO objective of a minibatch and its parts.
pub struct PpoLoss {
    pub loss: Tensor,
    pub pg_loss: f32,
    pub vf_loss: f32,
}

fn padded(rows: impl Iterator<Item = Vec<f32>>, r: usize) -> Vec<f32> {
    rows.flat_map(|mut v| {
        v.resize(r, 0.0);
        v
    })
    .collect()
}

/// TRLx's loss: `pg = mean(max(-A ratio, -A clip(ratio, 1 ± cliprange)))`,
/// `vf = 0.5 mean(max((V - R)^2, (clip(V, V_old ± cliprange_value) - R)^2))`,
/// `loss = pg + vf_coef vf`, means over real response tokens; advantages whitened over the
/// minibatch's real tokens.
pub fn ppo_loss(
    policy: &Policy,
    batch: &[&Experience],
    ppo: &PpoConfig,
    r: usize,
) -> Result<PpoLoss> {
    let b = batch.len();
    let dev = &Device::Cpu;
    let width = batch[0].ids.len();
    let ids: Vec<u32> = batch.iter().flat_map(|e| e.ids.iter().copied()).collect();
    let ids = Tensor::from_vec(ids, (b, width), dev)?;
    let mask: Vec<f32> = batch
        .iter()
        .flat_map(|e| (0..r).map(move |t| f32::from(u8::from(t < e.n))))
        .collect();
    let mut adv: Vec<f32> = batch.iter().flat_map(|e| e.advantages.clone()).collect();
    whiten(&mut adv);
    let mut adv_rows = Vec::with_capacity(b);
    let mut offset = 0;
    for e in batch {
        adv_rows.push(adv[offset..offset + e.n].to_vec());
        offset += e.n;
    }
    let shape = (b, r);
    let tensor = |v: Vec<f32>| Tensor::from_vec(v, shape, dev);
    let mask = tensor(mask)?;
    let n_tokens = offset.max(1) as f64;
    let adv = tensor(padded(adv_rows.into_iter(), r))?;
    let old_lp = tensor(padded(batch.iter().map(|e| e.logprobs.clone()), r))?;
    let old_v = tensor(padded(batch.iter().map(|e| e.values.clone()), r))?;
    let returns = tensor(padded(batch.iter().map(|e| e.returns.clone()), r))?;

    let (logprobs, values) = policy.evaluate(&ids, r)?;
    let cv = ppo.cliprange_value;
    let v_clipped = values.maximum(&(&old_v - cv)?)?.minimum(&(&old_v + cv)?)?;
    let vf1 = (&values - &returns)?.sqr()?;
    let vf2 = (&v_clipped - &returns)?.sqr()?;
    let vf_loss = (vf1.maximum(&vf2)? * &mask)?
        .sum_all()?
        .affine(0.5 / n_tokens, 0.0)?;
    let ratio = ((&logprobs - &old_lp)? * &mask)?.exp()?;
    let c = ppo.cliprange;
    let pg1 = (adv.neg()? * &ratio)?;
    let pg2 = (adv.neg()? * ratio.clamp(1.0 - c, 1.0 + c)?)?;
    let pg_loss = (pg1.maximum(&pg2)? * &mask)?
        .sum_all()?
        .affine(1.0 / n_tokens, 0.0)?;
    let loss = (&pg_loss + vf_loss.affine(ppo.vf_coef, 0.0)?)?;
    Ok(PpoLoss {
        loss,
        pg_loss: pg_loss.to_scalar()?,
        vf_loss: vf_loss.to_scalar()?,
    })
}

/// Everything one run needs besides its index (shared, read-only).
pub struct RunInputs<'a> {
    pub cfg: &'a SentimentRlhfConfig,
    pub seed: u64,
    pub tokenizer: &'a TextTokenizer,
    /// The prompt pool.
    pub prompts: &'a [String],
    /// The pretrained policy every run starts from.
    pub base: &'a Policy,
}

/// The run's uuid-like id (8-4-4-4-12 hex), a function of the seed and run index.
pub fn run_id(seed: u64, run: usize) -> String {
    let a = crate::seed::derive_seed(seed, "rlhf-run-id", &[run as u64, 0]);
    let b = crate::seed::derive_seed(seed, "rlhf-run-id", &[run as u64, 1]);
    let h = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The run's hyperparameters as a flat JSON object (TRLx's key names).
fn run_config(
    inputs: &RunInputs,
    ppo: &PpoConfig,
    run: usize,
    reward: &(String, super::config::RewardConfig),
) -> serde_json::Value {
    let (cfg, g, p) = (inputs.cfg, &inputs.cfg.gen, &inputs.cfg.policy);
    serde_json::json!({
        "task": cfg.name, "source": "sentiment_rlhf", "seed": inputs.seed, "run_index": run,
        "lr": ppo.lr, "init_kl_coef": ppo.init_kl_coef, "target": ppo.target,
        "horizon": ppo.horizon, "gamma": ppo.gamma, "lam": ppo.lam, "cliprange": ppo.cliprange,
        "cliprange_value": ppo.cliprange_value, "vf_coef": ppo.vf_coef,
        "ppo_epochs": ppo.ppo_epochs, "num_rollouts": ppo.num_rollouts,
        "chunk_size": ppo.chunk_size, "batch_size": ppo.batch_size, "epochs": ppo.epochs,
        "grad_clip": ppo.grad_clip,
        "max_new_tokens": g.max_new_tokens, "top_k": g.top_k, "top_p": g.top_p,
        "temperature": g.temperature,
        "model": "gpt2", "d_model": p.d_model, "n_layers": p.n_layers, "n_heads": p.n_heads,
        "d_ff": p.d_ff, "context": p.context, "vocab_size": inputs.tokenizer.vocab_size(),
        "reward": reward.0, "reward_model": reward.1.describe(),
    })
}

/// Per-row, per-response-position statistics of a rollout batch (`[rows][r]`).
struct BehaviourStats {
    logprobs: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    ref_logprobs: Vec<Vec<f32>>,
}

/// Logprobs and values of the behaviour policy and the reference's logprobs.
fn behaviour_stats(
    policy: &Policy,
    reference: &CausalLm,
    ids: &[Vec<u32>],
    r: usize,
    chunk: usize,
) -> Result<BehaviourStats> {
    let (mut lp, mut v, mut ref_lp) = (Vec::new(), Vec::new(), Vec::new());
    for rows in ids.chunks(chunk) {
        let t = Tensor::from_vec(rows.concat(), (rows.len(), rows[0].len()), &Device::Cpu)?;
        let (l, val) = policy.evaluate(&t, r)?;
        lp.extend(l.to_vec2::<f32>()?);
        v.extend(val.to_vec2::<f32>()?);
        ref_lp.extend(response_logprobs(reference, &t, r)?.to_vec2::<f32>()?);
    }
    Ok(BehaviourStats {
        logprobs: lp,
        values: v,
        ref_logprobs: ref_lp,
    })
}

/// Per-epoch summary (for logs and tests).
#[derive(Debug, Clone, Copy)]
pub struct EpochStats {
    pub mean_score: f32,
    pub mean_kl: f64,
    pub kl_coef: f64,
}

/// Runs PPO run `run` from the pretrained policy; `on_epoch` sees each epoch's stats.
pub fn run_ppo(
    inputs: &RunInputs,
    run: usize,
    mut on_epoch: impl FnMut(&EpochStats),
) -> Result<RlhfRun> {
    let cfg = inputs.cfg;
    let ppo = cfg.ppo_for_run(inputs.seed, run)?;
    let gen = &cfg.gen;
    let r = gen.max_new_tokens;
    let tok = inputs.tokenizer;
    let eos = tok.end_of_text_id();
    let policy = inputs.base.try_clone(&cfg.policy)?;
    let reference = inputs.base.frozen_copy()?;
    let task_reward = cfg.reward_of_run(run)?;
    let mut reward: Box<dyn RewardModel + Send> = build_reward(&task_reward.1)?;
    let params = policy.params();
    let mut opt = AdamW::new(&adamw_config(ppo.lr), &params)?;
    let mut kl = KlController::new(ppo.init_kl_coef, ppo.target, ppo.horizon);
    let stream = |label: &str| crate::seed::rng(inputs.seed, label, &[run as u64]);
    let (mut prompt_rng, mut gen_rng, mut shuffle_rng) = (
        stream("rlhf-rollout-prompts"),
        stream("rlhf-sample"),
        stream("rlhf-minibatches"),
    );
    let mut epochs = Vec::with_capacity(ppo.epochs);
    for epoch in 0..ppo.epochs {
        // Rollouts.
        let chosen: Vec<&String> = (0..ppo.num_rollouts)
            .map(|_| &inputs.prompts[prompt_rng.random_range(0..inputs.prompts.len())])
            .collect();
        let queries = chosen
            .iter()
            .map(|p| tok.encode(p))
            .collect::<Result<Vec<_>>>()?;
        let padded_queries = queries
            .iter()
            .map(|q| pad_prompt(q, eos))
            .collect::<Result<Vec<_>>>()?;
        let mut responses = Vec::with_capacity(ppo.num_rollouts);
        for chunk in padded_queries.chunks(ppo.chunk_size) {
            responses.extend(generate(&policy.lm, chunk, gen, eos, &mut gen_rng)?);
        }
        let ids: Vec<Vec<u32>> = padded_queries
            .iter()
            .zip(&responses)
            .map(|(q, resp)| {
                let mut row = q.clone();
                row.extend(resp);
                row.resize(q.len() + r, eos);
                row
            })
            .collect();
        let BehaviourStats {
            logprobs,
            values,
            ref_logprobs,
        } = behaviour_stats(&policy, &reference, &ids, r, ppo.chunk_size)?;
        let texts = responses
            .iter()
            .map(|resp| tok.decode(resp))
            .collect::<Result<Vec<_>>>()?;
        let pairs: Vec<(String, String)> = chosen
            .iter()
            .zip(&texts)
            .map(|(p, c)| (p.to_string(), c.clone()))
            .collect();
        let scores = reward
            .score(&pairs)
            .with_context(|| format!("scoring the rollouts of run {run}, epoch {epoch}"))?;

        // Rewards, advantages, log.
        let coef = kl.value() as f32;
        let mut rollouts = Vec::with_capacity(ppo.num_rollouts);
        let mut experience = Vec::with_capacity(ppo.num_rollouts);
        let mut kl_sum = 0.0f64;
        for i in 0..ids.len() {
            let n = responses[i].len();
            let lp = logprobs[i][..n].to_vec();
            let v = values[i][..n].to_vec();
            let mut rewards: Vec<f32> = lp
                .iter()
                .zip(&ref_logprobs[i][..n])
                .map(|(a, b)| {
                    kl_sum += f64::from(a - b);
                    -coef * (a - b)
                })
                .collect();
            rewards[n - 1] += scores[i];
            let (advantages, returns) =
                gae(&rewards, &v, &[], 0.0, ppo.gamma as f32, ppo.lam as f32);
            rollouts.push(Rollout {
                query_ids: queries[i].clone(),
                response_ids: responses[i].clone(),
                query_text: pairs[i].0.clone(),
                response_text: pairs[i].1.clone(),
                logprobs: Some(lp.clone()),
                values: Some(v.clone()),
                rewards: Some(rewards),
                score: Some(scores[i]),
            });
            experience.push(Experience {
                ids: ids[i].clone(),
                n,
                logprobs: lp,
                values: v,
                advantages,
                returns,
            });
        }
        let stats = EpochStats {
            mean_score: scores.iter().sum::<f32>() / scores.len() as f32,
            mean_kl: kl_sum / ids.len() as f64,
            kl_coef: kl.value(),
        };
        epochs.push(RlhfEpoch {
            timestamp: BASE_TIMESTAMP + epoch as f64,
            rollouts,
        });

        // Optimisation.
        let mut order: Vec<usize> = (0..experience.len()).collect();
        for _ in 0..ppo.ppo_epochs {
            order.shuffle(&mut shuffle_rng);
            for mb in order.chunks(ppo.batch_size) {
                let batch: Vec<&Experience> = mb.iter().map(|&i| &experience[i]).collect();
                let loss = ppo_loss(&policy, &batch, &ppo, r)?;
                if !loss.pg_loss.is_finite() || !loss.vf_loss.is_finite() {
                    anyhow::bail!(
                        "run {run}, epoch {epoch}: non-finite PPO loss (pg {}, vf {}); lower \
                         task.ppo.lr",
                        loss.pg_loss,
                        loss.vf_loss
                    );
                }
                let mut grads = Gradients::from_store(&loss.loss.backward()?, &params)?;
                clip_global_norm(&mut grads, ppo.grad_clip);
                opt.step(&params, &grads, ppo.lr)?;
            }
        }
        kl.update(stats.mean_kl, ppo.num_rollouts);
        tracing::debug!(
            "sentiment_rlhf run {run} epoch {epoch}: score {:.3}, kl {:.3}, kl_coef {:.4}",
            stats.mean_score,
            stats.mean_kl,
            stats.kl_coef
        );
        on_epoch(&stats);
    }
    Ok(RlhfRun {
        id: run_id(inputs.seed, run),
        config: run_config(inputs, &ppo, run, &task_reward),
        epochs,
    })
}
