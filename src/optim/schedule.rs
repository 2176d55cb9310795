//! Learning-rate schedule: constant, or linear warmup followed by cosine decay to `min_lr`.

use super::{OptimizerConfig, ScheduleKind};

#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    kind: ScheduleKind,
    lr: f64,
    min_lr: f64,
    warmup_steps: u64,
    total_steps: u64,
}

impl LrSchedule {
    /// `total_steps` is `train.steps` (the number of optimizer updates).
    pub fn new(cfg: &OptimizerConfig, total_steps: u64) -> Self {
        Self {
            kind: cfg.schedule,
            lr: cfg.lr,
            min_lr: cfg.min_lr,
            warmup_steps: cfg.warmup_steps,
            total_steps,
        }
    }

    /// Learning rate of update `step` (0-based). Warmup reaches `lr` at `step = warmup_steps
    /// - 1`; the cosine then falls from `lr` at `warmup_steps` to `min_lr` at `total_steps`.
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.kind {
            ScheduleKind::Constant => self.lr,
            ScheduleKind::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                self.min_lr + cosine * (self.lr - self.min_lr)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_values_at_warmup_end_midpoint_and_end() {
        let cfg = OptimizerConfig {
            name: "adamw".into(),
            lr: 1e-3,
            betas: [0.9, 0.95],
            eps: 1e-8,
            weight_decay: 0.0,
            decay_embeddings: false,
            schedule: ScheduleKind::Cosine,
            warmup_steps: 10,
            min_lr: 1e-4,
            grad_clip: 0.0,
        };
        let s = LrSchedule::new(&cfg, 110);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(s.lr_at(0), 1e-4));
        assert!(close(s.lr_at(4), 5e-4));
        assert!(close(s.lr_at(9), 1e-3), "warmup end");
        assert!(close(s.lr_at(10), 1e-3));
        assert!(close(s.lr_at(60), 5.5e-4), "midpoint: {}", s.lr_at(60));
        assert!(close(s.lr_at(110), 1e-4), "end");
        assert!(close(s.lr_at(500), 1e-4), "past the end");
        assert!((1..110).all(|i| s.lr_at(i) <= s.lr_at(i - 1) || i <= 10));
        let constant = LrSchedule::new(
            &OptimizerConfig {
                schedule: ScheduleKind::Constant,
                ..cfg
            },
            110,
        );
        assert!(close(constant.lr_at(9), 1e-3) && close(constant.lr_at(100), 1e-3));
    }
}
