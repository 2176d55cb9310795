//! The training loop, shared by both model families: micro-batches with gradient
//! accumulation, clipping, AdamW with its schedule, the non-finite guard, `metrics.csv`,
//! validation on held-out tasks, checkpoints, resume, progress and interrupts.
//! What a batch *is* belongs to a [`Learner`]; this loop only sees losses and numbers.

use super::checkpoint;
use super::config::TrainConfig;
use super::guard::ensure_finite;
use super::metrics_log::{MetricsLog, MetricsRow};
use crate::formats::starts::WindowStart;
use crate::formats::Windows;
use crate::models::ParamSet;
use crate::optim::clip::clip_global_norm;
use crate::optim::schedule::LrSchedule;
use crate::optim::{AdamW, Gradients, OptimizerConfig};
use crate::runs::RunDir;
use crate::tasks::Split;
use anyhow::{Context, Result};
use candle_core::Tensor;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Instant;

/// Metrics of a batch (or a mean over batches) in plain numbers; `None` = does not apply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchMetrics {
    pub loss: f64,
    pub action_acc: Option<f64>,
    pub reward_acc: Option<f64>,
    pub state_acc: Option<f64>,
    pub logprob_mse: Option<f64>,
    /// Tokens the model processed (for throughput).
    pub tokens: usize,
}

/// Mean metrics of the validation windows `starts`, scored `batch_size` at a time by
/// `score`; `None` when there are none. Shared by every learner's `validate`.
pub fn mean_over_batches<S>(
    starts: &[S],
    batch_size: usize,
    mut score: impl FnMut(&[S]) -> Result<BatchMetrics>,
) -> Result<Option<BatchMetrics>> {
    let mut mean = MetricsMean::default();
    for chunk in starts.chunks(batch_size.max(1)) {
        mean.add(&score(chunk)?);
    }
    Ok((!mean.is_empty()).then(|| mean.mean()))
}

/// The fixed validation windows of each split, made on first use and kept, so every
/// validation scores the same windows.
#[derive(Debug, Default)]
pub struct ValidationStarts {
    train: OnceLock<Vec<WindowStart>>,
    test: OnceLock<Vec<WindowStart>>,
}

impl ValidationStarts {
    /// The starts of `split`, made by `windows` (`n` of them) on first use.
    pub fn get(&self, windows: &impl Windows, split: Split, n: usize) -> Result<&[WindowStart]> {
        let cell = match split {
            Split::Train => &self.train,
            Split::Test => &self.test,
        };
        if cell.get().is_none() {
            // Set once: `get` was empty and nothing else holds `self` mutably.
            let _ = cell.set(windows.validation_starts(split, n)?);
        }
        Ok(cell.get().map_or(&[], Vec::as_slice))
    }
}

/// A running mean of [`BatchMetrics`].
#[derive(Debug, Default)]
pub struct MetricsMean {
    n: usize,
    sum: BatchMetrics,
    counts: [usize; 4],
}

impl MetricsMean {
    pub fn add(&mut self, m: &BatchMetrics) {
        self.n += 1;
        self.sum.loss += m.loss;
        self.sum.tokens += m.tokens;
        let opts = [m.action_acc, m.reward_acc, m.state_acc, m.logprob_mse];
        let sums = [
            &mut self.sum.action_acc,
            &mut self.sum.reward_acc,
            &mut self.sum.state_acc,
            &mut self.sum.logprob_mse,
        ];
        for ((v, s), c) in opts.iter().zip(sums).zip(&mut self.counts) {
            if let Some(v) = v {
                *s = Some(s.unwrap_or(0.0) + v);
                *c += 1;
            }
        }
    }

    pub fn mean(&self) -> BatchMetrics {
        let n = self.n.max(1) as f64;
        let avg = |s: Option<f64>, c: usize| s.map(|s| s / c.max(1) as f64);
        BatchMetrics {
            loss: self.sum.loss / n,
            action_acc: avg(self.sum.action_acc, self.counts[0]),
            reward_acc: avg(self.sum.reward_acc, self.counts[1]),
            state_acc: avg(self.sum.state_acc, self.counts[2]),
            logprob_mse: avg(self.sum.logprob_mse, self.counts[3]),
            tokens: self.sum.tokens,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// A model plus the data it learns from, as the loop needs them.
pub trait Learner {
    /// The trainable parameters (a stable order: it indexes the optimizer state).
    fn params(&self) -> ParamSet;
    /// Loss (to backpropagate) and metrics of one training micro-batch of `size` windows,
    /// drawn with `data_rng`; dropout draws from `dropout_rng`.
    fn train_batch(
        &mut self,
        size: usize,
        data_rng: &mut ChaCha8Rng,
        dropout_rng: &mut ChaCha8Rng,
    ) -> Result<(Tensor, BatchMetrics)>;
    /// Parameter gradients and metrics of `dropout_rngs.len()` training micro-batches of
    /// `size` windows, drawn in turn with `data_rng`; micro-batch i's dropout draws from
    /// `dropout_rngs[i]`. Up to `workers` threads compute them side by side; what each
    /// micro-batch computes does not depend on `workers`. Only parameter gradients are kept
    /// (host copies), so micro-batches still bound memory as gradient accumulation should.
    fn train_micro_batches(
        &mut self,
        size: usize,
        data_rng: &mut ChaCha8Rng,
        dropout_rngs: &mut [ChaCha8Rng],
        workers: usize,
    ) -> Result<Vec<(Gradients, BatchMetrics)>>;
    /// Mean metrics over the fixed validation windows of `split` (test: held-out tasks;
    /// train: training tasks, for the memorisation gap), without dropout.
    fn validate(
        &mut self,
        split: Split,
        max_batches: usize,
        batch_size: usize,
    ) -> Result<Option<BatchMetrics>>;
    /// Files saved beside the weights in every checkpoint (e.g. a GPT-2 `config.json`).
    fn checkpoint_extras(&self) -> Result<Vec<(&'static str, Vec<u8>)>>;
}

/// Loss (to backpropagate) and metrics of one batch.
pub type BatchLoss = Result<(Tensor, BatchMetrics)>;

/// A learner over [`Windows`]: the model's loss of one batch of windows is all it adds.
/// Drawing training batches and scoring the fixed validation set are written once, in the
/// [`Learner`] every `WindowLearner` is.
pub trait WindowLearner {
    type Windows: Windows;
    /// Loss and metrics of a batch; dropout draws from `dropout_rng` (`None`: evaluation).
    fn evaluate(
        &self,
        batch: &<Self::Windows as Windows>::Batch,
        dropout_rng: Option<&mut ChaCha8Rng>,
    ) -> BatchLoss;
    /// The trainable parameters (a stable order: it indexes the optimizer state).
    fn params(&self) -> ParamSet;
    /// The windows, and the validation set kept for them.
    fn windows(&self) -> (&Self::Windows, &ValidationStarts);
    /// Files saved beside the weights in every checkpoint.
    fn checkpoint_extras(&self) -> Result<Vec<(&'static str, Vec<u8>)>> {
        Ok(Vec::new())
    }
}

impl<L> Learner for L
where
    L: WindowLearner + Sync,
    <L::Windows as Windows>::Batch: Send + Sync,
{
    fn params(&self) -> ParamSet {
        WindowLearner::params(self)
    }

    fn train_batch(
        &mut self,
        size: usize,
        data_rng: &mut ChaCha8Rng,
        dropout_rng: &mut ChaCha8Rng,
    ) -> Result<(Tensor, BatchMetrics)> {
        let w = self.windows().0.sample_train(data_rng, size)?;
        self.evaluate(&w, Some(dropout_rng))
    }

    fn train_micro_batches(
        &mut self,
        size: usize,
        data_rng: &mut ChaCha8Rng,
        dropout_rngs: &mut [ChaCha8Rng],
        workers: usize,
    ) -> Result<Vec<(Gradients, BatchMetrics)>> {
        let batches = dropout_rngs
            .iter()
            .map(|_| self.windows().0.sample_train(data_rng, size))
            .collect::<Result<Vec<_>>>()?;
        let this = &*self;
        let params = WindowLearner::params(this);
        let one = |batch, rng: &mut ChaCha8Rng| -> Result<(Gradients, BatchMetrics)> {
            let (loss, m) = this.evaluate(batch, Some(rng))?;
            // The store (gradients of every node) is dropped here; only the parameters' stay.
            Ok((Gradients::from_store(&loss.backward()?, &params)?, m))
        };
        let mut jobs: Vec<_> = batches.iter().zip(dropout_rngs.iter_mut()).collect();
        if workers <= 1 || jobs.len() <= 1 {
            return jobs.into_iter().map(|(b, rng)| one(b, rng)).collect();
        }
        // Contiguous shares, one per worker; results come back in micro-batch order.
        let share = jobs.len().div_ceil(workers);
        std::thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .chunks_mut(share)
                .map(|part| {
                    scope.spawn(|| {
                        part.iter_mut()
                            .map(|(b, rng)| one(b, rng))
                            .collect::<Result<Vec<_>>>()
                    })
                })
                .collect();
            let mut out = Vec::new();
            for h in handles {
                out.extend(h.join().expect("a training worker panicked")?);
            }
            Ok(out)
        })
    }

    fn validate(
        &mut self,
        split: Split,
        max_batches: usize,
        batch_size: usize,
    ) -> Result<Option<BatchMetrics>> {
        let (windows, validation) = self.windows();
        let starts = validation.get(windows, split, max_batches * batch_size)?;
        mean_over_batches(starts, batch_size, |chunk| {
            Ok(self.evaluate(&windows.batch(chunk), None)?.1)
        })
    }

    fn checkpoint_extras(&self) -> Result<Vec<(&'static str, Vec<u8>)>> {
        WindowLearner::checkpoint_extras(self)
    }
}

/// How training ended.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub steps: u64,
    pub resumed_from: Option<u64>,
    pub last_train: Option<BatchMetrics>,
    pub last_val: Option<BatchMetrics>,
}

const DATA_RNG: &str = "data";
const DROPOUT_RNG: &str = "dropout";

/// Trains `learner` as `t` says, with `opt`'s optimizer and the run's `seed`, writing metrics
/// and checkpoints into `dir`.
/// With `resume`, continues from `dir`'s checkpoint when there is one.
pub fn train(
    learner: &mut dyn Learner,
    t: &TrainConfig,
    opt: &OptimizerConfig,
    seed: u64,
    dir: &RunDir,
    resume: bool,
) -> Result<TrainOutcome> {
    let params = learner.params();
    let mut optimizer = AdamW::new(opt, &params)?;
    let schedule = LrSchedule::new(opt, t.steps);
    let mut data_rng = crate::seed::rng(seed, "train-batches", &[]);
    let mut dropout_rng = crate::seed::rng(seed, "train-dropout", &[]);
    let ckpt_dir = dir.checkpoint_dir();

    let mut start = 0u64;
    let mut resumed_from = None;
    if resume && has_checkpoint(&ckpt_dir) {
        let r = checkpoint::load(&ckpt_dir, &params, &mut optimizer)
            .with_context(|| format!("resuming from {}", ckpt_dir.display()))?;
        start = r.step;
        resumed_from = Some(r.step);
        if let Some(rng) = r.rngs.get(DATA_RNG) {
            data_rng = rng.clone();
        }
        if let Some(rng) = r.rngs.get(DROPOUT_RNG) {
            dropout_rng = rng.clone();
        }
        tracing::info!(
            "resuming training at step {start} from {}",
            ckpt_dir.display()
        );
    }
    let mut metrics = if resumed_from.is_some() {
        MetricsLog::resume(&dir.metrics_path(), start)?
    } else {
        MetricsLog::create(&dir.metrics_path())
    };
    let elapsed_before = metrics
        .rows()
        .last()
        .and_then(|r| r.elapsed_s)
        .unwrap_or(0.0);

    let bar = progress_bar(t.steps, start);
    let started = Instant::now();
    let mut window_started = Instant::now();
    let mut window = MetricsMean::default();
    let mut last_train = None;
    let mut last_val = None;
    let micro = t.batch_size / t.grad_accum;
    let workers = t.workers();
    // The learner's extra checkpoint files do not change during training.
    let extras = learner.checkpoint_extras()?;
    let save = |step: u64,
                optimizer: &AdamW,
                data_rng: &ChaCha8Rng,
                dropout_rng: &ChaCha8Rng|
     -> Result<()> {
        checkpoint::save(
            &ckpt_dir,
            &params,
            optimizer,
            step,
            &[(DATA_RNG, data_rng), (DROPOUT_RNG, dropout_rng)],
            &extras,
        )
    };

    for step in start + 1..=t.steps {
        if crate::interrupt::requested() {
            let done = step - 1;
            if done > start {
                save(done, &optimizer, &data_rng, &dropout_rng)?;
                tracing::info!("checkpoint saved at step {done} before stopping");
            }
            bar.abandon();
            return Err(crate::interrupt::Interrupted.into());
        }
        let lr = schedule.lr_at(step - 1);
        let mut grads: Option<Gradients> = None;
        // One micro-batch draws dropout from the run's stream itself; several draw from
        // streams seeded from it, so that they can run side by side in any order.
        let mut micro_rngs: Vec<ChaCha8Rng>;
        let rngs = if t.grad_accum > 1 {
            micro_rngs = (0..t.grad_accum)
                .map(|_| ChaCha8Rng::seed_from_u64(dropout_rng.next_u64()))
                .collect();
            &mut micro_rngs[..]
        } else {
            std::slice::from_mut(&mut dropout_rng)
        };
        for (g, m) in learner.train_micro_batches(micro, &mut data_rng, rngs, workers)? {
            ensure_finite("training loss", m.loss as f32, step)?;
            match grads.as_mut() {
                None => grads = Some(g),
                Some(sum) => sum.add(&g),
            }
            window.add(&m);
        }
        let mut grads = grads.expect("grad_accum >= 1");
        if t.grad_accum > 1 {
            grads.scale(1.0 / t.grad_accum as f32);
        }
        let grad_norm = clip_global_norm(&mut grads, opt.grad_clip);
        ensure_finite("gradient norm", grad_norm, step)?;
        optimizer.step(&params, &grads, lr)?;
        bar.inc(1);

        let elapsed = elapsed_before + started.elapsed().as_secs_f64();
        if step % t.log_every == 0 || step == t.steps {
            let m = window.mean();
            let secs = window_started.elapsed().as_secs_f64().max(1e-9);
            let tps = m.tokens as f64 / secs;
            bar.set_message(format!("loss {:.4}  {:.0} tok/s", m.loss, tps));
            tracing::debug!(
                "step {step}: loss {:.4}, lr {lr:.2e}, grad norm {grad_norm:.3}",
                m.loss
            );
            metrics.append(row(
                step,
                "train",
                &m,
                Some(lr),
                Some(grad_norm as f64),
                Some(tps),
                elapsed,
            ))?;
            last_train = Some(m);
            window = MetricsMean::default();
            window_started = Instant::now();
        }
        let validate_now = (t.eval_every > 0 && step % t.eval_every == 0) || step == t.steps;
        if validate_now {
            // Training tasks first: `last_val` stays the held-out figure.
            if let Some(v) = learner.validate(Split::Train, t.val_batches, t.batch_size)? {
                ensure_finite("validation loss on training tasks", v.loss as f32, step)?;
                metrics.append(row(step, "val_train", &v, None, None, None, elapsed))?;
            }
            if let Some(v) = learner.validate(Split::Test, t.val_batches, t.batch_size)? {
                ensure_finite("validation loss", v.loss as f32, step)?;
                tracing::info!(
                    "step {step}: held-out validation loss {:.4}{}",
                    v.loss,
                    v.action_acc
                        .map(|a| format!(", action accuracy {a:.3}"))
                        .unwrap_or_default()
                );
                metrics.append(row(step, "val", &v, None, None, None, elapsed))?;
                last_val = Some(v);
            }
        }
        if (t.ckpt_every > 0 && step % t.ckpt_every == 0) || step == t.steps {
            save(step, &optimizer, &data_rng, &dropout_rng)?;
        }
    }
    bar.finish_and_clear();
    Ok(TrainOutcome {
        steps: t.steps,
        resumed_from,
        last_train,
        last_val,
    })
}

/// Whether `dir` holds a checkpoint (or the `.old` copy a crash mid-swap leaves).
pub fn has_checkpoint(dir: &std::path::Path) -> bool {
    dir.join(crate::runs::layout::TRAINER_STATE).is_file()
        || dir
            .with_file_name("checkpoint.old")
            .join(crate::runs::layout::TRAINER_STATE)
            .is_file()
}

fn row(
    step: u64,
    split: &str,
    m: &BatchMetrics,
    lr: Option<f64>,
    grad_norm: Option<f64>,
    tokens_per_s: Option<f64>,
    elapsed: f64,
) -> MetricsRow {
    MetricsRow {
        step,
        split: split.to_string(),
        loss: Some(m.loss),
        action_acc: m.action_acc,
        reward_acc: m.reward_acc,
        state_acc: m.state_acc,
        logprob_mse: m.logprob_mse,
        lr,
        grad_norm,
        tokens_per_s,
        elapsed_s: Some(elapsed),
    }
}

fn progress_bar(total: u64, start: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_position(start);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "train {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
