//! Tabular Q-learning with an ε-greedy behaviour policy, ε decaying linearly per episode.
//! Greedy ties are broken uniformly at random (an untrained table is all ties), and the
//! recorded log-probability is exact for that policy: ε/|A| + (1−ε)/k for one of k tied
//! greedy actions, ε/|A| otherwise.

use super::{Observation, SourceAlgorithm, SourceRng};
use crate::tasks::config::QLearningConfig;
use crate::tasks::env::Transition;
use rand::Rng;

#[derive(Debug, Clone)]
pub struct QLearning {
    q: Vec<f32>,
    n_actions: usize,
    lr: f32,
    gamma: f32,
    epsilon_start: f32,
    epsilon_end: f32,
    decay_episodes: usize,
    epsilon: f32,
    /// `greedy_logp[k]`: log-probability of one of k tied greedy actions at the current ε.
    greedy_logp: Vec<f32>,
    other_logp: f32,
}

impl QLearning {
    pub fn new(cfg: &QLearningConfig, n_states: usize, n_actions: usize) -> QLearning {
        let mut q = QLearning {
            q: vec![cfg.q_init as f32; n_states * n_actions],
            n_actions,
            lr: cfg.lr as f32,
            gamma: cfg.gamma as f32,
            epsilon_start: cfg.epsilon_start as f32,
            epsilon_end: cfg.epsilon_end as f32,
            decay_episodes: cfg.epsilon_decay_episodes,
            epsilon: cfg.epsilon_start as f32,
            greedy_logp: vec![0.0; n_actions + 1],
            other_logp: 0.0,
        };
        q.begin_episode(0);
        q
    }

    /// ε of an episode: linear from start to end over `decay_episodes`, then flat.
    pub fn epsilon_at(&self, episode: usize) -> f32 {
        if self.decay_episodes == 0 || episode >= self.decay_episodes {
            return self.epsilon_end;
        }
        let frac = episode as f32 / self.decay_episodes as f32;
        self.epsilon_start + (self.epsilon_end - self.epsilon_start) * frac
    }

    pub fn q_values(&self, state: u32) -> &[f32] {
        let s = state as usize * self.n_actions;
        &self.q[s..s + self.n_actions]
    }
}

impl SourceAlgorithm for QLearning {
    fn begin_episode(&mut self, episode: usize) {
        self.epsilon = self.epsilon_at(episode);
        let a = self.n_actions as f32;
        let explore = self.epsilon / a;
        self.other_logp = explore.ln();
        for k in 1..=self.n_actions {
            self.greedy_logp[k] = (explore + (1.0 - self.epsilon) / k as f32).ln();
        }
    }

    #[inline]
    fn act(&mut self, obs: Observation, rng: &mut SourceRng) -> (usize, f32) {
        let n = self.n_actions;
        let s = obs.state as usize * n;
        let row = &self.q[s..s + n];
        let best = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let ties = row.iter().filter(|&&v| v == best).count();
        let action = if rng.random::<f32>() < self.epsilon {
            rng.random_range(0..n)
        } else {
            let pick = if ties == 1 {
                0
            } else {
                rng.random_range(0..ties)
            };
            row.iter()
                .enumerate()
                .filter(|(_, &v)| v == best)
                .nth(pick)
                .map_or(0, |(a, _)| a)
        };
        let logp = if row[action] == best {
            self.greedy_logp[ties]
        } else {
            self.other_logp
        };
        (action, logp)
    }

    #[inline]
    fn learn(
        &mut self,
        obs: Observation,
        action: usize,
        tr: Transition,
        next: Observation,
        _rng: &mut SourceRng,
    ) {
        let n = self.n_actions;
        let bootstrap = if tr.terminated {
            0.0
        } else {
            let ns = next.state as usize * n;
            self.q[ns..ns + n]
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max)
        };
        let i = obs.state as usize * n + action;
        let target = tr.reward + self.gamma * bootstrap;
        self.q[i] += self.lr * (target - self.q[i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::rng;
    use crate::tasks::config::TaskConfig;
    use crate::tasks::source::run_source;
    use crate::tasks::suite::TaskSuite;

    fn cfg() -> QLearningConfig {
        QLearningConfig {
            lr: 0.5,
            gamma: 0.9,
            epsilon_start: 1.0,
            epsilon_end: 0.1,
            epsilon_decay_episodes: 10,
            q_init: 0.0,
        }
    }

    #[test]
    fn logprobs_are_those_of_the_epsilon_greedy_policy() {
        let mut q = QLearning::new(&cfg(), 2, 4);
        q.begin_episode(10); // ε = 0.1
        q.q[0..4].copy_from_slice(&[0.0, 1.0, 1.0, 0.5]);
        let mut r = rng(0, "q", &[]);
        let mut counts = [0usize; 4];
        let n = 40_000;
        for _ in 0..n {
            let (a, lp) = q.act(
                Observation {
                    state: 0,
                    features: &[],
                },
                &mut r,
            );
            counts[a] += 1;
            let want: f32 = if a == 1 || a == 2 {
                0.025 + 0.45
            } else {
                0.025
            };
            assert!((lp - want.ln()).abs() < 1e-6);
        }
        for (a, p) in [0.025, 0.475, 0.475, 0.025].iter().enumerate() {
            let f = counts[a] as f64 / n as f64;
            assert!((f - p).abs() < 0.01, "action {a}: {f} vs {p}");
        }
    }

    #[test]
    fn epsilon_decays_linearly_then_stays() {
        let q = QLearning::new(&cfg(), 1, 2);
        assert_eq!(q.epsilon_at(0), 1.0);
        assert!((q.epsilon_at(5) - 0.55).abs() < 1e-6);
        assert_eq!(q.epsilon_at(10), 0.1);
        assert_eq!(q.epsilon_at(1000), 0.1);
    }

    #[test]
    fn learns_darkroom_to_ninety_percent_of_optimal() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/conf/task/darkroom.yaml"
        ))
        .expect("conf/task/darkroom.yaml");
        let cfg = TaskConfig::from_yaml(&text).unwrap();
        let suite = TaskSuite::from_config(&cfg).unwrap();
        let episodes = cfg.histories.episodes;
        let tail = episodes / 10;
        let (mut got, mut best) = (0.0f32, 0.0f32);
        // A spread of goals: near, far corner, edge.
        for task in [0, 10, 40, 44, 80] {
            let h = run_source(&cfg, &suite, task, 0, episodes).unwrap();
            let mean = h.episode_returns[episodes - tail..].iter().sum::<f32>() / tail as f32;
            got += mean;
            best += suite.optimal_return(task).unwrap();
            assert!(
                mean >= 0.8 * suite.optimal_return(task).unwrap(),
                "task {task}: {mean}"
            );
        }
        assert!(
            got >= 0.9 * best,
            "mean tail return {got} vs optimal {best}"
        );
    }
}
