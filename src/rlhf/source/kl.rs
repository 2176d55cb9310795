//! KL-penalty coefficient controllers (TRLx's `FixedKLController` and
//! `AdaptiveKLController`, after Ziegler et al. 2019).

/// The coefficient of the per-token KL penalty `-kl_coef * (logp - ref_logp)`.
#[derive(Debug, Clone, PartialEq)]
pub enum KlController {
    Fixed {
        value: f64,
    },
    /// Proportional control of the observed KL towards `target` over `horizon` samples.
    Adaptive {
        value: f64,
        target: f64,
        horizon: f64,
    },
}

impl KlController {
    /// Adaptive when a target is given, else fixed at `init`.
    pub fn new(init: f64, target: Option<f64>, horizon: f64) -> Self {
        match target {
            Some(target) => KlController::Adaptive {
                value: init,
                target,
                horizon,
            },
            None => KlController::Fixed { value: init },
        }
    }

    pub fn value(&self) -> f64 {
        match self {
            KlController::Fixed { value } | KlController::Adaptive { value, .. } => *value,
        }
    }

    /// After `n_steps` samples whose mean KL was `current`: the error `current / target - 1`,
    /// clipped to ±0.2, multiplies the coefficient by `1 + error * n_steps / horizon`.
    pub fn update(&mut self, current: f64, n_steps: usize) {
        if let KlController::Adaptive {
            value,
            target,
            horizon,
        } = self
        {
            let error = (current / *target - 1.0).clamp(-0.2, 0.2);
            *value *= 1.0 + error * n_steps as f64 / *horizon;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_controller_follows_trlx_and_fixed_stays_put() {
        let mut fixed = KlController::new(0.1, None, 1000.0);
        fixed.update(50.0, 64);
        assert_eq!(fixed.value(), 0.1);

        let mut kl = KlController::new(0.1, Some(6.0), 10_000.0);
        // KL 7.5 vs target 6: error 0.25 clipped to 0.2; 0.1 * (1 + 0.2 * 256 / 10000).
        kl.update(7.5, 256);
        assert!((kl.value() - 0.100_512).abs() < 1e-12, "{}", kl.value());
        // KL 5.4: error -0.1 -> multiply by 1 - 0.1 * 256 / 10000.
        let before = kl.value();
        kl.update(5.4, 256);
        assert!((kl.value() - before * (1.0 - 0.00256)).abs() < 1e-12);
        // Far below target: clipped at -0.2.
        let before = kl.value();
        kl.update(0.0, 1000);
        assert!((kl.value() - before * 0.98).abs() < 1e-12);
    }
}
