//! [`LearningHistory`]: the ordered steps of one source-algorithm run on one task, across all
//! its episodes, stored column-wise (one `Vec` per field) so later code can cut context
//! windows of consecutive steps across episode boundaries with plain slicing.

use super::suite::Split;

#[derive(Debug, Clone, PartialEq)]
pub struct LearningHistory {
    pub task_index: u32,
    /// Which of the task's independent source runs this is.
    pub history_index: u32,
    pub split: Split,
    /// Continuous features per step (0 for discrete-state environments).
    pub feature_dim: usize,
    /// Discrete state id the action was taken in (0 for continuous-state environments).
    pub states: Vec<u32>,
    /// `feature_dim` values per step, row-major.
    pub features: Vec<f32>,
    pub actions: Vec<u32>,
    pub rewards: Vec<f32>,
    /// The behaviour policy's log-probability of the action taken.
    pub logprobs: Vec<f32>,
    /// The step ended its episode (terminal or time limit).
    pub dones: Vec<bool>,
    /// Index of the episode (in the source's full run) the step belongs to; with
    /// `keep_every > 1` the recorded indices skip.
    pub episodes: Vec<u32>,
    /// Return of every episode the source ran, recorded or not: its learning curve.
    pub episode_returns: Vec<f32>,
}

impl LearningHistory {
    pub fn new(feature_dim: usize) -> LearningHistory {
        LearningHistory {
            task_index: 0,
            history_index: 0,
            split: Split::Train,
            feature_dim,
            states: Vec::new(),
            features: Vec::new(),
            actions: Vec::new(),
            rewards: Vec::new(),
            logprobs: Vec::new(),
            dones: Vec::new(),
            episodes: Vec::new(),
            episode_returns: Vec::new(),
        }
    }

    /// Number of recorded steps.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Features of step `t` (empty for discrete-state environments).
    pub fn features_at(&self, t: usize) -> &[f32] {
        &self.features[t * self.feature_dim..(t + 1) * self.feature_dim]
    }

    pub fn reserve(&mut self, steps: usize) {
        self.states.reserve(steps);
        self.features.reserve(steps * self.feature_dim);
        self.actions.reserve(steps);
        self.rewards.reserve(steps);
        self.logprobs.reserve(steps);
        self.dones.reserve(steps);
        self.episodes.reserve(steps);
    }

    /// Appends one step; `features` must have `feature_dim` values.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn push_step(
        &mut self,
        state: u32,
        features: &[f32],
        action: u32,
        reward: f32,
        logprob: f32,
        done: bool,
        episode: u32,
    ) {
        debug_assert_eq!(features.len(), self.feature_dim);
        self.states.push(state);
        self.features.extend_from_slice(features);
        self.actions.push(action);
        self.rewards.push(reward);
        self.logprobs.push(logprob);
        self.dones.push(done);
        self.episodes.push(episode);
    }

    /// Checks that the columns agree in length (used when loading from disk).
    pub fn is_consistent(&self) -> bool {
        let n = self.len();
        self.states.len() == n
            && self.features.len() == n * self.feature_dim
            && self.rewards.len() == n
            && self.logprobs.len() == n
            && self.dones.len() == n
            && self.episodes.len() == n
    }
}
