//! Sweep definitions: `sweeps/NAME.yaml` (or `-m` overrides) — fixed overrides, a grid,
//! zipped (paired) lists and a random search. Plain data; expansion lives in `expand.rs`.

use anyhow::{bail, Context, Result};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One `sweeps/NAME.yaml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// What the sweep compares (shown in `--dry-run` and reports).
    #[serde(default)]
    pub description: Option<String>,
    /// Overrides every job gets (`task=bandit`, `train.steps=200`).
    #[serde(default)]
    pub overrides: Vec<String>,
    /// Cartesian product: key -> a list of values, or a sweep expression
    /// (`"1e-3,1e-4"`, `"range(0, 3)"`, `"glob(*)"`, `"choice(a, b)"`).
    #[serde(default)]
    pub grid: IndexMap<String, serde_yaml_ng::Value>,
    /// Paired lists: within one entry all lists have the same length and advance together.
    #[serde(default)]
    pub zip: Vec<IndexMap<String, Vec<serde_yaml_ng::Value>>>,
    /// Random search.
    #[serde(default)]
    pub random: Option<RandomSearch>,
    /// How the end-of-sweep report groups and sorts runs.
    #[serde(default)]
    pub report: Option<ReportOptions>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomSearch {
    pub num_samples: usize,
    #[serde(default)]
    pub seed: u64,
    /// key -> `uniform(a, b)`, `loguniform(a, b)`, `int(a, b)`, `choice(a, b, ...)` or a list.
    pub params: IndexMap<String, serde_yaml_ng::Value>,
}

/// How the sweep's report groups and sorts runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportOptions {
    #[serde(default)]
    pub group_by: Vec<String>,
    #[serde(default)]
    pub sort_by: Option<String>,
}

impl SweepSpec {
    /// Reads `sweeps_dir/NAME.yaml`, listing the sweeps that exist when it does not.
    pub fn load(sweeps_dir: &Path, name: &str) -> Result<SweepSpec> {
        if !crate::config::repo::is_plain_name(name) || name.starts_with('.') {
            bail!(
                "sweep name `{}`: expected the name of a file in {} (without `.yaml`, `/`, `\\` \
                 or `..`); sweep runs are written under runs/sweeps/<name>/",
                name.escape_debug(),
                sweeps_dir.display()
            );
        }
        let path = sweeps_dir.join(format!("{name}.yaml"));
        if !path.is_file() {
            let mut names: Vec<String> = std::fs::read_dir(sweeps_dir)
                .map(|rd| {
                    rd.flatten()
                        .filter_map(|e| {
                            let p = e.path();
                            (p.extension().and_then(|x| x.to_str()) == Some("yaml"))
                                .then(|| p.file_stem().map(|s| s.to_string_lossy().to_string()))
                                .flatten()
                        })
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            let hint = crate::config::error::nearest(name, names.iter().map(String::as_str))
                .map(|n| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            bail!(
                "no sweep `{name}`: {} does not exist{hint}; sweeps in {}: {}",
                path.display(),
                sweeps_dir.display(),
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            );
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_yaml_ng::from_str(&text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(" at line {}", l.line()))
                .unwrap_or_default();
            anyhow::anyhow!("{}{at}: {e}", path.display())
        })
    }
}
