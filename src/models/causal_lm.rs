//! `causal_lm`: a standard GPT-2 (token + learned position embeddings, pre-norm blocks,
//! final LayerNorm, LM head tied to the token embedding) reading learning histories
//! serialised as text. Parameter names and shapes follow the Hugging Face GPT-2 layout
//! (`transformer.wte.weight`, `transformer.h.{i}.attn.c_attn.weight` as Conv1D `[in, out]`,
//! ...), so a Hugging Face GPT-2 directory (config.json + model.safetensors) loads as a
//! starting point and a saved run is itself a loadable Hugging Face GPT-2.

use super::block::{KvCache, Trunk, TrunkConfig};
use super::layers::{dropout, Activation, Embedding};
use super::losses::masked_cross_entropy;
use super::params::{read_safetensors, safetensors_bytes, seeded_var_builder, set_var, ParamSet};
use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use candle_nn::VarMap;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn default_eps() -> f64 {
    1e-5
}
fn default_init_std() -> f64 {
    0.02
}

/// `model.*` keys when `model.kind = causal_lm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CausalLmConfig {
    pub name: String,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    /// Maximum sequence length (GPT-2's `n_positions`).
    pub context_tokens: usize,
    pub activation: Activation,
    /// Dropout on embeddings and residual branches (GPT-2's embd_pdrop / resid_pdrop).
    pub dropout: f64,
    pub attn_dropout: f64,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_init_std")]
    pub init_std: f64,
    /// A Hugging Face GPT-2 directory (config.json + model.safetensors) to start from; its
    /// config.json then fixes the architecture (sizes, vocabulary, activation).
    #[serde(default)]
    pub init_from: Option<PathBuf>,
}

/// The subset of a Hugging Face GPT-2 `config.json` adlab reads and writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HfGpt2Config {
    #[serde(default = "hf_model_type")]
    pub model_type: String,
    pub vocab_size: usize,
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "hf_activation")]
    pub activation_function: String,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Special tokens of the checkpoint's own vocabulary: without them `transformers` assumes
    /// GPT-2's 50256, which a small vocabulary does not have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
}

fn hf_model_type() -> String {
    "gpt2".into()
}
fn hf_activation() -> String {
    "gelu_new".into()
}

/// Token cross-entropy over the masked-in positions.
#[derive(Debug, Clone)]
pub struct LmLoss {
    pub loss: Tensor,
    pub loss_value: f32,
    pub token_accuracy: f32,
}

pub struct CausalLm {
    wte: Embedding,
    wpe: Embedding,
    trunk: Trunk,
    pub cfg: CausalLmConfig,
    pub vocab_size: usize,
    varmap: VarMap,
}

impl CausalLm {
    /// Builds the model with GPT-2 init (normal(0, init_std), residual projections scaled by
    /// 1/sqrt(2 n_layers)) drawn from `init_rng`; then, if `cfg.init_from` is set, loads
    /// that Hugging Face checkpoint (whose config.json overrides the size keys and
    /// `vocab_size`).
    pub fn new(cfg: &CausalLmConfig, vocab_size: usize, init_rng: ChaCha8Rng) -> Result<Self> {
        match &cfg.init_from {
            Some(dir) => Self::from_pretrained(dir, cfg, init_rng),
            None => Self::build(cfg, vocab_size, init_rng),
        }
    }

    fn build(cfg: &CausalLmConfig, vocab_size: usize, init_rng: ChaCha8Rng) -> Result<Self> {
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, init_rng);
        let t = vb.pp("transformer");
        let trunk_cfg = TrunkConfig {
            d_model: cfg.d_model,
            n_layers: cfg.n_layers,
            n_heads: cfg.n_heads,
            d_ff: cfg.d_ff,
            activation: cfg.activation,
            dropout: cfg.dropout,
            attn_dropout: cfg.attn_dropout,
            layer_norm_eps: cfg.layer_norm_eps,
            init_std: cfg.init_std,
        };
        Ok(Self {
            wte: Embedding::new(vocab_size, cfg.d_model, cfg.init_std, t.pp("wte"))?,
            wpe: Embedding::new(cfg.context_tokens, cfg.d_model, cfg.init_std, t.pp("wpe"))?,
            trunk: Trunk::new(&trunk_cfg, t.clone())?,
            cfg: cfg.clone(),
            vocab_size,
            varmap,
        })
    }

    pub fn params(&self) -> ParamSet {
        ParamSet::from_varmap(&self.varmap)
    }

    pub fn new_cache(&self) -> KvCache {
        self.trunk.new_cache()
    }

    /// `input_ids: u32 [B, T]` -> logits `[B, T, V]`. `dropout_rng = None` is evaluation mode.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        dropout_rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        self.forward_inner(input_ids, None, dropout_rng)
    }

    /// Incremental decoding: `input_ids: [B, T_new]` are the tokens after those already in
    /// `cache` (positions continue from `cache.len()`); returns their logits `[B, T_new, V]`.
    /// Evaluation mode (no dropout). Fails once the cache would exceed `context_tokens`: use
    /// [`LmDecoder`] for a window that slides.
    pub fn forward_cached(&self, input_ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        self.forward_inner(input_ids, Some(cache), None)
    }

    /// The final (normalised) hidden states `[B, T, d]` instead of logits: what a value head
    /// reads (RLHF's PPO). [`CausalLm::lm_head`] turns them into the logits `forward` returns.
    pub fn forward_hidden(
        &self,
        input_ids: &Tensor,
        dropout_rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        self.hidden_inner(input_ids, None, dropout_rng)
    }

    /// The tied LM head: hidden states `[.., d]` -> logits `[.., V]`.
    pub fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        let mut dims = hidden.dims().to_vec();
        let d = self.cfg.d_model;
        let n = hidden.elem_count() / d;
        // Tied LM head: logits = h wte^T, as one 2-D matmul (candle's fast path).
        let logits = hidden.reshape((n, d))?.matmul(&self.wte.weight.t()?)?;
        *dims
            .last_mut()
            .context("lm_head: hidden states need a last dimension")? = self.vocab_size;
        Ok(logits.reshape(dims)?)
    }

    fn forward_inner(
        &self,
        input_ids: &Tensor,
        cache: Option<&mut KvCache>,
        rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        let h = self.hidden_inner(input_ids, cache, rng)?;
        self.lm_head(&h)
    }

    fn hidden_inner(
        &self,
        input_ids: &Tensor,
        cache: Option<&mut KvCache>,
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let start = cache.as_ref().map_or(0, |c| c.len());
        if start + t > self.cfg.context_tokens {
            bail!(
                "sequence of {} tokens exceeds model.context_tokens = {}",
                start + t,
                self.cfg.context_tokens
            );
        }
        // Positions are looked up per row ([B, T]) rather than broadcast over the batch: the
        // backward of a broadcast add sums over the leading dimension, a slow path in candle.
        let positions: Vec<u32> = (0..b)
            .flat_map(|_| start as u32..(start + t) as u32)
            .collect();
        let positions = Tensor::from_vec(positions, (b, t), input_ids.device())?;
        let x = (self.wte.forward(input_ids)? + self.wpe.forward(&positions)?)?;
        let x = dropout(&x, self.cfg.dropout, rng.as_deref_mut())?;
        Ok(self.trunk.forward(&x, cache, rng)?)
    }

    /// Mean token cross-entropy over positions with `mask = 1`, and token accuracy.
    /// `logits: [B, T, V]`, `targets: u32 [B, T]` (already shifted: the token each position
    /// should predict), `mask: f32 [B, T]`.
    pub fn loss(&self, logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<LmLoss> {
        let (b, t, v) = logits.dims3()?;
        let head = masked_cross_entropy(
            &logits.reshape((b * t, v))?,
            &targets.flatten_all()?,
            &mask.flatten_all()?,
            0.0,
        )?;
        Ok(LmLoss {
            loss: head.loss,
            loss_value: head.loss_value,
            token_accuracy: head.accuracy,
        })
    }

    /// The Hugging Face `config.json` describing this model.
    pub fn hf_config(&self) -> HfGpt2Config {
        HfGpt2Config {
            model_type: "gpt2".into(),
            vocab_size: self.vocab_size,
            n_positions: self.cfg.context_tokens,
            n_embd: self.cfg.d_model,
            n_layer: self.cfg.n_layers,
            n_head: self.cfg.n_heads,
            n_inner: Some(self.cfg.d_ff),
            activation_function: self.cfg.activation.hf_name().into(),
            layer_norm_epsilon: self.cfg.layer_norm_eps,
            architectures: vec!["GPT2LMHeadModel".into()],
            bos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
        }
    }

    /// `config.json` bytes, for a training checkpoint's `extra_files` (making the checkpoint
    /// directory itself a loadable Hugging Face GPT-2).
    pub fn hf_config_json(&self) -> Result<Vec<u8>> {
        let mut text = serde_json::to_string_pretty(&self.hf_config())?;
        text.push('\n');
        Ok(text.into_bytes())
    }

    /// Writes `dir/config.json` and `dir/model.safetensors` in the Hugging Face GPT-2 layout
    /// (names with the `transformer.` prefix, as `GPT2LMHeadModel` saves them).
    pub fn save_hf(&self, dir: &Path) -> Result<()> {
        crate::fsutil::write_json_atomic(
            &dir.join(crate::runs::layout::MODEL_CONFIG),
            &self.hf_config(),
        )?;
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        let bytes = safetensors_bytes(&self.params().named_tensors(), Some(meta))?;
        crate::fsutil::write_atomic(&dir.join(crate::runs::layout::MODEL_WEIGHTS), &bytes)
    }

    /// Loads a Hugging Face GPT-2 directory. Architecture keys come from its config.json;
    /// dropout and init keys from `cfg`. Tensor names may carry the `transformer.` prefix or
    /// not; the causal-mask buffers (`attn.bias`, `attn.masked_bias`) and `lm_head.weight`
    /// (tied) are ignored.
    pub fn from_pretrained(dir: &Path, cfg: &CausalLmConfig, init_rng: ChaCha8Rng) -> Result<Self> {
        let config_path = dir.join(crate::runs::layout::MODEL_CONFIG);
        let text = std::fs::read_to_string(&config_path)
            .with_context(|| format!("reading {}", config_path.display()))?;
        let hf: HfGpt2Config = serde_json::from_str(&text)
            .with_context(|| format!("parsing GPT-2 config {}", config_path.display()))?;
        let activation = Activation::from_hf_name(&hf.activation_function).with_context(|| {
            format!(
                "{}: unsupported activation_function `{}`",
                config_path.display(),
                hf.activation_function
            )
        })?;
        let arch = CausalLmConfig {
            d_model: hf.n_embd,
            n_layers: hf.n_layer,
            n_heads: hf.n_head,
            d_ff: hf.n_inner.unwrap_or(4 * hf.n_embd),
            context_tokens: hf.n_positions,
            activation,
            layer_norm_eps: hf.layer_norm_epsilon,
            init_from: Some(dir.to_path_buf()),
            ..cfg.clone()
        };
        let model = Self::build(&arch, hf.vocab_size, init_rng)?;
        let weights_path = dir.join(crate::runs::layout::MODEL_WEIGHTS);
        let tensors = read_safetensors(&weights_path)?;
        let params = model.params();
        for (name, var) in params.names.iter().zip(&params.vars) {
            let short = name.strip_prefix("transformer.").unwrap_or(name);
            let t = tensors
                .get(name)
                .or_else(|| tensors.get(short))
                .with_context(|| {
                    format!(
                        "{}: missing tensor `{name}` (or `{short}`)",
                        weights_path.display()
                    )
                })?;
            set_var(var, t, name, &weights_path)?;
        }
        Ok(model)
    }
}

/// Step-by-step decoding over a sliding window: keeps the token history and a KV cache; when
/// the next tokens would overflow `context_tokens`, the cache is rebuilt from the most recent
/// `context_tokens / 2` tokens (learned absolute positions make shifting cached keys
/// invalid, so the window is re-encoded rather than slid key by key). Logits are always those
/// of an uncached forward over [`LmDecoder::window`].
#[derive(Clone)]
pub struct LmDecoder {
    cache: KvCache,
    /// Every token fed so far, per batch row.
    history: Vec<Vec<u32>>,
    /// Index in `history` of the first token in the cache.
    window_start: usize,
}

impl LmDecoder {
    pub fn new(model: &CausalLm, batch: usize) -> Self {
        Self {
            cache: model.new_cache(),
            history: vec![Vec::new(); batch],
            window_start: 0,
        }
    }

    /// The tokens the model currently conditions on, per batch row.
    pub fn window(&self) -> Vec<Vec<u32>> {
        self.history
            .iter()
            .map(|h| h[self.window_start..].to_vec())
            .collect()
    }

    /// Tokens fed so far per row (window or not).
    pub fn history_len(&self) -> usize {
        self.history.first().map_or(0, Vec::len)
    }

    /// Tokens in the cache: the next fed token's position.
    pub fn cached_len(&self) -> usize {
        self.cache.len()
    }

    /// Logits `[n, k, V]` of `n` alternative continuations (each `k` tokens) of this
    /// one-row decoder's context, computed on copies of the cache: the decoder is unchanged.
    /// The caller keeps `cached_len() + k <= context_tokens` (nothing slides here).
    pub fn fork_logits(&self, model: &CausalLm, continuations: &[Vec<u32>]) -> Result<Tensor> {
        let k = continuations.first().map_or(0, Vec::len);
        if self.history.len() != 1 || k == 0 || continuations.iter().any(|c| c.len() != k) {
            bail!("fork_logits needs a one-row decoder and equal-length, non-empty continuations");
        }
        if self.cache.len() + k > model.cfg.context_tokens {
            bail!(
                "{k} continuation tokens after {} cached overflow model.context_tokens = {}",
                self.cache.len(),
                model.cfg.context_tokens
            );
        }
        let n = continuations.len();
        let mut cache = self.cache.repeat_rows(n)?;
        let ids = Tensor::from_vec(continuations.concat(), (n, k), &candle_core::Device::Cpu)?;
        model.forward_cached(&ids, &mut cache)
    }

    /// Feeds `tokens[b]` (same length for every row) and returns the logits `[B, V]` at the
    /// last fed token.
    pub fn feed(&mut self, model: &CausalLm, tokens: &[Vec<u32>]) -> Result<Tensor> {
        let k = tokens.first().map_or(0, Vec::len);
        if k == 0 || tokens.len() != self.history.len() || tokens.iter().any(|t| t.len() != k) {
            bail!("LmDecoder::feed needs one non-empty, equal-length token list per batch row");
        }
        let ctx = model.cfg.context_tokens;
        if k > ctx {
            bail!("{k} tokens fed at once exceed model.context_tokens = {ctx}");
        }
        for (h, t) in self.history.iter_mut().zip(tokens) {
            h.extend_from_slice(t);
        }
        let new_ids: Vec<u32> = if self.cache.len() + k > ctx {
            let len = self.history[0].len();
            self.window_start = len - (ctx / 2).max(k);
            self.cache.clear();
            self.window().concat()
        } else {
            tokens.concat()
        };
        let b = self.history.len();
        let t = new_ids.len() / b;
        let ids = Tensor::from_vec(new_ids, (b, t), &candle_core::Device::Cpu)?;
        let logits = model.forward_cached(&ids, &mut self.cache)?;
        Ok(logits.narrow(1, t - 1, 1)?.squeeze(1)?)
    }
}
