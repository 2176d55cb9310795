//! The small layers both models are built from: a differentiable LayerNorm, GPT-2's Conv1D
//! (a linear layer whose weight is stored `[in, out]`), embedding tables, seeded dropout and
//! the MLP activation.
//!
//! candle 0.11's fused `LayerNorm::forward` / `ops::layer_norm` record no backward pass, so
//! the norm here is adlab's own fused op with a hand-written backward ([`super::ops`]).

use candle_core::{DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;

pub use super::ops::Activation;

/// LayerNorm over the last dimension (differentiable: see [`super::ops::layer_norm`]).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(dim, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(dim, "bias", Init::Const(0.0))?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        super::ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// GPT-2's Conv1D: `y = x W + b` with `W` stored `[in, out]` (the Hugging Face layout, so
/// checkpoints load without transposes). Inputs of any rank are flattened to one 2-D matmul,
/// which is candle's fast path.
#[derive(Debug, Clone)]
pub struct Conv1D {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Conv1D {
    pub fn new(d_in: usize, d_out: usize, init_std: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(
            (d_in, d_out),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: init_std,
            },
        )?;
        let bias = vb.get_with_hints(d_out, "bias", Init::Const(0.0))?;
        Ok(Self {
            weight,
            bias: Some(bias),
        })
    }

    /// A projection without bias (input embeddings of continuous features carry none: the
    /// positional embedding already provides an offset).
    pub fn new_no_bias(d_in: usize, d_out: usize, init_std: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(
            (d_in, d_out),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: init_std,
            },
        )?;
        Ok(Self { weight, bias: None })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, None)
    }

    /// `activation(x W + b)`; with a bias this is one fused graph node ([`super::ops::linear`]).
    pub fn forward_with(&self, x: &Tensor, activation: Option<Activation>) -> Result<Tensor> {
        if let Some(b) = &self.bias {
            return super::ops::linear(x, &self.weight, b, activation);
        }
        let dims = x.dims().to_vec();
        let d_in = dims[dims.len() - 1];
        let n = x.elem_count() / d_in;
        let y = x.reshape((n, d_in))?.matmul(&self.weight)?;
        let mut out_dims = dims;
        *out_dims.last_mut().unwrap() = self.weight.dim(1)?;
        let y = y.reshape(out_dims)?;
        match activation {
            Some(act) => act.apply(&y),
            None => Ok(y),
        }
    }
}

/// An embedding table `[n, d]`, looked up with u32 ids of any shape.
#[derive(Debug, Clone)]
pub struct Embedding {
    pub weight: Tensor,
}

impl Embedding {
    pub fn new(n: usize, d: usize, init_std: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(
            (n, d),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: init_std,
            },
        )?;
        Ok(Self { weight })
    }

    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let mut dims = ids.dims().to_vec();
        let flat = ids.flatten_all()?;
        let rows = self.weight.index_select(&flat, 0)?;
        dims.push(self.weight.dim(1)?);
        rows.reshape(dims)
    }
}

/// Inverted dropout with a mask drawn on the host from the run's seeded RNG, so the same seed
/// gives the same training run. `rng = None` means evaluation: identity.
pub fn dropout(x: &Tensor, p: f64, rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
    match rng {
        Some(rng) if p > 0.0 => {
            // Drawn in bulk: the same stream as one `next_u32` per element, much faster.
            let mut bits = vec![0u32; x.elem_count()];
            rng.fill(&mut bits[..]);
            super::ops::dropout_with_bits(x, p, &bits)
        }
        _ => Ok(x.clone()),
    }
}

/// Draws a `[shape]` 0/1 mask with `P(1) = p` from the seeded RNG (token masking).
pub fn bernoulli_mask(
    shape: &[usize],
    p: f64,
    rng: &mut ChaCha8Rng,
    dtype: DType,
) -> Result<Tensor> {
    let threshold = (p * u32::MAX as f64) as u32;
    let n: usize = shape.iter().product();
    let mask: Vec<f32> = (0..n)
        .map(|_| if rng.next_u32() < threshold { 1.0 } else { 0.0 })
        .collect();
    Tensor::from_vec(mask, shape, &candle_core::Device::Cpu)?.to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn dropout_keeps_each_element_by_one_u32_of_the_stream_in_order() {
        let x = Tensor::ones((3, 50), DType::F32, &candle_core::Device::Cpu).unwrap();
        let p = 0.3;
        let y = dropout(&x, p, Some(&mut ChaCha8Rng::seed_from_u64(7))).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let threshold = (p * u32::MAX as f64) as u32;
        let expected: Vec<f32> = (0..150)
            .map(|_| {
                if rng.next_u32() > threshold {
                    1.0 / 0.7
                } else {
                    0.0
                }
            })
            .collect();
        let got = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(got, expected);
        assert!(got.contains(&0.0) && got.iter().any(|&v| v > 1.0));
    }
}
