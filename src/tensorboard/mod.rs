//! TensorBoard event files in the run directory, so `tensorboard --logdir runs/` shows runs
//! live and side by side: every `metrics.csv` row as scalars `<split>/<column>` (written as
//! the row is logged), the run's overridden config keys as hyperparameters (HParams plugin),
//! and after evaluation the in-context return curves `in_context/<split>/<policy>` (step =
//! episode).
//!
//! The training file is appended to, record by record, never replaced: a reader such as
//! TensorBoard keeps the file open and would not see a replacement. Each record carries its
//! own CRCs and readers stop at a torn last record, so a crash loses at most the row being
//! written (metrics.csv, rewritten atomically, stays the record of truth). When a run is
//! resumed, the training file is rewritten from metrics.csv's rows, so the directory holds
//! exactly those rows. The evaluation file is written whole, atomically.

pub mod proto;
pub mod record;

use anyhow::{Context, Result};
use proto::HParam;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Every event file's name starts so (TensorBoard looks for `tfevents` in the name).
pub const PREFIX: &str = "events.out.tfevents.";
const TRAIN: &str = "train";
const EVAL: &str = "eval";

/// Scalars of one step: `(tag, value)`.
pub type Scalars = Vec<(String, f32)>;

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `events.out.tfevents.<unix time>.<host>.<pid>.<kind>` (TensorFlow's naming plus a kind).
fn file_name(kind: &str) -> String {
    let host = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!(
        "{PREFIX}{}.{host}.{}.{kind}",
        now() as u64,
        std::process::id()
    )
}

/// Removes `dir`'s event files of `kind`.
fn remove_files(dir: &Path, kind: &str) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(PREFIX) && name.ends_with(&format!(".{kind}")) {
            std::fs::remove_file(e.path())
                .with_context(|| format!("removing {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// The training event file of a run, appended to as rows are logged.
#[derive(Debug)]
pub struct EventLog {
    path: PathBuf,
}

impl EventLog {
    /// A fresh training event file in `dir` holding the run's hyperparameters and the steps
    /// logged so far (`rows`: none for a new run, the kept ones for a resumed run); earlier
    /// training event files are removed.
    pub fn start(dir: &Path, rows: &[(u64, Scalars)]) -> Result<EventLog> {
        remove_files(dir, TRAIN)?;
        let t = now();
        let mut bytes = Vec::new();
        record::frame(&proto::file_version_event(t), &mut bytes);
        let hparams = run_hparams(dir);
        if !hparams.is_empty() {
            record::frame(&proto::hparams_event(t, &hparams), &mut bytes);
        }
        for (step, scalars) in rows {
            record::frame(&proto::scalars_event(t, *step, scalars), &mut bytes);
        }
        let path = dir.join(file_name(TRAIN));
        crate::fsutil::write_atomic(&path, &bytes)?;
        Ok(EventLog { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one step's scalars in a single write.
    pub fn append(&self, step: u64, scalars: &[(String, f32)]) -> Result<()> {
        let mut bytes = Vec::new();
        record::frame(&proto::scalars_event(now(), step, scalars), &mut bytes);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        f.write_all(&bytes)
            .and_then(|_| f.flush())
            .with_context(|| format!("appending to {}", self.path.display()))
    }
}

/// The run's hyperparameters: every key its overrides (`overrides.yaml`) set, with the value
/// the composed `config.yaml` holds (a group choice such as `model=causal_lm` by the group's
/// `name`; the override's own text where the config has no scalar). Empty when the files
/// are missing: hyperparameters are a convenience, never a reason to fail a run.
pub fn run_hparams(dir: &Path) -> Vec<(String, HParam)> {
    let read = |name: &str| -> Option<serde_yaml_ng::Value> {
        let text = std::fs::read_to_string(dir.join(name)).ok()?;
        serde_yaml_ng::from_str(&text).ok()
    };
    let (Some(overrides), Some(config)) = (read("overrides.yaml"), read("config.yaml")) else {
        return Vec::new();
    };
    let mut out: Vec<(String, HParam)> = Vec::new();
    for text in overrides.as_sequence().into_iter().flatten() {
        let Some(text) = text.as_str() else { continue };
        if text.starts_with('~') {
            continue;
        }
        let Some((key, given)) = text.trim_start_matches('+').split_once('=') else {
            continue;
        };
        // Where a run wrote, not what it did (as the report ignores them).
        if key == "paths" || key.starts_with("paths.") {
            continue;
        }
        let mut node = Some(&config);
        for part in key.split('.') {
            node = node.and_then(|n| n.get(part));
        }
        if let Some(n) = node.filter(|n| n.is_mapping()) {
            node = n.get("name");
        }
        let value = match node {
            Some(serde_yaml_ng::Value::Number(n)) => n.as_f64().map(HParam::Number),
            Some(serde_yaml_ng::Value::Bool(b)) => Some(HParam::Bool(*b)),
            Some(serde_yaml_ng::Value::String(s)) => Some(HParam::Text(s.clone())),
            _ => None,
        };
        out.retain(|(k, _)| k != key);
        out.push((
            key.to_string(),
            value.unwrap_or_else(|| HParam::Text(given.to_string())),
        ));
    }
    out
}

/// Writes the evaluation's in-context return curves, `(tag, one value per episode)` (the tags
/// are `in_context/<split>/<policy>`; see `eval::summary::Summary::in_context_curves`), as
/// `dir`'s evaluation event file, replacing an earlier one. Non-finite points are left out.
pub fn write_in_context(dir: &Path, curves: &[(String, Vec<f64>)]) -> Result<PathBuf> {
    let t = now();
    let mut bytes = Vec::new();
    record::frame(&proto::file_version_event(t), &mut bytes);
    let longest = curves.iter().map(|(_, c)| c.len()).max().unwrap_or(0);
    for episode in 0..longest {
        let scalars: Scalars = curves
            .iter()
            .filter_map(|(tag, c)| {
                let v = *c.get(episode)?;
                v.is_finite().then(|| (tag.clone(), v as f32))
            })
            .collect();
        if !scalars.is_empty() {
            record::frame(
                &proto::scalars_event(t, episode as u64, &scalars),
                &mut bytes,
            );
        }
    }
    remove_files(dir, EVAL)?;
    let path = dir.join(file_name(EVAL));
    crate::fsutil::write_atomic(&path, &bytes)?;
    Ok(path)
}

/// [`write_in_context`], a failure logged rather than returned: the curves are in
/// `summary.json` and `eval.csv` already.
pub fn log_in_context(dir: &Path, curves: &[(String, Vec<f64>)]) {
    if let Err(e) = write_in_context(dir, curves) {
        tracing::warn!("TensorBoard in-context curves in {}: {e:#}", dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyperparameters_are_the_overridden_keys_with_their_composed_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("overrides.yaml"),
            "- model=causal_lm\n- optimizer.lr=1e-3\n- +train.note=hi\n- ~eval\n- train.resume=true\n- paths.runs=/tmp/r\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("config.yaml"),
            "model: {name: causal_lm, d_model: 8}\noptimizer: {lr: 0.001}\ntrain: {note: hi, resume: true}\n",
        )
        .unwrap();
        assert_eq!(
            run_hparams(dir.path()),
            vec![
                ("model".to_string(), HParam::Text("causal_lm".into())),
                ("optimizer.lr".to_string(), HParam::Number(0.001)),
                ("train.note".to_string(), HParam::Text("hi".into())),
                ("train.resume".to_string(), HParam::Bool(true)),
            ]
        );
        assert!(run_hparams(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn a_resumed_log_replaces_the_earlier_training_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = EventLog::start(dir.path(), &[]).unwrap();
        first.append(1, &[("train/loss".into(), 2.0)]).unwrap();
        let len = std::fs::metadata(first.path()).unwrap().len();
        assert!(len > 0);
        let again = EventLog::start(dir.path(), &[(1, vec![("train/loss".into(), 2.0)])]).unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(files[0].path(), again.path());
    }
}
