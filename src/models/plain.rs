//! The maths of the fused ops in [`super::ops`], composed from candle's own differentiable
//! ops. Used on devices other than the CPU (the fused ops have CPU kernels only), and by the
//! tests as the reference every fused op must match, forward and backward.

use super::kernels::Activation;
use candle_core::{Result, Tensor, D};

/// LayerNorm over the last dimension.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let c = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let var = c.sqr()?.mean_keepdim(D::Minus1)?;
    c.broadcast_div(&(var + eps)?.sqrt()?)?
        .broadcast_mul(weight)?
        .broadcast_add(bias)
}

/// Softmax over the last dimension of `[.., T, T_total]` scores, query i seeing keys
/// `0..=T_total - T + i`.
pub fn causal_softmax(scores: &Tensor) -> Result<Tensor> {
    let dims = scores.dims();
    let (t, keys) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    let mask: Vec<f32> = (0..t * keys)
        .map(|i| {
            if i % keys > keys - t + i / keys {
                -1e9
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, (t, keys), scores.device())?.to_dtype(scores.dtype())?;
    let shifted = scores.broadcast_add(&mask)?;
    let e = shifted
        .broadcast_sub(&shifted.max_keepdim(D::Minus1)?)?
        .exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// The attention core: `[B, T, 3d]` -> `[B, T, d]`.
pub fn causal_attention(qkv: &Tensor, n_heads: usize) -> Result<Tensor> {
    let (b, t, d3) = qkv.dims3()?;
    let hd = d3 / 3 / n_heads;
    let (q, k, v) = split_heads(qkv, n_heads)?;
    let scores = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
    causal_softmax(&scores)?
        .matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, t, d3 / 3))
}

/// `activation(x W + b)`.
pub fn linear(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    activation: Option<Activation>,
) -> Result<Tensor> {
    let z = x.broadcast_matmul(weight)?.broadcast_add(bias)?;
    match activation {
        None => Ok(z),
        Some(act) => activation_of(act, &z),
    }
}

pub fn activation_of(act: Activation, z: &Tensor) -> Result<Tensor> {
    match act {
        Activation::Relu => z.relu(),
        Activation::Gelu => z.gelu_erf(),
        Activation::GeluTanh => z.gelu(),
    }
}

/// Per-row cross-entropy with label smoothing `e`.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, e: f64) -> Result<Tensor> {
    let shifted = logits.broadcast_sub(&logits.max_keepdim(1)?)?;
    let log_z = shifted.exp()?.sum_keepdim(1)?.log()?;
    let lp = shifted.broadcast_sub(&log_z)?;
    let nll = lp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
    let uniform = lp.mean(1)?.neg()?;
    (nll * (1.0 - e))? + (uniform * e)?
}

/// Inverted dropout with the mask of [`super::ops::dropout_with_bits`].
pub fn dropout_with_bits(x: &Tensor, p: f64, bits: &[u32]) -> Result<Tensor> {
    let mask = super::kernels::dropout_mask(bits, p);
    x.mul(&Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?)
}

/// `[B, T, 3d]` -> q, k, v as `[B, H, T, head_dim]` each (contiguous).
pub fn split_heads(qkv: &Tensor, n_heads: usize) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, t, d3) = qkv.dims3()?;
    let hd = d3 / 3 / n_heads;
    let parts = qkv
        .reshape((b, t, 3, n_heads, hd))?
        .permute((2, 0, 3, 1, 4))?
        .contiguous()?;
    Ok((parts.get(0)?, parts.get(1)?, parts.get(2)?))
}
