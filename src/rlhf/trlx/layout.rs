//! File and directory names of TRLx's layout: `DIR/run-<id>/config.json` and
//! `DIR/run-<id>/epoch-<unix time>.json`.

use super::errors::TrlxError;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.json";
const RUN_PREFIX: &str = "run-";
const EPOCH_PREFIX: &str = "epoch-";
const EPOCH_SUFFIX: &str = ".json";

pub fn run_dir_name(id: &str) -> String {
    format!("{RUN_PREFIX}{id}")
}

/// The run id of a directory named `run-<id>`.
pub fn run_id(dir: &Path) -> Option<String> {
    let name = dir.file_name()?.to_str()?;
    name.strip_prefix(RUN_PREFIX).map(str::to_string)
}

/// `epoch-<time>.json`. Rust prints an f64 in the shortest form that parses back to the same
/// bits, so [`epoch_timestamp`] of this name gives back exactly `timestamp`.
pub fn epoch_file_name(timestamp: f64) -> String {
    format!("{EPOCH_PREFIX}{timestamp}{EPOCH_SUFFIX}")
}

/// `None` if `name` is not an epoch file; an error if it is one whose time is not a finite
/// number.
pub fn epoch_timestamp(name: &str) -> Option<std::result::Result<f64, ()>> {
    let middle = name
        .strip_prefix(EPOCH_PREFIX)?
        .strip_suffix(EPOCH_SUFFIX)?;
    Some(
        middle
            .parse::<f64>()
            .ok()
            .filter(|t| t.is_finite())
            .ok_or(()),
    )
}

/// Every `run-*` directory in `dir`, sorted by name (for a deterministic order). If there is
/// none and `dir` is itself a run directory, that one run.
pub fn run_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("reading directory {}", dir.display()))?;
    let mut runs = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading directory {}", dir.display()))?;
        let path = entry.path();
        if path.is_dir() && run_id(&path).is_some() {
            runs.push(path);
        }
    }
    runs.sort();
    if runs.is_empty() && run_id(dir).is_some() {
        runs.push(dir.to_path_buf());
    }
    if runs.is_empty() {
        return Err(TrlxError::NoRuns {
            dir: dir.to_path_buf(),
        }
        .into());
    }
    Ok(runs)
}

/// The epoch files of a run directory in chronological order: by the numeric time in the name
/// (`epoch-999.json` before `epoch-1000.json`), ties by name. Other files are ignored.
pub fn epoch_files(run_dir: &Path) -> Result<Vec<(f64, PathBuf)>> {
    let entries = std::fs::read_dir(run_dir)
        .with_context(|| format!("reading directory {}", run_dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading directory {}", run_dir.display()))?;
        let path = entry.path();
        let Some(parsed) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(epoch_timestamp)
        else {
            continue;
        };
        let timestamp = parsed.map_err(|()| TrlxError::BadEpochName { file: path.clone() })?;
        files.push((timestamp, path));
    }
    files.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_file_names() {
        for t in [
            0.0,
            999.0,
            1669812345.123,
            1669812345.1234567,
            0.1 + 0.2,
            1e-7,
            1e21,
        ] {
            let name = epoch_file_name(t);
            assert_eq!(epoch_timestamp(&name), Some(Ok(t)), "{name}");
        }
        assert_eq!(epoch_file_name(1000.0), "epoch-1000.json");
        assert_eq!(epoch_timestamp("config.json"), None);
        assert_eq!(epoch_timestamp("epoch-abc.json"), Some(Err(())));
        assert_eq!(epoch_timestamp("epoch-inf.json"), Some(Err(())));
    }

    #[test]
    fn epochs_sort_by_numeric_time_not_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "epoch-1000.json",
            "epoch-999.json",
            "epoch-1000.5.json",
            "epoch-10000.json",
            "config.json",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), "[]").unwrap();
        }
        let times: Vec<f64> = epoch_files(dir.path())
            .unwrap()
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(times, [999.0, 1000.0, 1000.5, 10000.0]);

        std::fs::write(dir.path().join("epoch-x1.json"), "[]").unwrap();
        let err = epoch_files(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("epoch-x1.json") && err.contains("unix time"),
            "{err}"
        );
    }

    #[test]
    fn every_run_directory_is_listed_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let err = run_dirs(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no TRLx run directories"), "{err}");
        for name in ["run-b", "run-e1", "run-a", "other"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        std::fs::write(dir.path().join("run-file"), "").unwrap();
        let names: Vec<String> = run_dirs(dir.path())
            .unwrap()
            .iter()
            .map(|p| run_id(p).unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "e1"]);
        // A run directory given directly is one run.
        let one = run_dirs(&dir.path().join("run-a")).unwrap();
        assert_eq!(one, [dir.path().join("run-a")]);
    }
}
