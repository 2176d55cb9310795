//! Evaluator tests: KV-cache decoding inside the rollout equals a full forward over the same
//! context, sampled evaluation is reproducible from the seed, and baselines do not depend on
//! which tasks share a batch.

use super::evaluate::evaluate_policy;
use super::policy::{InContextPolicy, StepOutcome, StepStates};
use super::rl_policy::RlHeadsPolicy;
use super::rollout::{roll_out, Acting};
use crate::eval::EvalConfig;
use crate::models::rl_heads::{PositionEmbedding, TokenLayout};
use crate::models::tests::tiny_rl_config;
use crate::models::{RewardInput, RewardSpace, RlBatch, RlHeadsModel, StateInput};
use crate::tasks::{TaskConfig, TaskSuite};
use candle_core::{Device, Tensor};

fn darkroom_suite() -> TaskSuite {
    let text = include_str!("../../conf/task/darkroom.yaml");
    let mut cfg = TaskConfig::from_yaml(text).unwrap();
    cfg.split.max_tasks = Some(6);
    TaskSuite::from_config(&cfg).unwrap()
}

fn model(suite: &TaskSuite, layout: TokenLayout, embed_logprob: bool) -> RlHeadsModel {
    let mut cfg = tiny_rl_config(layout, PositionEmbedding::PerToken);
    cfg.init_std = 0.5; // logits far from uniform, so a wrong context shows
    cfg.embed_logprob = embed_logprob;
    let spaces = crate::models::spaces::spaces_of(suite.spec());
    RlHeadsModel::new(
        &cfg,
        &spaces,
        crate::seed::rng(1, crate::runs::layout::MODEL_INIT_SEED, &[]),
    )
    .unwrap()
}

/// What the policy saw and said at one step.
struct Record {
    window_start: usize,
    ids: Vec<u32>,
    logits: Vec<f32>,
    actions: Vec<u32>,
    rewards: Vec<f32>,
    logprobs: Vec<f32>,
}

struct Recording<'m> {
    inner: RlHeadsPolicy<'m>,
    log: Vec<Record>,
}

impl InContextPolicy for Recording<'_> {
    fn rows(&self) -> usize {
        self.inner.rows()
    }
    fn n_actions(&self) -> usize {
        self.inner.n_actions()
    }
    fn action_logits(&mut self, states: StepStates) -> anyhow::Result<Vec<f32>> {
        let logits = self.inner.action_logits(states)?;
        self.log.push(Record {
            window_start: self.inner.window_start(),
            ids: states.ids.to_vec(),
            logits: logits.clone(),
            actions: vec![],
            rewards: vec![],
            logprobs: vec![],
        });
        Ok(logits)
    }
    fn observe_outcome(&mut self, o: StepOutcome) -> anyhow::Result<()> {
        let last = self.log.last_mut().unwrap();
        last.actions = o.actions.to_vec();
        last.rewards = o.rewards.to_vec();
        last.logprobs = o.logprobs.to_vec();
        self.inner.observe_outcome(o)
    }
}

/// The batch of steps `records` (rows × steps), as the trainer would build it.
fn batch_of(records: &[Record], model: &RlHeadsModel) -> RlBatch {
    let (b, t) = (records[0].ids.len(), records.len());
    let col = |f: &dyn Fn(&Record, usize) -> u32| -> Vec<u32> {
        (0..b)
            .flat_map(|r| records.iter().map(move |rec| (r, rec)))
            .map(|(r, rec)| f(rec, r))
            .collect()
    };
    let RewardSpace::Classes(values) = &model.spaces.rewards else {
        panic!("darkroom rewards are classes")
    };
    let dev = &Device::Cpu;
    let logprobs: Vec<f32> = (0..b)
        .flat_map(|r| records.iter().map(move |rec| rec.logprobs[r]))
        .collect();
    RlBatch {
        states: StateInput::Discrete(Tensor::from_vec(col(&|x, r| x.ids[r]), (b, t), dev).unwrap()),
        actions: Tensor::from_vec(col(&|x, r| x.actions[r]), (b, t), dev).unwrap(),
        rewards: RewardInput::Classes(
            Tensor::from_vec(
                col(&|x, r| RewardSpace::class_of(values, x.rewards[r])),
                (b, t),
                dev,
            )
            .unwrap(),
        ),
        logprobs: Tensor::from_vec(logprobs, (b, t), dev).unwrap(),
        loss_mask: Tensor::ones((b, t), candle_core::DType::F32, dev).unwrap(),
    }
}

#[test]
fn rollout_logits_equal_a_full_forward_over_the_same_context() {
    let suite = darkroom_suite();
    let tasks = suite.test_tasks();
    let tasks = &tasks[..1.min(tasks.len())];
    let tasks: Vec<usize> = tasks
        .iter()
        .copied()
        .chain(suite.train_tasks())
        .take(3)
        .collect();
    for (layout, embed_logprob) in [
        (TokenLayout::Sar, false),
        (TokenLayout::Fused, false),
        (TokenLayout::Sar, true),
    ] {
        let m = model(&suite, layout, embed_logprob);
        let mut policy = Recording {
            inner: RlHeadsPolicy::new(&m, tasks.len(), 0.5),
            log: vec![],
        };
        let acting = Acting {
            temperature: 1.0,
            seed: 3,
            label: "eval",
        };
        // 2 episodes of 20 steps: the 6-step context slides several times.
        let episodes = roll_out(&mut policy, &suite, &tasks, 2, acting).unwrap();
        assert_eq!(episodes.len(), 2 * tasks.len());
        assert!(policy.log.iter().any(|r| r.window_start > 0), "never slid");
        let n_actions = m.spaces.n_actions;
        for (t, rec) in policy.log.iter().enumerate() {
            let batch = batch_of(&policy.log[rec.window_start..=t], &m);
            let out = m.forward(&batch, None).unwrap();
            let steps = t - rec.window_start + 1;
            let full: Vec<f32> = out
                .action_logits
                .narrow(1, steps - 1, 1)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(full.len(), tasks.len() * n_actions);
            for (a, b) in full.iter().zip(&rec.logits) {
                assert!(
                    (a - b).abs() < 1e-4,
                    "{layout:?} step {t}: cached {b} vs full {a}"
                );
            }
        }
    }
}

fn eval_config(temperature: f64) -> EvalConfig {
    EvalConfig {
        enabled: true,
        episodes: 3,
        tasks: 2,
        train_tasks: 1,
        temperature,
        summary_k: 1,
        context_kept: 0.5,
        prediction_windows: 0,
        trace_episodes: 1,
        rlhf: None,
    }
}

#[test]
fn sampled_evaluation_is_reproducible_from_the_seed() {
    let suite = darkroom_suite();
    let m = model(&suite, TokenLayout::Fused, false);
    let run = |seed: u64| {
        evaluate_policy(&suite, &eval_config(1.0), seed, |rows| {
            Ok(Box::new(RlHeadsPolicy::new(&m, rows, 0.5)))
        })
        .unwrap()
        .rows
    };
    let a = run(5);
    assert_eq!(a, run(5));
    assert_ne!(a, run(6));
    // Both splits, all four policies, `episodes` rows per task and policy.
    let n_test = suite.test_tasks().len().min(2);
    assert_eq!(a.len(), (n_test + 1) * 3 * 4);
    for split in [crate::tasks::Split::Test, crate::tasks::Split::Train] {
        for p in super::PolicyKind::RL {
            assert!(
                a.iter().any(|r| r.split == split && r.policy == p),
                "{split:?} {p:?}"
            );
        }
    }
}

#[test]
fn a_tasks_random_baseline_does_not_depend_on_its_batch() {
    let suite = darkroom_suite();
    let all = suite.train_tasks();
    let together = super::baselines::random(&suite, &all, 2, 9).unwrap();
    let alone = super::baselines::random(&suite, &all[1..2], 2, 9).unwrap();
    let same: Vec<_> = together
        .iter()
        .filter(|e| e.task == all[1])
        .copied()
        .collect();
    assert_eq!(same, alone);
}

/// Key-to-Door: random starts, so the environment stream matters for the replay.
fn key_to_door_suite() -> TaskSuite {
    let text = include_str!("../../conf/task/key_to_door.yaml");
    let mut cfg = TaskConfig::from_yaml(text).unwrap();
    cfg.split.max_tasks = Some(10);
    TaskSuite::from_config(&cfg).unwrap()
}

fn random_traces(
    suite: &TaskSuite,
    tasks: &[usize],
    episodes: usize,
    trace: usize,
) -> (Vec<super::rollout::Episode>, Vec<super::trace::Trace>) {
    let mut policy = super::baselines::RandomPolicy::new(tasks.len(), suite.spec().n_actions());
    let acting = Acting {
        temperature: 1.0,
        seed: 4,
        label: "eval",
    };
    super::rollout::roll_out_traced(&mut policy, suite, tasks, episodes, acting, trace).unwrap()
}

#[test]
fn traces_hold_the_states_the_environment_was_in() {
    use crate::tasks::Environment;
    let suite = key_to_door_suite();
    let tasks = vec![suite.test_tasks()[0], suite.train_tasks()[0]];
    let (episodes, traces) = random_traces(&suite, &tasks, 4, 4);
    // Every episode traced: replaying the actions on the task's environment stream meets the
    // same states, rewards and ends.
    assert_eq!(traces.len(), 8);
    for (r, &task) in tasks.iter().enumerate() {
        let mine: Vec<_> = traces.iter().filter(|t| t.task == task).collect();
        assert_eq!(
            mine.iter().map(|t| t.episode).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        let mut env = suite.make_env(task).unwrap();
        let mut rng = super::rollout::env_rng(4, task);
        for (e, t) in mine.iter().enumerate() {
            assert_eq!(t.split, suite.split(task).unwrap());
            assert_eq!(t.params, suite.tasks()[task]);
            assert!(t.features.is_empty() && t.final_features.is_empty());
            assert_eq!(t.states.len(), t.actions.len());
            assert_eq!(t.rewards.len(), t.actions.len());
            let played = episodes[r * 4 + e];
            assert_eq!((played.task, played.episode), (task, e));
            assert_eq!((t.ret, t.steps()), (played.ret, played.steps));
            env.reset(&mut rng);
            let mut end = None;
            for (i, &a) in t.actions.iter().enumerate() {
                assert_eq!(
                    env.state_id(),
                    t.states[i],
                    "task {task} episode {e} step {i}"
                );
                let tr = env.step(a as usize, &mut rng);
                assert_eq!(tr.reward, t.rewards[i]);
                assert_eq!(tr.done(), i + 1 == t.steps());
                end = Some(tr);
            }
            assert_eq!(env.state_id(), t.final_state);
            assert_eq!(end.unwrap().terminated, t.terminated);
            assert_eq!(t.rewards.iter().sum::<f32>(), t.ret);
        }
    }

    // Only the first and last `trace` episodes are kept, unchanged, and tracing changes
    // nothing about the episodes played.
    let (same, few) = random_traces(&suite, &tasks, 4, 1);
    assert_eq!(same, episodes);
    let picked: Vec<_> = traces
        .iter()
        .filter(|t| t.episode == 0 || t.episode == 3)
        .cloned()
        .collect();
    assert_eq!(few, picked);
    let (_, none) = random_traces(&suite, &tasks, 4, 0);
    assert!(none.is_empty());
    assert!(super::trace::is_traced(37, 40, 3) && !super::trace::is_traced(36, 40, 3));
    assert!(super::trace::is_traced(2, 40, 3) && !super::trace::is_traced(3, 40, 3));
}

#[test]
fn traces_round_trip_through_traces_jsonl() {
    let suite = key_to_door_suite();
    let (_, mut traces) = random_traces(&suite, &suite.test_tasks()[..2], 3, 1);
    traces.push(super::trace::Trace {
        task: 3,
        split: crate::tasks::Split::Test,
        params: crate::tasks::TaskParams::LunarLander {
            gravity: -11.25,
            wind_power: 1.5,
            turbulence_power: 0.125,
            pad_offset: -2,
            terrain_seed: u64::MAX - 7,
        },
        episode: 9,
        ret: -123.456,
        terminated: true,
        states: vec![],
        features: vec![vec![0.1, -1.4e-7, 3.0], vec![f32::MIN_POSITIVE, 2.5, -0.0]],
        actions: vec![2, 3],
        rewards: vec![-0.3, -100.0],
        final_state: 0,
        final_features: vec![0.5, 0.25, 1.0],
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(crate::runs::layout::TRACES);
    super::trace::write(&path, &traces).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), traces.len());
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    for key in [
        "task", "split", "params", "episode", "return", "states", "actions", "rewards",
    ] {
        assert!(first.get(key).is_some(), "no {key}: {first}");
    }
    assert_eq!(first["params"]["kind"], "key_to_door");
    assert_eq!(super::trace::read(&path).unwrap(), traces);
}
