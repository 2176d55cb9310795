//! PPO (clipped surrogate, GAE, Adam, global gradient-norm clipping) with separate tanh-MLP
//! actor and critic, single environment. Discrete states are fed one-hot, continuous states
//! as raw features. The recorded logprob is the current policy's log-probability of the
//! sampled action — exactly the behaviour policy at that step. A time-limit truncation is not
//! a terminal state, so its reward is bootstrapped with γ·V(last state), as SB3 does.

use super::mlp::{Activations, Adam, Mlp};
use super::{Observation, SourceAlgorithm, SourceRng};
use crate::seed;
use crate::tasks::config::PpoConfig;
use crate::tasks::env::{StateSpace, Transition};
use rand::seq::SliceRandom;
use rand::Rng;

#[derive(Debug, Clone)]
pub struct Ppo {
    cfg: PpoConfig,
    /// `Some(n)`: one-hot encoding of n discrete states; `None`: raw features.
    one_hot: Option<usize>,
    n_actions: usize,
    actor: Mlp,
    critic: Mlp,
    actor_opt: Adam,
    critic_opt: Adam,
    acts: Activations,
    x: Vec<f32>,
    probs: Vec<f32>,
    pending_value: f32,
    pending_logp: f32,
    rollout: Rollout,
    env_steps: u64,
}

/// One rollout of `rollout_steps` transitions (may span episodes).
#[derive(Debug, Clone, Default)]
struct Rollout {
    obs: Vec<f32>,
    actions: Vec<usize>,
    logps: Vec<f32>,
    values: Vec<f32>,
    rewards: Vec<f32>,
    /// The transition ended an episode (terminal or truncated — truncation was bootstrapped
    /// into the reward already).
    ends: Vec<bool>,
}

impl Rollout {
    fn clear(&mut self) {
        self.obs.clear();
        self.actions.clear();
        self.logps.clear();
        self.values.clear();
        self.rewards.clear();
        self.ends.clear();
    }
}

/// Softmax into `probs`; returns log-probabilities via `ln` of the stable form.
fn softmax(logits: &[f32], probs: &mut Vec<f32>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    probs.clear();
    probs.extend(logits.iter().map(|&z| (z - max).exp()));
    let sum: f32 = probs.iter().sum();
    for p in probs.iter_mut() {
        *p /= sum;
    }
}

fn log_softmax(logits: &[f32], out: &mut Vec<f32>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + logits.iter().map(|&z| (z - max).exp()).sum::<f32>().ln();
    out.clear();
    out.extend(logits.iter().map(|&z| z - lse));
}

impl Ppo {
    pub fn new(cfg: &PpoConfig, state: &StateSpace, n_actions: usize, seed: u64) -> Ppo {
        let (one_hot, input) = match state {
            StateSpace::Discrete { n_states, .. } => (Some(*n_states), *n_states),
            StateSpace::Continuous { feature_names, .. } => (None, feature_names.len()),
        };
        let mut rng = seed::rng(seed, "ppo-init", &[]);
        let h = cfg.hidden;
        let actor = Mlp::new(&[input, h, h, n_actions], 0.01, &mut rng);
        let critic = Mlp::new(&[input, h, h, 1], 1.0, &mut rng);
        Ppo {
            cfg: cfg.clone(),
            one_hot,
            n_actions,
            actor_opt: Adam::new(actor.n_params()),
            critic_opt: Adam::new(critic.n_params()),
            actor,
            critic,
            acts: Activations::default(),
            x: vec![0.0; input],
            probs: Vec::with_capacity(n_actions),
            pending_value: 0.0,
            pending_logp: 0.0,
            rollout: Rollout::default(),
            env_steps: 0,
        }
    }

    fn encode(&mut self, obs: Observation) {
        match self.one_hot {
            Some(n) => {
                self.x.fill(0.0);
                self.x[(obs.state as usize).min(n - 1)] = 1.0;
            }
            None => self.x.copy_from_slice(obs.features),
        }
    }

    fn value_of(&mut self, obs: Observation) -> f32 {
        self.encode(obs);
        self.critic.forward(&self.x, &mut self.acts)[0]
    }

    fn lr(&self) -> f32 {
        let frac = match self.cfg.anneal_steps {
            Some(total) if total > 0 => (1.0 - self.env_steps as f64 / total as f64).max(0.0),
            _ => 1.0,
        };
        (self.cfg.lr * frac) as f32
    }

    /// GAE advantages and returns of the finished rollout; `last_value` is V of the state
    /// after the last transition (ignored if that transition ended an episode).
    fn advantages(&self, last_value: f32) -> (Vec<f32>, Vec<f32>) {
        let r = &self.rollout;
        let (gamma, lambda) = (self.cfg.gamma as f32, self.cfg.gae_lambda as f32);
        super::advantage::gae(&r.rewards, &r.values, &r.ends, last_value, gamma, lambda)
    }

    fn update(&mut self, last_value: f32, rng: &mut SourceRng) {
        let (adv, returns) = self.advantages(last_value);
        let n = adv.len();
        let input = self.x.len();
        let lr = self.lr();
        let clip = self.cfg.clip as f32;
        let (ent_coef, vf_coef) = (self.cfg.ent_coef as f32, self.cfg.vf_coef as f32);
        let mut grad_a = vec![0.0f32; self.actor.n_params()];
        let mut grad_c = vec![0.0f32; self.critic.n_params()];
        let mut critic_acts = Activations::default();
        let mut logp_all = Vec::with_capacity(self.n_actions);
        let mut dz = vec![0.0f32; self.n_actions];
        let mut order: Vec<usize> = (0..n).collect();
        for _ in 0..self.cfg.epochs {
            order.shuffle(rng);
            for batch in order.chunks(self.cfg.minibatch) {
                let m = batch.len() as f32;
                let mean = batch.iter().map(|&i| adv[i]).sum::<f32>() / m;
                let var = batch.iter().map(|&i| (adv[i] - mean).powi(2)).sum::<f32>() / m;
                let std = var.sqrt() + 1e-8;
                grad_a.fill(0.0);
                grad_c.fill(0.0);
                for &i in batch {
                    let x = &self.rollout.obs[i * input..(i + 1) * input];
                    let a = self.rollout.actions[i];
                    let advantage = if batch.len() > 1 {
                        (adv[i] - mean) / std
                    } else {
                        adv[i]
                    };
                    let logits = self.actor.forward(x, &mut self.acts);
                    log_softmax(logits, &mut logp_all);
                    let ratio = (logp_all[a] - self.rollout.logps[i]).exp();
                    let clipped = (advantage >= 0.0 && ratio > 1.0 + clip)
                        || (advantage < 0.0 && ratio < 1.0 - clip);
                    let g_logp = if clipped { 0.0 } else { -ratio * advantage / m };
                    let entropy: f32 = -logp_all.iter().map(|&l| l.exp() * l).sum::<f32>();
                    for (j, d) in dz.iter_mut().enumerate() {
                        let p = logp_all[j].exp();
                        let onehot = if j == a { 1.0 } else { 0.0 };
                        *d = g_logp * (onehot - p) + ent_coef / m * p * (logp_all[j] + entropy);
                    }
                    self.actor.backward(&mut self.acts, &dz, &mut grad_a);
                    let v = self.critic.forward(x, &mut critic_acts)[0];
                    let dv = vf_coef * 2.0 * (v - returns[i]) / m;
                    self.critic.backward(&mut critic_acts, &[dv], &mut grad_c);
                }
                let norm = grad_a
                    .iter()
                    .chain(&grad_c)
                    .map(|g| g * g)
                    .sum::<f32>()
                    .sqrt();
                let max = self.cfg.max_grad_norm as f32;
                if norm > max {
                    let s = max / norm;
                    grad_a
                        .iter_mut()
                        .chain(grad_c.iter_mut())
                        .for_each(|g| *g *= s);
                }
                self.actor_opt.step(&mut self.actor.params, &grad_a, lr);
                self.critic_opt.step(&mut self.critic.params, &grad_c, lr);
            }
        }
        self.rollout.clear();
    }
}

impl SourceAlgorithm for Ppo {
    fn act(&mut self, obs: Observation, rng: &mut SourceRng) -> (usize, f32) {
        self.encode(obs);
        let logits = self.actor.forward(&self.x, &mut self.acts);
        softmax(logits, &mut self.probs);
        let u: f32 = rng.random();
        let mut acc = 0.0;
        let mut action = self.n_actions - 1;
        for (a, &p) in self.probs.iter().enumerate() {
            acc += p;
            if u < acc {
                action = a;
                break;
            }
        }
        let logp = self.probs[action].max(f32::MIN_POSITIVE).ln();
        self.pending_value = self.critic.forward(&self.x, &mut self.acts)[0];
        self.pending_logp = logp;
        (action, logp)
    }

    fn learn(
        &mut self,
        obs: Observation,
        action: usize,
        tr: Transition,
        next: Observation,
        rng: &mut SourceRng,
    ) {
        let (value, logp) = (self.pending_value, self.pending_logp);
        self.encode(obs);
        self.rollout.obs.extend_from_slice(&self.x);
        self.rollout.actions.push(action);
        self.rollout.logps.push(logp);
        self.rollout.values.push(value);
        let mut reward = tr.reward;
        if tr.truncated {
            reward += self.cfg.gamma as f32 * self.value_of(next);
        }
        self.rollout.rewards.push(reward);
        self.rollout.ends.push(tr.done());
        self.env_steps += 1;
        if self.rollout.actions.len() >= self.cfg.rollout_steps {
            let last_value = if tr.done() { 0.0 } else { self.value_of(next) };
            self.update(last_value, rng);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::config::TaskConfig;
    use crate::tasks::source::{run_source_with, RunLength};
    use crate::tasks::suite::TaskSuite;
    use rayon::prelude::*;

    fn conf(name: &str) -> TaskConfig {
        let path = format!("{}/conf/task/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect(&path);
        TaskConfig::from_yaml(&text).unwrap()
    }

    #[test]
    fn ppo_balances_cartpole_for_three_seeds() {
        let cfg = conf("cartpole");
        let results: Vec<(u64, f32, usize)> = [0u64, 1, 2]
            .par_iter()
            .map(|&s| {
                let cfg = TaskConfig {
                    seed: s,
                    ..cfg.clone()
                };
                let suite = TaskSuite::from_config(&cfg).unwrap();
                let length = RunLength {
                    episodes: 100_000,
                    keep_every: 1,
                    max_steps: Some(120_000),
                };
                let h = run_source_with(&cfg, &suite, 0, 0, length).unwrap();
                let curve = &h.episode_returns;
                let tail = &curve[curve.len().saturating_sub(20)..];
                (s, tail.iter().sum::<f32>() / tail.len() as f32, h.len())
            })
            .collect();
        for (s, mean, steps) in results {
            eprintln!("seed {s}: last-20 mean {mean} after {steps} steps");
            assert!(
                mean >= 400.0,
                "seed {s}: mean return of the last 20 episodes {mean}"
            );
            assert!(steps <= 120_000 + 500, "budget overrun: {steps}");
        }
    }

    #[test]
    fn ppo_improves_on_darkroom() {
        let mut cfg = conf("darkroom");
        cfg.source = crate::tasks::config::SourceConfig::Ppo(match conf("cartpole").source {
            crate::tasks::config::SourceConfig::Ppo(p) => PpoConfig {
                anneal_steps: None,
                ..p
            },
            other => panic!("cartpole source is {other:?}"),
        });
        let suite = TaskSuite::from_config(&cfg).unwrap();
        let task = 30; // goal (3, 3): 2 steps from the centre
        let h = run_source_with(
            &cfg,
            &suite,
            task,
            0,
            RunLength {
                episodes: 300,
                keep_every: 1,
                max_steps: None,
            },
        )
        .unwrap();
        let first: f32 = h.episode_returns[..30].iter().sum::<f32>() / 30.0;
        let last: f32 = h.episode_returns[270..].iter().sum::<f32>() / 30.0;
        assert!(
            last > first + 5.0,
            "no improvement: first {first}, last {last}"
        );
    }
}
