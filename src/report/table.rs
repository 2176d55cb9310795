//! From run records to tables: the config keys that differ between runs, one row of figures
//! per run (`report.csv`), and those rows aggregated per group (`report_grouped.csv`).

use super::collect::RunRecord;
use std::collections::{BTreeMap, BTreeSet};

/// Columns of `metrics.csv` that describe the optimisation, not the model's quality; they get
/// no final/best columns (throughput gets its own mean column).
const DIAGNOSTIC_COLUMNS: [&str; 4] = ["lr", "grad_norm", "tokens_per_s", "elapsed_s"];

pub const WALL_TIME: &str = "wall_time_s";
pub const TOKENS_PER_S: &str = "train.tokens_per_s.mean";

/// Config keys never reported as differing: `paths.*` (where a run wrote, not what it did) and
/// `name` (derived from `task.name` and `model.name`, which are reported themselves).
pub fn ignored_key(key: &str) -> bool {
    key == "name" || key == "paths" || key.starts_with("paths.")
}

/// Whether larger is better for a metric: accuracies, returns, scores and readable fractions;
/// losses, errors and times are better smaller.
pub fn higher_is_better(column: &str) -> bool {
    let c = column.to_ascii_lowercase();
    [
        "acc",
        "return",
        "score",
        "improvement",
        "tokens_per_s",
        "readable",
    ]
    .iter()
    .any(|w| c.contains(w))
}

/// Config keys whose value is not the same in every run (missing counts as a value).
pub fn differing_keys(runs: &[RunRecord]) -> Vec<String> {
    let with_config: Vec<&RunRecord> = runs.iter().filter(|r| !r.config.is_empty()).collect();
    let all: BTreeSet<&String> = with_config.iter().flat_map(|r| r.config.keys()).collect();
    all.into_iter()
        .filter(|k| !ignored_key(k))
        .filter(|k| {
            let first = with_config.first().and_then(|r| r.config.get(*k));
            with_config.iter().any(|r| r.config.get(*k) != first)
        })
        .cloned()
        .collect()
}

/// The default grouping: the differing keys except seeds (any key whose last part is `seed`,
/// so `task.seed` following `seed` is not a group either).
pub fn default_group_by(differing: &[String]) -> Vec<String> {
    differing
        .iter()
        .filter(|k| k.rsplit('.').next() != Some("seed"))
        .cloned()
        .collect()
}

/// One run's figures: `<split>.<metric>.final|best`, summary paths, wall time, throughput.
/// Only completed runs get figures: a running or failed run's "final" value is not final.
pub fn run_figures(run: &RunRecord) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    if !run.completed() {
        return out;
    }
    for p in &run.metrics {
        for (name, &v) in &p.values {
            if DIAGNOSTIC_COLUMNS.contains(&name.as_str()) || !v.is_finite() {
                continue;
            }
            let base = format!("{}.{}", p.split, name);
            // Rows are in step order, so the last one seen is the final value.
            out.insert(format!("{base}.final"), v);
            let best = out.entry(format!("{base}.best")).or_insert(v);
            *best = if higher_is_better(name) {
                best.max(v)
            } else {
                best.min(v)
            };
        }
    }
    let tps: Vec<f64> = run
        .metrics
        .iter()
        .filter(|p| p.split == "train")
        .filter_map(|p| p.values.get("tokens_per_s").copied())
        .filter(|v| v.is_finite())
        .collect();
    if let Some(m) = mean(&tps) {
        out.insert(TOKENS_PER_S.into(), m);
    }
    out.extend(run.summary.iter().map(|(k, v)| (k.clone(), *v)));
    if let Some(t) = run.wall_time_s {
        out.insert(WALL_TIME.into(), t);
    }
    out
}

/// The per-run table.
#[derive(Debug, Clone)]
pub struct RunTable {
    pub keys: Vec<String>,
    /// Figure columns in a stable order: metrics by split and header order, then summary
    /// figures, then throughput and wall time.
    pub figures: Vec<String>,
    pub rows: Vec<RunRow>,
}

#[derive(Debug, Clone)]
pub struct RunRow {
    pub path: String,
    pub status: String,
    pub error: Option<String>,
    pub key_values: Vec<String>,
    pub figures: BTreeMap<String, f64>,
}

impl RunTable {
    pub fn build(runs: &[RunRecord], keys: Vec<String>) -> RunTable {
        let rows: Vec<RunRow> = runs
            .iter()
            .map(|r| RunRow {
                path: r.path.display().to_string(),
                status: r.status.clone(),
                error: r.error.clone(),
                key_values: keys
                    .iter()
                    .map(|k| r.config.get(k).cloned().unwrap_or_default())
                    .collect(),
                figures: run_figures(r),
            })
            .collect();
        let present: BTreeSet<&String> = rows.iter().flat_map(|r| r.figures.keys()).collect();
        let mut figures = Vec::new();
        let push = |c: String, figures: &mut Vec<String>| {
            if present.contains(&c) && !figures.contains(&c) {
                figures.push(c);
            }
        };
        // Metric columns: splits train, val first, then any other; metrics in header order.
        let mut splits: Vec<String> = vec!["train".into(), "val".into()];
        let mut names: Vec<String> = Vec::new();
        for r in runs {
            for p in &r.metrics {
                if !splits.contains(&p.split) {
                    splits.push(p.split.clone());
                }
            }
            for n in &r.metric_names {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        for s in &splits {
            for n in &names {
                for agg in ["final", "best"] {
                    push(format!("{s}.{n}.{agg}"), &mut figures);
                }
            }
        }
        let mut summary: Vec<&String> = runs.iter().flat_map(|r| r.summary.keys()).collect();
        summary.sort();
        for k in summary {
            push(k.clone(), &mut figures);
        }
        push(TOKENS_PER_S.into(), &mut figures);
        push(WALL_TIME.into(), &mut figures);
        RunTable {
            keys,
            figures,
            rows,
        }
    }

    /// `report.csv`: path, status, error, the differing keys, then every figure.
    pub fn to_csv(&self) -> anyhow::Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["run".to_string(), "status".into(), "error".into()];
        header.extend(self.keys.iter().cloned());
        header.extend(self.figures.iter().cloned());
        w.write_record(&header)?;
        for r in &self.rows {
            let mut rec = vec![
                r.path.clone(),
                r.status.clone(),
                r.error.clone().unwrap_or_default(),
            ];
            rec.extend(r.key_values.iter().cloned());
            rec.extend(self.figures.iter().map(|f| fmt_num(r.figures.get(f))));
            w.write_record(&rec)?;
        }
        Ok(w.into_inner()?)
    }
}

/// Mean, standard deviation (sample, n − 1; none for a single value) and count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub std: Option<f64>,
    pub count: usize,
}

impl Stat {
    pub fn of(xs: &[f64]) -> Option<Stat> {
        let m = mean(xs)?;
        let std = (xs.len() > 1).then(|| {
            (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
        });
        Some(Stat {
            mean: m,
            std,
            count: xs.len(),
        })
    }
}

/// One group: runs sharing the values of the group-by keys.
#[derive(Debug, Clone)]
pub struct GroupRow {
    pub key_values: Vec<String>,
    /// Indices into the run table's rows.
    pub members: Vec<usize>,
    pub completed: usize,
    pub stats: BTreeMap<String, Stat>,
}

impl GroupRow {
    /// `model.name=rl_heads, format.name=rl` (or `all runs` without group keys).
    pub fn label(&self, keys: &[String]) -> String {
        if keys.is_empty() {
            return "all runs".into();
        }
        keys.iter()
            .zip(&self.key_values)
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The grouped table: figures of completed runs aggregated per group.
#[derive(Debug, Clone)]
pub struct GroupTable {
    pub keys: Vec<String>,
    pub figures: Vec<String>,
    pub groups: Vec<GroupRow>,
}

impl GroupTable {
    /// Groups in order of first appearance; `group_values[i]` holds run i's group-key values.
    pub fn build(table: &RunTable, keys: Vec<String>, group_values: &[Vec<String>]) -> GroupTable {
        let mut groups: Vec<GroupRow> = Vec::new();
        for (i, vals) in group_values.iter().enumerate() {
            match groups.iter_mut().find(|g| &g.key_values == vals) {
                Some(g) => g.members.push(i),
                None => groups.push(GroupRow {
                    key_values: vals.clone(),
                    members: vec![i],
                    completed: 0,
                    stats: BTreeMap::new(),
                }),
            }
        }
        for g in &mut groups {
            let done: Vec<&RunRow> = g
                .members
                .iter()
                .map(|&i| &table.rows[i])
                .filter(|r| r.status == "completed")
                .collect();
            g.completed = done.len();
            for f in &table.figures {
                let xs: Vec<f64> = done
                    .iter()
                    .filter_map(|r| r.figures.get(f))
                    .copied()
                    .collect();
                if let Some(s) = Stat::of(&xs) {
                    g.stats.insert(f.clone(), s);
                }
            }
        }
        GroupTable {
            keys,
            figures: table.figures.clone(),
            groups,
        }
    }

    /// Sorts groups by a figure's mean, best first; groups without it go last.
    pub fn sort_by(&mut self, figure: &str) {
        let higher = higher_is_better(figure);
        self.groups.sort_by(|a, b| {
            let (x, y) = (
                a.stats.get(figure).map(|s| s.mean),
                b.stats.get(figure).map(|s| s.mean),
            );
            match (x, y) {
                (Some(x), Some(y)) if higher => y.total_cmp(&x),
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
        });
    }

    /// `report_grouped.csv`: group keys, `runs`, `completed`, then per figure
    /// `<figure>.mean`, `<figure>.std`, `<figure>.count`.
    pub fn to_csv(&self) -> anyhow::Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<String> = self.keys.clone();
        header.extend(["runs".to_string(), "completed".into()]);
        for f in &self.figures {
            header.extend([
                format!("{f}.mean"),
                format!("{f}.std"),
                format!("{f}.count"),
            ]);
        }
        w.write_record(&header)?;
        for g in &self.groups {
            let mut rec = g.key_values.clone();
            rec.extend([g.members.len().to_string(), g.completed.to_string()]);
            for f in &self.figures {
                let s = g.stats.get(f);
                rec.push(fmt_num(s.map(|s| &s.mean)));
                rec.push(fmt_num(s.and_then(|s| s.std.as_ref())));
                rec.push(s.map(|s| s.count).unwrap_or(0).to_string());
            }
            w.write_record(&rec)?;
        }
        Ok(w.into_inner()?)
    }
}

/// Whether a figure column matches a user's metric name: its dot-separated parts appear in
/// the column's parts, in a row (`loss` matches `val.loss.final`, `val.loss` matches
/// `val.loss.best`, a full column name matches itself).
pub fn matches(column: &str, wanted: &str) -> bool {
    let c: Vec<&str> = column.split('.').collect();
    let w: Vec<&str> = wanted.split('.').collect();
    w.len() <= c.len() && c.windows(w.len()).any(|win| win == w.as_slice())
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

fn fmt_num(x: Option<&f64>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::collect::MetricPoint;

    fn run(status: &str, cfg: &[(&str, &str)], val: &[(u64, f64, f64)]) -> RunRecord {
        RunRecord {
            path: format!("r{}", cfg.len()).into(),
            status: status.into(),
            config: cfg
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            metric_names: vec!["loss".into(), "action_acc".into()],
            metrics: val
                .iter()
                .map(|&(step, loss, acc)| MetricPoint {
                    step,
                    split: "val".into(),
                    values: [("loss".to_string(), loss), ("action_acc".to_string(), acc)]
                        .into_iter()
                        .collect(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn final_and_best_follow_the_metric_direction() {
        let r = run(
            "completed",
            &[],
            &[(10, 2.0, 0.3), (20, 1.0, 0.6), (30, 1.5, 0.5)],
        );
        let f = run_figures(&r);
        assert_eq!(f["val.loss.final"], 1.5);
        assert_eq!(f["val.loss.best"], 1.0);
        assert_eq!(f["val.action_acc.final"], 0.5);
        assert_eq!(f["val.action_acc.best"], 0.6);
        assert!(run_figures(&run("failed", &[], &[(10, 2.0, 0.3)])).is_empty());
    }

    #[test]
    fn differing_keys_skip_paths_and_name_and_seeds_are_not_groups() {
        let a = run(
            "completed",
            &[
                ("seed", "0"),
                ("task.seed", "0"),
                ("lr", "1"),
                ("paths.runs", "a"),
                ("name", "x"),
                ("d", "1"),
            ],
            &[],
        );
        let b = run(
            "completed",
            &[
                ("seed", "1"),
                ("task.seed", "1"),
                ("lr", "2"),
                ("paths.runs", "b"),
                ("name", "y"),
                ("d", "1"),
            ],
            &[],
        );
        let keys = differing_keys(&[a, b]);
        assert_eq!(keys, ["lr", "seed", "task.seed"]);
        assert_eq!(default_group_by(&keys), ["lr"]);
    }

    #[test]
    fn sample_std_and_matching() {
        let s = Stat::of(&[1.0, 3.0]).unwrap();
        assert_eq!((s.mean, s.std, s.count), (2.0, Some(2f64.sqrt()), 2));
        assert_eq!(Stat::of(&[1.0]).unwrap().std, None);
        assert!(matches("val.loss.final", "loss"));
        assert!(matches("val.loss.final", "val.loss"));
        assert!(!matches("val.loss.final", "train.loss"));
        assert!(!matches("val.logprob_mse.final", "loss"));
    }
}
