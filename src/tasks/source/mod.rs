//! Source RL algorithms — the learners whose learning is distilled — and the loop that runs
//! one on one task while recording its [`LearningHistory`]. The loop is generic over the
//! environment and the algorithm so the hot path (tabular Q-learning on Dark Room) compiles
//! to straight-line code; [`Source`] is the enum the rest of the program holds.

pub mod advantage;
pub mod bandit_algos;
pub mod mlp;
pub mod noise_distill;
pub mod ppo;
pub mod q_learning;

use super::config::{SourceConfig, TaskConfig};
use super::env::{EnvRng, EnvSpec, Environment, StateSpace, Transition};
use super::history::LearningHistory;
use super::suite::TaskSuite;
use crate::seed;
use anyhow::{bail, Result};
use rand_chacha::ChaCha8Rng;

/// The RNG a source draws its exploration from.
pub type SourceRng = ChaCha8Rng;

/// What a source sees of the environment's state.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub state: u32,
    pub features: &'a [f32],
}

/// An online learner: acts, then learns from the transition it caused.
pub trait SourceAlgorithm {
    /// Called before the first step of every episode (schedules live here).
    fn begin_episode(&mut self, _episode: usize) {}
    /// Chooses an action; returns it with the behaviour policy's log-probability of it.
    fn act(&mut self, obs: Observation, rng: &mut SourceRng) -> (usize, f32);
    /// Learns from `obs --action--> next` (`next` is the state before any reset).
    fn learn(
        &mut self,
        obs: Observation,
        action: usize,
        tr: Transition,
        next: Observation,
        rng: &mut SourceRng,
    );
}

/// Every source algorithm, enum-dispatched.
#[derive(Debug, Clone)]
pub enum Source {
    QLearning(q_learning::QLearning),
    NoiseDistill(noise_distill::NoiseDistill),
    Ppo(Box<ppo::Ppo>),
    Ucb(bandit_algos::Ucb),
    Thompson(bandit_algos::Thompson),
}

impl Source {
    /// A freshly initialised source for one task of `suite` (noise distillation reads the
    /// task's optimal policy and resolves its ε schedule against `task.histories.episodes`).
    pub fn for_task(suite: &TaskSuite, task: usize, seed: u64) -> Result<Source> {
        let cfg = suite.config();
        if let SourceConfig::NoiseDistill(n) = &cfg.source {
            let Some(expert) = suite.expert_policy(task)? else {
                bail!(
                    "`task.source.algo` = noise_distill needs an environment with a known \
                     optimal policy (darkroom, key_to_door, bandit), not {}",
                    suite.spec().kind
                );
            };
            let decay = (n.decay_fraction * cfg.histories.episodes as f64).round() as usize;
            return Ok(Source::NoiseDistill(noise_distill::NoiseDistill::new(
                n,
                expert,
                suite.spec().n_actions(),
                decay,
            )));
        }
        Source::new(&cfg.source, suite.spec(), seed)
    }

    /// A freshly initialised learner for an environment of this spec (every source but
    /// noise distillation, which needs the task: [`Source::for_task`]).
    pub fn new(cfg: &SourceConfig, spec: &EnvSpec, seed: u64) -> Result<Source> {
        let n_actions = spec.n_actions();
        Ok(match cfg {
            SourceConfig::NoiseDistill(_) => {
                bail!("noise distillation needs the task's optimal policy: use Source::for_task")
            }
            SourceConfig::QLearning(q) => {
                let StateSpace::Discrete { n_states, .. } = &spec.state else {
                    bail!(
                        "`task.source.algo` = q_learning needs a discrete-state env, not {}",
                        spec.kind
                    );
                };
                Source::QLearning(q_learning::QLearning::new(q, *n_states, n_actions))
            }
            SourceConfig::Ppo(p) => {
                Source::Ppo(Box::new(ppo::Ppo::new(p, &spec.state, n_actions, seed)))
            }
            SourceConfig::Ucb(u) => Source::Ucb(bandit_algos::Ucb::new(u, n_actions)),
            SourceConfig::Thompson(t) => {
                Source::Thompson(bandit_algos::Thompson::new(t, n_actions))
            }
        })
    }
}

impl SourceAlgorithm for Source {
    fn begin_episode(&mut self, episode: usize) {
        match self {
            Source::QLearning(s) => s.begin_episode(episode),
            Source::NoiseDistill(s) => s.begin_episode(episode),
            Source::Ppo(s) => s.begin_episode(episode),
            Source::Ucb(s) => s.begin_episode(episode),
            Source::Thompson(s) => s.begin_episode(episode),
        }
    }

    fn act(&mut self, obs: Observation, rng: &mut SourceRng) -> (usize, f32) {
        match self {
            Source::QLearning(s) => s.act(obs, rng),
            Source::NoiseDistill(s) => s.act(obs, rng),
            Source::Ppo(s) => s.act(obs, rng),
            Source::Ucb(s) => s.act(obs, rng),
            Source::Thompson(s) => s.act(obs, rng),
        }
    }

    fn learn(
        &mut self,
        obs: Observation,
        a: usize,
        tr: Transition,
        next: Observation,
        rng: &mut SourceRng,
    ) {
        match self {
            Source::QLearning(s) => s.learn(obs, a, tr, next, rng),
            Source::NoiseDistill(s) => s.learn(obs, a, tr, next, rng),
            Source::Ppo(s) => s.learn(obs, a, tr, next, rng),
            Source::Ucb(s) => s.learn(obs, a, tr, next, rng),
            Source::Thompson(s) => s.learn(obs, a, tr, next, rng),
        }
    }
}

/// How long a source runs and which episodes are recorded.
#[derive(Debug, Clone, Copy)]
pub struct RunLength {
    pub episodes: usize,
    /// Record the steps of episodes whose index is a multiple of this (≥ 1).
    pub keep_every: usize,
    /// Optional budget of environment steps: no new episode starts once it is spent.
    pub max_steps: Option<u64>,
}

/// Runs `algo` on `env` for the given length, recording the history. Task/history/split
/// fields of the result are left at their defaults for the caller to fill in.
pub fn run_episodes<E: Environment + ?Sized, A: SourceAlgorithm + ?Sized>(
    env: &mut E,
    algo: &mut A,
    feature_dim: usize,
    length: RunLength,
    env_rng: &mut EnvRng,
    src_rng: &mut SourceRng,
) -> LearningHistory {
    let keep_every = length.keep_every.max(1);
    let mut hist = LearningHistory::new(feature_dim);
    hist.episode_returns.reserve(length.episodes);
    let mut cur = vec![0.0f32; feature_dim];
    let mut next = vec![0.0f32; feature_dim];
    let mut steps: u64 = 0;
    for episode in 0..length.episodes {
        if length.max_steps.is_some_and(|m| steps >= m) {
            break;
        }
        let record = episode % keep_every == 0;
        env.reset(env_rng);
        algo.begin_episode(episode);
        let mut state = env.state_id();
        env.write_features(&mut cur);
        let mut ret = 0.0f32;
        loop {
            let obs = Observation {
                state,
                features: &cur,
            };
            let (action, logprob) = algo.act(obs, src_rng);
            let tr = env.step(action, env_rng);
            let next_state = env.state_id();
            env.write_features(&mut next);
            let next_obs = Observation {
                state: next_state,
                features: &next,
            };
            algo.learn(obs, action, tr, next_obs, src_rng);
            if record {
                hist.push_step(
                    state,
                    &cur,
                    action as u32,
                    tr.reward,
                    logprob,
                    tr.done(),
                    episode as u32,
                );
            }
            ret += tr.reward;
            steps += 1;
            state = next_state;
            std::mem::swap(&mut cur, &mut next);
            if tr.done() {
                break;
            }
        }
        hist.episode_returns.push(ret);
    }
    hist
}

/// Seeds of the environment and source streams of one (task, history) pair. Generation uses
/// these; evaluation code drawing the source's own curve can pass any other history index.
pub fn history_seeds(data_seed: u64, task: usize, history: usize) -> (u64, u64) {
    let parts = [task as u64, history as u64];
    (
        seed::derive_seed(data_seed, "env", &parts),
        seed::derive_seed(data_seed, "source", &parts),
    )
}

/// Runs the configured source from scratch on one task for `episodes` episodes, recording
/// every episode — what evaluation calls to draw the source's own learning curve.
pub fn run_source(
    cfg: &TaskConfig,
    suite: &TaskSuite,
    task: usize,
    history: usize,
    episodes: usize,
) -> Result<LearningHistory> {
    let length = RunLength {
        episodes,
        keep_every: 1,
        max_steps: None,
    };
    run_source_with(cfg, suite, task, history, length)
}

/// [`run_source`] with an explicit run length (subsampling, step budget).
pub fn run_source_with(
    cfg: &TaskConfig,
    suite: &TaskSuite,
    task: usize,
    history: usize,
    length: RunLength,
) -> Result<LearningHistory> {
    let mut env = suite.make_env(task)?;
    let spec = suite.spec();
    let (env_seed, src_seed) = history_seeds(cfg.seed, task, history);
    let mut algo = Source::for_task(suite, task, src_seed)?;
    let mut env_rng = seed::rng(env_seed, "", &[]);
    let mut src_rng = seed::rng(src_seed, "", &[]);
    let mut hist = run_episodes(
        &mut env,
        &mut algo,
        spec.state.feature_dim(),
        length,
        &mut env_rng,
        &mut src_rng,
    );
    hist.task_index = task as u32;
    hist.history_index = history as u32;
    hist.split = suite.split(task)?;
    Ok(hist)
}
