//! How well a model predicts the next state of held-out learning histories, for continuous
//! states: per-feature mean absolute error, and one figure that weighs features alike (each
//! feature's error over its spread in the logged states), so a format that writes velocities
//! coarsely is not hidden behind precise positions.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatePrediction {
    /// Next states predicted.
    pub n: usize,
    /// Predictions that could not be read as a state.
    pub unparsable: usize,
    /// Fraction of predictions read as a state (leniently or not).
    pub readable: f64,
    /// Predictions read only leniently: numbers written off the format's precision (`0.2`
    /// for `0.20`). They count in the errors.
    pub off_format: usize,
    /// Mean over features of MAE / standard deviation of the logged feature (features that
    /// never vary are left out); `None` if nothing parsed. 1 ≈ as bad as guessing the mean.
    pub normalised_mae: Option<f64>,
    /// Mean absolute error per feature over the parsable predictions.
    pub mae: Vec<f64>,
    /// `normalised_mae` of predicting that the state does not change, over all the pairs:
    /// the bar a model that learned the dynamics clears.
    pub unchanged_normalised_mae: Option<f64>,
}

/// Summarises `(predicted, logged)` state pairs (every logged vector has the same length).
/// `before[k]`: the state `pairs[k]`'s logged state follows (for the unchanged-state bar;
/// empty to skip it).
pub fn state_prediction(
    pairs: &[(Option<Vec<f32>>, Vec<f32>)],
    before: &[Vec<f32>],
    off_format: usize,
) -> StatePrediction {
    let dim = pairs.first().map_or(0, |(_, t)| t.len());
    let parsed: Vec<(&Vec<f32>, &Vec<f32>)> = pairs
        .iter()
        .filter_map(|(p, t)| p.as_ref().filter(|p| p.len() == dim).map(|p| (p, t)))
        .collect();
    let mae = mean_abs_errors(&parsed, dim);
    let spread: Vec<f64> = (0..dim)
        .map(|i| {
            let xs: Vec<f64> = pairs.iter().map(|(_, t)| f64::from(t[i])).collect();
            let m = xs.iter().sum::<f64>() / xs.len() as f64;
            (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64).sqrt()
        })
        .collect();
    let normalised = |mae: &[f64]| {
        let ratios: Vec<f64> = mae
            .iter()
            .zip(&spread)
            .filter(|(_, s)| **s > 1e-9)
            .map(|(e, s)| e / s)
            .collect();
        (!ratios.is_empty()).then(|| ratios.iter().sum::<f64>() / ratios.len() as f64)
    };
    let unchanged: Vec<(&Vec<f32>, &Vec<f32>)> =
        before.iter().zip(pairs.iter().map(|p| &p.1)).collect();
    StatePrediction {
        n: pairs.len(),
        unparsable: pairs.len() - parsed.len(),
        readable: if pairs.is_empty() {
            0.0
        } else {
            parsed.len() as f64 / pairs.len() as f64
        },
        off_format,
        normalised_mae: (!parsed.is_empty()).then(|| normalised(&mae)).flatten(),
        mae: if parsed.is_empty() { Vec::new() } else { mae },
        unchanged_normalised_mae: (before.len() == pairs.len() && !pairs.is_empty())
            .then(|| normalised(&mean_abs_errors(&unchanged, dim)))
            .flatten(),
    }
}

/// Mean |predicted − logged| per feature (zeros without pairs).
fn mean_abs_errors(pairs: &[(&Vec<f32>, &Vec<f32>)], dim: usize) -> Vec<f64> {
    let mut mae = vec![0.0f64; dim];
    for (p, t) in pairs {
        for i in 0..dim {
            mae[i] += f64::from((p[i] - t[i]).abs()) / pairs.len() as f64;
        }
    }
    mae
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_weighed_by_each_features_spread() {
        // Feature 0 varies by ±1, feature 1 by ±10, feature 2 never: an error of 1 on each
        // varying feature weighs 1 and 0.1 of their spreads.
        let pairs = vec![
            (Some(vec![2.0, 11.0, 5.0]), vec![1.0, 10.0, 5.0]),
            (Some(vec![-2.0, -11.0, 5.0]), vec![-1.0, -10.0, 5.0]),
            (None, vec![1.0, 10.0, 5.0]),
            (None, vec![-1.0, -10.0, 5.0]),
        ];
        let s = state_prediction(&pairs, &[], 0);
        assert_eq!((s.n, s.unparsable, s.readable), (4, 2, 0.5));
        assert_eq!(s.mae, vec![1.0, 1.0, 0.0]);
        assert!((s.normalised_mae.unwrap() - 0.55).abs() < 1e-9);
        assert_eq!(s.unchanged_normalised_mae, None);
        // The unchanged-state bar: the logged states follow ones 0.5 and 5 away.
        let before = vec![
            vec![0.5, 5.0, 5.0],
            vec![-0.5, -5.0, 5.0],
            vec![0.5, 5.0, 5.0],
            vec![-0.5, -5.0, 5.0],
        ];
        let s = state_prediction(&pairs, &before, 3);
        assert!((s.unchanged_normalised_mae.unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(s.off_format, 3);
        let none = state_prediction(&[(None, vec![1.0]), (None, vec![2.0])], &[], 0);
        assert_eq!((none.normalised_mae, none.mae.len()), (None, 0));
    }
}
