//! Bernoulli multi-armed bandit: one dummy state, every pull is a one-step episode. Task
//! sampling implements the AD paper's adversarial split: arm means are uniform in [0, 1], and
//! the best arm is moved to an odd index with probability p for train tasks (to an even index
//! with probability p for test tasks), so a model that memorised "odd arms are good" fails on
//! the test tasks.

use super::{EnvRng, EnvSpec, Environment, RewardKind, StateSpace, Transition};
use rand::Rng;

#[derive(Debug, Clone)]
pub struct Bandit {
    means: Vec<f32>,
}

impl Bandit {
    pub fn new(means: Vec<f32>) -> Bandit {
        Bandit { means }
    }

    pub fn spec(arms: usize) -> EnvSpec {
        EnvSpec {
            kind: "bandit".into(),
            state: StateSpace::Discrete {
                n_states: 1,
                coord_names: vec![],
                coords: vec![vec![]],
            },
            action_names: (0..arms).map(|a| format!("arm{a}")).collect(),
            reward: RewardKind::Discrete {
                values: vec![0.0, 1.0],
            },
            max_episode_steps: 1,
        }
    }

    pub fn means(&self) -> &[f32] {
        &self.means
    }

    /// Expected return of always pulling the best arm.
    pub fn optimal_return(means: &[f32]) -> f32 {
        means.iter().copied().fold(0.0, f32::max)
    }

    /// Samples arm means whose best arm is odd with probability `odd_prob` (`test = false`),
    /// or even with probability `odd_prob` (`test = true`).
    pub fn sample_means(arms: usize, odd_prob: f64, test: bool, rng: &mut EnvRng) -> Vec<f32> {
        let mut means: Vec<f32> = (0..arms).map(|_| rng.random::<f32>()).collect();
        let preferred_odd = !test;
        let odd = if rng.random_bool(odd_prob.clamp(0.0, 1.0)) {
            preferred_odd
        } else {
            !preferred_odd
        };
        let candidates: Vec<usize> = (0..arms).filter(|a| (a % 2 == 1) == odd).collect();
        if !candidates.is_empty() {
            let target = candidates[rng.random_range(0..candidates.len())];
            let best = argmax(&means);
            means.swap(best, target);
        }
        means
    }
}

pub(crate) fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

impl Environment for Bandit {
    #[inline]
    fn n_actions(&self) -> usize {
        self.means.len()
    }

    fn reset(&mut self, _rng: &mut EnvRng) {}

    #[inline]
    fn step(&mut self, action: usize, rng: &mut EnvRng) -> Transition {
        let p = self
            .means
            .get(action)
            .or(self.means.first())
            .copied()
            .unwrap_or(0.0);
        Transition {
            reward: if rng.random::<f32>() < p { 1.0 } else { 0.0 },
            terminated: true,
            truncated: false,
        }
    }

    fn state_id(&self) -> u32 {
        0
    }

    fn write_features(&self, _out: &mut [f32]) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::rng;

    #[test]
    fn adversarial_split_puts_the_best_arm_on_the_promised_parity() {
        let mut r = rng(1, "bandit", &[]);
        let n = 2000;
        let odd_train = (0..n)
            .filter(|_| argmax(&Bandit::sample_means(10, 0.95, false, &mut r)) % 2 == 1)
            .count();
        let odd_test = (0..n)
            .filter(|_| argmax(&Bandit::sample_means(10, 0.95, true, &mut r)) % 2 == 1)
            .count();
        let (ftrain, ftest) = (odd_train as f64 / n as f64, odd_test as f64 / n as f64);
        assert!((ftrain - 0.95).abs() < 0.02, "train odd fraction {ftrain}");
        assert!((ftest - 0.05).abs() < 0.02, "test odd fraction {ftest}");
    }

    #[test]
    fn pulls_are_bernoulli_with_the_arm_mean() {
        let mut r = rng(2, "bandit", &[]);
        let mut env = Bandit::new(vec![0.1, 0.8]);
        let n = 20_000;
        let s: f32 = (0..n).map(|_| env.step(1, &mut r).reward).sum();
        assert!((s / n as f32 - 0.8).abs() < 0.02);
        assert!(env.step(0, &mut r).terminated);
    }
}
