//! AD-ε noise distillation (Zisman et al., 2023): no learner at all, but ε-greedy play around
//! the task's optimal policy with ε decaying linearly over the history. The history then shows
//! steady improvement from random play to the optimum, which is what a transformer distils
//! into an in-context learner, at a fraction of a real learner's data cost. The recorded
//! log-probability is exact: (1 − ε) + ε/|A| for the expert's action, ε/|A| otherwise.
//!
//! With `reveal: on_reward` the player explores until it earns its first reward and only then
//! follows the expert: a learner that finds the goal by exploring and then walks to it. Plain
//! AD-ε shows expert moves before any reward, so a model imitating it learns to read the goal
//! off the moves in its context — and at evaluation reads one off its own random moves and
//! commits to it ("self-delusion"). Exploration repeats the episode's previous action with
//! probability `explore_persistence`, else draws uniformly (temporally extended ε-greedy),
//! which reaches far cells much sooner than a uniform random walk.

use super::{Observation, SourceAlgorithm, SourceRng};
use crate::tasks::config::{NoiseDistillConfig, Reveal};
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
    reveal_on_reward: bool,
    persistence: f32,
    /// A reward has been earned in this history (the expert is followed from then on).
    revealed: bool,
    /// The previous action of the current episode (for persistent exploration).
    previous: Option<usize>,
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
            reveal_on_reward: cfg.reveal == Reveal::OnReward,
            persistence: cfg.explore_persistence as f32,
            revealed: false,
            previous: None,
        }
    }

    /// Exploration before the expert is revealed: repeat the previous action with
    /// probability `persistence`, else uniform; with the exact log-probability.
    fn explore(&mut self, rng: &mut SourceRng) -> (usize, f32) {
        let n = self.n_actions;
        let uniform = (1.0 - self.persistence) / n as f32;
        let action = match self.previous {
            Some(prev) if rng.random::<f32>() < self.persistence => prev,
            _ => rng.random_range(0..n),
        };
        let p = match self.previous {
            Some(prev) if prev == action => self.persistence + uniform,
            Some(_) => uniform,
            None => 1.0 / n as f32,
        };
        (action, p.ln())
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
        self.previous = None;
    }

    #[inline]
    fn act(&mut self, obs: Observation, rng: &mut SourceRng) -> (usize, f32) {
        if self.reveal_on_reward && !self.revealed {
            let (action, logp) = self.explore(rng);
            self.previous = Some(action);
            return (action, logp);
        }
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
        self.previous = Some(action);
        (action, p.ln())
    }

    fn learn(
        &mut self,
        _: Observation,
        _: usize,
        tr: Transition,
        _: Observation,
        _: &mut SourceRng,
    ) {
        if tr.reward > 0.0 {
            self.revealed = true;
        }
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
            reveal: Reveal::Always,
            explore_persistence: 0.0,
        }
    }

    fn at(state: u32) -> Observation<'static> {
        Observation {
            state,
            features: &[],
        }
    }

    #[test]
    fn on_reward_explores_persistently_until_the_first_reward_then_follows_the_expert() {
        let c = NoiseDistillConfig {
            epsilon_start: 0.0,
            reveal: Reveal::OnReward,
            explore_persistence: 0.75,
            ..cfg()
        };
        let mut s = NoiseDistill::new(&c, vec![3], 5, 10);
        s.begin_episode(0);
        let mut r = rng(1, "nd", &[]);
        let (mut prev, _) = s.act(at(0), &mut r);
        let (mut repeats, n) = (0, 20_000);
        for _ in 0..n {
            let (a, lp) = s.act(at(0), &mut r);
            let want: f32 = if a == prev { 0.75 + 0.05 } else { 0.05 };
            assert!((lp - want.ln()).abs() < 1e-6, "{a} after {prev}: {lp}");
            repeats += usize::from(a == prev);
            prev = a;
        }
        let f = repeats as f64 / n as f64;
        assert!((f - 0.8).abs() < 0.01, "{f}");
        // A zero reward changes nothing; the first reward reveals the expert (ε = 0 here).
        let tr = |reward| Transition {
            reward,
            terminated: false,
            truncated: false,
        };
        s.learn(at(0), 0, tr(0.0), at(0), &mut r);
        assert!(!s.revealed);
        s.learn(at(0), 0, tr(1.0), at(0), &mut r);
        for _ in 0..100 {
            assert_eq!(s.act(at(0), &mut r), (3, 0.0));
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
