//! Where context windows start: the table of valid (history, start step) pairs of one split,
//! drawn uniformly for training and stratified for validation. Shared by the RL windows
//! (fixed number of steps) and the LM windows (fixed token budget), which differ only in how
//! many starts each history has.

use crate::tasks::Split;
use anyhow::{bail, Result};
use rand::Rng;

/// A window's first step: `history` indexes the dataset's history list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WindowStart {
    pub history: usize,
    pub start: usize,
}

/// Valid starts of the histories of one split.
#[derive(Debug, Clone, Default)]
pub struct StartTable {
    /// History indices with at least one start.
    histories: Vec<usize>,
    /// Cumulative number of starts, `cumulative[i]` = starts of histories before `i`.
    cumulative: Vec<u64>,
    total: u64,
}

impl StartTable {
    /// `starts` lists `(history index, number of valid starts)`; histories with none are
    /// skipped.
    pub fn new(starts: impl IntoIterator<Item = (usize, usize)>) -> StartTable {
        let mut table = StartTable::default();
        for (h, n) in starts {
            if n > 0 {
                table.histories.push(h);
                table.cumulative.push(table.total);
                table.total += n as u64;
            }
        }
        table
    }

    /// The histories with at least one start, in index order.
    pub fn histories(&self) -> Vec<usize> {
        self.histories.clone()
    }

    /// Number of (history, start) pairs.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn at(&self, k: u64) -> WindowStart {
        let i = self.cumulative.partition_point(|&c| c <= k) - 1;
        WindowStart {
            history: self.histories[i],
            start: (k - self.cumulative[i]) as usize,
        }
    }

    /// A start drawn uniformly over all (history, start) pairs; `None` if the table is empty.
    pub fn sample(&self, rng: &mut impl Rng) -> Option<WindowStart> {
        (self.total > 0).then(|| self.at(rng.random_range(0..self.total)))
    }

    /// `n` starts, one drawn uniformly from each of `n` equal strata of all pairs (every
    /// pair if there are fewer): spread over the histories like an even spacing, but at a
    /// random position inside each, so validation covers every stage of learning. (An even
    /// stride over equal-length histories lands on the same step of every history — step 0,
    /// where the source still acts at random.) Pass the same seeded `rng` to get the same set
    /// every time, so validation numbers compare across steps and runs.
    pub fn stratified(&self, n: usize, rng: &mut impl Rng) -> Vec<WindowStart> {
        let n = (n as u64).min(self.total);
        (0..n)
            .map(|k| {
                let lo = (u128::from(k) * u128::from(self.total) / u128::from(n)) as u64;
                let hi = (u128::from(k + 1) * u128::from(self.total) / u128::from(n)) as u64;
                self.at(rng.random_range(lo..hi.max(lo + 1)))
            })
            .collect()
    }
}

/// The fixed validation set of `split` for window cutters that keep a train and a test
/// table: `n` starts stratified over that split's histories, the same set on every call.
/// Test-split windows measure generalisation to held-out tasks; train-split ones the same on
/// training tasks, so the gap between the two shows memorisation.
pub fn validation_starts(
    train: &StartTable,
    test: &StartTable,
    split: Split,
    n: usize,
) -> Result<Vec<WindowStart>> {
    let table = match split {
        Split::Train => train,
        Split::Test => test,
    };
    if table.is_empty() {
        bail!(
            "no {}-split histories: validation needs held-out tasks (task.split.test_fraction > 0)",
            split.as_str()
        );
    }
    let mut rng = crate::seed::rng(0, "validation-starts", &[split as u64]);
    Ok(table.stratified(n, &mut rng))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_cover_every_pair_and_skip_empty_histories() {
        let t = StartTable::new([(0, 2), (1, 0), (2, 3)]);
        assert_eq!(t.len(), 5);
        let mut rng = crate::seed::rng(0, "t", &[]);
        let all = t.stratified(100, &mut rng);
        let pairs: Vec<(usize, usize)> = all.iter().map(|w| (w.history, w.start)).collect();
        assert_eq!(pairs, [(0, 0), (0, 1), (2, 0), (2, 1), (2, 2)]);
        assert_eq!(t.stratified(2, &mut rng).len(), 2);
        assert!(StartTable::new([(0, 0)]).stratified(3, &mut rng).is_empty());
    }

    #[test]
    fn stratified_starts_cover_every_stage_of_equal_length_histories() {
        // 400 histories of 2000 starts each: an even stride of 64 would hit start 0 of every
        // 25th history. Stratified starts must cover the early, middle and late parts of the
        // histories alike and visit 64 different histories.
        let t = StartTable::new((0..400).map(|h| (h, 2000)));
        let starts = t.stratified(64, &mut crate::seed::rng(0, "validation", &[]));
        let mut quarters = [0usize; 4];
        for w in &starts {
            quarters[w.start * 4 / 2000] += 1;
        }
        assert!(quarters.iter().all(|&q| q >= 8), "{quarters:?}");
        let histories: std::collections::HashSet<usize> =
            starts.iter().map(|w| w.history).collect();
        assert_eq!(histories.len(), 64);
        let again = t.stratified(64, &mut crate::seed::rng(0, "validation", &[]));
        assert_eq!(starts, again);
    }
}
