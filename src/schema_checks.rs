//! Range checks of model and optimizer values at composition, so a value that would fail
//! later (or silently mean nothing) is an error naming its key before any run starts.
//! Each check returns the key and what was expected; `schema::validate` adds the value and
//! where it came from.

use crate::models::ModelConfig;
use crate::optim::OptimizerConfig;

/// A failed check: the full key and what it expects.
pub type RangeError = (&'static str, String);

fn probability(key: &'static str, p: f64) -> Result<(), RangeError> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err((key, "a probability in [0, 1)".into()))
    }
}

fn positive(key: &'static str, n: usize) -> Result<(), RangeError> {
    if n == 0 {
        Err((key, "at least 1".into()))
    } else {
        Ok(())
    }
}

/// Sizes at least 1, `n_heads` dividing `d_model`, dropouts and smoothing in [0, 1).
pub fn check_model(model: &ModelConfig) -> Result<(), RangeError> {
    let (d, layers, heads, d_ff, eps, std) = match model {
        ModelConfig::RlHeads(m) => {
            positive("model.context_steps", m.context_steps)?;
            probability("model.dropout", m.dropout)?;
            probability("model.attn_dropout", m.attn_dropout)?;
            probability("model.token_mask_prob", m.token_mask_prob)?;
            probability("model.label_smoothing", m.label_smoothing)?;
            (
                m.d_model,
                m.n_layers,
                m.n_heads,
                m.d_ff,
                m.layer_norm_eps,
                m.init_std,
            )
        }
        ModelConfig::CausalLm(m) => {
            positive("model.context_tokens", m.context_tokens)?;
            probability("model.dropout", m.dropout)?;
            probability("model.attn_dropout", m.attn_dropout)?;
            (
                m.d_model,
                m.n_layers,
                m.n_heads,
                m.d_ff,
                m.layer_norm_eps,
                m.init_std,
            )
        }
    };
    positive("model.d_model", d)?;
    positive("model.n_layers", layers)?;
    positive("model.n_heads", heads)?;
    positive("model.d_ff", d_ff)?;
    if !d.is_multiple_of(heads) {
        return Err((
            "model.n_heads",
            format!(
                "a divisor of model.d_model = {d} (each head gets d_model / n_heads dimensions)"
            ),
        ));
    }
    if !(eps.is_finite() && eps > 0.0) {
        return Err(("model.layer_norm_eps", "a finite number > 0".into()));
    }
    if !(std.is_finite() && std >= 0.0) {
        return Err(("model.init_std", "a finite number >= 0".into()));
    }
    Ok(())
}

/// Finite learning rates, a gradient clip >= 0 (0 = off), finite eps and weight decay.
pub fn check_optimizer(o: &OptimizerConfig) -> Result<(), RangeError> {
    if !(o.lr.is_finite() && o.lr > 0.0) {
        return Err(("optimizer.lr", "a finite number > 0".into()));
    }
    if !(o.min_lr.is_finite() && o.min_lr >= 0.0 && o.min_lr <= o.lr) {
        return Err((
            "optimizer.min_lr",
            "a finite number in [0, optimizer.lr]".into(),
        ));
    }
    if !(o.grad_clip.is_finite() && o.grad_clip >= 0.0) {
        return Err((
            "optimizer.grad_clip",
            "a finite number >= 0 (the largest gradient norm; 0 = no clipping)".into(),
        ));
    }
    if !(o.eps.is_finite() && o.eps > 0.0) {
        return Err(("optimizer.eps", "a finite number > 0".into()));
    }
    if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
        return Err(("optimizer.weight_decay", "a finite number >= 0".into()));
    }
    Ok(())
}
