//! Size sanity before the first allocation: a model or context that cannot fit is an error
//! naming the keys, not a run that the kernel's OOM killer ends (leaving it `running`).
//!
//! The estimate is deliberately a lower bound (parameters with gradients and AdamW's two
//! moments, plus the activations one micro-batch keeps for the backward pass, in f32), so a
//! config it rejects cannot fit; configs it accepts may still be tight.

use super::rl_heads::TokenLayout;
use super::{CausalLmConfig, ModelConfig, RlHeadsConfig};
use anyhow::{bail, Result};

/// What a training step of a model needs at least, in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryEstimate {
    pub parameters: f64,
    /// Parameters, gradients and the optimizer's two moments.
    pub weights_bytes: f64,
    /// Activations of one micro-batch kept for the backward pass.
    pub activation_bytes: f64,
}

impl MemoryEstimate {
    pub fn total_bytes(&self) -> f64 {
        self.weights_bytes + self.activation_bytes
    }
}

const F32: f64 = 4.0;

fn trunk(d: f64, layers: f64, d_ff: f64, heads: f64, tokens: f64, batch: f64) -> (f64, f64) {
    // Per block: attention (4 d²) and MLP (2 d·d_ff) weights.
    let params = layers * (4.0 * d * d + 2.0 * d * d_ff);
    // Per block and token, at least: the residual stream, q, k, v (4 d) and the MLP's hidden
    // layer (d_ff); per head, the attention probabilities (T²).
    let act = layers * batch * (tokens * (4.0 * d + d_ff) + heads * tokens * tokens);
    (params, act * F32)
}

fn estimate(params: f64, activation_bytes: f64) -> MemoryEstimate {
    MemoryEstimate {
        parameters: params,
        weights_bytes: params * F32 * 4.0,
        activation_bytes,
    }
}

/// The estimate for an RL-heads model on micro-batches of `batch` windows.
pub fn rl_heads(m: &RlHeadsConfig, batch: usize) -> MemoryEstimate {
    let per_step = match m.layout {
        TokenLayout::Sar => 3.0,
        TokenLayout::Fused => 1.0,
    };
    let tokens = per_step * m.context_steps as f64;
    let d = m.d_model as f64;
    let (p, act) = trunk(
        d,
        m.n_layers as f64,
        m.d_ff as f64,
        m.n_heads as f64,
        tokens,
        batch as f64,
    );
    // Position table; the state/action/reward tables and heads are small beside it.
    estimate(p + tokens * d, act)
}

/// The estimate for a causal LM (vocabulary of at least 256 byte tokens).
pub fn causal_lm(m: &CausalLmConfig, batch: usize) -> MemoryEstimate {
    let tokens = m.context_tokens as f64;
    let d = m.d_model as f64;
    let (p, act) = trunk(
        d,
        m.n_layers as f64,
        m.d_ff as f64,
        m.n_heads as f64,
        tokens,
        batch as f64,
    );
    // Logits of every position over the vocabulary, kept for the loss.
    let logits = batch as f64 * tokens * 256.0 * F32;
    estimate(p + (256.0 + tokens) * d, act + logits)
}

/// Memory this process may still use, in bytes: the smaller of the system's available memory
/// and what the address-space limit (`ulimit -v`) leaves. `None` when neither is known.
pub fn available_bytes() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let available = meminfo
        .as_deref()
        .and_then(|t| kib_field(t, "MemAvailable:"));
    let mut limit = None;
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut rl) } == 0
        && rl.rlim_cur != libc::RLIM_INFINITY
    {
        let used = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|t| kib_field(&t, "VmSize:"))
            .unwrap_or(0.0);
        limit = Some((rl.rlim_cur as f64 - used).max(0.0));
    }
    match (available, limit) {
        (Some(a), Some(l)) => Some(a.min(l)),
        (a, l) => a.or(l),
    }
}

fn kib_field(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .map(|kib| kib * 1024.0)
}

fn gib(bytes: f64) -> String {
    if bytes >= 1e18 {
        format!("{:.1e} GiB", bytes / (1u64 << 30) as f64)
    } else {
        format!("{:.2} GiB", bytes / (1u64 << 30) as f64)
    }
}

/// Fails when training `model` on micro-batches of `batch` cannot fit in `available` bytes,
/// naming the keys that set the size.
pub fn check_fits(model: &ModelConfig, batch: usize, available: Option<f64>) -> Result<()> {
    let (est, keys) = match model {
        ModelConfig::RlHeads(m) => (
            rl_heads(m, batch),
            format!(
                "model.d_model={}, model.n_layers={}, model.d_ff={}, model.n_heads={}, \
                 model.context_steps={}",
                m.d_model, m.n_layers, m.d_ff, m.n_heads, m.context_steps
            ),
        ),
        ModelConfig::CausalLm(m) => (
            causal_lm(m, batch),
            format!(
                "model.d_model={}, model.n_layers={}, model.d_ff={}, model.n_heads={}, \
                 model.context_tokens={}",
                m.d_model, m.n_layers, m.d_ff, m.n_heads, m.context_tokens
            ),
        ),
    };
    let Some(available) = available else {
        return Ok(());
    };
    if est.total_bytes() > available {
        bail!(
            "the model cannot be trained in this memory: at least {} ({:.3e} parameters with \
             gradients and optimizer state: {}; activations of a micro-batch of {batch}: {}) but \
             {} are available. Sizes come from {keys} and train.batch_size / train.grad_accum; \
             make them smaller",
            gib(est.total_bytes()),
            est.parameters,
            gib(est.weights_bytes),
            gib(est.activation_bytes),
            gib(available)
        );
    }
    Ok(())
}

/// Fails when an RL context is longer than every learning history: the windows would be
/// nearly all padding, at the cost of attention over the whole context.
pub fn check_context(m: &RlHeadsConfig, longest_history: usize) -> Result<()> {
    if m.context_steps > longest_history.max(1) {
        bail!(
            "model.context_steps = {} but the longest learning history has {} steps: the windows \
             would be mostly padding. Use model.context_steps <= {} (or longer histories: \
             task.histories.episodes)",
            m.context_steps,
            longest_history,
            longest_history.max(1)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rl(d: usize, ctx: usize) -> ModelConfig {
        let base = include_str!("../../conf/model/rl_heads.yaml");
        let mut v: serde_yaml_ng::Value = serde_yaml_ng::from_str(base).unwrap();
        v["d_model"] = serde_yaml_ng::Value::from(d as u64);
        v["d_ff"] = serde_yaml_ng::Value::from(4 * d as u64);
        v["context_steps"] = serde_yaml_ng::Value::from(ctx as u64);
        v["n_heads"] = serde_yaml_ng::Value::from(2u64);
        serde_yaml_ng::from_value(v).unwrap()
    }

    #[test]
    fn absurd_sizes_are_refused_and_small_ones_fit() {
        let gib = (1u64 << 30) as f64;
        assert!(check_fits(&rl(64, 100), 16, Some(gib)).is_ok());
        let e = format!(
            "{:#}",
            check_fits(&rl(1 << 20, 100), 16, Some(64.0 * gib)).unwrap_err()
        );
        assert!(
            e.contains("model.d_model=1048576") && e.contains("available"),
            "{e}"
        );
        let e = check_fits(&rl(64, 100_000), 16, Some(64.0 * gib)).unwrap_err();
        assert!(format!("{e:#}").contains("model.context_steps=100000"));
        // Without a known limit nothing is refused.
        assert!(check_fits(&rl(1 << 20, 100), 16, None).is_ok());
    }

    #[test]
    fn context_longer_than_every_history_is_refused() {
        let ModelConfig::RlHeads(m) = rl(64, 1000) else {
            unreachable!()
        };
        let e = format!("{:#}", check_context(&m, 100).unwrap_err());
        assert!(
            e.contains("model.context_steps = 1000") && e.contains("100 steps"),
            "{e}"
        );
        assert!(check_context(&m, 1000).is_ok());
    }
}
