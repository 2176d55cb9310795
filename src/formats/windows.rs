//! The seam both window kinds share ([`super::window::RlWindows`] of RL steps,
//! [`super::lm_window::LmWindows`] of tokens): a window kind names its start tables and cuts
//! the windows at given starts; drawing a training batch and the fixed validation set are
//! written once, here, so the learners' loop over them is written once too
//! (`train::trainer::WindowLearner`).

use super::starts::{StartTable, WindowStart};
use crate::tasks::Split;
use anyhow::{bail, Result};
use rand::Rng;

/// Windows of one kind, cut from train-split and test-split histories.
pub trait Windows {
    /// A batch of windows, as host arrays.
    type Batch;

    /// The (history, start) pairs of the train-split and of the test-split histories.
    fn tables(&self) -> (&StartTable, &StartTable);

    /// The windows starting at `starts` (e.g. a chunk of the validation set).
    fn batch(&self, starts: &[WindowStart]) -> Self::Batch;

    /// A training batch: `batch_size` windows drawn uniformly over (train history, start).
    fn sample_train(&self, rng: &mut impl Rng, batch_size: usize) -> Result<Self::Batch> {
        let (table, _) = self.tables();
        let starts: Option<Vec<WindowStart>> = (0..batch_size).map(|_| table.sample(rng)).collect();
        match starts {
            Some(s) => Ok(self.batch(&s)),
            None => bail!("no train-split history has any step to train on"),
        }
    }

    /// The fixed validation set of `split` ([`super::starts::validation_starts`]).
    fn validation_starts(&self, split: Split, n: usize) -> Result<Vec<WindowStart>> {
        let (train, test) = self.tables();
        super::starts::validation_starts(train, test, split, n)
    }
}
