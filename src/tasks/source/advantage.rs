//! Generalised advantage estimation and whitening: one GAE for both PPO sources (the RL
//! source's rollouts of environment steps, the RLHF source's responses, as TRLx computes
//! them).

/// GAE over a rollout: `delta_t = r_t + gamma V_{t+1} live_t - V_t`,
/// `A_t = delta_t + gamma lam live_t A_{t+1}`, returns `A_t + V_t`. `ends[t]` marks a
/// transition that ended an episode (`live_t = 0`: nothing bootstraps across it; an empty
/// `ends` has none); `last_value` is V of the state after the last transition (0 for an
/// RLHF response, which ends after its last token).
pub fn gae(
    rewards: &[f32],
    values: &[f32],
    ends: &[bool],
    last_value: f32,
    gamma: f32,
    lam: f32,
) -> (Vec<f32>, Vec<f32>) {
    let n = rewards.len();
    let mut advantages = vec![0.0f32; n];
    let mut last = 0.0f32;
    for t in (0..n).rev() {
        let next_value = if t + 1 == n {
            last_value
        } else {
            values[t + 1]
        };
        let live = if ends.get(t) == Some(&true) { 0.0 } else { 1.0 };
        let delta = rewards[t] + gamma * next_value * live - values[t];
        last = delta + gamma * lam * live * last;
        advantages[t] = last;
    }
    let returns = advantages.iter().zip(values).map(|(a, v)| a + v).collect();
    (advantages, returns)
}

/// Shifts to mean 0 and scales to unit (unbiased, as `torch.var`) variance in place.
pub fn whiten(xs: &mut [f32]) {
    let n = xs.len();
    if n == 0 {
        return;
    }
    let mean = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
    let var = if n > 1 {
        xs.iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / (n - 1) as f64
    } else {
        0.0
    };
    let scale = 1.0 / (var + 1e-8).sqrt();
    for x in xs {
        *x = ((f64::from(*x) - mean) * scale) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gae_matches_a_hand_computed_example() {
        // gamma 0.9, lam 0.5; rewards (0, 0, 1), values (0.5, 0.2, 0.4).
        // delta2 = 1 - 0.4 = 0.6;            A2 = 0.6
        // delta1 = 0 + 0.9*0.4 - 0.2 = 0.16;  A1 = 0.16 + 0.45*0.6 = 0.43
        // delta0 = 0 + 0.9*0.2 - 0.5 = -0.32; A0 = -0.32 + 0.45*0.43 = -0.1265
        let (a, r) = gae(&[0.0, 0.0, 1.0], &[0.5, 0.2, 0.4], &[], 0.0, 0.9, 0.5);
        for (got, want) in a.iter().zip([-0.1265f32, 0.43, 0.6]) {
            assert!((got - want).abs() < 1e-6, "{a:?}");
        }
        for (got, want) in r.iter().zip([0.3735f32, 0.63, 1.0]) {
            assert!((got - want).abs() < 1e-6, "{r:?}");
        }
        // lam = 1, gamma = 1: advantage = reward-to-go minus value.
        let (a, _) = gae(&[1.0, 2.0], &[0.0, 0.0], &[], 0.0, 1.0, 1.0);
        assert_eq!(a, [3.0, 2.0]);
        // An episode end stops bootstrapping; the last state's value bootstraps the tail.
        let (a, _) = gae(&[1.0, 1.0], &[0.0, 0.0], &[true, false], 5.0, 1.0, 1.0);
        assert_eq!(a, [1.0, 6.0]);
    }

    #[test]
    fn whitening_gives_zero_mean_unit_variance() {
        let mut xs = [1.0f32, 2.0, 3.0, 4.0];
        whiten(&mut xs);
        assert!(xs.iter().sum::<f32>().abs() < 1e-6);
        // Unbiased variance of (1..4) is 5/3.
        assert!((xs[3] - 1.5 / (5.0f32 / 3.0).sqrt()).abs() < 1e-5, "{xs:?}");
        let mut one = [5.0f32];
        whiten(&mut one);
        assert_eq!(one, [0.0]);
    }
}
