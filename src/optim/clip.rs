//! Global-norm gradient clipping (PyTorch's `clip_grad_norm_`): if the L2 norm of all
//! gradients together exceeds `max_norm`, every gradient is scaled by `max_norm / norm`.

use super::Gradients;

/// Clips in place and returns the norm before clipping (what metrics.csv logs as
/// `grad_norm`). `max_norm <= 0` only measures.
pub fn clip_global_norm(grads: &mut Gradients, max_norm: f64) -> f32 {
    let norm = grads.global_norm();
    if max_norm > 0.0 && f64::from(norm) > max_norm {
        grads.scale((max_norm / (f64::from(norm) + 1e-6)) as f32);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_scales_to_the_max_norm_and_returns_the_old_norm() {
        let mut g = Gradients {
            per_param: vec![vec![3.0], vec![0.0, 4.0]],
        };
        assert!((clip_global_norm(&mut g, 1.0) - 5.0).abs() < 1e-6);
        assert!((g.global_norm() - 1.0).abs() < 1e-5);
        assert!((g.per_param[0][0] - 0.6).abs() < 1e-5 && (g.per_param[1][1] - 0.8).abs() < 1e-5);
        // Under the limit, or disabled: untouched.
        let before = g.clone();
        assert!((clip_global_norm(&mut g, 10.0) - 1.0).abs() < 1e-5);
        assert_eq!(g, before);
        let mut big = Gradients {
            per_param: vec![vec![30.0, 40.0]],
        };
        assert_eq!(clip_global_norm(&mut big, 0.0), 50.0);
        assert_eq!(big.per_param[0], vec![30.0, 40.0]);
    }
}
