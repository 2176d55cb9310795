//! AdamW (decoupled weight decay, PyTorch semantics) with its state — first and second
//! moments and the step count — exportable as named tensors for checkpoints (candle-nn's
//! AdamW keeps them private). Updates run on host vectors: deterministic, and cheap next to
//! forward/backward at adlab's model sizes.
//!
//! Also the gradient buffer [`Gradients`] (host copies aligned with a [`ParamSet`]), which is
//! where micro-batch gradients are summed for gradient accumulation.
//!
//! Shared vocabulary below training and the PPO sources: [`clip`] (global-norm clipping) and
//! [`schedule`] (warmup + cosine) sit beside the optimizer.

pub mod clip;
pub mod schedule;

use crate::models::kernels::{adamw_update, AdamStep};
use crate::models::ParamSet;
use anyhow::{bail, Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How the learning rate evolves over training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    Constant,
    /// Linear warmup to `lr`, then cosine decay to `min_lr` at the last step.
    Cosine,
}

/// The `optimizer` config group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// `optimizer.name`; only `adamw`.
    pub name: String,
    /// `optimizer.lr`: peak learning rate.
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    /// Decoupled weight decay, applied to weight matrices only (never to biases or LayerNorm
    /// gains; to embedding tables only with `decay_embeddings`).
    pub weight_decay: f64,
    pub decay_embeddings: bool,
    pub schedule: ScheduleKind,
    pub warmup_steps: u64,
    pub min_lr: f64,
    /// Maximum global gradient norm; 0 disables clipping.
    pub grad_clip: f64,
}

impl OptimizerConfig {
    pub fn validate(&self) -> Result<()> {
        if self.name != "adamw" {
            bail!(
                "optimizer.name = `{}`: only `adamw` is implemented",
                self.name
            );
        }
        if self.lr.is_nan() || self.lr <= 0.0 || self.min_lr < 0.0 || self.min_lr > self.lr {
            bail!(
                "optimizer.lr = {} / optimizer.min_lr = {}: need 0 <= min_lr <= lr, lr > 0",
                self.lr,
                self.min_lr
            );
        }
        for (i, b) in self.betas.iter().enumerate() {
            if !(0.0..1.0).contains(b) {
                bail!("optimizer.betas[{i}] = {b}: expected a value in [0, 1)");
            }
        }
        Ok(())
    }
}

/// Whether a parameter is an input embedding table (or an input projection of raw features,
/// which plays the same role): names under `embed.` (rl_heads), `wte`/`wpe` (GPT-2) and
/// rl_heads' `head.taken_action` table.
pub fn is_embedding_param(name: &str) -> bool {
    let short = name.strip_prefix("transformer.").unwrap_or(name);
    short.starts_with("embed.")
        || short.starts_with("wte.")
        || short.starts_with("wpe.")
        || short.starts_with("head.taken_action.")
}

/// Host copies of the gradients of every parameter of a [`ParamSet`], in its order.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    pub per_param: Vec<Vec<f32>>,
}

impl Gradients {
    pub fn zeros(params: &ParamSet) -> Self {
        Self {
            per_param: params
                .vars
                .iter()
                .map(|v| vec![0.0; v.elem_count()])
                .collect(),
        }
    }

    /// Copies the gradients of a backward pass (a parameter with no gradient gets zeros).
    pub fn from_store(store: &GradStore, params: &ParamSet) -> Result<Self> {
        let mut g = Self::zeros(params);
        g.accumulate(store, params)?;
        Ok(g)
    }

    /// Gradient accumulation: adds a micro-batch's gradients. Average by calling
    /// `scale(1 / n_micro)` (or weight each micro-batch loss by 1/n before backward).
    pub fn accumulate(&mut self, store: &GradStore, params: &ParamSet) -> Result<()> {
        for ((name, var), acc) in params
            .names
            .iter()
            .zip(&params.vars)
            .zip(&mut self.per_param)
        {
            if let Some(g) = store.get(var.as_tensor()) {
                let g = g
                    .flatten_all()?
                    .to_vec1::<f32>()
                    .with_context(|| format!("reading the gradient of `{name}`"))?;
                crate::models::kernels::add_assign(acc, &g);
            }
        }
        Ok(())
    }

    /// Adds another micro-batch's gradients (the same parameter set).
    pub fn add(&mut self, other: &Gradients) {
        for (acc, g) in self.per_param.iter_mut().zip(&other.per_param) {
            crate::models::kernels::add_assign(acc, g);
        }
    }

    pub fn scale(&mut self, factor: f32) {
        for g in &mut self.per_param {
            for x in g.iter_mut() {
                *x *= factor;
            }
        }
    }

    /// L2 norm over all parameters' gradients together.
    pub fn global_norm(&self) -> f32 {
        let sq: f64 = self
            .per_param
            .iter()
            .flat_map(|g| g.iter())
            .map(|&x| f64::from(x) * f64::from(x))
            .sum();
        sq.sqrt() as f32
    }
}

/// AdamW with per-parameter moments held on the host.
pub struct AdamW {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// Number of updates applied so far.
    pub step: u64,
    names: Vec<String>,
    decay: Vec<bool>,
    exp_avg: Vec<Vec<f32>>,
    exp_avg_sq: Vec<Vec<f32>>,
}

impl AdamW {
    pub fn new(cfg: &OptimizerConfig, params: &ParamSet) -> Result<Self> {
        cfg.validate()?;
        let decay = params
            .names
            .iter()
            .zip(&params.vars)
            .map(|(n, v)| v.rank() >= 2 && (cfg.decay_embeddings || !is_embedding_param(n)))
            .collect();
        let zeros = || {
            params
                .vars
                .iter()
                .map(|v| vec![0.0; v.elem_count()])
                .collect()
        };
        Ok(Self {
            beta1: cfg.betas[0],
            beta2: cfg.betas[1],
            eps: cfg.eps,
            weight_decay: cfg.weight_decay,
            step: 0,
            names: params.names.clone(),
            decay,
            exp_avg: zeros(),
            exp_avg_sq: zeros(),
        })
    }

    /// Whether weight decay applies to each parameter (ParamSet order).
    pub fn decayed(&self) -> impl Iterator<Item = (&str, bool)> {
        self.names
            .iter()
            .map(String::as_str)
            .zip(self.decay.iter().copied())
    }

    /// One update of every parameter with learning rate `lr`.
    pub fn step(&mut self, params: &ParamSet, grads: &Gradients, lr: f64) -> Result<()> {
        if params.names != self.names {
            bail!(
                "AdamW::step: the parameter set differs from the one the optimizer was built for"
            );
        }
        self.step += 1;
        let t = self.step as i32;
        let bias1 = 1.0 - self.beta1.powi(t);
        let bias2 = 1.0 - self.beta2.powi(t);
        let (b1, b2) = (self.beta1 as f32, self.beta2 as f32);
        let step_size = (lr / bias1) as f32;
        let bias2_sqrt = bias2.sqrt() as f32;
        let eps = self.eps as f32;
        for i in 0..params.len() {
            let var = &params.vars[i];
            let mut theta = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let decay = if self.decay[i] {
                (1.0 - lr * self.weight_decay) as f32
            } else {
                1.0
            };
            let step = AdamStep {
                beta1: b1,
                beta2: b2,
                step_size,
                bias2_sqrt,
                eps,
                decay,
            };
            adamw_update(
                &step,
                &mut theta,
                &mut self.exp_avg[i],
                &mut self.exp_avg_sq[i],
                &grads.per_param[i],
            );
            var.set(&Tensor::from_vec(theta, var.shape(), &Device::Cpu)?)?;
        }
        Ok(())
    }

    /// Moments as named tensors (`exp_avg.<param>`, `exp_avg_sq.<param>`, shaped like the
    /// parameters); the step count is stored beside them by the checkpoint.
    pub fn state_tensors(&self, params: &ParamSet) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::with_capacity(2 * self.names.len());
        for (i, name) in self.names.iter().enumerate() {
            let shape = params.vars[i].shape();
            out.push((
                format!("exp_avg.{name}"),
                Tensor::from_vec(self.exp_avg[i].clone(), shape, &Device::Cpu)?,
            ));
            out.push((
                format!("exp_avg_sq.{name}"),
                Tensor::from_vec(self.exp_avg_sq[i].clone(), shape, &Device::Cpu)?,
            ));
        }
        Ok(out)
    }

    /// Restores moments and step saved by [`AdamW::state_tensors`].
    pub fn load_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        step: u64,
        origin: &str,
    ) -> Result<()> {
        for (i, name) in self.names.iter().enumerate() {
            for (prefix, slot) in [
                ("exp_avg", &mut self.exp_avg[i]),
                ("exp_avg_sq", &mut self.exp_avg_sq[i]),
            ] {
                let key = format!("{prefix}.{name}");
                let t = tensors
                    .get(&key)
                    .with_context(|| format!("{origin}: missing optimizer tensor `{key}`"))?;
                let values = t.flatten_all()?.to_vec1::<f32>()?;
                if values.len() != slot.len() {
                    bail!(
                        "{origin}: optimizer tensor `{key}` has {} values, expected {}",
                        values.len(),
                        slot.len()
                    );
                }
                *slot = values;
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::params::seeded_var_builder;
    use candle_nn::{Init, VarMap};

    pub(crate) fn config() -> OptimizerConfig {
        serde_yaml_ng::from_str(include_str!("../../conf/optimizer/adamw.yaml")).unwrap()
    }

    #[test]
    fn yaml_parses_and_rejects_unknown_keys() {
        let cfg = config();
        assert_eq!(cfg.name, "adamw");
        cfg.validate().unwrap();
        let bad = "name: adamw\nlr: 1.0\nbetas: [0.9, 0.9]\neps: 1.0\nweight_decay: 0.0\n\
                   decay_embeddings: false\nschedule: constant\nwarmup_steps: 0\nmin_lr: 0.0\n\
                   grad_clip: 0.0\nmomentum: 0.9\n";
        let err = serde_yaml_ng::from_str::<OptimizerConfig>(bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("momentum"), "{err}");
    }

    #[test]
    fn adamw_matches_a_hand_computed_step() {
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, crate::seed::rng(0, "t", &[]));
        // A [1, 2] matrix (decayed) and a 2-element bias (not decayed).
        vb.get_with_hints((1, 2), "w", Init::Const(1.0)).unwrap();
        vb.get_with_hints(2, "b", Init::Const(1.0)).unwrap();
        let params = ParamSet::from_varmap(&varmap);
        assert_eq!(params.names, ["b", "w"]);
        let cfg = OptimizerConfig {
            lr: 0.1,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.5,
            ..config()
        };
        let mut opt = AdamW::new(&cfg, &params).unwrap();
        let grads = Gradients {
            per_param: vec![vec![0.5, -2.0], vec![0.5, -2.0]],
        };
        opt.step(&params, &grads, 0.1).unwrap();
        // Step 1: m_hat = g, v_hat = g^2, so the Adam update is lr * sign(g) (up to eps);
        // decoupled decay multiplies the matrix by 1 - lr * wd = 0.95 first.
        let b = params.vars[0]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let w = params.vars[1]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (got, want) in b.iter().zip([0.9f32, 1.1]) {
            assert!((got - want).abs() < 1e-6, "bias {got} vs {want}");
        }
        for (got, want) in w.iter().zip([0.85f32, 1.05]) {
            assert!((got - want).abs() < 1e-6, "matrix {got} vs {want}");
        }
        // Step 2 with g2 = (1.5, 1.0), bias-corrected moments worked out by hand (numpy):
        // m = 0.09 g1 + 0.1 g2, v = 0.000999 g1^2 + 0.001 g2^2, corrections 0.19 and 0.001999.
        let grads2 = Gradients {
            per_param: vec![vec![1.5, 1.0], vec![1.5, 1.0]],
        };
        opt.step(&params, &grads2, 0.1).unwrap();
        let b = params.vars[0]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (got, want) in b.iter().zip([0.808_221_9f32, 1.126_633_7]) {
            assert!((got - want).abs() < 1e-5, "step 2: {got} vs {want}");
        }
        assert_eq!(opt.step, 2);
        let exported = opt.state_tensors(&params).unwrap();
        let names: Vec<&str> = exported.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["exp_avg.b", "exp_avg_sq.b", "exp_avg.w", "exp_avg_sq.w"]
        );
    }

    #[test]
    fn decay_skips_biases_norms_and_embeddings_by_default() {
        let model = crate::models::CausalLm::new(
            &crate::models::tests::tiny_lm_config(),
            11,
            crate::seed::rng(0, "init", &[]),
        )
        .unwrap();
        let params = model.params();
        let opt = AdamW::new(&config(), &params).unwrap();
        let decayed: Vec<&str> = opt.decayed().filter(|(_, d)| *d).map(|(n, _)| n).collect();
        assert!(decayed.contains(&"transformer.h.0.attn.c_attn.weight"));
        assert!(!decayed
            .iter()
            .any(|n| n.contains("wte") || n.contains("bias") || n.contains("ln_")));
        let with_emb = AdamW::new(
            &OptimizerConfig {
                decay_embeddings: true,
                ..config()
            },
            &params,
        )
        .unwrap();
        assert!(with_emb
            .decayed()
            .any(|(n, d)| n == "transformer.wte.weight" && d));
    }
}
