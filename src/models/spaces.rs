//! The RL-heads model's spaces read off a task's environment description: the one place
//! where a model is sized from a task (training builds the model with it, evaluation rebuilds
//! it from a checkpoint with it).

use super::RlSpaces;
use crate::tasks::{EnvSpec, RewardKind};

/// The model's spaces, read off the task's environment description.
pub fn spaces_of(spec: &EnvSpec) -> RlSpaces {
    RlSpaces {
        states: match &spec.state {
            crate::tasks::StateSpace::Discrete { n_states, .. } => {
                super::StateSpace::Discrete { n: *n_states }
            }
            crate::tasks::StateSpace::Continuous { feature_names, .. } => {
                super::StateSpace::Continuous {
                    dim: feature_names.len(),
                }
            }
        },
        state_coords: match &spec.state {
            crate::tasks::StateSpace::Discrete { coords, .. } => shifted_coords(coords),
            crate::tasks::StateSpace::Continuous { .. } => None,
        },
        n_actions: spec.n_actions(),
        rewards: match &spec.reward {
            RewardKind::Discrete { values } => super::RewardSpace::Classes(values.clone()),
            RewardKind::Continuous => super::RewardSpace::Continuous,
        },
    }
}

/// Coordinates made non-negative (each shifted by its minimum); `None` without coordinates.
fn shifted_coords(coords: &[Vec<i32>]) -> Option<Vec<Vec<u32>>> {
    let k = coords.first().map_or(0, Vec::len);
    if k == 0 || coords.iter().any(|c| c.len() != k) {
        return None;
    }
    let min: Vec<i32> = (0..k)
        .map(|j| coords.iter().map(|c| c[j]).min().unwrap_or(0))
        .collect();
    Some(
        coords
            .iter()
            .map(|c| c.iter().zip(&min).map(|(&v, &m)| (v - m) as u32).collect())
            .collect(),
    )
}
