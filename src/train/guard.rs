//! Stops training on a non-finite loss or gradient norm, naming the step, instead of letting
//! NaNs silently overwrite the weights.

use anyhow::{bail, Result};

/// Errors if `value` (named `what`, e.g. "loss" or "grad_norm") is NaN or infinite at `step`.
pub fn ensure_finite(what: &str, value: f32, step: u64) -> Result<()> {
    if !value.is_finite() {
        bail!("non-finite {what} ({value}) at step {step}: training stopped (try a lower optimizer.lr or optimizer.grad_clip)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_name_the_step() {
        ensure_finite("loss", 1.5, 3).unwrap();
        let err = ensure_finite("loss", f32::NAN, 42).unwrap_err().to_string();
        assert!(err.contains("step 42") && err.contains("loss"), "{err}");
        assert!(ensure_finite("grad_norm", f32::INFINITY, 1).is_err());
    }
}
