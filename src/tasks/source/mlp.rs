//! A tiny tanh MLP with hand-written forward/backward and Adam, in plain f32. The policy-
//! gradient source runs millions of single-sample passes through nets of a few thousand
//! weights; at that size a tensor library's per-op overhead dominates, plain loops do not.

use rand::Rng;
use rand_distr::StandardNormal;

/// Fully connected layers, tanh between them, linear output. Weights are row-major
/// `[out][in]` so both the forward dot products and the weight-gradient updates are contiguous.
#[derive(Debug, Clone)]
pub struct Mlp {
    sizes: Vec<usize>,
    pub params: Vec<f32>,
    /// (weight offset, bias offset) of each layer in `params`.
    offsets: Vec<(usize, usize)>,
}

/// Per-layer outputs of one forward pass (index 0 is the input), kept for the backward pass.
#[derive(Debug, Clone, Default)]
pub struct Activations {
    layers: Vec<Vec<f32>>,
    delta: Vec<f32>,
    delta_prev: Vec<f32>,
    /// Indices of the non-zero inputs when the input is sparse (one-hot states), else empty:
    /// the first layer then touches only those weight columns.
    sparse_input: Vec<usize>,
}

/// Dot product with eight independent accumulators, so the compiler can vectorise it (a
/// single f32 accumulator forces sequential adds).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl Mlp {
    /// LeCun-normal hidden layers; the output layer is scaled by `out_gain` (small for a policy
    /// head, so the initial policy is near uniform).
    pub fn new(sizes: &[usize], out_gain: f32, rng: &mut impl Rng) -> Mlp {
        let mut params = Vec::new();
        let mut offsets = Vec::new();
        for (l, w) in sizes.windows(2).enumerate() {
            let (fan_in, fan_out) = (w[0], w[1]);
            let gain = if l + 2 == sizes.len() { out_gain } else { 1.0 };
            let scale = gain / (fan_in as f32).sqrt();
            let w_off = params.len();
            for _ in 0..fan_in * fan_out {
                let z: f32 = rng.sample(StandardNormal);
                params.push(z * scale);
            }
            let b_off = params.len();
            params.extend(std::iter::repeat_n(0.0, fan_out));
            offsets.push((w_off, b_off));
        }
        Mlp {
            sizes: sizes.to_vec(),
            params,
            offsets,
        }
    }

    pub fn n_params(&self) -> usize {
        self.params.len()
    }

    /// Runs the net on `x`; the output is the last entry of `acts`.
    pub fn forward<'a>(&self, x: &[f32], acts: &'a mut Activations) -> &'a [f32] {
        let n_layers = self.offsets.len();
        acts.layers.resize(n_layers + 1, Vec::new());
        acts.layers[0].clear();
        acts.layers[0].extend_from_slice(x);
        acts.sparse_input.clear();
        let nonzero = x.iter().filter(|&&v| v != 0.0).count();
        if nonzero * 4 <= x.len() {
            acts.sparse_input
                .extend((0..x.len()).filter(|&i| x[i] != 0.0));
        }
        for l in 0..n_layers {
            let (fan_in, fan_out) = (self.sizes[l], self.sizes[l + 1]);
            let (w_off, b_off) = self.offsets[l];
            let (before, after) = acts.layers.split_at_mut(l + 1);
            let input = &before[l];
            let out = &mut after[0];
            out.clear();
            let weights = &self.params[w_off..w_off + fan_in * fan_out];
            let bias = &self.params[b_off..b_off + fan_out];
            let sparse = l == 0 && nonzero * 4 <= fan_in;
            for (row, &b) in weights.chunks_exact(fan_in).zip(bias) {
                let z = if sparse {
                    b + acts
                        .sparse_input
                        .iter()
                        .map(|&i| row[i] * input[i])
                        .sum::<f32>()
                } else {
                    b + dot(row, input)
                };
                out.push(if l + 1 < n_layers { z.tanh() } else { z });
            }
        }
        &acts.layers[n_layers]
    }

    /// Accumulates into `grad` the gradient of a loss whose derivative with respect to the
    /// output of the last [`Mlp::forward`] (same `acts`) is `dout`.
    pub fn backward(&self, acts: &mut Activations, dout: &[f32], grad: &mut [f32]) {
        let n_layers = self.offsets.len();
        let mut delta = std::mem::take(&mut acts.delta);
        let mut prev = std::mem::take(&mut acts.delta_prev);
        delta.clear();
        delta.extend_from_slice(dout);
        for l in (0..n_layers).rev() {
            let (fan_in, fan_out) = (self.sizes[l], self.sizes[l + 1]);
            let (w_off, b_off) = self.offsets[l];
            let input = &acts.layers[l];
            let (gw, gb) = grad[w_off..b_off + fan_out].split_at_mut(b_off - w_off);
            let sparse = l == 0 && !acts.sparse_input.is_empty();
            for ((grow, gbias), &d) in gw.chunks_exact_mut(fan_in).zip(gb.iter_mut()).zip(&delta) {
                *gbias += d;
                if sparse {
                    for &i in &acts.sparse_input {
                        grow[i] += d * input[i];
                    }
                } else {
                    for (g, &x) in grow.iter_mut().zip(input) {
                        *g += d * x;
                    }
                }
            }
            if l == 0 {
                break;
            }
            prev.clear();
            prev.resize(fan_in, 0.0);
            let weights = &self.params[w_off..w_off + fan_in * fan_out];
            for (row, &d) in weights.chunks_exact(fan_in).zip(&delta) {
                for (p, &w) in prev.iter_mut().zip(row) {
                    *p += d * w;
                }
            }
            // Through the tanh that produced this layer's input.
            for (p, &a) in prev.iter_mut().zip(input) {
                *p *= 1.0 - a * a;
            }
            std::mem::swap(&mut delta, &mut prev);
        }
        acts.delta = delta;
        acts.delta_prev = prev;
    }
}

/// Adam with bias correction.
#[derive(Debug, Clone)]
pub struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
    beta1: f32,
    beta2: f32,
    eps: f32,
}

impl Adam {
    pub fn new(n: usize) -> Adam {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-5,
        }
    }

    pub fn step(&mut self, params: &mut [f32], grad: &[f32], lr: f32) {
        self.t += 1;
        let c1 = 1.0 - self.beta1.powi(self.t);
        let c2 = 1.0 - self.beta2.powi(self.t);
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = self.beta1 * *m + (1.0 - self.beta1) * g;
            *v = self.beta2 * *v + (1.0 - self.beta2) * g * g;
            *p -= lr * (*m / c1) / ((*v / c2).sqrt() + self.eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::rng;

    /// Analytic gradients of `coef · net(x)` against central differences.
    fn check_gradients(sizes: &[usize], x: &[f32]) {
        let mut r = rng(0, "mlp", &[]);
        let mut net = Mlp::new(sizes, 1.0, &mut r);
        let coef = [0.8f32, -1.3];
        let loss = |net: &Mlp| -> f64 {
            let mut a = Activations::default();
            let out = net.forward(x, &mut a);
            out.iter().zip(coef).map(|(o, c)| f64::from(o * c)).sum()
        };
        let mut acts = Activations::default();
        net.forward(x, &mut acts);
        let mut grad = vec![0.0f32; net.n_params()];
        net.backward(&mut acts, &coef, &mut grad);
        for (i, &analytic) in grad.iter().enumerate() {
            let orig = net.params[i];
            net.params[i] = orig + 1e-2;
            let up = loss(&net);
            net.params[i] = orig - 1e-2;
            let down = loss(&net);
            net.params[i] = orig;
            let numeric = (up - down) / 2e-2;
            assert!(
                (numeric - f64::from(analytic)).abs() < 2e-3,
                "param {i}: numeric {numeric} vs analytic {analytic}"
            );
        }
    }

    #[test]
    fn backward_matches_finite_differences_for_dense_and_one_hot_inputs() {
        check_gradients(&[3, 5, 4, 2], &[0.3, -0.7, 1.1]);
        // 19 inputs: exercises the 8-lane dot product's remainder too.
        let dense: Vec<f32> = (0..19).map(|i| (i as f32 * 0.37).sin()).collect();
        check_gradients(&[19, 11, 2], &dense);
        let mut one_hot = vec![0.0f32; 12];
        one_hot[7] = 1.0;
        check_gradients(&[12, 6, 5, 2], &one_hot);
    }

    #[test]
    fn adam_fits_a_linear_target() {
        let mut r = rng(1, "mlp", &[]);
        let mut net = Mlp::new(&[1, 8, 1], 1.0, &mut r);
        let mut adam = Adam::new(net.n_params());
        let mut acts = Activations::default();
        let data: Vec<(f32, f32)> = (0..16)
            .map(|i| (i as f32 / 8.0 - 1.0, 0.5 * (i as f32 / 8.0 - 1.0)))
            .collect();
        let mse = |net: &Mlp, acts: &mut Activations| {
            data.iter()
                .map(|&(x, y)| (net.forward(&[x], acts)[0] - y).powi(2))
                .sum::<f32>()
                / 16.0
        };
        let before = mse(&net, &mut acts);
        for _ in 0..500 {
            let mut grad = vec![0.0; net.n_params()];
            for &(x, y) in &data {
                let out = net.forward(&[x], &mut acts)[0];
                net.backward(&mut acts, &[2.0 * (out - y) / 16.0], &mut grad);
            }
            adam.step(&mut net.params, &grad, 1e-2);
        }
        let after = mse(&net, &mut acts);
        assert!(
            after < 1e-3 && after < before / 10.0,
            "mse {before} -> {after}"
        );
    }
}
