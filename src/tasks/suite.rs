//! The task list of a config: which tasks exist (goal cells, key/door pairs, arm means, …),
//! which are train and which test, their optimal returns, and a constructor for each task's
//! environment. Everything is a pure function of the task config (including its seed), so
//! generation and later evaluation agree on what "task 17" is.

use super::config::{EnvConfig, TaskConfig};
use super::env::bandit::Bandit;
use super::env::cartpole::CartPole;
use super::env::frozenlake::FrozenLake;
use super::env::grid::{self, DarkRoom};
use super::env::key_to_door::KeyToDoor;
use super::env::lander::{Lander, LanderParams};
use super::env::{EnvSpec, TaskEnv};
use crate::seed;
use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Whether a task is used for training or held out for in-context evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// What distinguishes one task from another within a family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskParams {
    Darkroom {
        goal: [u8; 2],
    },
    KeyToDoor {
        key: [u8; 2],
        door: [u8; 2],
    },
    Bandit {
        means: Vec<f32>,
    },
    /// Tasks of single-MDP families differ only by their random streams.
    #[serde(rename = "frozenlake")]
    FrozenLake,
    #[serde(rename = "cartpole")]
    CartPole,
    /// What a lander must discover by acting (see [`LanderParams`]).
    LunarLander {
        gravity: f32,
        wind_power: f32,
        turbulence_power: f32,
        pad_offset: i8,
        terrain_seed: u64,
    },
}

impl EnvConfig {
    /// What the family's states, actions and rewards look like (no task is built).
    pub fn spec(&self) -> EnvSpec {
        match self {
            EnvConfig::Darkroom(c) => DarkRoom::spec(c.size, c.episode_len),
            EnvConfig::KeyToDoor(c) => KeyToDoor::spec(c.size, c.episode_len),
            EnvConfig::Bandit(c) => Bandit::spec(c.arms),
            EnvConfig::FrozenLake(c) => FrozenLake::spec(c.max_steps),
            EnvConfig::CartPole(c) => CartPole::spec(c.max_steps),
            EnvConfig::LunarLander(c) => Lander::spec(c.max_steps),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TaskSuite {
    config: TaskConfig,
    spec: EnvSpec,
    tasks: Vec<TaskParams>,
    splits: Vec<Split>,
    optimal: Vec<f32>,
}

/// Number of held-out tasks: rounded fraction, but always leaving one train task.
fn n_test(n: usize, fraction: f64) -> usize {
    ((n as f64 * fraction).round() as usize).min(n.saturating_sub(1))
}

/// Seeded choice of `n_test` test tasks among `n`.
fn seeded_splits(cfg: &TaskConfig, n: usize) -> Vec<Split> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut seed::rng(cfg.seed, "task-split", &[]));
    let mut splits = vec![Split::Train; n];
    for &i in &order[..n_test(n, cfg.split.test_fraction)] {
        splits[i] = Split::Test;
    }
    splits
}

/// Families whose held-out tasks come from a distribution of their own: the last `n_test` of
/// `n` tasks are the test tasks.
fn tail_splits(cfg: &TaskConfig, n: usize) -> Vec<Split> {
    let test_from = n - n_test(n, cfg.split.test_fraction);
    (0..n)
        .map(|i| {
            if i >= test_from {
                Split::Test
            } else {
                Split::Train
            }
        })
        .collect()
}

/// Keeps all candidates, or a seeded sample of `max_tasks` of them in canonical order.
fn cap<T>(cfg: &TaskConfig, mut all: Vec<T>) -> Vec<T> {
    match cfg.split.max_tasks {
        Some(m) if m < all.len() => {
            let mut idx: Vec<usize> = (0..all.len()).collect();
            idx.shuffle(&mut seed::rng(cfg.seed, "task-sample", &[]));
            let mut keep = idx[..m].to_vec();
            keep.sort_unstable();
            let mut it = keep.into_iter().peekable();
            let mut i = 0;
            all.retain(|_| {
                let k = it.peek() == Some(&i);
                if k {
                    it.next();
                }
                i += 1;
                k
            });
            all
        }
        _ => all,
    }
}

fn cells(size: usize) -> impl Iterator<Item = [u8; 2]> {
    (0..size).flat_map(move |y| (0..size).map(move |x| [x as u8, y as u8]))
}

impl TaskSuite {
    /// Validates the config and builds the task list and split.
    pub fn from_config(cfg: &TaskConfig) -> Result<TaskSuite> {
        cfg.validate()?;
        let max_tasks = cfg.split.max_tasks.unwrap_or(1);
        let spec = cfg.env.spec();
        let (tasks, splits) = match &cfg.env {
            EnvConfig::Darkroom(c) => {
                let tasks = cap(
                    cfg,
                    cells(c.size)
                        .map(|goal| TaskParams::Darkroom { goal })
                        .collect(),
                );
                let splits = seeded_splits(cfg, tasks.len());
                (tasks, splits)
            }
            EnvConfig::KeyToDoor(c) => {
                let pairs = cells(c.size)
                    .flat_map(|key| cells(c.size).map(move |door| (key, door)))
                    .filter(|(k, d)| k != d)
                    .map(|(key, door)| TaskParams::KeyToDoor { key, door })
                    .collect();
                let tasks = cap(cfg, pairs);
                let splits = seeded_splits(cfg, tasks.len());
                (tasks, splits)
            }
            EnvConfig::Bandit(c) => {
                // Test tasks come from the mirrored distribution, so the split is by
                // construction: the last n_test tasks are test tasks.
                let splits = tail_splits(cfg, max_tasks);
                let tasks = splits
                    .iter()
                    .enumerate()
                    .map(|(i, &split)| {
                        let mut rng = seed::rng(cfg.seed, "bandit-task", &[i as u64]);
                        let means = Bandit::sample_means(
                            c.arms,
                            c.best_arm_odd_prob,
                            split == Split::Test,
                            &mut rng,
                        );
                        TaskParams::Bandit { means }
                    })
                    .collect();
                (tasks, splits)
            }
            EnvConfig::FrozenLake(_) => (
                vec![TaskParams::FrozenLake; max_tasks],
                seeded_splits(cfg, max_tasks),
            ),
            EnvConfig::CartPole(_) => (
                vec![TaskParams::CartPole; max_tasks],
                seeded_splits(cfg, max_tasks),
            ),
            EnvConfig::LunarLander(c) => {
                // As for bandits, the last n_test tasks are held out, drawn from `test`.
                let splits = tail_splits(cfg, max_tasks);
                let tasks = splits
                    .iter()
                    .enumerate()
                    .map(|(i, &split)| {
                        let ranges = match split {
                            Split::Test => &c.test,
                            Split::Train => &c.train,
                        };
                        let mut rng = seed::rng(cfg.seed, "lander-task", &[i as u64]);
                        let mut draw = |[lo, hi]: [f64; 2]| {
                            if hi > lo {
                                rng.random_range(lo..=hi) as f32
                            } else {
                                lo as f32
                            }
                        };
                        let gravity = draw(ranges.gravity);
                        let wind_power = draw(ranges.wind_power);
                        let turbulence_power = draw(ranges.turbulence_power);
                        let [lo, hi] = ranges.pad_offset;
                        TaskParams::LunarLander {
                            gravity,
                            wind_power,
                            turbulence_power,
                            pad_offset: rng.random_range(lo..=hi) as i8,
                            terrain_seed: rng.random(),
                        }
                    })
                    .collect();
                (tasks, splits)
            }
        };
        let optimal = tasks.iter().map(|t| optimal_return(cfg, t)).collect();
        Ok(TaskSuite {
            config: cfg.clone(),
            spec,
            tasks,
            splits,
            optimal,
        })
    }

    pub fn config(&self) -> &TaskConfig {
        &self.config
    }

    pub fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    pub fn tasks(&self) -> &[TaskParams] {
        &self.tasks
    }

    pub fn splits(&self) -> &[Split] {
        &self.splits
    }

    fn check(&self, task: usize) -> Result<()> {
        if task >= self.tasks.len() {
            bail!(
                "task index {task} out of range: the suite has {} tasks",
                self.tasks.len()
            );
        }
        Ok(())
    }

    pub fn split(&self, task: usize) -> Result<Split> {
        self.check(task)?;
        Ok(self.splits[task])
    }

    /// Indices of the tasks in `split`, ascending.
    pub fn indices(&self, split: Split) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.splits[i] == split)
            .collect()
    }

    pub fn train_tasks(&self) -> Vec<usize> {
        self.indices(Split::Train)
    }

    pub fn test_tasks(&self) -> Vec<usize> {
        self.indices(Split::Test)
    }

    /// Optimal expected return (an upper bound for key-to-door) of one episode of the task.
    pub fn optimal_return(&self, task: usize) -> Result<f32> {
        self.check(task)?;
        Ok(self.optimal[task])
    }

    pub fn optimal_returns(&self) -> &[f32] {
        &self.optimal
    }

    /// The optimal action in every discrete state of the task, where the family has a known
    /// optimal policy (Dark Room: walk to the goal and stay; Key-to-Door: key, then door;
    /// bandits: the best arm); `None` for the others.
    pub fn expert_policy(&self, task: usize) -> Result<Option<Vec<u32>>> {
        self.check(task)?;
        Ok(match (&self.config.env, &self.tasks[task]) {
            (EnvConfig::Darkroom(c), TaskParams::Darkroom { goal }) => {
                Some(grid::policy_toward(c.size, (goal[0], goal[1])))
            }
            (EnvConfig::KeyToDoor(c), TaskParams::KeyToDoor { key, door }) => {
                let mut p = grid::policy_toward(c.size, (key[0], key[1]));
                p.extend(grid::policy_toward(c.size, (door[0], door[1])));
                Some(p)
            }
            (EnvConfig::Bandit(_), TaskParams::Bandit { means }) => {
                let best = (0..means.len())
                    .max_by(|&a, &b| means[a].total_cmp(&means[b]))
                    .unwrap_or(0);
                Some(vec![best as u32])
            }
            _ => None,
        })
    }

    /// A fresh environment for the task (call `reset` before stepping).
    pub fn make_env(&self, task: usize) -> Result<TaskEnv> {
        self.check(task)?;
        Ok(match (&self.config.env, &self.tasks[task]) {
            (EnvConfig::Darkroom(c), TaskParams::Darkroom { goal }) => TaskEnv::Grid(
                DarkRoom::new(c.size, c.episode_len, c.sparse, (goal[0], goal[1])),
            ),
            (EnvConfig::KeyToDoor(c), TaskParams::KeyToDoor { key, door }) => TaskEnv::KeyToDoor(
                KeyToDoor::new(c.size, c.episode_len, (key[0], key[1]), (door[0], door[1])),
            ),
            (EnvConfig::Bandit(_), TaskParams::Bandit { means }) => {
                TaskEnv::Bandit(Bandit::new(means.clone()))
            }
            (EnvConfig::FrozenLake(c), TaskParams::FrozenLake) => {
                TaskEnv::FrozenLake(FrozenLake::new(c.slippery, c.max_steps))
            }
            (EnvConfig::CartPole(c), TaskParams::CartPole) => {
                TaskEnv::CartPole(CartPole::new(c.max_steps))
            }
            (EnvConfig::LunarLander(c), params @ TaskParams::LunarLander { .. }) => {
                TaskEnv::LunarLander(Box::new(
                    Lander::new(lander_params(params).expect("a lander task"), c.max_steps)
                        .with_solver_iterations(c.solver_iterations),
                ))
            }
            (env, params) => bail!("task {task} ({params:?}) does not belong to env {env:?}"),
        })
    }
}

/// The physics parameters of a lander task (`None` for other families).
pub fn lander_params(task: &TaskParams) -> Option<LanderParams> {
    match *task {
        TaskParams::LunarLander {
            gravity,
            wind_power,
            turbulence_power,
            pad_offset,
            terrain_seed,
        } => Some(LanderParams {
            gravity,
            wind_power,
            turbulence_power,
            pad_offset: pad_offset.into(),
            terrain_seed,
        }),
        _ => None,
    }
}

fn optimal_return(cfg: &TaskConfig, task: &TaskParams) -> f32 {
    let env = &cfg.env;
    match (env, task) {
        (EnvConfig::Darkroom(c), TaskParams::Darkroom { goal }) => {
            DarkRoom::optimal_return(c.size, c.episode_len, c.sparse, (goal[0], goal[1]))
        }
        (EnvConfig::KeyToDoor(c), TaskParams::KeyToDoor { .. }) => {
            KeyToDoor::optimal_return(c.size, c.episode_len)
        }
        (EnvConfig::Bandit(_), TaskParams::Bandit { means }) => Bandit::optimal_return(means),
        (EnvConfig::FrozenLake(c), TaskParams::FrozenLake) => {
            FrozenLake::optimal_return(c.slippery, c.max_steps)
        }
        (EnvConfig::CartPole(c), TaskParams::CartPole) => CartPole::optimal_return(c.max_steps),
        (EnvConfig::LunarLander(c), TaskParams::LunarLander { terrain_seed, .. }) => {
            // The heuristic knows where the pad is, so its return is a strong-controller
            // estimate of the optimum (not an upper bound).
            Lander::heuristic_return(
                lander_params(task).expect("a lander task"),
                c.max_steps,
                c.optimum_episodes,
                seed::derive_seed(cfg.seed, "lander-optimum", &[*terrain_seed]),
                c.solver_iterations,
            )
        }
        _ => 0.0,
    }
}
