//! Masked losses and their metrics: cross-entropy (with optional label smoothing) and mean
//! squared error, averaged over the positions whose mask is 1, so callers can restrict the
//! loss to some tokens (e.g. only the action tokens, or only a completion).

use candle_core::{Result, Tensor, D};

/// A head's loss tensor (for backward) and its plain-number metrics.
#[derive(Debug, Clone)]
pub struct HeadLoss {
    pub loss: Tensor,
    pub loss_value: f32,
    /// Fraction of masked-in positions predicted correctly (class match, or error within
    /// tolerance for regression).
    pub accuracy: f32,
}

fn mask_total(mask: &Tensor) -> Result<f32> {
    Ok(mask.sum_all()?.to_scalar::<f32>()?.max(1.0))
}

/// `logits: [N, C]`, `targets: u32 [N]`, `mask: f32 [N]`. With `label_smoothing = e` the target
/// distribution is `(1 - e) one_hot + e / C`.
pub fn masked_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    mask: &Tensor,
    label_smoothing: f64,
) -> Result<HeadLoss> {
    let total = mask_total(mask)?;
    let per_position = super::ops::cross_entropy(logits, targets, label_smoothing)?;
    let loss = (per_position * mask)?
        .sum_all()?
        .affine(1.0 / total as f64, 0.0)?;
    let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
    let targets_v = targets.to_vec1::<u32>()?;
    let mask_v = mask.to_vec1::<f32>()?;
    let correct: f32 = predicted
        .iter()
        .zip(&targets_v)
        .zip(&mask_v)
        .map(|((p, t), m)| if p == t { *m } else { 0.0 })
        .sum();
    Ok(HeadLoss {
        loss_value: loss.to_scalar::<f32>()?,
        loss,
        accuracy: correct / total,
    })
}

/// `pred, target: [N, K]`, `mask: f32 [N]`; loss is the masked mean over positions of the mean
/// squared error over the K outputs; a position is "correct" when every output is within
/// `tolerance`.
pub fn masked_mse(
    pred: &Tensor,
    target: &Tensor,
    mask: &Tensor,
    tolerance: f32,
) -> Result<HeadLoss> {
    let total = mask_total(mask)?;
    let diff = (pred - target)?;
    let per_position = diff.sqr()?.mean(D::Minus1)?;
    let loss = (per_position * mask)?
        .sum_all()?
        .affine(1.0 / total as f64, 0.0)?;
    let max_err = diff.abs()?.max(D::Minus1)?.to_vec1::<f32>()?;
    let mask_v = mask.to_vec1::<f32>()?;
    let correct: f32 = max_err
        .iter()
        .zip(&mask_v)
        .map(|(e, m)| if *e < tolerance { *m } else { 0.0 })
        .sum();
    Ok(HeadLoss {
        loss_value: loss.to_scalar::<f32>()?,
        loss,
        accuracy: correct / total,
    })
}
