//! Environments: the [`Environment`] trait shared by history generation and (later) in-context
//! evaluation, the [`EnvSpec`] that tells a serialiser what states, actions and rewards look
//! like, and [`TaskEnv`], the enum over all families (enum dispatch keeps the hot loop free of
//! virtual calls while still being one concrete type callers can hold).

pub mod bandit;
pub mod cartpole;
pub mod frozenlake;
pub mod grid;
pub mod key_to_door;
pub mod lander;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The RNG environments draw from (starts, slips, Bernoulli rewards). Concrete rather than
/// generic so the trait stays object-safe.
pub type EnvRng = ChaCha8Rng;

/// What one step produced. `truncated` marks a time limit (the state is not terminal, so a
/// learner should still bootstrap); `terminated` a true end of the episode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    pub reward: f32,
    pub terminated: bool,
    pub truncated: bool,
}

impl Transition {
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// An episodic environment for one task. Observation is read from the environment after
/// `reset`/`step`: a discrete state id for tabular envs, a feature vector for continuous ones.
/// An action outside `0..n_actions()` is treated as action 0 (never a panic).
pub trait Environment {
    fn n_actions(&self) -> usize;
    /// Starts a new episode.
    fn reset(&mut self, rng: &mut EnvRng);
    fn step(&mut self, action: usize, rng: &mut EnvRng) -> Transition;
    /// Discrete state id (0 for continuous-state environments).
    fn state_id(&self) -> u32;
    /// Writes the continuous features (`out.len()` = the spec's feature dimension, 0 for
    /// discrete-state environments).
    fn write_features(&self, out: &mut [f32]);
}

/// How states look, for serialisers and for the source's input encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StateSpace {
    /// `coords[id]` are the human-meaningful coordinates of state `id`, named by `coord_names`
    /// (e.g. `x, y, has_key`), so a text format needs no environment code to render a state.
    Discrete {
        n_states: usize,
        coord_names: Vec<String>,
        coords: Vec<Vec<i32>>,
    },
    Continuous {
        feature_names: Vec<String>,
        /// Typical `[low, high]` of each feature (each environment says where its figures come
        /// from): the range formats that bin values cut into bins. Values outside it are still
        /// valid states (binned into the end bins).
        #[serde(default)]
        feature_ranges: Vec<[f32; 2]>,
    },
}

impl StateSpace {
    /// Length of the per-step feature vector stored in a history (0 for discrete states).
    pub fn feature_dim(&self) -> usize {
        match self {
            StateSpace::Discrete { .. } => 0,
            StateSpace::Continuous { feature_names, .. } => feature_names.len(),
        }
    }
}

/// Which rewards can occur: a finite set (tokenisable as classes) or a continuum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RewardKind {
    Discrete { values: Vec<f32> },
    Continuous,
}

/// Everything a serialiser or model head needs to know about an environment family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvSpec {
    /// `task.env.kind`.
    pub kind: String,
    pub state: StateSpace,
    pub action_names: Vec<String>,
    pub reward: RewardKind,
    /// Maximum steps in one episode (time limit).
    pub max_episode_steps: usize,
}

impl EnvSpec {
    pub fn n_actions(&self) -> usize {
        self.action_names.len()
    }
}

/// Coordinates table for a `size`×`size` grid, id = y·size + x, optionally repeated for
/// `has_key` = 0, 1.
pub(crate) fn grid_coords(size: usize, with_key: bool) -> Vec<Vec<i32>> {
    let layers = if with_key { 2 } else { 1 };
    let mut out = Vec::with_capacity(layers * size * size);
    for k in 0..layers {
        for y in 0..size {
            for x in 0..size {
                let mut c = vec![x as i32, y as i32];
                if with_key {
                    c.push(k as i32);
                }
                out.push(c);
            }
        }
    }
    out
}

/// One task's environment, whatever its family.
#[derive(Debug)]
pub enum TaskEnv {
    Grid(grid::DarkRoom),
    KeyToDoor(key_to_door::KeyToDoor),
    Bandit(bandit::Bandit),
    FrozenLake(frozenlake::FrozenLake),
    CartPole(cartpole::CartPole),
    LunarLander(Box<lander::Lander>),
}

macro_rules! dispatch {
    ($self:ident, $e:ident => $body:expr) => {
        match $self {
            TaskEnv::Grid($e) => $body,
            TaskEnv::KeyToDoor($e) => $body,
            TaskEnv::Bandit($e) => $body,
            TaskEnv::FrozenLake($e) => $body,
            TaskEnv::CartPole($e) => $body,
            TaskEnv::LunarLander($e) => $body,
        }
    };
}

impl Environment for TaskEnv {
    #[inline]
    fn n_actions(&self) -> usize {
        dispatch!(self, e => e.n_actions())
    }
    #[inline]
    fn reset(&mut self, rng: &mut EnvRng) {
        dispatch!(self, e => e.reset(rng))
    }
    #[inline]
    fn step(&mut self, action: usize, rng: &mut EnvRng) -> Transition {
        dispatch!(self, e => e.step(action, rng))
    }
    #[inline]
    fn state_id(&self) -> u32 {
        dispatch!(self, e => e.state_id())
    }
    #[inline]
    fn write_features(&self, out: &mut [f32]) {
        dispatch!(self, e => e.write_features(out))
    }
}
