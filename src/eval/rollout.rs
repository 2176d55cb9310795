//! AD's evaluation protocol: a policy plays `episodes` episodes in each task, with its own
//! growing history as its only context (no demonstrations), all tasks of a batch stepping
//! together. Each row's environment steps and resets independently; a row that has played
//! its episodes keeps acting (unrecorded) until the last row is done, so every policy call
//! stays one batched call.
//!
//! Seeds: task `i`'s environment draws from `seed::rng(seed, "eval-env", [i])` and its
//! action sampling from `seed::rng(seed, action_label, [i])` — per task, so results do not
//! depend on which tasks share the batch, and the baselines meet the same environment stream.

use super::policy::{InContextPolicy, StepOutcome, StepStates};
use super::sampler::{choose, log_softmax};
use crate::tasks::{Environment, TaskSuite};
use anyhow::{ensure, Result};

/// One episode a policy played.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Episode {
    pub task: usize,
    /// 0-based index of the episode in the policy's run on the task.
    pub episode: usize,
    pub ret: f32,
    pub steps: usize,
}

/// How a rollout picks actions.
#[derive(Debug, Clone, Copy)]
pub struct Acting<'a> {
    /// 0 = greedy.
    pub temperature: f64,
    /// Base seed (the run's `seed`).
    pub seed: u64,
    /// Label of the action-sampling streams (`"eval"` for the model).
    pub label: &'a str,
}

/// The environment stream of task `task` during evaluation.
pub fn env_rng(seed: u64, task: usize) -> rand_chacha::ChaCha8Rng {
    crate::seed::rng(seed, "eval-env", &[task as u64])
}

/// Plays `episodes` episodes of every task in `tasks` (row `r` = `tasks[r]`); returns the
/// episodes in (row, episode) order. Checks for an interrupt whenever an episode ends.
pub fn roll_out(
    policy: &mut dyn InContextPolicy,
    suite: &TaskSuite,
    tasks: &[usize],
    episodes: usize,
    acting: Acting,
) -> Result<Vec<Episode>> {
    let rows = tasks.len();
    ensure!(
        policy.rows() == rows,
        "policy acts in {} rows, but {rows} tasks were given",
        policy.rows()
    );
    let n_actions = policy.n_actions();
    let dim = suite.spec().state.feature_dim();
    let mut envs = tasks
        .iter()
        .map(|&t| suite.make_env(t))
        .collect::<Result<Vec<_>>>()?;
    let mut env_rngs: Vec<_> = tasks.iter().map(|&t| env_rng(acting.seed, t)).collect();
    let mut act_rngs: Vec<_> = tasks
        .iter()
        .map(|&t| crate::seed::rng(acting.seed, acting.label, &[t as u64]))
        .collect();
    for (env, rng) in envs.iter_mut().zip(&mut env_rngs) {
        env.reset(rng);
    }
    let mut results: Vec<Vec<Episode>> = vec![Vec::with_capacity(episodes); rows];
    let (mut ret, mut len) = (vec![0.0f32; rows], vec![0usize; rows]);
    let mut ids = vec![0u32; rows];
    let mut features = vec![0.0f32; rows * dim];
    let (mut actions, mut rewards) = (vec![0u32; rows], vec![0.0f32; rows]);
    let (mut logprobs, mut dones) = (vec![0.0f32; rows], vec![false; rows]);
    while results.iter().any(|r| r.len() < episodes) {
        for (r, env) in envs.iter().enumerate() {
            ids[r] = env.state_id();
            env.write_features(&mut features[r * dim..(r + 1) * dim]);
        }
        let logits = policy.action_logits(StepStates {
            ids: &ids,
            features: &features,
        })?;
        ensure!(
            logits.len() == rows * n_actions,
            "policy returned {} logits for {rows} rows of {n_actions} actions",
            logits.len()
        );
        let mut ended = false;
        for r in 0..rows {
            let row = &logits[r * n_actions..(r + 1) * n_actions];
            let a = choose(row, acting.temperature, &mut act_rngs[r]);
            let tr = envs[r].step(a, &mut env_rngs[r]);
            actions[r] = a as u32;
            rewards[r] = tr.reward;
            logprobs[r] = log_softmax(row)[a];
            dones[r] = tr.done();
            ret[r] += tr.reward;
            len[r] += 1;
            if tr.done() {
                let done_so_far = results[r].len();
                if done_so_far < episodes {
                    results[r].push(Episode {
                        task: tasks[r],
                        episode: done_so_far,
                        ret: ret[r],
                        steps: len[r],
                    });
                }
                ret[r] = 0.0;
                len[r] = 0;
                envs[r].reset(&mut env_rngs[r]);
                ended = true;
            }
        }
        policy.observe_outcome(StepOutcome {
            actions: &actions,
            rewards: &rewards,
            logprobs: &logprobs,
            dones: &dones,
        })?;
        if ended {
            crate::interrupt::check()?;
        }
    }
    Ok(results.into_iter().flatten().collect())
}
