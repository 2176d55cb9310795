//! Seeded sampling of completions: temperature, then top-k, then top-p (Hugging Face's order),
//! decoded step by step with the model's KV cache.

use super::config::GenConfig;
use crate::models::CausalLm;
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Draws one token id from `logits` (one row) under the sampling settings.
pub fn sample_token(logits: &[f32], gen: &GenConfig, rng: &mut ChaCha8Rng) -> u32 {
    let t = gen.temperature as f32;
    let mut order: Vec<usize> = (0..logits.len()).collect();
    // Descending by logit; ties by id, so the draw is a function of the logits alone.
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if gen.top_k > 0 {
        order.truncate(gen.top_k.max(1));
    }
    let max = logits[order[0]] / t;
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| f64::from((logits[i] / t - max).exp()))
        .collect();
    let total: f64 = weights.iter().sum();
    // Nucleus: the smallest prefix whose mass reaches top_p (at least one token).
    let mut keep = weights.len();
    if gen.top_p < 1.0 {
        let mut mass = 0.0;
        for (i, w) in weights.iter().enumerate() {
            mass += w / total;
            if mass >= gen.top_p {
                keep = i + 1;
                break;
            }
        }
    }
    let kept: f64 = weights[..keep].iter().sum();
    let mut u = rng.random::<f64>() * kept;
    for (i, w) in weights[..keep].iter().enumerate() {
        if u < *w {
            return order[i] as u32;
        }
        u -= w;
    }
    order[keep - 1] as u32
}

/// Completes each padded prompt (`prompts[b]`, all the same length) with up to
/// `gen.max_new_tokens` sampled tokens; a row stops after its first end-of-text, which is kept
/// (it is an action the policy chose).
pub fn generate(
    lm: &CausalLm,
    prompts: &[Vec<u32>],
    gen: &GenConfig,
    eos: u32,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Vec<u32>>> {
    let b = prompts.len();
    let p = prompts.first().map_or(0, Vec::len);
    if b == 0 || p == 0 || prompts.iter().any(|r| r.len() != p) {
        bail!("generate needs non-empty prompts padded to one length");
    }
    let mut cache = lm.new_cache();
    let mut responses = vec![Vec::new(); b];
    let mut done = vec![false; b];
    let mut input = Tensor::from_vec(prompts.concat(), (b, p), &Device::Cpu)?;
    for _ in 0..gen.max_new_tokens {
        let logits = lm.forward_cached(&input, &mut cache)?;
        let t = logits.dim(1)?;
        let last = logits.narrow(1, t - 1, 1)?.squeeze(1)?.to_vec2::<f32>()?;
        let mut next = Vec::with_capacity(b);
        for (row, logits) in last.iter().enumerate() {
            if done[row] {
                next.push(eos);
                continue;
            }
            let token = sample_token(logits, gen, rng);
            responses[row].push(token);
            done[row] = token == eos;
            next.push(token);
        }
        if done.iter().all(|d| *d) {
            break;
        }
        input = Tensor::from_vec(next, (b, 1), &Device::Cpu)?;
    }
    Ok(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen(top_k: usize, top_p: f64, temperature: f64) -> GenConfig {
        GenConfig {
            max_new_tokens: 4,
            top_k,
            top_p,
            temperature,
        }
    }

    fn histogram(logits: &[f32], g: &GenConfig) -> Vec<usize> {
        let mut rng = crate::seed::rng(0, "t", &[]);
        let mut h = vec![0; logits.len()];
        for _ in 0..4000 {
            h[sample_token(logits, g, &mut rng) as usize] += 1;
        }
        h
    }

    #[test]
    fn top_k_top_p_and_temperature_restrict_the_draw() {
        let logits = [2.0f32, 1.0, 0.0, -1.0];
        let all = histogram(&logits, &gen(0, 1.0, 1.0));
        assert!(all.iter().all(|&c| c > 0), "{all:?}");
        // p = (0.64, 0.24, 0.09, 0.03): frequencies within a few percent.
        assert!((all[0] as f64 / 4000.0 - 0.644).abs() < 0.03, "{all:?}");
        assert_eq!(histogram(&logits, &gen(2, 1.0, 1.0))[2..], [0, 0]);
        assert_eq!(histogram(&logits, &gen(0, 0.85, 1.0))[2..], [0, 0]);
        assert_eq!(histogram(&logits, &gen(0, 0.5, 1.0))[1..], [0, 0, 0]);
        let cold = histogram(&logits, &gen(0, 1.0, 0.05));
        assert_eq!(cold[0], 4000);
    }
}
