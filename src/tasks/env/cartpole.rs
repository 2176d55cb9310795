//! CartPole with gym CartPole-v1 dynamics (Euler integration, the published constants),
//! reward 1 per step including the failing one, a time limit that truncates. Physics runs in
//! f64 as gym does; the observation is the f32 state (x, x_dot, theta, theta_dot).

use super::{EnvRng, EnvSpec, Environment, RewardKind, StateSpace, Transition};
use rand::Rng;

const GRAVITY: f64 = 9.8;
const MASS_CART: f64 = 1.0;
const MASS_POLE: f64 = 0.1;
const TOTAL_MASS: f64 = MASS_CART + MASS_POLE;
const LENGTH: f64 = 0.5; // half the pole's length
const POLE_MASS_LENGTH: f64 = MASS_POLE * LENGTH;
const FORCE_MAG: f64 = 10.0;
const TAU: f64 = 0.02;
const THETA_LIMIT: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
const X_LIMIT: f64 = 2.4;

#[derive(Debug, Clone)]
pub struct CartPole {
    max_steps: u32,
    state: [f64; 4],
    t: u32,
}

impl CartPole {
    pub fn new(max_steps: usize) -> CartPole {
        CartPole {
            max_steps: max_steps as u32,
            state: [0.0; 4],
            t: 0,
        }
    }

    pub fn spec(max_steps: usize) -> EnvSpec {
        EnvSpec {
            kind: "cartpole".into(),
            state: StateSpace::Continuous {
                feature_names: ["x", "x_dot", "theta", "theta_dot"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                // Position and angle: the termination bounds; velocities: beyond what a
                // balancing policy reaches.
                feature_ranges: vec![[-2.4, 2.4], [-2.0, 2.0], [-0.21, 0.21], [-3.0, 3.0]],
            },
            action_names: vec!["left".into(), "right".into()],
            reward: RewardKind::Discrete { values: vec![1.0] },
            max_episode_steps: max_steps,
        }
    }

    /// Every step pays 1, so surviving to the limit is optimal.
    pub fn optimal_return(max_steps: usize) -> f32 {
        max_steps as f32
    }

    pub fn state(&self) -> [f64; 4] {
        self.state
    }

    pub fn set_state(&mut self, state: [f64; 4]) {
        self.state = state;
    }
}

impl Environment for CartPole {
    fn n_actions(&self) -> usize {
        2
    }

    fn reset(&mut self, rng: &mut EnvRng) {
        for v in &mut self.state {
            *v = rng.random_range(-0.05..0.05);
        }
        self.t = 0;
    }

    fn step(&mut self, action: usize, _rng: &mut EnvRng) -> Transition {
        let [x, x_dot, theta, theta_dot] = self.state;
        let force = if action == 1 { FORCE_MAG } else { -FORCE_MAG };
        let (sin, cos) = theta.sin_cos();
        let temp = (force + POLE_MASS_LENGTH * theta_dot * theta_dot * sin) / TOTAL_MASS;
        let theta_acc = (GRAVITY * sin - cos * temp)
            / (LENGTH * (4.0 / 3.0 - MASS_POLE * cos * cos / TOTAL_MASS));
        let x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos / TOTAL_MASS;
        // Gym's default "euler": positions use the old velocities.
        self.state = [
            x + TAU * x_dot,
            x_dot + TAU * x_acc,
            theta + TAU * theta_dot,
            theta_dot + TAU * theta_acc,
        ];
        self.t += 1;
        let [x, _, theta, _] = self.state;
        let terminated =
            !(-X_LIMIT..=X_LIMIT).contains(&x) || !(-THETA_LIMIT..=THETA_LIMIT).contains(&theta);
        Transition {
            reward: 1.0,
            terminated,
            truncated: !terminated && self.t >= self.max_steps,
        }
    }

    fn state_id(&self) -> u32 {
        0
    }

    fn write_features(&self, out: &mut [f32]) {
        for (o, s) in out.iter_mut().zip(self.state) {
            *o = s as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::rng;

    fn assert_close(got: [f64; 4], want: [f64; 4]) {
        for i in 0..4 {
            assert!(
                (got[i] - want[i]).abs() < 1e-9,
                "component {i}: {got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn first_push_from_rest_matches_the_hand_derived_step() {
        // From rest, force +10: temp = 10/1.1, theta_acc = -temp / (0.5·(4/3 − 0.1/1.1))
        // = −14.634146…, x_acc = temp + 0.05·14.634146…/1.1 = 9.756097…; Euler with tau 0.02.
        let mut r = rng(0, "cp", &[]);
        let mut env = CartPole::new(500);
        env.set_state([0.0; 4]);
        env.step(1, &mut r);
        assert_close(env.state(), [0.0, 0.195_121_951_2, 0.0, -0.292_682_926_8]);
        env.step(0, &mut r);
        assert_close(env.state(), [0.003_902_439_0, 0.0, -0.005_853_658_5, 0.0]);
    }

    #[test]
    fn fixed_action_sequence_matches_gym_equations() {
        // Expected values computed from the published CartPole-v1 equations, independently of
        // this code.
        let want = [
            [0.0096000000, 0.1746791957, 0.0308000000, -0.2430687180],
            [0.0130935839, 0.3693479761, 0.0259386256, -0.5258796281],
            [0.0204805434, 0.1738708126, 0.0154210331, -0.2251374161],
            [0.0239579597, 0.3687690102, 0.0109182848, -0.5129163478],
            [0.0313333399, 0.1734949928, 0.0006599578, -0.2168128684],
            [0.0348032397, -0.0216363867, -0.0036762996, 0.0760781647],
            [0.0343705120, -0.2167054428, -0.0021547363, 0.3675989418],
            [0.0300364032, -0.0215529399, 0.0051972426, 0.0742373752],
        ];
        let mut r = rng(0, "cp", &[]);
        let mut env = CartPole::new(500);
        env.set_state([0.01, -0.02, 0.03, 0.04]);
        for (a, w) in [1, 1, 0, 1, 0, 0, 0, 1].into_iter().zip(want) {
            let tr = env.step(a, &mut r);
            assert_eq!(tr.reward, 1.0);
            assert!(!tr.done());
            for i in 0..4 {
                assert!(
                    (env.state()[i] - w[i]).abs() < 1e-9,
                    "{:?} vs {w:?}",
                    env.state()
                );
            }
        }
    }

    #[test]
    fn falling_pole_terminates_and_time_limit_truncates() {
        let mut r = rng(0, "cp", &[]);
        let mut env = CartPole::new(500);
        env.reset(&mut r);
        assert!(env.state().iter().all(|v| v.abs() <= 0.05));
        let mut steps = 0;
        loop {
            steps += 1;
            let tr = env.step(1, &mut r);
            if tr.done() {
                assert!(tr.terminated && !tr.truncated);
                break;
            }
        }
        assert!(
            steps < 30,
            "always pushing right must topple the pole quickly"
        );
        let mut env = CartPole::new(3);
        env.set_state([0.0; 4]);
        let dones: Vec<bool> = [1, 0, 1]
            .iter()
            .map(|&a| env.step(a, &mut r).truncated)
            .collect();
        assert_eq!(dones, [false, false, true]);
    }
}
