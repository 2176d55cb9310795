//! Dark Room: an invisible goal on a square grid, start at the centre. Dense variant: reward 1
//! on every step that ends on the goal. Sparse variant (Dark Room Hard): reward 1 the first
//! time the goal is reached, and the episode ends there — without the termination the agent's
//! state would not tell whether the reward is still available, and tabular Q-learning would
//! chase a reward that is gone.
//!
//! Coordinates: x is the column, y the row, y grows downwards (`up` = y − 1). Moves into a
//! wall leave the agent in place.

use super::{grid_coords, EnvRng, EnvSpec, Environment, RewardKind, StateSpace, Transition};

pub const ACTION_NAMES: [&str; 5] = ["noop", "up", "right", "down", "left"];

/// Applies a grid action (0 noop, 1 up, 2 right, 3 down, 4 left) with walls.
#[inline]
pub fn move_on_grid(size: u8, (x, y): (u8, u8), action: usize) -> (u8, u8) {
    match action {
        1 => (x, y.saturating_sub(1)),
        2 => ((x + 1).min(size - 1), y),
        3 => (x, (y + 1).min(size - 1)),
        4 => (x.saturating_sub(1), y),
        _ => (x, y),
    }
}

/// The optimal move from `from` towards `to`: along x first, then y; `noop` on arrival (the
/// dense Dark Room pays on every step spent on the goal).
pub fn step_toward(from: (u8, u8), to: (u8, u8)) -> usize {
    use std::cmp::Ordering::*;
    match (from.0.cmp(&to.0), from.1.cmp(&to.1)) {
        (Less, _) => 2,
        (Greater, _) => 4,
        (Equal, Less) => 3,
        (Equal, Greater) => 1,
        (Equal, Equal) => 0,
    }
}

/// The optimal action in every cell of a `size`×`size` grid (id = y·size + x) when heading
/// for `target`.
pub fn policy_toward(size: usize, target: (u8, u8)) -> Vec<u32> {
    (0..size * size)
        .map(|id| step_toward(((id % size) as u8, (id / size) as u8), target) as u32)
        .collect()
}

pub fn manhattan(a: (u8, u8), b: (u8, u8)) -> usize {
    (a.0.abs_diff(b.0) + a.1.abs_diff(b.1)) as usize
}

#[derive(Debug, Clone)]
pub struct DarkRoom {
    size: u8,
    episode_len: u32,
    sparse: bool,
    goal: (u8, u8),
    pos: (u8, u8),
    t: u32,
}

impl DarkRoom {
    /// `size` must be in 1..=255 and `goal` inside the grid (checked by config validation and
    /// the task suite).
    pub fn new(size: usize, episode_len: usize, sparse: bool, goal: (u8, u8)) -> DarkRoom {
        let size = size.clamp(1, 255) as u8;
        let start = Self::start(size);
        DarkRoom {
            size,
            episode_len: episode_len as u32,
            sparse,
            goal,
            pos: start,
            t: 0,
        }
    }

    /// The start cell of every episode: the centre.
    pub fn start(size: u8) -> (u8, u8) {
        (size / 2, size / 2)
    }

    pub fn spec(size: usize, episode_len: usize) -> EnvSpec {
        EnvSpec {
            kind: "darkroom".into(),
            state: StateSpace::Discrete {
                n_states: size * size,
                coord_names: vec!["x".into(), "y".into()],
                coords: grid_coords(size, false),
            },
            action_names: ACTION_NAMES.iter().map(|s| s.to_string()).collect(),
            reward: RewardKind::Discrete {
                values: vec![0.0, 1.0],
            },
            max_episode_steps: episode_len,
        }
    }

    /// Closed form of the best achievable return from the centre. Dense: the goal is reached
    /// after d = manhattan steps and the agent then stays on it, collecting L − d + 1 (d ≥ 1);
    /// a goal on the start cell pays on all L steps. Sparse: 1 if reachable within L steps.
    pub fn optimal_return(size: usize, episode_len: usize, sparse: bool, goal: (u8, u8)) -> f32 {
        let start = Self::start(size.clamp(1, 255) as u8);
        let d = manhattan(start, goal);
        let l = episode_len;
        if sparse {
            // Even at d = 0 one step (a no-op) reaches the goal.
            return if d.max(1) <= l { 1.0 } else { 0.0 };
        }
        if d == 0 {
            l as f32
        } else if d <= l {
            (l - d + 1) as f32
        } else {
            0.0
        }
    }

    pub fn position(&self) -> (u8, u8) {
        self.pos
    }
}

impl Environment for DarkRoom {
    #[inline]
    fn n_actions(&self) -> usize {
        5
    }

    #[inline]
    fn reset(&mut self, _rng: &mut EnvRng) {
        self.pos = Self::start(self.size);
        self.t = 0;
    }

    #[inline]
    fn step(&mut self, action: usize, _rng: &mut EnvRng) -> Transition {
        self.pos = move_on_grid(self.size, self.pos, action);
        self.t += 1;
        let on_goal = self.pos == self.goal;
        let terminated = self.sparse && on_goal;
        Transition {
            reward: if on_goal { 1.0 } else { 0.0 },
            terminated,
            truncated: !terminated && self.t >= self.episode_len,
        }
    }

    #[inline]
    fn state_id(&self) -> u32 {
        u32::from(self.pos.1) * u32::from(self.size) + u32::from(self.pos.0)
    }

    fn write_features(&self, _out: &mut [f32]) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::rng;

    /// Best return by backward induction over (time, cell) using the environment itself.
    fn dp_optimal(size: usize, l: usize, goal: (u8, u8)) -> f32 {
        let n = size * size;
        let mut v = vec![0.0f32; n];
        let mut r = rng(0, "t", &[]);
        for _ in 0..l {
            let mut next = vec![0.0f32; n];
            for (id, slot) in next.iter_mut().enumerate() {
                let cell = ((id % size) as u8, (id / size) as u8);
                let mut best = f32::MIN;
                for a in 0..5 {
                    let mut env = DarkRoom::new(size, l, false, goal);
                    env.pos = cell;
                    let tr = env.step(a, &mut r);
                    best = best.max(tr.reward + v[env.state_id() as usize]);
                }
                *slot = best;
            }
            v = next;
        }
        v[(size / 2) * size + size / 2]
    }

    #[test]
    fn dense_optimal_return_matches_dynamic_programming_for_every_goal() {
        for gy in 0..9u8 {
            for gx in 0..9u8 {
                let closed = DarkRoom::optimal_return(9, 20, false, (gx, gy));
                assert_eq!(closed, dp_optimal(9, 20, (gx, gy)), "goal {:?}", (gx, gy));
            }
        }
        // The closed form spelled out: corner goal is 8 steps away -> 20 - 8 + 1.
        assert_eq!(DarkRoom::optimal_return(9, 20, false, (0, 0)), 13.0);
        assert_eq!(DarkRoom::optimal_return(9, 20, false, (4, 4)), 20.0);
        // Unreachable within the episode: 0.
        assert_eq!(DarkRoom::optimal_return(17, 5, false, (0, 0)), 0.0);
    }

    #[test]
    fn walking_straight_to_the_goal_and_waiting_earns_the_optimum() {
        let mut env = DarkRoom::new(9, 20, false, (6, 1));
        let mut r = rng(0, "t", &[]);
        env.reset(&mut r);
        let plan = [2, 2, 1, 1, 1];
        let mut ret = 0.0;
        for t in 0..20 {
            let tr = env.step(*plan.get(t).unwrap_or(&0), &mut r);
            ret += tr.reward;
            assert_eq!(tr.truncated, t == 19);
        }
        assert_eq!(ret, DarkRoom::optimal_return(9, 20, false, (6, 1)));
        assert_eq!(ret, 16.0);
    }

    #[test]
    fn sparse_pays_once_and_ends_the_episode() {
        let mut env = DarkRoom::new(17, 20, true, (9, 8));
        let mut r = rng(0, "t", &[]);
        env.reset(&mut r);
        let tr = env.step(2, &mut r);
        assert_eq!(
            tr,
            Transition {
                reward: 1.0,
                terminated: true,
                truncated: false
            }
        );
        assert_eq!(DarkRoom::optimal_return(17, 20, true, (0, 0)), 1.0);
    }

    #[test]
    fn the_expert_policy_reaches_every_goal_in_the_optimal_return() {
        for goal in [(0u8, 0u8), (4, 4), (8, 2), (3, 7)] {
            let policy = policy_toward(9, goal);
            let mut env = DarkRoom::new(9, 20, false, goal);
            let mut rng = crate::seed::rng(0, "t", &[]);
            env.reset(&mut rng);
            let mut ret = 0.0;
            for _ in 0..20 {
                let a = policy[env.state_id() as usize] as usize;
                ret += env.step(a, &mut rng).reward;
            }
            assert_eq!(
                ret,
                DarkRoom::optimal_return(9, 20, false, goal),
                "goal {goal:?}"
            );
        }
    }

    #[test]
    fn walls_block_moves() {
        assert_eq!(move_on_grid(9, (0, 0), 1), (0, 0));
        assert_eq!(move_on_grid(9, (0, 0), 4), (0, 0));
        assert_eq!(move_on_grid(9, (8, 8), 2), (8, 8));
        assert_eq!(move_on_grid(9, (8, 8), 3), (8, 8));
        assert_eq!(move_on_grid(9, (3, 3), 3), (3, 4));
    }
}
