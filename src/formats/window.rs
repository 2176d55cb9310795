//! RL-format context windows: `context_steps` consecutive steps of a learning history,
//! crossing episode boundaries as AD requires, as plain host arrays the trainer turns into the
//! RL-heads model's tensors. Training windows come from train-split histories, drawn
//! uniformly over (history, start); validation windows are a fixed, evenly spaced set from
//! test-split histories (held-out tasks), so validation measures generalisation.

use super::starts::{StartTable, WindowStart};
use super::windows::Windows;
use crate::tasks::{EnvSpec, LearningHistory, RewardKind, Split, StateSpace};
use anyhow::{bail, Result};

/// A batch of RL windows, row-major `[batch, steps]` (features `[batch, steps, feature_dim]`).
/// Steps past the end of a short history are padding: zeros with `loss_mask` 0.
#[derive(Debug, Clone, PartialEq)]
pub struct RlWindowBatch {
    pub batch: usize,
    pub steps: usize,
    /// Discrete state ids (discrete-state environments).
    pub states_discrete: Option<Vec<u32>>,
    /// Continuous features (continuous-state environments).
    pub features: Option<Vec<f32>>,
    pub feature_dim: usize,
    pub actions: Vec<u32>,
    /// Index of each reward in the spec's discrete reward values.
    pub reward_classes: Option<Vec<u32>>,
    pub rewards: Vec<f32>,
    pub logprobs: Vec<f32>,
    /// 1 on real steps, 0 on padding.
    pub loss_mask: Vec<f32>,
    /// Where each row came from.
    pub starts: Vec<WindowStart>,
}

/// Window cutter over a dataset's histories.
#[derive(Debug)]
pub struct RlWindows<'a> {
    histories: &'a [LearningHistory],
    context_steps: usize,
    /// Leading steps of every window left out of the loss (context only).
    min_context: usize,
    discrete_states: bool,
    feature_dim: usize,
    /// Per history, the class of each step's reward (discrete reward sets only).
    reward_classes: Option<Vec<Vec<u32>>>,
    train: StartTable,
    test: StartTable,
}

fn reward_class(values: &[f32], r: f32) -> Option<u32> {
    values
        .iter()
        .position(|&v| (v - r).abs() <= 1e-6 * v.abs().max(1.0))
        .map(|i| i as u32)
}

impl<'a> RlWindows<'a> {
    /// `histories` is the dataset's full list (both splits); windows hold `context_steps`.
    pub fn new(
        spec: &EnvSpec,
        histories: &'a [LearningHistory],
        context_steps: usize,
    ) -> Result<RlWindows<'a>> {
        if context_steps == 0 {
            bail!("context windows need at least one step (context_steps = 0)");
        }
        let feature_dim = spec.state.feature_dim();
        for (i, h) in histories.iter().enumerate() {
            if !h.is_consistent() || h.feature_dim != feature_dim {
                bail!("history {i} does not match environment `{}`", spec.kind);
            }
        }
        let reward_classes = match &spec.reward {
            RewardKind::Continuous => None,
            RewardKind::Discrete { values } => Some(
                histories
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        h.rewards
                            .iter()
                            .enumerate()
                            .map(|(t, &r)| match reward_class(values, r) {
                                Some(c) => Ok(c),
                                None => bail!(
                                    "history {i} step {t}: reward {r} is not one of the \
                                     environment's rewards {values:?}"
                                ),
                            })
                            .collect::<Result<Vec<u32>>>()
                    })
                    .collect::<Result<_>>()?,
            ),
        };
        let table = |split: Split| {
            StartTable::new(
                histories
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| h.split == split && !h.is_empty())
                    .map(|(i, h)| (i, h.len().saturating_sub(context_steps) + 1)),
            )
        };
        Ok(RlWindows {
            histories,
            context_steps,
            min_context: 0,
            discrete_states: matches!(spec.state, StateSpace::Discrete { .. }),
            feature_dim,
            reward_classes,
            train: table(Split::Train),
            test: table(Split::Test),
        })
    }

    /// Leaves the first `steps` steps of every window out of the loss (their `loss_mask` is
    /// 0): every counted prediction then has at least that much context.
    pub fn with_min_context(mut self, steps: usize) -> Result<Self> {
        if steps >= self.context_steps {
            bail!(
                "model.min_context = {steps} leaves nothing to learn in windows of \
                 context_steps = {} (it must be smaller)",
                self.context_steps
            );
        }
        self.min_context = steps;
        Ok(self)
    }

    pub fn context_steps(&self) -> usize {
        self.context_steps
    }
}

impl Windows for RlWindows<'_> {
    type Batch = RlWindowBatch;

    fn tables(&self) -> (&StartTable, &StartTable) {
        (&self.train, &self.test)
    }

    /// The windows starting at `starts` (e.g. a chunk of the validation set).
    fn batch(&self, starts: &[WindowStart]) -> RlWindowBatch {
        let (b, t, d) = (starts.len(), self.context_steps, self.feature_dim);
        let mut out = RlWindowBatch {
            batch: b,
            steps: t,
            states_discrete: self.discrete_states.then(|| vec![0; b * t]),
            features: (!self.discrete_states).then(|| vec![0.0; b * t * d]),
            feature_dim: d,
            actions: vec![0; b * t],
            reward_classes: self.reward_classes.as_ref().map(|_| vec![0; b * t]),
            rewards: vec![0.0; b * t],
            logprobs: vec![0.0; b * t],
            loss_mask: vec![0.0; b * t],
            starts: starts.to_vec(),
        };
        for (row, w) in starts.iter().enumerate() {
            let Some(h) = self.histories.get(w.history) else {
                continue;
            };
            let from = w.start.min(h.len());
            let to = (from + t).min(h.len());
            let n = to - from;
            let at = row * t;
            if let Some(s) = out.states_discrete.as_mut() {
                s[at..at + n].copy_from_slice(&h.states[from..to]);
            }
            if let Some(f) = out.features.as_mut() {
                f[at * d..(at + n) * d].copy_from_slice(&h.features[from * d..to * d]);
            }
            out.actions[at..at + n].copy_from_slice(&h.actions[from..to]);
            if let (Some(c), Some(all)) = (out.reward_classes.as_mut(), &self.reward_classes) {
                c[at..at + n].copy_from_slice(&all[w.history][from..to]);
            }
            out.rewards[at..at + n].copy_from_slice(&h.rewards[from..to]);
            out.logprobs[at..at + n].copy_from_slice(&h.logprobs[from..to]);
            out.loss_mask[at + self.min_context.min(n)..at + n].fill(1.0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::testdata::{darkroom_spec, synthetic};
    use crate::seed;

    fn histories() -> Vec<LearningHistory> {
        vec![
            synthetic(10, 4, Split::Train, 0.0),
            synthetic(3, 4, Split::Train, 100.0),
            synthetic(8, 4, Split::Test, 200.0),
        ]
    }

    #[test]
    fn windows_cross_episode_boundaries_and_pad_short_histories() {
        let hs = histories();
        let w = RlWindows::new(&darkroom_spec(), &hs, 5).unwrap();
        let b = w.batch(&[
            WindowStart {
                history: 0,
                start: 2,
            },
            WindowStart {
                history: 1,
                start: 0,
            },
        ]);
        assert_eq!((b.batch, b.steps, b.feature_dim), (2, 5, 0));
        assert!(b.features.is_none());
        // Steps 2..7 of history 0 span episodes 0 and 1 (episode length 4).
        assert_eq!(&b.actions[..5], &[2, 3, 4, 0, 1]);
        assert_eq!(&b.states_discrete.as_ref().unwrap()[..5], &[2, 3, 4, 5, 6]);
        assert_eq!(&b.logprobs[..5], &[2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(&b.rewards[..5], &[1.0, 0.0, 0.0, 1.0, 0.0]);
        assert_eq!(&b.reward_classes.as_ref().unwrap()[..5], &[1, 0, 0, 1, 0]);
        // History 1 has 3 steps: the rest of the row is padding.
        assert_eq!(&b.loss_mask[5..], &[1.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(&b.logprobs[5..], &[100.0, 101.0, 102.0, 0.0, 0.0]);
        assert_eq!(&b.loss_mask[..5], &[1.0; 5]);
    }

    #[test]
    fn sampling_is_seeded_and_uses_only_train_histories() {
        let hs = histories();
        let w = RlWindows::new(&darkroom_spec(), &hs, 5).unwrap();
        let draw = |s| {
            w.sample_train(&mut seed::rng(s, "batches", &[]), 16)
                .unwrap()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1).starts, draw(2).starts);
        let b = draw(3);
        assert!(b.starts.iter().all(|s| hs[s.history].split == Split::Train));
        // History 0 has starts 0..=5, history 1 only 0.
        assert!(b
            .starts
            .iter()
            .all(|s| s.start <= 5 && (s.history == 0 || s.start == 0)));
    }

    #[test]
    fn validation_windows_are_fixed_and_from_test_histories_only() {
        let hs = histories();
        let w = RlWindows::new(&darkroom_spec(), &hs, 5).unwrap();
        let v = w.validation_starts(Split::Test, 3).unwrap();
        assert_eq!(v, w.validation_starts(Split::Test, 3).unwrap());
        let starts: Vec<usize> = v.iter().map(|s| s.start).collect();
        assert!(v.iter().all(|s| s.history == 2));
        assert_eq!(starts, [0, 1, 2]);
        let b = w.batch(&v);
        assert_eq!(&b.logprobs[..5], &[200.0, 201.0, 202.0, 203.0, 204.0]);

        let train_only = &hs[..2];
        let w = RlWindows::new(&darkroom_spec(), train_only, 5).unwrap();
        assert!(
            format!("{:#}", w.validation_starts(Split::Test, 3).unwrap_err())
                .contains("test-split")
        );
    }

    #[test]
    fn min_context_leaves_the_first_steps_of_each_window_out_of_the_loss() {
        let hs = histories();
        let w = RlWindows::new(&darkroom_spec(), &hs, 5)
            .unwrap()
            .with_min_context(2)
            .unwrap();
        let b = w.batch(&[
            WindowStart {
                history: 0,
                start: 3,
            },
            WindowStart {
                history: 1,
                start: 0,
            },
        ]);
        assert_eq!(&b.loss_mask[..5], &[0.0, 0.0, 1.0, 1.0, 1.0]);
        assert_eq!(&b.loss_mask[5..], &[0.0, 0.0, 1.0, 0.0, 0.0]);
        assert!(RlWindows::new(&darkroom_spec(), &hs, 5)
            .unwrap()
            .with_min_context(5)
            .is_err());
    }

    #[test]
    fn rewards_outside_the_spec_are_rejected() {
        let mut hs = histories();
        hs[0].rewards[1] = 0.5;
        let err = RlWindows::new(&darkroom_spec(), &hs, 5).unwrap_err();
        assert!(format!("{err:#}").contains("reward 0.5"), "{err:#}");
    }
}
