//! Turning a policy's action scores into actions: greedy at temperature 0, otherwise sampled
//! from `softmax(logits / temperature)` with one seeded stream per row (per task), so a row's
//! actions do not depend on which other tasks are evaluated beside it.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Log-softmax of one row of logits.
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
    logits.iter().map(|l| l - lse).collect()
}

/// Index of the largest value (the first one on ties).
pub fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// Chooses one row's action from its logits.
pub fn choose(logits: &[f32], temperature: f64, rng: &mut ChaCha8Rng) -> usize {
    if temperature <= 0.0 {
        return argmax(logits);
    }
    let scaled: Vec<f32> = logits
        .iter()
        .map(|&l| (f64::from(l) / temperature) as f32)
        .collect();
    let probs: Vec<f32> = log_softmax(&scaled).iter().map(|l| l.exp()).collect();
    let u: f32 = rng.random();
    let mut acc = 0.0;
    for (i, p) in probs.iter().enumerate() {
        acc += p;
        if u < acc {
            return i;
        }
    }
    argmax(&probs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_argmax_and_sampling_follows_the_temperature() {
        let mut rng = crate::seed::rng(0, "t", &[]);
        assert_eq!(choose(&[0.0, 3.0, 1.0], 0.0, &mut rng), 1);
        let n = 4000;
        let ones = (0..n)
            .filter(|_| choose(&[0.0, 1.0f32.ln() + 2f32.ln()], 1.0, &mut rng) == 1)
            .count();
        // p(1) = 2/3
        assert!((ones as f64 / n as f64 - 2.0 / 3.0).abs() < 0.03, "{ones}");
        let lp = log_softmax(&[0.0, 0.0]);
        assert!((lp[0] - 0.5f32.ln()).abs() < 1e-6);
    }
}
