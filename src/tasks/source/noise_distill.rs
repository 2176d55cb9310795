//! AD-ε noise distillation (Zisman et al., 2023): no learner at all, but ε-greedy play around
//! the task's optimal policy with ε decaying linearly over the history. The history then shows
//! steady improvement from random play to the optimum, which is what a transformer distils
//! into an in-context learner, at a fraction of a real learner's data cost. The recorded
//! log-probability is exact: (1 − ε) + ε/|A| for the expert's action, ε/|A| otherwise.

use super::{Observation, SourceAlgorithm, SourceRng};
use crate::tasks::config::NoiseDistillConfig;
use crate::tasks::env::Transition;
use rand::Rng;

#[derive(Debug, Clone)]
pub struct NoiseDistill {
    /// The expert's action in every discrete state.
    expert: Vec<u32>,
    n_actions: usize,
    epsilon_start: f32,
    epsilon_end: f32,
    decay_episodes: usize,
    epsilon: f32,
}

impl NoiseDistill {
    /// `decay_episodes` is already resolved from the config's fraction of the history.
    pub fn new(
        cfg: &NoiseDistillConfig,
        expert: Vec<u32>,
        n_actions: usize,
        decay_episodes: usize,
    ) -> NoiseDistill {
        NoiseDistill {
            expert,
            n_actions,
            epsilon_start: cfg.epsilon_start as f32,
            epsilon_end: cfg.epsilon_end as f32,
            decay_episodes,
            epsilon: cfg.epsilon_start as f32,
        }
    }

    /// ε of an episode: linear from start to end over `decay_episodes`, then flat.
    pub fn epsilon_at(&self, episode: usize) -> f32 {
        if self.decay_episodes == 0 || episode >= self.decay_episodes {
            return self.epsilon_end;
        }
        let frac = episode as f32 / self.decay_episodes as f32;
        self.epsilon_start + (self.epsilon_end - self.epsilon_start) * frac
    }
}

impl SourceAlgorithm for NoiseDistill {
    fn begin_episode(&mut self, episode: usize) {
        self.epsilon = self.epsilon_at(episode);
    }

    #[inline]
    fn act(&mut self, obs: Observation, rng: &mut SourceRng) -> (usize, f32) {
        let best = self
            .expert
            .get(obs.state as usize)
            .map_or(0, |&a| a as usize);
        let explore = self.epsilon / self.n_actions as f32;
        let action = if rng.random::<f32>() < self.epsilon {
            rng.random_range(0..self.n_actions)
        } else {
            best
        };
        let p = if action == best {
            1.0 - self.epsilon + explore
        } else {
            explore
        };
        (action, p.ln())
    }

    fn learn(
        &mut self,
        _: Observation,
        _: usize,
        _: Transition,
        _: Observation,
        _: &mut SourceRng,
    ) {
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::rng;

    fn cfg() -> NoiseDistillConfig {
        NoiseDistillConfig {
            epsilon_start: 1.0,
            epsilon_end: 0.0,
            decay_fraction: 0.9,
        }
    }

    #[test]
    fn plays_the_expert_with_probability_one_minus_epsilon_and_logs_it_exactly() {
        let mut s = NoiseDistill::new(&cfg(), vec![3, 1], 5, 10);
        s.begin_episode(6); // ε = 0.4
        let mut r = rng(0, "nd", &[]);
        let n = 40_000;
        let mut expert = 0;
        for _ in 0..n {
            let (a, lp) = s.act(
                Observation {
                    state: 0,
                    features: &[],
                },
                &mut r,
            );
            let want: f32 = if a == 3 { 0.6 + 0.08 } else { 0.08 };
            assert!((lp - want.ln()).abs() < 1e-6, "action {a}: {lp}");
            expert += usize::from(a == 3);
        }
        let f = expert as f64 / n as f64;
        assert!((f - 0.68).abs() < 0.01, "{f}");
    }

    #[test]
    fn epsilon_reaches_its_end_value_and_stays() {
        let s = NoiseDistill::new(&cfg(), vec![0], 5, 10);
        assert_eq!(s.epsilon_at(0), 1.0);
        assert!((s.epsilon_at(5) - 0.5).abs() < 1e-6);
        assert_eq!(s.epsilon_at(10), 0.0);
        assert_eq!(s.epsilon_at(99), 0.0);
    }
}
