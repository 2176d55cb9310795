//! How well a model predicts the rewards of held-out learning histories: exact matches at the
//! format's precision, mean absolute error, and Spearman rank correlation between predicted
//! and logged rewards (does the model at least order rollouts by reward?).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardPrediction {
    /// Rewards predicted.
    pub n: usize,
    /// Predictions that were not a number.
    pub unparsable: usize,
    /// Fraction of all `n` within the format's tolerance of the logged reward.
    pub exact: f64,
    /// Mean absolute error over the parsable predictions.
    pub mae: Option<f64>,
    /// Spearman rank correlation over the parsable predictions (`None` if either side is
    /// constant or fewer than 2).
    pub spearman: Option<f64>,
}

/// Summarises `(predicted, logged)` pairs; `tolerance` is what counts as exact.
pub fn reward_prediction(pairs: &[(Option<f32>, f32)], tolerance: f32) -> RewardPrediction {
    let parsed: Vec<(f64, f64)> = pairs
        .iter()
        .filter_map(|(p, t)| p.map(|p| (f64::from(p), f64::from(*t))))
        .collect();
    let exact = parsed
        .iter()
        .filter(|(p, t)| (p - t).abs() <= f64::from(tolerance))
        .count();
    let n = pairs.len();
    RewardPrediction {
        n,
        unparsable: n - parsed.len(),
        exact: if n == 0 { 0.0 } else { exact as f64 / n as f64 },
        mae: (!parsed.is_empty())
            .then(|| parsed.iter().map(|(p, t)| (p - t).abs()).sum::<f64>() / parsed.len() as f64),
        spearman: spearman(&parsed),
    }
}

/// Ranks with ties sharing their mean rank.
fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut r = vec![0.0; xs.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && xs[order[j + 1]] == xs[order[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0;
        for &k in &order[i..=j] {
            r[k] = mean;
        }
        i = j + 1;
    }
    r
}

/// Pearson correlation of the ranks.
pub fn spearman(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.len() < 2 {
        return None;
    }
    let a = ranks(&pairs.iter().map(|p| p.0).collect::<Vec<_>>());
    let b = ranks(&pairs.iter().map(|p| p.1).collect::<Vec<_>>());
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(&b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_mae_and_rank_correlation() {
        let pairs = [
            (Some(0.10), 0.1),
            (Some(0.52), 0.5),
            (None, 0.7),
            (Some(0.95), 0.9),
        ];
        let r = reward_prediction(&pairs, 0.005);
        assert_eq!((r.n, r.unparsable), (4, 1));
        assert!((r.exact - 0.25).abs() < 1e-9);
        assert!((r.mae.unwrap() - (0.0 + 0.02 + 0.05) / 3.0).abs() < 1e-6);
        assert!((r.spearman.unwrap() - 1.0).abs() < 1e-9);
        // Reversed order, with a tie: ranks are averaged.
        let rev = spearman(&[(3.0, 1.0), (2.0, 2.0), (2.0, 2.0), (1.0, 3.0)]).unwrap();
        assert!((rev + 1.0).abs() < 1e-9);
        assert_eq!(spearman(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }
}
