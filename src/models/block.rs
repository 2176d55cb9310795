//! The transformer trunk both models share: causal self-attention (with an incremental
//! key/value cache for step-by-step decoding), MLP, pre-norm GPT-2 block, and the stack of
//! blocks with its final LayerNorm. Parameter names follow the Hugging Face GPT-2 layout
//! (`h.{i}.ln_1`, `h.{i}.attn.c_attn`, `h.{i}.attn.c_proj`, `h.{i}.ln_2`, `h.{i}.mlp.c_fc`,
//! `h.{i}.mlp.c_proj`, `ln_f`) because the VarBuilder paths mirror this module tree.

use super::layers::{dropout, Activation, Conv1D, LayerNorm};
use super::ops::{causal_attention, causal_softmax, split_heads};
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use rand_chacha::ChaCha8Rng;

/// Size and regularisation of the shared trunk.
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkConfig {
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub activation: Activation,
    /// Dropout on the residual branches (after attention and MLP projections).
    pub dropout: f64,
    /// Dropout on the attention probabilities.
    pub attn_dropout: f64,
    pub layer_norm_eps: f64,
    pub init_std: f64,
}

impl TrunkConfig {
    /// GPT-2 scales the init of projections that write into the residual stream by
    /// 1/sqrt(2 n_layers) so the stream's variance does not grow with depth.
    fn residual_init_std(&self) -> f64 {
        self.init_std / (2.0 * self.n_layers as f64).sqrt()
    }
}

/// Keys and values of the tokens seen so far by one attention layer, `[B, H, T, head_dim]`.
#[derive(Debug, Clone, Default)]
pub struct LayerKvCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
}

/// One `LayerKvCache` per block: the state of incremental decoding.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<LayerKvCache>,
}

impl KvCache {
    pub fn new(n_layers: usize) -> Self {
        Self {
            layers: vec![LayerKvCache::default(); n_layers],
        }
    }

    /// Number of tokens already in the cache (the position of the next token).
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.k.as_ref())
            .map_or(0, |k| k.dim(2).unwrap_or(0))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        for l in &mut self.layers {
            *l = LayerKvCache::default();
        }
    }

    /// A cache of `n` rows, each a copy of this one-row cache: lets several continuations
    /// of one context be scored in one batched call without touching the original.
    pub fn repeat_rows(&self, n: usize) -> Result<KvCache> {
        let repeat = |t: &Option<Tensor>| -> Result<Option<Tensor>> {
            match t {
                Some(t) if t.dim(0)? == 1 => Ok(Some(t.repeat((n, 1, 1, 1))?)),
                Some(t) => {
                    candle_core::bail!("repeat_rows needs a one-row cache, not {:?}", t.dims())
                }
                None => Ok(None),
            }
        };
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(LayerKvCache {
                    k: repeat(&l.k)?,
                    v: repeat(&l.v)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache { layers })
    }
}

#[derive(Debug, Clone)]
pub struct CausalSelfAttention {
    /// Fused query/key/value projection `[d, 3d]`.
    c_attn: Conv1D,
    c_proj: Conv1D,
    n_heads: usize,
    attn_dropout: f64,
    resid_dropout: f64,
}

impl CausalSelfAttention {
    pub fn new(cfg: &TrunkConfig, vb: VarBuilder) -> Result<Self> {
        if !cfg.d_model.is_multiple_of(cfg.n_heads) {
            candle_core::bail!(
                "d_model {} is not divisible by n_heads {}",
                cfg.d_model,
                cfg.n_heads
            );
        }
        Ok(Self {
            c_attn: Conv1D::new(cfg.d_model, 3 * cfg.d_model, cfg.init_std, vb.pp("c_attn"))?,
            c_proj: Conv1D::new(
                cfg.d_model,
                cfg.d_model,
                cfg.residual_init_std(),
                vb.pp("c_proj"),
            )?,
            n_heads: cfg.n_heads,
            attn_dropout: cfg.attn_dropout,
            resid_dropout: cfg.dropout,
        })
    }

    /// `x: [B, T, d]` -> `[B, T, d]`. With a cache, `x` holds the new tokens only; their keys
    /// and values are appended and they attend to everything cached before them.
    pub fn forward(
        &self,
        x: &Tensor,
        cache: Option<&mut LayerKvCache>,
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let qkv = self.c_attn.forward(x)?;
        let training_dropout = rng.is_some() && self.attn_dropout > 0.0;
        let y = if cache.is_none() && !training_dropout {
            // Training / full-window path: one fused node with its own backward.
            causal_attention(&qkv, self.n_heads)?
        } else {
            // Decoding (KV cache) or attention dropout: the same maths from tensor ops.
            let (q, mut k, mut v) = split_heads(&qkv, self.n_heads)?;
            // Scaling q (smaller than the score matrix) is cheaper than scaling the scores.
            let q = (q * (1.0 / ((d / self.n_heads) as f64).sqrt()))?;
            if let Some(cache) = cache {
                if let (Some(k_old), Some(v_old)) = (&cache.k, &cache.v) {
                    k = Tensor::cat(&[k_old, &k], 2)?;
                    v = Tensor::cat(&[v_old, &v], 2)?;
                }
                cache.k = Some(k.clone());
                cache.v = Some(v.clone());
            }
            let probs = causal_softmax(&q.matmul(&k.t()?)?)?;
            let probs = dropout(&probs, self.attn_dropout, rng.as_deref_mut())?;
            probs
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b, t, d))?
        };
        dropout(&self.c_proj.forward(&y)?, self.resid_dropout, rng)
    }
}

#[derive(Debug, Clone)]
pub struct Mlp {
    c_fc: Conv1D,
    c_proj: Conv1D,
    activation: Activation,
    dropout: f64,
}

impl Mlp {
    pub fn new(cfg: &TrunkConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            c_fc: Conv1D::new(cfg.d_model, cfg.d_ff, cfg.init_std, vb.pp("c_fc"))?,
            c_proj: Conv1D::new(
                cfg.d_ff,
                cfg.d_model,
                cfg.residual_init_std(),
                vb.pp("c_proj"),
            )?,
            activation: cfg.activation,
            dropout: cfg.dropout,
        })
    }

    pub fn forward(&self, x: &Tensor, rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let hidden = self.c_fc.forward_with(x, Some(self.activation))?;
        dropout(&self.c_proj.forward(&hidden)?, self.dropout, rng)
    }
}

/// Pre-norm GPT-2 block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.
#[derive(Debug, Clone)]
pub struct Block {
    ln_1: LayerNorm,
    attn: CausalSelfAttention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    pub fn new(cfg: &TrunkConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            ln_1: LayerNorm::new(cfg.d_model, cfg.layer_norm_eps, vb.pp("ln_1"))?,
            attn: CausalSelfAttention::new(cfg, vb.pp("attn"))?,
            ln_2: LayerNorm::new(cfg.d_model, cfg.layer_norm_eps, vb.pp("ln_2"))?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
        })
    }

    pub fn forward(
        &self,
        x: &Tensor,
        cache: Option<&mut LayerKvCache>,
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        let x = (x + self
            .attn
            .forward(&self.ln_1.forward(x)?, cache, rng.as_deref_mut())?)?;
        &x + self.mlp.forward(&self.ln_2.forward(&x)?, rng)?
    }
}

/// The stack of blocks `h.{i}` followed by the final LayerNorm `ln_f`.
#[derive(Debug, Clone)]
pub struct Trunk {
    h: Vec<Block>,
    ln_f: LayerNorm,
    pub cfg: TrunkConfig,
}

impl Trunk {
    pub fn new(cfg: &TrunkConfig, vb: VarBuilder) -> Result<Self> {
        for (key, p) in [("dropout", cfg.dropout), ("attn_dropout", cfg.attn_dropout)] {
            if !(0.0..1.0).contains(&p) {
                candle_core::bail!("model.{key} = {p}: expected a probability in [0, 1)");
            }
        }
        let h = (0..cfg.n_layers)
            .map(|i| Block::new(cfg, vb.pp("h").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            h,
            ln_f: LayerNorm::new(cfg.d_model, cfg.layer_norm_eps, vb.pp("ln_f"))?,
            cfg: cfg.clone(),
        })
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.h.len())
    }

    /// `x: [B, T, d]` (embeddings, positions included) -> normalised hidden states `[B, T, d]`.
    pub fn forward(
        &self,
        x: &Tensor,
        mut cache: Option<&mut KvCache>,
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        let mut x = x.clone();
        for (i, block) in self.h.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            x = block.forward(&x, layer_cache, rng.as_deref_mut())?;
        }
        self.ln_f.forward(&x)
    }
}
