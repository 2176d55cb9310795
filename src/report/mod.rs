//! `adlab report`: compares run directories. Finds the runs under the given paths
//! ([`collect`]), builds one row per run and one per group ([`table`]), and writes
//! `report.csv`, `report_grouped.csv`, `report.md` ([`markdown`]) and `plots/` ([`plots`]).
//!
//! Architecture invariant: a report only reads run directories (and `sweep.yaml` for its
//! options); it writes only into its output directory, and nothing in a run directory — a
//! running, failed or half-written run — can make it fail.

pub mod collect;
pub mod labels;
pub mod markdown;
pub mod plots;
pub mod table;

use crate::sweep::record::SweepRecord;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use table::{matches, GroupTable, RunTable};

/// What to report on and how.
#[derive(Debug, Clone, Default)]
pub struct ReportRequest {
    /// Run directories, sweep directories, or folders holding them.
    pub paths: Vec<PathBuf>,
    /// Config keys to group by; `None`: the differing keys except seeds (or the sweep's
    /// `report.group_by`).
    pub group_by: Option<Vec<String>>,
    /// Figures for the markdown table (matched by dotted parts: `loss`, `val.action_acc`).
    /// Empty: the sort figure, the validation finals, the held-out model figures, wall time.
    pub metrics: Vec<String>,
    /// The figure to sort groups on (default: validation action accuracy, else loss).
    pub sort_by: Option<String>,
    /// Output directory (default: the sweep directory when one is given, else `./report`).
    pub out: Option<PathBuf>,
}

/// What a report wrote.
#[derive(Debug)]
pub struct Report {
    pub out: PathBuf,
    pub markdown: String,
    pub files: Vec<PathBuf>,
}

/// Builds and writes the report.
pub fn write_report(mut req: ReportRequest) -> Result<Report> {
    let single_sweep = match req.paths.as_slice() {
        [p] if SweepRecord::path(p).is_file() => Some(p.clone()),
        _ => None,
    };
    if let Some(dir) = &single_sweep {
        // The sweep's own report options are the defaults; the command line wins.
        if let Some(opts) = SweepRecord::read(dir).ok().and_then(|r| r.report) {
            if req.group_by.is_none() && !opts.group_by.is_empty() {
                req.group_by = Some(opts.group_by);
            }
            if req.sort_by.is_none() {
                req.sort_by = opts.sort_by;
            }
        }
    }
    let out = req
        .out
        .clone()
        .or(single_sweep)
        .unwrap_or_else(|| PathBuf::from("report"));

    let dirs = collect::find_runs(&req.paths)?;
    if dirs.is_empty() {
        bail!(
            "no run directories (a directory with meta.json or config.yaml) under {}",
            req.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let runs: Vec<collect::RunRecord> = dirs.iter().map(|d| collect::read_run(d)).collect();
    for r in &runs {
        for n in &r.notes {
            tracing::warn!("{}: {n}", r.path.display());
        }
    }

    let differing = table::differing_keys(&runs);
    let group_by = match req.group_by.take() {
        Some(keys) => {
            check_keys(&keys, &runs)?;
            keys
        }
        None => table::default_group_by(&differing),
    };
    let run_table = RunTable::build(&runs, differing);
    let group_values: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            group_by
                .iter()
                .map(|k| r.config.get(k).cloned().unwrap_or_default())
                .collect()
        })
        .collect();
    let mut groups = GroupTable::build(&run_table, group_by, &group_values);
    let sort_by = resolve_sort(&run_table.figures, req.sort_by.as_deref())?;
    if let Some(s) = &sort_by {
        groups.sort_by(s);
    }
    let columns = markdown_columns(&run_table.figures, &req.metrics, sort_by.as_deref())?;
    let md = markdown::render(&run_table, &groups, &columns, sort_by.as_deref());

    let mut files = Vec::new();
    let mut write = |name: &str, bytes: &[u8]| -> Result<()> {
        let p = out.join(name);
        crate::fsutil::write_atomic(&p, bytes)?;
        files.push(p);
        Ok(())
    };
    write("report.csv", &run_table.to_csv()?)?;
    write("report_grouped.csv", &groups.to_csv()?)?;
    write("report.md", md.as_bytes())?;
    match plots::write_all(&out.join("plots"), &runs, &groups) {
        Ok(p) => files.extend(p),
        // The tables are the report; a plot that cannot be drawn is not worth losing them.
        Err(e) => tracing::warn!("plots: {e:#}"),
    }
    Ok(Report {
        out,
        markdown: md,
        files,
    })
}

/// The end-of-sweep report: written into the sweep directory with the sweep's options.
pub fn report_sweep(sweep_dir: &Path) -> Result<Report> {
    write_report(ReportRequest {
        paths: vec![sweep_dir.to_path_buf()],
        ..Default::default()
    })
}

fn check_keys(keys: &[String], runs: &[collect::RunRecord]) -> Result<()> {
    let all: std::collections::BTreeSet<&String> =
        runs.iter().flat_map(|r| r.config.keys()).collect();
    for k in keys {
        if !all.contains(k) {
            let hint = crate::config::error::nearest(k, all.iter().map(|s| s.as_str()))
                .map(|n| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            bail!("--group-by `{k}`: no run has this config key{hint}");
        }
    }
    Ok(())
}

/// The figure column a `--sort-by` names: itself, or the first column it matches.
fn resolve_sort(figures: &[String], wanted: Option<&str>) -> Result<Option<String>> {
    let Some(w) = wanted else {
        return Ok(["val.action_acc.final", "val.loss.final"]
            .into_iter()
            .find(|c| figures.iter().any(|f| f == c))
            .map(str::to_string));
    };
    if let Some(f) = figures.iter().find(|f| *f == w) {
        return Ok(Some(f.clone()));
    }
    match figures.iter().find(|f| matches(f, w)) {
        Some(f) => Ok(Some(f.clone())),
        None if figures.is_empty() => Ok(None),
        None => bail!(
            "--sort-by `{w}` matches no figure; figures: {}",
            figures.join(", ")
        ),
    }
}

/// `summary.json` figures outside the per-split policies that the markdown table shows by
/// default: held-out prediction and what a step costs.
const HEADLINE_SUMMARY: [&str; 5] = [
    "prediction.reward.mae",
    "prediction.state.normalised_mae",
    "prediction.state.unchanged_normalised_mae",
    "prediction.state.readable",
    "tokens_per_step",
];

fn markdown_columns(
    figures: &[String],
    wanted: &[String],
    sort_by: Option<&str>,
) -> Result<Vec<String>> {
    let mut cols: Vec<String> = sort_by.map(str::to_string).into_iter().collect();
    let add = |c: &String, cols: &mut Vec<String>| {
        if !cols.contains(c) {
            cols.push(c.clone());
        }
    };
    if wanted.is_empty() {
        for f in figures {
            let parts: Vec<&str> = f.split('.').collect();
            let val_final = parts.len() == 3 && parts[0] == "val" && parts[2] == "final";
            let held_out_model = parts.contains(&"test") && parts.contains(&"model");
            if val_final
                || held_out_model
                || HEADLINE_SUMMARY.contains(&f.as_str())
                || f == table::WALL_TIME
            {
                add(f, &mut cols);
            }
        }
        return Ok(cols);
    }
    cols.clear();
    for w in wanted {
        let hits: Vec<&String> = figures.iter().filter(|f| matches(f, w)).collect();
        if hits.is_empty() && !figures.is_empty() {
            bail!(
                "--metrics `{w}` matches no figure; figures: {}",
                figures.join(", ")
            );
        }
        for h in hits {
            add(h, &mut cols);
        }
    }
    Ok(cols)
}
