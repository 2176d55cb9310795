//! The protocol on a task suite: a model (through [`super::InContextPolicy`]) acts in context on
//! held-out (and some training) tasks, and the baselines play the same tasks; the rows of
//! `eval.csv` and the decoding figures come back. Loading a run directory is the pipeline's
//! (`pipeline::evaluate`).

use super::baselines;
use super::config::EvalConfig;
use super::policy::DecodingStats;
use super::results::{EvalRow, PolicyKind};
use super::rollout::{roll_out_traced, Acting};
use super::summary::Summary;
use super::trace::Trace;
use crate::tasks::{Split, TaskSuite};
use anyhow::Result;

/// The evaluated tasks of a split: the first `n` of the split, in index order.
fn pick(suite: &TaskSuite, split: Split, n: usize) -> Vec<usize> {
    suite.indices(split).into_iter().take(n).collect()
}

/// What [`evaluate_policy`] measured.
pub struct Evaluation {
    /// The rows of `eval.csv`.
    pub rows: Vec<EvalRow>,
    /// Per split, the text policy's decoding figures (none for rl_heads).
    pub decoding: Vec<(Split, DecodingStats)>,
    /// The model's traced episodes (`eval.trace_episodes`), held-out tasks first.
    pub traces: Vec<Trace>,
}

/// Runs the model (a fresh policy per split, from `make_policy(rows)`) and the baselines on
/// the configured tasks of both splits.
pub fn evaluate_policy<'m>(
    suite: &TaskSuite,
    eval: &EvalConfig,
    seed: u64,
    make_policy: impl Fn(usize) -> Result<Box<dyn super::InContextPolicy + 'm>>,
) -> Result<Evaluation> {
    let mut rows = Vec::new();
    let mut decoding = Vec::new();
    let mut traces = Vec::new();
    for (split, n) in [(Split::Test, eval.tasks), (Split::Train, eval.train_tasks)] {
        let tasks = pick(suite, split, n);
        if tasks.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        let mut policy = make_policy(tasks.len())?;
        let acting = Acting {
            temperature: eval.temperature,
            seed,
            label: "eval",
        };
        let (model, traced) = roll_out_traced(
            policy.as_mut(),
            suite,
            &tasks,
            eval.episodes,
            acting,
            eval.trace_episodes,
        )?;
        traces.extend(traced);
        if let Some(stats) = policy.decoding_stats() {
            tracing::info!(
                "eval {}: {} of {} steps off-format under unconstrained greedy decoding",
                split.as_str(),
                stats.off_format,
                stats.steps
            );
            decoding.push((split, stats));
        }
        drop(policy);
        tracing::info!(
            "eval {}: model played {} episodes on {} tasks in {:.1}s",
            split.as_str(),
            eval.episodes,
            tasks.len(),
            started.elapsed().as_secs_f64()
        );
        let ep = eval.episodes;
        let source = baselines::source(suite, &tasks, ep, seed)?;
        let random = baselines::random(suite, &tasks, ep, seed)?;
        let optimal = baselines::optimal(suite, &tasks, ep)?;
        for (episodes, kind) in [
            (model, PolicyKind::Model),
            (source, PolicyKind::Source),
            (random, PolicyKind::Random),
            (optimal, PolicyKind::Optimal),
        ] {
            rows.extend(EvalRow::from_episodes(&episodes, split, kind));
        }
    }
    Ok(Evaluation {
        rows,
        decoding,
        traces,
    })
}

/// One log line: the held-out model's figures beside the source's.
pub fn summary_line(s: &Summary) -> String {
    let Some((split, ss)) = s.splits.first() else {
        return "eval: no tasks evaluated".into();
    };
    let f = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.3}"));
    let part = |name: &str| {
        ss.policies.get(name).map_or(String::new(), |p| {
            format!(
                "{name} return {:.3} -> {:.3} (score {} -> {})",
                p.first_k_return,
                p.last_k_return,
                f(p.first_k_score),
                f(p.last_k_score)
            )
        })
    };
    format!(
        "eval {split} ({} tasks, first/last {} of {} episodes): {}; {}",
        ss.tasks.len(),
        s.k,
        s.episodes,
        part("model"),
        part("source")
    )
}
