//! Finding run directories under the paths a user gives, and reading each one leniently: a
//! run that is still running, failed, or left a truncated file is still reported (with what
//! could be read); nothing in one run directory can abort the report.

use crate::runs::RunDir;
use anyhow::{bail, Result};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// Everything the report needs from one run directory.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    pub path: PathBuf,
    /// `meta.json`'s status (`completed`, `failed`, `running`, `interrupted`), or `unknown`
    /// when there is no readable `meta.json`.
    pub status: String,
    /// The first line of the recorded error.
    pub error: Option<String>,
    /// `config.yaml` flattened to dotted keys; values printed as compact YAML scalars.
    pub config: BTreeMap<String, String>,
    /// `metrics.csv`, in file order.
    pub metrics: Vec<MetricPoint>,
    /// Metric columns of `metrics.csv` in header order (`step` and `split` excluded).
    pub metric_names: Vec<String>,
    /// `summary.json`'s numeric leaves by JSON path.
    pub summary: BTreeMap<String, f64>,
    /// `eval.csv` rows.
    pub eval: Vec<EvalPoint>,
    pub wall_time_s: Option<f64>,
    /// What could not be read (shown as warnings, never fatal).
    pub notes: Vec<String>,
}

impl RunRecord {
    pub fn completed(&self) -> bool {
        self.status == "completed"
    }
}

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub step: u64,
    pub split: String,
    /// The non-empty numeric cells, by column name.
    pub values: BTreeMap<String, f64>,
}

/// One row of `eval.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalPoint {
    pub task: String,
    pub split: String,
    pub episode: u64,
    pub ret: f64,
    pub policy: String,
}

/// A run directory has `meta.json` or `config.yaml`.
pub fn is_run_dir(dir: &Path) -> bool {
    dir.join("meta.json").is_file() || dir.join("config.yaml").is_file()
}

/// Every run directory at or below `paths`, each once, in path order within each argument.
/// A path that does not exist is an error (a typo); a run directory is not searched further.
pub fn find_runs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for p in paths {
        if !p.is_dir() {
            bail!("{} is not a directory (expected a run directory, a sweep directory or a folder of them)", p.display());
        }
        let mut found = Vec::new();
        walk(p, &mut found);
        for d in found {
            let key = d.canonicalize().unwrap_or_else(|_| d.clone());
            if seen.insert(key) {
                out.push(d);
            }
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    if is_run_dir(dir) {
        out.push(dir.to_path_buf());
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut subdirs: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string());
            !matches!(name.as_deref(), Some(n) if n.starts_with('.') || n == "plots")
        })
        .collect();
    subdirs.sort();
    for d in subdirs {
        walk(&d, out);
    }
}

/// Reads one run directory; every problem becomes a note.
pub fn read_run(path: &Path) -> RunRecord {
    let run = RunDir {
        path: path.to_path_buf(),
    };
    let mut rec = RunRecord {
        path: path.to_path_buf(),
        status: "unknown".into(),
        ..Default::default()
    };
    match run.read_meta() {
        Ok(Some(meta)) => {
            // A `running` run whose process died shows as `lost`, not as running forever.
            let status = crate::runs::lock::effective_status(path, &meta);
            rec.status = status.to_string();
            rec.error = meta
                .error
                .as_deref()
                .and_then(|e| e.lines().find(|l| !l.trim().is_empty()))
                .map(|l| l.trim().to_string())
                .or_else(|| {
                    (status == crate::runs::RunStatus::Lost).then(|| {
                        format!(
                            "its process (pid {} on {}) ended without recording an end",
                            meta.pid, meta.host
                        )
                    })
                });
            rec.wall_time_s = meta
                .end_time
                .as_deref()
                .and_then(|end| seconds_between(&meta.start_time, end));
        }
        Ok(None) => rec.notes.push("no meta.json".into()),
        Err(e) => rec.notes.push(format!("{e:#}")),
    }
    match std::fs::read_to_string(run.config_path()) {
        Ok(text) => match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) {
            Ok(v) => flatten_yaml("", &v, &mut rec.config),
            Err(e) => rec.notes.push(format!("config.yaml: {e}")),
        },
        Err(_) => rec.notes.push("no config.yaml".into()),
    }
    if let Some(text) = read_complete_lines(&run.metrics_path(), &mut rec.notes) {
        let (names, rows, skipped) = parse_metrics(&text);
        rec.metric_names = names;
        rec.metrics = rows;
        if skipped > 0 {
            rec.notes
                .push(format!("metrics.csv: skipped {skipped} unreadable rows"));
        }
    }
    if let Some(text) = read_complete_lines(&run.eval_path(), &mut rec.notes) {
        let (rows, skipped) = parse_eval(&text);
        rec.eval = rows;
        if skipped > 0 {
            rec.notes
                .push(format!("eval.csv: skipped {skipped} unreadable rows"));
        }
    }
    if let Ok(text) = std::fs::read_to_string(run.summary_path()) {
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => flatten_json("", &v, &mut rec.summary),
            Err(e) => rec.notes.push(format!("summary.json: {e}")),
        }
    }
    rec
}

/// The file's text up to its last newline: a final line without one was cut off mid-write.
fn read_complete_lines(path: &Path, notes: &mut Vec<String>) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    if text.is_empty() || text.ends_with('\n') {
        return Some(text);
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    notes.push(format!("{name}: dropped a truncated last line"));
    Some(match text.rfind('\n') {
        Some(i) => text[..=i].to_string(),
        None => String::new(),
    })
}

fn csv_reader(text: &str) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes())
}

/// Columns are found by header name, so added columns do not break the report.
fn parse_metrics(text: &str) -> (Vec<String>, Vec<MetricPoint>, usize) {
    let mut r = csv_reader(text);
    let Ok(header) = r.headers().cloned() else {
        return (Vec::new(), Vec::new(), 0);
    };
    let col = |name: &str| header.iter().position(|h| h == name);
    let (Some(step_i), Some(split_i)) = (col("step"), col("split")) else {
        return (Vec::new(), Vec::new(), 0);
    };
    let names: Vec<String> = header
        .iter()
        .filter(|h| *h != "step" && *h != "split")
        .map(str::to_string)
        .collect();
    let (mut rows, mut skipped) = (Vec::new(), 0);
    for rec in r.records() {
        let Ok(rec) = rec else {
            skipped += 1;
            continue;
        };
        if rec.len() != header.len() {
            skipped += 1;
            continue;
        }
        let Ok(step) = rec[step_i].trim().parse::<u64>() else {
            skipped += 1;
            continue;
        };
        let mut values = BTreeMap::new();
        let mut bad = false;
        for (i, h) in header.iter().enumerate() {
            if i == step_i || i == split_i || rec[i].trim().is_empty() {
                continue;
            }
            match rec[i].trim().parse::<f64>() {
                Ok(v) => {
                    values.insert(h.to_string(), v);
                }
                Err(_) => bad = true,
            }
        }
        if bad {
            skipped += 1;
            continue;
        }
        rows.push(MetricPoint {
            step,
            split: rec[split_i].trim().to_string(),
            values,
        });
    }
    (names, rows, skipped)
}

fn parse_eval(text: &str) -> (Vec<EvalPoint>, usize) {
    let mut r = csv_reader(text);
    let Ok(header) = r.headers().cloned() else {
        return (Vec::new(), 0);
    };
    let col = |name: &str| header.iter().position(|h| h == name);
    let (Some(task), Some(split), Some(episode), Some(ret), Some(policy)) = (
        col("task"),
        col("split"),
        col("episode"),
        col("return"),
        col("policy"),
    ) else {
        return (Vec::new(), 0);
    };
    let (mut rows, mut skipped) = (Vec::new(), 0);
    for rec in r.records() {
        let parsed = rec.ok().filter(|r| r.len() == header.len()).and_then(|r| {
            Some(EvalPoint {
                task: r[task].trim().to_string(),
                split: r[split].trim().to_string(),
                episode: r[episode].trim().parse().ok()?,
                ret: r[ret].trim().parse().ok()?,
                policy: r[policy].trim().to_string(),
            })
        });
        match parsed {
            Some(p) => rows.push(p),
            None => skipped += 1,
        }
    }
    (rows, skipped)
}

/// Seconds from one RFC 3339 time to another.
fn seconds_between(start: &str, end: &str) -> Option<f64> {
    let s = chrono::DateTime::parse_from_rfc3339(start).ok()?;
    let e = chrono::DateTime::parse_from_rfc3339(end).ok()?;
    Some((e - s).num_milliseconds() as f64 / 1000.0)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Leaves of a YAML tree by dotted key; a list is one leaf (printed inline).
pub fn flatten_yaml(prefix: &str, v: &serde_yaml_ng::Value, out: &mut BTreeMap<String, String>) {
    use serde_yaml_ng::Value;
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            for (k, child) in m {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => scalar_text(other),
                };
                flatten_yaml(&join(prefix, &key), child, out);
            }
        }
        other if !prefix.is_empty() => {
            out.insert(prefix.to_string(), scalar_text(other));
        }
        _ => {}
    }
}

fn scalar_text(v: &serde_yaml_ng::Value) -> String {
    use serde_yaml_ng::Value;
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// Numeric leaves of a JSON tree by dotted path. Arrays are skipped: they hold curves and
/// task lists (the curves are drawn from `eval.csv`), not single figures.
pub fn flatten_json(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, f64>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                flatten_json(&join(prefix, k), child, out);
            }
        }
        serde_json::Value::Number(n) if !prefix.is_empty() => {
            if let Some(x) = n.as_f64() {
                out.insert(prefix.to_string(), x);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_malformed_metrics_rows_are_skipped() {
        let text = "step,split,loss,action_acc\n10,train,2.0,\n10,val,1.5,0.4\nx,val,1,1\n20,val,oops,0.5\n20,train,1.0,\n";
        let (names, rows, skipped) = parse_metrics(text);
        assert_eq!(names, ["loss", "action_acc"]);
        assert_eq!(rows.len(), 3);
        assert_eq!(skipped, 2);
        assert_eq!(rows[1].values["action_acc"], 0.4);
        assert!(!rows[0].values.contains_key("action_acc"));
    }

    #[test]
    fn a_last_line_without_newline_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.csv");
        std::fs::write(&p, "step,split,loss\n10,train,2.0\n20,tra").unwrap();
        let mut notes = Vec::new();
        let text = read_complete_lines(&p, &mut notes).unwrap();
        assert_eq!(text, "step,split,loss\n10,train,2.0\n");
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn json_numeric_leaves_are_flattened_and_arrays_skipped() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"k": 3, "splits": {"test": {"tasks": [1, 2], "policies": {"model": {"last_k_return": 0.5, "curve": [1.0], "score": null}}}}}"#,
        )
        .unwrap();
        let mut out = BTreeMap::new();
        flatten_json("", &v, &mut out);
        assert_eq!(
            out.keys().collect::<Vec<_>>(),
            ["k", "splits.test.policies.model.last_k_return"]
        );
    }
}
