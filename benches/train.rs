//! Training-step benchmark at the reference CPU sizes (d_model 128, 4 layers, 4 heads,
//! d_ff 512, batch 16, one compute thread): step time split into forward / backward /
//! optimizer (gradient copy + clipping + AdamW) as medians over the timed steps, the fastest
//! step, CPU time per step (the cost on a dedicated core: robust to other processes on a
//! shared machine), tokens per second (from the median), and peak resident memory (VmHWM,
//! cumulative over the rows above). Each row also gives the model's parameters, its FLOP per
//! training step (3 x the forward pass's matrix products, attention counted dense), the
//! achieved GFLOP/s and its fraction of this machine's matmul peak, measured first with a
//! 1024^3 product through the same `gemm` path the models use: the fraction is what is left
//! to gain.
//!
//! `benches/torch_twin.py` is the same benchmark in PyTorch eager, for side-by-side figures.
//!
//! Run: `taskset -c 0 cargo bench --bench train` (`-- --quick` for fewer steps, `-- --threads
//! N` for N compute threads, and row-name filters such as `-- "rl_heads sar dropout 0.1"`).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use adlab::models::rl_heads::{LossWeights, PositionEmbedding, StateEmbeddingKind, TokenLayout};
use adlab::models::{
    set_compute_threads, Activation, CausalLm, CausalLmConfig, RewardInput, RewardSpace, RlBatch,
    RlHeadsConfig, RlHeadsModel, RlSpaces, StateInput, StateSpace,
};
use adlab::optim::clip::clip_global_norm;
use adlab::optim::{AdamW, Gradients, OptimizerConfig, ScheduleKind};
use adlab::seed;
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use rand::Rng;
use std::time::{Duration, Instant};

const BATCH: usize = 16;
const LM_CONTEXT: usize = 64;
const VOCAB: usize = 260;
const RL_STEPS: usize = 64;

fn optimizer() -> OptimizerConfig {
    OptimizerConfig {
        name: "adamw".into(),
        lr: 3e-4,
        betas: [0.9, 0.95],
        eps: 1e-8,
        weight_decay: 0.1,
        decay_embeddings: false,
        schedule: ScheduleKind::Constant,
        warmup_steps: 0,
        min_lr: 0.0,
        grad_clip: 1.0,
    }
}

/// Peak resident set size so far, in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Per-step section times in ms; reported as medians (the machine is shared, so means are
/// skewed by other processes).
/// CPU time (user + system) this process has used, in ms (/proc/self/stat, 100 ticks/s).
/// With one compute thread it is the step's cost on a dedicated core, which stays meaningful
/// when other processes compete for the CPUs (wall-clock medians then inflate).
fn process_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime are 14th and 15th.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f[11].parse::<f64>().ok()? + f[12].parse::<f64>().ok()?) * 10.0)
        })
        .unwrap_or(f64::NAN)
}

#[derive(Default)]
struct Timing {
    /// CPU ms per timed step.
    cpu: f64,
    forward: Vec<f64>,
    backward: Vec<f64>,
    optimizer: Vec<f64>,
    total: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// What one training step of a model costs in arithmetic.
struct Cost {
    params: usize,
    tokens: usize,
    /// FLOP of one training step: 3 x the forward pass's matrix products.
    flop: f64,
}

impl Timing {
    fn row(&self, name: &str, cost: &Cost, peak_gflops: f64) {
        let total = median(&self.total);
        let best = self.total.iter().copied().fold(f64::INFINITY, f64::min);
        let gflops = cost.flop / (total / 1e3) / 1e9;
        println!(
            "| {name:<26} | {total:>7.1} | {best:>7.1} | {:>7.1} | {:>7.1} | {:>7.1} | {:>6.1} | {:>7.0} | {:>6.0} | {:>8} | {:>6.2} | {gflops:>6.1} | {:>5.0}% |",
            self.cpu,
            median(&self.forward),
            median(&self.backward),
            median(&self.optimizer),
            cost.tokens as f64 / (total / 1e3),
            peak_rss_mib(),
            cost.params,
            cost.flop / 1e9,
            100.0 * gflops / peak_gflops,
        );
    }
}

/// Forward FLOP of the shared trunk over `tokens` tokens in sequences of `t`: the four
/// projections, and the two attention products (dense: T x T per head).
fn trunk_forward_flop(tokens: usize, t: usize) -> f64 {
    let (d, ff, layers) = (128.0, 512.0, 4.0);
    let projections = 2.0 * (d * 3.0 * d + d * d + 2.0 * d * ff);
    let attention = 2.0 * 2.0 * t as f64 * d;
    layers * tokens as f64 * (projections + attention)
}

/// The matmul peak of this machine in GFLOP/s: the best of a few 1024^3 products through
/// `adlab::models::kernels::matmul` (the path every model product takes).
fn matmul_peak_gflops() -> f64 {
    use adlab::models::kernels::{matmul, rows, MatMut};
    let n = 1024;
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0f32; n * n];
    let mut best = f64::INFINITY;
    for _ in 0..12 {
        let t0 = Instant::now();
        let dst = MatMut {
            data: &mut c,
            offset: 0,
            row_stride: n,
            col_stride: 1,
        };
        matmul((n, n, n), dst, false, rows(&a, 0, n), rows(&b, 0, n), 1.0);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    2.0 * (n * n * n) as f64 / best / 1e9
}

/// Times `steps` training steps after `warmup` untimed ones. `forward` returns the loss.
fn time_steps(
    params: &adlab::models::ParamSet,
    warmup: u32,
    steps: u32,
    mut forward: impl FnMut() -> Result<Tensor>,
) -> Result<Timing> {
    let mut opt = AdamW::new(&optimizer(), params)?;
    let mut timing = Timing::default();
    let mut cpu_start = 0.0;
    for i in 0..warmup + steps {
        if i == warmup {
            cpu_start = process_cpu_ms();
        }
        let t0 = Instant::now();
        let loss = forward()?;
        let t1 = Instant::now();
        let store = loss.backward()?;
        let t2 = Instant::now();
        let mut grads = Gradients::from_store(&store, params)?;
        clip_global_norm(&mut grads, 1.0);
        opt.step(params, &grads, 3e-4)?;
        let t3 = Instant::now();
        if i >= warmup {
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            timing.forward.push(ms(t1 - t0));
            timing.backward.push(ms(t2 - t1));
            timing.optimizer.push(ms(t3 - t2));
            timing.total.push(ms(t3 - t0));
        }
    }
    timing.cpu = (process_cpu_ms() - cpu_start) / f64::from(steps);
    Ok(timing)
}

fn bench_causal_lm(activation: Activation, warmup: u32, steps: u32, peak: f64) -> Result<()> {
    let cfg = CausalLmConfig {
        name: "causal_lm".into(),
        d_model: 128,
        n_layers: 4,
        n_heads: 4,
        d_ff: 512,
        context_tokens: LM_CONTEXT,
        activation,
        dropout: 0.0,
        attn_dropout: 0.0,
        layer_norm_eps: 1e-5,
        init_std: 0.02,
        init_from: None,
    };
    let model = CausalLm::new(&cfg, VOCAB, seed::rng(0, "init", &[]))?;
    let mut rng = seed::rng(0, "data", &[]);
    let ids: Vec<u32> = (0..BATCH * (LM_CONTEXT + 1))
        .map(|_| rng.random_range(0..VOCAB as u32))
        .collect();
    let tokens = Tensor::from_vec(ids, (BATCH, LM_CONTEXT + 1), &Device::Cpu)?;
    let inputs = tokens.narrow(1, 0, LM_CONTEXT)?.contiguous()?;
    let targets = tokens.narrow(1, 1, LM_CONTEXT)?.contiguous()?;
    let mask = Tensor::ones((BATCH, LM_CONTEXT), DType::F32, &Device::Cpu)?;
    let timing = time_steps(&model.params(), warmup, steps, || {
        let logits = model.forward(&inputs, None)?;
        Ok(model.loss(&logits, &targets, &mask)?.loss)
    })?;
    let tokens = BATCH * LM_CONTEXT;
    let lm_head = 2.0 * tokens as f64 * 128.0 * VOCAB as f64;
    let cost = Cost {
        params: model.params().numel(),
        tokens,
        flop: 3.0 * (trunk_forward_flop(tokens, LM_CONTEXT) + lm_head),
    };
    timing.row(&format!("causal_lm {}", activation.hf_name()), &cost, peak);
    Ok(())
}

fn bench_rl_heads(
    layout: TokenLayout,
    dropout: f64,
    warmup: u32,
    steps: u32,
    peak: f64,
) -> Result<()> {
    let cfg = RlHeadsConfig {
        name: "rl_heads".into(),
        d_model: 128,
        n_layers: 4,
        n_heads: 4,
        d_ff: 512,
        context_steps: RL_STEPS,
        min_context: 0,
        layout,
        state_embedding: StateEmbeddingKind::Table,
        position: PositionEmbedding::PerToken,
        activation: Activation::Gelu,
        dropout,
        attn_dropout: 0.0,
        token_mask_prob: 0.0,
        label_smoothing: 0.0,
        embed_logprob: false,
        loss_weights: LossWeights {
            action: 1.0,
            reward: 1.0,
            next_state: 1.0,
            logprob: 1.0,
        },
        reward_tolerance: 0.05,
        state_tolerance: 0.05,
        layer_norm_eps: 1e-5,
        init_std: 0.02,
    };
    // Dark Room-sized spaces: 9x9 grid, 5 actions, reward 0 or 1.
    let spaces = RlSpaces {
        states: StateSpace::Discrete { n: 81 },
        state_coords: None,
        n_actions: 5,
        rewards: RewardSpace::Classes(vec![0.0, 1.0]),
    };
    let model = RlHeadsModel::new(&cfg, &spaces, seed::rng(0, "init", &[]))?;
    let mut rng = seed::rng(0, "data", &[]);
    let n = BATCH * RL_STEPS;
    let mut ids = |hi: u32| -> Result<Tensor> {
        let v: Vec<u32> = (0..n).map(|_| rng.random_range(0..hi)).collect();
        Ok(Tensor::from_vec(v, (BATCH, RL_STEPS), &Device::Cpu)?)
    };
    let batch = RlBatch {
        states: StateInput::Discrete(ids(81)?),
        actions: ids(5)?,
        rewards: RewardInput::Classes(ids(2)?),
        logprobs: Tensor::zeros((BATCH, RL_STEPS), DType::F32, &Device::Cpu)?,
        loss_mask: Tensor::ones((BATCH, RL_STEPS), DType::F32, &Device::Cpu)?,
    };
    let mut dropout_rng = seed::rng(0, "dropout", &[]);
    let timing = time_steps(&model.params(), warmup, steps, || {
        let out = model.forward(&batch, Some(&mut dropout_rng))?;
        Ok(model.loss(&out, &batch)?.total)
    })?;
    let per_step = model.tokens_per_step();
    let tokens = BATCH * RL_STEPS * per_step;
    // One hidden state per step feeds each head: action (5), reward (2), next state (81),
    // logprob (1).
    let heads = 2.0 * (BATCH * RL_STEPS) as f64 * 128.0 * (5.0 + 2.0 + 81.0 + 1.0);
    let cost = Cost {
        params: model.params().numel(),
        tokens,
        flop: 3.0 * (trunk_forward_flop(tokens, per_step * RL_STEPS) + heads),
    };
    timing.row(&rl_row_name(layout, dropout), &cost, peak);
    Ok(())
}

fn rl_row_name(layout: TokenLayout, dropout: f64) -> String {
    let layout = match layout {
        TokenLayout::Sar => "sar",
        TokenLayout::Fused => "fused",
    };
    format!("rl_heads {layout} dropout {dropout}")
}

fn main() -> Result<()> {
    adlab::models::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let threads = args
        .iter()
        .position(|a| a == "--threads")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(1);
    set_compute_threads(threads);
    let quick = args.iter().any(|a| a == "--quick");
    let (warmup, steps) = if quick { (1, 3) } else { (2, 15) };
    println!("batch {BATCH}, d_model 128, 4 layers, 4 heads, d_ff 512, {threads} compute thread(s), median of {steps} timed steps");
    let peak = matmul_peak_gflops();
    println!("matmul peak (1024^3 through the models' gemm path): {peak:.1} GFLOP/s");
    println!("| model                      | step ms | min ms  | cpu ms  | fwd ms  | bwd ms  | opt ms | tok/s   | MiB    | params   | GFLOP  | GFLOP/s | peak  |");
    println!("|----------------------------|---------|---------|---------|---------|---------|--------|---------|--------|----------|--------|---------|-------|");
    let filters: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with("--") && a.parse::<usize>().is_err())
        .collect();
    let wanted =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    for act in [Activation::Gelu, Activation::Relu, Activation::GeluTanh] {
        if wanted(&format!("causal_lm {}", act.hf_name())) {
            bench_causal_lm(act, warmup, steps, peak)?;
        }
    }
    for (layout, p) in [
        (TokenLayout::Sar, 0.1),
        (TokenLayout::Sar, 0.0),
        (TokenLayout::Fused, 0.1),
    ] {
        if wanted(&rl_row_name(layout, p)) {
            bench_rl_heads(layout, p, warmup, steps, peak)?;
        }
    }
    Ok(())
}
