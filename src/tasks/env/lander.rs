//! Lunar lander after Gymnasium's `LunarLander-v3` (discrete actions), with rigid bodies,
//! the leg joints and ground contacts from the rapier2d physics engine instead of Box2D.
//! The constants, the observation, the shaped reward and the termination rules are
//! Gymnasium's; where rapier does not do what Box2D does, the README's "Lunar lander" section
//! lists the difference.
//!
//! A task fixes gravity, wind and turbulence, the landing pad's position and the terrain
//! (`LanderParams`), so an agent must discover them by acting. Episodes differ by the random
//! push at the start, the engines' dispersion and the wind phase, all drawn from the
//! environment's RNG: the same seed gives the same trajectory, bit for bit
//! (rapier's `enhanced-determinism`).

use super::{EnvRng, EnvSpec, Environment, RewardKind, StateSpace, Transition};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rapier2d::prelude::*;

const FPS: f32 = 50.0;
/// Rapier solver substeps per step (rapier's default). Most of a step's time is the legs'
/// multibody solve, done once per substep, so fewer substeps run faster. With 3 the heuristic
/// still lands (tested); with 2 its mean return falls from about 250 to about 150.
pub const DEFAULT_SOLVER_ITERATIONS: usize = 4;
const SCALE: f32 = 30.0;
const MAIN_ENGINE_POWER: f32 = 13.0;
const SIDE_ENGINE_POWER: f32 = 0.6;
const INITIAL_RANDOM: f32 = 1000.0;
const LANDER_POLY: [(f32, f32); 6] = [
    (-14.0, 17.0),
    (-17.0, 0.0),
    (-17.0, -10.0),
    (17.0, -10.0),
    (17.0, 0.0),
    (14.0, 17.0),
];
const LEG_AWAY: f32 = 20.0;
const LEG_DOWN: f32 = 18.0;
const LEG_W: f32 = 2.0;
const LEG_H: f32 = 8.0;
const LEG_SPRING_TORQUE: f32 = 40.0;
const SIDE_ENGINE_HEIGHT: f32 = 14.0;
const SIDE_ENGINE_AWAY: f32 = 12.0;
const MAIN_ENGINE_Y_LOCATION: f32 = 4.0;
const VIEWPORT_W: f32 = 600.0;
const VIEWPORT_H: f32 = 400.0;
const W: f32 = VIEWPORT_W / SCALE;
const H: f32 = VIEWPORT_H / SCALE;
const CHUNKS: usize = 11;
const HELIPAD_Y: f32 = H / 4.0;
/// Coming to rest ends the episode with +100 (Gymnasium: Box2D puts the lander to sleep,
/// which needs every body slower than 0.01 m/s and 2°/s for 0.5 s). Rapier's contacts leave
/// a small velocity jitter on a resting lander, so rest is tested on motion instead: the body
/// stays within 1 cm and 1° of where it was for 0.5 s.
const REST_DISTANCE: f32 = 0.01;
const REST_ANGLE: f32 = std::f32::consts::PI / 180.0;
const REST_STEPS: u32 = (0.5 * FPS) as u32;

/// What distinguishes one lander task from another.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LanderParams {
    /// Vertical gravity, m/s² (negative; Gymnasium allows −12 to 0, default −10).
    pub gravity: f32,
    /// Peak wind force (Gymnasium: 0 to 20; 15 when wind is on).
    pub wind_power: f32,
    /// Peak turbulence torque (Gymnasium: 0 to 2; 1.5 when wind is on).
    pub turbulence_power: f32,
    /// Terrain chunks the landing pad is moved right of the centre (Gymnasium: 0), −3 to 3.
    pub pad_offset: i32,
    /// Seed of the terrain heights (fixed per task, drawn per episode in Gymnasium).
    pub terrain_seed: u64,
}

/// The 8-d observation, Gymnasium's order.
pub const FEATURES: [&str; 8] = [
    "x",
    "y",
    "vx",
    "vy",
    "angle",
    "angular_velocity",
    "left_leg",
    "right_leg",
];
/// Typical range of each feature: about the 1st and 99th percentiles over the default task's
/// PPO histories (`conf/task/lunar_lander.yaml`, 294k steps: x −0.82…0.81, y −0.05…1.80,
/// vx −1.09…1.12, vy −1.17…0.31, angle −1.44…1.25, angular velocity −0.92…0.89).
pub const FEATURE_RANGES: [[f32; 2]; 8] = [
    [-1.0, 1.0],
    [-0.1, 1.8],
    [-1.2, 1.2],
    [-1.3, 0.4],
    [-1.5, 1.5],
    [-1.0, 1.0],
    [0.0, 1.0],
    [0.0, 1.0],
];
pub const ACTIONS: [&str; 4] = ["nothing", "left", "main", "right"];

pub struct Lander {
    params: LanderParams,
    max_steps: u32,
    world: PhysicsWorld,
    lander: RigidBodyHandle,
    lander_collider: ColliderHandle,
    legs: [RigidBodyHandle; 2],
    leg_colliders: [ColliderHandle; 2],
    ground: [ColliderHandle; 2],
    pad_x: f32,
    /// Continuous body angle (rapier reports it wrapped to (−π, π]; Box2D's is unbounded).
    angle: f32,
    wind_idx: i64,
    torque_idx: i64,
    prev_shaping: Option<f32>,
    /// Where the lander was when it last moved (x, y, angle), and the steps since.
    rest_anchor: [f32; 3],
    rest_steps: u32,
    state: [f32; 8],
    t: u32,
    solver_iterations: usize,
}

impl std::fmt::Debug for Lander {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lander")
            .field("params", &self.params)
            .field("state", &self.state)
            .field("t", &self.t)
            .finish()
    }
}

/// Terrain heights of a task: Gymnasium's 11 chunks with the pad's 5 heights flattened and
/// a 3-point smoothing.
fn terrain(params: &LanderParams) -> (Vec<f32>, Vec<f32>, f32) {
    let mut rng = ChaCha8Rng::seed_from_u64(params.terrain_seed);
    let mut height: Vec<f32> = (0..=CHUNKS)
        .map(|_| rng.random_range(0.0..H / 2.0))
        .collect();
    let chunk_x: Vec<f32> = (0..CHUNKS)
        .map(|i| W / (CHUNKS - 1) as f32 * i as f32)
        .collect();
    let centre = (CHUNKS / 2) as i32 + params.pad_offset;
    for i in centre - 2..=centre + 2 {
        height[i as usize] = HELIPAD_Y;
    }
    let smooth: Vec<f32> = (0..CHUNKS)
        .map(|i| {
            let prev = if i == 0 {
                height[CHUNKS]
            } else {
                height[i - 1]
            };
            0.33 * (prev + height[i] + height[i + 1])
        })
        .collect();
    let pad_x = chunk_x[centre as usize];
    (chunk_x, smooth, pad_x)
}

fn new_world(solver_iterations: usize) -> PhysicsWorld {
    let mut world = PhysicsWorld::default();
    world.integration_parameters.dt = 1.0 / FPS;
    world.integration_parameters.num_solver_iterations = solver_iterations;
    world
}

/// What a picture of a task needs, in world metres (x right, y up, the screen
/// `WIDTH`×`HEIGHT`): the terrain and the pad, rebuilt from the task's parameters as the
/// environment builds them.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub width: f32,
    pub height: f32,
    /// The surface polyline, left to right.
    pub surface: Vec<(f32, f32)>,
    /// The pad: left x, right x, height (Gymnasium's flags stand at the two ends).
    pub pad: (f32, f32, f32),
    /// The lander's hull around its centre, unrotated.
    pub hull: Vec<(f32, f32)>,
}

/// The terrain and pad of a task, for pictures.
pub fn scene(params: &LanderParams) -> Scene {
    let (chunk_x, smooth, pad_x) = terrain(params);
    let chunk = W / (CHUNKS - 1) as f32;
    // Gymnasium's 0.33 smoothing leaves the pad at 0.99 of HELIPAD_Y; draw it where it is.
    let centre = ((CHUNKS / 2) as i32 + params.pad_offset) as usize;
    let pad_y = smooth[centre];
    Scene {
        width: W,
        height: H,
        surface: chunk_x.into_iter().zip(smooth).collect(),
        pad: (pad_x - chunk, pad_x + chunk, pad_y),
        hull: LANDER_POLY
            .iter()
            .map(|&(x, y)| (x / SCALE, y / SCALE))
            .collect(),
    }
}

/// The lander's centre in world metres from an observation (the inverse of its first two
/// features).
pub fn body_position(observation: &[f32]) -> (f32, f32) {
    (
        observation[0] * (W / 2.0) + W / 2.0,
        observation[1] * (H / 2.0) + HELIPAD_Y + LEG_DOWN / SCALE,
    )
}

fn groups(member: u32) -> InteractionGroups {
    // Box2D's category/mask bits: lander (0x10) and legs (0x20) collide with the ground (0x1)
    // only, never with each other.
    InteractionGroups::new(
        Group::from_bits_truncate(member),
        Group::from_bits_truncate(0x1),
        InteractionTestMode::And,
    )
}

impl Lander {
    pub fn new(params: LanderParams, max_steps: usize) -> Lander {
        let mut world = new_world(DEFAULT_SOLVER_ITERATIONS);
        let (lander, lander_collider, legs, leg_colliders, ground, pad_x) =
            Self::build(&mut world, &params);
        Lander {
            params,
            max_steps: max_steps as u32,
            world,
            lander,
            lander_collider,
            legs,
            leg_colliders,
            ground,
            pad_x,
            angle: 0.0,
            wind_idx: 0,
            torque_idx: 0,
            prev_shaping: None,
            rest_anchor: [0.0; 3],
            rest_steps: 0,
            state: [0.0; 8],
            t: 0,
            solver_iterations: DEFAULT_SOLVER_ITERATIONS,
        }
    }

    /// Simulates each step with `n` solver substeps (`task.env.solver_iterations`).
    pub fn with_solver_iterations(mut self, n: usize) -> Lander {
        self.solver_iterations = n;
        self.world.integration_parameters.num_solver_iterations = n;
        self
    }

    #[allow(clippy::type_complexity)]
    fn build(
        world: &mut PhysicsWorld,
        params: &LanderParams,
    ) -> (
        RigidBodyHandle,
        ColliderHandle,
        [RigidBodyHandle; 2],
        [ColliderHandle; 2],
        [ColliderHandle; 2],
        f32,
    ) {
        world.gravity = Vector::new(0.0, params.gravity);
        let (chunk_x, smooth, pad_x) = terrain(params);
        let moon = world.bodies.insert(RigidBodyBuilder::fixed());
        let bottom = world.colliders.insert_with_parent(
            ColliderBuilder::segment(Vector::new(0.0, 0.0), Vector::new(W, 0.0)).friction(0.1),
            moon,
            &mut world.bodies,
        );
        let surface: Vec<Vector> = chunk_x
            .iter()
            .zip(&smooth)
            .map(|(&x, &y)| Vector::new(x, y))
            .collect();
        let surface = world.colliders.insert_with_parent(
            ColliderBuilder::polyline(surface, None).friction(0.1),
            moon,
            &mut world.bodies,
        );
        let (x0, y0) = (W / 2.0, H);
        let lander = world.bodies.insert(
            RigidBodyBuilder::dynamic()
                .translation(Vector::new(x0, y0))
                .can_sleep(false),
        );
        let poly: Vec<Vector> = LANDER_POLY
            .iter()
            .map(|&(x, y)| Vector::new(x / SCALE, y / SCALE))
            .collect();
        let lander_collider = world.colliders.insert_with_parent(
            ColliderBuilder::convex_hull(&poly)
                .expect("the lander polygon is convex")
                .density(5.0)
                .friction(0.1)
                .restitution(0.0)
                .collision_groups(groups(0x10)),
            lander,
            &mut world.bodies,
        );
        let mut legs = [lander; 2];
        let mut leg_colliders = [lander_collider; 2];
        for (k, i) in [-1.0f32, 1.0].into_iter().enumerate() {
            let leg = world.bodies.insert(
                RigidBodyBuilder::dynamic()
                    .translation(Vector::new(x0 - i * LEG_AWAY / SCALE, y0))
                    .rotation(i * 0.05)
                    .can_sleep(false),
            );
            leg_colliders[k] = world.colliders.insert_with_parent(
                ColliderBuilder::cuboid(LEG_W / SCALE, LEG_H / SCALE)
                    .density(1.0)
                    .friction(0.2)
                    .restitution(0.0)
                    .collision_groups(groups(0x20)),
                leg,
                &mut world.bodies,
            );
            let limits = if i < 0.0 { [0.4, 0.9] } else { [-0.9, -0.4] };
            let joint = RevoluteJointBuilder::new()
                .local_anchor1(Vector::new(0.0, 0.0))
                .local_anchor2(Vector::new(i * LEG_AWAY / SCALE, LEG_DOWN / SCALE))
                .limits(limits)
                .motor_model(MotorModel::ForceBased)
                .motor_velocity(0.3 * i, 1.0e4)
                .motor_max_force(LEG_SPRING_TORQUE)
                .contacts_enabled(false);
            world
                .multibody_joints
                .insert(lander, leg, joint, true)
                .expect("a leg joins the lander's multibody once");
            legs[k] = leg;
        }
        (
            lander,
            lander_collider,
            legs,
            leg_colliders,
            [bottom, surface],
            pad_x,
        )
    }

    pub fn spec(max_steps: usize) -> EnvSpec {
        EnvSpec {
            kind: "lunar_lander".into(),
            state: StateSpace::Continuous {
                feature_names: FEATURES.iter().map(|s| s.to_string()).collect(),
                feature_ranges: FEATURE_RANGES.to_vec(),
            },
            action_names: ACTIONS.iter().map(|s| s.to_string()).collect(),
            reward: RewardKind::Continuous,
            max_episode_steps: max_steps,
        }
    }

    /// The task's optimum, estimated as the mean return of [`Lander::heuristic`] over
    /// `episodes` episodes of a stream seeded by `seed`.
    pub fn heuristic_return(
        params: LanderParams,
        max_steps: usize,
        episodes: usize,
        seed: u64,
        solver_iterations: usize,
    ) -> f32 {
        let mut env = Lander::new(params, max_steps).with_solver_iterations(solver_iterations);
        let mut rng = EnvRng::seed_from_u64(seed);
        let mut total = 0.0;
        for _ in 0..episodes {
            env.start_episode(&mut rng);
            loop {
                let t = env.act(env.heuristic(), &mut rng);
                total += t.reward;
                if t.done() {
                    break;
                }
            }
        }
        total / episodes.max(1) as f32
    }

    pub fn observation(&self) -> [f32; 8] {
        self.state
    }

    fn touches_ground(&self, c: ColliderHandle) -> bool {
        self.ground.iter().any(|&g| {
            self.world
                .narrow_phase
                .contact_pair(c, g)
                .is_some_and(|p| p.has_any_active_contact())
        })
    }

    fn windy(&self) -> bool {
        self.params.wind_power > 0.0 || self.params.turbulence_power > 0.0
    }

    /// Starts an episode: a fresh world, Gymnasium's random push, and (as Gymnasium's
    /// `reset`) one no-op step whose observation starts the episode.
    fn start_episode(&mut self, rng: &mut EnvRng) {
        let mut world = new_world(self.solver_iterations);
        let (lander, lander_collider, legs, leg_colliders, ground, pad_x) =
            Self::build(&mut world, &self.params);
        self.world = world;
        self.lander = lander;
        self.lander_collider = lander_collider;
        self.legs = legs;
        self.leg_colliders = leg_colliders;
        self.ground = ground;
        self.pad_x = pad_x;
        self.angle = 0.0;
        self.prev_shaping = None;
        self.rest_anchor = [f32::NAN; 3];
        self.rest_steps = 0;
        self.t = 0;
        let push = Vector::new(
            rng.random_range(-INITIAL_RANDOM..INITIAL_RANDOM),
            rng.random_range(-INITIAL_RANDOM..INITIAL_RANDOM),
        );
        self.world.bodies[self.lander].add_force(push, true);
        if self.windy() {
            self.wind_idx = rng.random_range(-9999..9999);
            self.torque_idx = rng.random_range(-9999..9999);
        }
        self.advance(0, rng);
    }

    /// Applies `action`, steps the world by 1/50 s and scores the step.
    fn act(&mut self, action: usize, rng: &mut EnvRng) -> Transition {
        let mut out = self.advance(action, rng);
        self.t += 1;
        out.truncated = !out.terminated && self.t >= self.max_steps;
        out
    }

    fn advance(&mut self, action: usize, rng: &mut EnvRng) -> Transition {
        let legs_down = self.state[6] > 0.0 || self.state[7] > 0.0;
        if self.windy() && !legs_down {
            let wave = |i: i64| {
                let i = i as f32;
                ((0.02 * i).sin() + (std::f32::consts::PI * 0.01 * i).sin()).tanh()
            };
            let wind = wave(self.wind_idx) * self.params.wind_power;
            self.wind_idx += 1;
            let torque = wave(self.torque_idx) * self.params.turbulence_power;
            self.torque_idx += 1;
            let body = &mut self.world.bodies[self.lander];
            body.add_force(Vector::new(wind, 0.0), true);
            body.add_torque(torque, true);
        }
        let (sin, cos) = self.angle.sin_cos();
        let tip = (sin, cos);
        let side = (-tip.1, tip.0);
        let dispersion = [
            rng.random_range(-1.0f32..1.0) / SCALE,
            rng.random_range(-1.0f32..1.0) / SCALE,
        ];
        let pos = self.world.bodies[self.lander].translation();
        let mut m_power = 0.0;
        if action == 2 {
            m_power = 1.0;
            let ox = tip.0 * (MAIN_ENGINE_Y_LOCATION / SCALE + 2.0 * dispersion[0])
                + side.0 * dispersion[1];
            let oy = -tip.1 * (MAIN_ENGINE_Y_LOCATION / SCALE + 2.0 * dispersion[0])
                - side.1 * dispersion[1];
            let at = Vector::new(pos.x + ox, pos.y + oy);
            let impulse = Vector::new(-ox * MAIN_ENGINE_POWER, -oy * MAIN_ENGINE_POWER);
            self.world.bodies[self.lander].add_force_at_point(impulse * FPS, at, true);
        }
        let mut s_power = 0.0;
        if action == 1 || action == 3 {
            s_power = 1.0;
            let direction = action as f32 - 2.0;
            let ox = tip.0 * dispersion[0]
                + side.0 * (3.0 * dispersion[1] + direction * SIDE_ENGINE_AWAY / SCALE);
            let oy = -tip.1 * dispersion[0]
                - side.1 * (3.0 * dispersion[1] + direction * SIDE_ENGINE_AWAY / SCALE);
            let at = Vector::new(
                pos.x + ox - tip.0 * 17.0 / SCALE,
                pos.y + oy + tip.1 * SIDE_ENGINE_HEIGHT / SCALE,
            );
            let impulse = Vector::new(-ox * SIDE_ENGINE_POWER, -oy * SIDE_ENGINE_POWER);
            self.world.bodies[self.lander].add_force_at_point(impulse * FPS, at, true);
        }

        let before = self.world.bodies[self.lander].rotation().angle();
        self.world.step();
        // Box2D clears forces after every step; rapier keeps them until reset.
        let body = &mut self.world.bodies[self.lander];
        body.reset_forces(false);
        body.reset_torques(false);
        let after = body.rotation().angle();
        let mut delta = after - before;
        if delta > std::f32::consts::PI {
            delta -= 2.0 * std::f32::consts::PI;
        } else if delta < -std::f32::consts::PI {
            delta += 2.0 * std::f32::consts::PI;
        }
        self.angle += delta;

        let body = &self.world.bodies[self.lander];
        let pos = body.translation();
        let vel = body.linvel();
        let angvel = body.angvel();
        let contact = |c| if self.touches_ground(c) { 1.0 } else { 0.0 };
        self.state = [
            (pos.x - W / 2.0) / (W / 2.0),
            (pos.y - (HELIPAD_Y + LEG_DOWN / SCALE)) / (H / 2.0),
            vel.x * (W / 2.0) / FPS,
            vel.y * (H / 2.0) / FPS,
            self.angle,
            20.0 * angvel / FPS,
            contact(self.leg_colliders[0]),
            contact(self.leg_colliders[1]),
        ];
        let s = &self.state;
        // Shaping measures the distance to the pad, wherever the task put it.
        let dx = (pos.x - self.pad_x) / (W / 2.0);
        let shaping = -100.0 * (dx * dx + s[1] * s[1]).sqrt()
            - 100.0 * (s[2] * s[2] + s[3] * s[3]).sqrt()
            - 100.0 * s[4].abs()
            + 10.0 * s[6]
            + 10.0 * s[7];
        let mut reward = self.prev_shaping.map_or(0.0, |p| shaping - p);
        self.prev_shaping = Some(shaping);
        reward -= m_power * 0.30;
        reward -= s_power * 0.03;

        let here = [pos.x, pos.y, self.angle];
        let a = self.rest_anchor;
        let still = (here[0] - a[0]).hypot(here[1] - a[1]) < REST_DISTANCE
            && (here[2] - a[2]).abs() < REST_ANGLE;
        if still {
            self.rest_steps += 1;
        } else {
            self.rest_anchor = here;
            self.rest_steps = 0;
        }
        let mut terminated = false;
        if self.touches_ground(self.lander_collider) || s[0].abs() >= 1.0 {
            terminated = true;
            reward = -100.0;
        } else if self.rest_steps >= REST_STEPS {
            terminated = true;
            reward = 100.0;
        }
        Transition {
            reward,
            terminated,
            truncated: false,
        }
    }

    /// Gymnasium's `heuristic` controller, aimed at this task's pad (it knows where the pad
    /// is, which an agent has to find out): the strong controller whose mean return
    /// estimates a task's optimum.
    pub fn heuristic(&self) -> usize {
        let s = &self.state;
        let dx = (self.world.bodies[self.lander].translation().x - self.pad_x) / (W / 2.0);
        let angle_targ = (dx * 0.5 + s[2]).clamp(-0.4, 0.4);
        let hover_targ = 0.55 * dx.abs();
        let mut angle_todo = (angle_targ - s[4]) * 0.5 - s[5];
        let mut hover_todo = (hover_targ - s[1]) * 0.5 - s[3] * 0.5;
        if s[6] > 0.0 || s[7] > 0.0 {
            angle_todo = 0.0;
            hover_todo = -s[3] * 0.5;
        }
        if hover_todo > angle_todo.abs() && hover_todo > 0.05 {
            2
        } else if angle_todo < -0.05 {
            3
        } else if angle_todo > 0.05 {
            1
        } else {
            0
        }
    }
}

impl Environment for Lander {
    fn n_actions(&self) -> usize {
        ACTIONS.len()
    }

    fn reset(&mut self, rng: &mut EnvRng) {
        self.start_episode(rng);
    }

    fn step(&mut self, action: usize, rng: &mut EnvRng) -> Transition {
        // An out-of-range action is "nothing" (the trait's contract), never a panic.
        self.act(if action < ACTIONS.len() { action } else { 0 }, rng)
    }

    fn state_id(&self) -> u32 {
        0
    }

    fn write_features(&self, out: &mut [f32]) {
        out.copy_from_slice(&self.state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GYM: LanderParams = LanderParams {
        gravity: -10.0,
        wind_power: 0.0,
        turbulence_power: 0.0,
        pad_offset: 0,
        terrain_seed: 1,
    };

    /// Plays `episodes` episodes; returns (mean return, landings, crashes, trajectory bits).
    fn play(
        params: LanderParams,
        episodes: usize,
        seed: u64,
        policy: impl Fn(&Lander, &mut EnvRng) -> usize,
    ) -> (f32, usize, usize, Vec<u32>) {
        play_with(params, episodes, seed, DEFAULT_SOLVER_ITERATIONS, policy)
    }

    fn play_with(
        params: LanderParams,
        episodes: usize,
        seed: u64,
        solver_iterations: usize,
        policy: impl Fn(&Lander, &mut EnvRng) -> usize,
    ) -> (f32, usize, usize, Vec<u32>) {
        let mut env = Lander::new(params, 1000).with_solver_iterations(solver_iterations);
        let mut rng = EnvRng::seed_from_u64(seed);
        let (mut total, mut landed, mut crashed, mut bits) = (0.0, 0, 0, Vec::new());
        for _ in 0..episodes {
            env.reset(&mut rng);
            loop {
                let a = policy(&env, &mut rng);
                let t = env.step(a, &mut rng);
                total += t.reward;
                bits.extend(env.observation().iter().map(|v| v.to_bits()));
                if t.terminated {
                    landed += usize::from(t.reward == 100.0);
                    crashed += usize::from(t.reward == -100.0);
                }
                if t.done() {
                    break;
                }
            }
        }
        (total / episodes as f32, landed, crashed, bits)
    }

    fn random(_: &Lander, rng: &mut EnvRng) -> usize {
        rng.random_range(0..4)
    }

    #[test]
    fn the_heuristic_lands_and_random_play_crashes_as_in_gymnasium() {
        // Gymnasium's heuristic scores about +250 and lands; random play about −200.
        let (heuristic, landed, _, _) = play(GYM, 10, 0, |env, _| env.heuristic());
        assert!(heuristic > 200.0, "heuristic mean return {heuristic}");
        assert!(landed >= 9, "heuristic landed {landed} of 10");
        let (random, landed, crashed, _) = play(GYM, 10, 0, random);
        assert!(random < -50.0, "random mean return {random}");
        assert_eq!(landed, 0);
        assert!(crashed >= 8, "random play crashed {crashed} of 10");
        // The faster physics setting still lands the heuristic.
        let (heuristic, landed, _, _) = play_with(GYM, 10, 0, 3, |env, _| env.heuristic());
        assert!(
            heuristic > 200.0,
            "3 substeps: heuristic mean return {heuristic}"
        );
        assert!(landed >= 9, "3 substeps: heuristic landed {landed} of 10");
    }

    #[test]
    fn the_same_seed_gives_the_same_trajectory_bit_for_bit() {
        let windy = LanderParams {
            wind_power: 15.0,
            turbulence_power: 1.5,
            ..GYM
        };
        let (_, _, _, a) = play(windy, 3, 7, random);
        let (_, _, _, b) = play(windy, 3, 7, random);
        assert_eq!(a, b);
        let (_, _, _, c) = play(windy, 3, 8, random);
        assert_ne!(a, c, "another seed must give another trajectory");
    }

    #[test]
    fn the_task_parameters_change_what_the_lander_meets() {
        // Free fall with the engines off: stronger gravity reaches the ground sooner.
        let fall = |gravity| {
            let mut env = Lander::new(LanderParams { gravity, ..GYM }, 1000);
            let mut rng = EnvRng::seed_from_u64(3);
            env.reset(&mut rng);
            (1..).find(|_| env.step(0, &mut rng).done()).unwrap()
        };
        assert!(fall(-12.0) < fall(-6.0));
        // The shaping reward pays for approaching the pad, wherever the task put it: the
        // heuristic aimed at a moved pad still lands near it.
        for pad_offset in [-3, 3] {
            let params = LanderParams { pad_offset, ..GYM };
            let (ret, landed, _, _) = play(params, 4, 1, |env, _| env.heuristic());
            assert!(
                ret > 150.0 && landed >= 3,
                "pad {pad_offset}: {ret}, {landed}"
            );
            let env = Lander::new(params, 1000);
            assert_eq!(
                env.pad_x,
                W / 2.0 + pad_offset as f32 * W / (CHUNKS - 1) as f32
            );
        }
    }

    #[test]
    fn the_scene_matches_the_world_the_lander_flies_in() {
        let params = LanderParams {
            pad_offset: 2,
            ..GYM
        };
        let s = scene(&params);
        let env = Lander::new(params, 1000);
        assert_eq!((s.pad.0 + s.pad.1) / 2.0, env.pad_x);
        assert_eq!(s.surface.len(), CHUNKS);
        // The pad's chunks are flat at the pad's height (smoothing keeps the inner ones).
        let on_pad: Vec<_> = s
            .surface
            .iter()
            .filter(|(x, _)| *x > s.pad.0 - 1e-3 && *x < s.pad.1 + 1e-3)
            .collect();
        assert_eq!(on_pad.len(), 3);
        assert!(
            on_pad
                .iter()
                .all(|(_, y)| (y - s.pad.2).abs() < 1e-4 && (y - HELIPAD_Y).abs() < 0.05),
            "{on_pad:?}"
        );
        let mut env = Lander::new(GYM, 1000);
        env.reset(&mut EnvRng::seed_from_u64(0));
        let (x, y) = body_position(&env.observation());
        let p = env.world.bodies[env.lander].translation();
        assert!(
            (x - p.x).abs() < 1e-4 && (y - p.y).abs() < 1e-4,
            "{x},{y} vs {p:?}"
        );
    }

    #[test]
    fn observations_follow_gymnasiums_layout_and_time_limits_truncate() {
        let mut env = Lander::new(GYM, 5);
        let mut rng = EnvRng::seed_from_u64(0);
        env.reset(&mut rng);
        let s = env.observation();
        // Starts at the top centre: x near 0, y ≈ (H − (H/4 + 18/30)) / (H/2) ≈ 1.41.
        assert!(s[0].abs() < 0.05 && (s[1] - 1.41).abs() < 0.05, "{s:?}");
        assert_eq!((s[6], s[7]), (0.0, 0.0));
        let mut out = [0.0; 8];
        env.write_features(&mut out);
        assert_eq!(out, s);
        let steps: Vec<Transition> = (0..5).map(|_| env.step(2, &mut rng)).collect();
        assert!(steps[..4].iter().all(|t| !t.done()));
        assert!(steps[4].truncated && !steps[4].terminated);
        // An out-of-range action is "nothing".
        let mut a = Lander::new(GYM, 1000);
        let mut b = Lander::new(GYM, 1000);
        let (mut ra, mut rb) = (EnvRng::seed_from_u64(5), EnvRng::seed_from_u64(5));
        a.reset(&mut ra);
        b.reset(&mut rb);
        assert_eq!(a.step(0, &mut ra), b.step(9, &mut rb));
        assert_eq!(a.observation(), b.observation());
    }
}
