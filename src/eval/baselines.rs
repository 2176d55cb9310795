//! The reference curves written beside the model's, on the same tasks and environment
//! streams: the source algorithm learning from scratch, a uniformly random policy, and the
//! optimal return.

use super::policy::{InContextPolicy, StepOutcome, StepStates};
use super::rollout::{env_rng, roll_out, Acting, Episode};
use crate::tasks::source::{run_episodes, RunLength, Source};
use crate::tasks::TaskSuite;
use anyhow::Result;

/// Uniform over the actions: equal logits, sampled at temperature 1.
pub struct RandomPolicy {
    rows: usize,
    n_actions: usize,
}

impl RandomPolicy {
    pub fn new(rows: usize, n_actions: usize) -> Self {
        Self { rows, n_actions }
    }
}

impl InContextPolicy for RandomPolicy {
    fn rows(&self) -> usize {
        self.rows
    }
    fn n_actions(&self) -> usize {
        self.n_actions
    }
    fn action_logits(&mut self, _states: StepStates) -> Result<Vec<f32>> {
        Ok(vec![0.0; self.rows * self.n_actions])
    }
    fn observe_outcome(&mut self, _outcome: StepOutcome) -> Result<()> {
        Ok(())
    }
}

/// `episodes` episodes of the random policy on each task.
pub fn random(
    suite: &TaskSuite,
    tasks: &[usize],
    episodes: usize,
    seed: u64,
) -> Result<Vec<Episode>> {
    let mut policy = RandomPolicy::new(tasks.len(), suite.spec().n_actions());
    let acting = Acting {
        temperature: 1.0,
        seed,
        label: "eval-random",
    };
    roll_out(&mut policy, suite, tasks, episodes, acting)
}

/// The configured source algorithm learning each task from scratch for `episodes` episodes
/// (exploration seeded by `seed::rng(seed, "eval-source", [task])`).
pub fn source(
    suite: &TaskSuite,
    tasks: &[usize],
    episodes: usize,
    seed: u64,
) -> Result<Vec<Episode>> {
    let spec = suite.spec();
    let mut out = Vec::with_capacity(tasks.len() * episodes);
    for &task in tasks {
        crate::interrupt::check()?;
        let mut env = suite.make_env(task)?;
        let src_seed = crate::seed::derive_seed(seed, "eval-source", &[task as u64]);
        let mut algo = Source::for_task(suite, task, src_seed)?;
        let length = RunLength {
            episodes,
            keep_every: 1,
            max_steps: None,
        };
        let history = run_episodes(
            &mut env,
            &mut algo,
            spec.state.feature_dim(),
            length,
            &mut env_rng(seed, task),
            &mut crate::seed::rng(src_seed, "", &[]),
        );
        let mut steps = vec![0usize; history.episode_returns.len()];
        for &e in &history.episodes {
            steps[e as usize] += 1;
        }
        out.extend(history.episode_returns.iter().zip(steps).enumerate().map(
            |(episode, (&ret, steps))| Episode {
                task,
                episode,
                ret,
                steps,
            },
        ));
    }
    Ok(out)
}

/// The optimal expected return of each task, once per episode (`steps` = 0: not played).
pub fn optimal(suite: &TaskSuite, tasks: &[usize], episodes: usize) -> Result<Vec<Episode>> {
    let mut out = Vec::with_capacity(tasks.len() * episodes);
    for &task in tasks {
        let ret = suite.optimal_return(task)?;
        out.extend((0..episodes).map(|episode| Episode {
            task,
            episode,
            ret,
            steps: 0,
        }));
    }
    Ok(out)
}
