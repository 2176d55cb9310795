//! Key-to-Door: an invisible key and an invisible door on a grid, random start. Reward 1 for
//! first reaching the key, then 1 for reaching the door with the key, which ends the episode
//! (max return 2). The observation includes `has_key` — state id = has_key·size² + y·size + x —
//! so tabular Q-learning sees a Markov state; ending the episode at the door keeps it Markov
//! afterwards too (no reward-less "already done" phase hidden from the agent).

use super::grid::{manhattan, move_on_grid, ACTION_NAMES};
use super::{grid_coords, EnvRng, EnvSpec, Environment, RewardKind, StateSpace, Transition};
use rand::Rng;

#[derive(Debug, Clone)]
pub struct KeyToDoor {
    size: u8,
    episode_len: u32,
    key: (u8, u8),
    door: (u8, u8),
    pos: (u8, u8),
    has_key: bool,
    t: u32,
}

impl KeyToDoor {
    /// `key` and `door` must be distinct cells of a grid with side 2..=255.
    pub fn new(size: usize, episode_len: usize, key: (u8, u8), door: (u8, u8)) -> KeyToDoor {
        KeyToDoor {
            size: size.clamp(2, 255) as u8,
            episode_len: episode_len as u32,
            key,
            door,
            pos: (0, 0),
            has_key: false,
            t: 0,
        }
    }

    pub fn spec(size: usize, episode_len: usize) -> EnvSpec {
        EnvSpec {
            kind: "key_to_door".into(),
            state: StateSpace::Discrete {
                n_states: 2 * size * size,
                coord_names: vec!["x".into(), "y".into(), "has_key".into()],
                coords: grid_coords(size, true),
            },
            action_names: ACTION_NAMES.iter().map(|s| s.to_string()).collect(),
            reward: RewardKind::Discrete {
                values: vec![0.0, 1.0],
            },
            max_episode_steps: episode_len,
        }
    }

    /// Upper bound on the return: 2 when every start can reach key then door within the
    /// episode (the worst start is at most 2·(size−1) from the key, and key to door likewise),
    /// otherwise still 2 as an upper bound (some starts may fall short).
    pub fn optimal_return(_size: usize, _episode_len: usize) -> f32 {
        2.0
    }

    /// Whether the bound of [`Self::optimal_return`] is exact from every start.
    pub fn always_solvable(size: usize, episode_len: usize, key: (u8, u8), door: (u8, u8)) -> bool {
        2 * (size - 1) + manhattan(key, door) <= episode_len
    }

    pub fn has_key(&self) -> bool {
        self.has_key
    }
}

impl Environment for KeyToDoor {
    #[inline]
    fn n_actions(&self) -> usize {
        5
    }

    fn reset(&mut self, rng: &mut EnvRng) {
        // Uniform start over the cells that are neither key nor door (starting on the key would
        // hand out a reward-free key and make the return bound depend on luck).
        let n = u32::from(self.size) * u32::from(self.size);
        loop {
            let id = rng.random_range(0..n);
            let cell = (
                (id % u32::from(self.size)) as u8,
                (id / u32::from(self.size)) as u8,
            );
            if cell != self.key && cell != self.door {
                self.pos = cell;
                break;
            }
        }
        self.has_key = false;
        self.t = 0;
    }

    #[inline]
    fn step(&mut self, action: usize, _rng: &mut EnvRng) -> Transition {
        self.pos = move_on_grid(self.size, self.pos, action);
        self.t += 1;
        let mut reward = 0.0;
        let mut terminated = false;
        if !self.has_key && self.pos == self.key {
            self.has_key = true;
            reward = 1.0;
        } else if self.has_key && self.pos == self.door {
            reward = 1.0;
            terminated = true;
        }
        Transition {
            reward,
            terminated,
            truncated: !terminated && self.t >= self.episode_len,
        }
    }

    #[inline]
    fn state_id(&self) -> u32 {
        let s = u32::from(self.size);
        u32::from(self.has_key) * s * s + u32::from(self.pos.1) * s + u32::from(self.pos.0)
    }

    fn write_features(&self, _out: &mut [f32]) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::rng;

    /// Greedy walk towards a target cell.
    fn toward(from: (u8, u8), to: (u8, u8)) -> usize {
        if from.0 < to.0 {
            2
        } else if from.0 > to.0 {
            4
        } else if from.1 < to.1 {
            3
        } else if from.1 > to.1 {
            1
        } else {
            0
        }
    }

    #[test]
    fn scripted_optimal_policy_earns_two_from_every_start_and_random_never_exceeds_two() {
        let mut r = rng(3, "ktd", &[]);
        let (key, door) = ((0, 0), (8, 8));
        assert!(KeyToDoor::always_solvable(9, 50, key, door));
        let mut env = KeyToDoor::new(9, 50, key, door);
        for _ in 0..200 {
            env.reset(&mut r);
            let mut ret = 0.0;
            loop {
                let target = if env.has_key() { door } else { key };
                let tr = env.step(toward(env.pos, target), &mut r);
                ret += tr.reward;
                if tr.done() {
                    assert!(tr.terminated, "optimal walk must end at the door");
                    break;
                }
            }
            assert_eq!(ret, KeyToDoor::optimal_return(9, 50));
        }
        for _ in 0..500 {
            env.reset(&mut r);
            let mut ret = 0.0;
            loop {
                let tr = env.step(r.random_range(0..5), &mut r);
                ret += tr.reward;
                if tr.done() {
                    break;
                }
            }
            assert!(ret <= 2.0);
        }
    }

    #[test]
    fn door_without_key_pays_nothing_and_state_id_encodes_the_key() {
        let mut r = rng(0, "ktd", &[]);
        let mut env = KeyToDoor::new(9, 50, (2, 0), (1, 0));
        env.reset(&mut r);
        env.pos = (0, 0);
        let tr = env.step(2, &mut r); // onto the door, no key
        assert_eq!(tr.reward, 0.0);
        assert!(!tr.done());
        assert_eq!(env.state_id(), 1);
        let tr = env.step(2, &mut r); // key
        assert_eq!(tr.reward, 1.0);
        assert_eq!(env.state_id(), 81 + 2);
        let tr = env.step(4, &mut r); // door with key
        assert_eq!(
            tr,
            Transition {
                reward: 1.0,
                terminated: true,
                truncated: false
            }
        );
    }
}
