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
use super::trace::{is_traced, Trace};
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
    Ok(roll_out_traced(policy, suite, tasks, episodes, acting, 0)?.0)
}

/// [`roll_out`], also recording the steps of the first `trace` and the last `trace` episodes
/// of every task ([`is_traced`]); the traces come back in (row, episode) order. Only the
/// selected episodes are copied, so `trace` = 0 costs one comparison per step.
pub fn roll_out_traced(
    policy: &mut dyn InContextPolicy,
    suite: &TaskSuite,
    tasks: &[usize],
    episodes: usize,
    acting: Acting,
    trace: usize,
) -> Result<(Vec<Episode>, Vec<Trace>)> {
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
    // The trace of each row's current episode, when that episode is selected.
    let new_trace = |r: usize, episode: usize| -> Result<Option<Trace>> {
        if !is_traced(episode, episodes, trace) || episode >= episodes {
            return Ok(None);
        }
        let task = tasks[r];
        Ok(Some(Trace {
            task,
            split: suite.split(task)?,
            params: suite.tasks()[task].clone(),
            episode,
            ret: 0.0,
            terminated: false,
            states: Vec::new(),
            features: Vec::new(),
            actions: Vec::new(),
            rewards: Vec::new(),
            final_state: 0,
            final_features: Vec::new(),
        }))
    };
    let mut current: Vec<Option<Trace>> =
        (0..rows).map(|r| new_trace(r, 0)).collect::<Result<_>>()?;
    let mut traces: Vec<Vec<Trace>> = vec![Vec::new(); rows];
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
            if let Some(t) = current[r].as_mut() {
                if dim == 0 {
                    t.states.push(ids[r]);
                } else {
                    t.features.push(features[r * dim..(r + 1) * dim].to_vec());
                }
                t.actions.push(a as u32);
            }
            let tr = envs[r].step(a, &mut env_rngs[r]);
            actions[r] = a as u32;
            rewards[r] = tr.reward;
            logprobs[r] = log_softmax(row)[a];
            dones[r] = tr.done();
            ret[r] += tr.reward;
            len[r] += 1;
            if let Some(t) = current[r].as_mut() {
                t.rewards.push(tr.reward);
                t.ret += tr.reward;
            }
            if tr.done() {
                if let Some(mut t) = current[r].take() {
                    t.terminated = tr.terminated;
                    if dim == 0 {
                        t.final_state = envs[r].state_id();
                    } else {
                        t.final_features = vec![0.0; dim];
                        envs[r].write_features(&mut t.final_features);
                    }
                    traces[r].push(t);
                }
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
                current[r] = new_trace(r, results[r].len())?;
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
    Ok((
        results.into_iter().flatten().collect(),
        traces.into_iter().flatten().collect(),
    ))
}
