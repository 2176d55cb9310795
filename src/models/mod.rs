//! The transformers that learn learning histories (the `model` config group).
//!
//! * [`rl_heads`]: RL tuples in, separate embeddings and heads (action, reward, next state,
//!   logprob) — the Algorithm Distillation / Decision Transformer model.
//! * [`causal_lm`]: a plain GPT-2 reading histories serialised as text, in the Hugging Face
//!   GPT-2 parameter layout (loads and saves HF checkpoints).
//!
//! Both are built from one transformer trunk ([`block`]): pre-norm GPT-2 blocks with a
//! differentiable LayerNorm ([`layers`]), seeded initialisation ([`params`]) and a KV cache
//! for step-by-step decoding ([`rl_decode`], [`causal_lm::LmDecoder`]). [`spaces`] sizes an
//! RL-heads model from a task's environment description.
//!
//! Calling convention: `forward(.., dropout_rng: Option<&mut ChaCha8Rng>)` — `Some(rng)` is
//! training (dropout and token masking drawn from that seeded stream), `None` evaluation.

pub mod block;
pub mod causal_lm;
pub mod kernels;
pub mod layers;
pub mod losses;
pub mod ops;
pub mod params;
pub mod plain;
pub mod rl_decode;
pub mod rl_heads;
pub mod size;
pub mod spaces;

#[cfg(test)]
pub(crate) mod tests;

pub use causal_lm::{CausalLm, CausalLmConfig, LmDecoder, LmLoss};
pub use layers::Activation;
pub use params::ParamSet;
pub use rl_decode::{RlDecoder, StateStep};
pub use rl_heads::{
    RewardInput, RewardSpace, RlBatch, RlHeadsConfig, RlHeadsModel, RlLoss, RlMetrics, RlOutputs,
    RlSpaces, StateEmbeddingKind, StateInput, StateSpace,
};

use serde::{Deserialize, Serialize};

/// The `model` config group, tagged by `model.kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelConfig {
    RlHeads(RlHeadsConfig),
    CausalLm(CausalLmConfig),
}

impl ModelConfig {
    /// `model.name`
    pub fn name(&self) -> &str {
        match self {
            ModelConfig::RlHeads(c) => &c.name,
            ModelConfig::CausalLm(c) => &c.name,
        }
    }

    /// `model.kind`
    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::RlHeads(_) => "rl_heads",
            ModelConfig::CausalLm(_) => "causal_lm",
        }
    }
}

/// Keeps memory that tensors free inside the process instead of handing it back to the OS
/// 10 ms later (mimalloc's default). A training step frees and reallocates the same few
/// hundred MiB; returned memory is faulted in again (2 MiB huge pages zeroed) on the next
/// step, which cost 10-20 % of a step in `benches/train.rs`. Peak memory is unchanged: it is
/// the same memory, kept. Call first thing in `main` (mimalloc is the binaries' allocator).
pub fn keep_freed_memory() {
    // `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (the -sys crate names no
    // constant for it); -1 = never purge.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: setting an option is a plain store in mimalloc's option table.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) }
}

/// Sets how many threads candle's CPU backend uses. Must run before the first tensor op (candle
/// reads the setting once when it builds its pools): candle 0.11 sizes its elementwise
/// "barrier pool" from `CANDLE_NUM_THREADS` (falling back to `RAYON_NUM_THREADS`), and its
/// matmuls call `gemm` with `RAYON_NUM_THREADS` threads (re-read per call; 1 = no
/// parallelism at all), and a few kernels use rayon's global pool. All three are set here.
/// On small models one thread per run (and runs in parallel) is fastest.
pub fn set_compute_threads(n: usize) {
    let n = n.max(1).to_string();
    // Edition 2021: `set_var` is safe; call this first thing in `main`, before threads exist.
    std::env::set_var("RAYON_NUM_THREADS", &n);
    std::env::set_var("CANDLE_NUM_THREADS", &n);
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n.parse().unwrap_or(1))
        .build_global();
}
