//! Writing runs in TRLx's layout, so adlab's own PPO source and normalised imports are read
//! by the same code as real TRLx logs.

use super::layout;
use super::schema::OutRollout;
use crate::fsutil;
use crate::rlhf::{RlhfEpoch, RlhfRun, Rollout};
use anyhow::{bail, Result};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Writes `run` as `dir/run-<id>/` (`config.json` and one `epoch-<timestamp>.json` per epoch),
/// every file atomically, and returns the run directory. It replaces an earlier write of the
/// same run: epoch files that are not part of `run` are removed afterwards.
///
/// Ids are written as `query_tensor`/`response_tensor` (left out for an epoch whose ids are
/// all empty, as in text-only logs), then the texts and whichever of `logprobs`, `values`,
/// `rewards`, `score` the rollout has. Reading the directory back gives an equal run.
pub fn write_run(dir: &Path, run: &RlhfRun) -> Result<PathBuf> {
    if run.id.is_empty() || run.id == "." || run.id == ".." || run.id.contains(['/', '\\']) {
        bail!("run id {:?} cannot be a directory name", run.id);
    }
    let run_dir = dir.join(layout::run_dir_name(&run.id));
    // Check everything before writing anything.
    let mut names = HashSet::new();
    let mut files = Vec::with_capacity(run.epochs.len());
    for epoch in &run.epochs {
        if !epoch.timestamp.is_finite() {
            bail!(
                "run {}: epoch timestamp {} is not a finite number",
                run.id,
                epoch.timestamp
            );
        }
        let name = layout::epoch_file_name(epoch.timestamp);
        if !names.insert(name.clone()) {
            bail!(
                "run {}: two epochs have the timestamp {}",
                run.id,
                epoch.timestamp
            );
        }
        files.push((name, epoch_json(epoch, &run.id)?));
    }
    let mut config = serde_json::to_vec_pretty(&run.config)?;
    config.push(b'\n');
    fsutil::write_atomic(&run_dir.join(layout::CONFIG_FILE), &config)?;
    for (name, bytes) in &files {
        fsutil::write_atomic(&run_dir.join(name), bytes)?;
    }
    for (_, stale) in layout::epoch_files(&run_dir)? {
        let keep = stale
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| names.contains(n));
        if !keep {
            std::fs::remove_file(&stale)?;
        }
    }
    Ok(run_dir)
}

/// One epoch file: a JSON list with one rollout per line.
fn epoch_json(epoch: &RlhfEpoch, run: &str) -> Result<Vec<u8>> {
    let per_token = |r: &Rollout| {
        [
            r.logprobs.is_some(),
            r.values.is_some(),
            r.rewards.is_some(),
        ]
    };
    let with_tensors = epoch.rollouts.iter().any(|r| {
        !r.query_ids.is_empty() || !r.response_ids.is_empty() || per_token(r).contains(&true)
    });
    let mut out = b"[".to_vec();
    for (i, r) in epoch.rollouts.iter().enumerate() {
        let at = || format!("run {run}, epoch {}, rollout {i}", epoch.timestamp);
        // The reader requires these of every rollout of a file or of none.
        if per_token(r) != per_token(&epoch.rollouts[0]) {
            bail!("{}: logprobs/values/rewards present where rollout 0 has them absent, or the other way round", at());
        }
        for (field, values) in [
            ("logprobs", &r.logprobs),
            ("values", &r.values),
            ("rewards", &r.rewards),
        ] {
            let Some(values) = values else { continue };
            if values.len() != r.response_ids.len() {
                bail!(
                    "{}: {field} has {} values for {} response tokens",
                    at(),
                    values.len(),
                    r.response_ids.len()
                );
            }
            if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                bail!("{}: {field} holds {v}, which JSON cannot represent", at());
            }
        }
        if let Some(s) = r.score.filter(|s| !s.is_finite()) {
            bail!("{}: score {s} is not a finite number", at());
        }
        let row = OutRollout {
            query_tensor: with_tensors.then_some(&r.query_ids[..]),
            response_tensor: with_tensors.then_some(&r.response_ids[..]),
            query_text: &r.query_text,
            response_text: &r.response_text,
            logprobs: r.logprobs.as_deref(),
            values: r.values.as_deref(),
            rewards: r.rewards.as_deref(),
            score: r.score,
        };
        out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
        serde_json::to_writer(&mut out, &row)?;
    }
    out.extend_from_slice(b"\n]\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rlhf::trlx::read::{read_logs, ImportOptions};
    use rand::{Rng, SeedableRng};

    /// Finite f32s from random bit patterns: every exponent, subnormals, signed zeros.
    fn random_f32s(rng: &mut rand_chacha::ChaCha8Rng, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| loop {
                let v = f32::from_bits(rng.random());
                if v.is_finite() {
                    break v;
                }
            })
            .collect()
    }

    fn random_run(id: &str, seed: u64) -> RlhfRun {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let epochs = [999.0, 1000.0, 1669812345.123, 1669812345.1234567]
            .into_iter()
            .map(|timestamp| RlhfEpoch {
                timestamp,
                rollouts: (0..20)
                    .map(|k| {
                        let n = rng.random_range(1..12);
                        Rollout {
                            query_ids: (0..rng.random_range(0..9)).map(|_| rng.random()).collect(),
                            response_ids: (0..n).map(|_| rng.random_range(0..60000)).collect(),
                            query_text: format!("prompt {k} é \"quoted\"\n"),
                            response_text: format!("reply {k} ✓"),
                            logprobs: Some(random_f32s(&mut rng, n)),
                            values: Some(random_f32s(&mut rng, n)),
                            rewards: Some(random_f32s(&mut rng, n)),
                            score: (k % 3 != 0).then(|| random_f32s(&mut rng, 1)[0]),
                        }
                    })
                    .collect(),
            })
            .collect();
        RlhfRun {
            id: id.into(),
            config: serde_json::json!({"method": {"init_kl_coef": 0.05, "gamma": 1}, "model": "gpt2"}),
            epochs,
        }
    }

    #[test]
    fn written_runs_read_back_bit_exact() {
        let d = tempfile::tempdir().unwrap();
        let runs = [random_run("0a1b", 1), random_run("zz", 2)];
        for run in &runs {
            let dir = write_run(d.path(), run).unwrap();
            assert_eq!(dir, d.path().join(format!("run-{}", run.id)));
        }
        let import = read_logs(
            d.path(),
            &ImportOptions {
                strict: true,
                ..Default::default()
            },
        )
        .unwrap();
        // `PartialEq` on f32 would accept -0.0 for 0.0; compare bits through the JSON text too.
        assert_eq!(import.runs, runs);
        for (a, b) in import.runs.iter().zip(&runs) {
            for ((_, x), (_, y)) in a.rollouts().zip(b.rollouts()) {
                let bits = |v: &Option<Vec<f32>>| {
                    v.as_ref()
                        .unwrap()
                        .iter()
                        .map(|f| f.to_bits())
                        .collect::<Vec<_>>()
                };
                assert_eq!(bits(&x.rewards), bits(&y.rewards));
                assert_eq!(bits(&x.logprobs), bits(&y.logprobs));
                assert_eq!(x.score.map(f32::to_bits), y.score.map(f32::to_bits));
            }
            for (ea, eb) in a.epochs.iter().zip(&b.epochs) {
                assert_eq!(ea.timestamp.to_bits(), eb.timestamp.to_bits());
            }
        }
    }

    #[test]
    fn text_only_runs_round_trip_without_tensors() {
        let d = tempfile::tempdir().unwrap();
        let run = RlhfRun {
            id: "t".into(),
            config: serde_json::Value::Null,
            epochs: vec![RlhfEpoch {
                timestamp: 3.5,
                rollouts: vec![Rollout {
                    query_ids: vec![],
                    response_ids: vec![],
                    query_text: "q".into(),
                    response_text: "r".into(),
                    logprobs: None,
                    values: None,
                    rewards: None,
                    score: Some(0.5),
                }],
            }],
        };
        let dir = write_run(d.path(), &run).unwrap();
        let text = std::fs::read_to_string(dir.join("epoch-3.5.json")).unwrap();
        assert!(!text.contains("tensor"), "{text}");
        let import = read_logs(d.path(), &ImportOptions::default()).unwrap();
        assert_eq!(import.runs, [run]);
    }

    #[test]
    fn rewriting_a_run_replaces_its_epochs_and_leaves_no_temporaries() {
        let d = tempfile::tempdir().unwrap();
        let mut run = random_run("r", 3);
        let dir = write_run(d.path(), &run).unwrap();
        run.epochs.truncate(1);
        write_run(d.path(), &run).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["config.json", "epoch-999.json"]);
    }

    #[test]
    fn unwritable_runs_are_refused_before_any_file_is_written() {
        let d = tempfile::tempdir().unwrap();
        let mut run = random_run("bad", 4);
        run.epochs[1].rollouts[2].rewards.as_mut().unwrap()[0] = f32::NAN;
        let err = write_run(d.path(), &run).unwrap_err().to_string();
        assert!(
            err.contains("epoch 1000, rollout 2: rewards holds NaN"),
            "{err}"
        );
        assert!(!d.path().join("run-bad").exists());

        let mut run = random_run("bad", 4);
        run.epochs[0].rollouts[1].values.as_mut().unwrap().pop();
        let err = write_run(d.path(), &run).unwrap_err().to_string();
        assert!(err.contains("rollout 1: values has"), "{err}");

        let mut run = random_run("../x", 4);
        assert!(write_run(d.path(), &run).is_err());
        run.id = "ok".into();
        run.epochs[1].timestamp = 999.0;
        let err = write_run(d.path(), &run).unwrap_err().to_string();
        assert!(err.contains("two epochs have the timestamp 999"), "{err}");
    }
}
