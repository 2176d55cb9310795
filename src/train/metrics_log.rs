//! `metrics.csv`: one row per logged training or validation point, columns fixed by
//! DESIGN.md. The whole file is rewritten atomically on every append, so a crash never leaves
//! a half-written row (the files are small: one row per `log_every` steps).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const COLUMNS: [&str; 11] = [
    "step",
    "split",
    "loss",
    "action_acc",
    "reward_acc",
    "state_acc",
    "logprob_mse",
    "lr",
    "grad_norm",
    "tokens_per_s",
    "elapsed_s",
];

/// One row; `None` is an empty cell (a metric that does not apply).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    pub step: u64,
    /// `train` or `val`.
    pub split: String,
    pub loss: Option<f64>,
    pub action_acc: Option<f64>,
    pub reward_acc: Option<f64>,
    pub state_acc: Option<f64>,
    pub logprob_mse: Option<f64>,
    pub lr: Option<f64>,
    pub grad_norm: Option<f64>,
    pub tokens_per_s: Option<f64>,
    pub elapsed_s: Option<f64>,
}

/// The rows of a run's `metrics.csv`, mirrored live into TensorBoard event files beside it.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    rows: Vec<MetricsRow>,
    /// Started at the first append (with the rows kept on resume); `None` after a failure,
    /// which is logged once: the event files are a view, metrics.csv is the record.
    events: Option<crate::tensorboard::EventLog>,
    events_failed: bool,
}

impl MetricsRow {
    /// The row's values as TensorBoard scalars `<split>/<column>` (elapsed time is the
    /// events' own wall time).
    pub fn scalars(&self) -> crate::tensorboard::Scalars {
        [
            ("loss", self.loss),
            ("action_acc", self.action_acc),
            ("reward_acc", self.reward_acc),
            ("state_acc", self.state_acc),
            ("logprob_mse", self.logprob_mse),
            ("lr", self.lr),
            ("grad_norm", self.grad_norm),
            ("tokens_per_s", self.tokens_per_s),
        ]
        .into_iter()
        .filter_map(|(name, v)| Some((format!("{}/{name}", self.split), v? as f32)))
        .collect()
    }
}

impl MetricsLog {
    /// A new, empty log at `path` (nothing is written until the first row).
    pub fn create(path: &Path) -> MetricsLog {
        MetricsLog {
            path: path.to_path_buf(),
            rows: Vec::new(),
            events: None,
            events_failed: false,
        }
    }

    /// Reopens a log for a resumed run, keeping only rows up to `step` (rows logged after the
    /// checkpoint will be logged again, identically).
    pub fn resume(path: &Path, step: u64) -> Result<MetricsLog> {
        let mut log = MetricsLog::create(path);
        if path.exists() {
            log.rows = read_rows(path)?
                .into_iter()
                .filter(|r| r.step <= step)
                .collect();
        }
        Ok(log)
    }

    pub fn rows(&self) -> &[MetricsRow] {
        &self.rows
    }

    pub fn append(&mut self, row: MetricsRow) -> Result<()> {
        self.rows.push(row);
        self.flush()?;
        self.mirror();
        Ok(())
    }

    /// Writes the newest row to the event file (starting it with every row on first use).
    fn mirror(&mut self) {
        if self.events_failed {
            return;
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let result = match &self.events {
            Some(events) => {
                let row = self.rows.last().expect("just appended");
                events.append(row.step, &row.scalars())
            }
            None => {
                let rows: Vec<_> = self.rows.iter().map(|r| (r.step, r.scalars())).collect();
                crate::tensorboard::EventLog::start(dir, &rows).map(|e| self.events = Some(e))
            }
        };
        if let Err(e) = result {
            tracing::warn!(
                "TensorBoard event file in {}: {e:#}; metrics.csv goes on",
                dir.display()
            );
            self.events = None;
            self.events_failed = true;
        }
    }

    fn flush(&self) -> Result<()> {
        let mut w = csv::WriterBuilder::new()
            .has_headers(true)
            .from_writer(Vec::new());
        for r in &self.rows {
            w.serialize(r)?;
        }
        if self.rows.is_empty() {
            w.write_record(COLUMNS)?;
        }
        let bytes = w.into_inner().context("finishing metrics.csv")?;
        crate::fsutil::write_atomic(&self.path, &bytes)
    }
}

/// Reads a `metrics.csv`.
pub fn read_rows(path: &Path) -> Result<Vec<MetricsRow>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (i, row) in r.deserialize().enumerate() {
        out.push(row.with_context(|| format!("{}: row {}", path.display(), i + 2))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_matches_the_contract_and_empty_cells_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.csv");
        let mut log = MetricsLog::create(&p);
        log.append(MetricsRow {
            step: 5,
            split: "train".into(),
            loss: Some(1.5),
            lr: Some(1e-3),
            ..Default::default()
        })
        .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().next().unwrap(), COLUMNS.join(","));
        assert_eq!(text.lines().nth(1).unwrap(), "5,train,1.5,,,,,0.001,,,");
        assert_eq!(read_rows(&p).unwrap(), log.rows());
    }

    #[test]
    fn resume_drops_rows_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.csv");
        let mut log = MetricsLog::create(&p);
        for step in [10, 20, 30] {
            log.append(MetricsRow {
                step,
                split: "train".into(),
                ..Default::default()
            })
            .unwrap();
        }
        let resumed = MetricsLog::resume(&p, 20).unwrap();
        assert_eq!(
            resumed.rows().iter().map(|r| r.step).collect::<Vec<_>>(),
            vec![10, 20]
        );
    }
}
