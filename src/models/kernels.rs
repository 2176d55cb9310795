//! Slice-level CPU kernels under the fused ops of [`super::ops`]: strided matrix products
//! through `gemm` (the library candle's own matmul calls), and the element-wise loops
//! (exp, softmax, LayerNorm, activations) compiled twice, once for the baseline x86-64 target
//! and once with AVX2 + FMA, picked at run time. The crate builds for the baseline target,
//! so without the second copy every loop here would run 4-byte SSE lanes and call the
//! scalar libm `expf`; the AVX2 copy vectorises them 8 wide, `exp` included (a polynomial
//! here, instead of libm's function call, which no loop can vectorise).
//!
//! Nothing here allocates tensors or knows about autograd: inputs are slices, outputs are
//! written in place.

use serde::{Deserialize, Serialize};

/// MLP non-linearity. `gelu_tanh` is GPT-2's `gelu_new` (needed for pretrained fidelity);
/// `gelu` is the exact erf form; `relu` is the cheapest. Both GELUs are computed here
/// (candle's are 3-10x slower on CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    Gelu,
    GeluTanh,
}

impl Activation {
    /// The Hugging Face `activation_function` string.
    pub fn hf_name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_new",
        }
    }

    pub fn from_hf_name(name: &str) -> Option<Self> {
        match name {
            "relu" => Some(Activation::Relu),
            "gelu" => Some(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluTanh),
            _ => None,
        }
    }
}

/// Runs `$body` (a call of an `#[inline(always)]` function) compiled with AVX2 + FMA when the
/// CPU has them, else as compiled for the baseline target.
macro_rules! dispatch {
    ($body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn wide<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            if avx2_fma() {
                // SAFETY: the CPU supports the features the function was compiled for.
                unsafe { wide(|| $body) }
            } else {
                $body
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $body
        }
    }};
}

/// Whether this CPU has AVX2 and FMA (checked once).
#[cfg(target_arch = "x86_64")]
fn avx2_fma() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// Threads `gemm` may use: candle's own setting (`RAYON_NUM_THREADS`, see
/// [`super::set_compute_threads`]), so these products follow `train.threads` as candle's do.
fn parallelism() -> gemm::Parallelism {
    match candle_core::utils::get_num_threads() {
        0 | 1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    }
}

/// A read-only matrix view: element `(i, j)` is `data[offset + i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

/// A writable matrix view, strided like [`MatRef`].
pub struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub offset: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl MatRef<'_> {
    /// The same view starting `n` rows further down.
    pub fn down(self, n: usize) -> Self {
        Self {
            offset: self.offset + n * self.row_stride,
            ..self
        }
    }

    /// Panics unless every element of a `rows x cols` matrix lies inside `data`.
    fn check(&self, rows: usize, cols: usize, what: &str) {
        if rows == 0 || cols == 0 {
            return;
        }
        let last = self.offset + (rows - 1) * self.row_stride + (cols - 1) * self.col_stride;
        assert!(
            last < self.data.len(),
            "{what}: a {rows}x{cols} view ends at {last}, past {} elements",
            self.data.len()
        );
    }
}

impl MatMut<'_> {
    /// The same view starting `n` rows further down.
    pub fn down(self, n: usize) -> Self {
        Self {
            offset: self.offset + n * self.row_stride,
            ..self
        }
    }
}

/// `dst (m x n) = scale * lhs (m x k) . rhs (k x n)`, or `dst += ...` with `accumulate`.
/// Any strides (transposes are views, never copies); bounds are checked.
pub fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: MatMut,
    accumulate: bool,
    lhs: MatRef,
    rhs: MatRef,
    scale: f32,
) {
    lhs.check(m, k, "matmul lhs");
    rhs.check(k, n, "matmul rhs");
    let dst_view = MatRef {
        data: dst.data,
        offset: dst.offset,
        row_stride: dst.row_stride,
        col_stride: dst.col_stride,
    };
    dst_view.check(m, n, "matmul dst");
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the three views were bounds-checked above; `dst` is a unique borrow, so it
    // does not alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr().add(dst.offset),
            dst.col_stride as isize,
            dst.row_stride as isize,
            accumulate,
            lhs.data.as_ptr().add(lhs.offset),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr().add(rhs.offset),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism(),
        );
    }
}

/// A row-major contiguous `rows x cols` matrix starting at `offset`.
pub fn rows(data: &[f32], offset: usize, cols: usize) -> MatRef<'_> {
    MatRef {
        data,
        offset,
        row_stride: cols,
        col_stride: 1,
    }
}

/// The transpose of the row-major matrix with `cols` columns starting at `offset`.
pub fn transposed(data: &[f32], offset: usize, cols: usize) -> MatRef<'_> {
    MatRef {
        data,
        offset,
        row_stride: 1,
        col_stride: cols,
    }
}

/// `e^x` for f32 to about 2 ulp (Cephes' `expf` polynomial), branch-free so that loops over
/// it vectorise. Inputs below -87.3 give 2^-126 (≈ 1e-38) rather than a subnormal.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.336_55, 88.376_26);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

const GELU_K: f32 = 1.595_769; // 2 sqrt(2 / pi)
const GELU_C: f32 = 0.044_715;

/// The activation at `z` and its derivative there. The GELU's two share one `exp`:
/// erf's `exp(-a^2)` at `a = z / sqrt 2` is the normal density's `exp(-z^2 / 2)`.
#[inline(always)]
pub fn activation_and_slope(act: Activation, z: f32) -> (f32, f32) {
    match act {
        Activation::Relu => {
            if z > 0.0 {
                (z, 1.0)
            } else {
                (0.0, 0.0)
            }
        }
        Activation::Gelu => {
            // Phi(z) = 0.5 (1 + erf(z / sqrt 2)), erf by Abramowitz & Stegun 7.1.26
            // (absolute error < 1.5e-7); d/dz [z Phi(z)] = Phi(z) + z phi(z).
            let a = z.abs() * std::f32::consts::FRAC_1_SQRT_2;
            let t = 1.0 / (1.0 + 0.327_591_1 * a);
            let poly = t
                * (0.254_829_6
                    + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
            let density = exp(-a * a);
            let erf = (1.0 - poly * density).copysign(z);
            let cdf = 0.5 * (1.0 + erf);
            (z * cdf, cdf + z * 0.398_942_3 * density)
        }
        Activation::GeluTanh => {
            // 0.5 (1 + tanh u) = sigmoid(2u).
            let s = 1.0 / (1.0 + exp(-GELU_K * (z + GELU_C * z * z * z)));
            (
                z * s,
                s + z * s * (1.0 - s) * GELU_K * (1.0 + 3.0 * GELU_C * z * z),
            )
        }
    }
}

/// `y[i] = act(z[i])`; with `slope`, also `slope[i] = act'(z[i])` (what the backward pass
/// needs, so that it does not evaluate the activation again).
pub fn activation_forward(act: Activation, z: &[f32], y: &mut [f32], slope: Option<&mut [f32]>) {
    #[inline(always)]
    fn values(act: Activation, z: &[f32], y: &mut [f32]) {
        for (y, &z) in y.iter_mut().zip(z) {
            *y = activation_and_slope(act, z).0;
        }
    }
    #[inline(always)]
    fn both(act: Activation, z: &[f32], y: &mut [f32], slope: &mut [f32]) {
        for ((y, s), &z) in y.iter_mut().zip(slope.iter_mut()).zip(z) {
            (*y, *s) = activation_and_slope(act, z);
        }
    }
    match slope {
        Some(slope) => dispatch!(both(act, z, y, slope)),
        None => dispatch!(values(act, z, y)),
    }
}

/// `g[i] *= act'(z[i])`: the gradient through the activation, in place.
pub fn activation_backward(act: Activation, z: &[f32], g: &mut [f32]) {
    #[inline(always)]
    fn run(act: Activation, z: &[f32], g: &mut [f32]) {
        for (g, &z) in g.iter_mut().zip(z) {
            *g *= activation_and_slope(act, z).1;
        }
    }
    dispatch!(run(act, z, g))
}

/// `acc[i] += x[i]`.
pub fn add_assign(acc: &mut [f32], x: &[f32]) {
    #[inline(always)]
    fn run(acc: &mut [f32], x: &[f32]) {
        for (a, v) in acc.iter_mut().zip(x) {
            *a += v;
        }
    }
    dispatch!(run(acc, x))
}

/// One AdamW update of `theta` from gradient `g`, moments `m` and `v` updated in place
/// (PyTorch's formula; `decay` is `1 - lr * weight_decay`, or 1 where none applies).
pub struct AdamStep {
    pub beta1: f32,
    pub beta2: f32,
    pub step_size: f32,
    pub bias2_sqrt: f32,
    pub eps: f32,
    pub decay: f32,
}

pub fn adamw_update(s: &AdamStep, theta: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
    #[inline(always)]
    fn run(s: &AdamStep, theta: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
        let n = theta.len().min(m.len()).min(v.len()).min(g.len());
        let (theta, m, v, g) = (&mut theta[..n], &mut m[..n], &mut v[..n], &g[..n]);
        for j in 0..n {
            m[j] = s.beta1 * m[j] + (1.0 - s.beta1) * g[j];
            v[j] = s.beta2 * v[j] + (1.0 - s.beta2) * g[j] * g[j];
            let denom = v[j].sqrt() / s.bias2_sqrt + s.eps;
            theta[j] = theta[j] * s.decay - s.step_size * m[j] / denom;
        }
    }
    dispatch!(run(s, theta, m, v, g))
}

/// Inverted-dropout mask for drop probability `p`: element i is kept, scaled by
/// `1 / (1 - p)`, when `bits[i]` (a uniform u32) exceeds `p * 2^32`, else 0.
pub fn dropout_mask(bits: &[u32], p: f64) -> Vec<f32> {
    #[inline(always)]
    fn run(bits: &[u32], threshold: u32, keep: f32, mask: &mut [f32]) {
        for (m, &b) in mask.iter_mut().zip(bits) {
            *m = if b > threshold { keep } else { 0.0 };
        }
    }
    let (threshold, keep) = ((p * u32::MAX as f64) as u32, 1.0 / (1.0 - p) as f32);
    let mut mask = vec![0f32; bits.len()];
    dispatch!(run(bits, threshold, keep, &mut mask));
    mask
}

/// `g[i] *= slope[i]`.
pub fn multiply(g: &mut [f32], slope: &[f32]) {
    #[inline(always)]
    fn run(g: &mut [f32], slope: &[f32]) {
        for (g, s) in g.iter_mut().zip(slope) {
            *g *= s;
        }
    }
    dispatch!(run(g, slope))
}

/// `y[r, :] += b` for every row `r` of `y` (row length `b.len()`).
pub fn add_rows(y: &mut [f32], b: &[f32]) {
    #[inline(always)]
    fn run(y: &mut [f32], b: &[f32]) {
        for row in y.chunks_exact_mut(b.len()) {
            for (v, bi) in row.iter_mut().zip(b) {
                *v += bi;
            }
        }
    }
    dispatch!(run(y, b))
}

/// Column sums of the row-major matrix `x` with `cols` columns.
pub fn column_sums(x: &[f32], cols: usize) -> Vec<f32> {
    #[inline(always)]
    fn run(x: &[f32], sums: &mut [f32]) {
        for row in x.chunks_exact(sums.len()) {
            for (acc, v) in sums.iter_mut().zip(row) {
                *acc += v;
            }
        }
    }
    let mut sums = vec![0f32; cols];
    dispatch!(run(x, &mut sums));
    sums
}

/// Softmax (in place) of rows of length `keys` where row `i` sees only its first
/// `first_visible + i` keys; the rest become exactly 0. `scale` multiplies the scores first.
pub fn softmax_prefix_rows(x: &mut [f32], keys: usize, first_visible: usize, scale: f32) {
    #[inline(always)]
    fn run(x: &mut [f32], keys: usize, first_visible: usize, scale: f32) {
        for (i, row) in x.chunks_exact_mut(keys).enumerate() {
            let (seen, masked) = row.split_at_mut((first_visible + i).min(keys));
            let top = max(seen) * scale;
            for v in seen.iter_mut() {
                *v = exp(*v * scale - top);
            }
            let inv = 1.0 / sum(seen);
            for v in seen.iter_mut() {
                *v *= inv;
            }
            masked.fill(0.0);
        }
    }
    assert!(
        first_visible >= 1 && x.len().is_multiple_of(keys),
        "softmax_prefix_rows: bad shape"
    );
    dispatch!(run(x, keys, first_visible, scale))
}

/// Softmax of each row of `x` (in place) under a causal mask. Rows come in blocks of `t`
/// queries over `keys` keys; query `i` of a block (absolute position `keys - t + i`) sees
/// keys `0..=keys - t + i`, and masked probabilities are exactly 0.
pub fn causal_softmax_rows(x: &mut [f32], t: usize, keys: usize, scale: f32) {
    assert!(
        t <= keys && x.len().is_multiple_of(t * keys),
        "causal_softmax_rows: bad shape"
    );
    for block in x.chunks_exact_mut(t * keys) {
        softmax_prefix_rows(block, keys, keys - t + 1, scale);
    }
}

/// Softmax backward, in place: for each row `r` (stride `stride`) of `y`, over its first
/// `width` entries, `g = y * (g - <g, y>)`.
pub fn softmax_backward_rows(y: &[f32], g: &mut [f32], stride: usize, width: usize) {
    #[inline(always)]
    fn run(y: &[f32], g: &mut [f32], stride: usize, width: usize) {
        for (yr, gr) in y.chunks(stride).zip(g.chunks_mut(stride)) {
            let (yr, gr) = (&yr[..width], &mut gr[..width]);
            let yg = dot(yr, gr);
            for (gv, &yv) in gr.iter_mut().zip(yr) {
                *gv = yv * (*gv - yg);
            }
        }
    }
    assert!(
        width <= stride,
        "softmax_backward_rows: width past the stride"
    );
    dispatch!(run(y, g, stride, width))
}

/// Cross-entropy of each row of `logits` (`classes` wide) against `targets`, with label
/// smoothing `e` (target distribution `(1 - e) one_hot + e / C`). Writes each row's loss
/// into `loss` and turns `logits` into the row's softmax in place (the backward pass needs
/// it).
pub fn cross_entropy_rows(
    logits: &mut [f32],
    classes: usize,
    targets: &[u32],
    e: f32,
    loss: &mut [f32],
) {
    #[inline(always)]
    fn run(logits: &mut [f32], classes: usize, targets: &[u32], e: f32, loss: &mut [f32]) {
        for ((row, &target), out) in logits.chunks_exact_mut(classes).zip(targets).zip(loss) {
            let top = max(row);
            let mean_logit = sum(row) / classes as f32;
            let target_logit = row[target as usize];
            for v in row.iter_mut() {
                *v = exp(*v - top);
            }
            let total = sum(row);
            let log_z = top + total.ln();
            // -log p(target) = log Z - z_target; -mean_c log p(c) = log Z - mean_c z_c.
            *out = (1.0 - e) * (log_z - target_logit) + e * (log_z - mean_logit);
            let inv = 1.0 / total;
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
    dispatch!(run(logits, classes, targets, e, loss))
}

/// Reductions with eight partial results: a float loop with one running sum cannot be
/// vectorised (reordering changes the result), eight independent lanes can.
#[inline(always)]
fn reduce8(n: usize, term: impl Fn(usize) -> f32, init: f32, op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let full = n / 8 * 8;
    for base in (0..full).step_by(8) {
        for (lane, a) in acc.iter_mut().enumerate() {
            *a = op(*a, term(base + lane));
        }
    }
    let mut total = acc.into_iter().fold(init, &op);
    for i in full..n {
        total = op(total, term(i));
    }
    total
}

#[inline(always)]
fn sum(v: &[f32]) -> f32 {
    reduce8(v.len(), |i| v[i], 0.0, |a, b| a + b)
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    reduce8(n, |i| a[i] * b[i], 0.0, |x, y| x + y)
}

#[inline(always)]
fn max(v: &[f32]) -> f32 {
    reduce8(v.len(), |i| v[i], f32::NEG_INFINITY, f32::max)
}

/// Per-row mean and reciprocal standard deviation.
#[inline(always)]
fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let d = row.len() as f32;
    let mean = sum(row) / d;
    let var = reduce8(
        row.len(),
        |i| (row[i] - mean) * (row[i] - mean),
        0.0,
        |a, b| a + b,
    ) / d;
    (mean, 1.0 / (var + eps).sqrt())
}

/// LayerNorm of each row of `x` (row length `w.len()`) into `y`.
pub fn layer_norm_forward(x: &[f32], w: &[f32], b: &[f32], eps: f32, y: &mut [f32]) {
    #[inline(always)]
    fn run(x: &[f32], w: &[f32], b: &[f32], eps: f32, y: &mut [f32]) {
        let d = w.len();
        for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
            let (mean, rstd) = row_stats(xr, eps);
            for i in 0..d {
                yr[i] = (xr[i] - mean) * rstd * w[i] + b[i];
            }
        }
    }
    dispatch!(run(x, w, b, eps, y))
}

/// Gradients of LayerNorm: `dx` (same shape as `x`), and `dw`, `db` accumulated.
pub fn layer_norm_backward(
    x: &[f32],
    w: &[f32],
    g: &[f32],
    eps: f32,
    dx: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
) {
    #[inline(always)]
    fn run(
        x: &[f32],
        w: &[f32],
        g: &[f32],
        eps: f32,
        dx: &mut [f32],
        dw: &mut [f32],
        db: &mut [f32],
    ) {
        let d = w.len();
        let mut xhat = vec![0f32; d];
        let mut dxhat = vec![0f32; d];
        for ((xr, gr), dxr) in x
            .chunks_exact(d)
            .zip(g.chunks_exact(d))
            .zip(dx.chunks_exact_mut(d))
        {
            let (mean, rstd) = row_stats(xr, eps);
            for i in 0..d {
                xhat[i] = (xr[i] - mean) * rstd;
                dw[i] += gr[i] * xhat[i];
                db[i] += gr[i];
                dxhat[i] = gr[i] * w[i];
            }
            let (m1, m2) = (sum(&dxhat) / d as f32, dot(&dxhat, &xhat) / d as f32);
            for i in 0..d {
                dxr[i] = rstd * (dxhat[i] - m1 - xhat[i] * m2);
            }
        }
    }
    dispatch!(run(x, w, g, eps, dx, dw, db))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm_to_a_few_ulp() {
        let mut worst = 0f32;
        let mut x = -80.0f32;
        while x < 80.0 {
            let rel = ((exp(x) - x.exp()) / x.exp()).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) < 1e-37 && exp(-1000.0) >= 0.0);
    }

    #[test]
    fn matmul_reads_transposed_views_and_accumulates() {
        // a: 2x3, b: 3x2 (given as the transpose of a row-major 2x3).
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bt = [1.0, 0.0, -1.0, 2.0, 1.0, 0.5];
        let mut c = vec![10.0f32; 4];
        let dst = MatMut {
            data: &mut c,
            offset: 0,
            row_stride: 2,
            col_stride: 1,
        };
        matmul(
            (2, 2, 3),
            dst,
            true,
            rows(&a, 0, 3),
            transposed(&bt, 0, 3),
            2.0,
        );
        // a . b = [[1-3, 2+2+1.5], [4-6, 8+5+3]] = [[-2, 5.5], [-2, 16]].
        assert_eq!(c, vec![10.0 - 4.0, 10.0 + 11.0, 10.0 - 4.0, 10.0 + 32.0]);
    }

    #[test]
    #[should_panic(expected = "matmul rhs")]
    fn matmul_refuses_views_past_the_data() {
        let a = [0.0f32; 4];
        let mut c = [0.0f32; 4];
        let dst = MatMut {
            data: &mut c,
            offset: 0,
            row_stride: 2,
            col_stride: 1,
        };
        matmul((2, 2, 2), dst, false, rows(&a, 0, 2), rows(&a, 1, 2), 1.0);
    }

    #[test]
    fn causal_softmax_rows_mask_and_normalise() {
        let mut x = vec![1.0, 5.0, 2.0, 3.0];
        causal_softmax_rows(&mut x, 2, 2, 0.5);
        assert_eq!(x[1], 0.0);
        assert!((x[0] - 1.0).abs() < 1e-7);
        let e = (0.5f32).exp();
        assert!((x[2] - 1.0 / (1.0 + e)).abs() < 1e-6 && (x[3] - e / (1.0 + e)).abs() < 1e-6);
    }
}
